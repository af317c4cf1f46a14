#include "planner/server/job_logs.h"

#include "gtest/gtest.h"

namespace cairn::planner {
namespace {

TEST(JobLogsTest, KeepsTheTailOfEachRankInOrder) {
  JobLogs logs({/*max_bytes_per_rank=*/8, /*max_jobs=*/4});
  logs.Append("j", "a", 1, 1, "rank1\n");
  logs.Append("j", "a", 0, 1, "0123");
  logs.Append("j", "a", 0, 1, "456789");  // 10 bytes: the first 2 dropped
  std::vector<cairn::v1::JobLog> all = logs.Get("j", {}, 0);
  ASSERT_EQ(all.size(), 2u);
  EXPECT_EQ(all[0].rank(), 0);
  EXPECT_EQ(all[0].data(), "23456789");
  EXPECT_EQ(all[0].dropped_bytes(), 2);
  EXPECT_EQ(all[1].data(), "rank1\n");
  std::vector<cairn::v1::JobLog> tail = logs.Get("j", {0}, 3);
  ASSERT_EQ(tail.size(), 1u);
  EXPECT_EQ(tail[0].data(), "789");
  EXPECT_EQ(tail[0].dropped_bytes(), 7);
  EXPECT_TRUE(logs.Get("other", {}, 0).empty());
}

TEST(JobLogsTest, ANewAttemptStartsOverAndOldJobsAreForgotten) {
  JobLogs logs({1 << 10, 2});
  logs.Append("j1", "a", 0, 1, "first try");
  logs.Append("j1", "b", 0, 2, "second");
  EXPECT_EQ(logs.Get("j1", {}, 0)[0].data(), "second");
  EXPECT_EQ(logs.Get("j1", {}, 0)[0].agent_id(), "b");
  logs.Append("j2", "a", 0, 1, "x");
  logs.Append("j3", "a", 0, 1, "y");  // j1 is the least recent of three: dropped
  EXPECT_TRUE(logs.Get("j1", {}, 0).empty());
  EXPECT_EQ(logs.bytes(), 2);
}

}  // namespace
}  // namespace cairn::planner
