// planner/server/agent_planning.h — the pieces of the Jobs service that tie plans to agents:
// which measured profiles a job's search uses when it asks to be planned for the agents
// (SubmitJobRequest.plan_for_agents), and how reported steps fold into the job's measured-vs-
// predicted record (Job.measurement). Plain functions over protos; JobsLogic calls them.
//
//   CAIRN_ASSIGN_OR_RETURN(AgentPlanTarget t,
//                          ResolveAgentProfiles(agents.Snapshot(), hardware, models, "llama-tiny"));
//   request.set_hardware_profile_id(t.hardware_profile_id);   // "id@version"
//   ...
//   AddStep(step_metrics, &job.mutable_measurement());
#ifndef CAIRN_PLANNER_SERVER_AGENT_PLANNING_H_
#define CAIRN_PLANNER_SERVER_AGENT_PLANNING_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "proto/cairn/v1/service.pb.h"

namespace cairn::planner {

struct AgentPlanTarget {
  std::string hardware_profile_id;  // "ID@VERSION" of the latest measured profile
  int num_nodes = 0;                // UP agents with that fingerprint
  int devices_per_node = 0;         // the fewest devices any of them has
  std::string model_profile_id;     // "ID@VERSION", or "" when the model was not probed there
  bool cpu = false;                 // CPU worker slots (fp32): the search uses dtype_bytes 4
  std::string device_model;
};

// The UP agents are grouped by fingerprint; the group with the most devices is planned for
// (ties: the lexicographically first fingerprint). Its latest MEASURED hardware profile (matched by
// fingerprint) and the latest model profile of `model_name` on its device are used.
// FAILED_PRECONDITION when no agent is UP or the group has no measured profile yet (the message
// says to wait for the probes or run `cairn agents probe`).
absl::StatusOr<AgentPlanTarget> ResolveAgentProfiles(
    const std::vector<cairn::v1::AgentInfo>& agents,
    const std::vector<cairn::v1::StoredHardwareProfile>& hardware,
    const std::vector<cairn::v1::StoredModelProfile>& models, const std::string& model_name);

// Folds one reported step into `m`: steps after the first (step 1 warms up) count towards the
// mean step time, tokens/s and MFU; the prediction and the largest memory are kept.
void AddStep(const cairn::v1::StepMetrics& step, cairn::v1::JobMeasurement* m);

}  // namespace cairn::planner

#endif  // CAIRN_PLANNER_SERVER_AGENT_PLANNING_H_
