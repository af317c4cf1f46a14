#include "common/collective.h"

namespace cairn {

const char* ToString(CollectiveOp op) {
  switch (op) {
    case CollectiveOp::kAllReduce: return "all_reduce";
    case CollectiveOp::kAllGather: return "all_gather";
    case CollectiveOp::kReduceScatter: return "reduce_scatter";
    case CollectiveOp::kAllToAll: return "all_to_all";
    case CollectiveOp::kSendRecv: return "send_recv";
  }
  return "?";
}

std::optional<CollectiveOp> CollectiveOpFromName(std::string_view name) {
  for (CollectiveOp op : {CollectiveOp::kAllReduce, CollectiveOp::kAllGather,
                          CollectiveOp::kReduceScatter, CollectiveOp::kAllToAll,
                          CollectiveOp::kSendRecv}) {
    if (name == ToString(op)) return op;
  }
  return std::nullopt;
}

double BusFactor(CollectiveOp op, int group_size) {
  const double g = group_size;
  switch (op) {
    case CollectiveOp::kAllReduce: return 2.0 * (g - 1.0) / g;
    case CollectiveOp::kAllGather:
    case CollectiveOp::kReduceScatter:
    case CollectiveOp::kAllToAll: return (g - 1.0) / g;
    case CollectiveOp::kSendRecv: return 1.0;
  }
  return 1.0;
}

}  // namespace cairn
