#include "planner/server/search_pool.h"

#include <utility>

#include "absl/strings/str_cat.h"

namespace cairn::planner {

SearchPool::SearchPool(int workers, int queue_limit) : queue_limit_(queue_limit) {
  if (workers < 1) workers = 1;
  threads_.reserve(workers);
  for (int i = 0; i < workers; ++i) threads_.emplace_back([this] { Loop(); });
}

SearchPool::~SearchPool() { Shutdown(); }

absl::StatusOr<TaskId> SearchPool::Submit(PoolTask task) {
  absl::MutexLock lock(&mu_);
  if (shutdown_) return absl::UnavailableError("the planner is shutting down; retry later");
  // A task that can start at once never waits in the queue, so it does not count against it.
  const int idle = static_cast<int>(threads_.size()) - running_ - static_cast<int>(queue_.size());
  if (idle <= 0 && static_cast<int>(queue_.size()) >= queue_limit_) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "search queue is full: ", running_, " searches running and ", queue_.size(),
        " waiting (limits --search-workers ", threads_.size(), ", --search-queue ", queue_limit_,
        "); retry later, or use a cached plan"));
  }
  const TaskId id = next_id_++;
  queue_.emplace_back(id, std::move(task));
  return id;
}

bool SearchPool::Remove(TaskId id) {
  PoolTask removed;
  {
    absl::MutexLock lock(&mu_);
    auto it = queue_.begin();
    while (it != queue_.end() && it->first != id) ++it;
    if (it == queue_.end()) return false;
    removed = std::move(it->second);
    queue_.erase(it);
  }
  if (removed.drop) removed.drop();
  return true;
}

void SearchPool::Shutdown() {
  std::deque<std::pair<TaskId, PoolTask>> dropped;
  {
    absl::MutexLock lock(&mu_);
    if (shutdown_) return;
    shutdown_ = true;
    dropped.swap(queue_);
  }
  for (auto& [id, task] : dropped) {
    if (task.drop) task.drop();
  }
  for (std::thread& t : threads_) t.join();
}

int SearchPool::queued() const {
  absl::MutexLock lock(&mu_);
  return static_cast<int>(queue_.size());
}

int SearchPool::running() const {
  absl::MutexLock lock(&mu_);
  return running_;
}

void SearchPool::Loop() {
  while (true) {
    PoolTask task;
    {
      absl::MutexLock lock(&mu_);
      mu_.Await(absl::Condition(
          +[](SearchPool* p) ABSL_NO_THREAD_SAFETY_ANALYSIS {
            return p->shutdown_ || !p->queue_.empty();
          },
          this));
      if (queue_.empty()) return;  // shut down
      task = std::move(queue_.front().second);
      queue_.pop_front();
      ++running_;
    }
    std::function<void()> then = task.run();
    {
      absl::MutexLock lock(&mu_);
      --running_;
    }
    if (then) then();
  }
}

}  // namespace cairn::planner
