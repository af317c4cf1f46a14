// Runs the backend parity suite (runtime/compute/testing/backend_ops_test_suite.h) on the CUDA
// backend, once per kernel choice: the production configuration (cuBLASLt, attention kAuto: the
// flash kernels for head dims 64 and 128, the simple kernel for the suite's other head dims), and
// the simple kernels everywhere (the correctness baselines). Needs a GPU (tag "gpu").
//
// Tolerances: cuda_suite_params.h says why each value.
#include "runtime/compute/cuda/cuda_backend.h"

#include <memory>

#include "runtime/compute/cuda/cuda_suite_params.h"

#include "common/logging.h"
#include "gtest/gtest.h"
#include "runtime/compute/testing/backend_ops_test_suite.h"

namespace cairn::runtime::testing {
namespace {

INSTANTIATE_TEST_SUITE_P(
    Cuda, BackendOpsTest,
    ::testing::Values(BackendUnderTest{"cuda", MakeCuda(CudaBackendOptions()), CudaTolerances()},
                      BackendUnderTest{"cuda_simple_kernels", MakeCuda(SimpleKernels()),
                                       CudaTolerances()}),
    BackendUnderTestName);

TEST(CudaBackendTest, ReportsItsNameDtypeAndDevice) {
  auto backend = CudaBackend::Create(0);
  ASSERT_TRUE(backend.ok()) << backend.status();
  EXPECT_EQ((*backend)->name(), "cuda");
  EXPECT_EQ((*backend)->working_dtype(), DType::kBFloat16);
  EXPECT_STREQ(DTypeName((*backend)->working_dtype()), "bf16");
  EXPECT_NE((*backend)->default_stream(), nullptr);
  std::printf("device 0: %s\n", (*backend)->device_name().c_str());
}

}  // namespace
}  // namespace cairn::runtime::testing
