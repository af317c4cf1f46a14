// common/units.h — unit constants and conversions. Cairn computes in seconds and bytes everywhere;
// these names make the few conversions at the edges (flags, tables, output) explicit.
//
//   int64_t budget_bytes = GiB(36);
//   double rate = TFlops(989);             // FLOP/s
//   std::string s = FormatBytes(bytes);    // "35.2 GiB"
#ifndef CAIRN_COMMON_UNITS_H_
#define CAIRN_COMMON_UNITS_H_

#include <cstdint>
#include <string>

namespace cairn {

inline constexpr double kKiB = 1024.0;
inline constexpr double kMiB = 1024.0 * 1024.0;
inline constexpr double kGiB = 1024.0 * 1024.0 * 1024.0;
inline constexpr double kGB = 1e9;

inline constexpr int64_t MiB(double n) { return static_cast<int64_t>(n * kMiB); }
inline constexpr int64_t GiB(double n) { return static_cast<int64_t>(n * kGiB); }
// Decimal units, as datasheets and nccl-tests use for rates.
inline constexpr double GBps(double n) { return n * 1e9; }      // bytes/s
inline constexpr double TFlops(double n) { return n * 1e12; }   // FLOP/s
inline constexpr double Micros(double n) { return n * 1e-6; }   // seconds
inline constexpr double Millis(double n) { return n * 1e-3; }   // seconds

// "1.50 GiB", "512.0 MiB", "96 B".
std::string FormatBytes(double bytes);
// "1.234 s", "12.3 ms", "45.6 us".
std::string FormatSeconds(double seconds);
// "1.23 M", "456.7 k" (for tokens/s and counts).
std::string FormatCount(double count);

}  // namespace cairn

#endif  // CAIRN_COMMON_UNITS_H_
