#include "planner/cost/runtime_traits.h"

#include "common/testing/status_matchers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace cairn::planner {
namespace {

using ::testing::HasSubstr;

TEST(RuntimeTraitsTest, LooksUpByName) {
  ASSERT_OK_AND_ASSIGN(RuntimeTraits c, RuntimeTraitsByName(""));
  EXPECT_EQ(c.name, "cairn");
  ASSERT_OK_AND_ASSIGN(RuntimeTraits m, RuntimeTraitsByName("megatron-core"));
  EXPECT_EQ(m.name, "megatron-core");
  EXPECT_TRUE(m.overlap_param_gather);
  EXPECT_FALSE(c.overlap_param_gather);
  EXPECT_THAT(RuntimeTraitsByName("deepspeed"),
              cairn::testing::StatusIs(absl::StatusCode::kNotFound, HasSubstr("megatron-core")));
}

TEST(RuntimeTraitsTest, MegatronSpaceHasOnlyWhatMegatronRuns) {
  SearchSpace space;
  space.schedules.push_back(Schedule::kGPipe);
  RestrictSpaceToRuntime(MegatronCoreRuntimeTraits(), &space);
  EXPECT_EQ(space.modes, (std::vector<ParallelMode>{ParallelMode::kTensor,
                                                    ParallelMode::kTensorSequence}));
  EXPECT_EQ(space.dp_modes, (std::vector<DpMode>{DpMode::kDdp, DpMode::kZero1}));
  EXPECT_EQ(space.schedules,
            (std::vector<Schedule>{Schedule::k1F1B, Schedule::kInterleaved1F1B}));
  EXPECT_TRUE(space.uniform_layers);
  SearchSpace all;
  RestrictSpaceToRuntime(CairnRuntimeTraits(), &all);
  EXPECT_EQ(all.modes.size(), 3u);
  EXPECT_FALSE(all.uniform_layers);
}

TEST(RuntimeTraitsTest, ChecksPlansAgainstTheRuntime) {
  PlanSpec p;
  p.global_batch = 8;
  p.num_micro_batches = 4;
  p.schedule = Schedule::kInterleaved1F1B;
  p.virtual_stages = 2;
  p.stage_layers = {2, 1, 1, 2};  // 4 blocks, one per chunk
  p.layers.assign(6, Strategy{.tp = 2, .mode = ParallelMode::kTensorSequence, .dp = DpMode::kZero1});
  const RuntimeTraits mc = MegatronCoreRuntimeTraits();
  EXPECT_EQ(CheckRuntimeSupports(mc, p, 4), "");
  p.stage_layers = {3, 1, 1, 1};  // 2 blocks in chunk 0
  EXPECT_THAT(CheckRuntimeSupports(mc, p, 4), HasSubstr("equal model chunks"));
  p.stage_layers = {2, 1, 1, 2};
  p.layers[2].dp = DpMode::kZero3;
  EXPECT_THAT(CheckRuntimeSupports(mc, p, 4), HasSubstr("no zero3"));
  EXPECT_EQ(CheckRuntimeSupports(CairnRuntimeTraits(), p, 4), "");
  p.layers[2].dp = DpMode::kZero1;
  p.layers[3].recompute = true;
  EXPECT_THAT(CheckRuntimeSupports(mc, p, 4), HasSubstr("one strategy to every block"));
}

}  // namespace
}  // namespace cairn::planner
