#include "planner/server/rendezvous_logic.h"

#include <string>

#include "absl/synchronization/notification.h"
#include "common/testing/status_matchers.h"
#include "gtest/gtest.h"
#include "planner/store/testing/memory_store.h"

namespace cairn::planner {
namespace {

using ::cairn::testing::StatusIs;
using ::testing::HasSubstr;
using WaitResult = absl::StatusOr<cairn::v1::RendezvousWaitResponse>;

class RendezvousLogicTest : public ::testing::Test {
 protected:
  RendezvousLogicTest() {
    cairn::v1::Job job;
    job_ = store_.CreateJob(job, "2026-01-01T00:00:00Z").value().job_id();
  }
  absl::Status Set(const std::string& key, const std::string& value) {
    cairn::v1::RendezvousSetRequest r;
    r.set_job_id(job_);
    r.set_key(key);
    r.set_value(value);
    return rdzv_.Set(r).status();
  }
  cairn::v1::RendezvousWaitRequest WaitFor(std::initializer_list<const char*> keys,
                                           double timeout_s = 60) {
    cairn::v1::RendezvousWaitRequest r;
    r.set_job_id(job_);
    for (const char* k : keys) r.add_keys(k);
    r.set_timeout_s(timeout_s);
    return r;
  }

  cairn::planner::testing::MemoryStore store_;
  TimerThread timers_;
  RendezvousLogic rdzv_{&store_, &timers_};
  std::string job_;
};

TEST_F(RendezvousLogicTest, SetThenGet) {
  ASSERT_OK(Set("nccl_unique_id", std::string("\0\1\2", 3)));
  cairn::v1::RendezvousGetRequest get;
  get.set_job_id(job_);
  get.set_key("nccl_unique_id");
  ASSERT_OK_AND_ASSIGN(cairn::v1::RendezvousGetResponse r, rdzv_.Get(get));
  EXPECT_EQ(r.value(), std::string("\0\1\2", 3));
  get.set_key("gloo_addr");
  EXPECT_THAT(rdzv_.Get(get), StatusIs(absl::StatusCode::kNotFound,
                                       HasSubstr("key 'gloo_addr' of job '" + job_ +
                                                 "' is not set yet (Wait blocks until it is)")));
  get.set_job_id("job-404");
  EXPECT_THAT(rdzv_.Get(get), StatusIs(absl::StatusCode::kNotFound,
                                       HasSubstr("job 'job-404' not found")));
}

TEST_F(RendezvousLogicTest, WaitForKeysAlreadySetCompletesAtOnce) {
  ASSERT_OK(Set("a", "1"));
  WaitResult result;
  EXPECT_EQ(rdzv_.Wait(WaitFor({"a"}), [&](WaitResult r) { result = std::move(r); }), 0u);
  ASSERT_OK(result.status());
  EXPECT_EQ(result->values().at("a"), "1");
}

TEST_F(RendezvousLogicTest, WaitCompletesWhenTheLastKeyArrives) {
  ASSERT_OK(Set("a", "1"));
  absl::Notification done;
  WaitResult result;
  const WaitId id = rdzv_.Wait(WaitFor({"a", "b", "c"}), [&](WaitResult r) {
    result = std::move(r);
    done.Notify();
  });
  EXPECT_NE(id, 0u);
  EXPECT_EQ(rdzv_.waiting(), 1);
  ASSERT_OK(Set("b", "2"));
  EXPECT_FALSE(done.HasBeenNotified());
  ASSERT_OK(Set("c", "3"));
  ASSERT_TRUE(done.HasBeenNotified());  // completed inside Set
  ASSERT_OK(result.status());
  EXPECT_EQ(result->values().size(), 3u);
  EXPECT_EQ(result->values().at("c"), "3");
  EXPECT_EQ(rdzv_.waiting(), 0);
}

TEST_F(RendezvousLogicTest, TimeoutNamesTheMissingKeys) {
  ASSERT_OK(Set("a", "1"));
  absl::Notification done;
  WaitResult result;
  rdzv_.Wait(WaitFor({"a", "b", "c"}, /*timeout_s=*/0.01), [&](WaitResult r) {
    result = std::move(r);
    done.Notify();
  });
  ASSERT_TRUE(done.WaitForNotificationWithTimeout(absl::Seconds(30)));
  EXPECT_THAT(result, StatusIs(absl::StatusCode::kDeadlineExceeded,
                               HasSubstr("timed out after 0.01 s; still missing: b, c")));
  EXPECT_EQ(rdzv_.waiting(), 0);
}

TEST_F(RendezvousLogicTest, CancelAndShutdownComplete) {
  WaitResult cancelled, unavailable;
  const WaitId id = rdzv_.Wait(WaitFor({"x"}), [&](WaitResult r) { cancelled = std::move(r); });
  rdzv_.CancelWait(id);
  EXPECT_THAT(cancelled, StatusIs(absl::StatusCode::kCancelled, HasSubstr("cancelled")));
  rdzv_.CancelWait(id);  // no-op
  rdzv_.Wait(WaitFor({"y"}), [&](WaitResult r) { unavailable = std::move(r); });
  rdzv_.Shutdown();
  EXPECT_THAT(unavailable, StatusIs(absl::StatusCode::kUnavailable, HasSubstr("shutting down")));
  WaitResult late;
  rdzv_.Wait(WaitFor({"z"}), [&](WaitResult r) { late = std::move(r); });
  EXPECT_THAT(late, StatusIs(absl::StatusCode::kUnavailable, HasSubstr("shutting down")));
}

TEST_F(RendezvousLogicTest, UnknownJobAndBadRequests) {
  cairn::v1::RendezvousWaitRequest r = WaitFor({"a"});
  r.set_job_id("job-404");
  WaitResult result;
  rdzv_.Wait(r, [&](WaitResult x) { result = std::move(x); });
  EXPECT_THAT(result, StatusIs(absl::StatusCode::kNotFound, HasSubstr("job 'job-404' not found")));
  rdzv_.Wait(WaitFor({"a"}, /*timeout_s=*/0), [&](WaitResult x) { result = std::move(x); });
  EXPECT_THAT(result, StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("timeout_s")));
}

}  // namespace
}  // namespace cairn::planner
