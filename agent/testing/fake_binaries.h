// agent/testing/fake_binaries.h — stand-ins for cairn-train and cairn-probe in the agent's unit
// tests: small shell scripts written under TEST_TMPDIR that behave as the real binaries do at the
// agent's interface (arguments, environment, metrics file, report file, exit status), steered by
// the FAKE_MODE environment variable. The real binaries run in tests/agent_e2e_test.cc.
//
//   fake train: FAKE_MODE=ok (write --steps metrics lines, exit 0) | fail (rank FAKE_FAIL_RANK
//               prints "injected failure" and exits 3, the others hang) | hang. Prints its launch
//               environment first.
//   fake probe: writes a ProbeReport JSON with one GEMM and one llama-tiny layer timing.
#ifndef CAIRN_AGENT_TESTING_FAKE_BINARIES_H_
#define CAIRN_AGENT_TESTING_FAKE_BINARIES_H_

#include <string>

namespace cairn::agent {

// Paths of the executable scripts (written once per process).
std::string FakeTrainBinary();
std::string FakeProbeBinary();

}  // namespace cairn::agent

#endif  // CAIRN_AGENT_TESTING_FAKE_BINARIES_H_
