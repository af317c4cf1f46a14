#include "common/plan/schedule.h"

#include <string>

#include "gtest/gtest.h"

namespace cairn::plan {
namespace {

std::string Order(Schedule s, int p, int stage, int m) {
  std::string out;
  for (const PipelineOp& op : StageSchedule(s, p, stage, m)) {
    out += (op.forward ? "F" : "B") + std::to_string(op.micro_batch) + " ";
  }
  return out;
}

TEST(ScheduleTest, OneFOneBWarmsUpThenAlternates) {
  EXPECT_EQ(Order(Schedule::k1F1B, 4, 0, 6), "F0 F1 F2 F3 B0 F4 B1 F5 B2 B3 B4 B5 ");
  EXPECT_EQ(Order(Schedule::k1F1B, 4, 3, 3), "F0 B0 F1 B1 F2 B2 ");
  EXPECT_EQ(Order(Schedule::k1F1B, 4, 0, 2), "F0 F1 B0 B1 ");
}

TEST(ScheduleTest, GPipeRunsAllForwardsFirst) {
  EXPECT_EQ(Order(Schedule::kGPipe, 2, 1, 3), "F0 F1 F2 B0 B1 B2 ");
}

TEST(ScheduleTest, InFlightMicroBatches) {
  EXPECT_EQ(InFlightMicroBatches(Schedule::k1F1B, 4, 0, 8), 4);
  EXPECT_EQ(InFlightMicroBatches(Schedule::k1F1B, 4, 3, 8), 1);
  EXPECT_EQ(InFlightMicroBatches(Schedule::k1F1B, 4, 0, 2), 2);
  EXPECT_EQ(InFlightMicroBatches(Schedule::kGPipe, 4, 3, 8), 8);
}

}  // namespace
}  // namespace cairn::plan
