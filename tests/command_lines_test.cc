// Every binary's command line as a user meets it: --help prints usage and exits 0, --version names
// the version and how the binary was built, and a flag typo exits 2 (the systemd units'
// RestartPreventExitStatus=2 depends on it). Runs the real binaries.
#include <sys/wait.h>

#include <cstdio>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/version.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/planner_test_util.h"

namespace cairn::testing {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

struct Result {
  int status;
  std::string output;  // stdout and stderr together
};

Result RunBinary(const std::string& binary, const std::string& args) {
  const std::string command =
      absl::StrCat("'", RunfilePath(binary), "' ", args, " 2>&1 </dev/null");
  FILE* p = popen(command.c_str(), "r");
  Result r{-1, ""};
  if (p == nullptr) return r;
  char buf[4096];
  for (size_t n; (n = fread(buf, 1, sizeof(buf), p)) > 0;) r.output.append(buf, n);
  const int status = pclose(p);
  r.status = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  return r;
}

// Every binary that builds without CUDA (the CUDA ones use the same common/cli_app.h). A new
// binary goes here, and in the BUILD file's data.
const std::vector<std::pair<std::string, std::string>> kBinaries = {
    {"cairn", "planner/cli/cairn"},
    {"cairn-planner", "planner/server/cairn-planner"},
    {"cairn-agent", "agent/cairn-agent"},
    {"cairn-probe", "agent/probes/cairn-probe"},
    {"cairn-train", "runtime/train/cairn-train"},
    {"cairn-profile-layers", "runtime/train/cairn-profile-layers"},
    {"cairn-data", "runtime/data/cairn-data"},
    {"planner_load", "planner/server/planner_load"},
    {"stream_flood", "planner/server/stream_flood"},
    {"reliability_bench", "planner/server/reliability_bench"},
    {"store_writer", "planner/store/sqlite/store_writer"},
    {"store_bench", "planner/store/sqlite/store_bench"},
    {"search_bench", "planner/search/search_bench"},
    {"cpu_backend_bench", "runtime/compute/cpu/cpu_backend_bench"},
    {"gloo_bench", "runtime/comm/gloo/gloo_bench"},
};

TEST(CommandLinesTest, HelpExitsZeroWithUsage) {
  for (const auto& [name, path] : kBinaries) {
    for (const char* flag : {"--help", "-h"}) {
      Result r = RunBinary(path, flag);
      EXPECT_EQ(r.status, 0) << name << " " << flag << ":\n" << r.output;
      EXPECT_THAT(r.output, HasSubstr("usage: " + name)) << name;
      EXPECT_THAT(r.output, HasSubstr("--version")) << name;
      EXPECT_THAT(r.output, Not(HasSubstr("No flags matched"))) << name;
    }
  }
  // The daemons list their flags with defaults.
  const std::string planner_help = RunBinary("planner/server/cairn-planner", "--help").output;
  EXPECT_THAT(planner_help, HasSubstr("--db PATH"));
  EXPECT_THAT(planner_help, HasSubstr("SQLite database file"));
  EXPECT_THAT(planner_help, HasSubstr("(default: 127.0.0.1:7070)"));
  EXPECT_THAT(planner_help, HasSubstr("--read-only,--no-read-only "));
  const std::string agent_help = RunBinary("agent/cairn-agent", "--help").output;
  EXPECT_THAT(agent_help, HasSubstr("--planner HOST:PORT"));
  EXPECT_THAT(agent_help, HasSubstr("--flagfile FILE"));
  EXPECT_THAT(agent_help, HasSubstr("(default: /var/lib/cairn-agent)"));
}

// Every `cairn` command and verb, with one of its flags (its --help must list it). A new command
// goes here.
const std::vector<std::pair<std::string, std::string>> kCairnCommands = {
    {"plan", "--global-batch B"},
    {"evaluate", "--micro-batch-size PER_DEVICE"},
    {"models", "--json NAME"},
    {"clusters", "--json NAME"},
    {"help", "--help"},
    {"profiles", "diff"},
    {"profiles list", "--kind hardware|model"},
    {"profiles show", "--version N"},
    {"profiles export", "--output F"},
    {"profiles import", "--file F"},
    {"profiles delete", "--id ID"},
    {"profiles diff", "--against CLUSTER|ID[@V]"},
    {"plans", "show"},
    {"plans list", "--model M"},
    {"plans show", "--format text|json|megatron|galvatron"},
    {"agents", "probe"},
    {"agents list", "--json"},
    {"agents probe", "--cross-node"},
    {"jobs", "submit"},
    {"jobs list", "--help"},
    {"jobs show", "JOB"},
    {"jobs watch", "--id JOB"},
    {"jobs cancel", "--id JOB"},
    {"jobs logs", "--tail BYTES"},
    {"jobs submit", "--max-restarts R"},
};

TEST(CommandLinesTest, EverySubcommandOfCairnHasHelp) {
  for (const auto& [command, flag] : kCairnCommands) {
    Result r = RunBinary("planner/cli/cairn", absl::StrCat(command, " --help"));
    EXPECT_EQ(r.status, 0) << command << ":\n" << r.output;
    EXPECT_THAT(r.output, HasSubstr("usage: cairn " + command)) << command;
    EXPECT_THAT(r.output, HasSubstr(flag)) << command;
    EXPECT_THAT(r.output, HasSubstr("Exit status:")) << command;
    // -h too, and the help wins over everything else on the line.
    r = RunBinary("planner/cli/cairn", absl::StrCat(command, " --frobnicate -h"));
    EXPECT_EQ(r.status, 0) << command << ":\n" << r.output;
  }
  // Defaults are listed.
  Result r = RunBinary("planner/cli/cairn", "plan --model llama2-7b --help");
  EXPECT_EQ(r.status, 0) << r.output;
  EXPECT_THAT(r.output, HasSubstr("--global-batch"));
  EXPECT_THAT(r.output, HasSubstr("(default: llama2-7b)"));
  EXPECT_THAT(RunBinary("planner/cli/cairn", "jobs submit --help").output,
              HasSubstr("(default: auto)"));
  // Through the daemon path too (no daemon needed to print help).
  r = RunBinary("planner/cli/cairn", "--planner 127.0.0.1:1 jobs --help");
  EXPECT_EQ(r.status, 0) << r.output;
  EXPECT_THAT(r.output, HasSubstr("submit"));
  // The top level lists every command.
  r = RunBinary("planner/cli/cairn", "--help");
  for (const char* command :
       {"plan", "evaluate", "models", "clusters", "profiles", "plans", "agents", "jobs"}) {
    EXPECT_THAT(r.output, HasSubstr(absl::StrCat("\n  ", command, " "))) << command;
  }
}

TEST(CommandLinesTest, FlagTyposExitTwoInEveryCairnCommand) {
  for (const auto& [command, flag] : kCairnCommands) {
    if (command == "profiles" || command == "plans" || command == "agents" || command == "jobs") {
      continue;  // a group: its verbs are below
    }
    // Before the daemon is asked (none listens there): a flag mistake is found first.
    Result r = RunBinary("planner/cli/cairn",
                         absl::StrCat("--planner 127.0.0.1:1 ", command, " --frobnicate=1"));
    EXPECT_EQ(r.status, 2) << command << ":\n" << r.output;
    EXPECT_THAT(r.output, HasSubstr("cairn " + command + ": unknown flag --frobnicate")) << command;
  }
  Result r = RunBinary("planner/cli/cairn", "plan --nodes");  // a missing value
  EXPECT_EQ(r.status, 2) << r.output;
  EXPECT_THAT(r.output, HasSubstr("--nodes"));
  r = RunBinary("planner/cli/cairn", "jobs");  // a group without its verb
  EXPECT_EQ(r.status, 2) << r.output;
  r = RunBinary("planner/cli/cairn", "--timeout=soon models");
  EXPECT_EQ(r.status, 2) << r.output;
  EXPECT_THAT(r.output, HasSubstr("--timeout"));
}

TEST(CommandLinesTest, VersionSaysHowTheBinaryWasBuilt) {
  // BuildKind() here is compiled with the same configuration as the binaries.
  for (const auto& [name, path] : kBinaries) {
    Result r = RunBinary(path, "--version");
    EXPECT_EQ(r.status, 0) << name << ":\n" << r.output;
    EXPECT_THAT(r.output, HasSubstr(absl::StrCat(name, " ", kCairnVersion, " (", BuildKind(), ")")))
        << name;
    EXPECT_THAT(r.output, Not(HasSubstr("NDEBUG"))) << name;  // Abseil's, about Abseil's build
  }
  // `cairn COMMAND --version` too.
  Result r = RunBinary("planner/cli/cairn", "plan --version");
  EXPECT_EQ(r.status, 0) << r.output;
  EXPECT_EQ(r.output, VersionLine("cairn") + "\n");
#ifdef NDEBUG
  EXPECT_EQ(std::string(BuildKind()), "opt build");  // issue 13: -c opt builds said "Debug build"
#endif
}

TEST(CommandLinesTest, FlagTyposExitTwo) {
  for (const auto& [name, path] : kBinaries) {
    const std::string args = name == "cairn" ? "plan --frobnicate 1" : "--frobnicate=1";
    Result r = RunBinary(path, args);
    EXPECT_EQ(r.status, 2) << name << ":\n" << r.output;
    EXPECT_THAT(r.output, HasSubstr("frobnicate")) << name;
  }
  // A bad value and a missing value are typos too.
  Result r = RunBinary("planner/server/cairn-planner", "--search-workers=many");
  EXPECT_EQ(r.status, 2) << r.output;
  EXPECT_THAT(r.output, HasSubstr("--search-workers"));
  r = RunBinary("planner/server/cairn-planner", "--db");
  EXPECT_EQ(r.status, 2) << r.output;
  r = RunBinary("agent/cairn-agent", "--cpu-slots=many");
  EXPECT_EQ(r.status, 2) << r.output;
  // Negated booleans and dashed names still parse (then fail for another reason, not as a typo).
  r = RunBinary("planner/server/cairn-planner", "--no-read-only --log_level=loud");
  EXPECT_EQ(r.status, 2) << r.output;
  EXPECT_THAT(r.output, HasSubstr("--log-level must be"));
}

TEST(CommandLinesTest, FlagfilesTakeDashedNamesAndTheirTyposExitTwo) {
  // The shipped configuration parses (dashed names); the typo after it is what fails.
  Result r = RunBinary("agent/cairn-agent",
                       absl::StrCat("--flagfile=", RunfilePath("deploy/systemd/cairn-agent.conf"),
                                    " --frobnicate=1"));
  EXPECT_EQ(r.status, 2) << r.output;
  EXPECT_THAT(r.output, HasSubstr("unknown flag --frobnicate"));
  EXPECT_THAT(r.output, Not(HasSubstr("token-file")));
  // A typo inside a file, a bad value inside a file, a missing file: exit 2, naming the flag.
  r = RunBinary("agent/cairn-agent",
                "--flagfile=" + WriteTempFile("typo.conf", "# config\n--planner=h:1\n--cpu-slot=4\n"));
  EXPECT_EQ(r.status, 2) << r.output;
  EXPECT_THAT(r.output, HasSubstr("unknown flag --cpu-slot"));
  r = RunBinary("planner/server/cairn-planner",
                "--flagfile=" + WriteTempFile("bad.conf", "--search-workers=lots\n"));
  EXPECT_EQ(r.status, 2) << r.output;
  EXPECT_THAT(r.output, HasSubstr("--search-workers"));
  r = RunBinary("planner/server/cairn-planner", "--flagfile=/nonexistent/planner.conf");
  EXPECT_EQ(r.status, 2) << r.output;
  EXPECT_THAT(r.output, HasSubstr("cannot be read"));
  // Values from a file are applied: --log-level from the file reaches the daemon's own check.
  r = RunBinary("planner/server/cairn-planner",
                "--flagfile=" + WriteTempFile("level.conf", "--log-level=loud\n"));
  EXPECT_EQ(r.status, 2) << r.output;
  EXPECT_THAT(r.output, HasSubstr("--log-level must be"));
}

}  // namespace
}  // namespace cairn::testing
