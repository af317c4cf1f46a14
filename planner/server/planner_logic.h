// planner/server/planner_logic.h — the Planner service's logic: resolve a PlanRequest, answer it
// from the plan cache or run the search on a bounded worker pool, store and list plans.
//
//   PlannerLogic planner(&store, &timers, &metrics, &clock, PlannerOptions{});
//   std::shared_ptr<SearchTicket> t = planner.Plan(request, /*progress=*/nullptr,
//       [](absl::StatusOr<cairn::v1::PlanResponse> r) { ... });   // exactly once, any thread
//   t->Cancel();   // the client went away: frees the worker (done gets CANCELLED)
//
// What Plan does, in order:
//  1. ValidatePlanRequest, then Resolve: model_name -> the catalog ModelSpec; hardware_profile_id
//     ("ID" = latest, "ID@N") -> the stored profile, or cluster_name -> the catalog cluster, with
//     num_nodes (0 = 1) and devices_per_node; model_profile_id -> the stored model profile.
//  2. BuildSearchProblem on the resolved search (INVALID_ARGUMENT "search.<field> ...").
//  3. Unless no_cache: the plan cache. The key is a SHA-256 of the resolved SearchRequest (threads
//     cleared: they do not change the answer) plus the profile ids and versions used and
//     kCairnVersion, so a new profile version or a new planner version never hits an old plan.
//     A hit is answered on the calling thread (cached = true).
//  4. Single flight: an identical request (same cache key) whose search is already queued or
//     running joins it instead of searching again, and gets the same answer and plan id.
//  5. Otherwise the search is queued on the pool (RESOURCE_EXHAUSTED when --search-queue searches
//     already wait), runs with SearchOptions.cancelled wired to its callers' Cancel() (it stops
//     when every caller left), to the time limit (DEADLINE_EXCEEDED after --max-search-seconds of
//     searching) and to Shutdown (UNAVAILABLE), and its SearchResponse is stored as a new plan
//     (also when nothing fits: the response then has no plans and says why).
// Metrics: a cache miss is counted for each search accepted by the pool (not for requests that
// joined one, were refused, or skipped the cache with no_cache).
//
// Thread-safe. Store errors are passed on as they are (INTERNAL/UNAVAILABLE).
#ifndef CAIRN_PLANNER_SERVER_PLANNER_LOGIC_H_
#define CAIRN_PLANNER_SERVER_PLANNER_LOGIC_H_

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <string>

#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "planner/problem/problem.h"
#include "planner/search/search.h"
#include "planner/server/clock.h"
#include "planner/server/metrics.h"
#include "planner/server/search_pool.h"
#include "planner/server/timer_thread.h"
#include "planner/store/store.h"
#include "proto/cairn/v1/service.pb.h"

namespace cairn::planner {

struct PlannerOptions {
  int search_workers = 2;                             // searches running at once
  int search_queue = 16;                              // searches waiting beyond those
  absl::Duration max_search_time = absl::Seconds(300);  // per search, from its start
  int max_search_threads = 0;                         // threads per search; 0 = all cores
  // Tests only: runs instead of planner::Search (e.g. one that blocks until released).
  std::function<absl::StatusOr<SearchResult>(const SearchProblem&, const SearchOptions&)> search;
};

// The model and cluster a PlanRequest names, filled into one SearchRequest, and its cache key.
struct ResolvedPlanRequest {
  cairn::v1::SearchRequest search;
  std::string hardware_label;  // provenance, e.g. "h100-sxm (built-in default)"
  std::string model_label;     // "profile ID@VERSION" when a stored model profile is used
  std::string cache_key;
};

class Flight;

// One caller's Plan: how it hears about progress and the answer, and how it leaves.
class SearchTicket {
 public:
  using ProgressFn = std::function<void(int64_t done, int64_t total)>;
  using DoneFn = std::function<void(absl::StatusOr<cairn::v1::PlanResponse>)>;

  // This caller leaves; `done` gets CANCELLED unless it already ran. The search stops when no
  // caller is left (its last caller's `done` then runs once the worker is free again, within
  // milliseconds); it goes on for the others otherwise. Any thread, any time.
  void Cancel();

  // Internal (PlannerLogic).
  SearchTicket(ProgressFn progress, DoneFn done);
  // Runs `done` unless it already ran; true if this call ran it.
  bool Finish(absl::StatusOr<cairn::v1::PlanResponse> result);
  const ProgressFn& progress() const { return progress_; }
  void set_flight(const std::shared_ptr<Flight>& flight);

 private:
  const ProgressFn progress_;
  absl::Mutex mu_;
  DoneFn done_ ABSL_GUARDED_BY(mu_);
  bool finished_ ABSL_GUARDED_BY(mu_) = false;
  std::weak_ptr<Flight> flight_ ABSL_GUARDED_BY(mu_);
};

class PlannerLogic {
 public:
  // Every pointer must outlive this object.
  PlannerLogic(Store* store, TimerThread* timers, Metrics* metrics, const Clock* clock,
               PlannerOptions options);
  ~PlannerLogic();  // Shutdown()
  PlannerLogic(const PlannerLogic&) = delete;
  PlannerLogic& operator=(const PlannerLogic&) = delete;

  // See the overview. `progress` (may be empty) is called from search threads with
  // (combinations done, total); `done` exactly once, possibly before Plan returns.
  std::shared_ptr<SearchTicket> Plan(const cairn::v1::PlanRequest& request,
                                     SearchTicket::ProgressFn progress, SearchTicket::DoneFn done);
  // Plan, waiting for the answer (tests, and callers that are on their own thread).
  absl::StatusOr<cairn::v1::PlanResponse> PlanAndWait(const cairn::v1::PlanRequest& request);

  absl::StatusOr<ResolvedPlanRequest> Resolve(const cairn::v1::PlanRequest& request);

  // NOT_FOUND naming the id for an unknown plan.
  absl::StatusOr<cairn::v1::PlanResponse> GetPlan(const cairn::v1::GetPlanRequest& request);
  absl::StatusOr<cairn::v1::ListPlansResponse> ListPlans(
      const cairn::v1::ListPlansRequest& request);

  // Cancels every running and queued search (their callers get UNAVAILABLE), waits for the
  // workers, and refuses new searches. Idempotent.
  void Shutdown();

  int searches_running() const { return pool_.running(); }
  int searches_queued() const { return pool_.queued(); }

 private:
  // Runs on a worker; returns the calls of the callers' `done`, made once the worker is free.
  std::function<void()> RunSearch(const std::shared_ptr<Flight>& flight,
                                  const ResolvedPlanRequest& resolved, const SearchProblem& problem);
  void Forget(const std::shared_ptr<Flight>& flight);

  Store* const store_;
  TimerThread* const timers_;
  Metrics* const metrics_;
  const Clock* const clock_;
  const PlannerOptions options_;
  SearchPool pool_;

  absl::Mutex mu_;
  bool shutting_down_ ABSL_GUARDED_BY(mu_) = false;
  std::set<std::shared_ptr<Flight>> live_ ABSL_GUARDED_BY(mu_);
  // Joinable flights (not no_cache) by cache key.
  std::map<std::string, std::shared_ptr<Flight>> flights_ ABSL_GUARDED_BY(mu_);
};

}  // namespace cairn::planner

#endif  // CAIRN_PLANNER_SERVER_PLANNER_LOGIC_H_
