// The crash test of issue 3: kill -9 a process in the middle of a write load, reopen the database,
// and find every write the process acknowledged, in a database that passes PRAGMA integrity_check.
//
// The writer is planner/store/sqlite/store_writer (a data dependency, found in the runfiles tree,
// which is this test's working directory). It prints "ack <kind> <id> ..." after each Store write
// returned OK. The test reads those lines from a pipe, sends SIGKILL once it has seen a few hundred
// (the writer is then inside its next write: opening a transaction, writing the WAL, or waiting for
// the fsync), drains whatever acks were already in the pipe, and checks them all. Three rounds run
// against the same file, so recovery of a crashed database is itself crashed into and recovered.
//
// What it proves: acknowledged writes survive the death of the process (SQLite's WAL frames for a
// committed transaction are in the file before COMMIT returns) and a crash never corrupts the file.
// What it cannot prove: survival of power loss, which additionally needs synchronous=FULL's fsync
// to reach the disk (see docs/store.md).
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/testing/status_matchers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "planner/store/sqlite/sqlite_store.h"

extern char** environ;

namespace cairn::planner {
namespace {

constexpr char kWriter[] = "planner/store/sqlite/store_writer";

struct Ack {
  std::string kind;  // profile, plan, job, jobupdate
  std::string id;
  int64_t version = 0;  // profiles only
  int64_t seq = 0;
};

// A child process whose stdout is a pipe to us.
class Writer {
 public:
  static std::unique_ptr<Writer> Start(const std::vector<std::string>& args) {
    int fds[2];
    if (::pipe2(fds, O_CLOEXEC) != 0) {
      ADD_FAILURE() << "pipe2: " << std::strerror(errno);
      return nullptr;
    }
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_adddup2(&actions, fds[1], STDOUT_FILENO);  // dup2 clears CLOEXEC
    std::vector<char*> argv;
    for (const std::string& a : args) argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    pid_t pid = 0;
    const int rc = posix_spawn(&pid, args[0].c_str(), &actions, nullptr, argv.data(), environ);
    posix_spawn_file_actions_destroy(&actions);
    ::close(fds[1]);
    if (rc != 0) {
      ::close(fds[0]);
      ADD_FAILURE() << "posix_spawn " << args[0] << ": " << std::strerror(rc);
      return nullptr;
    }
    return std::unique_ptr<Writer>(new Writer(pid, fds[0]));
  }

  ~Writer() {
    if (pid_ > 0) {
      ::kill(pid_, SIGKILL);
      Wait();
    }
    if (fd_ >= 0) ::close(fd_);
  }

  // The next complete line; false at end of file (the child exited or died).
  bool ReadLine(std::string* line) {
    while (true) {
      const size_t newline = buffer_.find('\n');
      if (newline != std::string::npos) {
        *line = buffer_.substr(0, newline);
        buffer_.erase(0, newline + 1);
        return true;
      }
      char chunk[4096];
      const ssize_t n = ::read(fd_, chunk, sizeof(chunk));
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) return false;  // a partial last line (impossible: one write per line) is dropped
      buffer_.append(chunk, static_cast<size_t>(n));
    }
  }

  void Kill() { ::kill(pid_, SIGKILL); }

  // waitpid's status.
  int Wait() {
    int status = 0;
    while (::waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
    }
    pid_ = -1;
    return status;
  }

 private:
  Writer(pid_t pid, int fd) : pid_(pid), fd_(fd) {}
  pid_t pid_;
  int fd_;
  std::string buffer_;
};

bool ParseAck(const std::string& line, Ack* ack) {
  std::vector<std::string> f = absl::StrSplit(line, ' ');
  if (f.size() < 4 || f[0] != "ack") return false;
  ack->kind = f[1];
  ack->id = f[2];
  if (ack->kind == "profile") {
    return f.size() == 5 && absl::SimpleAtoi(f[3], &ack->version) &&
           absl::SimpleAtoi(f[4], &ack->seq);
  }
  return f.size() == 4 && absl::SimpleAtoi(f[3], &ack->seq);
}

TEST(StoreDurabilityTest, EveryAcknowledgedWriteSurvivesKillDashNine) {
  struct stat st;
  ASSERT_EQ(::stat(kWriter, &st), 0) << kWriter << " not found from " << ::getcwd(nullptr, 0)
                                     << " (it is a data dependency; run under bazel test)";
  const char* tmp = std::getenv("TEST_TMPDIR");
  const std::string db = std::string(tmp != nullptr ? tmp : "/tmp") + "/durability.db";
  for (const char* suffix : {"", "-wal", "-shm"}) std::remove((db + suffix).c_str());

  std::vector<Ack> acks;
  constexpr int kRounds = 3;
  for (int round = 0; round < kRounds; ++round) {
    // Kill after a different number of acks each round, so the kill lands on different writes.
    const int kill_after = 300 + 37 * round;
    std::unique_ptr<Writer> writer =
        Writer::Start({kWriter, "--db=" + db, absl::StrCat("--first=", round * 1000000)});
    ASSERT_NE(writer, nullptr);
    int seen = 0;
    std::string line;
    while (seen < kill_after && writer->ReadLine(&line)) {
      Ack ack;
      ASSERT_TRUE(ParseAck(line, &ack)) << "unexpected output: " << line;
      acks.push_back(ack);
      ++seen;
    }
    ASSERT_EQ(seen, kill_after) << "the writer stopped early (its stderr is in the test log)";
    writer->Kill();
    // Lines the writer wrote before it died are acknowledgements too.
    int drained = 0;
    while (writer->ReadLine(&line)) {
      Ack ack;
      ASSERT_TRUE(ParseAck(line, &ack)) << "unexpected output: " << line;
      acks.push_back(ack);
      ++drained;
    }
    const int status = writer->Wait();
    ASSERT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL)
        << "the writer was not killed mid-load (wait status " << status << ")";
    // The killed process never checkpointed or closed: its commits are only in the WAL, which the
    // next open must replay.
    struct stat wal;
    const long long wal_bytes = ::stat((db + "-wal").c_str(), &wal) == 0 ? wal.st_size : -1;
    std::printf("round %d: killed after %d acks (+%d drained from the pipe), WAL %lld bytes\n",
                round, kill_after, drained, wal_bytes);

    // Reopen as the restarted daemon would: recovery from the WAL, then every ack checked.
    absl::StatusOr<std::unique_ptr<SqliteStore>> opened = SqliteStore::Open(db);
    ASSERT_OK(opened.status());
    SqliteStore& store = **opened;
    ASSERT_OK(store.CheckIntegrity());

    int checked = 0;
    for (const Ack& ack : acks) {
      SCOPED_TRACE(absl::StrCat("ack ", ack.kind, " ", ack.id, " seq ", ack.seq));
      if (ack.kind == "profile") {
        absl::StatusOr<cairn::v1::StoredHardwareProfile> p =
            store.GetHardwareProfile(ack.id, static_cast<int>(ack.version));
        ASSERT_OK(p.status());
        EXPECT_EQ(p->profile().notes(), absl::StrCat("seq ", ack.seq));
      } else if (ack.kind == "plan") {
        absl::StatusOr<PlanRecord> plan = store.GetPlan(ack.id);
        ASSERT_OK(plan.status());
        EXPECT_EQ(plan->cache_key, absl::StrCat("writer-", ack.seq));
      } else if (ack.kind == "job") {
        absl::StatusOr<cairn::v1::Job> job = store.GetJob(ack.id);
        ASSERT_OK(job.status());
        EXPECT_EQ(job->name(), absl::StrCat("job-", ack.seq));
      } else if (ack.kind == "jobupdate") {
        absl::StatusOr<cairn::v1::Job> job = store.GetJob(ack.id);
        ASSERT_OK(job.status());
        EXPECT_EQ(job->state(), cairn::v1::JOB_STATE_RUNNING);
        EXPECT_GE(job->last_step().step(), ack.seq);
      } else {
        ADD_FAILURE() << "unknown ack kind";
      }
      ++checked;
    }
    std::printf("round %d: %d acknowledged writes found after the crash\n", round, checked);

    // Versions acknowledged for one profile id are distinct (no version handed out twice across
    // the crashes).
    std::map<std::string, std::set<int64_t>> versions;
    for (const Ack& ack : acks) {
      if (ack.kind == "profile") {
        EXPECT_TRUE(versions[ack.id].insert(ack.version).second)
            << ack.id << " v" << ack.version << " acknowledged twice";
      }
    }
  }
}

}  // namespace
}  // namespace cairn::planner
