// planner/server/search_pool.h — a fixed set of worker threads with a bounded queue, for searches.
//
// A strategy search takes from milliseconds to minutes and uses every core it is given, so the
// daemon runs at most `workers` of them at once and lets at most `queue_limit` more wait; beyond
// that it refuses work (RESOURCE_EXHAUSTED) instead of letting latency grow without bound.
//
//   SearchPool pool(/*workers=*/2, /*queue_limit=*/16);
//   absl::StatusOr<TaskId> id = pool.Submit({.run = [] { ... }, .drop = [] { ... }});
//   pool.Remove(*id);   // still queued: removed, `drop` runs; running: false
//
// Thread-safe. Shutdown() (also run by the destructor) refuses new tasks, drops the queued ones
// (their `drop` runs on the calling thread) and waits for the running ones to return: stop those
// first (SearchOptions.cancelled).
#ifndef CAIRN_PLANNER_SERVER_SEARCH_POOL_H_
#define CAIRN_PLANNER_SERVER_SEARCH_POOL_H_

#include <cstdint>
#include <deque>
#include <functional>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"

namespace cairn::planner {

using TaskId = uint64_t;

struct PoolTask {
  // On a worker thread. Returns what to run after the worker counts as free again (may be empty):
  // tell the caller there, so a caller that resubmits at once finds the worker free.
  std::function<std::function<void()>()> run;
  // Instead of run, when removed or dropped at shutdown (may be empty).
  std::function<void()> drop;
};

class SearchPool {
 public:
  // workers >= 1, queue_limit >= 0.
  SearchPool(int workers, int queue_limit);
  ~SearchPool();
  SearchPool(const SearchPool&) = delete;
  SearchPool& operator=(const SearchPool&) = delete;

  // Queues `task`. RESOURCE_EXHAUSTED when `queue_limit` tasks already wait (the message says how
  // many run and wait and which flag raises the limit); UNAVAILABLE after Shutdown.
  absl::StatusOr<TaskId> Submit(PoolTask task);
  // Removes a task that is still queued and runs its `drop`; false if it is running or done.
  bool Remove(TaskId id);
  void Shutdown();

  int queued() const;
  int running() const;
  int workers() const { return static_cast<int>(threads_.size()); }

 private:
  void Loop();

  const int queue_limit_;
  mutable absl::Mutex mu_;
  bool shutdown_ ABSL_GUARDED_BY(mu_) = false;
  TaskId next_id_ ABSL_GUARDED_BY(mu_) = 1;
  std::deque<std::pair<TaskId, PoolTask>> queue_ ABSL_GUARDED_BY(mu_);
  int running_ ABSL_GUARDED_BY(mu_) = 0;
  std::vector<std::thread> threads_;
};

}  // namespace cairn::planner

#endif  // CAIRN_PLANNER_SERVER_SEARCH_POOL_H_
