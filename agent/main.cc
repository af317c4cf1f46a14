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

#include "CLI/CLI.hpp"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "agent/agent.h"
#include "agent/agent_options.h"
#include "agent/fingerprint.h"
#include "agent/planner_client.h"
#include "common/cli_app.h"
#include "common/logging.h"

namespace {
std::string Join(const std::vector<std::string>& v) { return absl::StrJoin(v, ","); }
std::string JoinInts(const std::vector<int>& v) { return absl::StrJoin(v, ","); }
}  // namespace

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
  const AgentOptions defaults;
  // Every flag, with its default (AgentOptions' where it has one); --flagfile=FILE is the systemd
  // unit's and DaemonSet's configuration file.
  std::string log_level = "info", gpus, layer_seq_lens = JoinInts(defaults.layer_seq_lens),
              layer_micro_batches = JoinInts(defaults.layer_micro_batches),
              probe_models = Join(defaults.probe_models);
  double cpu_slot_memory_gb = 0, peak_tflops = 0,
         probe_max_age_hours = absl::ToDoubleHours(defaults.probe_max_age),
         probe_timeout_s = absl::ToDoubleSeconds(defaults.probe_timeout),
         worker_grace_s = absl::ToDoubleSeconds(defaults.worker_grace);
  AgentOptions o;
  std::unique_ptr<CLI::App> app = MakeApp(
      "cairn-agent",
      "the Cairn node agent: registers the node with cairn-planner, probes it, runs assigned "
      "training ranks. Run as cairn-agent --planner HOST:PORT [flags]; see docs/agent.md");
  app->add_option("--planner", o.planner.address, "HOST:PORT of cairn-planner (required)")
      ->type_name("HOST:PORT");
  app->add_option("--token-file", o.planner.token_file,
                  "file whose first line is the agent's bearer token")
      ->type_name("FILE");
  app->add_option("--tls-ca", o.planner.tls_ca_file,
                  "PEM CA of the planner's certificate; enables TLS")
      ->type_name("FILE");
  app->add_option("--tls-cert", o.planner.tls_cert_file,
                  "PEM client certificate for mutual TLS (with --tls-key)")
      ->type_name("FILE");
  app->add_option("--tls-key", o.planner.tls_key_file, "PEM key of --tls-cert")->type_name("FILE");
  app->add_option("--node-name", o.node_name, "name of this node (default: the host name)")
      ->type_name("NAME");
  app->add_option("--advertise-address", o.advertise_address,
                  "address of this node the other nodes' workers reach (default: the interface "
                  "that routes to the planner)")
      ->type_name("HOST");
  app->add_option("--device-kind", o.device_kind, "cpu (worker slots) or cuda (GPUs)")
      ->type_name("KIND");
  app->add_option("--cpu-slots", o.cpu_slots, "cpu: workers this node runs at once")
      ->type_name("N");
  app->add_option("--gpus", gpus, "cuda: GPU indices this agent owns, e.g. 0,1,2,3 (default all)")
      ->type_name("LIST");
  app->add_option("--cpu-set", o.cpu_set,
                  "CPUs the agent and its workers may use, e.g. 0-3 (default: inherited)")
      ->type_name("CPUS");
  app->add_option("--cpu-slot-memory-gb", cpu_slot_memory_gb,
                  "cpu: memory per slot in the profile (0: 80% of host / slots)")
      ->type_name("GB");
  app->add_option("--peak-tflops", peak_tflops,
                  "datasheet peak per device for MFU (0: known GPUs, else measured)")
      ->type_name("T");
  app->add_option("--work-dir", o.work_dir, "jobs, probes and logs go here")->type_name("DIR");
  app->add_option("--train-binary", o.train_binary,
                  "cairn-train (default: next to cairn-agent, then PATH)")
      ->type_name("PATH");
  app->add_option("--probe-binary", o.probe_binary,
                  "cairn-probe (default: next to cairn-agent, then PATH)")
      ->type_name("PATH");
  app->add_option("--probe-on-register", o.probe_on_register,
                  "auto (when the planner has no fresh profile of this node), always or never")
      ->type_name("WHEN");
  app->add_option("--probe-max-age-hours", probe_max_age_hours,
                  "a measured profile older than this is probed again (auto)")
      ->type_name("H");
  app->add_option("--probe-models", probe_models,
                  "models whose GEMM shapes and layer times the probes measure")
      ->type_name("M1,M2");
  app->add_option("--layer-seq-lens", layer_seq_lens,
                  "sequence lengths of the layer probe (jobs' seq lengths)")
      ->type_name("LIST");
  app->add_option("--layer-micro-batches", layer_micro_batches,
                  "micro-batch sizes of the layer probe")
      ->type_name("LIST");
  app->add_option("--probe-budget", o.probe_budget, "full, or quick (CI: seconds)")
      ->type_name("BUDGET");
  app->add_option("--probe-max-bytes", o.probe_max_bytes,
                  "largest collective probed, bytes (0: 64 MiB cpu, 1 GiB cuda)")
      ->type_name("BYTES");
  app->add_option("--probe-time-limit-s", o.probe_time_limit_s,
                  "seconds a probe run has (shared by its suites; later cases are skipped and "
                  "counted); 0 = no limit; a GPU node: about 300")
      ->type_name("S");
  app->add_option("--probe-timeout-s", probe_timeout_s, "a probe run longer than this is stopped")
      ->type_name("S");
  app->add_option("--worker-grace-s", worker_grace_s,
                  "SIGTERM to workers, then SIGKILL after this long")
      ->type_name("S");
  app->add_option("--threads-per-worker", o.threads_per_worker,
                  "OpenBLAS threads per CPU worker (0: cores / slots)")
      ->type_name("N");
  app->add_option("--metrics-address", o.metrics_address,
                  "Prometheus endpoint HOST:PORT serving /metrics; empty disables it")
      ->type_name("HOST:PORT");
  app->add_option("--log-level", log_level, "debug, info, warning or error")->type_name("LEVEL");
  AddFlagfile(app.get());
  if (std::optional<int> exit = ParseCommandLine(*app, argc, argv)) return *exit;

  SetLogLevel(log_level == "debug"     ? LogLevel::kDebug
              : log_level == "warning" ? LogLevel::kWarning
              : log_level == "error"   ? LogLevel::kError
                                       : LogLevel::kInfo);
  bool ok = true;
  o.gpus = Ints(gpus, &ok);
  o.layer_seq_lens = Ints(layer_seq_lens, &ok);
  o.layer_micro_batches = Ints(layer_micro_batches, &ok);
  if (!ok) return Fail("--gpus, --layer-seq-lens and --layer-micro-batches take integers", 2);
  o.cpu_slot_memory_bytes = static_cast<int64_t>(cpu_slot_memory_gb * (1 << 30));
  o.peak_flops_per_s = peak_tflops * 1e12;
  o.probe_max_age = absl::Hours(probe_max_age_hours);
  o.probe_models = absl::StrSplit(probe_models, ',', absl::SkipEmpty());
  o.probe_timeout = absl::Seconds(probe_timeout_s);
  o.worker_grace = absl::Seconds(worker_grace_s);

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
