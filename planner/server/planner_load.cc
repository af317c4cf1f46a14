// planner_load — a load generator for cairn-planner (benchmarks, not tests): sends Plan requests
// at a fixed rate (open loop: a slow answer does not delay the next request, so queueing shows in
// the latencies) and prints the achieved rate and latency percentiles.
//
//   cairn-planner --db /tmp/bench.db --metrics-address "" &
//   bazel run -c opt //planner/server:planner_load -- --target 127.0.0.1:7070 --mode cached \
//       --rate 1000 --seconds 10
//
// Modes: cached (one request, answered from the plan cache after the first search: the daemon's
// fast path, a database read and a ~20 KB answer), fresh (no_cache requests for a small model, so
// every one runs a search on the worker pool). Latency is measured from the time a request was
// due, not sent, so a stalled sender cannot hide delays. Results: docs/benchmarks.md.
#include <algorithm>
#include <atomic>
#include <cstdio>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "CLI/CLI.hpp"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "common/cli_app.h"
#include "grpcpp/grpcpp.h"
#include "proto/cairn/v1/service.grpc.pb.h"

namespace {
// The command line (--help lists every flag with its default).
struct CommandLineFlags {
  std::string target = "127.0.0.1:7070";
  std::string mode = "cached";
  double rate = 1000;
  double seconds = 10;
  int connections = 4;
  std::string token = "";
};
CommandLineFlags g_flags;

void AddFlags(CLI::App& app) {
  app.add_option("--target", g_flags.target, "cairn-planner address");
  app.add_option("--mode", g_flags.mode, "cached or fresh");
  app.add_option("--rate", g_flags.rate, "requests per second");
  app.add_option("--seconds", g_flags.seconds, "how long to send");
  app.add_option("--connections", g_flags.connections,
                 "gRPC channels (connections) to spread requests over");
  app.add_option("--token", g_flags.token, "bearer token, if the daemon has --token-file");
}
}  // namespace

namespace {

cairn::v1::PlanRequest Request(const std::string& mode) {
  cairn::v1::PlanRequest r;
  if (mode == "fresh") {
    r.set_model_name("llama-tiny");
    r.set_cluster_name("cpu");
    r.mutable_search()->set_global_batch_size(16);
    r.mutable_search()->set_seq_len(256);
    r.mutable_search()->set_threads(1);
    r.set_no_cache(true);
  } else {
    r.set_model_name("llama2-7b");
    r.set_cluster_name("h100-sxm");
    r.set_num_nodes(4);
    r.mutable_search()->set_global_batch_size(512);
    r.mutable_search()->set_seq_len(4096);
  }
  return r;
}

struct Call {
  grpc::ClientContext ctx;
  cairn::v1::PlanResponse response;
  absl::Time due;
};

double Percentile(std::vector<double>& sorted, double p) {
  if (sorted.empty()) return 0;
  const size_t i = std::min(sorted.size() - 1, static_cast<size_t>(p * sorted.size()));
  return sorted[i];
}

}  // namespace

int main(int argc, char** argv) {
  std::unique_ptr<CLI::App> app = cairn::MakeApp(
      "planner_load",
      "a load generator for cairn-planner (benchmarks, not tests): sends Plan requests at a fixed "
      "rate and prints the achieved rate and latency percentiles");
  AddFlags(*app);
  if (std::optional<int> exit = cairn::ParseCommandLine(*app, argc, argv)) return *exit;
  const std::string mode = g_flags.mode;
  if (mode != "cached" && mode != "fresh") {
    std::fprintf(stderr, "planner_load: --mode must be cached or fresh\n");
    return 2;
  }
  const double rate = g_flags.rate;
  const std::string token = g_flags.token;
  std::vector<std::unique_ptr<cairn::v1::Planner::Stub>> stubs;
  for (int i = 0; i < std::max(1, g_flags.connections); ++i) {
    grpc::ChannelArguments args;
    args.SetInt("cairn.load.channel", i);  // distinct arguments: a connection of its own
    stubs.push_back(cairn::v1::Planner::NewStub(
        grpc::CreateCustomChannel(g_flags.target, grpc::InsecureChannelCredentials(), args)));
  }
  const cairn::v1::PlanRequest request = Request(mode);
  {
    // Warm-up: connect every channel; in cached mode this also fills the cache.
    for (auto& stub : stubs) {
      grpc::ClientContext ctx;
      if (!token.empty()) ctx.AddMetadata("authorization", "Bearer " + token);
      ctx.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(120)));
      cairn::v1::PlanResponse r;
      grpc::Status s = stub->Plan(&ctx, request, &r);
      if (!s.ok()) {
        std::fprintf(stderr, "planner_load: warm-up Plan failed: %s\n", s.error_message().c_str());
        return 1;
      }
    }
  }

  absl::Mutex mu;
  std::vector<double> latencies_ms;
  std::map<std::string, int> errors;
  std::atomic<int> outstanding{0};
  absl::Notification all_done;
  std::atomic<bool> sending{true};
  const int total = static_cast<int>(rate * g_flags.seconds);
  latencies_ms.reserve(total);
  const absl::Duration interval = absl::Seconds(1.0 / rate);
  const absl::Time start = absl::Now();
  for (int i = 0; i < total; ++i) {
    const absl::Time due = start + i * interval;
    const absl::Time now = absl::Now();
    if (due > now) absl::SleepFor(due - now);
    auto* call = new Call;
    call->due = due;
    if (!token.empty()) call->ctx.AddMetadata("authorization", "Bearer " + token);
    call->ctx.set_deadline(absl::ToChronoTime(due + absl::Seconds(60)));
    ++outstanding;
    stubs[i % stubs.size()]->async()->Plan(
        &call->ctx, &request, &call->response, [&, call](grpc::Status s) {
          const double ms = absl::ToDoubleMilliseconds(absl::Now() - call->due);
          {
            absl::MutexLock lock(&mu);
            if (s.ok()) {
              latencies_ms.push_back(ms);
            } else {
              ++errors[absl::StrCat(s.error_code(), " ", s.error_message().substr(0, 60))];
            }
          }
          delete call;
          if (--outstanding == 0 && !sending.load()) all_done.Notify();
        });
  }
  const double send_s = absl::ToDoubleSeconds(absl::Now() - start);
  sending = false;
  if (outstanding.load() > 0) all_done.WaitForNotificationWithTimeout(absl::Seconds(120));
  const double total_s = absl::ToDoubleSeconds(absl::Now() - start);

  absl::MutexLock lock(&mu);
  std::sort(latencies_ms.begin(), latencies_ms.end());
  std::printf(
      "mode=%s target_rate=%.0f/s sent=%d in %.2f s ok=%zu (%.0f/s over %.2f s) errors=%d\n"
      "latency ms: p50 %.3f  p90 %.3f  p99 %.3f  p99.9 %.3f  max %.3f\n",
      mode.c_str(), rate, total, send_s, latencies_ms.size(), latencies_ms.size() / total_s,
      total_s, total - static_cast<int>(latencies_ms.size()), Percentile(latencies_ms, 0.5),
      Percentile(latencies_ms, 0.9), Percentile(latencies_ms, 0.99),
      Percentile(latencies_ms, 0.999), latencies_ms.empty() ? 0.0 : latencies_ms.back());
  for (const auto& [what, n] : errors) std::printf("  error x%d: %s\n", n, what.c_str());
  return 0;
}
