#include "planner/server/executor.h"

#include <utility>

#include "absl/strings/str_cat.h"

namespace cairn::planner {

Executor::Executor(int threads, int queue_limit) : queue_limit_(queue_limit) {
  if (threads < 1) threads = 1;
  threads_.reserve(threads);
  for (int i = 0; i < threads; ++i) threads_.emplace_back([this] { Loop(); });
}

Executor::~Executor() { Stop(); }

absl::Status Executor::Submit(std::function<void()> task) {
  absl::MutexLock lock(&mu_);
  if (stopped_) return absl::UnavailableError("the planner is shutting down; retry later");
  // A task an idle thread takes at once does not wait, so it does not count against the queue.
  if (static_cast<int>(queue_.size()) - idle_ >= queue_limit_) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "the planner is overloaded: ", queue_.size(), " calls wait for one of its ",
        threads_.size(), " worker threads (limits --worker-threads, --worker-queue); retry later"));
  }
  queue_.push_back(std::move(task));
  return absl::OkStatus();
}

void Executor::Stop() {
  {
    absl::MutexLock lock(&mu_);
    if (stopped_) return;
    stopped_ = true;
  }
  for (std::thread& t : threads_) t.join();
}

int Executor::queued() const {
  absl::MutexLock lock(&mu_);
  return static_cast<int>(queue_.size());
}

void Executor::Loop() {
  while (true) {
    std::function<void()> task;
    {
      absl::MutexLock lock(&mu_);
      ++idle_;
      mu_.Await(absl::Condition(
          +[](Executor* e) ABSL_NO_THREAD_SAFETY_ANALYSIS {
            return e->stopped_ || !e->queue_.empty();
          },
          this));
      --idle_;
      if (queue_.empty()) return;  // stopped, and everything queued has run
      task = std::move(queue_.front());
      queue_.pop_front();
    }
    task();
  }
}

}  // namespace cairn::planner
