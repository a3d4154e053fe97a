// The operations of the forward pass on f32 rows, each written as ggml computes it (the
// same rounding points), so that results track llama.cpp's closely.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <span>
#include <string>
#include <vector>

#include "base/thread_pool.h"
#include "gguf/tensor_source.h"
#include "kernels/kernels.h"

namespace ggswarm::model {

// Buffers reused by every matrix multiplication (no allocation per token).
struct MatMulScratch {
  AlignedVector<uint8_t> act;            // activations in the weight's vec_dot_type, n * bytes/row
  AlignedVector<float> expanded;         // the same, back as floats (float-path types)
  std::vector<std::vector<float>> wrow;  // per thread: one dequantized weight row
  std::vector<AlignedVector<uint8_t>> acts;  // row-dot path: per matrix, its activations
  std::vector<kernels::RowDotAct> rowact;    // row-dot path: per matrix and token
  std::vector<int64_t> first_row;            // row-dot path: each matrix's first row
  std::vector<int> act_of;                   // row-dot path: whose activations each uses
  std::vector<ThreadPool::ReadAhead> ahead;  // row-dot path: the next job's read-ahead
  kernels::Panel panel;                      // the tokens side by side (tile path)
  std::vector<kernels::DecodedRows> dec;     // per thread: decoded weight rows (tile path)
  kernels::Bf16Tokens btok;                  // the tokens in bf16 (bf16 tile path)
  std::vector<kernels::Bf16Rows> bdec;       // per thread: weight rows in bf16 (bf16 tile path)
};

// Batches of at least this many tokens use the tile kernels (where the CPU has them) ...
constexpr int kTileMinTokens = 4;
// ... except for the types with row dots, which take batches of up to this many tokens by
// row dots, each weight block unpacked once for a group of tokens (kernels::RowDotGroup:
// eight with AVX-512, four with AVX2): the decoding steps of a batch of sequences (grouped up
// to this many), and short prompts (2026-12-04, 2 cores, AVX-512 VNNI without AMX, a
// tinyllama-shaped Q8_0 model: 8 tokens 126 tok/s by row dots against 47 by tiles, 16
// tokens 131 against 94; 2026-12-07 with the eight-token kernels: 8 tokens 193, 16 203,
// 24 219, 31 223). Every CPU takes runs of up to this many by row dots.
constexpr int kRowDotMaxTokens = 31;
// Without AMX the int8 tiles gain on the row dots slowly: those take batches up to this many
// tokens there (2 cores, Zen 5, 2026-12-07, `bench -p N -t 2`, row dots against tiles:
// tinyllama Q8_0 32 tokens 202 / 132 tok/s, 64: 205 / 188, 96: 202 / 210, 128: 199 / 225;
// Q4_K_M 64: 195 / 167, 96: 195 / 189, 128: 195 / 201; mistral-7b Q4_K_M 64: 30.7 / 27.7,
// 96: 29.8 / 31.8).
constexpr int kRowDotMaxTokensWithoutAmx = 79;
// With AVX2 (row dots in groups of four tokens, tiles by vpmaddubsw; no tiles for Q8_0,
// which keeps the row dots at any length): 2 cores, Zen 5 as AVX2, 2026-12-07, a
// tinyllama-shaped Q4_K_M model, `bench -p N -t 1`, row dots against tiles: 32 tokens 51.2
// / 45.4 tok/s, 48: 48.0 / 48.2, 64: 52.0 / 56.5, 128: 50.2 / 61.1, 512: 39.5 / 56.9.
constexpr int kRowDotMaxTokensAvx2 = 47;
static_assert(kRowDotMaxTokensAvx2 >= kRowDotMaxTokens &&
                  kRowDotMaxTokensWithoutAmx >= kRowDotMaxTokens,
              "every CPU takes runs of up to kRowDotMaxTokens by row dots (net::ExactRun)");
// How many tokens of one batch every CPU gives matrices of type `w` each with the bits it
// would get alone: kRowDotMaxTokens where every instruction set has row dots for `w` (or
// none does: the scalar path goes row by row), else fewer than the tiles take.
int ExactBatch(GgmlType w);
// Batches of at least this many tokens use the bf16 tiles where the CPU has AMX-BF16 (see
// kernels.h); shorter ones stay on the integer kernels, which round as llama.cpp does.
constexpr int kBf16MinTokens = 32;

// The kernels this process computes with, by name ("avx512-vnni+amx-int8+amx-bf16", "avx2",
// …): processes with the same give the same bits for the same batches.
std::string KernelsInUse();
// How far the logits of any kernels may stand from llama.cpp's and from the scalar path's,
// as a fraction of the logits' range (max - min), on any weight type: activations are
// rounded to 8-bit integers per 32-element block, a step of 1/127 of the block's largest
// value (0.8%), and a value that falls on the other side of a rounding boundary moves a
// result by up to that step; bf16 rounding (AMX-BF16 tiles, BF16 weights) has a step of
// 1/256 (0.4%). Twice the larger step. The tests hold every kernel set the CPU has to it
// (InferenceGolden.EveryWeightTypeAgreesWithLlamaCpp, Inference.FastTilesAgreeWith…), and
// two computations within it of one truth are within twice it of each other
// (net::kVerifyTolerance).
constexpr double kKernelLogitTolerance = 1.5e-2;

// One of several matrices that multiply the same input, and where its product goes; or,
// where `x` is set, its own input (n × cols).
struct MatMulPart {
  const TensorView* w;
  float* y;
  const float* x = nullptr;
};

// y[t][r] = W[r] · x[t] for t < n: W is (rows × cols) as `w` holds it, x is n × cols,
// y is n × rows. The activations are converted to the weight's vec_dot_type first.
// `next`, where given, is the product that will follow this one on the same pool with as
// many tokens (only its weights matter): it is announced (ThreadPool::Announce), so that threads
// waiting at the end of this one and in the gap after it read its first rows ahead. The caller
// keeps its weights mapped until that product has run or ForgetNext is called.
void MatMul(const TensorView& w, const float* x, int n, float* y, ThreadPool& pool,
            MatMulScratch* scratch, std::initializer_list<MatMulPart> next = {});

// MatMul for each part (all with the same number of columns), as one job where the kernels
// allow it: with few tokens, the input is quantized once and every matrix's rows are
// handed out together (q, k, v; gate, up).
void MatMuls(std::initializer_list<MatMulPart> parts, const float* x, int n, ThreadPool& pool,
             MatMulScratch* scratch, std::initializer_list<MatMulPart> next = {});
// The same for any number of parts, some of them with their own input (the experts chosen
// for a token: their gates and ups share the token's input, their downs each have their
// own). Where the row dots take them all, one job; else one MatMul per part.
void MatMuls(std::span<const MatMulPart> parts, const float* x, int n, ThreadPool& pool,
             MatMulScratch* scratch);
// Drops what MatMul(s) announced.
void ForgetNext(ThreadPool& pool);

// y = x / sqrt(mean(x²) + eps) * weight, for one row of n (sum of squares in double).
void RmsNorm(const float* x, const float* weight, float* y, int n, float eps);

// Rotary embedding (ggml's "normal" mode: consecutive pairs) of the first `rope_dim` values
// of each head at position `pos`, in two steps so that many heads share the angles: the
// rotations' cosines and sines (cs[i] = cos, cs[i + 1] = sin of pair i / 2's angle), then
// each head rotated by them. `freq_factors` (Llama 3) divides each pair's angle, or is null.
// Context-extension scaling of the angles, as ggml's rope_yarn applies it: each angle θ
// becomes freq_scale·θ, mixed back towards θ for the dimensions below YaRN's correction range
// (ext_factor > 0), and cos and sin are multiplied by mscale (attn_factor, and for YaRN
// 1 + 0.1 ln(1/freq_scale)). The defaults leave the angles as they are.
struct RopeScaling {
  float freq_scale = 1.0f;
  float ext_factor = 0.0f;
  float attn_factor = 1.0f;
  float corr_dims[2] = {0, 0};
};
void RopeAngles(int rope_dim, int pos, float base, const float* freq_factors, float* cs,
                const RopeScaling& scaling = {});
void RopeApply(float* x, int rope_dim, const float* cs);
// The same rotations on the pairs (i, i + rope_dim / 2) (GPT-NeoX's layout, as Qwen).
void RopeApplyNeox(float* x, int rope_dim, const float* cs);

// silu(g) * u, elementwise over n.
void SwiGlu(const float* g, const float* u, float* out, int n);

// gelu(g) * u, elementwise over n, with GELU's tanh approximation as ggml's CPU computes it:
// g rounded to f16 and looked up in a table of f16 results, except below -10 (0) and from
// 10 on (g itself).
void GeluGlu(const float* g, const float* u, float* out, int n);

// cap · tanh(x / cap) over n values in place (Gemma 2's soft-capping of the logits).
void SoftCap(float* x, int n, float cap);

}  // namespace ggswarm::model
