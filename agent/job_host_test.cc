// JobHost against a FakePlanner with a fake cairn-train (agent/testing/fake_binaries.h): what
// the planner hears (RUNNING, steps with the plan's predictions, SUCCEEDED / FAILED naming the
// rank and node), what the workers get (rank environment, rendezvous through the planner), and
// that nothing is left running after a failure, a cancel, or a job the planner ended.
#include "agent/job_host.h"

#include <cstdlib>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "agent/testing/fake_binaries.h"
#include "agent/testing/fake_planner.h"
#include "gtest/gtest.h"

namespace cairn::agent {
namespace {

class JobHostTest : public ::testing::Test {
 protected:
  void SetUp() override {
    cairn::v1::Plan plan;
    plan.set_model_name("llama-tiny");
    plan.set_num_nodes(1);
    plan.set_devices_per_node(2);
    plan.mutable_prediction()->set_step_time_s(0.1);
    plan.mutable_prediction()->set_mfu(0.2);
    auto* mem = plan.mutable_prediction()->add_stage_memory();
    mem->set_total_bytes(5000);
    mem->set_reserved_bytes(1000);
    planner_.SetPlan("plan-1", plan);
    cairn::v1::Job job;
    job.set_job_id("job-1");
    job.set_plan_id("plan-1");
    job.set_data_path("/data");
    job.set_steps(3);
    planner_.SetJob(job);
    config_.agent_id = "agent-a";
    config_.node_name = "node-a";
    config_.work_dir = absl::StrCat(::testing::TempDir(), "/work-", ++counter_);
    config_.train_binary = FakeTrainBinary();
    config_.advertise_address = "10.0.0.7";
    config_.planner.address = "planner:7070";
    config_.worker_grace = absl::Milliseconds(200);
    config_.poll_interval = absl::Milliseconds(10);
    config_.log_upload_interval = absl::Milliseconds(10);
    assignment_.set_job_id("job-1");
    assignment_.set_plan_id("plan-1");
    assignment_.add_ranks(0);
    assignment_.add_ranks(1);
    assignment_.set_world_size(2);
  }
  void Mode(const std::string& mode) { setenv("FAKE_MODE", mode.c_str(), 1); }

  static inline int counter_ = 0;
  FakePlanner planner_;
  AgentMetrics metrics_;
  JobHostConfig config_;
  cairn::v1::Assignment assignment_;
};

bool Is(const cairn::v1::ReportJobStatusRequest& r, cairn::v1::JobState s) { return r.state() == s; }

TEST_F(JobHostTest, RunsEveryRankReportsStepsAndSucceeds) {
  Mode("ok");
  JobHost host(config_, &planner_, &metrics_, assignment_);
  host.Start();
  host.Join();
  EXPECT_EQ(host.result(), "succeeded");
  const std::vector<cairn::v1::ReportJobStatusRequest> reports = planner_.reports();
  ASSERT_GE(reports.size(), 5u);
  EXPECT_EQ(reports.front().state(), cairn::v1::JOB_STATE_RUNNING);
  EXPECT_EQ(reports.back().state(), cairn::v1::JOB_STATE_SUCCEEDED);
  int steps = 0;
  for (const auto& r : reports) {
    EXPECT_EQ(r.agent_id(), "agent-a");
    if (!r.has_step()) continue;
    ++steps;
    EXPECT_DOUBLE_EQ(r.step().predicted_step_time_s(), 0.1);
    EXPECT_EQ(r.step().predicted_memory_bytes(), 4000);  // total minus the reservation
    EXPECT_DOUBLE_EQ(r.step().mfu(), 0.2 * 0.1 / 0.2);   // predicted MFU x predicted / measured
    EXPECT_DOUBLE_EQ(r.step().step_time_s(), 0.2);
  }
  EXPECT_EQ(steps, 3);
  // Each worker saw its rank and the planner rendezvous of attempt 1; its output was uploaded.
  EXPECT_TRUE(absl::StrContains(planner_.logs("job-1", 1),
                                "rank 1 of 2 local 1/2 prefix attempt-1/ job job-1 host 10.0.0.7"))
      << planner_.logs("job-1", 1);
  EXPECT_TRUE(absl::StrContains(metrics_.TextExposition(),
                                "cairn_agent_jobs_total{result=\"succeeded\"} 1"));
}

TEST_F(JobHostTest, AFailingRankFailsTheJobNamingRankAndNodeAndStopsTheOthers) {
  Mode("fail");
  setenv("FAKE_FAIL_RANK", "1", 1);
  JobHost host(config_, &planner_, &metrics_, assignment_);
  host.Start();
  host.Join();
  EXPECT_EQ(host.result(), "failed");
  EXPECT_EQ(host.workers_running(), 0);
  const auto reports = planner_.reports();
  ASSERT_FALSE(reports.empty());
  const auto& last = reports.back();
  EXPECT_EQ(last.state(), cairn::v1::JOB_STATE_FAILED);
  EXPECT_TRUE(absl::StrContains(last.message(), "rank 1 on node node-a")) << last.message();
  EXPECT_TRUE(absl::StrContains(last.message(), "exited with status 3")) << last.message();
  EXPECT_TRUE(absl::StrContains(last.message(), "injected failure")) << last.message();
}

TEST_F(JobHostTest, CancelStopsTheWorkersAndReportsNothingMore) {
  Mode("hang");
  JobHost host(config_, &planner_, &metrics_, assignment_);
  host.Start();
  ASSERT_TRUE(planner_.AwaitReport(
      [](const auto& r) { return Is(r, cairn::v1::JOB_STATE_RUNNING); }));
  host.Cancel("cancelled by the planner");
  host.Join();
  EXPECT_EQ(host.result(), "cancelled");
  EXPECT_EQ(host.workers_running(), 0);
  for (const auto& r : planner_.reports()) EXPECT_NE(r.state(), cairn::v1::JOB_STATE_FAILED);
}

TEST_F(JobHostTest, AJobThePlannerEndedIsStopped) {
  Mode("hang");
  planner_.FailReportsWith(absl::FailedPreconditionError("job 'job-1' already ended; stop it"));
  JobHost host(config_, &planner_, &metrics_, assignment_);
  host.Start();
  host.Join();  // the RUNNING report is refused: the workers are stopped at once
  EXPECT_EQ(host.result(), "cancelled");
}

TEST_F(JobHostTest, AMissingPlanFailsTheJobOnThisNode) {
  Mode("ok");
  assignment_.set_plan_id("no-such-plan");
  JobHost host(config_, &planner_, &metrics_, assignment_);
  host.Start();
  host.Join();
  EXPECT_EQ(host.result(), "failed");
  ASSERT_FALSE(planner_.reports().empty());
  EXPECT_TRUE(absl::StrContains(planner_.reports().back().message(), "could not start"));
}

TEST(ParseMetricsLineTest, ReadsCairnTrainsJsonLines) {
  std::optional<cairn::v1::StepMetrics> m = ParseMetricsLine(
      R"({"step": 7, "loss": 4.25, "step_time_s": 0.5, "tokens_per_s": 4096.0, )"
      R"("peak_memory_bytes": 123, "mfu": 0.0})");
  ASSERT_TRUE(m.has_value());
  EXPECT_EQ(m->step(), 7);
  EXPECT_DOUBLE_EQ(m->loss(), 4.25);
  EXPECT_EQ(m->peak_memory_bytes(), 123);
  EXPECT_FALSE(ParseMetricsLine("not json").has_value());
  EXPECT_FALSE(ParseMetricsLine("{}").has_value());
}

}  // namespace
}  // namespace cairn::agent
