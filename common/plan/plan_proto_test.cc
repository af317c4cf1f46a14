#include "common/plan/plan_proto.h"

#include "common/testing/status_matchers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace cairn::plan {
namespace {

using ::testing::HasSubstr;

TEST(PlanProtoTest, RoundTrip) {
  PlanSpec s;
  s.global_batch = 32;
  s.num_micro_batches = 4;
  s.schedule = Schedule::kGPipe;
  s.stage_layers = {3, 3};
  s.layers = {Strategy{.tp = 2},
              Strategy{.tp = 2, .mode = ParallelMode::kTensorSequence, .dp = DpMode::kZero1},
              Strategy{.tp = 4, .mode = ParallelMode::kUlysses, .dp = DpMode::kZero3,
                       .recompute = true},
              Strategy{.dp = DpMode::kZero2}, Strategy{}, Strategy{.tp = 2}};
  cairn::v1::Plan proto;
  FillPlanStrategy(s, 4, &proto);
  EXPECT_EQ(proto.layers(0).kind(), cairn::v1::LAYER_KIND_EMBEDDING);
  EXPECT_EQ(proto.layers(5).kind(), cairn::v1::LAYER_KIND_HEAD);
  EXPECT_EQ(proto.stages(1).first_layer(), 3);
  ASSERT_OK_AND_ASSIGN(PlanSpec back, PlanSpecFromProto(proto));
  EXPECT_EQ(back.global_batch, 32);
  EXPECT_EQ(back.num_micro_batches, 4);
  EXPECT_EQ(back.schedule, Schedule::kGPipe);
  EXPECT_EQ(back.stage_layers, s.stage_layers);
  EXPECT_EQ(back.layers, s.layers);
  EXPECT_EQ(back.origin, "file");
}

TEST(PlanProtoTest, InterleavedRoundTrip) {
  PlanSpec s;
  s.global_batch = 8;
  s.num_micro_batches = 4;
  s.schedule = Schedule::kInterleaved1F1B;
  s.virtual_stages = 2;
  s.stage_layers = {2, 1, 1, 2};
  s.layers.assign(6, Strategy{});
  cairn::v1::Plan proto;
  FillPlanStrategy(s, 4, &proto);
  EXPECT_EQ(proto.schedule(), cairn::v1::PIPELINE_SCHEDULE_INTERLEAVED_1F1B);
  EXPECT_EQ(proto.virtual_stages(), 2);
  EXPECT_EQ(proto.pipeline_degree(), 2);
  EXPECT_EQ(proto.stages_size(), 4);
  ASSERT_OK_AND_ASSIGN(PlanSpec back, PlanSpecFromProto(proto));
  EXPECT_EQ(back.schedule, Schedule::kInterleaved1F1B);
  EXPECT_EQ(back.virtual_stages, 2);
  EXPECT_EQ(back.stage_layers, s.stage_layers);
  // pipeline_degree must match stages / virtual_stages.
  proto.set_pipeline_degree(4);
  EXPECT_THAT(PlanSpecFromProto(proto),
              testing::StatusIs(absl::StatusCode::kInvalidArgument,
                                HasSubstr("pipeline_degree 4 x virtual_stages 2 but 4 stages")));
}

TEST(PlanProtoTest, RejectsMalformedPlans) {
  cairn::v1::Plan proto;
  proto.set_format_version(2);
  EXPECT_THAT(PlanSpecFromProto(proto),
              testing::StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("version 2")));
  proto.set_format_version(1);
  proto.add_stages()->set_num_layers(3);
  cairn::v1::Stage* s = proto.add_stages();
  s->set_first_layer(4);
  s->set_num_layers(2);
  EXPECT_THAT(PlanSpecFromProto(proto),
              testing::StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("contiguous")));
  proto.mutable_stages(1)->set_first_layer(3);
  proto.add_layers()->set_index(1);
  EXPECT_THAT(PlanSpecFromProto(proto),
              testing::StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("has index 1")));
}

TEST(PlanProtoTest, ModelDims) {
  cairn::v1::ModelSpec spec;
  spec.set_name("x");
  spec.set_num_layers(2);
  spec.set_norm(cairn::v1::NORM_KIND_RMSNORM);
  spec.set_position(cairn::v1::POSITION_KIND_ROPE);
  spec.set_activation(cairn::v1::ACTIVATION_KIND_SWIGLU);
  const ModelDims d = ModelDimsFromSpec(spec);
  EXPECT_EQ(d.name, "x");
  EXPECT_TRUE(d.rms_norm && d.rope && d.swiglu);
  EXPECT_FALSE(d.tied_embeddings);
}

}  // namespace
}  // namespace cairn::plan
