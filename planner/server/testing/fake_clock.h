// planner/server/testing/fake_clock.h — a Clock that only moves when a test moves it.
//
//   FakeClock clock(absl::FromUnixSeconds(1'800'000'000));
//   AgentsLogic agents(&store, &clock, ...);
//   clock.Advance(absl::Seconds(31));
//   agents.Sweep();   // now sees 31 s without a heartbeat
//
// Thread-safe.
#ifndef CAIRN_PLANNER_SERVER_TESTING_FAKE_CLOCK_H_
#define CAIRN_PLANNER_SERVER_TESTING_FAKE_CLOCK_H_

#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "planner/server/clock.h"

namespace cairn::planner::testing {

class FakeClock final : public Clock {
 public:
  explicit FakeClock(absl::Time start = absl::FromUnixSeconds(1'800'000'000)) : now_(start) {}
  absl::Time Now() const override {
    absl::MutexLock lock(&mu_);
    return now_;
  }
  void Advance(absl::Duration d) {
    absl::MutexLock lock(&mu_);
    now_ += d;
  }
  void Set(absl::Time t) {
    absl::MutexLock lock(&mu_);
    now_ = t;
  }

 private:
  mutable absl::Mutex mu_;
  absl::Time now_;
};

}  // namespace cairn::planner::testing

#endif  // CAIRN_PLANNER_SERVER_TESTING_FAKE_CLOCK_H_
