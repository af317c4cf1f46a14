// planner/server/timed_store.h — a Store decorator that times every call into
// cairn_planner_db_operation_duration_seconds{op}.
//
//   std::unique_ptr<Store> store = std::make_unique<TimedStore>(OpenSqliteStore(path).value(),
//                                                               &metrics);
//
// `op` is the Store method's name ("PutPlan", "GetJob", ...). Failed calls are timed too.
// Thread-safe if the wrapped store is (every Store is).
#ifndef CAIRN_PLANNER_SERVER_TIMED_STORE_H_
#define CAIRN_PLANNER_SERVER_TIMED_STORE_H_

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "planner/server/metrics.h"
#include "planner/store/store.h"

namespace cairn::planner {

class TimedStore final : public Store {
 public:
  // `metrics` must outlive this object.
  TimedStore(std::unique_ptr<Store> store, Metrics* metrics);

  absl::StatusOr<cairn::v1::StoredHardwareProfile> PutHardwareProfile(
      const cairn::v1::HardwareProfile& profile, const std::string& now) override;
  absl::StatusOr<cairn::v1::StoredHardwareProfile> GetHardwareProfile(const std::string& id,
                                                                      int version) override;
  absl::StatusOr<std::vector<cairn::v1::StoredHardwareProfile>> ListHardwareProfiles(
      int limit, const std::string& after) override;
  absl::StatusOr<int> DeleteHardwareProfile(const std::string& id) override;
  absl::StatusOr<cairn::v1::StoredModelProfile> PutModelProfile(
      const cairn::v1::ModelProfile& profile, const std::string& now) override;
  absl::StatusOr<cairn::v1::StoredModelProfile> GetModelProfile(const std::string& id,
                                                                int version) override;
  absl::StatusOr<std::vector<cairn::v1::StoredModelProfile>> ListModelProfiles(
      int limit, const std::string& after) override;
  absl::StatusOr<int> DeleteModelProfile(const std::string& id) override;
  absl::StatusOr<std::string> PutPlan(const PlanRecord& record, const std::string& now) override;
  absl::StatusOr<PlanRecord> GetPlan(const std::string& plan_id) override;
  absl::StatusOr<std::optional<PlanRecord>> FindPlanByCacheKey(
      const std::string& cache_key) override;
  absl::StatusOr<std::vector<PlanRecord>> ListPlans(int limit, const std::string& after,
                                                    const std::string& model_name) override;
  absl::StatusOr<cairn::v1::AgentInfo> RegisterAgent(const cairn::v1::AgentInfo& agent,
                                                     const std::string& now) override;
  absl::StatusOr<cairn::v1::AgentInfo> Heartbeat(const std::string& agent_id,
                                                 const std::string& now) override;
  absl::StatusOr<std::vector<cairn::v1::AgentInfo>> ListAgents() override;
  absl::StatusOr<std::vector<std::string>> MarkAgentsDown(const std::string& cutoff) override;
  absl::StatusOr<cairn::v1::Job> CreateJob(const cairn::v1::Job& job,
                                           const std::string& now) override;
  absl::StatusOr<cairn::v1::Job> UpdateJob(const cairn::v1::Job& job,
                                           const std::string& now) override;
  absl::StatusOr<cairn::v1::Job> GetJob(const std::string& job_id) override;
  absl::StatusOr<std::vector<cairn::v1::Job>> ListJobs(int limit, const std::string& after,
                                                       cairn::v1::JobState state) override;
  absl::Status RendezvousSet(const std::string& job_id, const std::string& key,
                             const std::string& value) override;
  absl::StatusOr<RendezvousUsage> GetRendezvousUsage(const std::string& job_id,
                                                     const std::string& key) override;
  absl::StatusOr<std::string> RendezvousGet(const std::string& job_id,
                                            const std::string& key) override;

 private:
  template <typename F>
  auto Timed(const char* op, F&& f);

  std::unique_ptr<Store> store_;
  Metrics* metrics_;
};

}  // namespace cairn::planner

#endif  // CAIRN_PLANNER_SERVER_TIMED_STORE_H_
