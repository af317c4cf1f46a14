#include "planner/plan/run_planning.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/status_macros.h"
#include "planner/catalog/clusters.h"
#include "planner/cost/evaluate.h"
#include "planner/cost/model_math.h"
#include "planner/problem/problem_builder.h"
#include "planner/search/search.h"

namespace cairn::planner {
namespace {

absl::StatusOr<SearchProblem> Problem(const RunRequest& r) {
  cairn::v1::SearchRequest req;
  *req.mutable_model() = r.model;
  CAIRN_ASSIGN_OR_RETURN(cairn::v1::Cluster cluster, MakeCluster(r.cluster, 1, r.world_size));
  *req.mutable_cluster() = cluster;
  req.set_dtype_bytes(r.dtype_bytes);
  req.set_memory_budget_bytes(r.memory_budget_bytes);
  req.set_global_batch_size(r.global_batch);
  req.set_seq_len(r.seq_len);
  if (r.model_profile.has_value()) *req.mutable_model_profile() = *r.model_profile;
  return BuildSearchProblem(req);
}

PlannedRun Describe(const SearchProblem& pb, const PlanSpec& plan, const Evaluation& e) {
  PlannedRun out;
  out.plan = plan;
  out.predicted_step_time_s = e.step_time_s;
  out.predicted_peak_bytes = e.PeakBytes() - pb.hardware.reserved_bytes;
  out.summary = SummarizeLayers(plan, 0, pb.model.num_layers + 2, pb.model.num_layers);
  out.model_flops_per_token = ModelFlopsPerTokenForMfu(pb.model, pb.seq_len);
  out.peak_flops_per_s = pb.hardware.peak_flops_per_s;
  return out;
}

}  // namespace

absl::StatusOr<PlannedRun> PlanRun(const RunRequest& request) {
  CAIRN_ASSIGN_OR_RETURN(SearchProblem pb, Problem(request));
  SearchOptions opt;
  opt.with_baselines = false;
  CAIRN_ASSIGN_OR_RETURN(SearchResult r, Search(pb, opt));
  if (r.plans.empty()) return absl::FailedPreconditionError(r.infeasible_reason);
  PlannedRun out = Describe(pb, r.plans[0], r.evaluations[0]);
  out.search_time_s = r.search_time_s;
  return out;
}

absl::StatusOr<PlannedRun> PredictRun(const RunRequest& request, const plan::PlanSpec& plan) {
  CAIRN_ASSIGN_OR_RETURN(SearchProblem pb, Problem(request));
  const CostModel cm(pb);
  CAIRN_ASSIGN_OR_RETURN(Evaluation e, Evaluate(cm, plan));
  if (!e.valid) {
    return absl::InvalidArgumentError(absl::StrCat("the plan cannot run: ",
                                                   absl::StrJoin(e.violations, "; ")));
  }
  return Describe(pb, plan, e);
}

}  // namespace cairn::planner
