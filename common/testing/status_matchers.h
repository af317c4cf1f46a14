// common/testing/status_matchers.h — GoogleTest matchers for absl::Status / StatusOr (Debian's Abseil
// has none).
//
//   EXPECT_OK(store.Put(x));
//   ASSERT_OK_AND_ASSIGN(Plan plan, Search(request));
//   EXPECT_THAT(Parse("x"), StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("unknown")));
#ifndef CAIRN_COMMON_TESTING_STATUS_MATCHERS_H_
#define CAIRN_COMMON_TESTING_STATUS_MATCHERS_H_

#include <ostream>
#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace cairn::testing {

inline const absl::Status& GetStatus(const absl::Status& s) { return s; }
template <typename T>
const absl::Status& GetStatus(const absl::StatusOr<T>& s) {
  return s.status();
}

MATCHER_P2(StatusIs, code, message_matcher, "") {
  const absl::Status& s = ::cairn::testing::GetStatus(arg);
  *result_listener << "status is " << s;
  return s.code() == code &&
         ::testing::ExplainMatchResult(message_matcher, std::string(s.message()), result_listener);
}

MATCHER(IsOk, "") {
  const absl::Status& s = ::cairn::testing::GetStatus(arg);
  *result_listener << "status is " << s;
  return s.ok();
}

}  // namespace cairn::testing

#define EXPECT_OK(expr) EXPECT_THAT((expr), ::cairn::testing::IsOk())
#define ASSERT_OK(expr) ASSERT_THAT((expr), ::cairn::testing::IsOk())

#define CAIRN_TESTING_CONCAT_INNER_(a, b) a##b
#define CAIRN_TESTING_CONCAT_(a, b) CAIRN_TESTING_CONCAT_INNER_(a, b)
#define ASSERT_OK_AND_ASSIGN(lhs, expr)                                              \
  auto CAIRN_TESTING_CONCAT_(statusor_, __LINE__) = (expr);                          \
  ASSERT_TRUE(CAIRN_TESTING_CONCAT_(statusor_, __LINE__).ok())                       \
      << CAIRN_TESTING_CONCAT_(statusor_, __LINE__).status();                        \
  lhs = std::move(CAIRN_TESTING_CONCAT_(statusor_, __LINE__)).value()

#endif  // CAIRN_COMMON_TESTING_STATUS_MATCHERS_H_
