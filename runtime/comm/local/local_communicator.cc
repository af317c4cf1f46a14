#include "runtime/comm/local/local_communicator.h"

#include <algorithm>
#include <cstring>
#include <deque>
#include <limits>
#include <thread>
#include <tuple>
#include <utility>

#include "absl/base/thread_annotations.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/synchronization/mutex.h"
#include "common/logging.h"
#include "runtime/comm/reduce_ops.h"

namespace cairn::runtime {
namespace internal {

// One collective operation of the group, shared by its ranks until all have read the inputs.
struct LocalCollective {
  explicit LocalCollective(int size)
      : inputs(size, nullptr), arrived(size, false), signatures(size) {}
  std::vector<const void*> inputs;
  std::vector<bool> arrived;
  std::vector<std::string> signatures;  // what each rank called, for mismatch messages
  int num_arrived = 0;
  int num_read = 0;
  absl::Status mismatch;
};

// One posted send or receive. Completed (done) by whichever side arrives second.
struct LocalP2P {
  const void* send_data = nullptr;
  void* recv_data = nullptr;
  size_t count = 0;
  DType dtype = DType::kFloat32;
  bool done = false;
  absl::Status status;
};

struct LocalGroup {
  LocalGroup(std::vector<int> world, std::string group_name, LocalOptions opts)
      : world_ranks(std::move(world)),
        name(std::move(group_name)),
        options(std::move(opts)),
        rank_status(world_ranks.size()) {}

  int size() const { return static_cast<int>(world_ranks.size()); }

  const std::vector<int> world_ranks;
  const std::string name;
  const LocalOptions options;

  absl::Mutex mu;
  // OK while the rank takes part; otherwise why it stopped (left, aborted, failed).
  std::vector<absl::Status> rank_status ABSL_GUARDED_BY(mu);
  std::map<uint64_t, std::shared_ptr<LocalCollective>> collectives ABSL_GUARDED_BY(mu);
  // Posted and not yet matched, keyed by (source, destination, tag), in posting order.
  using P2PKey = std::tuple<int, int, int>;
  std::map<P2PKey, std::deque<std::shared_ptr<LocalP2P>>> sends ABSL_GUARDED_BY(mu);
  std::map<P2PKey, std::deque<std::shared_ptr<LocalP2P>>> recvs ABSL_GUARDED_BY(mu);
  // Sub-groups being created: (rank list, how many times it was split before) -> group, members
  // that have taken it.
  struct PendingSplit {
    std::shared_ptr<LocalGroup> group;
    int taken = 0;
  };
  std::map<std::pair<std::vector<int>, int>, PendingSplit> splits ABSL_GUARDED_BY(mu);
};

}  // namespace internal

namespace {

using internal::LocalCollective;
using internal::LocalGroup;
using internal::LocalP2P;

// The status a rank's later operations return once it has failed: the first failure's code.
absl::Status Unusable(const std::string& label, const absl::Status& first) {
  return absl::Status(first.code(), absl::StrCat(label, ": communicator unusable after an earlier "
                                                        "failure: ",
                                                 first.message()));
}

// result = op over ranks (in rank order) of inputs[rank][offset + i], i < count, as `dtype`
// elements. The reference: it accumulates in the element type's arithmetic type (fp32 for bf16) and
// rounds once at the end, which a ring cannot do.
void ReduceInRankOrder(const std::vector<const void*>& inputs, size_t offset, size_t count,
                       DType dtype, ReduceOp op, std::vector<char>* result) {
  result->resize(count * DTypeSize(dtype));
  internal::VisitDType(dtype, [&](auto tag) {
    using T = typename decltype(tag)::type;
    using M = internal::ElementMath<T>;
    using Acc = typename M::Acc;
    std::vector<Acc> acc(count);
    std::vector<Acc> incoming(count);
    const T* first = static_cast<const T*>(inputs[0]) + offset;
    for (size_t i = 0; i < count; ++i) acc[i] = M::Widen(first[i]);
    for (size_t r = 1; r < inputs.size(); ++r) {
      const T* in = static_cast<const T*>(inputs[r]) + offset;
      for (size_t i = 0; i < count; ++i) incoming[i] = M::Widen(in[i]);
      internal::ReduceInto(op, acc.data(), acc.data(), incoming.data(), count);
    }
    if (op == ReduceOp::kAvg) internal::DivideBy(acc.data(), count, inputs.size());
    T* out = reinterpret_cast<T*>(result->data());
    for (size_t i = 0; i < count; ++i) out[i] = M::Narrow(acc[i]);
  });
}

class P2PHandle final : public CommHandle {
 public:
  P2PHandle(std::shared_ptr<LocalGroup> group, std::shared_ptr<LocalP2P> op,
            LocalGroup::P2PKey key, bool is_send, int self, int peer, std::string label,
            std::string peer_name)
      : group_(std::move(group)),
        op_(std::move(op)),
        key_(key),
        is_send_(is_send),
        self_(self),
        peer_(peer),
        label_(std::move(label)),
        peer_name_(std::move(peer_name)),
        deadline_(absl::Now() + group_->options.timeout) {}

  ~P2PHandle() override {
    if (!waited_) Wait().IgnoreError();
  }

  absl::Status Wait() override {
    if (waited_) return result_;
    waited_ = true;
    LocalGroup& g = *group_;
    absl::MutexLock lock(&g.mu);
    auto ready = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(g.mu) {
      return op_->done || !g.rank_status[peer_].ok() || !g.rank_status[self_].ok();
    };
    g.mu.AwaitWithDeadline(absl::Condition(&ready), deadline_);
    if (op_->done) {
      result_ = op_->status;
      return result_;
    }
    // Not matched: withdraw the posting so that a late peer cannot touch the buffer.
    auto& queue = is_send_ ? g.sends[key_] : g.recvs[key_];
    queue.erase(std::remove(queue.begin(), queue.end(), op_), queue.end());
    if (!g.rank_status[self_].ok()) {
      result_ = Unusable(label_, g.rank_status[self_]);
    } else if (!g.rank_status[peer_].ok()) {
      result_ = absl::UnavailableError(absl::StrCat(label_, ": ", peer_name_,
                                                    " left the group: ",
                                                    g.rank_status[peer_].message()));
      g.rank_status[self_] = result_;
    } else {
      result_ = absl::DeadlineExceededError(
          absl::StrCat(label_, ": ", peer_name_, " did not post the matching ",
                       is_send_ ? "recv" : "send", " within ",
                       absl::FormatDuration(g.options.timeout)));
      g.rank_status[self_] = result_;
    }
    return result_;
  }

 private:
  const std::shared_ptr<LocalGroup> group_;
  const std::shared_ptr<LocalP2P> op_;
  const LocalGroup::P2PKey key_;
  const bool is_send_;
  const int self_;
  const int peer_;
  const std::string label_;
  const std::string peer_name_;
  const absl::Time deadline_;
  bool waited_ = false;
  absl::Status result_;
};

}  // namespace

std::vector<std::unique_ptr<Communicator>> LocalCommunicator::CreateGroup(
    int size, const LocalOptions& options) {
  CAIRN_CHECK(size >= 1) << "group size " << size;
  std::vector<int> world(size);
  for (int r = 0; r < size; ++r) world[r] = r;
  auto group = std::make_shared<LocalGroup>(world, options.name, options);
  std::vector<std::unique_ptr<Communicator>> comms;
  for (int r = 0; r < size; ++r) {
    comms.push_back(std::unique_ptr<Communicator>(new LocalCommunicator(group, r)));
  }
  return comms;
}

LocalCommunicator::LocalCommunicator(std::shared_ptr<LocalGroup> group, int rank)
    : Communicator(rank, group->world_ranks, group->name), group_(std::move(group)) {}

LocalCommunicator::~LocalCommunicator() {
  absl::MutexLock lock(&group_->mu);
  if (group_->rank_status[rank()].ok()) {
    group_->rank_status[rank()] =
        absl::UnavailableError(absl::StrCat(PeerName(rank()), " destroyed its communicator"));
  }
}

void LocalCommunicator::Abort(absl::string_view reason) {
  absl::MutexLock lock(&group_->mu);
  if (group_->rank_status[rank()].ok()) {
    group_->rank_status[rank()] =
        absl::AbortedError(absl::StrCat(PeerName(rank()), " aborted: ", reason));
  }
}

absl::Status LocalCommunicator::RunCollective(
    const std::string& op, const std::string& signature, const void* input, void* output,
    const std::function<void(const std::vector<const void*>&, std::vector<char>*)>& compute) {
  LocalGroup& g = *group_;
  const uint64_t seq = next_collective_++;
  const std::string label = OpLabel(op, seq);
  const int n = size();
  const int me = rank();
  std::shared_ptr<LocalCollective> c;
  {
    absl::MutexLock lock(&g.mu);
    if (!g.rank_status[me].ok()) return Unusable(label, g.rank_status[me]);
    std::shared_ptr<LocalCollective>& slot = g.collectives[seq];
    if (slot == nullptr) slot = std::make_shared<LocalCollective>(n);
    c = slot;
    c->inputs[me] = input;
    c->arrived[me] = true;
    c->signatures[me] = signature;
    ++c->num_arrived;
    for (int r = 0; r < n && c->mismatch.ok(); ++r) {
      if (c->arrived[r] && c->signatures[r] != signature) {
        c->mismatch = absl::InvalidArgumentError(absl::StrCat(
            "collective mismatch on group '", g.name, "': ", PeerName(r), " called ",
            c->signatures[r], " but ", PeerName(me), " called ", signature, " as operation #",
            seq));
      }
    }
    auto missing_peer_gone = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(g.mu) {
      for (int r = 0; r < n; ++r) {
        if (!c->arrived[r] && !g.rank_status[r].ok()) return r;
      }
      return -1;
    };
    auto ready = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(g.mu) {
      return c->num_arrived == n || !c->mismatch.ok() || !g.rank_status[me].ok() ||
             missing_peer_gone() >= 0;
    };
    g.mu.AwaitWithTimeout(absl::Condition(&ready), g.options.timeout);
    if (c->num_arrived < n || !c->mismatch.ok() || !g.rank_status[me].ok()) {
      // Failing before everyone arrived: withdraw, so no one reads this rank's buffers, and leave
      // the group, so the others fail fast too.
      c->arrived[me] = false;
      c->inputs[me] = nullptr;
      --c->num_arrived;
      absl::Status failure;
      const int gone = missing_peer_gone();
      if (!g.rank_status[me].ok()) {
        return Unusable(label, g.rank_status[me]);
      } else if (!c->mismatch.ok()) {
        failure = c->mismatch;
      } else if (gone >= 0) {
        failure = absl::UnavailableError(absl::StrCat(label, ": ", PeerName(gone),
                                                      " left the group: ",
                                                      g.rank_status[gone].message()));
      } else {
        std::vector<std::string> absent;
        for (int r = 0; r < n; ++r) {
          if (!c->arrived[r] && r != me) absent.push_back(PeerName(r));
        }
        failure = absl::DeadlineExceededError(
            absl::StrCat(label, ": ", absl::StrJoin(absent, ", "), " did not join within ",
                         absl::FormatDuration(g.options.timeout)));
      }
      g.rank_status[me] = failure;
      return failure;
    }
  }
  // Every rank has arrived and none returns before all have read: the inputs are stable.
  std::vector<char> result;
  compute(c->inputs, &result);
  {
    absl::MutexLock lock(&g.mu);
    if (++c->num_read == n) g.collectives.erase(seq);
    auto all_read = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(g.mu) { return c->num_read == n; };
    g.mu.Await(absl::Condition(&all_read));
  }
  // Only now may the output be written: in place, it is this rank's input, read by everyone.
  if (output != nullptr && !result.empty()) std::memcpy(output, result.data(), result.size());
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<CommHandle>> LocalCommunicator::AllReduceImpl(const void* input,
                                                                             void* output,
                                                                             size_t count,
                                                                             DType dtype,
                                                                             ReduceOp op, Stream*) {
  const std::string signature = absl::StrCat("all_reduce(count=", count, ", ",
                                             DTypeName(dtype), ", ", ReduceOpName(op), ")");
  return MakeCompletedHandle(RunCollective(
      "all_reduce", signature, input, output,
      [&](const std::vector<const void*>& inputs, std::vector<char>* result) {
        ReduceInRankOrder(inputs, 0, count, dtype, op, result);
      }));
}

absl::StatusOr<std::unique_ptr<CommHandle>> LocalCommunicator::AllGatherImpl(const void* input,
                                                                             void* output,
                                                                             size_t count_per_rank,
                                                                             DType dtype, Stream*) {
  const std::string signature =
      absl::StrCat("all_gather(count=", count_per_rank, ", ", DTypeName(dtype), ")");
  const size_t chunk_bytes = count_per_rank * DTypeSize(dtype);
  return MakeCompletedHandle(RunCollective(
      "all_gather", signature, input, output,
      [&](const std::vector<const void*>& inputs, std::vector<char>* result) {
        result->resize(inputs.size() * chunk_bytes);
        for (size_t r = 0; r < inputs.size(); ++r) {
          std::memcpy(result->data() + r * chunk_bytes, inputs[r], chunk_bytes);
        }
      }));
}

absl::StatusOr<std::unique_ptr<CommHandle>> LocalCommunicator::ReduceScatterImpl(
    const void* input, void* output, size_t count_per_rank, DType dtype, ReduceOp op, Stream*) {
  const std::string signature = absl::StrCat("reduce_scatter(count=", count_per_rank, ", ",
                                             DTypeName(dtype), ", ", ReduceOpName(op), ")");
  const size_t offset = rank() * count_per_rank;
  return MakeCompletedHandle(RunCollective(
      "reduce_scatter", signature, input, output,
      [&](const std::vector<const void*>& inputs, std::vector<char>* result) {
        ReduceInRankOrder(inputs, offset, count_per_rank, dtype, op, result);
      }));
}

absl::StatusOr<std::unique_ptr<CommHandle>> LocalCommunicator::AllToAllImpl(const void* input,
                                                                            void* output,
                                                                            size_t count_per_rank,
                                                                            DType dtype, Stream*) {
  const std::string signature =
      absl::StrCat("all_to_all(count=", count_per_rank, ", ", DTypeName(dtype), ")");
  const size_t chunk_bytes = count_per_rank * DTypeSize(dtype);
  const size_t me = rank();
  return MakeCompletedHandle(RunCollective(
      "all_to_all", signature, input, output,
      [&](const std::vector<const void*>& inputs, std::vector<char>* result) {
        result->resize(inputs.size() * chunk_bytes);
        for (size_t r = 0; r < inputs.size(); ++r) {
          std::memcpy(result->data() + r * chunk_bytes,
                      static_cast<const char*>(inputs[r]) + me * chunk_bytes, chunk_bytes);
        }
      }));
}

absl::StatusOr<std::unique_ptr<CommHandle>> LocalCommunicator::BroadcastImpl(void* buffer,
                                                                             size_t count,
                                                                             DType dtype,
                                                                             int root, Stream*) {
  const std::string signature = absl::StrCat("broadcast(count=", count, ", ", DTypeName(dtype),
                                             ", root=", root, ")");
  const size_t bytes = count * DTypeSize(dtype);
  return MakeCompletedHandle(RunCollective(
      "broadcast", signature, buffer, buffer,
      [&](const std::vector<const void*>& inputs, std::vector<char>* result) {
        const char* src = static_cast<const char*>(inputs[root]);
        result->assign(src, src + bytes);
      }));
}

absl::StatusOr<std::unique_ptr<CommHandle>> LocalCommunicator::BarrierImpl() {
  return MakeCompletedHandle(RunCollective(
      "barrier", "barrier()", nullptr, nullptr,
      [](const std::vector<const void*>&, std::vector<char>*) {}));
}

absl::StatusOr<std::unique_ptr<CommHandle>> LocalCommunicator::PostP2P(bool is_send,
                                                                       const void* send_data,
                                                                       void* recv_data,
                                                                       size_t count, DType dtype,
                                                                       int peer, int tag) {
  LocalGroup& g = *group_;
  const int me = rank();
  const std::string label = OpLabel(is_send ? "send" : "recv", next_p2p_++) +
                            absl::StrCat(" [", is_send ? "to " : "from ", PeerName(peer),
                                         ", tag ", tag, "]");
  auto op = std::make_shared<LocalP2P>();
  op->send_data = send_data;
  op->recv_data = recv_data;
  op->count = count;
  op->dtype = dtype;
  const LocalGroup::P2PKey key = is_send ? LocalGroup::P2PKey{me, peer, tag}
                                         : LocalGroup::P2PKey{peer, me, tag};
  {
    absl::MutexLock lock(&g.mu);
    if (!g.rank_status[me].ok()) return MakeCompletedHandle(Unusable(label, g.rank_status[me]));
    auto& other_side = is_send ? g.recvs[key] : g.sends[key];
    if (other_side.empty()) {
      (is_send ? g.sends[key] : g.recvs[key]).push_back(op);
    } else {
      std::shared_ptr<LocalP2P> match = other_side.front();
      other_side.pop_front();
      LocalP2P& send = is_send ? *op : *match;
      LocalP2P& recv = is_send ? *match : *op;
      if (send.count != recv.count || send.dtype != recv.dtype) {
        const absl::Status mismatch = absl::InvalidArgumentError(absl::StrCat(
            "send/recv mismatch on group '", g.name, "' (tag ", tag, "): a send of ", send.count,
            " ", DTypeName(send.dtype), " elements met a recv of ", recv.count, " ",
            DTypeName(recv.dtype), " elements"));
        send.status = recv.status = mismatch;
      } else {
        std::memcpy(recv.recv_data, send.send_data, send.count * DTypeSize(send.dtype));
      }
      send.done = recv.done = true;
    }
  }
  return std::unique_ptr<CommHandle>(
      new P2PHandle(group_, op, key, is_send, me, peer, label, PeerName(peer)));
}

absl::StatusOr<std::unique_ptr<CommHandle>> LocalCommunicator::SendImpl(const void* input,
                                                                        size_t count, DType dtype,
                                                                        int peer, int tag, Stream*) {
  return PostP2P(/*is_send=*/true, input, nullptr, count, dtype, peer, tag);
}

absl::StatusOr<std::unique_ptr<CommHandle>> LocalCommunicator::RecvImpl(void* output,
                                                                        size_t count, DType dtype,
                                                                        int peer, int tag, Stream*) {
  return PostP2P(/*is_send=*/false, nullptr, output, count, dtype, peer, tag);
}

absl::StatusOr<std::unique_ptr<Communicator>> LocalCommunicator::SplitImpl(
    const std::vector<int>& ranks, std::string name) {
  LocalGroup& g = *group_;
  const int index = splits_made_[ranks]++;
  std::shared_ptr<LocalGroup> child;
  {
    absl::MutexLock lock(&g.mu);
    if (!g.rank_status[rank()].ok()) return Unusable(OpLabel("split", index), g.rank_status[rank()]);
    LocalGroup::PendingSplit& pending = g.splits[{ranks, index}];
    if (pending.group == nullptr) {
      std::vector<int> world;
      for (int r : ranks) world.push_back(world_ranks()[r]);
      pending.group = std::make_shared<LocalGroup>(world, name, g.options);
    }
    child = pending.group;
    if (++pending.taken == static_cast<int>(ranks.size())) g.splits.erase({ranks, index});
  }
  const int child_rank =
      static_cast<int>(std::find(ranks.begin(), ranks.end(), rank()) - ranks.begin());
  return std::unique_ptr<Communicator>(new LocalCommunicator(child, child_rank));
}

absl::Status RunLocalRanks(int size, const std::function<absl::Status(Communicator&)>& body,
                           const LocalOptions& options) {
  std::vector<std::unique_ptr<Communicator>> comms = LocalCommunicator::CreateGroup(size, options);
  std::vector<absl::Status> results(size);
  std::vector<std::thread> threads;
  threads.reserve(size);
  for (int r = 0; r < size; ++r) {
    threads.emplace_back([&, r] {
      results[r] = body(*comms[r]);
      if (!results[r].ok()) comms[r]->Abort(results[r].message());
    });
  }
  for (std::thread& t : threads) t.join();
  for (int r = 0; r < size; ++r) {
    if (!results[r].ok()) {
      return absl::Status(results[r].code(),
                          absl::StrCat("rank ", r, ": ", results[r].message()));
    }
  }
  return absl::OkStatus();
}

}  // namespace cairn::runtime
