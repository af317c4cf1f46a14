// The backend parity suite (runtime/compute/testing/backend_ops_test_suite.h) on the CUDA backend
// built for the CPU (//runtime/compute/cuda:cuda_backend_emulated): the same kernel source as the
// GPU build, run by the SIMT emulator (simt_emulator.h: barrier divergence, launch limits, and for
// the flash kernels shared-memory races are reported as launch failures), with the CUDA runtime
// and cuBLASLt emulated from their documented semantics. No GPU needed: runs in CI.
//
// The tolerances are the GPU test's (cuda_backend_test.cc says why each value). What this run
// cannot show: cuBLASLt's own kernels and heuristics, CUB's sort (replaced by std::stable_sort),
// timing, occupancy and register limits, and hardware effects (the emulated mma sums in k order).
#include <memory>

#include "common/logging.h"
#include "gtest/gtest.h"
#include "runtime/compute/cuda/cuda_backend.h"
#include "runtime/compute/testing/backend_ops_test_suite.h"

namespace cairn::runtime::testing {
namespace {

Tolerances CudaTolerances() {
  Tolerances t;
  t.forward = 1e-2;
  t.backward = 1e-2;
  t.f32 = 1e-5;
  t.attention_forward = 1e-2;
  t.attention_backward = 2e-2;
  t.finite_difference = std::nullopt;
  t.identity = 1e-2;
  return t;
}

std::function<std::unique_ptr<ComputeBackend>()> Make(CudaBackendOptions options) {
  return [options]() -> std::unique_ptr<ComputeBackend> {
    auto backend = CudaBackend::Create(0, options);
    CAIRN_CHECK(backend.ok()) << backend.status();
    return std::move(*backend);
  };
}

CudaBackendOptions SimpleKernels() {
  CudaBackendOptions options;
  options.attention = CudaBackendOptions::Attention::kSimple;
  options.matmul = CudaBackendOptions::Matmul::kSimple;
  return options;
}

INSTANTIATE_TEST_SUITE_P(
    EmulatedCuda, BackendOpsTest,
    ::testing::Values(BackendUnderTest{"cuda", Make(CudaBackendOptions()), CudaTolerances()},
                      BackendUnderTest{"cuda_simple_kernels", Make(SimpleKernels()),
                                       CudaTolerances()}),
    BackendUnderTestName);

}  // namespace
}  // namespace cairn::runtime::testing
