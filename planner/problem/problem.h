// planner/problem/problem.h — the search problem as plain data.
//
// Everything the cost model and the search need, with no protobuf, SQLite or gRPC types inside (XLA
// auto-sharding's rule): a SearchProblem is built once from a cairn.v1.SearchRequest by
// problem_builder.h, and any solver (the DP search, brute force in tests, the baselines) consumes it.
// A PlanSpec (common/plan/plan.h, the contract shared with the runtime) is a candidate plan in the
// same plain form; plan_convert.h turns it into a cairn.v1.Plan.
//
// Units: seconds, bytes, FLOP/s, bytes/s. Layer indices: 0 = embedding, 1..L = transformer blocks,
// L+1 = head (the same numbering as cairn.v1.LayerStrategy.index).
#ifndef CAIRN_PLANNER_PROBLEM_PROBLEM_H_
#define CAIRN_PLANNER_PROBLEM_PROBLEM_H_

#include <cstdint>
#include <string>
#include <vector>

#include "common/collective.h"
#include "common/plan/plan.h"

namespace cairn::planner {

// The plan contract's types (common/plan/plan.h): the planner and the runtime share them.
using ::cairn::plan::DpMode;
using ::cairn::plan::KindOf;
using ::cairn::plan::LayerKind;
using ::cairn::plan::ModelDims;
using ::cairn::plan::ParallelMode;
using ::cairn::plan::PlanSpec;
using ::cairn::plan::Schedule;
using ::cairn::plan::Strategy;
using ::cairn::plan::Describe;
using ::cairn::plan::ToString;
using ::cairn::CollectiveOp;
using ::cairn::ToString;

struct CommPoint {
  double bytes = 0;
  double time_s = 0;
};

// Cost of one collective for one group size and placement (mirror of cairn.v1.CollectiveCost).
struct CommTable {
  CollectiveOp op = CollectiveOp::kAllReduce;
  int group_size = 2;
  bool spans_nodes = false;
  double latency_s = 0;
  double busbw_bytes_per_s = 0;
  std::vector<CommPoint> points;  // sorted by bytes
};

struct GemmRate {
  double flops = 0;               // 2*M*N*K of one GEMM
  double achieved_flops_per_s = 0;
};

// One kind of node times num_nodes (mirror of cairn.v1.Cluster).
struct Hardware {
  std::string name;               // e.g. "h100-sxm (default)"
  std::string device_model;
  int64_t device_memory_bytes = 0;
  int64_t reserved_bytes = 0;
  double peak_flops_per_s = 0;
  std::vector<GemmRate> gemm;     // sorted by flops
  double attention_efficiency = 1.0;
  double memory_bandwidth_bytes_per_s = 0;
  int devices_per_node = 1;
  int num_nodes = 1;
  std::vector<CommTable> collectives;
  double overlap_slowdown = 1.0;  // gamma >= 1

  int num_devices() const { return devices_per_node * num_nodes; }
};

// One measured layer timing (mirror of cairn.v1.LayerTiming).
struct LayerTimingPoint {
  LayerKind kind = LayerKind::kBlock;
  int tp_degree = 1;
  int micro_batch_size = 1;
  int seq_len = 0;
  double forward_s = 0;
  double backward_s = 0;          // 0: unknown (2 x forward)
};

// Which plans may be returned (mirror of cairn.v1.SearchSpace, defaults resolved).
struct SearchSpace {
  std::vector<int> pipeline_degrees;       // empty: all divisors of N up to num_layers
  int max_tp = 0;                          // 0: devices per node
  std::vector<ParallelMode> modes = {ParallelMode::kTensor, ParallelMode::kTensorSequence,
                                     ParallelMode::kUlysses};
  std::vector<DpMode> dp_modes = {DpMode::kDdp, DpMode::kZero1, DpMode::kZero2, DpMode::kZero3};
  bool allow_recompute = true;
  std::vector<Schedule> schedules = {Schedule::k1F1B};
  std::vector<int> micro_batch_counts;     // empty: all divisors of the global batch
  bool uniform_layers = false;
};

// Precision of the runtime the plan will run on.
struct Precision {
  int activation_bytes = 2;   // bytes per activation / working weight element
  int param_bytes = 2;        // working weights
  int grad_bytes = 4;         // gradient accumulation (fp32)
  int master_bytes = 4;       // fp32 master copy (0 when the working weights are fp32)
  int optimizer_bytes = 8;    // Adam first and second moments, fp32

  static Precision Bf16Mixed() { return Precision{}; }
  static Precision Fp32() { return Precision{4, 4, 4, 0, 8}; }
};

struct SearchProblem {
  ModelDims model;
  Hardware hardware;
  std::vector<LayerTimingPoint> measured;  // empty: analytic compute
  std::string model_profile_name;          // "analytic" or the profile's source
  std::vector<int> global_batch_sizes;     // candidates (one for a fixed batch)
  int seq_len = 0;
  int64_t memory_budget_bytes = 0;         // per device
  SearchSpace space;
  Precision precision;
  int top_k = 1;
  int64_t memory_quantum_bytes = 0;        // 0: budget / 2048
  int threads = 0;                         // 0: hardware concurrency
  // Transient-buffer caps the stage DP enumerates (see docs/search.md); with at least as many caps
  // as distinct transient sizes the DP is exact up to memory quantisation. Not part of the API.
  int max_transient_caps = 4;
};

}  // namespace cairn::planner

#endif  // CAIRN_PLANNER_PROBLEM_PROBLEM_H_
