// common/collective.h — the collective operations every part of Cairn talks about (the planner's
// cost tables, the runtime's probes and benchmarks), and their bus-bandwidth factor.
//
//   const double busbw = bytes / time_s * BusFactor(CollectiveOp::kAllReduce, group_size);
#ifndef CAIRN_COMMON_COLLECTIVE_H_
#define CAIRN_COMMON_COLLECTIVE_H_

#include <optional>
#include <string_view>

namespace cairn {

enum class CollectiveOp { kAllReduce, kAllGather, kReduceScatter, kAllToAll, kSendRecv };

// "all_reduce", "all_gather", "reduce_scatter", "all_to_all", "send_recv".
const char* ToString(CollectiveOp op);
// The inverse of ToString; nullopt for other names.
std::optional<CollectiveOp> CollectiveOpFromName(std::string_view name);

// The nccl-tests bus factor: busbw = algbw x factor, algbw = bytes / time (bytes as nccl-tests
// counts them: the whole buffer for all-reduce, one rank's output for all-gather, its input for
// reduce-scatter). 2(g-1)/g for all-reduce, (g-1)/g for all-gather, reduce-scatter and
// all-to-all, 1 for send/recv.
double BusFactor(CollectiveOp op, int group_size);

}  // namespace cairn

#endif  // CAIRN_COMMON_COLLECTIVE_H_
