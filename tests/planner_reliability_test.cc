// Issue 12 against a real server on 127.0.0.1 port 0: no request crashes or bloats the daemon.
// Malformed bytes on every method, oversized strings and infinite numbers, a stream whose client
// never reads, and the database work kept off gRPC's own threads.
#include <atomic>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "google/protobuf/descriptor.h"
#include "grpcpp/generic/generic_stub.h"
#include "gtest/gtest.h"
#include "planner/catalog/clusters.h"
#include "planner/store/testing/memory_store.h"
#include "tests/planner_test_util.h"

namespace cairn::testing {
namespace {

using ::testing::HasSubstr;
namespace v1 = ::cairn::v1;

grpc::ByteBuffer Buffer(const std::string& bytes) {
  grpc::Slice slice(bytes);
  return grpc::ByteBuffer(&slice, 1);
}

// One call of `method` ("/cairn.v1.Jobs/GetJob") with `bytes` as the request, through the generic
// stub (for server streams too: the error comes before any message).
grpc::Status RawCall(grpc::GenericStub& stub, const std::string& method, const std::string& bytes) {
  grpc::ByteBuffer request = Buffer(bytes), response;
  auto ctx = Context();
  absl::Notification done;
  grpc::Status status;
  stub.UnaryCall(ctx.get(), method, grpc::StubOptions(), &request, &response,
                 [&](grpc::Status s) {
                   status = s;
                   done.Notify();
                 });
  done.WaitForNotification();
  return status;
}

// The protobuf encoding of field `number` (length-delimited) holding `bytes`.
std::string LengthDelimited(int number, const std::string& bytes) {
  std::string out;
  out.push_back(static_cast<char>((number << 3) | 2));
  out.push_back(static_cast<char>(bytes.size()));
  return out + bytes;
}

class PlannerReliabilityTest : public ::testing::Test {
 protected:
  void Start(planner::ServerOptions options = TestOptions()) {
    absl::StatusOr<std::unique_ptr<planner::Server>> s = StartPlanner(options, TempDb("rel"));
    ASSERT_TRUE(s.ok()) << s.status();
    server_ = *std::move(s);
    channel_ = Connect(server_->port());
  }
  std::unique_ptr<planner::Server> server_;
  std::shared_ptr<grpc::Channel> channel_;
};

// Garbage bytes, truncated varints and invalid UTF-8 used to get UNIMPLEMENTED with an empty
// message from gRPC's generated parser; every method of every service now answers
// INVALID_ARGUMENT naming the message it expected.
TEST_F(PlannerReliabilityTest, MalformedBytesGetInvalidArgumentOnEveryMethod) {
  Start();
  grpc::GenericStub stub(channel_);
  const google::protobuf::DescriptorPool* pool =
      google::protobuf::DescriptorPool::generated_pool();
  int methods = 0, utf8_checked = 0;
  for (const char* service :
       {"cairn.v1.Planner", "cairn.v1.Profiles", "cairn.v1.Agents", "cairn.v1.Jobs",
        "cairn.v1.Rendezvous"}) {
    const google::protobuf::ServiceDescriptor* sd = pool->FindServiceByName(service);
    ASSERT_NE(sd, nullptr) << service;
    for (int i = 0; i < sd->method_count(); ++i) {
      const google::protobuf::MethodDescriptor* m = sd->method(i);
      const std::string path = absl::StrCat("/", service, "/", m->name());
      const std::string type = m->input_type()->full_name();
      ++methods;
      for (const std::string& bytes :
           {std::string("\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01", 11),  // 11-byte varint
            std::string("\x08\x80", 2),                                          // truncated varint
            std::string("\x0a\x05" "ab", 4)}) {  // field 1 claims 5 bytes, has 2
        const grpc::Status s = RawCall(stub, path, bytes);
        EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << path;
        EXPECT_THAT(s.error_message(), HasSubstr("is not a valid " + type)) << path;
      }
      // A string field holding bytes that are not UTF-8.
      for (int f = 0; f < m->input_type()->field_count(); ++f) {
        const google::protobuf::FieldDescriptor* fd = m->input_type()->field(f);
        if (fd->type() != google::protobuf::FieldDescriptor::TYPE_STRING) continue;
        const grpc::Status s = RawCall(stub, path, LengthDelimited(fd->number(), "\xc3\x28"));
        EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << path;
        EXPECT_THAT(s.error_message(), HasSubstr(fd->full_name() + " is not valid UTF-8")) << path;
        ++utf8_checked;
        break;
      }
    }
  }
  EXPECT_EQ(methods, 28);
  EXPECT_GT(utf8_checked, 20);
  // The daemon is still serving.
  v1::ListAgentsResponse agents;
  EXPECT_TRUE(v1::Agents::NewStub(channel_)->ListAgents(Context().get(), {}, &agents).ok());
}

TEST_F(PlannerReliabilityTest, LongStringsAndNonFiniteNumbersAreRefusedAndNothingIsStored) {
  Start();
  auto jobs = v1::Jobs::NewStub(channel_);
  v1::SubmitJobRequest submit;
  submit.set_plan_id("plan-0");
  submit.set_steps(1);
  submit.set_data_path(std::string(3 << 20, 'd'));  // a 3 MB path was accepted
  v1::Job job;
  EXPECT_THAT(jobs->SubmitJob(Context().get(), submit, &job),
              GrpcIs(grpc::StatusCode::INVALID_ARGUMENT, "data_path is 3145728 bytes; at most 4096"));

  auto profiles = v1::Profiles::NewStub(channel_);
  for (int which = 0; which < 4; ++which) {
    v1::PutHardwareProfileRequest put;
    *put.mutable_profile() = planner::LookupHardware("h100-sxm").value();
    const double inf = std::numeric_limits<double>::infinity();
    const char* field = "";
    switch (which) {
      case 0:
        put.mutable_profile()->mutable_device()->set_peak_flops_per_s(inf);
        field = "profile.device.peak_flops_per_s = inf";
        break;
      case 1:
        put.mutable_profile()->mutable_device()->set_memory_bandwidth_bytes_per_s(inf);
        field = "profile.device.memory_bandwidth_bytes_per_s = inf";
        break;
      case 2:
        put.mutable_profile()->set_overlap_slowdown(inf);
        field = "profile.overlap_slowdown = inf";
        break;
      case 3:
        put.mutable_profile()->mutable_collectives(0)->set_latency_s(inf);
        field = "profile.collectives[0].latency_s = inf";
        break;
    }
    v1::StoredHardwareProfile stored;
    EXPECT_THAT(profiles->PutHardwareProfile(Context().get(), put, &stored),
                GrpcIs(grpc::StatusCode::INVALID_ARGUMENT, field));
  }
  v1::PutModelProfileRequest model;
  model.mutable_profile()->set_model_name("llama2-7b");
  model.mutable_profile()->set_device_model("NVIDIA H100 80GB HBM3");
  v1::LayerTiming* t = model.mutable_profile()->add_timings();
  t->set_kind(v1::LAYER_KIND_TRANSFORMER_BLOCK);
  t->set_tp_degree(1);
  t->set_micro_batch_size(1);
  t->set_seq_len(4096);
  t->set_forward_s(std::numeric_limits<double>::quiet_NaN());
  v1::StoredModelProfile stored_model;
  EXPECT_THAT(profiles->PutModelProfile(Context().get(), model, &stored_model),
              GrpcIs(grpc::StatusCode::INVALID_ARGUMENT, "profile.timings[0].forward_s = nan"));
  v1::ListHardwareProfilesResponse hw;
  v1::ListModelProfilesResponse mp;
  ASSERT_TRUE(profiles->ListHardwareProfiles(Context().get(), {}, &hw).ok());
  ASSERT_TRUE(profiles->ListModelProfiles(Context().get(), {}, &mp).ok());
  EXPECT_EQ(hw.profiles_size(), 0);
  EXPECT_EQ(mp.profiles_size(), 0);
}

// 20 WatchJob streams whose clients never read grew the daemon from 22 to 382 MB over 30,000 step
// reports. A stream now queues at most max_stream_events for its client, then is dropped.
TEST_F(PlannerReliabilityTest, AStreamWhoseClientNeverReadsIsDropped) {
  planner::ServerOptions options = TestOptions();
  options.max_stream_events = 4;
  Start(options);
  auto agents = v1::Agents::NewStub(channel_);
  auto jobs = v1::Jobs::NewStub(channel_);
  auto planner = v1::Planner::NewStub(channel_);
  v1::RegisterAgentRequest reg;
  reg.set_hostname("node1");
  reg.set_address("node1:7071");
  reg.set_num_devices(4);
  v1::RegisterAgentResponse agent;
  ASSERT_TRUE(agents->RegisterAgent(Context().get(), reg, &agent).ok());
  v1::PlanResponse plan;
  ASSERT_TRUE(planner->Plan(Context().get(), TinyPlanRequest(), &plan).ok());
  v1::SubmitJobRequest submit;
  submit.set_plan_id(plan.plan_id());
  submit.set_data_path("/data/tiny");
  submit.set_steps(100000);
  v1::Job job;
  ASSERT_TRUE(jobs->SubmitJob(Context().get(), submit, &job).ok());

  // The watcher: the call is started, nothing is ever read.
  v1::WatchJobRequest watch;
  watch.set_job_id(job.job_id());
  auto watch_ctx = Context();
  std::unique_ptr<grpc::ClientReader<v1::JobEvent>> reader =
      jobs->WatchJob(watch_ctx.get(), watch);

  const std::string dropped =
      "cairn_planner_rpcs_total{code=\"RESOURCE_EXHAUSTED\",method=\"cairn.v1.Jobs/WatchJob\"} 1";
  int reports = 0;
  for (; reports < 20000; ++reports) {
    if (server_->metrics()->TextExposition().find(dropped) != std::string::npos) break;
    v1::ReportJobStatusRequest r;
    r.set_job_id(job.job_id());
    r.set_agent_id(agent.agent_id());
    r.set_message(std::string(4000, 'm'));
    r.mutable_step()->set_step(reports);
    v1::ReportJobStatusResponse out;
    ASSERT_TRUE(jobs->ReportJobStatus(Context().get(), r, &out).ok());
  }
  EXPECT_TRUE(Eventually(
      [&] { return server_->metrics()->TextExposition().find(dropped) != std::string::npos; }))
      << "still streaming after " << reports << " reports of 4 KB";
  // The client sees the end of its stream (the server cancelled the stuck write).
  v1::JobEvent event;
  while (reader->Read(&event)) {
  }
  EXPECT_FALSE(reader->Finish().ok());
  // Watching again works, and starts with the job as it is now.
  auto again_ctx = Context();
  auto again = jobs->WatchJob(again_ctx.get(), watch);
  ASSERT_TRUE(again->Read(&event));
  EXPECT_EQ(event.job().last_step().step(), reports - 1);
  again_ctx->TryCancel();
}

// The logic of every call (store reads and writes, plan-cache lookups) runs on the worker threads:
// with the only worker blocked inside a store call, a second call waits in the queue, a third is
// refused at once, and gRPC's own threads still answer (health checks).
TEST_F(PlannerReliabilityTest, StoreWorkRunsOnTheBoundedWorkerThreads) {
  auto memory = std::make_unique<planner::testing::MemoryStore>();
  planner::testing::MemoryStore* store = memory.get();
  planner::ServerOptions options = TestOptions();
  options.worker_threads = 1;
  options.worker_queue = 1;
  options.agent_sweep_interval = absl::Hours(1);  // no store calls from the sweeper
  absl::StatusOr<std::unique_ptr<planner::Server>> s =
      planner::Server::BuildAndStart(options, std::move(memory));
  ASSERT_TRUE(s.ok()) << s.status();
  server_ = *std::move(s);
  channel_ = Connect(server_->port());
  auto jobs = v1::Jobs::NewStub(channel_);

  absl::Notification entered, release;
  std::atomic<bool> armed{true};
  store->SetCallHook([&] {
    if (!armed.exchange(false)) return;
    entered.Notify();
    release.WaitForNotification();
  });
  absl::Notification first_done, second_done;
  grpc::Status first, second;
  v1::ListJobsRequest request;
  v1::ListJobsResponse r1, r2;
  grpc::ClientContext c1, c2;
  jobs->async()->ListJobs(&c1, &request, &r1, [&](grpc::Status st) {
    first = st;
    first_done.Notify();
  });
  entered.WaitForNotification();  // the only worker is inside the store now
  jobs->async()->ListJobs(&c2, &request, &r2, [&](grpc::Status st) {
    second = st;
    second_done.Notify();
  });
  // Once the second waits in the queue, a third finds it full.
  ASSERT_TRUE(Eventually([&] { return server_->executor()->queued() == 1; }));
  v1::ListJobsResponse r3;
  EXPECT_THAT(jobs->ListJobs(Context().get(), request, &r3),
              GrpcIs(grpc::StatusCode::RESOURCE_EXHAUSTED, "the planner is overloaded"));
  // Health is answered by gRPC's threads while the worker is blocked.
  grpc::GenericStub generic(channel_);
  EXPECT_TRUE(RawCall(generic, "/grpc.health.v1.Health/Check", "").ok());
  EXPECT_FALSE(first_done.HasBeenNotified());
  release.Notify();
  first_done.WaitForNotification();
  second_done.WaitForNotification();
  EXPECT_TRUE(first.ok()) << first.error_message();
  EXPECT_TRUE(second.ok()) << second.error_message();
  store->SetCallHook(nullptr);
  server_.reset();
}

}  // namespace
}  // namespace cairn::testing
