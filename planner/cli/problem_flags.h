// planner/cli/problem_flags.h — the model/cluster/search flags shared by `cairn plan` and
// `cairn evaluate`, locally and against the planner daemon.
//
//   Flags a(app->add_subcommand("plan", ...));
//   AddProblemFlags(a);                           // declares --model, --nodes, ... with defaults
//   ... parse ...
//   absl::StatusOr<Loaded> l = LoadProblem(a);   // l->request to send, l->problem to search locally
#ifndef CAIRN_PLANNER_CLI_PROBLEM_FLAGS_H_
#define CAIRN_PLANNER_CLI_PROBLEM_FLAGS_H_

#include <string>

#include "absl/status/statusor.h"
#include "common/cli_app.h"
#include "planner/problem/problem.h"
#include "proto/cairn/v1/plan.pb.h"
#include "proto/cairn/v1/search.pb.h"

namespace cairn::cli {

// Declares the flags LoadProblem reads, each with its default and help (also on a Flags without a
// command line, for a problem taken from a plan).
void AddProblemFlags(Flags& flags);

struct Loaded {
  cairn::v1::SearchRequest request;   // as built from the flags (model and cluster embedded)
  planner::SearchProblem problem;     // the same, validated
  std::string hardware_label;         // e.g. "h100-sxm (built-in default)"
};

// Builds and validates the search from the flags; InvalidArgument/NotFound name the flag and the fix.
absl::StatusOr<Loaded> LoadProblem(const Flags& args);

// Sets the problem flags a plan fixes (model, cluster, nodes, gpus-per-node, global-batch, seq-len)
// from `plan`, so LoadProblem builds the problem the plan was made for. A flag already given must
// repeat the plan's value: InvalidArgument naming both otherwise ("--seq-len 4096 contradicts the
// plan's seq_len 8192 (PLAN)"); also for --batch-range, and when the plan names no built-in
// cluster and neither --cluster nor --hardware-profile is given. `source` names the plan in
// messages (a path, a plan id).
absl::Status TakeProblemFromPlan(const cairn::v1::Plan& plan, const std::string& source, Flags* a);

// The files a command will write (--output, --svg, --html, where given) can be written: checked
// before the search, so a mistyped path does not cost a finished search.
absl::Status CheckOutputFiles(const Flags& args);

absl::StatusOr<planner::ParallelMode> ParseMode(absl::string_view s);
absl::StatusOr<planner::DpMode> ParseDpMode(absl::string_view s);
absl::StatusOr<planner::Schedule> ParseSchedule(absl::string_view s);

}  // namespace cairn::cli

#endif  // CAIRN_PLANNER_CLI_PROBLEM_FLAGS_H_
