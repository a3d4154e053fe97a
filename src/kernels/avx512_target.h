// Included first by the files compiled for AVX-512 VNNI (kernels_avx512.cpp,
// rowdot_avx512.cpp): the instruction sets they use, from here to the end of the file, and
// the intrinsics. kernels.cpp calls into them only when the CPU has them.
#pragma once
#pragma GCC target("avx512f,avx512bw,avx512vl,avx512dq,avx512vnni,f16c,fma")
// GCC 12 warns about the intrinsics headers' own placeholder operands.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#include <immintrin.h>
