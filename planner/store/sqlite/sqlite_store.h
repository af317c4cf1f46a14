// planner/store/sqlite/sqlite_store.h — the production Store: one SQLite file.
//
// Overview
//   OpenSqliteStore(path) opens (creating if needed) a SQLite database, brings its schema up to
//   date with the migrations in sqlite_store.cc, and returns a Store (planner/store/store.h) on it.
//   The schema, the durability settings and how to back the file up are in docs/store.md.
//
//     CAIRN_ASSIGN_OR_RETURN(std::unique_ptr<SqliteStore> store,
//                            SqliteStore::Open("/var/lib/cairn/planner.db"));
//     CAIRN_ASSIGN_OR_RETURN(auto stored,
//                            store->PutHardwareProfile(profile, "2026-11-28T08:00:00Z"));
//
// Durability: WAL journal, synchronous=FULL by default: a method that returned OK has its
//   transaction fsync'ed to the WAL, so it survives kill -9 of the process and power loss (the
//   latter assuming the disk honours fsync). tests/store_durability_test.cc kills a writer process
//   with SIGKILL mid-load and finds every acknowledged record after reopening.
//
// Connections (why a writer plus a small reader pool, not one connection): SQLite allows one
//   writer at a time per file anyway, so all writes go through one connection under a mutex; each
//   write is one BEGIN IMMEDIATE transaction whose COMMIT waits for an fsync (0.2 ms to several
//   ms).
//   Reads (plan-cache lookups, Get, List) run on `read_connections` separate connections: in WAL
//   mode they read the last committed snapshot without waiting for that fsync, so a cached plan is
//   not queued behind a profile upload. A read started after a write returned sees that write.
//   read_connections = 0 puts everything on the writer connection (":memory:" always does: each
//   connection to ":memory:" would be a different database).
//
// Ids
//   - Profiles: StableProfileId (16 hex digits, from the fingerprint). Versions start at 1 and
//     never repeat for an id, even after a delete (a plan-cache key naming "id@v3" can never point
//     at different numbers later). Putting a profile whose id collides with a different
//     fingerprint is AlreadyExists.
//   - Plans, jobs, agents: "plan-", "job-", "agent-" + 32 hex digits (128 bits): 48 bits of the
//     `now` passed to the call (milliseconds since the Unix epoch, as in UUIDv7) then 80 random
//     bits from std::random_device. Ids therefore sort by creation time (list order = age order)
//     and do not collide in practice (two ids in the same millisecond collide with probability
//     2^-80; a collision would fail the write with AlreadyExists, never overwrite).
//
// Errors (beyond Store's contract)
//   - `now`/`cutoff` must be RFC 3339 (e.g. "2026-11-28T08:00:00Z", "...08:00:00.123+01:00"):
//     InvalidArgument otherwise. Stored as given; compared as instants (microseconds), so offsets
//     and fractional seconds order correctly.
//   - PutHardwareProfile needs fingerprint.device_model, PutModelProfile needs model_name
//     (InvalidArgument): they are what the id is derived from.
//   - RendezvousSet for a job the store does not know is NotFound (keys belong to a job).
//   - FindPlanByCacheKey("") is InvalidArgument (plans stored without a key are never cache hits).
//   - Storage failures: Unavailable (database locked by another process for longer than
//     busy_timeout_ms), DataLoss (corrupt file, or a stored blob that does not parse),
//     ResourceExhausted (disk full), FailedPrecondition (cannot open/create the file, or the
//     file's schema is newer than this build), Internal (I/O errors). Messages name the operation
//     and the SQLite error.
//
// Thread safety: every method may be called from any thread (as Store requires).
#ifndef CAIRN_PLANNER_STORE_SQLITE_SQLITE_STORE_H_
#define CAIRN_PLANNER_STORE_SQLITE_SQLITE_STORE_H_

#include <functional>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "planner/store/store.h"

namespace cairn::planner {

namespace sqlite {
class Connection;  // planner/store/sqlite/connection.h; SQLite headers stay out of this one
}  // namespace sqlite

// Every tunable of the SQLite store, with its default.
struct SqliteOptions {
  // How long a statement waits for a lock held by another connection or process (e.g. a backup, a
  // second daemon on the same file) before failing with Unavailable, milliseconds.
  int busy_timeout_ms = 5000;

  // PRAGMA synchronous. kFull (default): every commit fsyncs the WAL, so acknowledged writes
  // survive power loss. kNormal: commits survive a process crash but the last ones may be lost on
  // power loss (fsync only at checkpoints); faster. kOff: for throwaway databases in
  // tests/benchmarks only.
  enum class Synchronous { kOff, kNormal, kFull, kExtra };
  Synchronous synchronous = Synchronous::kFull;

  // Read-only connections for Get/List/FindPlanByCacheKey/CheckIntegrity (see the banner). 0 =
  // none: reads share the writer connection.
  int read_connections = 4;

  // PRAGMA wal_autocheckpoint: the WAL is copied back into the database file after this many pages
  // (4 KiB each) have been appended. SQLite's default.
  int wal_autocheckpoint_pages = 1000;

  // Hold a lock on the database file (flock, beside SQLite's own locks) for the store's lifetime:
  // exclusive, or shared when read_only. A second store asking for a conflicting lock fails at
  // Open with FailedPrecondition, so two daemons never serve one file (each would keep its own
  // agents, jobs and rendezvous waiters). The daemon sets it; tests that open a file twice do not.
  bool lock_file = false;

  // Open the file read-only: no migrations (the schema must be current), every write fails with
  // FailedPrecondition. Without it, a file the process cannot write is refused at Open
  // (FailedPrecondition) instead of failing at the first write.
  bool read_only = false;
};

// The version of the newest schema this build knows (PRAGMA user_version after migrations).
int SqliteSchemaVersion();

class SqliteStore final : public Store {
 public:
  // Opens or creates the database at `path` (":memory:" for a private in-memory one), sets WAL,
  // foreign keys, synchronous and the busy timeout, and applies the missing migrations, each in its
  // own transaction (a crash mid-migration leaves the previous version intact).
  // Errors: FailedPrecondition when the file's schema version is newer than SqliteSchemaVersion()
  // ("written by a newer Cairn"), when it belongs to another application, when the file cannot
  // be opened or created, when it is read-only and options.read_only is not set, or when
  // options.lock_file is set and another process holds the file; DataLoss when it is not a SQLite
  // database; InvalidArgument for bad options.
  static absl::StatusOr<std::unique_ptr<SqliteStore>> Open(const std::string& path,
                                                           const SqliteOptions& options = {});
  ~SqliteStore() override;

  // Store (contracts in planner/store/store.h; additions in the banner above).
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
  absl::StatusOr<std::string> RendezvousGet(const std::string& job_id,
                                            const std::string& key) override;
  absl::StatusOr<RendezvousUsage> GetRendezvousUsage(const std::string& job_id,
                                                     const std::string& key) override;

  // --- Operations.

  // Runs PRAGMA integrity_check and PRAGMA foreign_key_check on a read connection (writers keep
  // going). OK when both find nothing; DataLoss listing the first problems otherwise. Reads the
  // whole file: seconds per GiB.
  absl::Status CheckIntegrity();

  // Writes a consistent, compacted snapshot of the database to `path` (VACUUM INTO) while writes
  // continue, then fsyncs it and its directory. The file must not exist. Restoring is copying it
  // back while the daemon is stopped.
  // Errors: AlreadyExists when `path` exists; the SQLite mapping of the banner otherwise.
  absl::Status BackupTo(const std::string& path);

  // The schema version stored in the file (equals SqliteSchemaVersion() once opened).
  absl::StatusOr<int> SchemaVersion();

  // The settings in effect on the writer connection, one line for the daemon's startup log, e.g.
  // "path=/var/lib/cairn/planner.db journal_mode=wal synchronous=FULL foreign_keys=on
  // busy_timeout_ms=5000 read_connections=4 schema_version=1".
  absl::StatusOr<std::string> EffectiveSettings();

 private:
  SqliteStore(std::string path, const SqliteOptions& options,
              std::unique_ptr<sqlite::Connection> writer,
              std::vector<std::unique_ptr<sqlite::Connection>> readers, int lock_fd);

  // Runs `body` in one write transaction on the writer connection (serialised by writer_mu_).
  absl::Status Write(const char* operation,
                     const std::function<absl::Status(sqlite::Connection&)>& body);
  // Runs `body` in one read transaction on a free reader (waits for one), or on the writer when
  // there are no readers.
  absl::Status Read(const char* operation,
                    const std::function<absl::Status(sqlite::Connection&)>& body);
  // "<prefix>-" + 12 hex digits of now's Unix milliseconds + 20 random hex digits.
  std::string NewId(const char* prefix, int64_t now_us) ABSL_EXCLUSIVE_LOCKS_REQUIRED(writer_mu_);

  const std::string path_;
  const SqliteOptions options_;
  int lock_fd_ = -1;  // held open (and flock'ed) until the connections are closed

  absl::Mutex writer_mu_;
  std::unique_ptr<sqlite::Connection> writer_ ABSL_GUARDED_BY(writer_mu_);
  std::random_device random_ ABSL_GUARDED_BY(writer_mu_);

  absl::Mutex readers_mu_;
  std::vector<std::unique_ptr<sqlite::Connection>> readers_;  // fixed after construction
  std::vector<sqlite::Connection*> free_readers_ ABSL_GUARDED_BY(readers_mu_);
};

// Opens the SQLite store at `path`; see SqliteStore::Open.
absl::StatusOr<std::unique_ptr<Store>> OpenSqliteStore(const std::string& path,
                                                       const SqliteOptions& options = {});

}  // namespace cairn::planner

#endif  // CAIRN_PLANNER_STORE_SQLITE_SQLITE_STORE_H_
