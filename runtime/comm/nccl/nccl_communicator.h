// runtime/comm/nccl/nccl_communicator.h — the GPU Communicator, over NCCL.
//
// One NcclCommunicator per rank, one GPU per rank (a process per GPU, or a thread per GPU in tests).
// Ranks meet through a Store (../store.h), as Gloo's do: rank 0 makes the NCCL unique id and Set()s
// it, the others Get() it, then all call ncclCommInitRankConfig. Sub-groups from Split() are made
// the same way by their members. Buffers are device memory of this rank's GPU (cudaMalloc, the CUDA backend's arena,
// or managed memory). No CUDA or NCCL header is included here: dependents compile without them.
//
//   // Local launch: every rank opens the same fresh directory; rank r uses GPU r.
//   CAIRN_ASSIGN_OR_RETURN(std::shared_ptr<Store> store, FileStore::Open(dir));
//   NcclOptions options;
//   options.device = rank;
//   CAIRN_ASSIGN_OR_RETURN(std::unique_ptr<NcclCommunicator> world,
//                          NcclCommunicator::Create(rank, world_size, store, options));
//
//   // torchrun-style launch (RANK, WORLD_SIZE, LOCAL_RANK picks the GPU, MASTER_ADDR, MASTER_PORT):
//   CAIRN_ASSIGN_OR_RETURN(auto world, NcclCommunicator::CreateFromEnv());
//
//   // Stream-ordered use: the gradients are produced by kernels on `stream`; the all-reduce runs
//   // after them without blocking the host, and the optimizer kernels enqueued on `stream` after
//   // WaitOn run after it.
//   CAIRN_ASSIGN_OR_RETURN(auto pending, world->StartAllReduce(grads, grads, n, DType::kBFloat16,
//                                                              ReduceOp::kSum, stream));
//   ... more kernels on other streams ...
//   CAIRN_RETURN_IF_ERROR(pending->WaitOn(stream));   // returns at once
//
// How operations run. Each communicator has its own CUDA stream (non-blocking) and runs every NCCL
// call on it, in issue order. An operation records an event on the caller's `stream` (nullptr: the
// legacy default stream), makes its own stream wait for it, enqueues the NCCL call, and records a
// completion event. Wait() polls that event (cudaEventQuery) together with ncclCommGetAsyncError
// and the timeout; WaitOn(s) makes `s` wait for the event (cudaStreamWaitEvent) and returns OK at
// once (errors surface at a later Wait or operation). The blocking forms given a stream are
// stream-ordered; given nullptr they block the host until the operation completes.
// - kAvg is ncclAvg: for fp32/bf16 NCCL may scale each input by 1/size before the sum (results can
//   differ from sum-then-divide in the last bits); integers are summed, then divided truncating
//   toward zero. bf16 partial sums are rounded to bf16 at each step of NCCL's algorithm.
// - Element types: f32 (ncclFloat32), bf16 (ncclBfloat16), i32 (ncclInt32), i64 (ncclInt64).
// - All-to-all is one NCCL group of a send and a receive per rank; broadcast is in place; the
//   barrier is an all-reduce of one integer in device memory of the communicator's own.
//
// Point-to-point: NCCL has no tags, and a send only completes when the peer runs the matching
// receive, so sends and receives are deferred: Send/Recv calls are collected and issued together
// as one NCCL group (ncclGroupStart/End) when any of their handles is waited on (Wait or WaitOn),
// and before the next collective, Split or destruction. Within that batch operations are issued
// sorted by (peer, tag), keeping issue order within a tag, and NCCL matches sends to a peer with
// that peer's receives in order. So: post the sends and receives of an exchange, then wait (the
// parity suite's pattern, and the engine's) — any tag order inside one batch is matched right.
// Across batches, messages between two ranks match in batch order whatever their tags, and a
// batch completes only when the peer has issued the matching operations: a rank that waits on a
// send before posting the receive its peer waits on first deadlocks (until the timeout), as with
// blocking sends anywhere. Collectives queued behind such a batch on the same communicator wait
// too: keep point-to-point traffic that may block on its own communicator (a Split of the group).
// A send that is posted and not waited on is not issued before one of the triggers above, so its
// receiver waits for the sender's next wait or collective on this communicator: to start a
// pipeline send early, wait on it (WaitOn a stream that may wait, or Wait) or post its batch's
// receive and wait on that.
//
// Failures. Create() and Split() are bounded by NcclOptions::rendezvous_timeout (the store waits and
// NCCL's initialisation: communicators are created non-blocking, config.blocking = 0, so that an
// initialisation can be abandoned), every operation by NcclOptions::timeout, counted from when it
// was issued. NCCL errors: ncclRemoteError / ncclSystemError (a peer exited, the network failed) ->
// Unavailable; an operation not complete at its deadline -> DeadlineExceeded (a peer hung, or died
// where NCCL cannot see it: over NVLink or PCIe a dead peer is only noticed through the timeout);
// CUDA and other NCCL errors -> Internal. The first failure calls ncclCommAbort (which stops this
// rank's kernels on the communicator) and makes the communicator unusable: every pending and later
// operation returns the first failure's code and message. Peers of an aborted rank fail at their
// timeout (NCCL does not tell them). Abort(reason) does the same with Aborted.
//
// Sub-groups. Split() makes a new NCCL communicator of the members only (its unique id exchanged
// through this group's store under a key the members derive alike: this group's name, the world
// rank list and how often that list was split before); non-members get nullptr without taking part.
// (ncclCommSplit of a non-blocking communicator returned no communicator on NCCL 2.28 in a one-GPU
// test on an H100, 2026-12-05.) The new group's rank i is ranks[i]. A sub-group has its own stream
// and fails independently of its parent.
//
// NVLink multicast (NVLS) stays off: Create() sets NCCL_NVLS_ENABLE=0 in the process environment
// (overriding any value) before its first NCCL call, unless CAIRN_ALLOW_NVLS=1 is set. NCCL reads
// the variable once per process, so a process that made NCCL communicators before gets its earlier
// setting. (NVLS buffers take GPU memory the planner does not count, and the GPU machines are lent
// with multicast off.)
//
// Destruction waits (bounded by the timeout) for this rank's operations to finish, then
// ncclCommDestroy (non-blocking: NCCL completes it in the background, once the other ranks of the
// node destroy theirs too) — or ncclCommAbort after a failure. Destroy the ranks' communicators
// concurrently (each rank its own), not one after another from one thread waiting on each.
//
// Threading: as communicator.h says. Handles may be waited on from any thread, and Abort() called
// from any thread; the communicator sets its device on the calling thread for each call (and puts
// back the thread's previous device).
#ifndef CAIRN_RUNTIME_COMM_NCCL_NCCL_COMMUNICATOR_H_
#define CAIRN_RUNTIME_COMM_NCCL_NCCL_COMMUNICATOR_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "runtime/comm/communicator.h"
#include "runtime/comm/store.h"

namespace cairn::runtime {

struct NcclOptions {
  // CUDA device of this rank. -1: LOCAL_RANK for CreateFromEnv(), the calling thread's current
  // device for Create().
  int device = -1;
  // Bounds every operation, from its issue to its completion, and the wait for this rank's last
  // operations when the communicator is destroyed.
  absl::Duration timeout = absl::Minutes(10);
  // Bounds Create() and Split(): waiting for every rank in the store and NCCL's initialisation.
  absl::Duration rendezvous_timeout = absl::Minutes(10);
  // Name of the group in messages, and the prefix of its keys in the store ("<name>/nccl/..."):
  // communicators that share a store need different names.
  std::string name = "world";
};

// Sets NCCL_NVLS_ENABLE=0 in this process's environment unless CAIRN_ALLOW_NVLS=1 is set, and
// returns whether NVLS stays allowed. Create() calls it; a program that makes NCCL calls of its own
// before the first Create() calls it first. Thread-safe (the first call decides).
bool DisableNvlsUnlessAllowed();

class NcclCommunicator final : public Communicator {
 public:
  // Joins the group of `size` ranks as `rank`, on GPU options.device, meeting the others through
  // `store`. Blocks until all `size` ranks have called it (or options.rendezvous_timeout).
  // Errors: InvalidArgument for rank/size out of range, a null store or non-positive timeouts;
  // FailedPrecondition when the device does not exist (or no CUDA device or driver is there);
  // DeadlineExceeded naming the ranks that did not join, or when NCCL's initialisation does not
  // finish in time; Unavailable when the store cannot be reached; Internal for other NCCL/CUDA
  // failures.
  static absl::StatusOr<std::unique_ptr<NcclCommunicator>> Create(int rank, int size,
                                                                  std::shared_ptr<Store> store,
                                                                  const NcclOptions& options = {});

  // torchrun-style launch from RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR, MASTER_PORT
  // (launch_env.h): rank 0 serves a TcpStore on MASTER_PORT (kept alive by the communicators it
  // makes), every rank connects to it; the device is options.device, or LOCAL_RANK when that is -1.
  // Errors: as LaunchEnv::FromEnvironment, TcpStore::Create and Create.
  static absl::StatusOr<std::unique_ptr<NcclCommunicator>> CreateFromEnv(
      const NcclOptions& options = {});

  // See "Destruction" above.
  ~NcclCommunicator() override;

  absl::string_view backend() const override { return "nccl"; }
  // The CUDA device this rank uses.
  int device() const;
  void Abort(absl::string_view reason) override;

  struct State;  // defined in the .cc; public only so that helpers there can name it

 protected:
  bool SupportsDType(DType) const override { return true; }
  absl::StatusOr<std::unique_ptr<CommHandle>> AllReduceImpl(const void* input, void* output,
                                                            size_t count, DType dtype,
                                                            ReduceOp op, Stream* stream) override;
  absl::StatusOr<std::unique_ptr<CommHandle>> AllGatherImpl(const void* input, void* output,
                                                            size_t count_per_rank, DType dtype,
                                                            Stream* stream) override;
  absl::StatusOr<std::unique_ptr<CommHandle>> ReduceScatterImpl(const void* input, void* output,
                                                                size_t count_per_rank,
                                                                DType dtype, ReduceOp op,
                                                                Stream* stream) override;
  absl::StatusOr<std::unique_ptr<CommHandle>> AllToAllImpl(const void* input, void* output,
                                                           size_t count_per_rank, DType dtype,
                                                           Stream* stream) override;
  absl::StatusOr<std::unique_ptr<CommHandle>> BroadcastImpl(void* buffer, size_t count,
                                                            DType dtype, int root,
                                                            Stream* stream) override;
  absl::StatusOr<std::unique_ptr<CommHandle>> BarrierImpl() override;
  absl::StatusOr<std::unique_ptr<CommHandle>> SendImpl(const void* input, size_t count,
                                                       DType dtype, int peer, int tag,
                                                       Stream* stream) override;
  absl::StatusOr<std::unique_ptr<CommHandle>> RecvImpl(void* output, size_t count, DType dtype,
                                                       int peer, int tag,
                                                       Stream* stream) override;
  absl::StatusOr<std::unique_ptr<Communicator>> SplitImpl(const std::vector<int>& ranks,
                                                          std::string name) override;

 private:
  NcclCommunicator(int rank, std::vector<int> world_ranks, std::string name,
                   std::shared_ptr<State> state);

  // The rendezvous and NCCL initialisation of Create (and of sub-groups): the new state.
  static absl::StatusOr<std::shared_ptr<State>> Join(int rank, int size,
                                                     std::shared_ptr<Store> store,
                                                     const NcclOptions& options);

  std::shared_ptr<State> state_;
  uint64_t next_collective_ = 0;
  uint64_t next_p2p_ = 0;
};

}  // namespace cairn::runtime

#endif  // CAIRN_RUNTIME_COMM_NCCL_NCCL_COMMUNICATOR_H_
