#include "planner/store/sqlite/sqlite_store.h"

#include <fcntl.h>
#include <sqlite3.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstring>
#include <iterator>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"
#include "absl/time/time.h"
#include "common/logging.h"
#include "common/status_macros.h"
#include "planner/store/sqlite/connection.h"

namespace cairn::planner {
namespace {

using sqlite::Connection;
using sqlite::Statement;

// PRAGMA application_id of a Cairn planner database: "Carn" in ASCII. Lets Open refuse to migrate
// some other application's SQLite file that happens to be at --db.
constexpr int64_t kApplicationId = 0x4361726e;

constexpr int kDefaultPageSize = 50;

// --- Schema migrations.
//
// Append-only: migration N turns a version N-1 database into version N. Never edit a released step
// (databases in the field already ran it); add a new one. Each runs in one transaction together
// with `PRAGMA user_version = N`, so a crash leaves either version N-1 or N. SQL only, no values.
struct Migration {
  int version;
  const char* description;
  const char* sql;
};

constexpr Migration kMigrations[] = {
    {1, "profiles, plans, agents, jobs, rendezvous",
     R"sql(
-- Profiles: one row per id (the fingerprint it was derived from, for collision detection, and
-- the last version ever given out, kept after a delete so versions never repeat) and one row per
-- version.
CREATE TABLE hardware_profile_ids (
  id              TEXT    NOT NULL PRIMARY KEY,
  fingerprint_key BLOB    NOT NULL,
  last_version    INTEGER NOT NULL CHECK (last_version > 0)
) STRICT;
CREATE TABLE hardware_profiles (
  id           TEXT    NOT NULL REFERENCES hardware_profile_ids (id),
  version      INTEGER NOT NULL CHECK (version > 0),
  name         TEXT    NOT NULL,  -- HardwareProfile.name
  device_model TEXT    NOT NULL,  -- fingerprint.device_model
  created_at   TEXT    NOT NULL,  -- RFC 3339, as given
  created_us   INTEGER NOT NULL,  -- the same instant, Unix microseconds
  profile      BLOB    NOT NULL,  -- serialized cairn.v1.HardwareProfile
  PRIMARY KEY (id, version)
) STRICT;

CREATE TABLE model_profile_ids (
  id              TEXT    NOT NULL PRIMARY KEY,
  fingerprint_key BLOB    NOT NULL,
  last_version    INTEGER NOT NULL CHECK (last_version > 0)
) STRICT;
CREATE TABLE model_profiles (
  id           TEXT    NOT NULL REFERENCES model_profile_ids (id),
  version      INTEGER NOT NULL CHECK (version > 0),
  name         TEXT    NOT NULL,  -- ModelProfile.model_name
  device_model TEXT    NOT NULL,  -- ModelProfile.device_model
  created_at   TEXT    NOT NULL,
  created_us   INTEGER NOT NULL,
  profile      BLOB    NOT NULL,  -- serialized cairn.v1.ModelProfile
  PRIMARY KEY (id, version)
) STRICT;

-- Plans: seq is the insertion order ("newest" for the plan cache); plan_id the public id.
CREATE TABLE plans (
  seq        INTEGER NOT NULL PRIMARY KEY,
  plan_id    TEXT    NOT NULL UNIQUE,
  cache_key  TEXT,                  -- NULL when stored without one
  model_name TEXT    NOT NULL,      -- summary.model_name, for ListPlans' filter
  created_at TEXT    NOT NULL,
  created_us INTEGER NOT NULL,
  summary    BLOB    NOT NULL,      -- serialized cairn.v1.PlanSummary (listing reads only this)
  result     BLOB    NOT NULL       -- serialized cairn.v1.SearchResponse
) STRICT;
CREATE INDEX plans_by_cache_key ON plans (cache_key, seq) WHERE cache_key IS NOT NULL;
CREATE INDEX plans_by_model ON plans (model_name, plan_id);

CREATE TABLE agents (
  agent_id          TEXT    NOT NULL PRIMARY KEY,
  state             INTEGER NOT NULL,  -- cairn.v1.AgentState
  last_heartbeat_us INTEGER NOT NULL,
  info              BLOB    NOT NULL   -- serialized cairn.v1.AgentInfo
) STRICT;
CREATE INDEX agents_by_state ON agents (state, last_heartbeat_us);

CREATE TABLE jobs (
  job_id     TEXT    NOT NULL PRIMARY KEY,
  state      INTEGER NOT NULL,  -- cairn.v1.JobState
  created_us INTEGER NOT NULL,
  updated_us INTEGER NOT NULL,
  job        BLOB    NOT NULL   -- serialized cairn.v1.Job
) STRICT;
CREATE INDEX jobs_by_state ON jobs (state, job_id);

CREATE TABLE rendezvous (
  job_id TEXT NOT NULL REFERENCES jobs (job_id) ON DELETE CASCADE,
  key    TEXT NOT NULL,
  value  BLOB NOT NULL,
  PRIMARY KEY (job_id, key)
) STRICT, WITHOUT ROWID;

PRAGMA application_id = 1130459758;  -- kApplicationId, 0x4361726e ("Carn")
)sql"},
};

// --- Helpers.

absl::StatusOr<int64_t> ParseTimeUs(absl::string_view field, const std::string& value) {
  absl::Time t;
  std::string error;
  if (!absl::ParseTime(absl::RFC3339_full, value, &t, &error) || t == absl::InfiniteFuture() ||
      t == absl::InfinitePast()) {
    const std::string shown = value.size() > 64 ? value.substr(0, 64) + "..." : value;
    return absl::InvalidArgumentError(absl::StrCat(
        field, " is not an RFC 3339 time such as 2026-11-28T08:00:00Z: \"", shown, "\""));
  }
  return absl::ToUnixMicros(t);
}

int PageSize(int limit) { return limit <= 0 ? kDefaultPageSize : limit; }

absl::StatusOr<std::string> Serialize(const google::protobuf::MessageLite& message,
                                      absl::string_view what) {
  std::string bytes;
  if (!message.SerializeToString(&bytes)) {
    return absl::InvalidArgumentError(
        absl::StrCat(what, " cannot be serialized (larger than 2 GiB or missing fields)"));
  }
  return bytes;
}

template <typename Message>
absl::Status ParseBlob(absl::string_view bytes, absl::string_view what, Message* out) {
  if (!out->ParseFromArray(bytes.data(), static_cast<int>(bytes.size()))) {
    return absl::DataLossError(absl::StrCat("stored ", what, " (", bytes.size(),
                                            " bytes) does not parse as ",
                                            Message::descriptor()->full_name()));
  }
  return absl::OkStatus();
}

absl::Status RequireNonEmpty(absl::string_view field, const std::string& value) {
  if (value.empty()) return absl::InvalidArgumentError(absl::StrCat(field, " is empty"));
  return absl::OkStatus();
}

// Makes `path` durable: fsync of the file, then of its directory (so the new name survives too).
absl::Status FsyncFileAndDirectory(const std::string& path) {
  for (const std::string& target :
       {path, path.rfind('/') == std::string::npos
                  ? std::string(".")
                  : (path.rfind('/') == 0 ? std::string("/") : path.substr(0, path.rfind('/')))}) {
    const int fd = ::open(target.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
      return absl::InternalError(
          absl::StrCat("opening ", target, " to fsync: ", std::strerror(errno)));
    }
    const int rc = ::fsync(fd);
    const int fsync_errno = errno;
    ::close(fd);
    if (rc != 0) {
      return absl::InternalError(absl::StrCat("fsync ", target, ": ", std::strerror(fsync_errno)));
    }
  }
  return absl::OkStatus();
}

// --- Profiles, shared by the hardware and model kinds. The two kinds have identical tables; the
// SQL differs only in the table names, which come from this file (never from input).
struct ProfileSql {
  std::string select_id;
  std::string insert_id;
  std::string update_id;
  std::string insert_version;
  std::string select_latest;
  std::string select_version;
  std::string select_max_version;
  std::string list_latest;
  std::string delete_all;

  ProfileSql(const char* ids_table, const char* table) {
    auto sql = [&](const char* pattern) {
      return absl::StrReplaceAll(pattern, {{"$ids", ids_table}, {"$profiles", table}});
    };
    select_id = sql("SELECT fingerprint_key, last_version FROM $ids WHERE id = ?1");
    insert_id = sql("INSERT INTO $ids (id, fingerprint_key, last_version) VALUES (?1, ?2, ?3)");
    update_id = sql("UPDATE $ids SET last_version = ?2 WHERE id = ?1");
    insert_version = sql(
        "INSERT INTO $profiles (id, version, name, device_model, created_at, created_us, profile) "
        "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)");
    select_latest =
        sql("SELECT version, created_at, profile FROM $profiles WHERE id = ?1 "
            "ORDER BY version DESC LIMIT 1");
    select_version =
        sql("SELECT version, created_at, profile FROM $profiles WHERE id = ?1 AND version = ?2");
    select_max_version = sql("SELECT MAX(version) FROM $profiles WHERE id = ?1");
    list_latest =
        sql("SELECT p.id, p.version, p.created_at, p.profile FROM $ids AS h JOIN $profiles AS p "
            "ON p.id = h.id AND p.version = (SELECT MAX(version) FROM $profiles WHERE id = h.id) "
            "WHERE h.id > ?1 ORDER BY h.id LIMIT ?2");
    delete_all = sql("DELETE FROM $profiles WHERE id = ?1");
  }
};

struct HardwareKind {
  using Profile = cairn::v1::HardwareProfile;
  using Stored = cairn::v1::StoredHardwareProfile;
  static constexpr const char* kWhat = "hardware profile";
  static const ProfileSql& Sql() {
    static const ProfileSql* sql = new ProfileSql("hardware_profile_ids", "hardware_profiles");
    return *sql;
  }
  static absl::Status Validate(const Profile& p) {
    return RequireNonEmpty("profile.fingerprint.device_model", p.fingerprint().device_model());
  }
  static const std::string& Name(const Profile& p) { return p.name(); }
  static const std::string& DeviceModel(const Profile& p) { return p.fingerprint().device_model(); }
};

struct ModelKind {
  using Profile = cairn::v1::ModelProfile;
  using Stored = cairn::v1::StoredModelProfile;
  static constexpr const char* kWhat = "model profile";
  static const ProfileSql& Sql() {
    static const ProfileSql* sql = new ProfileSql("model_profile_ids", "model_profiles");
    return *sql;
  }
  static absl::Status Validate(const Profile& p) {
    return RequireNonEmpty("profile.model_name", p.model_name());
  }
  static const std::string& Name(const Profile& p) { return p.model_name(); }
  static const std::string& DeviceModel(const Profile& p) { return p.device_model(); }
};

// Inside a write transaction: the next version of `id`, recording it (and, for a new id, the
// fingerprint) in the ids table.
template <typename Kind>
absl::StatusOr<int> NextProfileVersion(Connection& conn, const std::string& id,
                                       const std::string& fingerprint_key) {
  const ProfileSql& sql = Kind::Sql();
  int version = 1;
  {
    CAIRN_ASSIGN_OR_RETURN(Statement st, conn.Prepare(sql.select_id, "reading the profile id"));
    st.BindText(1, id);
    CAIRN_ASSIGN_OR_RETURN(const bool row, st.Step());
    if (row) {
      if (st.ColumnBlob(0) != fingerprint_key) {
        return absl::AlreadyExistsError(
            absl::StrCat(Kind::kWhat, " id ", id,
                         " is already taken by a different fingerprint (a 64-bit hash "
                         "collision: stored \"",
                         st.ColumnBlob(0), "\", new \"", fingerprint_key,
                         "\"); change a fingerprint field, e.g. append to its topology"));
      }
      version = static_cast<int>(st.ColumnInt64(1)) + 1;
    }
  }
  CAIRN_ASSIGN_OR_RETURN(Statement st, conn.Prepare(version == 1 ? sql.insert_id : sql.update_id,
                                                    "recording the profile version"));
  st.BindText(1, id);
  if (version == 1) {
    st.BindBlob(2, fingerprint_key);
    st.BindInt64(3, version);
  } else {
    st.BindInt64(2, version);
  }
  CAIRN_RETURN_IF_ERROR(st.StepDone());
  return version;
}

template <typename Kind>
absl::Status InsertProfile(Connection& conn, const typename Kind::Profile& profile,
                           const std::string& id, const std::string& now, int64_t now_us,
                           const std::string& bytes, typename Kind::Stored* stored) {
  CAIRN_ASSIGN_OR_RETURN(const int version,
                         NextProfileVersion<Kind>(conn, id, ProfileFingerprintKey(profile)));
  CAIRN_ASSIGN_OR_RETURN(Statement st,
                         conn.Prepare(Kind::Sql().insert_version, "inserting the profile"));
  st.BindText(1, id);
  st.BindInt64(2, version);
  st.BindText(3, Kind::Name(profile));
  st.BindText(4, Kind::DeviceModel(profile));
  st.BindText(5, now);
  st.BindInt64(6, now_us);
  st.BindBlob(7, bytes);
  CAIRN_RETURN_IF_ERROR(st.StepDone());
  stored->set_id(id);
  stored->set_version(version);
  stored->set_created_at(now);
  *stored->mutable_profile() = profile;
  return absl::OkStatus();
}

template <typename Kind>
absl::Status ReadProfile(Connection& conn, const std::string& id, int version,
                         typename Kind::Stored* stored) {
  const ProfileSql& sql = Kind::Sql();
  CAIRN_ASSIGN_OR_RETURN(
      Statement st,
      conn.Prepare(version == 0 ? sql.select_latest : sql.select_version, "reading the profile"));
  st.BindText(1, id);
  if (version != 0) st.BindInt64(2, version);
  CAIRN_ASSIGN_OR_RETURN(const bool row, st.Step());
  if (row) {
    stored->set_id(id);
    stored->set_version(static_cast<int>(st.ColumnInt64(0)));
    stored->set_created_at(st.ColumnText(1));
    return ParseBlob(st.ColumnBlob(2), absl::StrCat(Kind::kWhat, " ", id, " v", stored->version()),
                     stored->mutable_profile());
  }
  CAIRN_ASSIGN_OR_RETURN(Statement max,
                         conn.Prepare(sql.select_max_version, "reading the profile"));
  max.BindText(1, id);
  CAIRN_ASSIGN_OR_RETURN(const bool max_row, max.Step());
  if (!max_row || max.ColumnIsNull(0)) {
    return absl::NotFoundError(absl::StrCat("no ", Kind::kWhat, " with id ", id));
  }
  return absl::NotFoundError(absl::StrCat(Kind::kWhat, " ", id, " has no version ", version,
                                          " (latest is ", max.ColumnInt64(0), ")"));
}

template <typename Kind>
absl::Status ListLatestProfiles(Connection& conn, int limit, const std::string& after,
                                std::vector<typename Kind::Stored>* out) {
  CAIRN_ASSIGN_OR_RETURN(Statement st, conn.Prepare(Kind::Sql().list_latest, "listing profiles"));
  st.BindText(1, after);
  st.BindInt64(2, PageSize(limit));
  while (true) {
    CAIRN_ASSIGN_OR_RETURN(const bool row, st.Step());
    if (!row) break;
    typename Kind::Stored& stored = out->emplace_back();
    stored.set_id(st.ColumnText(0));
    stored.set_version(static_cast<int>(st.ColumnInt64(1)));
    stored.set_created_at(st.ColumnText(2));
    CAIRN_RETURN_IF_ERROR(ParseBlob(
        st.ColumnBlob(3), absl::StrCat(Kind::kWhat, " ", stored.id(), " v", stored.version()),
        stored.mutable_profile()));
  }
  return absl::OkStatus();
}

// --- Plans.

constexpr const char* kInsertPlan =
    "INSERT INTO plans (plan_id, cache_key, model_name, created_at, created_us, summary, result) "
    "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)";
constexpr const char* kSelectPlan =
    "SELECT plan_id, cache_key, created_at, summary, result FROM plans WHERE plan_id = ?1";
constexpr const char* kSelectPlanByCacheKey =
    "SELECT plan_id, cache_key, created_at, summary, result FROM plans WHERE cache_key = ?1 "
    "ORDER BY seq DESC LIMIT 1";
constexpr const char* kListPlans =
    "SELECT plan_id, cache_key, created_at, summary FROM plans WHERE plan_id > ?1 "
    "ORDER BY plan_id LIMIT ?2";
constexpr const char* kListPlansOfModel =
    "SELECT plan_id, cache_key, created_at, summary FROM plans "
    "WHERE model_name = ?3 AND plan_id > ?1 ORDER BY plan_id LIMIT ?2";

// Reads the columns plan_id, cache_key, created_at, summary[, result] of the current row.
absl::Status ReadPlanRow(const Statement& st, bool with_result, PlanRecord* record) {
  record->plan_id = st.ColumnText(0);
  record->cache_key = st.ColumnText(1);  // NULL reads as ""
  record->created_at = st.ColumnText(2);
  CAIRN_RETURN_IF_ERROR(ParseBlob(
      st.ColumnBlob(3), absl::StrCat("summary of plan ", record->plan_id), &record->summary));
  if (with_result) {
    CAIRN_RETURN_IF_ERROR(ParseBlob(
        st.ColumnBlob(4), absl::StrCat("result of plan ", record->plan_id), &record->result));
  }
  return absl::OkStatus();
}

// --- Agents and jobs.

constexpr const char* kSelectAgent = "SELECT info FROM agents WHERE agent_id = ?1";
constexpr const char* kUpsertAgent =
    "INSERT INTO agents (agent_id, state, last_heartbeat_us, info) VALUES (?1, ?2, ?3, ?4) "
    "ON CONFLICT (agent_id) DO UPDATE SET state = excluded.state, "
    "last_heartbeat_us = excluded.last_heartbeat_us, info = excluded.info";
constexpr const char* kListAgents = "SELECT info FROM agents ORDER BY agent_id";
constexpr const char* kSelectStaleAgents =
    "SELECT info FROM agents WHERE state = ?1 AND last_heartbeat_us < ?2 ORDER BY agent_id";
constexpr const char* kSetAgentState =
    "UPDATE agents SET state = ?2, info = ?3 WHERE agent_id = ?1";

constexpr const char* kInsertJob =
    "INSERT INTO jobs (job_id, state, created_us, updated_us, job) VALUES (?1, ?2, ?3, ?4, ?5)";
constexpr const char* kSelectJob = "SELECT job FROM jobs WHERE job_id = ?1";
constexpr const char* kUpdateJob =
    "UPDATE jobs SET state = ?2, updated_us = ?3, job = ?4 WHERE job_id = ?1";
constexpr const char* kListJobs = "SELECT job FROM jobs WHERE job_id > ?1 ORDER BY job_id LIMIT ?2";
constexpr const char* kListJobsInState =
    "SELECT job FROM jobs WHERE state = ?3 AND job_id > ?1 ORDER BY job_id LIMIT ?2";

constexpr const char* kSetRendezvous =
    "INSERT INTO rendezvous (job_id, key, value) VALUES (?1, ?2, ?3) "
    "ON CONFLICT (job_id, key) DO UPDATE SET value = excluded.value";
constexpr const char* kGetRendezvous =
    "SELECT value FROM rendezvous WHERE job_id = ?1 AND key = ?2";
constexpr const char* kRendezvousUsage =
    "SELECT count(*), coalesce(sum(length(value)), 0), "
    "coalesce(sum(CASE WHEN key = ?2 THEN length(value) END), -1) "
    "FROM rendezvous WHERE job_id = ?1";

template <typename Message>
absl::Status WriteAgent(Connection& conn, const Message& info, int64_t heartbeat_us) {
  CAIRN_ASSIGN_OR_RETURN(const std::string bytes, Serialize(info, "agent"));
  CAIRN_ASSIGN_OR_RETURN(Statement st, conn.Prepare(kUpsertAgent, "writing the agent"));
  st.BindText(1, info.agent_id());
  st.BindInt64(2, info.state());
  st.BindInt64(3, heartbeat_us);
  st.BindBlob(4, bytes);
  return st.StepDone();
}

// Reads one serialized message selected by a statement taking the id as ?1. NotFound (with
// `not_found`) when there is no row.
template <typename Message>
absl::Status ReadOne(Connection& conn, const char* sql, const std::string& id,
                     absl::string_view what, absl::string_view not_found, Message* out) {
  CAIRN_ASSIGN_OR_RETURN(Statement st, conn.Prepare(sql, absl::StrCat("reading ", what)));
  st.BindText(1, id);
  CAIRN_ASSIGN_OR_RETURN(const bool row, st.Step());
  if (!row) return absl::NotFoundError(std::string(not_found));
  return ParseBlob(st.ColumnBlob(0), absl::StrCat(what, " ", id), out);
}

// Reads every row's column 0 as a serialized Message.
template <typename Message>
absl::Status ReadAll(Statement& st, absl::string_view what, std::vector<Message>* out) {
  while (true) {
    CAIRN_ASSIGN_OR_RETURN(const bool row, st.Step());
    if (!row) return absl::OkStatus();
    CAIRN_RETURN_IF_ERROR(ParseBlob(st.ColumnBlob(0), what, &out->emplace_back()));
  }
}

const char* SynchronousPragma(SqliteOptions::Synchronous s) {
  switch (s) {
    case SqliteOptions::Synchronous::kOff: return "PRAGMA synchronous = OFF";
    case SqliteOptions::Synchronous::kNormal: return "PRAGMA synchronous = NORMAL";
    case SqliteOptions::Synchronous::kFull: return "PRAGMA synchronous = FULL";
    case SqliteOptions::Synchronous::kExtra: return "PRAGMA synchronous = EXTRA";
  }
  return "PRAGMA synchronous = FULL";
}

absl::Status ValidateOptions(const std::string& path, const SqliteOptions& options) {
  if (path.empty()) return absl::InvalidArgumentError("database path is empty");
  if (options.busy_timeout_ms < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("busy_timeout_ms must be >= 0, got ", options.busy_timeout_ms));
  }
  if (options.read_connections < 0 || options.read_connections > 64) {
    return absl::InvalidArgumentError(
        absl::StrCat("read_connections must be in [0, 64], got ", options.read_connections));
  }
  if (options.wal_autocheckpoint_pages < 0) {
    return absl::InvalidArgumentError(absl::StrCat("wal_autocheckpoint_pages must be >= 0, got ",
                                                   options.wal_autocheckpoint_pages));
  }
  return absl::OkStatus();
}

// Refuses files this build must not migrate: newer schemas and other applications' databases.
absl::Status CheckDatabaseIdentity(Connection& conn, int64_t user_version) {
  const int latest = SqliteSchemaVersion();
  if (user_version > latest) {
    return absl::FailedPreconditionError(absl::StrCat(
        "database ", conn.path(), " has schema version ", user_version,
        ", newer than the newest this Cairn build knows (", latest,
        "): it was written by a newer Cairn; run that version (or newer), or restore a backup"));
  }
  CAIRN_ASSIGN_OR_RETURN(const int64_t application_id,
                         conn.QueryInt64("PRAGMA application_id", "reading the application id"));
  if (application_id != 0 && application_id != kApplicationId) {
    return absl::FailedPreconditionError(absl::StrFormat(
        "%s is not a Cairn planner database (application_id 0x%x)", conn.path(), application_id));
  }
  if (user_version == 0) {
    CAIRN_ASSIGN_OR_RETURN(
        const int64_t tables,
        conn.QueryInt64("SELECT count(*) FROM sqlite_schema", "reading the schema"));
    if (tables > 0) {
      return absl::FailedPreconditionError(absl::StrCat(
          conn.path(), " is a SQLite database of another application (it has ", tables,
          " schema objects but no Cairn schema version); point --db at a new or Cairn file"));
    }
  }
  return absl::OkStatus();
}

absl::Status Migrate(Connection& conn) {
  for (const Migration& m : kMigrations) {
    CAIRN_RETURN_IF_ERROR(conn.Transaction(
        /*write=*/true, absl::StrCat("schema migration ", m.version), [&]() -> absl::Status {
          // Read again under the write lock: another process may have migrated meanwhile.
          CAIRN_ASSIGN_OR_RETURN(const int64_t current,
                                 conn.QueryInt64("PRAGMA user_version", "reading user_version"));
          if (current >= m.version) return absl::OkStatus();
          if (current != m.version - 1) {
            return absl::InternalError(absl::StrCat("migration ", m.version, " expects version ",
                                                    m.version - 1, ", database is at ", current));
          }
          CAIRN_RETURN_IF_ERROR(conn.ExecScript(
              m.sql, absl::StrCat("migration ", m.version, " (", m.description, ")")));
          // PRAGMA arguments cannot be bound; the number is ours.
          const std::string set_version = absl::StrCat("PRAGMA user_version = ", m.version);
          CAIRN_RETURN_IF_ERROR(conn.ExecScript(set_version.c_str(), "setting user_version"));
          CAIRN_LOG(INFO) << conn.path() << ": schema migrated to version " << m.version << " ("
                          << m.description << ")";
          return absl::OkStatus();
        }));
  }
  return absl::OkStatus();
}

}  // namespace

int SqliteSchemaVersion() { return kMigrations[std::size(kMigrations) - 1].version; }

// --- Open.

// Opens `path` and takes an flock on it (exclusive, or shared for a read-only store); the returned
// descriptor must stay open until SQLite has closed the file (closing any descriptor of a file
// drops the process's POSIX locks on it, SQLite's included).
absl::StatusOr<int> LockDatabaseFile(const std::string& path, bool read_only) {
  const int fd =
      read_only ? open(path.c_str(), O_RDONLY | O_CLOEXEC)
                : open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (fd < 0) {
    const int err = errno;
    if (!read_only && (err == EACCES || err == EROFS || err == EPERM)) {
      return absl::FailedPreconditionError(absl::StrCat(
          path, " cannot be opened for writing (", std::strerror(err),
          "): the planner writes its database; fix the permissions, or serve it read-only "
          "(--read-only)"));
    }
    return absl::FailedPreconditionError(
        absl::StrCat("cannot open ", path, ": ", std::strerror(err)));
  }
  if (flock(fd, (read_only ? LOCK_SH : LOCK_EX) | LOCK_NB) != 0) {
    const int err = errno;
    close(fd);
    if (err == EWOULDBLOCK) {
      return absl::FailedPreconditionError(absl::StrCat(
          path, " is in use by another process (another cairn-planner?): two daemons on one "
          "database would each keep their own agents, jobs and waiters; stop the other one, or "
          "give this one its own --db"));
    }
    return absl::FailedPreconditionError(
        absl::StrCat("cannot lock ", path, ": ", std::strerror(err)));
  }
  return fd;
}

absl::StatusOr<std::unique_ptr<SqliteStore>> SqliteStore::Open(const std::string& path,
                                                               const SqliteOptions& options) {
  CAIRN_RETURN_IF_ERROR(ValidateOptions(path, options));
  const bool in_memory = path == ":memory:";
  int lock_fd = -1;
  if (options.lock_file && !in_memory) {
    CAIRN_ASSIGN_OR_RETURN(lock_fd, LockDatabaseFile(path, options.read_only));
  }
  // Released on every early return below; handed to the store at the end.
  std::unique_ptr<int, void (*)(int*)> lock_guard(&lock_fd, [](int* fd) {
    if (*fd >= 0) close(*fd);
  });
  const int open_flags =
      options.read_only ? SQLITE_OPEN_READONLY : SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE;
  CAIRN_ASSIGN_OR_RETURN(std::unique_ptr<Connection> writer,
                         Connection::Open(path, open_flags, options.busy_timeout_ms));
  // SQLite silently falls back to read-only when it cannot write the file; the first write would
  // then fail long after startup.
  if (!options.read_only && !in_memory && sqlite3_db_readonly(writer->handle(), "main") == 1) {
    return absl::FailedPreconditionError(absl::StrCat(
        path, " is read-only (file permissions or a read-only file system): the planner writes "
        "its database; fix that, or serve it read-only (--read-only)"));
  }

  // The first read of the file: a non-database fails here with SQLITE_NOTADB (DataLoss).
  CAIRN_ASSIGN_OR_RETURN(const int64_t user_version,
                         writer->QueryInt64("PRAGMA user_version", "reading the schema version"));
  CAIRN_RETURN_IF_ERROR(CheckDatabaseIdentity(*writer, user_version));

  if (!in_memory) {
    // journal_mode is persistent in the file; the PRAGMA answers the mode now in effect.
    CAIRN_ASSIGN_OR_RETURN(Statement st, writer->Prepare(options.read_only
                                                             ? "PRAGMA journal_mode"
                                                             : "PRAGMA journal_mode = WAL",
                                                         "enabling WAL"));
    CAIRN_ASSIGN_OR_RETURN(const bool row, st.Step());
    const std::string mode = row ? st.ColumnText(0) : "";
    if (mode != "wal") {
      return absl::FailedPreconditionError(
          absl::StrCat(path, ": cannot use WAL journal mode (SQLite kept \"", mode,
                       "\"); the file system must support shared memory (not NFS)"));
    }
  }
  CAIRN_RETURN_IF_ERROR(
      writer->ExecScript(SynchronousPragma(options.synchronous), "setting synchronous"));
  CAIRN_RETURN_IF_ERROR(writer->ExecScript("PRAGMA foreign_keys = ON", "enabling foreign keys"));
  // After a checkpoint the WAL file is truncated to at most 64 MiB instead of keeping its peak
  // size.
  CAIRN_RETURN_IF_ERROR(
      writer->ExecScript("PRAGMA journal_size_limit = 67108864", "setting journal_size_limit"));
  const std::string autocheckpoint =
      absl::StrCat("PRAGMA wal_autocheckpoint = ", options.wal_autocheckpoint_pages);
  CAIRN_RETURN_IF_ERROR(writer->ExecScript(autocheckpoint.c_str(), "setting wal_autocheckpoint"));
  CAIRN_ASSIGN_OR_RETURN(const int64_t foreign_keys,
                         writer->QueryInt64("PRAGMA foreign_keys", "reading foreign_keys"));
  if (foreign_keys != 1) {
    return absl::FailedPreconditionError(
        "this SQLite library was built without foreign key support (PRAGMA foreign_keys stays 0)");
  }

  if (options.read_only) {
    if (user_version != SqliteSchemaVersion()) {
      return absl::FailedPreconditionError(absl::StrCat(
          path, " has schema version ", user_version, " and needs migrating to ",
          SqliteSchemaVersion(), "; start the planner once without --read-only"));
    }
  } else {
    CAIRN_RETURN_IF_ERROR(Migrate(*writer));
  }

  std::vector<std::unique_ptr<Connection>> readers;
  const int num_readers = in_memory ? 0 : options.read_connections;
  for (int i = 0; i < num_readers; ++i) {
    CAIRN_ASSIGN_OR_RETURN(
        std::unique_ptr<Connection> reader,
        Connection::Open(path, options.read_only ? SQLITE_OPEN_READONLY : SQLITE_OPEN_READWRITE,
                         options.busy_timeout_ms));
    // Read/write open (a read-only one could not create the WAL index), but refusing writes.
    CAIRN_RETURN_IF_ERROR(
        reader->ExecScript("PRAGMA query_only = ON", "making a reader query-only"));
    readers.push_back(std::move(reader));
  }
  const int fd = lock_fd;
  lock_fd = -1;
  return std::unique_ptr<SqliteStore>(
      new SqliteStore(path, options, std::move(writer), std::move(readers), fd));
}

absl::StatusOr<std::unique_ptr<Store>> OpenSqliteStore(const std::string& path,
                                                       const SqliteOptions& options) {
  CAIRN_ASSIGN_OR_RETURN(std::unique_ptr<SqliteStore> store, SqliteStore::Open(path, options));
  return std::unique_ptr<Store>(std::move(store));
}

SqliteStore::SqliteStore(std::string path, const SqliteOptions& options,
                         std::unique_ptr<Connection> writer,
                         std::vector<std::unique_ptr<Connection>> readers, int lock_fd)
    : path_(std::move(path)),
      options_(options),
      lock_fd_(lock_fd),
      writer_(std::move(writer)),
      readers_(std::move(readers)) {
  for (const auto& reader : readers_) free_readers_.push_back(reader.get());
}

// Readers close first; the writer's close, the last connection, checkpoints and removes the WAL.
SqliteStore::~SqliteStore() {
  {
    absl::MutexLock lock(&readers_mu_);
    CAIRN_CHECK(free_readers_.size() == readers_.size()) << "SqliteStore destroyed during a read";
    free_readers_.clear();
    readers_.clear();
  }
  {
    absl::MutexLock lock(&writer_mu_);
    writer_.reset();
  }
  if (lock_fd_ >= 0) close(lock_fd_);  // after SQLite closed the file (see LockDatabaseFile)
}

absl::Status SqliteStore::Write(const char* operation,
                                const std::function<absl::Status(Connection&)>& body) {
  if (options_.read_only) {
    return absl::FailedPreconditionError(absl::StrCat(
        operation, ": the database is open read-only (--read-only); this planner serves reads "
        "and cached plans only"));
  }
  absl::MutexLock lock(&writer_mu_);
  Connection& conn = *writer_;
  return conn.Transaction(/*write=*/true, operation, [&] { return body(conn); });
}

absl::Status SqliteStore::Read(const char* operation,
                               const std::function<absl::Status(Connection&)>& body) {
  if (readers_.empty()) {
    absl::MutexLock lock(&writer_mu_);
    Connection& conn = *writer_;
    return conn.Transaction(/*write=*/false, operation, [&] { return body(conn); });
  }
  Connection* conn = nullptr;
  {
    absl::MutexLock lock(&readers_mu_);
    readers_mu_.Await(absl::Condition(
        +[](std::vector<Connection*>* free) { return !free->empty(); }, &free_readers_));
    conn = free_readers_.back();
    free_readers_.pop_back();
  }
  absl::Status status = conn->Transaction(/*write=*/false, operation, [&] { return body(*conn); });
  absl::MutexLock lock(&readers_mu_);
  free_readers_.push_back(conn);
  return status;
}

std::string SqliteStore::NewId(const char* prefix, int64_t now_us) {
  const uint64_t ms = now_us < 0 ? 0 : static_cast<uint64_t>(now_us / 1000);
  const uint32_t r0 = random_();
  const uint32_t r1 = random_();
  const uint32_t r2 = random_() & 0xffff;
  return absl::StrFormat("%s-%012x%08x%08x%04x", prefix, ms & 0xffffffffffffull, r0, r1, r2);
}

// --- Profiles.

absl::StatusOr<cairn::v1::StoredHardwareProfile> SqliteStore::PutHardwareProfile(
    const cairn::v1::HardwareProfile& profile, const std::string& now) {
  CAIRN_RETURN_IF_ERROR(HardwareKind::Validate(profile));
  CAIRN_ASSIGN_OR_RETURN(const int64_t now_us, ParseTimeUs("now", now));
  CAIRN_ASSIGN_OR_RETURN(const std::string bytes, Serialize(profile, "hardware profile"));
  const std::string id = StableProfileId(profile);
  cairn::v1::StoredHardwareProfile stored;
  CAIRN_RETURN_IF_ERROR(Write("PutHardwareProfile", [&](Connection& conn) {
    return InsertProfile<HardwareKind>(conn, profile, id, now, now_us, bytes, &stored);
  }));
  return stored;
}

absl::StatusOr<cairn::v1::StoredHardwareProfile> SqliteStore::GetHardwareProfile(
    const std::string& id, int version) {
  CAIRN_RETURN_IF_ERROR(RequireNonEmpty("id", id));
  if (version < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("version must be >= 0 (0 = latest), got ", version));
  }
  cairn::v1::StoredHardwareProfile stored;
  CAIRN_RETURN_IF_ERROR(Read("GetHardwareProfile", [&](Connection& conn) {
    return ReadProfile<HardwareKind>(conn, id, version, &stored);
  }));
  return stored;
}

absl::StatusOr<std::vector<cairn::v1::StoredHardwareProfile>> SqliteStore::ListHardwareProfiles(
    int limit, const std::string& after) {
  std::vector<cairn::v1::StoredHardwareProfile> out;
  CAIRN_RETURN_IF_ERROR(Read("ListHardwareProfiles", [&](Connection& conn) {
    out.clear();
    return ListLatestProfiles<HardwareKind>(conn, limit, after, &out);
  }));
  return out;
}

absl::StatusOr<int> SqliteStore::DeleteHardwareProfile(const std::string& id) {
  CAIRN_RETURN_IF_ERROR(RequireNonEmpty("id", id));
  int deleted = 0;
  CAIRN_RETURN_IF_ERROR(Write("DeleteHardwareProfile", [&](Connection& conn) -> absl::Status {
    CAIRN_ASSIGN_OR_RETURN(Statement st,
                           conn.Prepare(HardwareKind::Sql().delete_all, "deleting the profile"));
    st.BindText(1, id);
    CAIRN_RETURN_IF_ERROR(st.StepDone());
    deleted = static_cast<int>(conn.Changes());
    if (deleted == 0) return absl::NotFoundError(absl::StrCat("no hardware profile with id ", id));
    return absl::OkStatus();
  }));
  return deleted;
}

absl::StatusOr<cairn::v1::StoredModelProfile> SqliteStore::PutModelProfile(
    const cairn::v1::ModelProfile& profile, const std::string& now) {
  CAIRN_RETURN_IF_ERROR(ModelKind::Validate(profile));
  CAIRN_ASSIGN_OR_RETURN(const int64_t now_us, ParseTimeUs("now", now));
  CAIRN_ASSIGN_OR_RETURN(const std::string bytes, Serialize(profile, "model profile"));
  const std::string id = StableProfileId(profile);
  cairn::v1::StoredModelProfile stored;
  CAIRN_RETURN_IF_ERROR(Write("PutModelProfile", [&](Connection& conn) {
    return InsertProfile<ModelKind>(conn, profile, id, now, now_us, bytes, &stored);
  }));
  return stored;
}

absl::StatusOr<cairn::v1::StoredModelProfile> SqliteStore::GetModelProfile(const std::string& id,
                                                                           int version) {
  CAIRN_RETURN_IF_ERROR(RequireNonEmpty("id", id));
  if (version < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("version must be >= 0 (0 = latest), got ", version));
  }
  cairn::v1::StoredModelProfile stored;
  CAIRN_RETURN_IF_ERROR(Read("GetModelProfile", [&](Connection& conn) {
    return ReadProfile<ModelKind>(conn, id, version, &stored);
  }));
  return stored;
}

absl::StatusOr<std::vector<cairn::v1::StoredModelProfile>> SqliteStore::ListModelProfiles(
    int limit, const std::string& after) {
  std::vector<cairn::v1::StoredModelProfile> out;
  CAIRN_RETURN_IF_ERROR(Read("ListModelProfiles", [&](Connection& conn) {
    out.clear();
    return ListLatestProfiles<ModelKind>(conn, limit, after, &out);
  }));
  return out;
}

absl::StatusOr<int> SqliteStore::DeleteModelProfile(const std::string& id) {
  CAIRN_RETURN_IF_ERROR(RequireNonEmpty("id", id));
  int deleted = 0;
  CAIRN_RETURN_IF_ERROR(Write("DeleteModelProfile", [&](Connection& conn) -> absl::Status {
    CAIRN_ASSIGN_OR_RETURN(Statement st,
                           conn.Prepare(ModelKind::Sql().delete_all, "deleting the profile"));
    st.BindText(1, id);
    CAIRN_RETURN_IF_ERROR(st.StepDone());
    deleted = static_cast<int>(conn.Changes());
    if (deleted == 0) return absl::NotFoundError(absl::StrCat("no model profile with id ", id));
    return absl::OkStatus();
  }));
  return deleted;
}

// --- Plans.

absl::StatusOr<std::string> SqliteStore::PutPlan(const PlanRecord& record, const std::string& now) {
  CAIRN_ASSIGN_OR_RETURN(const int64_t now_us, ParseTimeUs("now", now));
  CAIRN_ASSIGN_OR_RETURN(const std::string result, Serialize(record.result, "plan result"));
  std::string plan_id;
  CAIRN_RETURN_IF_ERROR(Write("PutPlan", [&](Connection& conn) -> absl::Status {
    plan_id = NewId("plan", now_us);
    cairn::v1::PlanSummary summary = record.summary;
    summary.set_plan_id(plan_id);
    summary.set_created_at(now);
    CAIRN_ASSIGN_OR_RETURN(const std::string summary_bytes, Serialize(summary, "plan summary"));
    CAIRN_ASSIGN_OR_RETURN(Statement st, conn.Prepare(kInsertPlan, "inserting the plan"));
    st.BindText(1, plan_id);
    if (record.cache_key.empty()) {
      st.BindNull(2);
    } else {
      st.BindText(2, record.cache_key);
    }
    st.BindText(3, summary.model_name());
    st.BindText(4, now);
    st.BindInt64(5, now_us);
    st.BindBlob(6, summary_bytes);
    st.BindBlob(7, result);
    return st.StepDone();
  }));
  return plan_id;
}

absl::StatusOr<PlanRecord> SqliteStore::GetPlan(const std::string& plan_id) {
  CAIRN_RETURN_IF_ERROR(RequireNonEmpty("plan_id", plan_id));
  PlanRecord record;
  CAIRN_RETURN_IF_ERROR(Read("GetPlan", [&](Connection& conn) -> absl::Status {
    CAIRN_ASSIGN_OR_RETURN(Statement st, conn.Prepare(kSelectPlan, "reading the plan"));
    st.BindText(1, plan_id);
    CAIRN_ASSIGN_OR_RETURN(const bool row, st.Step());
    if (!row) return absl::NotFoundError(absl::StrCat("no plan with id ", plan_id));
    return ReadPlanRow(st, /*with_result=*/true, &record);
  }));
  return record;
}

absl::StatusOr<std::optional<PlanRecord>> SqliteStore::FindPlanByCacheKey(
    const std::string& cache_key) {
  CAIRN_RETURN_IF_ERROR(RequireNonEmpty("cache_key", cache_key));
  std::optional<PlanRecord> found;
  CAIRN_RETURN_IF_ERROR(Read("FindPlanByCacheKey", [&](Connection& conn) -> absl::Status {
    CAIRN_ASSIGN_OR_RETURN(Statement st,
                           conn.Prepare(kSelectPlanByCacheKey, "looking up the plan cache"));
    st.BindText(1, cache_key);
    CAIRN_ASSIGN_OR_RETURN(const bool row, st.Step());
    if (!row) return absl::OkStatus();
    found.emplace();
    return ReadPlanRow(st, /*with_result=*/true, &*found);
  }));
  return found;
}

absl::StatusOr<std::vector<PlanRecord>> SqliteStore::ListPlans(int limit, const std::string& after,
                                                               const std::string& model_name) {
  std::vector<PlanRecord> out;
  CAIRN_RETURN_IF_ERROR(Read("ListPlans", [&](Connection& conn) -> absl::Status {
    out.clear();
    CAIRN_ASSIGN_OR_RETURN(
        Statement st,
        conn.Prepare(model_name.empty() ? kListPlans : kListPlansOfModel, "listing plans"));
    st.BindText(1, after);
    st.BindInt64(2, PageSize(limit));
    if (!model_name.empty()) st.BindText(3, model_name);
    while (true) {
      CAIRN_ASSIGN_OR_RETURN(const bool row, st.Step());
      if (!row) return absl::OkStatus();
      CAIRN_RETURN_IF_ERROR(ReadPlanRow(st, /*with_result=*/false, &out.emplace_back()));
    }
  }));
  return out;
}

// --- Agents.

absl::StatusOr<cairn::v1::AgentInfo> SqliteStore::RegisterAgent(const cairn::v1::AgentInfo& agent,
                                                                const std::string& now) {
  CAIRN_ASSIGN_OR_RETURN(const int64_t now_us, ParseTimeUs("now", now));
  cairn::v1::AgentInfo stored = agent;
  stored.set_state(cairn::v1::AGENT_STATE_UP);
  stored.set_registered_at(now);
  stored.set_last_heartbeat_at(now);
  CAIRN_RETURN_IF_ERROR(Write("RegisterAgent", [&](Connection& conn) -> absl::Status {
    bool known = false;
    if (!agent.agent_id().empty()) {
      CAIRN_ASSIGN_OR_RETURN(Statement st, conn.Prepare(kSelectAgent, "reading the agent"));
      st.BindText(1, agent.agent_id());
      CAIRN_ASSIGN_OR_RETURN(known, st.Step());
    }
    if (!known) stored.set_agent_id(NewId("agent", now_us));
    return WriteAgent(conn, stored, now_us);
  }));
  return stored;
}

absl::StatusOr<cairn::v1::AgentInfo> SqliteStore::Heartbeat(const std::string& agent_id,
                                                            const std::string& now) {
  CAIRN_RETURN_IF_ERROR(RequireNonEmpty("agent_id", agent_id));
  CAIRN_ASSIGN_OR_RETURN(const int64_t now_us, ParseTimeUs("now", now));
  cairn::v1::AgentInfo info;
  CAIRN_RETURN_IF_ERROR(Write("Heartbeat", [&](Connection& conn) -> absl::Status {
    CAIRN_RETURN_IF_ERROR(
        ReadOne(conn, kSelectAgent, agent_id, "agent",
                absl::StrCat("no agent with id ", agent_id, " (register it first)"), &info));
    info.set_state(cairn::v1::AGENT_STATE_UP);
    info.set_last_heartbeat_at(now);
    return WriteAgent(conn, info, now_us);
  }));
  return info;
}

absl::StatusOr<std::vector<cairn::v1::AgentInfo>> SqliteStore::ListAgents() {
  std::vector<cairn::v1::AgentInfo> out;
  CAIRN_RETURN_IF_ERROR(Read("ListAgents", [&](Connection& conn) -> absl::Status {
    out.clear();
    CAIRN_ASSIGN_OR_RETURN(Statement st, conn.Prepare(kListAgents, "listing agents"));
    return ReadAll(st, "agent", &out);
  }));
  return out;
}

absl::StatusOr<std::vector<std::string>> SqliteStore::MarkAgentsDown(const std::string& cutoff) {
  CAIRN_ASSIGN_OR_RETURN(const int64_t cutoff_us, ParseTimeUs("cutoff", cutoff));
  std::vector<std::string> ids;
  CAIRN_RETURN_IF_ERROR(Write("MarkAgentsDown", [&](Connection& conn) -> absl::Status {
    ids.clear();
    std::vector<cairn::v1::AgentInfo> stale;
    {
      CAIRN_ASSIGN_OR_RETURN(Statement st,
                             conn.Prepare(kSelectStaleAgents, "finding silent agents"));
      st.BindInt64(1, cairn::v1::AGENT_STATE_UP);
      st.BindInt64(2, cutoff_us);
      CAIRN_RETURN_IF_ERROR(ReadAll(st, "agent", &stale));
    }  // the scan is finished before the rows it read are updated
    for (cairn::v1::AgentInfo& info : stale) {
      info.set_state(cairn::v1::AGENT_STATE_DOWN);
      CAIRN_ASSIGN_OR_RETURN(const std::string bytes, Serialize(info, "agent"));
      CAIRN_ASSIGN_OR_RETURN(Statement st, conn.Prepare(kSetAgentState, "marking an agent down"));
      st.BindText(1, info.agent_id());
      st.BindInt64(2, info.state());
      st.BindBlob(3, bytes);
      CAIRN_RETURN_IF_ERROR(st.StepDone());
      ids.push_back(info.agent_id());
    }
    return absl::OkStatus();
  }));
  return ids;
}

// --- Jobs.

absl::StatusOr<cairn::v1::Job> SqliteStore::CreateJob(const cairn::v1::Job& job,
                                                      const std::string& now) {
  CAIRN_ASSIGN_OR_RETURN(const int64_t now_us, ParseTimeUs("now", now));
  cairn::v1::Job stored = job;
  stored.set_created_at(now);
  stored.set_updated_at(now);
  CAIRN_RETURN_IF_ERROR(Write("CreateJob", [&](Connection& conn) -> absl::Status {
    stored.set_job_id(NewId("job", now_us));
    CAIRN_ASSIGN_OR_RETURN(const std::string bytes, Serialize(stored, "job"));
    CAIRN_ASSIGN_OR_RETURN(Statement st, conn.Prepare(kInsertJob, "inserting the job"));
    st.BindText(1, stored.job_id());
    st.BindInt64(2, stored.state());
    st.BindInt64(3, now_us);
    st.BindInt64(4, now_us);
    st.BindBlob(5, bytes);
    return st.StepDone();
  }));
  return stored;
}

absl::StatusOr<cairn::v1::Job> SqliteStore::UpdateJob(const cairn::v1::Job& job,
                                                      const std::string& now) {
  CAIRN_RETURN_IF_ERROR(RequireNonEmpty("job.job_id", job.job_id()));
  CAIRN_ASSIGN_OR_RETURN(const int64_t now_us, ParseTimeUs("now", now));
  cairn::v1::Job stored = job;
  CAIRN_RETURN_IF_ERROR(Write("UpdateJob", [&](Connection& conn) -> absl::Status {
    cairn::v1::Job previous;
    CAIRN_RETURN_IF_ERROR(ReadOne(conn, kSelectJob, job.job_id(), "job",
                                  absl::StrCat("no job with id ", job.job_id()), &previous));
    stored.set_created_at(previous.created_at());  // creation time is the store's, not the caller's
    stored.set_updated_at(now);
    CAIRN_ASSIGN_OR_RETURN(const std::string bytes, Serialize(stored, "job"));
    CAIRN_ASSIGN_OR_RETURN(Statement st, conn.Prepare(kUpdateJob, "updating the job"));
    st.BindText(1, stored.job_id());
    st.BindInt64(2, stored.state());
    st.BindInt64(3, now_us);
    st.BindBlob(4, bytes);
    return st.StepDone();
  }));
  return stored;
}

absl::StatusOr<cairn::v1::Job> SqliteStore::GetJob(const std::string& job_id) {
  CAIRN_RETURN_IF_ERROR(RequireNonEmpty("job_id", job_id));
  cairn::v1::Job job;
  CAIRN_RETURN_IF_ERROR(Read("GetJob", [&](Connection& conn) {
    return ReadOne(conn, kSelectJob, job_id, "job", absl::StrCat("no job with id ", job_id), &job);
  }));
  return job;
}

absl::StatusOr<std::vector<cairn::v1::Job>> SqliteStore::ListJobs(int limit,
                                                                  const std::string& after,
                                                                  cairn::v1::JobState state) {
  std::vector<cairn::v1::Job> out;
  const bool all = state == cairn::v1::JOB_STATE_UNSPECIFIED;
  CAIRN_RETURN_IF_ERROR(Read("ListJobs", [&](Connection& conn) -> absl::Status {
    out.clear();
    CAIRN_ASSIGN_OR_RETURN(Statement st,
                           conn.Prepare(all ? kListJobs : kListJobsInState, "listing jobs"));
    st.BindText(1, after);
    st.BindInt64(2, PageSize(limit));
    if (!all) st.BindInt64(3, state);
    return ReadAll(st, "job", &out);
  }));
  return out;
}

// --- Rendezvous.

absl::Status SqliteStore::RendezvousSet(const std::string& job_id, const std::string& key,
                                        const std::string& value) {
  CAIRN_RETURN_IF_ERROR(RequireNonEmpty("job_id", job_id));
  CAIRN_RETURN_IF_ERROR(RequireNonEmpty("key", key));
  return Write("RendezvousSet", [&](Connection& conn) -> absl::Status {
    {
      // Checked here rather than left to the foreign key so the error names the job.
      CAIRN_ASSIGN_OR_RETURN(Statement st, conn.Prepare(kSelectJob, "reading the job"));
      st.BindText(1, job_id);
      CAIRN_ASSIGN_OR_RETURN(const bool exists, st.Step());
      if (!exists) {
        return absl::NotFoundError(
            absl::StrCat("no job with id ", job_id,
                         ": rendezvous keys belong to a job submitted to this planner"));
      }
    }
    CAIRN_ASSIGN_OR_RETURN(Statement st, conn.Prepare(kSetRendezvous, "setting the key"));
    st.BindText(1, job_id);
    st.BindText(2, key);
    st.BindBlob(3, value);
    return st.StepDone();
  });
}

absl::StatusOr<Store::RendezvousUsage> SqliteStore::GetRendezvousUsage(const std::string& job_id,
                                                                      const std::string& key) {
  CAIRN_RETURN_IF_ERROR(RequireNonEmpty("job_id", job_id));
  RendezvousUsage u;
  CAIRN_RETURN_IF_ERROR(Read("GetRendezvousUsage", [&](Connection& conn) -> absl::Status {
    CAIRN_ASSIGN_OR_RETURN(Statement st, conn.Prepare(kRendezvousUsage, "counting the keys"));
    st.BindText(1, job_id);
    st.BindText(2, key);
    CAIRN_ASSIGN_OR_RETURN(const bool row, st.Step());
    if (row) {
      u.keys = st.ColumnInt64(0);
      u.bytes = st.ColumnInt64(1);
      u.key_bytes = st.ColumnInt64(2);
    }
    return absl::OkStatus();
  }));
  return u;
}

absl::StatusOr<std::string> SqliteStore::RendezvousGet(const std::string& job_id,
                                                       const std::string& key) {
  CAIRN_RETURN_IF_ERROR(RequireNonEmpty("job_id", job_id));
  CAIRN_RETURN_IF_ERROR(RequireNonEmpty("key", key));
  std::string value;
  CAIRN_RETURN_IF_ERROR(Read("RendezvousGet", [&](Connection& conn) -> absl::Status {
    CAIRN_ASSIGN_OR_RETURN(Statement st, conn.Prepare(kGetRendezvous, "reading the key"));
    st.BindText(1, job_id);
    st.BindText(2, key);
    CAIRN_ASSIGN_OR_RETURN(const bool row, st.Step());
    if (!row) {
      return absl::NotFoundError(
          absl::StrCat("rendezvous key \"", key, "\" of job ", job_id, " is not set"));
    }
    value = std::string(st.ColumnBlob(0));
    return absl::OkStatus();
  }));
  return value;
}

// --- Operations.

absl::Status SqliteStore::CheckIntegrity() {
  std::vector<std::string> problems;
  CAIRN_RETURN_IF_ERROR(Read("CheckIntegrity", [&](Connection& conn) -> absl::Status {
    problems.clear();
    {
      CAIRN_ASSIGN_OR_RETURN(Statement st,
                             conn.Prepare("PRAGMA integrity_check(20)", "integrity_check"));
      while (true) {
        CAIRN_ASSIGN_OR_RETURN(const bool row, st.Step());
        if (!row) break;
        const std::string line = st.ColumnText(0);
        if (line != "ok") problems.push_back(line);
      }
    }
    CAIRN_ASSIGN_OR_RETURN(Statement st,
                           conn.Prepare("PRAGMA foreign_key_check", "foreign_key_check"));
    while (true) {
      CAIRN_ASSIGN_OR_RETURN(const bool row, st.Step());
      if (!row) break;
      if (problems.size() < 40) {
        problems.push_back(absl::StrCat("foreign key violation: ", st.ColumnText(0), " rowid ",
                                        st.ColumnInt64(1), " -> ", st.ColumnText(2)));
      }
    }
    return absl::OkStatus();
  }));
  if (problems.empty()) return absl::OkStatus();
  return absl::DataLossError(
      absl::StrCat("database integrity check failed: ", absl::StrJoin(problems, "; ")));
}

absl::Status SqliteStore::BackupTo(const std::string& path) {
  CAIRN_RETURN_IF_ERROR(RequireNonEmpty("backup path", path));
  struct stat st_buf;
  if (::stat(path.c_str(), &st_buf) == 0) {
    return absl::AlreadyExistsError(absl::StrCat("backup target ", path, " already exists"));
  }
  auto vacuum_into = [&](Connection& conn) -> absl::Status {
    CAIRN_ASSIGN_OR_RETURN(Statement st, conn.Prepare("VACUUM INTO ?1", "backup (VACUUM INTO)"));
    st.BindText(1, path);
    return st.StepDone();
  };
  if (readers_.empty()) {
    // ":memory:" (or no readers): only the writer connection sees this database.
    absl::MutexLock lock(&writer_mu_);
    CAIRN_RETURN_IF_ERROR(vacuum_into(*writer_));
  } else {
    // A connection of its own (readers are query_only, which VACUUM INTO's output counts as a
    // write). In WAL mode VACUUM INTO reads one snapshot, so writers are not blocked meanwhile.
    CAIRN_ASSIGN_OR_RETURN(
        std::unique_ptr<Connection> conn,
        Connection::Open(path_, SQLITE_OPEN_READWRITE, options_.busy_timeout_ms));
    CAIRN_RETURN_IF_ERROR(vacuum_into(*conn));
  }
  // VACUUM INTO writes its output without syncing it.
  return FsyncFileAndDirectory(path);
}

absl::StatusOr<int> SqliteStore::SchemaVersion() {
  int64_t version = 0;
  CAIRN_RETURN_IF_ERROR(Read("SchemaVersion", [&](Connection& conn) -> absl::Status {
    CAIRN_ASSIGN_OR_RETURN(version, conn.QueryInt64("PRAGMA user_version", "reading user_version"));
    return absl::OkStatus();
  }));
  return static_cast<int>(version);
}

absl::StatusOr<std::string> SqliteStore::EffectiveSettings() {
  absl::MutexLock lock(&writer_mu_);
  Connection& conn = *writer_;
  std::string journal_mode;
  {
    CAIRN_ASSIGN_OR_RETURN(Statement st,
                           conn.Prepare("PRAGMA journal_mode", "reading journal_mode"));
    CAIRN_ASSIGN_OR_RETURN(const bool row, st.Step());
    if (row) journal_mode = st.ColumnText(0);
  }
  CAIRN_ASSIGN_OR_RETURN(const int64_t synchronous,
                         conn.QueryInt64("PRAGMA synchronous", "reading synchronous"));
  CAIRN_ASSIGN_OR_RETURN(const int64_t foreign_keys,
                         conn.QueryInt64("PRAGMA foreign_keys", "reading foreign_keys"));
  CAIRN_ASSIGN_OR_RETURN(const int64_t busy_timeout,
                         conn.QueryInt64("PRAGMA busy_timeout", "reading busy_timeout"));
  CAIRN_ASSIGN_OR_RETURN(const int64_t user_version,
                         conn.QueryInt64("PRAGMA user_version", "reading user_version"));
  static constexpr const char* kSynchronousNames[] = {"OFF", "NORMAL", "FULL", "EXTRA"};
  const std::string synchronous_name = synchronous >= 0 && synchronous < 4
                                           ? kSynchronousNames[synchronous]
                                           : absl::StrCat(synchronous);
  return absl::StrCat(
      "path=", path_, " journal_mode=", journal_mode, " synchronous=", synchronous_name,
      " foreign_keys=", foreign_keys == 1 ? "on" : "off", " busy_timeout_ms=", busy_timeout,
      " read_connections=", readers_.size(), " schema_version=", user_version);
}

}  // namespace cairn::planner
