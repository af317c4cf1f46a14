#include "planner/cli/profile_diff.h"

#include <cmath>
#include <set>
#include <tuple>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/collective_proto.h"
#include "common/units.h"
#include "planner/cost/hardware_model.h"
#include "planner/problem/problem_builder.h"

namespace cairn::cli {
namespace {

planner::HardwareModel Model(const cairn::v1::HardwareProfile& p) {
  cairn::v1::Cluster c;
  *c.mutable_hardware() = p;
  c.set_num_nodes(2);
  return planner::HardwareModel(planner::ToHardware(c));
}

void Row(std::ostream& out, const std::string& what, double a, double b,
         const std::string& unit, double scale) {
  auto cell = [&](double v) {
    return v > 0 && std::isfinite(v) ? absl::StrFormat("%.4g %s", v / scale, unit)
                                     : std::string("-");
  };
  const std::string ratio =
      a > 0 && b > 0 && std::isfinite(a) && std::isfinite(b) ? absl::StrFormat("%.2f", a / b) : "-";
  out << absl::StrFormat("%-46s %18s %18s %7s\n", what, cell(a), cell(b), ratio);
}

}  // namespace

std::string DefaultClusterFor(const cairn::v1::HardwareProfile& p) {
  const std::string m = absl::AsciiStrToLower(p.fingerprint().device_model().empty()
                                                  ? p.device().name()
                                                  : p.fingerprint().device_model());
  if (absl::StartsWith(m, "cpu")) return "cpu";
  if (absl::StrContains(m, "h200")) return "h200-sxm";
  if (absl::StrContains(m, "h100")) return "h100-sxm";
  if (absl::StrContains(m, "a100")) return "a100-80g-sxm";
  return "";
}

void RenderProfileDiff(const cairn::v1::HardwareProfile& a, const std::string& a_label,
                       const cairn::v1::HardwareProfile& b, const std::string& b_label,
                       std::ostream& out) {
  const planner::HardwareModel ma = Model(a), mb = Model(b);
  out << absl::StrFormat("%-46s %18s %18s %7s\n", "quantity", a_label.substr(0, 18),
                         b_label.substr(0, 18), "ratio");
  Row(out, "devices per node", a.devices_per_node(), b.devices_per_node(), "", 1);
  Row(out, "device memory", a.device().memory_bytes(), b.device().memory_bytes(), "GiB", kGiB);
  Row(out, "peak (MFU denominator)", a.device().peak_flops_per_s(),
      b.device().peak_flops_per_s(), "GFLOP/s", 1e9);
  // GEMM rates at the FLOPs of a decade ladder of shapes, as the cost model interpolates them.
  double lo = 1e6, hi = 1e13;
  for (const auto* p : {&a, &b}) {
    for (const auto& g : p->device().gemm()) {
      lo = std::min(lo, g.flops());
      hi = std::max(hi, g.flops());
    }
  }
  for (double f = std::pow(10, std::floor(std::log10(lo))); f <= hi * 1.0001; f *= 10) {
    Row(out, absl::StrFormat("GEMM rate at %.0e FLOP", f), ma.AchievedGemmRate(f),
        mb.AchievedGemmRate(f), "GFLOP/s", 1e9);
  }
  // The shapes either profile measured (an agent probes its models' layer GEMMs), timed forward
  // and backward as the cost model times them: from the measured shapes where the profile has
  // them, else from its rate table.
  const int dtype_bytes = DefaultClusterFor(a) == "cpu" ? 4 : 2;
  std::set<std::tuple<double, int64_t, int64_t, int64_t>> shapes;  // flops first: sorted by size
  for (const auto* p : {&a, &b}) {
    for (const auto& g : p->device().gemm_shapes()) {
      shapes.insert({2.0 * g.m() * g.n() * g.k(), g.m(), g.n(), g.k()});
    }
  }
  for (const auto& [flops, m, n, k] : shapes) {
    auto time = [&, m = m, n = n, k = k](const planner::HardwareModel& hw) {
      return hw.GemmTime(m, n, k, dtype_bytes) + hw.GemmBackwardTime(m, n, k, dtype_bytes);
    };
    Row(out, absl::StrFormat("GEMM %dx%dx%d fwd+bwd time", m, n, k), time(ma), time(mb), "ms",
        1e-3);
  }
  Row(out, "attention efficiency (x GEMM rate)", ma.hardware().attention_efficiency,
      mb.hardware().attention_efficiency, "", 1);
  std::set<std::tuple<int64_t, int, int>> kernels;  // batch x heads, seq, head dim
  for (const auto* p : {&a, &b}) {
    for (const auto& k : p->device().attention()) {
      kernels.insert({k.batch() * k.heads(), k.seq_len(), k.head_dim()});
    }
  }
  for (const auto& [bh, seq, d] : kernels) {
    auto time = [&, bh = bh, seq = seq, d = d](const planner::HardwareModel& hw) {
      double f = 0, b = 0;
      hw.AttentionTimes(bh, seq, d, &f, &b);
      return f + b;
    };
    Row(out, absl::StrFormat("attention %d seqs x heads, s=%d d=%d fwd+bwd", bh, seq, d),
        time(ma), time(mb), "ms", 1e-3);
  }
  Row(out, "kernel launch", a.device().kernel_launch_s(), b.device().kernel_launch_s(), "us",
      1e-6);
  Row(out, "memory bandwidth", a.device().memory_bandwidth_bytes_per_s(),
      b.device().memory_bandwidth_bytes_per_s(), "GB/s", 1e9);
  Row(out, "overlap slowdown (gamma)", ma.hardware().overlap_slowdown,
      mb.hardware().overlap_slowdown, "", 1);
  // Collectives: every (op, group, span) either side has a table for, timed by the cost model.
  std::set<std::tuple<int, int, bool>> keys;
  for (const auto* p : {&a, &b}) {
    for (const auto& c : p->collectives()) {
      if (c.group_size() <= 16) keys.insert({c.op(), c.group_size(), c.spans_nodes()});
    }
  }
  for (const auto& [op, g, spans] : keys) {
    const CollectiveOp cop = FromProto(static_cast<cairn::v1::CollectiveOp>(op));
    for (double bytes : {1.0 * (1 << 20), 64.0 * (1 << 20)}) {
      Row(out,
          absl::StrFormat("%s g=%d%s %s time", ToString(cop), g, spans ? " inter-node" : "",
                          FormatBytes(bytes)),
          ma.CollectiveTime(cop, g, spans, bytes), mb.CollectiveTime(cop, g, spans, bytes), "ms",
          1e-3);
    }
  }
  out << "source: " << a_label << " = " << cairn::v1::ProfileSource_Name(a.source()) << ", "
      << b_label << " = " << cairn::v1::ProfileSource_Name(b.source()) << "\n";
}

}  // namespace cairn::cli
