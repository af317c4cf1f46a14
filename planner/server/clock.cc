#include "planner/server/clock.h"

namespace cairn::planner {

const Clock& RealClock::Get() {
  static const RealClock* const clock = new RealClock();
  return *clock;
}

std::string Rfc3339(absl::Time t) {
  return absl::FormatTime("%Y-%m-%dT%H:%M:%E6SZ", t, absl::UTCTimeZone());
}

}  // namespace cairn::planner
