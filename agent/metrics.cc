#include "agent/metrics.h"

#include <algorithm>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/collective_proto.h"
#include "prometheus/exposer.h"
#include "prometheus/text_serializer.h"

namespace cairn::agent {
namespace {

prometheus::Family<prometheus::Gauge>& GaugeFamily(prometheus::Registry& r, const char* name,
                                                   const char* help) {
  return prometheus::BuildGauge().Name(name).Help(help).Register(r);
}

}  // namespace

AgentMetrics::AgentMetrics() : registry_(std::make_shared<prometheus::Registry>()) {
  prometheus::Registry& r = *registry_;
  up_ = &GaugeFamily(r, "cairn_agent_up", "1 while the agent runs").Add({});
  registered_ =
      &GaugeFamily(r, "cairn_agent_registered", "1 once the planner accepted the agent").Add({});
  devices_ = &GaugeFamily(r, "cairn_agent_devices", "GPUs or CPU worker slots the agent owns");
  workers_ = &GaugeFamily(r, "cairn_agent_workers_running", "Worker processes alive").Add({});
  job_running_ = &GaugeFamily(r, "cairn_agent_job_running", "1 per job with workers on this node");
  job_step_ = &GaugeFamily(r, "cairn_agent_job_step", "Last step of the job reported");
  job_loss_ = &GaugeFamily(r, "cairn_agent_job_loss", "Training loss of the last step");
  job_step_time_ =
      &GaugeFamily(r, "cairn_agent_job_step_time_seconds", "Measured time of the last step");
  job_tokens_ = &GaugeFamily(r, "cairn_agent_job_tokens_per_second", "Tokens per second, last step");
  job_mfu_ = &GaugeFamily(r, "cairn_agent_job_mfu",
                          "Model FLOPs utilisation of the last step against the profile's peak");
  job_predicted_ = &GaugeFamily(r, "cairn_agent_job_predicted_step_time_seconds",
                                "Step time the planner predicted for the job's plan");
  job_ratio_ = &GaugeFamily(r, "cairn_agent_job_measured_over_predicted",
                            "Mean measured step time (first step excluded) over the prediction");
  job_peak_ = &GaugeFamily(r, "cairn_agent_job_peak_memory_bytes",
                           "Measured peak tensor memory of the largest rank");
  job_predicted_memory_ = &GaugeFamily(r, "cairn_agent_job_predicted_memory_bytes",
                                       "Peak tensor memory the planner predicted per rank");
  probe_last_ = &GaugeFamily(r, "cairn_agent_probe_last_success_timestamp_seconds",
                             "Unix time of the last probe run whose profile was uploaded")
                     .Add({});
  probe_age_ = &GaugeFamily(r, "cairn_agent_probe_age_seconds",
                            "Seconds since the last successful probe run (-1: none yet)")
                    .Add({});
  probe_age_->Set(-1);
  probe_duration_ =
      &GaugeFamily(r, "cairn_agent_probe_duration_seconds", "Wall time of the last probe run")
           .Add({});
  probe_runs_ = &prometheus::BuildCounter()
                     .Name("cairn_agent_probe_runs_total")
                     .Help("Probe runs, by result (ok, failed)")
                     .Register(r);
  probe_gemm_ = &GaugeFamily(r, "cairn_agent_probe_gemm_flops_per_second",
                             "Best GEMM rate of the measured profile (per device)")
                     .Add({});
  probe_bandwidth_ = &GaugeFamily(r, "cairn_agent_probe_memory_bandwidth_bytes_per_second",
                                  "Memory bandwidth of the measured profile (per device)")
                          .Add({});
  probe_attention_ = &GaugeFamily(r, "cairn_agent_probe_attention_efficiency",
                                  "Attention rate over the GEMM rate at equal FLOPs")
                          .Add({});
  probe_overlap_ = &GaugeFamily(r, "cairn_agent_probe_overlap_slowdown",
                                "Slowdown factor of compute and communication run together")
                        .Add({});
  probe_busbw_ = &GaugeFamily(r, "cairn_agent_probe_busbw_bytes_per_second",
                              "Fitted bus bandwidth per collective, group size and span");
  jobs_total_ = &prometheus::BuildCounter()
                     .Name("cairn_agent_jobs_total")
                     .Help("Jobs this agent hosted ranks of, by how they ended here")
                     .Register(r);
  worker_failures_ = &prometheus::BuildCounter()
                          .Name("cairn_agent_worker_failures_total")
                          .Help("Workers that exited with an error or a signal")
                          .Register(r)
                          .Add({});
  reconnects_ = &prometheus::BuildCounter()
                     .Name("cairn_agent_planner_reconnects_total")
                     .Help("Assignment streams re-opened after the planner went away")
                     .Register(r)
                     .Add({});
  heartbeat_failures_ = &prometheus::BuildCounter()
                             .Name("cairn_agent_heartbeat_failures_total")
                             .Help("Heartbeats the planner did not answer")
                             .Register(r)
                             .Add({});
  for (const char* result : {"ok", "failed"}) probe_runs_->Add({{"result", result}});
  for (const char* result : {"succeeded", "failed", "cancelled"}) {
    jobs_total_->Add({{"result", result}});
  }
}

AgentMetrics::~AgentMetrics() = default;

absl::Status AgentMetrics::Start(const std::string& address) {
  if (address.empty()) return absl::OkStatus();
  try {
    exposer_ = std::make_unique<prometheus::Exposer>(address);
  } catch (const std::exception& e) {  // civetweb reports a failed bind by throwing
    return absl::UnavailableError(
        absl::StrCat("cannot serve metrics on ", address, ": ", e.what()));
  }
  exposer_->RegisterCollectable(registry_);
  const std::vector<int> ports = exposer_->GetListeningPorts();
  port_ = ports.empty() ? 0 : ports[0];
  host_ = address.substr(0, address.rfind(':'));
  return absl::OkStatus();
}

std::string AgentMetrics::address() const {
  return port_ == 0 ? "" : absl::StrCat(host_, ":", port_);
}

void AgentMetrics::SetUp(bool up) { up_->Set(up ? 1 : 0); }
void AgentMetrics::SetRegistered(bool registered) { registered_->Set(registered ? 1 : 0); }
void AgentMetrics::SetDevices(const std::string& kind, int count) {
  devices_->Add({{"kind", kind}}).Set(count);
}
void AgentMetrics::SetWorkersRunning(int n) { workers_->Set(n); }

void AgentMetrics::JobStarted(const std::string& job) {
  job_running_->Add({{"job_id", job}}).Set(1);
}

void AgentMetrics::RecordStep(const std::string& job, const StepSample& s) {
  const std::map<std::string, std::string> l = {{"job_id", job}};
  job_step_->Add(l).Set(s.step);
  job_loss_->Add(l).Set(s.loss);
  job_step_time_->Add(l).Set(s.step_time_s);
  job_tokens_->Add(l).Set(s.tokens_per_s);
  job_mfu_->Add(l).Set(s.mfu);
  job_predicted_->Add(l).Set(s.predicted_step_time_s);
  if (s.measured_over_predicted > 0) job_ratio_->Add(l).Set(s.measured_over_predicted);
  job_peak_->Add(l).Set(static_cast<double>(s.peak_memory_bytes));
  job_predicted_memory_->Add(l).Set(static_cast<double>(s.predicted_memory_bytes));
}

void AgentMetrics::JobEnded(const std::string& job, const std::string& result) {
  const std::map<std::string, std::string> l = {{"job_id", job}};
  for (prometheus::Family<prometheus::Gauge>* f :
       {job_running_, job_step_, job_loss_, job_step_time_, job_tokens_, job_mfu_, job_predicted_,
        job_ratio_, job_peak_, job_predicted_memory_}) {
    if (f->Has(l)) f->Remove(&f->Add(l));
  }
  jobs_total_->Add({{"result", result}}).Increment();
}

void AgentMetrics::RecordWorkerFailure() { worker_failures_->Increment(); }
void AgentMetrics::RecordReconnect() { reconnects_->Increment(); }
void AgentMetrics::RecordHeartbeatFailure() { heartbeat_failures_->Increment(); }

void AgentMetrics::RecordProbe(bool ok, double duration_s) {
  probe_runs_->Add({{"result", ok ? "ok" : "failed"}}).Increment();
  probe_duration_->Set(duration_s);
}

void AgentMetrics::SetProfile(const cairn::v1::HardwareProfile& p, absl::Time when) {
  const cairn::v1::HardwareProfile* profile = &p;
  {
    absl::MutexLock lock(&mu_);
    last_probe_ = when;
  }
  probe_last_->Set(absl::ToDoubleSeconds(when - absl::UnixEpoch()));
  probe_age_->Set(std::max(0.0, absl::ToDoubleSeconds(absl::Now() - when)));
  double best = 0;
  for (const auto& g : profile->device().gemm()) best = std::max(best, g.achieved_flops_per_s());
  probe_gemm_->Set(best);
  probe_bandwidth_->Set(profile->device().memory_bandwidth_bytes_per_s());
  probe_attention_->Set(profile->device().attention_efficiency());
  probe_overlap_->Set(profile->overlap_slowdown());
  for (const cairn::v1::CollectiveCost& c : profile->collectives()) {
    probe_busbw_
        ->Add({{"op", cairn::ToString(c.op())},
               {"group_size", absl::StrCat(c.group_size())},
               {"spans_nodes", c.spans_nodes() ? "true" : "false"}})
        .Set(c.busbw_bytes_per_s());
  }
}

void AgentMetrics::RefreshProbeAge(absl::Time now) {
  absl::MutexLock lock(&mu_);
  if (last_probe_ == absl::InfinitePast()) return;
  probe_age_->Set(absl::ToDoubleSeconds(now - last_probe_));
}

std::string AgentMetrics::TextExposition() const {
  return prometheus::TextSerializer().Serialize(registry_->Collect());
}

}  // namespace cairn::agent
