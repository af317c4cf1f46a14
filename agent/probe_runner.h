// agent/probe_runner.h — runs the node's probes: one cairn-probe process per device (GPU or CPU
// slot) at once, as training runs its workers, then reads their reports back.
//
//   ProbeRunner runner(options, facts);
//   ProbeRun run = ProbeRun::Local(/*slots=*/2, options);        // this node alone
//   CAIRN_ASSIGN_OR_RETURN(std::vector<ProbeReport> reports, runner.Run(run, cancelled));
//   CAIRN_ASSIGN_OR_RETURN(BuiltProfiles p, BuildProfiles(runner.Describe(), reports, &previous));
//
// Local runs meet in a fresh directory under work_dir/probes/; coordinated runs (a ProbeRequest
// from the planner with ranks) meet through the planner's rendezvous under the probe id, each agent
// starting its own ranks. Output of every rank goes to work_dir/probes/<id>/rank-<r>.log. A rank
// that fails, or a run past options.probe_timeout, stops every rank of this node (Aborted /
// DeadlineExceeded naming the rank and the tail of its log). `cancelled` is polled: when it turns
// true (agent shutting down) the ranks are stopped and Cancelled is returned.
#ifndef CAIRN_AGENT_PROBE_RUNNER_H_
#define CAIRN_AGENT_PROBE_RUNNER_H_

#include <functional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "agent/agent_options.h"
#include "agent/fingerprint.h"
#include "agent/probes/probe_report.pb.h"
#include "agent/probes/profile_builder.h"
#include "proto/cairn/v1/service.pb.h"

namespace cairn::agent {

struct ProbeRun {
  std::string probe_id;                 // names the work directory (and the rendezvous)
  std::vector<int> ranks;               // ranks this agent starts
  int world_size = 1;
  std::vector<int> node_of_rank;        // node index per rank
  bool coordinated = false;             // meet through the planner (else a local directory)
  std::vector<std::string> suites;      // empty = all
  std::vector<std::string> models;      // empty = options.probe_models
  bool quick = false;

  // This node alone: ranks 0..devices-1.
  static ProbeRun Local(const std::string& probe_id, int devices);
  // What a ProbeRequest asks (local when it has no ranks).
  static ProbeRun FromRequest(const cairn::v1::ProbeRequest& request, int devices);
};

class ProbeRunner {
 public:
  ProbeRunner(const AgentOptions& options, const NodeFacts& facts, std::string advertise_address);

  absl::StatusOr<std::vector<ProbeReport>> Run(const ProbeRun& run,
                                               const std::function<bool()>& cancelled);

  // The node as profile_builder.h needs it (name, fingerprint, slots, memory, peak).
  NodeDescription Describe() const;

 private:
  const AgentOptions options_;
  const NodeFacts facts_;
  const std::string advertise_address_;
};

// The path of a sibling binary: `name` next to the running executable, else found on $PATH, else
// `name` itself.
std::string FindBinary(const std::string& name);

}  // namespace cairn::agent

#endif  // CAIRN_AGENT_PROBE_RUNNER_H_
