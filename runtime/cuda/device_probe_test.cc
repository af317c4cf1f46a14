// Needs a CUDA device (tagged "gpu": CI skips it; run it on a GPU machine, see docs/building.md).
#include "runtime/cuda/device_probe.h"

#include <cstdint>
#include <vector>

#include "common/testing/status_matchers.h"
#include "gtest/gtest.h"

namespace cairn::runtime::cuda {
namespace {

TEST(DeviceProbeTest, FindsAtLeastOneDeviceWithMemory) {
  ASSERT_OK_AND_ASSIGN(std::vector<DeviceInfo> devices, ProbeDevices());
  ASSERT_GE(devices.size(), 1u);
  for (int i = 0; i < static_cast<int>(devices.size()); ++i) {
    EXPECT_EQ(devices[i].index, i);
    EXPECT_FALSE(devices[i].name.empty());
    EXPECT_GT(devices[i].total_memory_bytes, 0);
    EXPECT_GT(devices[i].sm_count, 0);
    EXPECT_GE(devices[i].compute_capability_major, 7);
  }
}

// Only that a copy completes and yields a positive rate: timings are benchmark claims, not assertions.
TEST(DeviceProbeTest, MeasuresAPositiveCopyRate) {
  ASSERT_OK_AND_ASSIGN(double gbps, MeasureCopyBandwidth(0, int64_t{64} << 20));
  EXPECT_GT(gbps, 0.0);
}

}  // namespace
}  // namespace cairn::runtime::cuda
