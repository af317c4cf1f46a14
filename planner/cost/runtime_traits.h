// planner/cost/runtime_traits.h — the runtimes a plan can be costed for.
//
// A cost model describes the runtime that will execute the plan: which communication overlaps which
// compute, in what dtype gradients travel, how a layer issues its GEMMs, which plans it can run at
// all. RuntimeTraits (planner/problem/problem.h) holds those facts; this file defines the built-in
// ones, selected by name (`cairn plan --runtime NAME`, SearchRequest.runtime):
//
//   cairn          Cairn's own runtime (runtime/engine), CPU and GPU — read off its code, and
//                  measured by its own tests (tests/runtime_memory_test, docs/cost-model.md).
//   megatron-core  Megatron-LM on Megatron-Core with the distributed optimizer and its overlap
//                  flags, as its documentation describes them (sources in runtime_traits.cc).
//
//   CAIRN_ASSIGN_OR_RETURN(RuntimeTraits t, RuntimeTraitsByName("megatron-core"));
//   problem.runtime = t;
//   RestrictSpaceToRuntime(t, &problem.space);   // plans the runtime cannot run are not searched
//
// Pipeline splits: EqualChunkLayers and MegatronStageLayers cut the layers; MegatronSplitOf is the
// one check of what Megatron-LM can run (CheckRuntimeSupports under megatron-core's traits, the
// search's uniform plans and planner::MegatronFlags all go through it).
//
// Thread-safe (pure functions).
#ifndef CAIRN_PLANNER_COST_RUNTIME_TRAITS_H_
#define CAIRN_PLANNER_COST_RUNTIME_TRAITS_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "planner/problem/problem.h"

namespace cairn::planner {

// Cairn's runtime (the default).
RuntimeTraits CairnRuntimeTraits();
// Megatron-LM / Megatron-Core: --use-distributed-optimizer --overlap-grad-reduce
// --overlap-param-gather, fp32 gradient reduction (bf16 with --grad-reduce-in-bf16).
RuntimeTraits MegatronCoreRuntimeTraits();

// "cairn", "megatron-core".
std::vector<std::string> RuntimeNames();
// NotFound listing the names for an unknown one.
absl::StatusOr<RuntimeTraits> RuntimeTraitsByName(const std::string& name);

// Removes from `space` what `traits`' runtime cannot run (Ulysses, ZeRO-2/3, GPipe, per-layer
// strategies): the search then proposes only plans that runtime executes.
void RestrictSpaceToRuntime(const RuntimeTraits& traits, SearchSpace* space);

// "" when `plan` can run on `traits`' runtime, else why not (one sentence). For the plan
// contract's own rules see common/plan/validate.h; these are the runtime's extra limits. Under
// `megatron_pipeline_split` the stage split is MegatronSplitOf's verdict.
std::string CheckRuntimeSupports(const RuntimeTraits& traits, const PlanSpec& plan,
                                 const ModelDims& model);
// The same for one layer's strategy (what CheckRuntimeSupports checks per layer; the cost model
// marks a layer the runtime cannot run invalid, so the search never picks it).
std::string CheckRuntimeSupportsLayer(const RuntimeTraits& traits, const ModelDims& model,
                                      LayerKind kind, const Strategy& s);

// --- Pipeline splits -----------------------------------------------------------------------
//
// A plan's `stage_layers` (common/plan/plan.h) count layers per model chunk with the embedding
// and the head as layers 0 and L+1. Two ways of cutting p x v equal chunks:
//
//   kBlocks  every chunk holds L / (p v) transformer blocks; the embedding and the head ride along
//            in the first and the last chunk (Megatron-LM's default split).
//   kSlots   every chunk holds (L + 2) / (p v) layer slots, the embedding and the head counting one
//            slot each, so the first and the last chunk hold one block less (Megatron-LM's
//            --account-for-embedding-in-pipeline-split --account-for-loss-in-pipeline-split).
//
// Llama 3 405B (126 blocks, PP 16) is the kSlots case: 126 blocks do not cut into 16 x v equal
// block chunks, 128 slots cut into 16 x 2, 16 x 4 and 16 x 8.
enum class ChunkLayout { kBlocks, kSlots };
const char* ToString(ChunkLayout layout);  // "blocks", "slots"

// stage_layers of `chunks` equal chunks of `layout` for `num_layers` blocks; empty when the blocks
// (kBlocks) or the slots (kSlots) do not divide into them, or a chunk would hold no block (a first
// or last chunk of the embedding or the head alone).
std::vector<int> EqualChunkLayers(int num_layers, int chunks, ChunkLayout layout);

// stage_layers of `stages` plain (v = 1) stages that Megatron-LM runs: equal blocks when they
// divide, else equal middle stages of ceil((L + 2) / p) blocks with the rest on the first and the
// last stage (the first takes the odd block), fewer middle blocks where the ends would otherwise
// hold none. Every stage then holds at most ceil((L + 2) / p) layer slots; when the slots divide it
// is the kSlots split (Llama 3's 126 blocks on 16 stages: 7, 8 x 14, 7). Empty when
// `stages` > `num_layers` or < 1.
std::vector<int> MegatronStageLayers(int num_layers, int stages);

// How Megatron-LM (megatron/training/arguments.py validate_args, megatron/core/transformer/
// transformer_config.py __post_init__) is told to cut a plan's layers, as its flags say it.
struct MegatronSplit {
  // --account-for-embedding-in-pipeline-split --account-for-loss-in-pipeline-split (kSlots).
  bool account_for_embedding_and_loss = false;
  // --decoder-first-pipeline-num-layers / --decoder-last-pipeline-num-layers (0: not given).
  int first_stage_blocks = 0;
  int last_stage_blocks = 0;
  // Interleaved: --num-layers-per-virtual-pipeline-stage, in Megatron's count (blocks, plus the
  // embedding and the loss when accounted for: arguments.py adds them before dividing). 0 for 1F1B.
  int layers_per_virtual_stage = 0;
};

// What Megatron-LM flags cut `plan`'s layers as the plan does, or Unimplemented saying exactly
// what it cannot express. Accepted:
//   - one stage;
//   - equal chunks of kBlocks or kSlots (interleaved: every model chunk; 1F1B: every stage), a
//     kSlots chunk holding at least one block;
//   - 1F1B only: equal middle stages with any positive block counts on the first and the last
//     stage (Megatron's --decoder-first/last-pipeline-num-layers; with virtual stages it would also
//     need --num-virtual-stages-per-pipeline-rank and equal chunks within each stage, which Cairn
//     does not render).
// Refused: interleaving on 2 stages (Megatron asks for more than 2 unless --overlap-p2p-comm,
// which Cairn does not render; RuntimeTraits::min_interleaved_stages is the search's side of
// this rule). Pure; thread-safe.
absl::StatusOr<MegatronSplit> MegatronSplitOf(const PlanSpec& plan, int num_layers);

}  // namespace cairn::planner

#endif  // CAIRN_PLANNER_COST_RUNTIME_TRAITS_H_
