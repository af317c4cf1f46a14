// agent/metrics.h — cairn-agent's Prometheus metrics, defined in one place (names follow the
// planner's: base units, `_total` counters). The agent's parts only call the Set*/Record* methods;
// Start() serves them over HTTP (GET /metrics).
//
//   cairn_agent_up                                      gauge  1 while the agent runs
//   cairn_agent_registered                              gauge  1 once the planner accepted it
//   cairn_agent_devices{kind}                           gauge  GPUs or CPU worker slots owned
//   cairn_agent_workers_running                         gauge  worker processes alive
//   cairn_agent_job_running{job_id}                        gauge  1 per job with workers here
//   cairn_agent_job_step{job_id}                           gauge  last step reported
//   cairn_agent_job_loss{job_id}                           gauge
//   cairn_agent_job_step_time_seconds{job_id}              gauge  last step's time
//   cairn_agent_job_tokens_per_second{job_id}              gauge
//   cairn_agent_job_mfu{job_id}                            gauge  against the profile's peak
//   cairn_agent_job_predicted_step_time_seconds{job_id}    gauge  the plan's prediction
//   cairn_agent_job_measured_over_predicted{job_id}        gauge  mean step time / prediction
//   cairn_agent_job_peak_memory_bytes{job_id}              gauge  measured (tensors, largest rank)
//   cairn_agent_job_predicted_memory_bytes{job_id}         gauge
//   cairn_agent_probe_last_success_timestamp_seconds    gauge  Unix time of the last probe upload
//   cairn_agent_probe_age_seconds                       gauge  now minus that (refreshed per heartbeat)
//   cairn_agent_probe_duration_seconds                  gauge  wall time of the last probe run
//   cairn_agent_probe_runs_total{result}                counter ok | failed
//   cairn_agent_probe_gemm_flops_per_second             gauge  best GEMM rate of the profile
//   cairn_agent_probe_memory_bandwidth_bytes_per_second gauge
//   cairn_agent_probe_attention_efficiency              gauge
//   cairn_agent_probe_overlap_slowdown                  gauge
//   cairn_agent_probe_busbw_bytes_per_second{op,group_size,spans_nodes}  gauge  fitted busbw
//   cairn_agent_jobs_total{result}                      counter succeeded | failed | cancelled
//   cairn_agent_worker_failures_total                   counter
//   cairn_agent_planner_reconnects_total                counter lost streams re-opened
//   cairn_agent_heartbeat_failures_total                counter
//
// Thread-safe.
#ifndef CAIRN_AGENT_METRICS_H_
#define CAIRN_AGENT_METRICS_H_

#include <map>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "prometheus/counter.h"
#include "prometheus/family.h"
#include "prometheus/gauge.h"
#include "prometheus/registry.h"
#include "proto/cairn/v1/hardware.pb.h"

namespace prometheus {
class Exposer;
}  // namespace prometheus

namespace cairn::agent {

struct StepSample {
  int step = 0;
  double loss = 0;
  double step_time_s = 0;
  double tokens_per_s = 0;
  double mfu = 0;
  double predicted_step_time_s = 0;
  double measured_over_predicted = 0;
  int64_t peak_memory_bytes = 0;
  int64_t predicted_memory_bytes = 0;
};

class AgentMetrics {
 public:
  AgentMetrics();
  ~AgentMetrics();
  AgentMetrics(const AgentMetrics&) = delete;
  AgentMetrics& operator=(const AgentMetrics&) = delete;

  // Serves /metrics on HOST:PORT (port 0: any). Unavailable when it cannot bind.
  absl::Status Start(const std::string& address);
  int port() const { return port_; }  // 0 when not serving
  // "HOST:PORT" actually served ("" when not serving).
  std::string address() const;

  void SetUp(bool up);
  void SetRegistered(bool registered);
  void SetDevices(const std::string& kind, int count);
  void SetWorkersRunning(int n);
  void JobStarted(const std::string& job);
  void RecordStep(const std::string& job, const StepSample& s);
  // Removes the job's gauges and counts it under `result`.
  void JobEnded(const std::string& job, const std::string& result);
  void RecordWorkerFailure();
  void RecordReconnect();
  void RecordHeartbeatFailure();
  // A probe run finished (ok or failed) after `duration_s`.
  void RecordProbe(bool ok, double duration_s);
  // The measured profile this node's numbers come from now, and when it was measured (a fresh
  // probe, or a stored profile found at registration).
  void SetProfile(const cairn::v1::HardwareProfile& profile, absl::Time measured_at);
  // Refreshes cairn_agent_probe_age_seconds from the last success (called periodically).
  void RefreshProbeAge(absl::Time now);

  std::string TextExposition() const;

 private:
  std::shared_ptr<prometheus::Registry> registry_;
  std::unique_ptr<prometheus::Exposer> exposer_;
  int port_ = 0;
  std::string host_;
  prometheus::Gauge* up_;
  prometheus::Gauge* registered_;
  prometheus::Family<prometheus::Gauge>* devices_;
  prometheus::Gauge* workers_;
  prometheus::Family<prometheus::Gauge>* job_running_;
  prometheus::Family<prometheus::Gauge>* job_step_;
  prometheus::Family<prometheus::Gauge>* job_loss_;
  prometheus::Family<prometheus::Gauge>* job_step_time_;
  prometheus::Family<prometheus::Gauge>* job_tokens_;
  prometheus::Family<prometheus::Gauge>* job_mfu_;
  prometheus::Family<prometheus::Gauge>* job_predicted_;
  prometheus::Family<prometheus::Gauge>* job_ratio_;
  prometheus::Family<prometheus::Gauge>* job_peak_;
  prometheus::Family<prometheus::Gauge>* job_predicted_memory_;
  prometheus::Gauge* probe_last_;
  prometheus::Gauge* probe_age_;
  prometheus::Gauge* probe_duration_;
  prometheus::Family<prometheus::Counter>* probe_runs_;
  prometheus::Gauge* probe_gemm_;
  prometheus::Gauge* probe_bandwidth_;
  prometheus::Gauge* probe_attention_;
  prometheus::Gauge* probe_overlap_;
  prometheus::Family<prometheus::Gauge>* probe_busbw_;
  prometheus::Family<prometheus::Counter>* jobs_total_;
  prometheus::Counter* worker_failures_;
  prometheus::Counter* reconnects_;
  prometheus::Counter* heartbeat_failures_;

  mutable absl::Mutex mu_;
  absl::Time last_probe_ ABSL_GUARDED_BY(mu_) = absl::InfinitePast();
};

}  // namespace cairn::agent

#endif  // CAIRN_AGENT_METRICS_H_
