// planner/plan/plan_convert.h — between the plain PlanSpec/Evaluation and the cairn.v1.Plan message,
// its stable JSON form, and the flags other frameworks take.
//
//   cairn::v1::Plan proto = ToPlanProto(problem, spec, evaluation, provenance);
//   absl::StatusOr<std::string> json = PlanToJson(proto);          // stable, snake_case fields
//   absl::StatusOr<cairn::v1::Plan> back = PlanFromJson(*json);
//   absl::StatusOr<PlanSpec> spec2 = PlanSpecFromProto(problem, *back);   // validated shape
//   absl::StatusOr<std::string> flags = MegatronFlags(problem, spec);     // Unimplemented if not
//                                                                         // expressible
#ifndef CAIRN_PLANNER_PLAN_PLAN_CONVERT_H_
#define CAIRN_PLANNER_PLAN_PLAN_CONVERT_H_

#include <string>

#include "absl/status/statusor.h"
#include "common/plan/plan_proto.h"
#include "common/version.h"
#include "planner/cost/evaluate.h"
#include "planner/problem/problem.h"
#include "planner/search/search.h"
#include "proto/cairn/v1/plan.pb.h"
#include "proto/cairn/v1/search.pb.h"

namespace cairn::planner {

using ::cairn::plan::kPlanFormatVersion;
// Version string recorded in every plan's provenance (common/version.h).
using ::cairn::kCairnVersion;

struct ProvenanceInfo {
  std::string hardware_profile;   // e.g. "h100-sxm (default)"
  std::string model_profile;      // "analytic" or a profile source
  double search_time_s = 0;
  int64_t candidates_evaluated = 0;
};

cairn::v1::Plan ToPlanProto(const SearchProblem& problem, const PlanSpec& plan,
                            const Evaluation& evaluation, const ProvenanceInfo& provenance);

// A whole search result as the cairn.v1.SearchResponse the planner daemon returns: every plan (best
// first) and every baseline (with its plan when feasible), the gain, time and counts.
cairn::v1::SearchResponse ToSearchResponse(const SearchProblem& problem, const SearchResult& result,
                                           const ProvenanceInfo& provenance);

// The plan's strategy part, checked against the problem (layer count, stage sizes, degrees).
// InvalidArgument names the first problem found.
absl::StatusOr<PlanSpec> PlanSpecFromProto(const SearchProblem& problem,
                                           const cairn::v1::Plan& plan);

absl::StatusOr<std::string> PlanToJson(const cairn::v1::Plan& plan);
// Accepts the JSON written by PlanToJson (unknown fields rejected); FailedPrecondition for another
// format_version major.
absl::StatusOr<cairn::v1::Plan> PlanFromJson(const std::string& json);

// Megatron-LM command-line flags for a plan Megatron can run: one strategy for all blocks, Megatron
// TP (with or without --sequence-parallel), no Ulysses, DDP or ZeRO-1 (--use-distributed-optimizer),
// 1F1B or interleaved 1F1B, and a stage split MegatronSplitOf accepts (planner/cost/
// runtime_traits.h: the megatron-core traits' own check), rendered as it says: equal slots as
// --account-for-embedding-in-pipeline-split --account-for-loss-in-pipeline-split, interleaved
// chunks as --num-layers-per-virtual-pipeline-stage (slots counted when accounted for), uneven
// 1F1B ends as --decoder-first/last-pipeline-num-layers.
// Unimplemented, saying why, otherwise. The line carries the model's architecture (layers, widths,
// heads, query groups, positions, vocabulary, norm, activation, untied embeddings, biases),
// recomputation, --overlap-grad-reduce when data parallel (the cost model hides that reduction
// under the backward), the batch and sequence shape, and --bf16 for bf16 plans.
absl::StatusOr<std::string> MegatronFlags(const SearchProblem& problem, const PlanSpec& plan);

// `plan` with its blocks re-split over the same pipeline stages the way Megatron-LM can express:
// equal middle stages, the remainder on the first and last (--decoder-first/last-pipeline-num-
// layers); of those splits, the one the cost model scores fastest among those that fit. Only the
// stage split changes. `evaluation` receives its score. NotFound when the plan mixes strategies
// over its blocks, has one stage, is not 1F1B, or no such split fits.
absl::StatusOr<PlanSpec> MegatronStageSplit(const SearchProblem& problem, const PlanSpec& plan,
                                            Evaluation* evaluation);

}  // namespace cairn::planner

#endif  // CAIRN_PLANNER_PLAN_PLAN_CONVERT_H_
