#include "planner/server/agents_logic.h"

#include <string>
#include <vector>

#include "absl/synchronization/notification.h"
#include "common/testing/status_matchers.h"
#include "gtest/gtest.h"
#include "planner/server/testing/fake_clock.h"
#include "planner/store/testing/memory_store.h"

namespace cairn::planner {
namespace {

using ::cairn::testing::StatusIs;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

cairn::v1::RegisterAgentRequest Agent(const std::string& host, int devices = 8) {
  cairn::v1::RegisterAgentRequest r;
  r.set_hostname(host);
  r.set_address(host + ":7071");
  r.set_num_devices(devices);
  return r;
}

class RecordingListener : public AgentsLogic::Listener {
 public:
  void OnAgentsUp(const std::vector<std::string>& ids) override {
    absl::MutexLock lock(&mu);
    up.insert(up.end(), ids.begin(), ids.end());
  }
  void OnAgentsDown(const std::vector<std::string>& ids) override {
    absl::MutexLock lock(&mu);
    down.insert(down.end(), ids.begin(), ids.end());
    if (!any_down.HasBeenNotified()) any_down.Notify();
  }
  absl::Mutex mu;
  std::vector<std::string> up, down;
  absl::Notification any_down;
};

class AgentsLogicTest : public ::testing::Test {
 protected:
  AgentsLogicTest() {
    agents_.SetListener(&listener_);
    EXPECT_OK(agents_.Load());
  }
  std::string Register(const std::string& host) {
    absl::StatusOr<cairn::v1::RegisterAgentResponse> r = agents_.Register(Agent(host));
    EXPECT_OK(r.status());
    return r.ok() ? r->agent_id() : "";
  }
  cairn::v1::AgentState StateOf(const std::string& id) { return agents_.Get(id)->state(); }

  cairn::planner::testing::MemoryStore store_;
  cairn::planner::testing::FakeClock clock_;
  Metrics metrics_;
  RecordingListener listener_;
  AgentsLogic agents_{&store_, &clock_, &metrics_, AgentsOptions{absl::Seconds(30)}};
};

TEST_F(AgentsLogicTest, RegisterListAndHeartbeatInterval) {
  ASSERT_OK_AND_ASSIGN(cairn::v1::RegisterAgentResponse r, agents_.Register(Agent("node1", 4)));
  EXPECT_FALSE(r.agent_id().empty());
  EXPECT_DOUBLE_EQ(r.heartbeat_interval_s(), 10.0);
  ASSERT_OK_AND_ASSIGN(cairn::v1::ListAgentsResponse list, agents_.List({}));
  ASSERT_EQ(list.agents_size(), 1);
  EXPECT_EQ(list.agents(0).hostname(), "node1");
  EXPECT_EQ(list.agents(0).num_devices(), 4);
  EXPECT_EQ(list.agents(0).state(), cairn::v1::AGENT_STATE_UP);
  EXPECT_EQ(list.agents(0).last_heartbeat_at(), Rfc3339(clock_.Now()));
  EXPECT_THAT(listener_.up, ElementsAre(r.agent_id()));
  EXPECT_THAT(metrics_.TextExposition(), HasSubstr("cairn_planner_agents{state=\"up\"} 1"));
}

TEST_F(AgentsLogicTest, SilentAgentIsMarkedDownAfterTheTimeoutAndComesBackWithAHeartbeat) {
  const std::string quiet = Register("quiet");
  const std::string chatty = Register("chatty");
  clock_.Advance(absl::Seconds(20));
  cairn::v1::HeartbeatRequest hb;
  hb.set_agent_id(chatty);
  ASSERT_OK(agents_.Heartbeat(hb).status());
  ASSERT_OK_AND_ASSIGN(std::vector<std::string> none, agents_.Sweep());
  EXPECT_TRUE(none.empty());  // 20 s < 30 s
  clock_.Advance(absl::Seconds(11));  // quiet: 31 s silent; chatty: 11 s
  ASSERT_OK_AND_ASSIGN(std::vector<std::string> down, agents_.Sweep());
  EXPECT_THAT(down, ElementsAre(quiet));
  EXPECT_EQ(StateOf(quiet), cairn::v1::AGENT_STATE_DOWN);
  EXPECT_EQ(StateOf(chatty), cairn::v1::AGENT_STATE_UP);
  EXPECT_THAT(listener_.down, ElementsAre(quiet));
  const std::string m = metrics_.TextExposition();
  EXPECT_THAT(m, HasSubstr("cairn_planner_agents{state=\"up\"} 1"));
  EXPECT_THAT(m, HasSubstr("cairn_planner_agents{state=\"down\"} 1"));
  ASSERT_OK_AND_ASSIGN(std::vector<std::string> again, agents_.Sweep());
  EXPECT_TRUE(again.empty());  // already down

  hb.set_agent_id(quiet);
  ASSERT_OK_AND_ASSIGN(cairn::v1::HeartbeatResponse back, agents_.Heartbeat(hb));
  EXPECT_EQ(back.state(), cairn::v1::AGENT_STATE_UP);
  EXPECT_EQ(StateOf(quiet), cairn::v1::AGENT_STATE_UP);
  EXPECT_EQ(listener_.up.back(), quiet);
}

TEST_F(AgentsLogicTest, ARestartedPlannerGivesEveryAgentAFullTimeout) {
  const std::string id = Register("node1");
  clock_.Advance(absl::Minutes(10));  // the planner was down for 10 minutes
  AgentsLogic restarted(&store_, &clock_, &metrics_, AgentsOptions{absl::Seconds(30)});
  ASSERT_OK(restarted.Load());
  ASSERT_OK_AND_ASSIGN(std::vector<std::string> none, restarted.Sweep());
  EXPECT_TRUE(none.empty());
  clock_.Advance(absl::Seconds(30));
  ASSERT_OK_AND_ASSIGN(std::vector<std::string> down, restarted.Sweep());
  EXPECT_THAT(down, ElementsAre(id));
}

TEST_F(AgentsLogicTest, HeartbeatFromAnUnknownAgentSaysToRegister) {
  cairn::v1::HeartbeatRequest hb;
  hb.set_agent_id("agent-404");
  EXPECT_THAT(agents_.Heartbeat(hb),
              StatusIs(absl::StatusCode::kNotFound,
                       HasSubstr("agent 'agent-404' is not registered; call RegisterAgent again")));
}

TEST_F(AgentsLogicTest, ReRegisteringWithItsIdKeepsTheId) {
  const std::string id = Register("node1");
  cairn::v1::RegisterAgentRequest again = Agent("node1", 4);
  again.set_agent_id(id);
  ASSERT_OK_AND_ASSIGN(cairn::v1::RegisterAgentResponse r, agents_.Register(again));
  EXPECT_EQ(r.agent_id(), id);
  EXPECT_EQ(agents_.Snapshot().size(), 1u);
  EXPECT_EQ(agents_.Get(id)->num_devices(), 4);
}

TEST_F(AgentsLogicTest, TheSweeperThreadMarksAgentsDown) {
  AgentsLogic swept(&store_, &clock_, &metrics_,
                    AgentsOptions{absl::Seconds(30), absl::Milliseconds(1)});
  RecordingListener listener;
  swept.SetListener(&listener);
  ASSERT_OK(swept.Load());
  ASSERT_OK(swept.Register(Agent("node1")).status());
  swept.StartSweeper();
  clock_.Advance(absl::Seconds(31));
  EXPECT_TRUE(listener.any_down.WaitForNotificationWithTimeout(absl::Seconds(30)));
  swept.StopSweeper();
}

}  // namespace
}  // namespace cairn::planner
