// agent/planner_client.h — everything the agent asks of cairn-planner, behind one interface: the
// gRPC implementation for the daemon, fakes in tests (agent/testing/fake_planner.h).
//
//   CAIRN_ASSIGN_OR_RETURN(std::unique_ptr<PlannerClient> planner,
//                          GrpcPlannerClient::Connect(options.planner, absl::Seconds(30)));
//   CAIRN_ASSIGN_OR_RETURN(cairn::v1::RegisterAgentResponse r, planner->Register(request));
//   planner->WatchAssignments(r.agent_id(), [](const cairn::v1::Assignment& a) { ... });
//
// Errors are absl::Status with the gRPC code carried over (UNAVAILABLE while the daemon is down or
// restarting, NOT_FOUND for an agent the daemon forgot, FAILED_PRECONDITION for a job that ended,
// ...) and the daemon's message. Calls carry the bearer token and a deadline. Thread-safe.
#ifndef CAIRN_AGENT_PLANNER_CLIENT_H_
#define CAIRN_AGENT_PLANNER_CLIENT_H_

#include <functional>
#include <memory>
#include <set>
#include <string>

#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "grpcpp/grpcpp.h"
#include "proto/cairn/v1/service.grpc.pb.h"
#include "runtime/comm/planner_store.h"

namespace cairn::agent {

class PlannerClient {
 public:
  virtual ~PlannerClient() = default;

  virtual absl::StatusOr<cairn::v1::RegisterAgentResponse> Register(
      const cairn::v1::RegisterAgentRequest& request) = 0;
  virtual absl::StatusOr<cairn::v1::HeartbeatResponse> Heartbeat(const std::string& agent_id) = 0;
  // Reads the agent's assignment stream, calling `on_assignment` for each, until the stream ends
  // (its status is returned; UNAVAILABLE when the planner went away) or CancelWatches().
  virtual absl::Status WatchAssignments(
      const std::string& agent_id,
      const std::function<void(const cairn::v1::Assignment&)>& on_assignment) = 0;
  // Ends every WatchAssignments in progress (CANCELLED) and refuses new ones: shutdown.
  virtual void CancelWatches() = 0;

  virtual absl::StatusOr<cairn::v1::ListHardwareProfilesResponse> ListHardwareProfiles() = 0;
  virtual absl::StatusOr<cairn::v1::StoredHardwareProfile> GetHardwareProfile(
      const std::string& id) = 0;
  virtual absl::StatusOr<cairn::v1::StoredHardwareProfile> PutHardwareProfile(
      const cairn::v1::HardwareProfile& profile) = 0;
  virtual absl::StatusOr<cairn::v1::StoredModelProfile> PutModelProfile(
      const cairn::v1::ModelProfile& profile) = 0;

  virtual absl::StatusOr<cairn::v1::PlanResponse> GetPlan(const std::string& plan_id) = 0;
  virtual absl::StatusOr<cairn::v1::Job> GetJob(const std::string& job_id) = 0;
  virtual absl::Status ReportJobStatus(const cairn::v1::ReportJobStatusRequest& request) = 0;
  virtual absl::Status AppendJobLogs(const cairn::v1::AppendJobLogsRequest& request) = 0;
};

// The daemon's status as an absl::Status (code carried over, message kept).
absl::Status FromGrpcStatus(const grpc::Status& s);

class GrpcPlannerClient final : public PlannerClient {
 public:
  // Errors: as runtime::OpenPlannerChannel and ReadBearerToken. Does not call the daemon.
  static absl::StatusOr<std::unique_ptr<GrpcPlannerClient>> Connect(
      const runtime::PlannerConnection& connection, absl::Duration rpc_timeout);

  absl::StatusOr<cairn::v1::RegisterAgentResponse> Register(
      const cairn::v1::RegisterAgentRequest& request) override;
  absl::StatusOr<cairn::v1::HeartbeatResponse> Heartbeat(const std::string& agent_id) override;
  absl::Status WatchAssignments(
      const std::string& agent_id,
      const std::function<void(const cairn::v1::Assignment&)>& on_assignment) override;
  void CancelWatches() override;
  absl::StatusOr<cairn::v1::ListHardwareProfilesResponse> ListHardwareProfiles() override;
  absl::StatusOr<cairn::v1::StoredHardwareProfile> GetHardwareProfile(
      const std::string& id) override;
  absl::StatusOr<cairn::v1::StoredHardwareProfile> PutHardwareProfile(
      const cairn::v1::HardwareProfile& profile) override;
  absl::StatusOr<cairn::v1::StoredModelProfile> PutModelProfile(
      const cairn::v1::ModelProfile& profile) override;
  absl::StatusOr<cairn::v1::PlanResponse> GetPlan(const std::string& plan_id) override;
  absl::StatusOr<cairn::v1::Job> GetJob(const std::string& job_id) override;
  absl::Status ReportJobStatus(const cairn::v1::ReportJobStatusRequest& request) override;
  absl::Status AppendJobLogs(const cairn::v1::AppendJobLogsRequest& request) override;

 private:
  GrpcPlannerClient(std::shared_ptr<grpc::Channel> channel, std::string token,
                    absl::Duration rpc_timeout);
  std::unique_ptr<grpc::ClientContext> Context() const;

  std::shared_ptr<grpc::Channel> channel_;
  const std::string token_;
  const absl::Duration rpc_timeout_;
  std::unique_ptr<cairn::v1::Agents::Stub> agents_;
  std::unique_ptr<cairn::v1::Profiles::Stub> profiles_;
  std::unique_ptr<cairn::v1::Planner::Stub> planner_;
  std::unique_ptr<cairn::v1::Jobs::Stub> jobs_;

  absl::Mutex mu_;
  bool cancelled_ ABSL_GUARDED_BY(mu_) = false;
  std::set<grpc::ClientContext*> watches_ ABSL_GUARDED_BY(mu_);
};

}  // namespace cairn::agent

#endif  // CAIRN_AGENT_PLANNER_CLIENT_H_
