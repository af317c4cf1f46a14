// CPU fp32 backend: OpenBLAS for matmuls, plain loops for everything else. The formulas are the
// ones compute_backend.h states; comments here say how the backward passes are derived.
#include "runtime/compute/cpu/cpu_backend.h"

#include <cblas.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/logging.h"

namespace cairn::runtime {
namespace {

constexpr int64_t kAlignmentBytes = 256;

// OpenBLAS's Debian build takes 32-bit dimensions.
int BlasInt(int64_t value) {
  CAIRN_CHECK(value >= 0 && value <= std::numeric_limits<int>::max())
      << "matrix dimension " << value << " does not fit OpenBLAS's int";
  return static_cast<int>(value);
}

CBLAS_TRANSPOSE Trans(bool transpose) { return transpose ? CblasTrans : CblasNoTrans; }

// Row-major C[m, n] = alpha op(A) op(B) + beta C, with op(X) = X^T when the flag is set; lda/ldb
// are the row lengths of A and B as stored.
void Gemm(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, const float* a, int64_t lda,
          const float* b, int64_t ldb, float beta, float* c, int64_t ldc) {
  cblas_sgemm(CblasRowMajor, Trans(trans_a), Trans(trans_b), BlasInt(m), BlasInt(n), BlasInt(k),
              1.0f, a, BlasInt(lda), b, BlasInt(ldb), beta, c, BlasInt(ldc));
}

float Dot(const float* x, const float* y, int64_t n) {
  float sum = 0.0f;
  for (int64_t i = 0; i < n; ++i) sum += x[i] * y[i];
  return sum;
}

// y += alpha x
void AddScaled(float alpha, const float* x, float* y, int64_t n) {
  for (int64_t i = 0; i < n; ++i) y[i] += alpha * x[i];
}

constexpr float kGeluScale = 0.7978845608028654f;  // sqrt(2 / pi)
constexpr float kGeluCubic = 0.044715f;

}  // namespace

// ---- Memory -----------------------------------------------------------------------------------

absl::StatusOr<void*> CpuBackend::DoAllocate(int64_t bytes) {
  // aligned_alloc wants a size that is a multiple of the alignment; a zero-byte request still gets
  // a distinct pointer.
  const int64_t rounded = std::max<int64_t>(
      kAlignmentBytes, (bytes + kAlignmentBytes - 1) / kAlignmentBytes * kAlignmentBytes);
  void* ptr = std::aligned_alloc(kAlignmentBytes, static_cast<size_t>(rounded));
  if (ptr == nullptr) {
    return absl::ResourceExhaustedError(absl::StrCat("cpu: cannot allocate ", bytes, " bytes"));
  }
  return ptr;
}

void CpuBackend::DoFree(void* ptr) { std::free(ptr); }

absl::Status CpuBackend::DoCopyToDevice(void* device_dst, const void* host_src, int64_t bytes,
                                        Stream*) {
  std::memcpy(device_dst, host_src, static_cast<size_t>(bytes));
  return absl::OkStatus();
}

absl::Status CpuBackend::DoCopyToHost(void* host_dst, const void* device_src, int64_t bytes,
                                      Stream*) {
  std::memcpy(host_dst, device_src, static_cast<size_t>(bytes));
  return absl::OkStatus();
}

absl::Status CpuBackend::DoCopyOnDevice(void* device_dst, const void* device_src, int64_t bytes,
                                        Stream*) {
  std::memcpy(device_dst, device_src, static_cast<size_t>(bytes));
  return absl::OkStatus();
}

absl::Status CpuBackend::DoZero(void* device_dst, int64_t bytes, Stream*) {
  std::memset(device_dst, 0, static_cast<size_t>(bytes));
  return absl::OkStatus();
}

absl::Status CpuBackend::DoSynchronize(Stream*) { return absl::OkStatus(); }

// ---- Matmul -----------------------------------------------------------------------------------

absl::Status CpuBackend::DoMatmulForward(const MatmulShape& s, const void* a_w, const void* b_w,
                                         const void* bias_w, void* c_w, bool accumulate, Stream*) {
  const float* a = static_cast<const float*>(a_w);
  const float* b = static_cast<const float*>(b_w);
  const float* bias = static_cast<const float*>(bias_w);
  float* c = static_cast<float*>(c_w);
  const int64_t m = s.m, n = s.n, k = s.k;
  float beta = accumulate ? 1.0f : 0.0f;
  if (bias != nullptr) {
    // Put the bias into C first, so one GEMM with beta = 1 adds the product on top.
    for (int64_t i = 0; i < m; ++i) {
      float* row = c + i * n;
      for (int64_t j = 0; j < n; ++j) row[j] = (accumulate ? row[j] : 0.0f) + bias[j];
    }
    beta = 1.0f;
  }
  Gemm(s.transpose_a, s.transpose_b, m, n, k, a, s.transpose_a ? m : k, b, s.transpose_b ? k : n,
       beta, c, n);
  return absl::OkStatus();
}

absl::Status CpuBackend::DoMatmulBackward(const MatmulShape& s, const void* a_w, const void* b_w,
                                          const void* dc_w, void* da_w, float* db, float* dbias,
                                          bool accumulate_da, Stream*) {
  const float* a = static_cast<const float*>(a_w);
  const float* b = static_cast<const float*>(b_w);
  const float* dc = static_cast<const float*>(dc_w);
  float* da = static_cast<float*>(da_w);
  // C = op(A) op(B), so d op(A) = dC op(B)^T [m, k] and d op(B) = op(A)^T dC [k, n]. Each gradient
  // is written in its tensor's stored layout, which only flips GEMM transpose flags:
  //   A stored [m, k]: dA = dC . op(B)^T          A stored [k, m]: dA = op(B) . dC^T
  //   B stored [k, n]: dB = op(A)^T . dC          B stored [n, k]: dB = dC^T . op(A)
  // With op(B) = B^T for B stored [n, k] (lda k), and B for B stored [k, n] (ldb n); same for A.
  const int64_t m = s.m, n = s.n, k = s.k;
  const bool ta = s.transpose_a, tb = s.transpose_b;
  const int64_t lda = ta ? m : k;
  const int64_t ldb = tb ? k : n;
  if (da != nullptr) {
    const float beta = accumulate_da ? 1.0f : 0.0f;
    if (!ta) {
      // dA[m, k] = dC[m, n] . op(B)^T; op(B)^T is B itself when B is stored [n, k].
      Gemm(false, !tb, m, k, n, dc, n, b, ldb, beta, da, k);
    } else {
      // dA[k, m] = op(B)[k, n] . dC^T
      Gemm(tb, true, k, m, n, b, ldb, dc, n, beta, da, m);
    }
  }
  if (db != nullptr) {
    if (tb) {
      // dB[n, k] = dC^T[n, m] . op(A)[m, k]
      Gemm(true, ta, n, k, m, dc, n, a, lda, 1.0f, db, k);
    } else {
      // dB[k, n] = op(A)^T[k, m] . dC[m, n]
      Gemm(!ta, false, k, n, m, a, lda, dc, n, 1.0f, db, n);
    }
  }
  if (dbias != nullptr) {
    std::vector<double> sums(static_cast<size_t>(n), 0.0);
    for (int64_t i = 0; i < m; ++i) {
      const float* row = dc + i * n;
      for (int64_t j = 0; j < n; ++j) sums[j] += row[j];
    }
    for (int64_t j = 0; j < n; ++j) dbias[j] += static_cast<float>(sums[j]);
  }
  return absl::OkStatus();
}

// ---- Normalisation ----------------------------------------------------------------------------

absl::Status CpuBackend::DoLayerNormForward(const NormShape& s, const void* inp_w,
                                            const void* weight_w, const void* bias_w, void* out_w,
                                            float* rstd, Stream*) {
  const float* inp = static_cast<const float*>(inp_w);
  const float* weight = static_cast<const float*>(weight_w);
  const float* bias = static_cast<const float*>(bias_w);
  float* out = static_cast<float*>(out_w);
  const int64_t cols = s.cols;
  for (int64_t r = 0; r < s.rows; ++r) {
    const float* x = inp + r * cols;
    float* y = out + r * cols;
    double sum = 0.0;
    for (int64_t c = 0; c < cols; ++c) sum += x[c];
    const double mean = sum / cols;
    double sq = 0.0;
    for (int64_t c = 0; c < cols; ++c) sq += (x[c] - mean) * (x[c] - mean);
    const double rs = 1.0 / std::sqrt(sq / cols + s.eps);
    for (int64_t c = 0; c < cols; ++c) {
      const float xhat = static_cast<float>((x[c] - mean) * rs);
      y[c] = xhat * weight[c] + (bias != nullptr ? bias[c] : 0.0f);
    }
    rstd[r] = static_cast<float>(rs);
  }
  return absl::OkStatus();
}

absl::Status CpuBackend::DoLayerNormBackward(const NormShape& s, const void* inp_w,
                                             const void* weight_w, const float* rstd,
                                             const void* dout_w, void* dinp_w, float* dweight,
                                             float* dbias, bool accumulate_dinp, Stream*) {
  const float* inp = static_cast<const float*>(inp_w);
  const float* weight = static_cast<const float*>(weight_w);
  const float* dout = static_cast<const float*>(dout_w);
  float* dinp = static_cast<float*>(dinp_w);
  // xhat = (x - mean) rstd, y = xhat w + b. With g = dy w (the gradient at xhat):
  //   dx = rstd (g - mean(g) - xhat mean(g xhat))   (mean and variance both depend on x)
  // The mean is recomputed from the saved input (only rstd is saved; docs/cost-model.md).
  const int64_t cols = s.cols;
  std::vector<double> dw(static_cast<size_t>(cols), 0.0), db(static_cast<size_t>(cols), 0.0);
  std::vector<double> xhat(static_cast<size_t>(cols));
  for (int64_t r = 0; r < s.rows; ++r) {
    const float* x = inp + r * cols;
    const float* dy = dout + r * cols;
    float* dx = dinp + r * cols;
    double sum = 0.0;
    for (int64_t c = 0; c < cols; ++c) sum += x[c];
    const double mean = sum / cols;
    const double rs = rstd[r];
    double g_mean = 0.0, g_xhat_mean = 0.0;
    for (int64_t c = 0; c < cols; ++c) {
      xhat[c] = (x[c] - mean) * rs;
      const double g = static_cast<double>(dy[c]) * weight[c];
      g_mean += g;
      g_xhat_mean += g * xhat[c];
      dw[c] += static_cast<double>(dy[c]) * xhat[c];
      db[c] += dy[c];
    }
    g_mean /= cols;
    g_xhat_mean /= cols;
    for (int64_t c = 0; c < cols; ++c) {
      const double g = static_cast<double>(dy[c]) * weight[c];
      const float grad = static_cast<float>(rs * (g - g_mean - xhat[c] * g_xhat_mean));
      dx[c] = accumulate_dinp ? dx[c] + grad : grad;
    }
  }
  for (int64_t c = 0; c < cols; ++c) {
    dweight[c] += static_cast<float>(dw[c]);
    if (dbias != nullptr) dbias[c] += static_cast<float>(db[c]);
  }
  return absl::OkStatus();
}

absl::Status CpuBackend::DoRmsNormForward(const NormShape& s, const void* inp_w, const void* weight_w,
                                          void* out_w, float* rstd, Stream*) {
  const float* inp = static_cast<const float*>(inp_w);
  const float* weight = static_cast<const float*>(weight_w);
  float* out = static_cast<float*>(out_w);
  const int64_t cols = s.cols;
  for (int64_t r = 0; r < s.rows; ++r) {
    const float* x = inp + r * cols;
    float* y = out + r * cols;
    double sq = 0.0;
    for (int64_t c = 0; c < cols; ++c) sq += static_cast<double>(x[c]) * x[c];
    const double rs = 1.0 / std::sqrt(sq / cols + s.eps);
    for (int64_t c = 0; c < cols; ++c) y[c] = static_cast<float>(x[c] * rs) * weight[c];
    rstd[r] = static_cast<float>(rs);
  }
  return absl::OkStatus();
}

absl::Status CpuBackend::DoRmsNormBackward(const NormShape& s, const void* inp_w,
                                           const void* weight_w, const float* rstd,
                                           const void* dout_w, void* dinp_w, float* dweight,
                                           bool accumulate_dinp, Stream*) {
  const float* inp = static_cast<const float*>(inp_w);
  const float* weight = static_cast<const float*>(weight_w);
  const float* dout = static_cast<const float*>(dout_w);
  float* dinp = static_cast<float*>(dinp_w);
  // y = xhat w with xhat = x rstd, rstd = (mean(x^2) + eps)^(-1/2), d rstd / dx_j = -rstd^3 x_j /
  // C:
  //   dx = rstd (g - xhat mean(g xhat)),  g = dy w.
  const int64_t cols = s.cols;
  std::vector<double> dw(static_cast<size_t>(cols), 0.0);
  for (int64_t r = 0; r < s.rows; ++r) {
    const float* x = inp + r * cols;
    const float* dy = dout + r * cols;
    float* dx = dinp + r * cols;
    const double rs = rstd[r];
    double g_xhat_mean = 0.0;
    for (int64_t c = 0; c < cols; ++c) {
      const double xhat = x[c] * rs;
      g_xhat_mean += static_cast<double>(dy[c]) * weight[c] * xhat;
      dw[c] += dy[c] * xhat;
    }
    g_xhat_mean /= cols;
    for (int64_t c = 0; c < cols; ++c) {
      const double g = static_cast<double>(dy[c]) * weight[c];
      const float grad = static_cast<float>(rs * (g - x[c] * rs * g_xhat_mean));
      dx[c] = accumulate_dinp ? dx[c] + grad : grad;
    }
  }
  for (int64_t c = 0; c < cols; ++c) dweight[c] += static_cast<float>(dw[c]);
  return absl::OkStatus();
}

// ---- Activations ------------------------------------------------------------------------------

absl::Status CpuBackend::DoGeluForward(int64_t n, const void* inp_w, void* out_w, Stream*) {
  const float* inp = static_cast<const float*>(inp_w);
  float* out = static_cast<float*>(out_w);
  for (int64_t i = 0; i < n; ++i) {
    const float x = inp[i];
    out[i] = 0.5f * x * (1.0f + std::tanh(kGeluScale * (x + kGeluCubic * x * x * x)));
  }
  return absl::OkStatus();
}

absl::Status CpuBackend::DoGeluBackward(int64_t n, const void* inp_w, const void* dout_w, void* dinp_w,
                                        Stream*) {
  const float* inp = static_cast<const float*>(inp_w);
  const float* dout = static_cast<const float*>(dout_w);
  float* dinp = static_cast<float*>(dinp_w);
  // d/dx [x/2 (1 + tanh u)] = (1 + tanh u)/2 + x/2 (1 - tanh^2 u) du/dx,
  // u = s (x + c x^3), du/dx = s (1 + 3 c x^2).
  for (int64_t i = 0; i < n; ++i) {
    const float x = inp[i];
    const float t = std::tanh(kGeluScale * (x + kGeluCubic * x * x * x));
    const float du = kGeluScale * (1.0f + 3.0f * kGeluCubic * x * x);
    dinp[i] = dout[i] * (0.5f * (1.0f + t) + 0.5f * x * (1.0f - t * t) * du);
  }
  return absl::OkStatus();
}

absl::Status CpuBackend::DoSwiGluForward(int64_t n, const void* gate_w, const void* up_w, void* out_w,
                                         Stream*) {
  const float* gate = static_cast<const float*>(gate_w);
  const float* up = static_cast<const float*>(up_w);
  float* out = static_cast<float*>(out_w);
  for (int64_t i = 0; i < n; ++i) {
    const float g = gate[i];
    out[i] = g / (1.0f + std::exp(-g)) * up[i];
  }
  return absl::OkStatus();
}

absl::Status CpuBackend::DoSwiGluBackward(int64_t n, const void* gate_w, const void* up_w,
                                          const void* dout_w, void* dgate_w, void* dup_w, Stream*) {
  const float* gate = static_cast<const float*>(gate_w);
  const float* up = static_cast<const float*>(up_w);
  const float* dout = static_cast<const float*>(dout_w);
  float* dgate = static_cast<float*>(dgate_w);
  float* dup = static_cast<float*>(dup_w);
  // silu(g) = g sig(g), silu'(g) = sig(g) (1 + g (1 - sig(g))).
  for (int64_t i = 0; i < n; ++i) {
    const float g = gate[i];
    const float sig = 1.0f / (1.0f + std::exp(-g));
    dup[i] = dout[i] * g * sig;
    dgate[i] = dout[i] * up[i] * sig * (1.0f + g * (1.0f - sig));
  }
  return absl::OkStatus();
}

// ---- RoPE -------------------------------------------------------------------------------------

namespace {

// Rotates every (x[i], x[i + D/2]) pair of every head by +angle (sign = 1) or -angle (sign = -1),
// angle = (position_offset + t) theta^(-2i/D). Angles are computed in double so that long positions
// keep fp32 accuracy.
void Rotate(const RopeShape& s, const float* inp, float* out, float sign) {
  const int64_t half = s.head_dim / 2;
  const int64_t stride = s.token_stride != 0 ? s.token_stride : s.num_heads * s.head_dim;
  std::vector<float> cos_table(static_cast<size_t>(s.seq * half));
  std::vector<float> sin_table(static_cast<size_t>(s.seq * half));
  for (int64_t t = 0; t < s.seq; ++t) {
    for (int64_t i = 0; i < half; ++i) {
      const double inv_freq = std::pow(static_cast<double>(s.theta), -2.0 * i / s.head_dim);
      const double angle = static_cast<double>(s.position_offset + t) * inv_freq;
      cos_table[t * half + i] = static_cast<float>(std::cos(angle));
      sin_table[t * half + i] = sign * static_cast<float>(std::sin(angle));
    }
  }
  for (int64_t b = 0; b < s.batch; ++b) {
    for (int64_t t = 0; t < s.seq; ++t) {
      const float* cs = cos_table.data() + t * half;
      const float* sn = sin_table.data() + t * half;
      for (int64_t h = 0; h < s.num_heads; ++h) {
        const int64_t offset = (b * s.seq + t) * stride + h * s.head_dim;
        const float* x = inp + offset;
        float* y = out + offset;
        for (int64_t i = 0; i < half; ++i) {
          const float x1 = x[i], x2 = x[i + half];  // read both before writing (in place)
          y[i] = x1 * cs[i] - x2 * sn[i];
          y[i + half] = x2 * cs[i] + x1 * sn[i];
        }
      }
    }
  }
}

}  // namespace

absl::Status CpuBackend::DoRopeForward(const RopeShape& s, const void* inp_w, void* out_w, Stream*) {
  const float* inp = static_cast<const float*>(inp_w);
  float* out = static_cast<float*>(out_w);
  Rotate(s, inp, out, 1.0f);
  return absl::OkStatus();
}

absl::Status CpuBackend::DoRopeBackward(const RopeShape& s, const void* dout_w, void* dinp_w,
                                        Stream*) {
  const float* dout = static_cast<const float*>(dout_w);
  float* dinp = static_cast<float*>(dinp_w);
  // A rotation is orthogonal: its Jacobian transposed is the rotation by the opposite angle.
  Rotate(s, dout, dinp, -1.0f);
  return absl::OkStatus();
}

// ---- Attention --------------------------------------------------------------------------------
//
// Flash-attention's structure on the CPU: for each (batch, local head), the queries are taken in
// blocks of kQueryBlock rows; a block sees the keys [0, last query + 1) (causal), so its scores fit
// in a [block, keys] scratch matrix and every product is one sgemm. The forward keeps only the
// logsumexp of each row; the backward recomputes the probabilities from it.

namespace {

constexpr int64_t kQueryBlock = 64;

// Pointers and strides of one (batch, local head) of an attention call.
struct HeadView {
  const float* q;  // [T, D] at stride q_stride
  const float* k;  // [T, D] at stride kv_stride (the kv head this query head reads)
  const float* v;
  int64_t q_stride, kv_stride, out_stride;  // out / dout: [T, D] at stride local_heads x D
  int64_t out_offset;                       // of this head in out / dout
  int64_t lse_offset;                       // of this head's [T] row in lse
};

HeadView View(const AttentionShape& s, const float* q, const float* k, const float* v, int64_t b,
              int64_t h) {
  const int64_t T = s.seq, D = s.head_dim;
  const int64_t kv_head = (s.head_begin + h) / s.group_size() - s.kv_begin();
  HeadView view;
  view.q_stride = s.q_token_stride();
  view.kv_stride = s.kv_token_stride();
  view.out_stride = s.local_heads() * D;
  view.q = q + b * T * view.q_stride + h * D;
  view.k = k + b * T * view.kv_stride + kv_head * D;
  view.v = v + b * T * view.kv_stride + kv_head * D;
  view.out_offset = b * T * view.out_stride + h * D;
  view.lse_offset = (b * s.local_heads() + h) * T;
  return view;
}

// scores[rows, keys] = scale q[i0 : i0 + rows] k[0 : keys]^T.
void Scores(const HeadView& x, int64_t i0, int64_t rows, int64_t keys, int64_t D, float scale,
            float* scores) {
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, BlasInt(rows), BlasInt(keys), BlasInt(D),
              scale, x.q + i0 * x.q_stride, BlasInt(x.q_stride), x.k, BlasInt(x.kv_stride), 0.0f,
              scores, BlasInt(keys));
}

}  // namespace

absl::Status CpuBackend::DoAttentionForward(const AttentionShape& s, const void* q_w, const void* k_w,
                                            const void* v_w, void* out_w, float* lse, Stream*) {
  const float* q = static_cast<const float*>(q_w);
  const float* k = static_cast<const float*>(k_w);
  const float* v = static_cast<const float*>(v_w);
  float* out = static_cast<float*>(out_w);
  const int64_t T = s.seq, D = s.head_dim;
  const float scale = 1.0f / std::sqrt(static_cast<float>(D));
  std::vector<float> p(static_cast<size_t>(std::min(kQueryBlock, T) * T));
  for (int64_t b = 0; b < s.batch; ++b) {
    for (int64_t h = 0; h < s.local_heads(); ++h) {
      const HeadView x = View(s, q, k, v, b, h);
      float* lse_head = lse + x.lse_offset;
      for (int64_t i0 = 0; i0 < T; i0 += kQueryBlock) {
        const int64_t rows = std::min(kQueryBlock, T - i0), keys = i0 + rows;
        Scores(x, i0, rows, keys, D, scale, p.data());
        // Row softmax over the visible keys j <= i; masked entries become 0.
        for (int64_t r = 0; r < rows; ++r) {
          const int64_t i = i0 + r;
          float* row = p.data() + r * keys;
          const float row_max = *std::max_element(row, row + i + 1);
          double sum = 0.0;
          for (int64_t j = 0; j <= i; ++j) {
            row[j] = std::exp(row[j] - row_max);
            sum += row[j];
          }
          const float inv_sum = static_cast<float>(1.0 / sum);
          for (int64_t j = 0; j <= i; ++j) row[j] *= inv_sum;
          std::fill(row + i + 1, row + keys, 0.0f);
          lse_head[i] = row_max + static_cast<float>(std::log(sum));
        }
        // out[i0 : i0 + rows] = P v[0 : keys]
        Gemm(false, false, rows, D, keys, p.data(), keys, x.v, x.kv_stride, 0.0f,
             out + x.out_offset + i0 * x.out_stride, x.out_stride);
      }
    }
  }
  return absl::OkStatus();
}

absl::Status CpuBackend::DoAttentionBackward(const AttentionShape& s, const void* q_w,
                                             const void* k_w, const void* v_w, const void* out_w,
                                             const float* lse, const void* dout_w, void* dq_w,
                                             void* dk_w, void* dv_w, Stream*) {
  const float* q = static_cast<const float*>(q_w);
  const float* k = static_cast<const float*>(k_w);
  const float* v = static_cast<const float*>(v_w);
  const float* out = static_cast<const float*>(out_w);
  const float* dout = static_cast<const float*>(dout_w);
  float* dq = static_cast<float*>(dq_w);
  float* dk = static_cast<float*>(dk_w);
  float* dv = static_cast<float*>(dv_w);
  // With P recomputed from the saved lse (P_ij = exp(scale q_i.k_j - lse_i)) and
  // delta_i = dout_i . out_i (= sum_j P_ij dP_ij):
  //   dP = dout v^T,  dS = P * (dP - delta) * scale,
  //   dq = dS k,  dk += dS^T q,  dv += P^T dout.
  // Several query heads share a kv head (GQA), so dk and dv are zeroed and then accumulated.
  const int64_t T = s.seq, D = s.head_dim, KV = s.local_kv_heads();
  const int64_t kv_stride = s.kv_token_stride();
  const float scale = 1.0f / std::sqrt(static_cast<float>(D));
  for (int64_t bt = 0; bt < s.batch * T; ++bt) {
    std::fill(dk + bt * kv_stride, dk + bt * kv_stride + KV * D, 0.0f);
    std::fill(dv + bt * kv_stride, dv + bt * kv_stride + KV * D, 0.0f);
  }
  const size_t block = static_cast<size_t>(std::min(kQueryBlock, T) * T);
  std::vector<float> p(block), ds(block);
  for (int64_t b = 0; b < s.batch; ++b) {
    for (int64_t h = 0; h < s.local_heads(); ++h) {
      // The same view addresses dq/dk/dv (laid out like q/k/v) through these offsets.
      const HeadView x = View(s, q, k, v, b, h);
      const float* lse_head = lse + x.lse_offset;
      float* dq_head = dq + (x.q - q);
      float* dk_head = dk + (x.k - k);
      float* dv_head = dv + (x.v - v);
      for (int64_t i0 = 0; i0 < T; i0 += kQueryBlock) {
        const int64_t rows = std::min(kQueryBlock, T - i0), keys = i0 + rows;
        const float* dout_block = dout + x.out_offset + i0 * x.out_stride;
        const float* out_block = out + x.out_offset + i0 * x.out_stride;
        Scores(x, i0, rows, keys, D, scale, p.data());
        // dP = dout v^T, into ds.
        Gemm(false, true, rows, keys, D, dout_block, x.out_stride, x.v, x.kv_stride, 0.0f,
             ds.data(), keys);
        for (int64_t r = 0; r < rows; ++r) {
          const int64_t i = i0 + r;
          float* p_row = p.data() + r * keys;
          float* ds_row = ds.data() + r * keys;
          const float delta = Dot(dout_block + r * x.out_stride, out_block + r * x.out_stride, D);
          for (int64_t j = 0; j < keys; ++j) {
            p_row[j] = j <= i ? std::exp(p_row[j] - lse_head[i]) : 0.0f;
            ds_row[j] = p_row[j] * (ds_row[j] - delta) * scale;
          }
        }
        // dq[i0 : i0 + rows] = dS k[0 : keys]
        Gemm(false, false, rows, D, keys, ds.data(), keys, x.k, x.kv_stride, 0.0f,
             dq_head + i0 * x.q_stride, x.q_stride);
        // dk[0 : keys] += dS^T q[i0 : i0 + rows];  dv[0 : keys] += P^T dout[i0 : i0 + rows]
        Gemm(true, false, keys, D, rows, ds.data(), keys, x.q + i0 * x.q_stride, x.q_stride, 1.0f,
             dk_head, x.kv_stride);
        Gemm(true, false, keys, D, rows, p.data(), keys, dout_block, x.out_stride, 1.0f, dv_head,
             x.kv_stride);
      }
    }
  }
  return absl::OkStatus();
}

// ---- Embedding --------------------------------------------------------------------------------

absl::Status CpuBackend::DoEmbeddingForward(const EmbeddingShape& s, const int32_t* tokens,
                                            const void* wte_w, const void* wpe_w, void* out_w,
                                            Stream*) {
  const float* wte = static_cast<const float*>(wte_w);
  const float* wpe = static_cast<const float*>(wpe_w);
  float* out = static_cast<float*>(out_w);
  const int64_t C = s.channels;
  for (int64_t b = 0; b < s.batch; ++b) {
    for (int64_t t = 0; t < s.seq; ++t) {
      const int64_t token = tokens[b * s.seq + t];
      float* y = out + (b * s.seq + t) * C;
      if (token >= s.vocab_begin && token < s.vocab_end) {
        std::copy(wte + (token - s.vocab_begin) * C, wte + (token - s.vocab_begin + 1) * C, y);
      } else {
        std::fill(y, y + C, 0.0f);  // another vocabulary shard holds this row
      }
      if (wpe != nullptr) AddScaled(1.0f, wpe + (s.position_offset + t) * C, y, C);
    }
  }
  return absl::OkStatus();
}

absl::Status CpuBackend::DoEmbeddingBackward(const EmbeddingShape& s, const int32_t* tokens,
                                             const void* dout_w, float* dwte, float* dwpe, Stream*) {
  const float* dout = static_cast<const float*>(dout_w);
  const int64_t C = s.channels;
  for (int64_t bt = 0; bt < s.batch * s.seq; ++bt) {
    const int64_t token = tokens[bt];
    if (token >= s.vocab_begin && token < s.vocab_end) {
      AddScaled(1.0f, dout + bt * C, dwte + (token - s.vocab_begin) * C, C);
    }
  }
  if (dwpe != nullptr) {
    std::vector<double> sum(static_cast<size_t>(C));
    for (int64_t t = 0; t < s.seq; ++t) {
      std::fill(sum.begin(), sum.end(), 0.0);
      for (int64_t b = 0; b < s.batch; ++b) {
        const float* dy = dout + (b * s.seq + t) * C;
        for (int64_t c = 0; c < C; ++c) sum[c] += dy[c];
      }
      float* row = dwpe + (s.position_offset + t) * C;
      for (int64_t c = 0; c < C; ++c) row[c] += static_cast<float>(sum[c]);
    }
  }
  return absl::OkStatus();
}

// ---- Cross-entropy ----------------------------------------------------------------------------

absl::Status CpuBackend::DoCrossEntropyMax(const CrossEntropyShape& s, const float* logits,
                                           float* max, Stream*) {
  const int64_t V = s.local_vocab();
  for (int64_t i = 0; i < s.tokens; ++i) {
    const float* row = logits + i * V;
    max[i] = *std::max_element(row, row + V);
  }
  return absl::OkStatus();
}

absl::Status CpuBackend::DoCrossEntropySums(const CrossEntropyShape& s, const float* logits,
                                            const int32_t* targets, const float* max,
                                            float* sum_exp, float* target_logit, Stream*) {
  const int64_t V = s.local_vocab();
  for (int64_t i = 0; i < s.tokens; ++i) {
    const float* row = logits + i * V;
    double sum = 0.0;
    for (int64_t j = 0; j < V; ++j) sum += std::exp(row[j] - max[i]);
    sum_exp[i] = static_cast<float>(sum);
    const int64_t target = targets[i];
    const bool local = target >= s.vocab_begin && target < s.vocab_end;
    target_logit[i] = local ? row[target - s.vocab_begin] : 0.0f;
  }
  return absl::OkStatus();
}

absl::Status CpuBackend::DoCrossEntropyLossAndGrad(const CrossEntropyShape& s, const float* logits,
                                                   const int32_t* targets, const float* max,
                                                   const float* sum_exp, const float* target_logit,
                                                   float loss_scale, float* losses, void* dlogits_w,
                                                   Stream*) {
  float* dlogits = static_cast<float*>(dlogits_w);
  // loss_i = -log softmax(logits_i)[target] = log(sum_exp) + max - target_logit;
  // d loss_i / d logit_ij = softmax_ij - [j == target].
  const int64_t V = s.local_vocab();
  for (int64_t i = 0; i < s.tokens; ++i) {
    const float* row = logits + i * V;
    float* drow = dlogits + i * V;  // may be `row` itself: each element is read before written
    const int64_t target = targets[i];
    if (target < 0) {
      losses[i] = 0.0f;
      std::fill(drow, drow + V, 0.0f);
      continue;
    }
    losses[i] =
        static_cast<float>(std::log(static_cast<double>(sum_exp[i]))) + max[i] - target_logit[i];
    const float inv_sum = 1.0f / sum_exp[i];
    for (int64_t j = 0; j < V; ++j) {
      const float prob = std::exp(row[j] - max[i]) * inv_sum;
      const float onehot = (s.vocab_begin + j == target) ? 1.0f : 0.0f;
      drow[j] = loss_scale * (prob - onehot);
    }
  }
  return absl::OkStatus();
}

// ---- Residual, optimizer, utilities -------------------------------------------------------------

absl::Status CpuBackend::DoResidualForward(int64_t n, const void* a_w, const void* b_w, void* out_w,
                                           Stream*) {
  const float* a = static_cast<const float*>(a_w);
  const float* b = static_cast<const float*>(b_w);
  float* out = static_cast<float*>(out_w);
  for (int64_t i = 0; i < n; ++i) out[i] = a[i] + b[i];
  return absl::OkStatus();
}

absl::Status CpuBackend::DoResidualBackward(int64_t n, const void* dout_w, void* da_w, void* db_w,
                                            bool accumulate, Stream*) {
  const float* dout = static_cast<const float*>(dout_w);
  float* da = static_cast<float*>(da_w);
  float* db = static_cast<float*>(db_w);
  for (float* grad : {da, db}) {
    if (grad == nullptr) continue;
    for (int64_t i = 0; i < n; ++i) grad[i] = accumulate ? grad[i] + dout[i] : dout[i];
  }
  return absl::OkStatus();
}

absl::Status CpuBackend::DoAdamWUpdate(int64_t n, const AdamWConfig& c, int64_t step,
                                       bool apply_weight_decay, float grad_scale, float* params,
                                       const float* grads, float* m, float* v, Stream*) {
  const float bias_correction1 =
      static_cast<float>(1.0 - std::pow(static_cast<double>(c.beta1), static_cast<double>(step)));
  const float bias_correction2 =
      static_cast<float>(1.0 - std::pow(static_cast<double>(c.beta2), static_cast<double>(step)));
  const float weight_decay = apply_weight_decay ? c.weight_decay : 0.0f;
  for (int64_t i = 0; i < n; ++i) {
    const float g = grads[i] * grad_scale;
    m[i] = c.beta1 * m[i] + (1.0f - c.beta1) * g;
    v[i] = c.beta2 * v[i] + (1.0f - c.beta2) * g * g;
    const float m_hat = m[i] / bias_correction1;
    const float v_hat = v[i] / bias_correction2;
    params[i] -= c.learning_rate * (m_hat / (std::sqrt(v_hat) + c.eps) + weight_decay * params[i]);
  }
  return absl::OkStatus();
}

absl::Status CpuBackend::DoScale(int64_t n, float alpha, float* x, Stream*) {
  for (int64_t i = 0; i < n; ++i) x[i] *= alpha;
  return absl::OkStatus();
}

absl::Status CpuBackend::DoNormSquared(int64_t n, const float* x, float* sum, Stream*) {
  double total = 0.0;
  for (int64_t i = 0; i < n; ++i) total += static_cast<double>(x[i]) * x[i];
  *sum += static_cast<float>(total);
  return absl::OkStatus();
}

}  // namespace cairn::runtime

namespace cairn::runtime {

absl::Status CpuBackend::DoSum(int64_t n, const float* x, float* sum, Stream*) {
  double acc = 0.0;
  for (int64_t i = 0; i < n; ++i) acc += x[i];
  *sum += static_cast<float>(acc);
  return absl::OkStatus();
}

absl::Status CpuBackend::DoAxpy(int64_t n, float alpha, const float* x, float* y, Stream*) {
  for (int64_t i = 0; i < n; ++i) y[i] += alpha * x[i];
  return absl::OkStatus();
}

absl::Status CpuBackend::DoCopy2D(int64_t rows, int64_t row_bytes, const void* src,
                                  int64_t src_pitch, void* dst, int64_t dst_pitch, Stream*) {
  const char* from = static_cast<const char*>(src);
  char* to = static_cast<char*>(dst);
  for (int64_t r = 0; r < rows; ++r) std::memcpy(to + r * dst_pitch, from + r * src_pitch, row_bytes);
  return absl::OkStatus();
}

absl::Status CpuBackend::DoAdd2D(int64_t rows, int64_t row_elements, const void* src,
                                 int64_t src_pitch, void* dst, int64_t dst_pitch, Stream*) {
  const float* from = static_cast<const float*>(src);
  float* to = static_cast<float*>(dst);
  for (int64_t r = 0; r < rows; ++r) {
    const float* a = from + r * src_pitch;
    float* b = to + r * dst_pitch;
    for (int64_t i = 0; i < row_elements; ++i) b[i] += a[i];
  }
  return absl::OkStatus();
}

absl::Status CpuBackend::DoToWorking(int64_t n, const float* src, void* dst, Stream*) {
  std::memcpy(dst, src, n * sizeof(float));
  return absl::OkStatus();
}

absl::Status CpuBackend::DoFromWorking(int64_t n, const void* src, float* dst, Stream*) {
  std::memcpy(dst, src, n * sizeof(float));
  return absl::OkStatus();
}

}  // namespace cairn::runtime
