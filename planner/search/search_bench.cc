// search_bench — search time and peak memory of the strategy search on the cases in
// docs/benchmarks.md. Run: `bazel run -c opt //planner/search:search_bench [-- --threads N]`.
// Prints one line per case; the numbers recorded in docs/benchmarks.md come from this binary.
#include <sys/resource.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <string>
#include <vector>

#include "CLI/CLI.hpp"
#include "absl/strings/str_format.h"
#include "common/cli_app.h"
#include "common/units.h"
#include "planner/catalog/clusters.h"
#include "planner/catalog/galvatron.h"
#include "planner/catalog/models.h"
#include "planner/problem/problem_builder.h"
#include "planner/search/search.h"

namespace {

using namespace cairn;          // NOLINT
using namespace cairn::planner;  // NOLINT

struct Case {
  std::string name;
  std::string model;
  std::string cluster;
  int nodes;
  int batch;
  int seq;
  double memory_gb;     // 0 = device memory
  bool galvatron;       // import Galvatron's profiles from ../shared/reference/galvatron
};

long PeakRssKiB() {
  struct rusage u;
  getrusage(RUSAGE_SELF, &u);
  return u.ru_maxrss;
}

std::string ReferenceDir() {
  for (const char* d : {"../shared/reference/galvatron", "../../shared/reference/galvatron",
                        "/work/shared/reference/galvatron"}) {
    if (FILE* f = std::fopen((std::string(d) + "/overlap_coefficient.json").c_str(), "r")) {
      std::fclose(f);
      return d;
    }
  }
  return "";
}

}  // namespace

int main(int argc, char** argv) {
  int threads = 0;
  std::unique_ptr<CLI::App> app = cairn::MakeApp(
      "search_bench",
      "search time and peak memory of the strategy search on the cases in docs/benchmarks.md");
  app->add_option("--threads", threads, "search threads; 0 = every core")->type_name("N");
  if (std::optional<int> exit = cairn::ParseCommandLine(*app, argc, argv)) return *exit;
  const std::vector<Case> cases = {
      {"a: llama2-7b 1x8 B=64 s=2048 36GB (Galvatron profiles)", "llama2-7b", "a100-80g-sxm", 1,
       64, 2048, 36, true},
      {"a: llama2-7b 1x8 B=64 s=2048 24GB (Galvatron profiles)", "llama2-7b", "a100-80g-sxm", 1,
       64, 2048, 24, true},
      {"b: llama3-70b 128x8 H100 B=2048 s=8192", "llama3-70b", "h100-sxm", 128, 2048, 8192, 0,
       false},
      {"c: llama3-405b 2048x8 H100 B=2048 s=8192", "llama3-405b", "h100-sxm", 2048, 2048, 8192, 0,
       false},
  };
  const std::string ref = ReferenceDir();
  std::printf("%-58s %10s %8s %11s %9s %8s %10s %12s %12s\n", "case", "search_s", "cpu_s",
              "step_s", "MFU", "combos", "pruned", "dp_cells_M", "peak_rss_MiB");
  for (const Case& c : cases) {
    cairn::v1::SearchRequest req;
    auto model = LookupModel(c.model);
    auto hw = LookupHardware(c.cluster);
    if (!model.ok() || !hw.ok()) {
      std::fprintf(stderr, "catalog error\n");
      return 2;
    }
    *req.mutable_model() = *model;
    cairn::v1::HardwareProfile h = *hw;
    if (c.galvatron) {
      if (ref.empty()) {
        std::printf("%-58s skipped: ../shared/reference/galvatron not found\n", c.name.c_str());
        continue;
      }
      auto imported = ImportGalvatronHardware(ref, c.nodes, 8, h);
      if (!imported.ok()) {
        std::fprintf(stderr, "%s\n", std::string(imported.status().message()).c_str());
        return 2;
      }
      h = *imported;
      auto mp = ImportGalvatronModelProfile(ref + "/computation_profiling_bf16_llama2-7b_all.json",
                                            ref + "/memory_profiling_bf16_llama2-7b_all.json",
                                            *model, c.seq);
      if (!mp.ok()) {
        std::fprintf(stderr, "%s\n", std::string(mp.status().message()).c_str());
        return 2;
      }
      *req.mutable_model_profile() = *mp;
    }
    auto cluster = MakeCluster(h, c.nodes, 0);
    if (!cluster.ok()) {
      std::fprintf(stderr, "%s\n", std::string(cluster.status().message()).c_str());
      return 2;
    }
    *req.mutable_cluster() = *cluster;
    req.set_global_batch_size(c.batch);
    req.set_seq_len(c.seq);
    req.set_memory_budget_bytes(static_cast<int64_t>(c.memory_gb * kGiB));
    req.set_threads(threads);
    auto pb = BuildSearchProblem(req);
    if (!pb.ok()) {
      std::fprintf(stderr, "%s\n", std::string(pb.status().message()).c_str());
      return 2;
    }
    SearchOptions opt;
    opt.with_baselines = false;
    const auto t0 = std::chrono::steady_clock::now();
    const std::clock_t c0 = std::clock();
    auto r = Search(*pb, opt);
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    // CPU seconds of all threads: on a shared, loaded machine the wall time measures the load.
    const double cpu_s = static_cast<double>(std::clock() - c0) / CLOCKS_PER_SEC;
    if (!r.ok()) {
      std::fprintf(stderr, "%s\n", std::string(r.status().message()).c_str());
      return 2;
    }
    const bool found = !r->plans.empty();
    std::printf("%-58s %10.3f %8.3f %11.3f %8.1f%% %8lld %10lld %12.1f %12ld\n", c.name.c_str(), s,
                cpu_s,
                found ? r->evaluations[0].step_time_s : 0.0,
                found ? 100 * r->evaluations[0].mfu : 0.0,
                static_cast<long long>(r->stats.combinations),
                static_cast<long long>(r->stats.combinations_pruned), r->stats.dp_cells / 1e6,
                PeakRssKiB() / 1024);
    std::fflush(stdout);
  }
  return 0;
}
