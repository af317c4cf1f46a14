// planner/cli/render.h — human-readable text of plans and search answers, from the cairn.v1
// messages, so a local search and an answer from the planner daemon print the same way.
//
//   RenderSearchResponse(response, out);      // "Plan for llama2-7b on 4 x h100-sxm ..." + baselines
//   RenderPlan(plan, out);                    // one plan: stages, strategies, memory, breakdown
#ifndef CAIRN_PLANNER_CLI_RENDER_H_
#define CAIRN_PLANNER_CLI_RENDER_H_

#include <ostream>

#include "proto/cairn/v1/plan.pb.h"
#include "proto/cairn/v1/search.pb.h"

namespace cairn::cli {

// Header line: model, cluster shape, budget, batch and sequence of `plan`.
void RenderPlanHeader(const cairn::v1::Plan& plan, std::ostream& out);
// Prediction, pipeline, per-stage strategies and memory, time breakdown, violations (none for
// searched plans).
void RenderPlan(const cairn::v1::Plan& plan, std::ostream& out);
// Every plan, the baselines, the gain and the search statistics; `explain` adds the explanation.
void RenderSearchResponse(const cairn::v1::SearchResponse& response, bool explain,
                          std::ostream& out);

}  // namespace cairn::cli

#endif  // CAIRN_PLANNER_CLI_RENDER_H_
