#include "planner/server/timer_thread.h"

#include <vector>

#include "absl/synchronization/notification.h"
#include "gtest/gtest.h"

namespace cairn::planner {
namespace {

TEST(TimerThreadTest, RunsCallbacksInDueOrder) {
  TimerThread timers;
  absl::Mutex mu;
  std::vector<int> order;
  absl::Notification last;
  // Scheduled out of order; due times 30, 10, 20 ms.
  timers.Schedule(absl::Milliseconds(30), [&] {
    absl::MutexLock lock(&mu);
    order.push_back(3);
    last.Notify();
  });
  timers.Schedule(absl::Milliseconds(10), [&] {
    absl::MutexLock lock(&mu);
    order.push_back(1);
  });
  timers.Schedule(absl::Milliseconds(20), [&] {
    absl::MutexLock lock(&mu);
    order.push_back(2);
  });
  ASSERT_TRUE(last.WaitForNotificationWithTimeout(absl::Seconds(10)));
  absl::MutexLock lock(&mu);
  EXPECT_EQ(order, (std::vector<int>{1, 2, 3}));
}

TEST(TimerThreadTest, CancelledCallbackNeverRuns) {
  TimerThread timers;
  bool ran = false;
  const TimerId id = timers.Schedule(absl::Hours(1), [&] { ran = true; });
  EXPECT_NE(id, 0u);
  EXPECT_TRUE(timers.Cancel(id));
  EXPECT_FALSE(timers.Cancel(id));  // already gone
  timers.Stop();
  EXPECT_FALSE(ran);
}

TEST(TimerThreadTest, CancelAfterRunReturnsFalse) {
  TimerThread timers;
  absl::Notification ran;
  const TimerId id = timers.Schedule(absl::ZeroDuration(), [&] { ran.Notify(); });
  ASSERT_TRUE(ran.WaitForNotificationWithTimeout(absl::Seconds(10)));
  EXPECT_FALSE(timers.Cancel(id));
}

TEST(TimerThreadTest, StopDropsPendingAndRefusesNew) {
  TimerThread timers;
  bool ran = false;
  timers.Schedule(absl::Hours(1), [&] { ran = true; });
  timers.Stop();
  timers.Stop();  // idempotent
  EXPECT_EQ(timers.Schedule(absl::ZeroDuration(), [&] { ran = true; }), 0u);
  EXPECT_FALSE(ran);
}

TEST(TimerThreadTest, EarlierTimerScheduledLaterRunsFirst) {
  TimerThread timers;
  absl::Notification early;
  bool late_ran = false;
  timers.Schedule(absl::Hours(1), [&] { late_ran = true; });
  timers.Schedule(absl::Milliseconds(1), [&] { early.Notify(); });
  EXPECT_TRUE(early.WaitForNotificationWithTimeout(absl::Seconds(10)));
  EXPECT_FALSE(late_ran);
}

}  // namespace
}  // namespace cairn::planner
