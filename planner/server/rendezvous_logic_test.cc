#include "planner/server/rendezvous_logic.h"

#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "common/testing/status_matchers.h"
#include "gtest/gtest.h"
#include "planner/server/validation.h"
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

// Issue 12: a wait on 1024 missing keys built an 11 KB status message (clients then failed with
// RESOURCE_EXHAUSTED "metadata too large" instead of seeing DEADLINE_EXCEEDED).
TEST_F(RendezvousLogicTest, TimeoutNamesAFewMissingKeysNotAll) {
  cairn::v1::RendezvousWaitRequest r = WaitFor({}, 0.01);
  for (int i = 0; i < kMaxRendezvousWaitKeys; ++i) r.add_keys(absl::StrCat("rank_", 1000 + i));
  absl::Notification done;
  WaitResult result;
  rdzv_.Wait(r, [&](WaitResult w) {
    result = std::move(w);
    done.Notify();
  });
  done.WaitForNotification();
  EXPECT_THAT(result, StatusIs(absl::StatusCode::kDeadlineExceeded,
                               HasSubstr("still missing: rank_1000, rank_1001, rank_1002, "
                                         "rank_1003, rank_1004, rank_1005, rank_1006, rank_1007, "
                                         "rank_1008, rank_1009 and 1014 more")));
  EXPECT_LT(result.status().message().size(), 400u);
}

// Issue 12: 5000 x 64 KiB keys on one job were all accepted (328 MiB of database).
TEST_F(RendezvousLogicTest, KeysAndBytesPerJobAreBounded) {
  const std::string value(64 * 1024, 'v');
  int accepted = 0;
  absl::Status refused;
  for (int i = 0; i < 1000 && refused.ok(); ++i) {
    refused = Set(absl::StrCat("k", i), value);
    if (refused.ok()) ++accepted;
  }
  EXPECT_EQ(accepted, kMaxRendezvousBytesPerJob / static_cast<int64_t>(value.size()));
  EXPECT_THAT(refused, StatusIs(absl::StatusCode::kResourceExhausted,
                                HasSubstr("bytes of rendezvous values, more than the 16777216")));
  // Replacing a key counts its new size instead of the old.
  EXPECT_OK(Set("k0", "small"));
  EXPECT_OK(Set("k0", value));

  cairn::v1::Job other;
  job_ = store_.CreateJob(other, "2026-01-01T00:00:00Z").value().job_id();
  for (int i = 0; i < kMaxRendezvousKeysPerJob; ++i) ASSERT_OK(Set(absl::StrCat("k", i), "x"));
  EXPECT_THAT(Set("one-more", "x"),
              StatusIs(absl::StatusCode::kResourceExhausted, HasSubstr("already has 4096")));
  EXPECT_OK(Set("k7", "replaced"));
}

// Issue 12: Set succeeded on a cancelled job.
TEST_F(RendezvousLogicTest, AnEndedJobTakesNoKeysAndNoWaits) {
  ASSERT_OK(Set("addr", "10.0.0.1:4000"));
  cairn::v1::Job job = store_.GetJob(job_).value();
  job.set_state(cairn::v1::JOB_STATE_CANCELLED);
  ASSERT_OK(store_.UpdateJob(job, "2026-01-01T00:00:01Z").status());
  EXPECT_THAT(Set("addr", "x"), StatusIs(absl::StatusCode::kFailedPrecondition,
                                         HasSubstr("already ended (JOB_STATE_CANCELLED)")));
  WaitResult result;
  EXPECT_EQ(rdzv_.Wait(WaitFor({"other"}), [&](WaitResult w) { result = std::move(w); }), 0u);
  EXPECT_THAT(result, StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("ended")));
  cairn::v1::RendezvousGetRequest get;
  get.set_job_id(job_);
  get.set_key("addr");
  EXPECT_OK(rdzv_.Get(get).status());  // what was set can still be read
}

TEST_F(RendezvousLogicTest, PendingWaitsAreBounded) {
  std::vector<absl::Status> results;
  int pending = 0;
  for (int i = 0; i <= kMaxRendezvousWaitersPerJob; ++i) {
    const WaitId id = rdzv_.Wait(WaitFor({"never"}), [&](WaitResult w) {
      results.push_back(w.status());
    });
    if (id != 0) ++pending;
  }
  EXPECT_EQ(pending, kMaxRendezvousWaitersPerJob);
  ASSERT_EQ(results.size(), 1u);
  EXPECT_THAT(results[0], StatusIs(absl::StatusCode::kResourceExhausted,
                                   HasSubstr("rendezvous waits pending, the most a job may have")));
  EXPECT_EQ(rdzv_.waiting(), kMaxRendezvousWaitersPerJob);
  rdzv_.Shutdown();
}

}  // namespace
}  // namespace cairn::planner
