// common/cli_app.h — the command line of every Cairn binary, on CLI11 (Debian's libcli11-dev).
//
// Why CLI11 and not Abseil flags: `cairn` is a tree of subcommands (plan, evaluate, jobs
// submit, ...) each with its own flags and its own generated `--help`; Abseil's flags are
// process-global, so `cairn plan --help` could not list only plan's flags. One library for every
// binary: the daemons, cairn-train, cairn-data, the probes and the benches use the same App, the
// same --help/--version and the same exit statuses.
//
// The rules every binary follows (docs/cli.md, "Command lines"):
//   --help / -h      the (sub)command's usage, its flags with their defaults, on stdout; exit 0
//   --version        "PROGRAM VERSION (BUILD KIND)" (common/version.h) on stdout; exit 0
//   a flag mistake   an unknown flag, a missing or unparsable value, a stray argument: one line
//                    on stderr naming it ("cairn-planner: unknown flag --frobnicate (see
//                    cairn-planner --help)"); exit 2 (the systemd units'
//                    RestartPreventExitStatus=2)
//   --flagfile=FILE  (daemons, AddFlagfile) flags read from FILE, one --name=value per line, '#'
//                    comments; its mistakes exit 2 like the command line's
//   flags are spelled with dashes (--search-workers; --search_workers, Abseil's spelling, is read
//   as the same flag); a later flag overrides an earlier one.
//
// Two ways to declare flags, both on the same App:
//  - bind typed variables with CLI11 itself (the daemons and benches: an Options struct whose
//    defaults --help shows):
//
//      int main(int argc, char** argv) {
//        std::unique_ptr<CLI::App> app = cairn::MakeApp("cairn-planner", "the planner daemon");
//        ServerOptions o;
//        app->add_option("--listen", o.listen_address, "gRPC address HOST:PORT");
//        if (std::optional<int> exit = cairn::ParseCommandLine(*app, argc, argv)) return *exit;
//
//  - or a Flags table (the `cairn` commands, cairn-train, cairn-data): each flag declared in one
//    line with its default; the command body reads the values by name, as text or typed:
//
//      cairn::Flags f(app->add_subcommand("plan", "search for the fastest plans"));
//      f.Value("nodes", "N", "nodes in the cluster", "1").Bool("json", "print the plan as JSON");
//      ... parse ...
//      absl::StatusOr<int> nodes = f.GetInt("nodes");   // 1 unless given
//      if (f.Has("json")) ...
//
// Thread safety: none needed (parsing happens once, in main). Errors: ParseCommandLine returns the
// exit status; nothing here throws past its API or calls exit().
#ifndef CAIRN_COMMON_CLI_APP_H_
#define CAIRN_COMMON_CLI_APP_H_

#include <map>
#include <memory>
#include <optional>
#include <ostream>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace CLI {
class App;
class Option;
}  // namespace CLI

namespace cairn {

// Exit status of a command-line mistake, for every binary.
inline constexpr int kExitBadFlags = 2;

// A CLI11 App named `program` (as --help and error messages call it) with Cairn's conventions:
// --help/-h, --version (VersionLine(program)), help that shows each flag's default and says
// "usage:", the last of a repeated flag wins, and unknown arguments collected so that
// ParseCommandLine reports them as "unknown flag --X". Subcommands made with add_subcommand inherit
// all of it but --version.
std::unique_ptr<CLI::App> MakeApp(const std::string& program, const std::string& description);

// Adds --flagfile=FILE[,FILE] to `app` (its root): before parsing, each file's lines (one
// --name=value per line, blank lines and '#' comments skipped, nested --flagfile up to 8 deep)
// replace the --flagfile argument in place, so flags after it override the file's.
void AddFlagfile(CLI::App* app);

// Parses `args` (without the program name) into `app`. Returns std::nullopt when the program should
// go on; otherwise the exit status to end with: 0 after --help or --version (printed to `out`),
// kExitBadFlags after a mistake (one line to `err` naming it and the --help to read).
std::optional<int> ParseCommandLine(CLI::App& app, const std::vector<std::string>& args,
                                    std::ostream& out, std::ostream& err);
// The same for main's argc/argv, printing to stdout/stderr.
std::optional<int> ParseCommandLine(CLI::App& app, int argc, char** argv);

// "cairn jobs submit": the App's name and those of the subcommands selected under it.
std::string SelectedCommandPath(const CLI::App& app);

// A (sub)command's flags declared by name, and after parsing their values, which command bodies
// read by name. A Flags made without an App holds only values given with Set (a problem taken
// from a plan file, a test). Reading a name that was never declared is allowed (Has: false, Get:
// the fallback), so one body can serve commands that declare different subsets.
class Flags {
 public:
  Flags() = default;
  explicit Flags(CLI::App* command) : app_(command) {}

  // --NAME VALUE (or --NAME=VALUE). `value_name` names the value in --help ("N", "FILE",
  // "text|json"); `default_value` is what Get returns when the flag is not given, and what --help
  // shows ("" = no default).
  Flags& Value(const std::string& name, const std::string& value_name, const std::string& help,
               const std::string& default_value = "");
  // --NAME alone (also --NAME=true|false).
  Flags& Bool(const std::string& name, const std::string& help);
  // Positional arguments after the command (`cairn jobs show JOB`): any number, read with List.
  Flags& Positionals(const std::string& name, const std::string& help);

  // Whether the flag was given (or Set); for a Bool, whether it was given as true.
  bool Has(const std::string& name) const;
  // The value given, else the declared default (else "").
  std::string Get(const std::string& name) const;
  // The value given, else `fallback` (for defaults that depend on other flags).
  std::string Get(const std::string& name, const std::string& fallback) const;
  // Typed reads of Get: InvalidArgument "--NAME must be an integer, got 'x'" when it is not one.
  absl::StatusOr<int> GetInt(const std::string& name) const;
  absl::StatusOr<int> GetInt(const std::string& name, int fallback) const;
  absl::StatusOr<double> GetDouble(const std::string& name) const;
  absl::StatusOr<double> GetDouble(const std::string& name, double fallback) const;
  // Comma-separated integers ("1,2,4"); empty when not given and no default.
  absl::StatusOr<std::vector<int>> GetIntList(const std::string& name) const;
  // The positional arguments declared with Positionals, in order.
  std::vector<std::string> List(const std::string& name) const;

  // Sets a flag as if it had been given (e.g. a value taken from a plan file).
  void Set(const std::string& name, const std::string& value) { set_[name] = value; }

 private:
  struct Declared {
    CLI::Option* option = nullptr;
    std::string default_value;
    bool is_bool = false;
  };
  // The given value, if the flag was given or Set.
  std::optional<std::string> Given(const std::string& name) const;

  CLI::App* app_ = nullptr;
  std::map<std::string, Declared> declared_;
  std::map<std::string, std::string> set_;
};

}  // namespace cairn

#endif  // CAIRN_COMMON_CLI_APP_H_
