// agent/probes/compute_probes.h — what one device computes: GEMM rate by shape, attention rate by
// sequence length and head dimension, memory bandwidth, kernel launch overhead. Through the
// runtime's ComputeBackend (runtime/compute/compute_backend.h), so the CPU backend (fp32) and the
// CUDA backend (bf16) are probed by the same code with the kernels training will run.
//
//   ComputeProbeConfig config = ComputeProbeConfig::ForCpu({llama_tiny});
//   ProbeReport report;
//   CAIRN_RETURN_IF_ERROR(ProbeGemms(backend, config, &report));      // one Measurement per shape
//   CAIRN_RETURN_IF_ERROR(ProbeAttention(backend, config, &report));
//   CAIRN_RETURN_IF_ERROR(ProbeMemory(backend, config, &report));
//   CAIRN_RETURN_IF_ERROR(ProbeLaunch(backend, config, &report));
//
// GEMM shapes are the ones the planner's cost model charges for the given models
// (planner/cost/cost_model.cc Compute) and the runtime issues: Q, K/V, output projection, MLP up
// (and gate), down and the LM head (fp32 logits), plus Megatron-Core's fused QKV and gate-up, for
// each tensor-parallel degree and micro-batch (tokens = micro_batch x seq), not one square size.
// Each is timed forward (C = A B^T) and backward (dA and dB); the Measurement keeps both times
// (the profile's gemm_shapes) and its rate is (forward + backward FLOPs) / (forward + backward
// time) (the profile's rate-by-FLOPs table). Each case's result is checked first (A = 0.5,
// B = 0.25: every C element is k / 8).
// Attention: causal self-attention of the backend (flash-style), FLOPs 2 b s^2 h (the cost model's
// count: QK^T and PV over half the square); backward timed too (the model assumes 2.5x forward).
// Memory: a device copy, an add (2 reads, 1 write) and an AdamW step counted in the cost model's
// optimizer bytes (24 per parameter with fp32 weights, 30 with bf16); rate = bytes / time.
// Launch: the time of a 1-element kernel, enqueued back to back (one sync per sample).
//
// A case that fails is recorded with its error and the others still run; a suite returns an error
// only when the backend cannot be used at all.
//
// Time limit (`deadline`, time_limit.h): no case starts after it (the ranks of `lockstep` agree);
// skipped cases are counted in report->skipped (suite "compute", probe gemm/attention/memory/
// launch). GEMM cases are collected first (unique shapes over models x tp x micro-batch x layer
// GEMM, the first occurrence naming the case), sorted by FLOPs and visited in bisection order
// (smallest, largest, middle, ...), the same on every rank, so a table cut short still spans the
// FLOP range. Shapes over max_case_bytes are left out before that (never measured, never counted).
#ifndef CAIRN_AGENT_PROBES_COMPUTE_PROBES_H_
#define CAIRN_AGENT_PROBES_COMPUTE_PROBES_H_

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "agent/probes/probe_harness.h"
#include "agent/probes/probe_report.pb.h"
#include "common/plan/plan.h"
#include "runtime/comm/communicator.h"
#include "runtime/compute/compute_backend.h"

namespace cairn::agent {

struct ComputeProbeConfig {
  std::vector<plan::ModelDims> models;      // whose layer GEMMs are probed
  std::vector<int> tp_degrees = {1};        // tensor-parallel degrees the shapes are cut for
  std::vector<int> micro_batches = {1, 2, 4, 8};
  int seq_len = 0;                           // tokens per sample; 0 = min(model's max, 1024)
  std::vector<int> attention_seq_lens = {128, 256, 512, 1024};
  std::vector<int> attention_head_dims = {64, 128};
  int attention_batch = 1;
  int attention_heads = 8;
  int64_t memory_bytes = int64_t{64} << 20;  // buffer of the bandwidth probes
  // Largest buffer one GEMM case may allocate (A, B, C and the gradients); bigger cases skipped.
  int64_t max_case_bytes = int64_t{1} << 30;
  ProbeBudget budget;
  // A host communicator over the ranks probing at once (nullptr: this rank alone): every case
  // and every sample starts together on all of them, with the same number of operations
  // (TimeLocal), so each sees the contention training will (ranks drifting apart would time
  // parts of cases alone on a shared core).
  runtime::Communicator* lockstep = nullptr;
  // No case starts after this (InfiniteFuture: no limit); cairn-probe sets it before each of the
  // four calls. Same limit on every rank of `lockstep`.
  absl::Time deadline = absl::InfiniteFuture();

  // Defaults sized for each kind of device: small CPU shapes (seconds in all), or GPU shapes
  // (tensor-parallel degrees up to 8, sequences up to 8192).
  static ComputeProbeConfig ForCpu(std::vector<plan::ModelDims> models);
  static ComputeProbeConfig ForGpu(std::vector<plan::ModelDims> models);
};

struct GemmCase {
  // "q", "kv" (K and V each), "out", "up" (gate and up each for SwiGLU), "down", "lm_head" (fp32
  // output), and Megatron-Core's fused "qkv_fused" and "gate_up_fused".
  std::string name;
  runtime::MatmulShape shape;   // a linear layer: [tokens, in] x [out, in]^T
};

// The GEMMs of one model's layers at tensor-parallel degree `tp` and `tokens` rows as the runtime
// issues them (runtime/engine/layers.cc: Q, K, V and gate, up as GEMMs of their own, the LM head
// into fp32 logits), plus the fused projections of the megatron-core runtime traits: the shapes
// the cost model asks for under either (degrees that do not divide a width round it up).
std::vector<GemmCase> LayerGemmShapes(const plan::ModelDims& model, int tp, int64_t tokens);

absl::Status ProbeGemms(runtime::ComputeBackend* backend, const ComputeProbeConfig& config,
                        ProbeReport* report);
absl::Status ProbeAttention(runtime::ComputeBackend* backend, const ComputeProbeConfig& config,
                            ProbeReport* report);
absl::Status ProbeMemory(runtime::ComputeBackend* backend, const ComputeProbeConfig& config,
                         ProbeReport* report);
absl::Status ProbeLaunch(runtime::ComputeBackend* backend, const ComputeProbeConfig& config,
                         ProbeReport* report);

}  // namespace cairn::agent

#endif  // CAIRN_AGENT_PROBES_COMPUTE_PROBES_H_
