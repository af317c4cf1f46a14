// runtime/compute/reference/reference_ops.h — naive loop implementations of every ComputeBackend
// operation: the oracle the backends are tested against.
//
// Overview
// --------
// Each function is the definition of its operation written as directly as possible, templated on
// the scalar type so that the tests run it in double precision: a backend's fp32 result is compared
// with the double result (relative error < 1e-5 for the CPU backend), and each backward here is
// itself checked against central finite differences of its forward in double
// (reference_ops_test.cc). Where a formula has a fast form and a naive one the naive one is used,
// so the oracle is not the backend's algorithm restated: attention materialises the probability
// matrix and backpropagates through the softmax Jacobian (the backend recomputes P from the
// logsumexp); the norms' backward multiplies by the explicit Jacobian; cross-entropy is computed
// over the whole vocabulary at once (the backend splits it in three passes).
//
//   std::vector<double> out(m * n);
//   reference::MatmulForward<double>(MatmulShape::Linear(m, k, n), a.data(), w.data(), nullptr,
//                                    out.data(), false);
//
// Contract: the same shapes, layouts and accumulation rules as compute_backend.h (shapes are
// assumed valid: the tests validate through the backend). Not for production: O(T^2) memory in
// attention, O(C^2) per row in the norms' backward. Thread-safe: no state.
#ifndef CAIRN_RUNTIME_COMPUTE_REFERENCE_REFERENCE_OPS_H_
#define CAIRN_RUNTIME_COMPUTE_REFERENCE_REFERENCE_OPS_H_

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

#include "runtime/compute/compute_backend.h"

namespace cairn::runtime::reference {

// ---- Matmul -----------------------------------------------------------------------------------

// Element (i, p) of op(A) and (p, j) of op(B), reading the stored layouts.
inline int64_t IndexA(const MatmulShape& s, int64_t i, int64_t p) {
  return s.transpose_a ? p * s.m + i : i * s.k + p;
}
inline int64_t IndexB(const MatmulShape& s, int64_t p, int64_t j) {
  return s.transpose_b ? j * s.k + p : p * s.n + j;
}

template <typename T>
void MatmulForward(const MatmulShape& s, const T* a, const T* b, const T* bias, T* c,
                   bool accumulate) {
  for (int64_t i = 0; i < s.m; ++i) {
    for (int64_t j = 0; j < s.n; ++j) {
      T sum = bias != nullptr ? bias[j] : T(0);
      for (int64_t p = 0; p < s.k; ++p) sum += a[IndexA(s, i, p)] * b[IndexB(s, p, j)];
      c[i * s.n + j] = (accumulate ? c[i * s.n + j] : T(0)) + sum;
    }
  }
}

template <typename T>
void MatmulBackward(const MatmulShape& s, const T* a, const T* b, const T* dc, T* da, T* db,
                    T* dbias, bool accumulate_da) {
  // dC/dA(i,p) = B(p,j), dC/dB(p,j) = A(i,p), element by element.
  if (da != nullptr) {
    for (int64_t i = 0; i < s.m; ++i) {
      for (int64_t p = 0; p < s.k; ++p) {
        T sum = 0;
        for (int64_t j = 0; j < s.n; ++j) sum += dc[i * s.n + j] * b[IndexB(s, p, j)];
        T& out = da[IndexA(s, i, p)];
        out = (accumulate_da ? out : T(0)) + sum;
      }
    }
  }
  if (db != nullptr) {
    for (int64_t p = 0; p < s.k; ++p) {
      for (int64_t j = 0; j < s.n; ++j) {
        T sum = 0;
        for (int64_t i = 0; i < s.m; ++i) sum += a[IndexA(s, i, p)] * dc[i * s.n + j];
        db[IndexB(s, p, j)] += sum;
      }
    }
  }
  if (dbias != nullptr) {
    for (int64_t j = 0; j < s.n; ++j) {
      for (int64_t i = 0; i < s.m; ++i) dbias[j] += dc[i * s.n + j];
    }
  }
}

// ---- Normalisation ----------------------------------------------------------------------------

template <typename T>
void LayerNormForward(const NormShape& s, const T* inp, const T* weight, const T* bias, T* out,
                      T* rstd) {
  const int64_t C = s.cols;
  for (int64_t r = 0; r < s.rows; ++r) {
    const T* x = inp + r * C;
    T mean = 0, var = 0;
    for (int64_t c = 0; c < C; ++c) mean += x[c];
    mean /= C;
    for (int64_t c = 0; c < C; ++c) var += (x[c] - mean) * (x[c] - mean);
    var /= C;
    const T rs = T(1) / std::sqrt(var + T(s.eps));
    for (int64_t c = 0; c < C; ++c) {
      out[r * C + c] = (x[c] - mean) * rs * weight[c] + (bias != nullptr ? bias[c] : T(0));
    }
    rstd[r] = rs;
  }
}

// Backward through the explicit Jacobian d xhat_c / d x_j = rs (delta_cj - 1/C) - rs xhat_c xhat_j
// / C.
template <typename T>
void LayerNormBackward(const NormShape& s, const T* inp, const T* weight, const T* rstd,
                       const T* dout, T* dinp, T* dweight, T* dbias, bool accumulate_dinp) {
  const int64_t C = s.cols;
  std::vector<T> xhat(C);
  for (int64_t r = 0; r < s.rows; ++r) {
    const T* x = inp + r * C;
    const T* dy = dout + r * C;
    const T rs = rstd[r];
    T mean = 0;
    for (int64_t c = 0; c < C; ++c) mean += x[c];
    mean /= C;
    for (int64_t c = 0; c < C; ++c) xhat[c] = (x[c] - mean) * rs;
    for (int64_t j = 0; j < C; ++j) {
      T grad = 0;
      for (int64_t c = 0; c < C; ++c) {
        const T jacobian = rs * ((c == j ? T(1) : T(0)) - T(1) / C) - rs * xhat[c] * xhat[j] / C;
        grad += dy[c] * weight[c] * jacobian;
      }
      dinp[r * C + j] = (accumulate_dinp ? dinp[r * C + j] : T(0)) + grad;
    }
    for (int64_t c = 0; c < C; ++c) {
      dweight[c] += dy[c] * xhat[c];
      if (dbias != nullptr) dbias[c] += dy[c];
    }
  }
}

template <typename T>
void RmsNormForward(const NormShape& s, const T* inp, const T* weight, T* out, T* rstd) {
  const int64_t C = s.cols;
  for (int64_t r = 0; r < s.rows; ++r) {
    const T* x = inp + r * C;
    T mean_square = 0;
    for (int64_t c = 0; c < C; ++c) mean_square += x[c] * x[c];
    mean_square /= C;
    const T rs = T(1) / std::sqrt(mean_square + T(s.eps));
    for (int64_t c = 0; c < C; ++c) out[r * C + c] = x[c] * rs * weight[c];
    rstd[r] = rs;
  }
}

// Jacobian d xhat_c / d x_j = rs delta_cj - rs^3 x_c x_j / C.
template <typename T>
void RmsNormBackward(const NormShape& s, const T* inp, const T* weight, const T* rstd,
                     const T* dout, T* dinp, T* dweight, bool accumulate_dinp) {
  const int64_t C = s.cols;
  for (int64_t r = 0; r < s.rows; ++r) {
    const T* x = inp + r * C;
    const T* dy = dout + r * C;
    const T rs = rstd[r];
    for (int64_t j = 0; j < C; ++j) {
      T grad = 0;
      for (int64_t c = 0; c < C; ++c) {
        const T jacobian = (c == j ? rs : T(0)) - rs * rs * rs * x[c] * x[j] / C;
        grad += dy[c] * weight[c] * jacobian;
      }
      dinp[r * C + j] = (accumulate_dinp ? dinp[r * C + j] : T(0)) + grad;
    }
    for (int64_t c = 0; c < C; ++c) dweight[c] += dy[c] * x[c] * rs;
  }
}

// ---- Activations ------------------------------------------------------------------------------

template <typename T>
T Gelu(T x) {
  const T s = std::sqrt(T(2) / T(M_PI));
  return T(0.5) * x * (T(1) + std::tanh(s * (x + T(0.044715) * x * x * x)));
}

template <typename T>
T GeluDerivative(T x) {
  const T s = std::sqrt(T(2) / T(M_PI));
  const T u = s * (x + T(0.044715) * x * x * x);
  const T sech2 = T(1) / (std::cosh(u) * std::cosh(u));
  return T(0.5) * (T(1) + std::tanh(u)) + T(0.5) * x * sech2 * s * (T(1) + T(3 * 0.044715) * x * x);
}

template <typename T>
void GeluForward(int64_t n, const T* inp, T* out) {
  for (int64_t i = 0; i < n; ++i) out[i] = Gelu(inp[i]);
}

template <typename T>
void GeluBackward(int64_t n, const T* inp, const T* dout, T* dinp) {
  for (int64_t i = 0; i < n; ++i) dinp[i] = dout[i] * GeluDerivative(inp[i]);
}

template <typename T>
T Sigmoid(T x) {
  return T(1) / (T(1) + std::exp(-x));
}

template <typename T>
void SwiGluForward(int64_t n, const T* gate, const T* up, T* out) {
  for (int64_t i = 0; i < n; ++i) out[i] = gate[i] * Sigmoid(gate[i]) * up[i];
}

template <typename T>
void SwiGluBackward(int64_t n, const T* gate, const T* up, const T* dout, T* dgate, T* dup) {
  for (int64_t i = 0; i < n; ++i) {
    const T sig = Sigmoid(gate[i]);
    // d/dg [g sig(g)] = sig + g sig (1 - sig)
    dgate[i] = dout[i] * up[i] * (sig + gate[i] * sig * (T(1) - sig));
    dup[i] = dout[i] * gate[i] * sig;
  }
}

// ---- RoPE -------------------------------------------------------------------------------------

// Applies R(angle) = [[cos, -sin], [sin, cos]] (transpose: R^T) to each (i, i + D/2) pair.
template <typename T>
void RopeApply(const RopeShape& s, const T* inp, T* out, bool transpose) {
  const int64_t D = s.head_dim, half = D / 2;
  const int64_t stride = s.token_stride != 0 ? s.token_stride : s.num_heads * D;
  for (int64_t b = 0; b < s.batch; ++b) {
    for (int64_t t = 0; t < s.seq; ++t) {
      for (int64_t h = 0; h < s.num_heads; ++h) {
        const int64_t base = (b * s.seq + t) * stride + h * D;
        for (int64_t i = 0; i < half; ++i) {
          const double angle = static_cast<double>(s.position_offset + t) *
                               std::pow(static_cast<double>(s.theta), -2.0 * i / D);
          const T c = static_cast<T>(std::cos(angle));
          const T sn = static_cast<T>(transpose ? -std::sin(angle) : std::sin(angle));
          const T x1 = inp[base + i], x2 = inp[base + i + half];
          out[base + i] = c * x1 - sn * x2;
          out[base + i + half] = sn * x1 + c * x2;
        }
      }
    }
  }
}

template <typename T>
void RopeForward(const RopeShape& s, const T* inp, T* out) {
  RopeApply(s, inp, out, false);
}

template <typename T>
void RopeBackward(const RopeShape& s, const T* dout, T* dinp) {
  RopeApply(s, dout, dinp, true);
}

// ---- Attention --------------------------------------------------------------------------------

// Offsets of (b, t, local head h, d) in q / out and of (b, t, local kv head g, d) in k, v.
inline int64_t QIndex(const AttentionShape& s, int64_t b, int64_t t, int64_t h, int64_t d) {
  return (b * s.seq + t) * s.q_token_stride() + h * s.head_dim + d;
}
inline int64_t KvIndex(const AttentionShape& s, int64_t b, int64_t t, int64_t g, int64_t d) {
  return (b * s.seq + t) * s.kv_token_stride() + g * s.head_dim + d;
}
inline int64_t OutIndex(const AttentionShape& s, int64_t b, int64_t t, int64_t h, int64_t d) {
  return ((b * s.seq + t) * s.local_heads() + h) * s.head_dim + d;
}
inline int64_t LocalKvHead(const AttentionShape& s, int64_t h) {
  return (s.head_begin + h) / (s.num_heads / s.num_kv_heads) - s.kv_begin();
}

// Probabilities P[i][j] of one (b, h): softmax over j <= i of q_i.k_j / sqrt(D); also the lse.
template <typename T>
std::vector<std::vector<T>> AttentionProbabilities(const AttentionShape& s, const T* q, const T* k,
                                                   int64_t b, int64_t h, std::vector<T>* lse) {
  const int64_t Tn = s.seq, D = s.head_dim, g = LocalKvHead(s, h);
  const T scale = T(1) / std::sqrt(T(D));
  std::vector<std::vector<T>> p(Tn, std::vector<T>(Tn, T(0)));
  lse->assign(Tn, T(0));
  for (int64_t i = 0; i < Tn; ++i) {
    std::vector<T> scores(i + 1);
    T row_max = -std::numeric_limits<T>::infinity();
    for (int64_t j = 0; j <= i; ++j) {
      T dot = 0;
      for (int64_t d = 0; d < D; ++d) dot += q[QIndex(s, b, i, h, d)] * k[KvIndex(s, b, j, g, d)];
      scores[j] = dot * scale;
      row_max = std::max(row_max, scores[j]);
    }
    T sum = 0;
    for (int64_t j = 0; j <= i; ++j) sum += std::exp(scores[j] - row_max);
    for (int64_t j = 0; j <= i; ++j) p[i][j] = std::exp(scores[j] - row_max) / sum;
    (*lse)[i] = row_max + std::log(sum);
  }
  return p;
}

template <typename T>
void AttentionForward(const AttentionShape& s, const T* q, const T* k, const T* v, T* out, T* lse) {
  const int64_t Tn = s.seq, D = s.head_dim, H = s.local_heads();
  for (int64_t b = 0; b < s.batch; ++b) {
    for (int64_t h = 0; h < H; ++h) {
      std::vector<T> row_lse;
      const auto p = AttentionProbabilities(s, q, k, b, h, &row_lse);
      const int64_t g = LocalKvHead(s, h);
      for (int64_t i = 0; i < Tn; ++i) {
        for (int64_t d = 0; d < D; ++d) {
          T sum = 0;
          for (int64_t j = 0; j < Tn; ++j) sum += p[i][j] * v[KvIndex(s, b, j, g, d)];
          out[OutIndex(s, b, i, h, d)] = sum;
        }
        lse[(b * H + h) * Tn + i] = row_lse[i];
      }
    }
  }
}

// dV = P^T dO, dP = dO V^T, dS = softmax Jacobian applied row by row: dS_ij = P_ij (dP_ij -
// sum_k P_ik dP_ik), dQ = dS K / sqrt(D), dK = dS^T Q / sqrt(D). (out and lse are not needed.)
template <typename T>
void AttentionBackward(const AttentionShape& s, const T* q, const T* k, const T* v, const T* dout,
                       T* dq, T* dk, T* dv) {
  const int64_t Tn = s.seq, D = s.head_dim, H = s.local_heads(), G = s.local_kv_heads();
  const T scale = T(1) / std::sqrt(T(D));
  for (int64_t b = 0; b < s.batch; ++b) {
    for (int64_t t = 0; t < Tn; ++t) {
      for (int64_t g = 0; g < G; ++g) {
        for (int64_t d = 0; d < D; ++d) {
          dk[KvIndex(s, b, t, g, d)] = T(0);
          dv[KvIndex(s, b, t, g, d)] = T(0);
        }
      }
    }
    for (int64_t h = 0; h < H; ++h) {
      std::vector<T> unused_lse;
      const auto p = AttentionProbabilities(s, q, k, b, h, &unused_lse);
      const int64_t g = LocalKvHead(s, h);
      std::vector<std::vector<T>> dp(Tn, std::vector<T>(Tn, T(0)));
      for (int64_t i = 0; i < Tn; ++i) {
        for (int64_t j = 0; j < Tn; ++j) {
          for (int64_t d = 0; d < D; ++d) {
            dp[i][j] += dout[OutIndex(s, b, i, h, d)] * v[KvIndex(s, b, j, g, d)];
          }
        }
      }
      for (int64_t i = 0; i < Tn; ++i) {
        T row_dot = 0;
        for (int64_t j = 0; j < Tn; ++j) row_dot += p[i][j] * dp[i][j];
        for (int64_t d = 0; d < D; ++d) dq[QIndex(s, b, i, h, d)] = T(0);
        for (int64_t j = 0; j < Tn; ++j) {
          const T ds = p[i][j] * (dp[i][j] - row_dot);
          for (int64_t d = 0; d < D; ++d) {
            dq[QIndex(s, b, i, h, d)] += ds * k[KvIndex(s, b, j, g, d)] * scale;
            dk[KvIndex(s, b, j, g, d)] += ds * q[QIndex(s, b, i, h, d)] * scale;
            dv[KvIndex(s, b, j, g, d)] += p[i][j] * dout[OutIndex(s, b, i, h, d)];
          }
        }
      }
    }
  }
}

// ---- Embedding --------------------------------------------------------------------------------

template <typename T>
void EmbeddingForward(const EmbeddingShape& s, const int32_t* tokens, const T* wte, const T* wpe,
                      T* out) {
  const int64_t C = s.channels;
  for (int64_t b = 0; b < s.batch; ++b) {
    for (int64_t t = 0; t < s.seq; ++t) {
      const int64_t token = tokens[b * s.seq + t];
      const bool local = token >= s.vocab_begin && token < s.vocab_end;
      for (int64_t c = 0; c < C; ++c) {
        T value = local ? wte[(token - s.vocab_begin) * C + c] : T(0);
        if (wpe != nullptr) value += wpe[(s.position_offset + t) * C + c];
        out[(b * s.seq + t) * C + c] = value;
      }
    }
  }
}

template <typename T>
void EmbeddingBackward(const EmbeddingShape& s, const int32_t* tokens, const T* dout, T* dwte,
                       T* dwpe) {
  const int64_t C = s.channels;
  for (int64_t b = 0; b < s.batch; ++b) {
    for (int64_t t = 0; t < s.seq; ++t) {
      const int64_t token = tokens[b * s.seq + t];
      const bool local = token >= s.vocab_begin && token < s.vocab_end;
      for (int64_t c = 0; c < C; ++c) {
        const T g = dout[(b * s.seq + t) * C + c];
        if (local) dwte[(token - s.vocab_begin) * C + c] += g;
        if (dwpe != nullptr) dwpe[(s.position_offset + t) * C + c] += g;
      }
    }
  }
}

// ---- Cross-entropy (whole local vocabulary at once) --------------------------------------------

// losses[i] = -log softmax(logits_i)[target_i]; dlogits = loss_scale (softmax - onehot); targets <
// 0 ignored (0 loss, 0 gradient). Targets outside [vocab_begin, vocab_end) are not supported here:
// the oracle is for the unsplit computation (shape.vocab_begin = 0, vocab_end = vocab_size).
template <typename T>
void CrossEntropy(const CrossEntropyShape& s, const T* logits, const int32_t* targets, T loss_scale,
                  T* losses, T* dlogits) {
  const int64_t V = s.local_vocab();
  for (int64_t i = 0; i < s.tokens; ++i) {
    const T* row = logits + i * V;
    const int64_t target = targets[i];
    if (target < 0) {
      losses[i] = 0;
      for (int64_t j = 0; j < V; ++j) dlogits[i * V + j] = 0;
      continue;
    }
    const T row_max = *std::max_element(row, row + V);
    T sum = 0;
    for (int64_t j = 0; j < V; ++j) sum += std::exp(row[j] - row_max);
    const T log_z = row_max + std::log(sum);
    losses[i] = log_z - row[target - s.vocab_begin];
    for (int64_t j = 0; j < V; ++j) {
      const T prob = std::exp(row[j] - log_z);
      dlogits[i * V + j] = loss_scale * (prob - (s.vocab_begin + j == target ? T(1) : T(0)));
    }
  }
}

// ---- Residual, optimizer, utilities -------------------------------------------------------------

template <typename T>
void ResidualForward(int64_t n, const T* a, const T* b, T* out) {
  for (int64_t i = 0; i < n; ++i) out[i] = a[i] + b[i];
}

template <typename T>
void AdamWUpdate(int64_t n, const AdamWConfig& c, int64_t step, bool apply_weight_decay,
                 T grad_scale, T* params, const T* grads, T* m, T* v) {
  const T b1 = c.beta1, b2 = c.beta2;
  for (int64_t i = 0; i < n; ++i) {
    const T g = grads[i] * grad_scale;
    m[i] = b1 * m[i] + (T(1) - b1) * g;
    v[i] = b2 * v[i] + (T(1) - b2) * g * g;
    const T m_hat = m[i] / (T(1) - std::pow(b1, T(step)));
    const T v_hat = v[i] / (T(1) - std::pow(b2, T(step)));
    const T decay = apply_weight_decay ? T(c.weight_decay) * params[i] : T(0);
    params[i] -= T(c.learning_rate) * (m_hat / (std::sqrt(v_hat) + T(c.eps)) + decay);
  }
}

template <typename T>
T NormSquared(int64_t n, const T* x) {
  T sum = 0;
  for (int64_t i = 0; i < n; ++i) sum += x[i] * x[i];
  return sum;
}

}  // namespace cairn::runtime::reference

#endif  // CAIRN_RUNTIME_COMPUTE_REFERENCE_REFERENCE_OPS_H_
