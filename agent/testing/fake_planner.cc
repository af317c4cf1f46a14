#include "agent/testing/fake_planner.h"

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"

namespace cairn::agent {

void FakePlanner::SetPlan(const std::string& plan_id, const cairn::v1::Plan& plan) {
  absl::MutexLock l(&mu_);
  plans_[plan_id] = plan;
}
void FakePlanner::SetJob(const cairn::v1::Job& job) {
  absl::MutexLock l(&mu_);
  jobs_[job.job_id()] = job;
}
void FakePlanner::Push(const cairn::v1::Assignment& a) {
  absl::MutexLock l(&mu_);
  pending_.push_back(a);
}
void FakePlanner::EndStream(absl::Status status) {
  absl::MutexLock l(&mu_);
  end_stream_ = status;
}
void FakePlanner::ForgetAgents() {
  absl::MutexLock l(&mu_);
  known_.clear();
}
void FakePlanner::FailReportsWith(absl::Status status) {
  absl::MutexLock l(&mu_);
  report_status_ = status;
}

std::vector<cairn::v1::ReportJobStatusRequest> FakePlanner::reports() const {
  absl::MutexLock l(&mu_);
  return reports_;
}
std::vector<cairn::v1::RegisterAgentRequest> FakePlanner::registrations() const {
  absl::MutexLock l(&mu_);
  return registrations_;
}
std::vector<cairn::v1::HardwareProfile> FakePlanner::hardware_profiles() const {
  absl::MutexLock l(&mu_);
  std::vector<cairn::v1::HardwareProfile> out;
  for (const auto& s : hardware_) out.push_back(s.profile());
  return out;
}
std::vector<cairn::v1::ModelProfile> FakePlanner::model_profiles() const {
  absl::MutexLock l(&mu_);
  return models_;
}
std::string FakePlanner::logs(const std::string& job_id, int rank) const {
  absl::MutexLock l(&mu_);
  auto it = logs_.find({job_id, rank});
  return it == logs_.end() ? "" : it->second;
}
int FakePlanner::heartbeats() const {
  absl::MutexLock l(&mu_);
  return heartbeats_;
}
int FakePlanner::watches() const {
  absl::MutexLock l(&mu_);
  return watches_;
}

bool FakePlanner::Await(const std::function<bool()>& cond, absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  while (!cond()) {
    if (absl::Now() > deadline) return false;
    absl::SleepFor(absl::Milliseconds(5));
  }
  return true;
}

bool FakePlanner::AwaitReport(
    const std::function<bool(const cairn::v1::ReportJobStatusRequest&)>& pred,
    absl::Duration timeout) {
  return Await(
      [&] {
        for (const auto& r : reports()) {
          if (pred(r)) return true;
        }
        return false;
      },
      timeout);
}

absl::StatusOr<cairn::v1::RegisterAgentResponse> FakePlanner::Register(
    const cairn::v1::RegisterAgentRequest& request) {
  absl::MutexLock l(&mu_);
  registrations_.push_back(request);
  cairn::v1::RegisterAgentResponse r;
  r.set_agent_id(request.agent_id().empty() ? next_id_ : request.agent_id());
  r.set_heartbeat_interval_s(0.02);
  known_.insert(r.agent_id());
  return r;
}

absl::StatusOr<cairn::v1::HeartbeatResponse> FakePlanner::Heartbeat(const std::string& agent_id) {
  absl::MutexLock l(&mu_);
  ++heartbeats_;
  if (!known_.count(agent_id)) return absl::NotFoundError("unknown agent " + agent_id);
  cairn::v1::HeartbeatResponse r;
  r.set_state(cairn::v1::AGENT_STATE_UP);
  return r;
}

absl::Status FakePlanner::WatchAssignments(
    const std::string& agent_id,
    const std::function<void(const cairn::v1::Assignment&)>& on_assignment) {
  {
    absl::MutexLock l(&mu_);
    ++watches_;
    if (!known_.count(agent_id)) return absl::NotFoundError("unknown agent " + agent_id);
  }
  while (true) {
    cairn::v1::Assignment next;
    {
      absl::MutexLock l(&mu_);
      auto ready = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
        return cancelled_ || end_stream_.has_value() || !pending_.empty();
      };
      mu_.Await(absl::Condition(&ready));
      if (cancelled_) return absl::CancelledError("cancelled");
      if (end_stream_.has_value()) {
        absl::Status s = *end_stream_;
        end_stream_.reset();
        return s;
      }
      next = pending_.front();
      pending_.pop_front();
    }
    on_assignment(next);
  }
}

void FakePlanner::CancelWatches() {
  absl::MutexLock l(&mu_);
  cancelled_ = true;
}

absl::StatusOr<cairn::v1::ListHardwareProfilesResponse> FakePlanner::ListHardwareProfiles() {
  absl::MutexLock l(&mu_);
  cairn::v1::ListHardwareProfilesResponse r;
  for (const auto& p : hardware_) *r.add_profiles() = p;
  return r;
}

absl::StatusOr<cairn::v1::StoredHardwareProfile> FakePlanner::GetHardwareProfile(
    const std::string& id) {
  absl::MutexLock l(&mu_);
  for (auto it = hardware_.rbegin(); it != hardware_.rend(); ++it) {
    if (it->id() == id) return *it;
  }
  return absl::NotFoundError("no profile " + id);
}

absl::StatusOr<cairn::v1::StoredHardwareProfile> FakePlanner::PutHardwareProfile(
    const cairn::v1::HardwareProfile& profile) {
  absl::MutexLock l(&mu_);
  cairn::v1::StoredHardwareProfile s;
  s.set_id("hw-1");
  s.set_version(static_cast<int>(hardware_.size()) + 1);
  s.set_created_at(absl::FormatTime(absl::RFC3339_full, absl::Now(), absl::UTCTimeZone()));
  *s.mutable_profile() = profile;
  hardware_.push_back(s);
  return s;
}

absl::StatusOr<cairn::v1::StoredModelProfile> FakePlanner::PutModelProfile(
    const cairn::v1::ModelProfile& profile) {
  absl::MutexLock l(&mu_);
  models_.push_back(profile);
  cairn::v1::StoredModelProfile s;
  s.set_id("mp-1");
  s.set_version(static_cast<int>(models_.size()));
  *s.mutable_profile() = profile;
  return s;
}

absl::StatusOr<cairn::v1::PlanResponse> FakePlanner::GetPlan(const std::string& plan_id) {
  absl::MutexLock l(&mu_);
  auto it = plans_.find(plan_id);
  if (it == plans_.end()) return absl::NotFoundError("no plan " + plan_id);
  cairn::v1::PlanResponse r;
  r.set_plan_id(plan_id);
  *r.mutable_result()->add_plans() = it->second;
  return r;
}

absl::StatusOr<cairn::v1::Job> FakePlanner::GetJob(const std::string& job_id) {
  absl::MutexLock l(&mu_);
  auto it = jobs_.find(job_id);
  if (it == jobs_.end()) return absl::NotFoundError("no job " + job_id);
  return it->second;
}

absl::Status FakePlanner::ReportJobStatus(const cairn::v1::ReportJobStatusRequest& request) {
  absl::MutexLock l(&mu_);
  reports_.push_back(request);
  return report_status_;
}

absl::Status FakePlanner::AppendJobLogs(const cairn::v1::AppendJobLogsRequest& request) {
  absl::MutexLock l(&mu_);
  logs_[{request.job_id(), request.rank()}] += request.data();
  return absl::OkStatus();
}

}  // namespace cairn::agent
