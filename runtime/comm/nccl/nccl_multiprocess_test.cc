// NcclCommunicator with ranks as real processes, one GPU each (fork; skipped when fewer than two GPUs
// are visible): collectives, stream-ordered point-to-point and sub-groups across processes; a peer
// that exits, and a peer that aborts, make the surviving rank fail within its timeout and stay
// failed. The GPUs are counted in a child process too: the test process itself never initialises
// CUDA, so that its forked ranks can.
#include <cuda_runtime.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "common/testing/status_matchers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "runtime/comm/file_store.h"
#include "runtime/comm/testing/fork_ranks.h"
#include "runtime/comm/nccl/nccl_communicator.h"
#include "runtime/comm/nccl/testing/cuda_staging_memory.h"
#include "runtime/compute/cuda/cuda_stream.h"

namespace cairn::runtime {
namespace {

using ::cairn::testing::StatusIs;
using ::testing::HasSubstr;

// GPUs visible to a process, counted in a child.
int GpuCount() {
  const pid_t pid = fork();
  if (pid == 0) _exit(std::min(testing::VisibleGpuCount(), 100));
  int status = 0;
  if (pid < 0 || waitpid(pid, &status, 0) != pid || !WIFEXITED(status)) return 0;
  return WEXITSTATUS(status);
}

std::string FreshDirectory() {
  static std::atomic<int> counter{0};
  const char* tmp = std::getenv("TEST_TMPDIR");
  return absl::StrCat(tmp != nullptr ? tmp : "/tmp", "/nccl-mp-", getpid(), "-", counter++);
}

// Runs body(rank, store) in `n` forked processes over one FileStore and returns each one's status
// (testing/fork_ranks.h).
std::vector<absl::Status> RunRanks(
    int n, const std::function<absl::Status(int rank, std::shared_ptr<Store> store)>& body) {
  const std::string dir = FreshDirectory();
  return ForkRanks(n, dir, [&](int rank) -> absl::Status {
    CAIRN_ASSIGN_OR_RETURN(std::unique_ptr<FileStore> store, FileStore::Open(dir));
    return body(rank, std::shared_ptr<Store>(std::move(store)));
  });
}

absl::Status Cuda(cudaError_t error, absl::string_view call) {
  if (error == cudaSuccess) return absl::OkStatus();
  return absl::InternalError(absl::StrCat(call, ": ", cudaGetErrorString(error)));
}

absl::StatusOr<std::unique_ptr<NcclCommunicator>> Join(int rank, int n,
                                                       std::shared_ptr<Store> store,
                                                       absl::Duration timeout) {
  NcclOptions options;
  options.device = rank;
  options.timeout = timeout;
  options.rendezvous_timeout = absl::Seconds(60);
  return NcclCommunicator::Create(rank, n, std::move(store), options);
}

// Fills `count` elements of T on the device with `value`, runs `op` on them and returns them.
template <typename T>
absl::StatusOr<std::vector<T>> RoundTrip(
    size_t count, T value, size_t out_count,
    const std::function<absl::Status(T* in, T* out)>& op) {
  T* in = nullptr;
  T* out = nullptr;
  CAIRN_RETURN_IF_ERROR(Cuda(cudaMalloc(&in, count * sizeof(T)), "cudaMalloc"));
  CAIRN_RETURN_IF_ERROR(Cuda(cudaMalloc(&out, out_count * sizeof(T)), "cudaMalloc"));
  std::vector<T> host(count, value);
  CAIRN_RETURN_IF_ERROR(
      Cuda(cudaMemcpy(in, host.data(), count * sizeof(T), cudaMemcpyHostToDevice), "cudaMemcpy"));
  CAIRN_RETURN_IF_ERROR(op(in, out));
  std::vector<T> result(out_count);
  CAIRN_RETURN_IF_ERROR(Cuda(
      cudaMemcpy(result.data(), out, out_count * sizeof(T), cudaMemcpyDeviceToHost), "cudaMemcpy"));
  (void)cudaFree(in);
  (void)cudaFree(out);
  return result;
}

absl::Status Expect(bool ok, absl::string_view what) {
  return ok ? absl::OkStatus() : absl::InternalError(absl::StrCat("wrong result: ", what));
}

TEST(NcclMultiprocessTest, CollectivesPointToPointAndSubGroupsAcrossProcesses) {
  const int gpus = GpuCount();
  if (gpus < 2) GTEST_SKIP() << "needs 2 GPUs, " << gpus << " visible";
  const int n = std::min(gpus, 8);
  const std::vector<absl::Status> results = RunRanks(n, [n](int rank, std::shared_ptr<Store> store)
                                                            -> absl::Status {
    CAIRN_ASSIGN_OR_RETURN(std::unique_ptr<NcclCommunicator> comm,
                           Join(rank, n, std::move(store), absl::Seconds(60)));
    Communicator& c = *comm;
    const size_t count = size_t{1} << 20;
    // f32 sum: every element is 1 + 2 + ... + n.
    CAIRN_ASSIGN_OR_RETURN(std::vector<float> sum,
                           RoundTrip<float>(count, rank + 1.0f, count, [&](float* in, float* out) {
                             return c.AllReduce(in, out, count);
                           }));
    CAIRN_RETURN_IF_ERROR(Expect(sum[count - 1] == n * (n + 1) / 2.0f, "f32 all-reduce"));
    // i64 max of rank x 2^40.
    CAIRN_ASSIGN_OR_RETURN(
        std::vector<int64_t> max,
        RoundTrip<int64_t>(count, int64_t{rank} << 40, count, [&](int64_t* in, int64_t* out) {
          return c.AllReduce(in, out, count, ReduceOp::kMax);
        }));
    CAIRN_RETURN_IF_ERROR(Expect(max[0] == int64_t{n - 1} << 40, "i64 max all-reduce"));
    // bf16 all-gather: chunk r holds r.
    CAIRN_ASSIGN_OR_RETURN(
        std::vector<BFloat16> gathered,
        RoundTrip<BFloat16>(1000, ToBFloat16(static_cast<float>(rank)), 1000 * n,
                            [&](BFloat16* in, BFloat16* out) {
                              return c.AllGather(in, out, 1000);
                            }));
    for (int r = 0; r < n; ++r) {
      CAIRN_RETURN_IF_ERROR(
          Expect(FromBFloat16(gathered[r * 1000 + 999]) == static_cast<float>(r), "all-gather"));
    }
    // Stream-ordered ring exchange: send to the next rank, receive from the previous one.
    cudaStream_t raw = nullptr;
    CAIRN_RETURN_IF_ERROR(Cuda(cudaStreamCreateWithFlags(&raw, cudaStreamNonBlocking), "stream"));
    Stream stream(raw);
    const int next = (rank + 1) % n;
    const int prev = (rank + n - 1) % n;
    CAIRN_ASSIGN_OR_RETURN(
        std::vector<int32_t> got,
        RoundTrip<int32_t>(count, rank * 7, count, [&](int32_t* in, int32_t* out) -> absl::Status {
          CAIRN_ASSIGN_OR_RETURN(auto recv, c.RecvAsync(out, count, prev, 1, &stream));
          CAIRN_ASSIGN_OR_RETURN(auto send, c.SendAsync(in, count, next, 1, &stream));
          CAIRN_RETURN_IF_ERROR(recv->WaitOn(&stream));
          CAIRN_RETURN_IF_ERROR(send->WaitOn(&stream));
          return Cuda(cudaStreamSynchronize(raw), "cudaStreamSynchronize");
        }));
    CAIRN_RETURN_IF_ERROR(Expect(got[count - 1] == prev * 7, "send/recv ring"));
    // Sub-groups: evens and odds; every rank calls Split for both lists.
    std::vector<int> evens, odds;
    for (int r = 0; r < n; ++r) (r % 2 == 0 ? evens : odds).push_back(r);
    std::unique_ptr<Communicator> mine;
    for (const std::vector<int>& list : {evens, odds}) {
      CAIRN_ASSIGN_OR_RETURN(std::unique_ptr<Communicator> sub, c.Split(list));
      if (sub != nullptr) mine = std::move(sub);
    }
    if (mine == nullptr) return absl::InternalError("no sub-group");
    const std::vector<int>& list = rank % 2 == 0 ? evens : odds;
    int32_t expected = 0;
    for (int r : list) expected += r;
    CAIRN_ASSIGN_OR_RETURN(std::vector<int32_t> sub_sum,
                           RoundTrip<int32_t>(1, rank, 1, [&](int32_t* in, int32_t* out) {
                             return mine->AllReduce(in, out, 1);
                           }));
    CAIRN_RETURN_IF_ERROR(Expect(sub_sum[0] == expected, "sub-group all-reduce"));
    CAIRN_RETURN_IF_ERROR(c.Barrier());
    return Cuda(cudaStreamDestroy(raw), "cudaStreamDestroy");
  });
  for (int r = 0; r < n; ++r) EXPECT_OK(results[r]) << "rank " << r;
}

TEST(NcclMultiprocessTest, APeerThatExitsMakesTheOtherFailWithinTheTimeoutAndStayFailed) {
  const int gpus = GpuCount();
  if (gpus < 2) GTEST_SKIP() << "needs 2 GPUs, " << gpus << " visible";
  const std::vector<absl::Status> results =
      RunRanks(2, [](int rank, std::shared_ptr<Store> store) -> absl::Status {
        CAIRN_ASSIGN_OR_RETURN(std::unique_ptr<NcclCommunicator> comm,
                               Join(rank, 2, std::move(store), absl::Seconds(5)));
        float* x = nullptr;
        CAIRN_RETURN_IF_ERROR(Cuda(cudaMalloc(&x, 1024 * sizeof(float)), "cudaMalloc"));
        CAIRN_RETURN_IF_ERROR(comm->AllReduce(x, x, 1024));  // both ranks: connections set up
        if (rank == 1) {
          comm.release();  // exits without destroying its communicator, as a crash would
          return absl::OkStatus();
        }
        const absl::Status lost = comm->AllReduce(x, x, 1024);
        if (!absl::IsDeadlineExceeded(lost) && !absl::IsUnavailable(lost)) {
          return absl::InternalError(absl::StrCat("expected DeadlineExceeded or Unavailable: ",
                                                  lost.ToString()));
        }
        if (!absl::StrContains(lost.message(), "all_reduce #1")) {
          return absl::InternalError(absl::StrCat("the message does not name the operation: ",
                                                  lost.ToString()));
        }
        const absl::Status later = comm->Barrier();
        if (later.code() != lost.code() || !absl::StrContains(later.message(), "earlier failure")) {
          return absl::InternalError(absl::StrCat("later operation: ", later.ToString()));
        }
        return absl::OkStatus();
      });
  EXPECT_OK(results[0]);
  EXPECT_OK(results[1]);
}

TEST(NcclMultiprocessTest, AbortFailsThisRankAtOnceAndItsPeerAtTheTimeout) {
  const int gpus = GpuCount();
  if (gpus < 2) GTEST_SKIP() << "needs 2 GPUs, " << gpus << " visible";
  const std::vector<absl::Status> results =
      RunRanks(2, [](int rank, std::shared_ptr<Store> store) -> absl::Status {
        CAIRN_ASSIGN_OR_RETURN(std::unique_ptr<NcclCommunicator> comm,
                               Join(rank, 2, std::move(store), absl::Seconds(5)));
        int32_t* x = nullptr;
        CAIRN_RETURN_IF_ERROR(Cuda(cudaMalloc(&x, 1024 * sizeof(int32_t)), "cudaMalloc"));
        CAIRN_RETURN_IF_ERROR(comm->AllReduce(x, x, 1024));
        if (rank == 0) comm->Abort("the loss became NaN");
        return comm->AllReduce(x, x, 1024);
      });
  EXPECT_THAT(results[0], StatusIs(absl::StatusCode::kAborted, HasSubstr("the loss became NaN")));
  // NCCL does not tell the peer: it fails at its timeout (or sooner, where the transport notices).
  EXPECT_TRUE(absl::IsDeadlineExceeded(results[1]) || absl::IsUnavailable(results[1]))
      << results[1];
  EXPECT_THAT(std::string(results[1].message()), HasSubstr("all_reduce #1"));
}

}  // namespace
}  // namespace cairn::runtime
