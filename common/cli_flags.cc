#include "common/cli_flags.h"

#include <algorithm>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <map>

#include "absl/flags/commandlineflag.h"
#include "absl/flags/parse.h"
#include "absl/flags/reflection.h"
#include "absl/flags/usage.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/strings/ascii.h"
#include "common/version.h"

namespace cairn {
namespace {

bool IsHelp(const std::string& name) {
  return name == "help" || name == "h" || name == "helpfull" || name == "helpshort" ||
         name == "?";
}

// Flags Abseil itself understands and we pass through untouched.
bool IsAbslBuiltin(const std::string& name) {
  return name == "flagfile" || name == "fromenv" || name == "tryfromenv" || name == "undefok";
}

[[noreturn]] void BadFlag(const std::string& program, const std::string& message) {
  std::cerr << program << ": " << message << " (see " << program << " --help)\n";
  std::exit(2);
}

// Expands --flagfile=A[,B] (or --flagfile A) in place into the flags the files hold: one per line,
// '#' comments and blank lines skipped, nested --flagfile followed (to depth 8). Doing it here, not
// in Abseil, lets the files spell names with dashes as the shipped configurations do and gets their
// mistakes the same exit status 2.
void ExpandFlagfiles(const std::string& program, const std::vector<std::string>& in, int depth,
                     std::vector<std::string>* out) {
  for (size_t i = 0; i < in.size(); ++i) {
    const std::string& a = in[i];
    if (a == "--") {
      out->insert(out->end(), in.begin() + i, in.end());
      return;
    }
    std::string files;
    if (a.rfind("--flagfile=", 0) == 0 || a.rfind("-flagfile=", 0) == 0) {
      files = a.substr(a.find('=') + 1);
    } else if ((a == "--flagfile" || a == "-flagfile") && i + 1 < in.size()) {
      files = in[++i];
    } else {
      out->push_back(a);
      continue;
    }
    if (depth >= 8) BadFlag(program, "--flagfile nested more than 8 deep");
    for (absl::string_view file : absl::StrSplit(files, ',', absl::SkipEmpty())) {
      std::ifstream f{std::string(file)};
      if (!f) BadFlag(program, absl::StrCat("--flagfile ", file, ": cannot be read"));
      std::vector<std::string> lines;
      for (std::string line; std::getline(f, line);) {
        absl::string_view l = absl::StripAsciiWhitespace(line);
        if (l.empty() || l[0] == '#') continue;
        if (l[0] != '-') {
          BadFlag(program, absl::StrCat("--flagfile ", file, ": '", l,
                                        "' is not a flag (one --name=value per line)"));
        }
        lines.emplace_back(l);
      }
      ExpandFlagfiles(program, lines, depth + 1, out);
    }
  }
}

}  // namespace

void PrintFlagHelp(std::ostream& out) {
  std::map<std::string, std::map<std::string, absl::CommandLineFlag*>> by_file;
  for (const auto& [name, flag] : absl::GetAllFlags()) {
    if (flag->IsRetired()) continue;
    const std::string file = flag->Filename();
    if (absl::StrContains(file, "absl/")) continue;
    by_file[file][std::string(name)] = flag;
  }
  for (const auto& [file, flags] : by_file) {
    out << "\n  Flags from " << file << ":\n";
    for (const auto& [name, flag] : flags) {
      std::string def = flag->DefaultValue();
      if (flag->IsOfType<std::string>()) def = "\"" + def + "\"";
      out << "    --" << absl::StrReplaceAll(name, {{"_", "-"}}) << " (" << flag->Help()
          << "); default: " << def << ";\n";
    }
  }
  out << "\n";
}

std::vector<char*> ParseFlagsOrExit(const std::string& program, int argc, char** argv) {
  // The rewritten strings must outlive flag parsing (Abseil may keep pointers to positional ones).
  static std::vector<std::string>* storage = new std::vector<std::string>();
  storage->clear();
  if (argc > 0) storage->push_back(argv[0]);
  ExpandFlagfiles(program,
                  std::vector<std::string>(argv + std::min(argc, 1), argv + std::max(argc, 0)),
                  0, storage);
  std::vector<std::string>& args = *storage;
  for (size_t i = 1; i < args.size(); ++i) {
    std::string& a = args[i];
    if (a == "--") break;
    if (a.size() < 2 || a[0] != '-') continue;
    const size_t start = a[1] == '-' ? 2 : 1;
    const size_t eq = std::min(a.find('='), a.size());
    for (size_t j = start; j < eq; ++j) {
      if (a[j] == '-') a[j] = '_';
    }
    const std::string name = a.substr(start, eq - start);
    const bool has_value = eq < a.size();
    if (IsHelp(name)) {
      std::cout << program << ": " << absl::ProgramUsageMessage() << "\n";
      PrintFlagHelp(std::cout);
      std::exit(0);
    }
    if (name == "version") {
      std::cout << VersionLine(program) << "\n";
      std::exit(0);
    }
    if (IsAbslBuiltin(name)) continue;  // --flagfile is already expanded
    absl::CommandLineFlag* flag = absl::FindCommandLineFlag(name);
    if (flag == nullptr && absl::StartsWith(name, "no")) {
      absl::CommandLineFlag* negated = absl::FindCommandLineFlag(name.substr(2));
      if (negated != nullptr && negated->IsOfType<bool>() && !has_value) continue;
    }
    const std::string dashed = absl::StrReplaceAll(name, {{"_", "-"}});
    if (flag == nullptr || flag->IsRetired()) BadFlag(program, "unknown flag --" + dashed);
    if (flag->IsOfType<bool>() && !has_value) continue;
    std::string value;
    if (has_value) {
      value = a.substr(eq + 1);
    } else if (i + 1 < args.size()) {
      value = args[i + 1];  // Abseil takes the next argument as the value
      ++i;
    } else {
      BadFlag(program, "--" + dashed + " needs a value");
    }
    std::string error;
    if (!flag->ParseFrom(value, &error)) {
      BadFlag(program, "--" + dashed + "=" + value + ": " + error);
    }
  }
  std::vector<char*> ptrs;
  for (std::string& a : args) ptrs.push_back(a.data());
  return absl::ParseCommandLine(static_cast<int>(ptrs.size()), ptrs.data());
}

}  // namespace cairn
