#include "planner/server/jobs_logic.h"

#include <memory>
#include <string>
#include <vector>

#include "common/testing/status_matchers.h"
#include "gtest/gtest.h"
#include "absl/strings/str_cat.h"
#include "planner/catalog/clusters.h"
#include "planner/server/testing/collecting_sink.h"
#include "planner/server/testing/fake_clock.h"
#include "planner/store/testing/memory_store.h"

namespace cairn::planner {
namespace {

using ::cairn::testing::StatusIs;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Not;
using cairn::planner::testing::CollectingSink;
using JobEvents = CollectingSink<cairn::v1::JobEvent>;
using Assignments = CollectingSink<cairn::v1::Assignment>;

// llama-tiny on the CPU cluster: a plan for 4 devices (one node of 4 workers).
cairn::v1::PlanRequest TinyRequest() {
  cairn::v1::PlanRequest r;
  r.set_model_name("llama-tiny");
  r.set_cluster_name("cpu");
  r.mutable_search()->set_global_batch_size(16);
  r.mutable_search()->set_seq_len(256);
  return r;
}

std::vector<int> Ranks(const cairn::v1::Assignment& a) {
  return std::vector<int>(a.ranks().begin(), a.ranks().end());
}

class JobsLogicTest : public ::testing::Test {
 protected:
  JobsLogicTest() { Start(); }

  // (Re)creates the logic on the same store, as a restarted daemon does.
  void Start() {
    jobs_.reset();
    agents_.reset();
    planner_ = std::make_unique<PlannerLogic>(&store_, &timers_, &metrics_, &clock_,
                                              PlannerOptions{});
    agents_ = std::make_unique<AgentsLogic>(&store_, &clock_, &metrics_,
                                            AgentsOptions{absl::Seconds(30)});
    jobs_ = std::make_unique<JobsLogic>(&store_, planner_.get(), agents_.get(), &clock_, &metrics_);
    ASSERT_OK(agents_->Load());
    ASSERT_OK(jobs_->Load());
    agents_->SetListener(jobs_.get());
  }
  std::string PlanId() {
    if (plan_id_.empty()) plan_id_ = planner_->PlanAndWait(TinyRequest()).value().plan_id();
    return plan_id_;
  }
  std::string AddAgent(const std::string& host, int devices) {
    cairn::v1::RegisterAgentRequest r;
    r.set_hostname(host);
    r.set_address(host + ":7071");
    r.set_num_devices(devices);
    return agents_->Register(r).value().agent_id();
  }
  absl::StatusOr<cairn::v1::Job> Submit() {
    cairn::v1::SubmitJobRequest r;
    r.set_plan_id(PlanId());
    r.set_data_path("/data/tiny");
    r.set_steps(100);
    r.set_name("tiny");
    return jobs_->SubmitAndWait(r);
  }
  cairn::v1::Job Get(const std::string& id) {
    cairn::v1::GetJobRequest r;
    r.set_job_id(id);
    return jobs_->Get(r).value();
  }
  absl::Status Report(const std::string& job, const std::string& agent, cairn::v1::JobState state,
                      int step = -1) {
    cairn::v1::ReportJobStatusRequest r;
    r.set_job_id(job);
    r.set_agent_id(agent);
    r.set_state(state);
    if (step >= 0) {
      r.mutable_step()->set_step(step);
      r.mutable_step()->set_step_time_s(0.5);
    }
    return jobs_->Report(r).status();
  }
  WatchId WatchAssignments(const std::string& agent, Assignments* sink) {
    cairn::v1::WatchAssignmentsRequest r;
    r.set_agent_id(agent);
    return jobs_->WatchAssignments(r, sink).value();
  }
  WatchId WatchJob(const std::string& job, JobEvents* sink) {
    cairn::v1::WatchJobRequest r;
    r.set_job_id(job);
    return jobs_->WatchJob(r, sink).value();
  }

  cairn::planner::testing::MemoryStore store_;
  TimerThread timers_;
  Metrics metrics_;
  cairn::planner::testing::FakeClock clock_;
  std::unique_ptr<PlannerLogic> planner_;
  std::unique_ptr<AgentsLogic> agents_;
  std::unique_ptr<JobsLogic> jobs_;
  std::string plan_id_;
};

TEST_F(JobsLogicTest, PendingUntilEnoughDevicesThenRanksFillLowestAgentIdsFirst) {
  ASSERT_OK_AND_ASSIGN(cairn::v1::Job job, Submit());
  EXPECT_EQ(job.state(), cairn::v1::JOB_STATE_PENDING);
  EXPECT_THAT(job.message(), HasSubstr("waiting for 4 free devices on UP agents (0 free on 0"));
  const std::string a = AddAgent("a", 3);
  EXPECT_EQ(Get(job.job_id()).state(), cairn::v1::JOB_STATE_PENDING);
  EXPECT_THAT(Get(job.job_id()).message(), HasSubstr("(3 free on 1 agents now)"));
  Assignments on_a;
  WatchAssignments(a, &on_a);
  const std::string b = AddAgent("b", 8);
  ASSERT_LT(a, b);
  const cairn::v1::Job assigned = Get(job.job_id());
  EXPECT_EQ(assigned.state(), cairn::v1::JOB_STATE_ASSIGNED);
  ASSERT_EQ(assigned.rank_agents_size(), 4);
  EXPECT_EQ(assigned.rank_agents().at(0), a);
  EXPECT_EQ(assigned.rank_agents().at(2), a);
  EXPECT_EQ(assigned.rank_agents().at(3), b);
  ASSERT_EQ(on_a.events().size(), 1u);
  EXPECT_THAT(Ranks(on_a.events()[0]), ElementsAre(0, 1, 2));
  EXPECT_EQ(on_a.events()[0].world_size(), 4);
  EXPECT_EQ(on_a.events()[0].plan_id(), PlanId());
  EXPECT_FALSE(on_a.events()[0].cancel());
  // An agent that connects later gets its current assignments first.
  Assignments on_b;
  WatchAssignments(b, &on_b);
  ASSERT_EQ(on_b.events().size(), 1u);
  EXPECT_THAT(Ranks(on_b.events()[0]), ElementsAre(3));
  EXPECT_THAT(metrics_.TextExposition(), HasSubstr("cairn_planner_jobs{state=\"assigned\"} 1"));
}

TEST_F(JobsLogicTest, AgentReportsDriveWatchJobUntilEveryAgentSucceeded) {
  const std::string a = AddAgent("a", 2);
  const std::string b = AddAgent("b", 2);
  ASSERT_OK_AND_ASSIGN(cairn::v1::Job job, Submit());
  ASSERT_EQ(job.state(), cairn::v1::JOB_STATE_ASSIGNED);
  JobEvents events;
  WatchJob(job.job_id(), &events);
  ASSERT_OK(Report(job.job_id(), a, cairn::v1::JOB_STATE_RUNNING));
  ASSERT_OK(Report(job.job_id(), b, cairn::v1::JOB_STATE_UNSPECIFIED, /*step=*/1));
  ASSERT_OK(Report(job.job_id(), a, cairn::v1::JOB_STATE_SUCCEEDED, /*step=*/100));
  EXPECT_EQ(Get(job.job_id()).state(), cairn::v1::JOB_STATE_RUNNING);
  EXPECT_THAT(Get(job.job_id()).message(), HasSubstr("1 of 2 agents finished"));
  EXPECT_FALSE(events.closed());
  ASSERT_OK(Report(job.job_id(), b, cairn::v1::JOB_STATE_SUCCEEDED));
  const std::vector<cairn::v1::JobEvent> e = events.events();
  ASSERT_EQ(e.size(), 5u);
  EXPECT_EQ(e[0].job().state(), cairn::v1::JOB_STATE_ASSIGNED);  // the job as it was
  EXPECT_EQ(e[1].job().state(), cairn::v1::JOB_STATE_RUNNING);
  EXPECT_FALSE(e[1].has_step());
  EXPECT_EQ(e[2].step().step(), 1);
  EXPECT_EQ(e[3].job().last_step().step(), 100);
  EXPECT_EQ(e[4].job().state(), cairn::v1::JOB_STATE_SUCCEEDED);
  EXPECT_TRUE(events.closed());
  EXPECT_OK(events.close_status());
  EXPECT_EQ(Get(job.job_id()).last_step().step(), 100);  // older steps do not overwrite newer
  // The job is over: late reports are refused, telling the agent to stop.
  EXPECT_THAT(Report(job.job_id(), a, cairn::v1::JOB_STATE_RUNNING),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       HasSubstr("already ended (succeeded); stop its workers")));
  const std::string m = metrics_.TextExposition();
  EXPECT_THAT(m, HasSubstr("cairn_planner_jobs{state=\"succeeded\"} 1"));
  EXPECT_THAT(m, HasSubstr("cairn_planner_jobs{state=\"running\"} 0"));
}

TEST_F(JobsLogicTest, OnlyHostingAgentsMayReport) {
  const std::string a = AddAgent("a", 4);
  const std::string idle = AddAgent("idle", 4);
  ASSERT_OK_AND_ASSIGN(cairn::v1::Job job, Submit());
  EXPECT_THAT(Report(job.job_id(), idle, cairn::v1::JOB_STATE_FAILED),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       HasSubstr("hosts no ranks of job '" + job.job_id() + "'")));
  EXPECT_THAT(Report("job-404", a, cairn::v1::JOB_STATE_RUNNING),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("job 'job-404' not found")));
}

TEST_F(JobsLogicTest, AFailureReportFailsTheJobAndStopsTheOtherAgents) {
  const std::string a = AddAgent("a", 2);
  const std::string b = AddAgent("b", 2);
  ASSERT_OK_AND_ASSIGN(cairn::v1::Job job, Submit());
  Assignments on_b;
  WatchAssignments(b, &on_b);
  cairn::v1::ReportJobStatusRequest r;
  r.set_job_id(job.job_id());
  r.set_agent_id(a);
  r.set_state(cairn::v1::JOB_STATE_FAILED);
  r.set_message("rank 1: CUDA out of memory");
  ASSERT_OK(jobs_->Report(r).status());
  EXPECT_EQ(Get(job.job_id()).state(), cairn::v1::JOB_STATE_FAILED);
  EXPECT_EQ(Get(job.job_id()).message(), "agent " + a + ": rank 1: CUDA out of memory");
  ASSERT_EQ(on_b.events().size(), 2u);
  EXPECT_TRUE(on_b.events()[1].cancel());
  EXPECT_THAT(Ranks(on_b.events()[1]), ElementsAre(2, 3));
}

TEST_F(JobsLogicTest, CancelTellsTheAgentsAndFreesTheDevicesForAPendingJob) {
  const std::string a = AddAgent("a", 4);
  ASSERT_OK_AND_ASSIGN(cairn::v1::Job first, Submit());
  ASSERT_OK_AND_ASSIGN(cairn::v1::Job second, Submit());
  EXPECT_EQ(first.state(), cairn::v1::JOB_STATE_ASSIGNED);
  EXPECT_EQ(second.state(), cairn::v1::JOB_STATE_PENDING);  // a's 4 devices are taken
  Assignments on_a;
  WatchAssignments(a, &on_a);
  ASSERT_EQ(on_a.events().size(), 1u);
  cairn::v1::CancelJobRequest cancel;
  cancel.set_job_id(first.job_id());
  ASSERT_OK_AND_ASSIGN(cairn::v1::Job cancelled, jobs_->Cancel(cancel));
  EXPECT_EQ(cancelled.state(), cairn::v1::JOB_STATE_CANCELLED);
  // a is told to stop the first job, then gets the second.
  const std::vector<cairn::v1::Assignment> got = on_a.events();
  ASSERT_EQ(got.size(), 3u);
  EXPECT_EQ(got[1].job_id(), first.job_id());
  EXPECT_TRUE(got[1].cancel());
  EXPECT_EQ(got[2].job_id(), second.job_id());
  EXPECT_FALSE(got[2].cancel());
  EXPECT_EQ(Get(second.job_id()).state(), cairn::v1::JOB_STATE_ASSIGNED);
  EXPECT_THAT(jobs_->Cancel(cancel),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       HasSubstr("already ended (cancelled); there is nothing to cancel")));
}

TEST_F(JobsLogicTest, AnAgentGoingDownFailsItsJobs) {
  const std::string a = AddAgent("a", 2);
  const std::string b = AddAgent("b", 2);
  ASSERT_OK_AND_ASSIGN(cairn::v1::Job job, Submit());
  JobEvents events;
  WatchJob(job.job_id(), &events);
  clock_.Advance(absl::Seconds(20));
  cairn::v1::HeartbeatRequest hb;
  hb.set_agent_id(b);
  ASSERT_OK(agents_->Heartbeat(hb).status());
  clock_.Advance(absl::Seconds(15));  // a silent for 35 s, b for 15 s
  ASSERT_OK_AND_ASSIGN(std::vector<std::string> down, agents_->Sweep());
  EXPECT_THAT(down, ElementsAre(a));
  const cairn::v1::Job failed = Get(job.job_id());
  EXPECT_EQ(failed.state(), cairn::v1::JOB_STATE_FAILED);
  EXPECT_THAT(failed.message(), HasSubstr("agent " + a + " stopped sending heartbeats"));
  EXPECT_TRUE(events.closed());
}

// A node killed mid-job: the workers left notice first (a lost connection) and their agent fails
// the job; when the planner then finds the killed node's agent DOWN, silent since before the
// failure, the job's message names it. An agent that heartbeated after the failure is not named.
TEST_F(JobsLogicTest, AnAgentFoundDownAfterItsJobFailedIsNamedAsTheProbableCause) {
  const std::string a = AddAgent("node-a", 2);
  const std::string b = AddAgent("node-b", 2);
  ASSERT_OK_AND_ASSIGN(cairn::v1::Job job, Submit());
  clock_.Advance(absl::Seconds(10));  // b's last heartbeat: registration, 10 s before the failure
  cairn::v1::ReportJobStatusRequest r;
  r.set_job_id(job.job_id());
  r.set_agent_id(a);
  r.set_state(cairn::v1::JOB_STATE_FAILED);
  r.set_message("rank 0 on node node-a: lost the connection to rank 1");
  ASSERT_OK(jobs_->Report(r).status());
  EXPECT_THAT(Get(job.job_id()).message(), Not(HasSubstr(b)));
  cairn::v1::HeartbeatRequest hb;
  hb.set_agent_id(a);
  clock_.Advance(absl::Seconds(5));
  ASSERT_OK(agents_->Heartbeat(hb).status());
  clock_.Advance(absl::Seconds(16));  // b silent for 31 s, a for 16 s
  ASSERT_OK_AND_ASSIGN(std::vector<std::string> down, agents_->Sweep());
  EXPECT_THAT(down, ElementsAre(b));
  const cairn::v1::Job failed = Get(job.job_id());
  EXPECT_EQ(failed.state(), cairn::v1::JOB_STATE_FAILED);
  EXPECT_THAT(failed.message(), HasSubstr("lost the connection to rank 1"));
  EXPECT_THAT(failed.message(),
              HasSubstr("[agent " + b + " (node-b) stopped sending heartbeats before this failure"));
  // a heartbeated after the failure: going down later does not make it the cause.
  clock_.Advance(absl::Seconds(31));
  ASSERT_OK_AND_ASSIGN(down, agents_->Sweep());
  EXPECT_THAT(down, ElementsAre(a));
  EXPECT_THAT(Get(job.job_id()).message(), Not(HasSubstr(a + " (node-a)")));
}

TEST_F(JobsLogicTest, SubmitWithASearchRunsItFirst) {
  AddAgent("a", 4);
  cairn::v1::SubmitJobRequest r;
  *r.mutable_search() = TinyRequest();
  r.set_data_path("/data/tiny");
  r.set_steps(5);
  ASSERT_OK_AND_ASSIGN(cairn::v1::Job job, jobs_->SubmitAndWait(r));
  EXPECT_FALSE(job.plan_id().empty());
  EXPECT_EQ(job.state(), cairn::v1::JOB_STATE_ASSIGNED);
  r.mutable_search()->set_model_name("nope");
  EXPECT_THAT(jobs_->SubmitAndWait(r),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("search: model_name: ")));
}

TEST_F(JobsLogicTest, SubmitOfAnUnknownPlanIsNotFound) {
  cairn::v1::SubmitJobRequest r;
  r.set_plan_id("plan-404");
  r.set_data_path("/d");
  r.set_steps(1);
  EXPECT_THAT(jobs_->SubmitAndWait(r),
              StatusIs(absl::StatusCode::kNotFound,
                       HasSubstr("plan_id 'plan-404': no such plan (ListPlans shows")));
}

TEST_F(JobsLogicTest, ARestartKeepsActiveJobsAndTheirAssignments) {
  const std::string a = AddAgent("a", 4);
  ASSERT_OK_AND_ASSIGN(cairn::v1::Job job, Submit());
  ASSERT_OK(Report(job.job_id(), a, cairn::v1::JOB_STATE_RUNNING));
  Start();  // a new JobsLogic and AgentsLogic on the same store
  Assignments on_a;
  WatchAssignments(a, &on_a);
  ASSERT_EQ(on_a.events().size(), 1u);
  EXPECT_EQ(on_a.events()[0].job_id(), job.job_id());
  ASSERT_OK(Report(job.job_id(), a, cairn::v1::JOB_STATE_SUCCEEDED));
  EXPECT_EQ(Get(job.job_id()).state(), cairn::v1::JOB_STATE_SUCCEEDED);
  EXPECT_THAT(metrics_.TextExposition(), HasSubstr("cairn_planner_jobs{state=\"succeeded\"} 1"));
}

TEST_F(JobsLogicTest, CompletionReportedBeforeARestartIsKept) {
  // The 4 ranks split over two agents; one finishes, the planner restarts, the other finishes.
  const std::string a = AddAgent("a", 2);
  const std::string b = AddAgent("b", 2);
  ASSERT_OK_AND_ASSIGN(cairn::v1::Job job, Submit());
  ASSERT_OK(Report(job.job_id(), a, cairn::v1::JOB_STATE_SUCCEEDED));
  EXPECT_EQ(Get(job.job_id()).state(), cairn::v1::JOB_STATE_RUNNING);
  Start();
  ASSERT_OK(Report(job.job_id(), b, cairn::v1::JOB_STATE_SUCCEEDED));
  EXPECT_EQ(Get(job.job_id()).state(), cairn::v1::JOB_STATE_SUCCEEDED);
}

TEST_F(JobsLogicTest, WatchingAFinishedJobSendsItAndCloses) {
  AddAgent("a", 4);
  ASSERT_OK_AND_ASSIGN(cairn::v1::Job job, Submit());
  cairn::v1::CancelJobRequest cancel;
  cancel.set_job_id(job.job_id());
  ASSERT_OK(jobs_->Cancel(cancel).status());
  JobEvents events;
  WatchJob(job.job_id(), &events);
  ASSERT_EQ(events.events().size(), 1u);
  EXPECT_EQ(events.events()[0].job().state(), cairn::v1::JOB_STATE_CANCELLED);
  EXPECT_TRUE(events.closed());
  cairn::v1::WatchJobRequest missing;
  missing.set_job_id("job-404");
  JobEvents none;
  EXPECT_THAT(jobs_->WatchJob(missing, &none), StatusIs(absl::StatusCode::kNotFound, HasSubstr("job-404")));
  cairn::v1::WatchAssignmentsRequest nobody;
  nobody.set_agent_id("agent-404");
  Assignments none2;
  EXPECT_THAT(jobs_->WatchAssignments(nobody, &none2),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("call RegisterAgent first")));
}

TEST_F(JobsLogicTest, ShutdownClosesEveryStreamAndUnwatchStopsEvents) {
  const std::string a = AddAgent("a", 4);
  ASSERT_OK_AND_ASSIGN(cairn::v1::Job job, Submit());
  JobEvents watched, unwatched;
  WatchJob(job.job_id(), &watched);
  const WatchId id = WatchJob(job.job_id(), &unwatched);
  jobs_->Unwatch(id);
  ASSERT_OK(Report(job.job_id(), a, cairn::v1::JOB_STATE_RUNNING));
  EXPECT_EQ(watched.events().size(), 2u);
  EXPECT_EQ(unwatched.events().size(), 1u);
  Assignments on_a;
  WatchAssignments(a, &on_a);
  jobs_->Shutdown();
  EXPECT_THAT(watched.close_status(), StatusIs(absl::StatusCode::kUnavailable, HasSubstr("shutting down")));
  EXPECT_THAT(on_a.close_status(), StatusIs(absl::StatusCode::kUnavailable, HasSubstr("shutting down")));
  EXPECT_FALSE(unwatched.closed());
  cairn::v1::WatchJobRequest again;
  again.set_job_id(job.job_id());
  JobEvents late;
  EXPECT_THAT(jobs_->WatchJob(again, &late), StatusIs(absl::StatusCode::kUnavailable, HasSubstr("")));
}

}  // namespace
}  // namespace cairn::planner

// --- Agents (issue 9): restarts, measured vs predicted, logs, probes, plans for agents. --------

namespace cairn::planner {
namespace {

TEST_F(JobsLogicTest, AFailedAttemptRestartsFromTheCheckpointWhileRestartsAreLeft) {
  const std::string a = AddAgent("a", 4);
  Assignments on_a;
  WatchAssignments(a, &on_a);
  cairn::v1::SubmitJobRequest r;
  r.set_plan_id(PlanId());
  r.set_data_path("/data/tiny");
  r.set_steps(100);
  r.set_max_restarts(1);
  r.set_checkpoint_dir("/ckpt");
  ASSERT_OK_AND_ASSIGN(cairn::v1::Job job, jobs_->SubmitAndWait(r));
  EXPECT_EQ(job.attempt(), 1);
  ASSERT_OK(Report(job.job_id(), a, cairn::v1::JOB_STATE_FAILED));
  cairn::v1::Job restarted = Get(job.job_id());
  EXPECT_EQ(restarted.state(), cairn::v1::JOB_STATE_ASSIGNED);
  EXPECT_EQ(restarted.attempt(), 2);
  EXPECT_THAT(restarted.message(), HasSubstr("restarting from the last checkpoint in /ckpt"));
  // The agent saw: attempt 1, its cancel, attempt 2.
  const auto events = on_a.events();
  ASSERT_EQ(events.size(), 3u);
  EXPECT_EQ(events[0].attempt(), 1);
  EXPECT_TRUE(events[1].cancel());
  EXPECT_EQ(events[1].attempt(), 1);
  EXPECT_FALSE(events[2].cancel());
  EXPECT_EQ(events[2].attempt(), 2);
  // No restarts left: the next failure is final.
  ASSERT_OK(Report(job.job_id(), a, cairn::v1::JOB_STATE_FAILED));
  EXPECT_EQ(Get(job.job_id()).state(), cairn::v1::JOB_STATE_FAILED);
}

TEST_F(JobsLogicTest, StepsFoldIntoMeasuredVersusPredicted) {
  const std::string a = AddAgent("a", 4);
  ASSERT_OK_AND_ASSIGN(cairn::v1::Job job, Submit());
  EXPECT_GT(job.measurement().predicted_step_time_s(), 0);
  EXPECT_THAT(job.measurement().hardware_profile(), HasSubstr("cpu"));
  cairn::v1::ReportJobStatusRequest r;
  r.set_job_id(job.job_id());
  r.set_agent_id(a);
  for (int step = 1; step <= 3; ++step) {
    r.mutable_step()->set_step(step);
    r.mutable_step()->set_step_time_s(step == 1 ? 9.0 : 2 * job.measurement().predicted_step_time_s());
    r.mutable_step()->set_predicted_step_time_s(job.measurement().predicted_step_time_s());
    ASSERT_OK(jobs_->Report(r).status());
  }
  const cairn::v1::JobMeasurement m = Get(job.job_id()).measurement();
  EXPECT_EQ(m.steps_measured(), 2);
  EXPECT_NEAR(m.measured_over_predicted(), 2.0, 1e-9);
}

TEST_F(JobsLogicTest, LogsFromHostingAgentsAreKeptAndServed) {
  const std::string a = AddAgent("a", 4);
  const std::string b = AddAgent("b", 4);
  ASSERT_OK_AND_ASSIGN(cairn::v1::Job job, Submit());
  cairn::v1::AppendJobLogsRequest r;
  r.set_job_id(job.job_id());
  r.set_agent_id(a);
  r.set_rank(2);
  r.set_data("step 1/100 | loss 5.5\n");
  ASSERT_OK(jobs_->AppendLogs(r).status());
  r.set_agent_id(b);  // hosts nothing of this job
  EXPECT_THAT(jobs_->AppendLogs(r).status(),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("hosts no ranks")));
  cairn::v1::GetJobLogsRequest g;
  g.set_job_id(job.job_id());
  ASSERT_OK_AND_ASSIGN(cairn::v1::GetJobLogsResponse logs, jobs_->GetLogs(g));
  ASSERT_EQ(logs.logs_size(), 1);
  EXPECT_EQ(logs.logs(0).rank(), 2);
  EXPECT_EQ(logs.logs(0).data(), "step 1/100 | loss 5.5\n");
  g.set_job_id("job-none");
  EXPECT_THAT(jobs_->GetLogs(g).status(), StatusIs(absl::StatusCode::kNotFound, ::testing::_));
}

TEST_F(JobsLogicTest, ACoordinatedProbeHoldsTheAgentsDevicesLikeAJob) {
  const std::string a = AddAgent("a", 2);
  const std::string b = AddAgent("b", 2);
  Assignments on_a, on_b;
  WatchAssignments(a, &on_a);
  WatchAssignments(b, &on_b);
  cairn::v1::ProbeAgentsRequest req;
  req.set_cross_node(true);
  req.add_suites("comm");
  ASSERT_OK_AND_ASSIGN(cairn::v1::ProbeAgentsResponse resp, jobs_->ProbeAgents(req));
  EXPECT_EQ(resp.agent_ids_size(), 2);
  const cairn::v1::Job probe = Get(resp.probe_id());
  EXPECT_EQ(probe.state(), cairn::v1::JOB_STATE_ASSIGNED);
  ASSERT_EQ(on_b.events().size(), 1u);
  const cairn::v1::Assignment pb = on_b.events()[0];
  EXPECT_EQ(pb.probe().probe_id(), resp.probe_id());  // the rendezvous key space
  EXPECT_EQ(pb.probe().world_size(), 4);
  EXPECT_THAT(Ranks(pb), ElementsAre(2, 3));
  EXPECT_THAT(std::vector<int>(pb.probe().node_of_rank().begin(), pb.probe().node_of_rank().end()),
              ElementsAre(0, 0, 1, 1));
  // A job waits for the probe's devices; it starts when both agents reported the probe done.
  ASSERT_OK_AND_ASSIGN(cairn::v1::Job job, Submit());
  EXPECT_EQ(job.state(), cairn::v1::JOB_STATE_PENDING);
  ASSERT_OK(Report(resp.probe_id(), a, cairn::v1::JOB_STATE_SUCCEEDED));
  ASSERT_OK(Report(resp.probe_id(), b, cairn::v1::JOB_STATE_SUCCEEDED));
  EXPECT_EQ(Get(resp.probe_id()).state(), cairn::v1::JOB_STATE_SUCCEEDED);
  EXPECT_EQ(Get(job.job_id()).state(), cairn::v1::JOB_STATE_ASSIGNED);
  // Local probes go straight to the agents' streams.
  req.set_cross_node(false);
  ASSERT_OK(jobs_->ProbeAgents(req).status());
  EXPECT_TRUE(on_a.events().back().has_probe());
  EXPECT_TRUE(on_a.events().back().job_id().empty());
  req.add_agent_ids("no-such-agent");
  EXPECT_THAT(jobs_->ProbeAgents(req).status(),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("no-such-agent")));
}

TEST_F(JobsLogicTest, PlanForAgentsUsesTheirMeasuredProfile) {
  cairn::v1::SubmitJobRequest r;
  *r.mutable_search() = TinyRequest();
  r.mutable_search()->clear_cluster_name();
  r.set_plan_for_agents(true);
  r.set_data_path("/data/tiny");
  r.set_steps(10);
  EXPECT_THAT(jobs_->SubmitAndWait(r).status(),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("no agent is UP")));
  cairn::v1::RegisterAgentRequest reg;
  reg.set_hostname("n0");
  reg.set_address("n0:7071");
  reg.set_num_devices(2);
  reg.mutable_fingerprint()->set_device_model("cpu: Test");
  ASSERT_OK(agents_->Register(reg).status());
  reg.set_hostname("n1");
  ASSERT_OK(agents_->Register(reg).status());
  EXPECT_THAT(jobs_->SubmitAndWait(r).status(),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("no measured profile")));
  // The agents' measured profile: the catalog's cpu numbers under their fingerprint.
  absl::StatusOr<cairn::v1::Cluster> cpu = MakeCluster("cpu", 1, 2);
  ASSERT_OK(cpu.status());
  cairn::v1::HardwareProfile measured = cpu->hardware();
  *measured.mutable_fingerprint() = reg.fingerprint();
  measured.set_source(cairn::v1::PROFILE_SOURCE_MEASURED);
  ASSERT_OK_AND_ASSIGN(cairn::v1::StoredHardwareProfile stored,
                       store_.PutHardwareProfile(measured, "2026-12-05T00:00:00Z"));
  ASSERT_OK_AND_ASSIGN(cairn::v1::Job job, jobs_->SubmitAndWait(r));
  EXPECT_EQ(job.state(), cairn::v1::JOB_STATE_ASSIGNED);
  EXPECT_EQ(job.rank_agents_size(), 4);  // 2 nodes x 2 slots
  EXPECT_EQ(job.search().hardware_profile_id(), absl::StrCat(stored.id(), "@1"));
  EXPECT_EQ(job.search().search().dtype_bytes(), 4);  // CPU agents train in fp32
  EXPECT_THAT(job.measurement().hardware_profile(), HasSubstr(stored.id()));
}

}  // namespace
}  // namespace cairn::planner
