// Service tests of cairn-planner: a real Server on 127.0.0.1 port 0, real gRPC clients, a real
// SQLite file under TEST_TMPDIR. Agents are played by the test. Time-dependent behaviour uses a
// FakeClock (agent timeouts) or bounded waits on the server's own state (searches).
#include <algorithm>
#include <functional>
#include <atomic>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "common/testing/status_matchers.h"
#include "grpcpp/generic/generic_stub.h"
#include "gtest/gtest.h"
#include "planner/catalog/clusters.h"
#include "planner/server/testing/fake_clock.h"
#include "tests/planner_test_util.h"

namespace cairn::testing {
namespace {

using ::testing::HasSubstr;
namespace v1 = ::cairn::v1;

class PlannerServiceTest : public ::testing::Test {
 protected:
  void SetUp() override { db_ = TempDb("service"); }
  void Start(planner::ServerOptions options = TestOptions()) {
    absl::StatusOr<std::unique_ptr<planner::Server>> s = StartPlanner(options, db_);
    ASSERT_TRUE(s.ok()) << s.status();
    server_ = *std::move(s);
    channel_ = Connect(server_->port());
    planner_ = v1::Planner::NewStub(channel_);
    profiles_ = v1::Profiles::NewStub(channel_);
    agents_ = v1::Agents::NewStub(channel_);
    jobs_ = v1::Jobs::NewStub(channel_);
    rendezvous_ = v1::Rendezvous::NewStub(channel_);
  }
  void Stop() {
    server_->Shutdown();
    server_.reset();
  }

  v1::PlanResponse Plan(const v1::PlanRequest& request) {
    v1::PlanResponse response;
    const grpc::Status s = planner_->Plan(Context().get(), request, &response);
    EXPECT_TRUE(s.ok()) << s.error_message();
    return response;
  }
  std::string RegisterAgent(const std::string& host, int devices) {
    v1::RegisterAgentRequest r;
    r.set_hostname(host);
    r.set_address(host + ":7071");
    r.set_num_devices(devices);
    v1::RegisterAgentResponse response;
    const grpc::Status s = agents_->RegisterAgent(Context().get(), r, &response);
    EXPECT_TRUE(s.ok()) << s.error_message();
    return response.agent_id();
  }
  v1::Job Submit(const std::string& plan_id) {
    v1::SubmitJobRequest r;
    r.set_plan_id(plan_id);
    r.set_data_path("/data/tiny");
    r.set_steps(10);
    v1::Job job;
    const grpc::Status s = jobs_->SubmitJob(Context().get(), r, &job);
    EXPECT_TRUE(s.ok()) << s.error_message();
    return job;
  }

  std::string db_;
  std::unique_ptr<planner::Server> server_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<v1::Planner::Stub> planner_;
  std::unique_ptr<v1::Profiles::Stub> profiles_;
  std::unique_ptr<v1::Agents::Stub> agents_;
  std::unique_ptr<v1::Jobs::Stub> jobs_;
  std::unique_ptr<v1::Rendezvous::Stub> rendezvous_;
};

TEST_F(PlannerServiceTest, PlanThenGetPlanAndListPlans) {
  Start();
  const v1::PlanResponse planned = Plan(TinyPlanRequest());
  EXPECT_FALSE(planned.cached());
  ASSERT_GT(planned.result().plans_size(), 0);
  EXPECT_EQ(planned.result().plans(0).model_name(), "llama-tiny");

  v1::GetPlanRequest get;
  get.set_plan_id(planned.plan_id());
  v1::PlanResponse got;
  ASSERT_TRUE(planner_->GetPlan(Context().get(), get, &got).ok());
  EXPECT_EQ(got.plan_id(), planned.plan_id());
  EXPECT_EQ(got.result().SerializeAsString(), planned.result().SerializeAsString());

  v1::ListPlansResponse list;
  ASSERT_TRUE(planner_->ListPlans(Context().get(), {}, &list).ok());
  ASSERT_EQ(list.plans_size(), 1);
  EXPECT_EQ(list.plans(0).plan_id(), planned.plan_id());
  EXPECT_EQ(list.plans(0).num_devices(), 4);
}

TEST_F(PlannerServiceTest, TheSamePlanTwiceIsACacheHitAndTheScrapedMetricCounts) {
  Start(TestOptions(/*metrics=*/true));
  const v1::PlanResponse first = Plan(TinyPlanRequest());
  std::map<std::string, double> m = ScrapeMetrics(server_->metrics_port());
  EXPECT_EQ(m["cairn_planner_plan_cache_hits_total"], 0);
  EXPECT_EQ(m["cairn_planner_plan_cache_misses_total"], 1);
  const v1::PlanResponse second = Plan(TinyPlanRequest());
  EXPECT_TRUE(second.cached());
  EXPECT_EQ(second.plan_id(), first.plan_id());
  m = ScrapeMetrics(server_->metrics_port());
  EXPECT_EQ(m["cairn_planner_plan_cache_hits_total"], 1);
  EXPECT_EQ(m["cairn_planner_plan_cache_misses_total"], 1);
  EXPECT_EQ(m["cairn_planner_plans_searched_total"], 1);
  EXPECT_EQ(m["cairn_planner_search_duration_seconds_count"], 1);
  EXPECT_EQ(m["cairn_planner_rpcs_total{code=\"OK\",method=\"cairn.v1.Planner/Plan\"}"], 2);
  EXPECT_EQ(m["cairn_planner_rpc_duration_seconds_count{method=\"cairn.v1.Planner/Plan\"}"], 2);
  EXPECT_GE(m["cairn_planner_db_operation_duration_seconds_count{op=\"PutPlan\"}"], 1);
  EXPECT_EQ(m["cairn_planner_db_operation_duration_seconds_count{op=\"FindPlanByCacheKey\"}"], 2);
  EXPECT_EQ(m["cairn_planner_build_info{version=\"0.1.0\"}"], 1);
  EXPECT_EQ(m.count("cairn_planner_agents{state=\"up\"}"), 1u);
  EXPECT_EQ(m.count("cairn_planner_jobs{state=\"pending\"}"), 1u);
}

TEST_F(PlannerServiceTest, PlanStreamSendsProgressThenTheResult) {
  Start();
  auto ctx = Context();
  v1::PlanRequest request = TinyPlanRequest();
  request.set_no_cache(true);
  std::unique_ptr<grpc::ClientReader<v1::PlanProgress>> reader =
      planner_->PlanStream(ctx.get(), request);
  std::vector<v1::PlanProgress> messages;
  for (v1::PlanProgress p; reader->Read(&p);) messages.push_back(p);
  ASSERT_TRUE(reader->Finish().ok());
  ASSERT_GE(messages.size(), 2u);
  for (size_t i = 0; i + 1 < messages.size(); ++i) {
    EXPECT_FALSE(messages[i].has_response());
    EXPECT_GT(messages[i].combinations_total(), 0);
    EXPECT_LE(messages[i].combinations_done(), messages[i].combinations_total());
  }
  ASSERT_TRUE(messages.back().has_response());
  EXPECT_FALSE(messages.back().response().plan_id().empty());
  EXPECT_GT(messages.back().response().result().plans_size(), 0);
}

TEST_F(PlannerServiceTest, ProfilesPutGetListDeleteWithVersions) {
  Start();
  v1::PutHardwareProfileRequest put;
  *put.mutable_profile() = planner::LookupHardware("h100-sxm").value();
  v1::StoredHardwareProfile v1p, v2p;
  ASSERT_TRUE(profiles_->PutHardwareProfile(Context().get(), put, &v1p).ok());
  put.mutable_profile()->set_notes("re-measured by agent node7");
  ASSERT_TRUE(profiles_->PutHardwareProfile(Context().get(), put, &v2p).ok());
  EXPECT_EQ(v1p.id(), v2p.id());
  EXPECT_EQ(v1p.version(), 1);
  EXPECT_EQ(v2p.version(), 2);

  v1::ProfileKey key;
  key.set_id(v1p.id());
  v1::StoredHardwareProfile got;
  ASSERT_TRUE(profiles_->GetHardwareProfile(Context().get(), key, &got).ok());
  EXPECT_EQ(got.version(), 2);
  EXPECT_EQ(got.profile().notes(), "re-measured by agent node7");
  key.set_version(1);
  ASSERT_TRUE(profiles_->GetHardwareProfile(Context().get(), key, &got).ok());
  EXPECT_EQ(got.version(), 1);

  v1::ListHardwareProfilesResponse list;
  ASSERT_TRUE(profiles_->ListHardwareProfiles(Context().get(), {}, &list).ok());
  ASSERT_EQ(list.profiles_size(), 1);
  EXPECT_EQ(list.profiles(0).version(), 2);

  // Planning on the stored profile, by id and by id@version.
  v1::PlanRequest on_profile = TinyPlanRequest();
  on_profile.clear_cluster_name();
  on_profile.set_hardware_profile_id(v1p.id());
  on_profile.set_devices_per_node(4);
  const v1::PlanResponse planned = Plan(on_profile);
  ASSERT_GT(planned.result().plans_size(), 0);
  EXPECT_THAT(planned.result().plans(0).provenance().hardware_profile(),
              HasSubstr("(profile " + v1p.id() + "@2)"));

  v1::DeleteProfileRequest del;
  del.set_id(v1p.id());
  v1::DeleteProfileResponse deleted;
  ASSERT_TRUE(profiles_->DeleteHardwareProfile(Context().get(), del, &deleted).ok());
  EXPECT_EQ(deleted.versions_deleted(), 2);
  key.set_version(0);
  EXPECT_THAT(profiles_->GetHardwareProfile(Context().get(), key, &got),
              GrpcIs(grpc::StatusCode::NOT_FOUND, "not found (ListHardwareProfiles"));
  v1::PlanResponse none;
  EXPECT_THAT(planner_->Plan(Context().get(), on_profile, &none),
              GrpcIs(grpc::StatusCode::NOT_FOUND, "no such profile"));
}

// Reads a server stream on its own thread into a vector.
template <typename T>
class StreamCollector {
 public:
  template <typename Open>
  explicit StreamCollector(Open open) : ctx_(Context()) {
    reader_ = open(ctx_.get());
    thread_ = std::thread([this] {
      for (T item; reader_->Read(&item);) {
        absl::MutexLock lock(&mu_);
        items_.push_back(item);
      }
      status_ = reader_->Finish();
      done_.Notify();
    });
  }
  ~StreamCollector() {
    ctx_->TryCancel();
    thread_.join();
  }
  // Waits (at most 30 s) until `n` items arrived.
  bool WaitForCount(size_t n) {
    absl::MutexLock lock(&mu_);
    wanted_ = n;
    return mu_.AwaitWithTimeout(absl::Condition(this, &StreamCollector::Reached),
                                absl::Seconds(30));
  }
  std::vector<T> items() {
    absl::MutexLock lock(&mu_);
    return items_;
  }
  grpc::Status Finish() {
    EXPECT_TRUE(done_.WaitForNotificationWithTimeout(absl::Seconds(30)));
    return status_;
  }
  grpc::ClientContext* context() { return ctx_.get(); }

 private:
  bool Reached() const ABSL_NO_THREAD_SAFETY_ANALYSIS { return items_.size() >= wanted_; }

  std::unique_ptr<grpc::ClientContext> ctx_;
  std::unique_ptr<grpc::ClientReader<T>> reader_;
  std::thread thread_;
  absl::Mutex mu_;
  std::vector<T> items_;
  size_t wanted_ = 0;
  grpc::Status status_;
  absl::Notification done_;
};

TEST_F(PlannerServiceTest, AClientPlayingAnAgentRunsAJobEndToEnd) {
  Start(TestOptions(/*metrics=*/true));
  const std::string agent = RegisterAgent("node1", 4);
  v1::HeartbeatRequest hb;
  hb.set_agent_id(agent);
  v1::HeartbeatResponse hb_response;
  ASSERT_TRUE(agents_->Heartbeat(Context().get(), hb, &hb_response).ok());
  EXPECT_EQ(hb_response.state(), v1::AGENT_STATE_UP);

  v1::WatchAssignmentsRequest watch;
  watch.set_agent_id(agent);
  StreamCollector<v1::Assignment> assignments(
      [&](grpc::ClientContext* ctx) { return agents_->WatchAssignments(ctx, watch); });

  const v1::PlanResponse plan = Plan(TinyPlanRequest());
  const v1::Job job = Submit(plan.plan_id());
  EXPECT_EQ(job.state(), v1::JOB_STATE_ASSIGNED);
  ASSERT_TRUE(assignments.WaitForCount(1));
  const v1::Assignment a = assignments.items()[0];
  EXPECT_EQ(a.job_id(), job.job_id());
  EXPECT_EQ(a.plan_id(), plan.plan_id());
  EXPECT_EQ(a.world_size(), 4);
  EXPECT_EQ(a.ranks_size(), 4);

  v1::WatchJobRequest watch_job;
  watch_job.set_job_id(job.job_id());
  StreamCollector<v1::JobEvent> events(
      [&](grpc::ClientContext* ctx) { return jobs_->WatchJob(ctx, watch_job); });
  ASSERT_TRUE(events.WaitForCount(1));  // the job as it is now

  v1::ReportJobStatusRequest report;
  report.set_job_id(job.job_id());
  report.set_agent_id(agent);
  report.set_state(v1::JOB_STATE_RUNNING);
  v1::ReportJobStatusResponse ack;
  ASSERT_TRUE(jobs_->ReportJobStatus(Context().get(), report, &ack).ok());
  report.clear_state();
  report.mutable_step()->set_step(1);
  report.mutable_step()->set_loss(5.5);
  report.mutable_step()->set_step_time_s(0.25);
  ASSERT_TRUE(jobs_->ReportJobStatus(Context().get(), report, &ack).ok());
  report.set_state(v1::JOB_STATE_SUCCEEDED);
  report.mutable_step()->set_step(10);
  ASSERT_TRUE(jobs_->ReportJobStatus(Context().get(), report, &ack).ok());

  EXPECT_TRUE(events.Finish().ok());  // the stream ends after the final state
  const std::vector<v1::JobEvent> e = events.items();
  ASSERT_EQ(e.size(), 4u);
  EXPECT_EQ(e[0].job().state(), v1::JOB_STATE_ASSIGNED);
  EXPECT_EQ(e[1].job().state(), v1::JOB_STATE_RUNNING);
  EXPECT_DOUBLE_EQ(e[2].step().loss(), 5.5);
  EXPECT_EQ(e[3].job().state(), v1::JOB_STATE_SUCCEEDED);
  EXPECT_EQ(e[3].job().last_step().step(), 10);

  v1::GetJobRequest get;
  get.set_job_id(job.job_id());
  v1::Job final_job;
  ASSERT_TRUE(jobs_->GetJob(Context().get(), get, &final_job).ok());
  EXPECT_EQ(final_job.state(), v1::JOB_STATE_SUCCEEDED);
  std::map<std::string, double> m = ScrapeMetrics(server_->metrics_port());
  EXPECT_EQ(m["cairn_planner_jobs{state=\"succeeded\"}"], 1);
  EXPECT_EQ(m["cairn_planner_agents{state=\"up\"}"], 1);
}

TEST_F(PlannerServiceTest, AnAgentIsMarkedDownAfterTheTimeoutAndItsJobFails) {
  planner::testing::FakeClock clock;
  planner::ServerOptions options = TestOptions(/*metrics=*/true);
  options.clock = &clock;
  options.agent_timeout = absl::Seconds(30);
  options.agent_sweep_interval = absl::Hours(1);  // the test sweeps by hand
  Start(options);
  const std::string agent = RegisterAgent("node1", 4);
  const v1::Job job = Submit(Plan(TinyPlanRequest()).plan_id());
  ASSERT_EQ(job.state(), v1::JOB_STATE_ASSIGNED);
  clock.Advance(absl::Seconds(29));
  ASSERT_TRUE(server_->agents()->Sweep().value().empty());
  clock.Advance(absl::Seconds(2));
  ASSERT_EQ(server_->agents()->Sweep().value(), std::vector<std::string>{agent});

  v1::ListAgentsResponse list;
  ASSERT_TRUE(agents_->ListAgents(Context().get(), {}, &list).ok());
  ASSERT_EQ(list.agents_size(), 1);
  EXPECT_EQ(list.agents(0).state(), v1::AGENT_STATE_DOWN);
  v1::GetJobRequest get;
  get.set_job_id(job.job_id());
  v1::Job failed;
  ASSERT_TRUE(jobs_->GetJob(Context().get(), get, &failed).ok());
  EXPECT_EQ(failed.state(), v1::JOB_STATE_FAILED);
  EXPECT_THAT(failed.message(), HasSubstr("stopped sending heartbeats"));
  std::map<std::string, double> m = ScrapeMetrics(server_->metrics_port());
  EXPECT_EQ(m["cairn_planner_agents{state=\"down\"}"], 1);
  EXPECT_EQ(m["cairn_planner_agents{state=\"up\"}"], 0);

  // A heartbeat brings it back.
  v1::HeartbeatRequest hb;
  hb.set_agent_id(agent);
  v1::HeartbeatResponse back;
  ASSERT_TRUE(agents_->Heartbeat(Context().get(), hb, &back).ok());
  EXPECT_EQ(back.state(), v1::AGENT_STATE_UP);
}

TEST_F(PlannerServiceTest, RendezvousSetAndWait) {
  Start();
  RegisterAgent("node1", 4);
  const v1::Job job = Submit(Plan(TinyPlanRequest()).plan_id());
  // A worker waits for two keys that two other workers set.
  v1::RendezvousWaitRequest wait;
  wait.set_job_id(job.job_id());
  wait.add_keys("nccl_unique_id");
  wait.add_keys("gloo/rank1");
  wait.set_timeout_s(60);
  v1::RendezvousWaitResponse waited;
  grpc::Status wait_status;
  std::thread waiter([&] { wait_status = rendezvous_->Wait(Context().get(), wait, &waited); });
  v1::RendezvousSetRequest set;
  set.set_job_id(job.job_id());
  set.set_key("nccl_unique_id");
  set.set_value(std::string("\x01\x02\x00\x03", 4));
  v1::RendezvousSetResponse ok;
  ASSERT_TRUE(rendezvous_->Set(Context().get(), set, &ok).ok());
  set.set_key("gloo/rank1");
  set.set_value("10.0.0.2:4000");
  ASSERT_TRUE(rendezvous_->Set(Context().get(), set, &ok).ok());
  waiter.join();
  ASSERT_TRUE(wait_status.ok()) << wait_status.error_message();
  EXPECT_EQ(waited.values().at("nccl_unique_id"), std::string("\x01\x02\x00\x03", 4));
  EXPECT_EQ(waited.values().at("gloo/rank1"), "10.0.0.2:4000");

  v1::RendezvousGetRequest get;
  get.set_job_id(job.job_id());
  get.set_key("gloo/rank1");
  v1::RendezvousGetResponse value;
  ASSERT_TRUE(rendezvous_->Get(Context().get(), get, &value).ok());
  EXPECT_EQ(value.value(), "10.0.0.2:4000");

  wait.clear_keys();
  wait.add_keys("gloo/rank2");
  wait.set_timeout_s(0.05);
  EXPECT_THAT(rendezvous_->Wait(Context().get(), wait, &waited),
              GrpcIs(grpc::StatusCode::DEADLINE_EXCEEDED, "still missing: gloo/rank2"));
}

TEST_F(PlannerServiceTest, PlansProfilesAndJobsSurviveARestart) {
  Start(TestOptions(/*metrics=*/true));
  const v1::PlanResponse plan = Plan(TinyPlanRequest());
  v1::PutHardwareProfileRequest put;
  *put.mutable_profile() = planner::LookupHardware("a100-80g-sxm").value();
  v1::StoredHardwareProfile profile;
  ASSERT_TRUE(profiles_->PutHardwareProfile(Context().get(), put, &profile).ok());
  const std::string agent = RegisterAgent("node1", 4);
  const v1::Job job = Submit(plan.plan_id());
  ASSERT_EQ(job.state(), v1::JOB_STATE_ASSIGNED);
  Stop();

  Start(TestOptions(/*metrics=*/true));  // a new server on the same database file
  v1::GetPlanRequest get_plan;
  get_plan.set_plan_id(plan.plan_id());
  v1::PlanResponse got_plan;
  ASSERT_TRUE(planner_->GetPlan(Context().get(), get_plan, &got_plan).ok());
  EXPECT_EQ(got_plan.result().SerializeAsString(), plan.result().SerializeAsString());
  EXPECT_TRUE(Plan(TinyPlanRequest()).cached());  // the cache survives too
  v1::ProfileKey key;
  key.set_id(profile.id());
  v1::StoredHardwareProfile got_profile;
  ASSERT_TRUE(profiles_->GetHardwareProfile(Context().get(), key, &got_profile).ok());
  EXPECT_EQ(got_profile.profile().SerializeAsString(), put.profile().SerializeAsString());
  v1::GetJobRequest get_job;
  get_job.set_job_id(job.job_id());
  v1::Job got_job;
  ASSERT_TRUE(jobs_->GetJob(Context().get(), get_job, &got_job).ok());
  EXPECT_EQ(got_job.state(), v1::JOB_STATE_ASSIGNED);
  EXPECT_EQ(got_job.rank_agents().at(0), agent);
  // The agent reconnects and finds its assignment; its report is accepted.
  v1::WatchAssignmentsRequest watch;
  watch.set_agent_id(agent);
  StreamCollector<v1::Assignment> assignments(
      [&](grpc::ClientContext* ctx) { return agents_->WatchAssignments(ctx, watch); });
  ASSERT_TRUE(assignments.WaitForCount(1));
  EXPECT_EQ(assignments.items()[0].job_id(), job.job_id());
  std::map<std::string, double> m = ScrapeMetrics(server_->metrics_port());
  EXPECT_EQ(m["cairn_planner_jobs{state=\"assigned\"}"], 1);
  EXPECT_EQ(m["cairn_planner_agents{state=\"up\"}"], 1);
}

TEST_F(PlannerServiceTest, ManyConcurrentClientsLoseAndDuplicateNothing) {
  Start(TestOptions(/*metrics=*/true));
  const std::string plan_id = Plan(TinyPlanRequest()).plan_id();
  constexpr int kThreads = 16, kCalls = 50;
  std::vector<std::vector<std::string>> job_ids(kThreads), profile_ids(kThreads);
  std::atomic<int> failures{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      // One channel per client, as separate processes would have.
      std::shared_ptr<grpc::Channel> channel = Connect(server_->port());
      auto jobs = v1::Jobs::NewStub(channel);
      auto profiles = v1::Profiles::NewStub(channel);
      auto planner = v1::Planner::NewStub(channel);
      for (int i = 0; i < kCalls; ++i) {
        grpc::Status s;
        switch (i % 3) {
          case 0: {
            v1::SubmitJobRequest r;
            r.set_plan_id(plan_id);
            r.set_data_path("/data");
            r.set_steps(1);
            r.set_name(absl::StrCat("t", t, "-", i));
            v1::Job job;
            s = jobs->SubmitJob(Context().get(), r, &job);
            job_ids[t].push_back(job.job_id());
            break;
          }
          case 1: {
            v1::PutModelProfileRequest r;
            r.mutable_profile()->set_model_name(absl::StrCat("model-", t, "-", i));
            r.mutable_profile()->set_device_model("NVIDIA H100");
            v1::StoredModelProfile p;
            s = profiles->PutModelProfile(Context().get(), r, &p);
            profile_ids[t].push_back(p.id());
            break;
          }
          default: {
            v1::PlanResponse p;
            s = planner->Plan(Context().get(), TinyPlanRequest(), &p);
            if (s.ok() && !p.cached()) ++failures;
            break;
          }
        }
        if (!s.ok()) {
          ADD_FAILURE() << s.error_message();
          ++failures;
        }
      }
    });
  }
  for (std::thread& t : threads) t.join();
  EXPECT_EQ(failures, 0);

  std::set<std::string> submitted, listed;
  for (const auto& ids : job_ids) submitted.insert(ids.begin(), ids.end());
  v1::ListJobsRequest list;
  list.set_page_size(100);
  int pages = 0;
  do {
    v1::ListJobsResponse page;
    ASSERT_TRUE(jobs_->ListJobs(Context().get(), list, &page).ok());
    for (const v1::Job& j : page.jobs()) EXPECT_TRUE(listed.insert(j.job_id()).second);
    list.set_page_token(page.next_page_token());
    ++pages;
  } while (!list.page_token().empty() && pages < 100);
  const size_t jobs_expected = kThreads * ((kCalls + 2) / 3);  // i % 3 == 0: 17 of 50
  EXPECT_EQ(submitted.size(), jobs_expected);
  EXPECT_EQ(listed, submitted);

  std::set<std::string> put, stored;
  for (const auto& ids : profile_ids) put.insert(ids.begin(), ids.end());
  v1::ListProfilesRequest lp;
  lp.set_page_size(1000);
  v1::ListModelProfilesResponse profiles;
  ASSERT_TRUE(profiles_->ListModelProfiles(Context().get(), lp, &profiles).ok());
  for (const v1::StoredModelProfile& p : profiles.profiles()) stored.insert(p.id());
  EXPECT_EQ(put.size(), static_cast<size_t>(kThreads * ((kCalls + 1) / 3)));  // i % 3 == 1: 17
  EXPECT_EQ(stored, put);
  std::map<std::string, double> m = ScrapeMetrics(server_->metrics_port());
  EXPECT_EQ(m["cairn_planner_jobs{state=\"pending\"}"], jobs_expected);
  EXPECT_EQ(m["cairn_planner_plans_searched_total"], 1);
}

TEST_F(PlannerServiceTest, TooLargeRequestsAreRefused) {
  planner::ServerOptions options = TestOptions();
  options.max_request_bytes = 64 * 1024;
  Start(options);
  v1::PutHardwareProfileRequest put;
  *put.mutable_profile() = planner::LookupHardware("h100-sxm").value();
  put.mutable_profile()->set_notes(std::string(100 * 1024, 'x'));
  v1::StoredHardwareProfile stored;
  EXPECT_THAT(profiles_->PutHardwareProfile(Context().get(), put, &stored),
              GrpcIs(grpc::StatusCode::RESOURCE_EXHAUSTED, "larger than max"));
}

TEST_F(PlannerServiceTest, SearchTimeLimitQueueLimitAndCancellation) {
  planner::ServerOptions options = TestOptions();
  options.search_workers = 1;
  options.search_queue = 0;
  options.max_search_time = absl::Milliseconds(300);
  Start(options);
  // Over the time limit.
  v1::PlanResponse response;
  EXPECT_THAT(planner_->Plan(Context().get(), SlowPlanRequest(), &response),
              GrpcIs(grpc::StatusCode::DEADLINE_EXCEEDED, "--max-search-seconds"));
  ASSERT_TRUE(Eventually([&] { return server_->planner()->searches_running() == 0; }));

  Stop();
  options.max_search_time = absl::Minutes(10);
  Start(options);
  // A streamed search that the client abandons frees the worker.
  StreamCollector<v1::PlanProgress> stream(
      [&](grpc::ClientContext* ctx) { return planner_->PlanStream(ctx, SlowPlanRequest()); });
  ASSERT_TRUE(stream.WaitForCount(1));
  EXPECT_EQ(server_->planner()->searches_running(), 1);
  // The only worker is busy and nothing may wait: another search is refused.
  v1::PlanRequest other = TinyPlanRequest();
  other.set_no_cache(true);
  EXPECT_THAT(planner_->Plan(Context().get(), other, &response),
              GrpcIs(grpc::StatusCode::RESOURCE_EXHAUSTED, "search queue is full"));
  stream.context()->TryCancel();
  EXPECT_THAT(stream.Finish(), GrpcIs(grpc::StatusCode::CANCELLED, ""));
  ASSERT_TRUE(Eventually([&] { return server_->planner()->searches_running() == 0; }));
  EXPECT_TRUE(planner_->Plan(Context().get(), other, &response).ok());
}

TEST_F(PlannerServiceTest, BadRequestsGetTheRightCodeAndAMessageSayingWhatToDo) {
  Start();
  struct Row {
    std::string name;
    std::function<grpc::Status()> call;
    grpc::StatusCode code;
    std::string message;
  };
  const std::vector<Row> rows = {
      {"plan without a cluster",
       [&] {
         v1::PlanRequest r = TinyPlanRequest();
         r.clear_cluster_name();
         v1::PlanResponse out;
         return planner_->Plan(Context().get(), r, &out);
       },
       grpc::StatusCode::INVALID_ARGUMENT, "cluster_name is required"},
      {"plan with a bad batch",
       [&] {
         v1::PlanRequest r = TinyPlanRequest();
         r.mutable_search()->set_global_batch_size(-1);
         v1::PlanResponse out;
         return planner_->Plan(Context().get(), r, &out);
       },
       grpc::StatusCode::INVALID_ARGUMENT, "search."},
      {"unknown plan",
       [&] {
         v1::GetPlanRequest r;
         r.set_plan_id("plan-0");
         v1::PlanResponse out;
         return planner_->GetPlan(Context().get(), r, &out);
       },
       grpc::StatusCode::NOT_FOUND, "plan 'plan-0' not found (ListPlans"},
      {"heartbeat of a stranger",
       [&] {
         v1::HeartbeatRequest r;
         r.set_agent_id("agent-0");
         v1::HeartbeatResponse out;
         return agents_->Heartbeat(Context().get(), r, &out);
       },
       grpc::StatusCode::NOT_FOUND, "call RegisterAgent again"},
      {"job without steps",
       [&] {
         v1::SubmitJobRequest r;
         r.set_plan_id("plan-0");
         r.set_data_path("/d");
         v1::Job out;
         return jobs_->SubmitJob(Context().get(), r, &out);
       },
       grpc::StatusCode::INVALID_ARGUMENT, "steps must be at least 1"},
      {"cancel an unknown job",
       [&] {
         v1::CancelJobRequest r;
         r.set_job_id("job-0");
         v1::Job out;
         return jobs_->CancelJob(Context().get(), r, &out);
       },
       grpc::StatusCode::NOT_FOUND, "job 'job-0' not found"},
      {"rendezvous value too large",
       [&] {
         v1::RendezvousSetRequest r;
         r.set_job_id("job-0");
         r.set_key("k");
         r.set_value(std::string(70000, 'v'));
         v1::RendezvousSetResponse out;
         return rendezvous_->Set(Context().get(), r, &out);
       },
       grpc::StatusCode::INVALID_ARGUMENT, "at most 65536 (64 KiB)"},
      {"watch an unknown job",
       [&] {
         v1::WatchJobRequest r;
         r.set_job_id("job-0");
         auto ctx = Context();
         auto reader = jobs_->WatchJob(ctx.get(), r);
         v1::JobEvent e;
         while (reader->Read(&e)) {
         }
         return reader->Finish();
       },
       grpc::StatusCode::NOT_FOUND, "job 'job-0' not found"},
  };
  for (const Row& row : rows) EXPECT_THAT(row.call(), GrpcIs(row.code, row.message)) << row.name;
}

std::string Bytes(const grpc::ByteBuffer& buffer) {
  std::vector<grpc::Slice> slices;
  EXPECT_TRUE(buffer.Dump(&slices).ok());
  std::string out;
  for (const grpc::Slice& s : slices) out.append(reinterpret_cast<const char*>(s.begin()), s.size());
  return out;
}

grpc::ByteBuffer Buffer(const std::string& bytes) {
  grpc::Slice slice(bytes);
  return grpc::ByteBuffer(&slice, 1);
}

// The health and reflection protos are not in the tree, so these calls are made with hand-encoded
// messages through the generic stub.
TEST_F(PlannerServiceTest, HealthAndReflectionAreOn) {
  Start();
  grpc::GenericStub generic(channel_);
  {
    // grpc.health.v1.Health/Check with an empty request (service "" = the whole server).
    grpc::ByteBuffer request = Buffer(""), response;
    auto ctx = Context();
    absl::Notification done;
    grpc::Status status;
    generic.UnaryCall(ctx.get(), "/grpc.health.v1.Health/Check", grpc::StubOptions(), &request,
                      &response, [&](grpc::Status s) {
                        status = s;
                        done.Notify();
                      });
    done.WaitForNotification();
    ASSERT_TRUE(status.ok()) << status.error_message();
    EXPECT_EQ(Bytes(response), std::string("\x08\x01", 2));  // status: SERVING
  }
  {
    // ServerReflectionInfo with list_services = "" (field 7, length 0).
    grpc::CompletionQueue cq;
    auto ctx = Context();
    auto call = generic.PrepareCall(
        ctx.get(), "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo", &cq);
    auto step = [&](int expected_tag) {
      void* tag = nullptr;
      bool ok = false;
      EXPECT_TRUE(cq.Next(&tag, &ok));
      EXPECT_EQ(tag, reinterpret_cast<void*>(expected_tag));
      return ok;
    };
    call->StartCall(reinterpret_cast<void*>(1));
    ASSERT_TRUE(step(1));
    call->Write(Buffer(std::string("\x3a\x00", 2)), reinterpret_cast<void*>(2));
    ASSERT_TRUE(step(2));
    call->WritesDone(reinterpret_cast<void*>(3));
    ASSERT_TRUE(step(3));
    grpc::ByteBuffer response;
    call->Read(&response, reinterpret_cast<void*>(4));
    ASSERT_TRUE(step(4));
    const std::string listed = Bytes(response);
    for (const char* service : {"cairn.v1.Planner", "cairn.v1.Profiles", "cairn.v1.Agents",
                                "cairn.v1.Jobs", "cairn.v1.Rendezvous", "grpc.health.v1.Health"}) {
      EXPECT_THAT(listed, HasSubstr(service));
    }
    grpc::Status status;
    call->Finish(&status, reinterpret_cast<void*>(5));
    step(5);
    EXPECT_TRUE(status.ok()) << status.error_message();
  }
}

TEST_F(PlannerServiceTest, GracefulShutdownEndsStreamsAndSearchesAndRefusesNewCalls) {
  Start();
  const std::string agent = RegisterAgent("node1", 4);
  v1::WatchAssignmentsRequest watch;
  watch.set_agent_id(agent);
  StreamCollector<v1::Assignment> assignments(
      [&](grpc::ClientContext* ctx) { return agents_->WatchAssignments(ctx, watch); });
  // An assignment arriving shows the watch is registered on the server.
  Submit(Plan(TinyPlanRequest()).plan_id());
  ASSERT_TRUE(assignments.WaitForCount(1));
  StreamCollector<v1::PlanProgress> search(
      [&](grpc::ClientContext* ctx) { return planner_->PlanStream(ctx, SlowPlanRequest()); });
  ASSERT_TRUE(search.WaitForCount(1));
  const absl::Time start = absl::Now();
  server_->Shutdown();
  const absl::Duration took = absl::Now() - start;
  EXPECT_THAT(search.Finish(), GrpcIs(grpc::StatusCode::UNAVAILABLE, "shutting down"));
  const grpc::Status watch_status = assignments.Finish();
  EXPECT_EQ(watch_status.error_code(), grpc::StatusCode::UNAVAILABLE) << watch_status.error_message();
  // Well within the 5 s grace: nothing waited for the grace to run out.
  EXPECT_LT(took, absl::Seconds(5)) << took;
  v1::ListAgentsResponse list;
  EXPECT_EQ(agents_->ListAgents(Context("", absl::Seconds(2)).get(), {}, &list).error_code(),
            grpc::StatusCode::UNAVAILABLE);
  server_.reset();
}

}  // namespace
}  // namespace cairn::testing
