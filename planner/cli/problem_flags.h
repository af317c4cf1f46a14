// planner/cli/problem_flags.h — the model/cluster/search flags shared by `cairn plan` and
// `cairn evaluate`, locally and against the planner daemon.
//
//   Args a; a.Parse(argv, ProblemFlags(), {...});
//   absl::StatusOr<Loaded> l = LoadProblem(a);   // l->request to send, l->problem to search locally
#ifndef CAIRN_PLANNER_CLI_PROBLEM_FLAGS_H_
#define CAIRN_PLANNER_CLI_PROBLEM_FLAGS_H_

#include <set>
#include <string>

#include "absl/status/statusor.h"
#include "common/args.h"
#include "planner/problem/problem.h"
#include "proto/cairn/v1/search.pb.h"

namespace cairn::cli {

// Flags taking a value that LoadProblem reads (booleans: no-recompute, uniform-layers).
std::set<std::string> ProblemFlags();

struct Loaded {
  cairn::v1::SearchRequest request;   // as built from the flags (model and cluster embedded)
  planner::SearchProblem problem;     // the same, validated
  std::string hardware_label;         // e.g. "h100-sxm (built-in default)"
};

// Builds and validates the search from the flags; InvalidArgument/NotFound name the flag and the fix.
absl::StatusOr<Loaded> LoadProblem(const Args& args);

absl::StatusOr<planner::ParallelMode> ParseMode(absl::string_view s);
absl::StatusOr<planner::DpMode> ParseDpMode(absl::string_view s);
absl::StatusOr<planner::Schedule> ParseSchedule(absl::string_view s);

}  // namespace cairn::cli

#endif  // CAIRN_PLANNER_CLI_PROBLEM_FLAGS_H_
