// runtime/comm/testing/backends.h — every Communicator implementation behind one factory, so that a
// test can run the same checks against each (communicator_parity_test.cc,
// communicator_failure_test.cc), as ggml's test-backend-ops does for compute backends.
//
//   for (const CommBackend& backend : AllCommBackends()) {
//     ASSERT_OK_AND_ASSIGN(auto comms, backend.make_group(4, absl::Seconds(30)));
//     RunOnRanks(comms, [](int rank, Communicator& comm) { ... EXPECT_OK(comm.Barrier()); });
//   }
//
// To test a new implementation: add a CommBackend to AllCommBackends() in backends.cc whose make_group
// returns one communicator per rank, usable from one thread each. Every parity and failure test then
// runs on it.
#ifndef CAIRN_RUNTIME_COMM_TESTING_BACKENDS_H_
#define CAIRN_RUNTIME_COMM_TESTING_BACKENDS_H_

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "runtime/comm/communicator.h"

namespace cairn::runtime::testing {

using CommGroup = std::vector<std::unique_ptr<Communicator>>;

struct CommBackend {
  // Usable in test names: "local", "gloo_file", "gloo_tcp".
  std::string name;
  // A new group of `size` ranks (element r has rank r) whose operations time out after `timeout`.
  // FailedPrecondition when this machine cannot host it (the parity suite then skips the case).
  std::function<absl::StatusOr<CommGroup>(int size, absl::Duration timeout)> make_group;
  // Whether an fp32 kAvg is the exact sum divided by the group size (false for NCCL, which scales
  // each input by 1/size before summing).
  bool exact_float_avg = true;
};

// local: LocalCommunicator. gloo_file: GlooCommunicator, ranks as threads, FileStore in TEST_TMPDIR.
// gloo_tcp: GlooCommunicator, ranks as threads, TcpStore on a server bound to port 0.
// staged_local, staged_gloo: StagedCommunicator over the CPU backend's memory, wrapping local and
// gloo_file.
// Built with CAIRN_COMM_TEST_NCCL (target :test_backends_nccl, for GPU machines), instead only
// nccl: NcclCommunicator, ranks as threads with GPU r each (FailedPrecondition when there are fewer
// GPUs than ranks), wrapped in a StagedCommunicator with CudaStagingMemory so that callers pass host
// buffers (nccl/testing/cuda_staging_memory.h).
std::vector<CommBackend> AllCommBackends();
// The backend called `name`; aborts the test program if there is none.
const CommBackend& FindCommBackend(const std::string& name);

// Runs fn(rank, *comms[rank]) on one thread per rank and joins them all.
void RunOnRanks(const CommGroup& comms, const std::function<void(int rank, Communicator& comm)>& fn);

}  // namespace cairn::runtime::testing

#endif  // CAIRN_RUNTIME_COMM_TESTING_BACKENDS_H_
