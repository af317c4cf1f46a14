#include "planner/cli/export.h"

#include <algorithm>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/units.h"
#include "planner/catalog/galvatron.h"
#include "planner/cost/evaluate.h"
#include "planner/plan/plan_convert.h"

namespace cairn::cli {
namespace {

struct Candidate {
  double per_sample_s;
  planner::PlanSpec plan;
  std::string label;
};

}  // namespace

int PrintExport(const planner::SearchProblem& problem, const cairn::v1::SearchResponse& response,
                const std::string& format, bool allow_resplit, std::ostream& out,
                std::ostream& err) {
  if (format != "megatron" && format != "galvatron") {
    err << "cairn: --format must be text, json, megatron or galvatron\n";
    return 2;
  }
  if (response.plans_size() == 0) {
    err << "cairn: " << response.infeasible_reason() << "\n";
    return 1;
  }
  planner::SearchProblem pb = problem;
  pb.hardware.num_nodes = response.plans(0).num_nodes();
  pb.hardware.devices_per_node = response.plans(0).devices_per_node();
  std::vector<Candidate> candidates;
  auto add = [&](const cairn::v1::Plan& p, const std::string& label) {
    absl::StatusOr<planner::PlanSpec> spec = planner::PlanSpecFromProto(pb, p);
    if (!spec.ok() || spec->global_batch <= 0) return;
    candidates.push_back({p.prediction().step_time_s() / spec->global_batch, *spec, label});
  };
  for (int i = 0; i < response.plans_size(); ++i) {
    add(response.plans(i), i == 0 ? "the best plan" : "search plan");
  }
  for (const cairn::v1::Baseline& b : response.baselines()) {
    if (b.feasible()) add(b.plan(), absl::StrCat(b.family(), " (", b.description(), ")"));
  }
  if (candidates.empty()) {
    err << "cairn: the answer's plans do not match the problem\n";
    return 1;
  }
  const double best_step_s = response.plans(0).prediction().step_time_s();
  if (format == "megatron" && allow_resplit) {
    const size_t n = candidates.size();
    for (size_t i = 0; i < n; ++i) {
      if (planner::MegatronFlags(pb, candidates[i].plan).ok()) continue;
      planner::Evaluation e;
      absl::StatusOr<planner::PlanSpec> q = planner::MegatronStageSplit(pb, candidates[i].plan, &e);
      if (!q.ok()) continue;
      candidates.push_back({e.step_time_s / q->global_batch, *q,
                            candidates[i].label + " with stages re-split for Megatron-LM"});
    }
  }
  std::stable_sort(candidates.begin(), candidates.end(),
                   [](const Candidate& x, const Candidate& y) {
                     return x.per_sample_s < y.per_sample_s;
                   });
  absl::Status first_error;
  for (const Candidate& c : candidates) {
    absl::StatusOr<std::string> text =
        format == "megatron"
            ? planner::MegatronFlags(pb, c.plan)
            : planner::ExportGalvatronStrategy(c.plan, pb.model, pb.hardware.num_devices());
    if (!text.ok()) {
      if (first_error.ok()) first_error = text.status();
      continue;
    }
    if (c.label != "the best plan") {
      err << "cairn: the best plan is not expressible in " << format << " ("
          << first_error.message() << "); printing " << c.label << ", "
          << FormatSeconds(c.per_sample_s * c.plan.global_batch) << " per step vs "
          << FormatSeconds(best_step_s) << "\n";
    }
    out << *text << "\n";
    return 0;
  }
  err << "cairn: no plan that fits is expressible in " << format << ": " << first_error.message()
      << "\n";
  for (const cairn::v1::Baseline& b : response.baselines()) {
    if (!b.feasible() && format == "megatron" && absl::StartsWith(b.family(), "megatron")) {
      err << "  " << b.family() << " baseline: " << b.reason() << "\n";
    }
  }
  return 1;
}

}  // namespace cairn::cli
