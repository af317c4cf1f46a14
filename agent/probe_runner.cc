#include "agent/probe_runner.h"

#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "agent/process.h"
#include "common/logging.h"
#include "common/status_macros.h"
#include "google/protobuf/util/json_util.h"

namespace cairn::agent {

std::string FindBinary(const std::string& name) {
  char self[4096] = {0};
  const ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
  if (n > 0) {
    const std::filesystem::path sibling =
        std::filesystem::path(std::string(self, n)).parent_path() / name;
    if (access(sibling.c_str(), X_OK) == 0) return sibling.string();
  }
  if (const char* path = std::getenv("PATH")) {
    for (absl::string_view dir : absl::StrSplit(path, ':', absl::SkipEmpty())) {
      const std::string candidate = absl::StrCat(dir, "/", name);
      if (access(candidate.c_str(), X_OK) == 0) return candidate;
    }
  }
  return name;
}

ProbeRun ProbeRun::Local(const std::string& probe_id, int devices) {
  ProbeRun r;
  r.probe_id = probe_id;
  r.world_size = std::max(1, devices);
  for (int i = 0; i < r.world_size; ++i) r.ranks.push_back(i);
  r.node_of_rank.assign(r.world_size, 0);
  return r;
}

ProbeRun ProbeRun::FromRequest(const cairn::v1::ProbeRequest& req, int devices) {
  ProbeRun r = req.ranks().empty() ? Local(req.probe_id(), devices) : ProbeRun{};
  if (!req.ranks().empty()) {
    r.probe_id = req.probe_id();
    r.ranks.assign(req.ranks().begin(), req.ranks().end());
    r.world_size = req.world_size();
    r.node_of_rank.assign(req.node_of_rank().begin(), req.node_of_rank().end());
    r.coordinated = true;
  }
  r.suites.assign(req.suites().begin(), req.suites().end());
  r.models.assign(req.models().begin(), req.models().end());
  r.quick = req.quick();
  return r;
}

ProbeRunner::ProbeRunner(const AgentOptions& options, const NodeFacts& facts,
                         std::string advertise_address)
    : options_(options), facts_(facts), advertise_address_(std::move(advertise_address)) {}

NodeDescription ProbeRunner::Describe() const {
  NodeDescription d;
  d.node_name = facts_.hostname;
  d.fingerprint = facts_.fingerprint;
  const bool gpu = options_.device_kind == "cuda";
  d.profile_name = absl::StrCat(gpu ? facts_.node.device_model() : "cpu", " x",
                                facts_.node.device_count(), " (measured)");
  d.device_name = gpu ? facts_.node.device_model() : "cpu worker (fp32)";
  d.devices_per_node = facts_.node.device_count();
  d.device_memory_bytes = facts_.node.device_memory_bytes();
  d.reserved_bytes = gpu ? int64_t{3} << 29 : int64_t{128} << 20;  // catalog: 1.5 GiB / 128 MiB
  d.peak_flops_per_s =
      options_.peak_flops_per_s > 0 ? options_.peak_flops_per_s : facts_.peak_flops_per_s;
  d.activation_dtype_bytes = gpu ? 2 : 4;
  d.measured_at = absl::FormatTime(absl::RFC3339_sec, absl::Now(), absl::UTCTimeZone());
  return d;
}

absl::StatusOr<std::vector<ProbeReport>> ProbeRunner::Run(const ProbeRun& run,
                                                          const std::function<bool()>& cancelled) {
  const std::string dir = absl::StrCat(options_.work_dir, "/probes/", run.probe_id);
  std::error_code ec;
  std::filesystem::remove_all(dir, ec);
  std::filesystem::create_directories(dir + "/store", ec);
  if (ec) return absl::UnavailableError(absl::StrCat("cannot create ", dir, ": ", ec.message()));
  const std::string binary =
      options_.probe_binary.empty()
          ? FindBinary(options_.device_kind == "cuda" ? "cairn-probe-cuda" : "cairn-probe")
          : options_.probe_binary;
  const bool gpu = options_.device_kind == "cuda";
  const std::vector<std::string> models = run.models.empty() ? options_.probe_models : run.models;
  std::vector<std::unique_ptr<Process>> procs;
  std::vector<std::string> outputs, logs;
  for (size_t i = 0; i < run.ranks.size(); ++i) {
    const int rank = run.ranks[i];
    SpawnOptions s;
    s.argv = {binary,
              "--backend", gpu ? "cuda" : "cpu",
              "--rank", absl::StrCat(rank),
              "--world-size", absl::StrCat(run.world_size),
              "--local-rank", absl::StrCat(i),
              "--nodes", absl::StrJoin(run.node_of_rank, ","),
              "--node", absl::StrCat(run.node_of_rank.empty() ? 0 : run.node_of_rank[rank]),
              "--host-address", advertise_address_,
              "--models", absl::StrJoin(models, ","),
              "--layer-seq-lens", absl::StrJoin(options_.layer_seq_lens, ","),
              "--layer-micro-batches", absl::StrJoin(options_.layer_micro_batches, ","),
              "--budget", run.quick ? "quick" : options_.probe_budget,
              "--timeout-s", absl::StrCat(absl::ToDoubleSeconds(options_.probe_timeout)),
              "--output", absl::StrCat(dir, "/report-", rank, ".json")};
    if (gpu && !options_.gpus.empty() && i < options_.gpus.size()) {
      s.argv.insert(s.argv.end(), {"--device", absl::StrCat(options_.gpus[i])});
    }
    if (!run.suites.empty()) s.argv.insert(s.argv.end(), {"--suites", absl::StrJoin(run.suites, ",")});
    if (options_.probe_max_bytes > 0) {
      s.argv.insert(s.argv.end(), {"--max-bytes", absl::StrCat(options_.probe_max_bytes)});
    }
    if (options_.probe_time_limit_s > 0) {
      s.argv.insert(s.argv.end(),
                    {"--time-limit-s", absl::StrCat(options_.probe_time_limit_s)});
    }
    if (run.coordinated) {
      s.env = {{"CAIRN_RDZV_PLANNER", options_.planner.address},
               {"CAIRN_RDZV_JOB", run.probe_id},
               {"CAIRN_RDZV_PREFIX", ""},
               {"CAIRN_RDZV_TOKEN_FILE", options_.planner.token_file},
               {"CAIRN_RDZV_TLS_CA", options_.planner.tls_ca_file},
               {"CAIRN_RDZV_TLS_CERT", options_.planner.tls_cert_file},
               {"CAIRN_RDZV_TLS_KEY", options_.planner.tls_key_file}};
    } else {
      s.argv.insert(s.argv.end(), {"--store-dir", dir + "/store"});
    }
    if (!gpu) {
      const int threads = options_.threads_per_worker > 0
                              ? options_.threads_per_worker
                              : std::max(1, facts_.node.cpu_cores() /
                                                std::max(1, static_cast<int>(run.ranks.size())));
      s.env["OPENBLAS_NUM_THREADS"] = absl::StrCat(threads);
    }
    s.log_path = absl::StrCat(dir, "/rank-", rank, ".log");
    logs.push_back(s.log_path);
    outputs.push_back(absl::StrCat(dir, "/report-", rank, ".json"));
    absl::StatusOr<std::unique_ptr<Process>> p = Process::Spawn(s);
    if (!p.ok()) {
      for (auto& q : procs) q->Terminate(absl::ZeroDuration());
      return p.status();
    }
    procs.push_back(*std::move(p));
  }
  CAIRN_LOG(INFO) << "probe " << run.probe_id << ": " << procs.size() << " rank(s) of "
                  << run.world_size << " started (" << binary << ")";
  const absl::Time deadline = absl::Now() + options_.probe_timeout;
  absl::Status failure;
  while (true) {
    bool all_done = true;
    for (size_t i = 0; i < procs.size() && failure.ok(); ++i) {
      std::optional<ExitStatus> s = procs[i]->Poll();
      if (!s.has_value()) {
        all_done = false;
        continue;
      }
      if (!s->ok()) {
        failure = absl::AbortedError(absl::StrCat("probe rank ", run.ranks[i], " ", s->ToString(),
                                                  ": ", TailOfFile(logs[i], 600)));
      }
    }
    if (!failure.ok() || all_done) break;
    if (cancelled && cancelled()) {
      failure = absl::CancelledError("probe stopped: the agent is shutting down");
      break;
    }
    if (absl::Now() > deadline) {
      failure = absl::DeadlineExceededError(
          absl::StrCat("probe ", run.probe_id, " ran longer than ",
                       absl::FormatDuration(options_.probe_timeout)));
      break;
    }
    absl::SleepFor(absl::Milliseconds(50));
  }
  if (!failure.ok()) {
    for (auto& p : procs) p->Terminate(absl::Seconds(2));
    return failure;
  }
  std::vector<ProbeReport> reports;
  for (const std::string& path : outputs) {
    std::ifstream in(path);
    std::stringstream text;
    text << in.rdbuf();
    ProbeReport r;
    if (!in || !google::protobuf::util::JsonStringToMessage(text.str(), &r).ok()) {
      return absl::DataLossError(absl::StrCat("probe report ", path, " is missing or unreadable"));
    }
    for (const std::string& e : r.errors()) {
      CAIRN_LOG(WARNING) << "probe " << run.probe_id << " rank " << r.rank() << ": " << e;
    }
    reports.push_back(std::move(r));
  }
  std::filesystem::remove_all(dir + "/store", ec);
  return reports;
}

}  // namespace cairn::agent
