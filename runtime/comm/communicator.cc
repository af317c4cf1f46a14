#include "runtime/comm/communicator.h"

#include <algorithm>
#include <cstdint>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/logging.h"
#include "common/status_macros.h"

namespace cairn::runtime {
namespace {

class CompletedHandle final : public CommHandle {
 public:
  explicit CompletedHandle(absl::Status status) : status_(std::move(status)) {}
  absl::Status Wait() override { return status_; }

 private:
  const absl::Status status_;
};

// Whether [a, a + a_bytes) and [b, b + b_bytes) share a byte. Compared as integers: the buffers may
// come from different allocations.
bool Overlap(const void* a, size_t a_bytes, const void* b, size_t b_bytes) {
  const auto a0 = reinterpret_cast<uintptr_t>(a);
  const auto b0 = reinterpret_cast<uintptr_t>(b);
  return a0 < b0 + b_bytes && b0 < a0 + a_bytes;
}

}  // namespace

absl::string_view ReduceOpName(ReduceOp op) {
  switch (op) {
    case ReduceOp::kSum:
      return "sum";
    case ReduceOp::kAvg:
      return "avg";
    case ReduceOp::kMax:
      return "max";
    case ReduceOp::kMin:
      return "min";
  }
  return "unknown";
}

std::unique_ptr<CommHandle> MakeCompletedHandle(absl::Status status) {
  return std::make_unique<CompletedHandle>(std::move(status));
}

Communicator::Communicator(int rank, std::vector<int> world_ranks, std::string name)
    : rank_(rank), world_ranks_(std::move(world_ranks)), name_(std::move(name)) {
  CAIRN_CHECK(!world_ranks_.empty());
  CAIRN_CHECK(rank_ >= 0 && rank_ < static_cast<int>(world_ranks_.size()));
}

std::string RankName(int group_rank, int world_rank) {
  if (world_rank == group_rank) return absl::StrCat("rank ", group_rank);
  return absl::StrCat("rank ", group_rank, " (world rank ", world_rank, ")");
}

std::string Communicator::PeerName(int group_rank) const {
  if (group_rank < 0 || group_rank >= size()) return absl::StrCat("rank ", group_rank);
  return RankName(group_rank, world_ranks_[group_rank]);
}

std::string Communicator::OpLabel(absl::string_view op, uint64_t sequence) const {
  return absl::StrCat(op, " #", sequence, " on group '", name_, "' (rank ", rank_, " of ", size(),
                      ", ", backend(), ")");
}

absl::Status Communicator::CheckDType(absl::string_view op, DType dtype) const {
  if (SupportsDType(dtype)) return absl::OkStatus();
  return absl::UnimplementedError(absl::StrCat(op, ": element type ", DTypeName(dtype),
                                               " is not supported by the ", backend(),
                                               " communicator"));
}

absl::Status Communicator::WaitFor(absl::StatusOr<std::unique_ptr<CommHandle>> handle,
                                   Stream* stream) {
  if (!handle.ok()) return handle.status();
  return stream != nullptr ? (*handle)->WaitOn(stream) : (*handle)->Wait();
}

namespace {

// Shared argument checks; `what` names the call in messages.
absl::Status CheckBuffer(absl::string_view what, absl::string_view role, const void* ptr,
                         size_t count) {
  if (count > 0 && ptr == nullptr) {
    return absl::InvalidArgumentError(absl::StrCat(what, ": ", role, " is null for ", count,
                                                   " elements"));
  }
  return absl::OkStatus();
}

}  // namespace

// The Start* calls validate once for every implementation, so each Impl may assume sane arguments.
absl::StatusOr<std::unique_ptr<CommHandle>> Communicator::StartAllReduce(const void* input,
                                                                         void* output, size_t count,
                                                                         DType dtype,
                                                                         ReduceOp op, Stream* stream) {
  CAIRN_RETURN_IF_ERROR(CheckDType("all_reduce", dtype));
  CAIRN_RETURN_IF_ERROR(CheckBuffer("all_reduce", "input", input, count));
  CAIRN_RETURN_IF_ERROR(CheckBuffer("all_reduce", "output", output, count));
  const size_t bytes = count * DTypeSize(dtype);
  if (input != output && Overlap(input, bytes, output, bytes)) {
    return absl::InvalidArgumentError(
        "all_reduce: input and output overlap without being the same buffer");
  }
  if (count == 0) return MakeCompletedHandle(absl::OkStatus());
  return AllReduceImpl(input, output, count, dtype, op, stream);
}

absl::StatusOr<std::unique_ptr<CommHandle>> Communicator::StartAllGather(const void* input,
                                                                         void* output,
                                                                         size_t count_per_rank,
                                                                         DType dtype, Stream* stream) {
  CAIRN_RETURN_IF_ERROR(CheckDType("all_gather", dtype));
  CAIRN_RETURN_IF_ERROR(CheckBuffer("all_gather", "input", input, count_per_rank));
  CAIRN_RETURN_IF_ERROR(CheckBuffer("all_gather", "output", output, count_per_rank));
  const size_t chunk_bytes = count_per_rank * DTypeSize(dtype);
  const void* own_slot = static_cast<const char*>(output) + rank() * chunk_bytes;
  if (input != own_slot && Overlap(input, chunk_bytes, output, chunk_bytes * size())) {
    return absl::InvalidArgumentError(absl::StrCat(
        "all_gather: input overlaps output without being its chunk ", rank(), " (in place)"));
  }
  if (count_per_rank == 0) return MakeCompletedHandle(absl::OkStatus());
  return AllGatherImpl(input, output, count_per_rank, dtype, stream);
}

absl::StatusOr<std::unique_ptr<CommHandle>> Communicator::StartReduceScatter(
    const void* input, void* output, size_t count_per_rank, DType dtype, ReduceOp op, Stream* stream) {
  CAIRN_RETURN_IF_ERROR(CheckDType("reduce_scatter", dtype));
  CAIRN_RETURN_IF_ERROR(CheckBuffer("reduce_scatter", "input", input, count_per_rank));
  CAIRN_RETURN_IF_ERROR(CheckBuffer("reduce_scatter", "output", output, count_per_rank));
  const size_t chunk_bytes = count_per_rank * DTypeSize(dtype);
  const void* own_slot = static_cast<const char*>(input) + rank() * chunk_bytes;
  if (output != own_slot && Overlap(output, chunk_bytes, input, chunk_bytes * size())) {
    return absl::InvalidArgumentError(absl::StrCat(
        "reduce_scatter: output overlaps input without being its chunk ", rank(), " (in place)"));
  }
  if (count_per_rank == 0) return MakeCompletedHandle(absl::OkStatus());
  return ReduceScatterImpl(input, output, count_per_rank, dtype, op, stream);
}

absl::StatusOr<std::unique_ptr<CommHandle>> Communicator::StartAllToAll(const void* input,
                                                                        void* output,
                                                                        size_t count_per_rank,
                                                                        DType dtype, Stream* stream) {
  CAIRN_RETURN_IF_ERROR(CheckDType("all_to_all", dtype));
  CAIRN_RETURN_IF_ERROR(CheckBuffer("all_to_all", "input", input, count_per_rank));
  CAIRN_RETURN_IF_ERROR(CheckBuffer("all_to_all", "output", output, count_per_rank));
  const size_t bytes = count_per_rank * DTypeSize(dtype) * size();
  if (Overlap(input, bytes, output, bytes)) {
    return absl::InvalidArgumentError("all_to_all: input and output overlap");
  }
  if (count_per_rank == 0) return MakeCompletedHandle(absl::OkStatus());
  return AllToAllImpl(input, output, count_per_rank, dtype, stream);
}

absl::StatusOr<std::unique_ptr<CommHandle>> Communicator::StartBroadcast(void* buffer, size_t count,
                                                                         DType dtype, int root, Stream* stream) {
  CAIRN_RETURN_IF_ERROR(CheckDType("broadcast", dtype));
  if (root < 0 || root >= size()) {
    return absl::InvalidArgumentError(
        absl::StrCat("broadcast: root ", root, " is not a rank of group '", name(), "' (size ",
                     size(), ")"));
  }
  CAIRN_RETURN_IF_ERROR(CheckBuffer("broadcast", "buffer", buffer, count));
  if (count == 0) return MakeCompletedHandle(absl::OkStatus());
  return BroadcastImpl(buffer, count, dtype, root, stream);
}

absl::StatusOr<std::unique_ptr<CommHandle>> Communicator::BarrierAsync() { return BarrierImpl(); }

namespace {

absl::Status CheckPeer(absl::string_view what, int peer, int tag, int rank, int size,
                       const std::string& group) {
  if (peer < 0 || peer >= size) {
    return absl::InvalidArgumentError(absl::StrCat(what, ": peer ", peer, " is not a rank of group '",
                                                   group, "' (size ", size, ")"));
  }
  if (peer == rank) {
    return absl::InvalidArgumentError(absl::StrCat(what, ": peer ", peer, " is this rank"));
  }
  if (tag < 0) return absl::InvalidArgumentError(absl::StrCat(what, ": negative tag ", tag));
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<std::unique_ptr<CommHandle>> Communicator::StartSend(const void* input, size_t count,
                                                                    DType dtype, int peer,
                                                                    int tag, Stream* stream) {
  CAIRN_RETURN_IF_ERROR(CheckDType("send", dtype));
  CAIRN_RETURN_IF_ERROR(CheckPeer("send", peer, tag, rank(), size(), name()));
  CAIRN_RETURN_IF_ERROR(CheckBuffer("send", "input", input, count));
  if (count == 0) return MakeCompletedHandle(absl::OkStatus());
  return SendImpl(input, count, dtype, peer, tag, stream);
}

absl::StatusOr<std::unique_ptr<CommHandle>> Communicator::StartRecv(void* output, size_t count,
                                                                    DType dtype, int peer,
                                                                    int tag, Stream* stream) {
  CAIRN_RETURN_IF_ERROR(CheckDType("recv", dtype));
  CAIRN_RETURN_IF_ERROR(CheckPeer("recv", peer, tag, rank(), size(), name()));
  CAIRN_RETURN_IF_ERROR(CheckBuffer("recv", "output", output, count));
  if (count == 0) return MakeCompletedHandle(absl::OkStatus());
  return RecvImpl(output, count, dtype, peer, tag, stream);
}

absl::StatusOr<std::unique_ptr<Communicator>> Communicator::Split(const std::vector<int>& ranks,
                                                                  absl::string_view name) {
  if (ranks.empty()) return absl::InvalidArgumentError("split: empty rank list");
  std::vector<int> sorted = ranks;
  std::sort(sorted.begin(), sorted.end());
  for (size_t i = 0; i < sorted.size(); ++i) {
    if (sorted[i] < 0 || sorted[i] >= size()) {
      return absl::InvalidArgumentError(absl::StrCat("split: rank ", sorted[i],
                                                     " is not a rank of group '", this->name(),
                                                     "' (size ", size(), ")"));
    }
    if (i > 0 && sorted[i] == sorted[i - 1]) {
      return absl::InvalidArgumentError(
          absl::StrCat("split: rank ", sorted[i], " appears twice in [", absl::StrJoin(ranks, ","),
                       "]"));
    }
  }
  std::string group_name(name);
  if (group_name.empty()) {
    std::vector<int> world;
    world.reserve(ranks.size());
    for (int r : ranks) world.push_back(world_ranks_[r]);
    group_name = absl::StrCat(this->name(), "/[", absl::StrJoin(world, ","), "]");
  }
  if (std::find(ranks.begin(), ranks.end(), rank()) == ranks.end()) {
    return std::unique_ptr<Communicator>();
  }
  return SplitImpl(ranks, std::move(group_name));
}

absl::StatusOr<std::unique_ptr<CommHandle>> Communicator::AllToAllImpl(const void*, void*, size_t,
                                                                       DType, Stream*) {
  return absl::UnimplementedError(
      absl::StrCat("all_to_all is not implemented by the ", backend(), " communicator"));
}

absl::StatusOr<std::unique_ptr<CommHandle>> Communicator::SendImpl(const void*, size_t, DType,
                                                                   int, int, Stream*) {
  return absl::UnimplementedError(
      absl::StrCat("send is not implemented by the ", backend(), " communicator"));
}

absl::StatusOr<std::unique_ptr<CommHandle>> Communicator::RecvImpl(void*, size_t, DType, int,
                                                                   int, Stream*) {
  return absl::UnimplementedError(
      absl::StrCat("recv is not implemented by the ", backend(), " communicator"));
}

}  // namespace cairn::runtime
