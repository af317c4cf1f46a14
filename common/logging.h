// common/logging.h — minimal leveled logging to stderr and invariant checks.
//
// Debian's Abseil has no absl/log, so Cairn keeps a tiny logger of its own:
//
//   cairn::SetLogLevel(cairn::LogLevel::kInfo);
//   CAIRN_LOG(INFO) << "searched " << n << " plans";
//   CAIRN_CHECK(stage < num_stages) << "stage out of range";   // our own invariants only
//
// CAIRN_CHECK aborts with the message: use it for bugs, never for user input (return a Status there).
// Thread-safe: each message is written with one call.
#ifndef CAIRN_COMMON_LOGGING_H_
#define CAIRN_COMMON_LOGGING_H_

#include <sstream>
#include <string>

#include "absl/strings/string_view.h"

namespace cairn {

enum class LogLevel { kDebug = 0, kInfo = 1, kWarning = 2, kError = 3 };

void SetLogLevel(LogLevel level);
LogLevel GetLogLevel();
// Parses "debug", "info", "warning", "error"; false on anything else.
bool ParseLogLevel(absl::string_view text, LogLevel* level);

namespace internal {

class LogMessage {
 public:
  LogMessage(LogLevel level, const char* file, int line, bool fatal = false);
  ~LogMessage();
  std::ostream& stream() { return stream_; }

 private:
  LogLevel level_;
  bool fatal_;
  std::ostringstream stream_;
};

// Swallows the stream when a message is disabled.
struct LogVoidify {
  void operator&(std::ostream&) {}
};

}  // namespace internal
}  // namespace cairn

#define CAIRN_LOG_LEVEL_DEBUG ::cairn::LogLevel::kDebug
#define CAIRN_LOG_LEVEL_INFO ::cairn::LogLevel::kInfo
#define CAIRN_LOG_LEVEL_WARNING ::cairn::LogLevel::kWarning
#define CAIRN_LOG_LEVEL_ERROR ::cairn::LogLevel::kError

#define CAIRN_LOG(severity)                                              \
  (CAIRN_LOG_LEVEL_##severity < ::cairn::GetLogLevel())                  \
      ? (void)0                                                          \
      : ::cairn::internal::LogVoidify() &                                \
            ::cairn::internal::LogMessage(CAIRN_LOG_LEVEL_##severity,    \
                                          __FILE__, __LINE__)            \
                .stream()

#define CAIRN_CHECK(condition)                                                      \
  (condition) ? (void)0                                                             \
              : ::cairn::internal::LogVoidify() &                                   \
                    ::cairn::internal::LogMessage(::cairn::LogLevel::kError,        \
                                                  __FILE__, __LINE__, true)         \
                            .stream()                                               \
                        << "Check failed: " #condition " "

#endif  // CAIRN_COMMON_LOGGING_H_
