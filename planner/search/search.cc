#include "planner/search/search.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cmath>
#include <limits>
#include <map>
#include <mutex>
#include <numeric>
#include <thread>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/units.h"
#include "common/plan/layout.h"
#include "planner/cost/model_math.h"
#include "planner/search/simplify.h"
#include "planner/search/stage_dp.h"

namespace cairn::planner {
namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();

// Divisors of x, ascending. O(sqrt(x)) with 64-bit arithmetic: a loop `i <= x` over int never
// ends for x = INT_MAX (i overflows, then x % 0).
std::vector<int> Divisors(int x) {
  std::vector<int> small, large;
  for (int64_t i = 1; i * i <= x; ++i) {
    if (x % i != 0) continue;
    small.push_back(static_cast<int>(i));
    if (i * i != x) large.push_back(static_cast<int>(x / i));
  }
  small.insert(small.end(), large.rbegin(), large.rend());
  return small;
}

// Micro-batch counts above this are never searched (the pipeline simulator's time and memory grow
// with p x m); problem_builder.cc refuses larger explicit space.micro_batch_counts.
constexpr int kMaxMicroBatches = 4096;

bool Cancelled(const std::atomic<bool>* flag) { return flag != nullptr && flag->load(); }

std::vector<BaselineResult> Baselines(const SearchProblem& problem,
                                      const std::atomic<bool>* cancelled);

// Pipelines up to this depth also get the hidden-sync stage variants (every combination is
// scored); deeper ones charge the per-step sync of every stage fully.
constexpr int kMaxPipelineForSyncVariants = 4;

struct Combo {
  int batch = 0;
  int pp = 1;
  int m = 1;
  Schedule schedule = Schedule::k1F1B;
  int v = 1;  // virtual stages (interleaved 1F1B)
  double lower_bound_per_sample = 0;
  // How interleaved chunks are cut (equal blocks, or equal slots under megatron-core's traits).
  ChunkLayout layout = ChunkLayout::kBlocks;
};


// Why a combination cannot hold any plan.
enum class ComboStatus { kOk, kNoValidSplit, kDoesNotFit };

}  // namespace

std::vector<Strategy> EnumerateStrategies(const SearchProblem& pb, LayerKind kind, int n) {
  std::vector<Strategy> out;
  const int max_tp = pb.space.max_tp > 0 ? pb.space.max_tp : pb.hardware.devices_per_node;
  for (int t = 1; t <= std::min(n, max_tp); t *= 2) {
    if (n % t != 0) continue;
    std::vector<ParallelMode> modes;
    if (t == 1) {
      modes = {ParallelMode::kTensor};
    } else {
      modes = pb.space.modes;
    }
    const int dp = n / t;
    for (ParallelMode mode : modes) {
      const int shard_group = mode == ParallelMode::kUlysses ? n : dp;
      std::vector<DpMode> dps = pb.space.dp_modes;
      if (shard_group == 1) dps = {DpMode::kDdp};
      for (DpMode d : dps) {
        for (bool rc : {false, true}) {
          if (rc && (kind != LayerKind::kBlock || !pb.space.allow_recompute)) continue;
          Strategy s;
          s.tp = t;
          s.mode = mode;
          s.dp = d;
          s.recompute = rc;
          out.push_back(s);
        }
      }
    }
  }
  return out;
}

namespace {

struct TopK {
  explicit TopK(int k) : k(k) {}
  int k;
  std::mutex mu;
  std::vector<std::pair<double, std::pair<PlanSpec, Evaluation>>> items;  // key = s per sample
  std::atomic<double> bound{kInf};

  void Offer(double key, PlanSpec plan, Evaluation eval) {
    std::lock_guard<std::mutex> lock(mu);
    for (auto& it : items) {
      const PlanSpec& p = it.second.first;
      if (p.stage_layers == plan.stage_layers && p.layers == plan.layers &&
          p.num_micro_batches == plan.num_micro_batches && p.global_batch == plan.global_batch &&
          p.schedule == plan.schedule && p.virtual_stages == plan.virtual_stages) {
        return;
      }
    }
    items.push_back({key, {std::move(plan), std::move(eval)}});
    std::sort(items.begin(), items.end(),
              [](const auto& a, const auto& b) { return a.first < b.first; });
    if (static_cast<int>(items.size()) > k) items.resize(k);
    if (static_cast<int>(items.size()) == k) bound.store(items.back().first);
  }
};

class Searcher {
 public:
  Searcher(const SearchProblem& pb, const SearchOptions& opt)
      : pb_(pb), cm_(pb), opt_(opt), top_(std::max(1, pb.top_k)) {
    // The default quantum depends on the device, not the budget, so a larger budget never yields a
    // slower plan.
    const int64_t device = std::max(pb.hardware.device_memory_bytes, pb.memory_budget_bytes);
    quantum_ = pb.memory_quantum_bytes > 0 ? pb.memory_quantum_bytes
                                           : std::max<int64_t>(int64_t{1} << 20, device / 2048);
  }

  SearchResult Run();

 private:
  std::vector<Combo> Combos();
  // Lower bound on step time per sample for a combo; +inf (and why) when no plan can exist.
  double LowerBound(const Combo& c, ComboStatus* status) const;
  void Solve(const Combo& c);
  // Solve restricted to tied embeddings split `vocab_degree` ways (0: no restriction).
  void SolveVariant(const Combo& c, int vocab_degree);
  // The same for the interleaved schedule: equal chunks, one DP per stage over its v chunks'
  // blocks, the chunks then cut from its solution.
  void SolveInterleaved(const Combo& c, int vocab_degree);
  // The tied-embedding rule of SolveVariant for `vocab_degree` on `p` stages.
  std::function<bool(const Strategy&)> VocabRule(int vocab_degree, int p) const;
  // The undominated strategies of a layer of `kind` in `ctx` that `allowed` accepts (all when
  // empty), with their layouts added to `layouts`.
  std::vector<DpOption> Options(LayerKind kind, const StageContext& ctx,
                                std::vector<Layout>* layouts,
                                const std::function<bool(const Strategy&)>& allowed = {}) const;
  // The vocabulary-parallel degrees the embedding and head may share under the plan contract's
  // tied-embedding rule (plan::CheckAcrossLayers): each is one search variant. {0} (no
  // restriction) for untied models.
  std::vector<int> VocabVariants(int stage_devices) const;

  const SearchProblem& pb_;
  CostModel cm_;
  const SearchOptions& opt_;
  TopK top_;
  int64_t quantum_ = 1;
  std::atomic<int64_t> cells_{0};
  std::atomic<int64_t> evaluated_{0};
  std::atomic<int64_t> pruned_{0};
  int64_t splittable_ = 0;  // combinations where every layer has a valid strategy

 public:
  int64_t splittable() const { return splittable_; }
};

std::vector<Combo> Searcher::Combos() {
  std::vector<Combo> out;
  const int N = pb_.hardware.num_devices();
  const int L = pb_.model.num_layers;
  std::vector<int> pps = pb_.space.pipeline_degrees;
  if (pps.empty()) {
    for (int p : Divisors(N)) {
      if (p <= L) pps.push_back(p);
    }
  }
  for (int batch : pb_.global_batch_sizes) {
    if (Cancelled(opt_.cancelled)) return {};
    std::vector<int> ms = pb_.space.micro_batch_counts;
    if (ms.empty()) ms = Divisors(batch);
    for (int p : pps) {
      if (N % p != 0 || p > L) continue;
      for (int m : ms) {
        if (batch % m != 0 || m > kMaxMicroBatches) continue;
        for (Schedule s : pb_.space.schedules) {
          std::vector<std::pair<int, ChunkLayout>> vs = {{1, ChunkLayout::kBlocks}};
          if (s == Schedule::kInterleaved1F1B) {
            // Interleaving needs two stages (three under Megatron-Core: min_interleaved_stages),
            // groups of p micro-batches and equal chunks: of blocks, or under Megatron's split
            // rule also of slots (the embedding and the head counted; Cairn's runtime could run
            // those too, but its search keeps to equal blocks, docs/search.md). The two never both
            // divide p x v >= 4 chunks.
            vs.clear();
            if (p < std::max(2, pb_.runtime.min_interleaved_stages) || m % p != 0) continue;
            for (int v = 2; v * p <= L; ++v) {
              const bool listed = std::find(pb_.space.virtual_stages.begin(),
                                            pb_.space.virtual_stages.end(),
                                            v) != pb_.space.virtual_stages.end();
              if (pb_.space.virtual_stages.empty() ? v > kMaxDefaultVirtualStages : !listed) {
                continue;
              }
              for (ChunkLayout layout : {ChunkLayout::kBlocks, ChunkLayout::kSlots}) {
                if (layout == ChunkLayout::kSlots && !pb_.runtime.megatron_pipeline_split) continue;
                if (!EqualChunkLayers(L, p * v, layout).empty()) vs.push_back({v, layout});
              }
            }
          } else if (p == 1 && s != pb_.space.schedules.front()) {
            continue;  // identical for one stage
          }
          for (auto [v, layout] : vs) {
            Combo c{batch, p, m, s, v, 0, layout};
            ComboStatus status;
            c.lower_bound_per_sample = LowerBound(c, &status);
            if (status != ComboStatus::kNoValidSplit) ++splittable_;
            if (c.lower_bound_per_sample < kInf) out.push_back(c);
          }
        }
      }
    }
  }
  std::sort(out.begin(), out.end(), [](const Combo& a, const Combo& b) {
    return a.lower_bound_per_sample < b.lower_bound_per_sample;
  });
  return out;
}

double Searcher::LowerBound(const Combo& c, ComboStatus* status) const {
  *status = ComboStatus::kOk;
  const int L = pb_.model.num_layers;
  // Stage 0 holds the most micro-batches in flight under either schedule; the last stage the
  // fewest. Memory checks use the fewest (valid for every stage), time checks any stage's context
  // (costs do not depend on the stage index).
  StageContext ctx = MakeStageContext(pb_, c.pp, c.pp - 1, c.batch, c.m, c.schedule, c.v);
  if (c.v > 1) {
    // The last stage's last chunk holds one micro-batch at a time.
    const std::vector<int> k =
        plan::InFlightPerChunk(c.schedule, c.pp, c.pp - 1, c.m, c.v);
    ctx.in_flight = *std::min_element(k.begin(), k.end());
  }
  const int n = ctx.stage_devices;
  if (c.pp > 1) {
    // Activations must split over a stage's devices to cross a boundary (plan contract).
    const Layout b = cm_.BoundaryLayout(ctx);
    if (b.tp > 1 && !b.seq_sharded) {
      *status = ComboStatus::kNoValidSplit;
      return kInf;
    }
  }
  const int64_t room = pb_.memory_budget_bytes - pb_.hardware.reserved_bytes;
  double busy = 0, work = 0;
  double least_bytes = 0;
  for (LayerKind kind : {LayerKind::kEmbedding, LayerKind::kBlock, LayerKind::kHead}) {
    double best_busy = kInf, best_work = kInf, best_bytes = kInf;
    bool any_valid = false;
    for (const Strategy& s : EnumerateStrategies(pb_, kind, n)) {
      const LayerCost lc = cm_.Layer(kind, s, ctx);
      if (!lc.valid) continue;
      any_valid = true;
      if (lc.PersistentBytes(ctx.in_flight) + lc.transient_bytes > room) continue;
      best_busy = std::min(best_busy, lc.forward_s + lc.backward_s);
      best_work = std::min(best_work, lc.DpObjective(c.m));
      best_bytes = std::min(best_bytes, static_cast<double>(lc.PersistentBytes(ctx.in_flight)));
    }
    if (best_busy == kInf) {
      *status = any_valid ? ComboStatus::kDoesNotFit : ComboStatus::kNoValidSplit;
      return kInf;
    }
    const int count = kind == LayerKind::kBlock ? L : 1;
    busy += count * best_busy;
    work += count * best_work;
    least_bytes += count * best_bytes;
  }
  // The stages together must hold every layer.
  if (least_bytes > static_cast<double>(room) * c.pp) {
    *status = ComboStatus::kDoesNotFit;
    return kInf;
  }
  // Stage k cannot start before micro-batch 0 crossed stages 0..k-1 and cannot finish before the
  // last micro-batch's gradient crossed them back, so step >= sum_{j<k} X_j + m X_k for every k
  // (X = per-micro-batch busy time). Over all splits of the total busy time S = sum X_j, the
  // smallest such maximum C equalises the terms: X_k = C (1-1/m)^k / m, hence
  // S = C (1 - (1-1/m)^p). Also, stage k ends no earlier than m X_k + Y_k, and these add up to at
  // least `work`. With v chunks per stage the first micro-batch only has to cross 1/v of each
  // earlier stage: the same argument over chunk operations of X_k / v gives
  // S = C v (1 - (1 - 1/(m v))^p).
  const double fill = c.v * (1.0 - std::pow(1.0 - 1.0 / (c.m * c.v), c.pp));
  return std::max(work / c.pp, busy / fill) / c.batch;
}

std::vector<int> Searcher::VocabVariants(int stage_devices) const {
  if (!pb_.model.tied_embeddings) return {0};
  std::vector<int> out;
  for (LayerKind kind : {LayerKind::kEmbedding, LayerKind::kHead}) {
    for (const Strategy& s : EnumerateStrategies(pb_, kind, stage_devices)) {
      const int v = plan::VocabDegree(s);
      if (std::find(out.begin(), out.end(), v) == out.end()) out.push_back(v);
    }
  }
  std::sort(out.begin(), out.end());
  return out;
}

std::vector<DpOption> Searcher::Options(LayerKind kind, const StageContext& ctx,
                                        std::vector<Layout>* layouts,
                                        const std::function<bool(const Strategy&)>& allowed) const {
  std::vector<DpOption> out;
  for (const Strategy& s : EnumerateStrategies(pb_, kind, ctx.stage_devices)) {
    if (allowed && !allowed(s)) continue;
    const LayerCost lc = cm_.Layer(kind, s, ctx);
    if (!lc.valid) continue;
    DpOption o;
    o.strategy = s;
    o.busy_s = lc.forward_s + lc.backward_s;
    o.sync_s = lc.step_sync_s;
    o.persistent_bytes = lc.PersistentBytes(ctx.in_flight);
    o.transient_bytes = lc.transient_bytes;
    const Layout l = CostModel::LayoutOf(s, ctx.stage_devices);
    auto it = std::find(layouts->begin(), layouts->end(), l);
    o.layout = static_cast<int>(it - layouts->begin());
    if (it == layouts->end()) layouts->push_back(l);
    out.push_back(o);
  }
  // Drop dominated options: same layout, no better in objective, memory, transient or busy time.
  std::vector<DpOption> kept;
  for (size_t i = 0; i < out.size(); ++i) {
    bool dominated = false;
    for (size_t j = 0; j < out.size() && !dominated; ++j) {
      if (i == j) continue;
      const DpOption& a = out[j];
      const DpOption& b = out[i];
      const bool no_worse = a.layout == b.layout && a.sync_s <= b.sync_s &&
                            a.persistent_bytes <= b.persistent_bytes &&
                            a.transient_bytes <= b.transient_bytes && a.busy_s <= b.busy_s;
      const bool strictly = a.sync_s < b.sync_s || a.persistent_bytes < b.persistent_bytes ||
                            a.transient_bytes < b.transient_bytes || a.busy_s < b.busy_s || j < i;
      dominated = no_worse && strictly;
    }
    if (!dominated) kept.push_back(out[i]);
  }
  return kept;
}

void Searcher::Solve(const Combo& c) {
  const int p = c.pp;
  const StageContext any = MakeStageContext(pb_, p, 0, c.batch, c.m, c.schedule, c.v);
  for (int vocab_degree : VocabVariants(any.stage_devices)) {
    if (c.v > 1) {
      SolveInterleaved(c, vocab_degree);
    } else {
      SolveVariant(c, vocab_degree);
    }
  }
}

std::function<bool(const Strategy&)> Searcher::VocabRule(int vocab_degree, int p) const {
  // Tied embeddings: the embedding and the head split the vocabulary `vocab_degree` ways, and
  // across stages keep unsharded gradients (plan contract, plan::CheckAcrossLayers).
  const int n = pb_.hardware.num_devices() / p;
  return [vocab_degree, p, n](const Strategy& s) {
    if (vocab_degree == 0) return true;
    if (plan::VocabDegree(s) != vocab_degree) return false;
    if (p == 1) return true;
    const int group = s.ulysses() ? n : n / s.tp;
    return group == 1 || s.dp == DpMode::kDdp || s.dp == DpMode::kZero1;
  };
}

void Searcher::SolveInterleaved(const Combo& c, int vocab_degree) {
  const int L = pb_.model.num_layers;
  const int p = c.pp, v = c.v;
  // Blocks of each model chunk (chunk g on stage g mod p) under the combination's layout.
  std::vector<int> chunk_blocks = EqualChunkLayers(L, p * v, c.layout);
  if (chunk_blocks.empty()) return;
  const std::vector<int> chunk_layers = chunk_blocks;
  chunk_blocks.front() -= 1;
  chunk_blocks.back() -= 1;
  const std::function<bool(const Strategy&)> vocab_rule = VocabRule(vocab_degree, p);
  // One DP per stage over its v chunks' blocks (+ embedding / head), with every layer's
  // activations counted at the stage's average in-flight count per chunk (exact for a stage of
  // equal layers; Evaluate checks the plan's exact bound, chunk by chunk, before it is offered).
  // Both the charged and the hidden per-step sync variants are tried for stages after the first
  // (short pipelines only, as in SolveVariant).
  std::vector<StageDpSolution> charged(p), hidden(p);
  for (int i = 0; i < p; ++i) {
    if (Cancelled(opt_.cancelled)) return;
    int stage_blocks = 0;
    for (int k = 0; k < v; ++k) stage_blocks += chunk_blocks[k * p + i];
    StageDpInput in;
    in.ctx = MakeStageContext(pb_, p, i, c.batch, c.m, c.schedule, v);
    const std::vector<int> k = plan::InFlightPerChunk(c.schedule, p, i, c.m, v);
    in.ctx.in_flight = (std::accumulate(k.begin(), k.end(), 0) + v - 1) / v;
    in.has_embedding = i == 0;
    in.has_head = i == p - 1;
    in.min_blocks = in.max_blocks = stage_blocks;
    in.layouts.push_back(cm_.BoundaryLayout(in.ctx));
    in.boundary_layout = 0;
    if (in.has_embedding) {
      in.embedding = Options(LayerKind::kEmbedding, in.ctx, &in.layouts, vocab_rule);
    }
    in.block = Options(LayerKind::kBlock, in.ctx, &in.layouts);
    if (in.has_head) in.head = Options(LayerKind::kHead, in.ctx, &in.layouts, vocab_rule);
    in.budget_bytes = pb_.memory_budget_bytes - StageFixedBytes(cm_, in.ctx);
    in.quantum_bytes = quantum_;
    in.max_transient_caps = pb_.max_transient_caps;
    in.cancelled = opt_.cancelled;
    StageDpOutput o = SolveStage(cm_, in);
    cells_ += o.cells;
    if (o.cancelled || o.by_blocks.size() <= static_cast<size_t>(stage_blocks)) return;
    charged[i] = std::move(o.by_blocks[stage_blocks]);
    if (!charged[i].feasible) return;
    if (i > 0 && p <= kMaxPipelineForSyncVariants) {  // as SolveVariant
      in.sync_weight = 0.0;
      StageDpOutput h = SolveStage(cm_, in);
      cells_ += h.cells;
      if (h.cancelled || h.by_blocks.size() <= static_cast<size_t>(stage_blocks)) return;
      hidden[i] = std::move(h.by_blocks[stage_blocks]);
    }
  }
  for (bool hide : {false, true}) {
    PlanSpec plan;
    plan.global_batch = c.batch;
    plan.num_micro_batches = c.m;
    plan.schedule = c.schedule;
    plan.virtual_stages = v;
    plan.origin = "search";
    plan.layers.resize(L + 2);
    plan.stage_layers = chunk_layers;
    bool complete = true;
    for (int i = 0; i < p; ++i) {
      const StageDpSolution& s = hide && i > 0 && hidden[i].feasible ? hidden[i] : charged[i];
      if (!s.feasible) complete = false;
      if (!complete) break;
      // The stage's list: [embedding] + its chunks' blocks in order + [head]; chunk k of the
      // stage (model chunk k p + i) takes the next chunk_blocks[k p + i] of them.
      if (i == 0) plan.layers.front() = s.layers.front();
      if (i == p - 1) plan.layers.back() = s.layers.back();
      int next = i == 0 ? 1 : 0;  // position in the stage's list
      for (int k = 0; k < v; ++k) {
        const int g = k * p + i;  // model chunk
        const int first_block = plan.FirstLayer(g) + (g == 0 ? 1 : 0);  // after the embedding
        for (int b = 0; b < chunk_blocks[g]; ++b) {
          plan.layers[first_block + b] = s.layers[next++];
        }
      }
    }
    if (!complete) continue;
    absl::StatusOr<Evaluation> e = Evaluate(cm_, plan);
    ++evaluated_;
    if (!e.ok() || !e->feasible) continue;  // the exact per-chunk bound may not fit
    top_.Offer(e->step_time_s / c.batch, std::move(plan), *std::move(e));
  }
}

void Searcher::SolveVariant(const Combo& c, int vocab_degree) {
  const int L = pb_.model.num_layers;
  const int p = c.pp;
  const int max_depth = p == 1 ? L : std::min(L, 2 * ((L + p - 1) / p) + 2);
  const std::function<bool(const Strategy&)> vocab_rule = VocabRule(vocab_degree, p);
  // Per-stage tables: best solution for each block count. Stages after the first also get a
  // variant whose objective ignores the per-step sync, which the simulated schedule may hide
  // behind the earlier stages' drain; both variants are scored by Evaluate below.
  std::vector<std::vector<StageDpSolution>> tables(p), hidden_sync(p);
  for (int i = 0; i < p; ++i) {
    if (Cancelled(opt_.cancelled)) return;
    // Stages with the same context share a table (e.g. GPipe middle stages).
    StageDpInput in;
    in.ctx = MakeStageContext(pb_, p, i, c.batch, c.m, c.schedule);
    in.has_embedding = i == 0;
    in.has_head = i == p - 1;
    in.min_blocks = p == 1 ? L : (in.has_embedding || in.has_head ? 0 : 1);
    in.max_blocks = p == 1 ? L : max_depth;
    in.layouts.push_back(cm_.BoundaryLayout(in.ctx));
    in.boundary_layout = 0;
    if (in.has_embedding) {
      in.embedding = Options(LayerKind::kEmbedding, in.ctx, &in.layouts, vocab_rule);
    }
    in.block = Options(LayerKind::kBlock, in.ctx, &in.layouts);
    if (in.has_head) in.head = Options(LayerKind::kHead, in.ctx, &in.layouts, vocab_rule);
    in.budget_bytes = pb_.memory_budget_bytes - StageFixedBytes(cm_, in.ctx);
    in.quantum_bytes = quantum_;
    in.max_transient_caps = pb_.max_transient_caps;
    in.cancelled = opt_.cancelled;
    StageDpOutput o = SolveStage(cm_, in);
    cells_ += o.cells;
    tables[i] = std::move(o.by_blocks);
    if (i > 0 && p <= kMaxPipelineForSyncVariants) {
      in.sync_weight = 0.0;
      StageDpOutput h = SolveStage(cm_, in);
      cells_ += h.cells;
      hidden_sync[i] = std::move(h.by_blocks);
    }
  }
  // Partition: choose blocks per stage (sum L) minimising
  //   sum_i X_i + (m - 1) max_i X_i  (X_i = busy time of one micro-batch on stage i),
  // exactly, by enumerating the bottleneck threshold; the best few are then scored by Evaluate.
  std::vector<std::vector<int>> partitions;
  if (p == 1) {
    if (tables[0].size() > static_cast<size_t>(L) && tables[0][L].feasible) partitions.push_back({L});
  } else {
    std::vector<double> thresholds;
    for (const auto& t : tables) {
      for (const auto& s : t) {
        if (s.feasible) thresholds.push_back(s.busy_s);
      }
    }
    std::sort(thresholds.begin(), thresholds.end());
    thresholds.erase(std::unique(thresholds.begin(), thresholds.end()), thresholds.end());
    std::vector<std::pair<double, std::vector<int>>> found;
    double best_key = kInf;
    std::vector<double> g(L + 1), ng(L + 1);
    std::vector<std::vector<int>> choice(p, std::vector<int>(L + 1, -1));
    for (double X : thresholds) {
      if ((c.m - 1) * X >= best_key) break;  // the max term alone already loses
      if (Cancelled(opt_.cancelled)) return;
      std::fill(g.begin(), g.end(), kInf);
      g[0] = 0;
      for (int i = 0; i < p; ++i) {
        std::fill(ng.begin(), ng.end(), kInf);
        for (int k = 0; k <= L; ++k) {
          if (g[k] == kInf) continue;
          for (int n = 0; n < static_cast<int>(tables[i].size()) && k + n <= L; ++n) {
            const StageDpSolution& s = tables[i][n];
            if (!s.feasible || s.busy_s > X) continue;
            const double v = g[k] + s.busy_s;
            if (v < ng[k + n]) {
              ng[k + n] = v;
              choice[i][k + n] = n;
            }
          }
        }
        std::swap(g, ng);
      }
      if (g[L] == kInf) continue;
      const double key = g[L] + (c.m - 1) * X;
      std::vector<int> part(p);
      int k = L;
      for (int i = p - 1; i >= 0; --i) {
        part[i] = choice[i][k];
        k -= part[i];
      }
      found.push_back({key, part});
      best_key = std::min(best_key, key);
    }
    std::sort(found.begin(), found.end());
    for (const auto& f : found) {
      if (partitions.size() >= 3) break;
      if (std::find(partitions.begin(), partitions.end(), f.second) == partitions.end()) {
        partitions.push_back(f.second);
      }
    }
  }
  // Variant masks: bit i-1 set = stage i uses its hidden-sync solution. Every combination for
  // short pipelines, otherwise all-charged and all-hidden.
  std::vector<uint32_t> masks = {0u};
  if (p <= kMaxPipelineForSyncVariants) {
    for (uint32_t mask = 1; mask < (1u << (p - 1)); ++mask) masks.push_back(mask);
  }
  for (const std::vector<int>& part : partitions) {
    for (uint32_t mask : masks) {
      if (Cancelled(opt_.cancelled)) return;
      PlanSpec plan;
      plan.global_batch = c.batch;
      plan.num_micro_batches = c.m;
      plan.schedule = c.schedule;
      plan.origin = "search";
      bool complete = true;
      for (int i = 0; i < p; ++i) {
        // Masks have 32 bits: stages past the 33rd are never in the hidden-sync variant.
        const bool hidden = i > 0 && i - 1 < 32 && ((mask >> (i - 1)) & 1u);
        const StageDpSolution& s = hidden ? hidden_sync[i][part[i]] : tables[i][part[i]];
        if (!s.feasible) complete = false;
        plan.stage_layers.push_back(static_cast<int>(s.layers.size()));
        plan.layers.insert(plan.layers.end(), s.layers.begin(), s.layers.end());
      }
      if (!complete) continue;
      absl::StatusOr<Evaluation> e = Evaluate(cm_, plan);
      ++evaluated_;
      if (!e.ok() || !e->feasible) continue;  // cannot happen: the DP only builds fitting plans
      top_.Offer(e->step_time_s / c.batch, std::move(plan), *std::move(e));
    }
  }
}

SearchResult Searcher::Run() {
  const auto t0 = std::chrono::steady_clock::now();
  SearchResult r;
  std::vector<Combo> combos = Combos();
  r.stats.combinations = static_cast<int64_t>(combos.size());
  r.stats.memory_quantum_bytes = static_cast<double>(quantum_);
  std::atomic<size_t> next{0};
  std::atomic<int64_t> done{0};
  const int threads = std::max(
      1, pb_.threads > 0 ? pb_.threads : static_cast<int>(std::thread::hardware_concurrency()));
  auto worker = [&] {
    while (true) {
      const size_t i = next.fetch_add(1);
      if (i >= combos.size()) return;
      if (opt_.cancelled && opt_.cancelled->load()) return;
      if (combos[i].lower_bound_per_sample >= top_.bound.load()) {
        ++pruned_;
      } else {
        const auto c0 = std::chrono::steady_clock::now();
        Solve(combos[i]);
        if (std::getenv("CAIRN_SEARCH_TRACE")) {
          std::fprintf(stderr, "combo B=%d pp=%d v=%d (%s) m=%d %s: %.3f s, bound %.4g\n",
                       combos[i].batch, combos[i].pp, combos[i].v, ToString(combos[i].layout),
                       combos[i].m, ToString(combos[i].schedule),
                       std::chrono::duration<double>(std::chrono::steady_clock::now() - c0).count(),
                       combos[i].lower_bound_per_sample * combos[i].batch);
        }
      }
      const int64_t d = ++done;
      if (opt_.progress) opt_.progress(d, static_cast<int64_t>(combos.size()));
    }
  };
  std::vector<std::thread> pool;
  for (int t = 1; t < threads; ++t) pool.emplace_back(worker);
  worker();
  for (std::thread& t : pool) t.join();
  for (auto& it : top_.items) {
    r.plans.push_back(std::move(it.second.first));
    r.evaluations.push_back(std::move(it.second.second));
  }
  r.stats.combinations_pruned = pruned_;
  r.stats.dp_cells = cells_;
  r.stats.plans_evaluated = evaluated_;
  if (pb_.space.uniform_layers) {
    // Galvatron's coarse mode: the best plans with one strategy for every layer replace the
    // per-layer result — every strategy the space allows (EnumerateStrategies: TP degree, mode,
    // data-parallel mode, recomputation) on every (batch, pipeline degree, micro-batches,
    // schedule) combination, not only the baseline families (which the space's --dp-modes or --pp
    // can rule out while other uniform plans fit), interleaved ones cut as the combination says.
    r.plans.clear();
    r.evaluations.clear();
    TopK uniform(std::max(1, pb_.top_k));
    const int N = pb_.hardware.num_devices();
    for (const Combo& c : combos) {
      if (Cancelled(opt_.cancelled)) break;
      if (N % c.pp != 0) continue;
      for (const Strategy& s : EnumerateStrategies(pb_, LayerKind::kBlock, N / c.pp)) {
        Strategy eh = s;
        eh.recompute = false;
        PlanSpec plan;
        if (!MakeUniformPlan(pb_, c.batch, c.pp, c.m, c.schedule, s, eh, &plan, c.v, c.layout)) {
          continue;
        }
        plan.origin = "uniform";
        absl::StatusOr<Evaluation> e = Evaluate(cm_, plan);
        ++evaluated_;
        if (!e.ok() || !e->StrategiesValid() || !e->feasible) continue;
        uniform.Offer(e->step_time_s / c.batch, std::move(plan), *std::move(e));
      }
    }
    for (auto& it : uniform.items) {
      r.plans.push_back(std::move(it.second.first));
      r.evaluations.push_back(std::move(it.second.second));
    }
    r.stats.plans_evaluated = evaluated_;
  }
  r.search_time_s =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return r;
}

// Smallest per-device memory any plan in a memory-lean family needs on `problem`'s cluster.
int64_t MinimumMemory(const SearchProblem& problem, const std::atomic<bool>* cancelled) {
  CostModel cm(problem);
  const int N = problem.hardware.num_devices();
  const int L = problem.model.num_layers;
  int64_t best = std::numeric_limits<int64_t>::max();
  const int max_tp = std::min(N, problem.hardware.devices_per_node);
  for (int batch : problem.global_batch_sizes) {
    if (Cancelled(cancelled)) break;
    for (int p : Divisors(N)) {
      if (p > L) continue;
      const int n = N / p;
      for (int t = 1; t <= std::min(n, max_tp); t *= 2) {
        if (n % t != 0) continue;
        const int m = batch / std::gcd(batch, n / t) ;  // smallest micro-batch that splits
        if (m < 1 || m > kMaxMicroBatches || batch % m != 0) continue;
        for (ParallelMode mode : {ParallelMode::kTensorSequence, ParallelMode::kTensor}) {
          Strategy s;
          s.tp = t;
          s.mode = t > 1 ? mode : ParallelMode::kTensor;
          s.dp = DpMode::kZero3;
          s.recompute = true;
          Strategy eh = s;
          eh.recompute = false;
          // Tied embeddings on two stages keep unsharded gradients (plan contract).
          if (problem.model.tied_embeddings && p > 1) eh.dp = DpMode::kZero1;
          PlanSpec plan;
          if (!MakeUniformPlan(problem, batch, p, m, Schedule::k1F1B, s, eh, &plan)) continue;
          absl::StatusOr<Evaluation> e = Evaluate(cm, plan);
          if (!e.ok()) continue;
          if (e->StrategiesValid()) best = std::min(best, e->BoundBytes());
        }
      }
    }
  }
  return best;
}

std::string InfeasibleReason(const SearchProblem& pb, int64_t combos,
                             const std::atomic<bool>* cancelled) {
  if (combos == 0) {
    return absl::StrCat("no way to split global batch ",
                        pb.global_batch_sizes.empty() ? 0 : pb.global_batch_sizes.front(),
                        " over ", pb.hardware.num_devices(),
                        " devices with the allowed degrees: every data-parallel rank needs a whole "
                        "number of samples per micro-batch; use a global batch divisible by the "
                        "device count (or by devices / tensor-parallel degree)");
  }
  const int64_t need = MinimumMemory(pb, cancelled);
  std::string out = absl::StrCat("no plan fits in ", FormatBytes(pb.memory_budget_bytes),
                                 " per device on ", pb.hardware.num_devices(), " devices");
  if (need > 0 && need != std::numeric_limits<int64_t>::max()) {
    absl::StrAppend(&out, "; the leanest plan (ZeRO-3 + recomputation + tensor parallelism) needs ",
                    FormatBytes(need), " per device");
  }
  // More nodes: the leanest plan's memory shrinks with the device count.
  for (int k = 2; k <= 64; k *= 2) {
    SearchProblem bigger = pb;
    bigger.hardware.num_nodes = pb.hardware.num_nodes * k;
    const int64_t m = MinimumMemory(bigger, cancelled);
    if (m > 0 && m <= pb.memory_budget_bytes) {  // 0: no valid evaluation (never "needs 0 B")
      absl::StrAppend(&out, "; with ", bigger.hardware.num_nodes, " nodes (",
                      bigger.hardware.num_devices(), " devices) it would need ", FormatBytes(m));
      break;
    }
  }
  return out;
}

}  // namespace

bool MakeUniformPlan(const SearchProblem& problem, int global_batch, int pp, int micro_batches,
                     Schedule schedule, const Strategy& block, const Strategy& embedding_and_head,
                     PlanSpec* plan, int virtual_stages, ChunkLayout layout) {
  const int L = problem.model.num_layers;
  const int v = virtual_stages;
  if (pp < 1 || pp > L || micro_batches < 1 || global_batch % micro_batches != 0) return false;
  if (v < 1 || (v > 1) != (schedule == Schedule::kInterleaved1F1B)) return false;
  *plan = PlanSpec();
  plan->global_batch = global_batch;
  plan->num_micro_batches = micro_batches;
  plan->schedule = schedule;
  plan->virtual_stages = v;
  if (v > 1 || layout == ChunkLayout::kSlots) {
    plan->stage_layers = EqualChunkLayers(L, pp * v, layout);
    if (plan->stage_layers.empty()) return false;
  } else if (problem.runtime.megatron_pipeline_split) {
    plan->stage_layers = MegatronStageLayers(L, pp);
    if (plan->stage_layers.empty()) return false;
  } else {
    for (int i = 0; i < pp; ++i) {
      const int blocks = L / pp + (i < L % pp ? 1 : 0);
      plan->stage_layers.push_back(blocks + (i == 0) + (i == pp - 1));
    }
  }
  plan->layers.assign(L + 2, block);
  plan->layers.front() = embedding_and_head;
  plan->layers.back() = embedding_and_head;
  return true;
}

std::vector<BaselineResult> EvaluateBaselines(const SearchProblem& problem) {
  return Baselines(problem, nullptr);
}

namespace {
std::vector<BaselineResult> Baselines(const SearchProblem& problem,
                                      const std::atomic<bool>* cancelled) {
  CostModel cm(problem);
  const int N = problem.hardware.num_devices();
  const int L = problem.model.num_layers;
  struct Family {
    const char* name;
    bool pipeline_and_tp;
    DpMode dp;
    bool recompute;
  };
  const Family families[] = {
      {"megatron", true, DpMode::kZero1, false},
      {"megatron+recompute", true, DpMode::kZero1, true},
      {"fsdp", false, DpMode::kZero3, false},
      {"fsdp+recompute", false, DpMode::kZero3, true},
      {"ddp", false, DpMode::kDdp, false},
  };
  // The search space restricts the baselines as it restricts the search (--pp, --max-tp,
  // --micro-batches, --modes, --dp-modes, --schedules, --no-recompute): a baseline the user has
  // ruled out is no baseline, and the Megatron export picks from these.
  const SearchSpace& space = problem.space;
  auto allowed = [](const auto& list, auto v) {
    return std::find(list.begin(), list.end(), v) != list.end();
  };
  const int tp_cap = std::min(problem.hardware.devices_per_node,
                              space.max_tp > 0 ? space.max_tp : problem.hardware.devices_per_node);
  // Megatron's TP with sequence parallelism where allowed, else plain TP; at tp=1 the mode is moot.
  std::vector<ParallelMode> tp_modes;
  for (ParallelMode md : {ParallelMode::kTensorSequence, ParallelMode::kTensor}) {
    if (allowed(space.modes, md)) tp_modes.push_back(md);
  }
  const Schedule schedule =
      allowed(space.schedules, Schedule::k1F1B) || space.schedules.empty()
          ? Schedule::k1F1B
          : space.schedules.front();
  std::vector<BaselineResult> out;
  for (const Family& f : families) {
    BaselineResult best;
    best.family = f.name;
    if (!allowed(space.dp_modes, f.dp)) {
      best.reason = absl::StrCat("the search space excludes ", ToString(f.dp), " (--dp-modes)");
      out.push_back(std::move(best));
      continue;
    }
    if (f.recompute && !space.allow_recompute) {
      best.reason = "the search space excludes recomputation (--no-recompute)";
      out.push_back(std::move(best));
      continue;
    }
    double best_key = kInf;
    int64_t least_memory = std::numeric_limits<int64_t>::max();
    for (int batch : problem.global_batch_sizes) {
      if (Cancelled(cancelled)) return out;
      std::vector<int> pps = f.pipeline_and_tp ? Divisors(N) : std::vector<int>{1};
      if (!space.pipeline_degrees.empty()) {
        pps.erase(std::remove_if(pps.begin(), pps.end(),
                                 [&](int p) { return !allowed(space.pipeline_degrees, p); }),
                  pps.end());
      }
      for (int p : pps) {
        if (p > L) continue;
        const int n = N / p;
        const int max_tp = f.pipeline_and_tp && !tp_modes.empty() ? std::min(n, tp_cap) : 1;
        for (int t = 1; t <= max_tp; t *= 2) {
          if (n % t != 0) continue;
          for (int m : Divisors(batch)) {
            if (m > kMaxMicroBatches) break;
            if (p > 1 && m < p) continue;
            if (!space.micro_batch_counts.empty() && !allowed(space.micro_batch_counts, m)) {
              continue;
            }
            Strategy s;
            s.tp = t;
            s.mode = t > 1 ? tp_modes.front() : ParallelMode::kTensor;
            s.dp = f.dp;
            s.recompute = f.recompute;
            Strategy eh = s;
            eh.recompute = false;
            PlanSpec plan;
            if (!MakeUniformPlan(problem, batch, p, m, schedule, s, eh, &plan)) continue;
            plan.origin = absl::StrCat("uniform:", f.name);
            absl::StatusOr<Evaluation> e = Evaluate(cm, plan);
            if (!e.ok()) continue;
            if (!e->StrategiesValid()) continue;
            least_memory = std::min(least_memory, e->BoundBytes());
            if (!e->feasible) continue;
            const double key = e->step_time_s / batch;
            if (key < best_key) {
              best_key = key;
              best.feasible = true;
              best.description = absl::StrFormat("tp=%d pp=%d dp=%d m=%d batch=%d%s", t, p,
                                                 n / t, m, batch,
                                                 f.recompute ? " recompute" : "");
              best.plan = plan;
              best.evaluation = *std::move(e);
            }
          }
        }
      }
    }
    if (!best.feasible) {
      best.reason = least_memory == std::numeric_limits<int64_t>::max()
                        ? "no configuration of this family divides the batch and devices"
                        : absl::StrCat("its leanest configuration needs ",
                                       FormatBytes(least_memory), " per device");
    }
    out.push_back(std::move(best));
  }
  return out;
}
}  // namespace

namespace {

// With the simplicity preference: a uniform baseline (one strategy everywhere) within the tolerance
// of the fastest plan, and at least as simple as the first plan, replaces it when it is simpler or
// faster (the per-layer simplification keeps the fastest plan's stages and micro-batches, so it
// can miss a uniform plan of another shape). The fastest plan stays in the list.
void PreferUniformBaseline(const SearchProblem& problem, SearchResult* r) {
  const bool simplified = absl::StartsWith(r->plans[0].origin, "search, simplified");
  const size_t fastest = simplified ? 1 : 0;
  if (fastest >= r->plans.size()) return;
  const double limit = r->evaluations[fastest].step_time_s / r->plans[fastest].global_batch *
                       (1 + problem.simplicity_tolerance);
  const BaselineResult* pick = nullptr;
  for (const BaselineResult& b : r->baselines) {
    if (!b.feasible || b.evaluation.step_time_s / b.plan.global_batch > limit) continue;
    if (pick == nullptr || b.evaluation.step_time_s / b.plan.global_batch <
                               pick->evaluation.step_time_s / pick->plan.global_batch) {
      pick = &b;
    }
  }
  if (pick == nullptr) return;
  const PlanComplexity first = ComplexityOf(r->plans[0]), uniform = ComplexityOf(pick->plan);
  const double first_time = r->evaluations[0].step_time_s / r->plans[0].global_batch;
  const double pick_time = pick->evaluation.step_time_s / pick->plan.global_batch;
  if (first < uniform || (!(uniform < first) && pick_time >= first_time)) return;
  PlanSpec plan = pick->plan;
  plan.origin = absl::StrFormat(
      "search, simplified: the uniform %s plan (%s), within %.3g%% of the fastest plan found (the "
      "next plan)",
      pick->family, pick->description, 100 * problem.simplicity_tolerance);
  if (simplified) {
    r->plans[0] = std::move(plan);
    r->evaluations[0] = pick->evaluation;
  } else {
    r->plans.insert(r->plans.begin(), std::move(plan));
    r->evaluations.insert(r->evaluations.begin(), pick->evaluation);
  }
}

}  // namespace

absl::StatusOr<SearchResult> Search(const SearchProblem& problem, const SearchOptions& options) {
  if (problem.global_batch_sizes.empty()) {
    return absl::InvalidArgumentError("no global batch size to search");
  }
  if (problem.memory_budget_bytes <= 0) {
    return absl::InvalidArgumentError("memory budget must be positive");
  }
  Searcher searcher(problem, options);
  SearchResult r = searcher.Run();
  // Stopped: the caller discards the answer, so spend no more time on it.
  if (Cancelled(options.cancelled)) return r;
  if (r.plans.empty()) {
    r.infeasible_reason = InfeasibleReason(problem, searcher.splittable(), options.cancelled);
  } else if (problem.simplicity_tolerance > 0) {
    // The simplest plan within the tolerance first, the fastest right after it (simplify.h).
    SimplifiedPlan simple = SimplifyPlan(CostModel(problem), r.plans[0], r.evaluations[0],
                                         problem.simplicity_tolerance, /*max_evaluations=*/4000,
                                         options.cancelled);
    r.stats.plans_evaluated += simple.plans_evaluated;
    if (Cancelled(options.cancelled)) return r;
    if (simple.changed) {
      simple.plan.origin = absl::StrFormat(
          "search, simplified: within %.3g%% of the fastest plan found (the next plan)",
          100 * problem.simplicity_tolerance);
      r.plans.insert(r.plans.begin(), std::move(simple.plan));
      r.evaluations.insert(r.evaluations.begin(), std::move(simple.evaluation));
    }
  }
  if (options.with_baselines) {
    r.baselines = Baselines(problem, options.cancelled);
    double best_baseline = kInf;
    for (const BaselineResult& b : r.baselines) {
      if (b.feasible) {
        best_baseline = std::min(best_baseline, b.evaluation.step_time_s / b.plan.global_batch);
      }
    }
    if (!r.plans.empty() && problem.simplicity_tolerance > 0) PreferUniformBaseline(problem, &r);
    if (!r.plans.empty() && best_baseline < kInf) {
      r.gain_over_best_baseline =
          best_baseline / (r.evaluations[0].step_time_s / r.plans[0].global_batch);
    }
  }
  return r;
}

}  // namespace cairn::planner
