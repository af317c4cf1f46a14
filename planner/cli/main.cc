// cairn — command-line client. See `cairn help` and docs/cli.md.
#include <iostream>
#include <string>
#include <vector>

#include "planner/cli/commands.h"

int main(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  return cairn::cli::RunCommand(args, std::cout, std::cerr);
}
