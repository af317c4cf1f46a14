// agent/testing/fake_planner.h — an in-memory PlannerClient for the agent's unit tests: records
// what the agent sends, answers from canned state, and feeds an assignment stream the test pushes
// to. No sockets; the real daemon is used in tests/agent_e2e_test.cc.
//
//   FakePlanner planner;
//   planner.SetPlan("plan-1", plan);                       // GetPlan answers
//   planner.SetJob(job);                                   // GetJob answers
//   planner.Push(assignment);                              // delivered on WatchAssignments
//   planner.AwaitReport([](const auto& r) { return r.state() == JOB_STATE_SUCCEEDED; });
#ifndef CAIRN_AGENT_TESTING_FAKE_PLANNER_H_
#define CAIRN_AGENT_TESTING_FAKE_PLANNER_H_

#include <deque>
#include <optional>
#include <set>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "agent/planner_client.h"

namespace cairn::agent {

class FakePlanner final : public PlannerClient {
 public:
  // --- What the test sets up.
  void SetPlan(const std::string& plan_id, const cairn::v1::Plan& plan);
  void SetJob(const cairn::v1::Job& job);
  void Push(const cairn::v1::Assignment& a);          // to the current (or next) stream
  void EndStream(absl::Status status);                 // the current stream ends with `status`
  void ForgetAgents();                                 // Heartbeat/Watch answer NOT_FOUND
  void FailReportsWith(absl::Status status);           // ReportJobStatus answers this
  void SetAgentIdToIssue(const std::string& id) { absl::MutexLock l(&mu_); next_id_ = id; }

  // --- What the test reads (copies, under the lock).
  std::vector<cairn::v1::ReportJobStatusRequest> reports() const;
  std::vector<cairn::v1::RegisterAgentRequest> registrations() const;
  std::vector<cairn::v1::HardwareProfile> hardware_profiles() const;
  std::vector<cairn::v1::ModelProfile> model_profiles() const;
  std::string logs(const std::string& job_id, int rank) const;
  int heartbeats() const;
  int watches() const;
  // Waits (bounded) until some report satisfies `pred`; true when one did.
  bool AwaitReport(const std::function<bool(const cairn::v1::ReportJobStatusRequest&)>& pred,
                   absl::Duration timeout = absl::Seconds(60));
  bool Await(const std::function<bool()>& cond, absl::Duration timeout = absl::Seconds(60));

  // --- PlannerClient.
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
  mutable absl::Mutex mu_;
  std::string next_id_ ABSL_GUARDED_BY(mu_) = "agent-1";
  std::set<std::string> known_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, cairn::v1::Plan> plans_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, cairn::v1::Job> jobs_ ABSL_GUARDED_BY(mu_);
  std::deque<cairn::v1::Assignment> pending_ ABSL_GUARDED_BY(mu_);
  std::optional<absl::Status> end_stream_ ABSL_GUARDED_BY(mu_);
  bool cancelled_ ABSL_GUARDED_BY(mu_) = false;
  absl::Status report_status_ ABSL_GUARDED_BY(mu_);
  std::vector<cairn::v1::ReportJobStatusRequest> reports_ ABSL_GUARDED_BY(mu_);
  std::vector<cairn::v1::RegisterAgentRequest> registrations_ ABSL_GUARDED_BY(mu_);
  std::vector<cairn::v1::StoredHardwareProfile> hardware_ ABSL_GUARDED_BY(mu_);
  std::vector<cairn::v1::ModelProfile> models_ ABSL_GUARDED_BY(mu_);
  std::map<std::pair<std::string, int>, std::string> logs_ ABSL_GUARDED_BY(mu_);
  int heartbeats_ ABSL_GUARDED_BY(mu_) = 0;
  int watches_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace cairn::agent

#endif  // CAIRN_AGENT_TESTING_FAKE_PLANNER_H_
