#include "planner/cost/runtime_traits.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace cairn::planner {

RuntimeTraits CairnRuntimeTraits() {
  // runtime/engine/engine.cc (docs/cost-model.md, "Data parallelism and ZeRO"):
  //  - AfterBackward starts a DDP/ZeRO-1 layer's all-reduce / reduce-scatter as soon as its
  //    backward of the last micro-batch is done; ReduceAndUpdate waits for them.
  //  - ReduceAndUpdate all-gathers ZeRO-1/2 weights after AdamW and waits: exposed.
  //  - ZeRO-3: StartGather of the next layer before UseWeights of this one.
  //  - TP/SP collectives are blocking calls inside the layer (runtime/engine/layers.cc).
  //  - Pipeline sends are StartSend handles completed later (plan::SendReleases): asynchronous.
  //  - layers.cc runs Q, K and V as three GEMMs and the SwiGLU gate and up as two.
  //  - Gradients accumulate and are reduced in fp32 (Engine::Layer::grads).
  RuntimeTraits t;
  t.name = "cairn";
  t.overlap_grad_reduce = true;
  t.overlap_param_gather = false;
  t.prefetch_zero3 = true;
  t.tp_comm_hidden = 0;
  t.blocking_sends = false;
  t.fused_qkv = false;
  t.fused_gate_up = false;
  t.grad_dtype_bytes = {4};
  return t;
}

RuntimeTraits MegatronCoreRuntimeTraits() {
  // Megatron-Core developer guide (docs.nvidia.com/megatron-core/developer-guide):
  //  - DistributedDataParallelConfig: overlap_grad_reduce "overlap grad all-reduce /
  //    reduce-scatter with backward compute" (gradients in buckets, launched as each bucket's
  //    gradients of the last micro-batch are ready); overlap_param_gather "overlap param
  //    all-gather with forward compute"; use_distributed_optimizer "issue reduce-scatter
  //    collectives" (ZeRO-1: distrib_optimizer.md, 6 + 12/d bytes per parameter for bf16
  //    params and fp32 grads, what Precision::Bf16Mixed gives ZeRO-1 here).
  //  - Megatron-LM's arguments accumulate and all-reduce gradients in fp32 for bf16 training
  //    (--accumulate-allreduce-grads-in-fp32 is forced on with --bf16); --grad-reduce-in-bf16
  //    makes them bf16.
  //  - Tensor-parallel communication overlap (--tp-comm-overlap) needs Transformer Engine's
  //    userbuffers and is off by default: TP collectives exposed.
  //  - Pipeline p2p (core/pipeline_parallel/p2p_communication.py) waits for its sends and
  //    receives together (send_forward_recv_backward ...) unless --overlap-p2p-comm
  //    (interleaved only): blocking sends.
  //  - linear_qkv and linear_fc1 (gate and up of a gated MLP) are one GEMM each.
  //  - One TransformerConfig for every layer: one strategy for all blocks (tensor, pipeline,
  //    data parallel, sequence parallel, recomputation); no Ulysses, no ZeRO-2/3, no GPipe;
  //    --num-layers-per-virtual-pipeline-stage cuts the blocks into equal chunks.
  RuntimeTraits t;
  t.name = "megatron-core";
  t.overlap_grad_reduce = true;
  t.overlap_param_gather = true;
  t.prefetch_zero3 = false;
  t.tp_comm_hidden = 0;
  t.blocking_sends = true;
  t.fused_qkv = true;
  t.fused_gate_up = true;
  t.per_layer_strategies = false;
  t.supports_ulysses = false;
  t.supports_zero2 = false;
  t.supports_zero3 = false;
  t.supports_gpipe = false;
  t.equal_chunks = true;
  t.grad_dtype_bytes = {4, 2};
  return t;
}

std::vector<std::string> RuntimeNames() { return {"cairn", "megatron-core"}; }

absl::StatusOr<RuntimeTraits> RuntimeTraitsByName(const std::string& name) {
  if (name.empty() || name == "cairn") return CairnRuntimeTraits();
  if (name == "megatron-core" || name == "megatron") return MegatronCoreRuntimeTraits();
  return absl::NotFoundError(absl::StrCat("unknown runtime '", name, "' (known: ",
                                          absl::StrJoin(RuntimeNames(), ", "), ")"));
}

void RestrictSpaceToRuntime(const RuntimeTraits& t, SearchSpace* space) {
  auto drop = [](auto* list, auto value) {
    list->erase(std::remove(list->begin(), list->end(), value), list->end());
  };
  if (!t.supports_ulysses) drop(&space->modes, ParallelMode::kUlysses);
  if (!t.supports_zero2) drop(&space->dp_modes, DpMode::kZero2);
  if (!t.supports_zero3) drop(&space->dp_modes, DpMode::kZero3);
  if (!t.supports_gpipe) drop(&space->schedules, Schedule::kGPipe);
  if (!t.per_layer_strategies) space->uniform_layers = true;
}

std::string CheckRuntimeSupports(const RuntimeTraits& t, const PlanSpec& plan, int num_layers) {
  const int L = num_layers;
  if (plan.layers.size() != static_cast<size_t>(L + 2)) return "";  // the contract reports it
  for (const Strategy& s : plan.layers) {
    if (!t.supports_ulysses && s.ulysses()) {
      return absl::StrCat("the ", t.name, " runtime has no Ulysses sequence parallelism");
    }
    if ((!t.supports_zero2 && s.dp == DpMode::kZero2) ||
        (!t.supports_zero3 && s.dp == DpMode::kZero3)) {
      return absl::StrCat("the ", t.name, " runtime has no ", ToString(s.dp));
    }
  }
  if (!t.supports_gpipe && plan.schedule == Schedule::kGPipe && plan.pipeline_degree() > 1) {
    return absl::StrCat("the ", t.name, " runtime has no GPipe schedule");
  }
  if (!t.per_layer_strategies) {
    for (int i = 2; i <= L; ++i) {
      if (plan.layers[i] != plan.layers[1]) {
        return absl::StrCat("the ", t.name, " runtime applies one strategy to every block");
      }
    }
  }
  if (t.equal_chunks && plan.schedule == Schedule::kInterleaved1F1B) {
    const int chunks = plan.num_chunks();
    for (int c = 0; c < chunks; ++c) {
      const int blocks = plan.stage_layers[c] - (c == 0) - (c == chunks - 1);
      const int first = plan.stage_layers[0] - 1;
      if (blocks != first) {
        return absl::StrCat("the ", t.name,
                            " runtime's interleaved schedule needs equal model chunks");
      }
    }
  }
  return "";
}

}  // namespace cairn::planner
