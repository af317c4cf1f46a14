// planner/server/agents_logic.h — the Agents service's logic: registration, heartbeats, and the
// sweeper that marks silent agents down.
//
//   AgentsLogic agents(&store, &clock, &metrics, {.timeout = absl::Seconds(30)});
//   CAIRN_RETURN_IF_ERROR(agents.Load());   // agents known from the last run
//   agents.StartSweeper();                  // a background thread calling Sweep() periodically
//   absl::StatusOr<cairn::v1::RegisterAgentResponse> r = agents.Register(request);
//
// An agent is DOWN once `timeout` passes without a heartbeat (by the injected Clock, so tests
// move time by hand and call Sweep() themselves). Right after Load() every agent gets a full
// timeout to heartbeat again: a restarted planner does not declare its whole fleet dead. A
// heartbeat from a DOWN agent brings it back UP. Registration with a known agent_id keeps the id
// (agent restart): the agent then re-reads its assignments from WatchAssignments.
//
// Jobs learn about agents through the Listener (JobsLogic assigns ranks to UP agents and fails
// jobs whose agents go down); it is called after AgentsLogic's lock is released, so the listener
// may call Snapshot(). Thread-safe.
#ifndef CAIRN_PLANNER_SERVER_AGENTS_LOGIC_H_
#define CAIRN_PLANNER_SERVER_AGENTS_LOGIC_H_

#include <map>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "planner/server/clock.h"
#include "planner/server/metrics.h"
#include "planner/store/store.h"
#include "proto/cairn/v1/service.pb.h"

namespace cairn::planner {

struct AgentsOptions {
  // No heartbeat for this long: DOWN (--agent-timeout).
  absl::Duration timeout = absl::Seconds(30);
  // Real time between the sweeper's passes; 0 = timeout / 4, clamped to [10 ms, 5 s].
  absl::Duration sweep_interval = absl::ZeroDuration();
};

class AgentsLogic {
 public:
  class Listener {
   public:
    virtual ~Listener() = default;
    // Agents that registered, or came back UP with a heartbeat.
    virtual void OnAgentsUp(const std::vector<std::string>& agent_ids) = 0;
    // Agents the sweeper marked DOWN.
    virtual void OnAgentsDown(const std::vector<std::string>& agent_ids) = 0;
  };

  AgentsLogic(Store* store, const Clock* clock, Metrics* metrics, AgentsOptions options);
  ~AgentsLogic();  // StopSweeper()
  AgentsLogic(const AgentsLogic&) = delete;
  AgentsLogic& operator=(const AgentsLogic&) = delete;

  // Set before serving; `listener` must outlive this object (or be reset to nullptr first).
  void SetListener(Listener* listener);
  // Reads the agents the store knows. Call once, before serving.
  absl::Status Load();
  void StartSweeper();
  void StopSweeper();  // idempotent

  absl::StatusOr<cairn::v1::RegisterAgentResponse> Register(
      const cairn::v1::RegisterAgentRequest& request);
  // NOT_FOUND for an agent the planner does not know (register again).
  absl::StatusOr<cairn::v1::HeartbeatResponse> Heartbeat(const cairn::v1::HeartbeatRequest& request);
  absl::StatusOr<cairn::v1::ListAgentsResponse> List(const cairn::v1::ListAgentsRequest& request);

  // Marks DOWN every UP agent silent for longer than the timeout; returns their ids.
  absl::StatusOr<std::vector<std::string>> Sweep();

  // Every agent, ordered by id.
  std::vector<cairn::v1::AgentInfo> Snapshot() const;
  // NOT_FOUND for an unknown id.
  absl::StatusOr<cairn::v1::AgentInfo> Get(const std::string& agent_id) const;
  absl::Duration heartbeat_interval() const { return options_.timeout / 3; }

 private:
  void UpdateMetricsLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void SweeperLoop();

  Store* const store_;
  const Clock* const clock_;
  Metrics* const metrics_;
  const AgentsOptions options_;

  mutable absl::Mutex mu_;
  std::map<std::string, cairn::v1::AgentInfo> agents_ ABSL_GUARDED_BY(mu_);
  absl::Time loaded_at_ ABSL_GUARDED_BY(mu_) = absl::InfinitePast();
  Listener* listener_ ABSL_GUARDED_BY(mu_) = nullptr;
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
  std::thread sweeper_;
};

}  // namespace cairn::planner

#endif  // CAIRN_PLANNER_SERVER_AGENTS_LOGIC_H_
