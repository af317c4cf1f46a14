// agent/agent.h — cairn-agent: one per node. Registers the node with cairn-planner, keeps it
// alive with heartbeats, measures it (agent/probes) when the planner has no fresh profile of its
// fingerprint, and runs the ranks of jobs the planner assigns to it (job_host.h).
//
//   AgentOptions options;                  // every default is in agent_options.h
//   options.planner.address = "planner:7070";
//   CAIRN_ASSIGN_OR_RETURN(std::unique_ptr<PlannerClient> planner,
//                          GrpcPlannerClient::Connect(options.planner, options.rpc_timeout));
//   CAIRN_ASSIGN_OR_RETURN(std::unique_ptr<Agent> agent,
//                          Agent::Create(options, std::move(planner), DetectNode(...)));
//   std::thread signals([&] { WaitForSigterm(); agent->Shutdown(); });
//   CAIRN_RETURN_IF_ERROR(agent->Run());   // returns after Shutdown
//
// Run():
//   1. Registers (retrying with backoff while the planner is unreachable); the planner's id is
//      kept in work_dir/agent_id so a restarted agent keeps it.
//   2. Probes when probe_on_register says so (auto: no measured profile of this fingerprint and
//      probe version younger than probe_max_age) and uploads the HardwareProfile and ModelProfiles.
//   3. Heartbeats at the planner's interval (NOT_FOUND: the planner forgot the agent -> register
//      again) and follows WatchAssignments, reconnecting with backoff (reconnect_initial doubling to
//      reconnect_max) when the planner restarts. Assignments: a job's ranks -> a JobHost (a second
//      copy of the same job and attempt is ignored; a newer attempt replaces the older); cancel ->
//      the JobHost stops its workers; a probe request -> queued, run when no job runs here
//      ("never while a job runs"), coordinated ones meeting through the planner.
// Shutdown() (SIGTERM): stops accepting assignments, stops every worker (SIGTERM, then SIGKILL after
// worker_grace) and running probe, then the loops; Run returns OK. Thread-safe.
#ifndef CAIRN_AGENT_AGENT_H_
#define CAIRN_AGENT_AGENT_H_

#include <deque>
#include <functional>
#include <map>
#include <set>
#include <memory>
#include <string>
#include <thread>

#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "agent/agent_options.h"
#include "agent/fingerprint.h"
#include "agent/job_host.h"
#include "agent/metrics.h"
#include "agent/planner_client.h"
#include "agent/probe_runner.h"

namespace cairn::agent {

class Agent {
 public:
  // Errors: InvalidArgument for inconsistent options (the message names the flag); Unavailable
  // when the work directory cannot be created or the metrics address cannot be bound.
  static absl::StatusOr<std::unique_ptr<Agent>> Create(const AgentOptions& options,
                                                       std::unique_ptr<PlannerClient> planner,
                                                       NodeFacts facts);
  ~Agent();  // Shutdown()
  Agent(const Agent&) = delete;
  Agent& operator=(const Agent&) = delete;

  // Blocks until Shutdown() (OK), or until registration is refused for good (the planner's error:
  // UNAUTHENTICATED, PERMISSION_DENIED, INVALID_ARGUMENT).
  absl::Status Run();
  // Idempotent; may be called from any thread (a signal-waiting one).
  void Shutdown();
  // Called once, the first time the planner accepts the registration. Set before Run().
  void SetOnRegistered(std::function<void()> f) { on_registered_ = std::move(f); }

  // For tests and the startup line.
  std::string agent_id() const;
  int metrics_port() const { return metrics_.port(); }
  AgentMetrics* metrics() { return &metrics_; }
  const std::string& advertise_address() const { return advertise_; }
  bool registered() const { return registered_.HasBeenNotified(); }
  // Jobs with workers here now.
  int active_jobs() const;
  // Probe runs completed (ok or not) since start.
  int probes_done() const;

 private:
  Agent(AgentOptions options, std::unique_ptr<PlannerClient> planner, NodeFacts facts);

  absl::Status Register();
  // The stored measured profile of this fingerprint when it is fresh enough; nullopt otherwise.
  std::optional<cairn::v1::StoredHardwareProfile> FreshProfile();
  absl::Status ProbeAndUpload(const ProbeRun& run);
  void HeartbeatLoop();
  void WatchLoop();
  void WorkLoop();
  void OnAssignment(const cairn::v1::Assignment& a);
  void ReapJobsLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  JobHostConfig HostConfigLocked() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  bool stopping() const { return stop_.HasBeenNotified(); }
  // Sleeps `d` or until Shutdown; false when shutting down.
  bool Pause(absl::Duration d) const { return !stop_.WaitForNotificationWithTimeout(d); }

  const AgentOptions options_;
  std::unique_ptr<PlannerClient> planner_;
  const NodeFacts facts_;
  std::string advertise_;
  AgentMetrics metrics_;
  std::unique_ptr<ProbeRunner> prober_;

  std::function<void()> on_registered_;
  absl::Notification stop_;
  absl::Notification registered_;
  std::thread heartbeat_thread_, watch_thread_, work_thread_;

  mutable absl::Mutex mu_;
  std::string agent_id_ ABSL_GUARDED_BY(mu_);
  absl::Duration heartbeat_interval_ ABSL_GUARDED_BY(mu_) = absl::Seconds(10);
  std::map<std::string, std::unique_ptr<JobHost>> jobs_ ABSL_GUARDED_BY(mu_);
  // Probe requests to run, in order: a local one (job_id empty) or a coordinated probe job.
  std::deque<cairn::v1::Assignment> probe_queue_ ABSL_GUARDED_BY(mu_);
  std::set<std::string> probes_seen_ ABSL_GUARDED_BY(mu_);  // probe ids queued once already
  bool probing_ ABSL_GUARDED_BY(mu_) = false;
  std::string probing_job_ ABSL_GUARDED_BY(mu_);            // the probe job running ("" none)
  bool probe_cancelled_ ABSL_GUARDED_BY(mu_) = false;
  int probes_done_ ABSL_GUARDED_BY(mu_) = 0;
  bool need_register_ ABSL_GUARDED_BY(mu_) = false;
};

// The local address of a route to `planner_address` (HOST:PORT): the interface the node's other
// peers most likely reach it on. "127.0.0.1" when it cannot be found.
std::string LocalAddressTowards(const std::string& planner_address);

}  // namespace cairn::agent

#endif  // CAIRN_AGENT_AGENT_H_
