// planner/search/simplify.h — among plans predicted within a tolerance of the fastest, the simplest.
//
// The search's exact dynamic program lets adjacent blocks flip between strategies (Ulysses and
// TP+SP, ZeRO levels, recomputation) for gains far below what the cost model can resolve; no user
// would trust such a plan. SimplifyPlan starts from the fastest plan and greedily merges
// strategies — every block of the plan to one strategy, every block of one model chunk to one of
// its strategies, a chunk's blocks grouped by strategy, one run of equal blocks to a neighbouring
// run's strategy — keeping each change whose plan is feasible and predicted within `tolerance` of
// the fastest plan's time per sample, preferring fewer distinct block strategies, then fewer
// changes between adjacent blocks, then the faster plan. Stage boundaries, micro-batches,
// schedule, embedding and head are kept.
//
//   SimplifiedPlan s = SimplifyPlan(cm, fastest, fastest_eval, /*tolerance=*/0.01);
//   if (s.changed) { use s.plan (s.evaluation), and report the fastest beside it }
//
// Thread-compatible (reads the cost model only).
#ifndef CAIRN_PLANNER_SEARCH_SIMPLIFY_H_
#define CAIRN_PLANNER_SEARCH_SIMPLIFY_H_

#include <atomic>
#include <cstdint>

#include "common/plan/plan.h"
#include "planner/cost/cost_model.h"
#include "planner/cost/evaluate.h"

namespace cairn::planner {

// How complicated a plan reads: distinct strategies over its transformer blocks, and changes of
// strategy between adjacent blocks (across stage boundaries too). Embedding and head not counted.
struct PlanComplexity {
  int distinct_strategies = 0;
  int changes = 0;
  bool operator<(const PlanComplexity& o) const {
    return distinct_strategies != o.distinct_strategies
               ? distinct_strategies < o.distinct_strategies
               : changes < o.changes;
  }
};
PlanComplexity ComplexityOf(const PlanSpec& plan);

struct SimplifiedPlan {
  bool changed = false;     // plan differs from the fastest
  PlanSpec plan;            // the fastest when !changed
  Evaluation evaluation;
  int64_t plans_evaluated = 0;
};

// `fastest` must be feasible under `cm` (`fastest_eval` its evaluation). tolerance <= 0 returns it
// unchanged. At most `max_evaluations` candidate plans are scored; `cancelled` stops early.
SimplifiedPlan SimplifyPlan(const CostModel& cm, const PlanSpec& fastest,
                            const Evaluation& fastest_eval, double tolerance,
                            int64_t max_evaluations = 4000,
                            const std::atomic<bool>* cancelled = nullptr);

}  // namespace cairn::planner

#endif  // CAIRN_PLANNER_SEARCH_SIMPLIFY_H_
