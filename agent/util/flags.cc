#include "agent/util/flags.h"

#include <algorithm>
#include <string>

#include "absl/flags/parse.h"

namespace cairn::agent {

std::vector<char*> ParseDashedCommandLine(int argc, char** argv) {
  // The rewritten strings must outlive flag parsing (Abseil may keep pointers to positional ones).
  static std::vector<std::string>* storage = new std::vector<std::string>(argv, argv + argc);
  std::vector<std::string>& args = *storage;
  for (size_t i = 1; i < args.size(); ++i) {
    std::string& a = args[i];
    if (a == "--") break;
    if (a.size() < 2 || a[0] != '-') continue;
    const size_t start = a[1] == '-' ? 2 : 1;
    const size_t end = std::min(a.find('='), a.size());
    for (size_t j = start; j < end; ++j) {
      if (a[j] == '-') a[j] = '_';
    }
  }
  std::vector<char*> ptrs;
  for (std::string& a : args) ptrs.push_back(a.data());
  return absl::ParseCommandLine(static_cast<int>(ptrs.size()), ptrs.data());
}

}  // namespace cairn::agent
