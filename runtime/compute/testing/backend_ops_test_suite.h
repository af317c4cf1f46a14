// runtime/compute/testing/backend_ops_test_suite.h — the parity tests every ComputeBackend must
// pass (Cairn's version of ggml's test-backend-ops).
//
// Overview
// --------
// `BackendOpsTest` is a value-parameterised GoogleTest suite. Each case runs one operation of
// compute_backend.h on the backend under test, in the backend's own memory (Allocate / CopyToDevice
// / CopyToHost only), and checks it
//   * forward and backward against the naive double-precision oracle (reference/reference_ops.h) on
//     small random shapes with odd sizes: relative error (testing/test_util.h) below
//     `Tolerances::forward` / `backward`;
//   * backward against central finite differences of the backend's own forward on tiny shapes
//     (B=2, T=5, C=8, 2 heads, 1 kv head, ...): below `Tolerances::finite_difference`;
//   * the sharding identities the parallel engine relies on: attention over local head ranges
//     concatenates to the full attention, RoPE and learned positions on a sequence shard equal the
//     slice of the full result, vocab-parallel embedding and cross-entropy over two vocabulary
//     ranges reproduce the unsplit ones;
//   * AdamW against a step computed by hand, and the shape validation of the public boundary.
//
// Running it for a backend (the CPU backend does this in cpu/cpu_backend_test.cc):
//
//   INSTANTIATE_TEST_SUITE_P(
//       Cpu, BackendOpsTest,
//       ::testing::Values(BackendUnderTest{"cpu", [] { return std::make_unique<CpuBackend>(); },
//                                          Tolerances{}}),
//       BackendUnderTestName);
//
// and depend on //runtime/compute/testing:backend_ops_test_suite (alwayslink, so the TEST_Ps link).
// Working-dtype ("(w)") arguments live in WorkingBuffers (uploaded and read back as fp32 through
// ToWorking / FromWorking), fp32 ("(f32)") ones in DeviceBuffer<float>, exactly as
// compute_backend.h marks them, so one suite serves fp32 and bf16 backends; a bf16 backend passes
// looser tolerances.
//
// Adding an operation: add it to compute_backend.h, its oracle to reference/reference_ops.h (with a
// finite-difference test in reference/reference_ops_test.cc), and here a TEST_P comparing the
// backend with the oracle (forward and backward) plus one finite-difference TEST_P; every backend
// then runs them.
#ifndef CAIRN_RUNTIME_COMPUTE_TESTING_BACKEND_OPS_TEST_SUITE_H_
#define CAIRN_RUNTIME_COMPUTE_TESTING_BACKEND_OPS_TEST_SUITE_H_

#include <functional>
#include <memory>
#include <optional>
#include <ostream>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "runtime/compute/compute_backend.h"

namespace cairn::runtime::testing {

// Relative-error bounds (see test_util.h's RelativeError) for one backend. The oracle always runs
// on the inputs as the backend holds them (working-dtype inputs rounded first: test_util.h's
// RoundTo), so the bounds measure the backend's own arithmetic and output rounding. The defaults
// are the fp32 CPU backend's; a bf16 backend states its own values, with the reason for each, where
// it instantiates the suite (cuda/cuda_backend_test.cc).
struct Tolerances {
  double forward = 1e-5;   // forward outputs vs the double-precision oracle
  double backward = 1e-5;  // input and parameter gradients vs the double-precision oracle
  // Operations whose inputs and outputs are all fp32 on every backend (AdamW, Scale, NormSquared,
  // cross-entropy losses, fp32-output matmul): no working-dtype rounding anywhere.
  double f32 = 1e-5;
  double attention_forward = 1e-5;   // attention out and lse vs the oracle
  double attention_backward = 1e-5;  // attention dq, dk, dv vs the oracle
  // vs central differences of the backend's own forward (step 1e-2); std::nullopt skips those
  // cases (a bf16 forward cannot resolve a step of 1e-2 on values near 1).
  std::optional<double> finite_difference = 1e-3;
  // The sharding identities compare the backend with itself (e.g. a kv-head gradient summed over
  // two ranks vs computed at once). Exact up to fp32 rounding on an fp32 backend (the cases' own
  // bounds, 1e-7 or 1e-6); this raises those bounds for a backend that rounds partial results to
  // its working dtype.
  double identity = 0.0;
};

struct BackendUnderTest {
  std::string name;  // used in the test names: letters, digits, underscores
  std::function<std::unique_ptr<ComputeBackend>()> make;
  Tolerances tolerances;
};

// Test logs print the backend's name.
inline void PrintTo(const BackendUnderTest& backend, std::ostream* os) { *os << backend.name; }

// For INSTANTIATE_TEST_SUITE_P's name generator.
std::string BackendUnderTestName(const ::testing::TestParamInfo<BackendUnderTest>& info);

class BackendOpsTest : public ::testing::TestWithParam<BackendUnderTest> {
 protected:
  void SetUp() override;

  ComputeBackend& backend() { return *backend_; }
  const Tolerances& tolerances() const { return GetParam().tolerances; }
  // `v` as a working-dtype tensor holds it (rounded on a bf16 backend): inputs of (w) arguments
  // go through this, so that the oracle sees what the backend sees.
  std::vector<float> W(std::vector<float> v);

 private:
  std::unique_ptr<ComputeBackend> backend_;
};

}  // namespace cairn::runtime::testing

#endif  // CAIRN_RUNTIME_COMPUTE_TESTING_BACKEND_OPS_TEST_SUITE_H_
