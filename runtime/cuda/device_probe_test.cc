// Needs a CUDA device (tagged "gpu": CI skips it; run it on a GPU machine, see docs/building.md).
#include "runtime/cuda/device_probe.h"

#include <cstdint>
#include <vector>

#include "absl/status/statusor.h"
#include "gtest/gtest.h"

namespace cairn::runtime::cuda {
namespace {

TEST(DeviceProbeTest, FindsAtLeastOneDeviceWithMemory) {
  const absl::StatusOr<std::vector<DeviceInfo>> devices = ProbeDevices();
  ASSERT_TRUE(devices.ok()) << devices.status();
  ASSERT_GE(devices->size(), 1u);
  for (int i = 0; i < static_cast<int>(devices->size()); ++i) {
    const DeviceInfo& d = (*devices)[i];
    EXPECT_EQ(d.index, i);
    EXPECT_FALSE(d.name.empty());
    EXPECT_GT(d.total_memory_bytes, 0);
    EXPECT_GT(d.sm_count, 0);
    EXPECT_GE(d.compute_capability_major, 7);
  }
}

// Only that a copy completes and yields a positive rate: timings are benchmark claims, not assertions.
TEST(DeviceProbeTest, MeasuresAPositiveCopyRate) {
  const absl::StatusOr<double> gbps = MeasureCopyBandwidth(0, int64_t{64} << 20);
  ASSERT_TRUE(gbps.ok()) << gbps.status();
  EXPECT_GT(*gbps, 0.0);
}

}  // namespace
}  // namespace cairn::runtime::cuda
