// common/status_macros.h — early-return helpers for absl::Status / absl::StatusOr.
//
// Debian's Abseil (20220623) ships without RETURN_IF_ERROR and ASSIGN_OR_RETURN; these are ours.
//
//   absl::Status Load(const std::string& path) {
//     CAIRN_RETURN_IF_ERROR(CheckReadable(path));
//     CAIRN_ASSIGN_OR_RETURN(std::string text, ReadFile(path));
//     ...
//   }
//
// Both evaluate their argument exactly once. CAIRN_ASSIGN_OR_RETURN declares (or assigns) its left-hand
// side in the enclosing scope, so it cannot be used as the single statement of an unbraced `if`.
#ifndef CAIRN_COMMON_STATUS_MACROS_H_
#define CAIRN_COMMON_STATUS_MACROS_H_

#include "absl/status/status.h"
#include "absl/status/statusor.h"

#define CAIRN_RETURN_IF_ERROR(expr)                \
  do {                                             \
    const absl::Status cairn_status_ = (expr);     \
    if (!cairn_status_.ok()) return cairn_status_; \
  } while (0)

#define CAIRN_STATUS_CONCAT_INNER_(a, b) a##b
#define CAIRN_STATUS_CONCAT_(a, b) CAIRN_STATUS_CONCAT_INNER_(a, b)

#define CAIRN_ASSIGN_OR_RETURN(lhs, expr) \
  CAIRN_ASSIGN_OR_RETURN_IMPL_(CAIRN_STATUS_CONCAT_(cairn_statusor_, __LINE__), lhs, expr)

#define CAIRN_ASSIGN_OR_RETURN_IMPL_(statusor, lhs, expr) \
  auto statusor = (expr);                                 \
  if (!statusor.ok()) return statusor.status();           \
  lhs = std::move(statusor).value()

#endif  // CAIRN_COMMON_STATUS_MACROS_H_
