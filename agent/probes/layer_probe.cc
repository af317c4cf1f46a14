#include "agent/probes/layer_probe.h"

#include <algorithm>

#include "absl/strings/str_format.h"
#include "runtime/train/layer_timing.h"

namespace cairn::agent {

absl::Status ProbeLayers(runtime::ComputeBackend* backend, const LayerProbeConfig& config,
                         ProbeReport* report) {
  for (const plan::ModelDims& model : config.models) {
    for (int seq : config.seq_lens) {
      if (seq > model.max_seq_len) continue;
      for (plan::LayerKind kind :
           {plan::LayerKind::kEmbedding, plan::LayerKind::kBlock, plan::LayerKind::kHead}) {
        for (int b : config.micro_batches) {
          const char* kind_name = plan::ToString(kind);
          Measurement* m = report->add_measurements();
          m->set_probe("layer");
          m->set_op(kind_name);
          m->set_model(model.name);
          m->set_name(absl::StrFormat("%s %s b=%d seq=%d", model.name, kind_name, b, seq));
          (*m->mutable_params())["micro_batch"] = b;
          (*m->mutable_params())["seq"] = seq;
          (*m->mutable_params())["tp"] = 1;
          // The iteration count that fills min_seconds, agreed over the ranks probing at once.
          int iterations = config.iterations;
          absl::StatusOr<runtime::LayerTime> t =
              runtime::TimeLayer(model, kind, b, seq, 1, backend);
          if (t.ok()) {
            const double one = t->forward_s + t->backward_s;
            iterations = std::max(iterations, std::min(1000, static_cast<int>(
                                                                 config.min_seconds / one)));
          }
          if (config.lockstep != nullptr) {
            // Every rank takes part even when its estimate failed, so the collectives match.
            if (absl::Status s = config.lockstep->AllReduce(&iterations, &iterations, 1,
                                                            runtime::ReduceOp::kMax);
                !s.ok()) {
              return s;
            }
            if (absl::Status s = config.lockstep->Barrier(); !s.ok()) return s;
          }
          if (t.ok()) t = runtime::TimeLayer(model, kind, b, seq, iterations, backend);
          if (!t.ok()) {
            m->set_error(std::string(t.status().message()));
            continue;
          }
          (*m->mutable_params())["forward_s"] = t->forward_s;
          (*m->mutable_params())["backward_s"] = t->backward_s;
          (*m->mutable_params())["activation_bytes"] = static_cast<double>(t->activation_bytes);
          m->set_time_s(t->forward_s + t->backward_s);
          m->set_iterations(t->iterations);
          (*m->mutable_params())["forward_median_s"] = t->forward_median_s;
          (*m->mutable_params())["backward_median_s"] = t->backward_median_s;
          m->set_bytes(static_cast<double>(t->activation_bytes));
          m->set_unit("s");
          m->set_correct(true);
        }
      }
    }
  }
  return absl::OkStatus();
}

}  // namespace cairn::agent
