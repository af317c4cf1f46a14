#include "planner/server/agent_planning.h"

#include <algorithm>
#include <map>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace cairn::planner {
namespace {

// A stable key of a fingerprint (field by field, as the store's ids are).
std::string Key(const cairn::v1::Fingerprint& f) {
  return absl::StrCat(f.device_model().size(), ":", f.device_model(), ";",
                      f.device_memory_bytes(), ";", f.driver_version().size(), ":",
                      f.driver_version(), ";", f.cuda_version().size(), ":", f.cuda_version(), ";",
                      f.nccl_version().size(), ":", f.nccl_version(), ";", f.topology().size(),
                      ":", f.topology());
}

}  // namespace

absl::StatusOr<AgentPlanTarget> ResolveAgentProfiles(
    const std::vector<cairn::v1::AgentInfo>& agents,
    const std::vector<cairn::v1::StoredHardwareProfile>& hardware,
    const std::vector<cairn::v1::StoredModelProfile>& models, const std::string& model_name) {
  struct Group {
    cairn::v1::Fingerprint fingerprint;
    int agents = 0;
    int devices = 0;
    int min_devices = 0;
    std::vector<std::string> ids;
  };
  std::map<std::string, Group> groups;
  for (const cairn::v1::AgentInfo& a : agents) {
    if (a.state() != cairn::v1::AGENT_STATE_UP || a.num_devices() < 1) continue;
    Group& g = groups[Key(a.fingerprint())];
    g.fingerprint = a.fingerprint();
    ++g.agents;
    g.devices += a.num_devices();
    g.min_devices = g.min_devices == 0 ? a.num_devices() : std::min(g.min_devices, a.num_devices());
    g.ids.push_back(a.agent_id());
  }
  if (groups.empty()) {
    return absl::FailedPreconditionError(
        "plan_for_agents: no agent is UP; start cairn-agent on the nodes first");
  }
  const Group* best = nullptr;
  for (const auto& [key, g] : groups) {
    if (best == nullptr || g.devices > best->devices) best = &g;
  }
  AgentPlanTarget t;
  t.num_nodes = best->agents;
  t.devices_per_node = best->min_devices;
  t.device_model = best->fingerprint.device_model();
  t.cpu = absl::StartsWith(t.device_model, "cpu");
  const std::string key = Key(best->fingerprint);
  const cairn::v1::StoredHardwareProfile* hw = nullptr;
  for (const auto& p : hardware) {
    if (p.profile().source() != cairn::v1::PROFILE_SOURCE_MEASURED ||
        Key(p.profile().fingerprint()) != key) {
      continue;
    }
    if (hw == nullptr || p.version() > hw->version()) hw = &p;
  }
  if (hw == nullptr) {
    return absl::FailedPreconditionError(absl::StrCat(
        "plan_for_agents: the UP agents (", absl::StrJoin(best->ids, ", "), ", ",
        t.device_model, ") have no measured profile yet; wait for their probes to finish or run "
        "`cairn agents probe`"));
  }
  t.hardware_profile_id = absl::StrCat(hw->id(), "@", hw->version());
  const cairn::v1::StoredModelProfile* mp = nullptr;
  for (const auto& p : models) {
    if (p.profile().model_name() != model_name || p.profile().device_model() != t.device_model) {
      continue;
    }
    if (mp == nullptr || p.version() > mp->version()) mp = &p;
  }
  if (mp != nullptr) t.model_profile_id = absl::StrCat(mp->id(), "@", mp->version());
  return t;
}

void AddStep(const cairn::v1::StepMetrics& step, cairn::v1::JobMeasurement* m) {
  if (step.predicted_step_time_s() > 0) m->set_predicted_step_time_s(step.predicted_step_time_s());
  if (step.predicted_memory_bytes() > 0) {
    m->set_predicted_memory_bytes(step.predicted_memory_bytes());
  }
  m->set_peak_memory_bytes(std::max(m->peak_memory_bytes(), step.peak_memory_bytes()));
  if (step.step() <= 1 || step.step_time_s() <= 0) return;  // the first step warms up
  const double n = m->steps_measured();
  auto mean = [n](double old, double x) { return (old * n + x) / (n + 1); };
  m->set_mean_step_time_s(mean(m->mean_step_time_s(), step.step_time_s()));
  m->set_mean_tokens_per_s(mean(m->mean_tokens_per_s(), step.tokens_per_s()));
  m->set_mean_mfu(mean(m->mean_mfu(), step.mfu()));
  m->set_steps_measured(m->steps_measured() + 1);
  if (m->predicted_step_time_s() > 0) {
    m->set_measured_over_predicted(m->mean_step_time_s() / m->predicted_step_time_s());
  }
}

}  // namespace cairn::planner
