// Dequantization against hand-built blocks (values worked out from the format) and against an
// element-by-element reading of each layout written independently here; quantization round
// trips within bounds that follow from each format's step size.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>

#include "base/fp16.h"
#include "quant/blocks.h"
#include "quant/dequantize.h"
#include "quant/quantize.h"

namespace ggswarm {
namespace {

using namespace blocks;

std::vector<float> Deq(GgmlType t, const void* block, size_t n) {
  std::vector<float> y(n);
  Status st = Dequantize(t, block, y.data(), n);
  EXPECT_TRUE(st.ok()) << st.ToString();
  return y;
}

TEST(Fp16, EveryHalfRoundTrips) {
  for (uint32_t h = 0; h < 65536; ++h) {
    const float f = HalfToFloat(static_cast<uint16_t>(h));
    if (std::isnan(f)) continue;
    ASSERT_EQ(FloatToHalf(f), h) << std::hex << h;
  }
}

TEST(Fp16, KnownValuesAndRounding) {
  EXPECT_EQ(HalfToFloat(0x3c00), 1.0f);
  EXPECT_EQ(HalfToFloat(0x7bff), 65504.0f);
  EXPECT_EQ(HalfToFloat(0x0001), std::ldexp(1.0f, -24));  // smallest subnormal
  EXPECT_EQ(HalfToFloat(0xc000), -2.0f);
  EXPECT_EQ(FloatToHalf(1.0f + std::ldexp(1.0f, -11)), 0x3c00);      // tie → even
  EXPECT_EQ(FloatToHalf(1.0f + 3 * std::ldexp(1.0f, -11)), 0x3c02);  // tie → even (up)
  EXPECT_EQ(FloatToHalf(65520.0f), 0x7c00);                          // overflow → inf
  EXPECT_EQ(FloatToHalf(std::ldexp(1.0f, -25)), 0x0000);             // tie → even (zero)
  EXPECT_EQ(FloatToHalf(std::ldexp(3.0f, -25)), 0x0002);
}

TEST(Bf16, KnownValuesAndRounding) {
  EXPECT_EQ(Bf16ToFloat(0x3f80), 1.0f);
  EXPECT_EQ(FloatToBf16(1.0f), 0x3f80);
  EXPECT_EQ(FloatToBf16(BitsToFloat(0x3f808000)), 0x3f80);  // tie → even
  EXPECT_EQ(FloatToBf16(BitsToFloat(0x3f818000)), 0x3f82);  // tie → even (up)
  EXPECT_TRUE(std::isnan(Bf16ToFloat(FloatToBf16(NAN))));
}

TEST(HandBuilt, Q4_0) {
  Q4_0 b{};
  b.d = 0x3800;  // 0.5
  b.qs[0] = 0x1F;
  auto y = Deq(GgmlType::Q4_0, &b, 32);
  EXPECT_EQ(y[0], 3.5f);    // (15 - 8) * 0.5
  EXPECT_EQ(y[16], -3.5f);  // (1 - 8) * 0.5
  EXPECT_EQ(y[1], -4.0f);   // (0 - 8) * 0.5
}

TEST(HandBuilt, Q4_1) {
  Q4_1 b{};
  b.d = 0x3400;  // 0.25
  b.m = 0xbc00;  // -1
  b.qs[0] = 0x30;
  auto y = Deq(GgmlType::Q4_1, &b, 32);
  EXPECT_EQ(y[0], -1.0f);    // 0 * 0.25 - 1
  EXPECT_EQ(y[16], -0.25f);  // 3 * 0.25 - 1
}

TEST(HandBuilt, Q5_0) {
  Q5_0 b{};
  b.d = 0x3c00;
  const uint32_t qh = (1u << 0) | (1u << 16);
  std::memcpy(b.qh, &qh, 4);
  b.qs[0] = 0x2F;
  auto y = Deq(GgmlType::Q5_0, &b, 32);
  EXPECT_EQ(y[0], 15.0f);   // (15 | 16) - 16
  EXPECT_EQ(y[16], 2.0f);   // (2 | 16) - 16
  EXPECT_EQ(y[1], -16.0f);  // 0 - 16
}

TEST(HandBuilt, Q5_1) {
  Q5_1 b{};
  b.d = 0x3800;  // 0.5
  b.m = 0x3c00;  // 1
  const uint32_t qh = 1u << 1;
  std::memcpy(b.qh, &qh, 4);
  b.qs[1] = 0x01;
  auto y = Deq(GgmlType::Q5_1, &b, 32);
  EXPECT_EQ(y[1], 9.5f);  // (1 | 16) * 0.5 + 1
  EXPECT_EQ(y[0], 1.0f);
}

TEST(HandBuilt, Q8_0) {
  Q8_0 b{};
  b.d = 0x4000;  // 2
  b.qs[5] = -3;
  b.qs[31] = 127;
  auto y = Deq(GgmlType::Q8_0, &b, 32);
  EXPECT_EQ(y[5], -6.0f);
  EXPECT_EQ(y[31], 254.0f);
}

TEST(HandBuilt, Q2_K) {
  Q2_K b{};
  b.d = 0x3c00;        // 1
  b.dmin = 0x3800;     // 0.5
  b.scales[0] = 0x21;  // scale 1, min 2 → elements 0..15
  b.scales[2] = 0x03;  // scale 3, min 0 → elements 32..47 (second 2-bit plane)
  b.qs[0] = 0x07;      // element 0: 3, element 32: 1
  auto y = Deq(GgmlType::Q2_K, &b, 256);
  EXPECT_EQ(y[0], 2.0f);   // 1*3 - 0.5*2
  EXPECT_EQ(y[1], -1.0f);  // 1*0 - 0.5*2
  EXPECT_EQ(y[32], 3.0f);  // 3*1 - 0
}

TEST(HandBuilt, Q3_K) {
  Q3_K b{};
  b.d = 0x3c00;
  b.scales[0] = 0x01;  // low 4 bits of scale 0
  b.scales[8] = 0x02;  // high 2 bits of scale 0: (1 | 2 << 4) - 32 = 1
  b.qs[0] = 0x03;
  b.qs[1] = 0x01;
  b.hmask[0] = 0x01;  // element 0 has its high bit: no -4
  auto y = Deq(GgmlType::Q3_K, &b, 256);
  EXPECT_EQ(y[0], 3.0f);     // 1 * 3
  EXPECT_EQ(y[1], -3.0f);    // 1 * (1 - 4)
  EXPECT_EQ(y[16], 128.0f);  // scale (0 - 32), value (0 - 4)
}

TEST(HandBuilt, Q4_K) {
  Q4_K b{};
  b.d = 0x3c00;        // 1
  b.dmin = 0x3800;     // 0.5
  b.scales[0] = 0x42;  // scale 0 = 2; top bits (1) feed scale 4
  b.scales[4] = 0x04;  // min 0 = 4
  b.scales[1] = 0x03;  // scale 1 = 3
  b.scales[8] = 0x31;  // scale 4 = 1 | 1 << 4 = 17, min 4 = 3
  b.qs[0] = 0x75;
  b.qs[64] = 0x02;
  auto y = Deq(GgmlType::Q4_K, &b, 256);
  EXPECT_EQ(y[0], 8.0f);     // 2*5 - 0.5*4
  EXPECT_EQ(y[32], 21.0f);   // 3*7 - 0
  EXPECT_EQ(y[128], 32.5f);  // 17*2 - 0.5*3
}

TEST(HandBuilt, Q5_K) {
  Q5_K b{};
  b.d = 0x3c00;
  b.dmin = 0x3800;
  b.scales[0] = 2;
  b.scales[4] = 4;
  b.qs[0] = 0x05;
  b.qh[0] = 0x01;  // fifth bit of element 0
  auto y = Deq(GgmlType::Q5_K, &b, 256);
  EXPECT_EQ(y[0], 40.0f);  // 2*(5 + 16) - 0.5*4
}

TEST(HandBuilt, Q6_K) {
  Q6_K b{};
  b.d = 0x3800;  // 0.5
  b.scales[0] = 2;
  b.scales[2] = -1;
  b.ql[0] = 0x0F;
  b.qh[0] = 0x03;
  auto y = Deq(GgmlType::Q6_K, &b, 256);
  EXPECT_EQ(y[0], 31.0f);   // 0.5 * 2 * ((15 | 3 << 4) - 32)
  EXPECT_EQ(y[32], 16.0f);  // 0.5 * -1 * (0 - 32)
}

TEST(HandBuilt, Q8_KAndFloats) {
  Q8_K b{};
  b.d = 0.25f;
  b.qs[3] = 100;
  EXPECT_EQ(Deq(GgmlType::Q8_K, &b, 256)[3], 25.0f);
  const uint16_t h[2] = {0x3c00, 0xc000};
  EXPECT_EQ(Deq(GgmlType::F16, h, 2), (std::vector<float>{1.0f, -2.0f}));
  const uint16_t bf[2] = {0x3f80, 0x4040};
  EXPECT_EQ(Deq(GgmlType::BF16, bf, 2), (std::vector<float>{1.0f, 3.0f}));
}

// Independent, element-at-a-time readings of each layout: where element e's bits live.
float RefElement(GgmlType t, const uint8_t* blk, int e) {
  auto h = [&](int off) {
    uint16_t v;
    std::memcpy(&v, blk + off, 2);
    return HalfToFloat(v);
  };
  auto bit = [&](const uint8_t* bytes, int i) { return (bytes[i / 8] >> (i % 8)) & 1; };
  auto nib = [&](const uint8_t* qs, int e32) {  // legacy: e and e+16 share byte e%16
    return e32 < 16 ? (qs[e32] & 15) : (qs[e32 - 16] >> 4);
  };
  auto k4_scale = [&](const uint8_t* s, int j, bool min) {
    const int lo = j < 4 ? (s[j + (min ? 4 : 0)] & 63) : (min ? (s[j + 4] >> 4) : (s[j + 4] & 15));
    const int hi = j < 4 ? 0 : (s[j - (min ? 0 : 4)] >> 6);
    return lo | (hi << 4);
  };
  switch (t) {
    case GgmlType::Q4_0:
      return static_cast<float>(nib(blk + 2, e) - 8) * h(0);
    case GgmlType::Q4_1:
      return static_cast<float>(nib(blk + 4, e)) * h(0) + h(2);
    case GgmlType::Q5_0:
      return static_cast<float>((nib(blk + 6, e) | bit(blk + 2, e) << 4) - 16) * h(0);
    case GgmlType::Q5_1:
      return static_cast<float>(nib(blk + 8, e) | bit(blk + 4, e) << 4) * h(0) + h(2);
    case GgmlType::Q8_0:
      return static_cast<float>(static_cast<int8_t>(blk[2 + e])) * h(0);
    case GgmlType::Q2_K: {
      const uint8_t sc = blk[e / 16];
      const int q = (blk[16 + 32 * (e / 128) + e % 32] >> (2 * ((e % 128) / 32))) & 3;
      return h(80) * static_cast<float>(sc & 15) * static_cast<float>(q) -
             h(82) * static_cast<float>(sc >> 4);
    }
    case GgmlType::Q3_K: {
      const int j = e / 16;
      const uint8_t* s = blk + 96;
      const int six =
          ((j < 8 ? s[j] : s[j - 8] >> 4) & 15) | (((s[8 + j % 4] >> (2 * (j / 4))) & 3) << 4);
      const int low = (blk[32 + 32 * (e / 128) + e % 32] >> (2 * ((e % 128) / 32))) & 3;
      const int high = bit(blk, (e % 32) * 8 + 4 * (e / 128) + (e % 128) / 32);
      return h(108) * static_cast<float>(six - 32) * static_cast<float>(low - (high ? 0 : 4));
    }
    case GgmlType::Q4_K:
    case GgmlType::Q5_K: {
      const int j = e / 32;
      const int qs_off = t == GgmlType::Q4_K ? 16 : 48;
      int q = (blk[qs_off + 32 * (e / 64) + e % 32] >> (4 * (j % 2))) & 15;
      if (t == GgmlType::Q5_K) q += bit(blk + 16, (e % 32) * 8 + j) << 4;
      return h(0) * static_cast<float>(k4_scale(blk + 4, j, false)) * static_cast<float>(q) -
             h(2) * static_cast<float>(k4_scale(blk + 4, j, true));
    }
    case GgmlType::Q6_K: {
      const int n = e / 128, k = (e % 128) / 32, l = e % 32;
      const int lo = (blk[64 * n + 32 * (k % 2) + l] >> (4 * (k / 2))) & 15;
      const int hi = (blk[128 + 32 * n + l] >> (2 * k)) & 3;
      const int8_t sc = static_cast<int8_t>(blk[192 + e / 16]);
      return h(208) * static_cast<float>(sc) * static_cast<float>((lo | hi << 4) - 32);
    }
    case GgmlType::Q8_K: {
      float d;
      std::memcpy(&d, blk, 4);
      return d * static_cast<float>(static_cast<int8_t>(blk[4 + e]));
    }
    default:
      return NAN;
  }
}

const GgmlType kBlockTypes[] = {GgmlType::Q4_0, GgmlType::Q4_1, GgmlType::Q5_0, GgmlType::Q5_1,
                                GgmlType::Q8_0, GgmlType::Q2_K, GgmlType::Q3_K, GgmlType::Q4_K,
                                GgmlType::Q5_K, GgmlType::Q6_K, GgmlType::Q8_K};

// Random bytes with finite scales: the f16 fields get values in [-2, 2].
std::vector<uint8_t> RandomBlocks(GgmlType t, int n_blocks, std::mt19937& rng) {
  const TypeTraits& tr = Traits(t);
  std::vector<uint8_t> b(tr.type_size * n_blocks);
  for (auto& x : b) x = static_cast<uint8_t>(rng());
  std::uniform_real_distribution<float> u(-2, 2);
  for (int i = 0; i < n_blocks; ++i) {
    uint8_t* blk = b.data() + i * tr.type_size;
    auto set_half = [&](int off) {
      const uint16_t v = FloatToHalf(u(rng));
      std::memcpy(blk + off, &v, 2);
    };
    switch (t) {
      case GgmlType::Q4_0:
      case GgmlType::Q5_0:
      case GgmlType::Q8_0:
        set_half(0);
        break;
      case GgmlType::Q4_1:
      case GgmlType::Q5_1:
      case GgmlType::Q4_K:
      case GgmlType::Q5_K:
        set_half(0), set_half(2);
        break;
      case GgmlType::Q2_K:
        set_half(80), set_half(82);
        break;
      case GgmlType::Q3_K:
        set_half(108);
        break;
      case GgmlType::Q6_K:
        set_half(208);
        break;
      case GgmlType::Q8_K: {
        const float d = u(rng);
        std::memcpy(blk, &d, 4);
        break;
      }
      default:
        break;
    }
  }
  return b;
}

TEST(Dequantize, EveryTypeMatchesTheElementwiseReadingBitForBit) {
  std::mt19937 rng(42);
  for (GgmlType t : kBlockTypes) {
    SCOPED_TRACE(TypeName(t));
    const TypeTraits& tr = Traits(t);
    const int nb = 64;
    auto blocks = RandomBlocks(t, nb, rng);
    auto y = Deq(t, blocks.data(), nb * tr.block_size);
    for (int i = 0; i < nb; ++i) {
      for (uint32_t e = 0; e < tr.block_size; ++e) {
        const float want = RefElement(t, blocks.data() + i * tr.type_size, static_cast<int>(e));
        ASSERT_EQ(FloatToBits(y[i * tr.block_size + e]), FloatToBits(want))
            << "block " << i << " element " << e << ": " << y[i * tr.block_size + e] << " vs "
            << want;
      }
    }
  }
}

TEST(Dequantize, RejectsPartialBlocksAndUnsupportedTypes) {
  float y[64];
  uint8_t x[64] = {};
  EXPECT_EQ(Dequantize(GgmlType::Q4_0, x, y, 31).code(), Status::Code::kInvalidArgument);
  EXPECT_EQ(Dequantize(GgmlType::IQ4_NL, x, y, 32).code(), Status::Code::kUnsupported);
}

// Round-trip bound per element, from each format's step: for a block of max magnitude A
// (affine types: range R = max - min), one step is A/127 (Q8_0), A/8 (Q4_0: the extreme maps
// to -8, the other side may clamp at +7, a full step), A/16 (Q5_0), R/15 (Q4_1), R/31 (Q5_1).
// K-quants add the error of their quantized sub-block scales; their bounds are per
// super-block: Q8_K A/127, Q6_K A/32·(1 + 1/2), Q5_K R/31·2, Q4_K R/15·2, Q3_K A/4·(1+1/2),
// Q2_K R/3·2.
double Bound(GgmlType t, const float* x, int n) {
  float lo = 0, hi = 0, amax = 0;
  for (int i = 0; i < n; ++i) {
    lo = std::min(lo, x[i]), hi = std::max(hi, x[i]), amax = std::max(amax, std::fabs(x[i]));
  }
  const double r = hi - lo;
  const double f16 = 1.001;  // scales are stored as f16: relative error ≤ 2^-11
  switch (t) {
    case GgmlType::Q8_0:
      return amax / 127 * f16;
    case GgmlType::Q4_0:
      return amax / 8 * f16;
    case GgmlType::Q5_0:
      return amax / 16 * f16;
    case GgmlType::Q4_1:
      return r / 15 * f16;
    case GgmlType::Q5_1:
      return r / 31 * f16;
    case GgmlType::Q8_K:
      return amax / 127 * f16;
    case GgmlType::Q6_K:
      return amax / 32 * 1.5 * f16;
    case GgmlType::Q5_K:
      return r / 31 * 2 * f16;
    case GgmlType::Q4_K:
      return r / 15 * 2 * f16;
    case GgmlType::Q3_K:
      return amax / 4 * 1.5 * f16;
    case GgmlType::Q2_K:
      return r / 3 * 2 * f16;
    case GgmlType::F16:
      return amax / 2048;
    case GgmlType::BF16:
      return amax / 256;
    default:
      return 0;
  }
}

TEST(Quantize, RoundTripsWithinTheFormatsStep) {
  std::mt19937 rng(7);
  std::normal_distribution<float> g(0, 1);
  const GgmlType types[] = {GgmlType::F16,  GgmlType::BF16, GgmlType::Q4_0, GgmlType::Q4_1,
                            GgmlType::Q5_0, GgmlType::Q5_1, GgmlType::Q8_0, GgmlType::Q2_K,
                            GgmlType::Q3_K, GgmlType::Q4_K, GgmlType::Q5_K, GgmlType::Q6_K,
                            GgmlType::Q8_K};
  const int n = 256 * 32;
  std::vector<float> x(n);
  for (float& v : x) v = g(rng) * 0.05f;
  x[5] = 0.4f;  // an outlier
  for (GgmlType t : types) {
    SCOPED_TRACE(TypeName(t));
    std::vector<uint8_t> q(RowBytes(t, n));
    ASSERT_TRUE(Quantize(t, x.data(), q.data(), n).ok());
    auto y = Deq(t, q.data(), n);
    const int block = Traits(t).block_size == 1 ? 256 : static_cast<int>(Traits(t).block_size);
    double worst = 0;
    for (int b = 0; b < n; b += block) {
      const double bound = Bound(t, x.data() + b, block);
      for (int i = b; i < b + block; ++i) {
        ASSERT_LE(std::fabs(y[i] - x[i]), bound) << "element " << i;
        worst = std::max(worst, std::fabs(double{y[i]} - x[i]));
      }
    }
    EXPECT_GT(worst, 0);  // a quantizer that returned its input would be suspicious
  }
}

TEST(Quantize, ZerosStayZeros) {
  std::vector<float> x(256, 0.0f);
  for (GgmlType t : kBlockTypes) {
    std::vector<uint8_t> q(RowBytes(t, 256));
    ASSERT_TRUE(Quantize(t, x.data(), q.data(), 256).ok());
    for (float v : Deq(t, q.data(), 256)) ASSERT_EQ(v, 0.0f) << TypeName(t);
  }
}

}  // namespace
}  // namespace ggswarm
