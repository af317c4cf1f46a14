// planner/store/testing/memory_store.h — an in-memory Store for unit tests of the planner daemon.
//
//   MemoryStore store;
//   PlannerLogic planner(&store, ...);
//   store.FailNext(absl::UnavailableError("disk gone"));   // the next call fails like this
//
// Follows every contract of store.h except durability (nothing survives the object). Ids are
// "plan-", "job-", "agent-" + a zero-padded counter, so they sort in creation order like the SQLite
// store's. Times are compared as instants (RFC 3339 parsed), as the SQLite store does.
// Thread-safe (one mutex).
#ifndef CAIRN_PLANNER_STORE_TESTING_MEMORY_STORE_H_
#define CAIRN_PLANNER_STORE_TESTING_MEMORY_STORE_H_

#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <functional>

#include "absl/synchronization/mutex.h"
#include "planner/store/store.h"

namespace cairn::planner::testing {

class MemoryStore final : public Store {
 public:
  // The next Store call (any method) returns `status` instead of doing its work.
  void FailNext(absl::Status status);
  // Number of Store calls so far (to check that a cache hit did not write, etc.).
  int calls() const;
  // Runs `hook` at the start of every later Store call, with the store's lock held (tests: block
  // a call to see which threads wait for it). Empty: none.
  void SetCallHook(std::function<void()> hook);

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
  // Counts the call and returns the injected failure, if any.
  absl::Status Enter() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  std::string NewId(const char* prefix) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  mutable absl::Mutex mu_;
  int calls_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t next_id_ ABSL_GUARDED_BY(mu_) = 1;
  std::optional<absl::Status> fail_next_ ABSL_GUARDED_BY(mu_);
  std::function<void()> hook_ ABSL_GUARDED_BY(mu_);
  // id -> version -> record.
  std::map<std::string, std::map<int, cairn::v1::StoredHardwareProfile>> hardware_
      ABSL_GUARDED_BY(mu_);
  std::map<std::string, std::map<int, cairn::v1::StoredModelProfile>> models_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, int> last_version_ ABSL_GUARDED_BY(mu_);  // never reused after a delete
  std::map<std::string, PlanRecord> plans_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, cairn::v1::AgentInfo> agents_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, cairn::v1::Job> jobs_ ABSL_GUARDED_BY(mu_);
  std::map<std::pair<std::string, std::string>, std::string> rendezvous_ ABSL_GUARDED_BY(mu_);
};

}  // namespace cairn::planner::testing

#endif  // CAIRN_PLANNER_STORE_TESTING_MEMORY_STORE_H_
