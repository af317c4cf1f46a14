// planner/server/job_logs.h — worker output agents send (Jobs.AppendJobLogs), kept in memory for
// `cairn jobs logs` (Jobs.GetJobLogs): the last `max_bytes_per_rank` of each rank of each job, for
// the `max_jobs` jobs written to most recently. Lost when the daemon restarts (the agents' work
// directories keep whole files); never written to the store, so a chatty job cannot fill the disk.
//
//   JobLogs logs({.max_bytes_per_rank = 1 << 20, .max_jobs = 64});
//   logs.Append("job-7", "agent-a", /*rank=*/0, /*attempt=*/1, "step 1/10 | loss 5.5\n");
//   std::vector<cairn::v1::JobLog> tail = logs.Get("job-7", {}, /*tail_bytes=*/4096);
//
// A later attempt of a job replaces the rank's earlier output. Thread-safe.
#ifndef CAIRN_PLANNER_SERVER_JOB_LOGS_H_
#define CAIRN_PLANNER_SERVER_JOB_LOGS_H_

#include <cstdint>
#include <list>
#include <map>
#include <string>
#include <vector>

#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "proto/cairn/v1/service.pb.h"

namespace cairn::planner {

struct JobLogsOptions {
  int64_t max_bytes_per_rank = int64_t{1} << 20;
  int max_jobs = 64;
};

class JobLogs {
 public:
  explicit JobLogs(JobLogsOptions options = {}) : options_(options) {}

  void Append(const std::string& job_id, const std::string& agent_id, int rank, int attempt,
              absl::string_view data);
  // Ranks in order (`ranks` empty: all), each the last `tail_bytes` kept (0: all kept).
  std::vector<cairn::v1::JobLog> Get(const std::string& job_id, const std::vector<int>& ranks,
                                     int64_t tail_bytes) const;
  // Bytes held in all (for tests and a metric).
  int64_t bytes() const;

 private:
  struct RankLog {
    std::string agent_id;
    int attempt = 0;
    std::string data;
    int64_t dropped = 0;
  };
  const JobLogsOptions options_;
  mutable absl::Mutex mu_;
  std::map<std::string, std::map<int, RankLog>> jobs_ ABSL_GUARDED_BY(mu_);
  std::list<std::string> recent_ ABSL_GUARDED_BY(mu_);  // most recently written last
};

}  // namespace cairn::planner

#endif  // CAIRN_PLANNER_SERVER_JOB_LOGS_H_
