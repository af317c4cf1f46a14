#include "agent/probes/layer_probe.h"

#include <algorithm>
#include <memory>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "agent/probes/time_limit.h"
#include "common/status_macros.h"
#include "runtime/train/layer_timing.h"

namespace cairn::agent {
namespace {

struct Point {
  int seq = 0;
  int micro_batch = 0;
};

// The points of one (model, kind) group: every sequence length the model allows, its
// micro-batches (sorted) in bisection order.
std::vector<Point> PointsOf(const plan::ModelDims& model, const LayerProbeConfig& config) {
  std::vector<int> bs = config.micro_batches;
  std::sort(bs.begin(), bs.end());
  std::vector<Point> points;
  for (int seq : config.seq_lens) {
    if (seq > model.max_seq_len) continue;
    for (int i : BisectionOrder(static_cast<int>(bs.size()))) points.push_back({seq, bs[i]});
  }
  return points;
}

// The iteration count of a point, from one iteration's seconds (0: unknown, this rank's point
// failed), agreed over the ranks probing at once (the largest wins) and started together. Every
// rank calls it once per point that is not skipped, failed or not, so the collectives match.
absl::StatusOr<int> AgreeIterations(const LayerProbeConfig& config, double one_iteration_s) {
  int iterations = config.iterations;
  if (one_iteration_s > 0) {
    const double fill = std::min<double>(runtime::LayerTimer::kMaxTimedIterations,
                                         config.min_seconds / one_iteration_s);
    iterations = std::max(iterations, static_cast<int>(fill));
  }
  iterations = std::clamp(iterations, 1, runtime::LayerTimer::kMaxTimedIterations);
  if (config.lockstep != nullptr) {
    CAIRN_RETURN_IF_ERROR(
        config.lockstep->AllReduce(&iterations, &iterations, 1, runtime::ReduceOp::kMax));
    CAIRN_RETURN_IF_ERROR(config.lockstep->Barrier());
  }
  return iterations;
}

void RecordTime(const runtime::LayerTime& t, Measurement* m) {
  (*m->mutable_params())["forward_s"] = t.forward_s;
  (*m->mutable_params())["backward_s"] = t.backward_s;
  (*m->mutable_params())["activation_bytes"] = static_cast<double>(t.activation_bytes);
  m->set_time_s(t.forward_s + t.backward_s);
  m->set_iterations(t.iterations);
  (*m->mutable_params())["forward_median_s"] = t.forward_median_s;
  (*m->mutable_params())["backward_median_s"] = t.backward_median_s;
  m->set_bytes(static_cast<double>(t.activation_bytes));
  m->set_unit("s");
  m->set_correct(true);
}

}  // namespace

absl::Status ProbeLayers(runtime::ComputeBackend* backend, const LayerProbeConfig& config,
                         ProbeReport* report) {
  constexpr plan::LayerKind kKinds[] = {plan::LayerKind::kEmbedding, plan::LayerKind::kBlock,
                                        plan::LayerKind::kHead};
  // Equal shares of the suite's time per (model, kind) group.
  std::vector<std::pair<std::string, double>> groups;
  for (size_t i = 0; i < config.models.size(); ++i) {
    for (plan::LayerKind kind : kKinds) {
      groups.emplace_back(absl::StrCat(i, "/", plan::ToString(kind)), 1.0);
    }
  }
  TimeShares shares(config.deadline, groups);
  for (size_t i = 0; i < config.models.size(); ++i) {
    const plan::ModelDims& model = config.models[i];
    const std::vector<Point> points = PointsOf(model, config);
    for (plan::LayerKind kind : kKinds) {
      const char* kind_name = plan::ToString(kind);
      CaseGate gate(shares.Start(absl::StrCat(i, "/", kind_name)), config.lockstep);
      // Built at the group's first point (the points run from the first until the gate closes):
      // its weights, once for all its points.
      absl::StatusOr<std::unique_ptr<runtime::LayerTimer>> timer;
      for (size_t p = 0; p < points.size(); ++p) {
        CAIRN_ASSIGN_OR_RETURN(const bool run, gate.Next());
        if (!run) {
          gate.Skip(static_cast<int>(points.size() - p - 1));  // the rest of the group
          break;
        }
        const int b = points[p].micro_batch, seq = points[p].seq;
        Measurement* m = report->add_measurements();
        m->set_probe("layer");
        m->set_op(kind_name);
        m->set_model(model.name);
        m->set_name(absl::StrFormat("%s %s b=%d seq=%d", model.name, kind_name, b, seq));
        (*m->mutable_params())["micro_batch"] = b;
        (*m->mutable_params())["seq"] = seq;
        (*m->mutable_params())["tp"] = 1;
        if (p == 0) timer = runtime::LayerTimer::Create(model, kind, backend);
        // Every rank takes part in the agreement even when its point fails before it (no
        // timer, or the warm-up failed), so the collectives match.
        bool agreed = false;
        absl::Status agreement = absl::OkStatus();
        auto count = [&](double one_iteration_s) -> absl::StatusOr<int> {
          agreed = true;
          absl::StatusOr<int> n = AgreeIterations(config, one_iteration_s);
          agreement = n.status();
          return n;
        };
        absl::StatusOr<runtime::LayerTime> t =
            timer.ok() ? (*timer)->Time(b, seq, count)
                       : absl::StatusOr<runtime::LayerTime>(timer.status());
        if (!agreed) agreement = AgreeIterations(config, 0).status();
        if (!agreement.ok()) return agreement;  // the ranks can no longer agree: the suite fails
        if (!t.ok()) {
          m->set_error(std::string(t.status().message()));
          continue;
        }
        RecordTime(*t, m);
      }
      RecordSkipped(report, "layers", "layer", gate.skipped());
    }
  }
  return absl::OkStatus();
}

}  // namespace cairn::agent
