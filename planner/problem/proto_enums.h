// planner/problem/proto_enums.h — conversions between the cairn.v1 proto enums and the plain enums
// of problem.h, gathered from where they live: the plan contract's (common/plan/plan_proto.h) and
// the collectives' (common/collective_proto.h). UNSPECIFIED values map to the documented defaults
// (TENSOR, DDP, 1F1B, BLOCK, ALL_REDUCE).
//
//   Strategy s; s.mode = FromProto(layer.mode());
//   layer.set_dp_mode(ToProto(s.dp));
#ifndef CAIRN_PLANNER_PROBLEM_PROTO_ENUMS_H_
#define CAIRN_PLANNER_PROBLEM_PROTO_ENUMS_H_

#include "common/collective_proto.h"
#include "common/plan/plan_proto.h"
#include "planner/problem/problem.h"

namespace cairn::planner {

using ::cairn::FromProto;
using ::cairn::ToProto;
using ::cairn::plan::FromProto;
using ::cairn::plan::ToProto;

}  // namespace cairn::planner

#endif  // CAIRN_PLANNER_PROBLEM_PROTO_ENUMS_H_
