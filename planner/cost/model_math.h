// planner/cost/model_math.h — parameter, FLOP and activation counts of a transformer, from its dims.
//
// Pure functions of ModelDims; no hardware. They define what "a layer" is for the cost model and for
// the runtime that has to match it (docs/cost-model.md lists every assumption):
//   - a block is attention (QKV, output projection) + MLP (GELU: 2 matrices, SwiGLU: 3) + 2 norms;
//   - the embedding is the token table (+ learned positions); the head is the final norm + the LM
//     head matrix (absent when tied and on the same stage as the embedding) + cross-entropy.
//
//   ModelDims m = ...;
//   LayerParams p = BlockParams(m);        // counts of one unsharded block
//   int64_t on_device = p.PerDevice(4);    // Megatron TP degree 4
#ifndef CAIRN_PLANNER_COST_MODEL_MATH_H_
#define CAIRN_PLANNER_COST_MODEL_MATH_H_

#include <cstdint>

#include "planner/problem/problem.h"

namespace cairn::planner {

// Parameter counts of one layer, split by how Megatron tensor parallelism treats them.
struct LayerParams {
  int64_t sharded = 0;     // split over the TP group (matrices, column-parallel biases, vocab rows)
  int64_t replicated = 0;  // kept whole on every TP rank (norms, row-parallel biases, positions)
  // Tensors of one row (norm weights and biases, biases), one each on every device that holds the
  // layer: per-tensor kernels on them (the step's gradient norm and AdamW) cost a launch each.
  int vectors = 0;

  int64_t total() const { return sharded + replicated; }
  // Parameters held by one device at TP degree `tp` (ceil for uneven vocab splits).
  int64_t PerDevice(int tp) const { return (sharded + tp - 1) / tp + replicated; }
};

// Head dimension and the width of the key (or value) projection.
int HeadDim(const ModelDims& m);
int KvWidth(const ModelDims& m);
// Key/value heads a Megatron TP group of `tp` ranks holds: the model's, or tp when TP exceeds them
// (each rank then keeps one whole head, replicated over tp / kv_heads ranks, as the runtime does).
int KvHeadsOverTp(const ModelDims& m, int tp);

// One block's tensors over a Megatron TP group of `tp` ranks (PerDevice(tp) is one rank's share).
// The counts do not depend on tp except when tp exceeds the kv heads (KvHeadsOverTp): the group
// then holds K and V tp / kv_heads times (total() counts every copy).
LayerParams BlockParams(const ModelDims& m, int tp = 1);
LayerParams EmbeddingParams(const ModelDims& m);
// `owns_lm_head`: false when embeddings are tied and the head sits on the embedding's stage.
LayerParams HeadParams(const ModelDims& m, bool owns_lm_head);
// All parameters of the model (tied matrix counted once).
int64_t TotalParams(const ModelDims& m);

// Gradients one TP rank sums with other TP ranks at the step's end (Megatron TP, not Ulysses),
// as runtime/engine/engine.cc does before the optimizer: tensors every TP rank holds whole whose
// gradients are partial sums (row-parallel output biases, learned positions, and the norms under
// sequence parallelism) over the TP group, and K/V rows shared by tp / kv_heads ranks when TP
// exceeds the kv heads over that smaller group. Elements are one rank's.
struct TpGradientSums {
  int partial_tensors = 0;
  int64_t partial_elements = 0;
  int kv_tensors = 0;
  int64_t kv_elements = 0;
  int kv_group = 1;  // ranks sharing one kv head
};
TpGradientSums TpSummedGradients(const ModelDims& m, LayerKind kind, int tp, bool sequence_parallel);

// Matrix parameters a token multiplies through in one block (for FLOP counts).
int64_t BlockMatmulParams(const ModelDims& m);

// Forward FLOPs per token of one block at sequence length `seq`, causal attention (the work a
// causal flash-attention kernel does: 2 * seq * hidden).
double BlockForwardFlopsPerToken(const ModelDims& m, int seq);
// Forward FLOPs per token of the LM head.
double HeadForwardFlopsPerToken(const ModelDims& m);
// Model FLOPs per token for MFU, by the PaLM/Megatron convention: 6 x matmul params
// + 12 x layers x hidden x seq (non-causal attention, forward + backward).
double ModelFlopsPerTokenForMfu(const ModelDims& m, int seq);
// Work actually required per token (forward + backward = 3 x forward, causal, no recomputation).
double RequiredFlopsPerToken(const ModelDims& m, int seq);

}  // namespace cairn::planner

#endif  // CAIRN_PLANNER_COST_MODEL_MATH_H_
