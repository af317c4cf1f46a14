#include "runtime/comm/staged/staged_communicator.h"

#include <cstdlib>
#include <map>
#include <utility>

#include "absl/base/thread_annotations.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "common/logging.h"
#include "common/status_macros.h"
#include "runtime/compute/compute_backend.h"

namespace cairn::runtime {
namespace {

// Staging buffers are host memory from the C allocator, 64-byte aligned.
class BackendMemory final : public StagingMemory {
 public:
  explicit BackendMemory(ComputeBackend* backend) : backend_(backend) {}

  std::string name() const override { return backend_->name(); }
  absl::StatusOr<void*> AllocateStaging(size_t bytes) override {
    constexpr size_t kAlign = 64;
    void* p = std::aligned_alloc(kAlign, (bytes + kAlign - 1) / kAlign * kAlign);
    if (p == nullptr) {
      return absl::ResourceExhaustedError(
          absl::StrCat("staged: cannot allocate ", bytes, " bytes of host staging memory"));
    }
    return p;
  }
  void FreeStaging(void* staging) override { std::free(staging); }
  absl::Status CopyToStaging(void* staging, const void* buffer, size_t bytes,
                             Stream* stream) override {
    return backend_->CopyToHost(staging, buffer, static_cast<int64_t>(bytes), stream);
  }
  absl::Status CopyFromStaging(void* buffer, const void* staging, size_t bytes,
                               Stream* stream) override {
    return backend_->CopyToDevice(buffer, staging, static_cast<int64_t>(bytes), stream);
  }
  absl::Status Synchronize(Stream* stream) override { return backend_->Synchronize(stream); }

 private:
  ComputeBackend* const backend_;
};

// Staging buffers shared by a communicator and its sub-groups. A buffer is leased to one operation
// from its start until its handle completes. Acquire takes the smallest free buffer that fits, else
// replaces the largest free one (or adds one) with a buffer of the next power of two: in a steady
// state of operations nothing is allocated. Buffers of failed operations are not reused (a device
// communicator may still be writing them) and are freed with the pool. Thread-safe.
class StagingPool {
 public:
  explicit StagingPool(std::shared_ptr<StagingMemory> memory) : memory_(std::move(memory)) {}
  ~StagingPool() {
    for (const auto& [capacity, ptr] : free_) memory_->FreeStaging(ptr);
    for (void* ptr : retired_) memory_->FreeStaging(ptr);
  }

  struct Lease {
    char* ptr = nullptr;
    size_t capacity = 0;
  };

  absl::StatusOr<Lease> Acquire(size_t bytes) {
    void* to_free = nullptr;
    {
      absl::MutexLock lock(&mu_);
      auto fit = free_.lower_bound(bytes);
      if (fit != free_.end()) {
        Lease lease{static_cast<char*>(fit->second), fit->first};
        free_.erase(fit);
        return lease;
      }
      if (!free_.empty()) {  // too small for this operation: replace the largest
        auto largest = std::prev(free_.end());
        to_free = largest->second;
        free_.erase(largest);
      }
    }
    if (to_free != nullptr) memory_->FreeStaging(to_free);
    size_t capacity = 4096;
    while (capacity < bytes) capacity *= 2;
    CAIRN_ASSIGN_OR_RETURN(void* ptr, memory_->AllocateStaging(capacity));
    return Lease{static_cast<char*>(ptr), capacity};
  }

  void Release(const Lease& lease, bool reusable) {
    if (lease.ptr == nullptr) return;
    absl::MutexLock lock(&mu_);
    if (reusable) {
      free_.emplace(lease.capacity, lease.ptr);
    } else {
      retired_.push_back(lease.ptr);
    }
  }

  StagingMemory& memory() { return *memory_; }

 private:
  const std::shared_ptr<StagingMemory> memory_;
  absl::Mutex mu_;
  std::multimap<size_t, void*> free_ ABSL_GUARDED_BY(mu_);  // capacity -> buffer
  std::vector<void*> retired_ ABSL_GUARDED_BY(mu_);
};

}  // namespace

// Per communicator: the pool (shared with sub-groups) and this communicator's own device failure.
struct StagedCommunicator::State {
  explicit State(std::shared_ptr<StagingPool> p) : pool(std::move(p)) {}

  const std::shared_ptr<StagingPool> pool;
  absl::Mutex mu;
  absl::Status failure ABSL_GUARDED_BY(mu);

  absl::Status FirstFailure() {
    absl::MutexLock lock(&mu);
    return failure;
  }
  // Records a device failure of this rank (the first one wins) and aborts the wrapped communicator,
  // so that peers waiting on this rank fail fast. Returns `status`.
  absl::Status Fail(absl::Status status, Communicator& host) {
    {
      absl::MutexLock lock(&mu);
      if (!failure.ok()) return status;
      failure = status;
    }
    host.Abort(status.message());
    return status;
  }
};

namespace {

absl::Status Unusable(absl::string_view label, const absl::Status& first) {
  return absl::Status(first.code(), absl::StrCat(label, ": communicator unusable after an earlier "
                                                        "failure: ",
                                                 first.message()));
}

absl::Status DeviceFailure(absl::string_view label, absl::string_view what,
                           const absl::Status& status) {
  return absl::Status(status.code(), absl::StrCat(label, ": ", what, ": ", status.message()));
}

// The wrapped operation's handle, followed by the copies of the outputs back to the caller's buffers.
class StagedHandle final : public CommHandle {
 public:
  struct Out {
    void* buffer;
    const char* staging;
    size_t bytes;
  };

  StagedHandle(std::unique_ptr<CommHandle> inner, std::shared_ptr<Communicator> host,
               std::shared_ptr<StagedCommunicator::State> state, StagingPool::Lease lease,
               std::vector<Out> outs, Stream* stream, std::string label)
      : inner_(std::move(inner)),
        host_(std::move(host)),
        state_(std::move(state)),
        lease_(lease),
        outs_(std::move(outs)),
        stream_(stream),
        label_(std::move(label)) {}

  ~StagedHandle() override { Wait().IgnoreError(); }

  absl::Status Wait() override {
    absl::MutexLock lock(&mu_);
    if (done_) return result_;
    done_ = true;
    result_ = inner_->Wait();
    if (result_.ok()) result_ = CopyOut();
    state_->pool->Release(lease_, /*reusable=*/result_.ok());
    return result_;
  }

 private:
  absl::Status CopyOut() {
    StagingMemory& memory = state_->pool->memory();
    for (const Out& out : outs_) {
      absl::Status copied = memory.CopyFromStaging(out.buffer, out.staging, out.bytes, stream_);
      if (!copied.ok()) {
        return state_->Fail(DeviceFailure(label_, "copying the result to device memory", copied),
                            *host_);
      }
    }
    if (outs_.empty()) return absl::OkStatus();
    absl::Status synced = memory.Synchronize(stream_);
    if (!synced.ok()) {
      return state_->Fail(DeviceFailure(label_, "waiting for the copy of the result", synced),
                          *host_);
    }
    return absl::OkStatus();
  }

  const std::unique_ptr<CommHandle> inner_;
  const std::shared_ptr<Communicator> host_;
  const std::shared_ptr<StagedCommunicator::State> state_;
  const StagingPool::Lease lease_;
  const std::vector<Out> outs_;
  Stream* const stream_;
  const std::string label_;
  absl::Mutex mu_;
  bool done_ ABSL_GUARDED_BY(mu_) = false;
  absl::Status result_ ABSL_GUARDED_BY(mu_);
};

}  // namespace

std::shared_ptr<StagingMemory> BackendStagingMemory(ComputeBackend* backend) {
  CAIRN_CHECK(backend != nullptr);
  return std::make_shared<BackendMemory>(backend);
}

std::unique_ptr<StagedCommunicator> StagedCommunicator::Create(std::unique_ptr<Communicator> host,
                                                               ComputeBackend* backend) {
  return Create(std::move(host), BackendStagingMemory(backend));
}

std::unique_ptr<StagedCommunicator> StagedCommunicator::Create(
    std::unique_ptr<Communicator> host, std::shared_ptr<StagingMemory> memory) {
  CAIRN_CHECK(host != nullptr);
  CAIRN_CHECK(memory != nullptr);
  auto state = std::make_shared<State>(std::make_shared<StagingPool>(std::move(memory)));
  return std::unique_ptr<StagedCommunicator>(
      new StagedCommunicator(std::shared_ptr<Communicator>(std::move(host)), std::move(state)));
}

StagedCommunicator::StagedCommunicator(std::shared_ptr<Communicator> host,
                                       std::shared_ptr<State> state)
    : Communicator(host->rank(), host->world_ranks(), host->name()),
      host_(std::move(host)),
      state_(std::move(state)) {}

StagedCommunicator::~StagedCommunicator() = default;

void StagedCommunicator::Abort(absl::string_view reason) { host_->Abort(reason); }

absl::StatusOr<std::unique_ptr<CommHandle>> StagedCommunicator::Run(
    absl::string_view op, size_t staging_bytes, const std::vector<Copy>& copy_in,
    std::vector<Copy> copy_out, Stream* stream,
    const std::function<absl::StatusOr<std::unique_ptr<CommHandle>>(char* staging)>& start) {
  const std::string label = OpLabel(op, next_op_++);
  absl::Status first = state_->FirstFailure();
  if (!first.ok()) return MakeCompletedHandle(Unusable(label, first));
  StagingMemory& memory = state_->pool->memory();
  absl::StatusOr<StagingPool::Lease> lease = state_->pool->Acquire(staging_bytes);
  if (!lease.ok()) {
    return MakeCompletedHandle(state_->Fail(
        DeviceFailure(label, "allocating staging memory", lease.status()), *host_));
  }
  auto fail = [&](absl::string_view what, const absl::Status& status) {
    state_->pool->Release(*lease, /*reusable=*/true);
    return MakeCompletedHandle(state_->Fail(DeviceFailure(label, what, status), *host_));
  };
  for (const Copy& in : copy_in) {
    absl::Status copied =
        memory.CopyToStaging(lease->ptr + in.staging_offset, in.buffer, in.bytes, stream);
    if (!copied.ok()) return fail("copying the input to staging memory", copied);
  }
  // The inputs are in staging memory once the stream has drained; with no inputs (recv, a
  // broadcast's non-root) the outputs are written on the stream later, in order.
  if (!copy_in.empty()) {
    absl::Status synced = memory.Synchronize(stream);
    if (!synced.ok()) return fail("waiting for the stream that produces the input", synced);
  }
  absl::StatusOr<std::unique_ptr<CommHandle>> inner = start(lease->ptr);
  if (!inner.ok()) {
    state_->pool->Release(*lease, /*reusable=*/true);
    return inner.status();
  }
  std::vector<StagedHandle::Out> outs;
  outs.reserve(copy_out.size());
  for (const Copy& out : copy_out) {
    outs.push_back({out.buffer, lease->ptr + out.staging_offset, out.bytes});
  }
  return std::unique_ptr<CommHandle>(new StagedHandle(*std::move(inner), host_, state_, *lease,
                                                      std::move(outs), stream, label));
}

absl::StatusOr<std::unique_ptr<CommHandle>> StagedCommunicator::AllReduceImpl(
    const void* input, void* output, size_t count, DType dtype, ReduceOp op, Stream* stream) {
  const size_t bytes = count * DTypeSize(dtype);
  return Run("all_reduce", bytes, {{const_cast<void*>(input), 0, bytes}}, {{output, 0, bytes}},
             stream, [&](char* staging) {
               return host_->StartAllReduce(staging, staging, count, dtype, op);
             });
}

absl::StatusOr<std::unique_ptr<CommHandle>> StagedCommunicator::AllGatherImpl(
    const void* input, void* output, size_t count_per_rank, DType dtype, Stream* stream) {
  const size_t chunk = count_per_rank * DTypeSize(dtype);
  const size_t own = rank() * chunk;
  // In place on the staging buffer: this rank's chunk goes in at its slot, the whole buffer out.
  return Run("all_gather", chunk * size(), {{const_cast<void*>(input), own, chunk}},
             {{output, 0, chunk * size()}}, stream, [&](char* staging) {
               return host_->StartAllGather(staging + own, staging, count_per_rank, dtype);
             });
}

absl::StatusOr<std::unique_ptr<CommHandle>> StagedCommunicator::ReduceScatterImpl(
    const void* input, void* output, size_t count_per_rank, DType dtype, ReduceOp op,
    Stream* stream) {
  const size_t chunk = count_per_rank * DTypeSize(dtype);
  const size_t own = rank() * chunk;
  // In place on the staging buffer: the whole input goes in, this rank's chunk out.
  return Run("reduce_scatter", chunk * size(), {{const_cast<void*>(input), 0, chunk * size()}},
             {{output, own, chunk}}, stream, [&](char* staging) {
               return host_->StartReduceScatter(staging, staging + own, count_per_rank, dtype, op);
             });
}

absl::StatusOr<std::unique_ptr<CommHandle>> StagedCommunicator::AllToAllImpl(
    const void* input, void* output, size_t count_per_rank, DType dtype, Stream* stream) {
  const size_t bytes = count_per_rank * DTypeSize(dtype) * size();
  // Input and output may not overlap: two halves of one staging buffer.
  return Run("all_to_all", 2 * bytes, {{const_cast<void*>(input), 0, bytes}},
             {{output, bytes, bytes}}, stream, [&](char* staging) {
               return host_->StartAllToAll(staging, staging + bytes, count_per_rank, dtype);
             });
}

absl::StatusOr<std::unique_ptr<CommHandle>> StagedCommunicator::BroadcastImpl(
    void* buffer, size_t count, DType dtype, int root, Stream* stream) {
  const size_t bytes = count * DTypeSize(dtype);
  std::vector<Copy> in, out;
  if (rank() == root) {
    in.push_back({buffer, 0, bytes});  // the root's buffer does not change
  } else {
    out.push_back({buffer, 0, bytes});
  }
  return Run("broadcast", bytes, in, std::move(out), stream, [&](char* staging) {
    return host_->StartBroadcast(staging, count, dtype, root);
  });
}

absl::StatusOr<std::unique_ptr<CommHandle>> StagedCommunicator::BarrierImpl() {
  const std::string label = OpLabel("barrier", next_op_++);
  absl::Status first = state_->FirstFailure();
  if (!first.ok()) return MakeCompletedHandle(Unusable(label, first));
  return host_->BarrierAsync();
}

absl::StatusOr<std::unique_ptr<CommHandle>> StagedCommunicator::SendImpl(
    const void* input, size_t count, DType dtype, int peer, int tag, Stream* stream) {
  const size_t bytes = count * DTypeSize(dtype);
  return Run("send", bytes, {{const_cast<void*>(input), 0, bytes}}, {}, stream,
             [&](char* staging) { return host_->StartSend(staging, count, dtype, peer, tag); });
}

absl::StatusOr<std::unique_ptr<CommHandle>> StagedCommunicator::RecvImpl(
    void* output, size_t count, DType dtype, int peer, int tag, Stream* stream) {
  const size_t bytes = count * DTypeSize(dtype);
  return Run("recv", bytes, {}, {{output, 0, bytes}}, stream,
             [&](char* staging) { return host_->StartRecv(staging, count, dtype, peer, tag); });
}

absl::StatusOr<std::unique_ptr<Communicator>> StagedCommunicator::SplitImpl(
    const std::vector<int>& ranks, std::string name) {
  CAIRN_ASSIGN_OR_RETURN(std::unique_ptr<Communicator> child, host_->Split(ranks, name));
  if (child == nullptr) {
    return absl::InternalError(absl::StrCat("split of group '", this->name(), "' into '", name,
                                            "': the ", host_->backend(),
                                            " communicator returned no group for a member"));
  }
  auto state = std::make_shared<State>(state_->pool);
  return std::unique_ptr<Communicator>(
      new StagedCommunicator(std::shared_ptr<Communicator>(std::move(child)), std::move(state)));
}

}  // namespace cairn::runtime
