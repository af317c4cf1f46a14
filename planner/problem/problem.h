// planner/problem/problem.h — the search problem as plain data.
//
// Everything the cost model and the search need, with no protobuf, SQLite or gRPC types inside (XLA
// auto-sharding's rule): a SearchProblem is built once from a cairn.v1.SearchRequest by
// problem_builder.h, and any solver (the DP search, brute force in tests, the baselines) consumes it.
// A PlanSpec is a candidate plan in the same plain form; plan_convert.h turns it into a cairn.v1.Plan.
//
// Units: seconds, bytes, FLOP/s, bytes/s. Layer indices: 0 = embedding, 1..L = transformer blocks,
// L+1 = head (the same numbering as cairn.v1.LayerStrategy.index).
#ifndef CAIRN_PLANNER_PROBLEM_PROBLEM_H_
#define CAIRN_PLANNER_PROBLEM_PROBLEM_H_

#include <cstdint>
#include <string>
#include <vector>

namespace cairn::planner {

// Architecture and dimensions (mirror of cairn.v1.ModelSpec).
struct ModelDims {
  std::string name;
  int num_layers = 0;
  int hidden = 0;
  int ffn_hidden = 0;
  int num_heads = 0;
  int num_kv_heads = 0;
  int vocab = 0;
  int max_seq_len = 0;
  bool rms_norm = false;       // false: LayerNorm
  bool swiglu = false;         // false: GELU (2 matrices)
  bool rope = false;           // false: learned positions
  bool tied_embeddings = false;
  bool bias = false;
};

enum class LayerKind { kEmbedding, kBlock, kHead };

enum class CollectiveOp { kAllReduce, kAllGather, kReduceScatter, kAllToAll, kSendRecv };

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

enum class ParallelMode { kTensor, kTensorSequence, kUlysses };
enum class DpMode { kDdp, kZero1, kZero2, kZero3 };
enum class Schedule { k1F1B, kGPipe };

// The strategy of one layer (mirror of cairn.v1.LayerStrategy without the index).
struct Strategy {
  int tp = 1;                     // model-parallel degree t' (TP or Ulysses degree)
  ParallelMode mode = ParallelMode::kTensor;
  DpMode dp = DpMode::kDdp;
  bool recompute = false;
  bool tp_consecutive = true;

  bool operator==(const Strategy& o) const {
    return tp == o.tp && mode == o.mode && dp == o.dp && recompute == o.recompute &&
           tp_consecutive == o.tp_consecutive;
  }
  bool operator!=(const Strategy& o) const { return !(*this == o); }
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

// A candidate plan in plain form.
struct PlanSpec {
  int global_batch = 0;
  int num_micro_batches = 1;
  Schedule schedule = Schedule::k1F1B;
  // Layers per stage in LayerStrategy.index numbering; sums to num_layers + 2 (stage 0 holds the
  // embedding, the last stage the head). Pipeline degree = stage_layers.size().
  std::vector<int> stage_layers;
  std::vector<Strategy> layers;            // num_layers + 2 entries
  std::string origin;                      // "search", "uniform:megatron ...", ...

  int pipeline_degree() const { return static_cast<int>(stage_layers.size()); }
};

const char* ToString(ParallelMode mode);
const char* ToString(DpMode mode);
const char* ToString(Schedule schedule);
const char* ToString(LayerKind kind);
const char* ToString(CollectiveOp op);
// "tp=4 sp zero1 rc" style one-word-per-field description of a strategy.
std::string Describe(const Strategy& s);

// The kind of the layer at `index` for a model with `num_layers` blocks.
inline LayerKind KindOf(int index, int num_layers) {
  if (index == 0) return LayerKind::kEmbedding;
  if (index == num_layers + 1) return LayerKind::kHead;
  return LayerKind::kBlock;
}

}  // namespace cairn::planner

#endif  // CAIRN_PLANNER_PROBLEM_PROBLEM_H_
