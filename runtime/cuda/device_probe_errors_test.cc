// Runs on every machine (CI has no GPU): checks how the probe reports what it cannot do. Without a
// device ProbeDevices must fail with FailedPrecondition "no CUDA device"; with one it must succeed.
#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "runtime/cuda/device_probe.h"

namespace cairn::runtime::cuda {
namespace {

using ::testing::HasSubstr;

TEST(DeviceProbeErrorsTest, NoDeviceIsFailedPreconditionElseSuccess) {
  const absl::StatusOr<std::vector<DeviceInfo>> devices = ProbeDevices();
  if (devices.ok()) {
    EXPECT_GE(devices->size(), 1u);
  } else {
    EXPECT_EQ(devices.status().code(), absl::StatusCode::kFailedPrecondition) << devices.status();
    EXPECT_THAT(std::string(devices.status().message()), HasSubstr("no CUDA device"));
  }
}

TEST(DeviceProbeErrorsTest, RejectsNonPositiveBytes) {
  const absl::StatusOr<double> gbps = MeasureCopyBandwidth(0, 0);
  EXPECT_EQ(gbps.status().code(), absl::StatusCode::kInvalidArgument) << gbps.status();
  EXPECT_THAT(std::string(gbps.status().message()), HasSubstr("bytes must be positive"));
}

TEST(DeviceProbeErrorsTest, RejectsDeviceOutOfRange) {
  const absl::StatusOr<double> gbps = MeasureCopyBandwidth(1 << 20, 1024);
  ASSERT_FALSE(gbps.ok());
  // InvalidArgument where devices exist; FailedPrecondition (no device at all) elsewhere.
  EXPECT_TRUE(absl::IsInvalidArgument(gbps.status()) || absl::IsFailedPrecondition(gbps.status()))
      << gbps.status();
}

}  // namespace
}  // namespace cairn::runtime::cuda
