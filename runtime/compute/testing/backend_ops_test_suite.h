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
// A bf16 backend passes looser tolerances (and, when its working tensors stop being float, the
// suite converts at upload/download: that is the one place to change).
//
// Adding an operation: add it to compute_backend.h, its oracle to reference/reference_ops.h (with a
// finite-difference test in reference/reference_ops_test.cc), and here a TEST_P comparing the
// backend with the oracle (forward and backward) plus one finite-difference TEST_P; every backend
// then runs them.
#ifndef CAIRN_RUNTIME_COMPUTE_TESTING_BACKEND_OPS_TEST_SUITE_H_
#define CAIRN_RUNTIME_COMPUTE_TESTING_BACKEND_OPS_TEST_SUITE_H_

#include <functional>
#include <memory>
#include <ostream>
#include <string>

#include "gtest/gtest.h"
#include "runtime/compute/compute_backend.h"

namespace cairn::runtime::testing {

// Relative-error bounds (see test_util.h's RelativeError) for one backend.
struct Tolerances {
  double forward = 1e-5;            // vs the double-precision oracle
  double backward = 1e-5;           // vs the double-precision oracle
  double finite_difference = 1e-3;  // vs central differences of the backend's forward (step 1e-2)
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

 private:
  std::unique_ptr<ComputeBackend> backend_;
};

}  // namespace cairn::runtime::testing

#endif  // CAIRN_RUNTIME_COMPUTE_TESTING_BACKEND_OPS_TEST_SUITE_H_
