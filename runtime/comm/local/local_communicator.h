// runtime/comm/local/local_communicator.h — an in-process Communicator: ranks are threads sharing memory.
//
// For unit tests of the parallel engine (testonly): a group of N communicators, one per thread, whose
// collectives read each other's buffers directly under one mutex. Each result is computed the obvious
// way (reductions in rank order), so this is also the reference the parity suite compares the real
// backends with. It enforces the same contract as the real backends, and tells engine bugs apart more
// clearly than they do:
// - collectives issued in different orders or with different counts fail on every rank with
//   InvalidArgument naming both calls ("rank 0 called all_reduce(count=8, f32, sum) but rank 1 called
//   all_gather(count=4, f32) as operation #3");
// - Send completes only once the matching Recv is posted (as on Gloo), so send/send deadlocks show up;
// - a rank whose communicator is destroyed or aborted, or whose operation timed out, makes its peers'
//   pending and later operations fail with Unavailable naming it.
// Collectives run inside the call (the handle returned by an *Async call is already complete); sends
// and receives are posted at once and complete in Wait(). Split() returns without waiting for the
// other members.
//
// Element types: f32, bf16, i32 and i64 (reduce_ops.h). Reductions run in rank order, in fp32 for
// bf16 with one rounding at the end, so bf16 results are the most accurate any backend gives; the
// byte-moving operations copy DTypeSize(dtype) bytes per element. A Send and Recv that disagree on
// count or type fail on both sides with InvalidArgument.
//
// Streams: buffers are host memory and every operation runs on the host; the `stream` argument is
// accepted and ignored, and CommHandle::WaitOn(stream) is Wait().
//
//   std::vector<std::unique_ptr<Communicator>> comms = LocalCommunicator::CreateGroup(4);
//   std::vector<std::thread> threads;
//   for (auto& comm : comms) threads.emplace_back([&comm] { ... comm->AllReduce(...) ... });
//   for (auto& t : threads) t.join();
//
//   // or, for a body returning Status on each rank:
//   EXPECT_OK(RunLocalRanks(4, [](Communicator& comm) -> absl::Status { ... }));
#ifndef CAIRN_RUNTIME_COMM_LOCAL_LOCAL_COMMUNICATOR_H_
#define CAIRN_RUNTIME_COMM_LOCAL_LOCAL_COMMUNICATOR_H_

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "runtime/comm/communicator.h"

namespace cairn::runtime {

struct LocalOptions {
  // How long an operation waits for the other ranks before failing with DeadlineExceeded.
  absl::Duration timeout = absl::Seconds(60);
  // Name of the world group in messages.
  std::string name = "world";
};

namespace internal {
struct LocalGroup;
}  // namespace internal

class LocalCommunicator final : public Communicator {
 public:
  // One communicator per rank of a new group of `size` >= 1 ranks; element r has rank r. Hand each to
  // its own thread.
  static std::vector<std::unique_ptr<Communicator>> CreateGroup(int size,
                                                                const LocalOptions& options = {});

  // Leaves the group: peers' later operations fail with Unavailable naming this rank.
  ~LocalCommunicator() override;

  absl::string_view backend() const override { return "local"; }
  void Abort(absl::string_view reason) override;

 protected:
  bool SupportsDType(DType) const override { return true; }
  absl::StatusOr<std::unique_ptr<CommHandle>> AllReduceImpl(const void* input, void* output,
                                                            size_t count, DType dtype,
                                                            ReduceOp op, Stream* stream) override;
  absl::StatusOr<std::unique_ptr<CommHandle>> AllGatherImpl(const void* input, void* output,
                                                            size_t count_per_rank,
                                                            DType dtype, Stream* stream) override;
  absl::StatusOr<std::unique_ptr<CommHandle>> ReduceScatterImpl(const void* input, void* output,
                                                                size_t count_per_rank,
                                                                DType dtype,
                                                                ReduceOp op, Stream* stream) override;
  absl::StatusOr<std::unique_ptr<CommHandle>> AllToAllImpl(const void* input, void* output,
                                                           size_t count_per_rank,
                                                           DType dtype, Stream* stream) override;
  absl::StatusOr<std::unique_ptr<CommHandle>> BroadcastImpl(void* buffer, size_t count,
                                                            DType dtype, int root, Stream* stream) override;
  absl::StatusOr<std::unique_ptr<CommHandle>> BarrierImpl() override;
  absl::StatusOr<std::unique_ptr<CommHandle>> SendImpl(const void* input, size_t count,
                                                       DType dtype, int peer, int tag, Stream* stream) override;
  absl::StatusOr<std::unique_ptr<CommHandle>> RecvImpl(void* output, size_t count, DType dtype,
                                                       int peer, int tag, Stream* stream) override;
  absl::StatusOr<std::unique_ptr<Communicator>> SplitImpl(const std::vector<int>& ranks,
                                                          std::string name) override;

 private:
  LocalCommunicator(std::shared_ptr<internal::LocalGroup> group, int rank);

  // Runs one collective: waits for every rank, then computes this rank's output bytes from all
  // inputs (`compute` fills `result`), and copies them to `output` once every rank has read.
  absl::Status RunCollective(const std::string& op, const std::string& signature,
                             const void* input, void* output,
                             const std::function<void(const std::vector<const void*>& inputs,
                                                      std::vector<char>* result)>& compute);
  absl::StatusOr<std::unique_ptr<CommHandle>> PostP2P(bool is_send, const void* send_data,
                                                      void* recv_data, size_t count, DType dtype,
                                                      int peer, int tag);

  std::shared_ptr<internal::LocalGroup> group_;
  uint64_t next_collective_ = 0;
  uint64_t next_p2p_ = 0;
  std::map<std::vector<int>, int> splits_made_;
};

// Runs `body` on `size` threads, each with its own rank of a new local group, and returns the first
// non-OK status in rank order (prefixed with the rank), or OK. A rank whose body returns an error
// leaves the group, so its peers fail fast instead of waiting for the timeout.
absl::Status RunLocalRanks(int size, const std::function<absl::Status(Communicator&)>& body,
                           const LocalOptions& options = {});

}  // namespace cairn::runtime

#endif  // CAIRN_RUNTIME_COMM_LOCAL_LOCAL_COMMUNICATOR_H_
