// planner/server/metrics.h — the planner daemon's Prometheus metrics, defined in one place.
//
// Every metric the daemon exports is created here (names follow Prometheus conventions: base units,
// `_total` counters, `_seconds` histograms); the logic classes and service adapters only call the
// Record*/Set* methods. The registry is served over HTTP by prometheus::Exposer (server.cc).
//
//   cairn_planner_rpcs_total{method,code}                 counter   finished RPCs
//   cairn_planner_rpc_duration_seconds{method}            histogram RPC latency (streams: lifetime)
//   cairn_planner_search_duration_seconds                 histogram fresh searches, wall time
//   cairn_planner_plans_searched_total                    counter   fresh searches completed
//   cairn_planner_plan_cache_hits_total                   counter   Plan answered from the cache
//   cairn_planner_plan_cache_misses_total                 counter   searches run for Plan cache misses
//   cairn_planner_plan_searches_joined_total              counter   Plan that joined an identical running search
//   cairn_planner_agents{state}                           gauge     agents by state (up, down)
//   cairn_planner_jobs{state}                             gauge     jobs by state (pending, ...)
//   cairn_planner_db_operation_duration_seconds{op}       histogram Store calls by method
//   cairn_planner_build_info{version}                     gauge     1, labelled with kCairnVersion
//
//   Metrics metrics;
//   metrics.RecordRpc("cairn.v1.Planner/Plan", "OK", 0.004);
//   std::string text = metrics.TextExposition();   // what a scrape returns
//
// Thread-safe.
#ifndef CAIRN_PLANNER_SERVER_METRICS_H_
#define CAIRN_PLANNER_SERVER_METRICS_H_

#include <map>
#include <memory>
#include <string>

#include "absl/strings/string_view.h"
#include "prometheus/counter.h"
#include "prometheus/family.h"
#include "prometheus/gauge.h"
#include "prometheus/histogram.h"
#include "prometheus/registry.h"
#include "proto/cairn/v1/service.pb.h"

namespace cairn::planner {

class Metrics {
 public:
  Metrics();
  Metrics(const Metrics&) = delete;
  Metrics& operator=(const Metrics&) = delete;

  // For prometheus::Exposer::RegisterCollectable.
  std::shared_ptr<prometheus::Registry> registry() const { return registry_; }

  // `method` is "cairn.v1.<Service>/<Method>", `code` the gRPC code name ("OK", "NOT_FOUND").
  void RecordRpc(absl::string_view method, absl::string_view code, double seconds);
  void RecordSearch(double seconds);
  void RecordCacheHit();
  void RecordCacheMiss();
  void RecordSearchJoined();
  void SetAgents(int up, int down);
  // Count of jobs in `state` (every state the JobState enum has except UNSPECIFIED is exported,
  // zero until set).
  void SetJobs(cairn::v1::JobState state, int count);
  void RecordDbOperation(absl::string_view op, double seconds);

  // The text exposition format, as a scrape of the HTTP endpoint returns it.
  std::string TextExposition() const;

 private:
  std::shared_ptr<prometheus::Registry> registry_;
  prometheus::Family<prometheus::Counter>* rpcs_;
  prometheus::Family<prometheus::Histogram>* rpc_duration_;
  prometheus::Histogram* search_duration_;
  prometheus::Counter* plans_searched_;
  prometheus::Counter* cache_hits_;
  prometheus::Counter* cache_misses_;
  prometheus::Counter* searches_joined_;
  prometheus::Gauge* agents_up_;
  prometheus::Gauge* agents_down_;
  std::map<int, prometheus::Gauge*> jobs_;  // by JobState; filled in the constructor
  prometheus::Family<prometheus::Histogram>* db_duration_;
};

// "JOB_STATE_RUNNING" -> "running".
std::string JobStateLabel(cairn::v1::JobState state);

}  // namespace cairn::planner

#endif  // CAIRN_PLANNER_SERVER_METRICS_H_
