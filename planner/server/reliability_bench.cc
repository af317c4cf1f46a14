// reliability_bench — how fast a search stops once its caller leaves or its time is up (the
// numbers in docs/reliability.md). Not a test: timings are recorded, never asserted.
//
//   bazel run -c opt //planner/server:reliability_bench [-- --case N --repeat K --after S]
//
// For each case a PlannerLogic (in-memory SQLite store, one search worker) runs the request:
//   cancel   the caller cancels once the search has run `--after` seconds; printed: wall time from
//            Cancel() to the answer, and the process CPU time spent in between;
//   deadline --max-search-seconds 2; printed: wall time from the request to DEADLINE_EXCEEDED.
#include <sys/resource.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>

#include "CLI/CLI.hpp"
#include "absl/strings/str_format.h"
#include "absl/synchronization/notification.h"
#include "common/cli_app.h"
#include "planner/catalog/models.h"
#include "planner/server/clock.h"
#include "planner/server/metrics.h"
#include "planner/server/planner_logic.h"
#include "planner/server/timer_thread.h"
#include "planner/store/sqlite/sqlite_store.h"

namespace {

using namespace cairn::planner;  // NOLINT
using Steady = std::chrono::steady_clock;

double CpuSeconds() {
  struct rusage u;
  getrusage(RUSAGE_SELF, &u);
  return u.ru_utime.tv_sec + u.ru_stime.tv_sec + 1e-6 * (u.ru_utime.tv_usec + u.ru_stime.tv_usec);
}

double Since(Steady::time_point t) { return std::chrono::duration<double>(Steady::now() - t).count(); }

cairn::v1::PlanRequest Request(const std::string& model, int nodes, int min_batch, int max_batch,
                               int step, int seq) {
  cairn::v1::PlanRequest r;
  r.set_model_name(model);
  r.set_cluster_name("h100-sxm");
  r.set_num_nodes(nodes);
  r.set_no_cache(true);
  r.mutable_search()->mutable_batch_range()->set_min(min_batch);
  r.mutable_search()->mutable_batch_range()->set_max(max_batch);
  r.mutable_search()->mutable_batch_range()->set_step(step);
  r.mutable_search()->set_seq_len(seq);
  return r;
}

// The most layers a request may have, on a model otherwise like llama2-7b.
cairn::v1::PlanRequest DeepRequest() {
  cairn::v1::PlanRequest r;
  *r.mutable_search()->mutable_model() = cairn::planner::LookupModel("llama2-7b").value();
  r.mutable_search()->mutable_model()->set_num_layers(1024);
  r.set_cluster_name("h100-sxm");
  r.set_num_nodes(16);
  r.set_no_cache(true);
  r.mutable_search()->set_global_batch_size(512);
  r.mutable_search()->set_seq_len(4096);
  return r;
}

struct Case {
  const char* name;
  cairn::v1::PlanRequest request;
};

}  // namespace

int main(int argc, char** argv) {
  double after_s = 2.0;
  int only = -1, repeat = 1;
  std::unique_ptr<CLI::App> app = cairn::MakeApp(
      "reliability_bench", "how fast a search stops once its caller leaves or its time is up");
  app->add_option("--after", after_s,
                  "cancel case: seconds the search runs before the caller cancels")
      ->type_name("S");
  app->add_option("--case", only, "run only case I (from 0); -1: every case")->type_name("I");
  app->add_option("--repeat", repeat, "runs of each case")->type_name("N");
  if (std::optional<int> exit = cairn::ParseCommandLine(*app, argc, argv)) return *exit;
  std::unique_ptr<SqliteStore> store = SqliteStore::Open(":memory:").value();
  TimerThread timers;
  Metrics metrics;
  const Case cases[] = {
      {"llama3-405b, 128 x 8 H100, batch 512..4096 step 512, seq 8192",
       Request("llama3-405b", 128, 512, 4096, 512, 8192)},
      {"llama2-70b, 8 x 8 H100, batch 128..1024 step 128, seq 4096",
       Request("llama2-70b", 8, 128, 1024, 128, 4096)},
      {"gpt3-175b, 64 x 8 H100, batch 256..2048 step 256, seq 2048",
       Request("gpt3-175b", 64, 256, 2048, 256, 2048)},
      {"llama2-7b deepened to 1024 layers (the limit), 16 x 8 H100, batch 512",
       DeepRequest()},
  };
  for (int ci = 0; ci < static_cast<int>(sizeof(cases) / sizeof(cases[0])); ++ci) {
   if (only >= 0 && ci != only) continue;
   const Case& c = cases[ci];
   for (int rep = 0; rep < repeat; ++rep) {
    {
      PlannerOptions o;
      o.search_workers = 1;
      PlannerLogic planner(store.get(), &timers, &metrics, &RealClock::Get(), o);
      absl::Notification done;
      absl::Status status;
      Steady::time_point answered;
      const Steady::time_point start = Steady::now();
      std::shared_ptr<SearchTicket> t = planner.Plan(c.request, nullptr, [&](auto r) {
        answered = Steady::now();
        status = r.status();
        done.Notify();
      });
      const bool early = done.WaitForNotificationWithTimeout(absl::Seconds(after_s));
      if (early) {
        std::printf("cancel   %-62s finished in %.2f s before the cancel (%s)\n", c.name,
                    Since(start), status.ToString().substr(0, 60).c_str());
      } else {
        const double cpu0 = CpuSeconds();
        const Steady::time_point cancel = Steady::now();
        t->Cancel();
        done.WaitForNotification();
        std::printf("cancel   %-62s answer %.1f ms after Cancel(), %.1f ms of CPU (%s)\n", c.name,
                    1e3 * std::chrono::duration<double>(answered - cancel).count(),
                    1e3 * (CpuSeconds() - cpu0), absl::StatusCodeToString(status.code()).c_str());
      }
      std::fflush(stdout);
    }
    {
      PlannerOptions o;
      o.search_workers = 1;
      o.max_search_time = absl::Seconds(2);
      PlannerLogic planner(store.get(), &timers, &metrics, &RealClock::Get(), o);
      const Steady::time_point start = Steady::now();
      absl::StatusOr<cairn::v1::PlanResponse> r = planner.PlanAndWait(c.request);
      std::printf("deadline %-62s answer after %.3f s with a 2 s limit (%s)\n", c.name,
                  Since(start), absl::StatusCodeToString(r.status().code()).c_str());
      std::fflush(stdout);
    }
   }
  }
  return 0;
}
