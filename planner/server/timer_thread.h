// planner/server/timer_thread.h — runs short callbacks at a later time on one background thread.
//
// The callback API must never block a gRPC thread, so anything that waits (Rendezvous.Wait's
// timeout, a search's time limit) schedules a callback here instead of sleeping:
//
//   TimerThread timers;
//   TimerId id = timers.Schedule(absl::Seconds(5), [] { /* complete the call with a timeout */ });
//   timers.Cancel(id);   // true if it had not run yet
//
// Times are real (monotonic) time, not a Clock: they bound waits, they are not recorded anywhere.
// Callbacks run one at a time on the timer thread and must be short and non-blocking.
// Thread-safe; the destructor calls Stop().
#ifndef CAIRN_PLANNER_SERVER_TIMER_THREAD_H_
#define CAIRN_PLANNER_SERVER_TIMER_THREAD_H_

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <thread>
#include <utility>

#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace cairn::planner {

using TimerId = uint64_t;  // 0 is never a valid id

class TimerThread {
 public:
  TimerThread();
  ~TimerThread();
  TimerThread(const TimerThread&) = delete;
  TimerThread& operator=(const TimerThread&) = delete;

  // Runs `fn` on the timer thread once `delay` has passed (delay <= 0: as soon as possible).
  // After Stop() the callback is dropped and 0 returned.
  TimerId Schedule(absl::Duration delay, std::function<void()> fn);
  // Removes a pending callback; true if it was pending (it will not run), false if it already ran,
  // is running or never existed.
  bool Cancel(TimerId id);
  // Drops every pending callback without running it and joins the thread. Idempotent.
  void Stop();

 private:
  using SteadyTime = std::chrono::steady_clock::time_point;
  void Loop();

  absl::Mutex mu_;
  bool stopped_ ABSL_GUARDED_BY(mu_) = false;
  TimerId next_id_ ABSL_GUARDED_BY(mu_) = 1;
  // Ordered by (due time, id).
  std::map<std::pair<SteadyTime, TimerId>, std::function<void()>> pending_ ABSL_GUARDED_BY(mu_);
  std::map<TimerId, SteadyTime> due_ ABSL_GUARDED_BY(mu_);
  std::thread thread_;
};

}  // namespace cairn::planner

#endif  // CAIRN_PLANNER_SERVER_TIMER_THREAD_H_
