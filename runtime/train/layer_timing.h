// runtime/train/layer_timing.h — time one layer of a model (embedding, transformer block or head)
// forward and backward with the runtime's own kernels, on any compute backend. What
// `cairn-profile-layers` and the agent's layer probe (agent/probes) measure to build a
// cairn.v1.ModelProfile.
//
//   CpuBackend backend;
//   CAIRN_ASSIGN_OR_RETURN(LayerTime t,
//                          TimeLayer(model, plan::LayerKind::kBlock, /*micro_batch=*/4,
//                                    /*seq=*/128, /*iterations=*/5, &backend));
//   // t.forward_s, t.backward_s: medians; t.activation_bytes: what forward keeps for backward
//
// How: the layer runs alone on one rank (tensor-parallel degree 1, no communication) over a
// DeviceArena sized by a dry run on a NullBackend first (as the engine plans its memory), with
// weights initialised as training does and fixed token ids. One warm-up iteration, then timed ones,
// each bracketed by backend->Synchronize(): at least `iterations`, and more until they add up to
// `min_total_s` (at most 1000). The means are returned, not the medians: on a core shared by
// several workers (CPU slots) a short operation often runs inside one scheduler time slice, and
// only the mean over many slices is the rate training sees; medians are kept beside them.
// activation_bytes counts the arena bytes still held between forward and backward, beyond the
// layer's input and output (the Saved buffers). Errors: InvalidArgument for sizes below 1, the
// backend's errors (e.g. ResourceExhausted).
#ifndef CAIRN_RUNTIME_TRAIN_LAYER_TIMING_H_
#define CAIRN_RUNTIME_TRAIN_LAYER_TIMING_H_

#include <cstdint>

#include "absl/status/statusor.h"
#include "common/plan/plan.h"
#include "runtime/compute/compute_backend.h"

namespace cairn::runtime {

struct LayerTime {
  double forward_s = 0;   // mean of the timed iterations
  double backward_s = 0;  // data and weight gradients, no recomputation
  double forward_median_s = 0;
  double backward_median_s = 0;
  int iterations = 0;     // timed
  int64_t activation_bytes = 0;
};

absl::StatusOr<LayerTime> TimeLayer(const plan::ModelDims& model, plan::LayerKind kind,
                                    int micro_batch, int seq, int iterations,
                                    ComputeBackend* backend, double min_total_s = 0);

}  // namespace cairn::runtime

#endif  // CAIRN_RUNTIME_TRAIN_LAYER_TIMING_H_
