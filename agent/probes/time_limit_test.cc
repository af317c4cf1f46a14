// TimeShares (the suites' shares of the time left), CaseGate (alone, and agreeing over two ranks
// of Gloo through a directory store) and BisectionOrder. Times are passed in, never slept on.
#include "agent/probes/time_limit.h"

#include <algorithm>
#include <vector>

#include "agent/probes/probe_testing.h"
#include "common/status_macros.h"
#include "common/testing/status_matchers.h"
#include "gtest/gtest.h"

namespace cairn::agent {
namespace {

using ::cairn::testing::IsOk;

const absl::Time kT0 = absl::FromUnixSeconds(1000000);

TEST(TimeSharesTest, SharesByWeightOfWhatIsLeftWhenEachPartStarts) {
  // 100 s for compute 0.35, layers 0.35, comm 0.2, overlap 0.1.
  TimeShares shares(kT0 + absl::Seconds(100),
                    {{"compute", 0.35}, {"layers", 0.35}, {"comm", 0.2}, {"overlap", 0.1}});
  EXPECT_EQ(shares.Start("compute", kT0), kT0 + absl::Seconds(35));
  // Compute ended early, at 20 s: the 80 s left go 0.35 : 0.2 : 0.1 -> layers 80 x 0.35 / 0.65.
  const absl::Time layers = shares.Start("layers", kT0 + absl::Seconds(20));
  EXPECT_NEAR(absl::ToDoubleSeconds(layers - kT0), 20 + 80 * 0.35 / 0.65, 1e-6);
  // Layers ran to 70 s: comm gets 30 x 0.2 / 0.3 = 20 s, overlap what is left after comm.
  EXPECT_NEAR(absl::ToDoubleSeconds(shares.Start("comm", kT0 + absl::Seconds(70)) - kT0), 90,
              1e-6);
  EXPECT_EQ(shares.Start("overlap", kT0 + absl::Seconds(95)), kT0 + absl::Seconds(100));
}

TEST(TimeSharesTest, NoLimitPastTheDeadlineAndUnlistedParts) {
  TimeShares none(absl::InfiniteFuture(), {{"compute", 1}});
  EXPECT_EQ(none.Start("compute", kT0), absl::InfiniteFuture());
  TimeShares late(kT0, {{"compute", 1}, {"layers", 1}});
  EXPECT_EQ(late.Start("compute", kT0 + absl::Seconds(5)), kT0);  // all its cases skip
  TimeShares shares(kT0 + absl::Seconds(10), {{"compute", 1}, {"layers", 1}});
  EXPECT_EQ(shares.Start("comm", kT0), kT0 + absl::Seconds(10));  // not listed: all that is left
  EXPECT_EQ(shares.Start("compute", kT0), kT0 + absl::Seconds(5));
  EXPECT_EQ(shares.Start("compute", kT0), kT0 + absl::Seconds(10));  // started twice: the rest
}

TEST(CaseGateTest, RunsCasesUntilTheDeadlineThenSkipsTheRest) {
  CaseGate gate(kT0 + absl::Seconds(10), nullptr);
  ASSERT_OK_AND_ASSIGN(bool first, gate.Next(kT0));
  ASSERT_OK_AND_ASSIGN(bool second, gate.Next(kT0 + absl::Seconds(9)));
  EXPECT_TRUE(first && second);
  EXPECT_FALSE(gate.expired());
  ASSERT_OK_AND_ASSIGN(bool third, gate.Next(kT0 + absl::Seconds(10)));
  EXPECT_FALSE(third);
  EXPECT_TRUE(gate.expired());
  ASSERT_OK_AND_ASSIGN(bool fourth, gate.Next(kT0));  // the first skip is final
  EXPECT_FALSE(fourth);
  gate.Skip(3);
  EXPECT_EQ(gate.skipped(), 5);
}

TEST(CaseGateTest, NoDeadlineRunsEverything) {
  CaseGate gate(absl::InfiniteFuture(), nullptr);
  for (int i = 0; i < 3; ++i) {
    ASSERT_OK_AND_ASSIGN(bool run, gate.Next(absl::InfiniteFuture()));
    EXPECT_TRUE(run);
  }
  EXPECT_EQ(gate.skipped(), 0);
}

// Rank 1's deadline comes 2 s after rank 0's: at 1 s both run, at 3 s rank 0 is past it and rank 1
// is not, and both skip (the AllReduce max), so their later collectives still pair up.
TEST(CaseGateTest, RanksAgreeToSkipWhenAnyIsPastItsDeadline) {
  ASSERT_OK_AND_ASSIGN(runtime::testing::CommGroup world, testing::TwoCpuRanks());
  std::vector<bool> runs[2];
  int skipped[2] = {0, 0};
  absl::Status status[2];
  runtime::testing::RunOnRanks(world, [&](int r, runtime::Communicator& comm) {
    status[r] = [&]() -> absl::Status {
      CaseGate gate(kT0 + absl::Seconds(2 + 2 * r), &comm);
      for (int t : {1, 3, 5}) {
        CAIRN_ASSIGN_OR_RETURN(bool run, gate.Next(kT0 + absl::Seconds(t)));
        runs[r].push_back(run);
      }
      skipped[r] = gate.skipped();
      return comm.Barrier();  // the sequences of collectives matched
    }();
  });
  ASSERT_THAT(status[0], IsOk());
  ASSERT_THAT(status[1], IsOk());
  EXPECT_EQ(runs[0], (std::vector<bool>{true, false, false}));
  EXPECT_EQ(runs[1], runs[0]);
  EXPECT_EQ(skipped[0], 2);
  EXPECT_EQ(skipped[1], 2);
}

TEST(RecordSkippedTest, CountsPerSuiteAndProbe) {
  ProbeReport r;
  RecordSkipped(&r, "compute", "gemm", 3);
  RecordSkipped(&r, "compute", "gemm", 2);
  RecordSkipped(&r, "compute", "attention", 1);
  RecordSkipped(&r, "layers", "layer", 0);  // nothing
  ASSERT_EQ(r.skipped_size(), 2);
  EXPECT_EQ(r.skipped(0).count(), 5);
  EXPECT_EQ(r.skipped(0).reason(), "time limit");
  EXPECT_EQ(SkippedIn(r, "compute"), 6);
  EXPECT_EQ(SkippedIn(r, "layers"), 0);
}

TEST(BisectionOrderTest, EndsFirstThenMidpointsEachIndexOnce) {
  EXPECT_EQ(BisectionOrder(0), std::vector<int>{});
  EXPECT_EQ(BisectionOrder(1), std::vector<int>{0});
  EXPECT_EQ(BisectionOrder(2), (std::vector<int>{0, 1}));
  EXPECT_EQ(BisectionOrder(7), (std::vector<int>{0, 6, 3, 1, 4, 2, 5}));
  for (int n = 0; n < 40; ++n) {
    std::vector<int> order = BisectionOrder(n);
    std::sort(order.begin(), order.end());
    std::vector<int> all(n);
    for (int i = 0; i < n; ++i) all[i] = i;
    EXPECT_EQ(order, all) << n;
  }
}

}  // namespace
}  // namespace cairn::agent
