// runtime/train/layer_timing.h — time one layer of a model (embedding, transformer block or head)
// forward and backward with the runtime's own kernels, on any compute backend. What
// `cairn-profile-layers` and the agent's layer probe (agent/probes) measure to build a
// cairn.v1.ModelProfile.
//
// Overview
// --------
// A LayerTimer holds one layer's weights (initialised as training does, uploaded once) and times
// it at any number of (micro_batch, seq) points over them:
//
//   CpuBackend backend;
//   CAIRN_ASSIGN_OR_RETURN(std::unique_ptr<LayerTimer> timer,
//                          LayerTimer::Create(model, plan::LayerKind::kBlock, &backend));
//   for (int b : {1, 2, 4}) {
//     CAIRN_ASSIGN_OR_RETURN(LayerTime t, timer->Time(b, /*seq=*/128, /*iterations=*/5));
//     // t.forward_s, t.backward_s: means; t.activation_bytes: what forward keeps for backward
//   }
//   // The iteration count decided after the warm-up, e.g. agreed over ranks probing at once:
//   CAIRN_ASSIGN_OR_RETURN(LayerTime t, timer->Time(8, 128, [&](double one_iteration_s) {
//     return AgreeOverRanks(std::max(5, static_cast<int>(0.5 / one_iteration_s)));
//   }));
//
// TimeLayer(...) is the one-point form (a timer created, used once and dropped).
//
// How one point is timed: the layer runs alone on one rank (tensor-parallel degree 1, no
// communication) over a DeviceArena sized by a dry run on a NullBackend first (as the engine plans
// its memory), with fixed token ids. The layer's input x and output gradient dy (constant values)
// are filled once per point on the device (a small host chunk doubled by device copies); each
// iteration takes fresh copies of them by CopyOnDevice, since forward and backward consume their
// inputs. One warm-up iteration, then timed ones, each pass bracketed by backend->Synchronize():
//   - Time(b, seq, iterations, min_total_s): at least `iterations`, and more until they add up to
//     `min_total_s` (at most kMaxTimedIterations);
//   - Time(b, seq, count): exactly count(warm-up seconds) iterations (1 to kMaxTimedIterations):
//     the callback sees the warm-up's forward + backward time (an over-estimate of one iteration
//     when the warm-up pays for first touches) and may run collectives (the same on every rank).
// The means are returned, not the medians: on a core shared by several workers (CPU slots) a
// short operation often runs inside one scheduler time slice, and only the mean over many slices
// is the rate training sees; medians are kept beside them. activation_bytes counts the arena bytes
// still held between forward and backward, beyond the layer's input and output (the Saved
// buffers). Weight gradients accumulate into one fp32 buffer, zeroed at the start of each point.
//
// Errors: InvalidArgument for sizes or counts below 1 (and from a callback returning a count out
// of range), the callback's own errors (returned as they are), the backend's errors (e.g.
// ResourceExhausted when a point's arena or the weights do not fit). A failed point leaves the
// timer usable for other points. Not thread-safe: one thread per timer (and per backend).
#ifndef CAIRN_RUNTIME_TRAIN_LAYER_TIMING_H_
#define CAIRN_RUNTIME_TRAIN_LAYER_TIMING_H_

#include <cstdint>
#include <functional>
#include <memory>

#include "absl/status/statusor.h"
#include "common/plan/plan.h"
#include "runtime/compute/arena.h"
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

class LayerTimer {
 public:
  static constexpr int kMaxTimedIterations = 1000;

  // Decides how many iterations to time from the warm-up's forward + backward seconds; returns
  // a count in [1, kMaxTimedIterations] or an error (which Time returns unchanged).
  using IterationCount = std::function<absl::StatusOr<int>(double one_iteration_s)>;

  // The layer `kind` of `model` (its tensors at tensor-parallel degree 1), weights initialised
  // (seed 1, as training does) and copied to `backend` in its working dtype, with an fp32
  // gradient buffer beside them. `backend` must outlive the timer. Errors: the backend's
  // (ResourceExhausted when the weights do not fit).
  static absl::StatusOr<std::unique_ptr<LayerTimer>> Create(const plan::ModelDims& model,
                                                           plan::LayerKind kind,
                                                           ComputeBackend* backend);

  // One point, timed at least `iterations` times and until the timed iterations add up to
  // `min_total_s`. InvalidArgument when micro_batch, seq or iterations is below 1.
  absl::StatusOr<LayerTime> Time(int micro_batch, int seq, int iterations,
                                 double min_total_s = 0);
  // One point, timed exactly count(warm-up seconds) times. InvalidArgument when micro_batch or seq
  // is below 1, `count` is empty or returns a count outside [1, kMaxTimedIterations]. `count` is
  // called once, unless the point fails before it (an invalid size, the dry run, the arena or the
  // warm-up): callers that run collectives in it must still take part on that path.
  absl::StatusOr<LayerTime> Time(int micro_batch, int seq, const IterationCount& count);

  plan::LayerKind kind() const { return kind_; }
  // Elements of the layer's weights (tensor-parallel degree 1).
  int64_t parameter_count() const { return parameter_count_; }

 private:
  LayerTimer(const plan::ModelDims& model, plan::LayerKind kind, ComputeBackend* backend)
      : model_(model), kind_(kind), backend_(backend) {}
  absl::StatusOr<LayerTime> TimePoint(int micro_batch, int seq, int iterations,
                                      double min_total_s, const IterationCount* count);

  plan::ModelDims model_;
  plan::LayerKind kind_;
  ComputeBackend* backend_;
  int64_t parameter_count_ = 0;
  // The weights (working dtype), their fp32 gradients and the head's loss scalar, in an arena of
  // their own that lives as long as the timer (declared before the buffers: freed after them).
  std::unique_ptr<DeviceArena> weight_arena_;
  ArenaBuffer weights_, grads_, loss_;
};

// One point on a fresh timer: LayerTimer::Create(model, kind, backend), then
// Time(micro_batch, seq, iterations, min_total_s). Same results and errors.
absl::StatusOr<LayerTime> TimeLayer(const plan::ModelDims& model, plan::LayerKind kind,
                                    int micro_batch, int seq, int iterations,
                                    ComputeBackend* backend, double min_total_s = 0);

}  // namespace cairn::runtime

#endif  // CAIRN_RUNTIME_TRAIN_LAYER_TIMING_H_
