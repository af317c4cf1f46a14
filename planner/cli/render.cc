#include "planner/cli/render.h"

#include <unistd.h>

#include <algorithm>
#include <iostream>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/units.h"
#include "planner/cost/evaluate.h"
#include "planner/problem/proto_enums.h"

namespace cairn::cli {
namespace {

std::string Pct(double x) { return absl::StrFormat("%.1f%%", 100.0 * x); }

// The plain PlanSpec of a plan message, for grouping equal layers.
planner::PlanSpec StrategiesOf(const cairn::v1::Plan& plan) {
  planner::PlanSpec s;
  for (const cairn::v1::Stage& st : plan.stages()) s.stage_layers.push_back(st.num_layers());
  for (const cairn::v1::LayerStrategy& l : plan.layers()) {
    planner::Strategy st;
    st.tp = std::max(1, l.tp_degree());
    st.mode = planner::FromProto(l.mode());
    st.dp = planner::FromProto(l.dp_mode());
    st.recompute = l.recompute();
    st.tp_consecutive = l.tp_consecutive() || st.tp == 1;
    s.layers.push_back(st);
  }
  return s;
}

}  // namespace

void RenderPlanHeader(const cairn::v1::Plan& plan, std::ostream& out) {
  const int64_t budget =
      plan.prediction().stage_memory_size() > 0 ? plan.prediction().stage_memory(0).budget_bytes() : 0;
  out << absl::StrFormat(
      "Plan for %s on %d x %s node%s (%d devices, %s per device), global batch %d, seq %d\n",
      plan.model_name(), plan.num_nodes(), plan.provenance().hardware_profile(),
      plan.num_nodes() > 1 ? "s" : "", plan.num_nodes() * plan.devices_per_node(),
      FormatBytes(budget), plan.global_batch_size(), plan.seq_len());
}

void RenderPlan(const cairn::v1::Plan& plan, std::ostream& out) {
  const cairn::v1::Prediction& p = plan.prediction();
  const int L = plan.layers_size() - 2;
  const int N = plan.num_nodes() * plan.devices_per_node();
  const int pp = std::max(1, plan.pipeline_degree());
  const planner::PlanSpec spec = StrategiesOf(plan);
  out << absl::StrFormat("  step %s | %s tokens/s | MFU %s | lower bound %s (gap %s)\n",
                         FormatSeconds(p.step_time_s()), FormatCount(p.tokens_per_s()),
                         Pct(p.mfu()), FormatSeconds(p.lower_bound_s()),
                         Pct(p.optimality_gap()));
  const int m = std::max(1, plan.num_micro_batches());
  // Per device, as Megatron users count it (--micro-batch-size; Plan.micro_batch_size).
  std::string per_device;
  if (plan.micro_batch_size() > 0) {
    per_device = absl::StrFormat(" (micro-batch size %d per device)", plan.micro_batch_size());
  }
  std::string schedule = "1f1b";
  if (plan.schedule() == cairn::v1::PIPELINE_SCHEDULE_GPIPE) schedule = "gpipe";
  if (plan.schedule() == cairn::v1::PIPELINE_SCHEDULE_INTERLEAVED_1F1B) {
    schedule = absl::StrFormat("interleaved 1f1b (%d model chunks per stage)",
                               std::max(2, plan.virtual_stages()));
  }
  out << absl::StrFormat("  pipeline: %d stage%s x %d devices, %s, %d micro-batches of %d samples%s\n",
                         pp, pp > 1 ? "s" : "", N / pp,
                         schedule, m, plan.global_batch_size() / m, per_device);
  int bottleneck = 0;
  // With interleaving (v model chunks per stage), stage s runs chunks s, s + p, ..., in model order
  // in plan.stages; the per-stage times and memory are per pipeline stage.
  const int v = std::max(1, plan.virtual_stages());
  for (int i = 0; i < pp; ++i) {
    const double fwd = i < p.stage_forward_s_size() ? p.stage_forward_s(i) : 0;
    const double bwd = i < p.stage_backward_s_size() ? p.stage_backward_s(i) : 0;
    if (i < p.stage_forward_s_size() &&
        fwd + bwd > p.stage_forward_s(bottleneck) + p.stage_backward_s(bottleneck)) {
      bottleneck = i;
    }
    std::string layers;
    for (int k = 0; k < v; ++k) {
      const int c = k * pp + i;
      if (c >= plan.stages_size()) break;
      const cairn::v1::Stage& st = plan.stages(c);
      absl::StrAppendFormat(&layers, "%s%d-%d", k ? ", " : "", st.first_layer(),
                            st.first_layer() + st.num_layers() - 1);
    }
    out << absl::StrFormat("  stage %d: layers %s, busy %s per micro-batch (fwd %s, bwd %s)\n", i,
                           layers, FormatSeconds(fwd + bwd), FormatSeconds(fwd),
                           FormatSeconds(bwd));
    for (int k = 0; k < v; ++k) {
      const int c = k * pp + i;
      if (c >= plan.stages_size()) break;
      const cairn::v1::Stage& st = plan.stages(c);
      if (v > 1) out << absl::StrFormat("    model chunk %d:\n", c);
      for (const std::string& line :
           planner::SummarizeLayers(spec, st.first_layer(), st.num_layers(), L)) {
        out << "      " << line << "\n";
      }
    }
    if (i < p.stage_memory_size()) {
      const cairn::v1::StageMemory& mem = p.stage_memory(i);
      out << absl::StrFormat(
          "      memory %s of %s: params %s, grads %s, optimizer %s, activations %s, transient "
          "%s, reserved %s\n",
          FormatBytes(mem.total_bytes()), FormatBytes(mem.budget_bytes()),
          FormatBytes(mem.parameter_bytes()), FormatBytes(mem.gradient_bytes()),
          FormatBytes(mem.optimizer_bytes()), FormatBytes(mem.activation_bytes()),
          FormatBytes(mem.transient_bytes()), FormatBytes(mem.reserved_bytes()));
    }
  }
  const cairn::v1::CostBreakdown& b = p.breakdown();
  out << absl::StrFormat(
      "  time per step (bottleneck stage %d): compute %s, TP/SP comm %s, DP comm %s, transitions "
      "%s, bubble %s, p2p %s, optimizer %s\n",
      bottleneck, FormatSeconds(b.compute_s()), FormatSeconds(b.tensor_parallel_comm_s()),
      FormatSeconds(b.data_parallel_comm_s()), FormatSeconds(b.transition_s()),
      FormatSeconds(b.bubble_s()), FormatSeconds(b.pipeline_comm_s()),
      FormatSeconds(b.optimizer_s()));
  for (const cairn::v1::StageMemory& mem : p.stage_memory()) {
    if (mem.total_bytes() > mem.budget_bytes()) {
      out << absl::StrFormat("  VIOLATION: stage %d needs %s per device, over the budget of %s\n",
                             mem.stage(), FormatBytes(mem.total_bytes()),
                             FormatBytes(mem.budget_bytes()));
    }
  }
}

void RenderSearchResponse(const cairn::v1::SearchResponse& r, bool explain, std::ostream& out) {
  if (r.plans_size() == 0) {
    out << "No plan fits: " << r.infeasible_reason() << "\n";
    return;
  }
  RenderPlanHeader(r.plans(0), out);
  for (int i = 0; i < r.plans_size(); ++i) {
    if (i == 1 && absl::StartsWith(r.plans(0).provenance().origin(), "search, simplified")) {
      out << "\nThe fastest plan found (the plan above is within --simplicity-tolerance of it, "
             "with fewer distinct strategies or changes between blocks; --simplicity-tolerance 0 "
             "returns this one first):\n";
    } else if (i > 0) {
      out << absl::StrFormat("\nAlternative %d:\n", i + 1);
    }
    RenderPlan(r.plans(i), out);
  }
  out << "\nUniform plans a user would pick by hand (same cost model):\n";
  const cairn::v1::Baseline* best = nullptr;
  for (const cairn::v1::Baseline& b : r.baselines()) {
    if (b.feasible()) {
      const cairn::v1::Prediction& p = b.plan().prediction();
      out << absl::StrFormat("  %-20s %-44s %s/step, %s tokens/s\n", b.family(), b.description(),
                             FormatSeconds(p.step_time_s()), FormatCount(p.tokens_per_s()));
      if (!best || p.samples_per_s() > best->plan().prediction().samples_per_s()) best = &b;
    } else {
      out << absl::StrFormat("  %-20s does not fit: %s\n", b.family(), b.reason());
    }
  }
  if (best) {
    out << absl::StrFormat("Gain over the best uniform plan (%s): %.2fx\n", best->family(),
                           r.gain_over_best_baseline());
  }
  const cairn::v1::Provenance& prov = r.plans(0).provenance();
  out << absl::StrFormat("Search: %s, %d plans scored; compute: %s\n",
                         FormatSeconds(r.search_time_s()),
                         static_cast<int>(r.candidates_evaluated()), prov.model_profile());
  if (explain && !r.explanation().empty()) out << "\n" << r.explanation();
}

void PrintProgress(std::ostream& err, bool tty, const std::string& text, bool last) {
  if (tty) {
    err << "\r" << text << "\033[K" << (last ? "\n" : "") << std::flush;
  } else {
    err << text << "\n";
  }
}

bool IsTerminal(const std::ostream& err) { return &err == &std::cerr && isatty(2) == 1; }

}  // namespace cairn::cli
