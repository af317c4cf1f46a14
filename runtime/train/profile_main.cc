// cairn-profile-layers — measures the runtime's own per-layer forward and backward times on this
// machine (CPU backend, one process) and writes them as a cairn.v1.ModelProfile, which the planner
// then uses instead of its analytic compute estimate (`cairn plan --model-profile`, `cairn-train
// --model-profile`). Tensor parallel degrees > 1 are derived by the planner (work / t).
//
//   cairn-profile-layers --model llama-tiny --seq-len 128 --micro-batches 1,2,4,8 --output prof.json
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/args.h"
#include "common/status_macros.h"
#include "planner/catalog/json_io.h"
#include "planner/catalog/models.h"
#include "common/plan/plan_proto.h"
#include "runtime/compute/arena.h"
#include "runtime/compute/null/null_backend.h"
#include "runtime/compute/cpu/cpu_backend.h"
#include "runtime/engine/layers.h"
#include "runtime/engine/params.h"
#include "runtime/engine/topology.h"
#include "runtime/train/launcher.h"

namespace cairn::runtime {
namespace {

double Seconds() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

// One layer's forward and backward, `iterations` + 1 times (the first warms up), on `backend`
// with buffers from `arena`; times appended to `fwd_s` / `bwd_s` when `timed`.
absl::Status RunLayer(const plan::ModelDims& model, const LayerPlace& place,
                      const LayerParams& params, int b, int seq, int iterations,
                      ComputeBackend* backend, DeviceArena* arena, bool timed,
                      std::vector<double>* fwd_s, std::vector<double>* bwd_s) {
  CAIRN_ASSIGN_OR_RETURN(ArenaBuffer w, arena->Allocate(params.size(), DType::kFloat32));
  CAIRN_ASSIGN_OR_RETURN(ArenaBuffer g, arena->Allocate(params.size(), DType::kFloat32));
  CAIRN_ASSIGN_OR_RETURN(ArenaBuffer loss, arena->Allocate(1, DType::kFloat32));
  MicroBatch mb;
  mb.batch = b;
  mb.seq = seq;
  CAIRN_ASSIGN_OR_RETURN(mb.inputs, arena->Allocate(int64_t{b} * seq, DType::kInt32));
  CAIRN_ASSIGN_OR_RETURN(mb.targets, arena->Allocate(int64_t{b} * seq, DType::kInt32));
  if (timed) {
    std::vector<float> values(params.size());
    params.Initialize(1, values.data());
    CAIRN_RETURN_IF_ERROR(backend->CopyToDevice(w.data(), values.data(), w.bytes()));
    std::vector<int32_t> in, tg;
    for (int i = 0; i < b * seq; ++i) {
      in.push_back(i * 7 % model.vocab);
      tg.push_back(i * 13 % model.vocab);
    }
    CAIRN_RETURN_IF_ERROR(backend->CopyToDevice(mb.inputs.data(), in.data(), mb.inputs.bytes()));
    CAIRN_RETURN_IF_ERROR(backend->CopyToDevice(mb.targets.data(), tg.data(), mb.targets.bytes()));
  }
  CAIRN_RETURN_IF_ERROR(backend->Zero(g.data(), g.bytes()));
  LayerRunner run(model, place, params, seq, b, backend, {}, arena, 1.0f / (b * seq), loss.f32());
  const std::vector<float> x_host(run.ActivationCount(), 0.01f), dy_host(run.ActivationCount(), 1e-3f);
  for (int it = 0; it < iterations + 1; ++it) {
    CAIRN_ASSIGN_OR_RETURN(ArenaBuffer x, arena->Allocate(run.ActivationCount(), DType::kFloat32));
    CAIRN_ASSIGN_OR_RETURN(ArenaBuffer dy, arena->Allocate(run.ActivationCount(), DType::kFloat32));
    if (timed) {
      CAIRN_RETURN_IF_ERROR(backend->CopyToDevice(x.data(), x_host.data(), x.bytes()));
      CAIRN_RETURN_IF_ERROR(backend->CopyToDevice(dy.data(), dy_host.data(), dy.bytes()));
    }
    Saved saved;
    ArenaBuffer y, dx;
    CAIRN_RETURN_IF_ERROR(backend->Synchronize());
    const double t0 = Seconds();
    CAIRN_RETURN_IF_ERROR(run.Forward(w.data(), mb, std::move(x), &y, &saved));
    CAIRN_RETURN_IF_ERROR(backend->Synchronize());
    const double t1 = Seconds();
    CAIRN_RETURN_IF_ERROR(run.Backward(w.data(), mb, &saved, std::move(dy), &dx, g.f32()));
    CAIRN_RETURN_IF_ERROR(backend->Synchronize());
    const double t2 = Seconds();
    if (it == 0 || !timed) continue;  // warm-up
    fwd_s->push_back(t1 - t0);
    bwd_s->push_back(t2 - t1);
  }
  return absl::OkStatus();
}

// Median forward and backward time of one layer of `kind` at micro-batch `b`.
absl::Status TimeLayer(const plan::ModelDims& model, plan::LayerKind kind, int b, int seq,
                       int iterations, double* fwd_s, double* bwd_s) {
  plan::PlanSpec plan;
  plan.global_batch = b;
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
  NullBackend null_backend(DType::kFloat32);
  std::unique_ptr<DeviceArena> planning = DeviceArena::ForPlanning();
  std::vector<double> f, bk;
  CAIRN_RETURN_IF_ERROR(RunLayer(model, place, params, b, seq, 0, &null_backend, planning.get(),
                                 false, &f, &bk));
  CpuBackend backend;
  CAIRN_ASSIGN_OR_RETURN(std::unique_ptr<DeviceArena> arena,
                         DeviceArena::Create(&backend, planning->extent_bytes()));
  CAIRN_RETURN_IF_ERROR(
      RunLayer(model, place, params, b, seq, iterations, &backend, arena.get(), true, &f, &bk));
  std::sort(f.begin(), f.end());
  std::sort(bk.begin(), bk.end());
  *fwd_s = f[f.size() / 2];
  *bwd_s = bk[bk.size() / 2];
  return absl::OkStatus();
}

int Main(int argc, char** argv) {
  Args a;
  if (absl::Status s = a.Parse(std::vector<std::string>(argv + 1, argv + argc),
                               {"model", "seq-len", "micro-batches", "iterations", "output",
                                "workers"},
                               {});
      !s.ok()) {
    std::fprintf(stderr, "cairn-profile-layers: %s\n", std::string(s.message()).c_str());
    return 2;
  }
  absl::StatusOr<cairn::v1::ModelSpec> spec = planner::ResolveModel(a.Get("model", "llama-tiny"));
  absl::StatusOr<int> seq = a.GetInt("seq-len", 128), iters = a.GetInt("iterations", 5),
                      workers = a.GetInt("workers", 1);
  absl::StatusOr<std::vector<int>> sizes = a.GetIntList("micro-batches");
  for (const absl::Status& s :
       {spec.status(), seq.status(), iters.status(), sizes.status(), workers.status()}) {
    if (!s.ok()) {
      std::fprintf(stderr, "cairn-profile-layers: %s\n", std::string(s.message()).c_str());
      return 2;
    }
  }
  std::vector<int> bs = sizes->empty() ? std::vector<int>{1, 2, 4, 8} : *sizes;
  if (*seq < 1 || *seq > spec->max_seq_len() || *iters < 1 || *workers < 1) {
    std::fprintf(stderr,
                 "cairn-profile-layers: --seq-len must be in [1, %d], --iterations and --workers "
                 ">= 1\n",
                 spec->max_seq_len());
    return 2;
  }
  const plan::ModelDims model = plan::ModelDimsFromSpec(*spec);
  cairn::v1::ModelProfile profile;
  profile.set_model_name(model.name);
  profile.set_device_model("cpu");
  profile.set_activation_dtype_bytes(4);
  profile.set_source(absl::StrCat("cairn-profile-layers: CPU backend, ", *workers,
                                  " concurrent worker(s), median of ", *iters, " iterations"));
  // Timed in worker processes started the way `cairn-train --nproc N` starts its workers, N of them
  // at once, so the kernels run under the same conditions (the BLAS thread pool a forked worker
  // gets, the cores shared with N - 1 others). Rank 0's timings are kept.
  const std::string tmp = absl::StrCat("/tmp/cairn-profile-", getpid(), ".bin");
  const absl::Status measured = RunLocalWorkers(*workers, [&](int rank) -> absl::Status {
    std::ofstream out(rank == 0 ? tmp : "/dev/null", std::ios::binary);
    for (plan::LayerKind kind :
         {plan::LayerKind::kEmbedding, plan::LayerKind::kBlock, plan::LayerKind::kHead}) {
      for (int b : bs) {
        double times[2] = {0, 0};
        CAIRN_RETURN_IF_ERROR(TimeLayer(model, kind, b, *seq, *iters, &times[0], &times[1]));
        out.write(reinterpret_cast<const char*>(times), sizeof(times));
      }
    }
    return out ? absl::OkStatus() : absl::DataLossError("cannot write " + tmp);
  });
  if (!measured.ok()) {
    std::fprintf(stderr, "cairn-profile-layers: %s\n", std::string(measured.message()).c_str());
    return 1;
  }
  std::ifstream in(tmp, std::ios::binary);
  for (plan::LayerKind kind :
       {plan::LayerKind::kEmbedding, plan::LayerKind::kBlock, plan::LayerKind::kHead}) {
    for (int b : bs) {
      double times[2] = {0, 0};
      in.read(reinterpret_cast<char*>(times), sizeof(times));
      const double f = times[0], bk = times[1];
      cairn::v1::LayerTiming* t = profile.add_timings();
      t->set_kind(plan::ToProto(kind));
      t->set_tp_degree(1);
      t->set_micro_batch_size(b);
      t->set_seq_len(*seq);
      t->set_forward_s(f);
      t->set_backward_s(bk);
      std::printf("%-10s micro-batch %3d: forward %8.3f ms  backward %8.3f ms\n",
                  plan::ToString(kind), b, f * 1e3, bk * 1e3);
    }
  }
  std::remove(tmp.c_str());
  absl::StatusOr<std::string> json = planner::ProtoToJson(profile);
  if (!json.ok()) return 1;
  if (a.Has("output")) {
    std::ofstream(a.Get("output")) << *json << "\n";
    std::printf("profile written to %s\n", a.Get("output").c_str());
  } else {
    std::printf("%s\n", json->c_str());
  }
  return 0;
}

}  // namespace
}  // namespace cairn::runtime

int main(int argc, char** argv) { return cairn::runtime::Main(argc, argv); }
