#include "agent/util/flags.h"

#include <string>

#include "common/cli_flags.h"

namespace cairn::agent {

std::vector<char*> ParseDashedCommandLine(int argc, char** argv) {
  std::string program = argc > 0 ? argv[0] : "cairn-agent";
  program = program.substr(program.find_last_of('/') + 1);
  return ParseFlagsOrExit(program, argc, argv);
}

}  // namespace cairn::agent
