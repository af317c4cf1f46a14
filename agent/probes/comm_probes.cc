#include "agent/probes/comm_probes.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <memory>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "agent/probes/device_buffer.h"
#include "agent/probes/fit.h"
#include "agent/probes/time_limit.h"
#include "common/collective.h"
#include "common/status_macros.h"
#include "runtime/dtype.h"

namespace cairn::agent {
namespace {

using runtime::CommHandle;
using runtime::Communicator;
using runtime::ComputeBackend;
using runtime::DType;

absl::Status Run(absl::StatusOr<std::unique_ptr<CommHandle>> h) {
  CAIRN_RETURN_IF_ERROR(h.status());
  return (*h)->Wait();
}

// Buffers of one case, sized for `bytes` (nccl-tests' count) on a group of g.
struct CaseBuffers {
  DeviceBuffer in, out;
  size_t count = 0;  // elements the operation is called with (per rank for gather/scatter/a2a)
};

absl::StatusOr<CaseBuffers> MakeBuffers(ComputeBackend* be, const std::string& op, double bytes,
                                        int g, int rank_in_group) {
  const int64_t elem = static_cast<int64_t>(runtime::DTypeSize(be->working_dtype()));
  const int64_t total = std::max<int64_t>(g, static_cast<int64_t>(bytes) / elem / g * g);
  const float mine = static_cast<float>(rank_in_group + 1);
  CaseBuffers b;
  if (op == "all_reduce") {
    b.count = total;
    CAIRN_ASSIGN_OR_RETURN(b.in, DeviceBuffer::Working(be, total, mine));
    CAIRN_ASSIGN_OR_RETURN(b.out, DeviceBuffer::Working(be, total, 0));
  } else if (op == "all_gather") {
    b.count = total / g;
    CAIRN_ASSIGN_OR_RETURN(b.in, DeviceBuffer::Working(be, total / g, mine));
    CAIRN_ASSIGN_OR_RETURN(b.out, DeviceBuffer::Working(be, total, 0));
  } else if (op == "reduce_scatter") {
    b.count = total / g;
    CAIRN_ASSIGN_OR_RETURN(b.in, DeviceBuffer::Working(be, total, mine));
    CAIRN_ASSIGN_OR_RETURN(b.out, DeviceBuffer::Working(be, total / g, 0));
  } else if (op == "all_to_all") {
    b.count = total / g;
    CAIRN_ASSIGN_OR_RETURN(b.in, DeviceBuffer::Working(be, total, mine));
    CAIRN_ASSIGN_OR_RETURN(b.out, DeviceBuffer::Working(be, total, 0));
  } else {  // send_recv: one message each way
    b.count = std::max<int64_t>(1, static_cast<int64_t>(bytes) / elem);
    CAIRN_ASSIGN_OR_RETURN(b.in, DeviceBuffer::Working(be, b.count, mine));
    CAIRN_ASSIGN_OR_RETURN(b.out, DeviceBuffer::Working(be, b.count, 0));
  }
  return b;
}

absl::Status RunOp(Communicator* c, const std::string& op, CaseBuffers& b, DType dt) {
  if (op == "all_reduce") {
    return Run(c->StartAllReduce(b.in.data(), b.out.data(), b.count, dt, runtime::ReduceOp::kSum));
  }
  if (op == "all_gather") return Run(c->StartAllGather(b.in.data(), b.out.data(), b.count, dt));
  if (op == "reduce_scatter") {
    return Run(
        c->StartReduceScatter(b.in.data(), b.out.data(), b.count, dt, runtime::ReduceOp::kSum));
  }
  if (op == "all_to_all") return Run(c->StartAllToAll(b.in.data(), b.out.data(), b.count, dt));
  // send_recv between the two ranks of the pair, both directions at once.
  const int peer = 1 - c->rank();
  CAIRN_ASSIGN_OR_RETURN(auto recv, c->StartRecv(b.out.data(), b.count, dt, peer, 0));
  CAIRN_ASSIGN_OR_RETURN(auto send, c->StartSend(b.in.data(), b.count, dt, peer, 0));
  CAIRN_RETURN_IF_ERROR(send->Wait());
  return recv->Wait();
}

// The first elements of the output are what inputs rank + 1 give.
absl::StatusOr<bool> Check(const std::string& op, const CaseBuffers& b, int g, int rank) {
  CAIRN_ASSIGN_OR_RETURN(std::vector<float> head, b.out.ReadWorking(4));
  const float sum = static_cast<float>(g * (g + 1) / 2);
  for (size_t i = 0; i < head.size(); ++i) {
    float expect = 0;
    if (op == "all_reduce" || op == "reduce_scatter") {
      expect = sum;
    } else if (op == "send_recv") {
      expect = static_cast<float>(2 - rank);  // the peer's rank + 1
    } else {
      // all_gather / all_to_all: chunk r came from rank r; the first elements are chunk 0's
      // unless a chunk is shorter than 4 elements.
      const size_t chunk = b.count;
      expect = static_cast<float>(i / std::max<size_t>(1, chunk) + 1);
    }
    if (head[i] != expect) return false;
  }
  return true;
}

struct Series {
  std::string op;
  int group_size = 0;
  int stride = 1;
  bool spans_nodes = false;
  std::vector<std::pair<double, double>> points;  // bytes, seconds
};

}  // namespace

CommProbeConfig CommProbeConfig::ForCpu() {
  CommProbeConfig c;
  c.max_bytes = 64.0 * 1024 * 1024;
  c.budget = ProbeBudget::Full();
  return c;
}

CommProbeConfig CommProbeConfig::ForGpu() {
  CommProbeConfig c;
  c.budget = ProbeBudget::Full();
  return c;
}

std::vector<std::vector<int>> PlacementGroups(int world_size, int group_size, bool consecutive) {
  std::vector<std::vector<int>> groups;
  if (group_size < 1 || world_size % group_size != 0) return groups;
  const int count = world_size / group_size;
  for (int i = 0; i < count; ++i) {
    std::vector<int> g;
    for (int j = 0; j < group_size; ++j) g.push_back(consecutive ? i * group_size + j : i + j * count);
    groups.push_back(std::move(g));
  }
  return groups;
}

bool SpansNodes(const std::vector<int>& group, const std::vector<int>& node_of_rank) {
  for (int r : group) {
    if (node_of_rank[r] != node_of_rank[group[0]]) return true;
  }
  return false;
}

absl::Status ProbeCollectives(Communicator* world, Communicator* control, ComputeBackend* be,
                              const std::vector<int>& node_of_rank, const CommProbeConfig& config,
                              ProbeReport* report) {
  const int W = world->size();
  if (static_cast<int>(node_of_rank.size()) != W) {
    return absl::InvalidArgumentError(absl::StrCat("comm probes: ", node_of_rank.size(),
                                                   " node indices for a world of ", W));
  }
  std::vector<int> sizes = config.group_sizes;
  if (sizes.empty()) {
    for (int g = 2; g <= W; g *= 2) {
      if (W % g == 0) sizes.push_back(g);
    }
    if (W >= 2 && (sizes.empty() || sizes.back() != W)) sizes.push_back(W);
  }
  const DType dt = be->working_dtype();
  const double elem = static_cast<double>(runtime::DTypeSize(dt));
  auto sizes_of = [&](const std::string& op, int g) {
    return LogSpacedSizes(config.min_bytes, config.max_bytes, config.size_factor,
                          elem * (op == "send_recv" ? 1 : g));
  };
  CaseGate gate(config.deadline, control);
  std::vector<Series> all_series;
  for (int g : sizes) {
    if (g < 2 || W % g != 0) continue;
    for (bool consecutive : {true, false}) {
      if (!consecutive && (!config.strided || g == W)) continue;  // strided == consecutive at W
      if (gate.expired()) {  // agreed on every rank: skip the placement without building it
        for (const std::string& op : config.ops) {
          if (op == "send_recv" && g != 2) continue;
          gate.Skip(static_cast<int>(sizes_of(op, g).size()));
        }
        continue;
      }
      const std::vector<std::vector<int>> groups = PlacementGroups(W, g, consecutive);
      const int stride = consecutive ? 1 : W / g;
      // Portable Split rule: every rank calls Split for every list, in the same order.
      std::unique_ptr<Communicator> mine;
      std::vector<int> my_group;
      for (size_t i = 0; i < groups.size(); ++i) {
        CAIRN_ASSIGN_OR_RETURN(
            std::unique_ptr<Communicator> c,
            world->Split(groups[i], absl::StrCat("probe-g", g, consecutive ? "c" : "s", i)));
        if (c != nullptr) {
          mine = std::move(c);
          my_group = groups[i];
        }
      }
      if (mine == nullptr) return absl::InternalError("comm probes: this rank is in no group");
      // Every group of a placement spans nodes or none does (groups are translates of each other
      // on identical nodes); rank 0's group speaks for the placement.
      const bool spans = SpansNodes(groups[0], node_of_rank);
      const std::string placement = consecutive ? "consecutive" : "strided";
      for (const std::string& op : config.ops) {
        const bool p2p = op == "send_recv";
        if (p2p && g != 2) continue;  // pairs only
        Series series{op, g, stride, spans, {}};
        for (double bytes : sizes_of(op, g)) {
          CAIRN_ASSIGN_OR_RETURN(const bool run, gate.Next());
          if (!run) continue;
          CAIRN_ASSIGN_OR_RETURN(CaseBuffers b, MakeBuffers(be, op, bytes, g, mine->rank()));
          CAIRN_RETURN_IF_ERROR(RunOp(mine.get(), op, b, dt));
          CAIRN_ASSIGN_OR_RETURN(bool ok, Check(op, b, g, mine->rank()));
          float wrong = ok ? 0.0f : 1.0f;
          CAIRN_RETURN_IF_ERROR(control->AllReduce(&wrong, &wrong, 1, runtime::ReduceOp::kMax));
          CAIRN_ASSIGN_OR_RETURN(
              Timing t, TimeCollective(control, [&] { return RunOp(mine.get(), op, b, dt); },
                                       config.budget));
          // nccl-tests' bytes: the whole buffer (per-rank counts times g), the message for p2p.
          const bool per_rank_count = op != "all_reduce" && !p2p;
          const double counted = static_cast<double>(b.count) * (per_rank_count ? g : 1) * elem;
          series.points.emplace_back(counted, t.median_s);
          if (world->rank() != 0) continue;
          const CollectiveOp cop = *CollectiveOpFromName(op);
          Measurement* m = report->add_measurements();
          m->set_probe("collective");
          m->set_op(op);
          m->set_name(absl::StrFormat("%s g=%d %s%s %.0f B", op, g, placement,
                                      spans ? " (spans nodes)" : "", counted));
          (*m->mutable_params())["group_size"] = g;
          (*m->mutable_params())["stride"] = stride;
          (*m->mutable_params())["spans_nodes"] = spans ? 1 : 0;
          (*m->mutable_params())["groups"] = static_cast<double>(groups.size());
          m->set_bytes(counted);
          m->set_time_s(t.median_s);
          m->set_best_time_s(t.best_s);
          m->set_iterations(t.iterations);
          m->set_algbw_bytes_per_s(counted / t.median_s);
          m->set_rate(counted / t.median_s * BusFactor(cop, g));
          m->set_unit("busbw B/s");
          m->set_correct(wrong == 0);
          if (wrong != 0) m->set_error("a rank's result did not match the expected values");
        }
        all_series.push_back(std::move(series));
      }
    }
  }
  RecordSkipped(report, "comm", "collective", gate.skipped());
  if (world->rank() != 0) return absl::OkStatus();
  for (const Series& s : all_series) {
    if (s.points.size() < 2) continue;
    const double factor = BusFactor(*CollectiveOpFromName(s.op), s.group_size);
    absl::StatusOr<AlphaBetaFit> f = FitAlphaBeta(s.points, factor);
    Measurement* m = report->add_measurements();
    m->set_probe("collective_fit");
    m->set_op(s.op);
    m->set_name(absl::StrFormat("fit %s g=%d stride=%d%s", s.op, s.group_size, s.stride,
                                s.spans_nodes ? " (spans nodes)" : ""));
    (*m->mutable_params())["group_size"] = s.group_size;
    (*m->mutable_params())["stride"] = s.stride;
    (*m->mutable_params())["spans_nodes"] = s.spans_nodes ? 1 : 0;
    if (!f.ok()) {
      m->set_error(std::string(f.status().message()));
      continue;
    }
    (*m->mutable_params())["latency_s"] = f->latency_s;
    (*m->mutable_params())["busbw_bytes_per_s"] = f->busbw_bytes_per_s;
    (*m->mutable_params())["max_rel_error"] = f->max_rel_error;
    (*m->mutable_params())["rms_rel_error"] = f->rms_rel_error;
    m->set_rate(f->busbw_bytes_per_s);
    m->set_unit("busbw B/s");
    m->set_correct(true);
  }
  return absl::OkStatus();
}

}  // namespace cairn::agent
