// Runs the backend parity suite (runtime/compute/testing/backend_ops_test_suite.h) on the CPU
// backend: every operation against the double-precision oracle (relative error < 1e-5) and against
// finite differences.
#include "runtime/compute/cpu/cpu_backend.h"

#include <memory>

#include "gtest/gtest.h"
#include "runtime/compute/testing/backend_ops_test_suite.h"

namespace cairn::runtime::testing {
namespace {

INSTANTIATE_TEST_SUITE_P(Cpu, BackendOpsTest,
                         ::testing::Values(BackendUnderTest{
                             "cpu", [] { return std::make_unique<CpuBackend>(); }, Tolerances{}}),
                         BackendUnderTestName);

TEST(CpuBackendTest, ReportsItsNameAndDtype) {
  CpuBackend cpu;
  EXPECT_EQ(cpu.name(), "cpu");
  EXPECT_EQ(cpu.working_dtype(), DType::kFloat32);
  EXPECT_STREQ(DTypeName(cpu.working_dtype()), "f32");
}

}  // namespace
}  // namespace cairn::runtime::testing
