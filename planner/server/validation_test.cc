// The table of bad requests: each row breaks one thing in an otherwise valid request and names the
// exact code and the part of the message that tells the user what to fix. Add a row for every new
// check in validation.cc.
#include "planner/server/validation.h"

#include <functional>
#include <limits>
#include <string>
#include <vector>

#include "common/testing/status_matchers.h"
#include "gtest/gtest.h"
#include "planner/catalog/clusters.h"

namespace cairn::planner {
namespace {

using ::cairn::testing::StatusIs;
using ::testing::HasSubstr;
using namespace cairn::v1;  // NOLINT: the request types

PlanRequest GoodPlan() {
  PlanRequest r;
  r.set_model_name("llama-tiny");
  r.set_cluster_name("cpu");
  r.mutable_search()->set_global_batch_size(16);
  r.mutable_search()->set_seq_len(256);
  return r;
}

HardwareProfile GoodHardware() { return LookupHardware("h100-sxm").value(); }

SubmitJobRequest GoodSubmit() {
  SubmitJobRequest r;
  r.set_plan_id("plan-1");
  r.set_data_path("/data/shards");
  r.set_steps(10);
  return r;
}

RegisterAgentRequest GoodAgent() {
  RegisterAgentRequest r;
  r.set_hostname("node1");
  r.set_address("node1:7071");
  r.set_num_devices(8);
  return r;
}

struct Case {
  std::string name;
  std::function<absl::Status()> check;
  std::string message;  // expected substring; the code is always INVALID_ARGUMENT
};

std::vector<Case> Cases() {
  std::vector<Case> c;
  auto plan = [](std::function<void(PlanRequest&)> edit) {
    return [edit] {
      PlanRequest r = GoodPlan();
      edit(r);
      return ValidatePlanRequest(r);
    };
  };
  c.push_back({"plan: no model", plan([](PlanRequest& r) { r.clear_model_name(); }),
               "model_name is required: a catalog model such as llama2-7b"});
  c.push_back({"plan: two models",
               plan([](PlanRequest& r) { r.mutable_search()->mutable_model()->set_name("x"); }),
               "model_name and search.model are both set; set only one"});
  c.push_back({"plan: no cluster", plan([](PlanRequest& r) { r.clear_cluster_name(); }),
               "cluster_name is required: a catalog cluster such as h100-sxm"});
  c.push_back({"plan: two clusters",
               plan([](PlanRequest& r) { r.set_hardware_profile_id("abc"); }),
               "set only one of search.cluster, hardware_profile_id and cluster_name"});
  c.push_back({"plan: bad profile version",
               plan([](PlanRequest& r) {
                 r.clear_cluster_name();
                 r.set_hardware_profile_id("abc@0");
               }),
               "hardware_profile_id 'abc@0' must be a profile id, or ID@VERSION with VERSION >= 1"});
  c.push_back({"plan: negative nodes", plan([](PlanRequest& r) { r.set_num_nodes(-1); }),
               "num_nodes must be between 1 and 65536"});
  c.push_back({"plan: nodes with inline cluster",
               plan([](PlanRequest& r) {
                 r.clear_cluster_name();
                 *r.mutable_search()->mutable_cluster()->mutable_hardware() = GoodHardware();
                 r.set_num_nodes(2);
               }),
               "with search.cluster set search.cluster.num_nodes instead"});
  c.push_back({"plan: negative devices per node",
               plan([](PlanRequest& r) { r.set_devices_per_node(-2); }),
               "devices_per_node must be >= 0"});
  c.push_back({"plan: two model profiles",
               plan([](PlanRequest& r) {
                 r.set_model_profile_id("m1");
                 r.mutable_search()->mutable_model_profile()->set_model_name("llama-tiny");
               }),
               "model_profile_id and search.model_profile are both set"});
  c.push_back({"plan: model name with a space",
               plan([](PlanRequest& r) { r.set_model_name("llama 2"); }),
               "model_name may only contain printable ASCII characters without spaces"});
  c.push_back({"get plan: no id", [] { return ValidateGetPlanRequest({}); },
               "plan_id is required (the id Plan returned, or see ListPlans)"});
  c.push_back({"list plans: page too big",
               [] {
                 ListPlansRequest r;
                 r.set_page_size(5000);
                 return ValidateListPlansRequest(r);
               },
               "page_size must be between 0 (default 50) and 1000 (got 5000)"});
  c.push_back({"put hardware: no profile", [] { return ValidatePutHardwareProfileRequest({}); },
               "profile is required"});
  c.push_back({"put hardware: no fingerprint",
               [] {
                 PutHardwareProfileRequest r;
                 *r.mutable_profile() = GoodHardware();
                 r.mutable_profile()->mutable_fingerprint()->clear_device_model();
                 return ValidatePutHardwareProfileRequest(r);
               },
               "profile.fingerprint.device_model is required: profiles are keyed by their "
               "fingerprint"});
  c.push_back({"put hardware: invalid profile",
               [] {
                 PutHardwareProfileRequest r;
                 *r.mutable_profile() = GoodHardware();
                 r.mutable_profile()->mutable_device()->set_peak_flops_per_s(0);
                 return ValidatePutHardwareProfileRequest(r);
               },
               "profile: "});
  c.push_back({"put model: no model name",
               [] {
                 PutModelProfileRequest r;
                 r.mutable_profile()->set_device_model("H100");
                 return ValidatePutModelProfileRequest(r);
               },
               "profile.model_name is required"});
  c.push_back({"put model: bad dtype",
               [] {
                 PutModelProfileRequest r;
                 r.mutable_profile()->set_model_name("m");
                 r.mutable_profile()->set_device_model("H100");
                 r.mutable_profile()->set_activation_dtype_bytes(3);
                 return ValidatePutModelProfileRequest(r);
               },
               "profile.activation_dtype_bytes must be 2 (bf16) or 4 (fp32), got 3"});
  c.push_back({"put model: bad timing",
               [] {
                 PutModelProfileRequest r;
                 r.mutable_profile()->set_model_name("m");
                 r.mutable_profile()->set_device_model("H100");
                 r.mutable_profile()->add_timings()->set_tp_degree(1);
                 return ValidatePutModelProfileRequest(r);
               },
               "profile.timings[0] needs tp_degree, micro_batch_size and seq_len >= 1"});
  c.push_back({"profile key: no id", [] { return ValidateProfileKey({}); }, "id is required"});
  c.push_back({"profile key: negative version",
               [] {
                 ProfileKey k;
                 k.set_id("abc");
                 k.set_version(-1);
                 return ValidateProfileKey(k);
               },
               "version must be >= 0 (0 = the latest version)"});
  c.push_back({"delete profile: no id", [] { return ValidateDeleteProfileRequest({}); },
               "id is required (the profile id to delete, every version)"});
  c.push_back({"register: no hostname",
               [] {
                 RegisterAgentRequest r = GoodAgent();
                 r.clear_hostname();
                 return ValidateRegisterAgentRequest(r);
               },
               "hostname is required"});
  c.push_back({"register: address without port",
               [] {
                 RegisterAgentRequest r = GoodAgent();
                 r.set_address("node1");
                 return ValidateRegisterAgentRequest(r);
               },
               "address must be HOST:PORT where the agent's workers can be reached, e.g. "
               "node7:7071 (got 'node1')"});
  c.push_back({"register: zero devices",
               [] {
                 RegisterAgentRequest r = GoodAgent();
                 r.set_num_devices(0);
                 return ValidateRegisterAgentRequest(r);
               },
               "num_devices must be between 1 and 1024 (got 0)"});
  c.push_back({"heartbeat: no agent", [] { return ValidateHeartbeatRequest({}); },
               "agent_id is required (the id RegisterAgent returned)"});
  c.push_back({"watch assignments: no agent", [] { return ValidateWatchAssignmentsRequest({}); },
               "agent_id is required"});
  c.push_back({"submit: neither plan nor search",
               [] {
                 SubmitJobRequest r = GoodSubmit();
                 r.clear_plan_id();
                 return ValidateSubmitJobRequest(r);
               },
               "plan_id or search or plan is required: a stored plan, a search to run now, or a "
               "plan given whole"});
  c.push_back({"submit: both",
               [] {
                 SubmitJobRequest r = GoodSubmit();
                 *r.mutable_search() = GoodPlan();
                 return ValidateSubmitJobRequest(r);
               },
               "plan_id search and plan: set only one of them"});
  c.push_back({"submit: restarts without checkpoints",
               [] {
                 SubmitJobRequest r = GoodSubmit();
                 r.set_max_restarts(2);
                 return ValidateSubmitJobRequest(r);
               },
               "checkpoint_dir is required with max_restarts"});
  c.push_back({"submit: plan for agents without a search",
               [] {
                 SubmitJobRequest r = GoodSubmit();
                 r.set_plan_for_agents(true);
                 return ValidateSubmitJobRequest(r);
               },
               "plan_for_agents needs search"});
  c.push_back({"logs: chunk too large",
               [] {
                 cairn::v1::AppendJobLogsRequest r;
                 r.set_job_id("j");
                 r.set_agent_id("a");
                 r.set_data(std::string(300 * 1024, 'x'));
                 return ValidateAppendJobLogsRequest(r);
               },
               "send at most 262144 per call"});
  c.push_back({"probe: unknown suite",
               [] {
                 cairn::v1::ProbeAgentsRequest r;
                 r.add_suites("gpu");
                 return ValidateProbeAgentsRequest(r);
               },
               "the suites are compute, comm, overlap, layers"});
  c.push_back({"submit: bad search",
               [] {
                 SubmitJobRequest r = GoodSubmit();
                 r.clear_plan_id();
                 *r.mutable_search() = GoodPlan();
                 r.mutable_search()->clear_cluster_name();
                 return ValidateSubmitJobRequest(r);
               },
               "search.cluster_name is required"});
  c.push_back({"submit: no steps",
               [] {
                 SubmitJobRequest r = GoodSubmit();
                 r.set_steps(0);
                 return ValidateSubmitJobRequest(r);
               },
               "steps must be at least 1 (the number of optimizer steps to run)"});
  c.push_back({"submit: no data",
               [] {
                 SubmitJobRequest r = GoodSubmit();
                 r.clear_data_path();
                 return ValidateSubmitJobRequest(r);
               },
               "data_path is required (the token shard directory, as the workers see it)"});
  c.push_back({"get job: no id", [] { return ValidateGetJobRequest({}); }, "job_id is required"});
  c.push_back({"list jobs: unknown state",
               [] {
                 ListJobsRequest r;
                 r.set_state(static_cast<JobState>(42));
                 return ValidateListJobsRequest(r);
               },
               "state has no meaning: 42 is not a JobState"});
  c.push_back({"cancel: no id", [] { return ValidateCancelJobRequest({}); },
               "job_id is required (the job to cancel)"});
  c.push_back({"watch job: no id", [] { return ValidateWatchJobRequest({}); },
               "job_id is required (the job to watch)"});
  auto report = [](std::function<void(ReportJobStatusRequest&)> edit) {
    return [edit] {
      ReportJobStatusRequest r;
      r.set_job_id("job-1");
      r.set_agent_id("agent-1");
      r.set_state(JOB_STATE_RUNNING);
      edit(r);
      return ValidateReportJobStatusRequest(r);
    };
  };
  c.push_back({"report: no agent", report([](ReportJobStatusRequest& r) { r.clear_agent_id(); }),
               "agent_id is required (the reporting agent's id)"});
  c.push_back({"report: nothing to report",
               report([](ReportJobStatusRequest& r) { r.clear_state(); }),
               "state or step is required"});
  c.push_back({"report: agents do not cancel",
               report([](ReportJobStatusRequest& r) { r.set_state(JOB_STATE_CANCELLED); }),
               "state must be RUNNING, SUCCEEDED or FAILED (agents do not report "
               "JOB_STATE_CANCELLED)"});
  c.push_back({"report: negative step time",
               report([](ReportJobStatusRequest& r) { r.mutable_step()->set_step_time_s(-1); }),
               "step.step_time_s must be a finite number >= 0"});
  c.push_back({"rendezvous set: no key",
               [] {
                 RendezvousSetRequest r;
                 r.set_job_id("job-1");
                 return ValidateRendezvousSetRequest(r);
               },
               "key is required (e.g. \"nccl_unique_id\")"});
  c.push_back({"rendezvous set: value too big",
               [] {
                 RendezvousSetRequest r;
                 r.set_job_id("job-1");
                 r.set_key("k");
                 r.set_value(std::string(64 * 1024 + 1, 'x'));
                 return ValidateRendezvousSetRequest(r);
               },
               "value is 65537 bytes; at most 65536 (64 KiB) fit"});
  c.push_back({"rendezvous get: no job", [] { return ValidateRendezvousGetRequest({}); },
               "job_id is required"});
  auto wait = [](std::function<void(RendezvousWaitRequest&)> edit) {
    return [edit] {
      RendezvousWaitRequest r;
      r.set_job_id("job-1");
      r.add_keys("a");
      r.set_timeout_s(10);
      edit(r);
      return ValidateRendezvousWaitRequest(r);
    };
  };
  c.push_back({"wait: no keys", wait([](RendezvousWaitRequest& r) { r.clear_keys(); }),
               "keys is required: the keys to wait for"});
  c.push_back({"wait: repeated key", wait([](RendezvousWaitRequest& r) { r.add_keys("a"); }),
               "keys[1] 'a' is repeated"});
  c.push_back({"wait: no timeout", wait([](RendezvousWaitRequest& r) { r.set_timeout_s(0); }),
               "timeout_s must be > 0 and at most 3600 seconds (got 0)"});
  c.push_back({"wait: too many keys",
               wait([](RendezvousWaitRequest& r) {
                 for (int i = 0; i < 1024; ++i) r.add_keys("k" + std::to_string(i));
               }),
               "keys has 1025 keys; wait for at most 1024 per call"});
  return c;
}

TEST(ValidationTest, EveryBadRequestGetsInvalidArgumentNamingTheFix) {
  for (const Case& c : Cases()) {
    EXPECT_THAT(c.check(), StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr(c.message)))
        << c.name;
  }
}

TEST(ValidationTest, GoodRequestsPass) {
  EXPECT_OK(ValidatePlanRequest(GoodPlan()));
  EXPECT_OK(ValidateSubmitJobRequest(GoodSubmit()));
  EXPECT_OK(ValidateRegisterAgentRequest(GoodAgent()));
  PlanRequest versioned = GoodPlan();
  versioned.clear_cluster_name();
  versioned.set_hardware_profile_id("0123456789abcdef@3");
  EXPECT_OK(ValidatePlanRequest(versioned));
  ReportJobStatusRequest step_only;
  step_only.set_job_id("j");
  step_only.set_agent_id("a");
  step_only.mutable_step()->set_step(3);
  EXPECT_OK(ValidateReportJobStatusRequest(step_only));
  EXPECT_EQ(EffectivePageSize(0), 50);
  EXPECT_EQ(EffectivePageSize(7), 7);
}

// Issue 12: a 3 MB data_path was accepted; every string of every request is now bounded, at any
// depth, and the message names the field path.
TEST(ValidationTest, EveryStringAndBytesFieldIsBounded) {
  SubmitJobRequest submit = GoodSubmit();
  submit.set_data_path(std::string(3 << 20, 'd'));
  EXPECT_THAT(ValidateRequestLimits(submit),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("data_path is 3145728 bytes; at most 4096")));
  PlanRequest deep = GoodPlan();
  deep.mutable_search()->mutable_model()->set_name(std::string(5000, 'n'));
  EXPECT_THAT(ValidateRequestLimits(deep),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("search.model.name is 5000 bytes; at most 4096")));
  cairn::v1::RendezvousWaitRequest wait;
  wait.add_keys("a");
  wait.add_keys(std::string(4097, 'k'));
  EXPECT_THAT(ValidateRequestLimits(wait),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("keys[1] is 4097 bytes")));
  cairn::v1::PutHardwareProfileRequest notes;
  notes.mutable_profile()->set_notes(std::string(60000, 'x'));  // notes may be longer
  EXPECT_OK(ValidateRequestLimits(notes));
  EXPECT_OK(ValidateRequestLimits(GoodSubmit()));
}

TEST(ValidationTest, NonFiniteNumbersAreNamedWithTheirPath) {
  cairn::v1::PutHardwareProfileRequest hw;
  hw.mutable_profile()->mutable_device()->add_gemm()->set_flops(1e9);
  hw.mutable_profile()->mutable_device()->add_gemm()->set_achieved_flops_per_s(
      std::numeric_limits<double>::infinity());
  EXPECT_THAT(CheckFinite(hw.profile(), "profile"),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("profile.device.gemm[1].achieved_flops_per_s = inf: must be a "
                                 "finite number")));
  EXPECT_THAT(ValidatePutHardwareProfileRequest(hw),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("= inf")));
  PlanRequest plan = GoodPlan();
  plan.mutable_search()->mutable_model_profile()->add_timings()->set_forward_s(
      std::numeric_limits<double>::quiet_NaN());
  EXPECT_THAT(ValidatePlanRequest(plan),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("search.model_profile.timings[0].forward_s = nan")));
  EXPECT_OK(CheckFinite(GoodPlan(), ""));
}

}  // namespace
}  // namespace cairn::planner
