#include "planner/server/service_impl.h"

#include <chrono>
#include <memory>
#include <optional>
#include <utility>

#include "planner/server/agents_logic.h"
#include "planner/server/jobs_logic.h"
#include "planner/server/planner_logic.h"
#include "planner/server/profiles_logic.h"
#include "planner/server/rendezvous_logic.h"

namespace cairn::planner {
namespace {

using cairn::v1::PlanProgress;
using cairn::v1::PlanResponse;

// Progress messages are coalesced: at most one in flight, the newest replaces an unsent one, and
// at most one per kProgressInterval (except the last, done == total).
constexpr auto kProgressInterval = std::chrono::milliseconds(200);

class PlanStreamReactor final : public grpc::ServerWriteReactor<PlanProgress> {
 public:
  explicit PlanStreamReactor(RpcCall call) : call_(std::move(call)) {}
  const RpcCall& call() const { return call_; }

  void Start(PlannerLogic* planner, const cairn::v1::PlanRequest& request) {
    ticket_ = planner->Plan(
        request, [this](int64_t done, int64_t total) { Progress(done, total); },
        [this](absl::StatusOr<PlanResponse> r) { Done(std::move(r)); });
  }
  void Fail(const absl::Status& status) {
    mu_.Lock();
    status_ = status;
    AdvanceAndUnlock();
  }

  void OnWriteDone(bool ok) override {
    mu_.Lock();
    writing_ = false;
    if (!ok && !status_) {
      pending_.reset();
      final_.reset();
      status_ = absl::CancelledError("the client went away");
    } else if (final_sent_ && !status_) {
      status_ = absl::OkStatus();
    }
    AdvanceAndUnlock();
  }
  void OnCancel() override {
    if (ticket_) ticket_->Cancel();  // Done follows with CANCELLED
  }
  void OnDone() override { delete this; }

 private:
  void Progress(int64_t done, int64_t total) {
    mu_.Lock();
    const auto now = std::chrono::steady_clock::now();
    if (final_ || status_ || (done != total && now - last_progress_ < kProgressInterval)) {
      mu_.Unlock();
      return;
    }
    last_progress_ = now;
    PlanProgress p;
    p.set_combinations_done(done);
    p.set_combinations_total(total);
    pending_ = std::move(p);
    AdvanceAndUnlock();
  }
  void Done(absl::StatusOr<PlanResponse> r) {
    mu_.Lock();
    pending_.reset();
    if (r.ok()) {
      PlanProgress p;
      *p.mutable_response() = *std::move(r);
      final_ = std::move(p);
    } else if (!status_) {
      status_ = r.status();
    }
    AdvanceAndUnlock();
  }
  void AdvanceAndUnlock() ABSL_UNLOCK_FUNCTION(mu_) {
    if (writing_ || finished_) {
      mu_.Unlock();
      return;
    }
    std::optional<PlanProgress>* next = pending_ ? &pending_ : final_ ? &final_ : nullptr;
    if (next != nullptr) {
      final_sent_ = next == &final_;
      current_ = std::move(**next);
      next->reset();
      writing_ = true;
      mu_.Unlock();
      StartWrite(&current_);
      return;
    }
    if (status_) {
      finished_ = true;
      const absl::Status status = *status_;
      mu_.Unlock();
      Finish(call_.Finish(status));
      return;
    }
    mu_.Unlock();
  }

  RpcCall call_;
  std::shared_ptr<SearchTicket> ticket_;
  absl::Mutex mu_;
  std::optional<PlanProgress> pending_ ABSL_GUARDED_BY(mu_);
  std::optional<PlanProgress> final_ ABSL_GUARDED_BY(mu_);
  std::optional<absl::Status> status_ ABSL_GUARDED_BY(mu_);
  std::chrono::steady_clock::time_point last_progress_ ABSL_GUARDED_BY(mu_);
  bool writing_ ABSL_GUARDED_BY(mu_) = false;
  bool finished_ ABSL_GUARDED_BY(mu_) = false;
  bool final_sent_ ABSL_GUARDED_BY(mu_) = false;
  PlanProgress current_;
};

// Starts an EventStreamReactor on one of JobsLogic's Watch* methods.
template <typename T, typename Request, typename WatchFn>
grpc::ServerWriteReactor<T>* RunWatch(const ServiceEnv& env, grpc::CallbackServerContext* ctx,
                                      const char* method, const Request& request, WatchFn watch) {
  auto* reactor = new EventStreamReactor<T>(RpcCall(env, ctx, method));
  if (absl::Status s = reactor->call().Authorize(); !s.ok()) {
    reactor->FinishNow(s);
    return reactor;
  }
  absl::StatusOr<WatchId> id = watch(request, reactor);
  if (!id.ok()) {
    reactor->FinishNow(id.status());
    return reactor;
  }
  JobsLogic* jobs = env.jobs;
  const WatchId watch_id = *id;
  reactor->SetUnwatch([jobs, watch_id] { jobs->Unwatch(watch_id); });
  return reactor;
}

}  // namespace

// --- Planner ---------------------------------------------------------------------------------

grpc::ServerUnaryReactor* PlannerService::Plan(grpc::CallbackServerContext* ctx,
                                               const cairn::v1::PlanRequest* request,
                                               PlanResponse* response) {
  auto* reactor = new AsyncUnaryReactor(RpcCall(env_, ctx, "cairn.v1.Planner/Plan"));
  if (absl::Status s = reactor->call().Authorize(); !s.ok()) {
    reactor->Complete(s);
    return reactor;
  }
  std::shared_ptr<SearchTicket> ticket =
      env_.planner->Plan(*request, nullptr, [reactor, response](absl::StatusOr<PlanResponse> r) {
        if (r.ok()) *response = *std::move(r);
        reactor->Complete(r.status());
      });
  reactor->SetCancelHook([ticket] { ticket->Cancel(); });
  return reactor;
}

grpc::ServerWriteReactor<PlanProgress>* PlannerService::PlanStream(
    grpc::CallbackServerContext* ctx, const cairn::v1::PlanRequest* request) {
  auto* reactor = new PlanStreamReactor(RpcCall(env_, ctx, "cairn.v1.Planner/PlanStream"));
  if (absl::Status s = reactor->call().Authorize(); !s.ok()) {
    reactor->Fail(s);
    return reactor;
  }
  reactor->Start(env_.planner, *request);
  return reactor;
}

grpc::ServerUnaryReactor* PlannerService::GetPlan(grpc::CallbackServerContext* ctx,
                                                  const cairn::v1::GetPlanRequest* request,
                                                  PlanResponse* response) {
  return RunUnary(env_, ctx, "cairn.v1.Planner/GetPlan", response,
                  [&] { return env_.planner->GetPlan(*request); });
}

grpc::ServerUnaryReactor* PlannerService::ListPlans(grpc::CallbackServerContext* ctx,
                                                    const cairn::v1::ListPlansRequest* request,
                                                    cairn::v1::ListPlansResponse* response) {
  return RunUnary(env_, ctx, "cairn.v1.Planner/ListPlans", response,
                  [&] { return env_.planner->ListPlans(*request); });
}

// --- Profiles --------------------------------------------------------------------------------

grpc::ServerUnaryReactor* ProfilesService::PutHardwareProfile(
    grpc::CallbackServerContext* ctx, const cairn::v1::PutHardwareProfileRequest* request,
    cairn::v1::StoredHardwareProfile* response) {
  return RunUnary(env_, ctx, "cairn.v1.Profiles/PutHardwareProfile", response,
                  [&] { return env_.profiles->PutHardware(*request); });
}

grpc::ServerUnaryReactor* ProfilesService::GetHardwareProfile(
    grpc::CallbackServerContext* ctx, const cairn::v1::ProfileKey* request,
    cairn::v1::StoredHardwareProfile* response) {
  return RunUnary(env_, ctx, "cairn.v1.Profiles/GetHardwareProfile", response,
                  [&] { return env_.profiles->GetHardware(*request); });
}

grpc::ServerUnaryReactor* ProfilesService::ListHardwareProfiles(
    grpc::CallbackServerContext* ctx, const cairn::v1::ListProfilesRequest* request,
    cairn::v1::ListHardwareProfilesResponse* response) {
  return RunUnary(env_, ctx, "cairn.v1.Profiles/ListHardwareProfiles", response,
                  [&] { return env_.profiles->ListHardware(*request); });
}

grpc::ServerUnaryReactor* ProfilesService::DeleteHardwareProfile(
    grpc::CallbackServerContext* ctx, const cairn::v1::DeleteProfileRequest* request,
    cairn::v1::DeleteProfileResponse* response) {
  return RunUnary(env_, ctx, "cairn.v1.Profiles/DeleteHardwareProfile", response,
                  [&] { return env_.profiles->DeleteHardware(*request); });
}

grpc::ServerUnaryReactor* ProfilesService::PutModelProfile(
    grpc::CallbackServerContext* ctx, const cairn::v1::PutModelProfileRequest* request,
    cairn::v1::StoredModelProfile* response) {
  return RunUnary(env_, ctx, "cairn.v1.Profiles/PutModelProfile", response,
                  [&] { return env_.profiles->PutModel(*request); });
}

grpc::ServerUnaryReactor* ProfilesService::GetModelProfile(grpc::CallbackServerContext* ctx,
                                                           const cairn::v1::ProfileKey* request,
                                                           cairn::v1::StoredModelProfile* response) {
  return RunUnary(env_, ctx, "cairn.v1.Profiles/GetModelProfile", response,
                  [&] { return env_.profiles->GetModel(*request); });
}

grpc::ServerUnaryReactor* ProfilesService::ListModelProfiles(
    grpc::CallbackServerContext* ctx, const cairn::v1::ListProfilesRequest* request,
    cairn::v1::ListModelProfilesResponse* response) {
  return RunUnary(env_, ctx, "cairn.v1.Profiles/ListModelProfiles", response,
                  [&] { return env_.profiles->ListModel(*request); });
}

grpc::ServerUnaryReactor* ProfilesService::DeleteModelProfile(
    grpc::CallbackServerContext* ctx, const cairn::v1::DeleteProfileRequest* request,
    cairn::v1::DeleteProfileResponse* response) {
  return RunUnary(env_, ctx, "cairn.v1.Profiles/DeleteModelProfile", response,
                  [&] { return env_.profiles->DeleteModel(*request); });
}

// --- Agents ----------------------------------------------------------------------------------

grpc::ServerUnaryReactor* AgentsService::RegisterAgent(
    grpc::CallbackServerContext* ctx, const cairn::v1::RegisterAgentRequest* request,
    cairn::v1::RegisterAgentResponse* response) {
  return RunUnary(env_, ctx, "cairn.v1.Agents/RegisterAgent", response,
                  [&] { return env_.agents->Register(*request); });
}

grpc::ServerUnaryReactor* AgentsService::Heartbeat(grpc::CallbackServerContext* ctx,
                                                   const cairn::v1::HeartbeatRequest* request,
                                                   cairn::v1::HeartbeatResponse* response) {
  return RunUnary(env_, ctx, "cairn.v1.Agents/Heartbeat", response,
                  [&] { return env_.agents->Heartbeat(*request); });
}

grpc::ServerUnaryReactor* AgentsService::ListAgents(grpc::CallbackServerContext* ctx,
                                                    const cairn::v1::ListAgentsRequest* request,
                                                    cairn::v1::ListAgentsResponse* response) {
  return RunUnary(env_, ctx, "cairn.v1.Agents/ListAgents", response,
                  [&] { return env_.agents->List(*request); });
}

grpc::ServerWriteReactor<cairn::v1::Assignment>* AgentsService::WatchAssignments(
    grpc::CallbackServerContext* ctx, const cairn::v1::WatchAssignmentsRequest* request) {
  JobsLogic* jobs = env_.jobs;
  return RunWatch<cairn::v1::Assignment>(
      env_, ctx, "cairn.v1.Agents/WatchAssignments", *request,
      [jobs](const cairn::v1::WatchAssignmentsRequest& r, EventSink<cairn::v1::Assignment>* sink) {
        return jobs->WatchAssignments(r, sink);
      });
}

// --- Jobs ------------------------------------------------------------------------------------

grpc::ServerUnaryReactor* JobsService::SubmitJob(grpc::CallbackServerContext* ctx,
                                                 const cairn::v1::SubmitJobRequest* request,
                                                 cairn::v1::Job* response) {
  auto* reactor = new AsyncUnaryReactor(RpcCall(env_, ctx, "cairn.v1.Jobs/SubmitJob"));
  if (absl::Status s = reactor->call().Authorize(); !s.ok()) {
    reactor->Complete(s);
    return reactor;
  }
  std::shared_ptr<SearchTicket> ticket =
      env_.jobs->Submit(*request, [reactor, response](absl::StatusOr<cairn::v1::Job> job) {
        if (job.ok()) *response = *std::move(job);
        reactor->Complete(job.status());
      });
  if (ticket) reactor->SetCancelHook([ticket] { ticket->Cancel(); });
  return reactor;
}

grpc::ServerUnaryReactor* JobsService::GetJob(grpc::CallbackServerContext* ctx,
                                              const cairn::v1::GetJobRequest* request,
                                              cairn::v1::Job* response) {
  return RunUnary(env_, ctx, "cairn.v1.Jobs/GetJob", response,
                  [&] { return env_.jobs->Get(*request); });
}

grpc::ServerUnaryReactor* JobsService::ListJobs(grpc::CallbackServerContext* ctx,
                                                const cairn::v1::ListJobsRequest* request,
                                                cairn::v1::ListJobsResponse* response) {
  return RunUnary(env_, ctx, "cairn.v1.Jobs/ListJobs", response,
                  [&] { return env_.jobs->List(*request); });
}

grpc::ServerUnaryReactor* JobsService::CancelJob(grpc::CallbackServerContext* ctx,
                                                 const cairn::v1::CancelJobRequest* request,
                                                 cairn::v1::Job* response) {
  return RunUnary(env_, ctx, "cairn.v1.Jobs/CancelJob", response,
                  [&] { return env_.jobs->Cancel(*request); });
}

grpc::ServerWriteReactor<cairn::v1::JobEvent>* JobsService::WatchJob(
    grpc::CallbackServerContext* ctx, const cairn::v1::WatchJobRequest* request) {
  JobsLogic* jobs = env_.jobs;
  return RunWatch<cairn::v1::JobEvent>(
      env_, ctx, "cairn.v1.Jobs/WatchJob", *request,
      [jobs](const cairn::v1::WatchJobRequest& r, EventSink<cairn::v1::JobEvent>* sink) {
        return jobs->WatchJob(r, sink);
      });
}

grpc::ServerUnaryReactor* JobsService::ReportJobStatus(
    grpc::CallbackServerContext* ctx, const cairn::v1::ReportJobStatusRequest* request,
    cairn::v1::ReportJobStatusResponse* response) {
  return RunUnary(env_, ctx, "cairn.v1.Jobs/ReportJobStatus", response,
                  [&] { return env_.jobs->Report(*request); });
}

grpc::ServerUnaryReactor* JobsService::AppendJobLogs(grpc::CallbackServerContext* ctx,
                                                     const cairn::v1::AppendJobLogsRequest* request,
                                                     cairn::v1::AppendJobLogsResponse* response) {
  return RunUnary(env_, ctx, "cairn.v1.Jobs/AppendJobLogs", response,
                  [&] { return env_.jobs->AppendLogs(*request); });
}

grpc::ServerUnaryReactor* JobsService::GetJobLogs(grpc::CallbackServerContext* ctx,
                                                  const cairn::v1::GetJobLogsRequest* request,
                                                  cairn::v1::GetJobLogsResponse* response) {
  return RunUnary(env_, ctx, "cairn.v1.Jobs/GetJobLogs", response,
                  [&] { return env_.jobs->GetLogs(*request); });
}

grpc::ServerUnaryReactor* AgentsService::ProbeAgents(grpc::CallbackServerContext* ctx,
                                                     const cairn::v1::ProbeAgentsRequest* request,
                                                     cairn::v1::ProbeAgentsResponse* response) {
  return RunUnary(env_, ctx, "cairn.v1.Agents/ProbeAgents", response,
                  [&] { return env_.jobs->ProbeAgents(*request); });
}

// --- Rendezvous ------------------------------------------------------------------------------

grpc::ServerUnaryReactor* RendezvousService::Set(grpc::CallbackServerContext* ctx,
                                                 const cairn::v1::RendezvousSetRequest* request,
                                                 cairn::v1::RendezvousSetResponse* response) {
  return RunUnary(env_, ctx, "cairn.v1.Rendezvous/Set", response,
                  [&] { return env_.rendezvous->Set(*request); });
}

grpc::ServerUnaryReactor* RendezvousService::Get(grpc::CallbackServerContext* ctx,
                                                 const cairn::v1::RendezvousGetRequest* request,
                                                 cairn::v1::RendezvousGetResponse* response) {
  return RunUnary(env_, ctx, "cairn.v1.Rendezvous/Get", response,
                  [&] { return env_.rendezvous->Get(*request); });
}

grpc::ServerUnaryReactor* RendezvousService::Wait(grpc::CallbackServerContext* ctx,
                                                  const cairn::v1::RendezvousWaitRequest* request,
                                                  cairn::v1::RendezvousWaitResponse* response) {
  auto* reactor = new AsyncUnaryReactor(RpcCall(env_, ctx, "cairn.v1.Rendezvous/Wait"));
  if (absl::Status s = reactor->call().Authorize(); !s.ok()) {
    reactor->Complete(s);
    return reactor;
  }
  RendezvousLogic* rendezvous = env_.rendezvous;
  const WaitId id = rendezvous->Wait(
      *request, [reactor, response](absl::StatusOr<cairn::v1::RendezvousWaitResponse> r) {
        if (r.ok()) *response = *std::move(r);
        reactor->Complete(r.status());
      });
  if (id != 0) reactor->SetCancelHook([rendezvous, id] { rendezvous->CancelWait(id); });
  return reactor;
}

}  // namespace cairn::planner
