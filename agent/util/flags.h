// agent/util/flags.h — Abseil flags spelled with dashes (--planner-address) as the docs write them.
//
// Abseil flag names cannot contain '-', so the dashes in each flag's name (not its value) become
// underscores before parsing; both spellings work. --flagfile=FILE (Abseil's own) reads flags from a
// file, one per line: that is the agent's configuration file.
//
//   int main(int argc, char** argv) {
//     std::vector<char*> rest = cairn::agent::ParseDashedCommandLine(argc, argv);
#ifndef CAIRN_AGENT_UTIL_FLAGS_H_
#define CAIRN_AGENT_UTIL_FLAGS_H_

#include <vector>

namespace cairn::agent {

// cairn::ParseFlagsOrExit (common/cli_flags.h) under the program's own name: returns the positional
// arguments; exits 0 after --help or --version, 2 on an unknown flag or a bad value.
std::vector<char*> ParseDashedCommandLine(int argc, char** argv);

}  // namespace cairn::agent

#endif  // CAIRN_AGENT_UTIL_FLAGS_H_
