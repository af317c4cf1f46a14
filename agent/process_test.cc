#include "agent/process.h"

#include <signal.h>
#include <unistd.h>

#include <fstream>
#include <thread>

#include "absl/strings/str_cat.h"
#include "common/testing/status_matchers.h"
#include "gtest/gtest.h"

namespace cairn::agent {
namespace {

std::string Temp(const std::string& name) { return absl::StrCat(::testing::TempDir(), "/", name); }

std::string Slurp(const std::string& path) {
  std::ifstream in(path);
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

bool Alive(pid_t pid) { return kill(pid, 0) == 0; }

TEST(ProcessTest, RunsWithItsEnvironmentAndCapturesBothStreams) {
  SpawnOptions o;
  o.argv = {"/bin/sh", "-c", "echo out $CAIRN_X; echo err >&2; exit 3"};
  o.env = {{"CAIRN_X", "42"}};
  o.log_path = Temp("capture.log");
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<Process> p, Process::Spawn(o));
  std::optional<ExitStatus> s = p->Wait(absl::Seconds(30));
  ASSERT_TRUE(s.has_value());
  EXPECT_EQ(s->exit_code, 3);
  EXPECT_EQ(s->ToString(), "exited with status 3");
  EXPECT_EQ(Slurp(o.log_path), "out 42\nerr\n");
  EXPECT_EQ(TailOfFile(o.log_path, 5), "err\n");
}

TEST(ProcessTest, TerminateStopsTheWholeGroupEvenWhenTermIsIgnored) {
  const std::string pidfile = Temp("grandchild.pid");
  SpawnOptions o;
  // The worker ignores SIGTERM and leaves a grandchild behind: SIGKILL after the grace ends both.
  o.argv = {"/bin/sh", "-c",
            absl::StrCat("trap '' TERM; sleep 1000 & echo $! > ", pidfile, "; wait")};
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<Process> p, Process::Spawn(o));
  pid_t grandchild = 0;
  for (int i = 0; i < 3000 && grandchild == 0; ++i) {
    grandchild = std::atoi(Slurp(pidfile).c_str());
    if (grandchild == 0) usleep(1000);
  }
  ASSERT_GT(grandchild, 0);
  EXPECT_FALSE(p->Poll().has_value());
  const ExitStatus s = p->Terminate(absl::Milliseconds(100));
  EXPECT_EQ(s.signal, SIGKILL);
  for (int i = 0; i < 3000 && Alive(grandchild); ++i) usleep(1000);
  EXPECT_FALSE(Alive(grandchild));
  EXPECT_EQ(p->Terminate(absl::ZeroDuration()).signal, SIGKILL);  // idempotent
}

TEST(ProcessTest, ChildDiesWithTheThreadThatSpawnedIt) {
  pid_t pid = 0;
  std::unique_ptr<Process> p;
  const std::string started = Temp("started");
  std::thread spawner([&] {
    SpawnOptions o;
    o.argv = {"/bin/sh", "-c", absl::StrCat("touch ", started, "; sleep 1000")};
    absl::StatusOr<std::unique_ptr<Process>> s = Process::Spawn(o);
    ASSERT_TRUE(s.ok());
    p = *std::move(s);
    pid = p->pid();
    // Past exec, so past the child's prctl: the thread may go now.
    for (int i = 0; i < 30000 && access(started.c_str(), F_OK) != 0; ++i) usleep(1000);
  });
  spawner.join();  // the spawning thread is gone: PR_SET_PDEATHSIG kills the child
  ASSERT_GT(pid, 0);
  std::optional<ExitStatus> s = p->Wait(absl::Seconds(30));
  ASSERT_TRUE(s.has_value());
  EXPECT_EQ(s->signal, SIGKILL);
}

TEST(ProcessTest, RefusesWhatCannotRun) {
  SpawnOptions o;
  EXPECT_FALSE(Process::Spawn(o).ok());
  o.argv = {"/nonexistent/cairn-train"};
  EXPECT_EQ(Process::Spawn(o).status().code(), absl::StatusCode::kNotFound);
  o.argv = {"/bin/true"};
  o.log_path = "/nonexistent/dir/log";
  EXPECT_EQ(Process::Spawn(o).status().code(), absl::StatusCode::kUnavailable);
}

}  // namespace
}  // namespace cairn::agent
