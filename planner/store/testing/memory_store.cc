#include "planner/store/testing/memory_store.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/time.h"

namespace cairn::planner::testing {
namespace {

absl::StatusOr<absl::Time> ParseTime(const std::string& text) {
  absl::Time t;
  std::string err;
  if (!absl::ParseTime(absl::RFC3339_full, text, &t, &err)) {
    return absl::InvalidArgumentError(absl::StrCat("not an RFC 3339 time: '", text, "'"));
  }
  return t;
}

int Limit(int limit) { return limit <= 0 ? 50 : limit; }

// Up to `limit` values of `m` with keys after `after`, in key order.
template <typename Map, typename F>
auto Page(const Map& m, int limit, const std::string& after, F&& keep) {
  std::vector<typename Map::mapped_type> out;
  for (auto it = m.upper_bound(after); it != m.end() && static_cast<int>(out.size()) < Limit(limit);
       ++it) {
    if (keep(it->second)) out.push_back(it->second);
  }
  return out;
}

}  // namespace

void MemoryStore::FailNext(absl::Status status) {
  absl::MutexLock lock(&mu_);
  fail_next_ = std::move(status);
}

int MemoryStore::calls() const {
  absl::MutexLock lock(&mu_);
  return calls_;
}

void MemoryStore::SetCallHook(std::function<void()> hook) {
  absl::MutexLock lock(&mu_);
  hook_ = std::move(hook);
}

absl::Status MemoryStore::Enter() {
  ++calls_;
  if (hook_) hook_();
  if (!fail_next_) return absl::OkStatus();
  absl::Status s = *fail_next_;
  fail_next_.reset();
  return s;
}

std::string MemoryStore::NewId(const char* prefix) {
  return absl::StrFormat("%s-%08d", prefix, next_id_++);
}

absl::StatusOr<cairn::v1::StoredHardwareProfile> MemoryStore::PutHardwareProfile(
    const cairn::v1::HardwareProfile& profile, const std::string& now) {
  absl::MutexLock lock(&mu_);
  if (absl::Status s = Enter(); !s.ok()) return s;
  if (profile.fingerprint().device_model().empty()) {
    return absl::InvalidArgumentError("fingerprint.device_model is required");
  }
  cairn::v1::StoredHardwareProfile out;
  out.set_id(StableProfileId(profile));
  out.set_version(++last_version_["hw:" + out.id()]);
  out.set_created_at(now);
  *out.mutable_profile() = profile;
  hardware_[out.id()][out.version()] = out;
  return out;
}

absl::StatusOr<cairn::v1::StoredHardwareProfile> MemoryStore::GetHardwareProfile(
    const std::string& id, int version) {
  absl::MutexLock lock(&mu_);
  if (absl::Status s = Enter(); !s.ok()) return s;
  auto it = hardware_.find(id);
  if (it == hardware_.end() || it->second.empty()) {
    return absl::NotFoundError(absl::StrCat("hardware profile ", id));
  }
  if (version == 0) return it->second.rbegin()->second;
  auto v = it->second.find(version);
  if (v == it->second.end()) {
    return absl::NotFoundError(absl::StrCat("hardware profile ", id, " version ", version));
  }
  return v->second;
}

absl::StatusOr<std::vector<cairn::v1::StoredHardwareProfile>> MemoryStore::ListHardwareProfiles(
    int limit, const std::string& after) {
  absl::MutexLock lock(&mu_);
  if (absl::Status s = Enter(); !s.ok()) return s;
  std::vector<cairn::v1::StoredHardwareProfile> out;
  for (auto it = hardware_.upper_bound(after);
       it != hardware_.end() && static_cast<int>(out.size()) < Limit(limit); ++it) {
    if (!it->second.empty()) out.push_back(it->second.rbegin()->second);
  }
  return out;
}

absl::StatusOr<int> MemoryStore::DeleteHardwareProfile(const std::string& id) {
  absl::MutexLock lock(&mu_);
  if (absl::Status s = Enter(); !s.ok()) return s;
  auto it = hardware_.find(id);
  if (it == hardware_.end()) return absl::NotFoundError(absl::StrCat("hardware profile ", id));
  const int n = static_cast<int>(it->second.size());
  hardware_.erase(it);
  return n;
}

absl::StatusOr<cairn::v1::StoredModelProfile> MemoryStore::PutModelProfile(
    const cairn::v1::ModelProfile& profile, const std::string& now) {
  absl::MutexLock lock(&mu_);
  if (absl::Status s = Enter(); !s.ok()) return s;
  if (profile.model_name().empty()) return absl::InvalidArgumentError("model_name is required");
  cairn::v1::StoredModelProfile out;
  out.set_id(StableProfileId(profile));
  out.set_version(++last_version_["model:" + out.id()]);
  out.set_created_at(now);
  *out.mutable_profile() = profile;
  models_[out.id()][out.version()] = out;
  return out;
}

absl::StatusOr<cairn::v1::StoredModelProfile> MemoryStore::GetModelProfile(const std::string& id,
                                                                           int version) {
  absl::MutexLock lock(&mu_);
  if (absl::Status s = Enter(); !s.ok()) return s;
  auto it = models_.find(id);
  if (it == models_.end() || it->second.empty()) {
    return absl::NotFoundError(absl::StrCat("model profile ", id));
  }
  if (version == 0) return it->second.rbegin()->second;
  auto v = it->second.find(version);
  if (v == it->second.end()) {
    return absl::NotFoundError(absl::StrCat("model profile ", id, " version ", version));
  }
  return v->second;
}

absl::StatusOr<std::vector<cairn::v1::StoredModelProfile>> MemoryStore::ListModelProfiles(
    int limit, const std::string& after) {
  absl::MutexLock lock(&mu_);
  if (absl::Status s = Enter(); !s.ok()) return s;
  std::vector<cairn::v1::StoredModelProfile> out;
  for (auto it = models_.upper_bound(after);
       it != models_.end() && static_cast<int>(out.size()) < Limit(limit); ++it) {
    if (!it->second.empty()) out.push_back(it->second.rbegin()->second);
  }
  return out;
}

absl::StatusOr<int> MemoryStore::DeleteModelProfile(const std::string& id) {
  absl::MutexLock lock(&mu_);
  if (absl::Status s = Enter(); !s.ok()) return s;
  auto it = models_.find(id);
  if (it == models_.end()) return absl::NotFoundError(absl::StrCat("model profile ", id));
  const int n = static_cast<int>(it->second.size());
  models_.erase(it);
  return n;
}

absl::StatusOr<std::string> MemoryStore::PutPlan(const PlanRecord& record, const std::string& now) {
  absl::MutexLock lock(&mu_);
  if (absl::Status s = Enter(); !s.ok()) return s;
  PlanRecord r = record;
  r.plan_id = NewId("plan");
  r.created_at = now;
  r.summary.set_plan_id(r.plan_id);
  r.summary.set_created_at(now);
  plans_[r.plan_id] = r;
  return r.plan_id;
}

absl::StatusOr<PlanRecord> MemoryStore::GetPlan(const std::string& plan_id) {
  absl::MutexLock lock(&mu_);
  if (absl::Status s = Enter(); !s.ok()) return s;
  auto it = plans_.find(plan_id);
  if (it == plans_.end()) return absl::NotFoundError(absl::StrCat("plan ", plan_id));
  return it->second;
}

absl::StatusOr<std::optional<PlanRecord>> MemoryStore::FindPlanByCacheKey(
    const std::string& cache_key) {
  absl::MutexLock lock(&mu_);
  if (absl::Status s = Enter(); !s.ok()) return s;
  if (cache_key.empty()) return absl::InvalidArgumentError("empty cache key");
  std::optional<PlanRecord> newest;
  for (const auto& [id, r] : plans_) {
    if (r.cache_key == cache_key) newest = r;  // ids grow with time: the last match is newest
  }
  return newest;
}

absl::StatusOr<std::vector<PlanRecord>> MemoryStore::ListPlans(int limit, const std::string& after,
                                                               const std::string& model_name) {
  absl::MutexLock lock(&mu_);
  if (absl::Status s = Enter(); !s.ok()) return s;
  std::vector<PlanRecord> out = Page(plans_, limit, after, [&](const PlanRecord& r) {
    return model_name.empty() || r.summary.model_name() == model_name;
  });
  for (PlanRecord& r : out) r.result.Clear();
  return out;
}

absl::StatusOr<cairn::v1::AgentInfo> MemoryStore::RegisterAgent(const cairn::v1::AgentInfo& agent,
                                                                const std::string& now) {
  absl::MutexLock lock(&mu_);
  if (absl::Status s = Enter(); !s.ok()) return s;
  if (absl::StatusOr<absl::Time> t = ParseTime(now); !t.ok()) return t.status();
  cairn::v1::AgentInfo a = agent;
  if (a.agent_id().empty() || agents_.count(a.agent_id()) == 0) a.set_agent_id(NewId("agent"));
  a.set_state(cairn::v1::AGENT_STATE_UP);
  a.set_registered_at(now);
  a.set_last_heartbeat_at(now);
  agents_[a.agent_id()] = a;
  return a;
}

absl::StatusOr<cairn::v1::AgentInfo> MemoryStore::Heartbeat(const std::string& agent_id,
                                                            const std::string& now) {
  absl::MutexLock lock(&mu_);
  if (absl::Status s = Enter(); !s.ok()) return s;
  if (absl::StatusOr<absl::Time> t = ParseTime(now); !t.ok()) return t.status();
  auto it = agents_.find(agent_id);
  if (it == agents_.end()) return absl::NotFoundError(absl::StrCat("agent ", agent_id));
  it->second.set_state(cairn::v1::AGENT_STATE_UP);
  it->second.set_last_heartbeat_at(now);
  return it->second;
}

absl::StatusOr<std::vector<cairn::v1::AgentInfo>> MemoryStore::ListAgents() {
  absl::MutexLock lock(&mu_);
  if (absl::Status s = Enter(); !s.ok()) return s;
  std::vector<cairn::v1::AgentInfo> out;
  for (const auto& [id, a] : agents_) out.push_back(a);
  return out;
}

absl::StatusOr<std::vector<std::string>> MemoryStore::MarkAgentsDown(const std::string& cutoff) {
  absl::MutexLock lock(&mu_);
  if (absl::Status s = Enter(); !s.ok()) return s;
  absl::StatusOr<absl::Time> c = ParseTime(cutoff);
  if (!c.ok()) return c.status();
  std::vector<std::string> down;
  for (auto& [id, a] : agents_) {
    if (a.state() != cairn::v1::AGENT_STATE_UP) continue;
    absl::StatusOr<absl::Time> last = ParseTime(a.last_heartbeat_at());
    if (last.ok() && *last < *c) {
      a.set_state(cairn::v1::AGENT_STATE_DOWN);
      down.push_back(id);
    }
  }
  return down;
}

absl::StatusOr<cairn::v1::Job> MemoryStore::CreateJob(const cairn::v1::Job& job,
                                                      const std::string& now) {
  absl::MutexLock lock(&mu_);
  if (absl::Status s = Enter(); !s.ok()) return s;
  cairn::v1::Job j = job;
  j.set_job_id(NewId("job"));
  j.set_created_at(now);
  j.set_updated_at(now);
  jobs_[j.job_id()] = j;
  return j;
}

absl::StatusOr<cairn::v1::Job> MemoryStore::UpdateJob(const cairn::v1::Job& job,
                                                      const std::string& now) {
  absl::MutexLock lock(&mu_);
  if (absl::Status s = Enter(); !s.ok()) return s;
  auto it = jobs_.find(job.job_id());
  if (it == jobs_.end()) return absl::NotFoundError(absl::StrCat("job ", job.job_id()));
  cairn::v1::Job j = job;
  j.set_created_at(it->second.created_at());
  j.set_updated_at(now);
  it->second = j;
  return j;
}

absl::StatusOr<cairn::v1::Job> MemoryStore::GetJob(const std::string& job_id) {
  absl::MutexLock lock(&mu_);
  if (absl::Status s = Enter(); !s.ok()) return s;
  auto it = jobs_.find(job_id);
  if (it == jobs_.end()) return absl::NotFoundError(absl::StrCat("job ", job_id));
  return it->second;
}

absl::StatusOr<std::vector<cairn::v1::Job>> MemoryStore::ListJobs(int limit,
                                                                  const std::string& after,
                                                                  cairn::v1::JobState state) {
  absl::MutexLock lock(&mu_);
  if (absl::Status s = Enter(); !s.ok()) return s;
  return Page(jobs_, limit, after, [&](const cairn::v1::Job& j) {
    return state == cairn::v1::JOB_STATE_UNSPECIFIED || j.state() == state;
  });
}

absl::Status MemoryStore::RendezvousSet(const std::string& job_id, const std::string& key,
                                        const std::string& value) {
  absl::MutexLock lock(&mu_);
  if (absl::Status s = Enter(); !s.ok()) return s;
  if (jobs_.count(job_id) == 0) return absl::NotFoundError(absl::StrCat("job ", job_id));
  rendezvous_[{job_id, key}] = value;
  return absl::OkStatus();
}

absl::StatusOr<Store::RendezvousUsage> MemoryStore::GetRendezvousUsage(const std::string& job_id,
                                                                      const std::string& key) {
  absl::MutexLock lock(&mu_);
  if (absl::Status s = Enter(); !s.ok()) return s;
  RendezvousUsage u;
  for (auto it = rendezvous_.lower_bound({job_id, ""});
       it != rendezvous_.end() && it->first.first == job_id; ++it) {
    ++u.keys;
    u.bytes += static_cast<int64_t>(it->second.size());
    if (it->first.second == key) u.key_bytes = static_cast<int64_t>(it->second.size());
  }
  return u;
}

absl::StatusOr<std::string> MemoryStore::RendezvousGet(const std::string& job_id,
                                                       const std::string& key) {
  absl::MutexLock lock(&mu_);
  if (absl::Status s = Enter(); !s.ok()) return s;
  auto it = rendezvous_.find({job_id, key});
  if (it == rendezvous_.end()) {
    return absl::NotFoundError(absl::StrCat("rendezvous key ", key, " of job ", job_id));
  }
  return it->second;
}

}  // namespace cairn::planner::testing
