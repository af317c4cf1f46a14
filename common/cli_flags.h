// common/cli_flags.h — the command line of the Abseil-flag binaries (cairn-planner, cairn-agent):
// flags spelled with dashes as the docs write them, --help and --version that exit 0, and every
// flag mistake (unknown name, missing or unparsable value) exiting 2, which the systemd units'
// RestartPreventExitStatus=2 relies on. (Abseil alone exits 1 for all of these, and its --help
// lists nothing unless the flags live in a file named after the binary.)
//
//   int main(int argc, char** argv) {
//     absl::SetProgramUsageMessage("the Cairn planner daemon ...\nUsage: cairn-planner ...");
//     std::vector<char*> rest = cairn::ParseFlagsOrExit("cairn-planner", argc, argv);
//
// The `cairn` CLI and cairn-train/cairn-data parse with common/args.h instead and follow the same
// rules (docs/cli.md).
#ifndef CAIRN_COMMON_CLI_FLAGS_H_
#define CAIRN_COMMON_CLI_FLAGS_H_

#include <ostream>
#include <string>
#include <vector>

namespace cairn {

// Rewrites the dashes in flag names to Abseil's underscores (both spellings work), then:
// --help/-h/--helpfull/--helpshort: prints the usage message and the program's flags (name, help,
// default) to stdout, exits 0; --version: prints VersionLine(program), exits 0; an unknown flag or a
// bad value: says which on stderr, exits 2. Otherwise calls absl::ParseCommandLine and returns the
// positional arguments (argv[0] first). --flagfile=FILE[,FILE] is expanded here, in place: one flag
// per line, '#' comments, dashed names, the same checks and exit status (an unreadable file: 2).
std::vector<char*> ParseFlagsOrExit(const std::string& program, int argc, char** argv);

// The flag listing --help prints: for each source file outside Abseil, "Flags from FILE:" then
// "    --name (help); default: VALUE;" lines (string defaults quoted).
void PrintFlagHelp(std::ostream& out);

}  // namespace cairn

#endif  // CAIRN_COMMON_CLI_FLAGS_H_
