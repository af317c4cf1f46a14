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
//
// Time limit (--time-limit-s S, 0 = none, the default): counted from the process start, shared
// among the suites that will run (comm and overlap only with more than one rank) by weight as each
// starts: compute 0.35, layers 0.35, comm 0.2, overlap 0.1 of the time then left, so a suite that
// ends early leaves its time to the later ones. Inside compute the same again: GEMMs 0.55,
// attention 0.3, memory 0.1, launch 0.05. No case starts after its suite's (or probe's) deadline
// (agent/probes/time_limit.h): the ranks agree before each case, so their collectives still
// match; the report counts the skipped cases (ProbeReport.skipped) and the exit status stays 0.
// What goes first: the last cases of each suite in its visiting order (GEMMs are visited by FLOPs
// in bisection order, layer micro-batches likewise, collectives from the small groups and sizes
// up). The run may end after S by the cases in flight; a GPU node under a 10-minute lease uses
// about 300 (tools/gpu/agent_probe.sh).
// Exit status: 0 report written (failed or skipped cases are recorded in it), 1 the probe could
// not run, 2 bad flags.
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "CLI/CLI.hpp"
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
#include "agent/probes/time_limit.h"
#include "common/cli_app.h"
#include "common/plan/plan_proto.h"
#include "common/status_macros.h"
#include "google/protobuf/util/json_util.h"
#include "planner/catalog/models.h"
#include "runtime/comm/planner_store.h"
#include "runtime/train/backends.h"

namespace {
// The command line (--help lists every flag with its default).
struct CommandLineFlags {
  std::string backend = "cpu";
  int device = -1;
  int rank = 0;
  int world_size = 1;
  int local_rank = 0;
  std::string nodes = "";
  int node = 0;
  std::string store_dir = "";
  std::string host_address = "127.0.0.1";
  std::string suites = "compute,comm,overlap,layers";
  std::string models = "llama-tiny";
  std::string tp_degrees = "";
  std::string micro_batches = "";
  int seq_len = 0;
  std::string layer_seq_lens = "128";
  std::string layer_micro_batches = "1,2,4,8,16";
  double max_bytes = 0;
  double min_bytes = 1024;
  double size_factor = 4;
  std::string budget = "full";
  double timeout_s = 600;
  double time_limit_s = 0;
  std::string output = "";
};
CommandLineFlags g_flags;

void AddFlags(CLI::App& app) {
  app.add_option("--backend", g_flags.backend, "cpu or cuda");
  app.add_option("--device", g_flags.device, "GPU of this rank (cuda); -1 = the local rank");
  app.add_option("--rank", g_flags.rank, "this rank in the probe");
  app.add_option("--world-size", g_flags.world_size, "ranks of the probe");
  app.add_option("--local-rank", g_flags.local_rank, "rank among this host's ranks");
  app.add_option("--nodes", g_flags.nodes,
                 "node index of every rank, comma-separated (default all 0)");
  app.add_option("--node", g_flags.node, "this rank's node index (for the report)");
  app.add_option("--store-dir", g_flags.store_dir,
                 "rendezvous directory (else the planner, from CAIRN_RDZV_*)");
  app.add_option("--host-address", g_flags.host_address,
                 "address of this host the other ranks reach");
  app.add_option(
      "--suites", g_flags.suites,
      "comma-separated: compute (gemm, attention, memory, launch), comm, overlap, layers");
  app.add_option(
      "--models", g_flags.models,
      "catalog models (or ModelSpec JSON files) whose GEMM shapes and layers are probed");
  app.add_option("--tp-degrees", g_flags.tp_degrees,
                 "tensor-parallel degrees of the GEMM shapes (default per backend: cpu 1,2, cuda 1,2,4,8, "
                 "each only up to the ranks of the largest node in --nodes)");
  app.add_option("--micro-batches", g_flags.micro_batches,
                 "micro-batches of the GEMM shapes (default per backend)");
  app.add_option("--seq-len", g_flags.seq_len,
                 "tokens per sample of the GEMM shapes (default per backend)");
  app.add_option("--layer-seq-lens", g_flags.layer_seq_lens, "sequence lengths of the layer probe");
  app.add_option("--layer-micro-batches", g_flags.layer_micro_batches,
                 "micro-batches of the layer probe");
  app.add_option("--max-bytes", g_flags.max_bytes,
                 "largest collective buffer (default: 64 MiB cpu, 1 GiB cuda)");
  app.add_option("--min-bytes", g_flags.min_bytes, "smallest collective buffer");
  app.add_option("--size-factor", g_flags.size_factor, "ratio between successive collective sizes");
  app.add_option("--budget", g_flags.budget, "full or quick (CI: seconds in all)");
  app.add_option("--timeout-s", g_flags.timeout_s,
                 "rendezvous and per-operation timeout of the communicators");
  app.add_option("--time-limit-s", g_flags.time_limit_s,
                 "seconds for the whole run, shared by the suites (compute 0.35, layers 0.35, "
                 "comm 0.2, overlap 0.1); no case starts after its share, skipped cases are "
                 "counted in the report; 0 = no limit");
  app.add_option("--output", g_flags.output, "where the JSON report goes (default stdout)");
}
}  // namespace

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

// Shares of the time limit (see the file's header).
constexpr std::pair<const char*, double> kSuiteWeights[] = {
    {"compute", 0.35}, {"layers", 0.35}, {"comm", 0.2}, {"overlap", 0.1}};
constexpr std::pair<const char*, double> kComputeWeights[] = {
    {"gemm", 0.55}, {"attention", 0.3}, {"memory", 0.1}, {"launch", 0.05}};

absl::Status Run() {
  const absl::Time run_start = absl::Now();
  if (!(g_flags.time_limit_s >= 0)) {
    return absl::InvalidArgumentError("--time-limit-s must be >= 0 (0 = no limit)");
  }
  const absl::Time deadline = g_flags.time_limit_s > 0
                                  ? run_start + absl::Seconds(g_flags.time_limit_s)
                                  : absl::InfiniteFuture();
  CAIRN_ASSIGN_OR_RETURN(const DeviceKind kind, runtime::DeviceKindFromName(g_flags.backend));
  const int rank = g_flags.rank, world_size = g_flags.world_size;
  const int local_rank = g_flags.local_rank;
  if (world_size < 1 || rank < 0 || rank >= world_size) {
    return absl::InvalidArgumentError(absl::StrCat("--rank ", rank, " is outside --world-size ",
                                                   world_size));
  }
  std::vector<int> nodes(world_size, 0);
  if (!g_flags.nodes.empty()) {
    CAIRN_ASSIGN_OR_RETURN(nodes, IntList(g_flags.nodes));
    if (static_cast<int>(nodes.size()) != world_size) {
      return absl::InvalidArgumentError("--nodes needs one entry per rank");
    }
  }
  std::vector<plan::ModelDims> models;
  for (absl::string_view name : absl::StrSplit(g_flags.models, ',', absl::SkipEmpty())) {
    CAIRN_ASSIGN_OR_RETURN(cairn::v1::ModelSpec spec, planner::ResolveModel(std::string(name)));
    models.push_back(plan::ModelDimsFromSpec(spec));
  }
  std::set<std::string> suites;
  for (absl::string_view s : absl::StrSplit(g_flags.suites, ',', absl::SkipEmpty())) {
    if (s != "compute" && s != "comm" && s != "overlap" && s != "layers") {
      return absl::InvalidArgumentError(absl::StrCat("unknown suite '", s, "'"));
    }
    suites.insert(std::string(s));
  }
  const bool quick = g_flags.budget == "quick";
  if (!quick && g_flags.budget != "full") {
    return absl::InvalidArgumentError("--budget must be full or quick");
  }
  const ProbeBudget budget = quick ? ProbeBudget::Quick() : ProbeBudget::Full();

  const int device = g_flags.device >= 0 ? g_flags.device : local_rank;
  CAIRN_ASSIGN_OR_RETURN(std::unique_ptr<runtime::ComputeBackend> backend,
                         runtime::MakeComputeBackend(kind, device));
  ProbeReport report;
  report.set_version(kProbeVersion);
  report.set_backend(runtime::ToString(kind));
  report.set_device_name(backend->name());
  report.set_rank(rank);
  report.set_world_size(world_size);
  report.set_local_rank(local_rank);
  report.set_node(g_flags.node);
  report.set_started_at(Rfc3339Now());
  report.set_time_limit_s(g_flags.time_limit_s);
  const auto start = std::chrono::steady_clock::now();

  // Communicators: a host one for agreement and timing (Gloo), and the measured one (the same on
  // CPU; NCCL on GPU).
  std::unique_ptr<runtime::Communicator> control, world_owned;
  runtime::Communicator* world = nullptr;
  if (world_size > 1) {
    std::shared_ptr<runtime::Store> store;
    if (!g_flags.store_dir.empty()) {
      CAIRN_ASSIGN_OR_RETURN(store, runtime::OpenDirectoryStore(g_flags.store_dir));
    } else {
      CAIRN_ASSIGN_OR_RETURN(std::unique_ptr<runtime::PlannerStore> p,
                             runtime::PlannerStore::FromEnvironment());
      store = std::move(p);
    }
    runtime::WorldOptions opt;
    opt.hostname = g_flags.host_address;
    opt.timeout = opt.rendezvous_timeout = absl::Seconds(g_flags.timeout_s);
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
  // The suites that will run share the time limit.
  auto runs = [&](const std::string& name) {
    return suites.count(name) > 0 && (world != nullptr || (name != "comm" && name != "overlap"));
  };
  std::vector<std::pair<std::string, double>> weights;
  for (const auto& [name, w] : kSuiteWeights) {
    if (runs(name)) weights.emplace_back(name, w);
  }
  TimeShares shares(deadline, weights);
  auto suite = [&](const std::string& name,
                   const std::function<absl::Status(absl::Time deadline)>& fn) -> absl::Status {
    if (!runs(name)) return absl::OkStatus();
    CAIRN_RETURN_IF_ERROR(barrier());  // compute suites start together on every rank
    const absl::Time suite_deadline = shares.Start(name);
    // Progress on stderr (the agent keeps it as the rank's log): which suite runs, its share of
    // the time limit, how long each took and what it skipped, so a probe that outlasts its budget
    // shows where.
    if (suite_deadline == absl::InfiniteFuture()) {
      std::fprintf(stderr, "cairn-probe: rank %d: %s suite started\n", rank, name.c_str());
    } else {
      std::fprintf(stderr, "cairn-probe: rank %d: %s suite started (%.1f s until its deadline)\n",
                   rank, name.c_str(), absl::ToDoubleSeconds(suite_deadline - absl::Now()));
    }
    const auto suite_start = std::chrono::steady_clock::now();
    const absl::Status s = fn(suite_deadline);
    std::fprintf(stderr,
                 "cairn-probe: rank %d: %s suite %s after %.1f s, %d cases skipped (time limit)\n",
                 rank, name.c_str(), s.ok() ? "done" : "failed",
                 std::chrono::duration<double>(std::chrono::steady_clock::now() - suite_start)
                     .count(),
                 SkippedIn(report, name));
    if (!s.ok()) report.add_errors(absl::StrCat(name, ": ", s.message()));
    return absl::OkStatus();
  };

  ComputeProbeConfig compute = kind == DeviceKind::kCpu ? ComputeProbeConfig::ForCpu(models)
                                                        : ComputeProbeConfig::ForGpu(models);
  compute.budget = budget;
  compute.lockstep = control.get();
  if (!g_flags.tp_degrees.empty()) {
    CAIRN_ASSIGN_OR_RETURN(compute.tp_degrees, IntList(g_flags.tp_degrees));
  } else {
    // Tensor parallelism stays inside a node (the planner's largest degree is the devices per
    // node): no shapes for degrees beyond the largest node of this probe (the same list on every
    // rank, as lockstep needs).
    std::map<int, int> per_node;
    for (int n : nodes) ++per_node[n];
    int largest = 1;
    for (const auto& [n, count] : per_node) largest = std::max(largest, count);
    std::vector<int> kept;
    for (int tp : compute.tp_degrees) {
      if (tp <= largest) kept.push_back(tp);
    }
    compute.tp_degrees = kept.empty() ? std::vector<int>{1} : kept;
  }
  if (!g_flags.micro_batches.empty()) {
    CAIRN_ASSIGN_OR_RETURN(compute.micro_batches, IntList(g_flags.micro_batches));
  }
  if (g_flags.seq_len > 0) compute.seq_len = g_flags.seq_len;
  if (quick) {
    compute.attention_seq_lens.resize(std::min<size_t>(2, compute.attention_seq_lens.size()));
    compute.memory_bytes = std::min<int64_t>(compute.memory_bytes, int64_t{4} << 20);
  }
  CAIRN_RETURN_IF_ERROR(suite("compute", [&](absl::Time suite_deadline) -> absl::Status {
    std::vector<std::pair<std::string, double>> parts;
    for (const auto& [name, w] : kComputeWeights) parts.emplace_back(name, w);
    TimeShares probes(suite_deadline, parts);
    compute.deadline = probes.Start("gemm");
    CAIRN_RETURN_IF_ERROR(ProbeGemms(backend.get(), compute, &report));
    std::fprintf(stderr, "cairn-probe: rank %d: GEMMs measured (%d measurements so far)\n", rank,
                 report.measurements_size());
    compute.deadline = probes.Start("attention");
    CAIRN_RETURN_IF_ERROR(ProbeAttention(backend.get(), compute, &report));
    compute.deadline = probes.Start("memory");
    CAIRN_RETURN_IF_ERROR(ProbeMemory(backend.get(), compute, &report));
    compute.deadline = probes.Start("launch");
    return ProbeLaunch(backend.get(), compute, &report);
  }));
  LayerProbeConfig layers;
  layers.models = models;
  CAIRN_ASSIGN_OR_RETURN(layers.seq_lens, IntList(g_flags.layer_seq_lens));
  CAIRN_ASSIGN_OR_RETURN(layers.micro_batches, IntList(g_flags.layer_micro_batches));
  layers.iterations = quick ? 3 : 7;
  layers.min_seconds = quick ? 0.15 : 0.6;
  layers.lockstep = control.get();
  CAIRN_RETURN_IF_ERROR(suite("layers", [&](absl::Time suite_deadline) {
    layers.deadline = suite_deadline;
    return ProbeLayers(backend.get(), layers, &report);
  }));
  if (world != nullptr) {
    CommProbeConfig comm =
        kind == DeviceKind::kCpu ? CommProbeConfig::ForCpu() : CommProbeConfig::ForGpu();
    comm.budget = budget;
    comm.min_bytes = g_flags.min_bytes;
    comm.size_factor = g_flags.size_factor;
    if (g_flags.max_bytes > 0) comm.max_bytes = g_flags.max_bytes;
    CAIRN_RETURN_IF_ERROR(suite("comm", [&](absl::Time suite_deadline) {
      comm.deadline = suite_deadline;
      return ProbeCollectives(world, control.get(), backend.get(), nodes, comm, &report);
    }));
    OverlapProbeConfig overlap =
        kind == DeviceKind::kCpu ? OverlapProbeConfig::ForCpu() : OverlapProbeConfig::ForGpu();
    if (quick) overlap.samples = 3;
    CAIRN_RETURN_IF_ERROR(suite("overlap", [&](absl::Time suite_deadline) {
      overlap.deadline = suite_deadline;
      return ProbeOverlap(world, control.get(), backend.get(), overlap, &report);
    }));
  }
  CAIRN_RETURN_IF_ERROR(barrier());
  report.set_duration_s(
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
  return WriteReport(report, g_flags.output);
}

}  // namespace
}  // namespace cairn::agent

int main(int argc, char** argv) {
  // cairn-probe or cairn-probe-cuda: the name it was started under.
  std::string program = argc > 0 ? argv[0] : "cairn-probe";
  program = program.substr(program.find_last_of('/') + 1);
  std::unique_ptr<CLI::App> app = cairn::MakeApp(
      program,
      "one rank of a Cairn probe run; writes a JSON ProbeReport. Run as cairn-probe [--rank R "
      "--world-size N --store-dir DIR] [--backend cpu|cuda] [--suites ...] [--output FILE]");
  AddFlags(*app);
  if (std::optional<int> exit = cairn::ParseCommandLine(*app, argc, argv)) return *exit;
  const absl::Status s = cairn::agent::Run();
  if (!s.ok()) {
    std::fprintf(stderr, "cairn-probe: %s\n", std::string(s.message()).c_str());
    return s.code() == absl::StatusCode::kInvalidArgument ? 2 : 1;
  }
  return 0;
}
