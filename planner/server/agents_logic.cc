#include "planner/server/agents_logic.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/logging.h"
#include "common/status_macros.h"
#include "planner/server/validation.h"

namespace cairn::planner {

AgentsLogic::AgentsLogic(Store* store, const Clock* clock, Metrics* metrics, AgentsOptions options)
    : store_(store), clock_(clock), metrics_(metrics), options_(options) {}

AgentsLogic::~AgentsLogic() { StopSweeper(); }

void AgentsLogic::SetListener(Listener* listener) {
  absl::MutexLock lock(&mu_);
  listener_ = listener;
}

absl::Status AgentsLogic::Load() {
  CAIRN_ASSIGN_OR_RETURN(std::vector<cairn::v1::AgentInfo> agents, store_->ListAgents());
  absl::MutexLock lock(&mu_);
  agents_.clear();
  for (cairn::v1::AgentInfo& a : agents) {
    const std::string id = a.agent_id();
    agents_[id] = std::move(a);
  }
  loaded_at_ = clock_->Now();
  UpdateMetricsLocked();
  return absl::OkStatus();
}

void AgentsLogic::StartSweeper() {
  absl::MutexLock lock(&mu_);
  if (sweeper_.joinable() || stop_) return;
  sweeper_ = std::thread([this] { SweeperLoop(); });
}

void AgentsLogic::StopSweeper() {
  {
    absl::MutexLock lock(&mu_);
    stop_ = true;
  }
  if (sweeper_.joinable()) sweeper_.join();
}

void AgentsLogic::SweeperLoop() {
  absl::Duration interval = options_.sweep_interval;
  if (interval <= absl::ZeroDuration()) {
    interval = std::clamp(options_.timeout / 4, absl::Milliseconds(10), absl::Seconds(5));
  }
  while (true) {
    {
      absl::MutexLock lock(&mu_);
      mu_.AwaitWithTimeout(absl::Condition(&stop_), interval);
      if (stop_) return;
    }
    absl::StatusOr<std::vector<std::string>> down = Sweep();
    if (!down.ok()) CAIRN_LOG(WARNING) << "agent sweep failed: " << down.status();
  }
}

absl::StatusOr<cairn::v1::RegisterAgentResponse> AgentsLogic::Register(
    const cairn::v1::RegisterAgentRequest& request) {
  CAIRN_RETURN_IF_ERROR(ValidateRegisterAgentRequest(request));
  cairn::v1::AgentInfo info;
  info.set_agent_id(request.agent_id());
  info.set_hostname(request.hostname());
  info.set_address(request.address());
  info.set_num_devices(request.num_devices());
  *info.mutable_fingerprint() = request.fingerprint();
  *info.mutable_node() = request.node();
  CAIRN_ASSIGN_OR_RETURN(cairn::v1::AgentInfo stored,
                         store_->RegisterAgent(info, Rfc3339(clock_->Now())));
  Listener* listener;
  {
    absl::MutexLock lock(&mu_);
    agents_[stored.agent_id()] = stored;
    UpdateMetricsLocked();
    listener = listener_;
  }
  CAIRN_LOG(INFO) << "agent " << stored.agent_id() << " registered: " << stored.hostname() << " ("
                  << stored.num_devices() << " devices, " << stored.address() << ")";
  if (listener != nullptr) listener->OnAgentsUp({stored.agent_id()});
  cairn::v1::RegisterAgentResponse out;
  out.set_agent_id(stored.agent_id());
  out.set_heartbeat_interval_s(absl::ToDoubleSeconds(heartbeat_interval()));
  return out;
}

absl::StatusOr<cairn::v1::HeartbeatResponse> AgentsLogic::Heartbeat(
    const cairn::v1::HeartbeatRequest& request) {
  CAIRN_RETURN_IF_ERROR(ValidateHeartbeatRequest(request));
  absl::StatusOr<cairn::v1::AgentInfo> stored =
      store_->Heartbeat(request.agent_id(), Rfc3339(clock_->Now()));
  if (!stored.ok()) {
    if (stored.status().code() == absl::StatusCode::kNotFound) {
      return absl::NotFoundError(absl::StrCat("agent '", request.agent_id(),
                                              "' is not registered; call RegisterAgent again"));
    }
    return stored.status();
  }
  bool came_back = false;
  Listener* listener;
  {
    absl::MutexLock lock(&mu_);
    auto it = agents_.find(stored->agent_id());
    came_back = it == agents_.end() || it->second.state() != cairn::v1::AGENT_STATE_UP;
    agents_[stored->agent_id()] = *stored;
    UpdateMetricsLocked();
    listener = listener_;
  }
  if (came_back) {
    CAIRN_LOG(INFO) << "agent " << stored->agent_id() << " is up again";
    if (listener != nullptr) listener->OnAgentsUp({stored->agent_id()});
  }
  cairn::v1::HeartbeatResponse out;
  out.set_state(stored->state());
  return out;
}

absl::StatusOr<cairn::v1::ListAgentsResponse> AgentsLogic::List(
    const cairn::v1::ListAgentsRequest&) {
  cairn::v1::ListAgentsResponse out;
  for (cairn::v1::AgentInfo& a : Snapshot()) *out.add_agents() = std::move(a);
  return out;
}

absl::StatusOr<std::vector<std::string>> AgentsLogic::Sweep() {
  const absl::Time now = clock_->Now();
  {
    absl::MutexLock lock(&mu_);
    if (now - loaded_at_ < options_.timeout) return std::vector<std::string>{};
  }
  CAIRN_ASSIGN_OR_RETURN(std::vector<std::string> down,
                         store_->MarkAgentsDown(Rfc3339(now - options_.timeout)));
  if (down.empty()) return down;
  Listener* listener;
  {
    absl::MutexLock lock(&mu_);
    for (const std::string& id : down) {
      auto it = agents_.find(id);
      if (it != agents_.end()) it->second.set_state(cairn::v1::AGENT_STATE_DOWN);
    }
    UpdateMetricsLocked();
    listener = listener_;
  }
  for (const std::string& id : down) {
    CAIRN_LOG(WARNING) << "agent " << id << " is down: no heartbeat for "
                       << absl::FormatDuration(options_.timeout) << " (--agent-timeout)";
  }
  if (listener != nullptr) listener->OnAgentsDown(down);
  return down;
}

std::vector<cairn::v1::AgentInfo> AgentsLogic::Snapshot() const {
  absl::MutexLock lock(&mu_);
  std::vector<cairn::v1::AgentInfo> out;
  out.reserve(agents_.size());
  for (const auto& [id, a] : agents_) out.push_back(a);
  return out;
}

absl::StatusOr<cairn::v1::AgentInfo> AgentsLogic::Get(const std::string& agent_id) const {
  absl::MutexLock lock(&mu_);
  auto it = agents_.find(agent_id);
  if (it == agents_.end()) {
    return absl::NotFoundError(
        absl::StrCat("agent '", agent_id, "' is not registered; call RegisterAgent first"));
  }
  return it->second;
}

void AgentsLogic::UpdateMetricsLocked() {
  int up = 0, down = 0;
  for (const auto& [id, a] : agents_) {
    (a.state() == cairn::v1::AGENT_STATE_UP ? up : down)++;
  }
  metrics_->SetAgents(up, down);
}

}  // namespace cairn::planner
