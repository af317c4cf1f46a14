// planner/server/clock.h — the daemon's notion of "now", injectable so tests control time.
//
// Everything that records or compares wall-clock times (heartbeats, created_at, the agent sweeper)
// asks a Clock instead of calling absl::Now(), and formats times with Rfc3339():
//
//   const Clock& clock = RealClock::Get();
//   std::string now = Rfc3339(clock.Now());   // "2026-11-28T08:06:48.123456Z"
//
// Tests pass a FakeClock (planner/server/testing/fake_clock.h) and advance it by hand.
// Thread-safe.
#ifndef CAIRN_PLANNER_SERVER_CLOCK_H_
#define CAIRN_PLANNER_SERVER_CLOCK_H_

#include <string>

#include "absl/time/clock.h"
#include "absl/time/time.h"

namespace cairn::planner {

class Clock {
 public:
  virtual ~Clock() = default;
  virtual absl::Time Now() const = 0;
};

// absl::Now().
class RealClock final : public Clock {
 public:
  static const Clock& Get();
  absl::Time Now() const override { return absl::Now(); }
};

// RFC 3339 UTC with exactly six fractional digits ("2026-11-28T08:06:48.000000Z"): fixed width, so
// the strings order like the times they name (the store compares them as strings).
std::string Rfc3339(absl::Time t);

}  // namespace cairn::planner

#endif  // CAIRN_PLANNER_SERVER_CLOCK_H_
