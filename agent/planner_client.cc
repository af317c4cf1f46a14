#include "agent/planner_client.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/status_macros.h"

namespace cairn::agent {

absl::Status FromGrpcStatus(const grpc::Status& s) {
  if (s.ok()) return absl::OkStatus();
  return absl::Status(static_cast<absl::StatusCode>(s.error_code()), s.error_message());
}

GrpcPlannerClient::GrpcPlannerClient(std::shared_ptr<grpc::Channel> channel, std::string token,
                                     absl::Duration rpc_timeout)
    : channel_(std::move(channel)),
      token_(std::move(token)),
      rpc_timeout_(rpc_timeout),
      agents_(cairn::v1::Agents::NewStub(channel_)),
      profiles_(cairn::v1::Profiles::NewStub(channel_)),
      planner_(cairn::v1::Planner::NewStub(channel_)),
      jobs_(cairn::v1::Jobs::NewStub(channel_)) {}

absl::StatusOr<std::unique_ptr<GrpcPlannerClient>> GrpcPlannerClient::Connect(
    const runtime::PlannerConnection& connection, absl::Duration rpc_timeout) {
  std::string token;
  if (!connection.token_file.empty()) {
    CAIRN_ASSIGN_OR_RETURN(token, runtime::ReadBearerToken(connection.token_file));
  }
  CAIRN_ASSIGN_OR_RETURN(std::shared_ptr<grpc::Channel> channel,
                         runtime::OpenPlannerChannel(connection));
  return std::unique_ptr<GrpcPlannerClient>(
      new GrpcPlannerClient(std::move(channel), std::move(token), rpc_timeout));
}

std::unique_ptr<grpc::ClientContext> GrpcPlannerClient::Context() const {
  auto ctx = std::make_unique<grpc::ClientContext>();
  ctx->set_deadline(absl::ToChronoTime(absl::Now() + rpc_timeout_));
  if (!token_.empty()) ctx->AddMetadata("authorization", "Bearer " + token_);
  return ctx;
}

absl::StatusOr<cairn::v1::RegisterAgentResponse> GrpcPlannerClient::Register(
    const cairn::v1::RegisterAgentRequest& request) {
  cairn::v1::RegisterAgentResponse out;
  CAIRN_RETURN_IF_ERROR(FromGrpcStatus(agents_->RegisterAgent(Context().get(), request, &out)));
  return out;
}

absl::StatusOr<cairn::v1::HeartbeatResponse> GrpcPlannerClient::Heartbeat(
    const std::string& agent_id) {
  cairn::v1::HeartbeatRequest req;
  req.set_agent_id(agent_id);
  cairn::v1::HeartbeatResponse out;
  CAIRN_RETURN_IF_ERROR(FromGrpcStatus(agents_->Heartbeat(Context().get(), req, &out)));
  return out;
}

absl::Status GrpcPlannerClient::WatchAssignments(
    const std::string& agent_id,
    const std::function<void(const cairn::v1::Assignment&)>& on_assignment) {
  grpc::ClientContext ctx;  // no deadline: the stream lives as long as the agent
  if (!token_.empty()) ctx.AddMetadata("authorization", "Bearer " + token_);
  {
    absl::MutexLock lock(&mu_);
    if (cancelled_) return absl::CancelledError("the agent is shutting down");
    watches_.insert(&ctx);
  }
  cairn::v1::WatchAssignmentsRequest req;
  req.set_agent_id(agent_id);
  std::unique_ptr<grpc::ClientReader<cairn::v1::Assignment>> reader =
      agents_->WatchAssignments(&ctx, req);
  cairn::v1::Assignment a;
  while (reader->Read(&a)) on_assignment(a);
  const grpc::Status s = reader->Finish();
  {
    absl::MutexLock lock(&mu_);
    watches_.erase(&ctx);
  }
  if (s.ok()) return absl::UnavailableError("the planner ended the assignment stream");
  return FromGrpcStatus(s);
}

void GrpcPlannerClient::CancelWatches() {
  absl::MutexLock lock(&mu_);
  cancelled_ = true;
  for (grpc::ClientContext* ctx : watches_) ctx->TryCancel();
}

absl::StatusOr<cairn::v1::ListHardwareProfilesResponse> GrpcPlannerClient::ListHardwareProfiles() {
  cairn::v1::ListHardwareProfilesResponse all;
  cairn::v1::ListProfilesRequest req;
  req.set_page_size(1000);
  while (true) {
    cairn::v1::ListHardwareProfilesResponse page;
    CAIRN_RETURN_IF_ERROR(
        FromGrpcStatus(profiles_->ListHardwareProfiles(Context().get(), req, &page)));
    for (auto& p : *page.mutable_profiles()) *all.add_profiles() = std::move(p);
    if (page.next_page_token().empty()) break;
    req.set_page_token(page.next_page_token());
  }
  return all;
}

absl::StatusOr<cairn::v1::StoredHardwareProfile> GrpcPlannerClient::GetHardwareProfile(
    const std::string& id) {
  cairn::v1::ProfileKey key;
  key.set_id(id);
  cairn::v1::StoredHardwareProfile out;
  CAIRN_RETURN_IF_ERROR(FromGrpcStatus(profiles_->GetHardwareProfile(Context().get(), key, &out)));
  return out;
}

absl::StatusOr<cairn::v1::StoredHardwareProfile> GrpcPlannerClient::PutHardwareProfile(
    const cairn::v1::HardwareProfile& profile) {
  cairn::v1::PutHardwareProfileRequest req;
  *req.mutable_profile() = profile;
  cairn::v1::StoredHardwareProfile out;
  CAIRN_RETURN_IF_ERROR(FromGrpcStatus(profiles_->PutHardwareProfile(Context().get(), req, &out)));
  return out;
}

absl::StatusOr<cairn::v1::StoredModelProfile> GrpcPlannerClient::PutModelProfile(
    const cairn::v1::ModelProfile& profile) {
  cairn::v1::PutModelProfileRequest req;
  *req.mutable_profile() = profile;
  cairn::v1::StoredModelProfile out;
  CAIRN_RETURN_IF_ERROR(FromGrpcStatus(profiles_->PutModelProfile(Context().get(), req, &out)));
  return out;
}

absl::StatusOr<cairn::v1::PlanResponse> GrpcPlannerClient::GetPlan(const std::string& plan_id) {
  cairn::v1::GetPlanRequest req;
  req.set_plan_id(plan_id);
  cairn::v1::PlanResponse out;
  CAIRN_RETURN_IF_ERROR(FromGrpcStatus(planner_->GetPlan(Context().get(), req, &out)));
  return out;
}

absl::StatusOr<cairn::v1::Job> GrpcPlannerClient::GetJob(const std::string& job_id) {
  cairn::v1::GetJobRequest req;
  req.set_job_id(job_id);
  cairn::v1::Job out;
  CAIRN_RETURN_IF_ERROR(FromGrpcStatus(jobs_->GetJob(Context().get(), req, &out)));
  return out;
}

absl::Status GrpcPlannerClient::ReportJobStatus(const cairn::v1::ReportJobStatusRequest& request) {
  cairn::v1::ReportJobStatusResponse out;
  return FromGrpcStatus(jobs_->ReportJobStatus(Context().get(), request, &out));
}

absl::Status GrpcPlannerClient::AppendJobLogs(const cairn::v1::AppendJobLogsRequest& request) {
  cairn::v1::AppendJobLogsResponse out;
  return FromGrpcStatus(jobs_->AppendJobLogs(Context().get(), request, &out));
}

}  // namespace cairn::agent
