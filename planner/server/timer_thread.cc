#include "planner/server/timer_thread.h"

#include <algorithm>
#include <utility>

namespace cairn::planner {

TimerThread::TimerThread() : thread_([this] { Loop(); }) {}

TimerThread::~TimerThread() { Stop(); }

TimerId TimerThread::Schedule(absl::Duration delay, std::function<void()> fn) {
  const SteadyTime due =
      std::chrono::steady_clock::now() +
      std::chrono::duration_cast<std::chrono::steady_clock::duration>(
          absl::ToChronoNanoseconds(std::max(delay, absl::ZeroDuration())));
  absl::MutexLock lock(&mu_);
  if (stopped_) return 0;
  const TimerId id = next_id_++;
  pending_.emplace(std::make_pair(due, id), std::move(fn));
  due_.emplace(id, due);
  return id;
}

bool TimerThread::Cancel(TimerId id) {
  absl::MutexLock lock(&mu_);
  auto it = due_.find(id);
  if (it == due_.end()) return false;
  pending_.erase(std::make_pair(it->second, id));
  due_.erase(it);
  return true;
}

void TimerThread::Stop() {
  {
    absl::MutexLock lock(&mu_);
    if (stopped_) return;
    stopped_ = true;
    pending_.clear();
    due_.clear();
  }
  if (thread_.joinable()) thread_.join();
}

void TimerThread::Loop() {
  mu_.Lock();
  while (!stopped_) {
    if (pending_.empty()) {
      // Woken by Schedule (pending_ changes) or Stop.
      mu_.Await(absl::Condition(
          +[](TimerThread* t) ABSL_NO_THREAD_SAFETY_ANALYSIS {
            return t->stopped_ || !t->pending_.empty();
          },
          this));
      continue;
    }
    const SteadyTime now = std::chrono::steady_clock::now();
    auto first = pending_.begin();
    if (first->first.first > now) {
      // Sleep until the first timer is due, or until an earlier one is scheduled, or Stop.
      const SteadyTime due = first->first.first;
      const auto first_key = first->first;
      struct Args {
        TimerThread* t;
        std::pair<SteadyTime, TimerId> key;
      } args{this, first_key};
      mu_.AwaitWithTimeout(
          absl::Condition(
              +[](Args* a) ABSL_NO_THREAD_SAFETY_ANALYSIS {
                return a->t->stopped_ || a->t->pending_.empty() ||
                       a->t->pending_.begin()->first != a->key;
              },
              &args),
          absl::FromChrono(due - now));
      continue;
    }
    std::function<void()> fn = std::move(first->second);
    due_.erase(first->first.second);
    pending_.erase(first);
    mu_.Unlock();
    fn();
    mu_.Lock();
  }
  mu_.Unlock();
}

}  // namespace cairn::planner
