// cairn-agent — the per-node agent. Flags map one to one onto AgentOptions (agent_options.h, where
// the defaults live); docs/agent.md describes them. --flagfile=FILE reads flags from a file (one per
// line): the configuration file of the systemd unit and the DaemonSet.
//
//   cairn-agent --planner planner.example:7070 --token-file /etc/cairn/agent.token \
//       --tls-ca /etc/cairn/ca.pem --device-kind cuda --work-dir /var/lib/cairn-agent
//   cairn-agent --planner 127.0.0.1:7070 --cpu-slots 2 --cpu-set 0 --work-dir /tmp/agent-a
//
// Prints one line "cairn-agent: registered as ID ..." once the planner accepted it. SIGTERM or
// SIGINT stop it gracefully (workers first); exit status 0 then, 2 for bad flags, 1 when it cannot
// run (e.g. the planner refused its token).
#include <sched.h>
#include <signal.h>

#include <cstdio>
#include <cstdlib>
#include <string>
#include <thread>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/usage.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "agent/agent.h"
#include "agent/agent_options.h"
#include "agent/fingerprint.h"
#include "agent/planner_client.h"
#include "agent/util/flags.h"
#include "common/logging.h"

namespace {
const cairn::agent::AgentOptions kDefaults;

std::string Join(const std::vector<std::string>& v) { return absl::StrJoin(v, ","); }
std::string JoinInts(const std::vector<int>& v) { return absl::StrJoin(v, ","); }
}  // namespace

ABSL_FLAG(std::string, planner, "", "HOST:PORT of cairn-planner (required)");
ABSL_FLAG(std::string, token_file, "", "file whose first line is the agent's bearer token");
ABSL_FLAG(std::string, tls_ca, "", "PEM CA of the planner's certificate; enables TLS");
ABSL_FLAG(std::string, tls_cert, "", "PEM client certificate for mutual TLS (with --tls-key)");
ABSL_FLAG(std::string, tls_key, "", "PEM key of --tls-cert");
ABSL_FLAG(std::string, node_name, "", "name of this node (default: the host name)");
ABSL_FLAG(std::string, advertise_address, "",
          "address of this node the other nodes' workers reach (default: the interface that "
          "routes to the planner)");
ABSL_FLAG(std::string, device_kind, kDefaults.device_kind, "cpu (worker slots) or cuda (GPUs)");
ABSL_FLAG(int, cpu_slots, kDefaults.cpu_slots, "cpu: workers this node runs at once");
ABSL_FLAG(std::string, gpus, "", "cuda: GPU indices this agent owns, e.g. 0,1,2,3 (default all)");
ABSL_FLAG(std::string, cpu_set, "", "CPUs the agent and its workers may use, e.g. 0-3 (default: inherited)");
ABSL_FLAG(double, cpu_slot_memory_gb, 0, "cpu: memory per slot in the profile (0: 80% of host / slots)");
ABSL_FLAG(double, peak_tflops, 0, "datasheet peak per device for MFU (0: known GPUs, else measured)");
ABSL_FLAG(std::string, work_dir, kDefaults.work_dir, "jobs, probes and logs go here");
ABSL_FLAG(std::string, train_binary, "", "cairn-train (default: next to cairn-agent, then PATH)");
ABSL_FLAG(std::string, probe_binary, "", "cairn-probe (default: next to cairn-agent, then PATH)");
ABSL_FLAG(std::string, probe_on_register, kDefaults.probe_on_register,
          "auto (when the planner has no fresh profile of this node), always or never");
ABSL_FLAG(double, probe_max_age_hours, absl::ToDoubleHours(kDefaults.probe_max_age),
          "a measured profile older than this is probed again (auto)");
ABSL_FLAG(std::string, probe_models, Join(kDefaults.probe_models),
          "models whose GEMM shapes and layer times the probes measure");
ABSL_FLAG(std::string, layer_seq_lens, JoinInts(kDefaults.layer_seq_lens),
          "sequence lengths of the layer probe (jobs' seq lengths)");
ABSL_FLAG(std::string, layer_micro_batches, JoinInts(kDefaults.layer_micro_batches),
          "micro-batch sizes of the layer probe");
ABSL_FLAG(std::string, probe_budget, kDefaults.probe_budget, "full, or quick (CI: seconds)");
ABSL_FLAG(double, probe_max_bytes, kDefaults.probe_max_bytes,
          "largest collective probed, bytes (0: 64 MiB cpu, 1 GiB cuda)");
ABSL_FLAG(double, probe_timeout_s, absl::ToDoubleSeconds(kDefaults.probe_timeout),
          "a probe run longer than this is stopped");
ABSL_FLAG(double, worker_grace_s, absl::ToDoubleSeconds(kDefaults.worker_grace),
          "SIGTERM to workers, then SIGKILL after this long");
ABSL_FLAG(int, threads_per_worker, kDefaults.threads_per_worker,
          "OpenBLAS threads per CPU worker (0: cores / slots)");
ABSL_FLAG(std::string, metrics_address, kDefaults.metrics_address,
          "Prometheus endpoint HOST:PORT serving /metrics; empty disables it");
ABSL_FLAG(std::string, log_level, "info", "debug, info, warning or error");

namespace cairn::agent {
namespace {

int Fail(const std::string& message, int code) {
  std::fprintf(stderr, "cairn-agent: %s\n", message.c_str());
  return code;
}

std::vector<int> Ints(const std::string& text, bool* ok) {
  std::vector<int> out;
  for (absl::string_view p : absl::StrSplit(text, ',', absl::SkipEmpty())) {
    int v = 0;
    if (!absl::SimpleAtoi(p, &v)) *ok = false;
    out.push_back(v);
  }
  return out;
}

int Main(int argc, char** argv) {
  // The agent forks workers from threads; gRPC's fork handlers are not wanted in those children.
  setenv("GRPC_ENABLE_FORK_SUPPORT", "0", 0);
  absl::SetProgramUsageMessage(
      "the Cairn node agent: registers the node with cairn-planner, probes it, runs assigned "
      "training ranks.\nUsage: cairn-agent --planner HOST:PORT [flags]; see docs/agent.md");
  ParseDashedCommandLine(argc, argv);
  const std::string level = absl::GetFlag(FLAGS_log_level);
  SetLogLevel(level == "debug"     ? LogLevel::kDebug
              : level == "warning" ? LogLevel::kWarning
              : level == "error"   ? LogLevel::kError
                                   : LogLevel::kInfo);
  AgentOptions o;
  o.planner.address = absl::GetFlag(FLAGS_planner);
  o.planner.token_file = absl::GetFlag(FLAGS_token_file);
  o.planner.tls_ca_file = absl::GetFlag(FLAGS_tls_ca);
  o.planner.tls_cert_file = absl::GetFlag(FLAGS_tls_cert);
  o.planner.tls_key_file = absl::GetFlag(FLAGS_tls_key);
  o.node_name = absl::GetFlag(FLAGS_node_name);
  o.advertise_address = absl::GetFlag(FLAGS_advertise_address);
  o.device_kind = absl::GetFlag(FLAGS_device_kind);
  o.cpu_slots = absl::GetFlag(FLAGS_cpu_slots);
  bool ok = true;
  o.gpus = Ints(absl::GetFlag(FLAGS_gpus), &ok);
  o.layer_seq_lens = Ints(absl::GetFlag(FLAGS_layer_seq_lens), &ok);
  o.layer_micro_batches = Ints(absl::GetFlag(FLAGS_layer_micro_batches), &ok);
  if (!ok) return Fail("--gpus, --layer-seq-lens and --layer-micro-batches take integers", 2);
  o.cpu_set = absl::GetFlag(FLAGS_cpu_set);
  o.cpu_slot_memory_bytes = static_cast<int64_t>(absl::GetFlag(FLAGS_cpu_slot_memory_gb) * (1 << 30));
  o.peak_flops_per_s = absl::GetFlag(FLAGS_peak_tflops) * 1e12;
  o.work_dir = absl::GetFlag(FLAGS_work_dir);
  o.train_binary = absl::GetFlag(FLAGS_train_binary);
  o.probe_binary = absl::GetFlag(FLAGS_probe_binary);
  o.probe_on_register = absl::GetFlag(FLAGS_probe_on_register);
  o.probe_max_age = absl::Hours(absl::GetFlag(FLAGS_probe_max_age_hours));
  o.probe_models = absl::StrSplit(absl::GetFlag(FLAGS_probe_models), ',', absl::SkipEmpty());
  o.probe_budget = absl::GetFlag(FLAGS_probe_budget);
  o.probe_max_bytes = absl::GetFlag(FLAGS_probe_max_bytes);
  o.probe_timeout = absl::Seconds(absl::GetFlag(FLAGS_probe_timeout_s));
  o.worker_grace = absl::Seconds(absl::GetFlag(FLAGS_worker_grace_s));
  o.threads_per_worker = absl::GetFlag(FLAGS_threads_per_worker);
  o.metrics_address = absl::GetFlag(FLAGS_metrics_address);

  // The node's CPUs, before any thread starts (threads inherit the mask, workers too).
  if (!o.cpu_set.empty()) {
    std::optional<std::vector<int>> cpus = ParseCpuList(o.cpu_set);
    if (!cpus) return Fail("--cpu-set must look like 0-3,8", 2);
    cpu_set_t set;
    CPU_ZERO(&set);
    for (int c : *cpus) CPU_SET(c, &set);
    if (sched_setaffinity(0, sizeof(set), &set) != 0) {
      return Fail(absl::StrCat("cannot restrict the agent to CPUs ", o.cpu_set), 2);
    }
  }
  // SIGTERM and SIGINT are taken by a thread that waits for them (sigwait), not by a handler.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  absl::StatusOr<std::unique_ptr<GrpcPlannerClient>> planner =
      GrpcPlannerClient::Connect(o.planner, o.rpc_timeout);
  if (!planner.ok()) return Fail(std::string(planner.status().message()), 2);
  NodeFacts facts = DetectNode(HostFiles::Real(), o);
  absl::StatusOr<std::unique_ptr<Agent>> agent = Agent::Create(o, *std::move(planner), facts);
  if (!agent.ok()) {
    return Fail(std::string(agent.status().message()),
                agent.status().code() == absl::StatusCode::kInvalidArgument ? 2 : 1);
  }
  Agent* a = agent->get();
  std::printf("cairn-agent 0.1.0: node %s (%s, %d %s device%s), planner %s, metrics %s\n",
              facts.hostname.c_str(), facts.fingerprint.device_model().c_str(),
              facts.node.device_count(), o.device_kind.c_str(),
              facts.node.device_count() == 1 ? "" : "s", o.planner.address.c_str(),
              a->metrics_port() > 0 ? absl::StrCat("on port ", a->metrics_port()).c_str() : "off");
  std::fflush(stdout);
  std::thread waiter([a, signals] {
    int sig = 0;
    sigwait(&signals, &sig);
    CAIRN_LOG(INFO) << "signal " << sig << ": shutting down";
    a->Shutdown();
  });
  a->SetOnRegistered([a] {
    // The line scripts wait for: printed once the planner accepted the agent.
    std::printf("cairn-agent: registered as %s, advertising %s\n", a->agent_id().c_str(),
                a->advertise_address().c_str());
    std::fflush(stdout);
  });
  const absl::Status s = a->Run();
  a->Shutdown();
  pthread_kill(waiter.native_handle(), SIGTERM);  // wakes the waiter if no signal came
  waiter.join();
  agent->reset();
  if (!s.ok()) return Fail(std::string(s.message()), 1);
  return 0;
}

}  // namespace
}  // namespace cairn::agent

int main(int argc, char** argv) { return cairn::agent::Main(argc, argv); }
