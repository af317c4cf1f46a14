#include "planner/cost/model_math.h"

#include <algorithm>

namespace cairn::planner {

int HeadDim(const ModelDims& m) { return m.hidden / m.num_heads; }
int KvWidth(const ModelDims& m) { return m.num_kv_heads * HeadDim(m); }
int KvHeadsOverTp(const ModelDims& m, int tp) { return std::max(m.num_kv_heads, tp); }

LayerParams BlockParams(const ModelDims& m, int tp) {
  const int64_t h = m.hidden, f = m.ffn_hidden;
  const int64_t kv = static_cast<int64_t>(KvHeadsOverTp(m, tp)) * HeadDim(m);  // over the group
  LayerParams p;
  // Attention: Q (h x h), K and V (h x kv each) column-parallel, output (h x h) row-parallel.
  p.sharded += h * h + 2 * h * kv + h * h;
  // MLP: up (and gate) column-parallel, down row-parallel.
  p.sharded += (m.swiglu ? 3 : 2) * h * f;
  if (m.bias) {
    // Column-parallel biases of Q, K, V and the up projection; a SwiGLU MLP's gate has none (as
    // the runtime builds it: runtime/engine/params.cc).
    p.sharded += h + 2 * kv + f;
    p.replicated += 2 * h;                            // row-parallel output biases
    p.vectors += 6;  // the runtime's bq, bk, bv, bo, b_up, b_down (runtime/engine/params.cc)
  }
  p.replicated += 2 * (m.rms_norm ? h : 2 * h);       // two norms
  p.vectors += m.rms_norm ? 2 : 4;
  return p;
}

LayerParams EmbeddingParams(const ModelDims& m) {
  LayerParams p;
  p.sharded = static_cast<int64_t>(m.vocab) * m.hidden;
  if (!m.rope) p.replicated = static_cast<int64_t>(m.max_seq_len) * m.hidden;
  return p;
}

LayerParams HeadParams(const ModelDims& m, bool owns_lm_head) {
  LayerParams p;
  p.replicated = m.rms_norm ? m.hidden : 2 * m.hidden;  // final norm
  p.vectors = m.rms_norm ? 1 : 2;
  if (owns_lm_head) p.sharded = static_cast<int64_t>(m.vocab) * m.hidden;
  return p;
}

TpGradientSums TpSummedGradients(const ModelDims& m, LayerKind kind, int tp,
                                 bool sequence_parallel) {
  TpGradientSums g;
  if (tp <= 1) return g;
  const int64_t h = m.hidden;
  const int norms = m.rms_norm ? 1 : 2;  // tensors of one norm (weight, and bias)
  auto partial = [&](int tensors, int64_t each) {
    g.partial_tensors += tensors;
    g.partial_elements += tensors * each;
  };
  switch (kind) {
    case LayerKind::kEmbedding:
      if (!m.rope) partial(1, static_cast<int64_t>(m.max_seq_len) * h);
      break;
    case LayerKind::kBlock:
      if (sequence_parallel) partial(2 * norms, h);
      if (m.bias) partial(2, h);  // attention output and MLP down biases
      if (tp > m.num_kv_heads) {
        g.kv_group = tp / m.num_kv_heads;
        const int64_t rows = HeadDim(m);  // one kv head of K and of V on each rank
        g.kv_tensors = m.bias ? 4 : 2;
        g.kv_elements = 2 * rows * h + (m.bias ? 2 * rows : 0);
      }
      break;
    case LayerKind::kHead:
      if (sequence_parallel) partial(norms, h);
      break;
  }
  return g;
}

int64_t TotalParams(const ModelDims& m) {
  return EmbeddingParams(m).total() + m.num_layers * BlockParams(m).total() +
         HeadParams(m, !m.tied_embeddings).total();
}

int64_t BlockMatmulParams(const ModelDims& m) {
  const int64_t h = m.hidden, f = m.ffn_hidden, kv = KvWidth(m);
  return 2 * h * h + 2 * h * kv + (m.swiglu ? 3 : 2) * h * f;
}

double BlockForwardFlopsPerToken(const ModelDims& m, int seq) {
  return 2.0 * BlockMatmulParams(m) + 2.0 * seq * m.hidden;
}

double HeadForwardFlopsPerToken(const ModelDims& m) {
  return 2.0 * static_cast<double>(m.vocab) * m.hidden;
}

double ModelFlopsPerTokenForMfu(const ModelDims& m, int seq) {
  const double matmul = m.num_layers * static_cast<double>(BlockMatmulParams(m)) +
                        static_cast<double>(m.vocab) * m.hidden;
  return 6.0 * matmul + 12.0 * m.num_layers * static_cast<double>(m.hidden) * seq;
}

double RequiredFlopsPerToken(const ModelDims& m, int seq) {
  return 3.0 * (m.num_layers * BlockForwardFlopsPerToken(m, seq) + HeadForwardFlopsPerToken(m));
}

}  // namespace cairn::planner
