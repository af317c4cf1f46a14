// planner/cost/hardware_model.h — what one device and its links cost, read off a Hardware profile.
//
// The only place that interprets Hardware tables, with the fallbacks a partial profile needs:
//
//  - GEMM of a shape (m x k times k x n), forward and its two gradient GEMMs:
//      measured shapes (gemm_shapes) -> the achieved rate of the nearest measured shapes,
//        inverse-distance weighted in (log m, log n, log k) (exact on a measured shape);
//      else the rate-by-FLOPs table (gemm), interpolated in log(flops), clamped;
//      else a roofline: FLOPs at kFallbackGemmEfficiency of the peak.
//    Whatever the source, a GEMM takes at least its operands' bytes over the memory bandwidth
//    (thin GEMMs are memory-bound) and one kernel launch.
//  - Attention (causal, flash-style) of batch x heads sequences of length s with head dim d:
//      measured kernels (attention) with the nearest head dim, rate interpolated in log(s);
//      else the GEMM rate at the same FLOPs x attention_efficiency, backward 2.5 x forward.
//  - Element-wise kernels: bytes over the memory bandwidth, plus a launch each.
//  - Collectives per (op, group size, placement), as a function of message size: the measured
//    points (piecewise-linear in bytes), else latency + bytes x bus factor / busbw; a group that
//    spans nodes with several ranks per node without its own table is composed hierarchically
//    (reduce-scatter in the node, the inter-node collective on 1/q of the data over q parallel
//    NICs, all-gather in the node); missing group sizes, ops and placements as described at
//    CollectiveTime.
//
//   HardwareModel hw(problem.hardware);
//   double t = hw.GemmTime(4096, 8192, 1024);                     // seconds
//   double c = hw.CollectiveTime(CollectiveOp::kAllGather, 8, hw.Placement(8, 1), bytes);
//
// Contracts: all times in seconds, sizes in bytes, never negative; a group of size 1 costs 0.
// Thread-safe (immutable after construction).
#ifndef CAIRN_PLANNER_COST_HARDWARE_MODEL_H_
#define CAIRN_PLANNER_COST_HARDWARE_MODEL_H_

#include <vector>

#include "planner/problem/problem.h"

namespace cairn::planner {

// Where a group's ranks sit: on one node, or over several with `ranks_per_node` on each.
struct GroupPlacement {
  bool spans_nodes = false;
  int ranks_per_node = 1;
};

// Share of the datasheet peak a large GEMM sustains when no table is given: the H200 bf16 table
// of docs/catalog.md reaches 665.9 TFLOP/s of 989 (67%) at n = 2048 and 630-675 above.
inline constexpr double kFallbackGemmEfficiency = 0.67;

class HardwareModel {
 public:
  explicit HardwareModel(const Hardware& hardware);

  const Hardware& hardware() const { return hw_; }

  // Achieved FLOP/s of one GEMM of `flops` (2*M*N*K) work: the gemm table interpolated linearly in
  // log(flops), clamped to its end points. Without a table: 60% of peak.
  double AchievedGemmRate(double flops) const;
  // Seconds for one GEMM of `flops` work read off the FLOPs table alone (no shape, no launch).
  double GemmTime(double flops) const;
  // Seconds for C[m, n] = A[m, k] B[k, n] with `dtype_bytes` elements (see the overview).
  double GemmTime(double m, double n, double k, int dtype_bytes = 2) const;
  // Seconds for its two gradient GEMMs (dA = dC B^T: m x n x k; dB = A^T dC: k x m x n).
  double GemmBackwardTime(double m, double n, double k, int dtype_bytes = 2) const;
  // Seconds for an attention kernel of `flops` work (GEMM rate x attention_efficiency).
  double AttentionTime(double flops) const;
  // Causal attention over `batch_heads` sequences of `seq_len` positions and head dimension
  // `head_dim`: forward and backward seconds (see the overview).
  void AttentionTimes(double batch_heads, double seq_len, double head_dim, double* forward_s,
                      double* backward_s) const;
  // Seconds to stream `bytes` through device memory (element-wise kernels, optimizer).
  double MemoryTime(double bytes) const;
  // Seconds for `kernels` launches (kernel_launch_s each; 0 when the profile has none).
  double LaunchTime(double kernels) const { return kernels * hw_.kernel_launch_s; }
  // Best achieved GEMM rate in the table (for lower bounds).
  double BestGemmRate() const;

  // Seconds for one collective. `bytes` is the buffer as nccl-tests counts it (all-reduce buffer,
  // all-gather output, reduce-scatter input, all-to-all buffer, send/recv message).
  // Lookup: exact (op, spans, group) table -> nearest group sizes of the same op and placement,
  // interpolated in log(group) -> the all-reduce table converted by bus factors -> intra-node table
  // when no inter-node one exists.
  double CollectiveTime(CollectiveOp op, int group_size, bool spans_nodes, double bytes) const;
  // The same for a placement: a spanning group with several ranks per node uses a table measured
  // for that many ranks per node, else the hierarchical composition (see the overview).
  double CollectiveTime(CollectiveOp op, int group_size, const GroupPlacement& placement,
                        double bytes) const;

  // Whether a group of `group_size` ranks placed every `stride` ranks (consecutive = stride 1)
  // crosses a node boundary, given ranks are numbered node-major.
  bool SpansNodes(int group_size, int stride) const;
  // Its placement: spanning or not, and how many of its ranks share each node (groups are
  // aligned to multiples of group_size x stride).
  GroupPlacement Placement(int group_size, int stride) const;

 private:
  // Time of a table entry for `bytes`.
  double TableTime(const CommTable& table, double bytes) const;
  const CommTable* Find(CollectiveOp op, int group, bool spans) const;
  // Time from tables of the same op/placement, interpolating between the nearest group sizes.
  bool InterpolatedTime(CollectiveOp op, int group, bool spans, double bytes, double* time_s) const;
  // Achieved FLOP/s of a forward GEMM shape from gemm_shapes (false when there is none).
  bool ShapeRate(double m, double n, double k, bool backward, double* rate) const;
  // The floor every GEMM pays: operands over the memory bandwidth, and one launch.
  double GemmFloor(double m, double n, double k, int dtype_bytes) const;

  Hardware hw_;
};

}  // namespace cairn::planner

#endif  // CAIRN_PLANNER_COST_HARDWARE_MODEL_H_
