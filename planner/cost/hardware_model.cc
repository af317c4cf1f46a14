#include "planner/cost/hardware_model.h"

#include <algorithm>
#include <cmath>
#include <limits>

namespace cairn::planner {

HardwareModel::HardwareModel(const Hardware& hardware) : hw_(hardware) {
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
  if (g.empty()) return 0.6 * hw_.peak_flops_per_s;
  if (flops <= g.front().flops) return g.front().achieved_flops_per_s;
  if (flops >= g.back().flops) return g.back().achieved_flops_per_s;
  auto hi = std::upper_bound(g.begin(), g.end(), flops,
                             [](double f, const GemmRate& r) { return f < r.flops; });
  auto lo = hi - 1;
  const double x = (std::log(flops) - std::log(lo->flops)) / (std::log(hi->flops) - std::log(lo->flops));
  return lo->achieved_flops_per_s + x * (hi->achieved_flops_per_s - lo->achieved_flops_per_s);
}

double HardwareModel::GemmTime(double flops) const {
  if (flops <= 0) return 0;
  return flops / AchievedGemmRate(flops);
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
  double best = hw_.gemm.empty() ? 0.6 * hw_.peak_flops_per_s : 0;
  for (const GemmRate& r : hw_.gemm) best = std::max(best, r.achieved_flops_per_s);
  return best;
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
  for (const CommTable& t : hw_.collectives) {
    if (t.op == op && t.group_size == group && t.spans_nodes == spans) return &t;
  }
  return nullptr;
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
    if (t.op != op || t.spans_nodes != spans) continue;
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
