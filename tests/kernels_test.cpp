// The fast kernels against the scalar references: decoding against Dequantize (exact),
// row dots and tiles against the scalar dot of the same quantized operands, and the thread
// pool's division of work.
#include "kernels/kernels.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cmath>
#include <cstring>
#include <functional>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "base/fp16.h"
#include "base/thread_pool.h"
#include "model/ops.h"
#include "quant/dequantize.h"
#include "quant/quantize.h"
#include "quant/unpack.h"
#include "quant/vec_dot.h"
#include "scoped_isa.h"

namespace ggswarm {
namespace {

using ggswarm::testing::ScopedIsa;

constexpr GgmlType kTypes[] = {GgmlType::Q4_0, GgmlType::Q4_1, GgmlType::Q5_0, GgmlType::Q5_1,
                               GgmlType::Q8_0, GgmlType::Q2_K, GgmlType::Q3_K, GgmlType::Q4_K,
                               GgmlType::Q5_K, GgmlType::Q6_K};

std::vector<float> RandomFloats(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> dist(0.0f, 1.0f);
  std::vector<float> v(n);
  for (float& x : v) x = dist(rng);
  return v;
}

struct Operands {
  int64_t k;
  int rows, n;
  std::vector<uint8_t> w;    // rows × row_bytes
  std::vector<uint8_t> act;  // n × abytes
  uint64_t row_bytes, abytes;
};

Operands Make(GgmlType type, int rows, int n, int64_t k, uint32_t seed) {
  Operands o{k, rows, n, {}, {}, RowBytes(type, k), ActivationBytes(VecDotType(type), k)};
  const auto wf = RandomFloats(static_cast<size_t>(rows) * k, seed);
  o.w.resize(rows * o.row_bytes);
  for (int r = 0; r < rows; ++r)
    EXPECT_TRUE(Quantize(type, wf.data() + r * k, o.w.data() + r * o.row_bytes, k).ok());
  const auto xf = RandomFloats(static_cast<size_t>(n) * k, seed + 1);
  o.act.resize(n * o.abytes);
  for (int t = 0; t < n; ++t)
    QuantizeActivation(VecDotType(type), xf.data() + t * k, o.act.data() + t * o.abytes, k);
  return o;
}

// A TensorView of o's weights (o.rows rows of o.k elements of `type`), described by *info.
TensorView ViewOf(GgmlType type, const Operands& o, gguf::TensorInfo* info) {
  *info = {"w", {uint64_t(o.k), uint64_t(o.rows)}, type, 0, o.w.size(), uint64_t(o.k) * o.rows};
  return TensorView{info, {{o.w.data(), 0, o.rows}}, o.row_bytes};
}

// The scalar reference: the exact integer dot where there is one, else the dequantized row
// times the activation's values; and Σ|w·x| for the tolerance.
double Reference(GgmlType type, const Operands& o, int r, int t, double* magnitude) {
  std::vector<float> wf(o.k), xf(o.k);
  EXPECT_TRUE(Dequantize(type, o.w.data() + r * o.row_bytes, wf.data(), o.k).ok());
  ExpandActivation(VecDotType(type), o.act.data() + t * o.abytes, xf.data(), o.k);
  double exact = 0;
  *magnitude = 0;
  for (int64_t i = 0; i < o.k; ++i) {
    exact += double(wf[i]) * xf[i];
    *magnitude += std::fabs(double(wf[i]) * xf[i]);
  }
  if (HasIntegerDot(type))
    return VecDotBlocks(type, o.w.data() + r * o.row_bytes, o.act.data() + t * o.abytes, o.k);
  return exact;
}

bool HaveAvx512() { return kernels::Active() == kernels::Isa::kAvx512Vnni; }

// The instruction sets with row dots that this CPU has (AVX2, AVX-512 VNNI), each made
// active in turn by the caller; ISA restores the best one when it goes.
std::vector<kernels::Isa> RowDotIsas() {
  std::vector<kernels::Isa> isas;
  for (kernels::Isa isa : {kernels::Isa::kAvx2, kernels::Isa::kAvx512Vnni}) {
    ScopedIsa scoped(isa);
    if (scoped.has(isa)) isas.push_back(isa);
  }
  return isas;
}

// f(type) for each type with row dots (Q8_0, Q4_0, Q4_K, Q6_K) under each of `isas`.
void ForEachRowDotCase(const std::vector<kernels::Isa>& isas,
                       const std::function<void(GgmlType)>& f) {
  for (kernels::Isa isa : isas)
    for (GgmlType type : {GgmlType::Q8_0, GgmlType::Q4_0, GgmlType::Q4_K, GgmlType::Q6_K}) {
      ScopedIsa scoped(isa);
      SCOPED_TRACE(std::string(kernels::IsaName(isa)) + " " + TypeName(type));
      f(type);
    }
}
#define REQUIRE_AVX512() \
  if (!HaveAvx512()) GTEST_SKIP() << "this CPU has no AVX-512 VNNI (or GGSWARM_ISA=scalar)"

TEST(Kernels, DecodedRowsGiveExactlyTheDequantizedValues) {
  for (GgmlType type : kTypes) {
    SCOPED_TRACE(TypeName(type));
    const int64_t k = 512;
    const Operands o = Make(type, 3, 1, k, 7);
    kernels::DecodedRows d;
    kernels::Reserve(&d, 3, k, kernels::TileBlock(type));
    for (int r = 0; r < 3; ++r) kernels::DecodeRow(type, o.w.data() + r * o.row_bytes, &d, r);
    for (int r = 0; r < 3; ++r) {
      std::vector<float> want(k);
      ASSERT_TRUE(Dequantize(type, o.w.data() + r * o.row_bytes, want.data(), k).ok());
      const int bl = static_cast<int>(k / d.nkb);
      for (int64_t j = 0; j < k; ++j) {
        const int64_t b = r * d.nkb + j / bl;
        const float got = d.sw[b] * d.At(r, j / bl)[j % bl] + d.mw[b];
        ASSERT_EQ(got, want[j]) << "row " << r << " element " << j;
      }
      for (int64_t b = 0; b < d.nkb; ++b) {
        int32_t sum = 0;
        for (int j = 0; j < bl; ++j) sum += d.At(r, b)[j];
        ASSERT_EQ(d.negc[r * d.nkb + b], -128 * sum);
      }
    }
  }
}

// QuantTraits::max_q, which the AVX2 tiles rely on (kernels_avx2.h): decoded from random
// bytes, as a hostile file may hold them, every type's quants stay within it.
TEST(Kernels, UnpackedQuantsStayWithinTheirBoundWhateverTheBytes) {
  std::mt19937 rng(9);
  for (GgmlType type : kTypes) {
    SCOPED_TRACE(TypeName(type));
    const int64_t k = 512;
    const int max_q = quant::FindQuantTraits(type)->max_q;
    std::vector<uint8_t> row(RowBytes(type, k));
    kernels::DecodedRows d;
    kernels::Reserve(&d, 1, k, kernels::TileBlock(type));
    int seen = 0;
    for (int rep = 0; rep < 64; ++rep) {
      for (uint8_t& b : row) b = static_cast<uint8_t>(rng());
      kernels::DecodeRow(type, row.data(), &d, 0);
      for (int64_t b = 0; b < d.nkb; ++b)
        for (int j = 0; j < d.block; ++j) seen = std::max(seen, std::abs(int{d.At(0, b)[j]}));
    }
    EXPECT_EQ(seen, max_q);  // within it, and reached: the bound is the format's
  }
}

TEST(Kernels, RowDotsMatchTheScalarReference) {
  const auto isas = RowDotIsas();
  if (isas.empty()) GTEST_SKIP() << "this CPU has neither AVX2 nor AVX-512 VNNI";
  ForEachRowDotCase(isas, [&](GgmlType type) {
    ASSERT_TRUE(kernels::HasRowDot(type));
    for (int64_t k : {256, 768, 2048, 2080}) {  // block counts that do and do not divide by 4
      if (k % Traits(type).block_size != 0) continue;
      // Row counts below, at and between multiples of the kernels' four streams.
      for (int rows : {1, 4, 5, 11}) {
        const Operands o = Make(type, rows, 2, k, 11 + rows);
        for (int t = 0; t < 2; ++t) {
          std::vector<float> y(2 * rows, NAN);  // written every other float
          kernels::RowDotAct ra;
          kernels::PrepareRowDot(type, o.act.data() + t * o.abytes, k, &ra);
          kernels::RowDots(type, o.w.data(), o.row_bytes, rows, ra, k, y.data(), 2);
          for (int r = 0; r < rows; ++r) {
            double mag;
            const double want = Reference(type, o, r, t, &mag);
            EXPECT_NEAR(y[2 * r], want, 1e-5 * mag)
                << "k " << k << " rows " << rows << " row " << r;
            EXPECT_TRUE(std::isnan(y[2 * r + 1])) << "wrote between rows";
          }
        }
      }
    }
  });
}

// Several tokens per call (AVX2's prompt path: each block decoded once for up to four
// tokens) against the scalar reference, for token counts around the groups of four.
TEST(Kernels, RowDotsForSeveralTokensMatchTheScalarReference) {
  const auto isas = RowDotIsas();
  if (isas.empty()) GTEST_SKIP() << "this CPU has neither AVX2 nor AVX-512 VNNI";
  ForEachRowDotCase(isas, [&](GgmlType type) {
    for (int64_t k : {768, 2080}) {  // 2080: 65 blocks, a tail past the steps of four
      if (k % Traits(type).block_size != 0) continue;
      const int rows = 5, max_n = 9;
      const Operands o = Make(type, rows, max_n, k, 41);
      std::vector<kernels::RowDotAct> ra(max_n);
      for (int t = 0; t < max_n; ++t)
        kernels::PrepareRowDot(type, o.act.data() + t * o.abytes, k, &ra[t]);
      for (int n : {1, 2, 3, 4, 5, 7, 8, 9}) {
        std::vector<float> y(n * (rows + 1), NAN);  // token stride rows + 1
        kernels::RowDotsTokens(type, o.w.data(), o.row_bytes, rows, ra.data(), n, k, y.data(),
                               rows + 1);
        for (int t = 0; t < n; ++t) {
          for (int r = 0; r < rows; ++r) {
            double mag;
            const double want = Reference(type, o, r, t, &mag);
            EXPECT_NEAR(y[t * (rows + 1) + r], want, 1e-5 * mag)
                << "k " << k << ", " << n << " tokens, token " << t << " row " << r;
          }
          EXPECT_TRUE(std::isnan(y[t * (rows + 1) + rows])) << "wrote past the rows";
        }
      }
    }
  });
}

// A batch of sequences must not change any one of them: with AVX-512 and with AVX2 each
// token's results from a call for several tokens are RowDots' own bits for that token alone,
// for row counts around the two- and four-stream loops and token counts around the groups of
// four and eight, and rows as long as a 7B model's (2080 and 4128 elements: an odd number of
// blocks, and a block past the steps of four).
TEST(Kernels, RowDotsForSeveralTokensGiveEachTokenItsOwnBits) {
  const auto isas = RowDotIsas();
  if (isas.empty()) GTEST_SKIP() << "this CPU has neither AVX2 nor AVX-512 VNNI";
  ForEachRowDotCase(isas, [&](GgmlType type) {
    for (int64_t k : {768, 2080, 4128, 4352}) {
      if (k % Traits(type).block_size != 0) continue;
      const int max_n = 11;
      for (int rows : {1, 3, 8, 13, 40}) {
        const Operands o = Make(type, rows, max_n, k, 53 + rows);
        std::vector<kernels::RowDotAct> ra(max_n);
        for (int t = 0; t < max_n; ++t)
          kernels::PrepareRowDot(type, o.act.data() + t * o.abytes, k, &ra[t]);
        for (int n : {2, 3, 4, 5, 8, 11}) {
          std::vector<float> y(n * rows, NAN);
          kernels::RowDotsTokens(type, o.w.data(), o.row_bytes, rows, ra.data(), n, k, y.data(),
                                 rows);
          for (int t = 0; t < n; ++t) {
            std::vector<float> alone(rows, NAN);
            kernels::RowDots(type, o.w.data(), o.row_bytes, rows, ra[t], k, alone.data(), 1);
            for (int r = 0; r < rows; ++r)
              ASSERT_EQ(std::memcmp(&y[t * rows + r], &alone[r], sizeof(float)), 0)
                  << "k " << k << ", " << n << " tokens, token " << t << " row " << r << ": "
                  << y[t * rows + r] << " alone " << alone[r];
          }
        }
      }
    }
  });
}

TEST(Kernels, QuantizeRowGivesQuantizeActivationsBytes) {
  REQUIRE_AVX512();
  const int64_t k = 4096;
  std::vector<float> x = RandomFloats(k, 21);
  // Edge cases per 256 elements: an all-zero super-block; a tie for the largest magnitude
  // with opposite signs (the first one's sign counts); values that land on .5 after
  // scaling (ties to even); a lone large value; and one block of 32 all zero.
  for (int j = 0; j < 256; ++j) x[j] = 0;
  x[300] = -3.0f;
  x[301] = 3.0f;
  for (int j = 512; j < 768; ++j) x[j] = (j % 7 - 3) * 0.5f;
  x[700] = 127.0f;  // so the others scale by exactly 1 and n + 0.5 stays a tie
  x[1000] = 1e4f;
  for (int j = 2048; j < 2080; ++j) x[j] = 0;
  for (GgmlType vt : {GgmlType::Q8_0, GgmlType::Q8_K}) {
    SCOPED_TRACE(TypeName(vt));
    const uint64_t bytes = ActivationBytes(vt, k);
    std::vector<uint8_t> want(bytes), got(bytes, 0xAB);
    QuantizeActivation(vt, x.data(), want.data(), k);
    kernels::QuantizeRow(vt, x.data(), got.data(), k);
    EXPECT_EQ(got, want);
  }
}

// The one-pass quantization for row dots gives the same quants, scales and Q4_0
// corrections as the scalar QuantizeActivation followed by PrepareRowDot.
TEST(Kernels, QuantizeForRowDotIsQuantizeThenPrepare) {
  REQUIRE_AVX512();
  // Block counts: whole groups of sixteen (as the kernel takes them), and groups plus four.
  for (int64_t k : {512, 2048, 2176, 5632}) {
    std::vector<float> x = RandomFloats(k, 31 + static_cast<uint32_t>(k));
    // A block of zeros, a tie for the largest magnitude, values whose scale is an f16
    // subnormal, a block that overflows the f16 scale, and halves that tie after scaling.
    for (int j = 32; j < 64; ++j) x[j] = 0;
    x[100] = -4.0f;
    x[101] = 4.0f;
    for (int j = 128; j < 160; ++j) x[j] = 1e-7f * (j - 140);
    x[200] = 1e7f;
    for (int j = 256; j < 288; ++j) x[j] = (j % 7 - 3) * 0.5f;
    x[270] = 127.0f;
    for (GgmlType type : {GgmlType::Q8_0, GgmlType::Q4_0}) {
      SCOPED_TRACE(std::string(TypeName(type)) + " k " + std::to_string(k));
      ASSERT_TRUE(kernels::QuantizesForRowDot(type, k));
      std::vector<uint8_t> act(ActivationBytes(GgmlType::Q8_0, k));
      QuantizeActivation(GgmlType::Q8_0, x.data(), act.data(), k);
      kernels::RowDotAct want, got;
      kernels::PrepareRowDot(type, act.data(), k, &want);
      kernels::QuantizeForRowDot(type, x.data(), k, &got);
      EXPECT_EQ(got.act, nullptr);
      ASSERT_EQ(got.q.size(), want.q.size());
      for (size_t i = 0; i < want.q.size(); ++i) ASSERT_EQ(got.q[i], want.q[i]) << "quant " << i;
      for (int64_t b = 0; b < k / 32; ++b) {
        // Bit for bit (an infinite scale included).
        ASSERT_EQ(FloatToBits(got.d[b]), FloatToBits(want.d[b])) << "scale of block " << b;
      }
      ASSERT_EQ(got.corr.size(), want.corr.size());
      for (size_t i = 0; i < want.corr.size(); ++i)
        ASSERT_EQ(got.corr[i], want.corr[i]) << "correction lane " << i;
    }
  }
  EXPECT_FALSE(kernels::QuantizesForRowDot(GgmlType::Q4_K, 2048));
  EXPECT_FALSE(kernels::QuantizesForRowDot(GgmlType::Q8_0, 2080));  // 65 blocks
}

TEST(Kernels, ReadAllIsTheXorOfEveryWordItReads) {
  std::vector<uint64_t> words(3000);
  std::mt19937_64 rng(5);
  for (uint64_t& w : words) w = rng();
  const auto* p = reinterpret_cast<const uint8_t*>(words.data()) + 8;  // not 64-byte aligned
  for (kernels::Isa isa : {kernels::Isa::kAvx512Vnni, kernels::Isa::kAvx2, kernels::Isa::kScalar}) {
    ScopedIsa scoped(isa);
    const char* name = kernels::IsaName(kernels::Active());
    for (int streams : {1, 3, 4, 8}) {
      const uint64_t n = 2999 * 8;
      const uint64_t part = n / streams / 128 * 128;  // the parts' whole 128-byte steps
      uint64_t want = 0;
      for (int s = 0; s < streams; ++s)
        for (uint64_t i = 0; i < part / 8; ++i) want ^= words[1 + s * part / 8 + i];
      EXPECT_EQ(kernels::ReadAll(p, n, streams), want) << streams << " streams, " << name;
    }
  }
}

// TileProduct of the decoded rows d and the panel p in both layouts of the output (rows
// apart by n, and tokens apart by the row count), each result held to the scalar reference;
// *out gets the first layout.
void CheckTileProduct(GgmlType type, const Operands& o, const kernels::DecodedRows& d,
                      const kernels::Panel& p, int rows, int n, std::vector<float>* out) {
  out->assign(static_cast<size_t>(rows) * n, NAN);
  std::vector<float> outt(out->size(), NAN);
  kernels::TileProduct(d, p, kernels::HasMin(type), out->data(), n, 1);
  kernels::TileProduct(d, p, kernels::HasMin(type), outt.data(), 1, rows);
  for (int r = 0; r < rows; ++r)
    for (int t = 0; t < n; ++t) {
      double mag;
      const double want = Reference(type, o, r, t, &mag);
      ASSERT_NEAR((*out)[r * n + t], want, 1e-5 * mag)
          << "n " << n << " rows " << rows << " row " << r << " token " << t;
      ASSERT_EQ(outt[t * rows + r], (*out)[r * n + t]);
    }
}

void CheckTiles(bool amx) {
  kernels::SetAmx(amx);
  for (GgmlType type : kTypes) {
    SCOPED_TRACE(TypeName(type));
    const int64_t k = 512;
    for (int n : {1, 5, 16, 17, 40}) {
      for (int rows : {1, 3, 4, 9, 16}) {
        const Operands o = Make(type, rows, n, k, 100 + n + rows);
        kernels::Panel p;
        kernels::BuildPanel(type, o.act.data(), o.abytes, n, k, &p);
        ASSERT_EQ(p.offset, !amx);
        kernels::DecodedRows d;
        kernels::Reserve(&d, rows, k, kernels::TileBlock(type));
        for (int r = 0; r < rows; ++r)
          kernels::DecodeRow(type, o.w.data() + r * o.row_bytes, &d, r);
        std::vector<float> out;
        ASSERT_NO_FATAL_FAILURE(CheckTileProduct(type, o, d, p, rows, n, &out));
      }
    }
  }
  kernels::SetAmx(true);
}

TEST(Kernels, VnniTilesMatchTheScalarReference) {
  REQUIRE_AVX512();
  CheckTiles(false);
}

// The AVX2 tiles: every tile type but Q8_0, against the scalar reference; and, where the CPU
// also has AVX-512 VNNI, the VNNI tiles' bits exactly (the same integer sums, and the same
// float steps lane for lane), with rows at the extremes (large values and zeros) too. The
// bounds the kernel sums by (QuantTraits::max_q) are held by
// UnpackedQuantsStayWithinTheirBoundWhateverTheBytes.
TEST(Kernels, Avx2TilesMatchTheScalarReferenceAndTheVnniBits) {
  if (!ScopedIsa(kernels::Isa::kAvx2).has(kernels::Isa::kAvx2))
    GTEST_SKIP() << "this CPU has no AVX2 (or GGSWARM_ISA=scalar)";
  const bool vnni = HaveAvx512();
  kernels::SetAmx(false);
  for (GgmlType type : kTypes) {
    SCOPED_TRACE(TypeName(type));
    ScopedIsa scoped(kernels::Isa::kAvx2);
    ASSERT_EQ(kernels::HasTiles(type), type != GgmlType::Q8_0);
    if (type == GgmlType::Q8_0) continue;
    const int64_t k = 512;
    for (int n : {1, 7, 8, 9, 16, 17, 40}) {
      for (int rows : {1, 3, 4, 5, 16}) {
        Operands o = Make(type, rows, n, k, 300 + n + rows);
        if (rows == 5) {  // row 4 at the extremes: large values, one sign per block half
          std::vector<float> x(k);
          for (int64_t j = 0; j < k; ++j) x[j] = (j / 16) % 2 ? -1e3f : (j % 3 == 0 ? 0 : 1e3f);
          ASSERT_TRUE(Quantize(type, x.data(), o.w.data() + 4 * o.row_bytes, k).ok());
        }
        kernels::Panel p;
        kernels::BuildPanel(type, o.act.data(), o.abytes, n, k, &p);
        kernels::DecodedRows d;
        kernels::Reserve(&d, rows, k, kernels::TileBlock(type));
        for (int r = 0; r < rows; ++r)
          kernels::DecodeRow(type, o.w.data() + r * o.row_bytes, &d, r);
        std::vector<float> out;
        ASSERT_NO_FATAL_FAILURE(CheckTileProduct(type, o, d, p, rows, n, &out));
        if (vnni) {
          ScopedIsa best(kernels::Isa::kAvx512Vnni);
          std::vector<float> vnni_out(out.size(), NAN);
          kernels::TileProduct(d, p, kernels::HasMin(type), vnni_out.data(), n, 1);
          ASSERT_EQ(vnni_out, out) << "n " << n << " rows " << rows;
        }
      }
    }
  }
  kernels::SetAmx(true);
}

// model::ExactBatch is what the chain verifier relies on (net::ExactRun): on every
// instruction set this CPU has, a batch of that many tokens gives each token the bits it
// gets alone, for every weight type; with short rows, and with rows long enough that the
// AVX-512 row dots take two rows side by side (kTwoStreamsAbove in rowdot_avx512.cpp), an
// odd row count leaving one over.
TEST(Kernels, AnExactBatchGivesEachTokenItsBitsAloneOnEveryInstructionSet) {
  const int rows = 41;
  for (const int64_t k : {512, 4608})
    for (kernels::Isa isa :
         {kernels::Isa::kAvx512Vnni, kernels::Isa::kAvx2, kernels::Isa::kScalar}) {
      ScopedIsa scoped(isa);
      if (!scoped.has(isa)) continue;
      for (GgmlType type : {GgmlType::Q8_0, GgmlType::Q4_0, GgmlType::Q4_1, GgmlType::Q5_0,
                            GgmlType::Q5_1, GgmlType::Q2_K, GgmlType::Q3_K, GgmlType::Q4_K,
                            GgmlType::Q5_K, GgmlType::Q6_K, GgmlType::F16}) {
        SCOPED_TRACE(std::string(TypeName(type)) + " " + kernels::IsaName(isa) + " k " +
                     std::to_string(k));
        const int n = model::ExactBatch(type);
        EXPECT_EQ(n, type == GgmlType::Q8_0 || type == GgmlType::Q4_0 || type == GgmlType::Q4_K ||
                             type == GgmlType::Q6_K
                         ? model::kRowDotMaxTokens
                         : model::kTileMinTokens - 1);
        const Operands o = Make(type, rows, 1, k, 61);
        gguf::TensorInfo info;
        const TensorView view = ViewOf(type, o, &info);
        const auto x = RandomFloats(static_cast<size_t>(n) * k, 67);
        ThreadPool pool(2);
        model::MatMulScratch scratch;
        std::vector<float> y(static_cast<size_t>(n) * rows, NAN), alone(rows, NAN);
        model::MatMul(view, x.data(), n, y.data(), pool, &scratch);
        for (int t = 0; t < n; ++t) {
          model::MatMul(view, x.data() + t * k, 1, alone.data(), pool, &scratch);
          if (std::memcmp(alone.data(), y.data() + t * rows, rows * sizeof(float)) != 0) {
            ADD_FAILURE() << "token " << t << " of " << n << ": " << alone[0] << " alone, "
                          << y[t * rows] << " in the batch";
            break;
          }
        }
      }
    }
}

// With AVX2 a prompt past the row dots' reach (model::kRowDotMaxTokensAvx2) is multiplied
// by the AVX2 tiles, bit for bit what they give, except Q8_0's, which stays on the row dots.
TEST(Kernels, Avx2PromptsPastTheRowDotsReachTakeTheTilesButQ8_0) {
  ScopedIsa scoped(kernels::Isa::kAvx2);
  if (!scoped.has(kernels::Isa::kAvx2)) GTEST_SKIP() << "this CPU has no AVX2";
  const int64_t k = 512;
  const int rows = 40, n = model::kRowDotMaxTokensAvx2 + 1;
  for (GgmlType type : {GgmlType::Q4_K, GgmlType::Q6_K, GgmlType::Q8_0}) {
    SCOPED_TRACE(TypeName(type));
    const Operands o = Make(type, rows, 1, k, 41);
    gguf::TensorInfo info;
    const TensorView view = ViewOf(type, o, &info);
    const auto x = RandomFloats(static_cast<size_t>(n) * k, 43);
    ThreadPool pool(2);
    model::MatMulScratch scratch;
    std::vector<float> y(static_cast<size_t>(n) * rows, NAN), want(y.size(), NAN);
    model::MatMul(view, x.data(), n, y.data(), pool, &scratch);
    std::vector<uint8_t> act(o.abytes * n);
    for (int t = 0; t < n; ++t)
      QuantizeActivation(VecDotType(type), x.data() + t * k, act.data() + t * o.abytes, k);
    if (type == GgmlType::Q8_0) {
      std::vector<kernels::RowDotAct> ra(n);
      for (int t = 0; t < n; ++t)
        kernels::PrepareRowDot(type, act.data() + t * o.abytes, k, &ra[t]);
      kernels::RowDotsTokens(type, o.w.data(), o.row_bytes, rows, ra.data(), n, k, want.data(),
                             rows);
    } else {
      kernels::Panel p;
      kernels::BuildPanel(type, act.data(), o.abytes, n, k, &p);
      kernels::DecodedRows d;
      for (int r0 = 0; r0 < rows; r0 += kernels::kTileRows) {
        const int count = std::min(kernels::kTileRows, rows - r0);
        kernels::Reserve(&d, count, k, kernels::TileBlock(type));
        for (int r = 0; r < count; ++r)
          kernels::DecodeRow(type, o.w.data() + (r0 + r) * o.row_bytes, &d, r);
        kernels::TileProduct(d, p, kernels::HasMin(type), want.data() + r0, 1, rows);
      }
    }
    for (int t = 0; t < n; ++t)
      for (int r = 0; r < rows; ++r) {
        double mag;
        ASSERT_EQ(y[t * rows + r], want[t * rows + r]) << "token " << t << " row " << r;
        Operands one = o;
        one.act.assign(act.begin() + t * o.abytes, act.begin() + (t + 1) * o.abytes);
        const double ref = Reference(type, one, r, 0, &mag);
        ASSERT_NEAR(y[t * rows + r], ref, 1e-5 * mag);
      }
  }
}

TEST(Kernels, AmxTilesMatchTheScalarReference) {
  REQUIRE_AVX512();
  kernels::SetAmx(true);
  if (!kernels::AmxActive()) GTEST_SKIP() << "this CPU has no AMX-INT8 (or GGSWARM_AMX=0)";
  CheckTiles(true);
}

// The bf16 tiles: the decoded weights are exactly Dequantize's values rounded to bf16, in
// the layout kernels.h gives, and each result is the dot of the bf16 operands up to f32
// summation order. Shapes: one and several tiles of rows and tokens, partial ones, and k
// over more than one pass of the kernel.
TEST(Kernels, AmxBf16TilesMatchTheScalarReference) {
  REQUIRE_AVX512();
  kernels::SetAmx(true);
  if (!kernels::AmxBf16Active()) GTEST_SKIP() << "this CPU has no AMX-BF16 (or GGSWARM_AMX=0)";
  for (GgmlType type : kTypes) {
    SCOPED_TRACE(TypeName(type));
    for (int64_t k : {512, 2560}) {
      for (int n : {1, 16, 17, 40, 64}) {
        for (int rows : {1, 9, 16, 33, 64}) {
          SCOPED_TRACE("k " + std::to_string(k) + " n " + std::to_string(n) + " rows " +
                       std::to_string(rows));
          const Operands o = Make(type, rows, 1, k, 300 + n + rows);
          kernels::Bf16Rows d;
          kernels::ReserveBf16(&d, rows, k);
          ASSERT_EQ(d.rows, (rows + 15) / 16 * 16);
          for (int t = 0; t * 16 < rows; ++t) {
            const uint8_t* ptrs[16];
            const int count = std::min(16, rows - t * 16);
            for (int i = 0; i < count; ++i) ptrs[i] = o.w.data() + (t * 16 + i) * o.row_bytes;
            kernels::DecodeTileBf16(type, ptrs, count, &d, t);
          }
          // The layout: element j of row r.
          auto at = [&](int r, int64_t j) {
            const int64_t kb = j / 32, p = (j % 32) / 2, e = j % 2;
            return d.b[((kb * d.rows / 16 + r / 16) * 16 + p) * 32 + 2 * (r % 16) + e];
          };
          std::vector<std::vector<float>> wf(d.rows, std::vector<float>(k, 0.0f));
          for (int r = 0; r < d.rows; ++r) {
            if (r < rows) {
              ASSERT_TRUE(Dequantize(type, o.w.data() + r * o.row_bytes, wf[r].data(), k).ok());
            }
            for (int64_t j = 0; j < k; ++j)
              ASSERT_EQ(Bf16ToFloat(at(r, j)), Bf16ToFloat(FloatToBf16(wf[r][j])))  // -0 == 0
                  << "row " << r << " element " << j;
          }
          const auto x = RandomFloats(static_cast<size_t>(n) * k, 400 + n);
          kernels::Bf16Tokens tok;
          kernels::BuildBf16Tokens(x.data(), n, k, &tok);
          const int64_t stride = rows + 3;  // a wider output: columns past `rows` untouched
          std::vector<float> out(static_cast<size_t>(n) * stride, NAN);
          kernels::TileProductBf16(d, tok, out.data(), stride);
          for (int t = 0; t < n; ++t) {
            for (int r = 0; r < rows; ++r) {
              double want = 0, mag = 0;
              for (int64_t j = 0; j < k; ++j) {
                const double p =
                    double(Bf16ToFloat(at(r, j))) * Bf16ToFloat(FloatToBf16(x[t * k + j]));
                want += p;
                mag += std::fabs(p);
              }
              ASSERT_NEAR(out[t * stride + r], want, 1e-5 * mag) << "token " << t << " row " << r;
            }
            for (int64_t r = rows; r < stride; ++r) ASSERT_TRUE(std::isnan(out[t * stride + r]));
          }
        }
      }
    }
  }
}

// ggswarm's GELU-gated product (Gemma's feed-forward, ggml's table) vectorized against its
// scalar loop, bit for bit: g across both cut-offs (±10, hit exactly and missed by an ulp),
// values that round to the same f16 from both sides, infinities and NaN; the tail past the
// last 16.
TEST(Kernels, GeluTableMulVectorIsTheScalarLoop) {
  REQUIRE_AVX512();
  std::vector<float> table(1 << 16);
  for (size_t h = 0; h < table.size(); ++h)  // any table: here a hash of the index
    table[h] = static_cast<float>((h * 2654435761u) % 1000) / 97.0f + 1.0f;
  std::vector<float> g, u;
  for (float x = -12.0f; x <= 12.0f; x += 0.0137f) g.push_back(x);
  for (float x : {-10.0f, 10.0f, 9.99999f, -9.99999f, 10.00001f, -10.00001f, 0.0f, -0.0f, 1e-8f,
                  65504.0f, 70000.0f, INFINITY, -INFINITY, NAN, 1.0009765625f, 1.00048828125f})
    g.push_back(x);
  for (size_t i = 0; i < g.size(); ++i) u.push_back(0.5f + static_cast<float>(i % 7) * 0.25f);
  std::vector<float> fast(g.size()), scalar(g.size());
  kernels::GeluTableMul(table.data(), g.data(), u.data(), fast.data(), g.size());
  {
    ScopedIsa s(kernels::Isa::kScalar);
    kernels::GeluTableMul(table.data(), g.data(), u.data(), scalar.data(), g.size());
  }
  for (size_t i = 0; i < g.size(); ++i) {
    if (std::isnan(scalar[i])) {
      EXPECT_TRUE(std::isnan(fast[i])) << "g = " << g[i];
      continue;
    }
    ASSERT_EQ(fast[i], scalar[i]) << "g = " << g[i];
  }
  EXPECT_EQ(scalar[g.size() - 16], 0.0f);  // −10 and below: zero (the table is never 0)
}

// silu(g) * u against the scalar formula in double, over the range of activations and past
// where e^-g overflows or underflows (there, as in float, the result is a signed zero).
TEST(Kernels, SiluMulMatchesTheScalarFormula) {
  REQUIRE_AVX512();
  std::vector<float> g, u;
  for (float x = -120.0f; x <= 120.0f; x += 0.0137f) {
    g.push_back(x);
    u.push_back(0.5f + std::fabs(std::sin(x)));
  }
  for (float x : {0.0f, -0.0f, 1e-30f, -1e-30f, 88.0f, -88.0f, 89.0f, -89.0f, 104.0f, -104.0f}) {
    g.push_back(x);
    u.push_back(1.0f);
  }
  std::vector<float> out(g.size());
  kernels::SiluMul(g.data(), u.data(), out.data(), static_cast<int64_t>(g.size()));
  for (size_t i = 0; i < g.size(); ++i) {
    const double want = double(g[i]) / (1.0 + std::exp(-double(g[i]))) * u[i];
    ASSERT_NEAR(out[i], want, 4e-7 * std::fabs(want) + 1e-36) << "g = " << g[i];
  }
}

TEST(Kernels, AttentionMatchesTheScalarReference) {
  const auto isas = RowDotIsas();  // attention has the same instruction sets
  if (isas.empty()) GTEST_SKIP() << "this CPU has neither AVX2 nor AVX-512 VNNI";
  for (kernels::Isa isa : isas)
    for (int hd : {64, 128}) {
      ScopedIsa scoped(isa);
      SCOPED_TRACE(kernels::IsaName(isa));
      ASSERT_TRUE(kernels::HasAttention(hd));
      for (int heads : {1, 2, 4}) {
        for (int len : {1, 2, 7, 300}) {
          for (float cap : {0.0f, 0.5f}) {  // Gemma 2's soft-capping, strong here
            const int stride = 3 * hd;      // one key/value head of three in the cache
            const auto qf = RandomFloats(static_cast<size_t>(heads) * hd, 5 + len);
            const auto kf = RandomFloats(static_cast<size_t>(len) * stride, 6 + len);
            const auto vf = RandomFloats(static_cast<size_t>(len) * stride, 7 + len);
            std::vector<uint16_t> kh(kf.size()), vh(vf.size());
            for (size_t i = 0; i < kf.size(); ++i) {
              kh[i] = FloatToHalf(kf[i]);
              vh[i] = FloatToHalf(vf[i]);
            }
            std::vector<float> want(heads * hd), got(heads * hd);
            const float scale = 1.0f / std::sqrt(static_cast<float>(hd));
            kernels::AttendF16Reference(qf.data(), heads, kh.data() + hd, vh.data() + hd, stride,
                                        len, hd, scale, want.data(), cap);
            kernels::AttendF16(qf.data(), heads, kh.data() + hd, vh.data() + hd, stride, len, hd,
                               scale, got.data(), cap);
            // The dot products are summed in another order; the f16 accumulator rounds alike.
            for (int i = 0; i < heads * hd; ++i)
              ASSERT_NEAR(got[i], want[i], 2e-3 * (1 + std::fabs(want[i])))
                  << "head_dim " << hd << " heads " << heads << " len " << len << " i " << i
                  << " cap " << cap;
          }
        }
      }
    }
}

// The long-batch attention (f32 throughout) against its double-precision reference, and
// both against the f16-accumulator reference (llama.cpp's way) within that one's rounding.
TEST(Kernels, F32AttentionMatchesTheScalarReference) {
  REQUIRE_AVX512();
  ASSERT_TRUE(kernels::HasF32Attention(64));
  for (int hd : {64, 128}) {
    for (int heads : {1, 3, 4, 8, 9}) {
      for (int len : {1, 2, 15, 16, 17, 300}) {
        for (float cap : {0.0f, 0.5f}) {  // Gemma 2's soft-capping, strong here
          SCOPED_TRACE("head_dim " + std::to_string(hd) + " heads " + std::to_string(heads) +
                       " len " + std::to_string(len) + " cap " + std::to_string(cap));
          const int64_t kts = (len + 15) / 16 * 16 + 16;  // wider than needed
          const auto qf = RandomFloats(static_cast<size_t>(heads) * hd, 15 + len);
          auto kf = RandomFloats(static_cast<size_t>(len) * hd, 16 + len);
          auto vf = RandomFloats(static_cast<size_t>(len) * hd, 17 + len);
          std::vector<uint16_t> kh(kf.size()), vh(vf.size());
          for (size_t i = 0; i < kf.size(); ++i) {  // values an f16 cache can hold
            kh[i] = FloatToHalf(kf[i]);
            vh[i] = FloatToHalf(vf[i]);
            kf[i] = HalfToFloat(kh[i]);
            vf[i] = HalfToFloat(vh[i]);
          }
          std::vector<float> kt(hd * kts, NAN);  // past len: never read into the result
          for (int j = 0; j < len; ++j)
            for (int d = 0; d < hd; ++d) kt[d * kts + j] = kf[j * hd + d];
          std::vector<float> want(heads * hd), got(heads * hd), f16(heads * hd);
          const float scale = 1.0f / std::sqrt(static_cast<float>(hd));
          kernels::AttendF32Reference(qf.data(), heads, kt.data(), kts, vf.data(), len, hd, scale,
                                      want.data(), cap);
          kernels::AttendF32(qf.data(), heads, kt.data(), kts, vf.data(), len, hd, scale,
                             got.data(), cap);
          kernels::AttendF16Reference(qf.data(), heads, kh.data(), vh.data(), hd, len, hd, scale,
                                      f16.data(), cap);
          for (int i = 0; i < heads * hd; ++i) {
            ASSERT_NEAR(got[i], want[i], 1e-5 * (1 + std::fabs(want[i]))) << i;
            ASSERT_NEAR(f16[i], want[i], 2e-3 * (1 + std::fabs(want[i]))) << i;
          }
        }
      }
    }
  }
}

// Few tokens: the matrices' rows go out in the pool's chunks, and chunks longer than about
// 768 KB are cut into several RowDots calls (model::MatMuls). Whatever the cut, every
// output must be its own row's dot, bit for bit: here two matrices of 1,500 and 700 rows
// (1.7-3.3 MB and 0.8-1.5 MB, by type), the first in shards of 701 and 799 rows, on one
// thread (one chunk over both) and two, for one token and three; with AVX2 also for five
// (the prompt path there: calls cut to 768 KB / 5).
TEST(Kernels, MatMulsCutIntoCallsGiveEachRowItsOwnDot) {
  const auto isas = RowDotIsas();
  if (isas.empty()) GTEST_SKIP() << "this CPU has neither AVX2 nor AVX-512 VNNI";
  const int64_t k = 2048;
  ForEachRowDotCase(isas, [&](GgmlType type) {
    const Operands a = Make(type, 1500, 1, k, 21), b = Make(type, 700, 1, k, 23);
    gguf::TensorInfo ia{"a", {uint64_t(k), 1500}, type, 0, a.w.size(), uint64_t(k) * 1500};
    gguf::TensorInfo ib{"b", {uint64_t(k), 700}, type, 0, b.w.size(), uint64_t(k) * 700};
    TensorView va{
        &ia, {{a.w.data(), 0, 701}, {a.w.data() + 701 * a.row_bytes, 701, 1500}}, a.row_bytes};
    TensorView vb{&ib, {{b.w.data(), 0, 700}}, b.row_bytes};
    const auto x = RandomFloats((model::kTileMinTokens + 1) * k, 25);
    for (int threads : {1, 2}) {
      ThreadPool pool(threads);
      model::MatMulScratch scratch;
      // Without tiles (AVX2) the row dots take every token, in shorter calls from
      // model::kTileMinTokens tokens on.
      std::vector<int> ns = {1, 3};
      if (kernels::Active() != kernels::Isa::kAvx512Vnni) ns.push_back(model::kTileMinTokens + 1);
      for (int n : ns) {
        SCOPED_TRACE(::testing::Message() << threads << " thread(s), " << n << " token(s)");
        std::vector<float> ya(n * 1500, -1.0f), yb(n * 700, -1.0f);
        model::MatMuls({{&va, ya.data()}, {&vb, yb.data()}}, x.data(), n, pool, &scratch);
        // Each row's own dots with the n tokens, one row per call.
        std::vector<std::vector<uint8_t>> act(n, std::vector<uint8_t>(a.abytes));
        std::vector<kernels::RowDotAct> ra(n);
        for (int t = 0; t < n; ++t) {
          QuantizeActivation(VecDotType(type), x.data() + t * k, act[t].data(), k);
          kernels::PrepareRowDot(type, act[t].data(), k, &ra[t]);
        }
        for (const auto& [o, y, rows] : {std::tuple{&a, &ya, 1500}, std::tuple{&b, &yb, 700}})
          for (int r = 0; r < rows; ++r) {
            std::vector<float> want(n);
            kernels::RowDotsTokens(type, o->w.data() + r * o->row_bytes, o->row_bytes, 1, ra.data(),
                                   n, k, want.data(), 1);
            for (int t = 0; t < n; ++t)
              ASSERT_EQ((*y)[t * rows + r], want[t]) << "token " << t << " row " << r;
          }
        // Parts with their own inputs (one token's experts): each as its own MatMul.
        const auto x2 = RandomFloats(static_cast<size_t>(n) * k, 27);
        std::vector<float> ya2(n * 1500), yb2(n * 700), want_a(n * 1500), want_b(n * 700);
        const std::vector<model::MatMulPart> parts = {{&va, ya2.data(), x2.data()},
                                                      {&vb, yb2.data()}};
        model::MatMuls(std::span<const model::MatMulPart>(parts), x.data(), n, pool, &scratch);
        model::MatMul(va, x2.data(), n, want_a.data(), pool, &scratch);
        model::MatMul(vb, x.data(), n, want_b.data(), pool, &scratch);
        ASSERT_EQ(ya2, want_a);
        ASSERT_EQ(yb2, want_b);
        ASSERT_NE(ya2, ya);  // (the other input made a difference)
      }
    }
  });
}

TEST(ThreadPool, EveryIndexOnceInGrainAlignedChunks) {
  for (int threads : {1, 2, 3}) {
    ThreadPool pool(threads);
    for (int64_t n : {1, 7, 64, 1000, 4099}) {
      for (int64_t grain : {1, 4, 16}) {
        std::vector<std::atomic<int>> hits(n);
        std::atomic<bool> bad_edge{false}, bad_tid{false};
        pool.Run(
            n,
            [&](int64_t b, int64_t e, int tid) {
              if (b % grain != 0 || (e != n && e % grain != 0)) bad_edge = true;
              if (tid < 0 || tid >= pool.size()) bad_tid = true;
              for (int64_t i = b; i < e; ++i) hits[i]++;
            },
            grain);
        for (int64_t i = 0; i < n; ++i) ASSERT_EQ(hits[i].load(), 1) << "index " << i;
        EXPECT_FALSE(bad_edge);
        EXPECT_FALSE(bad_tid);
      }
    }
  }
}

// An announced job: each thread starts with its own chunk [i * first, (i + 1) * first)
// (or has it taken by another thread when it comes too late), every index still runs once,
// and Planned() names only the job announced last.
TEST(ThreadPool, AnnouncedJobsGiveEachThreadItsOwnFirstChunk) {
  std::vector<uint8_t> memory(1 << 20, 1);
  for (int threads : {1, 2, 3}) {
    ThreadPool pool(threads);
    const int a = 0, b = 0;  // two keys (their addresses)
    for (int64_t first : {16, 64, 1024}) {
      const int64_t n = 4099;
      std::vector<ThreadPool::ReadAhead> ahead(pool.size());
      for (int t = 0; t < pool.size(); ++t) {
        ahead[t].streams = 2;
        ahead[t].p[0] = memory.data() + t * 4096;
        ahead[t].p[1] = memory.data() + (1 << 19) + t * 4096;
        ahead[t].bytes = 4096;
      }
      pool.Announce(&a, first, ahead);
      EXPECT_EQ(pool.Planned(&a), first);
      EXPECT_EQ(pool.Planned(&b), 0);
      std::vector<std::atomic<int>> hits(n);
      std::vector<std::pair<int64_t, int64_t>> opening(pool.size(), {-1, -1});
      std::vector<std::atomic<int>> ran_by(pool.size());  // who ran planned chunk t, whole
      for (auto& r : ran_by) r = -1;
      pool.Run(
          n,
          [&](int64_t begin, int64_t end, int tid) {
            if (opening[tid].first < 0) opening[tid] = {begin, end};
            if (begin % first == 0 && begin / first < pool.size() && end == begin + first)
              ran_by[begin / first] = tid;
            for (int64_t i = begin; i < end; ++i) hits[i]++;
          },
          16, pool.Planned(&a));
      for (int64_t i = 0; i < n; ++i) ASSERT_EQ(hits[i].load(), 1) << "index " << i;
      if (threads > 1) {
        // Every planned chunk runs whole, and a thread that comes in time starts with its
        // own. (One that does not, descheduled on a busy machine, finds it taken by another
        // thread, which then runs it whole.)
        for (int t = 0; t < pool.size(); ++t) {
          ASSERT_GE(ran_by[t].load(), 0) << "planned chunk " << t << " did not run whole";
          if (ran_by[t].load() == t) {
            EXPECT_EQ(opening[t], std::make_pair(t * first, (t + 1) * first)) << "thread " << t;
          }
        }
      }
      pool.Announce(&b, first, ahead);
      EXPECT_EQ(pool.Planned(&a), 0);
      pool.Forget();
      EXPECT_EQ(pool.Planned(&b), 0);
    }
  }
}

// Threads read announced memory while they wait; once Forget returns none touches it, so
// it can go away (AddressSanitizer, in the sanitized build, catches a read after the free).
TEST(ThreadPool, ForgetStopsTheReadingAheadBeforeTheMemoryGoes) {
  ThreadPool pool(2);
  const int key = 0;
  for (int round = 0; round < 200; ++round) {
    auto memory = std::make_unique<uint8_t[]>(256 << 10);
    std::vector<ThreadPool::ReadAhead> ahead(pool.size());
    for (int t = 0; t < pool.size(); ++t) {
      ahead[t].streams = 4;
      for (int s = 0; s < 4; ++s) ahead[t].p[s] = memory.get() + s * (64 << 10);
      ahead[t].bytes = 64 << 10;
    }
    pool.Announce(&key, 16, ahead);
    std::atomic<int64_t> sum{0};
    pool.Run(
        64, [&](int64_t b, int64_t e, int) { sum += e - b; }, 16);  // the workers wake
    EXPECT_EQ(sum.load(), 64);
    if (round % 2) std::this_thread::sleep_for(std::chrono::microseconds(20));
    pool.Forget();
    memory.reset();
  }
}

}  // namespace
}  // namespace ggswarm
