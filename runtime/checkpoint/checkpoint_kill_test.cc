// kill -9 of a process in the middle of saving checkpoints: the checkpoint read afterwards is
// always a whole committed step, at least the last one the writer acknowledged, with the values of
// that step; never a mix (issue 12). The writer is a forked child that saves step after step
// (two ranks, commit, prune) and writes "committed N" to a pipe after each CommitCheckpoint
// returned; the parent kills it at a pseudo-random moment (fixed seed) and reads back.
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <random>
#include <string>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "common/testing/status_matchers.h"
#include "gtest/gtest.h"
#include "runtime/checkpoint/checkpoint.h"

namespace cairn::runtime {
namespace {

constexpr int kWorld = 2;
constexpr int kElements = 4096;  // per rank file: ~48 KiB

TensorRecords RecordsOf(int rank, int64_t step) {
  TensorRecord v{"1.w", RecordKind::kValue, {}, {}};
  for (int64_t i = rank; i < kElements; i += kWorld) {
    v.indices.push_back(i);
    v.values.push_back(static_cast<float>(step * 10000 + i));
  }
  return {v};
}

[[noreturn]] void Writer(const std::string& root, int ack_fd) {
  for (int64_t step = 1;; ++step) {
    for (int r = 0; r < kWorld; ++r) {
      if (!WriteRankFile(StepDirectory(root, step), r, RecordsOf(r, step)).ok()) _exit(3);
    }
    if (!CommitCheckpoint(root, {step, "kill-test", kWorld, 2, ""}, /*keep_last=*/2).ok()) _exit(4);
    const std::string line = absl::StrCat("committed ", step, "\n");
    if (write(ack_fd, line.data(), line.size()) < 0) _exit(5);
  }
}

TEST(CheckpointKillTest, AKilledSaveNeverLeavesAMixedOrDamagedCheckpoint) {
  const char* tmp = std::getenv("TEST_TMPDIR");
  std::mt19937 rng(12);
  int64_t total_acks = 0;
  for (int round = 0; round < 24; ++round) {
    const std::string root = absl::StrCat(tmp ? tmp : "/tmp", "/kill_", round);
    int fds[2];
    ASSERT_EQ(pipe(fds), 0);
    const pid_t child = fork();
    ASSERT_GE(child, 0);
    if (child == 0) {
      close(fds[0]);
      Writer(root, fds[1]);
    }
    close(fds[1]);
    FILE* acks = fdopen(fds[0], "r");
    // Let it commit a few steps, then kill it somewhere inside a later save.
    const int wanted = 2 + static_cast<int>(rng() % 4);
    int64_t last_ack = 0;
    char line[64];
    for (int n = 0; n < wanted && std::fgets(line, sizeof(line), acks) != nullptr; ++n) {
      ASSERT_TRUE(absl::SimpleAtoi(absl::StripAsciiWhitespace(line + 10), &last_ack)) << line;
    }
    usleep(static_cast<useconds_t>(rng() % 40000));  // anywhere in a save (~10-40 ms here)
    kill(child, SIGKILL);
    int status = 0;
    ASSERT_EQ(waitpid(child, &status, 0), child);
    ASSERT_TRUE(WIFSIGNALED(status)) << "the writer stopped on its own: " << status;
    // Acks already in the pipe were written after their commit returned.
    while (std::fgets(line, sizeof(line), acks) != nullptr) {
      ASSERT_TRUE(absl::SimpleAtoi(absl::StripAsciiWhitespace(line + 10), &last_ack)) << line;
    }
    fclose(acks);
    total_acks += last_ack;

    ASSERT_OK_AND_ASSIGN(Checkpoint ck, ReadCheckpoint(root));
    EXPECT_GE(ck.meta.step, last_ack) << "round " << round;
    ASSERT_EQ(ck.values["1.w"].size(), static_cast<size_t>(kElements)) << "round " << round;
    for (const auto& [index, value] : ck.values["1.w"]) {
      ASSERT_EQ(value, static_cast<float>(ck.meta.step * 10000 + index))
          << "round " << round << ": element " << index << " is not from step " << ck.meta.step;
    }
  }
  EXPECT_GT(total_acks, 0);
}

}  // namespace
}  // namespace cairn::runtime
