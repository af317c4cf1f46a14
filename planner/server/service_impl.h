// planner/server/service_impl.h — the five cairn.v1 gRPC services as thin callback adapters.
//
// Each method does only this: RpcCall (token check, metrics, log), call the logic class, put the
// result into the response. No decisions are made here; they are in *_logic.h, tested without
// sockets. Unary methods answered at once use the call's DefaultReactor; Plan, SubmitJob and
// Rendezvous.Wait finish later (AsyncUnaryReactor, with the client's cancellation wired to the
// search or the wait); the streams use EventStreamReactor / the PlanStream reactor.
//
//   ServiceEnv env{&auth, &metrics, &planner, &profiles, &agents, &jobs, &rendezvous};
//   PlannerService planner_service(env);
//   builder.RegisterService(&planner_service);
#ifndef CAIRN_PLANNER_SERVER_SERVICE_IMPL_H_
#define CAIRN_PLANNER_SERVER_SERVICE_IMPL_H_

#include "planner/server/rpc_call.h"
#include "proto/cairn/v1/service.grpc.pb.h"

namespace cairn::planner {

class PlannerService final : public cairn::v1::Planner::CallbackService {
 public:
  explicit PlannerService(const ServiceEnv& env) : env_(env) {}
  grpc::ServerUnaryReactor* Plan(grpc::CallbackServerContext* ctx,
                                 const cairn::v1::PlanRequest* request,
                                 cairn::v1::PlanResponse* response) override;
  grpc::ServerWriteReactor<cairn::v1::PlanProgress>* PlanStream(
      grpc::CallbackServerContext* ctx, const cairn::v1::PlanRequest* request) override;
  grpc::ServerUnaryReactor* GetPlan(grpc::CallbackServerContext* ctx,
                                    const cairn::v1::GetPlanRequest* request,
                                    cairn::v1::PlanResponse* response) override;
  grpc::ServerUnaryReactor* ListPlans(grpc::CallbackServerContext* ctx,
                                      const cairn::v1::ListPlansRequest* request,
                                      cairn::v1::ListPlansResponse* response) override;

 private:
  const ServiceEnv& env_;
};

class ProfilesService final : public cairn::v1::Profiles::CallbackService {
 public:
  explicit ProfilesService(const ServiceEnv& env) : env_(env) {}
  grpc::ServerUnaryReactor* PutHardwareProfile(grpc::CallbackServerContext* ctx,
                                               const cairn::v1::PutHardwareProfileRequest* request,
                                               cairn::v1::StoredHardwareProfile* response) override;
  grpc::ServerUnaryReactor* GetHardwareProfile(grpc::CallbackServerContext* ctx,
                                               const cairn::v1::ProfileKey* request,
                                               cairn::v1::StoredHardwareProfile* response) override;
  grpc::ServerUnaryReactor* ListHardwareProfiles(
      grpc::CallbackServerContext* ctx, const cairn::v1::ListProfilesRequest* request,
      cairn::v1::ListHardwareProfilesResponse* response) override;
  grpc::ServerUnaryReactor* DeleteHardwareProfile(grpc::CallbackServerContext* ctx,
                                                  const cairn::v1::DeleteProfileRequest* request,
                                                  cairn::v1::DeleteProfileResponse* response) override;
  grpc::ServerUnaryReactor* PutModelProfile(grpc::CallbackServerContext* ctx,
                                            const cairn::v1::PutModelProfileRequest* request,
                                            cairn::v1::StoredModelProfile* response) override;
  grpc::ServerUnaryReactor* GetModelProfile(grpc::CallbackServerContext* ctx,
                                            const cairn::v1::ProfileKey* request,
                                            cairn::v1::StoredModelProfile* response) override;
  grpc::ServerUnaryReactor* ListModelProfiles(
      grpc::CallbackServerContext* ctx, const cairn::v1::ListProfilesRequest* request,
      cairn::v1::ListModelProfilesResponse* response) override;
  grpc::ServerUnaryReactor* DeleteModelProfile(grpc::CallbackServerContext* ctx,
                                               const cairn::v1::DeleteProfileRequest* request,
                                               cairn::v1::DeleteProfileResponse* response) override;

 private:
  const ServiceEnv& env_;
};

class AgentsService final : public cairn::v1::Agents::CallbackService {
 public:
  explicit AgentsService(const ServiceEnv& env) : env_(env) {}
  grpc::ServerUnaryReactor* RegisterAgent(grpc::CallbackServerContext* ctx,
                                          const cairn::v1::RegisterAgentRequest* request,
                                          cairn::v1::RegisterAgentResponse* response) override;
  grpc::ServerUnaryReactor* Heartbeat(grpc::CallbackServerContext* ctx,
                                      const cairn::v1::HeartbeatRequest* request,
                                      cairn::v1::HeartbeatResponse* response) override;
  grpc::ServerUnaryReactor* ListAgents(grpc::CallbackServerContext* ctx,
                                       const cairn::v1::ListAgentsRequest* request,
                                       cairn::v1::ListAgentsResponse* response) override;
  grpc::ServerUnaryReactor* ProbeAgents(grpc::CallbackServerContext* ctx,
                                        const cairn::v1::ProbeAgentsRequest* request,
                                        cairn::v1::ProbeAgentsResponse* response) override;
  grpc::ServerWriteReactor<cairn::v1::Assignment>* WatchAssignments(
      grpc::CallbackServerContext* ctx, const cairn::v1::WatchAssignmentsRequest* request) override;

 private:
  const ServiceEnv& env_;
};

class JobsService final : public cairn::v1::Jobs::CallbackService {
 public:
  explicit JobsService(const ServiceEnv& env) : env_(env) {}
  grpc::ServerUnaryReactor* SubmitJob(grpc::CallbackServerContext* ctx,
                                      const cairn::v1::SubmitJobRequest* request,
                                      cairn::v1::Job* response) override;
  grpc::ServerUnaryReactor* GetJob(grpc::CallbackServerContext* ctx,
                                   const cairn::v1::GetJobRequest* request,
                                   cairn::v1::Job* response) override;
  grpc::ServerUnaryReactor* ListJobs(grpc::CallbackServerContext* ctx,
                                     const cairn::v1::ListJobsRequest* request,
                                     cairn::v1::ListJobsResponse* response) override;
  grpc::ServerUnaryReactor* CancelJob(grpc::CallbackServerContext* ctx,
                                      const cairn::v1::CancelJobRequest* request,
                                      cairn::v1::Job* response) override;
  grpc::ServerWriteReactor<cairn::v1::JobEvent>* WatchJob(
      grpc::CallbackServerContext* ctx, const cairn::v1::WatchJobRequest* request) override;
  grpc::ServerUnaryReactor* ReportJobStatus(grpc::CallbackServerContext* ctx,
                                            const cairn::v1::ReportJobStatusRequest* request,
                                            cairn::v1::ReportJobStatusResponse* response) override;
  grpc::ServerUnaryReactor* AppendJobLogs(grpc::CallbackServerContext* ctx,
                                          const cairn::v1::AppendJobLogsRequest* request,
                                          cairn::v1::AppendJobLogsResponse* response) override;
  grpc::ServerUnaryReactor* GetJobLogs(grpc::CallbackServerContext* ctx,
                                       const cairn::v1::GetJobLogsRequest* request,
                                       cairn::v1::GetJobLogsResponse* response) override;

 private:
  const ServiceEnv& env_;
};

class RendezvousService final : public cairn::v1::Rendezvous::CallbackService {
 public:
  explicit RendezvousService(const ServiceEnv& env) : env_(env) {}
  grpc::ServerUnaryReactor* Set(grpc::CallbackServerContext* ctx,
                                const cairn::v1::RendezvousSetRequest* request,
                                cairn::v1::RendezvousSetResponse* response) override;
  grpc::ServerUnaryReactor* Get(grpc::CallbackServerContext* ctx,
                                const cairn::v1::RendezvousGetRequest* request,
                                cairn::v1::RendezvousGetResponse* response) override;
  grpc::ServerUnaryReactor* Wait(grpc::CallbackServerContext* ctx,
                                 const cairn::v1::RendezvousWaitRequest* request,
                                 cairn::v1::RendezvousWaitResponse* response) override;

 private:
  const ServiceEnv& env_;
};

}  // namespace cairn::planner

#endif  // CAIRN_PLANNER_SERVER_SERVICE_IMPL_H_
