// The cairn-planner binary as an operator runs it: flags, the "serving on" line, a call, SIGTERM,
// exit status; and that a token used in calls never reaches its log, even at --log-level debug.
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "gtest/gtest.h"
#include "tests/planner_test_util.h"

extern char** environ;

namespace cairn::testing {
namespace {

namespace v1 = ::cairn::v1;

// An idle synchronous gRPC client only reads its connections from a backup poller, every 5 s by
// default; the daemon's graceful shutdown waits for the client's answer to its GOAWAY, so poll
// often. Set before gRPC initialises (static initialisation, before main).
const bool kFastClientPoll = setenv("GRPC_CLIENT_CHANNEL_BACKUP_POLL_INTERVAL_MS", "50", 1) == 0;

constexpr char kToken[] = "client-secret-token-5f2a9c";

struct Daemon {
  pid_t pid = -1;
  int stdout_fd = -1;
  std::string stderr_path;
};

// Starts the binary with `args`; its stdout is a pipe, its stderr a file.
Daemon Spawn(const std::vector<std::string>& args) {
  Daemon d;
  d.stderr_path = WriteTempFile("daemon-stderr", "");
  int out[2];
  EXPECT_EQ(pipe(out), 0);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, out[1], STDOUT_FILENO);
  posix_spawn_file_actions_addclose(&actions, out[0]);
  posix_spawn_file_actions_addopen(&actions, STDERR_FILENO, d.stderr_path.c_str(),
                                   O_WRONLY | O_TRUNC, 0644);
  std::vector<std::string> argv = {RunfilePath("planner/server/cairn-planner")};
  argv.insert(argv.end(), args.begin(), args.end());
  std::vector<char*> ptrs;
  for (std::string& a : argv) ptrs.push_back(a.data());
  ptrs.push_back(nullptr);
  EXPECT_EQ(posix_spawn(&d.pid, ptrs[0], &actions, nullptr, ptrs.data(), environ), 0);
  posix_spawn_file_actions_destroy(&actions);
  close(out[1]);
  d.stdout_fd = out[0];
  return d;
}

// The first line of stdout (waits at most 30 s).
std::string FirstLine(int fd) {
  std::string line;
  char c;
  while (true) {
    pollfd p{fd, POLLIN, 0};
    if (poll(&p, 1, 30000) <= 0) return line;
    if (read(fd, &c, 1) != 1 || c == '\n') return line;
    line.push_back(c);
  }
}

// Exit status after SIGTERM (or after it exits on its own, signal < 0).
int Stop(Daemon& d, int signal = SIGTERM) {
  if (signal > 0) kill(d.pid, signal);
  int status = 0;
  waitpid(d.pid, &status, 0);
  close(d.stdout_fd);
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

std::string Slurp(const std::string& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

int PortOf(const std::string& serving_line) {
  // "cairn-planner 0.1.0: serving on 127.0.0.1:PORT (..."
  const size_t at = serving_line.find("serving on 127.0.0.1:");
  if (at == std::string::npos) return 0;
  const std::string rest = serving_line.substr(at + 21);
  int port = 0;
  (void)absl::SimpleAtoi(rest.substr(0, rest.find(' ')), &port);
  return port;
}

TEST(PlannerDaemonTest, ServesUntilSigtermThenExitsZeroKeepingTokensOutOfItsLog) {
  const std::string tokens = WriteTempFile("tokens", absl::StrCat("client ", kToken, "\n"));
  Daemon d = Spawn({"--db", TempDb("daemon"), "--listen", "127.0.0.1:0", "--metrics-address", "",
                    "--token-file", tokens, "--log-level", "debug", "--agent-timeout", "5"});
  const std::string line = FirstLine(d.stdout_fd);
  EXPECT_NE(line.find("(plaintext, bearer tokens)"), std::string::npos) << line;
  const int port = PortOf(line);
  ASSERT_GT(port, 0) << line;

  auto planner = v1::Planner::NewStub(Connect(port));
  v1::PlanResponse plan;
  grpc::Status s = planner->Plan(Context(kToken).get(), TinyPlanRequest(), &plan);
  EXPECT_TRUE(s.ok()) << s.error_message();
  s = planner->Plan(Context("wrong-token-0123456789").get(), TinyPlanRequest(), &plan);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::UNAUTHENTICATED);

  absl::Time t0 = absl::Now();
  EXPECT_EQ(Stop(d), 0);
  fprintf(stderr, "TMP stop took %s\n", absl::FormatDuration(absl::Now() - t0).c_str());
  const std::string log = Slurp(d.stderr_path);
  fprintf(stderr, "TMP log:\n%s\n", log.c_str());
  EXPECT_NE(log.find("received SIGTERM"), std::string::npos) << log;
  EXPECT_NE(log.find("cairn.v1.Planner/Plan OK"), std::string::npos) << log;  // debug RPC log
  EXPECT_EQ(log.find(kToken), std::string::npos);
  EXPECT_EQ(log.find("wrong-token-0123456789"), std::string::npos);
}

TEST(PlannerDaemonTest, DashedAndUnderscoredFlagsBothWork) {
  Daemon d = Spawn({"--db=" + TempDb("flags"), "--listen=127.0.0.1:0", "--metrics_address=",
                    "--search-workers=1", "--max_search_seconds=5"});
  EXPECT_GT(PortOf(FirstLine(d.stdout_fd)), 0);
  EXPECT_EQ(Stop(d, SIGINT), 0);
}

TEST(PlannerDaemonTest, UsageErrorsExitTwoWithAMessage) {
  Daemon d = Spawn({"--listen", "127.0.0.1:0"});
  EXPECT_EQ(Stop(d, /*signal=*/-1), 2);
  EXPECT_NE(Slurp(d.stderr_path).find("--db is required"), std::string::npos);
  Daemon e = Spawn({"--db", TempDb("x"), "--log-level", "loud"});
  EXPECT_EQ(Stop(e, -1), 2);
  EXPECT_NE(Slurp(e.stderr_path).find("--log-level must be debug, info, warning or error"),
            std::string::npos);
}

TEST(PlannerDaemonTest, StartupFailuresExitOneWithAMessage) {
  Daemon d = Spawn({"--db", TempDb("y"), "--listen", "127.0.0.1:0", "--metrics-address", "",
                    "--tls-cert", "/nonexistent.pem", "--tls-key", "/nonexistent.key"});
  EXPECT_EQ(Stop(d, -1), 1);
  EXPECT_NE(Slurp(d.stderr_path).find("--tls-cert /nonexistent.pem: cannot read the file"),
            std::string::npos);
  Daemon e = Spawn({"--db", "/nonexistent-dir/planner.db", "--listen", "127.0.0.1:0"});
  EXPECT_EQ(Stop(e, -1), 1);
  EXPECT_NE(Slurp(e.stderr_path).find("cannot open --db /nonexistent-dir/planner.db"),
            std::string::npos);
}

// Issue 12: two daemons on one database must not both start.
TEST(PlannerDaemonTest, ASecondDaemonOnTheSameDatabaseExitsOne) {
  const std::string db = TempDb("shared");
  Daemon first = Spawn({"--db", db, "--listen", "127.0.0.1:0", "--metrics-address", ""});
  ASSERT_GT(PortOf(FirstLine(first.stdout_fd)), 0);
  Daemon second = Spawn({"--db", db, "--listen", "127.0.0.1:0", "--metrics-address", ""});
  EXPECT_EQ(Stop(second, -1), 1);
  EXPECT_NE(Slurp(second.stderr_path).find("is in use by another process"), std::string::npos)
      << Slurp(second.stderr_path);
  EXPECT_EQ(Stop(first), 0);
  // Once the first one is gone, the file is free again.
  Daemon third = Spawn({"--db", db, "--listen", "127.0.0.1:0", "--metrics-address", ""});
  EXPECT_GT(PortOf(FirstLine(third.stdout_fd)), 0);
  EXPECT_EQ(Stop(third), 0);
}

// Issue 12: a token file every user can read is refused, as ssh refuses such keys.
TEST(PlannerDaemonTest, AWorldReadableTokenFileStopsTheDaemon) {
  const std::string tokens = WriteTempFile("open-tokens", absl::StrCat("client ", kToken, "\n"));
  ASSERT_EQ(chmod(tokens.c_str(), 0644), 0);
  Daemon d = Spawn({"--db", TempDb("tok"), "--listen", "127.0.0.1:0", "--metrics-address", "",
                    "--token-file", tokens});
  EXPECT_EQ(Stop(d, -1), 1);
  const std::string log = Slurp(d.stderr_path);
  EXPECT_NE(log.find("is accessible by every user of this machine (mode 0644)"),
            std::string::npos)
      << log;
  EXPECT_EQ(log.find(kToken), std::string::npos);
}

// docs/planner-daemon.md's flag table names every flag of main.cc with its default.
TEST(PlannerDaemonTest, TheFlagTableInTheDocsMatchesTheBinary) {
  Daemon d = Spawn({"--help"});
  std::string help;
  char buf[4096];
  for (ssize_t n; (n = read(d.stdout_fd, buf, sizeof(buf))) > 0;) help.append(buf, n);
  EXPECT_EQ(Stop(d, -1), 0);
  std::ifstream in(RunfilePath("docs/planner-daemon.md"));
  std::stringstream doc_stream;
  doc_stream << in.rdbuf();
  const std::string doc = doc_stream.str();
  ASSERT_FALSE(doc.empty());
  // Entries look like "  --agent-timeout S   seconds without ... (default: 30)", the description
  // on the next line when the name is long (common/cli_app.h's help format).
  const std::vector<std::string> lines = absl::StrSplit(help, '\n');
  int checked = 0;
  for (size_t i = 0; i < lines.size(); ++i) {
    if (lines[i].rfind("  --", 0) != 0) continue;
    std::string entry = lines[i];
    for (size_t j = i + 1; j < lines.size() && lines[j].rfind("  -", 0) != 0 && !lines[j].empty();
         ++j) {
      entry += " " + std::string(absl::StripLeadingAsciiWhitespace(lines[j]));
    }
    const std::string name = entry.substr(4, entry.find_first_of(" ,", 4) - 4);
    if (name == "help" || name == "version") continue;
    EXPECT_NE(doc.find("`--" + name + "`"), std::string::npos) << name << " is not in the docs";
    const size_t def = entry.rfind("(default: ");
    if (def != std::string::npos) {
      const std::string value = entry.substr(def + 10, entry.find(')', def) - def - 10);
      EXPECT_NE(doc.find("`--" + name + "` | `" + value + "`"), std::string::npos)
          << "--" << name << " default " << value << " differs in the docs";
    }
    ++checked;
  }
  EXPECT_EQ(checked, 19) << help;  // 18 settings and --flagfile
}

}  // namespace
}  // namespace cairn::testing
