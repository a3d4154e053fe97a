// Included first by the files compiled for AVX2 (rowdot_avx2.cpp): the instruction sets
// they use (AVX2, FMA and F16C: Haswell, Zen and later), from here to the end of the file,
// and the intrinsics. kernels.cpp calls into them only when the CPU has them.
#pragma once
#pragma GCC target("avx2,fma,f16c")
#include <immintrin.h>
