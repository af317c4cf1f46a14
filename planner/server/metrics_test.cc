#include "planner/server/metrics.h"

#include <cstdlib>
#include <fstream>
#include <sstream>

#include "absl/strings/match.h"
#include "absl/strings/str_split.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace cairn::planner {
namespace {

using ::testing::HasSubstr;

TEST(MetricsTest, ExportsEveryFamilyWithConventionalNames) {
  Metrics m;
  m.RecordRpc("cairn.v1.Planner/Plan", "OK", 0.003);
  m.RecordRpc("cairn.v1.Planner/Plan", "OK", 0.004);
  m.RecordRpc("cairn.v1.Planner/Plan", "INVALID_ARGUMENT", 0.001);
  m.RecordSearch(1.5);
  m.RecordCacheHit();
  m.RecordCacheMiss();
  m.RecordCacheMiss();
  m.RecordSearchJoined();
  m.SetAgents(3, 1);
  m.SetJobs(cairn::v1::JOB_STATE_RUNNING, 2);
  m.RecordDbOperation("PutPlan", 0.002);
  const std::string text = m.TextExposition();
  EXPECT_THAT(text, HasSubstr("cairn_planner_rpcs_total{code=\"OK\",method=\"cairn.v1.Planner/Plan\"} 2"));
  EXPECT_THAT(text, HasSubstr(
                        "cairn_planner_rpcs_total{code=\"INVALID_ARGUMENT\",method=\"cairn.v1.Planner/Plan\"} 1"));
  EXPECT_THAT(text, HasSubstr("cairn_planner_rpc_duration_seconds_count{method=\"cairn.v1.Planner/Plan\"} 3"));
  EXPECT_THAT(text, HasSubstr("cairn_planner_rpc_duration_seconds_bucket{method=\"cairn.v1.Planner/Plan\",le=\"0.005\"} 3"));
  EXPECT_THAT(text, HasSubstr("cairn_planner_search_duration_seconds_count 1"));
  EXPECT_THAT(text, HasSubstr("cairn_planner_search_duration_seconds_sum 1.5"));
  EXPECT_THAT(text, HasSubstr("cairn_planner_plans_searched_total 1"));
  EXPECT_THAT(text, HasSubstr("cairn_planner_plan_cache_hits_total 1"));
  EXPECT_THAT(text, HasSubstr("cairn_planner_plan_cache_misses_total 2"));
  EXPECT_THAT(text, HasSubstr("cairn_planner_plan_searches_joined_total 1"));
  EXPECT_THAT(text, HasSubstr("cairn_planner_agents{state=\"up\"} 3"));
  EXPECT_THAT(text, HasSubstr("cairn_planner_agents{state=\"down\"} 1"));
  EXPECT_THAT(text, HasSubstr("cairn_planner_jobs{state=\"running\"} 2"));
  EXPECT_THAT(text, HasSubstr("cairn_planner_jobs{state=\"pending\"} 0"));
  EXPECT_THAT(text, HasSubstr("cairn_planner_db_operation_duration_seconds_count{op=\"PutPlan\"} 1"));
  EXPECT_THAT(text, HasSubstr("cairn_planner_build_info{version=\"0.1.0\"} 1"));
  EXPECT_THAT(text, HasSubstr("# TYPE cairn_planner_rpc_duration_seconds histogram"));
}

// docs/planner-daemon.md lists every metric the daemon exports.
TEST(MetricsTest, TheOperatorDocumentationListsEveryMetric) {
  const char* srcdir = std::getenv("TEST_SRCDIR");
  ASSERT_NE(srcdir, nullptr);
  std::ifstream in(std::string(srcdir) + "/cairn/docs/planner-daemon.md");
  std::stringstream doc;
  doc << in.rdbuf();
  ASSERT_FALSE(doc.str().empty());
  Metrics m;
  m.RecordRpc("cairn.v1.Planner/Plan", "OK", 0.001);  // families with labels appear once used
  m.RecordDbOperation("GetPlan", 0.001);
  int families = 0;
  for (absl::string_view line : absl::StrSplit(m.TextExposition(), '\n')) {
    if (!absl::StartsWith(line, "# TYPE cairn_planner_")) continue;
    std::vector<absl::string_view> parts = absl::StrSplit(line, ' ');
    ASSERT_GE(parts.size(), 3u);
    const std::string name(parts[2]);
    EXPECT_THAT(doc.str(), HasSubstr("`" + name + "`")) << name << " is not in the docs";
    ++families;
  }
  EXPECT_EQ(families, 11);
}

TEST(MetricsTest, JobStateLabels) {
  EXPECT_EQ(JobStateLabel(cairn::v1::JOB_STATE_PENDING), "pending");
  EXPECT_EQ(JobStateLabel(cairn::v1::JOB_STATE_CANCELLED), "cancelled");
}

}  // namespace
}  // namespace cairn::planner
