#include "agent/probes/profile_builder.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <set>
#include <tuple>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "agent/probes/probe_harness.h"
#include "common/units.h"

namespace cairn::agent {
namespace {

using cairn::v1::CollectiveCost;
using cairn::v1::CollectiveOp;

double Param(const Measurement& m, const std::string& key) {
  auto it = m.params().find(key);
  return it == m.params().end() ? 0 : it->second;
}

CollectiveOp OpFromName(const std::string& op) {
  if (op == "all_reduce") return cairn::v1::COLLECTIVE_OP_ALL_REDUCE;
  if (op == "all_gather") return cairn::v1::COLLECTIVE_OP_ALL_GATHER;
  if (op == "reduce_scatter") return cairn::v1::COLLECTIVE_OP_REDUCE_SCATTER;
  if (op == "all_to_all") return cairn::v1::COLLECTIVE_OP_ALL_TO_ALL;
  if (op == "send_recv") return cairn::v1::COLLECTIVE_OP_SEND_RECV;
  return cairn::v1::COLLECTIVE_OP_UNSPECIFIED;
}

// Measurements of one probe that succeeded, grouped by name across ranks.
std::map<std::string, std::vector<const Measurement*>> ByName(
    const std::vector<ProbeReport>& reports, const std::string& probe) {
  std::map<std::string, std::vector<const Measurement*>> out;
  for (const ProbeReport& r : reports) {
    for (const Measurement& m : r.measurements()) {
      if (m.probe() == probe && m.error().empty()) out[m.name()].push_back(&m);
    }
  }
  return out;
}

template <typename F>
double Mean(const std::vector<const Measurement*>& ms, F f) {
  double s = 0;
  for (const Measurement* m : ms) s += f(*m);
  return ms.empty() ? 0 : s / ms.size();
}

using CollKey = std::tuple<int, int, bool>;  // op, group size, spans nodes

}  // namespace

double GemmRateAt(const cairn::v1::DeviceSpec& d, double flops) {
  std::vector<std::pair<double, double>> g;
  for (const auto& p : d.gemm()) g.emplace_back(p.flops(), p.achieved_flops_per_s());
  std::sort(g.begin(), g.end());
  if (g.empty()) return 0.6 * d.peak_flops_per_s();
  if (flops <= g.front().first) return g.front().second;
  if (flops >= g.back().first) return g.back().second;
  size_t hi = 1;
  while (g[hi].first < flops) ++hi;
  const auto& lo = g[hi - 1];
  const double x =
      (std::log(flops) - std::log(lo.first)) / (std::log(g[hi].first) - std::log(lo.first));
  return lo.second + x * (g[hi].second - lo.second);
}

absl::StatusOr<BuiltProfiles> BuildProfiles(const NodeDescription& node,
                                            const std::vector<ProbeReport>& reports,
                                            const cairn::v1::HardwareProfile* previous) {
  std::set<std::string> versions;
  for (const ProbeReport& r : reports) versions.insert(r.version());
  if (versions.size() > 1) {
    return absl::InvalidArgumentError(absl::StrCat("probe reports of different versions: ",
                                                   absl::StrJoin(versions, ", ")));
  }
  BuiltProfiles out;
  cairn::v1::HardwareProfile& hw = out.hardware;
  hw.set_name(node.profile_name);
  *hw.mutable_fingerprint() = node.fingerprint;
  hw.set_devices_per_node(node.devices_per_node);
  hw.set_source(cairn::v1::PROFILE_SOURCE_MEASURED);
  cairn::v1::DeviceSpec* d = hw.mutable_device();
  d->set_name(node.device_name);
  d->set_memory_bytes(node.device_memory_bytes);
  d->set_reserved_bytes(node.reserved_bytes);
  std::vector<std::string> notes;
  notes.push_back(absl::StrCat("Measured by cairn-agent on node '", node.node_name, "' at ",
                               node.measured_at, " (", versions.empty() ? "" : *versions.begin(),
                               ", ", reports.size(), " probe ranks)."));

  // GEMM table.
  std::vector<std::pair<double, std::pair<double, double>>> pts;  // fwd flops -> (work, time)
  for (const auto& [name, ms] : ByName(reports, "gemm")) {
    const Measurement& m0 = *ms[0];
    const double fwd_flops = m0.flops() / 3;
    pts.push_back({fwd_flops, {m0.flops(), Mean(ms, [](const Measurement& m) { return m.time_s(); })}});
  }
  if (pts.empty()) {
    // A partial probe (e.g. `cairn agents probe --suites comm`): the device's numbers stay those
    // of the previous profile of this fingerprint.
    if (previous == nullptr || previous->device().gemm_size() == 0) {
      return absl::InvalidArgumentError(
          "no GEMM measurement in the probe reports and no earlier profile of this node to keep "
          "them from; probe the compute suite");
    }
    const int64_t memory = d->memory_bytes(), reserved = d->reserved_bytes();
    *d = previous->device();
    d->set_memory_bytes(memory);
    d->set_reserved_bytes(reserved);
    notes.push_back("Compute numbers (GEMM, attention, memory bandwidth, peak) kept from the "
                    "previous profile: this probe did not run the compute suite.");
  }
  std::sort(pts.begin(), pts.end());
  const bool measured_compute = !pts.empty();
  std::vector<std::pair<double, std::pair<double, double>>> merged;
  for (const auto& p : pts) {
    if (!merged.empty() && p.first <= merged.back().first * 1.05) {
      auto& m = merged.back();
      const double f = m.first + p.first;  // keep the merged key near both
      m.second.first += p.second.first;
      m.second.second += p.second.second;
      m.first = f / 2;
      continue;
    }
    merged.push_back(p);
  }
  double best_rate = 0;
  double worst_rate = 0;
  for (const auto& [flops, work_time] : merged) {
    cairn::v1::GemmPoint* g = d->add_gemm();
    g->set_flops(flops);
    g->set_achieved_flops_per_s(work_time.first / work_time.second);
    best_rate = std::max(best_rate, g->achieved_flops_per_s());
    worst_rate = worst_rate == 0 ? g->achieved_flops_per_s()
                                 : std::min(worst_rate, g->achieved_flops_per_s());
  }
  if (!measured_compute) {
    // kept from `previous` above
  } else if (node.peak_flops_per_s > 0) {
    d->set_peak_flops_per_s(node.peak_flops_per_s);
  } else {
    d->set_peak_flops_per_s(best_rate);
    notes.push_back("No datasheet peak for this device: peak_flops_per_s is the best measured GEMM "
                    "rate, so MFU reads as a fraction of what the kernels reach.");
  }
  if (measured_compute) {
    out.summary.push_back(absl::StrFormat("GEMM: %d shapes, %d table points, %.1f to %.1f GFLOP/s",
                                          pts.size(), merged.size(), worst_rate / 1e9,
                                          best_rate / 1e9));
  }

  // GEMM shapes: the cost model reads these first (nearest measured shapes in log m, n, k) and
  // falls back on the table above. One point per (m, n, k), times averaged over the node's ranks.
  if (measured_compute) {
    std::map<std::tuple<int64_t, int64_t, int64_t>, std::vector<const Measurement*>> shapes;
    for (const auto& [name, ms] : ByName(reports, "gemm")) {
      for (const Measurement* m : ms) {
        const int64_t gm = static_cast<int64_t>(Param(*m, "m"));
        const int64_t gn = static_cast<int64_t>(Param(*m, "n"));
        const int64_t gk = static_cast<int64_t>(Param(*m, "k"));
        if (gm > 0 && gn > 0 && gk > 0 && Param(*m, "forward_s") > 0) {
          shapes[{gm, gn, gk}].push_back(m);
        }
      }
    }
    for (const auto& [mnk, ms] : shapes) {
      cairn::v1::GemmShapePoint* g = d->add_gemm_shapes();
      g->set_m(std::get<0>(mnk));
      g->set_n(std::get<1>(mnk));
      g->set_k(std::get<2>(mnk));
      g->set_forward_s(Mean(ms, [](const Measurement& m) { return Param(m, "forward_s"); }));
      g->set_backward_s(Mean(ms, [](const Measurement& m) { return Param(m, "backward_s"); }));
    }
    if (!shapes.empty()) {
      out.summary.push_back(absl::StrFormat("GEMM shapes: %d measured (forward and backward)",
                                            shapes.size()));
    }
  }

  // Attention: each case's forward and backward (one measurement each, named "<case> forward" /
  // "<case> backward"), times averaged over the ranks.
  struct AttentionCase {
    double forward_s = 0, backward_s = 0, flops = 0;
    std::tuple<int, int, int, int> shape;  // batch, heads, seq, head dim (0s: not recorded)
  };
  std::map<std::string, AttentionCase> attention;
  for (const auto& [name, ms] : ByName(reports, "attention")) {
    AttentionCase& c = attention[name.substr(0, name.rfind(' '))];
    const Measurement& m0 = *ms[0];
    const double t = Mean(ms, [](const Measurement& m) { return m.time_s(); });
    if (m0.op() == "forward") {
      c.forward_s = t;
      c.flops = m0.flops();
    } else {
      c.backward_s = t;
    }
    c.shape = {static_cast<int>(Param(m0, "batch")), static_cast<int>(Param(m0, "heads")),
               static_cast<int>(Param(m0, "seq")), static_cast<int>(Param(m0, "head_dim"))};
  }
  // The efficiency against the GEMM table (profiles without kernels), and the measured kernels,
  // which the cost model prefers (nearest head dimension, rate interpolated in log(seq)).
  std::vector<double> effs;
  std::map<std::tuple<int, int, int, int>, const AttentionCase*> kernels;
  for (const auto& [base, c] : attention) {
    if (c.forward_s > 0 && c.backward_s > 0) {
      effs.push_back(3.5 * c.flops / (GemmRateAt(*d, c.flops) * (c.forward_s + c.backward_s)));
    }
    const auto& [b, h, seq, dim] = c.shape;
    if (c.forward_s > 0 && b > 0 && h > 0 && seq > 0 && dim > 0) kernels[c.shape] = &c;
  }
  for (const auto& [shape, c] : kernels) {
    cairn::v1::AttentionPoint* a = d->add_attention();
    a->set_batch(std::get<0>(shape));
    a->set_heads(std::get<1>(shape));
    a->set_kv_heads(std::get<1>(shape));  // the probe's kernels have as many K/V heads as Q heads
    a->set_seq_len(std::get<2>(shape));
    a->set_head_dim(std::get<3>(shape));
    a->set_forward_s(c->forward_s);
    a->set_backward_s(c->backward_s);
  }
  if (!effs.empty()) {
    d->set_attention_efficiency(Median(effs));
    out.summary.push_back(absl::StrFormat("attention efficiency %.3f (median of %d cases)",
                                          d->attention_efficiency(), effs.size()));
  }

  // Memory bandwidth.
  std::map<std::string, double> bandwidth;
  for (const auto& [name, ms] : ByName(reports, "memory")) {
    bandwidth[ms[0]->op()] = Mean(ms, [](const Measurement& m) { return m.rate(); });
  }
  if (bandwidth.count("adamw")) {
    d->set_memory_bandwidth_bytes_per_s(bandwidth["adamw"]);
    out.summary.push_back(absl::StrFormat(
        "memory bandwidth %.2f GB/s (optimizer step); copy %.2f GB/s, add %.2f GB/s",
        bandwidth["adamw"] / 1e9, bandwidth["copy"] / 1e9, bandwidth["add"] / 1e9));
    notes.push_back(absl::StrFormat(
        "memory_bandwidth is the AdamW step's rate in the cost model's optimizer bytes; a device "
        "copy moved %.2f GB/s and an add %.2f GB/s per worker.",
        bandwidth["copy"] / 1e9, bandwidth["add"] / 1e9));
  }
  for (const auto& [name, ms] : ByName(reports, "launch")) {
    const double t = Mean(ms, [](const Measurement& m) { return m.time_s(); });
    d->set_kernel_launch_s(t);
    notes.push_back(absl::StrFormat("kernel_launch_s: a 1-element kernel enqueued back to back, "
                                    "%.2f us per kernel.", t * 1e6));
    out.summary.push_back(absl::StrFormat("launch overhead %.2f us", t * 1e6));
  }

  // Collectives: fits and points from the reports that hold them (rank 0 of each probe world).
  std::map<CollKey, CollectiveCost> costs;
  std::map<CollKey, int> stride_of;
  double worst_fit = 0;    // alpha-beta fit, worst point
  double worst_table = 0;  // the measured table, leave-one-out interpolation, worst point
  for (const ProbeReport& r : reports) {
    for (const Measurement& f : r.measurements()) {
      if (f.probe() != "collective_fit" || !f.error().empty()) continue;
      const CollectiveOp op = OpFromName(f.op());
      const int g = static_cast<int>(Param(f, "group_size"));
      const int stride = static_cast<int>(Param(f, "stride"));
      const bool spans = Param(f, "spans_nodes") != 0;
      const CollKey key{op, g, spans};
      if (costs.count(key) && stride_of[key] <= stride) continue;  // consecutive first
      CollectiveCost c;
      c.set_op(op);
      c.set_group_size(g);
      c.set_spans_nodes(spans);
      c.set_latency_s(Param(f, "latency_s"));
      c.set_busbw_bytes_per_s(Param(f, "busbw_bytes_per_s"));
      std::vector<std::pair<double, double>> series;
      for (const Measurement& m : r.measurements()) {
        if (m.probe() != "collective" || m.op() != f.op() || !m.error().empty()) continue;
        if (static_cast<int>(Param(m, "group_size")) != g ||
            static_cast<int>(Param(m, "stride")) != stride) {
          continue;
        }
        series.emplace_back(m.bytes(), m.time_s());
      }
      std::sort(series.begin(), series.end());
      // The cost model reads these points piecewise-linearly and continues past the largest with
      // the last segment's slope: noise that makes a larger message faster than a smaller one
      // would give negative or free bandwidth there. Times are made non-decreasing, and one point
      // at 16x the largest size continues at the fitted bus bandwidth.
      double floor_s = 0;
      for (auto& [bytes, t] : series) {
        t = std::max(t, floor_s);
        floor_s = t;
      }
      // How well the table predicts sizes it did not measure: each interior point against the
      // straight line between its neighbours (the cost model's reading), left out in turn.
      for (size_t i = 1; i + 1 < series.size(); ++i) {
        const auto& [b0, t0] = series[i - 1];
        const auto& [b2, t2] = series[i + 1];
        const auto& [b1, t1] = series[i];
        if (b2 <= b0 || t1 <= 0) continue;
        const double guess = t0 + (t2 - t0) * (b1 - b0) / (b2 - b0);
        worst_table = std::max(worst_table, std::abs(guess - t1) / t1);
      }
      if (!series.empty() && c.busbw_bytes_per_s() > 0) {
        const double factor = c.op() == cairn::v1::COLLECTIVE_OP_SEND_RECV ? 1.0
                              : c.op() == cairn::v1::COLLECTIVE_OP_ALL_REDUCE
                                  ? 2.0 * (g - 1) / g
                                  : (g - 1.0) / g;
        const auto [last_bytes, last_s] = series.back();
        series.emplace_back(16 * last_bytes,
                            last_s + 15 * last_bytes * factor / c.busbw_bytes_per_s());
      }
      for (const auto& [bytes, t] : series) {
        cairn::v1::CommPoint* p = c.add_points();
        p->set_bytes(bytes);
        p->set_time_s(t);
      }
      costs[key] = c;
      stride_of[key] = stride;
      worst_fit = std::max(worst_fit, Param(f, "max_rel_error"));
    }
  }
  int kept = 0;
  if (previous != nullptr) {
    for (const CollectiveCost& c : previous->collectives()) {
      const CollKey key{c.op(), c.group_size(), c.spans_nodes()};
      if (costs.count(key)) continue;
      costs[key] = c;
      ++kept;
    }
  }
  for (auto& [key, c] : costs) *hw.add_collectives() = std::move(c);
  if (!costs.empty()) {
    out.summary.push_back(absl::StrFormat(
        "collectives: %d tables (%d kept from the previous profile), worst alpha-beta fit error "
        "%.0f%%, worst table interpolation error %.0f%%",
        costs.size(), kept, 100 * worst_fit, 100 * worst_table));
    notes.push_back(absl::StrFormat(
        "Collectives through the runtime's communicators, nccl-tests definitions. The planner "
        "reads the measured points piecewise-linearly: each interior point predicted from its two "
        "neighbours is at worst %.0f%% off (leave-one-out). Their summary as latency + bytes x "
        "factor / busbw (relative least squares) is at worst %.0f%% off at some point.",
        100 * worst_table, 100 * worst_fit));
  }

  // Overlap.
  for (const auto& [name, ms] : ByName(reports, "overlap")) {
    if (ms[0]->op() == "gamma") {
      hw.set_overlap_slowdown(ms[0]->rate());
      out.summary.push_back(absl::StrFormat("overlap slowdown gamma %.3f", ms[0]->rate()));
    } else {
      notes.push_back(absl::StrFormat("Overlap: %s runs %.2fx slower beside the other.",
                                      ms[0]->op(), ms[0]->rate()));
    }
  }
  if (hw.overlap_slowdown() == 0 && previous != nullptr) {
    hw.set_overlap_slowdown(previous->overlap_slowdown());
  }
  if (hw.overlap_slowdown() == 0) {
    // Nothing measured it: one rank (a node of one device) has no collective to run beside its
    // compute, and no earlier profile of this fingerprint did either. A plan on such a profile has
    // no communication to overlap, so 1 (overlap costs nothing) changes no prediction; a later
    // probe with several ranks replaces it.
    hw.set_overlap_slowdown(1.0);
    notes.push_back(
        "Overlap not measured (no collective ran beside compute, e.g. one rank): slowdown 1.");
  }
  hw.set_notes(absl::StrJoin(notes, " "));

  // Model profiles.
  std::map<std::string, cairn::v1::ModelProfile> models;
  for (const auto& [name, ms] : ByName(reports, "layer")) {
    const Measurement& m0 = *ms[0];
    cairn::v1::ModelProfile& p = models[m0.model()];
    if (p.model_name().empty()) {
      p.set_model_name(m0.model());
      p.set_device_model(node.fingerprint.device_model());
      p.set_activation_dtype_bytes(node.activation_dtype_bytes);
      p.set_source(absl::StrCat("cairn-agent ", node.node_name, " ", node.measured_at, " (",
                                versions.empty() ? "" : *versions.begin(), ", ", reports.size(),
                                " concurrent ranks, mean of their medians)"));
    }
    cairn::v1::LayerTiming* t = p.add_timings();
    t->set_kind(m0.op() == "embedding" ? cairn::v1::LAYER_KIND_EMBEDDING
                : m0.op() == "head"    ? cairn::v1::LAYER_KIND_HEAD
                                       : cairn::v1::LAYER_KIND_TRANSFORMER_BLOCK);
    t->set_tp_degree(static_cast<int>(Param(m0, "tp")));
    t->set_micro_batch_size(static_cast<int>(Param(m0, "micro_batch")));
    t->set_seq_len(static_cast<int>(Param(m0, "seq")));
    t->set_forward_s(Mean(ms, [](const Measurement& m) { return Param(m, "forward_s"); }));
    t->set_backward_s(Mean(ms, [](const Measurement& m) { return Param(m, "backward_s"); }));
    t->set_activation_bytes(static_cast<int64_t>(Param(m0, "activation_bytes")));
  }
  for (auto& [name, p] : models) {
    std::sort(p.mutable_timings()->begin(), p.mutable_timings()->end(),
              [](const cairn::v1::LayerTiming& a, const cairn::v1::LayerTiming& b) {
                return std::make_tuple(a.kind(), a.seq_len(), a.micro_batch_size()) <
                       std::make_tuple(b.kind(), b.seq_len(), b.micro_batch_size());
              });
    out.summary.push_back(absl::StrFormat("model profile %s: %d layer timings", name,
                                          p.timings_size()));
    out.models.push_back(std::move(p));
  }
  return out;
}

}  // namespace cairn::agent
