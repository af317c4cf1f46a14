// Tests of the SQLite boundary: result codes -> absl::Status, statement binding and reuse,
// transactions. Databases live under TEST_TMPDIR.
#include "planner/store/sqlite/connection.h"

#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>

#include "common/status_macros.h"
#include "common/testing/status_matchers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace cairn::planner::sqlite {
namespace {

using ::cairn::testing::StatusIs;
using ::testing::_;
using ::testing::HasSubstr;

std::string TempPath(const std::string& name) {
  const char* dir = std::getenv("TEST_TMPDIR");
  const std::string path = std::string(dir != nullptr ? dir : "/tmp") + "/" + name;
  for (const char* suffix : {"", "-wal", "-shm", "-journal"}) std::remove((path + suffix).c_str());
  return path;
}

constexpr int kCreate = SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE;

TEST(SqliteCodeTest, MapsCodesByWhatTheCallerCanDo) {
  EXPECT_EQ(SqliteCodeToStatusCode(SQLITE_OK), absl::StatusCode::kOk);
  EXPECT_EQ(SqliteCodeToStatusCode(SQLITE_DONE), absl::StatusCode::kOk);
  EXPECT_EQ(SqliteCodeToStatusCode(SQLITE_BUSY), absl::StatusCode::kUnavailable);
  EXPECT_EQ(SqliteCodeToStatusCode(SQLITE_BUSY_SNAPSHOT), absl::StatusCode::kUnavailable);
  EXPECT_EQ(SqliteCodeToStatusCode(SQLITE_LOCKED), absl::StatusCode::kUnavailable);
  EXPECT_EQ(SqliteCodeToStatusCode(SQLITE_CONSTRAINT_PRIMARYKEY), absl::StatusCode::kAlreadyExists);
  EXPECT_EQ(SqliteCodeToStatusCode(SQLITE_CONSTRAINT_UNIQUE), absl::StatusCode::kAlreadyExists);
  EXPECT_EQ(SqliteCodeToStatusCode(SQLITE_CONSTRAINT_CHECK), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(SqliteCodeToStatusCode(SQLITE_CONSTRAINT_FOREIGNKEY),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(SqliteCodeToStatusCode(SQLITE_CORRUPT), absl::StatusCode::kDataLoss);
  EXPECT_EQ(SqliteCodeToStatusCode(SQLITE_NOTADB), absl::StatusCode::kDataLoss);
  EXPECT_EQ(SqliteCodeToStatusCode(SQLITE_FULL), absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(SqliteCodeToStatusCode(SQLITE_CANTOPEN), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(SqliteCodeToStatusCode(SQLITE_READONLY), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(SqliteCodeToStatusCode(SQLITE_IOERR_FSYNC), absl::StatusCode::kInternal);
  EXPECT_EQ(SqliteCodeToStatusCode(SQLITE_ERROR), absl::StatusCode::kInternal);

  EXPECT_EQ(SqliteCodeName(SQLITE_CONSTRAINT_UNIQUE), "SQLITE_CONSTRAINT_UNIQUE");
  EXPECT_EQ(SqliteCodeName(SQLITE_BUSY), "SQLITE_BUSY");
  EXPECT_EQ(SqliteCodeName(SQLITE_IOERR_FSYNC), "SQLITE_IOERR(1034)");
  EXPECT_EQ(SqliteCodeName(12345), "SQLITE_12345");
  EXPECT_TRUE(SqliteStatus(SQLITE_ROW, nullptr, "x").ok());
  EXPECT_THAT(SqliteStatus(SQLITE_FULL, nullptr, "inserting"),
              StatusIs(absl::StatusCode::kResourceExhausted,
                       HasSubstr("inserting: database or disk is full [SQLITE_FULL]")));
}

class ConnectionTest : public ::testing::Test {
 protected:
  void SetUp() override {
    path_ = TempPath(std::string(::testing::UnitTest::GetInstance()->current_test_info()->name()) +
                     ".db");
    ASSERT_OK_AND_ASSIGN(conn_, Connection::Open(path_, kCreate, /*busy_timeout_ms=*/0));
    ASSERT_OK(
        conn_->ExecScript("PRAGMA journal_mode = WAL; "
                          "CREATE TABLE kv (k TEXT PRIMARY KEY, v BLOB NOT NULL) STRICT;",
                          "creating"));
  }

  absl::Status Put(Connection& conn, const std::string& k, absl::string_view v) {
    CAIRN_ASSIGN_OR_RETURN(Statement st,
                           conn.Prepare("INSERT INTO kv (k, v) VALUES (?1, ?2)", "Put"));
    st.BindText(1, k);
    st.BindBlob(2, v);
    return st.StepDone();
  }

  absl::StatusOr<std::string> Get(Connection& conn, const std::string& k) {
    CAIRN_ASSIGN_OR_RETURN(Statement st, conn.Prepare("SELECT v FROM kv WHERE k = ?1", "Get"));
    st.BindText(1, k);
    CAIRN_ASSIGN_OR_RETURN(const bool row, st.Step());
    if (!row) return absl::NotFoundError(k);
    return std::string(st.ColumnBlob(0));
  }

  std::string path_;
  std::unique_ptr<Connection> conn_;
};

TEST_F(ConnectionTest, BindsValuesAndReusesStatements) {
  // Values with quotes and NUL bytes travel as bound values, never as SQL text.
  const std::string tricky_key = "it's'); DROP TABLE kv; --";
  const std::string binary(std::string("a\0b\xff", 4));
  ASSERT_OK(Put(*conn_, tricky_key, binary));
  ASSERT_OK(Put(*conn_, "empty", ""));
  for (int i = 0; i < 3; ++i) {  // the cached statement is reset and rebound each time
    ASSERT_OK_AND_ASSIGN(std::string v, Get(*conn_, tricky_key));
    EXPECT_EQ(v, binary);
  }
  ASSERT_OK_AND_ASSIGN(std::string empty, Get(*conn_, "empty"));
  EXPECT_EQ(empty, "");
  EXPECT_THAT(Get(*conn_, "missing"), StatusIs(absl::StatusCode::kNotFound, "missing"));
  ASSERT_OK_AND_ASSIGN(int64_t count, conn_->QueryInt64("SELECT count(*) FROM kv", "count"));
  EXPECT_EQ(count, 2);
}

TEST_F(ConnectionTest, ConstraintViolationIsAlreadyExistsNamingTheOperation) {
  ASSERT_OK(Put(*conn_, "k", "1"));
  EXPECT_THAT(Put(*conn_, "k", "2"),
              StatusIs(absl::StatusCode::kAlreadyExists,
                       HasSubstr("UNIQUE constraint failed: kv.k [SQLITE_CONSTRAINT_PRIMARYKEY]")));
}

TEST_F(ConnectionTest, SqlErrorsAndBindErrorsAreReported) {
  EXPECT_THAT(conn_->Prepare("SELECT nope FROM kv", "listing").status(),
              StatusIs(absl::StatusCode::kInternal, HasSubstr("listing: preparing")));
  {
    ASSERT_OK_AND_ASSIGN(Statement st, conn_->Prepare("SELECT v FROM kv WHERE k = ?1", "Get"));
    st.BindText(5, "x");  // no parameter 5
    EXPECT_THAT(st.Step().status(),
                StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("binding ?5")));
  }
  // The failed statement was given back and works again.
  ASSERT_OK(Put(*conn_, "k", "v"));
  EXPECT_OK(Get(*conn_, "k").status());
}

TEST_F(ConnectionTest, TransactionCommitsOrRollsBack) {
  ASSERT_OK(conn_->Transaction(true, "commit", [&] { return Put(*conn_, "a", "1"); }));
  EXPECT_THAT(conn_->Transaction(true, "rollback",
                                 [&]() -> absl::Status {
                                   CAIRN_RETURN_IF_ERROR(Put(*conn_, "b", "2"));
                                   return absl::AbortedError("changed my mind");
                                 }),
              StatusIs(absl::StatusCode::kAborted, "changed my mind"));
  EXPECT_OK(Get(*conn_, "a").status());
  EXPECT_THAT(Get(*conn_, "b"), StatusIs(absl::StatusCode::kNotFound, "b"));
  // A failing statement inside also rolls everything back.
  EXPECT_THAT(conn_->Transaction(true, "duplicate",
                                 [&]() -> absl::Status {
                                   CAIRN_RETURN_IF_ERROR(Put(*conn_, "c", "3"));
                                   return Put(*conn_, "a", "again");
                                 }),
              StatusIs(absl::StatusCode::kAlreadyExists, _));
  EXPECT_THAT(Get(*conn_, "c"), StatusIs(absl::StatusCode::kNotFound, "c"));
}

TEST_F(ConnectionTest, LockedDatabaseIsUnavailable) {
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<Connection> other,
                       Connection::Open(path_, SQLITE_OPEN_READWRITE, /*busy_timeout_ms=*/0));
  ASSERT_OK(Put(*conn_, "before", "1"));
  ASSERT_OK(conn_->ExecScript("BEGIN IMMEDIATE", "locking"));
  ASSERT_OK(Put(*conn_, "inside", "2"));
  // A second writer fails at BEGIN IMMEDIATE; with WAL, a reader still sees the last commit.
  EXPECT_THAT(
      other->Transaction(true, "second writer", [] { return absl::OkStatus(); }),
      StatusIs(absl::StatusCode::kUnavailable,
               HasSubstr("second writer (`BEGIN IMMEDIATE`): database is locked [SQLITE_BUSY]")));
  EXPECT_OK(Get(*other, "before").status());
  EXPECT_THAT(Get(*other, "inside"), StatusIs(absl::StatusCode::kNotFound, _));
  ASSERT_OK(conn_->ExecScript("COMMIT", "unlocking"));
  EXPECT_OK(Get(*other, "inside").status());
}

TEST(ConnectionOpenTest, NotADatabaseIsDataLoss) {
  const std::string path = TempPath("garbage.db");
  FILE* f = std::fopen(path.c_str(), "w");
  ASSERT_NE(f, nullptr);
  for (int i = 0; i < 100; ++i) std::fputs("this is not a SQLite database\n", f);
  std::fclose(f);
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<Connection> conn, Connection::Open(path, kCreate, 0));
  EXPECT_THAT(conn->QueryInt64("PRAGMA user_version", "reading").status(),
              StatusIs(absl::StatusCode::kDataLoss, HasSubstr("[SQLITE_NOTADB]")));
}

TEST(ConnectionOpenTest, MissingDirectoryIsFailedPrecondition) {
  EXPECT_THAT(Connection::Open(TempPath("no/such/dir/x.db"), kCreate, 0).status(),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       HasSubstr("unable to open database file [SQLITE_CANTOPEN]")));
}

}  // namespace
}  // namespace cairn::planner::sqlite
