// common/plan/plan_proto.h — the plan contract's structs <-> the cairn.v1 messages.
//
// The planner writes plans as cairn.v1.Plan (JSON files, gRPC replies); the runtime and the agent
// read them back into a PlanSpec here, without any planner code:
//
//   CAIRN_ASSIGN_OR_RETURN(PlanSpec spec, PlanSpecFromProto(plan_proto));   // shape only
//   CAIRN_RETURN_IF_ERROR(CheckPlan(ModelDimsFromSpec(model_spec), spec, world, plan_proto.seq_len()));
//
//   cairn::v1::Plan out;
//   FillPlanStrategy(spec, model.num_layers, &out);   // stages, layers, batch, schedule
#ifndef CAIRN_COMMON_PLAN_PLAN_PROTO_H_
#define CAIRN_COMMON_PLAN_PLAN_PROTO_H_

#include "absl/status/statusor.h"
#include "common/plan/plan.h"
#include "proto/cairn/v1/model.pb.h"
#include "proto/cairn/v1/plan.pb.h"

namespace cairn::plan {

// Plan format major version this code reads and writes (cairn.v1.Plan.format_version).
inline constexpr int kPlanFormatVersion = 1;

// Enum conversions; UNSPECIFIED maps to the documented defaults (TENSOR, DDP, 1F1B, BLOCK).
cairn::v1::ParallelMode ToProto(ParallelMode mode);
cairn::v1::DataParallelMode ToProto(DpMode mode);
cairn::v1::PipelineSchedule ToProto(Schedule schedule);
cairn::v1::LayerKind ToProto(LayerKind kind);
ParallelMode FromProto(cairn::v1::ParallelMode mode);
DpMode FromProto(cairn::v1::DataParallelMode mode);
Schedule FromProto(cairn::v1::PipelineSchedule schedule);
LayerKind FromProto(cairn::v1::LayerKind kind);

// Mirror of `spec` (no validation: see CheckModel).
ModelDims ModelDimsFromSpec(const cairn::v1::ModelSpec& spec);

// The strategy part of `plan`: batch, micro-batches, schedule, virtual stages, stages (model
// chunks), layers. Checks the format version (FailedPrecondition for another major), contiguous
// stages in order, pipeline_degree x virtual_stages matching the stages and layer indices in order (InvalidArgument naming the field); whether the
// plan fits a model and a world size is ValidatePlan's call. tp_degree 0 reads as 1.
absl::StatusOr<PlanSpec> PlanSpecFromProto(const cairn::v1::Plan& plan);

// Writes the strategy part of `spec` into `plan` (format_version, global_batch_size,
// num_micro_batches, pipeline_degree, schedule, virtual_stages, stages, layers with kinds for a model of
// `num_layers` blocks); other fields are left as they are.
void FillPlanStrategy(const PlanSpec& spec, int num_layers, cairn::v1::Plan* plan);

}  // namespace cairn::plan

#endif  // CAIRN_COMMON_PLAN_PLAN_PROTO_H_
