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

int RunCommand(const std::vector<std::string>& argv, std::ostream& out, std::ostream& err);

// The text `cairn help` prints.
std::string Usage();

// The part of Usage() about one command (what `cairn COMMAND --help` prints); empty for an unknown
// command.
std::string CommandUsage(const std::string& command);

}  // namespace cairn::cli

#endif  // CAIRN_PLANNER_CLI_COMMANDS_H_
