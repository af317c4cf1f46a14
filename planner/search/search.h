// planner/search/search.h — finds the fastest plan for a SearchProblem.
//
// Outer loop over (global batch, pipeline degree, micro-batch count, schedule); for each, an exact
// dynamic program over the layers of every stage (memory budget per stage, layout-transition costs,
// embedding and head strategies in the same table), then the stage partition chosen over the
// per-stage tables (not fixed to even splits), and the candidates scored by Evaluate with the
// simulated schedule. Combinations are processed best-lower-bound first on a thread pool and pruned
// when their lower bound cannot beat the k-th best plan found. docs/search.md has the details and the
// stated bounds (memory quantisation, stage depth).
//
//   absl::StatusOr<SearchResult> r = Search(problem);
//   if (r->plans.empty()) std::cerr << r->infeasible_reason;
//   else use r->plans[0], r->evaluations[0];
//
// Thread-safe: Search may be called concurrently on different problems.
#ifndef CAIRN_PLANNER_SEARCH_SEARCH_H_
#define CAIRN_PLANNER_SEARCH_SEARCH_H_

#include <atomic>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "planner/cost/evaluate.h"
#include "planner/cost/runtime_traits.h"
#include "planner/problem/problem.h"

namespace cairn::planner {

// The best uniform plan of one family a user would otherwise pick.
struct BaselineResult {
  std::string family;        // "megatron", "megatron+recompute", "fsdp", "fsdp+recompute", "ddp"
  std::string description;   // "tp=8 pp=2 dp=4 m=32"
  bool feasible = false;
  std::string reason;        // why nothing in the family fits
  PlanSpec plan;
  Evaluation evaluation;
};

struct SearchStats {
  int64_t combinations = 0;        // (batch, pp, micro-batches, schedule) tuples considered
  int64_t combinations_pruned = 0; // skipped by the lower bound
  int64_t dp_cells = 0;            // dynamic-program cells filled
  int64_t plans_evaluated = 0;     // full plans scored by Evaluate
  double memory_quantum_bytes = 0;
};

struct SearchResult {
  std::vector<PlanSpec> plans;          // best first (by time per sample)
  std::vector<Evaluation> evaluations;  // one per plan
  std::vector<BaselineResult> baselines;
  double gain_over_best_baseline = 0;   // best baseline time per sample / best plan's
  std::string infeasible_reason;        // when plans is empty
  double search_time_s = 0;
  SearchStats stats;
};

struct SearchOptions {
  bool with_baselines = true;
  // Called from worker threads with (done, total) combinations; may be empty.
  std::function<void(int64_t done, int64_t total)> progress;
  // Set to true from another thread to stop early (the best plans so far are returned).
  const std::atomic<bool>* cancelled = nullptr;
};

absl::StatusOr<SearchResult> Search(const SearchProblem& problem,
                                    const SearchOptions& options = {});

// Every strategy the search space allows for a layer of `kind` on a stage of `stage_devices`
// devices (whether it is valid for a given batch and model is the cost model's call).
std::vector<Strategy> EnumerateStrategies(const SearchProblem& problem, LayerKind kind,
                                          int stage_devices);

// Uniform-plan families evaluated with the same cost model (used for the baselines and for
// SearchSpace.uniform_layers).
std::vector<BaselineResult> EvaluateBaselines(const SearchProblem& problem);

// A uniform plan: the same strategy for every layer (`embedding_and_head` for those two).
// Interleaved 1F1B (`virtual_stages` >= 2): pp x v equal chunks of `layout`
// (planner/cost/runtime_traits.h EqualChunkLayers). One chunk per stage: kSlots cuts equal slots;
// kBlocks cuts the blocks evenly, a remainder going to the earlier stages, or under runtime traits
// with `megatron_pipeline_split` to the first and the last stage (MegatronStageLayers: Megatron
// keeps its middle stages equal). Returns false if the shape is impossible (the layout does not
// divide, pp > blocks, micro-batches not dividing the batch, virtual stages without interleaving).
bool MakeUniformPlan(const SearchProblem& problem, int global_batch, int pp, int micro_batches,
                     Schedule schedule, const Strategy& block, const Strategy& embedding_and_head,
                     PlanSpec* plan, int virtual_stages = 1,
                     ChunkLayout layout = ChunkLayout::kBlocks);

}  // namespace cairn::planner

#endif  // CAIRN_PLANNER_SEARCH_SEARCH_H_
