// The search on input outside what BuildSearchProblem admits (it must still not crash: the CLI and
// tests build SearchProblems by hand), and its reaction to cancellation.
#include <atomic>
#include <limits>

#include "common/testing/status_matchers.h"
#include "common/units.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "planner/cost/cost_model.h"
#include "planner/cost/evaluate.h"
#include "planner/cost/test_problems.h"
#include "planner/search/search.h"

namespace cairn::planner {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

// Regression (issue 12): the divisor loop `for (int i = 1; i <= x; ++i)` never ends for
// x = INT_MAX; i overflowed and `x % i` divided by zero (SIGFPE) after ~8 s.
TEST(SearchLimitsTest, GlobalBatchOfIntMaxIsSearchedWithoutOverflow) {
  const SearchProblem pb = testing::SmallProblem(2, 2, 1, std::numeric_limits<int>::max(), 128,
                                                 GiB(80));
  ASSERT_OK_AND_ASSIGN(SearchResult r, Search(pb));
  // 2^31 - 1 is prime: one micro-batch of 2^31 - 1 samples, far beyond any device.
  EXPECT_TRUE(r.plans.empty());
  EXPECT_THAT(r.infeasible_reason, Not(HasSubstr(" 0 B")));
}

// Regression (issue 12): a large prime batch gave micro-batch counts of ~10^9, and the pipeline
// simulator allocated per micro-batch (std::bad_alloc). Counts above 4096 are never searched.
TEST(SearchLimitsTest, LargePrimeBatchDoesNotSimulateBillionsOfMicroBatches) {
  const SearchProblem pb = testing::SmallProblem(2, 2, 1, 1000000007, 128, GiB(80));
  ASSERT_OK_AND_ASSIGN(SearchResult r, Search(pb));
  for (const BaselineResult& b : r.baselines) {
    if (b.feasible) {
      EXPECT_LE(b.plan.num_micro_batches, 4096);
    }
  }
  for (const PlanSpec& p : r.plans) EXPECT_LE(p.num_micro_batches, 4096);
}

// Regression (issue 12): 65536 x 65536 devices overflowed int to 0 and CheckStrategy divided by
// the stage's 0 devices (SIGFPE). BuildSearchProblem refuses such clusters; the cost model itself
// also refuses a stage without devices instead of dividing by zero.
TEST(SearchLimitsTest, CostModelRefusesAStageWithoutDevices) {
  const SearchProblem pb = testing::SmallProblem(2, 2, 1, 16, 128, GiB(80));
  const CostModel cm(pb);
  StageContext ctx = MakeStageContext(pb, 1, 0, 16, 1, Schedule::k1F1B);
  ctx.stage_devices = 0;
  const LayerCost lc = cm.Layer(LayerKind::kBlock, Strategy{}, ctx);
  EXPECT_FALSE(lc.valid);
  EXPECT_THAT(lc.invalid_reason, HasSubstr("0 devices"));
}

TEST(SearchLimitsTest, ACancelledSearchReturnsAtOnceWithoutBaselines) {
  const SearchProblem pb = testing::SmallProblem(4, 4, 1, 32, 512, GiB(80));
  std::atomic<bool> cancelled{true};
  SearchOptions opt;
  opt.cancelled = &cancelled;
  ASSERT_OK_AND_ASSIGN(SearchResult r, Search(pb, opt));
  EXPECT_TRUE(r.plans.empty());
  EXPECT_TRUE(r.baselines.empty());
  EXPECT_TRUE(r.infeasible_reason.empty());

  // Cancelled after the first combination finished: the rest is skipped, and so are the
  // baselines (they would take as long again on a large request).
  cancelled = false;
  int64_t calls = 0, total = 0;
  opt.progress = [&](int64_t, int64_t t) {
    ++calls;
    total = t;
    cancelled = true;
  };
  opt.with_baselines = true;
  ASSERT_OK_AND_ASSIGN(SearchResult stopped, Search(pb, opt));
  EXPECT_GT(total, 1);
  EXPECT_TRUE(stopped.baselines.empty());

  cancelled = false;
  opt.progress = nullptr;
  ASSERT_OK_AND_ASSIGN(SearchResult full, Search(pb, opt));
  EXPECT_FALSE(full.plans.empty());
  EXPECT_FALSE(full.baselines.empty());
}

}  // namespace
}  // namespace cairn::planner
