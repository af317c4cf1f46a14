#include "runtime/train/layer_timing.h"

#include <algorithm>
#include <chrono>
#include <memory>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "runtime/compute/null/null_backend.h"
#include "runtime/engine/layers.h"
#include "runtime/engine/params.h"
#include "runtime/engine/topology.h"

namespace cairn::runtime {
namespace {

double Now() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

// Host chunks of this many fp32 elements at most: the weights are staged through a device buffer
// of this size, constant fills start from one and double on the device.
constexpr int64_t kChunkElements = int64_t{1} << 20;
constexpr int64_t kWeightChunkElements = int64_t{1} << 24;

// The layer's place and tensors as the old single-point code built them: a one-rank plan of one
// micro-batch of `micro_batch` samples of `seq` tokens.
LayerPlace PlaceOf(const plan::ModelDims& model, plan::LayerKind kind, int micro_batch, int seq) {
  plan::PlanSpec plan;
  plan.global_batch = micro_batch;
  plan.num_micro_batches = 1;
  plan.stage_layers = {model.num_layers + 2};
  plan.layers.assign(model.num_layers + 2, plan::Strategy{});
  Topology topo(1, 0, plan, model, seq);
  const int index = kind == plan::LayerKind::kEmbedding ? 0
                    : kind == plan::LayerKind::kHead   ? model.num_layers + 1
                                                        : 1;
  return topo.Place(index);
}

// Fills a working-dtype buffer with `value` on the device: an fp32 staging buffer from `arena`
// gets one host chunk, doubled by device copies, then converted (a copy on fp32 backends). The
// dry run (`real` false) makes the same allocations and nothing else.
absl::Status FillConstant(ComputeBackend* backend, DeviceArena* arena, const ArenaBuffer& dst,
                          float value, bool real) {
  CAIRN_ASSIGN_OR_RETURN(ArenaBuffer staging, arena->Allocate(dst.count(), DType::kFloat32));
  if (!real || dst.count() == 0) return absl::OkStatus();
  const std::vector<float> host(std::min(dst.count(), kChunkElements), value);
  const int64_t head_bytes = static_cast<int64_t>(host.size() * sizeof(float));
  CAIRN_RETURN_IF_ERROR(backend->CopyToDevice(staging.data(), host.data(), head_bytes));
  char* base = static_cast<char*>(staging.data());
  for (int64_t filled = head_bytes; filled < staging.bytes();) {
    const int64_t n = std::min(filled, staging.bytes() - filled);
    CAIRN_RETURN_IF_ERROR(backend->CopyOnDevice(base + filled, base, n));
    filled += n;
  }
  return backend->ToWorking(dst.count(), staging.f32(), dst.data());
}

// The timed iterations' forward and backward seconds.
struct Samples {
  std::vector<double> forward_s, backward_s;
};

double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

double Mean(const std::vector<double>& v) {
  double s = 0;
  for (double x : v) s += x;
  return s / static_cast<double>(v.size());
}

// One point on `backend` with buffers from `arena`: token ids and the constant sources of x and dy
// set up once, then iterations of forward and backward over fresh copies of them. `real` false is
// the dry run on a NullBackend (allocations only, one iteration): it sizes the arena and gives the
// activation bytes. Iteration 0 warms up; then `iterations` more, or until `min_total_s`, or as
// many as `count` decides from the warm-up.
absl::Status RunPoint(const plan::ModelDims& model, const LayerPlace& place,
                      const LayerParams& params, const void* weights, float* grads, float* loss,
                      int b, int seq, int iterations, double min_total_s,
                      const LayerTimer::IterationCount* count, ComputeBackend* backend,
                      DeviceArena* arena, bool real, Samples* samples,
                      int64_t* activation_bytes) {
  const DType wd = backend->working_dtype();
  MicroBatch mb;
  mb.batch = b;
  mb.seq = seq;
  CAIRN_ASSIGN_OR_RETURN(mb.inputs, arena->Allocate(int64_t{b} * seq, DType::kInt32));
  CAIRN_ASSIGN_OR_RETURN(mb.targets, arena->Allocate(int64_t{b} * seq, DType::kInt32));
  LayerRunner run(model, place, params, seq, b, backend, {}, arena, 1.0f / (b * seq), loss);
  CAIRN_ASSIGN_OR_RETURN(ArenaBuffer x_source, arena->Allocate(run.ActivationCount(), wd));
  CAIRN_ASSIGN_OR_RETURN(ArenaBuffer dy_source, arena->Allocate(run.ActivationCount(), wd));
  CAIRN_RETURN_IF_ERROR(FillConstant(backend, arena, x_source, 0.01f, real));
  CAIRN_RETURN_IF_ERROR(FillConstant(backend, arena, dy_source, 1e-3f, real));
  if (real) {
    std::vector<int32_t> in, tg;
    for (int i = 0; i < b * seq; ++i) {
      in.push_back(i * 7 % model.vocab);
      tg.push_back(i * 13 % model.vocab);
    }
    CAIRN_RETURN_IF_ERROR(backend->CopyToDevice(mb.inputs.data(), in.data(), mb.inputs.bytes()));
    CAIRN_RETURN_IF_ERROR(
        backend->CopyToDevice(mb.targets.data(), tg.data(), mb.targets.bytes()));
  }
  CAIRN_RETURN_IF_ERROR(backend->Zero(grads, params.size() * int64_t{4}));
  CAIRN_RETURN_IF_ERROR(backend->Zero(loss, 4));
  CAIRN_RETURN_IF_ERROR(backend->Synchronize());

  // One iteration: fresh x and dy copied from their sources, forward and backward timed.
  auto iteration = [&](double* forward_s, double* backward_s, int64_t* held) -> absl::Status {
    const int64_t live_before = arena->live_bytes();
    CAIRN_ASSIGN_OR_RETURN(ArenaBuffer x, arena->Allocate(run.ActivationCount(), wd));
    CAIRN_ASSIGN_OR_RETURN(ArenaBuffer dy, arena->Allocate(run.ActivationCount(), wd));
    CAIRN_RETURN_IF_ERROR(backend->CopyOnDevice(x.data(), x_source.data(), x.bytes()));
    CAIRN_RETURN_IF_ERROR(backend->CopyOnDevice(dy.data(), dy_source.data(), dy.bytes()));
    Saved saved;
    ArenaBuffer y, dx;
    CAIRN_RETURN_IF_ERROR(backend->Synchronize());
    const double t0 = Now();
    CAIRN_RETURN_IF_ERROR(run.Forward(weights, mb, std::move(x), &y, &saved));
    CAIRN_RETURN_IF_ERROR(backend->Synchronize());
    const double t1 = Now();
    // Held now: dy (not consumed yet), y, and what forward saved (the input x among it when the
    // layer keeps it).
    *held = arena->live_bytes() - live_before - dy.bytes() - y.bytes();
    CAIRN_RETURN_IF_ERROR(run.Backward(weights, mb, &saved, std::move(dy), &dx, grads));
    CAIRN_RETURN_IF_ERROR(backend->Synchronize());
    *forward_s = t1 - t0;
    *backward_s = Now() - t1;
    return absl::OkStatus();
  };

  double forward_s = 0, backward_s = 0;
  int64_t held = 0;
  CAIRN_RETURN_IF_ERROR(iteration(&forward_s, &backward_s, &held));  // warm-up
  *activation_bytes = std::max<int64_t>(0, held);
  if (!real) return absl::OkStatus();
  int exact = 0;  // with `count`: exactly this many timed iterations
  if (count != nullptr) {
    CAIRN_ASSIGN_OR_RETURN(exact, (*count)(forward_s + backward_s));
    if (exact < 1 || exact > LayerTimer::kMaxTimedIterations) {
      return absl::InvalidArgumentError(
          absl::StrCat("LayerTimer: the iteration count callback returned ", exact,
                       ", outside [1, ", LayerTimer::kMaxTimedIterations, "]"));
    }
  }
  double total_s = 0;
  for (int it = 1; it <= LayerTimer::kMaxTimedIterations; ++it) {
    if (exact > 0 ? it > exact : it > iterations && total_s >= min_total_s) break;
    CAIRN_RETURN_IF_ERROR(iteration(&forward_s, &backward_s, &held));
    samples->forward_s.push_back(forward_s);
    samples->backward_s.push_back(backward_s);
    total_s += forward_s + backward_s;
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<std::unique_ptr<LayerTimer>> LayerTimer::Create(const plan::ModelDims& model,
                                                              plan::LayerKind kind,
                                                              ComputeBackend* backend) {
  std::unique_ptr<LayerTimer> t(new LayerTimer(model, kind, backend));
  const LayerParams params = LayerParams::Build(model, PlaceOf(model, kind, 1, 1), true);
  t->parameter_count_ = params.size();
  const DType wd = backend->working_dtype();
  // Size the weights' arena with the same three allocations on a planning arena.
  int64_t bytes = 0;
  {
    std::unique_ptr<DeviceArena> planning = DeviceArena::ForPlanning();
    CAIRN_ASSIGN_OR_RETURN(ArenaBuffer w, planning->Allocate(params.size(), wd));
    CAIRN_ASSIGN_OR_RETURN(ArenaBuffer g, planning->Allocate(params.size(), DType::kFloat32));
    CAIRN_ASSIGN_OR_RETURN(ArenaBuffer l, planning->Allocate(1, DType::kFloat32));
    bytes = planning->extent_bytes();
  }
  CAIRN_ASSIGN_OR_RETURN(t->weight_arena_, DeviceArena::Create(backend, bytes));
  CAIRN_ASSIGN_OR_RETURN(t->weights_, t->weight_arena_->Allocate(params.size(), wd));
  CAIRN_ASSIGN_OR_RETURN(t->grads_, t->weight_arena_->Allocate(params.size(), DType::kFloat32));
  CAIRN_ASSIGN_OR_RETURN(t->loss_, t->weight_arena_->Allocate(1, DType::kFloat32));
  // Initialised on the host as training does, then converted through an fp32 staging chunk (the
  // grads buffer, fp32 and not needed yet, serves as the staging area).
  std::vector<float> values(params.size());
  params.Initialize(1, values.data());
  const int64_t wsize = static_cast<int64_t>(DTypeSize(wd));
  for (int64_t off = 0; off < params.size(); off += kWeightChunkElements) {
    const int64_t n = std::min(kWeightChunkElements, params.size() - off);
    CAIRN_RETURN_IF_ERROR(
        backend->CopyToDevice(t->grads_.data(), values.data() + off, n * int64_t{4}));
    CAIRN_RETURN_IF_ERROR(backend->ToWorking(
        n, t->grads_.f32(), static_cast<char*>(t->weights_.data()) + off * wsize));
    // The next chunk overwrites the staging area: the conversion must be done.
    CAIRN_RETURN_IF_ERROR(backend->Synchronize());
  }
  return t;
}

absl::StatusOr<LayerTime> LayerTimer::Time(int micro_batch, int seq, int iterations,
                                           double min_total_s) {
  if (micro_batch < 1 || seq < 1 || iterations < 1) {
    return absl::InvalidArgumentError(
        "LayerTimer: micro-batch, sequence length and iterations must be >= 1");
  }
  return TimePoint(micro_batch, seq, iterations, min_total_s, nullptr);
}

absl::StatusOr<LayerTime> LayerTimer::Time(int micro_batch, int seq, const IterationCount& count) {
  if (micro_batch < 1 || seq < 1) {
    return absl::InvalidArgumentError(
        "LayerTimer: micro-batch and sequence length must be >= 1");
  }
  if (!count) return absl::InvalidArgumentError("LayerTimer: no iteration count callback");
  return TimePoint(micro_batch, seq, 1, 0, &count);
}

absl::StatusOr<LayerTime> LayerTimer::TimePoint(int micro_batch, int seq, int iterations,
                                                double min_total_s, const IterationCount* count) {
  const LayerPlace place = PlaceOf(model_, kind_, micro_batch, seq);
  const LayerParams params = LayerParams::Build(model_, place, true);
  if (params.size() != parameter_count_) {
    return absl::InternalError(absl::StrCat("LayerTimer: the layer has ", params.size(),
                                            " parameters at micro-batch ", micro_batch, ", seq ",
                                            seq, ", its weights ", parameter_count_));
  }
  // Plan the memory with a dry run, then run for real in an arena of exactly that size.
  NullBackend null_backend(backend_->working_dtype());
  std::unique_ptr<DeviceArena> planning = DeviceArena::ForPlanning();
  Samples samples;
  LayerTime out;
  CAIRN_RETURN_IF_ERROR(RunPoint(model_, place, params, weights_.data(), grads_.f32(),
                                 loss_.f32(), micro_batch, seq, 0, 0, nullptr, &null_backend,
                                 planning.get(), false, &samples, &out.activation_bytes));
  CAIRN_ASSIGN_OR_RETURN(std::unique_ptr<DeviceArena> arena,
                         DeviceArena::Create(backend_, planning->extent_bytes()));
  int64_t same_as_planned = 0;
  CAIRN_RETURN_IF_ERROR(RunPoint(model_, place, params, weights_.data(), grads_.f32(),
                                 loss_.f32(), micro_batch, seq, iterations, min_total_s, count,
                                 backend_, arena.get(), true, &samples, &same_as_planned));
  out.forward_s = Mean(samples.forward_s);
  out.backward_s = Mean(samples.backward_s);
  out.forward_median_s = Median(samples.forward_s);
  out.backward_median_s = Median(samples.backward_s);
  out.iterations = static_cast<int>(samples.forward_s.size());
  return out;
}

absl::StatusOr<LayerTime> TimeLayer(const plan::ModelDims& model, plan::LayerKind kind,
                                    int micro_batch, int seq, int iterations,
                                    ComputeBackend* backend, double min_total_s) {
  if (micro_batch < 1 || seq < 1 || iterations < 1) {
    return absl::InvalidArgumentError(
        "TimeLayer: micro-batch, sequence length and iterations must be >= 1");
  }
  CAIRN_ASSIGN_OR_RETURN(std::unique_ptr<LayerTimer> timer,
                         LayerTimer::Create(model, kind, backend));
  return timer->Time(micro_batch, seq, iterations, min_total_s);
}

}  // namespace cairn::runtime
