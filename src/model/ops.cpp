#include "model/ops.h"

#include <algorithm>
#include <cmath>

#include "base/fp16.h"
#include "quant/dequantize.h"
#include "quant/vec_dot.h"

namespace ggswarm::model {

namespace {

// Many tokens: decode four weight rows at a time and multiply them with every token.
void TileMatMul(const TensorView& w, int n, float* y, ThreadPool& pool, MatMulScratch* s,
                int block) {
  const GgmlType type = w.type();
  const int64_t k = static_cast<int64_t>(w.cols());
  const int64_t m = static_cast<int64_t>(w.rows());
  const uint64_t abytes = ActivationBytes(VecDotType(type), k);
  kernels::BuildPanel(type, s->act.data(), abytes, n, k, &s->panel, &pool);
  const bool has_min = kernels::HasMin(type);
  if (s->dec.size() < static_cast<size_t>(pool.size())) s->dec.resize(pool.size());
  // A tile of rows at a time (one AMX tile; each token's sixteen results fill a cache line).
  constexpr int kRows = kernels::kTileRows;
  pool.Run(
      m,
      [&](int64_t begin, int64_t end, int tid) {
        kernels::DecodedRows& d = s->dec[tid];
        for (int64_t r = begin; r < end; r += kRows) {
          const int rows = static_cast<int>(std::min<int64_t>(kRows, end - r));
          kernels::Reserve(&d, rows, k, block);
          for (int i = 0; i < rows; ++i) kernels::DecodeRow(type, w.Row(r + i), &d, i);
          kernels::TileProduct(d, s->panel, has_min, y + r, 1, m);
        }
      },
      kRows);
}

// Long prompts: rows decoded to bf16 a panel's worth at a time, times every token.
void Bf16MatMul(const TensorView& w, const float* x, int n, float* y, ThreadPool& pool,
                MatMulScratch* s) {
  const GgmlType type = w.type();
  const int64_t k = static_cast<int64_t>(w.cols());
  const int64_t m = static_cast<int64_t>(w.rows());
  kernels::BuildBf16Tokens(x, n, k, &s->btok, &pool);
  if (s->bdec.size() < static_cast<size_t>(pool.size())) s->bdec.resize(pool.size());
  // Rows decoded at a time (the kernel passes over them a slice of k at a time).
  const int64_t per = 128;
  pool.Run(
      m,
      [&](int64_t begin, int64_t end, int tid) {
        kernels::Bf16Rows& d = s->bdec[tid];
        for (int64_t r = begin; r < end; r += per) {
          const int rows = static_cast<int>(std::min<int64_t>(per, end - r));
          kernels::ReserveBf16(&d, rows, k);
          for (int t = 0; t * kernels::kTileRows < rows; ++t) {
            const uint8_t* ptrs[kernels::kTileRows];
            const int count = std::min(kernels::kTileRows, rows - t * kernels::kTileRows);
            for (int i = 0; i < count; ++i) ptrs[i] = w.Row(r + t * kernels::kTileRows + i);
            kernels::DecodeTileBf16(type, ptrs, count, &d, t);
          }
          kernels::TileProductBf16(d, s->btok, y + r, m);
        }
      },
      per);
}

// The most weight bytes one RowDots call is given; longer chunks are cut into calls of about
// this size. RowDots reads its rows in four parts side by side, and far-apart parts stream
// worse (bench_rowdots: 704-row calls read at 96-97% of ReadAll, 4096-row calls at 90-92%),
// while very short calls pay for four cold streams each (32 rows: 85%). The effect on
// generation is in docs/performance.md.
constexpr int64_t kCallBytes = 768 << 10;

// Row dots serve few tokens (more without AMX, and more with AVX2), and every token where
// a matrix has no tiles (Q8_0 with AVX2).
bool RowDotsApply(const MatMulPart* parts, int count, int n) {
  for (int i = 0; i < count; ++i)
    if (!kernels::HasRowDot(parts[i].w->type()) || parts[i].w->cols() != parts[0].w->cols())
      return false;
  const int most = kernels::Active() == kernels::Isa::kAvx2           ? kRowDotMaxTokensAvx2
                   : kernels::AmxActive() || kernels::AmxBf16Active() ? kRowDotMaxTokens
                                                                      : kRowDotMaxTokensWithoutAmx;
  if (n <= most) return true;
  for (int i = 0; i < count; ++i)
    if (!kernels::HasTiles(parts[i].w->type())) return true;
  return false;
}

// Row-dot jobs hand out rows in multiples of this.
constexpr int64_t kRowGrain = 16;

// Rows of w per RowDots call over `rows` rows: equal calls of at most kCallBytes. For more
// tokens than a group (kernels::RowDotGroup) a call's rows are read again for every group,
// so it is cut to what stays in the caches: kCallBytes · group / n, and at least 16 rows
// (Q8_0 in groups of four, 8 tokens: 126 tok/s, against 111 with kCallBytes / n).
int64_t CallRows(const TensorView& w, int64_t rows, int n = 1) {
  const int g = kernels::RowDotGroup(w.type());
  const int64_t bytes = n > g ? kCallBytes * g / n : kCallBytes;
  const int64_t cap = std::max<int64_t>(16, bytes / static_cast<int64_t>(w.row_bytes));
  const int64_t pieces = (rows + cap - 1) / cap;
  return (rows + pieces - 1) / pieces;
}

// How much of each of a call's streams a waiting thread reads ahead: what it can read in
// the few microseconds of a gap, and far less than its L2 cache.
constexpr int64_t kAheadBytes = 32 << 10;
static_assert(kernels::kRowDotStreams <= ThreadPool::ReadAhead::kMaxStreams);

// Announces the row-dot job over `parts` (see MatMul's `next`): thread i's first chunk is
// [i * first, (i + 1) * first) of the parts' rows taken end to end, and it reads ahead the
// first bytes of the streams of that chunk's first RowDots call.
void Announce(const MatMulPart* parts, int count, int n, ThreadPool& pool,
              std::vector<ThreadPool::ReadAhead>* ahead_buf) {
  int64_t total = 0;
  for (int i = 0; i < count; ++i) total += static_cast<int64_t>(parts[i].w->rows());
  const int threads = pool.size();
  const int64_t first = pool.FirstChunk(total, kRowGrain);
  if (first * threads > total) return pool.Forget();
  std::vector<ThreadPool::ReadAhead>& ahead = *ahead_buf;
  ahead.assign(threads, ThreadPool::ReadAhead{});
  for (int t = 0; t < threads; ++t) {
    int64_t r = t * first, end = r + first;
    int i = 0;
    for (; r >= static_cast<int64_t>(parts[i].w->rows()); ++i) {
      r -= static_cast<int64_t>(parts[i].w->rows());
      end -= static_cast<int64_t>(parts[i].w->rows());
    }
    const TensorView& w = *parts[i].w;
    for (const TensorShard& sh : w.shards) {
      const int64_t sb = static_cast<int64_t>(sh.row_begin), se = static_cast<int64_t>(sh.row_end);
      if (r < sb || r >= se) continue;
      const int64_t per = CallRows(w, std::min(end, se) - r, n) / kernels::kRowDotStreams;
      const uint8_t* rows = sh.data + (r - sb) * w.row_bytes;
      ThreadPool::ReadAhead& a = ahead[t];
      a.streams = per > 0 ? kernels::kRowDotStreams : 1;
      const int64_t stream_bytes = std::max<int64_t>(per, 1) * static_cast<int64_t>(w.row_bytes);
      for (int st = 0; st < a.streams; ++st) a.p[st] = rows + st * stream_bytes;
      a.bytes = std::min(kAheadBytes, stream_bytes);
    }
  }
  pool.Announce(parts[0].w, first, ahead);
}

// Few tokens, row-dot types: the activations quantized once per vec_dot type and prepared
// once per weight type, then all the matrices' rows handed out as one job, so both threads
// stream until the last row of the last matrix.
void RowDotMatMul(const MatMulPart* parts, int count, const float* x, int n, ThreadPool& pool,
                  MatMulScratch* s, std::initializer_list<MatMulPart> next) {
  const int64_t k = static_cast<int64_t>(parts[0].w->cols());
  auto in = [&](int i) { return parts[i].x ? parts[i].x : x; };  // part i's input
  if (s->acts.size() < static_cast<size_t>(count)) s->acts.resize(count);
  if (s->rowact.size() < static_cast<size_t>(count) * n) s->rowact.resize(count * n);
  std::vector<int64_t>& first = s->first_row;  // of each part in the job's range
  first.assign(count + 1, 0);
  // Parts with one input whose weights have one type share one prepared activation (q, k,
  // v; gate, up): part i's is part act_of[i]'s.
  std::vector<int>& act_of = s->act_of;
  act_of.assign(count, 0);
  for (int i = 0; i < count; ++i) {
    first[i + 1] = first[i] + static_cast<int64_t>(parts[i].w->rows());
    const GgmlType type = parts[i].w->type(), vt = VecDotType(type);
    act_of[i] = i;
    for (int j = 0; j < i && act_of[i] == i; ++j)
      if (parts[j].w->type() == type && in(j) == in(i)) act_of[i] = act_of[j];
    if (act_of[i] != i) continue;
    if (kernels::QuantizesForRowDot(type, k)) {
      for (int t = 0; t < n; ++t)
        kernels::QuantizeForRowDot(type, in(i) + t * k, k, &s->rowact[i * n + t]);
      continue;
    }
    // The blocks an earlier part of another weight type with this vec_dot type used.
    const uint64_t abytes = ActivationBytes(vt, k);
    const uint8_t* act = nullptr;
    for (int j = 0; j < i && !act; ++j)
      if (act_of[j] == j && VecDotType(parts[j].w->type()) == vt && in(j) == in(i))
        act = static_cast<const uint8_t*>(s->rowact[j * n].act);  // null if made in one pass
    if (!act) {
      s->acts[i].resize(abytes * n);
      for (int t = 0; t < n; ++t)
        kernels::QuantizeRow(vt, in(i) + t * k, s->acts[i].data() + t * abytes, k);
      act = s->acts[i].data();
    }
    for (int t = 0; t < n; ++t)
      kernels::PrepareRowDot(type, act + t * abytes, k, &s->rowact[i * n + t]);
  }
  // This job's first chunks, if it was announced; then the next one's announcement.
  const int64_t planned = pool.Planned(parts[0].w);
  if (next.size() > 0 && RowDotsApply(next.begin(), static_cast<int>(next.size()), n))
    Announce(next.begin(), static_cast<int>(next.size()), n, pool, &s->ahead);
  else
    pool.Forget();
  pool.Run(
      first[count],
      [&](int64_t begin, int64_t end, int) {
        for (int i = 0; i < count; ++i) {
          const TensorView& w = *parts[i].w;
          const int64_t m = first[i + 1] - first[i];
          const int64_t pb = std::max(begin, first[i]) - first[i];
          const int64_t pe = std::min(end, first[i + 1]) - first[i];
          for (const TensorShard& sh : w.shards) {
            const int64_t b = std::max<int64_t>(pb, sh.row_begin);
            const int64_t e = std::min<int64_t>(pe, sh.row_end);
            if (b >= e) continue;
            const int64_t len = CallRows(w, e - b, n);
            for (int64_t cb = b; cb < e; cb += len) {
              const int64_t ce = std::min(e, cb + len);
              const uint8_t* rows = sh.data + (cb - sh.row_begin) * w.row_bytes;
              kernels::RowDotsTokens(w.type(), rows, w.row_bytes, ce - cb,
                                     &s->rowact[act_of[i] * n], n, k, parts[i].y + cb, m);
            }
          }
        }
      },
      kRowGrain, planned);
}

}  // namespace

int ExactBatch(GgmlType w) {
  return kernels::HasRowDotEverywhere(w) ? kRowDotMaxTokens : kTileMinTokens - 1;
}

std::string KernelsInUse() {
  std::string name = kernels::IsaName(kernels::Active());
  if (kernels::AmxActive()) name += "+amx-int8";
  if (kernels::AmxBf16Active()) name += "+amx-bf16";
  return name;
}

void MatMul(const TensorView& w, const float* x, int n, float* y, ThreadPool& pool,
            MatMulScratch* s, std::initializer_list<MatMulPart> next) {
  const GgmlType type = w.type();
  const int64_t k = static_cast<int64_t>(w.cols());
  const int64_t m = static_cast<int64_t>(w.rows());
  const GgmlType vt = VecDotType(type);
  const uint64_t abytes = ActivationBytes(vt, k);
  const int block = kernels::HasTiles(type) ? kernels::TileBlock(type) : 0;
  const bool integer = HasIntegerDot(type) || (block && n >= kTileMinTokens);
  const bool f32 = type == GgmlType::F32;

  const MatMulPart part{&w, y};
  if (RowDotsApply(&part, 1, n)) return RowDotMatMul(&part, 1, x, n, pool, s, next);
  pool.Forget();
  if (block && n >= kBf16MinTokens && k % 32 == 0 && kernels::AmxBf16Active())
    return Bf16MatMul(w, x, n, y, pool, s);
  s->act.resize(abytes * n);
  pool.Run(n, [&](int64_t b, int64_t e, int) {
    for (int64_t t = b; t < e; ++t)
      kernels::QuantizeRow(vt, x + t * k, s->act.data() + t * abytes, k);
  });
  if (block && n >= kTileMinTokens) return TileMatMul(w, n, y, pool, s, block);
  if (!integer) {
    s->expanded.resize(static_cast<size_t>(k) * n);
    for (int t = 0; t < n; ++t)
      ExpandActivation(vt, s->act.data() + t * abytes, s->expanded.data() + t * k, k);
  }
  if (s->wrow.size() < static_cast<size_t>(pool.size())) s->wrow.resize(pool.size());

  pool.Run(
      m,
      [&](int64_t begin, int64_t end, int tid) {
        std::vector<float>& wbuf = s->wrow[tid];
        if (!integer && !f32) wbuf.resize(k);
        for (const TensorShard& sh : w.shards) {
          const int64_t b = std::max<int64_t>(begin, sh.row_begin);
          const int64_t e = std::min<int64_t>(end, sh.row_end);
          if (b >= e) continue;
          for (int64_t r = b; r < e; ++r) {
            const uint8_t* row = sh.data + (r - sh.row_begin) * w.row_bytes;
            if (integer) {
              for (int t = 0; t < n; ++t)
                y[t * m + r] = VecDotBlocks(type, row, s->act.data() + t * abytes, k);
              continue;
            }
            const float* wf = reinterpret_cast<const float*>(row);
            if (!f32) {
              (void)Dequantize(type, row, wbuf.data(), k);
              wf = wbuf.data();
            }
            for (int t = 0; t < n; ++t) y[t * m + r] = DotF32(wf, s->expanded.data() + t * k, k);
          }
        }
      },
      16);
}

void MatMuls(std::initializer_list<MatMulPart> parts, const float* x, int n, ThreadPool& pool,
             MatMulScratch* s, std::initializer_list<MatMulPart> next) {
  if (RowDotsApply(parts.begin(), static_cast<int>(parts.size()), n))
    return RowDotMatMul(parts.begin(), static_cast<int>(parts.size()), x, n, pool, s, next);
  for (const MatMulPart& p : parts) MatMul(*p.w, x, n, p.y, pool, s);
}

void MatMuls(std::span<const MatMulPart> parts, const float* x, int n, ThreadPool& pool,
             MatMulScratch* s) {
  if (parts.empty()) return;
  if (RowDotsApply(parts.data(), static_cast<int>(parts.size()), n))
    return RowDotMatMul(parts.data(), static_cast<int>(parts.size()), x, n, pool, s, {});
  for (const MatMulPart& p : parts) MatMul(*p.w, p.x ? p.x : x, n, p.y, pool, s);
}

void ForgetNext(ThreadPool& pool) { pool.Forget(); }

void RmsNorm(const float* x, const float* weight, float* y, int n, float eps) {
  // ggml adds the squares in double one after another. Eight running sums round apart from
  // that only in the double's last bits, which almost never reach the float mean (in none
  // of the 1,480 rows RmsNormIsGgmlsFormulaBitForBit tries), and they are not one long
  // chain of dependent additions: a norm took 3 µs, all of it time the other thread waits.
  double part[8] = {};
  int i = 0;
  for (; i + 8 <= n; i += 8)
    for (int j = 0; j < 8; ++j) part[j] += static_cast<double>(x[i + j] * x[i + j]);
  for (; i < n; ++i) part[i % 8] += static_cast<double>(x[i] * x[i]);
  const double sum =
      ((part[0] + part[1]) + (part[2] + part[3])) + ((part[4] + part[5]) + (part[6] + part[7]));
  const float mean = static_cast<float>(sum / n);
  const float scale = 1.0f / std::sqrt(mean + eps);
  for (i = 0; i < n; ++i) y[i] = (x[i] * scale) * weight[i];
}

void RopeAngles(int rope_dim, int pos, float base, const float* freq_factors, float* cs,
                const RopeScaling& sc) {
  // ggml builds the angles by repeated multiplication in f32; so do we.
  const float theta_scale = std::pow(base, -2.0f / static_cast<float>(rope_dim));
  const bool plain = sc.freq_scale == 1.0f && sc.ext_factor == 0.0f && sc.attn_factor == 1.0f;
  float theta = static_cast<float>(pos);
  for (int i = 0; i < rope_dim; i += 2) {
    const float ff = freq_factors ? freq_factors[i / 2] : 1.0f;
    const float angle = theta / ff;
    if (plain) {
      cs[i] = std::cos(angle);
      cs[i + 1] = std::sin(angle);
    } else {
      float t = sc.freq_scale * angle, mscale = sc.attn_factor;
      if (sc.ext_factor != 0.0f) {
        const float y =
            (i / 2 - sc.corr_dims[0]) / std::max(0.001f, sc.corr_dims[1] - sc.corr_dims[0]);
        const float ramp = (1 - std::min(1.0f, std::max(0.0f, y))) * sc.ext_factor;
        t = t * (1 - ramp) + angle * ramp;
        mscale *= 1.0f + 0.1f * std::log(1.0f / sc.freq_scale);
      }
      cs[i] = std::cos(t) * mscale;
      cs[i + 1] = std::sin(t) * mscale;
    }
    theta *= theta_scale;
  }
}

void RopeApply(float* x, int rope_dim, const float* cs) {
  for (int i = 0; i < rope_dim; i += 2) {
    const float c = cs[i], s = cs[i + 1];
    const float x0 = x[i], x1 = x[i + 1];
    x[i] = x0 * c - x1 * s;
    x[i + 1] = x0 * s + x1 * c;
  }
}

void RopeApplyNeox(float* x, int rope_dim, const float* cs) {
  const int half = rope_dim / 2;
  for (int i = 0; i < half; ++i) {
    const float c = cs[2 * i], s = cs[2 * i + 1];
    const float x0 = x[i], x1 = x[i + half];
    x[i] = x0 * c - x1 * s;
    x[i + half] = x0 * s + x1 * c;
  }
}

void SwiGlu(const float* g, const float* u, float* out, int n) { kernels::SiluMul(g, u, out, n); }

void GeluGlu(const float* g, const float* u, float* out, int n) {
  // ggml's table: for every f16 x, gelu(x) in f32 (its formula), rounded to f16; kept here
  // as floats for the kernels' gathers.
  static const std::vector<float> table = [] {
    std::vector<float> t(1 << 16);
    constexpr float kSqrt2OverPi = 0.79788456080286535587989211986876f, kCoefA = 0.044715f;
    for (uint32_t h = 0; h < t.size(); ++h) {
      const float x = HalfToFloat(static_cast<uint16_t>(h));
      t[h] = HalfToFloat(
          FloatToHalf(0.5f * x * (1.0f + std::tanh(kSqrt2OverPi * x * (1.0f + kCoefA * x * x)))));
    }
    return t;
  }();
  kernels::GeluTableMul(table.data(), g, u, out, n);
}

void SoftCap(float* x, int n, float cap) {
  const float inv = 1.0f / cap;
  for (int i = 0; i < n; ++i) x[i] = std::tanh(x[i] * inv) * cap;
}

}  // namespace ggswarm::model
