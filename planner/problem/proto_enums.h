// planner/problem/proto_enums.h — conversions between the cairn.v1 proto enums and the plain enums
// of problem.h. UNSPECIFIED values map to the documented defaults (TENSOR, DDP, 1F1B, BLOCK,
// ALL_REDUCE).
//
//   Strategy s; s.mode = FromProto(layer.mode());
//   layer.set_dp_mode(ToProto(s.dp));
#ifndef CAIRN_PLANNER_PROBLEM_PROTO_ENUMS_H_
#define CAIRN_PLANNER_PROBLEM_PROTO_ENUMS_H_

#include "planner/problem/problem.h"
#include "proto/cairn/v1/hardware.pb.h"
#include "proto/cairn/v1/model.pb.h"
#include "proto/cairn/v1/plan.pb.h"

namespace cairn::planner {

cairn::v1::ParallelMode ToProto(ParallelMode mode);
cairn::v1::DataParallelMode ToProto(DpMode mode);
cairn::v1::PipelineSchedule ToProto(Schedule schedule);
cairn::v1::LayerKind ToProto(LayerKind kind);
cairn::v1::CollectiveOp ToProto(CollectiveOp op);

ParallelMode FromProto(cairn::v1::ParallelMode mode);
DpMode FromProto(cairn::v1::DataParallelMode mode);
Schedule FromProto(cairn::v1::PipelineSchedule schedule);
LayerKind FromProto(cairn::v1::LayerKind kind);
CollectiveOp FromProto(cairn::v1::CollectiveOp op);

}  // namespace cairn::planner

#endif  // CAIRN_PLANNER_PROBLEM_PROTO_ENUMS_H_
