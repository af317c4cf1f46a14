// runtime/comm/gloo/gloo_communicator.h — the CPU Communicator, over Gloo's TCP transport.
//
// One GlooCommunicator per rank (process, or thread in tests). Ranks meet through a Store
// (../store.h): a FileStore directory for a local launch, a TcpStore served by rank 0 for a
// torchrun-style one. Each rank then opens a TCP connection to every other rank of the group (Gloo's
// full mesh). Sub-groups from Split() get their own connections, rendezvousing under a key prefix of
// their own (gloo::rendezvous::PrefixStore) on the same Store and sharing this rank's Gloo device.
//
//   // Local launch: every rank opens the same fresh directory.
//   CAIRN_ASSIGN_OR_RETURN(std::shared_ptr<Store> store, FileStore::Open(dir));
//   CAIRN_ASSIGN_OR_RETURN(std::unique_ptr<GlooCommunicator> world,
//                          GlooCommunicator::Create(rank, world_size, store));
//
//   // torchrun-style launch (RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT; rank 0 hosts the store):
//   CAIRN_ASSIGN_OR_RETURN(std::unique_ptr<GlooCommunicator> world,
//                          GlooCommunicator::CreateFromEnv());
//
// How operations run. Collectives are queued, in issue order, to one worker thread per communicator,
// which runs them over Gloo's tagged point-to-point buffers with Cairn's own algorithms: ring
// reduce-scatter and all-gather (all-reduce = the two; bandwidth-optimal, busbw as nccl-tests
// defines it), pairwise all-to-all, binomial-tree broadcast, dissemination barrier. Gloo 0.5's
// packaged collectives are not used: they lack reduce-scatter, and their errors name socket addresses
// where ours name the rank that failed. Sends and receives are posted to Gloo at once (they overlap
// with queued collectives) and complete in Wait(). The blocking calls are the asynchronous ones
// followed by Wait().
//
// Failures. The rendezvous is bounded by GlooOptions::rendezvous_timeout, and every wait on a peer by
// GlooOptions::timeout, counted from the start of the operation (a collective's start is when the worker picks it up). A peer that exits or crashes
// closes its sockets, so waits on it end at once with Unavailable. The first failure makes this
// communicator unusable: it closes its connections, so that the ranks waiting on this one fail fast
// too (Gloo itself closes them after a timeout), and every pending and later operation returns the
// first failure's code and message. Create() ignores SIGPIPE in the process (if it was at its
// default) so a write to a dead peer is an error, not a kill.
//
// Element types: f32, bf16, i32 and i64. The ring reductions reduce in the element type's arithmetic
// (reduce_ops.h): exact for integers; bf16 partial results are rounded to bf16 (nearest even) at each
// of the n - 1 ring steps, since they travel as bf16, so a bf16 sum over n ranks carries up to n
// roundings where the in-process reference has one. The byte-moving operations (all-gather,
// all-to-all, broadcast, send/recv) move DTypeSize(dtype) bytes per element.
//
// Streams: buffers are host memory and Gloo is host-synchronous: the `stream` argument of every
// operation is accepted and ignored, and CommHandle::WaitOn(stream) is Wait() (it blocks the calling
// thread). For device buffers, wrap it in a StagedCommunicator (../staged/staged_communicator.h).
//
// Threading: as communicator.h says; the worker thread belongs to the communicator, which drains it
// on destruction.
#ifndef CAIRN_RUNTIME_COMM_GLOO_GLOO_COMMUNICATOR_H_
#define CAIRN_RUNTIME_COMM_GLOO_GLOO_COMMUNICATOR_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "runtime/comm/communicator.h"
#include "runtime/comm/store.h"

namespace cairn::runtime {

struct GlooOptions {
  // Bounds every operation. A dead peer is detected at once; this only matters for a peer that is
  // alive but does not take part (hung, or much slower than the others).
  absl::Duration timeout = absl::Minutes(10);
  // Bounds the rendezvous in Create() and Split(): how long to wait for every rank to arrive (all
  // workers of a job may take minutes to be scheduled and started).
  absl::Duration rendezvous_timeout = absl::Minutes(10);
  // Address of this host that the other ranks can reach; Gloo listens on it. Empty: 127.0.0.1 for
  // Create(), and for CreateFromEnv() the local address of the connection to MASTER_ADDR.
  std::string hostname;
  // Name of the group in messages, and the prefix of its keys in the store. Communicators that share
  // a store need different names.
  std::string name = "world";
};

class GlooCommunicator final : public Communicator {
 public:
  // Joins the group of `size` ranks as `rank`, meeting the others through `store`. Blocks until all
  // `size` ranks have called it (or options.rendezvous_timeout).
  // Errors: InvalidArgument for rank/size out of range, non-positive timeouts or a hostname that is
  // not an address of this host; DeadlineExceeded naming the ranks that did not join in time;
  // Unavailable when the store or a peer cannot be reached.
  static absl::StatusOr<std::unique_ptr<GlooCommunicator>> Create(int rank, int size,
                                                                  std::shared_ptr<Store> store,
                                                                  const GlooOptions& options = {});

  // torchrun-style launch from RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT (launch_env.h): rank 0
  // starts a TcpStoreServer on MASTER_PORT (kept alive by the communicators it makes), every rank
  // connects to it (retrying until options.rendezvous_timeout) and calls Create(). Errors: as
  // LaunchEnv::FromEnvironment, TcpStore::Create and Create.
  static absl::StatusOr<std::unique_ptr<GlooCommunicator>> CreateFromEnv(
      const GlooOptions& options = {});

  // Waits for queued operations (bounded by the timeout), then closes this rank's connections.
  ~GlooCommunicator() override;

  absl::string_view backend() const override { return "gloo"; }
  void Abort(absl::string_view reason) override;

  struct State;  // defined in the .cc; public only so that helpers there can name it

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
  GlooCommunicator(int rank, std::vector<int> world_ranks, std::string name,
                   std::shared_ptr<State> state);

  std::shared_ptr<State> state_;
};

}  // namespace cairn::runtime

#endif  // CAIRN_RUNTIME_COMM_GLOO_GLOO_COMMUNICATOR_H_
