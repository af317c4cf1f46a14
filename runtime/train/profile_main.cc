// cairn-profile-layers — measures the runtime's own per-layer forward and backward times on this
// machine (CPU backend, one process) and writes them as a cairn.v1.ModelProfile, which the planner
// then uses instead of its analytic compute estimate (`cairn plan --model-profile`, `cairn-train
// --model-profile`). Tensor parallel degrees > 1 are derived by the planner (work / t).
//
//   cairn-profile-layers --model llama-tiny --seq-len 128 --micro-batches 1,2,4,8 --output prof.json
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <string>
#include <vector>

#include "CLI/CLI.hpp"
#include "absl/strings/str_cat.h"
#include "common/cli_app.h"
#include "common/plan/plan_proto.h"
#include "common/status_macros.h"
#include "planner/catalog/json_io.h"
#include "planner/catalog/models.h"
#include "runtime/compute/cpu/cpu_backend.h"
#include "runtime/train/launcher.h"
#include "runtime/train/layer_timing.h"

namespace cairn::runtime {
namespace {

int Main(int argc, char** argv) {
  std::unique_ptr<CLI::App> app = MakeApp(
      "cairn-profile-layers",
      "measures the runtime's own per-layer forward and backward times on this machine (CPU "
      "backend) and writes them as a cairn.v1.ModelProfile for `cairn plan --model-profile`");
  Flags a(app.get());
  a.Value("model", "NAME|FILE.json", "catalog model or ModelSpec JSON whose layers are timed",
          "llama-tiny")
      .Value("seq-len", "S", "tokens per sample", "128")
      .Value("micro-batches", "1,2,4,8", "micro-batch sizes to time", "1,2,4,8")
      .Value("iterations", "N", "timed iterations per layer (the median is kept)", "5")
      .Value("workers", "N",
             "worker processes timing at once, as `cairn-train --nproc N` runs them", "1")
      .Value("output", "FILE", "where the profile goes (default: stdout)");
  if (std::optional<int> exit = ParseCommandLine(*app, argc, argv)) return *exit;
  absl::StatusOr<cairn::v1::ModelSpec> spec = planner::ResolveModel(a.Get("model"));
  absl::StatusOr<int> seq = a.GetInt("seq-len"), iters = a.GetInt("iterations"),
                      workers = a.GetInt("workers");
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
        CpuBackend backend;
        CAIRN_ASSIGN_OR_RETURN(LayerTime t, TimeLayer(model, kind, b, *seq, *iters, &backend));
        double times[2] = {t.forward_s, t.backward_s};
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
