#include "planner/cost/evaluate.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <map>
#include <memory>
#include <tuple>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "common/plan/validate.h"
#include "common/units.h"
#include "planner/cost/model_math.h"
#include "planner/cost/runtime_traits.h"

namespace cairn::planner {
namespace {

// What the schedule decides for one stage, independent of the model: computed once per
// (schedule, p, m, v) for all stages and kept (Evaluate runs millions of times in tests and
// thousands in a search; the schedule walks would otherwise dominate it).
struct StageScheduleFacts {
  std::vector<PipelineOp> order;        // plan::StageSchedule
  std::vector<int> in_flight_per_chunk; // plan::InFlightPerChunk
  int in_flight_micro_batches = 0;      // plan::InFlightMicroBatches
  // Send buffers held at operation k: when its input has been received, before the sends that
  // input proves delivered are released (the runtime allocates the receive buffer first:
  // runtime/engine/engine.cc ForwardMicroBatch / BackwardMicroBatch), and after that release.
  std::vector<int> pending_before, pending_after;
  int peak_pending_sends = 0;           // max of pending_before (>= plan::PeakPendingSends)
};
using ScheduleFacts = std::vector<StageScheduleFacts>;

std::shared_ptr<const ScheduleFacts> FactsOf(Schedule schedule, int p, int m, int v) {
  using Key = std::tuple<int, int, int, int>;
  static absl::Mutex mu;
  static auto* cache = new std::map<Key, std::shared_ptr<const ScheduleFacts>>();
  const Key key{static_cast<int>(schedule), p, m, v};
  {
    absl::MutexLock lock(&mu);
    auto it = cache->find(key);
    if (it != cache->end()) return it->second;
  }
  auto facts = std::make_shared<ScheduleFacts>(p);
  const auto releases = p > 1 ? plan::AllSendReleases(schedule, p, m, v)
                              : std::vector<std::vector<std::vector<plan::SentMessage>>>();
  const int chunks = p * v;
  for (int i = 0; i < p; ++i) {
    StageScheduleFacts& f = (*facts)[i];
    f.order = StageSchedule(schedule, p, i, m, v);
    f.in_flight_per_chunk = plan::InFlightPerChunk(schedule, p, i, m, v);
    f.in_flight_micro_batches = plan::InFlightMicroBatches(schedule, p, i, m, v);
    f.pending_before.assign(f.order.size(), 0);
    f.pending_after.assign(f.order.size(), 0);
    if (p == 1) continue;
    int pending = 0;
    for (size_t k = 0; k < f.order.size(); ++k) {
      f.pending_before[k] = pending;
      pending -= static_cast<int>(releases[i][k].size());
      f.pending_after[k] = pending;
      f.peak_pending_sends = std::max(f.peak_pending_sends, f.pending_before[k]);
      const int g = f.order[k].chunk * p + i;
      if (f.order[k].forward ? g < chunks - 1 : g > 0) ++pending;  // this operation's output
    }
  }
  absl::MutexLock lock(&mu);
  if (cache->size() >= 4096) cache->clear();  // bounded: a search touches a few hundred shapes
  return cache->emplace(key, std::move(facts)).first->second;
}

}  // namespace

StageContext MakeStageContext(const SearchProblem& problem, int p, int stage, int global_batch,
                              int m, Schedule schedule, int v) {
  StageContext ctx;
  ctx.stage_devices = problem.hardware.num_devices() / p;
  ctx.stage_index = stage;
  ctx.pipeline_degree = p;
  ctx.micro_batch = global_batch / m;
  ctx.num_micro_batches = m;
  ctx.schedule = schedule;
  ctx.virtual_stages = std::max(1, v);
  const auto facts = FactsOf(schedule, p, m, ctx.virtual_stages);
  const std::vector<int>& per_chunk = (*facts)[stage].in_flight_per_chunk;
  ctx.in_flight = *std::max_element(per_chunk.begin(), per_chunk.end());
  return ctx;
}

int64_t StageFixedBytes(const CostModel& cm, const StageContext& ctx) {
  int64_t bytes = cm.problem().hardware.reserved_bytes;
  const int p = ctx.pipeline_degree, i = ctx.stage_index, m = ctx.num_micro_batches;
  const int v = ctx.virtual_stages;
  // Token ids (int32) of the micro-batches in flight: inputs on the first stage, targets on the
  // last.
  const auto facts = FactsOf(ctx.schedule, p, m, v);
  const StageScheduleFacts& f = (*facts)[i];
  const int alive = f.in_flight_micro_batches;
  const int64_t token_bytes = int64_t{4} * ctx.micro_batch * cm.problem().seq_len * alive;
  if (i == 0) bytes += token_bytes;
  if (i == p - 1) bytes += token_bytes;
  if (p > 1) {
    // Sends stay in flight until the runtime knows they arrived (plan::SendReleases), counted
    // at their largest: when an operation's input has landed and before the sends it proves
    // delivered are released. Received tensors become the first layer's input (an activation)
    // or the gradient the last layer's backward consumes (its working set): not counted here.
    bytes += static_cast<int64_t>(f.peak_pending_sends) * cm.PipelineHopBytes(ctx);
  }
  return bytes;
}

namespace {

// The context a chunk's layers are costed in: its stage's, with the chunk's own count of
// micro-batches in flight (what its activations are multiplied by in the search's bound).
StageContext ChunkContext(const CostModel& cm, const PlanSpec& plan, int chunk) {
  const int p = plan.pipeline_degree();
  const int stage = chunk % p;
  StageContext ctx = MakeStageContext(cm.problem(), p, stage, plan.global_batch,
                                      plan.num_micro_batches, plan.schedule, plan.virtual_stages);
  const auto facts =
      FactsOf(plan.schedule, p, plan.num_micro_batches, std::max(1, plan.virtual_stages));
  ctx.in_flight = (*facts)[stage].in_flight_per_chunk[chunk / p];
  return ctx;
}

}  // namespace

ChunkCost CostChunk(const CostModel& cm, const PlanSpec& plan, int chunk) {
  const SearchProblem& pb = cm.problem();
  const int L = pb.model.num_layers;
  const int p = plan.pipeline_degree();
  const int chunks = plan.num_chunks();
  const int m = plan.num_micro_batches;
  ChunkCost cc;
  cc.chunk = chunk;
  cc.first_layer = plan.FirstLayer(chunk);
  cc.num_layers = plan.stage_layers[chunk];
  const StageContext ctx = ChunkContext(cm, plan, chunk);
  const int n = ctx.stage_devices;
  StageTimes& t = cc.times;
  int64_t saved_so_far = 0;     // the current micro-batch's saved activations up to this layer
  double trans_f = 0, trans_b = 0;
  std::vector<LayerCost> costs(cc.num_layers);
  for (int i = 0; i < cc.num_layers; ++i) {
    const int index = cc.first_layer + i;
    costs[i] = cm.Layer(KindOf(index, L), plan.layers[index], ctx);
  }
  // ZeRO-1 step shards of the layers above layer i: live during its last backward.
  std::vector<int64_t> shards_above(cc.num_layers + 1, 0);
  for (int i = cc.num_layers - 1; i >= 0; --i) {
    shards_above[i] = shards_above[i + 1] + (costs[i].valid ? costs[i].step_shard_bytes : 0);
  }
  auto valid_or_empty = [&](int i) -> const LayerCost* {
    return i >= 0 && i < cc.num_layers && costs[i].valid ? &costs[i] : nullptr;
  };
  for (int i = 0; i < cc.num_layers; ++i) {
    const int index = cc.first_layer + i;
    const Strategy& s = plan.layers[index];
    const LayerCost& c = costs[i];
    if (!c.valid) continue;  // Evaluate reports it (plan::ValidatePlan)
    t.forward_s += c.forward_s;
    t.backward_s += c.backward_s;
    t.step_sync_s += c.step_sync_s;
    cc.forward_compute_s += c.compute_forward_s;
    cc.backward_compute_s += c.compute_backward_s;
    cc.compute_s += m * (c.compute_forward_s + c.compute_backward_s);
    cc.tp_comm_s += m * (c.tp_comm_forward_s + c.tp_comm_backward_s) + c.tp_grad_sum_s;
    cc.tp_comm_hidden_s += c.tp_comm_hidden_s;
    cc.dp_comm_s += c.dp_comm_exposed_s;
    cc.dp_comm_hidden_s += c.dp_comm_hidden_s;
    cc.optimizer_s += c.optimizer_s;
    cc.state_bytes[0] += c.param_bytes;
    cc.state_bytes[1] += c.grad_bytes;
    cc.state_bytes[2] += c.optimizer_bytes;
    cc.activation_bytes += c.activation_bytes;
    cc.transient_bytes = std::max(cc.transient_bytes, c.transient_bytes);
    cc.step_shard_bytes += c.step_shard_bytes;
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
    cc.peak_current_bytes = std::max(cc.peak_current_bytes,
                                     saved_so_far + c.own_transient_bytes +
                                         std::max(forward_extra, backward_extra));
    // Layout change from the previous layer (or from the pipeline boundary layout).
    const Layout in = (i == 0) ? cm.BoundaryLayout(ctx)
                               : CostModel::LayoutOf(plan.layers[index - 1], n);
    if (i > 0 || index > 0) {
      const TransitionCost tc = cm.Transition(in, CostModel::LayoutOf(s, n), ctx);
      trans_f += tc.forward_s;
      trans_b += tc.backward_s;
    }
  }
  // Leaving the chunk towards the next one.
  if (chunk < chunks - 1 && cc.num_layers > 0) {
    const int last = cc.first_layer + cc.num_layers - 1;
    const TransitionCost tc =
        cm.Transition(CostModel::LayoutOf(plan.layers[last], n), cm.BoundaryLayout(ctx), ctx);
    trans_f += tc.forward_s;
    trans_b += tc.backward_s;
    t.hop_s = cm.PipelineHop(ctx, chunk % p, (chunk + 1) % p);
  }
  t.forward_s += trans_f;
  t.backward_s += trans_b;
  cc.transition_s = m * (trans_f + trans_b);
  return cc;
}

StageCost CostStage(const CostModel& cm, const PlanSpec& plan, int stage,
                    std::vector<ChunkCost>* chunk_costs) {
  const SearchProblem& pb = cm.problem();
  const int p = plan.pipeline_degree();
  const int v = std::max(1, plan.virtual_stages);
  const int m = plan.num_micro_batches;
  StageCost sc;
  sc.ctx = MakeStageContext(pb, p, stage, plan.global_batch, m, plan.schedule, v);
  std::vector<ChunkCost> cs;
  for (int c = stage; c < plan.num_chunks(); c += p) {
    sc.chunks.push_back(c);
    cs.push_back(CostChunk(cm, plan, c));
  }
  sc.first_layer = cs.front().first_layer;
  int64_t transient = 0, step_shards = 0, bound_activations = 0;
  const auto facts = FactsOf(plan.schedule, p, m, v);
  const std::vector<int>& in_flight = (*facts)[stage].in_flight_per_chunk;
  for (size_t k = 0; k < cs.size(); ++k) {
    const ChunkCost& c = cs[k];
    sc.num_layers += c.num_layers;
    sc.times.forward_s += c.times.forward_s;
    sc.times.backward_s += c.times.backward_s;
    sc.times.step_sync_s += c.times.step_sync_s;
    sc.compute_s += c.compute_s;
    sc.tp_comm_s += c.tp_comm_s;
    sc.tp_comm_hidden_s += c.tp_comm_hidden_s;
    sc.transition_s += c.transition_s;
    sc.dp_comm_s += c.dp_comm_s;
    sc.dp_comm_hidden_s += c.dp_comm_hidden_s;
    sc.optimizer_s += c.optimizer_s;
    sc.param_bytes += c.state_bytes[0];
    sc.grad_bytes += c.state_bytes[1];
    sc.optimizer_bytes += c.state_bytes[2];
    transient = std::max(transient, c.transient_bytes);
    step_shards += c.step_shard_bytes;
    bound_activations += c.activation_bytes * in_flight[k];
  }
  // The hops this stage waits for: every micro-batch's input of each chunk that has a previous
  // chunk, and its gradient from the next one.
  for (const ChunkCost& c : cs) {
    const int g = c.chunk;
    if (g > 0) sc.p2p_s += m * cm.PipelineHop(sc.ctx, (g - 1) % p, stage);
    if (g < plan.num_chunks() - 1) sc.p2p_s += m * c.times.hop_s;
  }
  sc.times.hop_s = cs.back().times.hop_s;
  sc.reserved_bytes = pb.hardware.reserved_bytes;
  const StageScheduleFacts& f = (*facts)[stage];
  const int64_t hop_bytes = p > 1 ? cm.PipelineHopBytes(sc.ctx) : 0;
  // Buffers other than the pending sends (token ids), which the walk below counts op by op.
  const int64_t buffers = StageFixedBytes(cm, sc.ctx) - sc.reserved_bytes -
                          static_cast<int64_t>(f.peak_pending_sends) * hop_bytes;
  const int64_t states = sc.param_bytes + sc.grad_bytes + sc.optimizer_bytes + sc.reserved_bytes;
  // Exact peak: walk the stage's schedule. While an operation of chunk c runs, the micro-batches
  // alive on every chunk hold all their saved activations except the running one, which holds
  // chunk c's largest moment; ZeRO-1 step shards of chunks whose last backward is done stay
  // until the optimizer step; and the sends not yet known delivered. Just before that, when the
  // operation's input has landed, the sends it will release are still held.
  const int chunks = plan.num_chunks();
  std::vector<int> live(cs.size(), 0);
  int64_t live_bytes = 0, done_shards = 0, peak = 0;
  for (size_t k = 0; k < f.order.size(); ++k) {
    const PipelineOp& op = f.order[k];
    const ChunkCost& c = cs[op.chunk];
    const int g = op.chunk * p + stage;
    const bool receives = op.forward ? g > 0 : g < chunks - 1;
    if (receives) {
      peak = std::max(peak, live_bytes + done_shards + hop_bytes + f.pending_before[k] * hop_bytes);
    }
    const int64_t others = live_bytes - (op.forward ? 0 : c.activation_bytes);
    peak = std::max(peak,
                    others + c.peak_current_bytes + done_shards + f.pending_after[k] * hop_bytes);
    if (op.forward) {
      ++live[op.chunk];
      live_bytes += c.activation_bytes;
    } else {
      --live[op.chunk];
      live_bytes -= c.activation_bytes;
      if (op.micro_batch == m - 1) done_shards += c.step_shard_bytes;
    }
  }
  sc.total_bytes = states + peak + buffers;
  // The breakdown: activations of the other micro-batches at the peak are not separated from
  // the current one's; report the in-flight activations as the search counts them per chunk,
  // capped so that the parts add up to the peak.
  sc.activation_bytes = std::min(bound_activations, sc.total_bytes - states);
  sc.transient_bytes = sc.total_bytes - states - sc.activation_bytes;
  // The search's dynamic program adds every layer's activations (times its chunk's largest count
  // in flight) to the largest working set: an upper bound, additive over layers.
  sc.bound_bytes = states + bound_activations + transient + step_shards + buffers +
                   static_cast<int64_t>(f.peak_pending_sends) * hop_bytes;
  if (chunk_costs != nullptr) {
    for (ChunkCost& c : cs) chunk_costs->push_back(std::move(c));
  }
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

std::string MemoryViolationPrefix(int stage) {
  return absl::StrCat("stage ", stage, " needs up to ");
}

absl::StatusOr<Evaluation> Evaluate(const CostModel& cm, const PlanSpec& plan) {
  const SearchProblem& pb = cm.problem();
  if (absl::Status s = ValidatePlanShape(pb, plan); !s.ok()) return s;
  Evaluation e;
  const int p = plan.pipeline_degree();
  e.budget_bytes = pb.memory_budget_bytes;
  // The contract's verdict (what the runtime would refuse), each problem once; then what the
  // runtime the plan is costed for cannot run.
  e.violations = plan::ValidatePlan(pb.model, plan, pb.hardware.num_devices(), pb.seq_len);
  if (std::string why = CheckRuntimeSupports(pb.runtime, plan, pb.model);
      !why.empty()) {
    e.violations.push_back(why);
  }
  e.valid = e.violations.empty();
  std::vector<ChunkCost> by_stage;  // stage 0's chunks, then stage 1's, ...
  for (int i = 0; i < p; ++i) {
    e.stages.push_back(CostStage(cm, plan, i, &by_stage));
    const StageCost& sc = e.stages.back();
    // Feasibility uses the search's upper bound, so every plan the search can return and every
    // plan Evaluate accepts fit with the same margin (the exact peak is at most the bound).
    if (sc.bound_bytes > e.budget_bytes) {
      e.violations.push_back(absl::StrCat(
          MemoryViolationPrefix(i), FormatBytes(sc.bound_bytes), " per device (predicted peak ",
          FormatBytes(sc.total_bytes), "), over the budget of ", FormatBytes(e.budget_bytes)));
    }
  }
  // Model chunks in model order (chunk c on stage c mod p).
  e.chunks.resize(plan.num_chunks());
  for (ChunkCost& c : by_stage) e.chunks[c.chunk] = std::move(c);
  e.feasible = e.violations.empty();
  e.pipeline = SimulatePlanPipeline(pb, plan, e.chunks);
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
  e.hidden_comm_s = k.dp_comm_hidden_s + k.tp_comm_hidden_s;
  for (const ChunkCost& c : e.chunks) e.pipeline_comm_s += 2 * c.times.hop_s;
  e.bubble_s = e.pipeline.bubble_s;
  return e;
}

PipelineResult SimulatePlanPipeline(const SearchProblem& problem, const PlanSpec& plan,
                                    const std::vector<ChunkCost>& chunks, bool record_events) {
  std::vector<StageTimes> times(chunks.size());
  for (size_t c = 0; c < chunks.size(); ++c) times[c] = chunks[c].times;
  PipelineOptions opt;
  opt.virtual_stages = std::max(1, plan.virtual_stages);
  opt.blocking_sends = problem.runtime.blocking_sends;
  opt.op_overhead_s = std::max(0.0, problem.runtime.op_overhead_s);
  opt.record_events = record_events;
  return SimulatePipeline(plan.schedule, plan.num_micro_batches, times, opt);
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
  auto shape = [](const PlanSpec& x) {
    return x.virtual_stages > 1 ? absl::StrFormat("pp=%d v=%d m=%d", x.pipeline_degree(),
                                                  x.virtual_stages, x.num_micro_batches)
                                : absl::StrFormat("pp=%d m=%d", x.pipeline_degree(),
                                                  x.num_micro_batches);
  };
  absl::StrAppendFormat(&out, "  shape: %s  ->  %s\n", shape(a), shape(b));
  return out;
}

std::string ExplainStages(const Evaluation& e) {
  std::string out;
  absl::StrAppendFormat(&out, "  %-6s %10s %10s %10s %10s %10s %10s %10s\n", "stage", "compute",
                        "exposed", "hidden", "p2p", "bubble", "sync+opt", "busy");
  absl::StrAppendFormat(&out, "  %-6s %10s %10s %10s %10s %10s %10s %10s\n", "", "",
                        "comm", "comm", "", "(waiting)", "", "");
  for (size_t i = 0; i < e.stages.size(); ++i) {
    const StageCost& s = e.stages[i];
    const double exposed = s.tp_comm_s + s.dp_comm_s + s.transition_s;
    const double idle = i < e.pipeline.stage_idle_s.size() ? e.pipeline.stage_idle_s[i] : 0;
    const double busy = i < e.pipeline.stage_busy_s.size() ? e.pipeline.stage_busy_s[i] : 0;
    absl::StrAppendFormat(&out, "  %-6s %10s %10s %10s %10s %10s %10s %10s%s\n",
                          absl::StrCat(i), FormatSeconds(s.compute_s), FormatSeconds(exposed),
                          FormatSeconds(s.dp_comm_hidden_s + s.tp_comm_hidden_s),
                          FormatSeconds(s.p2p_s), FormatSeconds(idle),
                          FormatSeconds(s.times.step_sync_s), FormatSeconds(busy),
                          static_cast<int>(i) == e.pipeline.bottleneck_stage ? "  <- bottleneck"
                                                                             : "");
  }
  absl::StrAppend(&out,
                  "  (per step; exposed = TP/SP + data-parallel + layout transitions on the "
                  "stage's critical path, hidden = overlapped with compute; p2p = hops the stage "
                  "waits for, part of its waiting)\n");
  return out;
}

}  // namespace cairn::planner
