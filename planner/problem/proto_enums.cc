#include "planner/problem/proto_enums.h"

namespace cairn::planner {

cairn::v1::ParallelMode ToProto(ParallelMode mode) {
  switch (mode) {
    case ParallelMode::kTensor: return cairn::v1::PARALLEL_MODE_TENSOR;
    case ParallelMode::kTensorSequence: return cairn::v1::PARALLEL_MODE_TENSOR_SEQUENCE;
    case ParallelMode::kUlysses: return cairn::v1::PARALLEL_MODE_ULYSSES;
  }
  return cairn::v1::PARALLEL_MODE_TENSOR;
}

cairn::v1::DataParallelMode ToProto(DpMode mode) {
  switch (mode) {
    case DpMode::kDdp: return cairn::v1::DATA_PARALLEL_MODE_DDP;
    case DpMode::kZero1: return cairn::v1::DATA_PARALLEL_MODE_ZERO1;
    case DpMode::kZero2: return cairn::v1::DATA_PARALLEL_MODE_ZERO2;
    case DpMode::kZero3: return cairn::v1::DATA_PARALLEL_MODE_ZERO3;
  }
  return cairn::v1::DATA_PARALLEL_MODE_DDP;
}

cairn::v1::PipelineSchedule ToProto(Schedule schedule) {
  return schedule == Schedule::kGPipe ? cairn::v1::PIPELINE_SCHEDULE_GPIPE
                                      : cairn::v1::PIPELINE_SCHEDULE_1F1B;
}

cairn::v1::LayerKind ToProto(LayerKind kind) {
  switch (kind) {
    case LayerKind::kEmbedding: return cairn::v1::LAYER_KIND_EMBEDDING;
    case LayerKind::kBlock: return cairn::v1::LAYER_KIND_TRANSFORMER_BLOCK;
    case LayerKind::kHead: return cairn::v1::LAYER_KIND_HEAD;
  }
  return cairn::v1::LAYER_KIND_TRANSFORMER_BLOCK;
}

cairn::v1::CollectiveOp ToProto(CollectiveOp op) {
  switch (op) {
    case CollectiveOp::kAllReduce: return cairn::v1::COLLECTIVE_OP_ALL_REDUCE;
    case CollectiveOp::kAllGather: return cairn::v1::COLLECTIVE_OP_ALL_GATHER;
    case CollectiveOp::kReduceScatter: return cairn::v1::COLLECTIVE_OP_REDUCE_SCATTER;
    case CollectiveOp::kAllToAll: return cairn::v1::COLLECTIVE_OP_ALL_TO_ALL;
    case CollectiveOp::kSendRecv: return cairn::v1::COLLECTIVE_OP_SEND_RECV;
  }
  return cairn::v1::COLLECTIVE_OP_ALL_REDUCE;
}

ParallelMode FromProto(cairn::v1::ParallelMode mode) {
  switch (mode) {
    case cairn::v1::PARALLEL_MODE_TENSOR_SEQUENCE: return ParallelMode::kTensorSequence;
    case cairn::v1::PARALLEL_MODE_ULYSSES: return ParallelMode::kUlysses;
    default: return ParallelMode::kTensor;
  }
}

DpMode FromProto(cairn::v1::DataParallelMode mode) {
  switch (mode) {
    case cairn::v1::DATA_PARALLEL_MODE_ZERO1: return DpMode::kZero1;
    case cairn::v1::DATA_PARALLEL_MODE_ZERO2: return DpMode::kZero2;
    case cairn::v1::DATA_PARALLEL_MODE_ZERO3: return DpMode::kZero3;
    default: return DpMode::kDdp;
  }
}

Schedule FromProto(cairn::v1::PipelineSchedule schedule) {
  return schedule == cairn::v1::PIPELINE_SCHEDULE_GPIPE ? Schedule::kGPipe : Schedule::k1F1B;
}

LayerKind FromProto(cairn::v1::LayerKind kind) {
  switch (kind) {
    case cairn::v1::LAYER_KIND_EMBEDDING: return LayerKind::kEmbedding;
    case cairn::v1::LAYER_KIND_HEAD: return LayerKind::kHead;
    default: return LayerKind::kBlock;
  }
}

CollectiveOp FromProto(cairn::v1::CollectiveOp op) {
  switch (op) {
    case cairn::v1::COLLECTIVE_OP_ALL_GATHER: return CollectiveOp::kAllGather;
    case cairn::v1::COLLECTIVE_OP_REDUCE_SCATTER: return CollectiveOp::kReduceScatter;
    case cairn::v1::COLLECTIVE_OP_ALL_TO_ALL: return CollectiveOp::kAllToAll;
    case cairn::v1::COLLECTIVE_OP_SEND_RECV: return CollectiveOp::kSendRecv;
    default: return CollectiveOp::kAllReduce;
  }
}

}  // namespace cairn::planner
