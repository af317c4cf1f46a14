// planner/problem/problem_builder.h — cairn.v1.SearchRequest -> SearchProblem (plain data).
//
// The planner service and the CLI receive protos; the cost model and the search only see the plain
// structs of problem.h. This is the one place where a request is checked and converted, so every
// mistake a user can make in a request is reported here, with the field and what to do:
//
//   CAIRN_ASSIGN_OR_RETURN(SearchProblem problem, BuildSearchProblem(request));
//   // problem.model, problem.hardware, problem.global_batch_sizes, ... are ready for the search.
//
// What BuildSearchProblem resolves: memory_budget_bytes 0 -> the device memory; top_k 0 -> 1;
// dtype_bytes 0 or 2 -> Precision::Bf16Mixed(), 4 -> Precision::Fp32(); batch_range -> the list of
// candidate global batches; space lists are sorted and deduplicated, and empty ones keep
// SearchSpace's defaults (all modes, all data-parallel modes, 1F1B; empty pipeline degrees and
// micro-batch counts and max_tp 0 keep their "search decides" meaning); runtime "" -> cairn, and
// the space loses what that runtime cannot run (RestrictSpaceToRuntime); grad_reduce_dtype_bytes
// 0 -> the runtime's default (fp32); model_profile timings become `measured` (forward_s = 0 marks
// an activation-only entry: its bytes are used, no time; entries with neither are skipped).
//
// Thread-safe (pure functions).
#ifndef CAIRN_PLANNER_PROBLEM_PROBLEM_BUILDER_H_
#define CAIRN_PLANNER_PROBLEM_PROBLEM_BUILDER_H_

#include "absl/status/statusor.h"
#include "planner/problem/problem.h"
#include "planner/problem/proto_enums.h"  // ToProto/FromProto, used with these conversions
#include "proto/cairn/v1/hardware.pb.h"
#include "proto/cairn/v1/model.pb.h"
#include "proto/cairn/v1/search.pb.h"

namespace cairn::planner {

// Largest number of candidate global batch sizes a batch_range may produce.
inline constexpr int kMaxBatchCandidates = 4096;

// Checks `request` and converts it. Checks, in order (the first failure is returned):
//  - model present and valid (ValidateModelSpec);
//  - cluster present, num_nodes >= 1, hardware valid (ValidateHardwareProfile);
//  - exactly one of global_batch_size (> 0) and batch_range (1 <= min <= max, step > 0, at most
//    kMaxBatchCandidates candidates);
//  - 0 < seq_len <= model.max_seq_len;
//  - memory_budget_bytes >= 0, at most the device memory and above the device's reserved bytes;
//    memory_quantum_bytes in [0, budget); threads in [0, 1024]; top_k >= 0; dtype_bytes 0, 2 or 4;
//  - space: pipeline degrees >= 1, dividing the device count and <= num_layers; max_tp_degree 0 or
//    a power of 2 <= the device count; modes, dp_modes, schedules specified; micro-batch counts
//    >= 1 and <= the largest global batch; virtual stages in [2, num_layers];
//  - runtime known (cairn, megatron-core), something left to search under it, and
//    grad_reduce_dtype_bytes one it supports;
//  - model_profile: for this model (model_name empty or equal), each timing with a kind,
//    tp_degree, micro_batch_size, seq_len >= 1 and non-negative times and bytes.
// Errors: InvalidArgument whose message starts with the request field, e.g. "seq_len 8192 exceeds
// the max_seq_len 4096 of model llama2-7b".
absl::StatusOr<SearchProblem> BuildSearchProblem(const cairn::v1::SearchRequest& request);

// Mirror of `spec` (no validation).
ModelDims ToModelDims(const cairn::v1::ModelSpec& spec);

// Mirror of `cluster`: name "<profile name> (default|measured|imported)", GEMM points and
// collective points sorted, attention_efficiency 0 -> 1.0, overlap_slowdown < 1 -> 1.0, collective
// entries with an unspecified op dropped. Validate the profile first (ValidateHardwareProfile);
// this function does not fail.
Hardware ToHardware(const cairn::v1::Cluster& cluster);

}  // namespace cairn::planner

#endif  // CAIRN_PLANNER_PROBLEM_PROBLEM_BUILDER_H_
