#include "planner/problem/proto_enums.h"

#include "gtest/gtest.h"

namespace cairn::planner {
namespace {

// Every value of each plain enum maps to a distinct proto value and back.
TEST(ProtoEnumsTest, ParallelModeRoundTrips) {
  for (ParallelMode m :
       {ParallelMode::kTensor, ParallelMode::kTensorSequence, ParallelMode::kUlysses}) {
    EXPECT_EQ(FromProto(ToProto(m)), m);
  }
  EXPECT_EQ(ToProto(ParallelMode::kTensor), cairn::v1::PARALLEL_MODE_TENSOR);
  EXPECT_EQ(ToProto(ParallelMode::kTensorSequence), cairn::v1::PARALLEL_MODE_TENSOR_SEQUENCE);
  EXPECT_EQ(ToProto(ParallelMode::kUlysses), cairn::v1::PARALLEL_MODE_ULYSSES);
}

TEST(ProtoEnumsTest, DpModeRoundTrips) {
  for (DpMode m : {DpMode::kDdp, DpMode::kZero1, DpMode::kZero2, DpMode::kZero3}) {
    EXPECT_EQ(FromProto(ToProto(m)), m);
  }
  EXPECT_EQ(ToProto(DpMode::kDdp), cairn::v1::DATA_PARALLEL_MODE_DDP);
  EXPECT_EQ(ToProto(DpMode::kZero1), cairn::v1::DATA_PARALLEL_MODE_ZERO1);
  EXPECT_EQ(ToProto(DpMode::kZero2), cairn::v1::DATA_PARALLEL_MODE_ZERO2);
  EXPECT_EQ(ToProto(DpMode::kZero3), cairn::v1::DATA_PARALLEL_MODE_ZERO3);
}

TEST(ProtoEnumsTest, ScheduleRoundTrips) {
  for (Schedule s : {Schedule::k1F1B, Schedule::kGPipe}) EXPECT_EQ(FromProto(ToProto(s)), s);
  EXPECT_EQ(ToProto(Schedule::k1F1B), cairn::v1::PIPELINE_SCHEDULE_1F1B);
  EXPECT_EQ(ToProto(Schedule::kGPipe), cairn::v1::PIPELINE_SCHEDULE_GPIPE);
}

TEST(ProtoEnumsTest, LayerKindRoundTrips) {
  for (LayerKind k : {LayerKind::kEmbedding, LayerKind::kBlock, LayerKind::kHead}) {
    EXPECT_EQ(FromProto(ToProto(k)), k);
  }
  EXPECT_EQ(ToProto(LayerKind::kEmbedding), cairn::v1::LAYER_KIND_EMBEDDING);
  EXPECT_EQ(ToProto(LayerKind::kBlock), cairn::v1::LAYER_KIND_TRANSFORMER_BLOCK);
  EXPECT_EQ(ToProto(LayerKind::kHead), cairn::v1::LAYER_KIND_HEAD);
}

TEST(ProtoEnumsTest, CollectiveOpRoundTrips) {
  for (CollectiveOp op : {CollectiveOp::kAllReduce, CollectiveOp::kAllGather,
                          CollectiveOp::kReduceScatter, CollectiveOp::kAllToAll,
                          CollectiveOp::kSendRecv}) {
    EXPECT_EQ(FromProto(ToProto(op)), op);
  }
  EXPECT_EQ(ToProto(CollectiveOp::kAllGather), cairn::v1::COLLECTIVE_OP_ALL_GATHER);
  EXPECT_EQ(ToProto(CollectiveOp::kReduceScatter), cairn::v1::COLLECTIVE_OP_REDUCE_SCATTER);
  EXPECT_EQ(ToProto(CollectiveOp::kAllToAll), cairn::v1::COLLECTIVE_OP_ALL_TO_ALL);
  EXPECT_EQ(ToProto(CollectiveOp::kSendRecv), cairn::v1::COLLECTIVE_OP_SEND_RECV);
}

// The header documents UNSPECIFIED -> TENSOR, DDP, 1F1B, BLOCK, ALL_REDUCE.
TEST(ProtoEnumsTest, UnspecifiedMapsToTheDocumentedDefaults) {
  EXPECT_EQ(FromProto(cairn::v1::PARALLEL_MODE_UNSPECIFIED), ParallelMode::kTensor);
  EXPECT_EQ(FromProto(cairn::v1::DATA_PARALLEL_MODE_UNSPECIFIED), DpMode::kDdp);
  EXPECT_EQ(FromProto(cairn::v1::PIPELINE_SCHEDULE_UNSPECIFIED), Schedule::k1F1B);
  EXPECT_EQ(FromProto(cairn::v1::LAYER_KIND_UNSPECIFIED), LayerKind::kBlock);
  EXPECT_EQ(FromProto(cairn::v1::COLLECTIVE_OP_UNSPECIFIED), CollectiveOp::kAllReduce);
}

}  // namespace
}  // namespace cairn::planner
