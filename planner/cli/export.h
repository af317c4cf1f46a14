// planner/cli/export.h — `cairn plan --format megatron|galvatron`: the fastest plan of a search
// answer that the other framework can express, for the local search and the planner daemon alike.
//
//   int status = PrintExport(problem, response, "megatron", /*allow_resplit=*/true, out, err);
//
// Candidates, fastest (time per sample) first: the search's plans, then the feasible uniform
// baselines (which the search space restricts as it restricts the search). For Megatron-LM, a plan
// whose stages Megatron cannot express is also offered re-split with equal middle stages
// (planner::MegatronStageSplit, scored by the local cost model). When the printed plan is not the
// best plan, stderr says which it is and what it costs.
#ifndef CAIRN_PLANNER_CLI_EXPORT_H_
#define CAIRN_PLANNER_CLI_EXPORT_H_

#include <ostream>
#include <string>

#include "planner/problem/problem.h"
#include "proto/cairn/v1/search.pb.h"

namespace cairn::cli {

// `problem` is the search the response answers (the cluster shape is taken from the plans);
// `allow_resplit` only when its hardware is the one the response was scored on. Returns 0 after
// printing the flags (megatron) or strategy JSON (galvatron), 1 when no candidate is expressible
// (stderr says why, and for Megatron why its baselines do not fit), 2 for another format.
int PrintExport(const planner::SearchProblem& problem, const cairn::v1::SearchResponse& response,
                const std::string& format, bool allow_resplit, std::ostream& out,
                std::ostream& err);

}  // namespace cairn::cli

#endif  // CAIRN_PLANNER_CLI_EXPORT_H_
