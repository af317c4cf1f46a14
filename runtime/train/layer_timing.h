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
// weights initialised as training does and fixed token ids. One warm-up iteration, then
// `iterations` timed ones, each bracketed by backend->Synchronize(); the medians are returned.
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
  double forward_s = 0;   // median of the timed iterations
  double backward_s = 0;  // data and weight gradients, no recomputation
  int64_t activation_bytes = 0;
};

absl::StatusOr<LayerTime> TimeLayer(const plan::ModelDims& model, plan::LayerKind kind,
                                    int micro_batch, int seq, int iterations,
                                    ComputeBackend* backend);

}  // namespace cairn::runtime

#endif  // CAIRN_RUNTIME_TRAIN_LAYER_TIMING_H_
