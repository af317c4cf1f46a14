// PlannerStore against a fake Rendezvous service (an in-process gRPC server on a loopback port 0
// with a map and a condition variable): prefixes, waits served by the daemon, timeouts, retries
// while the daemon is unavailable, the daemon's limits checked before a call, the bearer token.
// The real daemon is exercised end to end in tests/agent_e2e_test.
#include "runtime/comm/planner_store.h"

#include <fstream>
#include <map>
#include <string>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "common/testing/status_matchers.h"
#include "gtest/gtest.h"

namespace cairn::runtime {
namespace {

using ::cairn::testing::IsOk;
using ::cairn::testing::StatusIs;
using ::testing::HasSubstr;

class FakeRendezvous final : public cairn::v1::Rendezvous::Service {
 public:
  grpc::Status Set(grpc::ServerContext* ctx, const cairn::v1::RendezvousSetRequest* req,
                   cairn::v1::RendezvousSetResponse*) override {
    absl::MutexLock lock(&mu_);
    if (grpc::Status s = CheckLocked(ctx, req->job_id()); !s.ok()) return s;
    values_[req->job_id()][req->key()] = req->value();
    return grpc::Status::OK;
  }
  grpc::Status Get(grpc::ServerContext* ctx, const cairn::v1::RendezvousGetRequest* req,
                   cairn::v1::RendezvousGetResponse* resp) override {
    absl::MutexLock lock(&mu_);
    if (grpc::Status s = CheckLocked(ctx, req->job_id()); !s.ok()) return s;
    auto& kv = values_[req->job_id()];
    auto it = kv.find(req->key());
    if (it == kv.end()) {
      return grpc::Status(grpc::StatusCode::NOT_FOUND, absl::StrCat("key '", req->key(), "' unset"));
    }
    resp->set_value(it->second);
    return grpc::Status::OK;
  }
  grpc::Status Wait(grpc::ServerContext* ctx, const cairn::v1::RendezvousWaitRequest* req,
                    cairn::v1::RendezvousWaitResponse* resp) override {
    absl::MutexLock lock(&mu_);
    ++waits_;
    if (grpc::Status s = CheckLocked(ctx, req->job_id()); !s.ok()) return s;
    auto all_set = [&] {
      for (const std::string& k : req->keys()) {
        if (!values_[req->job_id()].count(k)) return false;
      }
      return true;
    };
    mu_.AwaitWithTimeout(absl::Condition(&all_set), absl::Seconds(req->timeout_s()));
    if (!all_set()) return grpc::Status(grpc::StatusCode::DEADLINE_EXCEEDED, "keys missing");
    for (const std::string& k : req->keys()) (*resp->mutable_values())[k] = values_[req->job_id()][k];
    return grpc::Status::OK;
  }

  void FailNextCalls(int n) {
    absl::MutexLock lock(&mu_);
    unavailable_ = n;
  }
  void RequireToken(const std::string& token) {
    absl::MutexLock lock(&mu_);
    token_ = token;
  }
  int waits() {
    absl::MutexLock lock(&mu_);
    return waits_;
  }
  std::map<std::string, std::string> Keys(const std::string& job) {
    absl::MutexLock lock(&mu_);
    return values_[job];
  }

 private:
  grpc::Status CheckLocked(grpc::ServerContext* ctx, const std::string& job)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (unavailable_ > 0) {
      --unavailable_;
      return grpc::Status(grpc::StatusCode::UNAVAILABLE, "restarting");
    }
    if (!token_.empty()) {
      auto it = ctx->client_metadata().find("authorization");
      if (it == ctx->client_metadata().end() ||
          std::string(it->second.data(), it->second.size()) != "Bearer " + token_) {
        return grpc::Status(grpc::StatusCode::UNAUTHENTICATED, "bad token");
      }
    }
    if (job == "ended") return grpc::Status(grpc::StatusCode::FAILED_PRECONDITION, "job ended");
    return grpc::Status::OK;
  }

  absl::Mutex mu_;
  std::map<std::string, std::map<std::string, std::string>> values_ ABSL_GUARDED_BY(mu_);
  int unavailable_ ABSL_GUARDED_BY(mu_) = 0;
  int waits_ ABSL_GUARDED_BY(mu_) = 0;
  std::string token_ ABSL_GUARDED_BY(mu_);
};

class PlannerStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    grpc::ServerBuilder b;
    b.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port_);
    b.RegisterService(&fake_);
    server_ = b.BuildAndStart();
    ASSERT_NE(server_, nullptr);
    connection_.address = absl::StrCat("127.0.0.1:", port_);
  }
  void TearDown() override { server_->Shutdown(absl::ToChronoTime(absl::Now())); }

  std::unique_ptr<PlannerStore> Open(const std::string& job, const std::string& prefix) {
    absl::StatusOr<std::unique_ptr<PlannerStore>> s =
        PlannerStore::Connect(connection_, job, prefix);
    EXPECT_THAT(s.status(), IsOk());
    return s.ok() ? std::move(*s) : nullptr;
  }

  FakeRendezvous fake_;
  std::unique_ptr<grpc::Server> server_;
  int port_ = 0;
  PlannerConnection connection_;
};

TEST_F(PlannerStoreTest, SetGetUnderTheAttemptPrefix) {
  auto store = Open("job-1", "attempt-2/");
  ASSERT_THAT(store->Set("world/addr/0", "10.0.0.1:1234"), IsOk());
  EXPECT_EQ(fake_.Keys("job-1").at("attempt-2/world/addr/0"), "10.0.0.1:1234");
  absl::StatusOr<std::string> v = store->Get("world/addr/0", absl::ZeroDuration());
  ASSERT_THAT(v.status(), IsOk());
  EXPECT_EQ(*v, "10.0.0.1:1234");
  // Another attempt's prefix does not see it.
  auto other = Open("job-1", "attempt-3/");
  EXPECT_THAT(other->Get("world/addr/0", absl::ZeroDuration()).status(),
              StatusIs(absl::StatusCode::kDeadlineExceeded, HasSubstr("attempt-3/world/addr/0")));
}

TEST_F(PlannerStoreTest, GetWaitsOnTheDaemonUntilAnotherRankSets) {
  auto reader = Open("job-1", "");
  auto writer = Open("job-1", "");
  std::thread late([&] {
    // Bounded: the reader is already waiting or will find the key set; either way it succeeds.
    absl::SleepFor(absl::Milliseconds(50));
    EXPECT_THAT(writer->Set("nccl/id", std::string("\0\1\2", 3)), IsOk());
  });
  absl::StatusOr<std::string> v = reader->Get("nccl/id", absl::Seconds(30));
  late.join();
  ASSERT_THAT(v.status(), IsOk());
  EXPECT_EQ(*v, std::string("\0\1\2", 3));
  EXPECT_GE(fake_.waits(), 1);
  EXPECT_THAT(reader->Wait({"nccl/id"}, absl::Seconds(5)), IsOk());
}

TEST_F(PlannerStoreTest, TimeoutNamesTheMissingKey) {
  auto store = Open("job-1", "p/");
  EXPECT_THAT(store->Wait({"never"}, absl::Milliseconds(200)),
              StatusIs(absl::StatusCode::kDeadlineExceeded, HasSubstr("p/never")));
}

TEST_F(PlannerStoreTest, RetriesWhileTheDaemonIsUnavailable) {
  auto store = Open("job-1", "");
  fake_.FailNextCalls(3);
  EXPECT_THAT(store->Set("k", "v"), IsOk());
  fake_.FailNextCalls(2);
  absl::StatusOr<std::string> v = store->Get("k", absl::Seconds(30));
  ASSERT_THAT(v.status(), IsOk());
  EXPECT_EQ(*v, "v");
}

TEST_F(PlannerStoreTest, EndedJobAndLimitsAreErrorsNotRetries) {
  auto ended = Open("ended", "");
  EXPECT_THAT(ended->Set("k", "v"), StatusIs(absl::StatusCode::kFailedPrecondition, ::testing::_));
  auto store = Open("job-1", "");
  EXPECT_THAT(store->Set("", "v"), StatusIs(absl::StatusCode::kInvalidArgument, ::testing::_));
  EXPECT_THAT(store->Set(std::string(300, 'k'), "v"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("256")));
  EXPECT_THAT(store->Set("k", std::string(70000, 'v')),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("65536")));
}

TEST_F(PlannerStoreTest, SendsTheBearerTokenFromTheTokenFile) {
  fake_.RequireToken("s3cret");
  const std::string path = absl::StrCat(::testing::TempDir(), "/token");
  std::ofstream(path) << "agent s3cret\n";
  connection_.token_file = path;
  auto store = Open("job-1", "");
  EXPECT_THAT(store->Set("k", "v"), IsOk());
  connection_.token_file = "";
  auto anonymous = Open("job-1", "");
  EXPECT_THAT(anonymous->Set("k", "v"), StatusIs(absl::StatusCode::kUnauthenticated, ::testing::_));
}

TEST(PlannerConnectionTest, ChecksItsSettings) {
  PlannerConnection c;
  EXPECT_THAT(OpenPlannerChannel(c).status(), StatusIs(absl::StatusCode::kInvalidArgument, ::testing::_));
  c.address = "127.0.0.1:1";
  c.tls_cert_file = "cert.pem";
  EXPECT_THAT(OpenPlannerChannel(c).status(),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("key")));
  c.tls_key_file = "key.pem";
  c.tls_ca_file = "/nonexistent/ca.pem";
  EXPECT_THAT(OpenPlannerChannel(c).status(), StatusIs(absl::StatusCode::kNotFound, ::testing::_));
  EXPECT_THAT(ReadBearerToken("/nonexistent/token").status(),
              StatusIs(absl::StatusCode::kNotFound, ::testing::_));
}

}  // namespace
}  // namespace cairn::runtime
