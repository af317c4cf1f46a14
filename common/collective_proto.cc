#include "common/collective_proto.h"

namespace cairn {

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

CollectiveOp FromProto(cairn::v1::CollectiveOp op) {
  switch (op) {
    case cairn::v1::COLLECTIVE_OP_ALL_GATHER: return CollectiveOp::kAllGather;
    case cairn::v1::COLLECTIVE_OP_REDUCE_SCATTER: return CollectiveOp::kReduceScatter;
    case cairn::v1::COLLECTIVE_OP_ALL_TO_ALL: return CollectiveOp::kAllToAll;
    case cairn::v1::COLLECTIVE_OP_SEND_RECV: return CollectiveOp::kSendRecv;
    default: return CollectiveOp::kAllReduce;
  }
}

const char* ToString(cairn::v1::CollectiveOp op) {
  if (op == cairn::v1::COLLECTIVE_OP_UNSPECIFIED || !cairn::v1::CollectiveOp_IsValid(op)) {
    return "unspecified";
  }
  return ToString(FromProto(op));
}

}  // namespace cairn
