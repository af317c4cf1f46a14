#include "planner/server/agent_planning.h"

#include "common/testing/status_matchers.h"
#include "gtest/gtest.h"

namespace cairn::planner {
namespace {

using ::cairn::testing::StatusIs;
using ::testing::HasSubstr;

cairn::v1::AgentInfo Agent(const std::string& id, const std::string& model, int devices,
                           bool up = true) {
  cairn::v1::AgentInfo a;
  a.set_agent_id(id);
  a.set_num_devices(devices);
  a.mutable_fingerprint()->set_device_model(model);
  a.set_state(up ? cairn::v1::AGENT_STATE_UP : cairn::v1::AGENT_STATE_DOWN);
  return a;
}

cairn::v1::StoredHardwareProfile Hw(const std::string& id, int version, const std::string& model,
                                    bool measured = true) {
  cairn::v1::StoredHardwareProfile p;
  p.set_id(id);
  p.set_version(version);
  p.mutable_profile()->mutable_fingerprint()->set_device_model(model);
  p.mutable_profile()->set_source(measured ? cairn::v1::PROFILE_SOURCE_MEASURED
                                           : cairn::v1::PROFILE_SOURCE_IMPORTED);
  return p;
}

TEST(ResolveAgentProfilesTest, PlansForTheLargestGroupOnItsLatestMeasuredProfile) {
  const std::vector<cairn::v1::AgentInfo> agents = {
      Agent("a", "cpu: X", 2), Agent("b", "cpu: X", 2), Agent("c", "NVIDIA H100", 1),
      Agent("d", "cpu: X", 4, /*up=*/false)};
  cairn::v1::StoredModelProfile mp;
  mp.set_id("m1");
  mp.set_version(3);
  mp.mutable_profile()->set_model_name("llama-tiny");
  mp.mutable_profile()->set_device_model("cpu: X");
  ASSERT_OK_AND_ASSIGN(
      AgentPlanTarget t,
      ResolveAgentProfiles(agents, {Hw("h1", 2, "cpu: X"), Hw("h9", 5, "cpu: X", false)}, {mp},
                           "llama-tiny"));
  EXPECT_EQ(t.hardware_profile_id, "h1@2");
  EXPECT_EQ(t.num_nodes, 2);
  EXPECT_EQ(t.devices_per_node, 2);
  EXPECT_EQ(t.model_profile_id, "m1@3");
  EXPECT_TRUE(t.cpu);
}

TEST(ResolveAgentProfilesTest, SaysWhatToWaitFor) {
  EXPECT_THAT(ResolveAgentProfiles({}, {}, {}, "m").status(),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("no agent is UP")));
  EXPECT_THAT(ResolveAgentProfiles({Agent("a", "cpu: X", 2)}, {Hw("h", 1, "cpu: Y")}, {}, "m")
                  .status(),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("cairn agents probe")));
}

TEST(AddStepTest, MeansLeaveTheFirstStepOut) {
  cairn::v1::JobMeasurement m;
  cairn::v1::StepMetrics s;
  s.set_predicted_step_time_s(0.1);
  s.set_predicted_memory_bytes(1000);
  s.set_step(1);
  s.set_step_time_s(5.0);  // warm-up: not counted
  s.set_peak_memory_bytes(900);
  AddStep(s, &m);
  s.set_step(2);
  s.set_step_time_s(0.12);
  s.set_tokens_per_s(100);
  AddStep(s, &m);
  s.set_step(3);
  s.set_step_time_s(0.10);
  s.set_tokens_per_s(120);
  s.set_peak_memory_bytes(950);
  AddStep(s, &m);
  EXPECT_EQ(m.steps_measured(), 2);
  EXPECT_DOUBLE_EQ(m.mean_step_time_s(), 0.11);
  EXPECT_DOUBLE_EQ(m.mean_tokens_per_s(), 110);
  EXPECT_NEAR(m.measured_over_predicted(), 1.1, 1e-12);
  EXPECT_EQ(m.peak_memory_bytes(), 950);
  EXPECT_EQ(m.predicted_memory_bytes(), 1000);
}

}  // namespace
}  // namespace cairn::planner
