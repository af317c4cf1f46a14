// agent/agent_options.h — every setting of cairn-agent, with its default.
//
// main.cc maps its flags one to one onto these fields (docs/agent.md lists both); tests build an
// AgentOptions directly. Nothing else in the agent has a default of its own.
#ifndef CAIRN_AGENT_AGENT_OPTIONS_H_
#define CAIRN_AGENT_AGENT_OPTIONS_H_

#include <string>
#include <vector>

#include "absl/time/time.h"
#include "runtime/comm/planner_store.h"

namespace cairn::agent {

struct AgentOptions {
  // --- The planner: address and credentials (token role agent; TLS CA; client cert for mTLS).
  // The workers reach the planner with the same settings (their rendezvous).
  runtime::PlannerConnection planner;

  // --- This node.
  std::string node_name;             // "" = the host name
  // Address of this node the other nodes' workers reach (Gloo listens on it); "" = the local
  // address of a connection to the planner (the interface that routes there).
  std::string advertise_address;
  std::string device_kind = "cpu";   // "cpu" (CPU worker slots) or "cuda" (GPUs)
  int cpu_slots = 2;                 // cpu: workers this node runs at once (its "devices")
  std::vector<int> gpus;             // cuda: GPU indices this agent owns; empty = every visible one
  // cpu: CPUs the agent and its workers may use, as "0-3,8" (sched_setaffinity); "" = inherited.
  // Two agents on one machine get disjoint sets, so each is a node of its own.
  std::string cpu_set;
  // Memory per CPU worker slot in the profile; 0 = host memory x 0.8 / slots.
  int64_t cpu_slot_memory_bytes = 0;
  // Datasheet peak per device for MFU (FLOP/s); 0 = a table of known GPUs, else the best measured
  // GEMM rate.
  double peak_flops_per_s = 0;
  std::string work_dir = "/var/lib/cairn-agent";  // jobs/, probes/, logs

  // --- Binaries the agent starts.
  std::string train_binary;          // cairn-train; "" = next to cairn-agent, then $PATH
  std::string probe_binary;          // cairn-probe (cairn-probe-cuda for GPUs); found likewise

  // --- Probes (agent/probes).
  // When registering: "auto" probes when the planner has no measured profile of this fingerprint
  // younger than probe_max_age (of this probe version); "always"; "never".
  std::string probe_on_register = "auto";
  absl::Duration probe_max_age = absl::Hours(24 * 7);
  std::vector<std::string> probe_models = {"llama-tiny"};  // GEMM shapes and layer timings
  std::vector<int> layer_seq_lens = {128};
  std::vector<int> layer_micro_batches = {1, 2, 4, 8, 16};
  std::string probe_budget = "full";  // "full" or "quick" (CI)
  double probe_max_bytes = 0;         // largest collective probed; 0 = 64 MiB cpu, 1 GiB cuda
  // cairn-probe --time-limit-s: seconds a probe run has, shared by its suites; cases that would
  // start later are skipped and counted (a partial profile). 0 = no limit. GPU nodes whose probe
  // must fit a lease or a registration window: about 300 (docs/agent.md).
  double probe_time_limit_s = 0;
  absl::Duration probe_timeout = absl::Minutes(30);

  // --- Jobs.
  // SIGTERM to a worker's process group, then SIGKILL after this long (cancel, failure, shutdown).
  absl::Duration worker_grace = absl::Seconds(10);
  // OpenBLAS threads per CPU worker; 0 = cores of cpu_set / cpu_slots (at least 1).
  int threads_per_worker = 0;
  // Worker output is sent to the planner (`cairn jobs logs`) at most this often.
  absl::Duration log_upload_interval = absl::Seconds(1);
  // How often the agent looks at its workers and their metrics file.
  absl::Duration poll_interval = absl::Milliseconds(100);

  // --- Connection to the planner.
  absl::Duration rpc_timeout = absl::Seconds(30);
  absl::Duration reconnect_initial = absl::Milliseconds(100);  // backoff after a lost stream
  absl::Duration reconnect_max = absl::Seconds(5);

  // --- Prometheus endpoint (HTTP GET /metrics), HOST:PORT; "" = none; port 0 = any free port.
  std::string metrics_address = "127.0.0.1:9465";
};

}  // namespace cairn::agent

#endif  // CAIRN_AGENT_AGENT_OPTIONS_H_
