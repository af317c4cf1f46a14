#include "planner/server/job_logs.h"

#include <algorithm>

namespace cairn::planner {

void JobLogs::Append(const std::string& job_id, const std::string& agent_id, int rank,
                     int attempt, absl::string_view data) {
  absl::MutexLock lock(&mu_);
  recent_.remove(job_id);
  recent_.push_back(job_id);
  while (static_cast<int>(recent_.size()) > options_.max_jobs) {
    jobs_.erase(recent_.front());
    recent_.pop_front();
  }
  RankLog& log = jobs_[job_id][rank];
  if (attempt > log.attempt) {  // a new attempt starts a new log
    log.data.clear();
    log.dropped = 0;
    log.attempt = attempt;
  }
  log.agent_id = agent_id;
  log.data.append(data.data(), data.size());
  const int64_t over = static_cast<int64_t>(log.data.size()) - options_.max_bytes_per_rank;
  if (over > 0) {
    log.data.erase(0, static_cast<size_t>(over));
    log.dropped += over;
  }
}

std::vector<cairn::v1::JobLog> JobLogs::Get(const std::string& job_id,
                                            const std::vector<int>& ranks,
                                            int64_t tail_bytes) const {
  absl::MutexLock lock(&mu_);
  std::vector<cairn::v1::JobLog> out;
  auto job = jobs_.find(job_id);
  if (job == jobs_.end()) return out;
  for (const auto& [rank, log] : job->second) {
    if (!ranks.empty() && std::find(ranks.begin(), ranks.end(), rank) == ranks.end()) continue;
    cairn::v1::JobLog l;
    l.set_rank(rank);
    l.set_agent_id(log.agent_id);
    l.set_attempt(log.attempt);
    int64_t skip = 0;
    if (tail_bytes > 0 && static_cast<int64_t>(log.data.size()) > tail_bytes) {
      skip = static_cast<int64_t>(log.data.size()) - tail_bytes;
    }
    l.set_data(log.data.substr(static_cast<size_t>(skip)));
    l.set_dropped_bytes(log.dropped + skip);
    out.push_back(std::move(l));
  }
  return out;
}

int64_t JobLogs::bytes() const {
  absl::MutexLock lock(&mu_);
  int64_t n = 0;
  for (const auto& [job, ranks] : jobs_) {
    for (const auto& [rank, log] : ranks) n += static_cast<int64_t>(log.data.size());
  }
  return n;
}

}  // namespace cairn::planner
