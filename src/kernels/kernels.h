// Fast matrix products for the quantized weight types, chosen at run time for this CPU.
//
// Two shapes of work:
//  - Row dots (generation, one token): a weight row in place (from the mmap) times one
//    activation row in the weight type's vec_dot_type (Q8_0 / Q8_K), as ggml computes it,
//    with AVX-512 VNNI integer dot products (vpdpbusd), or with AVX2 (vpmaddubsw) on CPUs
//    without AVX-512.
//  - Tiles (prompt processing, many tokens): a few weight rows are decoded once into int8
//    values with a float scale (and min) per block, then multiplied against a panel that
//    holds sixteen tokens' activations side by side (one token per 32-bit lane), so that
//    every weight byte loaded serves sixteen tokens and each vpdpbusd does 64 products.
//
// Every kernel has a scalar reference (quant/vec_dot.h, and DecodeRow here) that the tests
// hold it to. The f32 long-batch attention, silu and the vectorized quantizers need AVX-512
// VNNI. On an AVX2 CPU (or with GGSWARM_ISA=avx2) the row dots serve short prompts too
// (RowDotsTokens: each weight block decoded once for up to four tokens), longer ones take
// AVX2 tiles (every tile type but Q8_0: HasTiles), attention has an AVX2 kernel, and the
// rest runs as scalar code; without AVX2 (or with GGSWARM_ISA=scalar) the engine uses the
// scalar reference path.
#pragma once

#include <cstdint>
#include <vector>

#include "base/aligned.h"
#include "base/thread_pool.h"
#include "gguf/ggml_type.h"

namespace ggswarm::kernels {

// In order: each level has everything the one before has.
enum class Isa { kScalar, kAvx2, kAvx512Vnni };

// The instruction set in use: the best this CPU has (AVX2 means AVX2, FMA and F16C), or
// less where GGSWARM_ISA says so (scalar, avx2).
Isa Active();
const char* IsaName(Isa isa);
// For tests and benchmarks: pretend the CPU has only `isa` (never more than it has: the
// best it has below or at `isa`).
void SetIsa(Isa isa);

// Whether tiles run on the AMX matrix unit (Sapphire Rapids and later: TDPBSSD multiplies
// a 16×64 by a 64×16 int8 tile in one instruction). Used when the CPU has AMX-INT8, the
// kernel grants the tile state and GGSWARM_AMX is not 0; SetAmx(false) turns it off.
bool AmxActive();
void SetAmx(bool on);

// --- Row dots ---------------------------------------------------------------------------

// True when Active() has a row-dot kernel for weights of type `w` (Q8_0, Q4_0, Q4_K, Q6_K;
// AVX2 or AVX-512 VNNI).
bool HasRowDot(GgmlType w);
// True when every instruction set with row dots (AVX2 and AVX-512 VNNI) has them for `w`,
// whichever is active.
bool HasRowDotEverywhere(GgmlType w);

// QuantizeActivation (quant/vec_dot.h), byte for byte, with AVX-512 for Q8_0 and Q8_K.
void QuantizeRow(GgmlType vt, const float* x, void* out, int64_t k);

// One activation row (in VecDotType(w)) made ready for row dots: for the legacy types its
// quants side by side, block scales as floats and the Q4_0 offset correction; for Q4_K its
// quants in the order the weights' nibbles come in and the sums of its sub-blocks. (For the
// AVX2 kernels: the blocks as they are, plus the scales as floats for Q8_0 and Q4_0 and
// Q4_0's quants paired up; see PrepareRowDot in kernels.cpp.)
struct RowDotAct {
  const void* act = nullptr;  // the row as given
  // The quants. For Q8_0 and Q4_0 weights under AVX-512 VNNI, per four blocks their first
  // sixteen quants four at a time in turn (block 0's 0-3, block 1's 0-3, … block 3's 12-15),
  // then their last sixteen the same way, so that two vpdpbusd leave each block's sum in
  // lanes of its own; Q8_0's are plus 128 (unsigned bytes: vpdpbusd takes them against
  // signed weights).
  AlignedVector<int8_t> q;
  AlignedVector<float> d;
  AlignedVector<int32_t> corr;  // Q4_0: -8 Σ x per block
  AlignedVector<int16_t> sums;  // Q4_K: per super-block, the sum of each 32-element sub-block
};
void PrepareRowDot(GgmlType w, const void* act, int64_t k, RowDotAct* out);
// QuantizeRow and PrepareRowDot in one pass, without the blocks in between (out->act is
// null): for Q8_0 and Q4_0 weights whose rows are whole steps of the AVX-512 kernels
// (k a multiple of 128). The same q, d and corr as the two steps give, for finite inputs (a
// block with a NaN gets other values, no more meaningful than the two steps give).
bool QuantizesForRowDot(GgmlType w, int64_t k);
void QuantizeForRowDot(GgmlType w, const float* x, int64_t k, RowDotAct* out);

// y[i * y_stride] = row_i · act for i < nrows, where row_i starts at rows + i * row_bytes
// (k elements of type w). Needs HasRowDot(w). The AVX-512 kernels read the rows in
// kRowDotStreams equal contiguous parts side by side (rows i * nrows / kRowDotStreams on).
constexpr int kRowDotStreams = 4;
void RowDots(GgmlType w, const uint8_t* rows, uint64_t row_bytes, int64_t nrows,
             const RowDotAct& act, int64_t k, float* y, int64_t y_stride);

// RowDots for n tokens: y[t * token_stride + i] = row_i · acts[t] (acts[0 … n-1]). Each
// weight block is decoded once for up to RowDotGroup(w) tokens (eight with AVX-512, four
// with AVX2), so the rows are read once per group; each token's sums are taken exactly as
// RowDots takes them alone.
int RowDotGroup(GgmlType w);
void RowDotsTokens(GgmlType w, const uint8_t* rows, uint64_t row_bytes, int64_t nrows,
                   const RowDotAct* acts, int n, int64_t k, float* y, int64_t token_stride);

// Reads the n bytes at p as fast as this CPU can, in `streams` equal parts side by side
// (1 to 8), prefetched as the row dots prefetch, and returns their XOR in 64-bit words (any
// tail shorter than the parts' 128-byte steps is left out): the yardstick for how close
// the row dots come to the memory's read bandwidth.
uint64_t ReadAll(const uint8_t* p, uint64_t n, int streams);

// --- Tiles ------------------------------------------------------------------------------

// The tiles' two sixteens: weight rows decoded and multiplied together (an AMX tile's rows),
// and tokens side by side in a panel group (the 32-bit lanes of a 512-bit register).
constexpr int kTileRows = 16;
constexpr int kPanelTokens = 16;

// The block length (16 or 32) a weight type decodes into, or 0 when it has no tile path.
int TileBlock(GgmlType w);
// Whether the active instruction set multiplies type w by tiles: AVX-512 VNNI every type
// with a TileBlock, AVX2 those but Q8_0 (see TileProduct), the scalar path none.
bool HasTiles(GgmlType w);

// Up to sixteen weight rows decoded: x[j] = sw[b] * q[j] + mw[b] for j in block b (exactly
// the values Dequantize gives), with negc[b] = -128 * Σ q over block b (the VNNI panel's
// offset, undone). The quants are stored block by block, sixteen rows of a block together
// (an AMX tile): At(r, b) is row r's block b.
struct DecodedRows {
  int64_t k = 0, nkb = 0;  // elements per row, blocks per row
  int rows = 0, block = 0;
  GgmlType type = GgmlType::F32;  // the rows' type (DecodeRow)
  AlignedVector<int8_t> q;        // nkb × kTileRows × block
  AlignedVector<float> sw, mw;
  AlignedVector<int32_t> negc;  // kTileRows × nkb each
  const int8_t* At(int r, int64_t b) const { return q.data() + (b * kTileRows + r) * block; }
};
// Decodes row `slot` of `out` (sized by Reserve) from `row` (k elements of type w).
void DecodeRow(GgmlType w, const uint8_t* row, DecodedRows* out, int slot);
// Sizes `out` for `rows` (at most 16) rows of k elements in blocks of `block`.
void Reserve(DecodedRows* out, int rows, int64_t k, int block);

// Activations of n tokens, sixteen to a group: for group g and element quad j, 64 bytes
// holding q of elements 4j..4j+3 of each of the group's tokens (token = 32-bit lane), as
// q + 128 for the VNNI kernel (its unsigned operand) or as is for AMX (offset = false),
// with per-block scales sa and, for types with a min, block sums SA (= scale × Σ q), as
// [group][block][16] floats. Built from activations already in VecDotType(w).
struct Panel {
  int64_t k = 0, nkb = 0;
  int n = 0, groups = 0;
  bool offset = true;
  AlignedVector<uint8_t> q;
  AlignedVector<float> sa, SA;
};
// With a pool, the tokens are spread over its threads.
void BuildPanel(GgmlType w, const uint8_t* act, uint64_t act_row_bytes, int n, int64_t k, Panel* p,
                ThreadPool* pool = nullptr);

// out[r * row_stride + t * token_stride] = row r · token t, for the decoded rows and every
// token of the panel (t < p.n). Needs HasTiles(w) for the rows' type: with AVX2 the pairs
// of products are taken by vpmaddubsw in 16 bits, exact while the decoded |q| <= 32, and the
// float steps are the VNNI tiles' (the same bits). Runs on AMX when the panel was built for
// it (AmxActive() at BuildPanel).
void TileProduct(const DecodedRows& w, const Panel& p, bool has_min, float* out, int64_t row_stride,
                 int64_t token_stride);

// --- Tiles in bf16 (AMX-BF16) ------------------------------------------------------------
//
// For long prompts: the weights, decoded exactly (Dequantize's values), are rounded to bf16
// once per call, the activations to bf16 once per token, and TDPBF16PS accumulates the
// products in f32 inside the tile. No per-block int32 result has to be stored, converted
// and scaled by the vector unit, which is what bounds the int8 tiles. Here the tokens are
// the tile's rows (operand A, the activations as they lie) and the weight rows its columns
// (operand B), so a result tile is sixteen tokens' outputs for sixteen weight rows, laid
// out as the output is.
// Rounding both operands to bf16 (relative step 2^-8) errs about as much as llama.cpp's
// 8-bit activations (1/127 of a block's largest value) do, in another way; so the engine
// uses these tiles only from kBf16MinTokens tokens on, and tests hold them to the scalar
// reference with the same tolerance as llama.cpp.

// Whether the bf16 tiles can run: AMX-BF16 and AVX512-BF16 present and AMX in use.
bool AmxBf16Active();

// Weight rows decoded to bf16 in the layout of operand B: for element block kb (32
// elements), tile rt of sixteen rows and pair p, 64 bytes holding elements 2p, 2p + 1 of
// each of the sixteen rows (row = 32-bit lane): b[((kb * rows / 16 + rt) * 16 + p) * 32 +
// 2 * (r % 16) + e]. rows is a multiple of 16; padding rows are zero.
struct Bf16Rows {
  int64_t k = 0;
  int rows = 0, used = 0;
  AlignedVector<uint16_t> b;
};
// Sizes `out` for `count` rows of k elements (k % 32 == 0), the padding rows zero.
void ReserveBf16(Bf16Rows* out, int count, int64_t k);
// Decodes rows 16 * tile … 16 * tile + count - 1 of `out` from rows[0 … count - 1] (k
// elements of type w each; needs TileBlock(w) != 0 and count <= 16).
void DecodeTileBf16(GgmlType w, const uint8_t* const* rows, int count, Bf16Rows* out, int tile);

// Activations of n tokens in bf16, row by row (token t at a[t * stride]), padded with zero
// tokens to a multiple of sixteen; stride is k plus a cache line, so that the sixteen rows
// of a tile do not share one cache set.
struct Bf16Tokens {
  int64_t k = 0, stride = 0;
  int n = 0, rows = 0;
  AlignedVector<uint16_t> a;
};
void BuildBf16Tokens(const float* x, int n, int64_t k, Bf16Tokens* t, ThreadPool* pool = nullptr);

// out[t * out_stride + r] = token t · row r for t < x.n, r < w.used. Needs AmxBf16Active().
void TileProductBf16(const Bf16Rows& w, const Bf16Tokens& x, float* out, int64_t out_stride);

// --- Attention ---------------------------------------------------------------------------

// `heads` queries (head_dim floats each, side by side) that share one key/value head,
// against `len` cached positions, as llama.cpp's CPU flash attention computes it: q rounded
// to f16, a running maximum, the weighted sum of values kept in f16 (rounded after every
// position) and divided by the softmax sum at the end. k and v hold head_dim halves per
// position, `stride` halves apart. AttendF16 needs HasAttention(head_dim) (AVX2 or
// AVX-512). With `softcap` > 0 each score s (scale included) becomes softcap · tanh(s /
// softcap), computed as ggml does (Gemma 2).
bool HasAttention(int head_dim);
void AttendF16(const float* q, int heads, const uint16_t* k, const uint16_t* v, int64_t stride,
               int len, int head_dim, float scale, float* out, float softcap = 0);
// The same in scalar code (any head_dim), the reference.
void AttendF16Reference(const float* q, int heads, const uint16_t* k, const uint16_t* v,
                        int64_t stride, int len, int head_dim, float scale, float* out,
                        float softcap = 0);

// out[i] = silu(g[i]) * u[i] = g[i] / (1 + e^-g[i]) * u[i]; vectorized where Active() has
// AVX-512 (its e^x within 2 ulp of expf), else as written. out may be g.
void SiluMul(const float* g, const float* u, float* out, int64_t n);

// out[i] = table[f16(g[i])] * u[i] (g rounded to nearest f16, its bits the index), except
// out[i] = 0 for g[i] <= -10 and g[i] * u[i] for g[i] >= 10: ggml's CPU GELU-gated product,
// whose table holds GELU's results (rounded to f16) as floats here. Vectorized where
// Active() has AVX-512, with the same results bit for bit. out may be g.
void GeluTableMul(const float* table, const float* g, const float* u, float* out, int64_t n);

// Attention for long batches (kBf16MinTokens tokens and more): the same quantity as
// AttendF16 with q rounded to f16, but the scores, softmax (exact maximum first) and
// weighted sum of values all in f32, with keys transposed (kt[d * kt_stride + j] is element
// d of position j; kt_stride a multiple of 16, the columns past len readable) and values in
// f32 (v[j * head_dim + d]). More exact than llama.cpp's f16 running sum, and about four
// times faster. Needs HasF32Attention(head_dim) (AVX-512).
bool HasF32Attention(int head_dim);
void AttendF32(const float* q, int heads, const float* kt, int64_t kt_stride, const float* v,
               int len, int head_dim, float scale, float* out, float softcap = 0);
// The same in scalar code (double sums), the reference.
void AttendF32Reference(const float* q, int heads, const float* kt, int64_t kt_stride,
                        const float* v, int len, int head_dim, float scale, float* out,
                        float softcap = 0);

// True when type w's decoded rows carry a min (mw) term.
bool HasMin(GgmlType w);

}  // namespace ggswarm::kernels
