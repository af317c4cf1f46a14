// planner/server/jobs_logic.h — the Jobs service's logic: submit, rank assignment to agents,
// cancel, status reports from agents, and the WatchJob / WatchAssignments streams.
//
//   JobsLogic jobs(&store, &planner, &agents, &clock, &metrics);
//   CAIRN_RETURN_IF_ERROR(jobs.Load());     // jobs still active in the last run
//   agents.SetListener(&jobs);
//   jobs.Submit(request, [](absl::StatusOr<cairn::v1::Job> job) { ... });
//
// Life of a job:
//   PENDING   -> ASSIGNED  enough free devices on UP agents: one rank per device, filling agents in
//                          agent-id order (lowest first), ranks 0..world_size-1 in that order; each
//                          agent gets an Assignment with its ranks on its WatchAssignments stream.
//   ASSIGNED  -> RUNNING   an agent reports RUNNING, or a step.
//   RUNNING   -> SUCCEEDED every agent hosting ranks reported SUCCEEDED.
//   *         -> FAILED    an agent reports FAILED, or an agent hosting ranks goes DOWN.
//   *         -> CANCELLED CancelJob.
// world_size is the plan's device count (num_nodes x devices_per_node). A device hosts at most one
// rank of one active (ASSIGNED or RUNNING) job.
//
// Agents (issue 9): SubmitJobRequest.plan_for_agents plans the search for the UP agents' measured
// profiles (agent_planning.h); a plan given whole is stored first. Restart policy: a job with
// max_restarts whose agent reports FAILED or goes DOWN goes back to PENDING as attempt + 1 (the old
// attempt's agents get a cancel), placed again on free devices, or, when fewer devices are UP and
// the job has its search, replanned for the UP agents' nodes first; its workers resume from the
// job's checkpoint_dir. Steps fold into Job.measurement (measured vs predicted). Worker output is
// kept in memory (job_logs.h). ProbeAgents sends local probe requests, or creates a probe job (a
// Job with `probe` set) that holds the chosen agents' devices while their probe processes meet
// through the job's rendezvous; the agents report it like a job. Pending jobs are retried, oldest first, whenever
// devices free up or agents come up. When a job ends, the agents that still host its ranks get an
// Assignment with cancel = true. Every change is written to the store before it is announced, so
// a WatchJob client never sees a state a restart would lose.
//
// Thread-safe. Lock order: JobsLogic before AgentsLogic (JobsLogic reads agent snapshots while
// holding its lock; AgentsLogic calls the listener without its own).
#ifndef CAIRN_PLANNER_SERVER_JOBS_LOGIC_H_
#define CAIRN_PLANNER_SERVER_JOBS_LOGIC_H_

#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "planner/server/agents_logic.h"
#include "planner/server/clock.h"
#include "planner/server/event_sink.h"
#include "planner/server/job_logs.h"
#include "planner/server/metrics.h"
#include "planner/server/planner_logic.h"
#include "planner/store/store.h"
#include "proto/cairn/v1/service.pb.h"

namespace cairn::planner {

class JobsLogic final : public AgentsLogic::Listener {
 public:
  using JobDone = std::function<void(absl::StatusOr<cairn::v1::Job>)>;

  // Every pointer must outlive this object.
  JobsLogic(Store* store, PlannerLogic* planner, AgentsLogic* agents, const Clock* clock,
            Metrics* metrics);

  // Reads the active jobs (and the count of each state, for the metrics). Call once, before serving.
  absl::Status Load();

  // Creates a job from request.plan_id, or from request.search after running it (Planner rules:
  // cache, queue, limits). `done` runs exactly once, maybe before Submit returns. The ticket
  // cancels the search (nothing to cancel for a plan_id). Errors: INVALID_ARGUMENT, NOT_FOUND (no
  // such plan), FAILED_PRECONDITION (the plan has no feasible plan), the search's errors.
  std::shared_ptr<SearchTicket> Submit(const cairn::v1::SubmitJobRequest& request, JobDone done);
  absl::StatusOr<cairn::v1::Job> SubmitAndWait(const cairn::v1::SubmitJobRequest& request);

  absl::StatusOr<cairn::v1::Job> Get(const cairn::v1::GetJobRequest& request);
  absl::StatusOr<cairn::v1::ListJobsResponse> List(const cairn::v1::ListJobsRequest& request);
  // FAILED_PRECONDITION when the job already ended.
  absl::StatusOr<cairn::v1::Job> Cancel(const cairn::v1::CancelJobRequest& request);
  // FAILED_PRECONDITION when the agent hosts no ranks of the job or the job already ended (the
  // message says to stop the workers).
  absl::StatusOr<cairn::v1::ReportJobStatusResponse> Report(
      const cairn::v1::ReportJobStatusRequest& request);

  // Streams. The sink gets the current state at once (the job; the agent's current assignments),
  // then every change. A job's stream is closed (OK) after the event of its final state. At most
  // kMaxWatchStreams (validation.h) are open at once (RESOURCE_EXHAUSTED beyond).
  absl::StatusOr<WatchId> WatchJob(const cairn::v1::WatchJobRequest& request,
                                   EventSink<cairn::v1::JobEvent>* sink);
  absl::StatusOr<WatchId> WatchAssignments(const cairn::v1::WatchAssignmentsRequest& request,
                                           EventSink<cairn::v1::Assignment>* sink);
  // Either kind; after it returns the sink is never called again.
  void Unwatch(WatchId id);

  // Worker output from agents (role agent; the agent must host ranks of the job, or have hosted
  // them when it ended) and `cairn jobs logs` (NOT_FOUND for an unknown job).
  absl::StatusOr<cairn::v1::AppendJobLogsResponse> AppendLogs(
      const cairn::v1::AppendJobLogsRequest& request);
  absl::StatusOr<cairn::v1::GetJobLogsResponse> GetLogs(
      const cairn::v1::GetJobLogsRequest& request);

  // Agents.ProbeAgents. NOT_FOUND naming an agent that is not known; FAILED_PRECONDITION when
  // none of the asked agents is UP.
  absl::StatusOr<cairn::v1::ProbeAgentsResponse> ProbeAgents(
      const cairn::v1::ProbeAgentsRequest& request);

  // AgentsLogic::Listener.
  void OnAgentsUp(const std::vector<std::string>& agent_ids) override;
  void OnAgentsDown(const std::vector<std::string>& agent_ids) override;

  // Closes every stream with UNAVAILABLE and refuses new ones. Idempotent.
  void Shutdown();

 private:
  struct Active {
    cairn::v1::Job job;
    int world_size = 0;
  };
  template <typename T>
  struct Watcher {
    std::string key;  // job id or agent id
    EventSink<T>* sink;
  };

  absl::StatusOr<cairn::v1::Job> CreateJob(const cairn::v1::SubmitJobRequest& request,
                                           const std::string& plan_id,
                                           const cairn::v1::SearchResponse& plan);
  // plan_for_agents: fills the search's hardware/model profile ids and node counts.
  absl::Status ResolveForAgents(cairn::v1::SubmitJobRequest* request);
  // The restart policy: when `a` has restarts left, its old attempt is cancelled on its agents
  // and the job is started again (attempt + 1): placed at once, or replanned (queued in
  // replans_, run by RunReplans after the lock is released). False when it has none left.
  bool MaybeRestartLocked(Active* a, const std::string& reason) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Replans queued by MaybeRestartLocked. Call without mu_ held.
  void RunReplans();
  void OnReplanned(const std::string& job_id, int attempt,
                   absl::StatusOr<cairn::v1::PlanResponse> plan);
  cairn::v1::Assignment AssignmentFor(const cairn::v1::Job& job, int world_size,
                                      const std::string& agent, bool cancel) const;
  // Tries to place `job` on free devices; fills rank_agents and sets ASSIGNED. False if it does not
  // fit (the job's message then says what it waits for).
  bool TryAssignLocked(cairn::v1::Job* job, int world_size) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Persists `updated`, then updates counts, announces it and, for a final state, releases its
  // agents and closes its watchers.
  absl::StatusOr<cairn::v1::Job> CommitLocked(Active* a, cairn::v1::Job updated,
                                              const cairn::v1::StepMetrics* step)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void SchedulePendingLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void SendAssignmentsLocked(const cairn::v1::Job& job, int world_size, bool cancel)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void CountLocked(cairn::v1::JobState from, cairn::v1::JobState to)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::StatusOr<cairn::v1::Job> LoadEnded(const std::string& job_id)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // RESOURCE_EXHAUSTED when kMaxWatchStreams streams are open.
  absl::Status CheckWatchLimitLocked() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  Store* const store_;
  PlannerLogic* const planner_;
  AgentsLogic* const agents_;
  const Clock* const clock_;
  Metrics* const metrics_;

  absl::Mutex mu_;
  bool shutting_down_ ABSL_GUARDED_BY(mu_) = false;
  std::map<std::string, Active> active_ ABSL_GUARDED_BY(mu_);  // PENDING, ASSIGNED, RUNNING
  std::map<int, int> counts_ ABSL_GUARDED_BY(mu_);              // JobState -> jobs
  WatchId next_watch_ ABSL_GUARDED_BY(mu_) = 1;
  std::map<WatchId, Watcher<cairn::v1::JobEvent>> job_watchers_ ABSL_GUARDED_BY(mu_);
  std::map<WatchId, Watcher<cairn::v1::Assignment>> assignment_watchers_ ABSL_GUARDED_BY(mu_);
  // Jobs that FAILED lately (newest last, at most kRecentFailures), with when: an agent of theirs
  // found DOWN afterwards whose last heartbeat came before the failure is named in the job's
  // message (OnAgentsDown). A killed node is usually noticed first by the workers of the nodes
  // left, as a lost connection, seconds before the planner misses its heartbeats.
  static constexpr int kRecentFailures = 64;
  std::deque<std::pair<std::string, absl::Time>> recent_failures_ ABSL_GUARDED_BY(mu_);
  void NameSilentAgentsLocked(const std::vector<std::string>& down_agent_ids)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // (job id, attempt) of restarted jobs that need a plan for the devices still UP.
  std::vector<std::pair<std::string, int>> replans_ ABSL_GUARDED_BY(mu_);
  int next_probe_ ABSL_GUARDED_BY(mu_) = 1;
  JobLogs logs_;
};

// True for SUCCEEDED, FAILED and CANCELLED.
bool IsFinal(cairn::v1::JobState state);

}  // namespace cairn::planner

#endif  // CAIRN_PLANNER_SERVER_JOBS_LOGIC_H_
