// common/collective_proto.h — CollectiveOp <-> cairn.v1.CollectiveOp (UNSPECIFIED reads as
// ALL_REDUCE).
#ifndef CAIRN_COMMON_COLLECTIVE_PROTO_H_
#define CAIRN_COMMON_COLLECTIVE_PROTO_H_

#include "common/collective.h"
#include "proto/cairn/v1/hardware.pb.h"

namespace cairn {

cairn::v1::CollectiveOp ToProto(CollectiveOp op);
CollectiveOp FromProto(cairn::v1::CollectiveOp op);
// The collective's name as ToString(CollectiveOp) spells it ("all_reduce", ...); "unspecified" for
// COLLECTIVE_OP_UNSPECIFIED and unknown values (messages and metric labels say what was sent).
const char* ToString(cairn::v1::CollectiveOp op);
// BusFactor (common/collective.h) of a cairn.v1 collective.
inline double BusFactor(cairn::v1::CollectiveOp op, int group_size) {
  return BusFactor(FromProto(op), group_size);
}

}  // namespace cairn

#endif  // CAIRN_COMMON_COLLECTIVE_PROTO_H_
