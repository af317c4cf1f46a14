// agent/probes/layer_probe.h — per-layer forward and backward time and saved activation bytes of
// the models the planner is asked about, with the runtime's own kernels (runtime/train/
// layer_timing.h, the code of cairn-profile-layers): the measured ModelProfile that replaces the
// cost model's analytic compute for those models.
//
//   LayerProbeConfig config;
//   config.models = {llama_tiny};
//   config.seq_lens = {128};                 // the cost model matches profiles by exact seq_len
//   CAIRN_RETURN_IF_ERROR(ProbeLayers(backend, config, &report));
//
// One "layer" Measurement per (model, kind, micro-batch, seq): params micro_batch, seq, tp (1),
// forward_s, backward_s, activation_bytes; op is "embedding", "block" or "head"; name starts with
// the model's name. Tensor-parallel degrees above 1 are derived by the planner (work / t), as for
// cairn-profile-layers. Every local slot runs it at once (the probe's ranks), so the times include
// the contention training sees.
//
// Cost: one runtime::LayerTimer per (model, kind): the layer's weights are initialised and copied
// to the device once, then every (seq, micro-batch) point is timed over them (warm-up, then the
// iteration count agreed over the ranks from the warm-up, no second build).
//
// Time limit (`deadline`, time_limit.h): the suite's time is shared equally by the (model, kind)
// groups, each group's left-over time going to the next ones; inside a group the micro-batches are
// visited in bisection order (smallest, largest, middle, ...) so that a cut table still spans the
// range, and no point starts after the group's deadline (the ranks agree; skipped points are
// counted in report->skipped as suite "layers", probe "layer"). A group whose points are all
// skipped never builds its weights.
#ifndef CAIRN_AGENT_PROBES_LAYER_PROBE_H_
#define CAIRN_AGENT_PROBES_LAYER_PROBE_H_

#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "agent/probes/probe_report.pb.h"
#include "common/plan/plan.h"
#include "runtime/comm/communicator.h"
#include "runtime/compute/compute_backend.h"

namespace cairn::agent {

struct LayerProbeConfig {
  std::vector<plan::ModelDims> models;
  std::vector<int> seq_lens = {128};
  std::vector<int> micro_batches = {1, 2, 4, 8, 16};
  int iterations = 5;
  // Timed iterations continue until they add up to this (means over scheduler time slices on
  // shared cores; runtime/train/layer_timing.h).
  double min_seconds = 0.5;
  // The ranks probing at once (ComputeProbeConfig::lockstep): each case is timed with the same
  // iteration count on all of them (estimated from one iteration, the largest wins), started
  // together.
  runtime::Communicator* lockstep = nullptr;
  // No point starts after this (InfiniteFuture: no limit). Same limit on every rank.
  absl::Time deadline = absl::InfiniteFuture();
};

absl::Status ProbeLayers(runtime::ComputeBackend* backend, const LayerProbeConfig& config,
                         ProbeReport* report);

}  // namespace cairn::agent

#endif  // CAIRN_AGENT_PROBES_LAYER_PROBE_H_
