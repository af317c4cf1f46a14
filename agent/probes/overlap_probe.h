// agent/probes/overlap_probe.h — how much compute and communication slow each other down when they
// run at once: the cost model's overlap_slowdown gamma (hardware.proto; planner/cost/cost_model.cc
// Overlap: overlapped time = max(c, m) + (gamma - 1) x min(c, m)).
//
//   CAIRN_RETURN_IF_ERROR(ProbeOverlap(world, control, backend, OverlapProbeConfig{}, &report));
//
// Every rank: a block of GEMMs (compute, on the backend's stream) and an all-reduce over the world
// (communication, on the communicator: Gloo's threads on CPU, NCCL's stream on GPU), sized so that
// each alone takes about the same time; first each alone, then both started together. Recorded
// (rank 0's report, times the slowest rank's, medians over samples):
//   "overlap" op "compute": slowdown of the compute block while the collective runs beside it;
//   "overlap" op "comm":    slowdown of the collective while compute runs beside it;
//   "overlap" op "gamma":   1 + (both - max(c, m)) / min(c, m) per sample, the median, clamped to
//                           [1, 3]: the factor the profile carries (params: the unclamped value).
// Time limit (`deadline`, time_limit.h): the probe is one case; it does not start after the
// deadline (the ranks agree over `control`), and is then counted in report->skipped (suite and
// probe "overlap").
#ifndef CAIRN_AGENT_PROBES_OVERLAP_PROBE_H_
#define CAIRN_AGENT_PROBES_OVERLAP_PROBE_H_

#include <cstdint>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "agent/probes/probe_harness.h"
#include "agent/probes/probe_report.pb.h"
#include "runtime/comm/communicator.h"
#include "runtime/compute/compute_backend.h"

namespace cairn::agent {

struct OverlapProbeConfig {
  int64_t gemm_size = 256;                    // square GEMM of the compute block (CPU default)
  double comm_bytes = 8.0 * 1024 * 1024;      // all-reduce buffer
  int samples = 5;
  // Not started after this (InfiniteFuture: no limit). Same limit on every rank.
  absl::Time deadline = absl::InfiniteFuture();

  static OverlapProbeConfig ForCpu();
  static OverlapProbeConfig ForGpu();  // 8192^3 GEMMs against a 256 MiB all-reduce
};

absl::Status ProbeOverlap(runtime::Communicator* world, runtime::Communicator* control,
                          runtime::ComputeBackend* backend, const OverlapProbeConfig& config,
                          ProbeReport* report);

}  // namespace cairn::agent

#endif  // CAIRN_AGENT_PROBES_OVERLAP_PROBE_H_
