// agent/probes/profile_builder.h — probe reports in, the planner's profiles out: a
// cairn.v1.HardwareProfile for the node's fingerprint and a cairn.v1.ModelProfile per probed model.
//
//   NodeDescription node;              // the agent's fingerprint, slots, memory, datasheet peak
//   CAIRN_ASSIGN_OR_RETURN(BuiltProfiles p, BuildProfiles(node, reports, /*previous=*/nullptr));
//   profiles->PutHardwareProfile(p.hardware);  for (auto& m : p.models) profiles->PutModelProfile(m);
//
// How each field is made (hardware.proto), from the reports of every rank of the node (the
// compute probes ran on all of them at once, as training runs):
//   device.gemm                 one point per GEMM shape probed (flops = 2 m n k of the forward),
//                               achieved rate = (forward + dA + dB FLOPs) / (their times), averaged
//                               over the node's ranks; shapes within 5% in FLOPs merged (the cost
//                               model interpolates in log(flops) and needs distinct points).
//   device.gemm_shapes          one point per probed (m, n, k): forward and backward (dA + dB)
//                               seconds, averaged over the ranks. The cost model reads these first
//                               (nearest shapes in log m, n, k; hardware_model.h) and the table
//                               above only for a profile without shapes.
//   device.attention_efficiency median over attention cases of 3.5 x FLOPs / (GEMM rate at those
//                               FLOPs x (forward + backward time)): the cost model charges attention
//                               forward as FLOPs / (gemm x efficiency) and backward as 2.5 x that
//                               when the profile has no attention points (profiles of older probes).
//   device.attention            one point per probed kernel (batch, heads, seq, head dim; K/V heads
//                               = Q heads): forward and backward seconds, averaged over the ranks;
//                               preferred by the cost model over the efficiency.
//   device.memory_bandwidth     the AdamW probe's rate in the cost model's optimizer bytes.
//   device.kernel_launch_s      the launch probe's time per 1-element kernel enqueued back to back
//                               (charged per kernel by the cost model).
//   device.peak_flops_per_s     the datasheet peak given in `node` (MFU is against it), else the
//                               best measured GEMM rate (said so in the notes).
//   collectives                 one CollectiveCost per (op, group size, spans nodes) from the
//                               probe's fits (latency, busbw) and measured points (what the cost
//                               model interpolates; made non-decreasing in time, plus one point at
//                               16x the largest size continuing at the fitted bandwidth, so the
//                               model never extrapolates a noisy negative slope); the consecutive
//                               placement is kept when two
//                               placements share a key; the notes give the alpha-beta fit's worst
//                               error and the table's own (each interior point predicted from its
//                               neighbours, leave-one-out). Entries of `previous` (same fingerprint) not
//                               measured this time are kept: a node-local re-probe keeps the
//                               cross-node tables of an earlier coordinated probe.
//   overlap_slowdown            the overlap probe's gamma (else `previous`'s, else 1 with a note:
//                               one rank has no collective to overlap).
//   source MEASURED; notes      what was measured, by which probe version, when, fit errors,
//                               copy/add bandwidths (no field of their own in the profile).
// ModelProfile per model: one LayerTiming per (kind, micro-batch, seq), forward/backward/activation
// bytes averaged over the node's ranks; device_model = the fingerprint's.
// Errors: InvalidArgument when the reports hold no GEMM measurement (nothing to build from) or
// mix probe versions.
#ifndef CAIRN_AGENT_PROBES_PROFILE_BUILDER_H_
#define CAIRN_AGENT_PROBES_PROFILE_BUILDER_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "agent/probes/probe_report.pb.h"
#include "proto/cairn/v1/hardware.pb.h"
#include "proto/cairn/v1/model.pb.h"

namespace cairn::agent {

struct NodeDescription {
  std::string node_name;                 // for the notes
  cairn::v1::Fingerprint fingerprint;
  std::string profile_name;              // HardwareProfile.name, e.g. "cpu-2slot (measured)"
  std::string device_name;               // DeviceSpec.name
  int devices_per_node = 1;
  int64_t device_memory_bytes = 0;       // usable by one worker
  int64_t reserved_bytes = 0;
  double peak_flops_per_s = 0;           // datasheet; 0 = unknown
  int activation_dtype_bytes = 4;        // 4 on the CPU backend, 2 on bf16 GPUs
  std::string measured_at;               // RFC 3339
};

struct BuiltProfiles {
  cairn::v1::HardwareProfile hardware;
  std::vector<cairn::v1::ModelProfile> models;
  std::vector<std::string> summary;      // one line per headline number, for logs and docs
};

absl::StatusOr<BuiltProfiles> BuildProfiles(const NodeDescription& node,
                                            const std::vector<ProbeReport>& reports,
                                            const cairn::v1::HardwareProfile* previous);

// The cost model's GEMM rate at `flops` from a table (log-interpolated, clamped): the same reading
// as planner/cost/hardware_model.cc AchievedGemmRate, for the efficiency derivation and diffs.
double GemmRateAt(const cairn::v1::DeviceSpec& device, double flops);

}  // namespace cairn::agent

#endif  // CAIRN_AGENT_PROBES_PROFILE_BUILDER_H_
