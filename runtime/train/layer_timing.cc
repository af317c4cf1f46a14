#include "runtime/train/layer_timing.h"

#include <algorithm>
#include <chrono>
#include <memory>
#include <vector>

#include "common/status_macros.h"
#include "runtime/compute/arena.h"
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

// Fills a working-dtype buffer with `value` through an fp32 staging buffer (a plain copy on an
// fp32 backend, a conversion on bf16 ones).
absl::Status Fill(ComputeBackend* backend, DeviceArena* arena, const ArenaBuffer& dst, float value,
                  bool real) {
  CAIRN_ASSIGN_OR_RETURN(ArenaBuffer staging, arena->Allocate(dst.count(), DType::kFloat32));
  if (!real) return absl::OkStatus();
  const std::vector<float> host(dst.count(), value);
  CAIRN_RETURN_IF_ERROR(backend->CopyToDevice(staging.data(), host.data(), staging.bytes()));
  return backend->ToWorking(dst.count(), staging.f32(), dst.data());
}

// One layer's forward and backward, `iterations` + 1 times (the first warms up), on `backend`
// with buffers from `arena`; times appended when `real` (the dry run on a NullBackend only
// allocates, to size the arena).
absl::Status RunLayer(const plan::ModelDims& model, const LayerPlace& place,
                      const LayerParams& params, int b, int seq, int iterations,
                      double min_total_s, ComputeBackend* backend, DeviceArena* arena, bool real,
                      std::vector<double>* fwd_s, std::vector<double>* bwd_s,
                      int64_t* activation_bytes) {
  const DType wd = backend->working_dtype();
  CAIRN_ASSIGN_OR_RETURN(ArenaBuffer w, arena->Allocate(params.size(), wd));
  CAIRN_ASSIGN_OR_RETURN(ArenaBuffer g, arena->Allocate(params.size(), DType::kFloat32));
  CAIRN_ASSIGN_OR_RETURN(ArenaBuffer loss, arena->Allocate(1, DType::kFloat32));
  MicroBatch mb;
  mb.batch = b;
  mb.seq = seq;
  CAIRN_ASSIGN_OR_RETURN(mb.inputs, arena->Allocate(int64_t{b} * seq, DType::kInt32));
  CAIRN_ASSIGN_OR_RETURN(mb.targets, arena->Allocate(int64_t{b} * seq, DType::kInt32));
  {
    CAIRN_ASSIGN_OR_RETURN(ArenaBuffer staging, arena->Allocate(params.size(), DType::kFloat32));
    if (real) {
      std::vector<float> values(params.size());
      params.Initialize(1, values.data());
      CAIRN_RETURN_IF_ERROR(backend->CopyToDevice(staging.data(), values.data(), staging.bytes()));
      CAIRN_RETURN_IF_ERROR(backend->ToWorking(params.size(), staging.f32(), w.data()));
      std::vector<int32_t> in, tg;
      for (int i = 0; i < b * seq; ++i) {
        in.push_back(i * 7 % model.vocab);
        tg.push_back(i * 13 % model.vocab);
      }
      CAIRN_RETURN_IF_ERROR(backend->CopyToDevice(mb.inputs.data(), in.data(), mb.inputs.bytes()));
      CAIRN_RETURN_IF_ERROR(
          backend->CopyToDevice(mb.targets.data(), tg.data(), mb.targets.bytes()));
      CAIRN_RETURN_IF_ERROR(backend->Synchronize());
    }
  }
  CAIRN_RETURN_IF_ERROR(backend->Zero(g.data(), g.bytes()));
  LayerRunner run(model, place, params, seq, b, backend, {}, arena, 1.0f / (b * seq), loss.f32());
  constexpr int kMaxIterations = 1000;
  double total_s = 0;
  for (int it = 0; it < kMaxIterations + 1; ++it) {
    if (it > iterations && (total_s >= min_total_s || !real)) break;
    const int64_t live_before = arena->live_bytes();
    CAIRN_ASSIGN_OR_RETURN(ArenaBuffer x, arena->Allocate(run.ActivationCount(), wd));
    CAIRN_ASSIGN_OR_RETURN(ArenaBuffer dy, arena->Allocate(run.ActivationCount(), wd));
    CAIRN_RETURN_IF_ERROR(Fill(backend, arena, x, 0.01f, real));
    CAIRN_RETURN_IF_ERROR(Fill(backend, arena, dy, 1e-3f, real));
    Saved saved;
    ArenaBuffer y, dx;
    CAIRN_RETURN_IF_ERROR(backend->Synchronize());
    const double t0 = Now();
    CAIRN_RETURN_IF_ERROR(run.Forward(w.data(), mb, std::move(x), &y, &saved));
    CAIRN_RETURN_IF_ERROR(backend->Synchronize());
    const double t1 = Now();
    // Held now: dy (not consumed yet), y, and what forward saved (the input x among it when the
    // layer keeps it).
    const int64_t held = arena->live_bytes() - live_before - dy.bytes() - y.bytes();
    CAIRN_RETURN_IF_ERROR(run.Backward(w.data(), mb, &saved, std::move(dy), &dx, g.f32()));
    CAIRN_RETURN_IF_ERROR(backend->Synchronize());
    const double t2 = Now();
    if (it == 0) {
      *activation_bytes = std::max<int64_t>(0, held);
      continue;  // warm-up
    }
    if (!real) continue;
    fwd_s->push_back(t1 - t0);
    bwd_s->push_back(t2 - t1);
    total_s += t2 - t0;
  }
  return absl::OkStatus();
}

double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

double Mean(const std::vector<double>& v) {
  double s = 0;
  for (double x : v) s += x;
  return s / static_cast<double>(v.size());
}

}  // namespace

absl::StatusOr<LayerTime> TimeLayer(const plan::ModelDims& model, plan::LayerKind kind,
                                    int micro_batch, int seq, int iterations,
                                    ComputeBackend* backend, double min_total_s) {
  if (micro_batch < 1 || seq < 1 || iterations < 1) {
    return absl::InvalidArgumentError(
        "TimeLayer: micro-batch, sequence length and iterations must be >= 1");
  }
  plan::PlanSpec plan;
  plan.global_batch = micro_batch;
  plan.num_micro_batches = 1;
  plan.stage_layers = {model.num_layers + 2};
  plan.layers.assign(model.num_layers + 2, plan::Strategy{});
  Topology topo(1, 0, plan, model, seq);
  const int index = kind == plan::LayerKind::kEmbedding ? 0
                    : kind == plan::LayerKind::kHead   ? model.num_layers + 1
                                                        : 1;
  const LayerPlace place = topo.Place(index);
  const LayerParams params = LayerParams::Build(model, place, true);
  // Plan the memory with a dry run, then run for real in an arena of exactly that size.
  NullBackend null_backend(backend->working_dtype());
  std::unique_ptr<DeviceArena> planning = DeviceArena::ForPlanning();
  std::vector<double> f, bk;
  LayerTime out;
  CAIRN_RETURN_IF_ERROR(RunLayer(model, place, params, micro_batch, seq, 0, 0, &null_backend,
                                 planning.get(), false, &f, &bk, &out.activation_bytes));
  CAIRN_ASSIGN_OR_RETURN(std::unique_ptr<DeviceArena> arena,
                         DeviceArena::Create(backend, planning->extent_bytes()));
  int64_t ignored = 0;
  CAIRN_RETURN_IF_ERROR(RunLayer(model, place, params, micro_batch, seq, iterations, min_total_s,
                                 backend, arena.get(), true, &f, &bk, &ignored));
  out.forward_s = Mean(f);
  out.backward_s = Mean(bk);
  out.forward_median_s = Median(f);
  out.backward_median_s = Median(bk);
  out.iterations = static_cast<int>(f.size());
  return out;
}

}  // namespace cairn::runtime
