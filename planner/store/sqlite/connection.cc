#include "planner/store/sqlite/connection.h"

#include <string>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/logging.h"
#include "common/status_macros.h"

namespace cairn::planner::sqlite {

absl::StatusCode SqliteCodeToStatusCode(int extended_result_code) {
  switch (extended_result_code) {
    case SQLITE_CONSTRAINT_PRIMARYKEY:
    case SQLITE_CONSTRAINT_UNIQUE: return absl::StatusCode::kAlreadyExists;
    default: break;
  }
  switch (extended_result_code & 0xff) {
    case SQLITE_OK:
    case SQLITE_ROW:
    case SQLITE_DONE: return absl::StatusCode::kOk;
    case SQLITE_BUSY:
    case SQLITE_LOCKED: return absl::StatusCode::kUnavailable;
    case SQLITE_CONSTRAINT:
    case SQLITE_MISMATCH:
    case SQLITE_TOOBIG:
    case SQLITE_RANGE: return absl::StatusCode::kInvalidArgument;
    case SQLITE_CORRUPT:
    case SQLITE_NOTADB: return absl::StatusCode::kDataLoss;
    case SQLITE_FULL:
    case SQLITE_NOMEM: return absl::StatusCode::kResourceExhausted;
    case SQLITE_CANTOPEN:
    case SQLITE_READONLY:
    case SQLITE_PERM:
    case SQLITE_AUTH: return absl::StatusCode::kFailedPrecondition;
    case SQLITE_INTERRUPT:
    case SQLITE_ABORT: return absl::StatusCode::kAborted;
    default:  // IOERR, PROTOCOL, MISUSE, ERROR (SQL errors are our bugs), ...
      return absl::StatusCode::kInternal;
  }
}

std::string SqliteCodeName(int extended_result_code) {
  switch (extended_result_code) {
    case SQLITE_CONSTRAINT_PRIMARYKEY: return "SQLITE_CONSTRAINT_PRIMARYKEY";
    case SQLITE_CONSTRAINT_UNIQUE: return "SQLITE_CONSTRAINT_UNIQUE";
    case SQLITE_CONSTRAINT_FOREIGNKEY: return "SQLITE_CONSTRAINT_FOREIGNKEY";
    case SQLITE_CONSTRAINT_NOTNULL: return "SQLITE_CONSTRAINT_NOTNULL";
    case SQLITE_CONSTRAINT_CHECK: return "SQLITE_CONSTRAINT_CHECK";
    case SQLITE_BUSY_SNAPSHOT: return "SQLITE_BUSY_SNAPSHOT";
    case SQLITE_BUSY_RECOVERY: return "SQLITE_BUSY_RECOVERY";
    case SQLITE_READONLY_DBMOVED: return "SQLITE_READONLY_DBMOVED";
    default: break;
  }
  const char* primary = nullptr;
  switch (extended_result_code & 0xff) {
    case SQLITE_OK: primary = "SQLITE_OK"; break;
    case SQLITE_ERROR: primary = "SQLITE_ERROR"; break;
    case SQLITE_INTERNAL: primary = "SQLITE_INTERNAL"; break;
    case SQLITE_PERM: primary = "SQLITE_PERM"; break;
    case SQLITE_ABORT: primary = "SQLITE_ABORT"; break;
    case SQLITE_BUSY: primary = "SQLITE_BUSY"; break;
    case SQLITE_LOCKED: primary = "SQLITE_LOCKED"; break;
    case SQLITE_NOMEM: primary = "SQLITE_NOMEM"; break;
    case SQLITE_READONLY: primary = "SQLITE_READONLY"; break;
    case SQLITE_INTERRUPT: primary = "SQLITE_INTERRUPT"; break;
    case SQLITE_IOERR: primary = "SQLITE_IOERR"; break;
    case SQLITE_CORRUPT: primary = "SQLITE_CORRUPT"; break;
    case SQLITE_NOTFOUND: primary = "SQLITE_NOTFOUND"; break;
    case SQLITE_FULL: primary = "SQLITE_FULL"; break;
    case SQLITE_CANTOPEN: primary = "SQLITE_CANTOPEN"; break;
    case SQLITE_PROTOCOL: primary = "SQLITE_PROTOCOL"; break;
    case SQLITE_SCHEMA: primary = "SQLITE_SCHEMA"; break;
    case SQLITE_TOOBIG: primary = "SQLITE_TOOBIG"; break;
    case SQLITE_CONSTRAINT: primary = "SQLITE_CONSTRAINT"; break;
    case SQLITE_MISMATCH: primary = "SQLITE_MISMATCH"; break;
    case SQLITE_MISUSE: primary = "SQLITE_MISUSE"; break;
    case SQLITE_AUTH: primary = "SQLITE_AUTH"; break;
    case SQLITE_RANGE: primary = "SQLITE_RANGE"; break;
    case SQLITE_NOTADB: primary = "SQLITE_NOTADB"; break;
    case SQLITE_ROW: primary = "SQLITE_ROW"; break;
    case SQLITE_DONE: primary = "SQLITE_DONE"; break;
    default: return absl::StrCat("SQLITE_", extended_result_code);
  }
  if (extended_result_code == (extended_result_code & 0xff)) return primary;
  // An extended code we do not name (e.g. one of the ~30 SQLITE_IOERR_*): primary name + number.
  return absl::StrCat(primary, "(", extended_result_code, ")");
}

absl::Status SqliteStatus(int rc, sqlite3* db, absl::string_view operation) {
  const absl::StatusCode code = SqliteCodeToStatusCode(rc);
  if (code == absl::StatusCode::kOk) return absl::OkStatus();
  // sqlite3_errmsg describes the most recent failure on `db` (e.g. "UNIQUE constraint failed:
  // plans.plan_id"); without a handle (open failed before one existed) only the generic text is
  // left.
  const char* detail = db != nullptr ? sqlite3_errmsg(db) : sqlite3_errstr(rc);
  return absl::Status(code, absl::StrCat(operation, ": ", detail, " [", SqliteCodeName(rc), "]"));
}

// --- Statement

Statement::Statement(Connection* conn, CachedStatement* cached, absl::string_view operation)
    : conn_(conn), cached_(cached), stmt_(cached->stmt), operation_(operation) {}

Statement::Statement(Statement&& other) noexcept
    : conn_(other.conn_),
      cached_(other.cached_),
      stmt_(other.stmt_),
      operation_(std::move(other.operation_)),
      bind_rc_(other.bind_rc_),
      bind_index_(other.bind_index_) {
  other.cached_ = nullptr;
  other.stmt_ = nullptr;
}

Statement::~Statement() {
  if (cached_ == nullptr) return;
  // Reset ends the statement's implicit read transaction (a reader left mid-scan would pin the WAL
  // and stop checkpoints); its return code repeats the last step's error, already reported.
  sqlite3_reset(stmt_);
  sqlite3_clear_bindings(stmt_);
  cached_->borrowed = false;
}

void Statement::BindText(int index, absl::string_view value) {
  const int rc = sqlite3_bind_text(stmt_, index, value.data(), static_cast<int>(value.size()),
                                   SQLITE_TRANSIENT);
  if (rc != SQLITE_OK && bind_rc_ == SQLITE_OK) {
    bind_rc_ = rc;
    bind_index_ = index;
  }
}

void Statement::BindBlob(int index, absl::string_view bytes) {
  // A zero-length blob still has to be a blob, not NULL: sqlite3_bind_blob with a null pointer
  // binds NULL, so point at a static empty byte instead.
  static const char kEmpty = 0;
  const int rc = sqlite3_bind_blob64(stmt_, index, bytes.empty() ? &kEmpty : bytes.data(),
                                     bytes.size(), SQLITE_TRANSIENT);
  if (rc != SQLITE_OK && bind_rc_ == SQLITE_OK) {
    bind_rc_ = rc;
    bind_index_ = index;
  }
}

void Statement::BindInt64(int index, int64_t value) {
  const int rc = sqlite3_bind_int64(stmt_, index, value);
  if (rc != SQLITE_OK && bind_rc_ == SQLITE_OK) {
    bind_rc_ = rc;
    bind_index_ = index;
  }
}

void Statement::BindNull(int index) {
  const int rc = sqlite3_bind_null(stmt_, index);
  if (rc != SQLITE_OK && bind_rc_ == SQLITE_OK) {
    bind_rc_ = rc;
    bind_index_ = index;
  }
}

absl::StatusOr<bool> Statement::Step() {
  if (bind_rc_ != SQLITE_OK) {
    return SqliteStatus(
        bind_rc_, conn_->handle(),
        absl::StrCat(operation_, ": binding ?", bind_index_, " of `", cached_->sql, "`"));
  }
  const int rc = sqlite3_step(stmt_);
  if (rc == SQLITE_ROW) return true;
  if (rc == SQLITE_DONE) return false;
  return SqliteStatus(rc, conn_->handle(), absl::StrCat(operation_, " (`", cached_->sql, "`)"));
}

absl::Status Statement::StepDone() {
  CAIRN_ASSIGN_OR_RETURN(const bool row, Step());
  if (row) {
    return absl::InternalError(absl::StrCat(operation_, " (`", cached_->sql, "`) returned a row"));
  }
  return absl::OkStatus();
}

int64_t Statement::ColumnInt64(int column) const { return sqlite3_column_int64(stmt_, column); }

std::string Statement::ColumnText(int column) const {
  const unsigned char* text = sqlite3_column_text(stmt_, column);
  if (text == nullptr) return "";
  return std::string(reinterpret_cast<const char*>(text),
                     static_cast<size_t>(sqlite3_column_bytes(stmt_, column)));
}

absl::string_view Statement::ColumnBlob(int column) const {
  const void* data = sqlite3_column_blob(stmt_, column);
  if (data == nullptr) return absl::string_view();
  return absl::string_view(static_cast<const char*>(data),
                           static_cast<size_t>(sqlite3_column_bytes(stmt_, column)));
}

bool Statement::ColumnIsNull(int column) const {
  return sqlite3_column_type(stmt_, column) == SQLITE_NULL;
}

// --- Connection

absl::StatusOr<std::unique_ptr<Connection>> Connection::Open(const std::string& path, int flags,
                                                             int busy_timeout_ms) {
  sqlite3* db = nullptr;
  const int rc = sqlite3_open_v2(path.c_str(), &db, flags | SQLITE_OPEN_NOMUTEX, nullptr);
  if (rc != SQLITE_OK) {
    // sqlite3_open_v2 returns a handle even on most failures; it carries the message and must be
    // closed.
    absl::Status status = SqliteStatus(rc, db, absl::StrCat("opening database ", path));
    sqlite3_close(db);
    return status;
  }
  sqlite3_extended_result_codes(db, 1);
  std::unique_ptr<Connection> conn(new Connection(db, path));
  const int busy_rc = sqlite3_busy_timeout(db, busy_timeout_ms);
  if (busy_rc != SQLITE_OK) return SqliteStatus(busy_rc, db, "setting the busy timeout");
  return conn;
}

Connection::~Connection() {
  for (auto& [sql, cached] : cache_) {
    CAIRN_CHECK(!cached->borrowed)
        << "statement still borrowed when its connection closes: " << sql;
    sqlite3_finalize(cached->stmt);
  }
  // Every statement is finalized, so sqlite3_close cannot return SQLITE_BUSY; a failure here would
  // be an I/O error while checkpointing, already durable in the WAL: nothing to do but log it.
  const int rc = sqlite3_close(db_);
  if (rc != SQLITE_OK) {
    CAIRN_LOG(WARNING) << "closing " << path_ << ": " << sqlite3_errstr(rc);
  }
}

absl::Status Connection::ExecScript(const char* sql, absl::string_view operation) {
  char* error = nullptr;
  const int rc = sqlite3_exec(db_, sql, nullptr, nullptr, &error);
  sqlite3_free(error);  // the same text as sqlite3_errmsg, which SqliteStatus reads
  return SqliteStatus(rc, db_, operation);
}

absl::StatusOr<Statement> Connection::Prepare(const std::string& sql, absl::string_view operation) {
  auto it = cache_.find(sql);
  if (it == cache_.end()) {
    sqlite3_stmt* stmt = nullptr;
    const char* tail = nullptr;
    const int rc = sqlite3_prepare_v3(db_, sql.c_str(), static_cast<int>(sql.size()) + 1,
                                      SQLITE_PREPARE_PERSISTENT, &stmt, &tail);
    if (rc != SQLITE_OK) {
      return SqliteStatus(rc, db_, absl::StrCat(operation, ": preparing `", sql, "`"));
    }
    CAIRN_CHECK(stmt != nullptr) << "empty SQL: `" << sql << "`";
    CAIRN_CHECK(tail == nullptr || *tail == '\0') << "one statement per Prepare: `" << sql << "`";
    auto cached = std::make_unique<CachedStatement>();
    cached->sql = sql;
    cached->stmt = stmt;
    it = cache_.emplace(sql, std::move(cached)).first;
  }
  CachedStatement* cached = it->second.get();
  CAIRN_CHECK(!cached->borrowed) << "statement borrowed twice: " << sql;
  cached->borrowed = true;
  return Statement(this, cached, operation);
}

absl::StatusOr<int64_t> Connection::QueryInt64(const std::string& sql,
                                               absl::string_view operation) {
  CAIRN_ASSIGN_OR_RETURN(Statement st, Prepare(sql, operation));
  CAIRN_ASSIGN_OR_RETURN(const bool row, st.Step());
  if (!row) return absl::InternalError(absl::StrCat(operation, ": `", sql, "` returned no row"));
  return st.ColumnInt64(0);
}

absl::Status Connection::Transaction(bool write, absl::string_view operation,
                                     const std::function<absl::Status()>& body) {
  {
    CAIRN_ASSIGN_OR_RETURN(Statement begin,
                           Prepare(write ? "BEGIN IMMEDIATE" : "BEGIN DEFERRED", operation));
    CAIRN_RETURN_IF_ERROR(begin.StepDone());
  }
  absl::Status status = body();
  if (status.ok()) {
    absl::StatusOr<Statement> commit = Prepare("COMMIT", operation);
    status = commit.ok() ? commit->StepDone() : commit.status();
  }  // the COMMIT statement is reset here, before any ROLLBACK
  // After some errors (SQLITE_FULL, SQLITE_IOERR, SQLITE_NOMEM, ...) SQLite has already rolled the
  // transaction back; a ROLLBACK then would fail with "no transaction is active".
  if (!status.ok() && sqlite3_get_autocommit(db_) == 0) {
    absl::StatusOr<Statement> rollback = Prepare("ROLLBACK", operation);
    absl::Status rollback_status = rollback.ok() ? rollback->StepDone() : rollback.status();
    if (!rollback_status.ok()) {
      CAIRN_LOG(ERROR) << operation << ": rollback failed: " << rollback_status;
    }
  }
  return status;
}

int64_t Connection::Changes() const { return sqlite3_changes64(db_); }

}  // namespace cairn::planner::sqlite
