// planner/server/rendezvous_logic.h — the Rendezvous service's logic: a key-value store per job
// for its training workers (NCCL unique id, Gloo addresses), with a Wait that never blocks a thread.
//
//   RendezvousLogic rdzv(&store, &timers);
//   rdzv.Set(set_request);                                   // durable, then wakes waiters
//   WaitId id = rdzv.Wait(wait_request, [](absl::StatusOr<cairn::v1::RendezvousWaitResponse> r) {
//     ...   // exactly once: every key arrived, the timeout passed, CancelWait, or Shutdown
//   });
//   rdzv.CancelWait(id);   // the client went away
//
// Wait completes at once when every key is already set; otherwise it registers the waiter and a
// timer (TimerThread) and returns. Set completes every waiter whose last missing key it provides.
// A timeout gives DEADLINE_EXCEEDED naming the keys still missing (the first
// kMaxKeysNamedInMessages of them, and how many more). Keys belong to a job that must exist
// (NOT_FOUND otherwise) and still run: Set and Wait on a job that ended are FAILED_PRECONDITION
// (Get still reads). Setting a key again replaces its value.
//
// Bounded (validation.h): values at most 64 KiB, at most kMaxRendezvousKeysPerJob keys and
// kMaxRendezvousBytesPerJob bytes of values per job, kMaxRendezvousWaitKeys keys per Wait,
// kMaxRendezvousWaiters pending waits (kMaxRendezvousWaitersPerJob per job); beyond any of them
// RESOURCE_EXHAUSTED saying which limit. Callbacks run without the logic's lock held.
// Thread-safe.
#ifndef CAIRN_PLANNER_SERVER_RENDEZVOUS_LOGIC_H_
#define CAIRN_PLANNER_SERVER_RENDEZVOUS_LOGIC_H_

#include <cstdint>
#include <functional>
#include <map>
#include <set>
#include <string>

#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "planner/server/timer_thread.h"
#include "planner/store/store.h"
#include "proto/cairn/v1/service.pb.h"

namespace cairn::planner {

using WaitId = uint64_t;  // 0: the wait already completed

class RendezvousLogic {
 public:
  using WaitDone = std::function<void(absl::StatusOr<cairn::v1::RendezvousWaitResponse>)>;

  RendezvousLogic(Store* store, TimerThread* timers) : store_(store), timers_(timers) {}
  ~RendezvousLogic();  // Shutdown()

  absl::StatusOr<cairn::v1::RendezvousSetResponse> Set(
      const cairn::v1::RendezvousSetRequest& request);
  // NOT_FOUND naming the key when it is not set yet.
  absl::StatusOr<cairn::v1::RendezvousGetResponse> Get(
      const cairn::v1::RendezvousGetRequest& request);
  // See the overview. Returns 0 when `done` already ran.
  WaitId Wait(const cairn::v1::RendezvousWaitRequest& request, WaitDone done);
  // The waiter gets CANCELLED (if it has not completed yet).
  void CancelWait(WaitId id);
  // Every waiter gets UNAVAILABLE; later waits too. Idempotent.
  void Shutdown();

  int waiting() const;

 private:
  struct Waiter {
    std::string job_id;
    std::set<std::string> missing;
    cairn::v1::RendezvousWaitResponse values;
    double timeout_s = 0;
    TimerId timer = 0;
    WaitDone done;
  };
  // NOT_FOUND for an unknown job; with `running`, FAILED_PRECONDITION for one that ended.
  absl::Status CheckJob(const std::string& job_id, bool running);
  // Removes the waiter and returns its callback (empty when already gone).
  WaitDone TakeLocked(WaitId id, Waiter* out) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  Store* const store_;
  TimerThread* const timers_;
  mutable absl::Mutex mu_;
  bool shutting_down_ ABSL_GUARDED_BY(mu_) = false;
  WaitId next_id_ ABSL_GUARDED_BY(mu_) = 1;
  std::map<WaitId, Waiter> waiters_ ABSL_GUARDED_BY(mu_);
};

}  // namespace cairn::planner

#endif  // CAIRN_PLANNER_SERVER_RENDEZVOUS_LOGIC_H_
