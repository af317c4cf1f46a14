// planner/store/sqlite/connection.h — the one place Cairn calls SQLite (internal to this folder).
//
// A thin RAII layer over the SQLite C API for SqliteStore:
// - Connection: one sqlite3 handle plus its cache of prepared statements (prepared once, reused).
// - Statement: a borrowed prepared statement; values are bound by index (never formatted into SQL
//   text), and on destruction the statement is reset and its bindings cleared, so no read
//   transaction stays open behind the caller's back.
// - SqliteStatus: every SQLite result code becomes an absl::Status here and nowhere else, with the
//   operation named in the message.
//
//   CAIRN_ASSIGN_OR_RETURN(Statement st, conn.Prepare("SELECT value FROM t WHERE k = ?1", "Get"));
//   st.BindText(1, key);
//   CAIRN_ASSIGN_OR_RETURN(bool row, st.Step());
//   if (!row) return absl::NotFoundError(...);
//   std::string value = st.ColumnText(0);
//
// Thread safety: none. A Connection (and the Statements it hands out) is used by one thread at a
// time; SqliteStore guarantees that with its writer mutex and reader pool. Connections are opened
// with SQLITE_OPEN_NOMUTEX for that reason.
#ifndef CAIRN_PLANNER_STORE_SQLITE_CONNECTION_H_
#define CAIRN_PLANNER_STORE_SQLITE_CONNECTION_H_

#include <sqlite3.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <utility>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace cairn::planner::sqlite {

// The absl code for an SQLite (extended) result code, chosen by what the caller can do:
//   BUSY, LOCKED                      -> Unavailable (another writer holds the lock: retry later)
//   CONSTRAINT_PRIMARYKEY, _UNIQUE    -> AlreadyExists
//   other CONSTRAINT (CHECK, NOTNULL, FOREIGNKEY, ...) -> InvalidArgument
//   CORRUPT, NOTADB                   -> DataLoss (restore from a backup)
//   FULL, NOMEM                       -> ResourceExhausted (disk or memory full)
//   CANTOPEN, READONLY, PERM, AUTH    -> FailedPrecondition (fix the path or its permissions)
//   INTERRUPT, ABORT                  -> Aborted
//   IOERR, PROTOCOL, everything else  -> Internal
// OK, ROW and DONE map to kOk.
absl::StatusCode SqliteCodeToStatusCode(int extended_result_code);

// "SQLITE_CONSTRAINT_UNIQUE" for 2067, etc.; "SQLITE_<number>" for codes it does not know.
std::string SqliteCodeName(int extended_result_code);

// The status for `rc` returned by an SQLite call on `db` (may be null) during `operation`:
// "<operation>: <sqlite3_errmsg> [SQLITE_...]". OkStatus for SQLITE_OK, SQLITE_ROW, SQLITE_DONE.
absl::Status SqliteStatus(int rc, sqlite3* db, absl::string_view operation);

class Connection;

// One entry of a Connection's statement cache (an implementation detail of Statement/Connection).
struct CachedStatement {
  std::string sql;
  sqlite3_stmt* stmt = nullptr;
  bool borrowed = false;
};

// A prepared statement borrowed from a Connection's cache. Movable, not copyable. Binding errors
// are remembered and returned by the next Step()/StepDone(). Errors read
// "<operation> (`<sql>`): <sqlite message> [SQLITE_...]". Indexes are 1-based for binds (as in the
// SQL `?1`) and 0-based for columns (as in SQLite).
class Statement {
 public:
  Statement(Statement&& other) noexcept;
  Statement& operator=(Statement&&) = delete;
  Statement(const Statement&) = delete;
  ~Statement();  // sqlite3_reset + sqlite3_clear_bindings; gives the statement back to the cache

  void BindText(int index, absl::string_view value);
  void BindBlob(int index, absl::string_view bytes);
  void BindInt64(int index, int64_t value);
  void BindNull(int index);

  // Advances: true when a row is available, false when done. Errors go through SqliteStatus.
  absl::StatusOr<bool> Step();
  // Steps a statement that returns no rows (INSERT/UPDATE/DELETE/DDL); a row is an Internal error.
  absl::Status StepDone();

  int64_t ColumnInt64(int column) const;
  std::string ColumnText(int column) const;
  // Valid until the next Step() or the Statement's destruction.
  absl::string_view ColumnBlob(int column) const;
  bool ColumnIsNull(int column) const;

 private:
  friend class Connection;
  Statement(Connection* conn, CachedStatement* cached, absl::string_view operation);

  Connection* conn_;
  CachedStatement* cached_;  // null once moved from
  sqlite3_stmt* stmt_;
  std::string operation_;  // names the statement in errors, with its SQL
  int bind_rc_ = SQLITE_OK;
  int bind_index_ = 0;
};

class Connection {
 public:
  // Opens `path` (":memory:" for a private in-memory database) with `flags` (SQLITE_OPEN_*;
  // NOMUTEX and extended result codes are always added) and sets the busy timeout.
  static absl::StatusOr<std::unique_ptr<Connection>> Open(const std::string& path, int flags,
                                                          int busy_timeout_ms);
  ~Connection();  // finalizes every cached statement, then sqlite3_close
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  // Runs SQL text that carries no values (DDL, PRAGMAs with constant arguments, the migration
  // scripts); may hold several statements. Never use it with data: bind values with Prepare().
  absl::Status ExecScript(const char* sql, absl::string_view operation);

  // The cached prepared statement for `sql` (prepared on first use). `operation` names it in
  // errors. A statement can be borrowed once at a time (a second borrow of the same SQL while the
  // first is alive is a bug and aborts).
  absl::StatusOr<Statement> Prepare(const std::string& sql, absl::string_view operation);

  // A single-row, single-integer query such as "PRAGMA user_version".
  absl::StatusOr<int64_t> QueryInt64(const std::string& sql, absl::string_view operation);

  // Runs `body` in a transaction: BEGIN IMMEDIATE (takes the write lock up front, so a busy
  // database fails at BEGIN, not half-way) when `write`, else BEGIN DEFERRED (a consistent read
  // snapshot). Commits when `body` returns OK, rolls back otherwise (or when COMMIT fails). Returns
  // `body`'s error, or the BEGIN/COMMIT error, naming `operation`.
  absl::Status Transaction(bool write, absl::string_view operation,
                           const std::function<absl::Status()>& body);

  // Rows changed by the last INSERT/UPDATE/DELETE.
  int64_t Changes() const;

  sqlite3* handle() const { return db_; }
  const std::string& path() const { return path_; }

 private:
  Connection(sqlite3* db, std::string path) : db_(db), path_(std::move(path)) {}

  sqlite3* db_;
  std::string path_;
  // unique_ptr: Statements keep pointers to entries across rehashes.
  absl::flat_hash_map<std::string, std::unique_ptr<CachedStatement>> cache_;
};

}  // namespace cairn::planner::sqlite

#endif  // CAIRN_PLANNER_STORE_SQLITE_CONNECTION_H_
