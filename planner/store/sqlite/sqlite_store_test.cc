// Tests of SqliteStore: every Store method's results and errors, restart persistence, migrations,
// the SQLite-specific behaviour (locking, corruption, backups) and concurrent writers. Each test
// gets its own database file under TEST_TMPDIR; clocks are the `now` strings the tests pass in.
// The crash (kill -9) test is tests/store_durability_test.cc.
#include "planner/store/sqlite/sqlite_store.h"

#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "common/testing/status_matchers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "planner/store/sqlite/connection.h"

namespace cairn::planner {
namespace {

using ::cairn::testing::IsOk;
using ::cairn::testing::StatusIs;
using ::testing::_;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::SizeIs;
using ::testing::StartsWith;

// --- Fixtures and builders.

std::string TempDir() {
  const char* dir = std::getenv("TEST_TMPDIR");
  return dir != nullptr ? dir : "/tmp";
}

void RemoveDatabase(const std::string& path) {
  for (const char* suffix : {"", "-wal", "-shm", "-journal"}) std::remove((path + suffix).c_str());
}

bool FileExists(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0;
}

// "2026-11-28T08:00:00Z" plus `s` seconds: the tests' clock.
std::string At(int s) {
  return absl::FormatTime("%Y-%m-%d%ET%H:%M:%SZ", absl::FromUnixSeconds(1795852800 + s),
                          absl::UTCTimeZone());
}

cairn::v1::HardwareProfile Hardware(const std::string& device_model, const std::string& name = "hw",
                                    int64_t memory_bytes = 80LL << 30) {
  cairn::v1::HardwareProfile p;
  p.set_name(name);
  p.mutable_fingerprint()->set_device_model(device_model);
  p.mutable_fingerprint()->set_device_memory_bytes(memory_bytes);
  p.mutable_fingerprint()->set_cuda_version("13.0");
  p.set_devices_per_node(8);
  p.mutable_device()->set_peak_flops_per_s(989e12);
  cairn::v1::CollectiveCost* c = p.add_collectives();
  c->set_op(cairn::v1::COLLECTIVE_OP_ALL_REDUCE);
  c->set_group_size(8);
  c->set_busbw_bytes_per_s(360e9);
  return p;
}

cairn::v1::ModelProfile Model(const std::string& model_name, double forward_s = 0.01) {
  cairn::v1::ModelProfile p;
  p.set_model_name(model_name);
  p.set_device_model("NVIDIA H100 80GB HBM3");
  p.set_activation_dtype_bytes(2);
  cairn::v1::LayerTiming* t = p.add_timings();
  t->set_tp_degree(1);
  t->set_forward_s(forward_s);
  return p;
}

PlanRecord Plan(const std::string& model_name, const std::string& cache_key, double step_time_s) {
  PlanRecord r;
  r.cache_key = cache_key;
  cairn::v1::Plan* plan = r.result.add_plans();
  plan->set_format_version(1);
  plan->set_model_name(model_name);
  plan->set_num_nodes(2);
  r.summary.set_model_name(model_name);
  r.summary.set_num_devices(16);
  r.summary.set_step_time_s(step_time_s);
  return r;
}

cairn::v1::Job Job(const std::string& name, cairn::v1::JobState state) {
  cairn::v1::Job j;
  j.set_name(name);
  j.set_plan_id("plan-x");
  j.set_steps(100);
  j.set_state(state);
  return j;
}

cairn::v1::AgentInfo Agent(const std::string& hostname) {
  cairn::v1::AgentInfo a;
  a.set_hostname(hostname);
  a.set_address(hostname + ":7070");
  a.set_num_devices(8);
  a.mutable_fingerprint()->set_device_model("NVIDIA H100 80GB HBM3");
  return a;
}

MATCHER_P(EqualsProto, expected, "") {
  if (arg.SerializeAsString() == expected.SerializeAsString()) return true;
  *result_listener << "\n got: " << arg.ShortDebugString()
                   << "\nwant: " << expected.ShortDebugString();
  return false;
}

class SqliteStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    path_ = absl::StrCat(TempDir(), "/",
                         ::testing::UnitTest::GetInstance()->current_test_info()->name(), ".db");
    RemoveDatabase(path_);
    Reopen();
  }

  void Reopen(const SqliteOptions& options = {}) {
    store_.reset();
    auto store = SqliteStore::Open(path_, options);
    ASSERT_THAT(store, IsOk());
    store_ = std::move(store).value();
  }

  // A second connection to the same file, for what the Store API cannot do (tamper, lock).
  std::unique_ptr<sqlite::Connection> RawConnection() {
    auto conn = sqlite::Connection::Open(path_, SQLITE_OPEN_READWRITE, /*busy_timeout_ms=*/5000);
    EXPECT_THAT(conn, IsOk());
    return conn.ok() ? std::move(conn).value() : nullptr;
  }

  std::string path_;
  std::unique_ptr<SqliteStore> store_;
};

// --- Opening, settings and migrations.

TEST_F(SqliteStoreTest, OpensWithWalFullSyncAndLatestSchema) {
  ASSERT_OK_AND_ASSIGN(std::string settings, store_->EffectiveSettings());
  EXPECT_EQ(settings, absl::StrCat("path=", path_,
                                   " journal_mode=wal synchronous=FULL foreign_keys=on "
                                   "busy_timeout_ms=5000 read_connections=4 schema_version=",
                                   SqliteSchemaVersion()));
  ASSERT_OK_AND_ASSIGN(int version, store_->SchemaVersion());
  EXPECT_EQ(version, SqliteSchemaVersion());
  EXPECT_TRUE(FileExists(path_ + "-wal"));
  EXPECT_OK(store_->CheckIntegrity());

  SqliteOptions options;
  options.synchronous = SqliteOptions::Synchronous::kNormal;
  options.busy_timeout_ms = 250;
  options.read_connections = 0;
  Reopen(options);
  ASSERT_OK_AND_ASSIGN(settings, store_->EffectiveSettings());
  EXPECT_THAT(settings, HasSubstr("synchronous=NORMAL foreign_keys=on busy_timeout_ms=250 "
                                  "read_connections=0"));
}

TEST_F(SqliteStoreTest, MigratesAnEmptyFile) {
  store_.reset();
  RemoveDatabase(path_);
  FILE* f = std::fopen(path_.c_str(), "w");  // a zero-byte file, as `touch` would leave
  ASSERT_NE(f, nullptr);
  std::fclose(f);
  Reopen();
  ASSERT_OK_AND_ASSIGN(int version, store_->SchemaVersion());
  EXPECT_EQ(version, SqliteSchemaVersion());
  EXPECT_OK(store_->PutHardwareProfile(Hardware("gpu"), At(0)).status());

  // Reopening an up-to-date file runs no migration (it would fail: the tables exist).
  Reopen();
  ASSERT_OK_AND_ASSIGN(version, store_->SchemaVersion());
  EXPECT_EQ(version, SqliteSchemaVersion());
  auto conn = RawConnection();
  ASSERT_OK_AND_ASSIGN(int64_t app_id, conn->QueryInt64("PRAGMA application_id", "app id"));
  EXPECT_EQ(app_id, 0x4361726e);
}

TEST_F(SqliteStoreTest, RefusesANewerSchema) {
  store_.reset();
  {
    auto conn = RawConnection();
    ASSERT_OK(conn->ExecScript(
        absl::StrCat("PRAGMA user_version = ", SqliteSchemaVersion() + 1).c_str(), "bump"));
  }
  EXPECT_THAT(SqliteStore::Open(path_).status(),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       HasSubstr(absl::StrCat("has schema version ", SqliteSchemaVersion() + 1,
                                              ", newer than the newest this Cairn build knows (",
                                              SqliteSchemaVersion(),
                                              "): it was written by a newer Cairn"))));
  // The refusal changed nothing.
  auto conn = RawConnection();
  ASSERT_OK_AND_ASSIGN(int64_t version, conn->QueryInt64("PRAGMA user_version", "version"));
  EXPECT_EQ(version, SqliteSchemaVersion() + 1);
}

TEST_F(SqliteStoreTest, RefusesOtherApplicationsDatabases) {
  store_.reset();
  RemoveDatabase(path_);
  {
    auto conn = sqlite::Connection::Open(path_, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, 0);
    ASSERT_OK(conn.status());
    ASSERT_OK((*conn)->ExecScript("CREATE TABLE photos (id INTEGER PRIMARY KEY)", "create"));
  }
  EXPECT_THAT(SqliteStore::Open(path_).status(),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       HasSubstr("is a SQLite database of another application")));

  RemoveDatabase(path_);
  {
    auto conn = sqlite::Connection::Open(path_, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, 0);
    ASSERT_OK(conn.status());
    ASSERT_OK((*conn)->ExecScript("PRAGMA application_id = 42; PRAGMA user_version = 1", "set"));
  }
  EXPECT_THAT(SqliteStore::Open(path_).status(),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       HasSubstr("is not a Cairn planner database (application_id 0x2a)")));
}

TEST_F(SqliteStoreTest, OpenErrors) {
  EXPECT_THAT(SqliteStore::Open("").status(),
              StatusIs(absl::StatusCode::kInvalidArgument, "database path is empty"));
  SqliteOptions bad;
  bad.read_connections = -1;
  EXPECT_THAT(SqliteStore::Open(path_, bad).status(),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("read_connections")));
  EXPECT_THAT(SqliteStore::Open(TempDir() + "/missing/dir/planner.db").status(),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("[SQLITE_CANTOPEN]")));

  const std::string garbage = TempDir() + "/garbage.db";
  FILE* f = std::fopen(garbage.c_str(), "w");
  ASSERT_NE(f, nullptr);
  for (int i = 0; i < 200; ++i) std::fputs("not a database at all\n", f);
  std::fclose(f);
  EXPECT_THAT(SqliteStore::Open(garbage).status(),
              StatusIs(absl::StatusCode::kDataLoss, HasSubstr("[SQLITE_NOTADB]")));
}

TEST_F(SqliteStoreTest, InMemoryDatabaseWorks) {
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<SqliteStore> store, SqliteStore::Open(":memory:"));
  ASSERT_OK_AND_ASSIGN(auto stored, store->PutHardwareProfile(Hardware("gpu"), At(0)));
  ASSERT_OK_AND_ASSIGN(auto got, store->GetHardwareProfile(stored.id(), 0));
  EXPECT_THAT(got, EqualsProto(stored));
  ASSERT_OK_AND_ASSIGN(std::string settings, store->EffectiveSettings());
  EXPECT_THAT(settings, HasSubstr("journal_mode=memory"));
  EXPECT_THAT(settings, HasSubstr("read_connections=0"));
  EXPECT_OK(store->CheckIntegrity());
}

// --- Profiles.

TEST_F(SqliteStoreTest, HardwareProfileVersionsIncrement) {
  const cairn::v1::HardwareProfile v1 = Hardware("NVIDIA H100", "h100");
  cairn::v1::HardwareProfile v2 = v1;
  v2.set_name("h100-remeasured");  // same fingerprint -> same id, next version
  v2.mutable_device()->set_peak_flops_per_s(900e12);

  ASSERT_OK_AND_ASSIGN(cairn::v1::StoredHardwareProfile s1, store_->PutHardwareProfile(v1, At(0)));
  EXPECT_EQ(s1.id(), StableProfileId(v1));
  EXPECT_EQ(s1.version(), 1);
  EXPECT_EQ(s1.created_at(), At(0));
  EXPECT_THAT(s1.profile(), EqualsProto(v1));
  ASSERT_OK_AND_ASSIGN(cairn::v1::StoredHardwareProfile s2, store_->PutHardwareProfile(v2, At(5)));
  EXPECT_EQ(s2.id(), s1.id());
  EXPECT_EQ(s2.version(), 2);
  ASSERT_OK_AND_ASSIGN(cairn::v1::StoredHardwareProfile s3, store_->PutHardwareProfile(v2, At(9)));
  EXPECT_EQ(s3.version(), 3);

  ASSERT_OK_AND_ASSIGN(auto latest, store_->GetHardwareProfile(s1.id(), 0));
  EXPECT_THAT(latest, EqualsProto(s3));
  ASSERT_OK_AND_ASSIGN(auto first, store_->GetHardwareProfile(s1.id(), 1));
  EXPECT_THAT(first, EqualsProto(s1));
  ASSERT_OK_AND_ASSIGN(auto second, store_->GetHardwareProfile(s1.id(), 2));
  EXPECT_THAT(second, EqualsProto(s2));
}

TEST_F(SqliteStoreTest, HardwareProfileErrors) {
  ASSERT_OK_AND_ASSIGN(auto stored, store_->PutHardwareProfile(Hardware("gpu"), At(0)));
  EXPECT_THAT(
      store_->GetHardwareProfile(stored.id(), 4),
      StatusIs(absl::StatusCode::kNotFound,
               absl::StrCat("hardware profile ", stored.id(), " has no version 4 (latest is 1)")));
  EXPECT_THAT(
      store_->GetHardwareProfile("0123456789abcdef", 0),
      StatusIs(absl::StatusCode::kNotFound, "no hardware profile with id 0123456789abcdef"));
  EXPECT_THAT(
      store_->GetHardwareProfile("0123456789abcdef", 2),
      StatusIs(absl::StatusCode::kNotFound, "no hardware profile with id 0123456789abcdef"));
  EXPECT_THAT(store_->GetHardwareProfile("", 0),
              StatusIs(absl::StatusCode::kInvalidArgument, "id is empty"));
  EXPECT_THAT(store_->GetHardwareProfile(stored.id(), -1),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("version must be >= 0")));
  EXPECT_THAT(
      store_->PutHardwareProfile(cairn::v1::HardwareProfile(), At(0)),
      StatusIs(absl::StatusCode::kInvalidArgument, "profile.fingerprint.device_model is empty"));
  EXPECT_THAT(store_->PutHardwareProfile(Hardware("gpu"), "yesterday"),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       "now is not an RFC 3339 time such as 2026-11-28T08:00:00Z: \"yesterday\""));
  EXPECT_THAT(store_->PutHardwareProfile(Hardware("gpu"), "2026-11-28 08:00:00"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("RFC 3339")));
  EXPECT_THAT(
      store_->DeleteHardwareProfile("0123456789abcdef"),
      StatusIs(absl::StatusCode::kNotFound, "no hardware profile with id 0123456789abcdef"));
  EXPECT_THAT(store_->DeleteHardwareProfile(""),
              StatusIs(absl::StatusCode::kInvalidArgument, "id is empty"));
  // None of the failures stored anything.
  ASSERT_OK_AND_ASSIGN(auto latest, store_->GetHardwareProfile(stored.id(), 0));
  EXPECT_EQ(latest.version(), 1);
  ASSERT_OK_AND_ASSIGN(auto all, store_->ListHardwareProfiles(0, ""));
  EXPECT_THAT(all, SizeIs(1));
}

TEST_F(SqliteStoreTest, DeleteRemovesAllVersionsAndVersionsNeverRepeat) {
  const cairn::v1::HardwareProfile p = Hardware("gpu");
  const cairn::v1::HardwareProfile other = Hardware("other-gpu");
  for (int i = 0; i < 3; ++i) ASSERT_OK(store_->PutHardwareProfile(p, At(i)).status());
  ASSERT_OK(store_->PutHardwareProfile(other, At(3)).status());
  const std::string id = StableProfileId(p);

  ASSERT_OK_AND_ASSIGN(int deleted, store_->DeleteHardwareProfile(id));
  EXPECT_EQ(deleted, 3);
  for (int version = 0; version <= 3; ++version) {
    EXPECT_THAT(store_->GetHardwareProfile(id, version),
                StatusIs(absl::StatusCode::kNotFound, HasSubstr(id)));
  }
  ASSERT_OK_AND_ASSIGN(auto listed, store_->ListHardwareProfiles(0, ""));
  ASSERT_THAT(listed, SizeIs(1));
  EXPECT_EQ(listed[0].id(), StableProfileId(other));
  EXPECT_THAT(store_->DeleteHardwareProfile(id), StatusIs(absl::StatusCode::kNotFound, _));

  // Putting it again continues after the deleted versions: "id v1" never names two profiles, so a
  // plan-cache key built from profile versions cannot hit a plan made with the deleted numbers.
  ASSERT_OK_AND_ASSIGN(auto again, store_->PutHardwareProfile(p, At(10)));
  EXPECT_EQ(again.version(), 4);
  EXPECT_THAT(store_->GetHardwareProfile(id, 1),
              StatusIs(absl::StatusCode::kNotFound,
                       absl::StrCat("hardware profile ", id, " has no version 1 (latest is 4)")));
}

TEST_F(SqliteStoreTest, ListProfilesPaginatesLatestVersionsById) {
  std::vector<std::string> ids;
  for (int i = 0; i < 7; ++i) {
    const cairn::v1::HardwareProfile p = Hardware(absl::StrCat("gpu-", i));
    ASSERT_OK(store_->PutHardwareProfile(p, At(i)).status());
    if (i % 2 == 0) {
      ASSERT_OK(store_->PutHardwareProfile(p, At(100 + i)).status());  // v2
    }
    ids.push_back(StableProfileId(p));
  }
  std::sort(ids.begin(), ids.end());

  std::vector<std::string> seen;
  std::string after;
  std::vector<size_t> page_sizes;
  while (true) {
    ASSERT_OK_AND_ASSIGN(auto page, store_->ListHardwareProfiles(3, after));
    if (page.empty()) break;
    page_sizes.push_back(page.size());
    for (const auto& p : page) {
      seen.push_back(p.id());
      const bool has_v2 = std::stoi(p.profile().fingerprint().device_model().substr(4)) % 2 == 0;
      EXPECT_EQ(p.version(), has_v2 ? 2 : 1) << p.id();
      EXPECT_TRUE(p.profile().collectives_size() == 1) << "listing returns whole profiles";
    }
    after = page.back().id();
  }
  EXPECT_EQ(seen, ids);
  EXPECT_THAT(page_sizes, ElementsAre(3, 3, 1));

  // limit <= 0 means 50.
  ASSERT_OK_AND_ASSIGN(auto all, store_->ListHardwareProfiles(-1, ""));
  EXPECT_THAT(all, SizeIs(7));
  ASSERT_OK_AND_ASSIGN(auto none, store_->ListHardwareProfiles(10, "g"));  // after every hex id
  EXPECT_THAT(none, SizeIs(0));
}

TEST_F(SqliteStoreTest, ListUsesDefaultPageSizeOf50) {
  SqliteOptions fast;  // 60 commits; nothing here is about durability
  fast.synchronous = SqliteOptions::Synchronous::kOff;
  Reopen(fast);
  for (int i = 0; i < 60; ++i) {
    ASSERT_OK(store_->PutModelProfile(Model(absl::StrCat("m", i)), At(i)).status());
  }
  ASSERT_OK_AND_ASSIGN(auto page, store_->ListModelProfiles(0, ""));
  EXPECT_THAT(page, SizeIs(50));
  ASSERT_OK_AND_ASSIGN(auto rest, store_->ListModelProfiles(0, page.back().id()));
  EXPECT_THAT(rest, SizeIs(10));
}

TEST_F(SqliteStoreTest, ModelProfiles) {
  const cairn::v1::ModelProfile a = Model("llama2-7b", 0.010);
  const cairn::v1::ModelProfile a2 = Model("llama2-7b", 0.012);  // re-measured: same id
  const cairn::v1::ModelProfile b = Model("gpt2", 0.001);
  ASSERT_OK_AND_ASSIGN(auto sa, store_->PutModelProfile(a, At(0)));
  ASSERT_OK_AND_ASSIGN(auto sa2, store_->PutModelProfile(a2, At(1)));
  ASSERT_OK_AND_ASSIGN(auto sb, store_->PutModelProfile(b, At(2)));
  EXPECT_EQ(sa.id(), StableProfileId(a));
  EXPECT_EQ(sa2.id(), sa.id());
  EXPECT_EQ(sa2.version(), 2);
  EXPECT_EQ(sb.version(), 1);

  ASSERT_OK_AND_ASSIGN(auto got, store_->GetModelProfile(sa.id(), 0));
  EXPECT_THAT(got, EqualsProto(sa2));
  ASSERT_OK_AND_ASSIGN(got, store_->GetModelProfile(sa.id(), 1));
  EXPECT_THAT(got, EqualsProto(sa));
  EXPECT_THAT(store_->GetModelProfile(sa.id(), 3),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("has no version 3 (latest is 2)")));
  EXPECT_THAT(store_->PutModelProfile(cairn::v1::ModelProfile(), At(0)),
              StatusIs(absl::StatusCode::kInvalidArgument, "profile.model_name is empty"));
  EXPECT_THAT(store_->PutModelProfile(a, ""), StatusIs(absl::StatusCode::kInvalidArgument, _));

  ASSERT_OK_AND_ASSIGN(auto listed, store_->ListModelProfiles(0, ""));
  ASSERT_THAT(listed, SizeIs(2));
  EXPECT_LT(listed[0].id(), listed[1].id());
  ASSERT_OK_AND_ASSIGN(int deleted, store_->DeleteModelProfile(sa.id()));
  EXPECT_EQ(deleted, 2);
  EXPECT_THAT(store_->GetModelProfile(sa.id(), 0), StatusIs(absl::StatusCode::kNotFound, _));
  EXPECT_THAT(store_->DeleteModelProfile(sa.id()), StatusIs(absl::StatusCode::kNotFound, _));
  ASSERT_OK_AND_ASSIGN(listed, store_->ListModelProfiles(0, ""));
  EXPECT_THAT(listed, SizeIs(1));
  // Hardware and model profiles are separate namespaces.
  EXPECT_THAT(store_->GetHardwareProfile(sb.id(), 0), StatusIs(absl::StatusCode::kNotFound, _));
}

TEST_F(SqliteStoreTest, IdCollisionBetweenFingerprintsIsAlreadyExists) {
  // A real 64-bit FNV collision is impractical to find; plant one by recording another
  // fingerprint under this profile's id.
  const cairn::v1::HardwareProfile p = Hardware("gpu");
  {
    auto conn = RawConnection();
    ASSERT_OK_AND_ASSIGN(
        sqlite::Statement st,
        conn->Prepare("INSERT INTO hardware_profile_ids VALUES (?1, ?2, 1)", "plant"));
    st.BindText(1, StableProfileId(p));
    st.BindBlob(2, "25:cairn.hardware_profile.v1;5:other;");
    ASSERT_OK(st.StepDone());
  }
  EXPECT_THAT(store_->PutHardwareProfile(p, At(0)),
              StatusIs(absl::StatusCode::kAlreadyExists,
                       HasSubstr("is already taken by a different fingerprint")));
}

// --- Plans.

TEST_F(SqliteStoreTest, PutAndGetPlan) {
  const PlanRecord record = Plan("llama2-7b", "key-1", 1.5);
  ASSERT_OK_AND_ASSIGN(std::string id, store_->PutPlan(record, At(0)));
  // "plan-" + 12 hex digits of the time in ms + 20 random hex digits.
  EXPECT_THAT(id, StartsWith(absl::StrFormat("plan-%012x", (1795852800LL) * 1000)));
  EXPECT_EQ(id.size(), 5u + 32u);

  ASSERT_OK_AND_ASSIGN(PlanRecord got, store_->GetPlan(id));
  EXPECT_EQ(got.plan_id, id);
  EXPECT_EQ(got.cache_key, "key-1");
  EXPECT_EQ(got.created_at, At(0));
  EXPECT_THAT(got.result, EqualsProto(record.result));
  cairn::v1::PlanSummary want_summary = record.summary;
  want_summary.set_plan_id(id);
  want_summary.set_created_at(At(0));
  EXPECT_THAT(got.summary, EqualsProto(want_summary));

  EXPECT_THAT(store_->GetPlan("plan-missing"),
              StatusIs(absl::StatusCode::kNotFound, "no plan with id plan-missing"));
  EXPECT_THAT(store_->GetPlan(""), StatusIs(absl::StatusCode::kInvalidArgument, _));
  EXPECT_THAT(store_->PutPlan(record, "noon"), StatusIs(absl::StatusCode::kInvalidArgument, _));

  // Two plans stored in the same millisecond still get different ids.
  ASSERT_OK_AND_ASSIGN(std::string id2, store_->PutPlan(record, At(0)));
  EXPECT_NE(id2, id);
}

TEST_F(SqliteStoreTest, PlanCacheReturnsTheNewest) {
  ASSERT_OK_AND_ASSIGN(auto none, store_->FindPlanByCacheKey("k"));
  EXPECT_FALSE(none.has_value());

  ASSERT_OK_AND_ASSIGN(std::string old_id, store_->PutPlan(Plan("m", "k", 2.0), At(10)));
  ASSERT_OK_AND_ASSIGN(std::string other_id, store_->PutPlan(Plan("m", "other", 3.0), At(11)));
  ASSERT_OK_AND_ASSIGN(std::string no_key_id, store_->PutPlan(Plan("m", "", 4.0), At(12)));
  ASSERT_OK_AND_ASSIGN(auto found, store_->FindPlanByCacheKey("k"));
  ASSERT_TRUE(found.has_value());
  EXPECT_EQ(found->plan_id, old_id);
  EXPECT_EQ(found->result.plans(0).model_name(), "m");

  // "Newest" is the one stored last, even when the caller's clock says otherwise.
  ASSERT_OK_AND_ASSIGN(std::string new_id, store_->PutPlan(Plan("m", "k", 1.0), At(5)));
  ASSERT_OK_AND_ASSIGN(found, store_->FindPlanByCacheKey("k"));
  ASSERT_TRUE(found.has_value());
  EXPECT_EQ(found->plan_id, new_id);
  EXPECT_DOUBLE_EQ(found->summary.step_time_s(), 1.0);

  ASSERT_OK_AND_ASSIGN(PlanRecord no_key, store_->GetPlan(no_key_id));
  EXPECT_EQ(no_key.cache_key, "");
  EXPECT_THAT(store_->FindPlanByCacheKey(""),
              StatusIs(absl::StatusCode::kInvalidArgument, "cache_key is empty"));
  (void)other_id;
}

TEST_F(SqliteStoreTest, ListPlansPaginatesAndFiltersByModel) {
  std::vector<std::string> llama_ids;
  std::vector<std::string> all_ids;
  for (int i = 0; i < 5; ++i) {
    const std::string model = i % 2 == 0 ? "llama2-7b" : "gpt2";
    ASSERT_OK_AND_ASSIGN(std::string id,
                         store_->PutPlan(Plan(model, absl::StrCat("k", i), i), At(i)));
    all_ids.push_back(id);
    if (model == "llama2-7b") llama_ids.push_back(id);
  }
  // Ids are time-ordered, so id order is creation order here.
  ASSERT_TRUE(std::is_sorted(all_ids.begin(), all_ids.end()));

  ASSERT_OK_AND_ASSIGN(auto page1, store_->ListPlans(2, "", ""));
  ASSERT_OK_AND_ASSIGN(auto page2, store_->ListPlans(2, page1.back().plan_id, ""));
  ASSERT_OK_AND_ASSIGN(auto page3, store_->ListPlans(2, page2.back().plan_id, ""));
  ASSERT_OK_AND_ASSIGN(auto page4, store_->ListPlans(2, page3.back().plan_id, ""));
  std::vector<std::string> listed;
  for (const auto* page : {&page1, &page2, &page3}) {
    for (const PlanRecord& r : *page) {
      listed.push_back(r.plan_id);
      EXPECT_EQ(r.result.plans_size(), 0) << "listings carry summaries only";
      EXPECT_EQ(r.summary.plan_id(), r.plan_id);
      EXPECT_FALSE(r.created_at.empty());
      EXPECT_FALSE(r.cache_key.empty());
    }
  }
  EXPECT_EQ(listed, all_ids);
  EXPECT_THAT(page3, SizeIs(1));
  EXPECT_THAT(page4, SizeIs(0));

  ASSERT_OK_AND_ASSIGN(auto llama, store_->ListPlans(0, "", "llama2-7b"));
  std::vector<std::string> llama_listed;
  for (const PlanRecord& r : llama) llama_listed.push_back(r.plan_id);
  EXPECT_EQ(llama_listed, llama_ids);
  ASSERT_OK_AND_ASSIGN(auto llama_tail, store_->ListPlans(1, llama_ids[0], "llama2-7b"));
  ASSERT_THAT(llama_tail, SizeIs(1));
  EXPECT_EQ(llama_tail[0].plan_id, llama_ids[1]);
  ASSERT_OK_AND_ASSIGN(auto none, store_->ListPlans(0, "", "no-such-model"));
  EXPECT_THAT(none, SizeIs(0));
}

// --- Agents.

TEST_F(SqliteStoreTest, RegisterAndReRegisterAgents) {
  cairn::v1::AgentInfo in = Agent("node-1");
  in.set_state(cairn::v1::AGENT_STATE_DOWN);  // ignored: registration means UP
  ASSERT_OK_AND_ASSIGN(cairn::v1::AgentInfo a, store_->RegisterAgent(in, At(0)));
  EXPECT_THAT(a.agent_id(), StartsWith("agent-"));
  EXPECT_EQ(a.state(), cairn::v1::AGENT_STATE_UP);
  EXPECT_EQ(a.registered_at(), At(0));
  EXPECT_EQ(a.last_heartbeat_at(), At(0));
  EXPECT_EQ(a.hostname(), "node-1");

  // Restarted agent with its previous id: same id, new registration time and address.
  cairn::v1::AgentInfo again = Agent("node-1");
  again.set_agent_id(a.agent_id());
  again.set_address("node-1:7071");
  ASSERT_OK_AND_ASSIGN(cairn::v1::AgentInfo a2, store_->RegisterAgent(again, At(50)));
  EXPECT_EQ(a2.agent_id(), a.agent_id());
  EXPECT_EQ(a2.registered_at(), At(50));
  EXPECT_EQ(a2.address(), "node-1:7071");

  // An id this planner never issued is replaced by a new one.
  cairn::v1::AgentInfo stranger = Agent("node-2");
  stranger.set_agent_id("agent-made-up");
  ASSERT_OK_AND_ASSIGN(cairn::v1::AgentInfo b, store_->RegisterAgent(stranger, At(60)));
  EXPECT_NE(b.agent_id(), "agent-made-up");
  EXPECT_NE(b.agent_id(), a.agent_id());

  ASSERT_OK_AND_ASSIGN(auto agents, store_->ListAgents());
  ASSERT_THAT(agents, SizeIs(2));
  EXPECT_LT(agents[0].agent_id(), agents[1].agent_id());
  EXPECT_THAT(agents[0], EqualsProto(a2));
  EXPECT_THAT(agents[1], EqualsProto(b));
  EXPECT_THAT(store_->RegisterAgent(Agent("x"), "never"),
              StatusIs(absl::StatusCode::kInvalidArgument, _));
}

TEST_F(SqliteStoreTest, HeartbeatsAndMarkDownByCutoff) {
  ASSERT_OK_AND_ASSIGN(auto a, store_->RegisterAgent(Agent("a"), At(0)));
  ASSERT_OK_AND_ASSIGN(auto b, store_->RegisterAgent(Agent("b"), At(0)));
  ASSERT_OK_AND_ASSIGN(auto c, store_->RegisterAgent(Agent("c"), At(0)));
  ASSERT_OK_AND_ASSIGN(auto hb, store_->Heartbeat(b.agent_id(), At(10)));
  EXPECT_EQ(hb.last_heartbeat_at(), At(10));
  EXPECT_EQ(hb.state(), cairn::v1::AGENT_STATE_UP);
  ASSERT_OK(store_->Heartbeat(c.agent_id(), At(20)).status());

  // Cutoff 15 s: a (0 s) and b (10 s) missed it, c (20 s) did not.
  ASSERT_OK_AND_ASSIGN(std::vector<std::string> down, store_->MarkAgentsDown(At(15)));
  std::vector<std::string> want = {a.agent_id(), b.agent_id()};
  std::sort(want.begin(), want.end());
  EXPECT_EQ(down, want);
  // Already down: not reported again.
  ASSERT_OK_AND_ASSIGN(down, store_->MarkAgentsDown(At(15)));
  EXPECT_THAT(down, SizeIs(0));
  // A heartbeat exactly at the cutoff is not "before" it.
  ASSERT_OK_AND_ASSIGN(down, store_->MarkAgentsDown(At(20)));
  EXPECT_THAT(down, SizeIs(0));

  ASSERT_OK_AND_ASSIGN(auto agents, store_->ListAgents());
  std::map<std::string, cairn::v1::AgentState> states;
  for (const auto& agent : agents) states[agent.agent_id()] = agent.state();
  EXPECT_EQ(states[a.agent_id()], cairn::v1::AGENT_STATE_DOWN);
  EXPECT_EQ(states[b.agent_id()], cairn::v1::AGENT_STATE_DOWN);
  EXPECT_EQ(states[c.agent_id()], cairn::v1::AGENT_STATE_UP);

  // A heartbeat brings a down agent back up.
  ASSERT_OK_AND_ASSIGN(hb, store_->Heartbeat(a.agent_id(), At(30)));
  EXPECT_EQ(hb.state(), cairn::v1::AGENT_STATE_UP);
  EXPECT_EQ(hb.registered_at(), At(0));

  EXPECT_THAT(store_->Heartbeat("agent-unknown", At(30)),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("no agent with id agent-unknown")));
  EXPECT_THAT(store_->Heartbeat("", At(30)), StatusIs(absl::StatusCode::kInvalidArgument, _));
  EXPECT_THAT(store_->MarkAgentsDown("soon"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("cutoff is not an RFC 3339")));
}

TEST_F(SqliteStoreTest, MarkDownComparesInstantsNotStrings) {
  // Compared as text, "08:00:00.500Z" < "08:00:00Z" ('.' < 'Z'); as instants it is later.
  ASSERT_OK_AND_ASSIGN(auto a, store_->RegisterAgent(Agent("a"), "2026-11-28T08:00:00.500Z"));
  ASSERT_OK_AND_ASSIGN(auto down, store_->MarkAgentsDown("2026-11-28T08:00:00Z"));
  EXPECT_THAT(down, SizeIs(0));
  // 09:00:00.4+01:00 is 08:00:00.4Z: still before the heartbeat.
  ASSERT_OK_AND_ASSIGN(down, store_->MarkAgentsDown("2026-11-28T09:00:00.4+01:00"));
  EXPECT_THAT(down, SizeIs(0));
  ASSERT_OK_AND_ASSIGN(down, store_->MarkAgentsDown("2026-11-28T09:00:00.6+01:00"));
  EXPECT_THAT(down, ElementsAre(a.agent_id()));
}

// --- Jobs.

TEST_F(SqliteStoreTest, CreateUpdateGetJob) {
  cairn::v1::Job in = Job("train", cairn::v1::JOB_STATE_PENDING);
  in.set_job_id("ignored");
  in.set_created_at("ignored");
  ASSERT_OK_AND_ASSIGN(cairn::v1::Job job, store_->CreateJob(in, At(0)));
  EXPECT_THAT(job.job_id(), StartsWith("job-"));
  EXPECT_EQ(job.created_at(), At(0));
  EXPECT_EQ(job.updated_at(), At(0));
  EXPECT_EQ(job.name(), "train");
  ASSERT_OK_AND_ASSIGN(cairn::v1::Job got, store_->GetJob(job.job_id()));
  EXPECT_THAT(got, EqualsProto(job));

  cairn::v1::Job running = job;
  running.set_state(cairn::v1::JOB_STATE_RUNNING);
  (*running.mutable_rank_agents())[0] = "agent-1";
  running.mutable_last_step()->set_step(7);
  running.set_created_at("tampered");  // the store keeps the original creation time
  ASSERT_OK_AND_ASSIGN(cairn::v1::Job updated, store_->UpdateJob(running, At(30)));
  EXPECT_EQ(updated.state(), cairn::v1::JOB_STATE_RUNNING);
  EXPECT_EQ(updated.created_at(), At(0));
  EXPECT_EQ(updated.updated_at(), At(30));
  ASSERT_OK_AND_ASSIGN(got, store_->GetJob(job.job_id()));
  EXPECT_THAT(got, EqualsProto(updated));
  EXPECT_EQ(got.rank_agents().at(0), "agent-1");

  cairn::v1::Job ghost = Job("ghost", cairn::v1::JOB_STATE_RUNNING);
  ghost.set_job_id("job-ghost");
  EXPECT_THAT(store_->UpdateJob(ghost, At(31)),
              StatusIs(absl::StatusCode::kNotFound, "no job with id job-ghost"));
  EXPECT_THAT(store_->UpdateJob(Job("x", cairn::v1::JOB_STATE_RUNNING), At(31)),
              StatusIs(absl::StatusCode::kInvalidArgument, "job.job_id is empty"));
  EXPECT_THAT(store_->GetJob("job-ghost"), StatusIs(absl::StatusCode::kNotFound, _));
  EXPECT_THAT(store_->GetJob(""), StatusIs(absl::StatusCode::kInvalidArgument, _));
  EXPECT_THAT(store_->CreateJob(in, "later"), StatusIs(absl::StatusCode::kInvalidArgument, _));
}

TEST_F(SqliteStoreTest, ListJobsByStateWithPagination) {
  std::vector<std::string> pending;
  std::vector<std::string> all;
  for (int i = 0; i < 6; ++i) {
    ASSERT_OK_AND_ASSIGN(
        cairn::v1::Job job,
        store_->CreateJob(Job(absl::StrCat("j", i), cairn::v1::JOB_STATE_PENDING), At(i)));
    all.push_back(job.job_id());
    if (i % 3 == 0) {  // j0, j3 start running
      job.set_state(cairn::v1::JOB_STATE_RUNNING);
      ASSERT_OK(store_->UpdateJob(job, At(10 + i)).status());
    } else {
      pending.push_back(job.job_id());
    }
  }
  std::sort(all.begin(), all.end());
  std::sort(pending.begin(), pending.end());

  std::vector<std::string> listed;
  std::string after;
  while (true) {
    ASSERT_OK_AND_ASSIGN(auto page, store_->ListJobs(3, after, cairn::v1::JOB_STATE_PENDING));
    if (page.empty()) break;
    EXPECT_LE(page.size(), 3u);
    for (const auto& job : page) {
      EXPECT_EQ(job.state(), cairn::v1::JOB_STATE_PENDING);
      listed.push_back(job.job_id());
    }
    after = page.back().job_id();
  }
  EXPECT_EQ(listed, pending);

  ASSERT_OK_AND_ASSIGN(auto running, store_->ListJobs(0, "", cairn::v1::JOB_STATE_RUNNING));
  EXPECT_THAT(running, SizeIs(2));
  ASSERT_OK_AND_ASSIGN(auto every, store_->ListJobs(0, "", cairn::v1::JOB_STATE_UNSPECIFIED));
  std::vector<std::string> every_id;
  for (const auto& job : every) every_id.push_back(job.job_id());
  EXPECT_EQ(every_id, all);
  ASSERT_OK_AND_ASSIGN(auto failed, store_->ListJobs(0, "", cairn::v1::JOB_STATE_FAILED));
  EXPECT_THAT(failed, SizeIs(0));
}

// --- Rendezvous.

TEST_F(SqliteStoreTest, Rendezvous) {
  ASSERT_OK_AND_ASSIGN(auto job, store_->CreateJob(Job("j", cairn::v1::JOB_STATE_ASSIGNED), At(0)));
  ASSERT_OK_AND_ASSIGN(auto other,
                       store_->CreateJob(Job("k", cairn::v1::JOB_STATE_ASSIGNED), At(0)));
  const std::string nccl_id(std::string("\x00\x01\xfe\xff nccl", 9));  // binary, with NULs
  ASSERT_OK(store_->RendezvousSet(job.job_id(), "nccl_unique_id", nccl_id));
  ASSERT_OK(store_->RendezvousSet(job.job_id(), "gloo/rank0", "10.0.0.1:29500"));
  ASSERT_OK(store_->RendezvousSet(job.job_id(), "empty", ""));
  ASSERT_OK_AND_ASSIGN(std::string value, store_->RendezvousGet(job.job_id(), "nccl_unique_id"));
  EXPECT_EQ(value, nccl_id);
  ASSERT_OK_AND_ASSIGN(value, store_->RendezvousGet(job.job_id(), "empty"));
  EXPECT_EQ(value, "");

  // Overwrite.
  ASSERT_OK(store_->RendezvousSet(job.job_id(), "gloo/rank0", "10.0.0.2:29500"));
  ASSERT_OK_AND_ASSIGN(value, store_->RendezvousGet(job.job_id(), "gloo/rank0"));
  EXPECT_EQ(value, "10.0.0.2:29500");

  // Keys are per job.
  EXPECT_THAT(
      store_->RendezvousGet(other.job_id(), "gloo/rank0"),
      StatusIs(absl::StatusCode::kNotFound, absl::StrCat("rendezvous key \"gloo/rank0\" of job ",
                                                         other.job_id(), " is not set")));
  EXPECT_THAT(store_->RendezvousSet("job-unknown", "k", "v"),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("no job with id job-unknown")));
  EXPECT_THAT(store_->RendezvousGet("job-unknown", "k"), StatusIs(absl::StatusCode::kNotFound, _));
  EXPECT_THAT(store_->RendezvousSet(job.job_id(), "", "v"),
              StatusIs(absl::StatusCode::kInvalidArgument, "key is empty"));
  EXPECT_THAT(store_->RendezvousSet("", "k", "v"),
              StatusIs(absl::StatusCode::kInvalidArgument, "job_id is empty"));
}

TEST_F(SqliteStoreTest, RendezvousUsageCountsKeysAndBytesOfOneJob) {
  ASSERT_OK_AND_ASSIGN(auto job, store_->CreateJob(Job("j", cairn::v1::JOB_STATE_ASSIGNED), At(0)));
  ASSERT_OK_AND_ASSIGN(auto other,
                       store_->CreateJob(Job("k", cairn::v1::JOB_STATE_ASSIGNED), At(0)));
  ASSERT_OK_AND_ASSIGN(Store::RendezvousUsage none, store_->GetRendezvousUsage(job.job_id(), "a"));
  EXPECT_EQ(none.keys, 0);
  EXPECT_EQ(none.bytes, 0);
  EXPECT_EQ(none.key_bytes, -1);
  ASSERT_OK(store_->RendezvousSet(job.job_id(), "a", "12345"));
  ASSERT_OK(store_->RendezvousSet(job.job_id(), "b", std::string(100, '\0')));
  ASSERT_OK(store_->RendezvousSet(other.job_id(), "a", "elsewhere"));
  ASSERT_OK_AND_ASSIGN(Store::RendezvousUsage u, store_->GetRendezvousUsage(job.job_id(), "a"));
  EXPECT_EQ(u.keys, 2);
  EXPECT_EQ(u.bytes, 105);
  EXPECT_EQ(u.key_bytes, 5);
  ASSERT_OK_AND_ASSIGN(u, store_->GetRendezvousUsage(job.job_id(), "c"));
  EXPECT_EQ(u.key_bytes, -1);
}

// --- Locking the file and read-only files (issue 12).

TEST_F(SqliteStoreTest, ALockedFileCannotBeOpenedByASecondStore) {
  SqliteOptions locked;
  locked.lock_file = true;
  Reopen(locked);
  EXPECT_THAT(SqliteStore::Open(path_, locked),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       HasSubstr("is in use by another process (another cairn-planner?)")));
  SqliteOptions shared = locked;
  shared.read_only = true;
  EXPECT_THAT(SqliteStore::Open(path_, shared),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("in use")));
  // The lock goes with the store, and SQLite's own locks survive it (the writes still commit).
  ASSERT_OK(store_->PutHardwareProfile(Hardware("H100"), At(0)).status());
  store_.reset();
  ASSERT_OK_AND_ASSIGN(auto again, SqliteStore::Open(path_, locked));
  ASSERT_OK(again->PutHardwareProfile(Hardware("H100"), At(1)).status());
  EXPECT_OK(again->CheckIntegrity());
}

TEST_F(SqliteStoreTest, ReadOnlyModeServesReadsAndRefusesWrites) {
  ASSERT_OK(store_->PutHardwareProfile(Hardware("H100"), At(0)).status());
  store_.reset();
  SqliteOptions ro;
  ro.read_only = true;
  ro.lock_file = true;
  ASSERT_OK_AND_ASSIGN(auto a, SqliteStore::Open(path_, ro));
  ASSERT_OK_AND_ASSIGN(auto b, SqliteStore::Open(path_, ro));  // shared locks coexist
  ASSERT_OK_AND_ASSIGN(auto listed, a->ListHardwareProfiles(10, ""));
  EXPECT_THAT(listed, SizeIs(1));
  EXPECT_THAT(b->PutHardwareProfile(Hardware("A100"), At(1)),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("open read-only")));
  SqliteOptions rw;
  rw.lock_file = true;
  EXPECT_THAT(SqliteStore::Open(path_, rw),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("in use")));
}

// A file this process cannot write is refused at start, not at the first write. Run in a child
// that drops to an unprivileged user when the test runs as root (root may write any file).
TEST_F(SqliteStoreTest, AReadOnlyFileIsRefusedUnlessReadOnlyIsAsked) {
  store_.reset();
  // Under /tmp: the unprivileged child cannot traverse root's home, where TEST_TMPDIR may be.
  char tmpl[] = "/tmp/cairn-ro-XXXXXX";
  ASSERT_NE(mkdtemp(tmpl), nullptr);
  const std::string dir = tmpl;
  ASSERT_EQ(chmod(dir.c_str(), 0777), 0);
  const std::string path = dir + "/planner.db";
  RemoveDatabase(path);
  {
    ASSERT_OK_AND_ASSIGN(auto s, SqliteStore::Open(path));
    ASSERT_OK(s->PutHardwareProfile(Hardware("H100"), At(0)).status());
  }
  ASSERT_EQ(chmod(path.c_str(), 0444), 0);
  const pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    if (geteuid() == 0 && (setgid(65534) != 0 || setuid(65534) != 0)) _exit(10);
    SqliteOptions locked;
    locked.lock_file = true;
    absl::StatusOr<std::unique_ptr<SqliteStore>> rw = SqliteStore::Open(path, locked);
    if (rw.ok() || rw.status().code() != absl::StatusCode::kFailedPrecondition ||
        rw.status().message().find("--read-only") == absl::string_view::npos) {
      _exit(11);
    }
    SqliteOptions plain;  // no lock: the check after SQLite's open
    rw = SqliteStore::Open(path, plain);
    if (rw.ok() || rw.status().message().find("is read-only") == absl::string_view::npos) {
      std::fprintf(stderr, "plain open: %s\n", rw.status().ToString().c_str());
      _exit(12);
    }
    SqliteOptions ro;
    ro.read_only = true;
    ro.lock_file = true;
    absl::StatusOr<std::unique_ptr<SqliteStore>> s = SqliteStore::Open(path, ro);
    if (!s.ok()) _exit(13);
    if (!(*s)->ListHardwareProfiles(10, "").ok()) _exit(14);
    _exit(0);
  }
  int status = 0;
  ASSERT_EQ(waitpid(child, &status, 0), child);
  RemoveDatabase(path);
  rmdir(dir.c_str());
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0);
}

// --- Persistence, storage errors, operations.

TEST_F(SqliteStoreTest, ReopeningKeepsEverything) {
  ASSERT_OK_AND_ASSIGN(auto hw, store_->PutHardwareProfile(Hardware("gpu"), At(0)));
  ASSERT_OK_AND_ASSIGN(auto hw2, store_->PutHardwareProfile(Hardware("gpu"), At(1)));
  ASSERT_OK_AND_ASSIGN(auto model, store_->PutModelProfile(Model("gpt2"), At(2)));
  ASSERT_OK_AND_ASSIGN(std::string plan_id, store_->PutPlan(Plan("gpt2", "key", 0.5), At(3)));
  ASSERT_OK_AND_ASSIGN(auto agent, store_->RegisterAgent(Agent("n1"), At(4)));
  ASSERT_OK_AND_ASSIGN(auto job, store_->CreateJob(Job("j", cairn::v1::JOB_STATE_RUNNING), At(5)));
  ASSERT_OK(store_->RendezvousSet(job.job_id(), "k", "v"));

  Reopen();  // a clean shutdown and a new process's open

  ASSERT_OK_AND_ASSIGN(auto got_hw, store_->GetHardwareProfile(hw.id(), 0));
  EXPECT_THAT(got_hw, EqualsProto(hw2));
  ASSERT_OK_AND_ASSIGN(auto got_hw1, store_->GetHardwareProfile(hw.id(), 1));
  EXPECT_THAT(got_hw1, EqualsProto(hw));
  ASSERT_OK_AND_ASSIGN(auto got_model, store_->GetModelProfile(model.id(), 0));
  EXPECT_THAT(got_model, EqualsProto(model));
  ASSERT_OK_AND_ASSIGN(auto cached, store_->FindPlanByCacheKey("key"));
  ASSERT_TRUE(cached.has_value());
  EXPECT_EQ(cached->plan_id, plan_id);
  ASSERT_OK_AND_ASSIGN(auto agents, store_->ListAgents());
  ASSERT_THAT(agents, SizeIs(1));
  EXPECT_THAT(agents[0], EqualsProto(agent));
  ASSERT_OK_AND_ASSIGN(auto got_job, store_->GetJob(job.job_id()));
  EXPECT_THAT(got_job, EqualsProto(job));
  ASSERT_OK_AND_ASSIGN(std::string v, store_->RendezvousGet(job.job_id(), "k"));
  EXPECT_EQ(v, "v");
  // Versions continue where they were.
  ASSERT_OK_AND_ASSIGN(auto hw3, store_->PutHardwareProfile(Hardware("gpu"), At(6)));
  EXPECT_EQ(hw3.version(), 3);
  EXPECT_OK(store_->CheckIntegrity());
}

TEST_F(SqliteStoreTest, WriteLockedByAnotherProcessIsUnavailableAndReadsContinue) {
  SqliteOptions options;
  options.busy_timeout_ms = 0;  // fail at once instead of waiting 5 s
  Reopen(options);
  ASSERT_OK_AND_ASSIGN(auto hw, store_->PutHardwareProfile(Hardware("gpu"), At(0)));
  auto other = RawConnection();  // e.g. a second daemon, or sqlite3 in a shell, mid-transaction
  ASSERT_OK(other->ExecScript("BEGIN IMMEDIATE", "locking"));

  EXPECT_THAT(
      store_->PutHardwareProfile(Hardware("gpu"), At(1)),
      StatusIs(absl::StatusCode::kUnavailable, HasSubstr("database is locked [SQLITE_BUSY]")));
  EXPECT_THAT(store_->CreateJob(Job("j", cairn::v1::JOB_STATE_PENDING), At(1)),
              StatusIs(absl::StatusCode::kUnavailable, _));
  // WAL: readers are not blocked by the writer lock.
  ASSERT_OK_AND_ASSIGN(auto got, store_->GetHardwareProfile(hw.id(), 0));
  EXPECT_EQ(got.version(), 1);

  ASSERT_OK(other->ExecScript("COMMIT", "unlocking"));
  ASSERT_OK_AND_ASSIGN(auto v2, store_->PutHardwareProfile(Hardware("gpu"), At(2)));
  EXPECT_EQ(v2.version(), 2);  // the failed put consumed no version
}

TEST_F(SqliteStoreTest, UnparsableBlobIsDataLoss) {
  ASSERT_OK_AND_ASSIGN(auto job, store_->CreateJob(Job("j", cairn::v1::JOB_STATE_PENDING), At(0)));
  {
    auto conn = RawConnection();
    ASSERT_OK_AND_ASSIGN(sqlite::Statement st,
                         conn->Prepare("UPDATE jobs SET job = ?2 WHERE job_id = ?1", "tamper"));
    st.BindText(1, job.job_id());
    st.BindBlob(2, "\xff\xff\xff\xff");
    ASSERT_OK(st.StepDone());
  }
  EXPECT_THAT(store_->GetJob(job.job_id()),
              StatusIs(absl::StatusCode::kDataLoss,
                       HasSubstr(absl::StrCat("stored job ", job.job_id(),
                                              " (4 bytes) does not parse as cairn.v1.Job"))));
  EXPECT_THAT(store_->ListJobs(0, "", cairn::v1::JOB_STATE_UNSPECIFIED),
              StatusIs(absl::StatusCode::kDataLoss, _));
}

TEST_F(SqliteStoreTest, CheckIntegrityReportsForeignKeyViolations) {
  EXPECT_OK(store_->CheckIntegrity());
  {
    auto conn = RawConnection();  // foreign_keys is off on this connection: it can break them
    ASSERT_OK(conn->ExecScript(
        "INSERT INTO rendezvous (job_id, key, value) VALUES ('job-gone', 'k', x'00')", "orphan"));
  }
  EXPECT_THAT(store_->CheckIntegrity(), StatusIs(absl::StatusCode::kDataLoss,
                                                 HasSubstr("foreign key violation: rendezvous")));
}

TEST_F(SqliteStoreTest, BackupWhileRunning) {
  ASSERT_OK_AND_ASSIGN(auto hw, store_->PutHardwareProfile(Hardware("gpu"), At(0)));
  ASSERT_OK_AND_ASSIGN(std::string plan_id, store_->PutPlan(Plan("m", "k", 1), At(1)));
  const std::string backup = path_ + ".backup";
  RemoveDatabase(backup);
  ASSERT_OK(store_->BackupTo(backup));
  EXPECT_THAT(store_->BackupTo(backup),
              StatusIs(absl::StatusCode::kAlreadyExists, HasSubstr("already exists")));
  // The store keeps working after the backup; the backup holds the state at backup time.
  ASSERT_OK(store_->PutHardwareProfile(Hardware("gpu"), At(2)).status());

  ASSERT_OK_AND_ASSIGN(std::unique_ptr<SqliteStore> restored, SqliteStore::Open(backup));
  EXPECT_OK(restored->CheckIntegrity());
  ASSERT_OK_AND_ASSIGN(auto got, restored->GetHardwareProfile(hw.id(), 0));
  EXPECT_THAT(got, EqualsProto(hw));
  EXPECT_OK(restored->GetPlan(plan_id).status());
}

// --- Concurrency: 8 threads x 200 mixed writes (and reads), then every acknowledged record is
// present exactly once.

TEST_F(SqliteStoreTest, ConcurrentWritersLoseAndDuplicateNothing) {
  constexpr int kThreads = 8;
  constexpr int kOpsPerThread = 200;
  constexpr int kSharedProfiles = 3;  // every thread also versions these: contention on one id

  struct Acks {
    std::map<std::string, std::vector<int>> hw_versions;  // id -> versions acked
    std::vector<std::string> plans;
    std::map<std::string, int> jobs;                              // id -> last acked update number
    std::vector<std::pair<std::string, std::string>> rendezvous;  // job id, key
    std::vector<std::string> agents;
    int errors = 0;
  };
  std::vector<Acks> acks(kThreads);

  const absl::Time start = absl::Now();
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      Acks& mine = acks[t];
      std::string last_job;
      int job_updates = 0;
      for (int i = 0; i < kOpsPerThread; ++i) {
        const std::string now = At(t * 1000 + i);
        absl::Status status;
        switch (i % 6) {
          case 0: {  // a profile of this thread's own
            auto r = store_->PutHardwareProfile(Hardware(absl::StrCat("gpu-t", t, "-", i)), now);
            if (r.ok()) mine.hw_versions[r->id()].push_back(r->version());
            status = r.status();
            break;
          }
          case 1: {  // a new version of a shared profile
            auto r = store_->PutHardwareProfile(
                Hardware(absl::StrCat("shared-", (i / 6) % kSharedProfiles)), now);
            if (r.ok()) mine.hw_versions[r->id()].push_back(r->version());
            status = r.status();
            break;
          }
          case 2: {
            auto r = store_->PutPlan(Plan("m", absl::StrCat("key-", t, "-", i), i), now);
            if (r.ok()) {
              mine.plans.push_back(*r);
              // Read-your-write through the reader pool.
              auto back = store_->GetPlan(*r);
              if (!back.ok()) status = back.status();
            } else {
              status = r.status();
            }
            break;
          }
          case 3: {
            auto r = store_->CreateJob(
                Job(absl::StrCat("j", t, "-", i), cairn::v1::JOB_STATE_PENDING), now);
            if (r.ok()) {
              last_job = r->job_id();
              job_updates = 0;
              mine.jobs[last_job] = 0;
            }
            status = r.status();
            break;
          }
          case 4: {
            cairn::v1::Job job = Job("j", cairn::v1::JOB_STATE_RUNNING);
            job.set_job_id(last_job);
            job.mutable_last_step()->set_step(++job_updates);
            auto r = store_->UpdateJob(job, now);
            if (r.ok()) mine.jobs[last_job] = job_updates;
            status = r.status();
            break;
          }
          case 5: {
            const std::string key = absl::StrCat("rank", t, "-", i);
            status = store_->RendezvousSet(last_job, key, "addr");
            if (status.ok()) mine.rendezvous.emplace_back(last_job, key);
            if (i % 12 == 5) {
              auto r = store_->RegisterAgent(Agent(absl::StrCat("node-", t, "-", i)), now);
              if (r.ok()) mine.agents.push_back(r->agent_id());
              if (status.ok()) status = r.status();
            }
            break;
          }
        }
        if (!status.ok()) {
          ++mine.errors;
          ADD_FAILURE() << "thread " << t << " op " << i << ": " << status;
        }
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  const double seconds = absl::ToDoubleSeconds(absl::Now() - start);
  int writes = 0;
  for (const Acks& a : acks) {
    for (const auto& [id, versions] : a.hw_versions) writes += versions.size();
    writes += a.plans.size() + a.rendezvous.size() + a.agents.size();
    for (const auto& [id, updates] : a.jobs) writes += 1 + updates;
  }
  // Informational (never asserted): commits per second with synchronous=FULL on this machine.
  std::printf("concurrency: %d acknowledged writes from %d threads in %.2f s = %.0f writes/s\n",
              writes, kThreads, seconds, writes / seconds);

  // Profiles: per id, the union of acked versions is exactly 1..n with no duplicate, and the store
  // holds exactly those.
  std::map<std::string, std::vector<int>> versions;
  for (const Acks& a : acks) {
    for (const auto& [id, vs] : a.hw_versions) {
      versions[id].insert(versions[id].end(), vs.begin(), vs.end());
    }
  }
  EXPECT_EQ(versions.size(), static_cast<size_t>(kThreads * 34 + kSharedProfiles));
  for (auto& [id, vs] : versions) {
    std::sort(vs.begin(), vs.end());
    for (size_t i = 0; i < vs.size(); ++i) ASSERT_EQ(vs[i], static_cast<int>(i) + 1) << id;
    ASSERT_OK_AND_ASSIGN(auto latest, store_->GetHardwareProfile(id, 0));
    EXPECT_EQ(latest.version(), static_cast<int>(vs.size())) << id;
  }
  std::set<std::string> listed_hw;
  std::string after;
  while (true) {
    ASSERT_OK_AND_ASSIGN(auto page, store_->ListHardwareProfiles(100, after));
    if (page.empty()) break;
    for (const auto& p : page) EXPECT_TRUE(listed_hw.insert(p.id()).second) << "listed twice";
    after = page.back().id();
  }
  EXPECT_EQ(listed_hw.size(), versions.size());

  // Plans: every acked id present, once; nothing else.
  std::set<std::string> acked_plans;
  for (const Acks& a : acks) {
    for (const std::string& id : a.plans) EXPECT_TRUE(acked_plans.insert(id).second) << id;
  }
  std::set<std::string> listed_plans;
  after.clear();
  while (true) {
    ASSERT_OK_AND_ASSIGN(auto page, store_->ListPlans(100, after, ""));
    if (page.empty()) break;
    for (const auto& p : page) EXPECT_TRUE(listed_plans.insert(p.plan_id).second);
    after = page.back().plan_id;
  }
  EXPECT_EQ(listed_plans, acked_plans);

  // Jobs: every one present with its last acknowledged update.
  std::map<std::string, int> acked_jobs;
  for (const Acks& a : acks) acked_jobs.insert(a.jobs.begin(), a.jobs.end());
  ASSERT_OK_AND_ASSIGN(auto all_jobs, store_->ListJobs(1000, "", cairn::v1::JOB_STATE_UNSPECIFIED));
  EXPECT_EQ(all_jobs.size(), acked_jobs.size());
  for (const auto& job : all_jobs) {
    ASSERT_EQ(acked_jobs.count(job.job_id()), 1u) << job.job_id();
    EXPECT_EQ(job.last_step().step(), acked_jobs[job.job_id()]);
  }
  for (const Acks& a : acks) {
    for (const auto& [job_id, key] : a.rendezvous) {
      EXPECT_OK(store_->RendezvousGet(job_id, key).status());
    }
  }
  std::set<std::string> acked_agents;
  for (const Acks& a : acks) acked_agents.insert(a.agents.begin(), a.agents.end());
  ASSERT_OK_AND_ASSIGN(auto agents, store_->ListAgents());
  std::set<std::string> listed_agents;
  for (const auto& agent : agents) listed_agents.insert(agent.agent_id());
  EXPECT_EQ(listed_agents, acked_agents);
  EXPECT_OK(store_->CheckIntegrity());
}

}  // namespace
}  // namespace cairn::planner
