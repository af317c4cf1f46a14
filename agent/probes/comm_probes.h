// agent/probes/comm_probes.h — what the links between devices carry: all-reduce, reduce-scatter,
// all-gather, all-to-all and send/recv by message size, group size and placement, through the
// runtime's own communicators (runtime/comm: Gloo on CPU, NCCL on GPU), as nccl-tests measures
// them, then fitted to the cost model's latency/bandwidth form (fit.h).
//
//   CommProbeConfig config = CommProbeConfig::ForCpu();
//   // every rank of the probe, with its node index per world rank (placement):
//   CAIRN_RETURN_IF_ERROR(ProbeCollectives(world, control, backend, {0, 0, 1, 1}, config, &report));
//
// Groups. For every group size g that divides the world (2, 4, ..., and the world itself) and two
// placements: consecutive (ranks [i g, (i+1) g), how tensor-parallel groups are laid out) and
// strided (ranks {j, j + W/g, j + 2W/g, ...}, how data-parallel groups cross nodes). All W/g groups
// of a placement run at once, as they do in training (every link busy). A group spans nodes when
// two of its ranks sit on different nodes (`node_of_rank`). Send/recv: pairs exchanging one message
// each way at once, consecutive and strided.
//
// Definitions (nccl-tests PERFORMANCE.md; common/collective.h): bytes = the whole buffer
// (all-reduce buffer, all-gather output, reduce-scatter input, one rank's all-to-all buffer, the
// send/recv message); time = the slowest rank's per-operation median; algbw = bytes / time;
// busbw = algbw x BusFactor(op, g). Each case is checked (inputs rank + 1: sums exact) before it is
// timed. Rank 0's report holds the measurements and one "collective_fit" Measurement per
// (op, g, placement): params latency_s, busbw_bytes_per_s, max_rel_error, rms_rel_error.
//
// Buffers come from `backend` (host memory on CPU, device memory on GPU) in its working dtype.
// `control` is a host-memory communicator over the same ranks (timing agreement); on CPU it may
// be `world` itself. Every rank must call with the same arguments except its own communicators.
//
// Time limit (`deadline`, time_limit.h): no case (op, group size, placement, size) starts after it;
// the ranks agree over `control`. Cases run in the order above (group sizes up, consecutive before
// strided, ops in `ops` order, sizes up), so a cut run loses the largest groups, the strided
// placement and the last ops' largest sizes first; a placement that starts past the deadline is
// skipped whole (its groups are not even built). Skipped cases: report->skipped, suite "comm",
// probe "collective", on every rank. A series with fewer than 2 sizes gets no fit.
#ifndef CAIRN_AGENT_PROBES_COMM_PROBES_H_
#define CAIRN_AGENT_PROBES_COMM_PROBES_H_

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "agent/probes/probe_harness.h"
#include "agent/probes/probe_report.pb.h"
#include "runtime/comm/communicator.h"
#include "runtime/compute/compute_backend.h"

namespace cairn::agent {

struct CommProbeConfig {
  std::vector<std::string> ops = {"all_reduce", "reduce_scatter", "all_gather", "all_to_all",
                                  "send_recv"};
  double min_bytes = 1024;                 // 1 KiB
  double max_bytes = 1024.0 * 1024 * 1024; // 1 GiB
  double size_factor = 4;                  // log-spaced sizes: min, min x factor, ...
  std::vector<int> group_sizes;            // empty: every power of two dividing the world, and W
  bool strided = true;                     // also the strided placement
  ProbeBudget budget;
  // No case starts after this (InfiniteFuture: no limit). Same limit on every rank.
  absl::Time deadline = absl::InfiniteFuture();

  // CPU (Gloo over TCP): up to 64 MiB, factor 4. GPU (NCCL): up to 1 GiB, factor 4.
  static CommProbeConfig ForCpu();
  static CommProbeConfig ForGpu();
};

// The groups of one placement: `consecutive` or strided, size g, world W (g divides W).
std::vector<std::vector<int>> PlacementGroups(int world_size, int group_size, bool consecutive);

// True when the ranks of `group` are not all on one node.
bool SpansNodes(const std::vector<int>& group, const std::vector<int>& node_of_rank);

absl::Status ProbeCollectives(runtime::Communicator* world, runtime::Communicator* control,
                              runtime::ComputeBackend* backend,
                              const std::vector<int>& node_of_rank, const CommProbeConfig& config,
                              ProbeReport* report);

}  // namespace cairn::agent

#endif  // CAIRN_AGENT_PROBES_COMM_PROBES_H_
