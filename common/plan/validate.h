// common/plan/validate.h — every rule a plan must satisfy to be scored by the planner or run by the
// runtime. One list, used by both: the cost model calls CheckLayer for each strategy it tabulates,
// the search never emits a plan ValidatePlan refuses, and the runtime refuses a plan exactly when
// ValidatePlan reports a violation.
//
//   std::vector<std::string> v = ValidatePlan(model, plan, /*world_size=*/8, /*seq_len=*/1024);
//   if (!v.empty()) ...  // each a sentence naming the layers, the strategy and what to change
//   CAIRN_RETURN_IF_ERROR(CheckPlan(model, plan, 8, 1024));  // the same as one InvalidArgument
//
// The rules, and why each exists:
//  - shape: num_layers + 2 strategies; stages (model chunks with interleaving) cover every layer
//    once, none empty; the pipeline degree divides the devices; the global batch splits into the
//    micro-batches; 1 <= seq_len <= max_seq_len; virtual stages v >= 2 exactly with the
//    interleaved schedule, which also needs p >= 2 and a multiple of p micro-batches (its order
//    runs micro-batches in groups of p, common/plan/schedule.h).
//  - per layer (CheckLayer): the degree is a power of two dividing the stage's devices (the cost
//    model's placement rules assume powers of two); the micro-batch splits over the data-parallel
//    ranks; TP groups on consecutive ranks (strided placement is costed by the planner's model but
//    not executed by the runtime); sequence-split modes need the sequence to split; blocks need the
//    heads, the key/value heads (or a replication of them) and, for Megatron TP, the MLP width to
//    split; a vocab-parallel embedding or head needs at least one vocabulary row per rank;
//    recomputation applies to transformer blocks only.
//  - across layers: with p > 1 the micro-batch must split over the stage's devices (batch first,
//    then sequence) to cross a boundary; tied embeddings need the embedding and head to split the
//    vocabulary the same way, and across stages DDP or ZeRO-1 for both (the two copies' gradients
//    are summed before the data-parallel reduction).
#ifndef CAIRN_COMMON_PLAN_VALIDATE_H_
#define CAIRN_COMMON_PLAN_VALIDATE_H_

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "common/plan/plan.h"

namespace cairn::plan {

// The stage a layer runs on: its devices, the samples of one micro-batch, the sequence length.
struct StageShape {
  int devices = 1;
  int micro_batch = 1;
  int seq_len = 1;
};

// "" when a layer of `kind` under `s` can run on `stage`, else why not (one sentence, no layer
// index: callers prefix where).
std::string CheckLayer(const ModelDims& model, LayerKind kind, const Strategy& s,
                       const StageShape& stage);

// The model's dimensions themselves: positive sizes, heads dividing the hidden size, query heads a
// multiple of the key/value heads, an even head dimension with RoPE. "" when fine.
std::string CheckModel(const ModelDims& model);

// The rules that involve several layers or the pipeline (boundary splits, tied embeddings), for a
// plan whose shape is valid. Empty when fine.
std::vector<std::string> CheckAcrossLayers(const ModelDims& model, const PlanSpec& plan,
                                           int world_size, int seq_len);

// The shape rules alone (strategy count, stages, pipeline degree dividing the devices, batch
// splitting into micro-batches, sequence length): what must hold before any layer can be checked.
std::vector<std::string> CheckPlanShape(const ModelDims& model, const PlanSpec& plan,
                                        int world_size, int seq_len);

// Every violation of `plan` for `model` on `world_size` devices at `seq_len`, each once: layers
// with the same problem are grouped ("layers 1-32 (block, tp=3 ddp): degree 3 is not a power of
// 2"). Empty when the plan is valid. Shape violations stop the checks that depend on the shape.
std::vector<std::string> ValidatePlan(const ModelDims& model, const PlanSpec& plan, int world_size,
                                      int seq_len);

// ValidatePlan as a Status: OK, or InvalidArgument whose message lists every violation ("; ").
absl::Status CheckPlan(const ModelDims& model, const PlanSpec& plan, int world_size, int seq_len);

}  // namespace cairn::plan

#endif  // CAIRN_COMMON_PLAN_VALIDATE_H_
