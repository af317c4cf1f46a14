// planner/server/executor.h — a few threads that run the daemon's blocking work off gRPC's threads.
//
// gRPC's callback API runs every reactor on a small pool of its own; a call that blocks there
// (a SQLite commit waiting for its fsync, a plan-cache lookup, a rendezvous read of 1024 keys)
// stalls every other call of the connection. So the service adapters (service_impl.cc) only parse
// and authorize on gRPC's thread and hand the rest to an Executor:
//
//   Executor executor(/*threads=*/4, /*queue_limit=*/1024);
//   absl::Status s = executor.Submit([call] { call->Complete(logic.Get(call->request())); });
//   if (!s.ok()) call->Complete(s);   // RESOURCE_EXHAUSTED: the daemon is overloaded
//
// Tasks run in submission order on `threads` threads. At most `queue_limit` wait; beyond that
// Submit refuses (RESOURCE_EXHAUSTED, saying which flag raises the limit) instead of letting
// latency and memory grow without bound. Stop() refuses new tasks, runs the queued ones and joins
// the threads (the destructor calls it). Thread-safe.
#ifndef CAIRN_PLANNER_SERVER_EXECUTOR_H_
#define CAIRN_PLANNER_SERVER_EXECUTOR_H_

#include <deque>
#include <functional>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"

namespace cairn::planner {

class Executor {
 public:
  // threads >= 1 (fewer are raised to 1), queue_limit >= 0.
  Executor(int threads, int queue_limit);
  ~Executor();
  Executor(const Executor&) = delete;
  Executor& operator=(const Executor&) = delete;

  // Queues `task`. RESOURCE_EXHAUSTED when queue_limit tasks wait; UNAVAILABLE after Stop().
  absl::Status Submit(std::function<void()> task);
  // Refuses new tasks, runs every queued one, joins the threads. Idempotent.
  void Stop();

  int queued() const;

 private:
  void Loop();

  const int queue_limit_;
  mutable absl::Mutex mu_;
  bool stopped_ ABSL_GUARDED_BY(mu_) = false;
  std::deque<std::function<void()>> queue_ ABSL_GUARDED_BY(mu_);
  int idle_ ABSL_GUARDED_BY(mu_) = 0;
  std::vector<std::thread> threads_;
};

}  // namespace cairn::planner

#endif  // CAIRN_PLANNER_SERVER_EXECUTOR_H_
