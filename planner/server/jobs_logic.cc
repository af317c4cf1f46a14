#include "planner/server/jobs_logic.h"

#include <algorithm>
#include <tuple>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "common/logging.h"
#include "common/status_macros.h"
#include "planner/server/validation.h"

namespace cairn::planner {
namespace {

using cairn::v1::Job;
using cairn::v1::JobState;

std::string StateName(JobState s) { return JobStateLabel(s); }

bool HostsRanks(const Job& job, const std::string& agent_id) {
  for (const auto& [rank, agent] : job.rank_agents()) {
    if (agent == agent_id) return true;
  }
  return false;
}

int WorldSize(const cairn::v1::SearchResponse& plan) {
  const cairn::v1::Plan& p = plan.plans(0);
  return p.num_nodes() * p.devices_per_node();
}

absl::Status NoFeasiblePlan(const std::string& plan_id, const cairn::v1::SearchResponse& plan) {
  return absl::FailedPreconditionError(
      absl::StrCat("plan '", plan_id, "' has no plan that fits, so there is nothing to run: ",
                   plan.infeasible_reason()));
}

}  // namespace

bool IsFinal(JobState state) {
  return state == cairn::v1::JOB_STATE_SUCCEEDED || state == cairn::v1::JOB_STATE_FAILED ||
         state == cairn::v1::JOB_STATE_CANCELLED;
}

JobsLogic::JobsLogic(Store* store, PlannerLogic* planner, AgentsLogic* agents, const Clock* clock,
                     Metrics* metrics)
    : store_(store), planner_(planner), agents_(agents), clock_(clock), metrics_(metrics) {}

absl::Status JobsLogic::Load() {
  absl::MutexLock lock(&mu_);
  active_.clear();
  counts_.clear();
  std::string after;
  while (true) {
    CAIRN_ASSIGN_OR_RETURN(std::vector<Job> page,
                           store_->ListJobs(kMaxPageSize, after, cairn::v1::JOB_STATE_UNSPECIFIED));
    for (Job& job : page) {
      ++counts_[job.state()];
      after = job.job_id();
      if (IsFinal(job.state())) continue;
      Active a;
      absl::StatusOr<PlanRecord> plan = store_->GetPlan(job.plan_id());
      if (!plan.ok() || plan->result.plans_size() == 0) {
        CAIRN_LOG(WARNING) << "job " << job.job_id() << ": its plan " << job.plan_id()
                           << " cannot be read; the job stays as it is and is never scheduled";
        continue;
      }
      a.world_size = WorldSize(plan->result);
      a.job = std::move(job);
      active_.emplace(a.job.job_id(), std::move(a));
    }
    if (static_cast<int>(page.size()) < kMaxPageSize) break;
  }
  for (int s = cairn::v1::JobState_MIN; s <= cairn::v1::JobState_MAX; ++s) {
    if (cairn::v1::JobState_IsValid(s)) metrics_->SetJobs(static_cast<JobState>(s), counts_[s]);
  }
  return absl::OkStatus();
}

std::shared_ptr<SearchTicket> JobsLogic::Submit(const cairn::v1::SubmitJobRequest& request,
                                                JobDone done) {
  if (absl::Status s = ValidateSubmitJobRequest(request); !s.ok()) {
    done(s);
    return nullptr;
  }
  if (!request.plan_id().empty()) {
    absl::StatusOr<PlanRecord> plan = store_->GetPlan(request.plan_id());
    if (!plan.ok()) {
      if (plan.status().code() == absl::StatusCode::kNotFound) {
        done(absl::NotFoundError(absl::StrCat("plan_id '", request.plan_id(),
                                              "': no such plan (ListPlans shows the stored ones)")));
      } else {
        done(plan.status());
      }
      return nullptr;
    }
    done(CreateJob(request, request.plan_id(), plan->result));
    return nullptr;
  }
  return planner_->Plan(request.search(), nullptr,
                        [this, request, done](absl::StatusOr<cairn::v1::PlanResponse> r) {
                          if (!r.ok()) {
                            done(absl::Status(r.status().code(),
                                              absl::StrCat("search: ", r.status().message())));
                            return;
                          }
                          done(CreateJob(request, r->plan_id(), r->result()));
                        });
}

absl::StatusOr<Job> JobsLogic::SubmitAndWait(const cairn::v1::SubmitJobRequest& request) {
  absl::Notification finished;
  absl::StatusOr<Job> out;
  Submit(request, [&](absl::StatusOr<Job> job) {
    out = std::move(job);
    finished.Notify();
  });
  finished.WaitForNotification();
  return out;
}

absl::StatusOr<Job> JobsLogic::CreateJob(const cairn::v1::SubmitJobRequest& request,
                                         const std::string& plan_id,
                                         const cairn::v1::SearchResponse& plan) {
  if (plan.plans_size() == 0) return NoFeasiblePlan(plan_id, plan);
  const int world_size = WorldSize(plan);
  Job job;
  job.set_name(request.name());
  job.set_plan_id(plan_id);
  job.set_data_path(request.data_path());
  job.set_steps(request.steps());
  job.set_state(cairn::v1::JOB_STATE_PENDING);
  absl::MutexLock lock(&mu_);
  TryAssignLocked(&job, world_size);
  CAIRN_ASSIGN_OR_RETURN(Job stored, store_->CreateJob(job, Rfc3339(clock_->Now())));
  CountLocked(cairn::v1::JOB_STATE_UNSPECIFIED, stored.state());
  Active a;
  a.job = stored;
  a.world_size = world_size;
  active_.emplace(stored.job_id(), std::move(a));
  CAIRN_LOG(INFO) << "job " << stored.job_id() << " submitted: plan " << plan_id << ", "
                  << world_size << " ranks, " << StateName(stored.state());
  if (stored.state() == cairn::v1::JOB_STATE_ASSIGNED) {
    SendAssignmentsLocked(stored, world_size, /*cancel=*/false);
  }
  return stored;
}

bool JobsLogic::TryAssignLocked(Job* job, int world_size) {
  std::map<std::string, int> used;
  for (const auto& [id, a] : active_) {
    if (a.job.state() != cairn::v1::JOB_STATE_ASSIGNED &&
        a.job.state() != cairn::v1::JOB_STATE_RUNNING) {
      continue;
    }
    for (const auto& [rank, agent] : a.job.rank_agents()) ++used[agent];
  }
  std::vector<std::pair<std::string, int>> take;  // agent -> ranks, in agent-id order
  int free_total = 0, free_agents = 0, remaining = world_size;
  for (const cairn::v1::AgentInfo& agent : agents_->Snapshot()) {
    if (agent.state() != cairn::v1::AGENT_STATE_UP) continue;
    const int free = agent.num_devices() - used[agent.agent_id()];
    if (free <= 0) continue;
    free_total += free;
    ++free_agents;
    if (remaining > 0) {
      const int n = std::min(free, remaining);
      take.emplace_back(agent.agent_id(), n);
      remaining -= n;
    }
  }
  if (remaining > 0) {
    job->set_message(absl::StrCat("waiting for ", world_size, " free devices on UP agents (",
                                  free_total, " free on ", free_agents,
                                  " agents now); start or register more agents"));
    return false;
  }
  job->clear_rank_agents();
  int rank = 0;
  for (const auto& [agent, n] : take) {
    for (int i = 0; i < n; ++i) (*job->mutable_rank_agents())[rank++] = agent;
  }
  job->set_state(cairn::v1::JOB_STATE_ASSIGNED);
  job->set_message(absl::StrCat(world_size, " ranks on ", take.size(), " agents"));
  return true;
}

void JobsLogic::SendAssignmentsLocked(const Job& job, int world_size, bool cancel) {
  std::map<std::string, cairn::v1::Assignment> per_agent;
  for (const auto& [rank, agent] : job.rank_agents()) {
    cairn::v1::Assignment& a = per_agent[agent];
    a.set_job_id(job.job_id());
    a.set_plan_id(job.plan_id());
    a.set_world_size(world_size);
    a.set_cancel(cancel);
    a.add_ranks(rank);
  }
  for (auto& [agent, a] : per_agent) {
    std::sort(a.mutable_ranks()->begin(), a.mutable_ranks()->end());
    for (auto& [id, w] : assignment_watchers_) {
      if (w.key == agent) w.sink->Send(a);
    }
  }
}

void JobsLogic::CountLocked(JobState from, JobState to) {
  if (from == to) return;
  if (from != cairn::v1::JOB_STATE_UNSPECIFIED) metrics_->SetJobs(from, --counts_[from]);
  metrics_->SetJobs(to, ++counts_[to]);
}

absl::StatusOr<Job> JobsLogic::CommitLocked(Active* a, Job updated,
                                            const cairn::v1::StepMetrics* step) {
  CAIRN_ASSIGN_OR_RETURN(Job stored, store_->UpdateJob(updated, Rfc3339(clock_->Now())));
  const JobState before = a->job.state();
  CountLocked(before, stored.state());
  a->job = stored;
  cairn::v1::JobEvent event;
  *event.mutable_job() = stored;
  if (step != nullptr) *event.mutable_step() = *step;
  const bool final_state = IsFinal(stored.state());
  for (auto it = job_watchers_.begin(); it != job_watchers_.end();) {
    if (it->second.key != stored.job_id()) {
      ++it;
      continue;
    }
    it->second.sink->Send(event);
    if (final_state) {
      it->second.sink->Close(absl::OkStatus());
      it = job_watchers_.erase(it);
    } else {
      ++it;
    }
  }
  if (before == cairn::v1::JOB_STATE_PENDING && stored.state() == cairn::v1::JOB_STATE_ASSIGNED) {
    SendAssignmentsLocked(stored, a->world_size, /*cancel=*/false);
  }
  if (final_state) {
    CAIRN_LOG(INFO) << "job " << stored.job_id() << " " << StateName(stored.state()) << ": "
                    << stored.message();
    // Agents still running ranks of the job stop them (a job that succeeded has none running).
    if (stored.state() != cairn::v1::JOB_STATE_SUCCEEDED) {
      SendAssignmentsLocked(stored, a->world_size, /*cancel=*/true);
    }
    active_.erase(stored.job_id());  // `a` dangles from here on
    SchedulePendingLocked();
  }
  return stored;
}

void JobsLogic::SchedulePendingLocked() {
  std::vector<Active*> pending;
  for (auto& [id, a] : active_) {
    if (a.job.state() == cairn::v1::JOB_STATE_PENDING) pending.push_back(&a);
  }
  std::sort(pending.begin(), pending.end(), [](const Active* x, const Active* y) {
    return std::tie(x->job.created_at(), x->job.job_id()) <
           std::tie(y->job.created_at(), y->job.job_id());
  });
  for (Active* a : pending) {
    Job job = a->job;
    const std::string old_message = job.message();
    if (!TryAssignLocked(&job, a->world_size)) {
      if (job.message() != old_message) a->job.set_message(job.message());
      continue;
    }
    if (absl::StatusOr<Job> s = CommitLocked(a, std::move(job), nullptr); !s.ok()) {
      CAIRN_LOG(WARNING) << "job " << a->job.job_id() << " could not be assigned: " << s.status();
    }
  }
}

absl::StatusOr<Job> JobsLogic::LoadEnded(const std::string& job_id) {
  absl::StatusOr<Job> job = store_->GetJob(job_id);
  if (!job.ok() && job.status().code() == absl::StatusCode::kNotFound) {
    return absl::NotFoundError(
        absl::StrCat("job '", job_id, "' not found (ListJobs shows the jobs)"));
  }
  return job;
}

absl::StatusOr<Job> JobsLogic::Get(const cairn::v1::GetJobRequest& request) {
  CAIRN_RETURN_IF_ERROR(ValidateGetJobRequest(request));
  absl::MutexLock lock(&mu_);
  auto it = active_.find(request.job_id());
  if (it != active_.end()) return it->second.job;
  return LoadEnded(request.job_id());
}

absl::StatusOr<cairn::v1::ListJobsResponse> JobsLogic::List(
    const cairn::v1::ListJobsRequest& request) {
  CAIRN_RETURN_IF_ERROR(ValidateListJobsRequest(request));
  const int limit = EffectivePageSize(request.page_size());
  CAIRN_ASSIGN_OR_RETURN(std::vector<Job> page,
                         store_->ListJobs(limit + 1, request.page_token(), request.state()));
  cairn::v1::ListJobsResponse out;
  out.set_next_page_token(TrimToPage(&page, limit, [](const Job& j) { return j.job_id(); }));
  for (Job& j : page) *out.add_jobs() = std::move(j);
  return out;
}

absl::StatusOr<Job> JobsLogic::Cancel(const cairn::v1::CancelJobRequest& request) {
  CAIRN_RETURN_IF_ERROR(ValidateCancelJobRequest(request));
  absl::MutexLock lock(&mu_);
  auto it = active_.find(request.job_id());
  if (it == active_.end()) {
    CAIRN_ASSIGN_OR_RETURN(Job job, LoadEnded(request.job_id()));
    return absl::FailedPreconditionError(absl::StrCat("job '", job.job_id(), "' already ended (",
                                                      StateName(job.state()),
                                                      "); there is nothing to cancel"));
  }
  Job job = it->second.job;
  job.set_state(cairn::v1::JOB_STATE_CANCELLED);
  job.set_message("cancelled by a client");
  return CommitLocked(&it->second, std::move(job), nullptr);
}

absl::StatusOr<cairn::v1::ReportJobStatusResponse> JobsLogic::Report(
    const cairn::v1::ReportJobStatusRequest& request) {
  CAIRN_RETURN_IF_ERROR(ValidateReportJobStatusRequest(request));
  absl::MutexLock lock(&mu_);
  auto it = active_.find(request.job_id());
  if (it == active_.end()) {
    CAIRN_ASSIGN_OR_RETURN(Job job, LoadEnded(request.job_id()));
    return absl::FailedPreconditionError(absl::StrCat("job '", job.job_id(), "' already ended (",
                                                      StateName(job.state()),
                                                      "); stop its workers"));
  }
  Active& a = it->second;
  if (!HostsRanks(a.job, request.agent_id())) {
    return absl::FailedPreconditionError(absl::StrCat(
        "agent '", request.agent_id(), "' hosts no ranks of job '", request.job_id(),
        "' (state ", StateName(a.job.state()), "); report only the jobs of your assignments"));
  }
  Job job = a.job;
  const cairn::v1::StepMetrics* step = request.has_step() ? &request.step() : nullptr;
  if (step != nullptr && (!job.has_last_step() || step->step() >= job.last_step().step())) {
    *job.mutable_last_step() = *step;
  }
  switch (request.state()) {
    case cairn::v1::JOB_STATE_FAILED:
      job.set_state(cairn::v1::JOB_STATE_FAILED);
      job.set_message(absl::StrCat("agent ", request.agent_id(), ": ",
                                   request.message().empty() ? "failed" : request.message()));
      break;
    case cairn::v1::JOB_STATE_SUCCEEDED: {
      // Kept in the job itself (not in memory) so a restarted planner still knows who finished.
      std::set<std::string> finished(job.finished_agents().begin(), job.finished_agents().end());
      finished.insert(request.agent_id());
      job.clear_finished_agents();
      for (const std::string& f : finished) job.add_finished_agents(f);
      std::set<std::string> hosts;
      for (const auto& [rank, agent] : job.rank_agents()) hosts.insert(agent);
      if (std::includes(finished.begin(), finished.end(), hosts.begin(), hosts.end())) {
        job.set_state(cairn::v1::JOB_STATE_SUCCEEDED);
        job.set_message(request.message().empty() ? "finished" : request.message());
      } else {
        job.set_state(cairn::v1::JOB_STATE_RUNNING);
        job.set_message(absl::StrCat(finished.size(), " of ", hosts.size(), " agents finished"));
      }
      break;
    }
    default:  // RUNNING, or only a step
      job.set_state(cairn::v1::JOB_STATE_RUNNING);
      if (!request.message().empty()) job.set_message(request.message());
      break;
  }
  CAIRN_RETURN_IF_ERROR(CommitLocked(&a, std::move(job), step).status());
  return cairn::v1::ReportJobStatusResponse();
}

absl::StatusOr<WatchId> JobsLogic::WatchJob(const cairn::v1::WatchJobRequest& request,
                                            EventSink<cairn::v1::JobEvent>* sink) {
  CAIRN_RETURN_IF_ERROR(ValidateWatchJobRequest(request));
  absl::MutexLock lock(&mu_);
  if (shutting_down_) return absl::UnavailableError("the planner is shutting down; watch again");
  CAIRN_RETURN_IF_ERROR(CheckWatchLimitLocked());
  cairn::v1::JobEvent event;
  auto it = active_.find(request.job_id());
  if (it == active_.end()) {
    CAIRN_ASSIGN_OR_RETURN(*event.mutable_job(), LoadEnded(request.job_id()));
    sink->Send(event);
    sink->Close(absl::OkStatus());
    return next_watch_++;
  }
  *event.mutable_job() = it->second.job;
  sink->Send(event);
  const WatchId id = next_watch_++;
  job_watchers_.emplace(id, Watcher<cairn::v1::JobEvent>{request.job_id(), sink});
  return id;
}

absl::StatusOr<WatchId> JobsLogic::WatchAssignments(
    const cairn::v1::WatchAssignmentsRequest& request, EventSink<cairn::v1::Assignment>* sink) {
  CAIRN_RETURN_IF_ERROR(ValidateWatchAssignmentsRequest(request));
  CAIRN_RETURN_IF_ERROR(agents_->Get(request.agent_id()).status());
  absl::MutexLock lock(&mu_);
  if (shutting_down_) return absl::UnavailableError("the planner is shutting down; watch again");
  CAIRN_RETURN_IF_ERROR(CheckWatchLimitLocked());
  for (const auto& [job_id, a] : active_) {
    if (a.job.state() != cairn::v1::JOB_STATE_ASSIGNED &&
        a.job.state() != cairn::v1::JOB_STATE_RUNNING) {
      continue;
    }
    cairn::v1::Assignment assignment;
    for (const auto& [rank, agent] : a.job.rank_agents()) {
      if (agent == request.agent_id()) assignment.add_ranks(rank);
    }
    if (assignment.ranks().empty()) continue;
    std::sort(assignment.mutable_ranks()->begin(), assignment.mutable_ranks()->end());
    assignment.set_job_id(job_id);
    assignment.set_plan_id(a.job.plan_id());
    assignment.set_world_size(a.world_size);
    sink->Send(assignment);
  }
  const WatchId id = next_watch_++;
  assignment_watchers_.emplace(id, Watcher<cairn::v1::Assignment>{request.agent_id(), sink});
  return id;
}

absl::Status JobsLogic::CheckWatchLimitLocked() const {
  const size_t streams = job_watchers_.size() + assignment_watchers_.size();
  if (streams < static_cast<size_t>(kMaxWatchStreams)) return absl::OkStatus();
  return absl::ResourceExhaustedError(absl::StrCat(
      streams, " WatchJob and WatchAssignments streams are open, the most the planner keeps (",
      kMaxWatchStreams, "); close some, or poll GetJob"));
}

void JobsLogic::Unwatch(WatchId id) {
  absl::MutexLock lock(&mu_);
  job_watchers_.erase(id);
  assignment_watchers_.erase(id);
}

void JobsLogic::OnAgentsUp(const std::vector<std::string>&) {
  absl::MutexLock lock(&mu_);
  SchedulePendingLocked();
}

void JobsLogic::OnAgentsDown(const std::vector<std::string>& agent_ids) {
  absl::MutexLock lock(&mu_);
  std::vector<std::string> lost;
  for (const auto& [job_id, a] : active_) {
    for (const std::string& agent : agent_ids) {
      if (HostsRanks(a.job, agent)) {
        lost.push_back(job_id);
        break;
      }
    }
  }
  for (const std::string& job_id : lost) {
    auto it = active_.find(job_id);
    if (it == active_.end()) continue;
    Job job = it->second.job;
    std::string down;
    for (const std::string& agent : agent_ids) {
      if (HostsRanks(job, agent)) absl::StrAppend(&down, down.empty() ? "" : ", ", agent);
    }
    job.set_state(cairn::v1::JOB_STATE_FAILED);
    job.set_message(absl::StrCat("agent ", down,
                                 " stopped sending heartbeats (--agent-timeout); its ranks are "
                                 "lost. Submit the job again"));
    if (absl::StatusOr<Job> s = CommitLocked(&it->second, std::move(job), nullptr); !s.ok()) {
      CAIRN_LOG(WARNING) << "job " << job_id << " could not be marked failed: " << s.status();
    }
  }
  // Devices of agents that went down are no longer free either: nothing new can be placed, but
  // CommitLocked already retried the pending jobs for the devices the failed jobs released.
}

void JobsLogic::Shutdown() {
  absl::MutexLock lock(&mu_);
  shutting_down_ = true;
  const absl::Status closing =
      absl::UnavailableError("the planner is shutting down; reconnect when it is back");
  for (auto& [id, w] : job_watchers_) w.sink->Close(closing);
  for (auto& [id, w] : assignment_watchers_) w.sink->Close(closing);
  job_watchers_.clear();
  assignment_watchers_.clear();
}

}  // namespace cairn::planner
