// The one file of Cairn that calls NCCL: every ncclResult_t and cudaError_t becomes an absl::Status
// here. See nccl_communicator.h for the behaviour.
#include "runtime/comm/nccl/nccl_communicator.h"

#include <cuda_runtime.h>
#include <nccl.h>

#include <algorithm>
#include <map>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "common/logging.h"
#include "common/status_macros.h"
#include "runtime/comm/launch_env.h"
#include "runtime/comm/tcp_store.h"
#include "runtime/compute/cuda/cuda_stream.h"

namespace cairn::runtime {
namespace {

// ---- CUDA and NCCL results -> absl::Status (the boundary).

absl::Status CudaStatus(cudaError_t error, absl::string_view call,
                        absl::StatusCode code = absl::StatusCode::kInternal) {
  if (error == cudaSuccess) return absl::OkStatus();
  return absl::Status(code, absl::StrCat(call, ": ", cudaGetErrorName(error), " (",
                                         cudaGetErrorString(error), ")"));
}

// ncclSuccess and ncclInProgress (a non-blocking call still running) are not errors.
bool NcclFailed(ncclResult_t result) {
  return result != ncclSuccess && result != ncclInProgress;
}

absl::Status NcclStatus(ncclResult_t result, absl::string_view call) {
  if (!NcclFailed(result)) return absl::OkStatus();
  // A peer that exited or a network failure: the caller can only give up this communicator.
  const absl::StatusCode code = result == ncclRemoteError || result == ncclSystemError
                                    ? absl::StatusCode::kUnavailable
                                    : absl::StatusCode::kInternal;
  std::string detail;
  const char* last = ncclGetLastError(nullptr);  // this thread's last NCCL error message
  if (last != nullptr && last[0] != '\0') detail = absl::StrCat(" [nccl: ", last, "]");
  return absl::Status(code, absl::StrCat(call, ": ", ncclGetErrorString(result), detail));
}

absl::Status Annotate(absl::string_view label, const absl::Status& status) {
  if (status.ok()) return status;
  return absl::Status(status.code(), absl::StrCat(label, ": ", status.message()));
}

absl::Status Unusable(absl::string_view label, const absl::Status& first) {
  return absl::Status(first.code(), absl::StrCat(label, ": communicator unusable after an earlier "
                                                        "failure: ",
                                                 first.message()));
}

ncclDataType_t NcclType(DType dtype) {
  switch (dtype) {
    case DType::kBFloat16:
      return ncclBfloat16;
    case DType::kInt32:
      return ncclInt32;
    case DType::kInt64:
      return ncclInt64;
    case DType::kFloat32:
      break;
  }
  return ncclFloat32;
}

ncclRedOp_t NcclOp(ReduceOp op) {
  switch (op) {
    case ReduceOp::kAvg:
      return ncclAvg;
    case ReduceOp::kMax:
      return ncclMax;
    case ReduceOp::kMin:
      return ncclMin;
    case ReduceOp::kSum:
      break;
  }
  return ncclSum;
}

// Makes `device` current on this thread for the guard's lifetime, then puts back the previous one.
class ScopedDevice {
 public:
  explicit ScopedDevice(int device) : device_(device) {
    if (cudaGetDevice(&previous_) != cudaSuccess) previous_ = -1;
    if (previous_ != device_) {
      status_ = CudaStatus(cudaSetDevice(device_), absl::StrCat("cudaSetDevice(", device_, ")"));
    }
  }
  ~ScopedDevice() {
    if (previous_ >= 0 && previous_ != device_) (void)cudaSetDevice(previous_);
  }
  ScopedDevice(const ScopedDevice&) = delete;
  ScopedDevice& operator=(const ScopedDevice&) = delete;
  const absl::Status& status() const { return status_; }

 private:
  const int device_;
  int previous_ = -1;
  absl::Status status_;
};

// Polling pace for waits on the device: yield at first (most operations finish within
// microseconds of being waited on), then sleep from 10 us up to 1 ms.
class Backoff {
 public:
  void Pause() {
    if (spins_ < 200) {
      ++spins_;
      std::this_thread::yield();
      return;
    }
    absl::SleepFor(delay_);
    delay_ = std::min(delay_ * 2, absl::Milliseconds(1));
  }

 private:
  int spins_ = 0;
  absl::Duration delay_ = absl::Microseconds(10);
};

// Completion events, reused between operations (cudaEventDisableTiming). Thread-safe. Events are
// created on the device current when Get() is called: the communicator's.
class EventPool {
 public:
  ~EventPool() {
    for (cudaEvent_t e : free_) (void)cudaEventDestroy(e);
  }
  absl::StatusOr<cudaEvent_t> Get() {
    {
      absl::MutexLock lock(&mu_);
      if (!free_.empty()) {
        cudaEvent_t e = free_.back();
        free_.pop_back();
        return e;
      }
    }
    cudaEvent_t e = nullptr;
    CAIRN_RETURN_IF_ERROR(
        CudaStatus(cudaEventCreateWithFlags(&e, cudaEventDisableTiming), "cudaEventCreate"));
    return e;
  }
  // An event may be put back while a record of it is pending: a later record replaces it, and
  // streams that already wait on it keep waiting for the old one.
  void Put(cudaEvent_t e) {
    if (e == nullptr) return;
    absl::MutexLock lock(&mu_);
    free_.push_back(e);
  }

 private:
  absl::Mutex mu_;
  std::vector<cudaEvent_t> free_ ABSL_GUARDED_BY(mu_);
};

// Sends and receives issued together (see "Point-to-point" in the header). Fields are written under
// the communicator's issue_mu when the batch is flushed, and read under it.
struct P2PBatch {
  explicit P2PBatch(std::shared_ptr<EventPool> pool) : events(std::move(pool)) {}
  ~P2PBatch() { events->Put(done); }
  const std::shared_ptr<EventPool> events;
  bool flushed = false;
  cudaEvent_t done = nullptr;  // recorded after the group, once flushed without error
  absl::Status status;         // why the batch could not be issued
};

struct PendingP2P {
  bool is_send;
  void* buffer;
  size_t count;
  ncclDataType_t type;
  int peer;
  int tag;
  cudaEvent_t ready;  // recorded on the caller's stream when posted
  std::string label;
  absl::Time deadline;
};

// Polls a non-blocking NCCL communicator until its pending call (initialisation, split, a
// collective that set up connections) is done: returns the call's result, or ncclInProgress at the
// deadline.
ncclResult_t PollComm(ncclComm_t comm, absl::Time deadline) {
  Backoff backoff;
  while (true) {
    ncclResult_t state = ncclInProgress;
    const ncclResult_t query = ncclCommGetAsyncError(comm, &state);
    if (query != ncclSuccess) return query;
    if (state != ncclInProgress) return state;
    if (absl::Now() >= deadline) return ncclInProgress;
    backoff.Pause();
  }
}

}  // namespace

// Everything a communicator shares with its handles.
struct NcclCommunicator::State : std::enable_shared_from_this<NcclCommunicator::State> {
  // Fixed at creation.
  int device = 0;
  NcclOptions options;
  std::shared_ptr<Store> store;  // kept: rank 0 may be serving it
  std::map<std::vector<int>, int> splits_made;  // per rank list: sub-group key prefixes
  cudaStream_t stream = nullptr;
  void* barrier_buffer = nullptr;  // one int32 on the device, for Barrier()
  std::shared_ptr<EventPool> events = std::make_shared<EventPool>();

  // Serialises the issuing of NCCL work (operations, point-to-point flushes, splits): a
  // non-blocking communicator takes no new call while one is in progress. Taken before `mu`.
  absl::Mutex issue_mu ABSL_ACQUIRED_BEFORE(mu);
  std::vector<PendingP2P> pending ABSL_GUARDED_BY(issue_mu);
  std::shared_ptr<P2PBatch> batch ABSL_GUARDED_BY(issue_mu);  // the batch `pending` will form

  // The NCCL communicator (null once destroyed or aborted) and the first failure. Held only for
  // NCCL calls that return at once, never while waiting, so Abort() and Wait() get through.
  absl::Mutex mu;
  ncclComm_t comm ABSL_GUARDED_BY(mu) = nullptr;
  absl::Status failure ABSL_GUARDED_BY(mu);

  ~State() {
    ScopedDevice on(device);
    // Stream-ordered: nothing here waits for the device (a hung kernel must not hang the host).
    if (barrier_buffer != nullptr) (void)cudaFreeAsync(barrier_buffer, stream);
    if (stream != nullptr) (void)cudaStreamDestroy(stream);
  }

  absl::Status FirstFailure() {
    absl::MutexLock lock(&mu);
    return failure;
  }

  // Records `status` as the failure, if it is the first, and aborts the NCCL communicator (which
  // stops this rank's kernels on it). Returns `status`.
  absl::Status Fail(absl::Status status) {
    absl::MutexLock lock(&mu);
    return FailLocked(std::move(status));
  }
  absl::Status FailLocked(absl::Status status) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
    if (!failure.ok()) return status;
    failure = status;
    if (comm != nullptr) {
      (void)ncclCommAbort(comm);  // non-blocking: NCCL frees it in the background
      comm = nullptr;
    }
    return status;
  }

  // After an NCCL call that returned `result`: waits until NCCL has finished issuing it (a
  // non-blocking communicator returns ncclInProgress while it sets up connections, which needs the
  // peers to issue the same call), bounded by `deadline`. Failures fail the communicator.
  absl::Status AwaitIssued(ncclResult_t result, absl::string_view label, absl::string_view call,
                           absl::Time deadline) ABSL_EXCLUSIVE_LOCKS_REQUIRED(issue_mu) {
    if (NcclFailed(result)) return Fail(Annotate(label, NcclStatus(result, call)));
    if (result == ncclSuccess) return absl::OkStatus();
    Backoff backoff;
    while (true) {
      {
        absl::MutexLock lock(&mu);
        if (!failure.ok()) return Unusable(label, failure);
        ncclResult_t state = ncclInProgress;
        const ncclResult_t query = ncclCommGetAsyncError(comm, &state);
        if (NcclFailed(query)) {
          return FailLocked(Annotate(label, NcclStatus(query, "ncclCommGetAsyncError")));
        }
        if (state == ncclSuccess) return absl::OkStatus();
        if (state != ncclInProgress) return FailLocked(Annotate(label, NcclStatus(state, call)));
      }
      if (absl::Now() >= deadline) {
        return Fail(absl::DeadlineExceededError(absl::StrCat(
            label, ": ", call, " was not issued within ", absl::FormatDuration(options.timeout),
            " (NCCL was waiting for the peers to issue the same operation)")));
      }
      backoff.Pause();
    }
  }

  // Waits until `done` has completed (the operation ran), the communicator failed, NCCL reported
  // an error or `deadline` passed.
  absl::Status AwaitEvent(cudaEvent_t done, absl::string_view label, absl::Time deadline) {
    ScopedDevice on(device);
    Backoff backoff;
    while (true) {
      const cudaError_t query = cudaEventQuery(done);
      if (query != cudaSuccess && query != cudaErrorNotReady) {
        return Fail(Annotate(label, CudaStatus(query, "cudaEventQuery")));
      }
      {
        absl::MutexLock lock(&mu);
        // After an abort the kernels stop early and the event completes: check the failure first.
        if (!failure.ok()) return Unusable(label, failure);
        ncclResult_t state = ncclSuccess;
        const ncclResult_t error = ncclCommGetAsyncError(comm, &state);
        if (NcclFailed(error)) {
          return FailLocked(Annotate(label, NcclStatus(error, "ncclCommGetAsyncError")));
        }
        if (NcclFailed(state)) {
          return FailLocked(Annotate(
              label, NcclStatus(state, "NCCL reported an asynchronous error (a peer may have "
                                       "exited)")));
        }
      }
      if (query == cudaSuccess) return absl::OkStatus();
      if (absl::Now() >= deadline) {
        return Fail(absl::DeadlineExceededError(absl::StrCat(
            label, ": not complete after ", absl::FormatDuration(options.timeout),
            ": a peer is slow, hung, or exited where NCCL cannot see it (NVLink/PCIe)")));
      }
      backoff.Pause();
    }
  }

  // Issues the deferred sends and receives as one NCCL group (see the header).
  absl::Status FlushLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(issue_mu) {
    if (pending.empty()) return absl::OkStatus();
    std::vector<PendingP2P> ops = std::move(pending);
    pending.clear();
    std::shared_ptr<P2PBatch> flushing = std::move(batch);
    batch = nullptr;
    flushing->flushed = true;
    std::stable_sort(ops.begin(), ops.end(), [](const PendingP2P& a, const PendingP2P& b) {
      return std::make_pair(a.peer, a.tag) < std::make_pair(b.peer, b.tag);
    });
    const std::string label =
        ops.size() == 1 ? ops[0].label
                        : absl::StrCat(ops[0].label, " (and ", ops.size() - 1,
                                       " more sends/receives issued with it)");
    absl::Time deadline = ops[0].deadline;
    for (const PendingP2P& op : ops) deadline = std::min(deadline, op.deadline);
    ScopedDevice on(device);
    ncclResult_t result = ncclSuccess;
    const char* call = "ncclGroupEnd";
    {
      absl::MutexLock lock(&mu);
      if (!failure.ok()) {
        for (const PendingP2P& op : ops) events->Put(op.ready);
        flushing->status = Unusable(label, failure);
        return flushing->status;
      }
      absl::Status waited;
      for (const PendingP2P& op : ops) {
        if (waited.ok()) {
          waited = CudaStatus(cudaStreamWaitEvent(stream, op.ready, 0), "cudaStreamWaitEvent");
        }
        events->Put(op.ready);
      }
      if (!waited.ok()) {
        flushing->status = FailLocked(Annotate(label, waited));
        return flushing->status;
      }
      result = ncclGroupStart();
      for (const PendingP2P& op : ops) {
        const ncclResult_t r = op.is_send
                                   ? ncclSend(op.buffer, op.count, op.type, op.peer, comm, stream)
                                   : ncclRecv(op.buffer, op.count, op.type, op.peer, comm, stream);
        if (!NcclFailed(result) && NcclFailed(r)) {
          result = r;
          call = op.is_send ? "ncclSend" : "ncclRecv";
        }
      }
      const ncclResult_t end = ncclGroupEnd();  // always closes the group
      if (!NcclFailed(result)) result = end;
    }
    absl::Status issued = AwaitIssued(result, label, call, deadline);
    if (!issued.ok()) {
      flushing->status = issued;
      return issued;
    }
    absl::StatusOr<cudaEvent_t> done = events->Get();
    absl::Status recorded = done.status();
    if (recorded.ok()) recorded = CudaStatus(cudaEventRecord(*done, stream), "cudaEventRecord");
    if (!recorded.ok()) {
      if (done.ok()) events->Put(*done);
      flushing->status = Fail(Annotate(label, recorded));
      return flushing->status;
    }
    flushing->done = *done;
    return absl::OkStatus();
  }
};

namespace {

using State = NcclCommunicator::State;

// An operation on the communicator's stream, complete when `done` is (collectives), or a send or
// receive of a deferred batch (p2p: the batch is flushed on the first wait).
class NcclHandle final : public CommHandle {
 public:
  NcclHandle(std::shared_ptr<State> state, cudaEvent_t done, std::shared_ptr<P2PBatch> batch,
             std::string label, absl::Time deadline)
      : state_(std::move(state)),
        done_(done),
        batch_(std::move(batch)),
        label_(std::move(label)),
        deadline_(deadline) {}

  ~NcclHandle() override {
    bool waited;
    {
      absl::MutexLock lock(&mu_);
      waited = waited_ || waited_on_;
    }
    if (!waited) Wait().IgnoreError();
    state_->events->Put(done_);  // collectives own their event; a batch owns its own
  }

  absl::Status Wait() override {
    absl::MutexLock lock(&mu_);
    if (waited_) return result_;
    waited_ = true;
    cudaEvent_t done = done_;
    if (batch_ != nullptr) {
      absl::StatusOr<cudaEvent_t> flushed = Flush();
      if (!flushed.ok()) return result_ = flushed.status();
      done = *flushed;
    }
    result_ = state_->AwaitEvent(done, label_, deadline_);
    return result_;
  }

  absl::Status WaitOn(Stream* stream) override {
    absl::MutexLock lock(&mu_);
    if (waited_) return result_;
    cudaEvent_t done = done_;
    if (batch_ != nullptr) {
      absl::StatusOr<cudaEvent_t> flushed = Flush();
      if (!flushed.ok()) return flushed.status();
      done = *flushed;
    }
    {
      absl::MutexLock state_lock(&state_->mu);
      if (!state_->failure.ok()) return Unusable(label_, state_->failure);
    }
    ScopedDevice on(state_->device);
    absl::Status waited = CudaStatus(cudaStreamWaitEvent(CudaStreamOf(stream), done, 0),
                                     "cudaStreamWaitEvent");
    if (!waited.ok()) return state_->Fail(Annotate(label_, waited));
    waited_on_ = true;
    return absl::OkStatus();
  }

 private:
  // Issues the handle's batch if nobody has yet; its completion event.
  absl::StatusOr<cudaEvent_t> Flush() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    absl::MutexLock issue(&state_->issue_mu);
    if (!batch_->flushed) state_->FlushLocked().IgnoreError();  // the batch keeps the status
    if (!batch_->status.ok()) return batch_->status;
    return batch_->done;
  }

  const std::shared_ptr<State> state_;
  const cudaEvent_t done_;
  const std::shared_ptr<P2PBatch> batch_;
  const std::string label_;
  const absl::Time deadline_;
  absl::Mutex mu_;
  bool waited_ ABSL_GUARDED_BY(mu_) = false;
  bool waited_on_ ABSL_GUARDED_BY(mu_) = false;
  absl::Status result_ ABSL_GUARDED_BY(mu_);
};

// Which device Create() uses: `requested`, or the current one for -1; FailedPrecondition when it
// does not exist.
absl::StatusOr<int> ResolveDevice(int requested, absl::string_view label) {
  int count = 0;
  const cudaError_t counted = cudaGetDeviceCount(&count);
  if (counted != cudaSuccess) {
    return Annotate(label, CudaStatus(counted, "no CUDA device: cudaGetDeviceCount",
                                      absl::StatusCode::kFailedPrecondition));
  }
  int device = requested;
  if (device < 0) {
    CAIRN_RETURN_IF_ERROR(Annotate(label, CudaStatus(cudaGetDevice(&device), "cudaGetDevice",
                                                     absl::StatusCode::kFailedPrecondition)));
  }
  if (device >= count) {
    return absl::FailedPreconditionError(absl::StrCat(label, ": CUDA device ", device,
                                                      " does not exist (", count, " visible)"));
  }
  return device;
}

// The state of a new NCCL communicator `comm` (initialised): its stream and barrier buffer. On
// failure aborts `comm`.
absl::StatusOr<std::shared_ptr<State>> MakeState(ncclComm_t comm, int device,
                                                 const NcclOptions& options,
                                                 std::shared_ptr<Store> store,
                                                 absl::string_view label) {
  auto state = std::make_shared<State>();
  state->device = device;
  state->options = options;
  state->options.device = device;
  state->store = std::move(store);
  absl::Status made = CudaStatus(cudaStreamCreateWithFlags(&state->stream, cudaStreamNonBlocking),
                                 "cudaStreamCreateWithFlags");
  if (made.ok()) {
    made = CudaStatus(cudaMallocAsync(&state->barrier_buffer, sizeof(int32_t), state->stream),
                      "cudaMallocAsync");
  }
  if (!made.ok()) {
    (void)ncclCommAbort(comm);
    return Annotate(label, made);
  }
  absl::MutexLock lock(&state->mu);
  state->comm = comm;
  return state;
}

// Initialises `*comm` non-blocking and waits for it (bounded by `deadline`); aborts it on failure.
absl::Status AwaitInit(ncclResult_t result, ncclComm_t comm, absl::string_view call,
                       absl::Time deadline, absl::Duration timeout, absl::string_view label) {
  if (!NcclFailed(result)) result = comm != nullptr ? PollComm(comm, deadline) : ncclSuccess;
  if (result == ncclSuccess) return absl::OkStatus();
  if (comm != nullptr) (void)ncclCommAbort(comm);
  if (result == ncclInProgress) {
    return absl::DeadlineExceededError(
        absl::StrCat(label, ": ", call, " did not complete within ", absl::FormatDuration(timeout)));
  }
  return Annotate(label, NcclStatus(result, call));
}

}  // namespace

bool DisableNvlsUnlessAllowed() {
  static const bool allowed = [] {
    const char* allow = std::getenv("CAIRN_ALLOW_NVLS");
    if (allow != nullptr && std::strcmp(allow, "1") == 0) return true;
    setenv("NCCL_NVLS_ENABLE", "0", /*overwrite=*/1);
    return false;
  }();
  return allowed;
}

absl::StatusOr<std::unique_ptr<NcclCommunicator>> NcclCommunicator::Create(
    int rank, int size, std::shared_ptr<Store> store, const NcclOptions& options) {
  CAIRN_ASSIGN_OR_RETURN(std::shared_ptr<State> state, Join(rank, size, std::move(store), options));
  std::vector<int> world(size);
  for (int r = 0; r < size; ++r) world[r] = r;
  return std::unique_ptr<NcclCommunicator>(
      new NcclCommunicator(rank, std::move(world), options.name, std::move(state)));
}

absl::StatusOr<std::shared_ptr<NcclCommunicator::State>> NcclCommunicator::Join(
    int rank, int size, std::shared_ptr<Store> store, const NcclOptions& options) {
  if (size < 1 || rank < 0 || rank >= size) {
    return absl::InvalidArgumentError(
        absl::StrCat("nccl: rank ", rank, " is outside a group of size ", size));
  }
  if (store == nullptr) return absl::InvalidArgumentError("nccl: no store");
  if (options.timeout <= absl::ZeroDuration() ||
      options.rendezvous_timeout <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError("nccl: the timeouts must be positive");
  }
  DisableNvlsUnlessAllowed();
  const std::string label = absl::StrCat("rendezvous of group '", options.name, "' (rank ", rank,
                                         " of ", size, ", nccl)");
  CAIRN_ASSIGN_OR_RETURN(const int device, ResolveDevice(options.device, label));
  ScopedDevice on(device);
  if (!on.status().ok()) {
    return absl::FailedPreconditionError(absl::StrCat(label, ": ", on.status().message()));
  }
  std::vector<std::string> names(size);
  for (int r = 0; r < size; ++r) names[r] = RankName(r, r);

  // Rank 0 publishes the unique id, then every rank a join marker, so that a missing rank is named.
  const std::string prefix = absl::StrCat(options.name, "/nccl");
  const std::string id_key = absl::StrCat(prefix, "/unique_id");
  ncclUniqueId id;
  std::memset(&id, 0, sizeof(id));
  if (rank == 0) {
    CAIRN_RETURN_IF_ERROR(Annotate(label, NcclStatus(ncclGetUniqueId(&id), "ncclGetUniqueId")));
    CAIRN_RETURN_IF_ERROR(
        Annotate(label, store->Set(id_key, absl::string_view(id.internal, sizeof(id.internal)))));
  }
  auto join_key = [&](int r) { return absl::StrCat(prefix, "/join/", r); };
  CAIRN_RETURN_IF_ERROR(Annotate(label, store->Set(join_key(rank), "1")));
  std::vector<std::string> keys;
  for (int r = 0; r < size; ++r) keys.push_back(join_key(r));
  const absl::Status joined = store->Wait(keys, options.rendezvous_timeout);
  if (absl::IsDeadlineExceeded(joined)) {
    std::vector<std::string> missing;
    for (int r = 0; r < size; ++r) {
      if (!store->Get(join_key(r), absl::ZeroDuration()).ok()) missing.push_back(names[r]);
    }
    return absl::DeadlineExceededError(
        absl::StrCat(label, ": ", absl::StrJoin(missing, ", "), " did not join within ",
                     absl::FormatDuration(options.rendezvous_timeout)));
  }
  CAIRN_RETURN_IF_ERROR(Annotate(label, joined));
  if (rank != 0) {
    absl::StatusOr<std::string> bytes = store->Get(id_key, options.rendezvous_timeout);
    if (!bytes.ok()) return Annotate(label, bytes.status());
    if (bytes->size() != sizeof(id.internal)) {
      return absl::InternalError(absl::StrCat(label, ": the NCCL unique id in the store has ",
                                              bytes->size(), " bytes, not ",
                                              sizeof(id.internal)));
    }
    std::memcpy(id.internal, bytes->data(), bytes->size());
  }

  ncclConfig_t config = NCCL_CONFIG_INITIALIZER;
  config.blocking = 0;  // so that a stuck initialisation can be abandoned (ncclCommAbort)
  ncclComm_t comm = nullptr;
  const absl::Time deadline = absl::Now() + options.rendezvous_timeout;
  const ncclResult_t init = ncclCommInitRankConfig(&comm, size, id, rank, &config);
  CAIRN_RETURN_IF_ERROR(AwaitInit(init, comm, "ncclCommInitRankConfig", deadline,
                                  options.rendezvous_timeout, label));
  return MakeState(comm, device, options, std::move(store), label);
}

absl::StatusOr<std::unique_ptr<NcclCommunicator>> NcclCommunicator::CreateFromEnv(
    const NcclOptions& options) {
  CAIRN_ASSIGN_OR_RETURN(const LaunchEnv env, LaunchEnv::FromEnvironment());
  CAIRN_ASSIGN_OR_RETURN(std::unique_ptr<TcpStore> store,
                         OpenLaunchStore(env, options.rendezvous_timeout));
  NcclOptions resolved = options;
  if (resolved.device < 0) resolved.device = env.local_rank;
  return Create(env.rank, env.world_size, std::shared_ptr<Store>(std::move(store)), resolved);
}

NcclCommunicator::NcclCommunicator(int rank, std::vector<int> world_ranks, std::string name,
                                   std::shared_ptr<State> state)
    : Communicator(rank, std::move(world_ranks), std::move(name)), state_(std::move(state)) {}

NcclCommunicator::~NcclCommunicator() {
  State& s = *state_;
  ScopedDevice on(s.device);
  {
    absl::MutexLock issue(&s.issue_mu);
    s.FlushLocked().IgnoreError();  // sends and receives nobody waited on still reach the peers
  }
  // Let this rank's operations finish (bounded), so that destroying does not cut them short.
  const absl::Time deadline = absl::Now() + s.options.timeout;
  Backoff backoff;
  while (s.FirstFailure().ok()) {
    const cudaError_t query = cudaStreamQuery(s.stream);
    if (query == cudaSuccess) break;
    if (query != cudaErrorNotReady) {
      s.Fail(CudaStatus(query, "cudaStreamQuery")).IgnoreError();
    } else if (absl::Now() >= deadline) {
      s.Fail(absl::DeadlineExceededError(
                 absl::StrCat("destroying group '", name(), "': operations still running after ",
                              absl::FormatDuration(s.options.timeout))))
          .IgnoreError();
    } else {
      backoff.Pause();
    }
  }
  absl::MutexLock lock(&s.mu);
  if (s.comm != nullptr) {
    (void)ncclCommDestroy(s.comm);  // non-blocking: completes in the background
    s.comm = nullptr;
  }
  if (s.failure.ok()) {
    s.failure = absl::FailedPreconditionError(
        absl::StrCat("group '", name(), "': the communicator was destroyed"));
  }
}

int NcclCommunicator::device() const { return state_->device; }

void NcclCommunicator::Abort(absl::string_view reason) {
  state_->Fail(absl::AbortedError(
                   absl::StrCat(PeerName(rank()), " of group '", name(), "' aborted: ", reason)))
      .IgnoreError();
}

namespace {

// Issues one NCCL call on the communicator's stream after the work enqueued so far on `producer`
// (when `after_producer`), and returns a handle on its completion event.
absl::StatusOr<std::unique_ptr<CommHandle>> Issue(
    const std::shared_ptr<State>& state, const std::string& label, Stream* producer,
    bool after_producer, const char* call,
    const std::function<ncclResult_t(ncclComm_t, cudaStream_t)>& enqueue) {
  State& s = *state;
  const absl::Time deadline = absl::Now() + s.options.timeout;
  ScopedDevice on(s.device);
  if (!on.status().ok()) return MakeCompletedHandle(s.Fail(Annotate(label, on.status())));
  absl::MutexLock issue(&s.issue_mu);
  // Sends and receives posted before this operation are issued before it, on every rank alike.
  if (!s.FlushLocked().ok()) return MakeCompletedHandle(Unusable(label, s.FirstFailure()));
  ncclResult_t result = ncclSuccess;
  {
    absl::MutexLock lock(&s.mu);
    if (!s.failure.ok()) return MakeCompletedHandle(Unusable(label, s.failure));
    if (after_producer) {
      absl::StatusOr<cudaEvent_t> ready = s.events->Get();
      absl::Status ordered = ready.status();
      if (ordered.ok()) {
        ordered = CudaStatus(cudaEventRecord(*ready, CudaStreamOf(producer)),
                             "cudaEventRecord on the caller's stream");
      }
      if (ordered.ok()) {
        ordered = CudaStatus(cudaStreamWaitEvent(s.stream, *ready, 0), "cudaStreamWaitEvent");
      }
      if (ready.ok()) s.events->Put(*ready);
      if (!ordered.ok()) return MakeCompletedHandle(s.FailLocked(Annotate(label, ordered)));
    }
    result = enqueue(s.comm, s.stream);
  }
  absl::Status issued = s.AwaitIssued(result, label, call, deadline);
  if (!issued.ok()) return MakeCompletedHandle(issued);
  absl::StatusOr<cudaEvent_t> done = s.events->Get();
  absl::Status recorded = done.status();
  if (recorded.ok()) recorded = CudaStatus(cudaEventRecord(*done, s.stream), "cudaEventRecord");
  if (!recorded.ok()) {
    if (done.ok()) s.events->Put(*done);
    return MakeCompletedHandle(s.Fail(Annotate(label, recorded)));
  }
  return std::unique_ptr<CommHandle>(new NcclHandle(state, *done, nullptr, label, deadline));
}

// Defers a send or receive to the communicator's next point-to-point batch.
absl::StatusOr<std::unique_ptr<CommHandle>> Post(const std::shared_ptr<State>& state,
                                                 std::string label, Stream* producer,
                                                 bool is_send, void* buffer, size_t count,
                                                 DType dtype, int peer, int tag) {
  State& s = *state;
  const absl::Time deadline = absl::Now() + s.options.timeout;
  ScopedDevice on(s.device);
  if (!on.status().ok()) return MakeCompletedHandle(s.Fail(Annotate(label, on.status())));
  absl::MutexLock issue(&s.issue_mu);
  absl::Status first = s.FirstFailure();
  if (!first.ok()) return MakeCompletedHandle(Unusable(label, first));
  absl::StatusOr<cudaEvent_t> ready = s.events->Get();
  absl::Status recorded = ready.status();
  if (recorded.ok()) {
    recorded = CudaStatus(cudaEventRecord(*ready, CudaStreamOf(producer)),
                          "cudaEventRecord on the caller's stream");
  }
  if (!recorded.ok()) {
    if (ready.ok()) s.events->Put(*ready);
    return MakeCompletedHandle(s.Fail(Annotate(label, recorded)));
  }
  if (s.batch == nullptr) s.batch = std::make_shared<P2PBatch>(s.events);
  s.pending.push_back(
      {is_send, buffer, count, NcclType(dtype), peer, tag, *ready, label, deadline});
  return std::unique_ptr<CommHandle>(new NcclHandle(state, nullptr, s.batch, std::move(label),
                                                    deadline));
}

}  // namespace

absl::StatusOr<std::unique_ptr<CommHandle>> NcclCommunicator::AllReduceImpl(
    const void* input, void* output, size_t count, DType dtype, ReduceOp op, Stream* stream) {
  return Issue(state_, OpLabel("all_reduce", next_collective_++), stream, true, "ncclAllReduce",
               [=](ncclComm_t comm, cudaStream_t s) {
                 return ncclAllReduce(input, output, count, NcclType(dtype), NcclOp(op), comm, s);
               });
}

absl::StatusOr<std::unique_ptr<CommHandle>> NcclCommunicator::AllGatherImpl(
    const void* input, void* output, size_t count_per_rank, DType dtype, Stream* stream) {
  return Issue(state_, OpLabel("all_gather", next_collective_++), stream, true, "ncclAllGather",
               [=](ncclComm_t comm, cudaStream_t s) {
                 return ncclAllGather(input, output, count_per_rank, NcclType(dtype), comm, s);
               });
}

absl::StatusOr<std::unique_ptr<CommHandle>> NcclCommunicator::ReduceScatterImpl(
    const void* input, void* output, size_t count_per_rank, DType dtype, ReduceOp op,
    Stream* stream) {
  return Issue(state_, OpLabel("reduce_scatter", next_collective_++), stream, true,
               "ncclReduceScatter", [=](ncclComm_t comm, cudaStream_t s) {
                 return ncclReduceScatter(input, output, count_per_rank, NcclType(dtype),
                                          NcclOp(op), comm, s);
               });
}

absl::StatusOr<std::unique_ptr<CommHandle>> NcclCommunicator::AllToAllImpl(
    const void* input, void* output, size_t count_per_rank, DType dtype, Stream* stream) {
  const int n = size();
  const size_t chunk_bytes = count_per_rank * DTypeSize(dtype);
  return Issue(state_, OpLabel("all_to_all", next_collective_++), stream, true,
               "ncclSend/ncclRecv (all-to-all)", [=](ncclComm_t comm, cudaStream_t s) {
                 // One group: a send and a receive per rank, this one included.
                 ncclResult_t result = ncclGroupStart();
                 for (int peer = 0; peer < n; ++peer) {
                   const ncclResult_t sent =
                       ncclSend(static_cast<const char*>(input) + peer * chunk_bytes,
                                count_per_rank, NcclType(dtype), peer, comm, s);
                   const ncclResult_t received =
                       ncclRecv(static_cast<char*>(output) + peer * chunk_bytes, count_per_rank,
                                NcclType(dtype), peer, comm, s);
                   if (!NcclFailed(result) && NcclFailed(sent)) result = sent;
                   if (!NcclFailed(result) && NcclFailed(received)) result = received;
                 }
                 const ncclResult_t end = ncclGroupEnd();  // always closes the group
                 return NcclFailed(result) ? result : end;
               });
}

absl::StatusOr<std::unique_ptr<CommHandle>> NcclCommunicator::BroadcastImpl(
    void* buffer, size_t count, DType dtype, int root, Stream* stream) {
  return Issue(state_, OpLabel("broadcast", next_collective_++), stream, true, "ncclBroadcast",
               [=](ncclComm_t comm, cudaStream_t s) {
                 return ncclBroadcast(buffer, buffer, count, NcclType(dtype), root, comm, s);
               });
}

absl::StatusOr<std::unique_ptr<CommHandle>> NcclCommunicator::BarrierImpl() {
  void* flag = state_->barrier_buffer;
  return Issue(state_, OpLabel("barrier", next_collective_++), nullptr, /*after_producer=*/false,
               "ncclAllReduce (barrier)", [=](ncclComm_t comm, cudaStream_t s) {
                 return ncclAllReduce(flag, flag, 1, ncclInt32, ncclSum, comm, s);
               });
}

absl::StatusOr<std::unique_ptr<CommHandle>> NcclCommunicator::SendImpl(
    const void* input, size_t count, DType dtype, int peer, int tag, Stream* stream) {
  std::string label = absl::StrCat(OpLabel("send", next_p2p_++), " [to ", PeerName(peer),
                                    ", tag ", tag, "]");
  return Post(state_, std::move(label), stream, /*is_send=*/true, const_cast<void*>(input), count,
              dtype, peer, tag);
}

absl::StatusOr<std::unique_ptr<CommHandle>> NcclCommunicator::RecvImpl(
    void* output, size_t count, DType dtype, int peer, int tag, Stream* stream) {
  std::string label = absl::StrCat(OpLabel("recv", next_p2p_++), " [from ", PeerName(peer),
                                    ", tag ", tag, "]");
  return Post(state_, std::move(label), stream, /*is_send=*/false, output, count, dtype, peer, tag);
}

namespace {

}  // namespace

absl::StatusOr<std::unique_ptr<Communicator>> NcclCommunicator::SplitImpl(
    const std::vector<int>& ranks, std::string name) {
  // A sub-group is a new NCCL communicator of its members only, its unique id exchanged through
  // the parent's store under a key every member derives alike (the parent's name, the world rank
  // list, how often that list was split before); non-members take no part. (ncclCommSplit of a
  // non-blocking communicator made no communicator on NCCL 2.28 in a one-GPU test, and it is
  // collective over the whole parent.)
  const int index = state_->splits_made[ranks]++;
  const int key =
      static_cast<int>(std::find(ranks.begin(), ranks.end(), rank()) - ranks.begin());
  std::vector<int> world;
  for (int r : ranks) world.push_back(world_ranks()[r]);
  NcclOptions options = state_->options;
  options.device = state_->device;
  options.name = absl::StrCat(state_->options.name, "/split[", absl::StrJoin(world, ","), "]/",
                              index);
  CAIRN_ASSIGN_OR_RETURN(std::shared_ptr<State> state,
                         Join(key, static_cast<int>(ranks.size()), state_->store, options));
  return std::unique_ptr<Communicator>(
      new NcclCommunicator(key, std::move(world), std::move(name), std::move(state)));
}

}  // namespace cairn::runtime
