#include "planner/search/simplify.h"

#include <algorithm>
#include <utility>
#include <vector>

namespace cairn::planner {
namespace {

// The blocks are layers 1..L of plan.layers (0 is the embedding, L + 1 the head).
int NumBlocks(const PlanSpec& plan) { return static_cast<int>(plan.layers.size()) - 2; }

// Distinct strategies among layers [first, last] (block indices), in order of appearance.
std::vector<Strategy> DistinctIn(const PlanSpec& plan, int first, int last) {
  std::vector<Strategy> out;
  for (int i = first; i <= last; ++i) {
    bool seen = false;
    for (const Strategy& s : out) seen |= s == plan.layers[i];
    if (!seen) out.push_back(plan.layers[i]);
  }
  return out;
}

PlanSpec WithBlocks(const PlanSpec& plan, int first, int last, const Strategy& s) {
  PlanSpec out = plan;
  for (int i = first; i <= last; ++i) out.layers[i] = s;
  return out;
}

}  // namespace

PlanComplexity ComplexityOf(const PlanSpec& plan) {
  PlanComplexity c;
  const int blocks = NumBlocks(plan);
  if (blocks <= 0) return c;
  c.distinct_strategies = static_cast<int>(DistinctIn(plan, 1, blocks).size());
  for (int i = 2; i <= blocks; ++i) c.changes += plan.layers[i] != plan.layers[i - 1];
  return c;
}

SimplifiedPlan SimplifyPlan(const CostModel& cm, const PlanSpec& fastest,
                            const Evaluation& fastest_eval, double tolerance,
                            int64_t max_evaluations, const std::atomic<bool>* cancelled) {
  SimplifiedPlan best;
  best.plan = fastest;
  best.evaluation = fastest_eval;
  const int blocks = NumBlocks(fastest);
  if (tolerance <= 0 || blocks <= 1 || !fastest_eval.feasible || fastest.global_batch <= 0) {
    return best;
  }
  const double limit = fastest_eval.step_time_s / fastest.global_batch * (1 + tolerance);
  PlanComplexity best_complexity = ComplexityOf(fastest);
  while (best_complexity.changes > 0) {
    // Candidates from the current plan, each merging strategies somewhere.
    std::vector<PlanSpec> candidates;
    for (const Strategy& s : DistinctIn(best.plan, 1, blocks)) {
      candidates.push_back(WithBlocks(best.plan, 1, blocks, s));
    }
    for (int chunk = 0; chunk < best.plan.num_chunks(); ++chunk) {
      const int first = std::max(1, best.plan.FirstLayer(chunk));
      const int last = std::min(blocks, best.plan.FirstLayer(chunk + 1) - 1);
      if (first >= last) continue;
      const std::vector<Strategy> here = DistinctIn(best.plan, first, last);
      if (here.size() < 2) continue;
      for (const Strategy& s : here) candidates.push_back(WithBlocks(best.plan, first, last, s));
      // The chunk's blocks grouped by strategy (same counts, so the same memory and compute; fewer
      // transitions), in the order the strategies first appear, and in the reverse order.
      for (bool reverse : {false, true}) {
        PlanSpec grouped = best.plan;
        int at = first;
        for (size_t k = 0; k < here.size(); ++k) {
          const Strategy& s = here[reverse ? here.size() - 1 - k : k];
          for (int i = first; i <= last; ++i) {
            if (best.plan.layers[i] == s) grouped.layers[at++] = s;
          }
        }
        candidates.push_back(std::move(grouped));
      }
    }
    for (int start = 1; start <= blocks;) {
      int end = start;
      while (end < blocks && best.plan.layers[end + 1] == best.plan.layers[start]) ++end;
      if (start > 1) {
        candidates.push_back(WithBlocks(best.plan, start, end, best.plan.layers[start - 1]));
      }
      if (end < blocks) {
        candidates.push_back(WithBlocks(best.plan, start, end, best.plan.layers[end + 1]));
      }
      start = end + 1;
    }
    bool found = false;
    SimplifiedPlan next = best;
    PlanComplexity next_complexity = best_complexity;
    for (PlanSpec& candidate : candidates) {
      if (best.plans_evaluated >= max_evaluations) break;
      if (cancelled != nullptr && cancelled->load(std::memory_order_relaxed)) return best;
      const PlanComplexity c = ComplexityOf(candidate);
      const bool simpler = c < next_complexity;
      const bool tie = found && !simpler && !(next_complexity < c);  // as simple as the pick
      if (!simpler && !tie) continue;
      ++best.plans_evaluated;
      absl::StatusOr<Evaluation> e = Evaluate(cm, candidate);
      if (!e.ok() || !e->feasible) continue;
      const double per_sample = e->step_time_s / candidate.global_batch;
      if (per_sample > limit) continue;
      if (tie && per_sample >= next.evaluation.step_time_s / next.plan.global_batch) continue;
      found = true;
      next.plan = std::move(candidate);
      next.evaluation = *std::move(e);
      next_complexity = c;
    }
    if (!found) break;
    next.plans_evaluated = best.plans_evaluated;
    best = std::move(next);
    best.changed = true;
    best_complexity = next_complexity;
    if (best.plans_evaluated >= max_evaluations) break;
  }
  return best;
}

}  // namespace cairn::planner
