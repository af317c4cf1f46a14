#include "planner/server/executor.h"

#include <atomic>
#include <vector>

#include "absl/synchronization/notification.h"
#include "common/testing/status_matchers.h"
#include "gtest/gtest.h"

namespace cairn::planner {
namespace {

using ::cairn::testing::StatusIs;

TEST(ExecutorTest, RunsEveryTaskAndRunsTheQueuedOnesOnStop) {
  std::atomic<int> ran{0};
  {
    Executor e(2, 100);
    for (int i = 0; i < 50; ++i) ASSERT_OK(e.Submit([&] { ++ran; }));
    e.Stop();
    EXPECT_EQ(ran.load(), 50);
    EXPECT_THAT(e.Submit([] {}), StatusIs(absl::StatusCode::kUnavailable, ::testing::_));
  }
}

TEST(ExecutorTest, RefusesBeyondTheQueueLimit) {
  Executor e(1, 2);
  absl::Notification release, started;
  ASSERT_OK(e.Submit([&] {
    started.Notify();
    release.WaitForNotification();
  }));
  started.WaitForNotification();  // the only thread is busy from here on
  ASSERT_OK(e.Submit([] {}));
  ASSERT_OK(e.Submit([] {}));
  EXPECT_THAT(e.Submit([] {}), StatusIs(absl::StatusCode::kResourceExhausted,
                                        ::testing::HasSubstr("--worker-queue")));
  EXPECT_EQ(e.queued(), 2);
  release.Notify();
  e.Stop();
  EXPECT_EQ(e.queued(), 0);
}

}  // namespace
}  // namespace cairn::planner
