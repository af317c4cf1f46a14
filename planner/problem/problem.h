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
  // Spanning groups: ranks of the group on each node (0 or 1: one per node, the strided case).
  int ranks_per_node = 0;
};

struct GemmRate {
  double flops = 0;               // 2*M*N*K of one GEMM
  double achieved_flops_per_s = 0;
};

// One measured GEMM shape (mirror of cairn.v1.GemmShapePoint): C[m, n] = A[m, k] B[k, n].
struct GemmShapePoint {
  double m = 0, n = 0, k = 0;
  double forward_s = 0;           // the GEMM itself
  double backward_s = 0;          // its two gradient GEMMs (dA, dB); 0: unknown
};

// One measured attention kernel (mirror of cairn.v1.AttentionPoint): causal self-attention of
// `batch_heads` (batch x query heads) sequences of `seq_len` with head dimension `head_dim`.
struct AttentionPoint {
  double batch_heads = 0, seq_len = 0, head_dim = 0;
  double forward_s = 0;
  double backward_s = 0;          // 0: unknown
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
  std::vector<GemmShapePoint> gemm_shapes;  // measured shapes (planner/cost/hardware_model.h)
  std::vector<AttentionPoint> attention;    // measured attention kernels
  double kernel_launch_s = 0;     // fixed cost of one kernel launch (0: unknown, not charged)

  int num_devices() const { return devices_per_node * num_nodes; }
};

// One measured layer timing (mirror of cairn.v1.LayerTiming).
struct LayerTimingPoint {
  LayerKind kind = LayerKind::kBlock;
  int tp_degree = 1;
  int micro_batch_size = 1;
  int seq_len = 0;
  double forward_s = 0;           // 0: an activation-only entry (no time measured)
  double backward_s = 0;          // 0: unknown (2 x forward)
  // Activation bytes saved for backward per micro-batch of `micro_batch_size` samples, measured
  // on the runtime that produced the profile (0: unknown, the analytic value is used); and the
  // same with full recomputation.
  int64_t activation_bytes = 0;
  int64_t recompute_activation_bytes = 0;
};

// Virtual-stage counts the interleaved schedule is searched with when the space names none:
// v in [2, kMaxDefaultVirtualStages] that cut the blocks into p x v equal chunks.
inline constexpr int kMaxDefaultVirtualStages = 8;

// Which plans may be returned (mirror of cairn.v1.SearchSpace, defaults resolved).
struct SearchSpace {
  std::vector<int> pipeline_degrees;       // empty: all divisors of N up to num_layers
  int max_tp = 0;                          // 0: devices per node
  std::vector<ParallelMode> modes = {ParallelMode::kTensor, ParallelMode::kTensorSequence,
                                     ParallelMode::kUlysses};
  std::vector<DpMode> dp_modes = {DpMode::kDdp, DpMode::kZero1, DpMode::kZero2, DpMode::kZero3};
  bool allow_recompute = true;
  std::vector<Schedule> schedules = {Schedule::k1F1B, Schedule::kInterleaved1F1B};
  std::vector<int> micro_batch_counts;     // empty: all divisors of the global batch
  // Virtual stages the interleaved schedule may use (empty: every v >= 2 that cuts the blocks
  // into p x v equal chunks).
  std::vector<int> virtual_stages;
  bool uniform_layers = false;
};

// What the runtime that will execute a plan does, as far as its cost is concerned: which
// communication overlaps which compute, in which dtype gradients travel, how its layers issue
// their GEMMs and kernels, what plans it can run. planner/cost/runtime_traits.h defines the
// built-in runtimes (`cairn`, `megatron-core`) with the sources of every value.
struct RuntimeTraits {
  std::string name = "cairn";
  // DDP / ZeRO-1 gradient reductions start layer by layer (bucket by bucket) during the last
  // micro-batch's backward and run under the rest of it; false: after the backward, exposed.
  bool overlap_grad_reduce = true;
  // ZeRO-1/2: the all-gather of the updated weights runs under the next step's forward; false:
  // after the optimizer step, exposed.
  bool overlap_param_gather = false;
  // ZeRO-3: a layer's weights are gathered while the previous layer computes; false: exposed.
  bool prefetch_zero3 = true;
  // Fraction of the TP/SP collectives' time hidden under the GEMMs (0: all exposed).
  double tp_comm_hidden = 0;
  // Pipeline sends block the sender until the receiver has the message (the hop is charged to
  // both stages); false: sends are asynchronous, only the receiver waits.
  bool blocking_sends = false;
  // Fixed cost of every pipeline operation (one model chunk's forward or backward of one
  // micro-batch) on the stage's critical path, beside its kernels: the schedule's host-side
  // bookkeeping, posting its sends and receives, the micro-batch's data and loss handling. A
  // pipeline of p x v chunks pays it 2 m v times per stage, so deep pipelines of thin stages pay
  // for their many operations. Seconds; 0 = not measured (neither built-in runtime has a
  // measurement yet; docs/cost-model.md).
  double op_overhead_s = 0;
  // The step's end works tensor by tensor: the gradient norm and AdamW run one kernel (set) per
  // tensor, so each of a layer's one-row tensors (norms, biases) costs launches, and each
  // gradient summed over TP ranks is its own all-reduce. false: multi-tensor kernels batch them
  // (Apex / Transformer Engine FusedAdam and multi_tensor_l2norm) and the TP sums are coalesced
  // (Megatron's all-reduce of the flattened norm gradients): one call per layer.
  bool per_tensor_step_end = true;
  // Layer structure: Q, K, V as one GEMM (else three) and the SwiGLU gate and up as one.
  bool fused_qkv = false;
  bool fused_gate_up = false;
  // What plans the runtime runs.
  bool per_layer_strategies = true;   // false: one strategy for every block
  bool supports_ulysses = true;
  // Megatron TP over more ranks than the model has kv heads (each rank then holds one whole kv
  // head, replicated over tp / kv_heads ranks, its gradient summed over them).
  bool supports_kv_head_replication = true;
  bool supports_zero2 = true;
  bool supports_zero3 = true;
  bool supports_gpipe = true;
  // Layers cut into stages and model chunks only as Megatron-Core cuts them (equal stages or
  // chunks, counted in blocks or in layer slots with the embedding and loss, or uneven first and
  // last stages): planner/cost/runtime_traits.h MegatronSplitOf. false: any contiguous split.
  bool megatron_pipeline_split = false;
  // Fewest pipeline stages the interleaved schedule runs on (Megatron-LM: more than 2 unless
  // --overlap-p2p-comm, which its traits do not assume).
  int min_interleaved_stages = 2;
  // Gradient accumulation and reduction dtype the runtime allows (bytes; the request's choice must
  // be one of these; the first is the default).
  std::vector<int> grad_dtype_bytes = {4};
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
  RuntimeTraits runtime;
  int top_k = 1;
  // Among plans predicted within this fraction of the fastest (per sample), the search returns the
  // one with the fewest distinct block strategies and changes between blocks first and the fastest
  // next (planner/search/simplify.h). 0: off (the fastest only). Requests default to 0.01.
  double simplicity_tolerance = 0;
  int64_t memory_quantum_bytes = 0;        // 0: budget / 2048
  int threads = 0;                         // 0: hardware concurrency
  // Transient-buffer caps the stage DP enumerates (see docs/search.md); with at least as many caps
  // as distinct transient sizes the DP is exact up to memory quantisation. Not part of the API.
  int max_transient_caps = 4;
};

}  // namespace cairn::planner

#endif  // CAIRN_PLANNER_PROBLEM_PROBLEM_H_
