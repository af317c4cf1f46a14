// runtime/engine/layers.h — forward and backward of the embedding, a transformer block and the head
// under any per-layer strategy (Megatron TP, TP + sequence parallel, Ulysses), on one rank.
//
// A layer reads its input activation in its own layout (topology.h: batch slice dp_rank of dp,
// sequence slice tp_rank of tp when sequence-sharded) and writes its output in the same layout; the
// engine relocates activations between layers of different layouts. Collectives of the layer's TP
// group happen inside (Megatron's f/g operators, SP's all-gather/reduce-scatter, Ulysses'
// all-to-all); data-parallel gradient reduction does not (the engine owns it).
//
// Backward returns the complete gradient of the input in the input's layout (replicated layouts get
// the full, identical gradient on every TP rank) and accumulates parameter gradients (+=) into the
// layer's flat gradient buffer. Forward saves what backward needs (docs/cost-model.md, "Memory"); with
// recomputation only the input is saved and the forward runs again at the start of backward.
//
//   LayerRunner run(model, place, params, seq_len, micro_batch, &backend, comms, &memory);
//   Saved saved;
//   CAIRN_RETURN_IF_ERROR(run.Forward(weights, batch, x, &y, &saved));
//   CAIRN_RETURN_IF_ERROR(run.Backward(weights, batch, &saved, dy, &dx, grads));
#ifndef CAIRN_RUNTIME_ENGINE_LAYERS_H_
#define CAIRN_RUNTIME_ENGINE_LAYERS_H_

#include <map>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "planner/problem/problem.h"
#include "runtime/comm/communicator.h"
#include "runtime/compute/compute_backend.h"
#include "runtime/engine/buffer.h"
#include "runtime/engine/params.h"
#include "runtime/engine/topology.h"

namespace cairn::runtime {

// The tokens of one micro-batch (every rank holds all of them; layers take their slice).
struct MicroBatch {
  int batch = 0;                  // samples
  int seq = 0;
  std::vector<int32_t> inputs;    // [batch, seq]
  std::vector<int32_t> targets;   // [batch, seq]
};

// What a layer keeps between its forward and backward for one micro-batch.
struct Saved {
  std::map<std::string, Buffer> b;
  double loss_sum = 0;    // head: sum of token losses this rank owns (for reporting)
  int64_t loss_tokens = 0;
};

struct LayerComms {
  Communicator* tp = nullptr;      // the layer's TP / Ulysses group (null when tp = 1)
  Communicator* kv = nullptr;      // ranks sharing a key/value head under TP (null when none)
};

class LayerRunner {
 public:
  LayerRunner(const planner::ModelDims& model, const LayerPlace& place, const LayerParams& params,
              int seq_len, int micro_batch, ComputeBackend* backend, LayerComms comms,
              MemoryTracker* memory, float loss_scale);

  // Elements of this layer's local activation: (micro_batch / dp) x (seq / tp if sharded) x C.
  int64_t ActivationCount() const;

  absl::Status Forward(const float* weights, const MicroBatch& mb, const float* x, Buffer* y,
                       Saved* saved);
  // dy is ignored for the head (its gradient starts at the loss). dx is left empty for the
  // embedding.
  absl::Status Backward(const float* weights, const MicroBatch& mb, Saved* saved, const float* dy,
                        Buffer* dx, float* grads);

  const LayerPlace& place() const { return place_; }
  // Tied embeddings on one rank: the head multiplies by the embedding's `wte` rows (weights) and
  // accumulates its gradient there. Set before each head Forward/Backward.
  void SetTiedLmHead(const float* weights, float* grads) {
    tied_w_ = weights;
    tied_g_ = grads;
  }

 private:
  absl::Status EmbeddingForward(const float* w, const MicroBatch& mb, Buffer* y);
  absl::Status EmbeddingBackward(const MicroBatch& mb, const float* dy, float* g);
  absl::Status BlockForward(const float* w, const float* x, Buffer* y, Saved* s);
  absl::Status BlockBackward(const float* w, Saved* s, const float* dy, Buffer* dx, float* g);
  absl::Status HeadForward(const float* w, const MicroBatch& mb, const float* x, Saved* s);
  absl::Status HeadBackward(const float* w, Saved* s, Buffer* dx, float* g);

  // Sequence-parallel helpers over the TP group: [b, s/t, C] shards <-> [b, s, C].
  absl::Status GatherSeq(const float* shard, int64_t width, Buffer* full);
  absl::Status ReduceScatterSeq(const float* full, int64_t width, Buffer* shard);
  // Ulysses: [b, s/u, heads, D] (all `heads`) <-> [b, s, heads of my rank, D].
  absl::Status HeadsToSeq(const float* in, int64_t heads, bool kv, Buffer* out);
  absl::Status SeqToHeads(const float* in, int64_t heads, bool kv, Buffer* out);
  // The [begin, end) heads rank j of the Ulysses group works on (query or key/value heads).
  std::pair<int64_t, int64_t> UlyssesHeads(int j, bool kv) const;

  // The local heads' attention shape, the RoPE shape of this layer's projections, and the norms
  // (RMSNorm or LayerNorm by model; `prefix` names the parameters, e.g. "norm1").
  AttentionShape LocalAttention() const;
  EmbeddingShape EmbeddingShapeHere() const;
  RopeShape Rope() const;
  absl::Status NormForward(const float* w, const std::string& prefix, const NormShape& shape,
                           const float* inp, float* out, float* rstd);
  absl::Status NormBackward(const float* w, float* g, const std::string& prefix,
                            const NormShape& shape, const float* inp, const float* rstd,
                            const float* dout, float* dinp, bool accumulate);

  const float* P(const float* w, const char* name) const;
  float* G(float* g, const char* name) const;
  Buffer New(int64_t count) { return Buffer(memory_, count); }
  void SliceTokens(const std::vector<int32_t>& all, std::vector<int32_t>* out) const;

  planner::ModelDims m_;
  LayerPlace place_;
  LayerParams params_;
  int seq_;
  int micro_batch_;
  ComputeBackend* be_;
  LayerComms comms_;
  MemoryTracker* memory_;
  float loss_scale_;
  const float* tied_w_ = nullptr;
  float* tied_g_ = nullptr;
  bool ulysses_, sp_, tp_;   // mode flags (tp_: Megatron TP with t > 1)
  int64_t b_, s_loc_;        // local batch and sequence
};

}  // namespace cairn::runtime

#endif  // CAIRN_RUNTIME_ENGINE_LAYERS_H_
