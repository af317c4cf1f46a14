// planner/cli/render.h — human-readable text of plans and search answers, from the cairn.v1
// messages, so a local search and an answer from the planner daemon print the same way.
//
//   RenderSearchResponse(response, out);      // "Plan for llama2-7b on 4 x h100-sxm ..." + baselines
//   RenderPlan(plan, out);                    // one plan: stages, strategies, memory, breakdown
#ifndef CAIRN_PLANNER_CLI_RENDER_H_
#define CAIRN_PLANNER_CLI_RENDER_H_

#include <ostream>
#include <string>

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

// One search-progress report on stderr: on a terminal (`tty`) it rewrites the current line
// ("\r" + text + clear to end of line; a newline after the `last` one), otherwise it is a plain
// line of its own, so logs stay readable.
void PrintProgress(std::ostream& err, bool tty, const std::string& text, bool last);

// Whether `err` is the process's stderr and that is a terminal.
bool IsTerminal(const std::ostream& err);

}  // namespace cairn::cli

#endif  // CAIRN_PLANNER_CLI_RENDER_H_
