#include "planner/server/search_pool.h"

#include <atomic>
#include <thread>

#include "absl/synchronization/blocking_counter.h"
#include "absl/synchronization/notification.h"
#include "common/testing/status_matchers.h"
#include "gtest/gtest.h"

namespace cairn::planner {
namespace {

using ::cairn::testing::StatusIs;
using ::testing::HasSubstr;

std::function<void()> Nothing() { return nullptr; }

// A task that blocks its worker until `release` is notified.
PoolTask Blocking(absl::Notification* started, absl::Notification* release) {
  return {[started, release] {
            started->Notify();
            release->WaitForNotification();
            return std::function<void()>();
          },
          nullptr};
}

TEST(SearchPoolTest, RefusesBeyondQueueLimitWithActionableMessage) {
  SearchPool pool(/*workers=*/1, /*queue_limit=*/1);
  absl::Notification started, release;
  ASSERT_OK(pool.Submit(Blocking(&started, &release)).status());
  started.WaitForNotification();  // the worker is busy
  ASSERT_OK(pool.Submit({Nothing, nullptr}).status());  // waits in the queue
  EXPECT_THAT(pool.Submit({Nothing, nullptr}),
              StatusIs(absl::StatusCode::kResourceExhausted,
                       HasSubstr("--search-queue 1")));
  EXPECT_EQ(pool.running(), 1);
  EXPECT_EQ(pool.queued(), 1);
  release.Notify();
}

TEST(SearchPoolTest, RemoveRunsDropInsteadOfRun) {
  SearchPool pool(1, 4);
  absl::Notification started, release;
  ASSERT_OK(pool.Submit(Blocking(&started, &release)).status());
  started.WaitForNotification();
  bool ran = false, dropped = false;
  ASSERT_OK_AND_ASSIGN(TaskId id, pool.Submit({[&] {
                                                 ran = true;
                                                 return std::function<void()>();
                                               },
                                               [&] { dropped = true; }}));
  EXPECT_TRUE(pool.Remove(id));
  EXPECT_FALSE(pool.Remove(id));
  EXPECT_TRUE(dropped);
  release.Notify();
  pool.Shutdown();
  EXPECT_FALSE(ran);
}

TEST(SearchPoolTest, ShutdownDropsQueuedWaitsForRunningAndRefusesNew) {
  SearchPool pool(1, 4);
  absl::Notification started, release;
  std::atomic<bool> finished{false};
  ASSERT_OK(pool.Submit({[&] {
                           started.Notify();
                           release.WaitForNotification();
                           finished = true;
                           return std::function<void()>();
                         },
                         nullptr})
                .status());
  started.WaitForNotification();
  absl::BlockingCounter dropped(2);
  std::atomic<int> ran{0};
  ASSERT_OK(pool.Submit({[&] {
                           ++ran;
                           return std::function<void()>();
                         },
                         [&] { dropped.DecrementCount(); }}).status());
  ASSERT_OK(pool.Submit({[&] {
                           ++ran;
                           return std::function<void()>();
                         },
                         [&] { dropped.DecrementCount(); }}).status());
  // Shutdown drops the queue at once, then waits for the running task.
  std::thread shutdown([&] { pool.Shutdown(); });
  dropped.Wait();
  EXPECT_FALSE(finished);
  release.Notify();
  shutdown.join();
  EXPECT_TRUE(finished);
  EXPECT_EQ(ran, 0);
  EXPECT_THAT(pool.Submit({Nothing, nullptr}),
              StatusIs(absl::StatusCode::kUnavailable, HasSubstr("shutting down")));
}

TEST(SearchPoolTest, IdleWorkersDoNotCountAgainstTheQueue) {
  SearchPool pool(/*workers=*/2, /*queue_limit=*/0);
  absl::Notification s1, s2, release;
  ASSERT_OK(pool.Submit(Blocking(&s1, &release)).status());
  s1.WaitForNotification();
  ASSERT_OK(pool.Submit(Blocking(&s2, &release)).status());
  s2.WaitForNotification();
  EXPECT_THAT(pool.Submit({Nothing, nullptr}),
              StatusIs(absl::StatusCode::kResourceExhausted, HasSubstr("2 searches running")));
  release.Notify();
}

}  // namespace
}  // namespace cairn::planner

namespace cairn::planner {
namespace {

TEST(SearchPoolTest, ContinuationRunsAfterTheWorkerIsFree) {
  SearchPool pool(/*workers=*/1, /*queue_limit=*/0);
  absl::Notification done;
  int running_in_continuation = -1;
  ASSERT_OK(pool.Submit({[&] {
                           return std::function<void()>([&] {
                             running_in_continuation = pool.running();
                             done.Notify();
                           });
                         },
                         nullptr})
                .status());
  done.WaitForNotification();
  EXPECT_EQ(running_in_continuation, 0);
}

}  // namespace
}  // namespace cairn::planner
