// The backend parity suite (runtime/compute/testing/backend_ops_test_suite.h) on the CUDA backend
// built for the CPU (//runtime/compute/cuda:cuda_backend_emulated): the same kernel source as the
// GPU build, run by the SIMT emulator (simt_emulator.h: barrier divergence, launch limits, and for
// the flash kernels shared-memory races are reported as launch failures), with the CUDA runtime
// and cuBLASLt emulated from their documented semantics. No GPU needed: runs in CI.
//
// The tolerances are the GPU test's (cuda_suite_params.h says why each value). What this run
// cannot show: cuBLASLt's own kernels and heuristics, CUB's sort (replaced by std::stable_sort),
// timing, occupancy and register limits, and hardware effects (the emulated mma sums in k order).
#include <memory>

#include "common/logging.h"
#include "gtest/gtest.h"
#include "runtime/compute/cuda/cuda_backend.h"
#include "runtime/compute/cuda/cuda_suite_params.h"
#include "runtime/compute/testing/backend_ops_test_suite.h"

namespace cairn::runtime::testing {
namespace {

INSTANTIATE_TEST_SUITE_P(
    EmulatedCuda, BackendOpsTest,
    ::testing::Values(BackendUnderTest{"cuda", MakeCuda(CudaBackendOptions()), CudaTolerances()},
                      BackendUnderTest{"cuda_simple_kernels", MakeCuda(SimpleKernels()),
                                       CudaTolerances()}),
    BackendUnderTestName);

}  // namespace
}  // namespace cairn::runtime::testing
