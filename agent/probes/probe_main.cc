// cairn-probe — one rank of a probe run: measures this device (compute, layers) and, with other
// ranks, the links between them (collectives, overlap), and writes a ProbeReport as JSON. cairn-agent
// starts one per device (or CPU slot) and builds the node's profiles from their reports
// (profile_builder.h); operators run it by hand to look at a machine.
//
//   # 2 CPU ranks on this host, meeting in a directory:
//   cairn-probe --rank 0 --world-size 2 --store-dir /tmp/p --output r0.json &
//   cairn-probe --rank 1 --world-size 2 --store-dir /tmp/p --output r1.json
//   # one GPU (the lead's GPU run, tools/gpu/agent_probe.sh):
//   cairn-probe-cuda --backend cuda --models llama2-7b --output gpu.json
//
// Ranks meet through --store-dir (a FileStore) or, when CAIRN_RDZV_PLANNER is set, through the
// planner's rendezvous (runtime/comm/planner_store.h; cross-node probes the planner coordinates).
// --nodes gives the node index of every rank (placement: which groups span nodes).
// Exit status: 0 report written (failed cases are recorded in it), 1 the probe could not run,
// 2 bad flags.
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <set>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "agent/probes/comm_probes.h"
#include "agent/probes/compute_probes.h"
#include "agent/probes/layer_probe.h"
#include "agent/probes/overlap_probe.h"
#include "agent/probes/probe_harness.h"
#include "agent/util/flags.h"
#include "common/plan/plan_proto.h"
#include "common/status_macros.h"
#include "google/protobuf/util/json_util.h"
#include "planner/catalog/models.h"
#include "runtime/comm/planner_store.h"
#include "runtime/train/backends.h"

ABSL_FLAG(std::string, backend, "cpu", "cpu or cuda");
ABSL_FLAG(int, device, -1, "GPU of this rank (cuda); -1 = the local rank");
ABSL_FLAG(int, rank, 0, "this rank in the probe");
ABSL_FLAG(int, world_size, 1, "ranks of the probe");
ABSL_FLAG(int, local_rank, 0, "rank among this host's ranks");
ABSL_FLAG(std::string, nodes, "", "node index of every rank, comma-separated (default all 0)");
ABSL_FLAG(int, node, 0, "this rank's node index (for the report)");
ABSL_FLAG(std::string, store_dir, "", "rendezvous directory (else the planner, from CAIRN_RDZV_*)");
ABSL_FLAG(std::string, host_address, "127.0.0.1", "address of this host the other ranks reach");
ABSL_FLAG(std::string, suites, "compute,comm,overlap,layers",
          "comma-separated: compute (gemm, attention, memory, launch), comm, overlap, layers");
ABSL_FLAG(std::string, models, "llama-tiny",
          "catalog models (or ModelSpec JSON files) whose GEMM shapes and layers are probed");
ABSL_FLAG(std::string, tp_degrees, "", "tensor-parallel degrees of the GEMM shapes (default per backend)");
ABSL_FLAG(std::string, micro_batches, "", "micro-batches of the GEMM shapes (default per backend)");
ABSL_FLAG(int, seq_len, 0, "tokens per sample of the GEMM shapes (default per backend)");
ABSL_FLAG(std::string, layer_seq_lens, "128", "sequence lengths of the layer probe");
ABSL_FLAG(std::string, layer_micro_batches, "1,2,4,8,16", "micro-batches of the layer probe");
ABSL_FLAG(double, max_bytes, 0, "largest collective buffer (default: 64 MiB cpu, 1 GiB cuda)");
ABSL_FLAG(double, min_bytes, 1024, "smallest collective buffer");
ABSL_FLAG(double, size_factor, 4, "ratio between successive collective sizes");
ABSL_FLAG(std::string, budget, "full", "full or quick (CI: seconds in all)");
ABSL_FLAG(double, timeout_s, 600, "rendezvous and per-operation timeout of the communicators");
ABSL_FLAG(std::string, output, "", "where the JSON report goes (default stdout)");

namespace cairn::agent {
namespace {

using runtime::DeviceKind;

absl::StatusOr<std::vector<int>> IntList(const std::string& text) {
  std::vector<int> out;
  for (absl::string_view p : absl::StrSplit(text, ',', absl::SkipEmpty())) {
    int v = 0;
    if (!absl::SimpleAtoi(p, &v)) {
      return absl::InvalidArgumentError(absl::StrCat("'", text, "' is not a list of integers"));
    }
    out.push_back(v);
  }
  return out;
}

std::string Rfc3339Now() { return absl::FormatTime(absl::RFC3339_sec, absl::Now(), absl::UTCTimeZone()); }

absl::Status WriteReport(const ProbeReport& report, const std::string& path) {
  std::string json;
  google::protobuf::util::JsonPrintOptions opt;
  opt.add_whitespace = true;
  opt.preserve_proto_field_names = true;
  if (!google::protobuf::util::MessageToJsonString(report, &json, opt).ok()) {
    return absl::InternalError("cannot print the report as JSON");
  }
  if (path.empty()) {
    std::printf("%s\n", json.c_str());
    return absl::OkStatus();
  }
  const std::string tmp = absl::StrCat(path, ".tmp.", getpid());
  {
    std::ofstream out(tmp);
    out << json << "\n";
    if (!out) return absl::UnavailableError(absl::StrCat("cannot write ", tmp));
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    return absl::UnavailableError(absl::StrCat("cannot rename ", tmp, " to ", path));
  }
  return absl::OkStatus();
}

absl::Status Run() {
  CAIRN_ASSIGN_OR_RETURN(const DeviceKind kind,
                         runtime::DeviceKindFromName(absl::GetFlag(FLAGS_backend)));
  const int rank = absl::GetFlag(FLAGS_rank), world_size = absl::GetFlag(FLAGS_world_size);
  const int local_rank = absl::GetFlag(FLAGS_local_rank);
  if (world_size < 1 || rank < 0 || rank >= world_size) {
    return absl::InvalidArgumentError(absl::StrCat("--rank ", rank, " is outside --world-size ",
                                                   world_size));
  }
  std::vector<int> nodes(world_size, 0);
  if (!absl::GetFlag(FLAGS_nodes).empty()) {
    CAIRN_ASSIGN_OR_RETURN(nodes, IntList(absl::GetFlag(FLAGS_nodes)));
    if (static_cast<int>(nodes.size()) != world_size) {
      return absl::InvalidArgumentError("--nodes needs one entry per rank");
    }
  }
  std::vector<plan::ModelDims> models;
  for (absl::string_view name : absl::StrSplit(absl::GetFlag(FLAGS_models), ',', absl::SkipEmpty())) {
    CAIRN_ASSIGN_OR_RETURN(cairn::v1::ModelSpec spec, planner::ResolveModel(std::string(name)));
    models.push_back(plan::ModelDimsFromSpec(spec));
  }
  std::set<std::string> suites;
  for (absl::string_view s : absl::StrSplit(absl::GetFlag(FLAGS_suites), ',', absl::SkipEmpty())) {
    if (s != "compute" && s != "comm" && s != "overlap" && s != "layers") {
      return absl::InvalidArgumentError(absl::StrCat("unknown suite '", s, "'"));
    }
    suites.insert(std::string(s));
  }
  const bool quick = absl::GetFlag(FLAGS_budget) == "quick";
  if (!quick && absl::GetFlag(FLAGS_budget) != "full") {
    return absl::InvalidArgumentError("--budget must be full or quick");
  }
  const ProbeBudget budget = quick ? ProbeBudget::Quick() : ProbeBudget::Full();

  const int device = absl::GetFlag(FLAGS_device) >= 0 ? absl::GetFlag(FLAGS_device) : local_rank;
  CAIRN_ASSIGN_OR_RETURN(std::unique_ptr<runtime::ComputeBackend> backend,
                         runtime::MakeComputeBackend(kind, device));
  ProbeReport report;
  report.set_version(kProbeVersion);
  report.set_backend(runtime::ToString(kind));
  report.set_device_name(backend->name());
  report.set_rank(rank);
  report.set_world_size(world_size);
  report.set_local_rank(local_rank);
  report.set_node(absl::GetFlag(FLAGS_node));
  report.set_started_at(Rfc3339Now());
  const auto start = std::chrono::steady_clock::now();

  // Communicators: a host one for agreement and timing (Gloo), and the measured one (the same on
  // CPU; NCCL on GPU).
  std::unique_ptr<runtime::Communicator> control, world_owned;
  runtime::Communicator* world = nullptr;
  if (world_size > 1) {
    std::shared_ptr<runtime::Store> store;
    if (!absl::GetFlag(FLAGS_store_dir).empty()) {
      CAIRN_ASSIGN_OR_RETURN(store, runtime::OpenDirectoryStore(absl::GetFlag(FLAGS_store_dir)));
    } else {
      CAIRN_ASSIGN_OR_RETURN(std::unique_ptr<runtime::PlannerStore> p,
                             runtime::PlannerStore::FromEnvironment());
      store = std::move(p);
    }
    runtime::WorldOptions opt;
    opt.hostname = absl::GetFlag(FLAGS_host_address);
    opt.timeout = opt.rendezvous_timeout = absl::Seconds(absl::GetFlag(FLAGS_timeout_s));
    opt.name = "probe-control";
    CAIRN_ASSIGN_OR_RETURN(control, runtime::MakeWorldCommunicator(DeviceKind::kCpu, rank,
                                                                    world_size, store, nullptr, opt));
    world = control.get();
    if (kind != DeviceKind::kCpu) {
      opt.name = "probe-world";
      opt.device = device;
      CAIRN_ASSIGN_OR_RETURN(world_owned, runtime::MakeWorldCommunicator(
                                              kind, rank, world_size, store, backend.get(), opt));
      world = world_owned.get();
    }
  }
  auto barrier = [&]() { return control ? control->Barrier() : absl::OkStatus(); };
  auto suite = [&](const std::string& name, const std::function<absl::Status()>& fn) -> absl::Status {
    if (!suites.count(name)) return absl::OkStatus();
    CAIRN_RETURN_IF_ERROR(barrier());  // compute suites start together on every rank
    // Progress on stderr (the agent keeps it as the rank's log): which suite runs, and how long
    // each took, so a probe that outlasts its budget shows where.
    std::fprintf(stderr, "cairn-probe: rank %d: %s suite started\n", rank, name.c_str());
    const auto suite_start = std::chrono::steady_clock::now();
    const absl::Status s = fn();
    std::fprintf(stderr, "cairn-probe: rank %d: %s suite %s after %.1f s\n", rank, name.c_str(),
                 s.ok() ? "done" : "failed",
                 std::chrono::duration<double>(std::chrono::steady_clock::now() - suite_start)
                     .count());
    if (!s.ok()) report.add_errors(absl::StrCat(name, ": ", s.message()));
    return absl::OkStatus();
  };

  ComputeProbeConfig compute = kind == DeviceKind::kCpu ? ComputeProbeConfig::ForCpu(models)
                                                        : ComputeProbeConfig::ForGpu(models);
  compute.budget = budget;
  compute.lockstep = control.get();
  if (!absl::GetFlag(FLAGS_tp_degrees).empty()) {
    CAIRN_ASSIGN_OR_RETURN(compute.tp_degrees, IntList(absl::GetFlag(FLAGS_tp_degrees)));
  }
  if (!absl::GetFlag(FLAGS_micro_batches).empty()) {
    CAIRN_ASSIGN_OR_RETURN(compute.micro_batches, IntList(absl::GetFlag(FLAGS_micro_batches)));
  }
  if (absl::GetFlag(FLAGS_seq_len) > 0) compute.seq_len = absl::GetFlag(FLAGS_seq_len);
  if (quick) {
    compute.attention_seq_lens.resize(std::min<size_t>(2, compute.attention_seq_lens.size()));
    compute.memory_bytes = std::min<int64_t>(compute.memory_bytes, int64_t{4} << 20);
  }
  CAIRN_RETURN_IF_ERROR(suite("compute", [&]() -> absl::Status {
    CAIRN_RETURN_IF_ERROR(ProbeGemms(backend.get(), compute, &report));
    std::fprintf(stderr, "cairn-probe: rank %d: GEMMs measured (%d measurements so far)\n", rank,
                 report.measurements_size());
    CAIRN_RETURN_IF_ERROR(ProbeAttention(backend.get(), compute, &report));
    CAIRN_RETURN_IF_ERROR(ProbeMemory(backend.get(), compute, &report));
    return ProbeLaunch(backend.get(), compute, &report);
  }));
  LayerProbeConfig layers;
  layers.models = models;
  CAIRN_ASSIGN_OR_RETURN(layers.seq_lens, IntList(absl::GetFlag(FLAGS_layer_seq_lens)));
  CAIRN_ASSIGN_OR_RETURN(layers.micro_batches, IntList(absl::GetFlag(FLAGS_layer_micro_batches)));
  layers.iterations = quick ? 3 : 7;
  layers.min_seconds = quick ? 0.15 : 0.6;
  layers.lockstep = control.get();
  CAIRN_RETURN_IF_ERROR(
      suite("layers", [&] { return ProbeLayers(backend.get(), layers, &report); }));
  if (world != nullptr) {
    CommProbeConfig comm =
        kind == DeviceKind::kCpu ? CommProbeConfig::ForCpu() : CommProbeConfig::ForGpu();
    comm.budget = budget;
    comm.min_bytes = absl::GetFlag(FLAGS_min_bytes);
    comm.size_factor = absl::GetFlag(FLAGS_size_factor);
    if (absl::GetFlag(FLAGS_max_bytes) > 0) comm.max_bytes = absl::GetFlag(FLAGS_max_bytes);
    CAIRN_RETURN_IF_ERROR(suite("comm", [&] {
      return ProbeCollectives(world, control.get(), backend.get(), nodes, comm, &report);
    }));
    OverlapProbeConfig overlap =
        kind == DeviceKind::kCpu ? OverlapProbeConfig::ForCpu() : OverlapProbeConfig::ForGpu();
    if (quick) overlap.samples = 3;
    CAIRN_RETURN_IF_ERROR(suite("overlap", [&] {
      return ProbeOverlap(world, control.get(), backend.get(), overlap, &report);
    }));
  }
  CAIRN_RETURN_IF_ERROR(barrier());
  report.set_duration_s(
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
  return WriteReport(report, absl::GetFlag(FLAGS_output));
}

}  // namespace
}  // namespace cairn::agent

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(
      "one rank of a Cairn probe run; writes a JSON ProbeReport.\nUsage: cairn-probe [--rank R "
      "--world-size N --store-dir DIR] [--backend cpu|cuda] [--suites ...] [--output FILE]");
  cairn::agent::ParseDashedCommandLine(argc, argv);
  const absl::Status s = cairn::agent::Run();
  if (!s.ok()) {
    std::fprintf(stderr, "cairn-probe: %s\n", std::string(s.message()).c_str());
    return s.code() == absl::StatusCode::kInvalidArgument ? 2 : 1;
  }
  return 0;
}
