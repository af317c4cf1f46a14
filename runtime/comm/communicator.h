// runtime/comm/communicator.h — the one interface the training engine uses to talk to other ranks.
//
// A Communicator is one rank's handle on a group of ranks (the whole job, or a tensor-, data- or
// pipeline-parallel sub-group). It offers the collectives the parallel engine needs — all-reduce,
// all-gather, reduce-scatter, all-to-all, broadcast, barrier — plus tagged point-to-point send/receive,
// each in a blocking form and an asynchronous form that returns a CommHandle to Wait() on, so gradient
// synchronisation can overlap with backward compute. Split() builds sub-groups from rank lists.
//
// Implementations (each in its own folder; nothing outside them sees their headers):
//   gloo/    GlooCommunicator    CPU, over Gloo's TCP transport; one process (or thread) per rank.
//   local/   LocalCommunicator   in-process, ranks are threads sharing memory; testonly, for engine
//                                tests, and the reference of the parity suite.
//   nccl/    NcclCommunicator    GPU, over NCCL; one process (or thread) per GPU; stream-ordered.
//   staged/  StagedCommunicator  device buffers of any ComputeBackend carried through a host
//                                communicator (e.g. Gloo): several ranks sharing one GPU.
// communicator_parity_test.cc checks every implementation against the same expected results, for
// every element type (f32, bf16, i32, i64 on all of them).
//
// Buffers and streams. Buffers are the memory the implementation works on: host memory for Gloo and
// local, device memory of the GPU for NCCL, device memory of the wrapped backend for staged. Every
// operation takes the Stream (compute_backend.h) that produced its inputs, nullptr for the
// backend's default stream: NCCL orders the operation after the work enqueued on it so far, staged
// synchronizes it, the host-synchronous ones (Gloo, local) ignore it. The blocking calls given a
// stream return once the result is ordered before later work on that stream (NCCL: without blocking
// the host); with nullptr they block the host until the operation is complete.
//
// Example (every rank runs this with its own communicator):
//
//   std::unique_ptr<Communicator> world = ...;   // e.g. GlooCommunicator::CreateFromEnv()
//   std::vector<float> grad(n);
//   CAIRN_RETURN_IF_ERROR(world->AllReduce(grad.data(), grad.data(), n, ReduceOp::kAvg));
//
//   // Sub-groups: every member passes the same list; the new group's rank i is world rank ranks[i].
//   CAIRN_ASSIGN_OR_RETURN(std::unique_ptr<Communicator> tp, world->Split({0, 2, 4, 6}, "tp"));
//   if (tp == nullptr) { /* this rank is not in {0, 2, 4, 6} */ }
//
//   // Overlap: start, compute, then wait before touching the buffers again.
//   CAIRN_ASSIGN_OR_RETURN(auto pending,
//                          world->ReduceScatterAsync(grad.data(), shard.data(), n / world->size()));
//   ... backward of the previous layer ...
//   CAIRN_RETURN_IF_ERROR(pending->Wait());
//
// Contract shared by every operation:
// - Ordering. All members of a group must issue the same collectives, with the same counts, types and
//   roots, in the same order (blocking and asynchronous forms count alike). Point-to-point messages
//   match by (peer, tag) in the order they were issued (NCCL has no tags: see nccl_communicator.h
//   for what it guarantees). Operations on different communicators are independent of each other.
// - Threads. A Communicator is driven by one thread at a time (like an NCCL communicator); different
//   communicators may be driven by different threads. A CommHandle may be waited on from any thread.
// - Buffers. Pointers stay owned by the caller and must stay valid, and unchanged (inputs) or
//   untouched (outputs), until the operation completes: when the blocking call returns, or when the
//   handle's Wait() returns. Element counts are in elements of `dtype`, not bytes. A zero count
//   completes at once without communicating.
// - Errors. Bad arguments: InvalidArgument, returned by the call itself before anything is sent.
//   An element type or operation the implementation lacks: Unimplemented. A peer that exited, crashed
//   or closed its connection: Unavailable, at once rather than at the timeout. A peer that did not
//   take part within the implementation's timeout: DeadlineExceeded. Abort(): Aborted. Messages name
//   the operation, the group and the peer ("rank 2 (world rank 5)"). After any failed operation the
//   communicator is unusable: every later or pending operation returns the first failure's code with
//   the first failure's message, and a rank that fails closes its connections so that its peers fail
//   fast too. Nothing hangs forever.
#ifndef CAIRN_RUNTIME_COMM_COMMUNICATOR_H_
#define CAIRN_RUNTIME_COMM_COMMUNICATOR_H_

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "runtime/dtype.h"

namespace cairn::runtime {

// A compute backend's execution queue (runtime/compute/compute_backend.h); opaque here.
class Stream;

// Element-wise reduction. kAvg is the sum divided by the group size.
enum class ReduceOp {
  kSum,
  kAvg,
  kMax,
  kMin,
};

// "sum", "avg", "max", "min".
absl::string_view ReduceOpName(ReduceOp op);

// An operation in flight. Wait() blocks the calling thread until the operation has completed (its
// output buffers hold the result and its input buffers may be reused) and returns its status; later
// calls return the same status at once. Destroying a handle that was not waited on waits for the
// operation (so buffers are never written after their owner moved on) and drops the status; a
// handle that was given to WaitOn() is destroyed without blocking (its stream carries the wait).
// Wait on or destroy every handle before destroying the communicator that made it.
// A GPU implementation makes the waiting stream-ordered; on the CPU the calling thread blocks.
class CommHandle {
 public:
  virtual ~CommHandle() = default;
  virtual absl::Status Wait() = 0;
  // Makes work enqueued on `stream` after this call wait for the operation, without blocking the
  // host where the implementation can (NCCL: an event the stream waits on; an error of the
  // operation then surfaces at a later Wait or operation of the communicator). Host-synchronous
  // implementations (Gloo, local, staged) wait on the host, as Wait() does. Returns the operation's
  // status when it is known at once (always on the host-synchronous ones).
  virtual absl::Status WaitOn(Stream* stream) {
    (void)stream;
    return Wait();
  }
};

// "rank 2", or "rank 2 (world rank 5)" when the group rank and the world rank differ.
std::string RankName(int group_rank, int world_rank);

// A handle that is already complete with `status` (for implementations that work synchronously).
std::unique_ptr<CommHandle> MakeCompletedHandle(absl::Status status);

class Communicator {
 public:
  virtual ~Communicator() = default;
  Communicator(const Communicator&) = delete;
  Communicator& operator=(const Communicator&) = delete;

  // This rank's index in the group, in [0, size()).
  int rank() const { return rank_; }
  // Number of ranks in the group.
  int size() const { return static_cast<int>(world_ranks_.size()); }
  // Group name used in messages: "world", the name given to Split(), or "<parent>/[w0,w1,...]".
  const std::string& name() const { return name_; }
  // World rank of each group rank (the identity for the world group).
  const std::vector<int>& world_ranks() const { return world_ranks_; }
  // Which implementation this is: "gloo", "local", ...
  virtual absl::string_view backend() const = 0;
  // How messages name a rank of this group: "rank 2", or "rank 2 (world rank 5)" when the two differ.
  std::string PeerName(int group_rank) const;

  // ---- Collectives. Each comes blocking (`X`), asynchronous and typed (`XAsync`, returns a handle),
  // and asynchronous with a run-time element type (`StartX`, which the other two call). T is float,
  // BFloat16, int32_t or int64_t (see DTypeOf). Reductions of integers are exact (kAvg truncates
  // toward zero); bf16 is reduced in fp32 and rounded to nearest even (an implementation may round
  // partial results, see its header).

  // output[i] = op over ranks of input[i], for i < count, on every rank. In place when
  // input == output; otherwise the two must not overlap.
  template <typename T>
  absl::Status AllReduce(const T* input, T* output, size_t count, ReduceOp op = ReduceOp::kSum,
                      Stream* stream = nullptr) {
    return WaitFor(StartAllReduce(input, output, count, DTypeOf<T>::value, op, stream), stream);
  }
  template <typename T>
  absl::StatusOr<std::unique_ptr<CommHandle>> AllReduceAsync(const T* input, T* output, size_t count,
                                                             ReduceOp op = ReduceOp::kSum,
                                                        Stream* stream = nullptr) {
    return StartAllReduce(input, output, count, DTypeOf<T>::value, op, stream);
  }
  absl::StatusOr<std::unique_ptr<CommHandle>> StartAllReduce(const void* input, void* output,
                                                             size_t count, DType dtype,
                                                             ReduceOp op,
      Stream* stream = nullptr);

  // Gathers equal chunks: output[r * count_per_rank + i] = input of rank r [i]. `output` holds
  // size() * count_per_rank elements, in rank order. In place when input == output + rank() *
  // count_per_rank; otherwise the two must not overlap.
  template <typename T>
  absl::Status AllGather(const T* input, T* output, size_t count_per_rank,
                      Stream* stream = nullptr) {
    return WaitFor(StartAllGather(input, output, count_per_rank, DTypeOf<T>::value, stream), stream);
  }
  template <typename T>
  absl::StatusOr<std::unique_ptr<CommHandle>> AllGatherAsync(const T* input, T* output,
                                                             size_t count_per_rank,
                                                        Stream* stream = nullptr) {
    return StartAllGather(input, output, count_per_rank, DTypeOf<T>::value, stream);
  }
  absl::StatusOr<std::unique_ptr<CommHandle>> StartAllGather(const void* input, void* output,
                                                             size_t count_per_rank, DType dtype,
      Stream* stream = nullptr);

  // Reduces, then scatters equal chunks: `input` holds size() * count_per_rank elements and
  // output[i] = op over ranks of input[rank() * count_per_rank + i]. In place when
  // output == input + rank() * count_per_rank; otherwise the two must not overlap.
  template <typename T>
  absl::Status ReduceScatter(const T* input, T* output, size_t count_per_rank,
                             ReduceOp op = ReduceOp::kSum,
                      Stream* stream = nullptr) {
    return WaitFor(StartReduceScatter(input, output, count_per_rank, DTypeOf<T>::value, op, stream), stream);
  }
  template <typename T>
  absl::StatusOr<std::unique_ptr<CommHandle>> ReduceScatterAsync(const T* input, T* output,
                                                                 size_t count_per_rank,
                                                                 ReduceOp op = ReduceOp::kSum,
                                                        Stream* stream = nullptr) {
    return StartReduceScatter(input, output, count_per_rank, DTypeOf<T>::value, op, stream);
  }
  absl::StatusOr<std::unique_ptr<CommHandle>> StartReduceScatter(const void* input, void* output,
                                                                 size_t count_per_rank,
                                                                 DType dtype, ReduceOp op,
      Stream* stream = nullptr);

  // Exchanges equal chunks: chunk j of this rank's input goes to rank j, and chunk j of the output
  // came from rank j; both buffers hold size() * count_per_rank elements and must not overlap.
  // Optional: implementations without it return Unimplemented.
  template <typename T>
  absl::Status AllToAll(const T* input, T* output, size_t count_per_rank,
                      Stream* stream = nullptr) {
    return WaitFor(StartAllToAll(input, output, count_per_rank, DTypeOf<T>::value, stream), stream);
  }
  template <typename T>
  absl::StatusOr<std::unique_ptr<CommHandle>> AllToAllAsync(const T* input, T* output,
                                                            size_t count_per_rank,
                                                        Stream* stream = nullptr) {
    return StartAllToAll(input, output, count_per_rank, DTypeOf<T>::value, stream);
  }
  absl::StatusOr<std::unique_ptr<CommHandle>> StartAllToAll(const void* input, void* output,
                                                            size_t count_per_rank, DType dtype,
      Stream* stream = nullptr);

  // Copies `count` elements of `buffer` on rank `root` into `buffer` on every other rank.
  template <typename T>
  absl::Status Broadcast(T* buffer, size_t count, int root,
                      Stream* stream = nullptr) {
    return WaitFor(StartBroadcast(buffer, count, DTypeOf<T>::value, root, stream), stream);
  }
  template <typename T>
  absl::StatusOr<std::unique_ptr<CommHandle>> BroadcastAsync(T* buffer, size_t count, int root,
                                                        Stream* stream = nullptr) {
    return StartBroadcast(buffer, count, DTypeOf<T>::value, root, stream);
  }
  absl::StatusOr<std::unique_ptr<CommHandle>> StartBroadcast(void* buffer, size_t count,
                                                             DType dtype, int root,
      Stream* stream = nullptr);

  // Returns once every rank of the group has entered the barrier.
  absl::Status Barrier() { return WaitFor(BarrierAsync(), nullptr); }
  absl::StatusOr<std::unique_ptr<CommHandle>> BarrierAsync();

  // ---- Point-to-point. `peer` is a group rank other than rank(); `tag` >= 0 tells apart messages
  // between the same two ranks (e.g. activations vs. gradients). Send may not complete before the
  // peer has posted the matching Recv: two ranks that both Send, then Recv, deadlock (until the
  // timeout). Exchange with SendAsync + RecvAsync, then Wait on both. The matching Send and Recv must
  // have the same count and type. Optional: implementations without them return Unimplemented.
  template <typename T>
  absl::Status Send(const T* input, size_t count, int peer, int tag,
                      Stream* stream = nullptr) {
    return WaitFor(StartSend(input, count, DTypeOf<T>::value, peer, tag, stream), stream);
  }
  template <typename T>
  absl::StatusOr<std::unique_ptr<CommHandle>> SendAsync(const T* input, size_t count, int peer,
                                                        int tag,
                                                        Stream* stream = nullptr) {
    return StartSend(input, count, DTypeOf<T>::value, peer, tag, stream);
  }
  absl::StatusOr<std::unique_ptr<CommHandle>> StartSend(const void* input, size_t count,
                                                        DType dtype, int peer, int tag,
      Stream* stream = nullptr);

  template <typename T>
  absl::Status Recv(T* output, size_t count, int peer, int tag,
                      Stream* stream = nullptr) {
    return WaitFor(StartRecv(output, count, DTypeOf<T>::value, peer, tag, stream), stream);
  }
  template <typename T>
  absl::StatusOr<std::unique_ptr<CommHandle>> RecvAsync(T* output, size_t count, int peer,
                                                        int tag,
                                                        Stream* stream = nullptr) {
    return StartRecv(output, count, DTypeOf<T>::value, peer, tag, stream);
  }
  absl::StatusOr<std::unique_ptr<CommHandle>> StartRecv(void* output, size_t count, DType dtype,
                                                        int peer, int tag,
      Stream* stream = nullptr);

  // ---- Groups.

  // Creates the sub-group made of `ranks` (group ranks of this communicator, distinct, any order; the
  // new group's rank i is ranks[i]). Every member calls it with the same list, in the same order
  // relative to its other Split() calls with that list; ranks outside the list get nullptr. Members
  // rendezvous, so Split blocks until all members have called it (or the timeout).
  // A non-member's call returns nullptr without communicating (the engine calls Split for every
  // list on every rank, which every implementation accepts). `name` labels the group in messages (default:
  // "<this name>/[world ranks]"). The sub-group is independent of this communicator: either may be
  // destroyed first, and operations on both may be in flight at once.
  // Errors: InvalidArgument for an empty list, duplicates or ranks out of range; the rendezvous
  // errors of the implementation (DeadlineExceeded naming the members that did not come).
  absl::StatusOr<std::unique_ptr<Communicator>> Split(const std::vector<int>& ranks,
                                                      absl::string_view name = {});

  // Makes this rank's communicator unusable at once: pending and later operations return Aborted
  // with `reason`, and connections are closed so that peers fail fast (Unavailable). For a rank that
  // hit an error outside communication and is about to give up. Thread-safe; idempotent.
  virtual void Abort(absl::string_view reason) = 0;

 protected:
  // `world_ranks[i]` is the world rank of group rank i; `rank` indexes it.
  Communicator(int rank, std::vector<int> world_ranks, std::string name);

  // What implementations provide. Arguments are validated by the public calls (counts are > 0,
  // ranks in range, buffers overlap only as allowed, dtype accepted by SupportsDType).
  // Argument errors are returned directly; communication errors through the handle.
  virtual bool SupportsDType(DType dtype) const = 0;
  virtual absl::StatusOr<std::unique_ptr<CommHandle>> AllReduceImpl(const void* input, void* output,
                                                                    size_t count, DType dtype,
                                                                    ReduceOp op, Stream* stream) = 0;
  virtual absl::StatusOr<std::unique_ptr<CommHandle>> AllGatherImpl(const void* input, void* output,
                                                                    size_t count_per_rank,
                                                                    DType dtype, Stream* stream) = 0;
  virtual absl::StatusOr<std::unique_ptr<CommHandle>> ReduceScatterImpl(const void* input,
                                                                        void* output,
                                                                        size_t count_per_rank,
                                                                        DType dtype,
                                                                        ReduceOp op, Stream* stream) = 0;
  virtual absl::StatusOr<std::unique_ptr<CommHandle>> AllToAllImpl(const void* input, void* output,
                                                                   size_t count_per_rank,
                                                                   DType dtype, Stream* stream);
  virtual absl::StatusOr<std::unique_ptr<CommHandle>> BroadcastImpl(void* buffer, size_t count,
                                                                    DType dtype, int root, Stream* stream) = 0;
  virtual absl::StatusOr<std::unique_ptr<CommHandle>> BarrierImpl() = 0;
  virtual absl::StatusOr<std::unique_ptr<CommHandle>> SendImpl(const void* input, size_t count,
                                                               DType dtype, int peer, int tag, Stream* stream);
  virtual absl::StatusOr<std::unique_ptr<CommHandle>> RecvImpl(void* output, size_t count,
                                                               DType dtype, int peer, int tag, Stream* stream);
  // `ranks` is validated and contains rank(); `name` is final.
  virtual absl::StatusOr<std::unique_ptr<Communicator>> SplitImpl(const std::vector<int>& ranks,
                                                                  std::string name) = 0;

  // "all_reduce #12 on group 'tp' (rank 1 of 4)": the prefix of an operation's error messages.
  std::string OpLabel(absl::string_view op, uint64_t sequence) const;

 private:
  // Completes `handle` with respect to `stream` (WaitOn), or on the host when stream is null.
  static absl::Status WaitFor(absl::StatusOr<std::unique_ptr<CommHandle>> handle, Stream* stream);
  // Unimplemented unless SupportsDType(dtype).
  absl::Status CheckDType(absl::string_view op, DType dtype) const;

  const int rank_;
  const std::vector<int> world_ranks_;
  const std::string name_;
};

}  // namespace cairn::runtime

#endif  // CAIRN_RUNTIME_COMM_COMMUNICATOR_H_
