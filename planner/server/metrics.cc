#include "planner/server/metrics.h"

#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "planner/plan/plan_convert.h"
#include "prometheus/text_serializer.h"

namespace cairn::planner {
namespace {

// RPC latencies: sub-millisecond cache hits to multi-minute searches.
const std::vector<double>& RpcBuckets() {
  static const auto* b = new std::vector<double>{0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                                                 0.1,    0.25,  0.5,    1,     2.5,  5,     10,
                                                 30,     60,    300,    900};
  return *b;
}

const std::vector<double>& SearchBuckets() {
  static const auto* b =
      new std::vector<double>{0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 900};
  return *b;
}

// SQLite calls: tens of microseconds (reads) to tens of milliseconds (synced writes).
const std::vector<double>& DbBuckets() {
  static const auto* b = new std::vector<double>{0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025,
                                                 0.005,   0.01,   0.025,   0.05,   0.1,   0.25,
                                                 0.5,     1};
  return *b;
}

}  // namespace

std::string JobStateLabel(cairn::v1::JobState state) {
  std::string name = cairn::v1::JobState_Name(state);
  if (absl::StartsWith(name, "JOB_STATE_")) name = name.substr(10);
  return absl::AsciiStrToLower(name);
}

Metrics::Metrics() : registry_(std::make_shared<prometheus::Registry>()) {
  rpcs_ = &prometheus::BuildCounter()
               .Name("cairn_planner_rpcs_total")
               .Help("RPCs finished, by method and gRPC status code")
               .Register(*registry_);
  rpc_duration_ = &prometheus::BuildHistogram()
                       .Name("cairn_planner_rpc_duration_seconds")
                       .Help("Time from the start of an RPC to its status, by method")
                       .Register(*registry_);
  search_duration_ = &prometheus::BuildHistogram()
                          .Name("cairn_planner_search_duration_seconds")
                          .Help("Wall time of fresh strategy searches (not cache hits)")
                          .Register(*registry_)
                          .Add({}, SearchBuckets());
  plans_searched_ = &prometheus::BuildCounter()
                         .Name("cairn_planner_plans_searched_total")
                         .Help("Strategy searches run to completion")
                         .Register(*registry_)
                         .Add({});
  cache_hits_ = &prometheus::BuildCounter()
                     .Name("cairn_planner_plan_cache_hits_total")
                     .Help("Plan requests answered from the plan cache")
                     .Register(*registry_)
                     .Add({});
  cache_misses_ = &prometheus::BuildCounter()
                       .Name("cairn_planner_plan_cache_misses_total")
                       .Help("Searches queued for Plan requests not in the plan cache (refused "
                             "requests and requests that joined a running search not counted)")
                       .Register(*registry_)
                       .Add({});
  searches_joined_ = &prometheus::BuildCounter()
                          .Name("cairn_planner_plan_searches_joined_total")
                          .Help("Plan requests answered by an identical search already queued or "
                                "running (single flight)")
                          .Register(*registry_)
                          .Add({});
  auto& agents = prometheus::BuildGauge()
                     .Name("cairn_planner_agents")
                     .Help("Registered agents by state")
                     .Register(*registry_);
  agents_up_ = &agents.Add({{"state", "up"}});
  agents_down_ = &agents.Add({{"state", "down"}});
  auto& jobs = prometheus::BuildGauge()
                   .Name("cairn_planner_jobs")
                   .Help("Jobs by state")
                   .Register(*registry_);
  for (int s = cairn::v1::JobState_MIN; s <= cairn::v1::JobState_MAX; ++s) {
    if (!cairn::v1::JobState_IsValid(s) || s == cairn::v1::JOB_STATE_UNSPECIFIED) continue;
    jobs_[s] = &jobs.Add({{"state", JobStateLabel(static_cast<cairn::v1::JobState>(s))}});
  }
  db_duration_ = &prometheus::BuildHistogram()
                      .Name("cairn_planner_db_operation_duration_seconds")
                      .Help("Store (SQLite) call latency by operation")
                      .Register(*registry_);
  prometheus::BuildGauge()
      .Name("cairn_planner_build_info")
      .Help("Always 1; the version label is the planner's version")
      .Register(*registry_)
      .Add({{"version", kCairnVersion}})
      .Set(1);
}

void Metrics::RecordRpc(absl::string_view method, absl::string_view code, double seconds) {
  rpcs_->Add({{"method", std::string(method)}, {"code", std::string(code)}}).Increment();
  rpc_duration_->Add({{"method", std::string(method)}}, RpcBuckets()).Observe(seconds);
}

void Metrics::RecordSearch(double seconds) {
  search_duration_->Observe(seconds);
  plans_searched_->Increment();
}

void Metrics::RecordCacheHit() { cache_hits_->Increment(); }
void Metrics::RecordCacheMiss() { cache_misses_->Increment(); }

void Metrics::RecordSearchJoined() { searches_joined_->Increment(); }

void Metrics::SetAgents(int up, int down) {
  agents_up_->Set(up);
  agents_down_->Set(down);
}

void Metrics::SetJobs(cairn::v1::JobState state, int count) {
  auto it = jobs_.find(state);
  if (it != jobs_.end()) it->second->Set(count);
}

void Metrics::RecordDbOperation(absl::string_view op, double seconds) {
  db_duration_->Add({{"op", std::string(op)}}, DbBuckets()).Observe(seconds);
}

std::string Metrics::TextExposition() const {
  return prometheus::TextSerializer().Serialize(registry_->Collect());
}

}  // namespace cairn::planner
