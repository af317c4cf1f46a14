#include <string>

#include "common/collective_proto.h"
#include "common/logging.h"
#include "common/status_macros.h"
#include "common/testing/status_matchers.h"
#include "common/units.h"

namespace cairn {
namespace {

using ::cairn::testing::StatusIs;
using ::testing::HasSubstr;

absl::StatusOr<int> Half(int x) {
  if (x % 2 != 0) return absl::InvalidArgumentError("odd: " + std::to_string(x));
  return x / 2;
}

absl::StatusOr<int> Quarter(int x) {
  CAIRN_ASSIGN_OR_RETURN(int h, Half(x));
  CAIRN_ASSIGN_OR_RETURN(int q, Half(h));
  return q;
}

absl::Status CheckEven(int x) {
  CAIRN_RETURN_IF_ERROR(Half(x).status());
  return absl::OkStatus();
}

TEST(StatusMacrosTest, PropagatesFirstError) {
  EXPECT_EQ(Quarter(8).value(), 2);
  EXPECT_THAT(Quarter(6), StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("odd: 3")));
  EXPECT_OK(CheckEven(4));
  EXPECT_THAT(CheckEven(5), StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("odd: 5")));
}

TEST(UnitsTest, FormatsHumanReadable) {
  EXPECT_EQ(FormatBytes(GiB(1.5)), "1.50 GiB");
  EXPECT_EQ(FormatBytes(MiB(512)), "512.0 MiB");
  EXPECT_EQ(FormatBytes(96), "96 B");
  EXPECT_EQ(FormatSeconds(1.2345), "1.234 s");  // %.3f rounds half to even in binary
  EXPECT_EQ(FormatSeconds(0.0123), "12.30 ms");
  EXPECT_EQ(FormatSeconds(45.6e-6), "45.6 us");
  EXPECT_EQ(FormatCount(1234567), "1.23 M");
  EXPECT_DOUBLE_EQ(TFlops(989), 989e12);
  EXPECT_DOUBLE_EQ(GBps(50), 50e9);
}

TEST(CollectiveProtoTest, NamesEveryOpAndSaysWhenItIsUnspecified) {
  for (CollectiveOp op : {CollectiveOp::kAllReduce, CollectiveOp::kAllGather,
                          CollectiveOp::kReduceScatter, CollectiveOp::kAllToAll,
                          CollectiveOp::kSendRecv}) {
    EXPECT_STREQ(ToString(ToProto(op)), ToString(op));
  }
  EXPECT_STREQ(ToString(cairn::v1::COLLECTIVE_OP_SEND_RECV), "send_recv");
  EXPECT_STREQ(ToString(cairn::v1::COLLECTIVE_OP_UNSPECIFIED), "unspecified");
  EXPECT_STREQ(ToString(static_cast<cairn::v1::CollectiveOp>(99)), "unspecified");
}

TEST(LoggingTest, ParsesLevels) {
  LogLevel level;
  EXPECT_TRUE(ParseLogLevel("INFO", &level));
  EXPECT_EQ(level, LogLevel::kInfo);
  EXPECT_FALSE(ParseLogLevel("loud", &level));
}

TEST(LoggingDeathTest, CheckAbortsWithMessage) {
  EXPECT_DEATH(CAIRN_CHECK(1 + 1 == 3) << "arithmetic", "Check failed: 1 \\+ 1 == 3 arithmetic");
}

}  // namespace
}  // namespace cairn
