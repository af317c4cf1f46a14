#include "planner/server/clock.h"

namespace cairn::planner {

const Clock& RealClock::Get() {
  static const RealClock* const clock = new RealClock();
  return *clock;
}

std::string Rfc3339(absl::Time t) {
  return absl::FormatTime("%Y-%m-%dT%H:%M:%E6SZ", t, absl::UTCTimeZone());
}

absl::Time ParseRfc3339(const std::string& text) {
  absl::Time t;
  std::string err;
  if (text.empty() || !absl::ParseTime(absl::RFC3339_full, text, &t, &err)) {
    return absl::InfinitePast();
  }
  return t;
}

}  // namespace cairn::planner
