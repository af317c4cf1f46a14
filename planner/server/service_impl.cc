#include "planner/server/service_impl.h"

#include <atomic>
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
using cairn::v1::PlanRequest;
using cairn::v1::PlanResponse;

// Progress messages are coalesced: at most one in flight, the newest replaces an unsent one, and
// at most one per kProgressInterval (except the last, done == total).
constexpr auto kProgressInterval = std::chrono::milliseconds(200);

// PlanStream: progress of one search, then its answer. Finishes only after the search reported
// its end (`done`), so no search thread calls into a deleted reactor; a client that goes away
// cancels the search, whose end then follows within milliseconds. Reference counted like
// UnaryCall (gRPC's reference, and the starter's while it runs on the executor).
class PlanStreamReactor final : public grpc::ServerWriteReactor<grpc::ByteBuffer> {
 public:
  explicit PlanStreamReactor(RpcCall call) : call_(std::move(call)) {}
  const RpcCall& call() const { return call_; }
  PlanRequest* mutable_request() { return &request_; }

  // On the executor.
  void Start(PlannerLogic* planner) {
    {
      absl::MutexLock lock(&mu_);
      started_ = true;
    }
    std::shared_ptr<SearchTicket> ticket = planner->Plan(
        request_, [this](int64_t done, int64_t total) { Progress(done, total); },
        [this](absl::StatusOr<PlanResponse> r) { Done(std::move(r)); });
    bool cancel;
    {
      absl::MutexLock lock(&mu_);
      ticket_ = ticket;
      cancel = client_gone_;
    }
    if (cancel && ticket) ticket->Cancel();
  }
  // Finishes with `status` (the search never started).
  void Fail(const absl::Status& status) {
    mu_.Lock();
    if (!status_) status_ = status;
    AdvanceAndUnlock();
  }
  void Release() { Unref(); }

  void OnWriteDone(bool ok) override {
    mu_.Lock();
    writing_ = false;
    current_.Clear();
    if (!ok && !status_) {
      pending_.reset();
      final_.reset();
      status_ = absl::CancelledError("the client went away");
      client_gone_ = true;
      std::shared_ptr<SearchTicket> ticket = ticket_;
      mu_.Unlock();
      if (ticket) ticket->Cancel();
      mu_.Lock();
    } else if (final_sent_ && !status_) {
      status_ = absl::OkStatus();
    }
    AdvanceAndUnlock();
  }
  void OnCancel() override {
    std::shared_ptr<SearchTicket> ticket;
    {
      absl::MutexLock lock(&mu_);
      client_gone_ = true;
      ticket = ticket_;
    }
    if (ticket) ticket->Cancel();  // Done follows with CANCELLED
  }
  void OnDone() override { Unref(); }

 private:
  void Unref() {
    if (refs_.fetch_sub(1) == 1) delete this;
  }
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
    search_done_ = true;
    pending_.reset();
    if (r.ok() && !status_) {
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
    if (next != nullptr && !status_) {
      final_sent_ = next == &final_;
      grpc::ByteBuffer bytes;
      const absl::Status s = SerializeToByteBuffer(**next, &bytes);
      next->reset();
      if (s.ok()) {
        current_ = std::move(bytes);
        writing_ = true;
        mu_.Unlock();
        StartWrite(&current_);
        return;
      }
      status_ = s;
    }
    // A started search must have ended before the reactor may go away.
    if (status_ && (!started_ || search_done_)) {
      finished_ = true;
      const absl::Status status = *status_;
      mu_.Unlock();
      Finish(call_.Finish(status));
      return;
    }
    mu_.Unlock();
  }

  RpcCall call_;
  PlanRequest request_;
  std::atomic<int> refs_{2};
  absl::Mutex mu_;
  std::shared_ptr<SearchTicket> ticket_ ABSL_GUARDED_BY(mu_);
  bool started_ ABSL_GUARDED_BY(mu_) = false;
  bool search_done_ ABSL_GUARDED_BY(mu_) = false;
  bool client_gone_ ABSL_GUARDED_BY(mu_) = false;
  std::optional<PlanProgress> pending_ ABSL_GUARDED_BY(mu_);
  std::optional<PlanProgress> final_ ABSL_GUARDED_BY(mu_);
  std::optional<absl::Status> status_ ABSL_GUARDED_BY(mu_);
  std::chrono::steady_clock::time_point last_progress_ ABSL_GUARDED_BY(mu_);
  bool writing_ ABSL_GUARDED_BY(mu_) = false;
  bool finished_ ABSL_GUARDED_BY(mu_) = false;
  bool final_sent_ ABSL_GUARDED_BY(mu_) = false;
  grpc::ByteBuffer current_;
};

}  // namespace

// --- Planner ---------------------------------------------------------------------------------

PlannerService::PlannerService(const ServiceEnv& env) : RawCallbackService(env) {
  PlannerLogic* planner = env.planner;
  ServeAsync<PlanRequest, PlanResponse>(
      "cairn.v1.Planner/Plan", [planner](UnaryCall<PlanRequest, PlanResponse>* call) {
        std::shared_ptr<SearchTicket> ticket =
            planner->Plan(call->request(), nullptr,
                          [call](absl::StatusOr<PlanResponse> r) { call->Complete(std::move(r)); });
        call->SetCancelHook([ticket] { ticket->Cancel(); });
      });
  const ServiceEnv* e = &env_;
  MarkMethodRawCallback(
      MethodIndex("cairn.v1.Planner/PlanStream"),
      new grpc::internal::CallbackServerStreamingHandler<grpc::ByteBuffer, grpc::ByteBuffer>(
          [e](grpc::CallbackServerContext* ctx,
              const grpc::ByteBuffer* bytes) -> grpc::ServerWriteReactor<grpc::ByteBuffer>* {
            auto* reactor = new PlanStreamReactor(RpcCall(*e, ctx, "cairn.v1.Planner/PlanStream"));
            if (absl::Status s = BeginCall(reactor->call(), bytes, reactor->mutable_request());
                !s.ok()) {
              reactor->Fail(s);
              reactor->Release();
              return reactor;
            }
            PlannerLogic* planner = e->planner;
            absl::Status queued = e->executor->Submit([reactor, planner] {
              reactor->Start(planner);
              reactor->Release();
            });
            if (!queued.ok()) {
              reactor->Fail(queued);
              reactor->Release();
            }
            return reactor;
          }));
  ServeUnary<cairn::v1::GetPlanRequest, PlanResponse>(
      "cairn.v1.Planner/GetPlan",
      [planner](const cairn::v1::GetPlanRequest& r) { return planner->GetPlan(r); });
  ServeUnary<cairn::v1::ListPlansRequest, cairn::v1::ListPlansResponse>(
      "cairn.v1.Planner/ListPlans",
      [planner](const cairn::v1::ListPlansRequest& r) { return planner->ListPlans(r); });
}

// --- Profiles --------------------------------------------------------------------------------

ProfilesService::ProfilesService(const ServiceEnv& env) : RawCallbackService(env) {
  ProfilesLogic* p = env.profiles;
  ServeUnary<cairn::v1::PutHardwareProfileRequest, cairn::v1::StoredHardwareProfile>(
      "cairn.v1.Profiles/PutHardwareProfile",
      [p](const cairn::v1::PutHardwareProfileRequest& r) { return p->PutHardware(r); });
  ServeUnary<cairn::v1::ProfileKey, cairn::v1::StoredHardwareProfile>(
      "cairn.v1.Profiles/GetHardwareProfile",
      [p](const cairn::v1::ProfileKey& r) { return p->GetHardware(r); });
  ServeUnary<cairn::v1::ListProfilesRequest, cairn::v1::ListHardwareProfilesResponse>(
      "cairn.v1.Profiles/ListHardwareProfiles",
      [p](const cairn::v1::ListProfilesRequest& r) { return p->ListHardware(r); });
  ServeUnary<cairn::v1::DeleteProfileRequest, cairn::v1::DeleteProfileResponse>(
      "cairn.v1.Profiles/DeleteHardwareProfile",
      [p](const cairn::v1::DeleteProfileRequest& r) { return p->DeleteHardware(r); });
  ServeUnary<cairn::v1::PutModelProfileRequest, cairn::v1::StoredModelProfile>(
      "cairn.v1.Profiles/PutModelProfile",
      [p](const cairn::v1::PutModelProfileRequest& r) { return p->PutModel(r); });
  ServeUnary<cairn::v1::ProfileKey, cairn::v1::StoredModelProfile>(
      "cairn.v1.Profiles/GetModelProfile",
      [p](const cairn::v1::ProfileKey& r) { return p->GetModel(r); });
  ServeUnary<cairn::v1::ListProfilesRequest, cairn::v1::ListModelProfilesResponse>(
      "cairn.v1.Profiles/ListModelProfiles",
      [p](const cairn::v1::ListProfilesRequest& r) { return p->ListModel(r); });
  ServeUnary<cairn::v1::DeleteProfileRequest, cairn::v1::DeleteProfileResponse>(
      "cairn.v1.Profiles/DeleteModelProfile",
      [p](const cairn::v1::DeleteProfileRequest& r) { return p->DeleteModel(r); });
}

// --- Agents ----------------------------------------------------------------------------------

AgentsService::AgentsService(const ServiceEnv& env) : RawCallbackService(env) {
  AgentsLogic* agents = env.agents;
  JobsLogic* jobs = env.jobs;
  ServeUnary<cairn::v1::RegisterAgentRequest, cairn::v1::RegisterAgentResponse>(
      "cairn.v1.Agents/RegisterAgent",
      [agents](const cairn::v1::RegisterAgentRequest& r) { return agents->Register(r); });
  ServeUnary<cairn::v1::HeartbeatRequest, cairn::v1::HeartbeatResponse>(
      "cairn.v1.Agents/Heartbeat",
      [agents](const cairn::v1::HeartbeatRequest& r) { return agents->Heartbeat(r); });
  ServeUnary<cairn::v1::ListAgentsRequest, cairn::v1::ListAgentsResponse>(
      "cairn.v1.Agents/ListAgents",
      [agents](const cairn::v1::ListAgentsRequest& r) { return agents->List(r); });
  ServeUnary<cairn::v1::ProbeAgentsRequest, cairn::v1::ProbeAgentsResponse>(
      "cairn.v1.Agents/ProbeAgents",
      [jobs](const cairn::v1::ProbeAgentsRequest& r) { return jobs->ProbeAgents(r); });
  ServeStream<cairn::v1::WatchAssignmentsRequest, cairn::v1::Assignment>(
      "cairn.v1.Agents/WatchAssignments",
      [jobs](const cairn::v1::WatchAssignmentsRequest& r,
             EventSink<cairn::v1::Assignment>* sink) { return jobs->WatchAssignments(r, sink); },
      [jobs](WatchId id) { jobs->Unwatch(id); });
}

// --- Jobs ------------------------------------------------------------------------------------

JobsService::JobsService(const ServiceEnv& env) : RawCallbackService(env) {
  JobsLogic* jobs = env.jobs;
  ServeAsync<cairn::v1::SubmitJobRequest, cairn::v1::Job>(
      "cairn.v1.Jobs/SubmitJob",
      [jobs](UnaryCall<cairn::v1::SubmitJobRequest, cairn::v1::Job>* call) {
        std::shared_ptr<SearchTicket> ticket = jobs->Submit(
            call->request(),
            [call](absl::StatusOr<cairn::v1::Job> job) { call->Complete(std::move(job)); });
        if (ticket) call->SetCancelHook([ticket] { ticket->Cancel(); });
      });
  ServeUnary<cairn::v1::GetJobRequest, cairn::v1::Job>(
      "cairn.v1.Jobs/GetJob", [jobs](const cairn::v1::GetJobRequest& r) { return jobs->Get(r); });
  ServeUnary<cairn::v1::ListJobsRequest, cairn::v1::ListJobsResponse>(
      "cairn.v1.Jobs/ListJobs",
      [jobs](const cairn::v1::ListJobsRequest& r) { return jobs->List(r); });
  ServeUnary<cairn::v1::CancelJobRequest, cairn::v1::Job>(
      "cairn.v1.Jobs/CancelJob",
      [jobs](const cairn::v1::CancelJobRequest& r) { return jobs->Cancel(r); });
  ServeStream<cairn::v1::WatchJobRequest, cairn::v1::JobEvent>(
      "cairn.v1.Jobs/WatchJob",
      [jobs](const cairn::v1::WatchJobRequest& r, EventSink<cairn::v1::JobEvent>* sink) {
        return jobs->WatchJob(r, sink);
      },
      [jobs](WatchId id) { jobs->Unwatch(id); });
  ServeUnary<cairn::v1::ReportJobStatusRequest, cairn::v1::ReportJobStatusResponse>(
      "cairn.v1.Jobs/ReportJobStatus",
      [jobs](const cairn::v1::ReportJobStatusRequest& r) { return jobs->Report(r); });
  ServeUnary<cairn::v1::AppendJobLogsRequest, cairn::v1::AppendJobLogsResponse>(
      "cairn.v1.Jobs/AppendJobLogs",
      [jobs](const cairn::v1::AppendJobLogsRequest& r) { return jobs->AppendLogs(r); });
  ServeUnary<cairn::v1::GetJobLogsRequest, cairn::v1::GetJobLogsResponse>(
      "cairn.v1.Jobs/GetJobLogs",
      [jobs](const cairn::v1::GetJobLogsRequest& r) { return jobs->GetLogs(r); });
}

// --- Rendezvous ------------------------------------------------------------------------------

RendezvousService::RendezvousService(const ServiceEnv& env) : RawCallbackService(env) {
  RendezvousLogic* rdzv = env.rendezvous;
  ServeUnary<cairn::v1::RendezvousSetRequest, cairn::v1::RendezvousSetResponse>(
      "cairn.v1.Rendezvous/Set",
      [rdzv](const cairn::v1::RendezvousSetRequest& r) { return rdzv->Set(r); });
  ServeUnary<cairn::v1::RendezvousGetRequest, cairn::v1::RendezvousGetResponse>(
      "cairn.v1.Rendezvous/Get",
      [rdzv](const cairn::v1::RendezvousGetRequest& r) { return rdzv->Get(r); });
  ServeAsync<cairn::v1::RendezvousWaitRequest, cairn::v1::RendezvousWaitResponse>(
      "cairn.v1.Rendezvous/Wait",
      [rdzv](UnaryCall<cairn::v1::RendezvousWaitRequest, cairn::v1::RendezvousWaitResponse>* call) {
        const WaitId id =
            rdzv->Wait(call->request(),
                       [call](absl::StatusOr<cairn::v1::RendezvousWaitResponse> r) {
                         call->Complete(std::move(r));
                       });
        if (id != 0) call->SetCancelHook([rdzv, id] { rdzv->CancelWait(id); });
      });
}

}  // namespace cairn::planner
