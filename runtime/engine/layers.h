// runtime/engine/layers.h — forward and backward of the embedding, a transformer block and the head
// under any per-layer strategy (Megatron TP, TP + sequence parallel, Ulysses), on one rank.
//
// A layer reads its input activation in its own layout (common/plan/layout.h: batch slice dp_rank
// of dp, sequence slice tp_rank of tp when sequence-sharded) and writes its output in the same
// layout; the engine relocates activations between layers of different layouts. Collectives of the
// layer's TP group happen inside (Megatron's f/g operators, SP's all-gather/reduce-scatter,
// Ulysses' all-to-all); data-parallel gradient reduction does not (the engine owns it).
//
// Every tensor lives in the rank's DeviceArena (runtime/compute/arena.h) and is touched only
// through the ComputeBackend: activations and weights in the backend's working dtype, statistics
// and parameter gradients in fp32 (compute_backend.h, "Precision"). What a layer keeps between its
// forward and backward is a struct of buffers (Saved), not a map of names.
//
// Backward returns the complete gradient of the input in the input's layout (replicated layouts
// get the full, identical gradient on every TP rank) and accumulates parameter gradients (+=, fp32)
// into the layer's flat gradient buffer. Forward saves what backward needs (docs/cost-model.md,
// "Memory"); with recomputation only the input is saved and the forward runs again at the start
// of backward.
//
//   LayerRunner run(model, place, params, seq_len, micro_batch, &backend, comms, &arena, scale);
//   Saved saved;
//   CAIRN_RETURN_IF_ERROR(run.Forward(weights, batch, std::move(x), &y, &saved));
//   CAIRN_RETURN_IF_ERROR(run.Backward(weights, batch, &saved, std::move(dy), &dx, grads));
#ifndef CAIRN_RUNTIME_ENGINE_LAYERS_H_
#define CAIRN_RUNTIME_ENGINE_LAYERS_H_

#include <cstdint>
#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/plan/plan.h"
#include "runtime/comm/communicator.h"
#include "runtime/compute/arena.h"
#include "runtime/compute/compute_backend.h"
#include "runtime/engine/params.h"
#include "runtime/engine/topology.h"

namespace cairn::runtime {

// The token ids of one micro-batch on the device: every rank holds all of them, layers take their
// slice.
struct MicroBatch {
  int batch = 0;         // samples
  int seq = 0;
  ArenaBuffer inputs;    // int32 [batch, seq]
  ArenaBuffer targets;   // int32 [batch, seq]
};

// What a transformer block keeps between forward and backward (docs/cost-model.md, "Memory").
struct BlockSaved {
  ArenaBuffer x;           // input (the residual stream)
  ArenaBuffer xn1, rstd1;  // attention norm output and statistics
  ArenaBuffer q, k, v;     // projections (after RoPE), attention layout
  ArenaBuffer attn, lse;   // attention output (local heads, whole sequence) and logsumexp
  ArenaBuffer attn_shard;  // Ulysses: attention output back in the sequence-shard layout
  ArenaBuffer x1;          // residual stream after attention
  ArenaBuffer xn2, rstd2;  // MLP norm output and statistics
  ArenaBuffer up, gate, act;
};

// What the head keeps: its input, the final norm, and the logits gradient (computed with the loss
// in the forward pass).
struct HeadSaved {
  ArenaBuffer x, xn, rstd, dlogits;
};

struct Saved {
  BlockSaved block;
  HeadSaved head;
  ArenaBuffer input;      // recomputed blocks: only the input
};

struct LayerComms {
  Communicator* tp = nullptr;  // the layer's TP / Ulysses group (null when tp = 1)
  Communicator* kv = nullptr;  // ranks sharing a key/value head under TP (null when none)
};

class LayerRunner {
 public:
  // `loss_sum`: an fp32 scalar on the device to which the head adds the token losses this rank
  // reports (see loss_tokens()).
  LayerRunner(const plan::ModelDims& model, const LayerPlace& place, const LayerParams& params,
              int seq_len, int micro_batch, ComputeBackend* backend, LayerComms comms,
              DeviceArena* arena, float loss_scale, float* loss_sum);

  // Elements of this layer's local activation: (micro_batch / dp) x (seq / tp if sharded) x C.
  int64_t ActivationCount() const;

  // Consumes `x` (unused for the embedding) and writes `y` (left empty for the head). `weights`:
  // the layer's flat weights in the working dtype. `saved == nullptr` is an evaluation forward:
  // nothing is kept for a backward (every intermediate is freed before returning) and the head
  // adds its token losses to `loss_sum` without keeping the logits gradient.
  absl::Status Forward(const void* weights, const MicroBatch& mb, ArenaBuffer x, ArenaBuffer* y,
                       Saved* saved);
  // Consumes `dy` (unused for the head: its gradient starts at the loss) and writes `dx` (left
  // empty for the embedding); adds parameter gradients into `grads` (fp32, the layer's flat
  // layout).
  absl::Status Backward(const void* weights, const MicroBatch& mb, Saved* saved, ArenaBuffer dy,
                        ArenaBuffer* dx, float* grads);

  const LayerPlace& place() const { return place_; }
  // Tokens whose loss this rank added to `loss_sum` so far (the head's reporting rank).
  int64_t loss_tokens() const { return loss_tokens_; }
  void ResetLossTokens() { loss_tokens_ = 0; }
  // Tied embeddings on one rank: the head multiplies by the embedding's `wte` rows (working dtype)
  // and accumulates their gradient there (fp32). Set before each head Forward/Backward.
  void SetTiedLmHead(const void* weights, float* grads) {
    tied_w_ = weights;
    tied_g_ = grads;
  }

 private:
  absl::Status EmbeddingForward(const void* w, const MicroBatch& mb, ArenaBuffer* y);
  absl::Status EmbeddingBackward(const MicroBatch& mb, const ArenaBuffer& dy, float* g);
  absl::Status BlockForward(const void* w, ArenaBuffer x, ArenaBuffer* y, BlockSaved* s);
  absl::Status BlockBackward(const void* w, BlockSaved* s, ArenaBuffer dy, ArenaBuffer* dx,
                             float* g);
  // With `keep_gradient` false (evaluation) the logits gradient overwrites the logits (the
  // cross-entropy contract allows the alias) and is dropped with them.
  absl::Status HeadForward(const void* w, const MicroBatch& mb, ArenaBuffer x, HeadSaved* s,
                           bool keep_gradient = true);
  absl::Status HeadBackward(const void* w, HeadSaved* s, ArenaBuffer* dx, float* g);

  // Buffers of `count` elements in the working dtype / fp32 / int32.
  absl::StatusOr<ArenaBuffer> W(int64_t count) { return arena_->Allocate(count, wd_); }
  absl::StatusOr<ArenaBuffer> F32(int64_t count) {
    return arena_->Allocate(count, DType::kFloat32);
  }
  absl::StatusOr<ArenaBuffer> Copy(const ArenaBuffer& src);
  // Completes a collective with respect to the compute stream.
  absl::Status Run(absl::StatusOr<std::unique_ptr<CommHandle>> op);
  // Sums a working-dtype tensor over the TP group (in place when in == out).
  absl::Status TpAllReduce(const void* in, void* out, int64_t count);

  // Sequence-parallel helpers over the TP group: [b, s/t, width] shards <-> [b, s, width].
  absl::Status GatherSeq(const void* shard, int64_t width, ArenaBuffer* full);
  absl::Status ReduceScatterSeq(const void* full, int64_t width, ArenaBuffer* shard);
  // Ulysses: [b, s/u, heads, D] (all `heads`) <-> [b, s, heads of my rank, D].
  absl::Status HeadsToSeq(const void* in, int64_t heads, bool kv, ArenaBuffer* out);
  absl::Status SeqToHeads(const void* in, int64_t heads, bool kv, ArenaBuffer* out);
  // The [begin, end) heads rank j of the Ulysses group works on (query or key/value heads).
  std::pair<int64_t, int64_t> UlyssesHeads(int j, bool kv) const;

  AttentionShape LocalAttention() const;
  EmbeddingShape EmbeddingShapeHere() const;
  RopeShape Rope() const;
  absl::Status NormForward(const void* w, int weight_slot, int bias_slot, const NormShape& shape,
                           const void* inp, void* out, float* rstd);
  absl::Status NormBackward(const void* w, float* g, int weight_slot, int bias_slot,
                            const NormShape& shape, const void* inp, const float* rstd,
                            const void* dout, void* dinp, bool accumulate);
  // This rank's tokens of a [batch, seq] id tensor: its batch rows and, for sequence-sharded
  // layouts not split by vocabulary, its sequence slice.
  absl::StatusOr<ArenaBuffer> SliceTokens(const ArenaBuffer& all);

  // The tensor in `slot` inside the flat weights (working dtype) / gradients (fp32); nullptr when
  // the layer has no such tensor.
  const void* P(const void* w, int slot) const;
  float* G(float* g, int slot) const;

  plan::ModelDims m_;
  LayerPlace place_;
  LayerParams params_;
  const ParamSlots& slot_;
  int seq_;
  int micro_batch_;
  ComputeBackend* be_;
  LayerComms comms_;
  DeviceArena* arena_;
  DType wd_;             // working dtype
  int64_t esize_;        // its bytes per element
  Stream* stream_;       // the backend's default stream, handed to collectives
  float loss_scale_;
  float* loss_sum_;
  int64_t loss_tokens_ = 0;
  const void* tied_w_ = nullptr;
  float* tied_g_ = nullptr;
  bool ulysses_, sp_, tp_;  // mode flags (tp_: Megatron TP with t > 1)
  int64_t b_, s_loc_;       // local batch and sequence
};

}  // namespace cairn::runtime

#endif  // CAIRN_RUNTIME_ENGINE_LAYERS_H_
