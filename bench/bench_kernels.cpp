// Throughput of the prompt-processing tile kernels on one core: sixteen decoded weight rows
// (128 for the bf16 tiles, as the engine decodes them) of k elements times n tokens, for
// each weight type with a tile path: AVX-512 VNNI, AMX int8 and AMX bf16 where the CPU has
// them, and the AVX2 tiles (the types that have them). Prints GMAC/s (10^9 multiply-adds per
// second), best of a few runs. The data are random normal values: the tile unit runs faster on
// zeros, so the values matter.
//   bench_kernels [k] [n]
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <vector>

#include "kernels/kernels.h"
#include "quant/quantize.h"
#include "quant/vec_dot.h"

using namespace ggswarm;

namespace {

double Now() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

// Random normal weights (rows × k, quantized to `type`, wrow bytes a row) and tokens.
struct Data {
  std::vector<float> xf;
  std::vector<uint8_t> w;
  uint64_t wrow;
};
Data MakeData(GgmlType type, int rows, int64_t k, int n) {
  std::mt19937 rng(7);
  std::normal_distribution<float> dist(0.0f, 1.0f);
  std::vector<float> wf(static_cast<size_t>(rows) * k);
  Data d{std::vector<float>(static_cast<size_t>(n) * k), {}, RowBytes(type, k)};
  for (float& v : wf) v = dist(rng);
  for (float& v : d.xf) v = dist(rng);
  d.w.resize(d.wrow * rows);
  for (int r = 0; r < rows; ++r)
    (void)Quantize(type, wf.data() + r * k, d.w.data() + r * d.wrow, k);
  return d;
}

double Run(GgmlType type, int64_t k, int n, bool amx) {
  kernels::SetAmx(amx);
  const int rows = 16;
  const Data data = MakeData(type, rows, k, n);
  const std::vector<float>& xf = data.xf;
  const std::vector<uint8_t>& w = data.w;
  const uint64_t wrow = data.wrow;
  const GgmlType vt = VecDotType(type);
  const uint64_t arow = RowBytes(vt, k);
  std::vector<uint8_t> act(arow * n);
  for (int t = 0; t < n; ++t) (void)Quantize(vt, xf.data() + t * k, act.data() + t * arow, k);
  kernels::DecodedRows d;
  kernels::Reserve(&d, rows, k, kernels::TileBlock(type));
  for (int r = 0; r < rows; ++r) kernels::DecodeRow(type, w.data() + r * wrow, &d, r);
  kernels::Panel p;
  kernels::BuildPanel(type, act.data(), arow, n, k, &p);
  std::vector<float> out(static_cast<size_t>(rows) * n);
  double best = 1e30;
  for (int rep = 0; rep < 5; ++rep) {
    const double t0 = Now();
    const int iters = 20;
    for (int i = 0; i < iters; ++i)
      kernels::TileProduct(d, p, kernels::HasMin(type), out.data(), 1, rows);
    best = std::min(best, (Now() - t0) / iters);
  }
  return static_cast<double>(rows) * n * k / best / 1e9;
}

// The bf16 tiles: 128 rows, as the engine decodes them.
double RunBf16(GgmlType type, int64_t k, int n) {
  const int rows = 128;
  const Data data = MakeData(type, rows, k, n);
  const std::vector<float>& xf = data.xf;
  const std::vector<uint8_t>& w = data.w;
  const uint64_t wrow = data.wrow;
  kernels::Bf16Rows d;
  kernels::ReserveBf16(&d, rows, k);
  for (int t = 0; t * 16 < rows; ++t) {
    const uint8_t* ptrs[16];
    const int count = std::min(16, rows - t * 16);
    for (int i = 0; i < count; ++i) ptrs[i] = w.data() + (t * 16 + i) * wrow;
    kernels::DecodeTileBf16(type, ptrs, count, &d, t);
  }
  kernels::Bf16Tokens p;
  kernels::BuildBf16Tokens(xf.data(), n, k, &p);
  std::vector<float> out(static_cast<size_t>(rows) * n);
  double best = 1e30;
  for (int rep = 0; rep < 5; ++rep) {
    const double t0 = Now();
    const int iters = 5;
    for (int i = 0; i < iters; ++i) kernels::TileProductBf16(d, p, out.data(), rows);
    best = std::min(best, (Now() - t0) / iters);
  }
  return static_cast<double>(rows) * n * k / best / 1e9;
}

}  // namespace

int main(int argc, char** argv) {
  const int64_t k = argc > 1 ? std::atoll(argv[1]) : 2048;
  const int n = argc > 2 ? std::atoi(argv[2]) : 512;
  if (kernels::Active() != kernels::Isa::kAvx512Vnni) {
    std::fprintf(stderr, "bench_kernels: this CPU has no AVX-512 VNNI tile path\n");
    return 1;
  }
  std::printf("tile kernels, 16 rows (bf16: 128) × %d tokens × k = %lld, GMAC/s on one core\n", n,
              static_cast<long long>(k));
  for (GgmlType t :
       {GgmlType::Q8_0, GgmlType::Q4_0, GgmlType::Q4_K, GgmlType::Q5_K, GgmlType::Q6_K}) {
    const double vnni = Run(t, k, n, false);
    std::printf("%-6s vnni %7.1f", TypeName(t), vnni);
    kernels::SetAmx(true);
    if (kernels::AmxActive()) std::printf("   amx %7.1f", Run(t, k, n, true));
    if (kernels::AmxBf16Active()) std::printf("   amx-bf16 %7.1f", RunBf16(t, k, n));
    kernels::SetIsa(kernels::Isa::kAvx2);
    if (kernels::HasTiles(t)) std::printf("   avx2 %7.1f", Run(t, k, n, false));
    kernels::SetIsa(kernels::Isa::kAvx512Vnni);
    std::printf("\n");
  }
}
