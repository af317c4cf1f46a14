// agent/job_host.h — the ranks of one job on this node: one cairn-train worker process per
// assigned rank, their logs, their per-step metrics, and what the planner hears about them.
//
//   JobHost host(config, planner, metrics, assignment);   // from the WatchAssignments stream
//   host.Start();                                          // its own thread from here on
//   ...
//   host.Cancel("cancelled by the planner");               // stops the workers (SIGTERM, SIGKILL)
//   host.Join();
//
// Life of the ranks (one thread per JobHost; workers are spawned from it, so they die with it):
//   1. GetJob and GetPlan from the planner; the plan is written to <work>/jobs/<job>/plan.json
//      (and the model to model.json when the job carries its ModelSpec).
//   2. One `cairn-train --model M --plan plan.json --data D --steps N --metrics F` per rank, with
//      RANK/WORLD_SIZE/LOCAL_RANK and the planner rendezvous (CAIRN_RDZV_*, key prefix
//      "attempt-<n>/", runtime/comm/planner_store.h) in its environment, Gloo listening on the
//      node's advertise address, --checkpoint-dir/--resume from the job's restart policy, stdout
//      and stderr to <work>/jobs/<job>/attempt-<n>/rank-<r>.log. Reported RUNNING.
//   3. Every poll interval: workers are polled; the metrics file rank 0 appends to (when this node
//      hosts rank 0) is read and each new step reported (ReportJobStatus with StepMetrics: measured
//      step time, tokens/s, loss, memory, MFU against the plan's, and the plan's predictions); new
//      log output is sent to the planner (AppendJobLogs) at most every log_upload_interval.
//   4. All workers exit 0: SUCCEEDED. A worker fails: the others here are stopped and the job is
//      reported FAILED naming the rank, this node and how it ended, with the tail of its log.
//      Cancel (the planner's cancel, a newer attempt, agent shutdown): workers stopped, nothing
//      reported. A report the planner refuses with FAILED_PRECONDITION (the job ended there):
//      workers stopped.
// Nothing is left running when Join() returns. Thread-safe.
#ifndef CAIRN_AGENT_JOB_HOST_H_
#define CAIRN_AGENT_JOB_HOST_H_

#include <atomic>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"
#include "agent/metrics.h"
#include "agent/planner_client.h"
#include "proto/cairn/v1/service.pb.h"
#include "runtime/comm/planner_store.h"

namespace cairn::agent {

struct JobHostConfig {
  std::string agent_id;
  std::string node_name;
  std::string work_dir;
  std::string train_binary;
  std::string advertise_address;        // CAIRN_HOST_ADDRESS of the workers
  runtime::PlannerConnection planner;   // the workers' rendezvous
  int threads_per_worker = 1;           // OPENBLAS_NUM_THREADS (CPU workers)
  std::vector<int> gpus;                // the agent's GPUs (CUDA_VISIBLE_DEVICES); empty: CPU
  absl::Duration worker_grace = absl::Seconds(10);
  absl::Duration poll_interval = absl::Milliseconds(100);
  absl::Duration log_upload_interval = absl::Seconds(1);
};

class JobHost {
 public:
  JobHost(JobHostConfig config, PlannerClient* planner, AgentMetrics* metrics,
          cairn::v1::Assignment assignment);
  ~JobHost();  // Cancel + Join

  // Starts the job's thread (once; later calls do nothing).
  void Start();
  bool started() const { return started_.load(); }
  // Stops the workers (asynchronously: Join waits for it). Nothing is reported to the planner.
  void Cancel(const std::string& reason);
  void Join();
  bool done() const { return done_.HasBeenNotified(); }

  const std::string& job_id() const { return assignment_.job_id(); }
  int attempt() const { return assignment_.attempt(); }
  int workers_running() const { return workers_running_.load(); }
  // How the ranks ended here: "succeeded", "failed", "cancelled" ("" while running).
  std::string result() const;

 private:
  void Run();
  absl::Status Prepare(std::vector<std::vector<std::string>>* argvs, std::string* dir);
  void Report(cairn::v1::JobState state, const std::string& message,
              const cairn::v1::StepMetrics* step);
  void ReadMetrics();
  void UploadLogs(bool final);
  void Finish(const std::string& result);

  const JobHostConfig config_;
  PlannerClient* const planner_;
  AgentMetrics* const metrics_;
  const cairn::v1::Assignment assignment_;

  absl::Notification cancel_;
  absl::Notification done_;
  std::thread thread_;
  std::atomic<int> workers_running_{0};
  std::atomic<bool> started_{false};

  // Owned by the job thread.
  cairn::v1::Plan plan_;
  std::string metrics_path_;
  size_t metrics_offset_ = 0;
  std::string metrics_partial_;
  double step_time_sum_ = 0;
  int steps_timed_ = 0;
  int64_t peak_bytes_ = 0;
  std::vector<std::string> log_paths_;
  std::vector<size_t> log_offsets_;
  absl::Time last_log_upload_ = absl::InfinitePast();
  bool planner_ended_job_ = false;

  mutable absl::Mutex mu_;
  std::string cancel_reason_ ABSL_GUARDED_BY(mu_);
  std::string result_ ABSL_GUARDED_BY(mu_);
};

// One JSON line of cairn-train --metrics as StepMetrics (measured fields only); nullopt for a
// line that is not one.
std::optional<cairn::v1::StepMetrics> ParseMetricsLine(const std::string& line);

}  // namespace cairn::agent

#endif  // CAIRN_AGENT_JOB_HOST_H_
