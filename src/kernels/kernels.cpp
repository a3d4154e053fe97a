#include "kernels/kernels.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <string_view>

#if defined(__x86_64__)
#include <cpuid.h>
#endif

#include "base/fp16.h"
#include "kernels/kernels_amx.h"
#include "kernels/kernels_avx2.h"
#include "kernels/kernels_avx512.h"
#include "quant/blocks.h"
#include "quant/unpack.h"
#include "quant/vec_dot.h"

namespace ggswarm::kernels {
using namespace blocks;  // NOLINT: the block layouts
namespace {

Isa Detect() {
#if defined(__x86_64__)
  __builtin_cpu_init();
  const bool avx512 = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
                      __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq") &&
                      __builtin_cpu_supports("avx512vnni") && __builtin_cpu_supports("f16c") &&
                      __builtin_cpu_supports("fma");
  const bool avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
                    __builtin_cpu_supports("f16c");
  const Isa best = avx512 ? Isa::kAvx512Vnni : avx2 ? Isa::kAvx2 : Isa::kScalar;
  const char* env = std::getenv("GGSWARM_ISA");
  if (env && std::string_view(env) == "scalar") return Isa::kScalar;
  if (env && std::string_view(env) == "avx2") return std::min(best, Isa::kAvx2);
  return best;
#else
  return Isa::kScalar;
#endif
}

Isa& Best() {
  static Isa best = Detect();
  return best;
}
std::atomic<Isa> g_active{Best()};

bool DetectAmx() {
#if defined(__x86_64__)
  if (Best() != Isa::kAvx512Vnni) return false;
  const char* env = std::getenv("GGSWARM_AMX");
  if (env && std::string_view(env) == "0") return false;
  unsigned a, b, c, d;
  if (!__get_cpuid_count(7, 0, &a, &b, &c, &d)) return false;
  const bool tile = (d >> 24) & 1, int8 = (d >> 25) & 1;
  return tile && int8 && amx::RequestTileState();
#else
  return false;
#endif
}
bool AmxAvailable() {
  static const bool available = DetectAmx();
  return available;
}
std::atomic<bool> g_amx{AmxAvailable()};

// Sum of n int8 values.
int32_t Sum(const int8_t* q, int n) {
  int32_t s = 0;
  for (int i = 0; i < n; ++i) s += q[i];
  return s;
}

}  // namespace

Isa Active() { return g_active.load(std::memory_order_relaxed); }

const char* IsaName(Isa isa) {
  switch (isa) {
    case Isa::kAvx512Vnni:
      return "avx512-vnni";
    case Isa::kAvx2:
      return "avx2";
    default:
      return "scalar";
  }
}

void SetIsa(Isa isa) { g_active.store(std::min(isa, Best()), std::memory_order_relaxed); }

bool AmxActive() { return g_amx.load(std::memory_order_relaxed) && Active() == Isa::kAvx512Vnni; }

void SetAmx(bool on) { g_amx.store(on && AmxAvailable(), std::memory_order_relaxed); }

namespace {

using RowDotFn = void (*)(const uint8_t* rows, uint64_t row_bytes, int64_t nrows,
                          const RowDotAct& act, int64_t k, float* y, int64_t y_stride);

// What the kernels do for each weight type (their half of the type traits; quant/unpack.h
// holds the arithmetic's half): row dots per instruction set, and whether prompts decode
// the type into tiles (in blocks of its sub_block).
struct KernelTraits {
  GgmlType type;
  RowDotFn avx512, avx2;  // null: no row dots there
  bool tiles;
};

constexpr KernelTraits kKernels[] = {
    {GgmlType::Q8_0, avx512::DotQ8_0, avx2::DotQ8_0, true},
    {GgmlType::Q4_0, avx512::DotQ4_0, avx2::DotQ4_0, true},
    {GgmlType::Q4_1, nullptr, nullptr, true},
    {GgmlType::Q5_0, nullptr, nullptr, true},
    {GgmlType::Q5_1, nullptr, nullptr, true},
    {GgmlType::Q2_K, nullptr, nullptr, true},
    {GgmlType::Q3_K, nullptr, nullptr, true},
    {GgmlType::Q4_K, avx512::DotQ4_K, avx2::DotQ4_K, true},
    {GgmlType::Q5_K, nullptr, nullptr, true},
    {GgmlType::Q6_K, avx512::DotQ6_K, avx2::DotQ6_K, true},
};

const KernelTraits* FindKernels(GgmlType w) {
  for (const KernelTraits& t : kKernels)
    if (t.type == w) return &t;
  return nullptr;
}

// The row-dot kernel of type w for the active instruction set, or null.
RowDotFn RowDotOf(GgmlType w) {
  const KernelTraits* t = FindKernels(w);
  if (!t || Active() == Isa::kScalar) return nullptr;
  return Active() == Isa::kAvx2 ? t->avx2 : t->avx512;
}

}  // namespace

bool HasRowDot(GgmlType w) { return RowDotOf(w) != nullptr; }

bool HasRowDotEverywhere(GgmlType w) {
  const KernelTraits* t = FindKernels(w);
  return t && t->avx512 && t->avx2;
}

int RowDotGroup(GgmlType /*w*/) { return Active() == Isa::kAvx512Vnni ? 8 : 4; }

void QuantizeRow(GgmlType vt, const float* x, void* out, int64_t k) {
  if (Active() == Isa::kAvx512Vnni && vt == GgmlType::Q8_0)
    return avx512::QuantizeQ8_0(x, static_cast<Q8_0*>(out), k / kQK);
  if (Active() == Isa::kAvx512Vnni && vt == GgmlType::Q8_K)
    return avx512::QuantizeQ8_K(x, static_cast<Q8_K*>(out), k / kQK_K);
  QuantizeActivation(vt, x, out, k);
}

namespace {

// The AVX-512 Q8_0 and Q4_0 kernels' own layout of q and corr, from the plain one (see
// RowDotAct): per four blocks, their first sixteen quants four at a time in turn (block 0's
// 0-3, block 1's 0-3, … block 3's 12-15), then their last sixteen the same way; Q8_0's
// quants plus 128 (Q4_0's corrections, one per block, need no change). Blocks after the last
// whole four are left as they are (the kernels take them from act). QuantizeForRowDot writes
// this layout directly (avx512::QuantizeQ8_0Split).
void LayOutForAvx512(GgmlType w, int64_t nb, RowDotAct* out) {
  const int64_t quads = nb / 4;
  int8_t quad[4 * kQK];
  for (int64_t g = 0; g < quads; ++g) {
    int8_t* q = out->q.data() + g * 4 * kQK;
    for (int half = 0; half < 2; ++half)
      for (int l = 0; l < 16; ++l)
        std::memcpy(quad + 64 * half + 4 * l, q + (l % 4) * kQK + 16 * half + 4 * (l / 4), 4);
    std::memcpy(q, quad, sizeof quad);
  }
  if (w == GgmlType::Q8_0)
    for (int8_t& q : out->q) q = static_cast<int8_t>(static_cast<uint8_t>(q) ^ 0x80);
}

}  // namespace

bool QuantizesForRowDot(GgmlType w, int64_t k) {
  return Active() == Isa::kAvx512Vnni && (w == GgmlType::Q8_0 || w == GgmlType::Q4_0) && k > 0 &&
         k % (4 * kQK) == 0;
}

void QuantizeForRowDot(GgmlType w, const float* x, int64_t k, RowDotAct* out) {
  const int64_t nb = k / kQK;
  out->act = nullptr;
  out->q.resize(k);
  out->d.resize(nb + 4);  // padded as PrepareRowDot pads
  if (w == GgmlType::Q4_0) out->corr.resize(nb);
  avx512::QuantizeQ8_0Split(x, nb, out->q.data(), out->d.data(),
                            w == GgmlType::Q4_0 ? out->corr.data() : nullptr, w == GgmlType::Q8_0);
}

void PrepareRowDot(GgmlType w, const void* act, int64_t k, RowDotAct* out) {
  out->act = act;
  if (Active() == Isa::kAvx2) {
    // Q8_0: the scales as floats. Q4_0: those, and per pair of blocks the first sixteen
    // quants of each side by side (against the low nibbles of both blocks' weights), then
    // the last sixteen of each, and corr = -8 Σ x per block. The K-quants read the blocks as
    // they are.
    if (w != GgmlType::Q4_0 && w != GgmlType::Q8_0) return;
    const int64_t nb = k / kQK;
    const auto* a = static_cast<const Q8_0*>(act);
    if (w == GgmlType::Q8_0) {
      out->d.resize(nb);
      for (int64_t i = 0; i < nb; ++i) out->d[i] = HalfToFloat(a[i].d);
      return;
    }
    out->q.resize((nb + 1) / 2 * 2 * kQK);  // an odd last block fills half a pair
    out->d.resize(nb);
    out->corr.resize(nb);
    for (int64_t i = 0; i < nb; ++i) {
      int8_t* q = out->q.data() + (i / 2) * 2 * kQK + (i % 2) * 16;
      std::memcpy(q, a[i].qs, 16);
      std::memcpy(q + 32, a[i].qs + 16, 16);
      out->d[i] = HalfToFloat(a[i].d);
      out->corr[i] = -8 * Sum(a[i].qs, kQK);
    }
    return;
  }
  if (w == GgmlType::Q4_K) {
    // Per super-block and half c, the quants of sub-blocks 4c and 4c + 2 side by side (the
    // low nibbles of one 64-byte load of weights), then 4c + 1 and 4c + 3 (the high ones).
    const auto* a = static_cast<const Q8_K*>(act);
    out->q.resize(k);
    out->sums.resize(k / 32);
    for (int64_t i = 0; i < k / kQK_K; ++i) {
      for (int c = 0; c < 2; ++c)
        for (int j = 0; j < 4; ++j)
          std::memcpy(out->q.data() + i * kQK_K + 128 * c + 32 * j,
                      a[i].qs + 128 * c + 32 * ((j % 2) * 2 + j / 2), 32);
      for (int j = 0; j < 8; ++j)  // |sum| <= 32 * 127: fits
        out->sums[i * 8 + j] = static_cast<int16_t>(a[i].bsums[2 * j] + a[i].bsums[2 * j + 1]);
    }
    return;
  }
  if (w != GgmlType::Q8_0 && w != GgmlType::Q4_0) return;
  const int64_t nb = k / kQK;
  const auto* a = static_cast<const Q8_0*>(act);
  out->q.resize(k);
  out->d.resize(nb + 4);  // padded: kernels read scales four at a time
  for (int64_t i = 0; i < nb; ++i) {
    std::memcpy(out->q.data() + i * kQK, a[i].qs, kQK);
    out->d[i] = HalfToFloat(a[i].d);
  }
  if (w == GgmlType::Q4_0) {
    out->corr.resize(nb);
    for (int64_t i = 0; i < nb; ++i) out->corr[i] = -8 * Sum(a[i].qs, kQK);
  }
  LayOutForAvx512(w, nb, out);
}

void RowDots(GgmlType w, const uint8_t* rows, uint64_t row_bytes, int64_t nrows,
             const RowDotAct& act, int64_t k, float* y, int64_t y_stride) {
  if (RowDotFn fn = RowDotOf(w)) return fn(rows, row_bytes, nrows, act, k, y, y_stride);
  for (int64_t i = 0; i < nrows; ++i)  // not reached: callers check HasRowDot
    y[i * y_stride] = VecDotBlocks(w, rows + i * row_bytes, act.act, k);
}

void RowDotsTokens(GgmlType w, const uint8_t* rows, uint64_t row_bytes, int64_t nrows,
                   const RowDotAct* acts, int n, int64_t k, float* y, int64_t token_stride) {
  if (Active() == Isa::kAvx2 && n > 1)
    return avx2::DotsTokens(w, rows, row_bytes, nrows, acts, n, k, y, token_stride);
  if (Active() == Isa::kAvx512Vnni && n > 1)
    return avx512::DotsTokens(w, rows, row_bytes, nrows, acts, n, k, y, token_stride);
  for (int t = 0; t < n; ++t)
    RowDots(w, rows, row_bytes, nrows, acts[t], k, y + t * token_stride, 1);
}

uint64_t ReadAll(const uint8_t* p, uint64_t n, int streams) {
  streams = std::clamp(streams, 1, 8);
  if (Active() == Isa::kAvx512Vnni) return avx512::ReadAll(p, n, streams);
  if (Active() == Isa::kAvx2) return avx2::ReadAll(p, n, streams);
  const uint64_t part = n / streams / 128 * 128;
  uint64_t acc[8] = {};
  for (int s = 0; s < streams; ++s)
    for (uint64_t i = 0; i < part; i += 8) {
      uint64_t w;
      std::memcpy(&w, p + s * part + i, 8);
      acc[(i / 8) % 8] ^= w;
    }
  return acc[0] ^ acc[1] ^ acc[2] ^ acc[3] ^ acc[4] ^ acc[5] ^ acc[6] ^ acc[7];
}

int TileBlock(GgmlType w) {
  const KernelTraits* t = FindKernels(w);
  return t && t->tiles ? quant::FindQuantTraits(w)->sub_block : 0;
}

bool HasTiles(GgmlType w) {
  if (TileBlock(w) == 0) return false;
  // AVX2 multiplies pairs into 16 bits (vpmaddubsw): Q8_0's quants (|q| up to 128) would
  // overflow them against the panel's 255.
  return Active() == Isa::kAvx512Vnni ||
         (Active() == Isa::kAvx2 && quant::FindQuantTraits(w)->max_q <= avx2::kTileMaxQ);
}

bool HasMin(GgmlType w) {
  const quant::QuantTraits* t = quant::FindQuantTraits(w);
  return t && t->has_min;
}

void Reserve(DecodedRows* out, int rows, int64_t k, int block) {
  out->k = k;
  out->nkb = k / block;
  out->rows = std::min(rows, kTileRows);
  out->block = block;
  out->q.resize(static_cast<size_t>(kTileRows) * k);
  out->sw.resize(static_cast<size_t>(kTileRows) * out->nkb);
  out->mw.resize(out->sw.size());
  out->negc.resize(out->sw.size());
}

void DecodeRow(GgmlType w, const uint8_t* row, DecodedRows* out, int slot) {
  const int64_t k = out->k, nkb = out->nkb;
  thread_local std::vector<int8_t> row_q;
  row_q.resize(k);
  int8_t* q = row_q.data();
  int32_t* negc = out->negc.data() + slot * nkb;
  out->type = w;
  const int bl = static_cast<int>(k / nkb);
  quant::UnpackRow(w, row, k, q, out->sw.data() + slot * nkb, out->mw.data() + slot * nkb);
  for (int64_t b = 0; b < nkb; ++b) {
    negc[b] = -128 * Sum(q + b * bl, bl);
    std::memcpy(out->q.data() + (b * kTileRows + slot) * bl, q + b * bl, bl);
  }
}

void BuildPanel(GgmlType w, const uint8_t* act, uint64_t act_row_bytes, int n, int64_t k, Panel* p,
                ThreadPool* pool) {
  const GgmlType vt = VecDotType(w);
  const int bl = TileBlock(w);
  p->k = k;
  p->nkb = k / bl;
  p->n = n;
  p->groups = (n + kPanelTokens - 1) / kPanelTokens;
  p->offset = !AmxActive();
  const int offset = p->offset ? 128 : 0;
  p->q.assign(static_cast<size_t>(p->groups) * k * kPanelTokens, 0);
  p->sa.assign(static_cast<size_t>(p->groups) * p->nkb * kPanelTokens, 0.0f);
  p->SA.assign(p->sa.size(), 0.0f);
  const bool min = HasMin(w);
  auto fill = [&](int t) {
    const uint8_t* a = act + t * act_row_bytes;
    const int g = t / kPanelTokens, lane = t % kPanelTokens;
    uint8_t* dst = p->q.data() + static_cast<size_t>(g) * k * kPanelTokens + lane * 4;
    float* sa = p->sa.data() + static_cast<size_t>(g) * p->nkb * kPanelTokens + lane;
    float* SA = p->SA.data() + static_cast<size_t>(g) * p->nkb * kPanelTokens + lane;
    const int8_t* qs;
    auto put = [&](const int8_t* src, int64_t at, int len) {  // elements at … at + len
      for (int j = 0; j < len; j += 4)
        for (int b = 0; b < 4; ++b)
          dst[(at + j) / 4 * 64 + b] = static_cast<uint8_t>(src[j + b] + offset);
    };
    if (vt == GgmlType::Q8_K) {
      const auto* y = reinterpret_cast<const Q8_K*>(a);
      for (int64_t s = 0; s < k / kQK_K; ++s) {
        qs = y[s].qs;
        put(qs, s * kQK_K, kQK_K);
        for (int j = 0; j < kQK_K / bl; ++j) {
          const int64_t b = s * (kQK_K / bl) + j;
          sa[b * kPanelTokens] = y[s].d;
          if (min) {
            int32_t bs = 0;
            for (int i = 0; i < bl / 16; ++i) bs += y[s].bsums[j * (bl / 16) + i];
            SA[b * kPanelTokens] = y[s].d * static_cast<float>(bs);
          }
        }
      }
    } else if (vt == GgmlType::Q8_1) {
      const auto* y = reinterpret_cast<const BlockQ8_1*>(a);
      for (int64_t b = 0; b < k / kQK; ++b) {
        put(y[b].qs, b * kQK, kQK);
        sa[b * kPanelTokens] = HalfToFloat(y[b].d);
        SA[b * kPanelTokens] = HalfToFloat(y[b].s);
      }
    } else {  // Q8_0
      const auto* y = reinterpret_cast<const Q8_0*>(a);
      for (int64_t b = 0; b < k / kQK; ++b) {
        put(y[b].qs, b * kQK, kQK);
        sa[b * kPanelTokens] = HalfToFloat(y[b].d);
      }
    }
  };
  if (pool) {
    pool->Run(
        n,
        [&](int64_t b, int64_t e, int) {
          for (int64_t t = b; t < e; ++t) fill(static_cast<int>(t));
        },
        kPanelTokens);  // whole groups per thread: each 64-byte line of the panel has one writer
  } else {
    for (int t = 0; t < n; ++t) fill(t);
  }
}

bool AmxBf16Active() {
  static const bool has = [] {
#if defined(__x86_64__)
    unsigned a, b, c, d;
    if (!__get_cpuid_count(7, 0, &a, &b, &c, &d)) return false;
    const bool amx_bf16 = (d >> 22) & 1;
    if (!__get_cpuid_count(7, 1, &a, &b, &c, &d)) return false;
    const bool avx512_bf16 = (a >> 5) & 1;
    return amx_bf16 && avx512_bf16;
#else
    return false;
#endif
  }();
  return has && AmxActive();
}

void ReserveBf16(Bf16Rows* out, int count, int64_t k) {
  out->k = k;
  out->used = count;
  const int rows = (count + kTileRows - 1) / kTileRows * kTileRows;
  const size_t size = static_cast<size_t>(rows) * k;
  // Zero the padding rows: all of it where the shape changed, otherwise only the last tile.
  if (out->rows != rows || out->b.size() != size) {
    out->rows = rows;
    out->b.assign(size, 0);
  } else if (count != rows) {
    for (int64_t kb = 0; kb < k / 32; ++kb)
      std::memset(out->b.data() + (kb * rows / kTileRows + rows / kTileRows - 1) * 512, 0,
                  512 * sizeof(uint16_t));
  }
}

void DecodeTileBf16(GgmlType w, const uint8_t* const* rows, int count, Bf16Rows* out, int tile) {
  const int64_t k = out->k;
  const int bl = TileBlock(w);
  const int64_t nkb = k / bl;
  uint16_t* dst = out->b.data() + static_cast<size_t>(tile) * 512;
  const int64_t step = static_cast<int64_t>(out->rows / kTileRows) * 512;
  if (w == GgmlType::Q8_0) return amx::Q8_0TileToBf16(rows, count, k, dst, step);
  if (w == GgmlType::Q4_K) return amx::Q4_KTileToBf16(rows, count, k, dst, step);
  if (w == GgmlType::Q6_K) return amx::Q6_KTileToBf16(rows, count, k, dst, step);
  thread_local std::vector<int8_t> q;
  thread_local std::vector<float> sw, mw;
  q.resize(kTileRows * k);
  sw.resize(kTileRows * nkb);
  mw.resize(kTileRows * nkb);
  for (int i = 0; i < count; ++i)
    quant::UnpackRow(w, rows[i], k, q.data() + i * k, sw.data() + i * nkb, mw.data() + i * nkb);
  amx::QuantsTileToBf16(q.data(), sw.data(), mw.data(), count, bl, k, dst, step);
}

void BuildBf16Tokens(const float* x, int n, int64_t k, Bf16Tokens* t, ThreadPool* pool) {
  t->k = k;
  t->stride = k + 32;
  t->n = n;
  t->rows = (n + kPanelTokens - 1) / kPanelTokens * kPanelTokens;
  t->a.resize(static_cast<size_t>(t->rows) * t->stride);
  std::memset(t->a.data() + static_cast<size_t>(n) * t->stride, 0,
              static_cast<size_t>(t->rows - n) * t->stride * sizeof(uint16_t));
  auto fill = [&](int64_t b, int64_t e, int) {
    for (int64_t i = b; i < e; ++i) amx::FloatsToBf16(x + i * k, k, t->a.data() + i * t->stride);
  };
  if (pool)
    pool->Run(n, fill, 4);
  else
    fill(0, n, 0);
}

void TileProductBf16(const Bf16Rows& w, const Bf16Tokens& x, float* out, int64_t out_stride) {
  amx::TileBf16(w, x, out, out_stride);
}

void SiluMul(const float* g, const float* u, float* out, int64_t n) {
  if (Active() == Isa::kAvx512Vnni) return avx512::SiluMul(g, u, out, n);
  for (int64_t i = 0; i < n; ++i) out[i] = g[i] / (1.0f + std::exp(-g[i])) * u[i];
}

void GeluTableMul(const float* table, const float* g, const float* u, float* out, int64_t n) {
  if (Active() == Isa::kAvx512Vnni) return avx512::GeluTableMul(table, g, u, out, n);
  for (int64_t i = 0; i < n; ++i) {
    const float x = g[i];
    out[i] = x <= -10.0f ? 0.0f : x >= 10.0f ? x * u[i] : table[FloatToHalf(x)] * u[i];
  }
}

void AttendF32(const float* q, int heads, const float* kt, int64_t kt_stride, const float* v,
               int len, int head_dim, float scale, float* out, float softcap) {
  avx512::AttendF32(q, heads, kt, kt_stride, v, len, head_dim, scale, out, softcap);
}

void AttendF32Reference(const float* q, int heads, const float* kt, int64_t kt_stride,
                        const float* v, int len, int head_dim, float scale, float* out,
                        float softcap) {
  std::vector<double> s(len);
  for (int h = 0; h < heads; ++h) {
    const float* qh = q + h * head_dim;
    double m = -INFINITY;
    for (int j = 0; j < len; ++j) {
      double dot = 0;
      for (int d = 0; d < head_dim; ++d)
        dot += double(HalfToFloat(FloatToHalf(qh[d]))) * kt[d * kt_stride + j];
      s[j] = dot * scale;
      if (softcap > 0) s[j] = softcap * std::tanh(s[j] / softcap);
      m = std::max(m, s[j]);
    }
    double sum = 0;
    for (int j = 0; j < len; ++j) sum += (s[j] = std::exp(s[j] - m));
    for (int d = 0; d < head_dim; ++d) {
      double acc = 0;
      for (int j = 0; j < len; ++j) acc += s[j] * v[j * head_dim + d];
      out[h * head_dim + d] = static_cast<float>(acc / sum);
    }
  }
}

bool HasAttention(int head_dim) {
  return Active() != Isa::kScalar && head_dim % 16 == 0 && head_dim <= 256;
}

bool HasF32Attention(int head_dim) {
  return Active() == Isa::kAvx512Vnni && HasAttention(head_dim);
}

void AttendF16(const float* q, int heads, const uint16_t* k, const uint16_t* v, int64_t stride,
               int len, int head_dim, float scale, float* out, float softcap) {
  if (Active() == Isa::kAvx2)
    return avx2::AttendF16(q, heads, k, v, stride, len, head_dim, scale, out, softcap);
  avx512::AttendF16(q, heads, k, v, stride, len, head_dim, scale, out, softcap);
}

void AttendF16Reference(const float* q, int heads, const uint16_t* k, const uint16_t* v,
                        int64_t stride, int len, int head_dim, float scale, float* out,
                        float softcap) {
  const int hd = head_dim;
  if (heads > 1) {
    for (int h = 0; h < heads; ++h)
      AttendF16Reference(q + h * hd, 1, k, v, stride, len, hd, scale, out + h * hd, softcap);
    return;
  }
  std::vector<float> qh(hd), acc(hd, 0.0f);
  for (int i = 0; i < hd; ++i) qh[i] = HalfToFloat(FloatToHalf(q[i]));
  float m = -INFINITY, sum = 0;
  for (int j = 0; j < len; ++j) {
    const uint16_t* kr = k + j * stride;
    const uint16_t* vr = v + j * stride;
    double dot = 0;
    for (int i = 0; i < hd; ++i) dot += qh[i] * HalfToFloat(kr[i]);
    float s = static_cast<float>(dot) * (softcap > 0 ? scale / softcap : scale);
    if (softcap > 0) s = softcap * std::tanh(s);  // as ggml: the scale divided first
    float ms = 1.0f, vs = 1.0f;
    if (s > m) {
      ms = std::exp(m - s);
      m = s;
      for (int i = 0; i < hd; ++i) acc[i] = HalfToFloat(FloatToHalf(acc[i] * ms));
    } else {
      vs = std::exp(s - m);
    }
    for (int i = 0; i < hd; ++i)
      acc[i] = HalfToFloat(FloatToHalf(std::fma(HalfToFloat(vr[i]), vs, acc[i])));
    sum = sum * ms + vs;
  }
  const float inv = sum == 0 ? 0.0f : 1.0f / sum;
  for (int i = 0; i < hd; ++i) out[i] = acc[i] * inv;
}

void TileProduct(const DecodedRows& w, const Panel& p, bool has_min, float* out, int64_t row_stride,
                 int64_t token_stride) {
  if (Active() == Isa::kAvx2) return avx2::Tile(w, p, has_min, out, row_stride, token_stride);
  if (p.offset)
    avx512::Tile(w, p, has_min, out, row_stride, token_stride);
  else
    amx::Tile(w, p, has_min, out, row_stride, token_stride);
}

}  // namespace ggswarm::kernels
