// planner/store/store.h — what the planner daemon persists, behind one small interface.
//
// The daemon (planner/server) talks only to Store; the production implementation is SQLite
// (planner/store/sqlite/sqlite_store.h: WAL, schema migrations, prepared statements, busy timeout,
// every acknowledged write durable). Tests of the server may use the in-memory implementation in
// planner/store/testing/ (unit tests only).
//
//   std::unique_ptr<Store> store = OpenSqliteStore("/var/lib/cairn/planner.db").value();
//   StoredHardwareProfile p = store->PutHardwareProfile(profile, now).value();
//   absl::StatusOr<StoredHardwareProfile> same = store->GetHardwareProfile(p.id(), 0);
//
// Contracts (every implementation):
// - Thread-safe: any method may be called from any thread concurrently.
// - A method that returns OK has made its write durable (it survives a crash right after).
// - Errors: NotFound for a missing id; InvalidArgument for a malformed argument; AlreadyExists
//   where stated; Internal/Unavailable for storage failures (message says what failed).
// - Times are RFC 3339 UTC strings passed in by the caller (`now`), so tests control the clock.
// - Ids are opaque strings; pagination: `after` is the last id of the previous page ("" = start),
//   results are ordered by id, at most `limit` of them (limit <= 0 means 50).
#ifndef CAIRN_PLANNER_STORE_STORE_H_
#define CAIRN_PLANNER_STORE_STORE_H_

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "proto/cairn/v1/service.pb.h"

namespace cairn::planner {

// A stored search result.
struct PlanRecord {
  std::string plan_id;               // assigned by PutPlan
  std::string cache_key;             // request + profile versions + planner version; may be ""
  cairn::v1::SearchResponse result;  // plans[0] is the best
  cairn::v1::PlanSummary summary;    // filled by the caller (plan_id/created_at by the store)
  std::string created_at;
};

class Store {
 public:
  virtual ~Store() = default;

  // --- Profiles. The id is derived from the fingerprint (StableProfileId below); putting a profile
  // with an existing id stores version = previous latest + 1.
  virtual absl::StatusOr<cairn::v1::StoredHardwareProfile> PutHardwareProfile(
      const cairn::v1::HardwareProfile& profile, const std::string& now) = 0;
  // version 0 = latest.
  virtual absl::StatusOr<cairn::v1::StoredHardwareProfile> GetHardwareProfile(
      const std::string& id, int version) = 0;
  // Latest version of each id.
  virtual absl::StatusOr<std::vector<cairn::v1::StoredHardwareProfile>> ListHardwareProfiles(
      int limit, const std::string& after) = 0;
  // Deletes every version; returns how many (NotFound when none).
  virtual absl::StatusOr<int> DeleteHardwareProfile(const std::string& id) = 0;

  virtual absl::StatusOr<cairn::v1::StoredModelProfile> PutModelProfile(
      const cairn::v1::ModelProfile& profile, const std::string& now) = 0;
  virtual absl::StatusOr<cairn::v1::StoredModelProfile> GetModelProfile(const std::string& id,
                                                                        int version) = 0;
  virtual absl::StatusOr<std::vector<cairn::v1::StoredModelProfile>> ListModelProfiles(
      int limit, const std::string& after) = 0;
  virtual absl::StatusOr<int> DeleteModelProfile(const std::string& id) = 0;

  // --- Plans and the plan cache.
  // Stores `record` (plan_id and created_at are assigned; created_at = now) and returns the id.
  virtual absl::StatusOr<std::string> PutPlan(const PlanRecord& record, const std::string& now) = 0;
  virtual absl::StatusOr<PlanRecord> GetPlan(const std::string& plan_id) = 0;
  // The newest plan stored with this cache key, if any.
  virtual absl::StatusOr<std::optional<PlanRecord>> FindPlanByCacheKey(
      const std::string& cache_key) = 0;
  // Summaries only (result left empty); `model_name` "" = all.
  virtual absl::StatusOr<std::vector<PlanRecord>> ListPlans(int limit, const std::string& after,
                                                            const std::string& model_name) = 0;

  // --- Agents.
  // Registers (or re-registers, keeping agent_id when set and known) an agent: state UP,
  // registered_at/last_heartbeat_at = now. Returns the stored record with its id.
  virtual absl::StatusOr<cairn::v1::AgentInfo> RegisterAgent(const cairn::v1::AgentInfo& agent,
                                                             const std::string& now) = 0;
  // Records a heartbeat (state UP). NotFound for an unknown agent.
  virtual absl::StatusOr<cairn::v1::AgentInfo> Heartbeat(const std::string& agent_id,
                                                         const std::string& now) = 0;
  virtual absl::StatusOr<std::vector<cairn::v1::AgentInfo>> ListAgents() = 0;
  // Sets state DOWN for every UP agent whose last heartbeat is before `cutoff`; returns their ids.
  virtual absl::StatusOr<std::vector<std::string>> MarkAgentsDown(const std::string& cutoff) = 0;

  // --- Jobs.
  // Stores a new job (job_id, created_at and updated_at assigned) and returns it.
  virtual absl::StatusOr<cairn::v1::Job> CreateJob(const cairn::v1::Job& job,
                                                   const std::string& now) = 0;
  // Replaces the stored job with the same id (updated_at = now). NotFound when absent.
  virtual absl::StatusOr<cairn::v1::Job> UpdateJob(const cairn::v1::Job& job,
                                                   const std::string& now) = 0;
  virtual absl::StatusOr<cairn::v1::Job> GetJob(const std::string& job_id) = 0;
  // state UNSPECIFIED = all.
  virtual absl::StatusOr<std::vector<cairn::v1::Job>> ListJobs(int limit, const std::string& after,
                                                               cairn::v1::JobState state) = 0;

  // --- Rendezvous (per-job key-value).
  virtual absl::Status RendezvousSet(const std::string& job_id, const std::string& key,
                                     const std::string& value) = 0;
  // NotFound when the key is not set yet.
  virtual absl::StatusOr<std::string> RendezvousGet(const std::string& job_id,
                                                    const std::string& key) = 0;
  // What a job's keys take, for the per-job limits: how many keys, their values' bytes, and the
  // bytes of `key`'s value (-1 when `key` is not set). All 0 (and -1) for a job without keys.
  struct RendezvousUsage {
    int64_t keys = 0;
    int64_t bytes = 0;
    int64_t key_bytes = -1;
  };
  virtual absl::StatusOr<RendezvousUsage> GetRendezvousUsage(const std::string& job_id,
                                                             const std::string& key) = 0;
};

// The id of a profile: a short hex digest of its fingerprint (device model, memory, driver, CUDA,
// NCCL, topology) for hardware, of (model name, device model, activation dtype) for model profiles.
// Exactly 16 lowercase hex digits: the 64-bit FNV-1a hash of ProfileFingerprintKey(profile). Only
// the fingerprint fields count (a new name, notes or measurements of the same machine make a new
// version of the same id). Stable across runs, machines and Cairn versions: ids are persisted.
std::string StableProfileId(const cairn::v1::HardwareProfile& profile);
std::string StableProfileId(const cairn::v1::ModelProfile& profile);

// The canonical bytes StableProfileId hashes: a tag naming the kind and format version, then each
// fingerprint field as `<decimal length>:<bytes>;` in field-number order (integers in decimal),
// e.g. "25:cairn.hardware_profile.v1;3:cpu;1:0;0:;0:;0:;0:;". Injective, so a store can keep it
// beside the id and detect a hash collision between two different fingerprints.
std::string ProfileFingerprintKey(const cairn::v1::HardwareProfile& profile);
std::string ProfileFingerprintKey(const cairn::v1::ModelProfile& profile);

}  // namespace cairn::planner

#endif  // CAIRN_PLANNER_STORE_STORE_H_
