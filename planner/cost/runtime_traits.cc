#include "planner/cost/runtime_traits.h"

#include <algorithm>
#include <numeric>

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
  //  - The optimizer (FusedAdam) and the gradient norm (multi_tensor_l2norm) go through
  //    multi_tensor_apply: many tensors per launch.
  //  - One TransformerConfig for every layer: one strategy for all blocks (tensor, pipeline,
  //    data parallel, sequence parallel, recomputation); no Ulysses, no ZeRO-2/3, no GPipe;
  //    pipeline splits as MegatronSplitOf describes them (below).
  RuntimeTraits t;
  t.name = "megatron-core";
  t.overlap_grad_reduce = true;
  t.overlap_param_gather = true;
  t.prefetch_zero3 = false;
  t.tp_comm_hidden = 0;
  t.blocking_sends = true;
  t.fused_qkv = true;
  t.fused_gate_up = true;
  t.per_tensor_step_end = false;
  t.per_layer_strategies = false;
  t.supports_ulysses = false;
  // TransformerConfig: num_query_groups must be a multiple of tensor_model_parallel_size.
  t.supports_kv_head_replication = false;
  t.supports_zero2 = false;
  t.supports_zero3 = false;
  t.supports_gpipe = false;
  t.megatron_pipeline_split = true;
  t.min_interleaved_stages = 3;  // arguments.py, parallel_state.py; MegatronSplitOf reads it
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

std::string CheckRuntimeSupportsLayer(const RuntimeTraits& t, const ModelDims& model,
                                      LayerKind kind, const Strategy& s) {
  if (!t.supports_ulysses && s.ulysses()) {
    return absl::StrCat("the ", t.name, " runtime has no Ulysses sequence parallelism");
  }
  if ((!t.supports_zero2 && s.dp == DpMode::kZero2) ||
      (!t.supports_zero3 && s.dp == DpMode::kZero3)) {
    return absl::StrCat("the ", t.name, " runtime has no ", ToString(s.dp));
  }
  if (!t.supports_kv_head_replication && kind == LayerKind::kBlock && !s.ulysses() &&
      s.tp > model.num_kv_heads) {
    return absl::StrCat("the ", t.name, " runtime splits key/value heads over TP ranks without "
                        "replicating them: TP ", s.tp, " exceeds the model's ",
                        model.num_kv_heads, " kv heads");
  }
  return "";
}

std::string CheckRuntimeSupports(const RuntimeTraits& t, const PlanSpec& plan,
                                 const ModelDims& model) {
  const int L = model.num_layers;
  if (plan.layers.size() != static_cast<size_t>(L + 2)) return "";  // the contract reports it
  for (size_t i = 0; i < plan.layers.size(); ++i) {
    const LayerKind kind = i == 0 ? LayerKind::kEmbedding
                                  : (i == plan.layers.size() - 1 ? LayerKind::kHead
                                                                 : LayerKind::kBlock);
    if (std::string why = CheckRuntimeSupportsLayer(t, model, kind, plan.layers[i]);
        !why.empty()) {
      return why;
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
  if (t.megatron_pipeline_split) {
    // InvalidArgument (chunks that do not add up to the model) is the plan contract's to report.
    absl::StatusOr<MegatronSplit> split = MegatronSplitOf(plan, L);
    if (!split.ok() && split.status().code() == absl::StatusCode::kUnimplemented) {
      return absl::StrCat("the ", t.name, " runtime cannot cut these stages: ",
                          split.status().message());
    }
  }
  if (plan.schedule == Schedule::kInterleaved1F1B && plan.pipeline_degree() > 1 &&
      plan.pipeline_degree() < t.min_interleaved_stages) {
    return absl::StrCat("the ", t.name, " runtime's interleaved schedule needs at least ",
                        t.min_interleaved_stages, " pipeline stages");
  }
  return "";
}

const char* ToString(ChunkLayout layout) {
  return layout == ChunkLayout::kSlots ? "slots" : "blocks";
}

std::vector<int> EqualChunkLayers(int num_layers, int chunks, ChunkLayout layout) {
  const int L = num_layers;
  if (chunks < 1 || L < 1) return {};
  std::vector<int> out(chunks);
  if (layout == ChunkLayout::kBlocks) {
    if (L % chunks != 0) return {};
    out.assign(chunks, L / chunks);
    out.front() += 1;  // the embedding
    out.back() += 1;   // the head
  } else {
    if ((L + 2) % chunks != 0) return {};
    const int slots = (L + 2) / chunks;
    // One chunk: embedding + blocks + head, slots = L + 2 >= 3. Otherwise the first and the last
    // chunk hold slots - 1 blocks, which must be at least one.
    if (chunks > 1 && slots < 2) return {};
    out.assign(chunks, slots);
  }
  return out;
}

std::vector<int> MegatronStageLayers(int num_layers, int stages) {
  const int L = num_layers, p = stages;
  if (p < 1 || p > L) return {};
  if (L % p == 0) return EqualChunkLayers(L, p, ChunkLayout::kBlocks);
  // k = ceil((L + 2) / p) blocks per middle stage; the two ends then hold
  // rest = L - (p - 2) k <= 2k - 2 blocks between them, so neither holds more than k slots with
  // its embedding or head. (p = 2: no middle stage, the ends share the blocks.)
  int k = (L + 2 + p - 1) / p;
  while (k > 1 && L - (p - 2) * k < 2) --k;
  const int rest = L - (p - 2) * k;
  if (rest < 2) return {};
  std::vector<int> out(p, k);
  out.front() = rest - rest / 2 + 1;  // the odd block goes first, beside the lighter embedding
  out.back() = rest / 2 + 1;
  return out;
}

absl::StatusOr<MegatronSplit> MegatronSplitOf(const PlanSpec& plan, int num_layers) {
  const int L = num_layers;
  const bool interleaved = plan.schedule == Schedule::kInterleaved1F1B;
  const int v = interleaved ? std::max(1, plan.virtual_stages) : 1;
  const int chunks = plan.num_chunks();
  const int p = chunks / v;
  MegatronSplit split;
  if (chunks < 1 || std::accumulate(plan.stage_layers.begin(), plan.stage_layers.end(), 0) !=
                        L + 2) {
    return absl::InvalidArgumentError(
        absl::StrCat("the chunks do not hold the model's ", L + 2, " layers"));
  }
  if (chunks == 1) return split;
  const int min_stages = MegatronCoreRuntimeTraits().min_interleaved_stages;
  if (interleaved && p < min_stages) {
    // megatron/training/arguments.py: interleaving without --overlap-p2p-comm asks for more than
    // 2 stages (two stages would exchange several sends and receives per batch); parallel_state's
    // initialize_model_parallel refuses it outright in Megatron-Core releases.
    return absl::UnimplementedError(absl::StrCat(
        "Megatron-LM's interleaved schedule needs more than ", min_stages - 1,
        " pipeline stages; this plan has ", p));
  }
  std::vector<int> blocks(plan.stage_layers);
  blocks.front() -= 1;
  blocks.back() -= 1;
  const std::vector<int> by_blocks = EqualChunkLayers(L, chunks, ChunkLayout::kBlocks);
  const std::vector<int> by_slots = EqualChunkLayers(L, chunks, ChunkLayout::kSlots);
  // Megatron's count of layers per stage and chunk: arguments.py adds one for the embedding and
  // one for the loss when they are accounted for, then divides by p and by the chunk size.
  if (plan.stage_layers == by_blocks) {
    if (interleaved) split.layers_per_virtual_stage = L / chunks;
    return split;
  }
  if (plan.stage_layers == by_slots) {
    split.account_for_embedding_and_loss = true;
    if (interleaved) split.layers_per_virtual_stage = (L + 2) / chunks;
    return split;
  }
  const std::string shape =
      absl::StrCat("this plan's ", interleaved ? "model chunks" : "stages", " hold ",
                   absl::StrJoin(blocks, ", "), " blocks");
  if (interleaved) {
    return absl::UnimplementedError(absl::StrCat(
        "Megatron-LM's interleaved schedule cuts ", L, " blocks into ", chunks,
        " model chunks of equal blocks (--num-layers-per-virtual-pipeline-stage) or of equal "
        "layer slots counting the embedding and the loss (--account-for-embedding-in-pipeline-"
        "split --account-for-loss-in-pipeline-split); ", shape));
  }
  for (int i = 1; i + 1 < p; ++i) {
    if (blocks[i] != blocks[1]) {
      return absl::UnimplementedError(absl::StrCat(
          "Megatron-LM gives every middle stage the same number of blocks (only the first and "
          "the last may differ: --decoder-first/last-pipeline-num-layers); ", shape));
    }
  }
  if (blocks.front() < 1 || blocks.back() < 1) {
    return absl::UnimplementedError(absl::StrCat(
        "Megatron-LM's --decoder-first/last-pipeline-num-layers must be at least 1 (a stage of "
        "the embedding or the head alone is only its equal-slot split); ", shape));
  }
  split.first_stage_blocks = blocks.front();
  split.last_stage_blocks = blocks.back();
  return split;
}

}  // namespace cairn::planner
