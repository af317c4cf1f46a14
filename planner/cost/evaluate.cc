#include "planner/cost/evaluate.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "common/plan/validate.h"
#include "common/units.h"
#include "planner/cost/model_math.h"

namespace cairn::planner {

StageContext MakeStageContext(const SearchProblem& problem, int p, int stage, int global_batch,
                              int m, Schedule schedule) {
  StageContext ctx;
  ctx.stage_devices = problem.hardware.num_devices() / p;
  ctx.stage_index = stage;
  ctx.pipeline_degree = p;
  ctx.micro_batch = global_batch / m;
  ctx.num_micro_batches = m;
  ctx.in_flight = InFlightMicroBatches(schedule, p, stage, m);
  return ctx;
}

int64_t StageFixedBytes(const CostModel& cm, const StageContext& ctx) {
  int64_t bytes = cm.problem().hardware.reserved_bytes;
  // Token ids (int32) of the micro-batches in flight: inputs on the first stage, targets on the
  // last.
  const int64_t token_bytes = int64_t{4} * ctx.micro_batch * cm.problem().seq_len * ctx.in_flight;
  if (ctx.stage_index == 0) bytes += token_bytes;
  if (ctx.stage_index == ctx.pipeline_degree - 1) bytes += token_bytes;
  const int p = ctx.pipeline_degree, i = ctx.stage_index, m = ctx.num_micro_batches;
  if (p > 1) {
    // Sends stay in flight until the runtime knows they arrived: a forward send until that
    // micro-batch's gradient comes back (the micro-batches in flight), a backward send (1F1B) until
    // the previous stage's forward p - i + 1 micro-batches later (GPipe: until the step ends).
    // Received tensors become the first layer's input (an activation) or the gradient the last
    // layer's backward consumes (its working set): not counted again here.
    int buffers = 0;
    if (i < p - 1) buffers += ctx.in_flight;
    if (i > 0) buffers += ctx.in_flight == m ? m : std::min(p - i + 1, m);
    bytes += static_cast<int64_t>(buffers) * cm.PipelineHopBytes(ctx);
  }
  return bytes;
}

StageCost CostStage(const CostModel& cm, const PlanSpec& plan, int stage) {
  const SearchProblem& pb = cm.problem();
  const int L = pb.model.num_layers;
  const int p = plan.pipeline_degree();
  StageCost sc;
  sc.ctx = MakeStageContext(pb, p, stage, plan.global_batch, plan.num_micro_batches, plan.schedule);
  sc.first_layer = std::accumulate(plan.stage_layers.begin(), plan.stage_layers.begin() + stage, 0);
  sc.num_layers = plan.stage_layers[stage];
  const int m = plan.num_micro_batches;
  const int n = sc.ctx.stage_devices;
  StageTimes& t = sc.times;
  int64_t transient = 0;        // largest working set of one layer (the DP's bound uses it)
  int64_t step_shards = 0;      // ZeRO-1 step shards of the stage (the DP's bound counts them)
  int64_t saved_so_far = 0;     // the current micro-batch's saved activations up to this layer
  int64_t peak_current = 0;     // max over layers of saved_so_far + that layer's working set
  double trans_f = 0, trans_b = 0;
  std::vector<LayerCost> costs(sc.num_layers);
  for (int i = 0; i < sc.num_layers; ++i) {
    const int index = sc.first_layer + i;
    costs[i] = cm.Layer(KindOf(index, L), plan.layers[index], sc.ctx);
  }
  // ZeRO-1 step shards of the layers above layer i: live during its last backward.
  std::vector<int64_t> shards_above(sc.num_layers + 1, 0);
  for (int i = sc.num_layers - 1; i >= 0; --i) {
    shards_above[i] = shards_above[i + 1] + (costs[i].valid ? costs[i].step_shard_bytes : 0);
  }
  auto valid_or_empty = [&](int i) -> const LayerCost* {
    return i >= 0 && i < sc.num_layers && costs[i].valid ? &costs[i] : nullptr;
  };
  for (int i = 0; i < sc.num_layers; ++i) {
    const int index = sc.first_layer + i;
    const Strategy& s = plan.layers[index];
    const LayerCost& c = costs[i];
    if (!c.valid) continue;  // Evaluate reports it (plan::ValidatePlan)
    t.forward_s += c.forward_s;
    t.backward_s += c.backward_s;
    t.step_sync_s += c.step_sync_s;
    sc.compute_s += m * (c.compute_forward_s + c.compute_backward_s);
    sc.tp_comm_s += m * (c.tp_comm_forward_s + c.tp_comm_backward_s);
    sc.dp_comm_s += c.dp_comm_exposed_s;
    sc.optimizer_s += c.optimizer_s;
    sc.param_bytes += c.param_bytes;
    sc.grad_bytes += c.grad_bytes;
    sc.optimizer_bytes += c.optimizer_bytes;
    sc.activation_bytes += c.activation_bytes * sc.ctx.in_flight;
    transient = std::max(transient, c.transient_bytes);
    step_shards += c.step_shard_bytes;
    // While layer i runs (forward, or backward: later layers' activations of this micro-batch are
    // freed by then), the current micro-batch holds the activations of layers up to i, plus its
    // working set and what the overlapped data parallelism holds around it: in forward the next
    // layer's prefetched weights; in backward the layer below's prefetched weights, the layer
    // above's gradient being reduce-scattered, and (last micro-batch) the ZeRO-1 step shards of
    // the layers above.
    saved_so_far += c.activation_bytes;
    const LayerCost* next = valid_or_empty(i + 1);
    const LayerCost* prev = valid_or_empty(i - 1);
    const int64_t forward_extra = next ? next->gathered_bytes : 0;
    const int64_t backward_extra = (prev ? prev->gathered_bytes : 0) +
                                   (next ? next->reduce_bytes : 0) + shards_above[i + 1];
    peak_current = std::max(peak_current, saved_so_far + c.own_transient_bytes +
                                              std::max(forward_extra, backward_extra));
    // Layout change from the previous layer (or from the pipeline boundary layout).
    const Layout in = (i == 0) ? cm.BoundaryLayout(sc.ctx)
                               : CostModel::LayoutOf(plan.layers[index - 1], n);
    if (i > 0 || index > 0) {
      const TransitionCost tc = cm.Transition(in, CostModel::LayoutOf(s, n), sc.ctx);
      trans_f += tc.forward_s;
      trans_b += tc.backward_s;
    }
  }
  // Leaving the stage towards the next one.
  if (stage < p - 1 && sc.num_layers > 0) {
    const int last = sc.first_layer + sc.num_layers - 1;
    const TransitionCost tc =
        cm.Transition(CostModel::LayoutOf(plan.layers[last], n), cm.BoundaryLayout(sc.ctx), sc.ctx);
    trans_f += tc.forward_s;
    trans_b += tc.backward_s;
  }
  t.forward_s += trans_f;
  t.backward_s += trans_b;
  sc.transition_s = m * (trans_f + trans_b);
  t.hop_s = cm.PipelineHop(sc.ctx);
  sc.reserved_bytes = pb.hardware.reserved_bytes;
  const int64_t buffers = StageFixedBytes(cm, sc.ctx) - sc.reserved_bytes;
  const int64_t states = sc.param_bytes + sc.grad_bytes + sc.optimizer_bytes + sc.reserved_bytes;
  // Exact peak: the other micro-batches in flight hold all their activations, the current one
  // those up to the running layer, plus that layer's working set and the pipeline buffers.
  const int64_t per_micro_batch = sc.ctx.in_flight > 0 ? sc.activation_bytes / sc.ctx.in_flight : 0;
  sc.total_bytes = states + sc.activation_bytes - per_micro_batch + peak_current + buffers;
  sc.transient_bytes = sc.total_bytes - states - sc.activation_bytes;
  // The search's dynamic program adds every layer's activations to the largest working set (an
  // upper bound, additive over layers).
  sc.bound_bytes = states + sc.activation_bytes + transient + step_shards + buffers;
  return sc;
}

int64_t Evaluation::BoundBytes() const {
  int64_t peak = 0;
  for (const StageCost& s : stages) peak = std::max(peak, s.bound_bytes);
  return peak;
}

int64_t Evaluation::PeakBytes() const {
  int64_t peak = 0;
  for (const StageCost& s : stages) peak = std::max(peak, s.total_bytes);
  return peak;
}

absl::Status ValidatePlanShape(const SearchProblem& problem, const PlanSpec& plan) {
  const std::vector<std::string> v =
      plan::CheckPlanShape(problem.model, plan, problem.hardware.num_devices(), problem.seq_len);
  if (v.empty()) return absl::OkStatus();
  return absl::InvalidArgumentError(absl::StrJoin(v, "; "));
}

absl::StatusOr<Evaluation> Evaluate(const CostModel& cm, const PlanSpec& plan) {
  const SearchProblem& pb = cm.problem();
  if (absl::Status s = ValidatePlanShape(pb, plan); !s.ok()) return s;
  Evaluation e;
  const int p = plan.pipeline_degree();
  const int m = plan.num_micro_batches;
  e.budget_bytes = pb.memory_budget_bytes;
  std::vector<StageTimes> times;
  // The contract's verdict (what the runtime would refuse), each problem once.
  e.violations = plan::ValidatePlan(pb.model, plan, pb.hardware.num_devices(), pb.seq_len);
  e.valid = e.violations.empty();
  for (int i = 0; i < p; ++i) {
    e.stages.push_back(CostStage(cm, plan, i));
    const StageCost& sc = e.stages.back();
    times.push_back(sc.times);
    // Feasibility uses the search's upper bound, so every plan the search can return and every
    // plan Evaluate accepts fit with the same margin (the exact peak is at most the bound).
    if (sc.bound_bytes > e.budget_bytes) {
      e.violations.push_back(absl::StrCat(
          "stage ", i, " needs up to ", FormatBytes(sc.bound_bytes), " per device (predicted peak ",
          FormatBytes(sc.total_bytes), "), over the budget of ", FormatBytes(e.budget_bytes)));
    }
  }
  e.feasible = e.violations.empty();
  e.pipeline = SimulatePipeline(plan.schedule, m, times);
  e.step_time_s = e.pipeline.step_time_s;
  const double tokens = static_cast<double>(plan.global_batch) * pb.seq_len;
  const int N = pb.hardware.num_devices();
  if (e.step_time_s > 0) {
    e.tokens_per_s = tokens / e.step_time_s;
    e.samples_per_s = plan.global_batch / e.step_time_s;
    e.mfu = ModelFlopsPerTokenForMfu(pb.model, pb.seq_len) * tokens /
            (e.step_time_s * N * pb.hardware.peak_flops_per_s);
  }
  e.lower_bound_s = RequiredFlopsPerToken(pb.model, pb.seq_len) * tokens /
                    (N * cm.hardware().BestGemmRate());
  e.optimality_gap = e.lower_bound_s > 0 ? e.step_time_s / e.lower_bound_s - 1.0 : 0;
  const StageCost& k = e.stages[e.pipeline.bottleneck_stage];
  e.compute_s = k.compute_s;
  e.tp_comm_s = k.tp_comm_s;
  e.transition_s = k.transition_s;
  e.dp_comm_s = k.dp_comm_s;
  e.optimizer_s = k.optimizer_s;
  for (int i = 0; i + 1 < p; ++i) e.pipeline_comm_s += 2 * e.stages[i].times.hop_s;
  e.bubble_s = e.pipeline.bubble_s;
  return e;
}

std::vector<std::string> SummarizeLayers(const PlanSpec& plan, int first, int count,
                                         int num_layers) {
  std::vector<std::string> out;
  auto name = [&](int i) -> std::string {
    if (i == 0) return "embedding";
    if (i == num_layers + 1) return "head";
    return absl::StrCat(i);
  };
  int i = first;
  while (i < first + count) {
    int j = i;
    const bool block = KindOf(i, num_layers) == LayerKind::kBlock;
    while (block && j + 1 < first + count && KindOf(j + 1, num_layers) == LayerKind::kBlock &&
           plan.layers[j + 1] == plan.layers[i]) {
      ++j;
    }
    std::string range = block ? (i == j ? absl::StrCat("block ", i)
                                        : absl::StrCat("blocks ", i, "-", j))
                              : name(i);
    out.push_back(absl::StrCat(range, ": ", Describe(plan.layers[i])));
    i = j + 1;
  }
  return out;
}

std::string Explain(const CostModel& cm, const PlanSpec& a, const Evaluation& ea, const PlanSpec& b,
                    const Evaluation& eb) {
  (void)cm;
  std::string out;
  const double ratio = ea.step_time_s > 0 ? eb.step_time_s / ea.step_time_s : 0;
  std::string name_a = a.origin.empty() ? "plan A" : a.origin;
  std::string name_b = b.origin.empty() ? "plan B" : b.origin;
  if (name_a == name_b) {
    name_a = "plan A (" + name_a + ")";
    name_b = "plan B (" + name_b + ")";
  }
  absl::StrAppendFormat(&out, "%s takes %s per step, %s takes %s (%.2fx).\n", name_a,
                        FormatSeconds(ea.step_time_s), name_b, FormatSeconds(eb.step_time_s),
                        ratio);
  if (!eb.feasible) {
    absl::StrAppend(&out, "  B does not fit: ", eb.violations.front(), "\n");
  }
  struct Term {
    const char* name;
    double a, b;
  };
  std::vector<Term> terms = {
      {"compute (bottleneck stage)", ea.compute_s, eb.compute_s},
      {"tensor/sequence-parallel communication", ea.tp_comm_s, eb.tp_comm_s},
      {"data-parallel communication (exposed)", ea.dp_comm_s, eb.dp_comm_s},
      {"layout transitions", ea.transition_s, eb.transition_s},
      {"pipeline bubble", ea.bubble_s, eb.bubble_s},
      {"pipeline point-to-point", ea.pipeline_comm_s, eb.pipeline_comm_s},
      {"optimizer step", ea.optimizer_s, eb.optimizer_s},
  };
  std::sort(terms.begin(), terms.end(), [](const Term& x, const Term& y) {
    return std::fabs(x.b - x.a) > std::fabs(y.b - y.a);
  });
  for (const Term& t : terms) {
    if (std::fabs(t.b - t.a) < 1e-3 * std::max(ea.step_time_s, 1e-9)) continue;
    absl::StrAppendFormat(&out, "  %-40s %10s -> %10s (%s%s)\n", t.name, FormatSeconds(t.a),
                          FormatSeconds(t.b), t.b > t.a ? "+" : "-",
                          FormatSeconds(std::fabs(t.b - t.a)));
  }
  absl::StrAppendFormat(&out, "  %-40s %10s -> %10s\n", "peak memory per device",
                        FormatBytes(ea.PeakBytes()), FormatBytes(eb.PeakBytes()));
  absl::StrAppendFormat(&out, "  shape: pp=%d m=%d  ->  pp=%d m=%d\n", a.pipeline_degree(),
                        a.num_micro_batches, b.pipeline_degree(), b.num_micro_batches);
  return out;
}

}  // namespace cairn::planner
