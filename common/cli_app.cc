#include "common/cli_app.h"

#include <algorithm>
#include <fstream>
#include <iostream>
#include <sstream>
#include <type_traits>

#include "CLI/CLI.hpp"
#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "common/version.h"

namespace cairn {
namespace {

// Help in our words: "--nodes N    nodes in the cluster (default: 1)", and "usage:".
class HelpFormatter : public CLI::Formatter {
 public:
  HelpFormatter() {
    label("Usage", "usage");
    column_width(32);
  }
  // "  --name VALUE   description (default: X)": the description from column_width_ on, wrapped
  // at kHelpWidth columns; on the next line when the name is too long.
  std::string make_option(const CLI::Option* opt, bool is_positional) const override {
    constexpr size_t kHelpWidth = 100;
    std::string out = "  " + make_option_name(opt, is_positional) + make_option_opts(opt);
    if (out.size() + 1 > column_width_) {
      out += "\n" + std::string(column_width_, ' ');
    } else {
      out += std::string(column_width_ - out.size(), ' ');
    }
    size_t column = column_width_;
    bool first = true;
    // "(default: X)" stays on one line, so it can be found (and read) whole.
    std::vector<std::string> words = absl::StrSplit(opt->get_description(), ' ', absl::SkipEmpty());
    if (opt->get_type_size() != 0 && !opt->get_default_str().empty()) {
      words.push_back(absl::StrCat("(default: ", opt->get_default_str(), ")"));
    }
    for (absl::string_view word : words) {
      if (!first && column + 1 + word.size() > kHelpWidth) {
        out += "\n" + std::string(column_width_, ' ');
        column = column_width_;
        first = true;
      }
      if (!first) {
        out += ' ';
        ++column;
      }
      absl::StrAppend(&out, word);
      column += word.size();
      first = false;
    }
    return out + "\n";
  }
  std::string make_option_name(const CLI::Option* opt, bool is_positional) const override {
    // "--read-only,--no-read-only", without CLI11's "{false}" after the negated name.
    std::string name = CLI::Formatter::make_option_name(opt, is_positional);
    for (size_t open = name.find('{'); open != std::string::npos; open = name.find('{')) {
      name.erase(open, name.find('}', open) - open + 1);
    }
    return name;
  }
  std::string make_option_opts(const CLI::Option* opt) const override {
    if (opt->get_type_size() == 0) return "";  // a flag
    std::string out;
    if (!opt->get_type_name().empty()) out = " " + opt->get_type_name();
    if (opt->get_expected_max() == CLI::detail::expected_max_vector_size) out += " ...";
    if (opt->get_required()) out += " (required)";
    return out;
  }
};

constexpr int kMaxFlagfileDepth = 8;

// Expands --flagfile=A[,B] (or --flagfile A) in place into the flags the files hold.
absl::Status ExpandFlagfiles(const std::vector<std::string>& in, int depth,
                             std::vector<std::string>* out) {
  for (size_t i = 0; i < in.size(); ++i) {
    const std::string& a = in[i];
    if (a == "--") {
      out->insert(out->end(), in.begin() + i, in.end());
      return absl::OkStatus();
    }
    std::string files;
    if (a.rfind("--flagfile=", 0) == 0) {
      files = a.substr(a.find('=') + 1);
    } else if (a == "--flagfile" && i + 1 < in.size()) {
      files = in[++i];
    } else {
      out->push_back(a);
      continue;
    }
    if (depth >= kMaxFlagfileDepth) {
      return absl::InvalidArgumentError("--flagfile nested more than 8 deep");
    }
    for (absl::string_view file : absl::StrSplit(files, ',', absl::SkipEmpty())) {
      std::ifstream f{std::string(file)};
      if (!f)
        return absl::InvalidArgumentError(absl::StrCat("--flagfile ", file, ": cannot be read"));
      std::vector<std::string> lines;
      for (std::string line; std::getline(f, line);) {
        absl::string_view l = absl::StripAsciiWhitespace(line);
        if (l.empty() || l[0] == '#') continue;
        if (l[0] != '-') {
          return absl::InvalidArgumentError(absl::StrCat(
              "--flagfile ", file, ": '", l, "' is not a flag (one --name=value per line)"));
        }
        lines.emplace_back(l);
      }
      if (absl::Status s = ExpandFlagfiles(lines, depth + 1, out); !s.ok()) return s;
    }
  }
  return absl::OkStatus();
}

// The deepest selected subcommand (where a mistake was made, whose --help to read).
const CLI::App* Selected(const CLI::App& app) {
  const CLI::App* at = &app;
  while (!at->get_subcommands().empty()) at = at->get_subcommands().front();
  return at;
}

// The first argument nobody declared, in the words of a user: "unknown flag --x", "unknown command
// 'x'" or "unexpected argument 'x'". Empty when there is none.
std::string ExtraArgument(const CLI::App& app) {
  const CLI::App* where = Selected(app);
  std::vector<std::string> extras = where->remaining();
  if (extras.empty()) extras = app.remaining(true);
  if (extras.empty()) return "";
  // A flag first: "--frobnicate 1" reads as a flag with a value, not an argument.
  for (const std::string& e : extras) {
    if (e.size() > 1 && e[0] == '-') return "unknown flag " + e.substr(0, e.find('='));
  }
  if (where->get_subcommands().empty() &&
      !where->get_subcommands(std::function<bool(const CLI::App*)>()).empty()) {
    return absl::StrCat("unknown command '", extras.front(), "'");
  }
  return absl::StrCat("unexpected argument '", extras.front(), "'");
}

bool IsBoolText(const std::string& v) {
  const std::string l = absl::AsciiStrToLower(v);
  return l == "true" || l == "false" || l == "1" || l == "0";
}

}  // namespace

std::unique_ptr<CLI::App> MakeApp(const std::string& program, const std::string& description) {
  auto app = std::make_unique<CLI::App>(description, program);
  app->formatter(std::make_shared<HelpFormatter>());
  app->set_help_flag("-h,--help", "print this help and exit");
  app->set_version_flag("--version", VersionLine(program),
                        "print the version and how this binary was built, and exit");
  app->option_defaults()->multi_option_policy(CLI::MultiOptionPolicy::TakeLast);
  app->option_defaults()->always_capture_default();
  app->allow_extras(true);  // reported by ParseCommandLine in our words
  return app;
}

void AddFlagfile(CLI::App* app) {
  // Expanded by ParseCommandLine before CLI11 sees the arguments; declared for --help only.
  app->add_option("--flagfile", "read flags from FILE: one --name=value per line, '#' comments")
      ->type_name("FILE");
}

std::string SelectedCommandPath(const CLI::App& app) {
  std::string path = app.get_name();
  const CLI::App* at = &app;
  while (!at->get_subcommands().empty()) {
    at = at->get_subcommands().front();
    absl::StrAppend(&path, " ", at->get_name());
  }
  return path;
}

std::optional<int> ParseCommandLine(CLI::App& app, const std::vector<std::string>& args,
                                    std::ostream& out, std::ostream& err) {
  std::vector<std::string> expanded;
  if (app.get_option_no_throw("--flagfile") != nullptr) {
    if (absl::Status s = ExpandFlagfiles(args, 0, &expanded); !s.ok()) {
      err << app.get_name() << ": " << s.message() << "\n";
      return kExitBadFlags;
    }
  } else {
    expanded = args;
  }
  // --metrics_address is --metrics-address (Abseil took both; scripts and configurations may
  // still say it so): underscores in a flag's name, never in its value, become dashes. And
  // "--name=" is an empty value, as "--name ''" is (CLI11 alone would take the next argument).
  std::vector<std::string> normalized;
  for (size_t i = 0; i < expanded.size(); ++i) {
    std::string a = expanded[i];
    if (a == "--") {
      normalized.insert(normalized.end(), expanded.begin() + i, expanded.end());
      break;
    }
    if (a.rfind("--", 0) == 0) {
      for (size_t j = 2; j < a.size() && a[j] != '='; ++j) {
        if (a[j] == '_') a[j] = '-';
      }
      if (a.size() > 3 && a.find('=') == a.size() - 1) {
        normalized.push_back(a.substr(0, a.size() - 1));
        normalized.push_back("");
        continue;
      }
    }
    normalized.push_back(std::move(a));
  }
  expanded = std::move(normalized);
  std::reverse(expanded.begin(), expanded.end());  // CLI11 takes them last first
  try {
    app.parse(expanded);
  } catch (const CLI::CallForHelp& e) {
    app.exit(e, out, err);
    return 0;
  } catch (const CLI::CallForAllHelp& e) {
    app.exit(e, out, err);
    return 0;
  } catch (const CLI::CallForVersion& e) {
    app.exit(e, out, err);
    return 0;
  } catch (const CLI::ParseError& e) {
    const std::string path = SelectedCommandPath(app);
    err << path << ": " << e.what() << " (see " << path << " --help)\n";
    return kExitBadFlags;
  }
  if (const std::string extra = ExtraArgument(app); !extra.empty()) {
    const std::string path = SelectedCommandPath(app);
    err << path << ": " << extra << " (see " << path << " --help)\n";
    return kExitBadFlags;
  }
  return std::nullopt;
}

std::optional<int> ParseCommandLine(CLI::App& app, int argc, char** argv) {
  return ParseCommandLine(app, std::vector<std::string>(argv + std::min(argc, 1), argv + argc),
                          std::cout, std::cerr);
}

Flags& Flags::Value(const std::string& name, const std::string& value_name, const std::string& help,
                    const std::string& default_value) {
  Declared& d = declared_[name];
  d.default_value = default_value;
  if (app_ != nullptr) {
    d.option = app_->add_option("--" + name, help)->type_name(value_name);
    if (!default_value.empty()) d.option->default_str(default_value);
  }
  return *this;
}

Flags& Flags::Bool(const std::string& name, const std::string& help) {
  Declared& d = declared_[name];
  d.is_bool = true;
  if (app_ != nullptr) {
    d.option = app_->add_flag("--" + name, help)
                   ->check(CLI::Validator(
                       [name](std::string& v) {
                         return IsBoolText(v) ? std::string()
                                              : "--" + name + " takes no value (or true|false)";
                       },
                       "", "bool"));
  }
  return *this;
}

Flags& Flags::Positionals(const std::string& name, const std::string& help) {
  Declared& d = declared_[name];
  if (app_ != nullptr) {
    d.option = app_->add_option(name, help)
                   ->expected(-1)
                   ->multi_option_policy(CLI::MultiOptionPolicy::TakeAll);
  }
  return *this;
}

std::optional<std::string> Flags::Given(const std::string& name) const {
  if (auto it = set_.find(name); it != set_.end()) return it->second;
  auto it = declared_.find(name);
  if (it == declared_.end() || it->second.option == nullptr || it->second.option->count() == 0) {
    return std::nullopt;
  }
  const std::vector<std::string>& results = it->second.option->results();
  if (results.empty()) return std::string();
  return results.back();  // the last one given wins
}

bool Flags::Has(const std::string& name) const {
  std::optional<std::string> v = Given(name);
  if (!v.has_value()) return false;
  auto it = declared_.find(name);
  if (it != declared_.end() && it->second.is_bool) {
    const std::string l = absl::AsciiStrToLower(*v);
    return l != "false" && l != "0";
  }
  return true;
}

std::string Flags::Get(const std::string& name) const {
  if (std::optional<std::string> v = Given(name)) return *v;
  auto it = declared_.find(name);
  return it == declared_.end() ? "" : it->second.default_value;
}

std::string Flags::Get(const std::string& name, const std::string& fallback) const {
  std::optional<std::string> v = Given(name);
  return v.has_value() ? *v : fallback;
}

namespace {

// "--NAME must be an integer, got 'x'" / "... a number ...".
template <typename T>
absl::StatusOr<T> ParseNumber(const std::string& name, const std::string& text) {
  T v;
  bool ok;
  if constexpr (std::is_integral_v<T>) {
    ok = absl::SimpleAtoi(text, &v);
  } else {
    ok = absl::SimpleAtod(text, &v);
  }
  if (!ok) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--", name, std::is_integral_v<T> ? " must be an integer" : " must be a number", ", got '",
        text, "'"));
  }
  return v;
}

}  // namespace

absl::StatusOr<int> Flags::GetInt(const std::string& name) const {
  const std::string v = Get(name);
  if (v.empty()) return 0;
  return ParseNumber<int>(name, v);
}

absl::StatusOr<int> Flags::GetInt(const std::string& name, int fallback) const {
  std::optional<std::string> v = Given(name);
  if (!v.has_value()) return fallback;
  return ParseNumber<int>(name, *v);
}

absl::StatusOr<double> Flags::GetDouble(const std::string& name) const {
  const std::string v = Get(name);
  if (v.empty()) return 0.0;
  return ParseNumber<double>(name, v);
}

absl::StatusOr<double> Flags::GetDouble(const std::string& name, double fallback) const {
  std::optional<std::string> v = Given(name);
  if (!v.has_value()) return fallback;
  return ParseNumber<double>(name, *v);
}

absl::StatusOr<std::vector<int>> Flags::GetIntList(const std::string& name) const {
  std::vector<int> out;
  const std::string text = Get(name);
  for (absl::string_view part : absl::StrSplit(text, ',', absl::SkipEmpty())) {
    int v;
    if (!absl::SimpleAtoi(part, &v)) {
      return absl::InvalidArgumentError(
          absl::StrCat("--", name, " must be comma-separated integers, got '", text, "'"));
    }
    out.push_back(v);
  }
  return out;
}

std::vector<std::string> Flags::List(const std::string& name) const {
  auto it = declared_.find(name);
  if (it == declared_.end() || it->second.option == nullptr) return {};
  return it->second.option->results();
}

}  // namespace cairn
