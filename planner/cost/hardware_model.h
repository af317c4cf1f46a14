// planner/cost/hardware_model.h — what one device and its links cost, read off a Hardware profile.
//
// The only place that interprets Hardware tables: GEMM time from the achieved-rate table, collective
// time from the per-(op, group size, placement) tables, with the fallbacks a partial profile needs.
//
//   HardwareModel hw(problem.hardware);
//   double t = hw.GemmTime(2.0 * m * n * k);                      // seconds
//   double c = hw.CollectiveTime(CollectiveOp::kAllGather, 8, /*spans_nodes=*/false, bytes);
//
// Contracts: all times in seconds, sizes in bytes, never negative; a group of size 1 costs 0.
// Thread-safe (immutable after construction).
#ifndef CAIRN_PLANNER_COST_HARDWARE_MODEL_H_
#define CAIRN_PLANNER_COST_HARDWARE_MODEL_H_

#include <vector>

#include "planner/problem/problem.h"

namespace cairn::planner {

class HardwareModel {
 public:
  explicit HardwareModel(const Hardware& hardware);

  const Hardware& hardware() const { return hw_; }

  // Achieved FLOP/s of one GEMM of `flops` (2*M*N*K) work: the gemm table interpolated linearly in
  // log(flops), clamped to its end points. Without a table: 60% of peak.
  double AchievedGemmRate(double flops) const;
  // Seconds for one GEMM.
  double GemmTime(double flops) const;
  // Seconds for an attention kernel of `flops` work (GEMM rate x attention_efficiency).
  double AttentionTime(double flops) const;
  // Seconds to stream `bytes` through device memory (element-wise kernels, optimizer).
  double MemoryTime(double bytes) const;
  // Best achieved GEMM rate in the table (for lower bounds).
  double BestGemmRate() const;

  // Seconds for one collective. `bytes` is the buffer as nccl-tests counts it (all-reduce buffer,
  // all-gather output, reduce-scatter input, all-to-all buffer, send/recv message).
  // Lookup: exact (op, spans, group) table -> nearest group sizes of the same op and placement,
  // interpolated in log(group) -> the all-reduce table converted by bus factors -> intra-node table
  // when no inter-node one exists.
  double CollectiveTime(CollectiveOp op, int group_size, bool spans_nodes, double bytes) const;

  // Whether a group of `group_size` ranks placed every `stride` ranks (consecutive = stride 1)
  // crosses a node boundary, given ranks are numbered node-major.
  bool SpansNodes(int group_size, int stride) const;

 private:
  // Time of a table entry for `bytes`.
  double TableTime(const CommTable& table, double bytes) const;
  const CommTable* Find(CollectiveOp op, int group, bool spans) const;
  // Time from tables of the same op/placement, interpolating between the nearest group sizes.
  bool InterpolatedTime(CollectiveOp op, int group, bool spans, double bytes, double* time_s) const;

  Hardware hw_;
};

}  // namespace cairn::planner

#endif  // CAIRN_PLANNER_COST_HARDWARE_MODEL_H_
