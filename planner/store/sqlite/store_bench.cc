// store_bench: throughput and latency of the SQLite store on this machine (docs/store.md).
//
//   bazel run -c opt //planner/store/sqlite:store_bench -- --dir=/tmp --writes=2000 --reads=20000
//
// Three measurements, each on a fresh database file in --dir (put it on the disk the daemon will
// use: fsync cost is the disk's):
//   1. writes: PutPlan one after another (a SearchResponse of three plans with 34 layer strategies
//      each, ~0.8 KB serialized), with synchronous FULL (the default) and NORMAL: writes/s,
//      p50/p99 latency.
//   2. cache lookups: FindPlanByCacheKey of random stored keys, no writes running.
//   3. cache lookups while another thread writes PutPlan continuously, with the default reader pool
//      (4 connections) and with none (reads queue behind commits on the writer connection).
// Timings are printed, never asserted.
#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "CLI/CLI.hpp"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "common/cli_app.h"
#include "planner/store/sqlite/sqlite_store.h"
#include "planner/store/store.h"

namespace {
// The command line (--help lists every flag with its default).
struct CommandLineFlags {
  std::string dir = "/tmp";
  int writes = 2000;
  int reads = 20000;
};
CommandLineFlags g_flags;

void AddFlags(CLI::App& app) {
  app.add_option("--dir", g_flags.dir, "directory for the benchmark databases");
  app.add_option("--writes", g_flags.writes, "writes per write measurement");
  app.add_option("--reads", g_flags.reads, "lookups per read measurement");
}
}  // namespace

namespace cairn::planner {
namespace {

PlanRecord BenchPlan(int i) {
  PlanRecord r;
  r.cache_key = absl::StrCat("bench-key-", i);
  r.summary.set_model_name("llama2-7b");
  r.summary.set_num_devices(32);
  r.summary.set_step_time_s(1.0 + i * 1e-6);
  for (int p = 0; p < 3; ++p) {
    cairn::v1::Plan* plan = r.result.add_plans();
    plan->set_format_version(1);
    plan->set_model_name("llama2-7b");
    plan->set_num_nodes(4);
    plan->set_devices_per_node(8);
    plan->set_global_batch_size(512);
    plan->set_seq_len(4096);
    for (int layer = 0; layer < 34; ++layer) {
      cairn::v1::LayerStrategy* s = plan->add_layers();
      s->set_index(layer);
      s->set_tp_degree(2);
      s->set_recompute(layer % 2 == 0);
    }
  }
  return r;
}

std::string At(int s) {
  return absl::FormatTime("%Y-%m-%d%ET%H:%M:%SZ", absl::FromUnixSeconds(1795852800 + s),
                          absl::UTCTimeZone());
}

struct Latencies {
  std::vector<double> us;
  void Add(absl::Duration d) { us.push_back(absl::ToDoubleMicroseconds(d)); }
  double Percentile(double p) {
    if (us.empty()) return 0;
    std::sort(us.begin(), us.end());
    return us[std::min(us.size() - 1, static_cast<size_t>(p * us.size()))];
  }
};

std::unique_ptr<SqliteStore> OpenFresh(const std::string& path, const SqliteOptions& options) {
  for (const char* suffix : {"", "-wal", "-shm"}) std::remove((path + suffix).c_str());
  auto store = SqliteStore::Open(path, options);
  if (!store.ok()) {
    std::fprintf(stderr, "store_bench: %s\n", store.status().ToString().c_str());
    std::exit(1);
  }
  return std::move(store).value();
}

void Check(const absl::Status& status) {
  if (!status.ok()) {
    std::fprintf(stderr, "store_bench: %s\n", status.ToString().c_str());
    std::exit(1);
  }
}

void BenchWrites(const std::string& dir, const char* label, SqliteOptions::Synchronous sync,
                 int n) {
  SqliteOptions options;
  options.synchronous = sync;
  std::unique_ptr<SqliteStore> store = OpenFresh(dir + "/store_bench_writes.db", options);
  Latencies lat;
  const absl::Time start = absl::Now();
  for (int i = 0; i < n; ++i) {
    const absl::Time t0 = absl::Now();
    Check(store->PutPlan(BenchPlan(i), At(i)).status());
    lat.Add(absl::Now() - t0);
  }
  const double s = absl::ToDoubleSeconds(absl::Now() - start);
  std::printf("PutPlan, synchronous=%-6s %6d writes  %8.0f writes/s  p50 %7.1f us  p99 %7.1f us\n",
              label, n, n / s, lat.Percentile(0.50), lat.Percentile(0.99));
}

void BenchReads(const std::string& dir, int read_connections, bool concurrent_writer, int stored,
                int n) {
  SqliteOptions options;
  options.read_connections = read_connections;
  std::unique_ptr<SqliteStore> store = OpenFresh(dir + "/store_bench_reads.db", options);
  for (int i = 0; i < stored; ++i) Check(store->PutPlan(BenchPlan(i), At(i)).status());

  std::atomic<bool> stop{false};
  std::atomic<int> background_writes{0};
  std::thread writer;
  if (concurrent_writer) {
    writer = std::thread([&] {
      for (int i = stored; !stop.load(); ++i) {
        Check(store->PutPlan(BenchPlan(i), At(i)).status());
        background_writes.fetch_add(1);
      }
    });
  }
  std::mt19937 rng(42);
  std::uniform_int_distribution<int> key(0, stored - 1);
  Latencies lat;
  const absl::Time start = absl::Now();
  for (int i = 0; i < n; ++i) {
    const std::string k = absl::StrCat("bench-key-", key(rng));
    const absl::Time t0 = absl::Now();
    auto found = store->FindPlanByCacheKey(k);
    lat.Add(absl::Now() - t0);
    Check(found.status());
    if (!found->has_value()) Check(absl::InternalError("cache miss on a stored key"));
  }
  const double s = absl::ToDoubleSeconds(absl::Now() - start);
  stop.store(true);
  if (writer.joinable()) writer.join();
  std::printf(
      "FindPlanByCacheKey, readers=%d, %-21s %6d lookups  %8.0f /s  p50 %6.1f us  "
      "p99 %7.1f us  max %7.1f us%s\n",
      read_connections, concurrent_writer ? "writer running:" : "no writes:", n, n / s,
      lat.Percentile(0.50), lat.Percentile(0.99), lat.Percentile(1.0),
      concurrent_writer ? absl::StrCat(" (", background_writes.load(), " writes meanwhile)").c_str()
                        : "");
}

}  // namespace
}  // namespace cairn::planner

int main(int argc, char** argv) {
  std::unique_ptr<CLI::App> app = cairn::MakeApp(
      "store_bench", "throughput and latency of the SQLite store on this machine (docs/store.md)");
  AddFlags(*app);
  if (std::optional<int> exit = cairn::ParseCommandLine(*app, argc, argv)) return *exit;
  const std::string dir = g_flags.dir;
  const int writes = g_flags.writes;
  const int reads = g_flags.reads;
  using cairn::planner::SqliteOptions;
  std::printf("PutPlan payload: %zu bytes serialized\n",
              cairn::planner::BenchPlan(0).result.ByteSizeLong());
  cairn::planner::BenchWrites(dir, "FULL", SqliteOptions::Synchronous::kFull, writes);
  cairn::planner::BenchWrites(dir, "NORMAL", SqliteOptions::Synchronous::kNormal, writes);
  cairn::planner::BenchReads(dir, 4, false, 1000, reads);
  cairn::planner::BenchReads(dir, 4, true, 1000, reads);
  cairn::planner::BenchReads(dir, 0, true, 1000, reads);
  for (const char* name : {"store_bench_writes.db", "store_bench_reads.db"}) {
    for (const char* suffix : {"", "-wal", "-shm"}) {
      std::remove((dir + "/" + name + suffix).c_str());
    }
  }
  return 0;
}
