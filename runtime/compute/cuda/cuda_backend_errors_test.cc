// Runs on every machine with the CUDA toolkit, GPU or not (tag "cuda" only): CudaBackend::Create
// must fail cleanly where there is no usable device, and succeed where there is one.
#include <memory>

#include "absl/status/status.h"
#include "common/testing/status_matchers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "runtime/compute/cuda/cuda_backend.h"

namespace cairn::runtime {
namespace {

using ::cairn::testing::StatusIs;
using ::testing::HasSubstr;

TEST(CudaBackendErrorsTest, CreateFailsCleanlyWithoutDeviceElseSucceeds) {
  absl::StatusOr<std::unique_ptr<CudaBackend>> backend = CudaBackend::Create(0);
  if (backend.ok()) {
    EXPECT_EQ((*backend)->name(), "cuda");
    EXPECT_EQ((*backend)->working_dtype(), DType::kBFloat16);
    EXPECT_NE((*backend)->default_stream(), nullptr);
    EXPECT_FALSE((*backend)->device_name().empty());
  } else {
    // No driver (development machines: cudaErrorInsufficientDriver) or no device.
    EXPECT_TRUE(absl::IsFailedPrecondition(backend.status()) ||
                absl::IsUnavailable(backend.status()))
        << backend.status();
  }
}

TEST(CudaBackendErrorsTest, AbsentDeviceIndexIsFailedPrecondition) {
  EXPECT_THAT(CudaBackend::Create(1 << 20),
              StatusIs(absl::StatusCode::kFailedPrecondition, ::testing::_));
  EXPECT_THAT(CudaBackend::Create(-1),
              StatusIs(absl::StatusCode::kFailedPrecondition, ::testing::_));
}

TEST(CudaBackendErrorsTest, RejectsBadOptions) {
  CudaBackendOptions options;
  options.cublas_workspace_bytes = -1;
  EXPECT_THAT(CudaBackend::Create(0, options),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("cublas_workspace_bytes")));
}

TEST(CudaBackendErrorsTest, KernelNames) {
  EXPECT_STREQ(AttentionKernelName(CudaBackendOptions::Attention::kAuto), "auto");
  EXPECT_STREQ(AttentionKernelName(CudaBackendOptions::Attention::kSimple), "simple");
  EXPECT_STREQ(AttentionKernelName(CudaBackendOptions::Attention::kFlash), "flash");
  EXPECT_STREQ(MatmulKernelName(CudaBackendOptions::Matmul::kCublasLt), "cublaslt");
  EXPECT_STREQ(MatmulKernelName(CudaBackendOptions::Matmul::kSimple), "simple");
}

}  // namespace
}  // namespace cairn::runtime
