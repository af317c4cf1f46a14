// Runs on every machine (CI has no GPU): checks how the probe reports what it cannot do. Without a
// device ProbeDevices must fail with FailedPrecondition "no CUDA device"; with one it must succeed.
#include <cstdint>
#include <vector>

#include "absl/status/status.h"
#include "common/testing/status_matchers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "runtime/cuda/device_probe.h"

namespace cairn::runtime::cuda {
namespace {

using ::cairn::testing::StatusIs;
using ::testing::HasSubstr;

TEST(DeviceProbeErrorsTest, NoDeviceIsFailedPreconditionElseSuccess) {
  absl::StatusOr<std::vector<DeviceInfo>> devices = ProbeDevices();
  if (devices.ok()) {
    EXPECT_GE(devices->size(), 1u);
  } else {
    EXPECT_THAT(devices, StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("no CUDA device")));
  }
}

TEST(DeviceProbeErrorsTest, RejectsNonPositiveBytes) {
  EXPECT_THAT(MeasureCopyBandwidth(0, 0), StatusIs(absl::StatusCode::kInvalidArgument,
                                                   HasSubstr("bytes must be positive")));
}

TEST(DeviceProbeErrorsTest, RejectsDeviceOutOfRange) {
  absl::StatusOr<double> gbps = MeasureCopyBandwidth(1 << 20, 1024);
  ASSERT_FALSE(gbps.ok());
  // InvalidArgument where devices exist; FailedPrecondition (no device at all) elsewhere.
  EXPECT_TRUE(absl::IsInvalidArgument(gbps.status()) || absl::IsFailedPrecondition(gbps.status()))
      << gbps.status();
}

}  // namespace
}  // namespace cairn::runtime::cuda
