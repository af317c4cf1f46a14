#include "common/units.h"

#include <cmath>

#include "absl/strings/str_format.h"

namespace cairn {

std::string FormatBytes(double bytes) {
  const double a = std::fabs(bytes);
  if (a >= kGiB) return absl::StrFormat("%.2f GiB", bytes / kGiB);
  if (a >= kMiB) return absl::StrFormat("%.1f MiB", bytes / kMiB);
  if (a >= kKiB) return absl::StrFormat("%.1f KiB", bytes / kKiB);
  return absl::StrFormat("%.0f B", bytes);
}

std::string FormatSeconds(double seconds) {
  const double a = std::fabs(seconds);
  if (a >= 1.0) return absl::StrFormat("%.3f s", seconds);
  if (a >= 1e-3) return absl::StrFormat("%.2f ms", seconds * 1e3);
  return absl::StrFormat("%.1f us", seconds * 1e6);
}

std::string FormatCount(double count) {
  const double a = std::fabs(count);
  if (a >= 1e9) return absl::StrFormat("%.2f G", count / 1e9);
  if (a >= 1e6) return absl::StrFormat("%.2f M", count / 1e6);
  if (a >= 1e3) return absl::StrFormat("%.1f k", count / 1e3);
  return absl::StrFormat("%.1f", count);
}

}  // namespace cairn
