// runtime/comm/staged/staged_communicator.h — a Communicator for device buffers, carried through a
// host communicator (Gloo): how several worker processes share ONE GPU.
//
// NCCL cannot put two ranks on one GPU, so a multi-rank plan on a single GPU (the usual GPU machine
// lent for tests) runs every rank with the CUDA compute backend on that GPU and communicates through
// a StagedCommunicator: each operation copies its inputs from device to host memory, runs on the
// wrapped host communicator (e.g. GlooCommunicator over loopback), and copies its outputs back.
// It is backend-agnostic (any ComputeBackend's memory), so CI runs it with the CPU backend over the
// local and Gloo communicators, through the same parity suite as every other implementation.
//
//   CAIRN_ASSIGN_OR_RETURN(std::unique_ptr<GlooCommunicator> gloo, GlooCommunicator::Create(...));
//   std::unique_ptr<Communicator> world =
//       StagedCommunicator::Create(std::move(gloo), cuda_backend);   // backend outlives `world`
//   void* grads = ...;  // device memory of cuda_backend, written by kernels on `stream`
//   CAIRN_RETURN_IF_ERROR(world->StartAllReduce(grads, grads, n, DType::kBFloat16, ReduceOp::kSum,
//                                               stream).status());   // or AllReduce / Wait()
//
// How an operation runs:
//   1. the inputs are copied device -> host into a staging buffer on `stream` (the stream that
//      produced them), and the host waits for `stream` (ComputeBackend::CopyToHost + Synchronize);
//   2. the wrapped communicator runs the operation on the staging buffer (in place where it can),
//      asynchronously when the *Async / Start* form was called and the host one is asynchronous;
//   3. Wait() (or WaitOn, or the blocking form) waits for it, then copies the outputs host -> device
//      on `stream` and synchronizes `stream` (CopyToDevice + Synchronize): when Wait returns, the
//      device buffers hold the result.
//
// Cost (what it adds to the wrapped communicator): two copies per operation (device -> host of the
// inputs, host -> device of the outputs; all-gather copies in one chunk and out the whole buffer,
// reduce-scatter the reverse), two stream synchronizations, and host memory for the staging
// buffers: one per operation in flight, as large as its payload (all-to-all: twice). Staging buffers
// come from a pool shared by a communicator and its sub-groups, reused between operations and grown
// as needed: no allocation per call once warm. They are ordinary (pageable) host memory: the
// ComputeBackend interface has no pinned allocation, so device copies run at pageable speed.
//
// Semantics: as communicator.h, with these specifics.
// - Buffers are device memory of the backend (any host memory on the CPU backend). The stream is
//   the one that produced the inputs (nullptr: the backend's default stream); outputs are written
//   on it too.
// - Host-synchronous: WaitOn(stream) is Wait() (it blocks the host, then every stream sees the
//   result). A handle destroyed without Wait waits, and copies the outputs back.
// - Element types: those of the wrapped communicator (Gloo and local: f32, bf16, i32, i64).
// - Errors of the wrapped communicator come back unchanged (their messages name it, e.g. "gloo").
//   A failed device copy or synchronization is this rank's failure: it aborts the wrapped
//   communicator (so peers fail fast) and every later operation returns it.
// - Split() splits the wrapped communicator and wraps the child (same backend, shared staging
//   pool); non-members' Split calls are forwarded too. Abort() forwards to the wrapped one.
// - Threads: as communicator.h; handles may be waited on from any thread (the backend's copy calls
//   must allow that, as ComputeBackend's contract says).
#ifndef CAIRN_RUNTIME_COMM_STAGED_STAGED_COMMUNICATOR_H_
#define CAIRN_RUNTIME_COMM_STAGED_STAGED_COMMUNICATOR_H_

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "runtime/comm/communicator.h"

namespace cairn::runtime {

class ComputeBackend;

// Where a StagedCommunicator's buffers live and how bytes move between them and the staging buffers
// the wrapped communicator works on. BackendStagingMemory is the one production uses (device
// buffers, host staging); tests of a device communicator use the reverse (host buffers, device
// staging: nccl/testing). Implementations are thread-safe.
class StagingMemory {
 public:
  virtual ~StagingMemory() = default;
  // For messages: "cpu", "cuda", ...
  virtual std::string name() const = 0;
  // A staging buffer of `bytes` > 0 bytes in the wrapped communicator's memory, aligned for any
  // element type. ResourceExhausted when it cannot be had.
  virtual absl::StatusOr<void*> AllocateStaging(size_t bytes) = 0;
  virtual void FreeStaging(void* staging) = 0;
  // Enqueues a copy of `bytes` bytes from the caller's `buffer` into `staging` on `stream`, after
  // the work enqueued on it so far.
  virtual absl::Status CopyToStaging(void* staging, const void* buffer, size_t bytes,
                                     Stream* stream) = 0;
  // Enqueues a copy of `bytes` bytes from `staging` into the caller's `buffer` on `stream`.
  virtual absl::Status CopyFromStaging(void* buffer, const void* staging, size_t bytes,
                                       Stream* stream) = 0;
  // Returns once everything enqueued on `stream` has finished.
  virtual absl::Status Synchronize(Stream* stream) = 0;
};

// Buffers in `backend`'s memory, staging in host memory (ComputeBackend::CopyToHost, CopyToDevice,
// Synchronize). `backend` must outlive the result and every communicator using it.
std::shared_ptr<StagingMemory> BackendStagingMemory(ComputeBackend* backend);

class StagedCommunicator final : public Communicator {
 public:
  // Wraps `host` (any Communicator: the group, ranks and name are its own) for buffers in
  // `backend`'s memory. `backend` must outlive the result and its sub-groups. CHECK-fails on null
  // arguments (a programming error).
  static std::unique_ptr<StagedCommunicator> Create(std::unique_ptr<Communicator> host,
                                                    ComputeBackend* backend);
  // The same with any StagingMemory.
  static std::unique_ptr<StagedCommunicator> Create(std::unique_ptr<Communicator> host,
                                                    std::shared_ptr<StagingMemory> memory);

  ~StagedCommunicator() override;

  absl::string_view backend() const override { return "staged"; }
  // The wrapped communicator's backend ("gloo", "local", ...).
  absl::string_view host_backend() const { return host_->backend(); }
  void Abort(absl::string_view reason) override;

  struct State;  // defined in the .cc; public only so that helpers there can name it

 protected:
  bool SupportsDType(DType) const override { return true; }  // the wrapped one decides
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
  StagedCommunicator(std::shared_ptr<Communicator> host, std::shared_ptr<State> state);

  // What an operation copies in before running and out after it, relative to its staging buffer.
  struct Copy {
    void* buffer;          // the caller's (device) buffer
    size_t staging_offset;  // bytes into the staging buffer
    size_t bytes;
  };
  // Stages the inputs (`copy_in`) into a staging buffer of `staging_bytes`, calls
  // `start(staging)` on the wrapped communicator, and returns a handle that copies `copy_out` back
  // on completion. Device failures fail this communicator (see the header comment).
  absl::StatusOr<std::unique_ptr<CommHandle>> Run(
      absl::string_view op, size_t staging_bytes, const std::vector<Copy>& copy_in,
      std::vector<Copy> copy_out, Stream* stream,
      const std::function<absl::StatusOr<std::unique_ptr<CommHandle>>(char* staging)>& start);

  const std::shared_ptr<Communicator> host_;
  const std::shared_ptr<State> state_;
  uint64_t next_op_ = 0;
};

}  // namespace cairn::runtime

#endif  // CAIRN_RUNTIME_COMM_STAGED_STAGED_COMMUNICATOR_H_
