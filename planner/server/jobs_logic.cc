#include "planner/server/jobs_logic.h"

#include <algorithm>
#include <tuple>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "common/logging.h"
#include "common/status_macros.h"
#include "planner/server/agent_planning.h"
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
      if (job.has_probe()) {
        // A coordinated probe cannot survive the planner: its ranks met through a rendezvous the
        // agents gave up on. The agents see it end and stop their probe processes.
        job.set_state(cairn::v1::JOB_STATE_FAILED);
        job.set_message("the planner restarted during the probe; run `cairn agents probe` again");
        absl::StatusOr<Job> ended = store_->UpdateJob(job, Rfc3339(clock_->Now()));
        if (ended.ok()) {
          --counts_[cairn::v1::JOB_STATE_RUNNING];
          ++counts_[cairn::v1::JOB_STATE_FAILED];
        }
        continue;
      }
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

std::shared_ptr<SearchTicket> JobsLogic::Submit(const cairn::v1::SubmitJobRequest& original,
                                                JobDone done) {
  cairn::v1::SubmitJobRequest request = original;
  if (request.plan_for_agents() && request.has_search()) {
    if (absl::Status s = ResolveForAgents(&request); !s.ok()) {
      done(s);
      return nullptr;
    }
  }
  if (absl::Status s = ValidateSubmitJobRequest(request); !s.ok()) {
    done(s);
    return nullptr;
  }
  if (request.has_plan()) {
    // A plan given whole: stored like a search's result, then run.
    PlanRecord record;
    *record.result.add_plans() = request.plan();
    const cairn::v1::Plan& p = request.plan();
    record.summary.set_model_name(p.model_name());
    record.summary.set_num_devices(p.num_nodes() * p.devices_per_node());
    record.summary.set_global_batch_size(p.global_batch_size());
    record.summary.set_seq_len(p.seq_len());
    record.summary.set_step_time_s(p.prediction().step_time_s());
    record.summary.set_tokens_per_s(p.prediction().tokens_per_s());
    absl::StatusOr<std::string> id = store_->PutPlan(record, Rfc3339(clock_->Now()));
    if (!id.ok()) {
      done(id.status());
      return nullptr;
    }
    done(CreateJob(request, *id, record.result));
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
  job.set_attempt(1);
  job.set_max_restarts(request.max_restarts());
  job.set_checkpoint_dir(request.checkpoint_dir());
  job.set_checkpoint_every(request.checkpoint_every());
  if (request.has_search()) *job.mutable_search() = request.search();
  const cairn::v1::Plan& best = plan.plans(0);
  job.mutable_measurement()->set_predicted_step_time_s(best.prediction().step_time_s());
  job.mutable_measurement()->set_hardware_profile(best.provenance().hardware_profile());
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
    if (id == job->job_id()) continue;  // a restarting job's own devices are free for it
    if (a.job.state() != cairn::v1::JOB_STATE_ASSIGNED &&
        a.job.state() != cairn::v1::JOB_STATE_RUNNING) {
      continue;
    }
    for (const auto& [rank, agent] : a.job.rank_agents()) ++used[agent];
  }
  if (job->has_probe()) {
    // A coordinated probe runs on the agents it was made for, on all their devices at once.
    std::map<std::string, int> want;
    for (const auto& [rank, agent] : job->rank_agents()) ++want[agent];
    for (const auto& [agent, n] : want) {
      absl::StatusOr<cairn::v1::AgentInfo> info = agents_->Get(agent);
      if (!info.ok() || info->state() != cairn::v1::AGENT_STATE_UP ||
          info->num_devices() - used[agent] < n) {
        job->set_message(absl::StrCat("probe waits for agent ", agent,
                                      " to be UP with every device free"));
        return false;
      }
    }
    job->set_state(cairn::v1::JOB_STATE_ASSIGNED);
    job->set_message(absl::StrCat("probe: ", world_size, " ranks on ", want.size(), " agents"));
    return true;
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

cairn::v1::Assignment JobsLogic::AssignmentFor(const Job& job, int world_size,
                                               const std::string& agent, bool cancel) const {
  cairn::v1::Assignment a;
  a.set_job_id(job.job_id());
  a.set_plan_id(job.plan_id());
  a.set_world_size(world_size);
  a.set_cancel(cancel);
  a.set_attempt(std::max(1, job.attempt()));
  for (const auto& [rank, host] : job.rank_agents()) {
    if (host == agent) a.add_ranks(rank);
  }
  std::sort(a.mutable_ranks()->begin(), a.mutable_ranks()->end());
  if (job.has_probe()) {
    *a.mutable_probe() = job.probe();
    a.mutable_probe()->set_probe_id(job.job_id());  // the rendezvous key space is the job's
    *a.mutable_probe()->mutable_ranks() = a.ranks();
  }
  return a;
}

void JobsLogic::SendAssignmentsLocked(const Job& job, int world_size, bool cancel) {
  std::set<std::string> agents;
  for (const auto& [rank, agent] : job.rank_agents()) agents.insert(agent);
  for (const std::string& agent : agents) {
    const cairn::v1::Assignment a = AssignmentFor(job, world_size, agent, cancel);
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
    if (stored.state() == cairn::v1::JOB_STATE_FAILED) {
      recent_failures_.emplace_back(stored.job_id(), clock_->Now());
      if (static_cast<int>(recent_failures_.size()) > kRecentFailures) recent_failures_.pop_front();
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
  absl::ReleasableMutexLock lock(&mu_);
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
  if (step != nullptr) AddStep(*step, job.mutable_measurement());
  switch (request.state()) {
    case cairn::v1::JOB_STATE_FAILED: {
      const std::string why = absl::StrCat("agent ", request.agent_id(), ": ",
                                           request.message().empty() ? "failed" : request.message());
      a.job = job;  // keep the step folded in above
      if (MaybeRestartLocked(&a, why)) {
        lock.Release();
        RunReplans();
        return cairn::v1::ReportJobStatusResponse();
      }
      job = a.job;
      job.set_state(cairn::v1::JOB_STATE_FAILED);
      job.set_message(why);
      break;
    }
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
    cairn::v1::Assignment assignment =
        AssignmentFor(a.job, a.world_size, request.agent_id(), /*cancel=*/false);
    if (assignment.ranks().empty()) continue;
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
  absl::ReleasableMutexLock lock(&mu_);
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
    if (MaybeRestartLocked(&it->second,
                           absl::StrCat("agent ", down, " stopped sending heartbeats"))) {
      continue;
    }
    job.set_state(cairn::v1::JOB_STATE_FAILED);
    job.set_message(absl::StrCat("agent ", down,
                                 " stopped sending heartbeats (--agent-timeout); its ranks are "
                                 "lost. Submit the job again"));
    if (absl::StatusOr<Job> s = CommitLocked(&it->second, std::move(job), nullptr); !s.ok()) {
      CAIRN_LOG(WARNING) << "job " << job_id << " could not be marked failed: " << s.status();
    }
  }
  NameSilentAgentsLocked(agent_ids);
  // Devices of agents that went down are no longer free either: nothing new can be placed, but
  // CommitLocked already retried the pending jobs for the devices the failed jobs released.
  lock.Release();
  RunReplans();
}

void JobsLogic::NameSilentAgentsLocked(const std::vector<std::string>& down_agent_ids) {
  for (const auto& [job_id, failed_at] : recent_failures_) {
    absl::StatusOr<Job> job = store_->GetJob(job_id);
    if (!job.ok() || job->state() != cairn::v1::JOB_STATE_FAILED) continue;
    std::string named;
    for (const std::string& agent : down_agent_ids) {
      if (!HostsRanks(*job, agent) || absl::StrContains(job->message(), agent)) continue;
      absl::StatusOr<cairn::v1::AgentInfo> info = agents_->Get(agent);
      absl::Time last_heartbeat;
      std::string err;
      if (!info.ok() ||
          !absl::ParseTime(absl::RFC3339_full, info->last_heartbeat_at(), &last_heartbeat, &err) ||
          last_heartbeat >= failed_at) {
        continue;  // it was still heartbeating when the job failed
      }
      absl::StrAppend(&named, named.empty() ? "" : ", ", agent, " (", info->hostname(), ")");
    }
    if (named.empty()) continue;
    job->set_message(absl::StrCat(job->message(), " [agent ", named,
                                  " stopped sending heartbeats before this failure: probably "
                                  "its cause]"));
    if (absl::StatusOr<Job> s = store_->UpdateJob(*job, Rfc3339(clock_->Now())); !s.ok()) {
      CAIRN_LOG(WARNING) << "job " << job_id << ": could not name the lost agent: " << s.status();
    } else {
      CAIRN_LOG(INFO) << "job " << job_id << ": " << s->message();
    }
  }
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

namespace cairn::planner {

// --- Agents (issue 9): plans for their profiles, restarts, logs, probes. ----------------------

absl::Status JobsLogic::ResolveForAgents(cairn::v1::SubmitJobRequest* request) {
  cairn::v1::PlanRequest* pr = request->mutable_search();
  CAIRN_ASSIGN_OR_RETURN(std::vector<cairn::v1::StoredHardwareProfile> hw,
                         store_->ListHardwareProfiles(kMaxPageSize, ""));
  CAIRN_ASSIGN_OR_RETURN(std::vector<cairn::v1::StoredModelProfile> models,
                         store_->ListModelProfiles(kMaxPageSize, ""));
  const std::string model =
      pr->model_name().empty() ? pr->search().model().name() : pr->model_name();
  CAIRN_ASSIGN_OR_RETURN(AgentPlanTarget t,
                         ResolveAgentProfiles(agents_->Snapshot(), hw, models, model));
  pr->set_hardware_profile_id(t.hardware_profile_id);
  pr->clear_cluster_name();
  pr->mutable_search()->clear_cluster();
  if (pr->num_nodes() == 0) pr->set_num_nodes(t.num_nodes);
  if (pr->devices_per_node() == 0) pr->set_devices_per_node(t.devices_per_node);
  if (pr->model_profile_id().empty() && !pr->search().has_model_profile()) {
    pr->set_model_profile_id(t.model_profile_id);
  }
  if (t.cpu && pr->search().dtype_bytes() == 0) pr->mutable_search()->set_dtype_bytes(4);
  request->set_plan_for_agents(false);  // resolved: what is stored with the job is explicit
  CAIRN_LOG(INFO) << "plan for agents: " << t.num_nodes << " nodes of " << t.devices_per_node
                  << " " << t.device_model << ", profile " << t.hardware_profile_id
                  << (t.model_profile_id.empty() ? "" : ", model profile " + t.model_profile_id);
  return absl::OkStatus();
}

bool JobsLogic::MaybeRestartLocked(Active* a, const std::string& reason) {
  Job job = a->job;
  if (job.has_probe() || std::max(1, job.attempt()) > job.max_restarts()) return false;
  // The old attempt's workers stop; then the job starts over on whatever is free.
  SendAssignmentsLocked(job, a->world_size, /*cancel=*/true);
  job.set_attempt(std::max(1, job.attempt()) + 1);
  job.clear_rank_agents();
  job.clear_finished_agents();
  job.set_state(cairn::v1::JOB_STATE_PENDING);
  const std::string why = absl::StrCat("attempt ", job.attempt() - 1, " ended (", reason,
                                       "); restarting from the last checkpoint in ",
                                       job.checkpoint_dir());
  const bool placed = TryAssignLocked(&job, a->world_size);
  if (!placed) {
    if (job.has_search()) {
      job.set_message(absl::StrCat(why, "; replanning for the devices that are UP"));
      replans_.emplace_back(job.job_id(), job.attempt());
    } else {
      job.set_message(absl::StrCat(why, "; ", job.message()));
    }
  } else {
    job.set_message(absl::StrCat(why, "; ", job.message()));
  }
  const std::string job_id = job.job_id();
  absl::StatusOr<Job> stored = CommitLocked(a, std::move(job), nullptr);
  if (!stored.ok()) {
    CAIRN_LOG(WARNING) << "job " << job_id << " could not be restarted: " << stored.status();
    return false;
  }
  CAIRN_LOG(INFO) << "job " << job_id << ": " << stored->message();
  if (placed) SendAssignmentsLocked(*stored, a->world_size, /*cancel=*/false);
  return true;
}

void JobsLogic::RunReplans() {
  std::vector<std::pair<std::string, int>> todo;
  std::vector<cairn::v1::PlanRequest> requests;
  {
    absl::MutexLock lock(&mu_);
    todo.swap(replans_);
    for (const auto& [job_id, attempt] : todo) {
      auto it = active_.find(job_id);
      cairn::v1::PlanRequest r;
      if (it != active_.end()) r = it->second.job.search();
      requests.push_back(std::move(r));
    }
  }
  for (size_t i = 0; i < todo.size(); ++i) {
    cairn::v1::PlanRequest r = requests[i];
    // The nodes of the profile's kind that are UP with every device free.
    int nodes = 0;
    const int per_node = std::max(1, r.devices_per_node());
    for (const cairn::v1::AgentInfo& agent : agents_->Snapshot()) {
      if (agent.state() == cairn::v1::AGENT_STATE_UP && agent.num_devices() >= per_node) ++nodes;
    }
    const std::string job_id = todo[i].first;
    const int attempt = todo[i].second;
    if (nodes == 0 || r.hardware_profile_id().empty()) {
      OnReplanned(job_id, attempt,
                  absl::FailedPreconditionError("no UP agent can take the job's ranks"));
      continue;
    }
    r.set_num_nodes(nodes);
    planner_->Plan(r, nullptr, [this, job_id, attempt](absl::StatusOr<cairn::v1::PlanResponse> p) {
      OnReplanned(job_id, attempt, std::move(p));
    });
  }
}

void JobsLogic::OnReplanned(const std::string& job_id, int attempt,
                            absl::StatusOr<cairn::v1::PlanResponse> plan) {
  absl::MutexLock lock(&mu_);
  auto it = active_.find(job_id);
  if (it == active_.end() || it->second.job.attempt() != attempt ||
      it->second.job.state() != cairn::v1::JOB_STATE_PENDING) {
    return;  // cancelled, or placed meanwhile
  }
  Active& a = it->second;
  Job job = a.job;
  if (!plan.ok() || plan->result().plans_size() == 0) {
    job.set_state(cairn::v1::JOB_STATE_FAILED);
    job.set_message(absl::StrCat(job.message(), "; no plan for the devices left: ",
                                 plan.ok() ? plan->result().infeasible_reason()
                                           : std::string(plan.status().message())));
    (void)CommitLocked(&a, std::move(job), nullptr);
    return;
  }
  const int world = WorldSize(plan->result());
  job.set_plan_id(plan->plan_id());
  job.mutable_measurement()->Clear();
  job.mutable_measurement()->set_predicted_step_time_s(
      plan->result().plans(0).prediction().step_time_s());
  job.mutable_measurement()->set_hardware_profile(
      plan->result().plans(0).provenance().hardware_profile());
  a.world_size = world;
  const bool placed = TryAssignLocked(&job, world);
  job.set_message(absl::StrCat("attempt ", job.attempt(), ": replanned for ", world, " devices (",
                               plan->plan_id(), "); ", job.message()));
  absl::StatusOr<Job> stored = CommitLocked(&a, std::move(job), nullptr);
  if (stored.ok() && placed) SendAssignmentsLocked(*stored, world, /*cancel=*/false);
}

absl::StatusOr<cairn::v1::AppendJobLogsResponse> JobsLogic::AppendLogs(
    const cairn::v1::AppendJobLogsRequest& request) {
  CAIRN_RETURN_IF_ERROR(ValidateAppendJobLogsRequest(request));
  {
    absl::MutexLock lock(&mu_);
    auto it = active_.find(request.job_id());
    if (it == active_.end()) {
      // The last output of a job that just ended is still welcome.
      CAIRN_RETURN_IF_ERROR(LoadEnded(request.job_id()).status());
    } else if (!HostsRanks(it->second.job, request.agent_id()) &&
               std::max(1, request.attempt()) >= std::max(1, it->second.job.attempt())) {
      // (an agent of an earlier attempt may still send that attempt's last output)
      return absl::FailedPreconditionError(
          absl::StrCat("agent '", request.agent_id(), "' hosts no ranks of job '",
                       request.job_id(), "'"));
    }
  }
  logs_.Append(request.job_id(), request.agent_id(), request.rank(),
               std::max(1, request.attempt()), request.data());
  return cairn::v1::AppendJobLogsResponse();
}

absl::StatusOr<cairn::v1::GetJobLogsResponse> JobsLogic::GetLogs(
    const cairn::v1::GetJobLogsRequest& request) {
  CAIRN_RETURN_IF_ERROR(ValidateGetJobLogsRequest(request));
  {
    absl::MutexLock lock(&mu_);
    if (!active_.count(request.job_id())) {
      CAIRN_RETURN_IF_ERROR(LoadEnded(request.job_id()).status());
    }
  }
  cairn::v1::GetJobLogsResponse out;
  for (cairn::v1::JobLog& l :
       logs_.Get(request.job_id(),
                 std::vector<int>(request.ranks().begin(), request.ranks().end()),
                 request.tail_bytes())) {
    *out.add_logs() = std::move(l);
  }
  return out;
}

absl::StatusOr<cairn::v1::ProbeAgentsResponse> JobsLogic::ProbeAgents(
    const cairn::v1::ProbeAgentsRequest& request) {
  CAIRN_RETURN_IF_ERROR(ValidateProbeAgentsRequest(request));
  std::vector<cairn::v1::AgentInfo> chosen;
  const std::vector<cairn::v1::AgentInfo> all = agents_->Snapshot();
  if (request.agent_ids().empty()) {
    for (const auto& a : all) {
      if (a.state() == cairn::v1::AGENT_STATE_UP) chosen.push_back(a);
    }
  } else {
    for (const std::string& want : request.agent_ids()) {
      auto it = std::find_if(all.begin(), all.end(), [&](const cairn::v1::AgentInfo& a) {
        return a.agent_id() == want || a.hostname() == want;
      });
      if (it == all.end()) {
        return absl::NotFoundError(
            absl::StrCat("agent '", want, "' is not known (cairn agents list shows them)"));
      }
      if (it->state() == cairn::v1::AGENT_STATE_UP) chosen.push_back(*it);
    }
  }
  if (chosen.empty()) {
    return absl::FailedPreconditionError("no agent asked for is UP; start or reconnect them first");
  }
  cairn::v1::ProbeRequest probe;
  for (const auto& s : request.suites()) probe.add_suites(s);
  for (const auto& m : request.models()) probe.add_models(m);
  probe.set_quick(request.quick());
  cairn::v1::ProbeAgentsResponse out;
  for (const auto& a : chosen) out.add_agent_ids(a.agent_id());
  absl::MutexLock lock(&mu_);
  const std::string id =
      absl::StrCat("probe-", absl::ToUnixMillis(clock_->Now()), "-", next_probe_++);
  if (!request.cross_node() || chosen.size() < 2) {
    // Each node alone: the agents queue the probe and run it when no job runs there.
    probe.set_probe_id(id);
    cairn::v1::Assignment a;
    *a.mutable_probe() = probe;
    for (const auto& agent : chosen) {
      for (auto& [wid, w] : assignment_watchers_) {
        if (w.key == agent.agent_id()) w.sink->Send(a);
      }
    }
    out.set_probe_id(id);
    return out;
  }
  // One probe world across the agents: a probe job holding all their devices, ranks in agent-id
  // order, placed like a job (it waits for devices a job holds).
  Job job;
  job.set_name(id);
  job.set_state(cairn::v1::JOB_STATE_PENDING);
  job.set_steps(1);
  job.set_data_path("-");
  job.set_attempt(1);
  int rank = 0, node = 0;
  std::sort(chosen.begin(), chosen.end(),
            [](const auto& x, const auto& y) { return x.agent_id() < y.agent_id(); });
  for (const auto& agent : chosen) {
    for (int d = 0; d < agent.num_devices(); ++d) {
      (*job.mutable_rank_agents())[rank++] = agent.agent_id();
      probe.add_node_of_rank(node);
    }
    ++node;
  }
  probe.set_world_size(rank);
  *job.mutable_probe() = probe;
  TryAssignLocked(&job, rank);
  CAIRN_ASSIGN_OR_RETURN(Job stored, store_->CreateJob(job, Rfc3339(clock_->Now())));
  CountLocked(cairn::v1::JOB_STATE_UNSPECIFIED, stored.state());
  Active act;
  act.job = stored;
  act.world_size = rank;
  active_.emplace(stored.job_id(), std::move(act));
  if (stored.state() == cairn::v1::JOB_STATE_ASSIGNED) {
    SendAssignmentsLocked(stored, rank, /*cancel=*/false);
  }
  CAIRN_LOG(INFO) << "probe job " << stored.job_id() << ": " << rank << " ranks on "
                  << chosen.size() << " agents, " << JobStateLabel(stored.state());
  out.set_probe_id(stored.job_id());
  return out;
}

}  // namespace cairn::planner
