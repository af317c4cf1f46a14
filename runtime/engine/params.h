// runtime/engine/params.h — the parameters of one layer on one rank, as one flat buffer.
//
// Each layer's local tensors (its tensor-parallel shard: rows of column-parallel weights, columns
// of row-parallel ones, vocabulary rows of the embedding and LM head) are laid out back to back in
// one flat buffer, so data parallelism and ZeRO treat a layer as one vector: DDP all-reduces it,
// ZeRO-1/2/3 shard it into equal contiguous pieces over the layer's data-parallel group. Every
// element knows its index in the unsharded tensor, and values are drawn from a counter-based RNG
// keyed by (seed, tensor id, global index): any plan initialises exactly the same model.
//
// Tensors are found through ParamSlots (an index per role, -1 when absent), never by name at run
// time; names ("wq", "norm1_w", ...) exist for checkpoints and messages.
//
//   LayerParams p = LayerParams::Build(model, place, /*owns_lm_head=*/true);
//   std::vector<float> values(p.size());
//   p.Initialize(seed, values.data());
//   if (p.slots().wq >= 0) { const ParamTensor& wq = p.tensors()[p.slots().wq]; ... }
#ifndef CAIRN_RUNTIME_ENGINE_PARAMS_H_
#define CAIRN_RUNTIME_ENGINE_PARAMS_H_

#include <cstdint>
#include <string>
#include <vector>

#include "common/plan/plan.h"
#include "runtime/engine/topology.h"

namespace cairn::runtime {

// One local tensor: rows x cols of the global global_rows x global_cols tensor, starting at
// (row_begin, col_begin).
struct ParamTensor {
  std::string name;
  int64_t offset = 0;         // in the layer's flat buffer, elements
  int64_t rows = 0, cols = 0;
  int64_t global_rows = 0, global_cols = 0;
  int64_t row_begin = 0, col_begin = 0;
  uint64_t tensor_id = 0;     // RNG key (shared by tied copies)
  float init_std = 0;         // normal(0, std); 0 with init_value for constants
  float init_value = 0;
  bool decay = false;         // AdamW weight decay applies (matrices)
  bool tp_replicated = false; // whole on every rank of the TP group (counted once in norms)
  bool tp_partial = false;    // replicated, but each TP rank computes only part of its gradient
                              // (sequence-parallel norms, positions added on one rank):
                              // gradients are summed over the TP group before the update
  int kv_share = 1;           // >1: a key/value head replicated on this many TP ranks (t > kv
                              // heads); their gradients are summed over those ranks
  int64_t count() const { return rows * cols; }
  int64_t GlobalIndex(int64_t local) const {
    return (row_begin + local / cols) * global_cols + col_begin + local % cols;
  }
};

// Index into LayerParams::tensors() of each role a layer may have; -1 when absent.
struct ParamSlots {
  int wte = -1, wpe = -1;                                      // embedding
  int norm1_w = -1, norm1_b = -1, norm2_w = -1, norm2_b = -1;  // block norms
  int wq = -1, wk = -1, wv = -1, bq = -1, bk = -1, bv = -1, wo = -1, bo = -1;
  int w_gate = -1, w_up = -1, b_up = -1, w_down = -1, b_down = -1;
  int norm_f_w = -1, norm_f_b = -1, lm_head = -1;              // head
};

class LayerParams {
 public:
  // The local tensors of layer `place` (its kind, strategy and ranks). `owns_lm_head`: the head
  // holds its own LM-head matrix (false when tied to the embedding on the same rank).
  static LayerParams Build(const plan::ModelDims& model, const LayerPlace& place,
                           bool owns_lm_head);

  int64_t size() const { return size_; }
  const std::vector<ParamTensor>& tensors() const { return tensors_; }
  const ParamSlots& slots() const { return slots_; }
  // Offset (elements) of the tensor in `slot`, or -1 when the slot is empty.
  int64_t OffsetOf(int slot) const { return slot < 0 ? -1 : tensors_[slot].offset; }
  // Writes the initial values of every local element into flat[0, size()).
  void Initialize(uint64_t seed, float* flat) const;

 private:
  int Add(ParamTensor t);
  std::vector<ParamTensor> tensors_;
  ParamSlots slots_;
  int64_t size_ = 0;
};

// Stable RNG key of a tensor: layer index and name.
uint64_t TensorId(int layer_index, const std::string& name);

}  // namespace cairn::runtime

#endif  // CAIRN_RUNTIME_ENGINE_PARAMS_H_
