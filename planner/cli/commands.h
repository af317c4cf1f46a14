// planner/cli/commands.h — the `cairn` commands, as functions over argument vectors and streams so
// tests can run them without a process.
//
//   int status = cairn::cli::RunCommand({"plan", "--model", "llama2-7b", ...}, std::cout, std::cerr);
//
// Exit status: 0 success; 1 no feasible plan / plan does not fit; 2 bad input (the message says
// what to change).
#ifndef CAIRN_PLANNER_CLI_COMMANDS_H_
#define CAIRN_PLANNER_CLI_COMMANDS_H_

#include <ostream>
#include <string>
#include <vector>

namespace cairn::cli {

// `argv` without the program name. The command line is CLI11's (common/cli_app.h): `cairn --help`
// and `cairn COMMAND [VERB] --help` print the generated help (every flag, its default) to `out`
// and return 0; a flag mistake returns 2 with the message on `err`.
int RunCommand(const std::vector<std::string>& argv, std::ostream& out, std::ostream& err);

}  // namespace cairn::cli

#endif  // CAIRN_PLANNER_CLI_COMMANDS_H_
