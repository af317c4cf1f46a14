#include "runtime/comm/gloo/gloo_communicator.h"

#include <netdb.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <deque>
#include <functional>
#include <map>
#include <thread>
#include <utility>

#include "absl/base/thread_annotations.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/hash.h"
#include "absl/strings/str_join.h"
#include "absl/synchronization/mutex.h"
#include "common/logging.h"
#include "common/status_macros.h"
#include "gloo/common/error.h"
#include "gloo/common/logging.h"
#include "gloo/rendezvous/context.h"
#include "gloo/rendezvous/prefix_store.h"
#include "gloo/rendezvous/store.h"
#include "gloo/transport/tcp/device.h"
#include "gloo/transport/unbound_buffer.h"
#include "runtime/comm/launch_env.h"
#include "runtime/comm/reduce_ops.h"
#include "runtime/comm/tcp_store.h"

namespace cairn::runtime {
namespace {

using UnboundBuffer = ::gloo::transport::UnboundBuffer;
using internal::DivideBy;
using internal::ReduceInto;

// Slots (Gloo's message tags) of this group's context. A collective uses the slots of its sequence
// number (256 sub-slots each); point-to-point messages use their tag in a separate range. Messages
// between two ranks on one slot match in order.
constexpr uint64_t kP2PSlotBase = uint64_t{1} << 62;
uint64_t CollectiveSlot(uint64_t sequence, uint64_t sub) { return (sequence << 8) | (sub & 0xff); }

// ---- Gloo exceptions -> absl::Status. Every call into Gloo is wrapped by a catch (...) that calls
// this, so no exception leaves this file.

// The status for the exception being handled. `peer` is the rank involved ("rank 3", or "" when
// none is), `action` what we were doing with it ("waiting for data from rank 3").
absl::Status StatusFromGlooException(absl::string_view label, absl::string_view peer,
                                     absl::string_view action, absl::Duration timeout) {
  std::string detail;
  absl::StatusCode code = absl::StatusCode::kInternal;
  try {
    throw;
  } catch (const ::gloo::IoException& e) {
    detail = e.what();
    code = absl::StrContains(detail, "Timed out") || absl::StrContains(detail, "timeout")
               ? absl::StatusCode::kDeadlineExceeded
               : absl::StatusCode::kUnavailable;
  } catch (const ::gloo::EnforceNotMet& e) {
    detail = absl::StrCat("Gloo check failed: ", e.what());
  } catch (const std::exception& e) {
    detail = e.what();
  } catch (...) {
    detail = "unknown exception";
  }
  std::string summary;
  if (absl::StrContains(detail, "Application timeout caused pair closure")) {
    // Gloo closes every connection of a context when one of its waits times out.
    summary = "this rank's connections were closed after another of its operations timed out";
  } else if (code == absl::StatusCode::kDeadlineExceeded) {
    summary = absl::StrCat("timed out after ", absl::FormatDuration(timeout));
  } else if (code == absl::StatusCode::kUnavailable && !peer.empty()) {
    summary = absl::StrCat("lost the connection to ", peer, " (it exited, crashed or aborted)");
  } else if (code == absl::StatusCode::kUnavailable) {
    summary = "lost a connection";
  } else {
    summary = "Gloo failed";
  }
  return absl::Status(code,
                      absl::StrCat(label, ": ", summary, " while ", action, " [gloo: ", detail, "]"));
}

absl::Status Unusable(absl::string_view label, const absl::Status& first) {
  return absl::Status(first.code(), absl::StrCat(label, ": communicator unusable after an earlier "
                                                        "failure: ",
                                                 first.message()));
}

std::chrono::milliseconds Remaining(absl::Time deadline) {
  // Gloo treats 0 as "no timeout": wait at least 1 ms.
  return std::chrono::milliseconds(
      std::max<int64_t>(1, absl::ToInt64Milliseconds(deadline - absl::Now())));
}

// Gloo's rendezvous calls our Store through this adapter. Gloo expects failures as exceptions: we
// throw IoException and keep the Status, which the caller of connectFullMesh picks up.
class StoreAdapter final : public ::gloo::rendezvous::Store {
 public:
  StoreAdapter(std::shared_ptr<runtime::Store> store, absl::Duration timeout)
      : store_(std::move(store)), timeout_(timeout) {}

  void set(const std::string& key, const std::vector<char>& data) override {
    Check(store_->Set(key, absl::string_view(data.data(), data.size())));
  }
  std::vector<char> get(const std::string& key) override {
    absl::StatusOr<std::string> value = store_->Get(key, timeout_);
    Check(value.status());
    return std::vector<char>(value->begin(), value->end());
  }
  void wait(const std::vector<std::string>& keys) override { Check(store_->Wait(keys, timeout_)); }
  void wait(const std::vector<std::string>& keys, const std::chrono::milliseconds&) override {
    wait(keys);
  }

  const absl::Status& last_error() const { return last_error_; }

 private:
  void Check(const absl::Status& status) {
    if (status.ok()) return;
    last_error_ = status;
    throw ::gloo::IoException(std::string(status.message()));
  }

  const std::shared_ptr<runtime::Store> store_;
  const absl::Duration timeout_;
  absl::Status last_error_;
};

// Completion of a queued collective.
struct Completion {
  absl::Mutex mu;
  bool done ABSL_GUARDED_BY(mu) = false;
  absl::Status status ABSL_GUARDED_BY(mu);

  void Set(absl::Status s) {
    absl::MutexLock lock(&mu);
    status = std::move(s);
    done = true;
  }
  absl::Status Wait() {
    absl::MutexLock lock(&mu);
    mu.Await(absl::Condition(&done));
    return status;
  }
};

class QueuedHandle final : public CommHandle {
 public:
  explicit QueuedHandle(std::shared_ptr<Completion> completion)
      : completion_(std::move(completion)) {}
  ~QueuedHandle() override { completion_->Wait().IgnoreError(); }
  absl::Status Wait() override { return completion_->Wait(); }

 private:
  std::shared_ptr<Completion> completion_;
};

// Gloo 0.5's CreateDevice dereferences a null pointer when the hostname does not resolve to an
// address of this host, so check that first: resolve it and bind a socket to one of its addresses,
// as Gloo will.
absl::Status CheckBindableHost(const std::string& host) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* result = nullptr;
  const int rc = getaddrinfo(host.c_str(), nullptr, &hints, &result);
  if (rc != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("gloo: hostname '", host, "' does not resolve: ", gai_strerror(rc)));
  }
  bool bound = false;
  for (addrinfo* a = result; a != nullptr && !bound; a = a->ai_next) {
    const int fd = socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC, a->ai_protocol);
    if (fd < 0) continue;
    bound = bind(fd, a->ai_addr, a->ai_addrlen) == 0;
    close(fd);
  }
  freeaddrinfo(result);
  if (!bound) {
    return absl::InvalidArgumentError(absl::StrCat(
        "gloo: hostname '", host, "' is not an address of this host (cannot bind to it)"));
  }
  return absl::OkStatus();
}

// Non-negative modulo.
int Mod(int a, int n) { return ((a % n) + n) % n; }

}  // namespace

// Everything a communicator shares with its worker thread and its handles.
struct GlooCommunicator::State {
  // Fixed at creation.
  int rank = 0;
  int size = 1;
  GlooOptions options;
  std::string prefix;                    // this group's key prefix in the store
  std::vector<std::string> peer_names;   // RankName of each group rank
  std::shared_ptr<runtime::Store> store;
  std::shared_ptr<::gloo::transport::Device> device;
  std::shared_ptr<::gloo::rendezvous::Context> context;

  // The first failure, and the transfers being waited on (so Fail can interrupt them).
  absl::Mutex fail_mu;
  absl::Status failure ABSL_GUARDED_BY(fail_mu);
  std::map<UnboundBuffer*, bool /*is_recv*/> waiting ABSL_GUARDED_BY(fail_mu);

  // The worker thread and its queue.
  absl::Mutex queue_mu;
  std::deque<std::function<void()>> queue ABSL_GUARDED_BY(queue_mu);
  bool stopping ABSL_GUARDED_BY(queue_mu) = false;
  std::thread worker;

  // Receive and partial-sum buffers of the collectives, kept between operations so that large ones
  // do not page-fault fresh memory every time. Worker thread only.
  std::unique_ptr<char[]> scratch;
  size_t scratch_bytes = 0;

  // Used by the thread that drives the communicator only.
  uint64_t next_collective = 0;
  uint64_t next_p2p = 0;
  std::map<std::vector<int>, int> splits_made;

  ~State() {
    // Destroy the connections before the device they live on.
    context.reset();
  }

  absl::Status FirstFailure() {
    absl::MutexLock lock(&fail_mu);
    return failure;
  }

  // Records `status` as the failure (if it is the first), interrupts pending transfers and closes
  // this rank's connections so that peers waiting on it fail fast. Returns `status`.
  absl::Status Fail(absl::Status status) {
    {
      absl::MutexLock lock(&fail_mu);
      if (!failure.ok()) return status;
      failure = status;
      for (const auto& [buffer, is_recv] : waiting) {
        if (is_recv) {
          buffer->abortWaitRecv();
        } else {
          buffer->abortWaitSend();
        }
      }
    }
    try {
      if (context != nullptr) context->closeConnections();
    } catch (...) {
      // Already closing; nothing more to do.
    }
    return status;
  }

  void WorkerLoop() {
    while (true) {
      std::function<void()> task;
      {
        absl::MutexLock lock(&queue_mu);
        auto ready = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(queue_mu) {
          return stopping || !queue.empty();
        };
        queue_mu.Await(absl::Condition(&ready));
        if (queue.empty()) return;  // stopping, and drained
        task = std::move(queue.front());
        queue.pop_front();
      }
      task();
    }
  }

  // Posts a send or receive of the whole `buffer` to or from `peer`. Errors name the peer.
  absl::Status Post(UnboundBuffer* buffer, bool is_recv, int peer, uint64_t slot,
                    const std::string& label) {
    try {
      if (is_recv) {
        buffer->recv(peer, slot);
      } else {
        buffer->send(peer, slot);
      }
      return absl::OkStatus();
    } catch (...) {
      return Fail(StatusFromGlooException(
          label, peer_names[peer],
          absl::StrCat(is_recv ? "posting a receive from " : "posting a send to ",
                       peer_names[peer]),
          options.timeout));
    }
  }

  // Waits until a posted transfer completes, the deadline passes or the communicator fails.
  absl::Status WaitTransfer(UnboundBuffer* buffer, bool is_recv, int peer, absl::Time deadline,
                            const std::string& label) {
    {
      absl::MutexLock lock(&fail_mu);
      if (!failure.ok()) return Unusable(label, failure);
      waiting[buffer] = is_recv;
    }
    absl::Status status;
    bool completed = false;
    try {
      completed = is_recv ? buffer->waitRecv(nullptr, Remaining(deadline))
                          : buffer->waitSend(nullptr, Remaining(deadline));
    } catch (...) {
      status = StatusFromGlooException(
          label, peer_names[peer],
          absl::StrCat(is_recv ? "waiting for data from " : "waiting for ", peer_names[peer],
                       is_recv ? "" : " to receive"),
          options.timeout);
    }
    {
      absl::MutexLock lock(&fail_mu);
      waiting.erase(buffer);
      if (status.ok() && !completed) {
        // Interrupted by Fail(): report the failure that caused it.
        return Unusable(label, failure);
      }
    }
    if (!status.ok()) return Fail(status);
    return absl::OkStatus();
  }

  struct Transfer {
    bool is_recv;
    int peer;
    void* data;
    size_t bytes;
  };

  // Posts every transfer (receives first, so incoming data has a place), then waits for all.
  absl::Status Run(const std::vector<Transfer>& transfers, uint64_t slot, absl::Time deadline,
                   const std::string& label) {
    std::vector<std::unique_ptr<UnboundBuffer>> buffers(transfers.size());
    for (size_t i = 0; i < transfers.size(); ++i) {
      if (transfers[i].bytes == 0) continue;
      try {
        buffers[i] = context->createUnboundBuffer(transfers[i].data, transfers[i].bytes);
      } catch (...) {
        return Fail(StatusFromGlooException(label, "", "creating a buffer", options.timeout));
      }
    }
    for (bool recv_pass : {true, false}) {
      for (size_t i = 0; i < transfers.size(); ++i) {
        if (buffers[i] == nullptr || transfers[i].is_recv != recv_pass) continue;
        CAIRN_RETURN_IF_ERROR(
            Post(buffers[i].get(), transfers[i].is_recv, transfers[i].peer, slot, label));
      }
    }
    for (size_t i = 0; i < transfers.size(); ++i) {
      if (buffers[i] == nullptr) continue;
      CAIRN_RETURN_IF_ERROR(WaitTransfer(buffers[i].get(), transfers[i].is_recv,
                                         transfers[i].peer, deadline, label));
    }
    return absl::OkStatus();
  }

  // Queues `body` for the worker; the handle completes when it has run.
  std::unique_ptr<CommHandle> Enqueue(std::string label,
                                      std::function<absl::Status(absl::Time deadline,
                                                                 const std::string& label)>
                                          body) {
    auto completion = std::make_shared<Completion>();
    auto task = [this, completion, label = std::move(label), body = std::move(body)] {
      absl::Status first = FirstFailure();
      if (!first.ok()) {
        completion->Set(Unusable(label, first));
        return;
      }
      // The timeout counts from when the operation starts, not from when it was queued.
      completion->Set(body(absl::Now() + options.timeout, label));
    };
    {
      absl::MutexLock lock(&queue_mu);
      queue.push_back(std::move(task));
    }
    return std::make_unique<QueuedHandle>(std::move(completion));
  }

  // ---- Algorithms (run on the worker). Chunk i of a count-element buffer: [Begin(i), Begin(i+1)).

  size_t Begin(size_t count, int i) const { return count * i / size; }

  // At least `elements` elements of T of scratch space (contents undefined; aligned for any
  // element type). Worker thread only.
  template <typename T>
  T* Scratch(size_t elements) {
    const size_t bytes = elements * sizeof(T);
    if (bytes > scratch_bytes) {
      scratch.reset(new char[bytes]);
      scratch_bytes = bytes;
    }
    return reinterpret_cast<T*>(scratch.get());
  }

  // Ring reduce-scatter in place over `data` (uneven chunks allowed), leaving the reduced chunk
  // `rank` in place, then ring all-gather of the reduced chunks. T is the element type
  // (reduce_ops.h says how each reduces).
  template <typename T>
  absl::Status RingAllReduce(T* data, size_t count, ReduceOp op, absl::Time deadline,
                             const std::string& label, uint64_t slot) {
    const int n = size;
    const int left = Mod(rank - 1, n);
    const int right = Mod(rank + 1, n);
    size_t max_chunk = 0;
    for (int i = 0; i < n; ++i) max_chunk = std::max(max_chunk, Begin(count, i + 1) - Begin(count, i));
    T* incoming = Scratch<T>(max_chunk);
    // Step s sends chunk rank-s-1 (reduced over s+1 ranks) and receives chunk rank-s-2; after n-1
    // steps chunk `rank` holds the reduction over all ranks.
    for (int s = 0; s < n - 1; ++s) {
      const int send_chunk = Mod(rank - s - 1, n);
      const int recv_chunk = Mod(rank - s - 2, n);
      const size_t recv_begin = Begin(count, recv_chunk);
      const size_t recv_count = Begin(count, recv_chunk + 1) - recv_begin;
      const size_t send_begin = Begin(count, send_chunk);
      const size_t send_count = Begin(count, send_chunk + 1) - send_begin;
      CAIRN_RETURN_IF_ERROR(Run({{true, left, incoming, recv_count * sizeof(T)},
                                 {false, right, data + send_begin, send_count * sizeof(T)}},
                                slot, deadline, label));
      ReduceInto(op, data + recv_begin, data + recv_begin, incoming, recv_count);
    }
    // Step s forwards chunk rank-s (complete) and receives chunk rank-s-1.
    for (int s = 0; s < n - 1; ++s) {
      const int send_chunk = Mod(rank - s, n);
      const int recv_chunk = Mod(rank - s - 1, n);
      const size_t recv_begin = Begin(count, recv_chunk);
      const size_t send_begin = Begin(count, send_chunk);
      CAIRN_RETURN_IF_ERROR(Run(
          {{true, left, data + recv_begin, (Begin(count, recv_chunk + 1) - recv_begin) * sizeof(T)},
           {false, right, data + send_begin,
            (Begin(count, send_chunk + 1) - send_begin) * sizeof(T)}},
          slot, deadline, label));
    }
    if (op == ReduceOp::kAvg) DivideBy(data, count, n);
    return absl::OkStatus();
  }

  // Ring reduce-scatter with equal chunks of `chunk` elements: output = reduced chunk `rank`.
  template <typename T>
  absl::Status RingReduceScatter(const T* input, T* output, size_t chunk, ReduceOp op,
                                 absl::Time deadline, const std::string& label, uint64_t slot) {
    const int n = size;
    const int left = Mod(rank - 1, n);
    const int right = Mod(rank + 1, n);
    T* incoming = Scratch<T>(2 * chunk);
    T* partial = incoming + chunk;
    const size_t bytes = chunk * sizeof(T);
    // As in RingAllReduce, but the partial sums live in `partial` so the input stays untouched; the
    // last step (which receives chunk `rank`) reduces straight into the output.
    for (int s = 0; s < n - 1; ++s) {
      const int send_chunk = Mod(rank - s - 1, n);
      const int recv_chunk = Mod(rank - s - 2, n);
      const T* send = s == 0 ? input + send_chunk * chunk : partial;
      CAIRN_RETURN_IF_ERROR(Run({{true, left, incoming, bytes},
                                 {false, right, const_cast<T*>(send), bytes}},
                                slot, deadline, label));
      T* target = s == n - 2 ? output : partial;
      ReduceInto(op, target, incoming, input + recv_chunk * chunk, chunk);
    }
    if (n == 1 && output != input) std::memcpy(output, input, bytes);
    if (op == ReduceOp::kAvg) DivideBy(output, chunk, n);
    return absl::OkStatus();
  }

  // The byte-moving collectives below work on chunks of `bytes` bytes, whatever the element type.

  // Ring all-gather with equal chunks: step s forwards chunk rank-s and receives chunk rank-s-1.
  absl::Status RingAllGather(const char* input, char* output, size_t bytes, absl::Time deadline,
                             const std::string& label, uint64_t slot) {
    const int n = size;
    const int left = Mod(rank - 1, n);
    const int right = Mod(rank + 1, n);
    if (output + rank * bytes != input) std::memcpy(output + rank * bytes, input, bytes);
    for (int s = 0; s < n - 1; ++s) {
      const int send_chunk = Mod(rank - s, n);
      const int recv_chunk = Mod(rank - s - 1, n);
      CAIRN_RETURN_IF_ERROR(Run({{true, left, output + recv_chunk * bytes, bytes},
                                 {false, right, output + send_chunk * bytes, bytes}},
                                slot, deadline, label));
    }
    return absl::OkStatus();
  }

  // Every pair exchanges its chunks directly, all at once.
  absl::Status PairwiseAllToAll(const char* input, char* output, size_t bytes,
                                absl::Time deadline, const std::string& label, uint64_t slot) {
    std::memcpy(output + rank * bytes, input + rank * bytes, bytes);
    std::vector<Transfer> transfers;
    for (int step = 1; step < size; ++step) {
      const int to = Mod(rank + step, size);
      const int from = Mod(rank - step, size);
      transfers.push_back({true, from, output + from * bytes, bytes});
      transfers.push_back({false, to, const_cast<char*>(input + to * bytes), bytes});
    }
    return Run(transfers, slot, deadline, label);
  }

  // Binomial tree rooted at `root`: log2(size) rounds.
  absl::Status TreeBroadcast(char* buffer, size_t bytes, int root, absl::Time deadline,
                             const std::string& label, uint64_t slot) {
    const int n = size;
    const int relative = Mod(rank - root, n);
    int mask = 1;
    while (mask < n) {
      if (relative & mask) {
        const int parent = Mod(relative - mask + root, n);
        CAIRN_RETURN_IF_ERROR(Run({{true, parent, buffer, bytes}}, slot, deadline, label));
        break;
      }
      mask <<= 1;
    }
    std::vector<Transfer> children;
    for (mask >>= 1; mask > 0; mask >>= 1) {
      if (relative + mask < n) children.push_back({false, Mod(relative + mask + root, n), buffer, bytes});
    }
    return Run(children, slot, deadline, label);
  }

  // Dissemination barrier: in round k every rank signals rank+2^k and hears from rank-2^k.
  absl::Status DisseminationBarrier(absl::Time deadline, const std::string& label,
                                    uint64_t sequence) {
    char out = 1;
    char in = 0;
    int round = 0;
    for (int distance = 1; distance < size; distance <<= 1, ++round) {
      CAIRN_RETURN_IF_ERROR(Run({{true, Mod(rank - distance, size), &in, 1},
                                 {false, Mod(rank + distance, size), &out, 1}},
                                CollectiveSlot(sequence, round), deadline, label));
    }
    return absl::OkStatus();
  }
};

namespace {

// A posted send or receive; Wait() waits on Gloo.
class P2PHandle final : public CommHandle {
 public:
  P2PHandle(std::shared_ptr<GlooCommunicator::State> state, std::unique_ptr<UnboundBuffer> buffer,
            bool is_recv, int peer, absl::Time deadline, std::string label)
      : state_(std::move(state)),
        buffer_(std::move(buffer)),
        is_recv_(is_recv),
        peer_(peer),
        deadline_(deadline),
        label_(std::move(label)) {}
  ~P2PHandle() override {
    if (!waited_) Wait().IgnoreError();
  }
  absl::Status Wait() override {
    if (!waited_) {
      waited_ = true;
      result_ = state_->WaitTransfer(buffer_.get(), is_recv_, peer_, deadline_, label_);
    }
    return result_;
  }

 private:
  const std::shared_ptr<GlooCommunicator::State> state_;
  const std::unique_ptr<UnboundBuffer> buffer_;
  const bool is_recv_;
  const int peer_;
  const absl::Time deadline_;
  const std::string label_;
  bool waited_ = false;
  absl::Status result_;
};

std::string RankListKey(const std::vector<int>& ranks) {
  std::string key = absl::StrJoin(ranks, ",");
  if (key.size() <= 48) return key;
  return absl::StrFormat("n%d-%016x", ranks.size(), ::cairn::Fnv1a64(key));
}

// Joins the group under `prefix` and opens Gloo's full mesh. `names` are the RankNames of the group.
absl::StatusOr<std::shared_ptr<GlooCommunicator::State>> Rendezvous(
    int rank, const std::vector<std::string>& names, std::shared_ptr<runtime::Store> store,
    std::shared_ptr<::gloo::transport::Device> device, std::string prefix,
    const GlooOptions& options, const std::string& label) {
  const int size = static_cast<int>(names.size());
  // First a join marker per rank, so that a missing rank is named instead of a missing address.
  auto join_key = [&](int r) { return absl::StrCat(prefix, "/join/", r); };
  CAIRN_RETURN_IF_ERROR(store->Set(join_key(rank), "1"));
  std::vector<std::string> keys;
  for (int r = 0; r < size; ++r) keys.push_back(join_key(r));
  absl::Status joined = store->Wait(keys, options.rendezvous_timeout);
  if (absl::IsDeadlineExceeded(joined)) {
    std::vector<std::string> missing;
    for (int r = 0; r < size; ++r) {
      if (!store->Get(join_key(r), absl::ZeroDuration()).ok()) missing.push_back(names[r]);
    }
    return absl::DeadlineExceededError(
        absl::StrCat(label, ": ", absl::StrJoin(missing, ", "), " did not join within ",
                     absl::FormatDuration(options.rendezvous_timeout)));
  }
  if (!joined.ok()) {
    return absl::Status(joined.code(), absl::StrCat(label, ": ", joined.message()));
  }

  auto state = std::make_shared<GlooCommunicator::State>();
  state->rank = rank;
  state->size = size;
  state->options = options;
  state->prefix = prefix;
  state->peer_names = names;
  state->store = store;
  state->device = device;
  StoreAdapter adapter(store, options.rendezvous_timeout);
  ::gloo::rendezvous::PrefixStore prefixed(absl::StrCat(prefix, "/gloo"), adapter);
  try {
    auto context = std::make_shared<::gloo::rendezvous::Context>(rank, size);
    // Gloo uses the context's timeout for connecting the pairs and as the default of later waits (ours
    // always pass their own).
    context->setTimeout(
        std::chrono::milliseconds(absl::ToInt64Milliseconds(options.rendezvous_timeout)));
    context->connectFullMesh(prefixed, device);
    state->context = std::move(context);
  } catch (...) {
    absl::Status status =
        StatusFromGlooException(label, "", "connecting to the other ranks",
                                options.rendezvous_timeout);
    if (!adapter.last_error().ok()) {
      status = absl::Status(adapter.last_error().code(),
                            absl::StrCat(label, ": ", adapter.last_error().message()));
    }
    return status;
  }
  state->worker = std::thread([raw = state.get()] { raw->WorkerLoop(); });
  return state;
}

}  // namespace

// ---------------------------------------------------------------------------------------------

absl::StatusOr<std::unique_ptr<GlooCommunicator>> GlooCommunicator::Create(
    int rank, int size, std::shared_ptr<Store> store, const GlooOptions& options) {
  if (size < 1 || rank < 0 || rank >= size) {
    return absl::InvalidArgumentError(
        absl::StrCat("gloo: rank ", rank, " is outside a group of size ", size));
  }
  if (store == nullptr) return absl::InvalidArgumentError("gloo: no store");
  if (options.timeout <= absl::ZeroDuration() ||
      options.rendezvous_timeout <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError("gloo: the timeouts must be positive");
  }
  // A write to a peer that died raises SIGPIPE, whose default action kills the process: ignore it
  // (unless the program installed a handler) so the write fails with an error instead.
  struct sigaction current;
  if (sigaction(SIGPIPE, nullptr, &current) == 0 && current.sa_handler == SIG_DFL) {
    signal(SIGPIPE, SIG_IGN);
  }
  GlooOptions resolved = options;
  if (resolved.hostname.empty()) resolved.hostname = "127.0.0.1";
  const std::string label = absl::StrCat("rendezvous of group '", resolved.name, "' (rank ", rank,
                                         " of ", size, ", gloo)");
  CAIRN_RETURN_IF_ERROR(CheckBindableHost(resolved.hostname));
  std::shared_ptr<::gloo::transport::Device> device;
  try {
    ::gloo::transport::tcp::attr attr;
    attr.hostname = resolved.hostname;
    device = ::gloo::transport::tcp::CreateDevice(attr);
  } catch (...) {
    absl::Status status = StatusFromGlooException(
        label, "", absl::StrCat("opening a Gloo TCP device on '", resolved.hostname, "'"),
        resolved.timeout);
    return absl::InvalidArgumentError(status.message());
  }
  std::vector<int> world(size);
  std::vector<std::string> names(size);
  for (int r = 0; r < size; ++r) {
    world[r] = r;
    names[r] = RankName(r, r);
  }
  CAIRN_ASSIGN_OR_RETURN(std::shared_ptr<State> state,
                         Rendezvous(rank, names, std::move(store), std::move(device),
                                    resolved.name, resolved, label));
  return std::unique_ptr<GlooCommunicator>(
      new GlooCommunicator(rank, std::move(world), resolved.name, std::move(state)));
}

absl::StatusOr<std::unique_ptr<GlooCommunicator>> GlooCommunicator::CreateFromEnv(
    const GlooOptions& options) {
  CAIRN_ASSIGN_OR_RETURN(const LaunchEnv env, LaunchEnv::FromEnvironment());
  CAIRN_ASSIGN_OR_RETURN(std::unique_ptr<TcpStore> store,
                         OpenLaunchStore(env, options.rendezvous_timeout));
  GlooOptions resolved = options;
  if (resolved.hostname.empty()) resolved.hostname = store->local_address();
  return Create(env.rank, env.world_size, std::shared_ptr<Store>(std::move(store)), resolved);
}

GlooCommunicator::GlooCommunicator(int rank, std::vector<int> world_ranks, std::string name,
                                   std::shared_ptr<State> state)
    : Communicator(rank, std::move(world_ranks), std::move(name)), state_(std::move(state)) {}

GlooCommunicator::~GlooCommunicator() {
  {
    absl::MutexLock lock(&state_->queue_mu);
    state_->stopping = true;
  }
  state_->worker.join();
  state_->Fail(absl::UnavailableError(absl::StrCat(PeerName(rank()), " of group '", name(),
                                                   "' destroyed its communicator")))
      .IgnoreError();
}

void GlooCommunicator::Abort(absl::string_view reason) {
  state_->Fail(absl::AbortedError(absl::StrCat(PeerName(rank()), " of group '", name(),
                                               "' aborted: ", reason)))
      .IgnoreError();
}

absl::StatusOr<std::unique_ptr<CommHandle>> GlooCommunicator::AllReduceImpl(const void* input,
                                                                             void* output,
                                                                             size_t count,
                                                                             DType dtype,
                                                                             ReduceOp op, Stream*) {
  const uint64_t seq = state_->next_collective++;
  State* s = state_.get();
  return state_->Enqueue(
      OpLabel("all_reduce", seq),
      [s, seq, input, output, count, dtype, op](absl::Time deadline, const std::string& label) {
        if (input != output) std::memcpy(output, input, count * DTypeSize(dtype));
        return internal::VisitDType(dtype, [&](auto tag) {
          using T = typename decltype(tag)::type;
          return s->RingAllReduce(static_cast<T*>(output), count, op, deadline, label,
                                  CollectiveSlot(seq, 0));
        });
      });
}

absl::StatusOr<std::unique_ptr<CommHandle>> GlooCommunicator::AllGatherImpl(const void* input,
                                                                             void* output,
                                                                             size_t count_per_rank,
                                                                             DType dtype, Stream*) {
  const uint64_t seq = state_->next_collective++;
  State* s = state_.get();
  const size_t chunk_bytes = count_per_rank * DTypeSize(dtype);
  return state_->Enqueue(
      OpLabel("all_gather", seq),
      [s, seq, input, output, chunk_bytes](absl::Time deadline, const std::string& label) {
        return s->RingAllGather(static_cast<const char*>(input), static_cast<char*>(output),
                                chunk_bytes, deadline, label, CollectiveSlot(seq, 0));
      });
}

absl::StatusOr<std::unique_ptr<CommHandle>> GlooCommunicator::ReduceScatterImpl(
    const void* input, void* output, size_t count_per_rank, DType dtype, ReduceOp op, Stream*) {
  const uint64_t seq = state_->next_collective++;
  State* s = state_.get();
  return state_->Enqueue(
      OpLabel("reduce_scatter", seq),
      [s, seq, input, output, count_per_rank, dtype, op](absl::Time deadline,
                                                         const std::string& label) {
        return internal::VisitDType(dtype, [&](auto tag) {
          using T = typename decltype(tag)::type;
          return s->RingReduceScatter(static_cast<const T*>(input), static_cast<T*>(output),
                                      count_per_rank, op, deadline, label, CollectiveSlot(seq, 0));
        });
      });
}

absl::StatusOr<std::unique_ptr<CommHandle>> GlooCommunicator::AllToAllImpl(const void* input,
                                                                            void* output,
                                                                            size_t count_per_rank,
                                                                            DType dtype, Stream*) {
  const uint64_t seq = state_->next_collective++;
  State* s = state_.get();
  const size_t chunk_bytes = count_per_rank * DTypeSize(dtype);
  return state_->Enqueue(
      OpLabel("all_to_all", seq),
      [s, seq, input, output, chunk_bytes](absl::Time deadline, const std::string& label) {
        return s->PairwiseAllToAll(static_cast<const char*>(input), static_cast<char*>(output),
                                   chunk_bytes, deadline, label, CollectiveSlot(seq, 0));
      });
}

absl::StatusOr<std::unique_ptr<CommHandle>> GlooCommunicator::BroadcastImpl(void* buffer,
                                                                             size_t count,
                                                                             DType dtype, int root,
                                                                             Stream*) {
  const uint64_t seq = state_->next_collective++;
  State* s = state_.get();
  const size_t bytes = count * DTypeSize(dtype);
  return state_->Enqueue(
      OpLabel("broadcast", seq),
      [s, seq, buffer, bytes, root](absl::Time deadline, const std::string& label) {
        return s->TreeBroadcast(static_cast<char*>(buffer), bytes, root, deadline, label,
                                CollectiveSlot(seq, 0));
      });
}

absl::StatusOr<std::unique_ptr<CommHandle>> GlooCommunicator::BarrierImpl() {
  const uint64_t seq = state_->next_collective++;
  State* s = state_.get();
  return state_->Enqueue(OpLabel("barrier", seq),
                         [s, seq](absl::Time deadline, const std::string& label) {
                           return s->DisseminationBarrier(deadline, label, seq);
                         });
}

absl::StatusOr<std::unique_ptr<CommHandle>> GlooCommunicator::SendImpl(const void* input,
                                                                       size_t count, DType dtype,
                                                                       int peer, int tag, Stream*) {
  const std::string label = absl::StrCat(OpLabel("send", state_->next_p2p++), " [to ",
                                         PeerName(peer), ", tag ", tag, "]");
  absl::Status first = state_->FirstFailure();
  if (!first.ok()) return MakeCompletedHandle(Unusable(label, first));
  std::unique_ptr<UnboundBuffer> buffer;
  try {
    buffer = state_->context->createUnboundBuffer(const_cast<void*>(input),
                                                  count * DTypeSize(dtype));
  } catch (...) {
    return MakeCompletedHandle(state_->Fail(
        StatusFromGlooException(label, "", "creating a buffer", state_->options.timeout)));
  }
  absl::Status posted =
      state_->Post(buffer.get(), /*is_recv=*/false, peer, kP2PSlotBase + tag, label);
  if (!posted.ok()) return MakeCompletedHandle(posted);
  return std::unique_ptr<CommHandle>(new P2PHandle(state_, std::move(buffer), /*is_recv=*/false,
                                                   peer, absl::Now() + state_->options.timeout,
                                                   label));
}

absl::StatusOr<std::unique_ptr<CommHandle>> GlooCommunicator::RecvImpl(void* output, size_t count,
                                                                       DType dtype, int peer,
                                                                       int tag, Stream*) {
  const std::string label = absl::StrCat(OpLabel("recv", state_->next_p2p++), " [from ",
                                         PeerName(peer), ", tag ", tag, "]");
  absl::Status first = state_->FirstFailure();
  if (!first.ok()) return MakeCompletedHandle(Unusable(label, first));
  std::unique_ptr<UnboundBuffer> buffer;
  try {
    buffer = state_->context->createUnboundBuffer(output, count * DTypeSize(dtype));
  } catch (...) {
    return MakeCompletedHandle(state_->Fail(
        StatusFromGlooException(label, "", "creating a buffer", state_->options.timeout)));
  }
  absl::Status posted =
      state_->Post(buffer.get(), /*is_recv=*/true, peer, kP2PSlotBase + tag, label);
  if (!posted.ok()) return MakeCompletedHandle(posted);
  return std::unique_ptr<CommHandle>(new P2PHandle(state_, std::move(buffer), /*is_recv=*/true,
                                                   peer, absl::Now() + state_->options.timeout,
                                                   label));
}

absl::StatusOr<std::unique_ptr<Communicator>> GlooCommunicator::SplitImpl(
    const std::vector<int>& ranks, std::string name) {
  const int index = state_->splits_made[ranks]++;
  const std::string label = absl::StrCat("split of group '", this->name(), "' into '", name,
                                         "' (rank ", rank(), ", gloo)");
  absl::Status first = state_->FirstFailure();
  if (!first.ok()) return Unusable(label, first);
  std::vector<int> world;
  std::vector<std::string> names;
  for (size_t i = 0; i < ranks.size(); ++i) {
    world.push_back(world_ranks()[ranks[i]]);
    names.push_back(RankName(static_cast<int>(i), world.back()));
  }
  const int child_rank =
      static_cast<int>(std::find(ranks.begin(), ranks.end(), rank()) - ranks.begin());
  GlooOptions options = state_->options;
  options.name = name;
  // Unique per (parent group, rank list, how many times this list was split before): members agree
  // on it without talking, and non-members never see it.
  const std::string prefix =
      absl::StrCat(state_->prefix, "/split/", RankListKey(ranks), "/", index);
  CAIRN_ASSIGN_OR_RETURN(std::shared_ptr<State> state,
                         Rendezvous(child_rank, names, state_->store, state_->device, prefix,
                                    options, label));
  return std::unique_ptr<Communicator>(
      new GlooCommunicator(child_rank, std::move(world), std::move(name), std::move(state)));
}

}  // namespace cairn::runtime
