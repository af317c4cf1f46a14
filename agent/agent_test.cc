// The Agent's loops against a FakePlanner (no sockets): registration and re-registration, the
// assignment stream and its reconnects, jobs run through JobHost with a fake cairn-train, the
// registration probe with a fake cairn-probe, and a shutdown that leaves nothing running.
#include "agent/agent.h"

#include <cstdlib>
#include <fstream>
#include <sstream>
#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "agent/testing/fake_binaries.h"
#include "agent/testing/fake_planner.h"
#include "common/testing/status_matchers.h"
#include "gtest/gtest.h"

namespace cairn::agent {
namespace {

using ::cairn::testing::IsOk;

class AgentTest : public ::testing::Test {
 protected:
  AgentTest() {
    options_.planner.address = "planner:7070";
    options_.work_dir = absl::StrCat(::testing::TempDir(), "/agent-", ++counter_);
    options_.train_binary = FakeTrainBinary();
    options_.probe_binary = FakeProbeBinary();
    options_.probe_on_register = "never";
    options_.metrics_address = "";
    options_.advertise_address = "10.0.0.9";
    options_.worker_grace = absl::Milliseconds(200);
    options_.poll_interval = absl::Milliseconds(10);
    options_.reconnect_initial = absl::Milliseconds(5);
    options_.reconnect_max = absl::Milliseconds(50);
    facts_.hostname = "node-a";
    facts_.fingerprint.set_device_model("cpu: Test");
    facts_.node.set_device_count(2);
    facts_.node.set_cpu_cores(2);
    cairn::v1::Plan plan;
    plan.set_model_name("llama-tiny");
    plan.mutable_prediction()->set_step_time_s(0.1);
    planner_->SetPlan("plan-1", plan);
    cairn::v1::Job job;
    job.set_job_id("job-1");
    job.set_plan_id("plan-1");
    job.set_steps(2);
    planner_->SetJob(job);
  }
  ~AgentTest() override { Stop(); }

  void Start() {
    auto planner = std::unique_ptr<FakePlanner>(planner_);
    absl::StatusOr<std::unique_ptr<Agent>> a = Agent::Create(options_, std::move(planner), facts_);
    ASSERT_THAT(a.status(), IsOk());
    agent_ = *std::move(a);
    runner_ = std::thread([this] { run_status_ = agent_->Run(); });
    ASSERT_TRUE(planner_->Await([this] { return agent_->registered(); }));
  }
  void Stop() {
    if (!agent_) return;
    agent_->Shutdown();
    runner_.join();
    EXPECT_THAT(run_status_, IsOk());
    agent_.reset();
  }
  cairn::v1::Assignment Job(int attempt = 1) {
    cairn::v1::Assignment a;
    a.set_job_id("job-1");
    a.set_plan_id("plan-1");
    a.add_ranks(0);
    a.add_ranks(1);
    a.set_world_size(2);
    a.set_attempt(attempt);
    return a;
  }

  static inline int counter_ = 0;
  AgentOptions options_;
  NodeFacts facts_;
  FakePlanner* planner_ = new FakePlanner;  // owned by the agent once started
  std::unique_ptr<Agent> agent_;
  std::thread runner_;
  absl::Status run_status_;
};

TEST_F(AgentTest, RegistersWithItsNodeAndKeepsItsIdAcrossRestarts) {
  Start();
  const auto regs = planner_->registrations();
  ASSERT_EQ(regs.size(), 1u);
  EXPECT_EQ(regs[0].hostname(), "node-a");
  EXPECT_EQ(regs[0].num_devices(), 2);
  EXPECT_EQ(regs[0].address(), "10.0.0.9:9465");
  EXPECT_EQ(regs[0].fingerprint().device_model(), "cpu: Test");
  EXPECT_TRUE(regs[0].agent_id().empty());
  EXPECT_EQ(agent_->agent_id(), "agent-1");
  EXPECT_TRUE(planner_->Await([this] { return planner_->heartbeats() >= 2; }));
  Stop();
  std::ifstream id(options_.work_dir + "/agent_id");
  std::string saved;
  id >> saved;
  EXPECT_EQ(saved, "agent-1");
}

TEST_F(AgentTest, RegistersAgainWhenThePlannerForgetsIt) {
  Start();
  planner_->ForgetAgents();
  ASSERT_TRUE(planner_->Await([this] { return planner_->registrations().size() >= 2; }));
  EXPECT_EQ(planner_->registrations()[1].agent_id(), "agent-1");  // asks to keep its id
}

TEST_F(AgentTest, RunsAnAssignedJobAndIgnoresARepeatOfIt) {
  setenv("FAKE_MODE", "ok", 1);
  Start();
  planner_->Push(Job());
  ASSERT_TRUE(planner_->AwaitReport(
      [](const auto& r) { return r.state() == cairn::v1::JOB_STATE_SUCCEEDED; }));
  planner_->Push(Job());  // the planner repeats current assignments after a reconnect
  planner_->EndStream(absl::UnavailableError("planner restarting"));
  ASSERT_TRUE(planner_->Await([this] { return planner_->watches() >= 2; }));
  int succeeded = 0;
  for (const auto& r : planner_->reports()) {
    succeeded += r.state() == cairn::v1::JOB_STATE_SUCCEEDED ? 1 : 0;
  }
  EXPECT_EQ(succeeded, 1);
}

TEST_F(AgentTest, CancelAndShutdownLeaveNoWorkerRunning) {
  setenv("FAKE_MODE", "hang", 1);
  Start();
  planner_->Push(Job());
  ASSERT_TRUE(planner_->Await([this] { return agent_->active_jobs() == 1; }));
  ASSERT_TRUE(planner_->AwaitReport(
      [](const auto& r) { return r.state() == cairn::v1::JOB_STATE_RUNNING; }));
  cairn::v1::Assignment cancel = Job();
  cancel.set_cancel(true);
  planner_->Push(cancel);
  ASSERT_TRUE(planner_->Await([this] { return agent_->active_jobs() == 0; }));
  // A newer attempt of the job, then SIGTERM-style shutdown with it running.
  planner_->Push(Job(2));
  ASSERT_TRUE(planner_->Await([this] { return agent_->active_jobs() == 1; }));
  Stop();  // Run returns only after every JobHost joined: its workers are gone
}

TEST_F(AgentTest, ProbesAtRegistrationAndUploadsTheProfiles) {
  options_.probe_on_register = "auto";
  Start();
  ASSERT_TRUE(planner_->Await([this] { return agent_->probes_done() == 1; }));
  const auto hw = planner_->hardware_profiles();
  ASSERT_EQ(hw.size(), 1u);
  EXPECT_EQ(hw[0].source(), cairn::v1::PROFILE_SOURCE_MEASURED);
  EXPECT_EQ(hw[0].fingerprint().device_model(), "cpu: Test");
  EXPECT_EQ(hw[0].devices_per_node(), 2);
  EXPECT_TRUE(absl::StrContains(hw[0].notes(), "cairn-probes/1"));
  ASSERT_EQ(planner_->model_profiles().size(), 1u);
  EXPECT_EQ(planner_->model_profiles()[0].model_name(), "llama-tiny");
  // A probe the planner asks for runs too; a second agent start finds the fresh profile.
  cairn::v1::Assignment probe;
  probe.mutable_probe()->set_probe_id("probe-7");
  planner_->Push(probe);
  ASSERT_TRUE(planner_->Await([this] { return agent_->probes_done() == 2; }));
  EXPECT_EQ(planner_->hardware_profiles().size(), 2u);
}

// --probe-time-limit-s reaches every probe rank's command line (the fake probe logs its argv).
TEST_F(AgentTest, PassesTheProbeTimeLimitToTheProbe) {
  options_.probe_time_limit_s = 300;
  Start();
  cairn::v1::Assignment probe;
  probe.mutable_probe()->set_probe_id("probe-limit");
  planner_->Push(probe);
  ASSERT_TRUE(planner_->Await([this] { return agent_->probes_done() == 1; }));
  std::ifstream log(options_.work_dir + "/probes/probe-limit/rank-0.log");
  std::stringstream text;
  text << log.rdbuf();
  EXPECT_TRUE(absl::StrContains(text.str(), "--time-limit-s 300")) << text.str();
}

TEST_F(AgentTest, RejectsANegativeProbeTimeLimit) {
  options_.probe_time_limit_s = -1;
  auto planner = std::unique_ptr<FakePlanner>(planner_);
  planner_ = nullptr;
  absl::StatusOr<std::unique_ptr<Agent>> a = Agent::Create(options_, std::move(planner), facts_);
  EXPECT_EQ(a.status().code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace cairn::agent
