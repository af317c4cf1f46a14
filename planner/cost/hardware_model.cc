#include "planner/cost/hardware_model.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <utility>
#include <vector>

namespace cairn::planner {

HardwareModel::HardwareModel(const Hardware& hardware) : hw_(hardware) {
  if (hw_.kernel_launch_s < 0) hw_.kernel_launch_s = 0;
  std::sort(hw_.gemm.begin(), hw_.gemm.end(),
            [](const GemmRate& a, const GemmRate& b) { return a.flops < b.flops; });
  for (CommTable& t : hw_.collectives) {
    std::sort(t.points.begin(), t.points.end(),
              [](const CommPoint& a, const CommPoint& b) { return a.bytes < b.bytes; });
  }
  if (hw_.attention_efficiency <= 0) hw_.attention_efficiency = 1.0;
  if (hw_.overlap_slowdown < 1.0) hw_.overlap_slowdown = 1.0;
}

double HardwareModel::AchievedGemmRate(double flops) const {
  const auto& g = hw_.gemm;
  if (g.empty()) return kFallbackGemmEfficiency * hw_.peak_flops_per_s;
  if (flops <= g.front().flops) return g.front().achieved_flops_per_s;
  if (flops >= g.back().flops) return g.back().achieved_flops_per_s;
  auto hi = std::upper_bound(g.begin(), g.end(), flops,
                             [](double f, const GemmRate& r) { return f < r.flops; });
  auto lo = hi - 1;
  const double x = std::log(flops / lo->flops) / std::log(hi->flops / lo->flops);
  return lo->achieved_flops_per_s + x * (hi->achieved_flops_per_s - lo->achieved_flops_per_s);
}

double HardwareModel::GemmTime(double flops) const {
  if (flops <= 0) return 0;
  return flops / AchievedGemmRate(flops);
}

bool HardwareModel::ShapeRate(double m, double n, double k, bool backward, double* rate) const {
  // Inverse-distance weighting of the achieved rates in (log m, log n, log k) over the nearest
  // measured shapes: exact on a measured shape, smooth between them, never outside the measured
  // range of rates (no extrapolation of efficiency).
  constexpr int kNearest = 4;
  std::vector<std::pair<double, double>> near;  // (squared log distance, rate)
  for (const GemmShapePoint& g : hw_.gemm_shapes) {
    const double t = backward ? g.backward_s : g.forward_s;
    if (t <= 0 || g.m <= 0 || g.n <= 0 || g.k <= 0) continue;
    const double work = (backward ? 4.0 : 2.0) * g.m * g.n * g.k;
    const double dm = std::log(m / g.m), dn = std::log(n / g.n), dk = std::log(k / g.k);
    near.push_back({dm * dm + dn * dn + dk * dk, work / t});
  }
  if (near.empty()) return false;
  std::sort(near.begin(), near.end());
  if (near.front().first < 1e-12) {
    *rate = near.front().second;
    return true;
  }
  double wsum = 0, rsum = 0;
  for (size_t i = 0; i < near.size() && i < kNearest; ++i) {
    const double w = 1.0 / near[i].first;
    wsum += w;
    rsum += w * near[i].second;
  }
  *rate = rsum / wsum;
  return true;
}

double HardwareModel::GemmFloor(double m, double n, double k, int dtype_bytes) const {
  return MemoryTime((m * k + k * n + m * n) * dtype_bytes) + LaunchTime(1);
}

double HardwareModel::GemmTime(double m, double n, double k, int dtype_bytes) const {
  if (m <= 0 || n <= 0 || k <= 0) return 0;
  const double flops = 2.0 * m * n * k;
  double rate = 0;
  if (!ShapeRate(m, n, k, /*backward=*/false, &rate)) rate = AchievedGemmRate(flops);
  const double compute = rate > 0 ? flops / rate : 0;
  return std::max(compute, GemmFloor(m, n, k, dtype_bytes));
}

double HardwareModel::GemmBackwardTime(double m, double n, double k, int dtype_bytes) const {
  if (m <= 0 || n <= 0 || k <= 0) return 0;
  double rate = 0;
  if (ShapeRate(m, n, k, /*backward=*/true, &rate)) {
    return std::max(4.0 * m * n * k / rate, 2 * GemmFloor(m, n, k, dtype_bytes));
  }
  // dA[m, k] = dC[m, n] B^T[n, k] and dB[k, n] = A^T[k, m] dC[m, n], each a GEMM of its own.
  if (hw_.gemm_shapes.empty()) {
    // Without shapes both have the forward's FLOPs and operand bytes: twice the forward.
    return 2.0 * GemmTime(m, n, k, dtype_bytes);
  }
  return GemmTime(m, k, n, dtype_bytes) + GemmTime(k, n, m, dtype_bytes);
}

void HardwareModel::AttentionTimes(double bh, double s, double d, double* forward_s,
                                   double* backward_s) const {
  *forward_s = *backward_s = 0;
  if (bh <= 0 || s <= 0 || d <= 0) return;
  // Causal: QK^T and PV over half the square, 2 x 2 s^2 d / 2 FLOPs per sequence and head.
  const double flops = 2.0 * bh * s * s * d;
  // Measured kernels of the nearest head dimension, rates interpolated in log(seq).
  double best_dd = -1;
  for (const AttentionPoint& a : hw_.attention) {
    if (a.forward_s <= 0 || a.head_dim <= 0) continue;
    const double dd = std::fabs(std::log(a.head_dim / d));
    if (best_dd < 0 || dd < best_dd) best_dd = dd;
  }
  if (best_dd >= 0) {
    std::vector<const AttentionPoint*> pts;
    for (const AttentionPoint& a : hw_.attention) {
      if (a.forward_s > 0 && a.head_dim > 0 &&
          std::fabs(std::log(a.head_dim / d)) <= best_dd + 1e-12) {
        pts.push_back(&a);
      }
    }
    std::sort(pts.begin(), pts.end(), [](const AttentionPoint* a, const AttentionPoint* b) {
      return a->seq_len < b->seq_len;
    });
    auto rate = [](const AttentionPoint* a, bool backward) {
      const double f = 2.0 * a->batch_heads * a->seq_len * a->seq_len * a->head_dim;
      const double t = backward ? (a->backward_s > 0 ? a->backward_s : 2.5 * a->forward_s)
                                : a->forward_s;
      return f / t;
    };
    auto at = [&](bool backward) {
      if (s <= pts.front()->seq_len) return rate(pts.front(), backward);
      if (s >= pts.back()->seq_len) return rate(pts.back(), backward);
      size_t hi = 1;
      while (pts[hi]->seq_len < s) ++hi;
      const double x = (std::log(s) - std::log(pts[hi - 1]->seq_len)) /
                       (std::log(pts[hi]->seq_len) - std::log(pts[hi - 1]->seq_len));
      return rate(pts[hi - 1], backward) + x * (rate(pts[hi], backward) - rate(pts[hi - 1], backward));
    };
    *forward_s = flops / at(false);
    *backward_s = flops / at(true);
    return;
  }
  *forward_s = AttentionTime(flops);
  *backward_s = 2.5 * *forward_s;  // flash attention's backward recomputes the probabilities
}

double HardwareModel::AttentionTime(double flops) const {
  if (flops <= 0) return 0;
  return flops / (AchievedGemmRate(flops) * hw_.attention_efficiency);
}

double HardwareModel::MemoryTime(double bytes) const {
  if (bytes <= 0 || hw_.memory_bandwidth_bytes_per_s <= 0) return 0;
  return bytes / hw_.memory_bandwidth_bytes_per_s;
}

double HardwareModel::BestGemmRate() const {
  double best = hw_.gemm.empty() ? kFallbackGemmEfficiency * hw_.peak_flops_per_s : 0;
  for (const GemmRate& r : hw_.gemm) best = std::max(best, r.achieved_flops_per_s);
  for (const GemmShapePoint& g : hw_.gemm_shapes) {
    if (g.forward_s > 0) best = std::max(best, 2.0 * g.m * g.n * g.k / g.forward_s);
  }
  return best;
}

GroupPlacement HardwareModel::Placement(int group_size, int stride) const {
  GroupPlacement p;
  p.spans_nodes = SpansNodes(group_size, stride);
  if (!p.spans_nodes) {
    p.ranks_per_node = group_size;
    return p;
  }
  const int per_node = std::max(1, hw_.devices_per_node / std::max(1, stride));
  p.ranks_per_node = std::max(1, std::min(group_size, per_node));
  return p;
}

bool HardwareModel::SpansNodes(int group_size, int stride) const {
  if (group_size <= 1) return false;
  const long long extent = static_cast<long long>(group_size - 1) * stride + 1;
  // Groups are aligned to multiples of group_size * stride inside a stage, and stages are aligned to
  // their size, so a group stays in one node exactly when its extent fits in a node.
  return extent > hw_.devices_per_node;
}

double HardwareModel::TableTime(const CommTable& t, double bytes) const {
  const auto& p = t.points;
  if (p.size() >= 2) {
    if (bytes <= p.front().bytes) {
      // Below the smallest sample: latency dominated; scale down linearly to the table's alpha.
      const double alpha = t.latency_s > 0 ? std::min(t.latency_s, p.front().time_s) : 0.0;
      return alpha + (p.front().time_s - alpha) * (bytes / p.front().bytes);
    }
    for (size_t i = 1; i < p.size(); ++i) {
      if (bytes <= p[i].bytes) {
        const double x = (bytes - p[i - 1].bytes) / (p[i].bytes - p[i - 1].bytes);
        return p[i - 1].time_s + x * (p[i].time_s - p[i - 1].time_s);
      }
    }
    // Beyond the largest sample: continue at the bandwidth of the last segment.
    const CommPoint& a = p[p.size() - 2];
    const CommPoint& b = p.back();
    const double slope = (b.time_s - a.time_s) / (b.bytes - a.bytes);
    return b.time_s + slope * (bytes - b.bytes);
  }
  double busbw = t.busbw_bytes_per_s;
  if (busbw <= 0) return std::numeric_limits<double>::infinity();
  return t.latency_s + bytes * BusFactor(t.op, t.group_size) / busbw;
}

const CommTable* HardwareModel::Find(CollectiveOp op, int group, bool spans) const {
  // Spanning tables measured with one rank per node (the flat, strided case) first.
  const CommTable* any = nullptr;
  for (const CommTable& t : hw_.collectives) {
    if (t.op == op && t.group_size == group && t.spans_nodes == spans) {
      if (!spans || t.ranks_per_node <= 1) return &t;
      if (any == nullptr) any = &t;
    }
  }
  return any;
}

bool HardwareModel::InterpolatedTime(CollectiveOp op, int group, bool spans, double bytes,
                                     double* time_s) const {
  if (const CommTable* t = Find(op, group, spans)) {
    *time_s = TableTime(*t, bytes);
    return true;
  }
  const CommTable* below = nullptr;
  const CommTable* above = nullptr;
  for (const CommTable& t : hw_.collectives) {
    if (t.op != op || t.spans_nodes != spans || (spans && t.ranks_per_node > 1)) continue;
    if (t.group_size < group && (!below || t.group_size > below->group_size)) below = &t;
    if (t.group_size > group && (!above || t.group_size < above->group_size)) above = &t;
  }
  if (!below && !above) return false;
  // Per-group tables are compared at equal bus volume: time scales with the bus factor.
  auto scaled = [&](const CommTable* t) {
    return TableTime(*t, bytes) * BusFactor(op, group) / BusFactor(op, t->group_size);
  };
  if (!below || !above) {
    *time_s = scaled(below ? below : above);
    return true;
  }
  const double x = (std::log(group) - std::log(below->group_size)) /
                   (std::log(above->group_size) - std::log(below->group_size));
  *time_s = scaled(below) + x * (scaled(above) - scaled(below));
  return true;
}

double HardwareModel::CollectiveTime(CollectiveOp op, int group_size,
                                     const GroupPlacement& placement, double bytes) const {
  const int q = placement.ranks_per_node;
  if (!placement.spans_nodes || q <= 1 || group_size <= 1 || bytes <= 0 ||
      op == CollectiveOp::kSendRecv || op == CollectiveOp::kAllToAll || group_size % q != 0) {
    return CollectiveTime(op, group_size, placement.spans_nodes, bytes);
  }
  for (const CommTable& t : hw_.collectives) {
    if (t.op == op && t.group_size == group_size && t.spans_nodes && t.ranks_per_node == q) {
      return TableTime(t, bytes);
    }
  }
  // Hierarchical: q ranks per node, group_size / q nodes; each rank's inter-node part is 1/q of
  // the data, over its own NIC, in parallel with the node's other q - 1 ranks.
  const int nodes = group_size / q;
  const double intra_rs = CollectiveTime(CollectiveOp::kReduceScatter, q, false, bytes);
  const double intra_ag = CollectiveTime(CollectiveOp::kAllGather, q, false, bytes);
  const double inter = CollectiveTime(op, nodes, true, bytes / q);
  switch (op) {
    case CollectiveOp::kAllReduce: return intra_rs + inter + intra_ag;
    case CollectiveOp::kAllGather: return inter + intra_ag;
    case CollectiveOp::kReduceScatter: return intra_rs + inter;
    default: return CollectiveTime(op, group_size, true, bytes);
  }
}

double HardwareModel::CollectiveTime(CollectiveOp op, int group_size, bool spans_nodes,
                                     double bytes) const {
  if (group_size <= 1 || bytes <= 0) return 0;
  double t = 0;
  if (InterpolatedTime(op, group_size, spans_nodes, bytes, &t)) return t;
  if (op != CollectiveOp::kAllReduce && op != CollectiveOp::kSendRecv) {
    // Derive from all-reduce at equal bus bandwidth: an all-reduce moves 2(g-1)/g of its buffer,
    // an all-gather/reduce-scatter/all-to-all (g-1)/g.
    double ar = 0;
    if (InterpolatedTime(CollectiveOp::kAllReduce, group_size, spans_nodes, bytes, &ar)) {
      return ar * BusFactor(op, group_size) / BusFactor(CollectiveOp::kAllReduce, group_size);
    }
  }
  if (spans_nodes) return CollectiveTime(op, group_size, false, bytes);
  if (op == CollectiveOp::kSendRecv) {
    // No p2p table: a send of `bytes` costs about an all-gather of 2x bytes between 2 ranks.
    return CollectiveTime(CollectiveOp::kAllGather, 2, spans_nodes, 2 * bytes);
  }
  return std::numeric_limits<double>::infinity();
}

}  // namespace cairn::planner
