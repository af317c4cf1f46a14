#include "planner/server/timed_store.h"

#include <chrono>
#include <utility>

namespace cairn::planner {

TimedStore::TimedStore(std::unique_ptr<Store> store, Metrics* metrics)
    : store_(std::move(store)), metrics_(metrics) {}

template <typename F>
auto TimedStore::Timed(const char* op, F&& f) {
  const auto start = std::chrono::steady_clock::now();
  auto result = f();
  metrics_->RecordDbOperation(
      op, std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
  return result;
}

absl::StatusOr<cairn::v1::StoredHardwareProfile> TimedStore::PutHardwareProfile(
    const cairn::v1::HardwareProfile& profile, const std::string& now) {
  return Timed("PutHardwareProfile", [&] { return store_->PutHardwareProfile(profile, now); });
}
absl::StatusOr<cairn::v1::StoredHardwareProfile> TimedStore::GetHardwareProfile(
    const std::string& id, int version) {
  return Timed("GetHardwareProfile", [&] { return store_->GetHardwareProfile(id, version); });
}
absl::StatusOr<std::vector<cairn::v1::StoredHardwareProfile>> TimedStore::ListHardwareProfiles(
    int limit, const std::string& after) {
  return Timed("ListHardwareProfiles", [&] { return store_->ListHardwareProfiles(limit, after); });
}
absl::StatusOr<int> TimedStore::DeleteHardwareProfile(const std::string& id) {
  return Timed("DeleteHardwareProfile", [&] { return store_->DeleteHardwareProfile(id); });
}
absl::StatusOr<cairn::v1::StoredModelProfile> TimedStore::PutModelProfile(
    const cairn::v1::ModelProfile& profile, const std::string& now) {
  return Timed("PutModelProfile", [&] { return store_->PutModelProfile(profile, now); });
}
absl::StatusOr<cairn::v1::StoredModelProfile> TimedStore::GetModelProfile(const std::string& id,
                                                                          int version) {
  return Timed("GetModelProfile", [&] { return store_->GetModelProfile(id, version); });
}
absl::StatusOr<std::vector<cairn::v1::StoredModelProfile>> TimedStore::ListModelProfiles(
    int limit, const std::string& after) {
  return Timed("ListModelProfiles", [&] { return store_->ListModelProfiles(limit, after); });
}
absl::StatusOr<int> TimedStore::DeleteModelProfile(const std::string& id) {
  return Timed("DeleteModelProfile", [&] { return store_->DeleteModelProfile(id); });
}
absl::StatusOr<std::string> TimedStore::PutPlan(const PlanRecord& record, const std::string& now) {
  return Timed("PutPlan", [&] { return store_->PutPlan(record, now); });
}
absl::StatusOr<PlanRecord> TimedStore::GetPlan(const std::string& plan_id) {
  return Timed("GetPlan", [&] { return store_->GetPlan(plan_id); });
}
absl::StatusOr<std::optional<PlanRecord>> TimedStore::FindPlanByCacheKey(
    const std::string& cache_key) {
  return Timed("FindPlanByCacheKey", [&] { return store_->FindPlanByCacheKey(cache_key); });
}
absl::StatusOr<std::vector<PlanRecord>> TimedStore::ListPlans(int limit, const std::string& after,
                                                              const std::string& model_name) {
  return Timed("ListPlans", [&] { return store_->ListPlans(limit, after, model_name); });
}
absl::StatusOr<cairn::v1::AgentInfo> TimedStore::RegisterAgent(const cairn::v1::AgentInfo& agent,
                                                               const std::string& now) {
  return Timed("RegisterAgent", [&] { return store_->RegisterAgent(agent, now); });
}
absl::StatusOr<cairn::v1::AgentInfo> TimedStore::Heartbeat(const std::string& agent_id,
                                                           const std::string& now) {
  return Timed("Heartbeat", [&] { return store_->Heartbeat(agent_id, now); });
}
absl::StatusOr<std::vector<cairn::v1::AgentInfo>> TimedStore::ListAgents() {
  return Timed("ListAgents", [&] { return store_->ListAgents(); });
}
absl::StatusOr<std::vector<std::string>> TimedStore::MarkAgentsDown(const std::string& cutoff) {
  return Timed("MarkAgentsDown", [&] { return store_->MarkAgentsDown(cutoff); });
}
absl::StatusOr<cairn::v1::Job> TimedStore::CreateJob(const cairn::v1::Job& job,
                                                     const std::string& now) {
  return Timed("CreateJob", [&] { return store_->CreateJob(job, now); });
}
absl::StatusOr<cairn::v1::Job> TimedStore::UpdateJob(const cairn::v1::Job& job,
                                                     const std::string& now) {
  return Timed("UpdateJob", [&] { return store_->UpdateJob(job, now); });
}
absl::StatusOr<cairn::v1::Job> TimedStore::GetJob(const std::string& job_id) {
  return Timed("GetJob", [&] { return store_->GetJob(job_id); });
}
absl::StatusOr<std::vector<cairn::v1::Job>> TimedStore::ListJobs(int limit,
                                                                 const std::string& after,
                                                                 cairn::v1::JobState state) {
  return Timed("ListJobs", [&] { return store_->ListJobs(limit, after, state); });
}
absl::Status TimedStore::RendezvousSet(const std::string& job_id, const std::string& key,
                                       const std::string& value) {
  return Timed("RendezvousSet", [&] { return store_->RendezvousSet(job_id, key, value); });
}
absl::StatusOr<Store::RendezvousUsage> TimedStore::GetRendezvousUsage(const std::string& job_id,
                                                                     const std::string& key) {
  return Timed("GetRendezvousUsage", [&] { return store_->GetRendezvousUsage(job_id, key); });
}
absl::StatusOr<std::string> TimedStore::RendezvousGet(const std::string& job_id,
                                                      const std::string& key) {
  return Timed("RendezvousGet", [&] { return store_->RendezvousGet(job_id, key); });
}

}  // namespace cairn::planner
