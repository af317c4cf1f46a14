#include "planner/cost/cost_model.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/plan/validate.h"
#include "common/math.h"
#include "planner/cost/model_math.h"
#include "planner/cost/runtime_traits.h"

namespace cairn::planner {

CostModel::CostModel(const SearchProblem& problem) : problem_(problem), hw_(problem.hardware) {}

double CostModel::Overlap(double compute_s, double comm_s) const {
  const double gamma = hw_.hardware().overlap_slowdown;
  return std::max(compute_s, comm_s) + (gamma - 1.0) * std::min(compute_s, comm_s);
}

Layout CostModel::LayoutOf(const Strategy& s, int stage_devices) {
  return plan::LayoutOf(s, stage_devices);
}

Layout CostModel::BoundaryLayout(const StageContext& ctx) const {
  return plan::BoundaryLayout(ctx.stage_devices, ctx.micro_batch, problem_.seq_len);
}

bool CostModel::MeasuredCompute(LayerKind kind, int tp, int samples, double* forward_s,
                                double* backward_s) const {
  // Points of this kind and sequence length; the closest measured degree (scaled by degree ratio,
  // Galvatron's assumption that work divides evenly) when `tp` itself was not measured.
  std::vector<const LayerTimingPoint*> pts;
  int best_tp = 0;
  for (const LayerTimingPoint& p : problem_.measured) {
    if (p.kind != kind || p.seq_len != problem_.seq_len || p.forward_s <= 0) continue;
    if (best_tp == 0 || std::abs(std::log2(p.tp_degree) - std::log2(tp)) <
                            std::abs(std::log2(best_tp) - std::log2(tp))) {
      best_tp = p.tp_degree;
    }
  }
  if (best_tp == 0) return false;
  for (const LayerTimingPoint& p : problem_.measured) {
    if (p.kind == kind && p.seq_len == problem_.seq_len && p.tp_degree == best_tp &&
        p.forward_s > 0) {
      pts.push_back(&p);
    }
  }
  std::sort(pts.begin(), pts.end(), [](auto* a, auto* b) {
    return a->micro_batch_size < b->micro_batch_size;
  });
  auto bwd = [](const LayerTimingPoint* p) {
    return p->backward_s > 0 ? p->backward_s : 2.0 * p->forward_s;
  };
  const double scale = static_cast<double>(best_tp) / tp;
  if (pts.size() == 1) {
    const double per = static_cast<double>(samples) / pts[0]->micro_batch_size;
    *forward_s = pts[0]->forward_s * per * scale;
    *backward_s = bwd(pts[0]) * per * scale;
    return true;
  }
  // Piecewise-linear in the micro-batch size through the measured points (exact where measured),
  // continued with the last segment's slope above them and proportionally below the smallest.
  auto at = [&](auto value) {
    const double b = samples;
    if (b <= pts.front()->micro_batch_size) {
      return value(pts.front()) * b / pts.front()->micro_batch_size;
    }
    size_t hi = 1;
    while (hi + 1 < pts.size() && pts[hi]->micro_batch_size < b) ++hi;
    const double x0 = pts[hi - 1]->micro_batch_size, x1 = pts[hi]->micro_batch_size;
    const double y0 = value(pts[hi - 1]), y1 = value(pts[hi]);
    return std::max(0.0, y0 + (y1 - y0) * (b - x0) / (x1 - x0));
  };
  *forward_s = at([](const LayerTimingPoint* p) { return p->forward_s; }) * scale;
  *backward_s = at(bwd) * scale;
  return true;
}

void CostModel::Compute(LayerKind kind, const Strategy& s, int samples, double* forward_s,
                        double* backward_s) const {
  if (MeasuredCompute(kind, s.tp, samples, forward_s, backward_s)) return;
  const ModelDims& m = problem_.model;
  const RuntimeTraits& rt = problem_.runtime;
  const int dt = problem_.precision.activation_bytes;
  const double seq = problem_.seq_len;
  const double h = m.hidden, f = m.ffn_hidden, v = m.vocab, d = HeadDim(m);
  const bool ulysses = s.mode == ParallelMode::kUlysses;
  // Megatron TP splits the weights and keeps all tokens; Ulysses keeps the weights and splits tokens.
  const double tokens = samples * seq / (ulysses ? s.tp : 1);
  const double w = ulysses ? 1.0 : s.tp;  // weight split
  const double outside = (s.tp > 1 && s.mode != ParallelMode::kTensor) ? s.tp : 1;  // seq split
  double fwd = 0, bwd = 0;
  // One linear layer: its GEMM forward and the two gradient GEMMs backward, at the shape the
  // runtime issues (the GEMM table is read per shape).
  auto gemm = [&](double rows, double cols, double inner) {
    fwd += hw_.GemmTime(rows, cols, inner, dt);
    bwd += hw_.GemmBackwardTime(rows, cols, inner, dt);
  };
  // Element-wise kernels: their bytes over the memory bandwidth, at least a launch each.
  auto elementwise = [&](double bytes, int kernels, double* out) {
    *out += std::max(hw_.MemoryTime(bytes), hw_.LaunchTime(kernels));
  };
  switch (kind) {
    case LayerKind::kBlock: {
      // Local heads: h / t query heads; key/value heads split over t or replicated when t exceeds
      // them (KvHeadsOverTp: each rank keeps one); Ulysses projects all heads of its sequence shard.
      const double q_cols = ulysses ? h : h / w;
      const double kv_cols = ulysses ? KvWidth(m) : KvHeadsOverTp(m, s.tp) * d / w;
      if (rt.fused_qkv) {
        gemm(tokens, q_cols + 2 * kv_cols, h);
      } else {
        gemm(tokens, q_cols, h);
        gemm(tokens, kv_cols, h);
        gemm(tokens, kv_cols, h);
      }
      gemm(tokens, h, q_cols);                 // output projection
      const double f_cols = f / w;
      if (m.swiglu && rt.fused_gate_up) {
        gemm(tokens, 2 * f_cols, h);
      } else {
        for (int i = 0; i < (m.swiglu ? 2 : 1); ++i) gemm(tokens, f_cols, h);
      }
      gemm(tokens, h, f_cols);                 // down
      // Causal attention on the local heads over the whole sequence.
      double af = 0, ab = 0;
      hw_.AttentionTimes(static_cast<double>(samples) * m.num_heads / s.tp, seq, d, &af, &ab);
      fwd += af;
      bwd += ab;
      // Element-wise: norms and residuals on the (possibly sequence-split) stream, RoPE on Q/K,
      // the activation function on the MLP width. Kernels (runtime/engine/layers.cc): forward 2
      // norms, 2 residual adds, the activation (+ 2 RoPE); backward 2 norms, the activation
      // (+ 2 RoPE).
      const double elem = samples * seq * dt *
                          (10.0 * h / outside + 4.0 * (h + 2 * KvWidth(m)) / s.tp +
                           (m.swiglu ? 3.0 : 2.0) * f / s.tp);
      elementwise(elem, 5 + (m.rope ? 2 : 0), &fwd);
      elementwise(2.0 * elem, 3 + (m.rope ? 2 : 0), &bwd);
      break;
    }
    case LayerKind::kEmbedding: {
      // Row gather (and masking for vocab-parallel), position add; backward scatter-adds in fp32.
      const double t = samples * seq * h / (ulysses ? s.tp : 1);
      elementwise(t * dt * 3, 1, &fwd);
      elementwise(t * (dt + 8), 1, &bwd);
      break;
    }
    case LayerKind::kHead: {
      const double vocab_local = std::ceil(v / w);
      gemm(tokens, vocab_local, h);            // LM head (vocab-parallel)
      // Final norm, then cross-entropy over fp32 logits (max, exp-sum, gradient): ~4 passes.
      const double logits = tokens * vocab_local;
      elementwise(samples * seq * h * dt * 3 / outside + logits * 4.0 * 4, 4, &fwd);
      elementwise(samples * seq * h * dt * 4 / outside + logits * dt * 2, 2, &bwd);
      break;
    }
  }
  *forward_s = fwd;
  *backward_s = bwd;
}

void CostModel::AddDataParallel(LayerKind kind, const Strategy& s, const StageContext& ctx,
                                int64_t params_on_device, LayerCost* c) const {
  const Precision& pr = problem_.precision;
  const RuntimeTraits& rt = problem_.runtime;
  const int dp = ctx.stage_devices / s.tp;
  // Ulysses replicates weights over its group too, so gradients are reduced over all n devices.
  const int shard_group = s.mode == ParallelMode::kUlysses ? ctx.stage_devices : dp;
  const int stride = s.mode == ParallelMode::kUlysses ? 1 : (s.tp_consecutive ? s.tp : 1);
  const GroupPlacement place = hw_.Placement(shard_group, stride);
  const double grad_bytes = static_cast<double>(params_on_device) * pr.grad_bytes;
  const double weight_bytes = static_cast<double>(params_on_device) * pr.param_bytes;
  auto coll = [&](CollectiveOp op, double bytes) {
    return hw_.CollectiveTime(op, shard_group, place, bytes);
  };
  // Communication x under compute phase t when the runtime overlaps them, else after it: the
  // exposed part (incl. the slowdown of both) and the hidden part.
  auto under = [&](bool overlapped, double t, double x, double* exposed, double* hidden) {
    if (!overlapped) {
      *exposed += x;
      return;
    }
    *exposed += Overlap(t, x) - t;
    *hidden += std::min(t, x);
  };
  const int m = ctx.num_micro_batches;
  double per_mb_exposed = 0, per_mb_hidden_f = 0, per_mb_hidden_b = 0;
  double step_comm = 0, step_hidden = 0;
  if (shard_group > 1) {
    switch (s.dp) {
      case DpMode::kDdp: {
        // One all-reduce per step, under the backward of the last micro-batch (charged against
        // this layer's backward: the next layer down's, for a stack of equal layers).
        under(rt.overlap_grad_reduce, c->compute_backward_s,
              coll(CollectiveOp::kAllReduce, grad_bytes), &step_comm, &step_hidden);
        break;
      }
      case DpMode::kZero1:
      case DpMode::kZero2: {
        const double rs = coll(CollectiveOp::kReduceScatter, grad_bytes);
        if (s.dp == DpMode::kZero1) {
          under(rt.overlap_grad_reduce, c->compute_backward_s, rs, &step_comm, &step_hidden);
        } else {
          // Reduce-scatter after every micro-batch's backward, one layer behind.
          double exposed = 0;
          under(true, c->compute_backward_s, rs, &exposed, &per_mb_hidden_b);
          c->backward_s += exposed;
          per_mb_exposed += exposed;
        }
        // The updated weights are gathered after the optimizer step, or under the next step's
        // forward (once per step: the first micro-batch's).
        under(rt.overlap_param_gather, c->compute_forward_s,
              coll(CollectiveOp::kAllGather, weight_bytes), &step_comm, &step_hidden);
        break;
      }
      case DpMode::kZero3: {
        // Gather weights before forward and again before backward (prefetched one layer ahead);
        // reduce-scatter gradients one layer behind.
        const double ag = coll(CollectiveOp::kAllGather, weight_bytes);
        const double rs = coll(CollectiveOp::kReduceScatter, grad_bytes);
        double ef = 0, eb = 0;
        under(rt.prefetch_zero3, c->compute_forward_s, ag, &ef, &per_mb_hidden_f);
        under(rt.prefetch_zero3, c->compute_backward_s, ag + rs, &eb, &per_mb_hidden_b);
        c->forward_s += ef;
        c->backward_s += eb;
        per_mb_exposed += ef + eb;
        break;
      }
    }
  }
  c->step_sync_s = step_comm;  // the optimizer step's own time is added by Layer (AddStepEnd)
  c->dp_comm_exposed_s = step_comm + m * per_mb_exposed;
  c->dp_comm_hidden_s = step_hidden + m * (per_mb_hidden_f + per_mb_hidden_b);
  (void)kind;
}

void CostModel::AddStepEnd(int64_t updated_params, int updated_vectors, LayerCost* c) const {
  // What Engine::ReduceAndUpdate (runtime/engine/engine.cc) streams through memory once per step,
  // after the gradients are reduced: the global gradient norm reads the updated range's gradients;
  // AdamW reads master, grad, m, v and writes master, m, v and the working copy; then the
  // gradient buffers (grad_bytes, a shard under ZeRO-2/3) are zeroed for the next step.
  const Precision& pr = problem_.precision;
  const double norm_bytes = pr.grad_bytes;
  const double adamw_bytes =
      pr.master_bytes * 2 + pr.grad_bytes + pr.optimizer_bytes * 2 + pr.param_bytes;
  const double per_updated_param = norm_bytes + adamw_bytes;
  // In Cairn's runtime both run tensor by tensor: the norm's two kernels (partial sums, their
  // total) and AdamW's one. A matrix's kernels stream megabytes; a norm weight's or a bias's cost
  // their launches. Multi-tensor kernels (megatron-core) batch them.
  constexpr int kStepKernelsPerTensor = 3;
  const int launches =
      problem_.runtime.per_tensor_step_end ? kStepKernelsPerTensor * updated_vectors : 0;
  c->optimizer_s = hw_.MemoryTime(static_cast<double>(updated_params) * per_updated_param +
                                  static_cast<double>(c->grad_bytes)) +
                   hw_.LaunchTime(launches);
  c->step_sync_s += c->optimizer_s;
}

void CostModel::AddMemory(LayerKind kind, const Strategy& s, int samples, LayerCost* c) const {
  // Activations saved for backward and working buffers; model states are set by the caller.
  const Precision& pr = problem_.precision;
  const ModelDims& m = problem_.model;
  const double dt = pr.activation_bytes;
  const double seq = problem_.seq_len;
  const double h = m.hidden, f = m.ffn_hidden, kv = KvWidth(m), v = m.vocab;
  const double tokens = static_cast<double>(samples) * seq;
  const bool ulysses = s.mode == ParallelMode::kUlysses;
  const double t = s.tp;
  // Tensors on the residual stream are split over t with SP/Ulysses, replicated with plain TP.
  const double outside = (s.tp > 1 && s.mode != ParallelMode::kTensor) ? t : 1.0;
  double saved = 0, working = 0;
  switch (kind) {
    case LayerKind::kBlock: {
      double full_saved =
          tokens * dt * (4.0 * h / outside + (h + 2 * kv) / t + h / t + (m.swiglu ? 3.0 : 2.0) * f / t) +
          tokens * 4.0 * (m.num_heads / t + 2.0 / outside);  // softmax stats + norm rstd (fp32)
      saved = s.recompute ? tokens * dt * h / outside : full_saved;
      // The largest working set of the runtime's block (runtime/engine/layers.cc), in tensors of
      // `tokens` rows: a residual-stream tensor a = h / outside; a projection-layout tensor of
      // width h, ha (all tokens under TP/SP, the sequence shard under Ulysses); the local MLP
      // width ft; SP's gathered full-sequence copies. Backward of the MLP, where it peaks:
      //   down projection:  dy + gathered dy (SP) + d_act
      //   activation:       dy + d_act + d_up (+ d_gate)
      //   up projection(s): dy + gathered input (SP) + d_input (ha) + d_up (+ d_gate)
      // Forward: the down projection's output (ha) and, under SP, its reduce-scatter (ha + a).
      {
        const double sp = (s.tp > 1 && s.mode == ParallelMode::kTensorSequence) ? 1.0 : 0.0;
        const double a = h / outside, ha = ulysses ? h / t : h, ft = f / t;
        const double outputs = m.swiglu ? 2.0 : 1.0;  // d_up (+ d_gate)
        const double backward = std::max({a + sp * h + ft, a + ft + outputs * ft,
                                          a + sp * h + ha + outputs * ft});
        const double forward = ha + sp * (ha + a);
        working = tokens * dt * std::max(backward, forward);
      }
      if (ulysses && s.tp > 1) {
        working += tokens * dt * (h + 2 * kv) / t;
        // The attention output is kept in both layouts: heads over the whole sequence (for
        // attention's backward) and all heads over the sequence shard (the output projection's).
        full_saved += tokens * dt * h / t;
        if (!s.recompute) saved = full_saved;
      }
      if (s.recompute) working += full_saved;
      break;
    }
    case LayerKind::kEmbedding: {
      // Nothing is saved (the token ids are the micro-batch's, counted with the stage). The
      // output is the next layer's input (counted there) or a pipeline send buffer. Forward:
      // vocab-parallel partial sums of the whole sequence; backward: the incoming gradient (and
      // its gathered copy under SP); both with this rank's slice of the token ids (int32).
      saved = 0;
      const double sp = (s.tp > 1 && s.mode == ParallelMode::kTensorSequence) ? 1.0 : 0.0;
      const double forward = s.splits_weights() ? tokens * dt * h : 0.0;
      const double backward = tokens * dt * (h / outside + sp * h);
      working = std::max(forward, backward) + tokens * 4.0 / (ulysses ? t : 1.0);
      break;
    }
    case LayerKind::kHead: {
      // Input and normed input on the stream, gradient of the logits (computed with the loss in
      // the forward pass, stored in the activation dtype).
      const double vocab_local = ulysses ? v : v / t;
      const double tok_local = ulysses ? tokens / t : tokens;
      saved = tokens * dt * 2.0 * h / outside + tok_local * vocab_local * dt;
      // fp32 logits, the gathered input, this rank's target ids (int32) and the cross-entropy
      // statistics (max, sums, losses: 4 fp32 per token).
      working = tok_local * vocab_local * 4.0 + tokens * dt * h + tok_local * (4.0 + 16.0);
      break;
    }
  }
  c->activation_bytes = static_cast<int64_t>(saved);
  c->transient_bytes = static_cast<int64_t>(working);
}

LayerCost CostModel::Layer(LayerKind kind, const Strategy& s, const StageContext& ctx) const {
  LayerCost c;
  const std::string why = plan::CheckLayer(
      problem_.model, kind, s,
      plan::StageShape{ctx.stage_devices, ctx.micro_batch, problem_.seq_len});
  if (!why.empty()) {
    c.valid = false;
    c.invalid_reason = why;
    return c;
  }
  if (std::string runtime_why =
          CheckRuntimeSupportsLayer(problem_.runtime, problem_.model, kind, s);
      !runtime_why.empty()) {
    c.valid = false;
    c.invalid_reason = runtime_why;
    return c;
  }
  const ModelDims& m = problem_.model;
  const Precision& pr = problem_.precision;
  const int dp = ctx.stage_devices / s.tp;
  const int samples = ctx.micro_batch / dp;  // per data-parallel rank
  const bool ulysses = s.mode == ParallelMode::kUlysses;
  const int weight_split = ulysses ? 1 : s.tp;

  // Parameters on one device (before ZeRO sharding).
  LayerParams params;
  switch (kind) {
    case LayerKind::kBlock: params = BlockParams(m, weight_split); break;
    case LayerKind::kEmbedding: params = EmbeddingParams(m); break;
    case LayerKind::kHead:
      params = HeadParams(m, !m.tied_embeddings || ctx.pipeline_degree > 1);
      break;
  }
  const int64_t on_device = params.PerDevice(weight_split);

  // Compute.
  Compute(kind, s, samples, &c.compute_forward_s, &c.compute_backward_s);
  if (s.recompute && kind == LayerKind::kBlock) c.compute_backward_s += c.compute_forward_s;

  // Model-parallel collectives, bytes as nccl-tests counts them.
  if (s.tp > 1) {
    const GroupPlacement spans = hw_.Placement(s.tp, s.tp_consecutive ? 1 : dp);
    const double act = static_cast<double>(samples) * problem_.seq_len * m.hidden *
                       pr.activation_bytes;  // full micro-batch activation of one DP rank
    auto coll = [&](CollectiveOp op, double bytes) {
      return hw_.CollectiveTime(op, s.tp, spans, bytes);
    };
    const double ar = coll(CollectiveOp::kAllReduce, act);
    const double ag = coll(CollectiveOp::kAllGather, act);
    const double rs = coll(CollectiveOp::kReduceScatter, act);
    switch (kind) {
      case LayerKind::kBlock:
        if (s.mode == ParallelMode::kTensor) {
          c.tp_comm_forward_s = 2 * ar;
          c.tp_comm_backward_s = 2 * ar;
        } else if (s.mode == ParallelMode::kTensorSequence) {
          c.tp_comm_forward_s = 2 * ag + 2 * rs;
          // Gradient of the row-parallel output, re-gather of the input for the weight gradient,
          // reduce-scatter of the input gradient; for attention and for the MLP.
          c.tp_comm_backward_s = 4 * ag + 2 * rs;
        } else {
          const double qkv = act * (m.hidden + 2.0 * KvWidth(m)) / m.hidden / s.tp;
          const double out = act / s.tp;
          c.tp_comm_forward_s = coll(CollectiveOp::kAllToAll, qkv) + coll(CollectiveOp::kAllToAll, out);
          c.tp_comm_backward_s = c.tp_comm_forward_s;
        }
        if (s.recompute) c.tp_comm_backward_s += c.tp_comm_forward_s;
        break;
      case LayerKind::kEmbedding:
        if (s.mode == ParallelMode::kTensor) {
          c.tp_comm_forward_s = ar;
        } else if (s.mode == ParallelMode::kTensorSequence) {
          c.tp_comm_forward_s = rs;
          c.tp_comm_backward_s = ag;
        }
        break;
      case LayerKind::kHead: {
        // Vocab-parallel cross-entropy: all-reduce of max, sum-exp and target logit per token.
        const double stats = coll(CollectiveOp::kAllReduce,
                                  3.0 * samples * problem_.seq_len * 4.0);
        if (s.mode == ParallelMode::kTensor) {
          c.tp_comm_forward_s = stats;
          c.tp_comm_backward_s = ar;
        } else if (s.mode == ParallelMode::kTensorSequence) {
          c.tp_comm_forward_s = ag + stats;
          c.tp_comm_backward_s = rs;
        }
        break;
      }
    }
  }
  // The share the runtime hides under its GEMMs (RuntimeTraits::tp_comm_hidden).
  const double tp_exposed = 1.0 - std::clamp(problem_.runtime.tp_comm_hidden, 0.0, 1.0);
  c.tp_comm_hidden_s =
      (1.0 - tp_exposed) * (c.tp_comm_forward_s + c.tp_comm_backward_s) * ctx.num_micro_batches;
  c.tp_comm_forward_s *= tp_exposed;
  c.tp_comm_backward_s *= tp_exposed;
  c.forward_s = c.compute_forward_s + c.tp_comm_forward_s;
  c.backward_s = c.compute_backward_s + c.tp_comm_backward_s;

  // Tied embedding split across first and last stage: the two copies' gradients are summed.
  AddDataParallel(kind, s, ctx, on_device, &c);
  if (kind == LayerKind::kHead && m.tied_embeddings && ctx.pipeline_degree > 1) {
    const double bytes = static_cast<double>(on_device) * pr.grad_bytes;
    const double sum_s = hw_.CollectiveTime(CollectiveOp::kAllReduce, 2, true, bytes);
    c.step_sync_s += sum_s;
    c.dp_comm_exposed_s += sum_s;  // the breakdown's exposed gradient synchronisation
  }

  // Memory: model states per ZeRO level.
  const int shard_group = ulysses ? ctx.stage_devices : dp;
  const int64_t shard = CeilDiv(on_device, shard_group);
  const int64_t states_per_param = pr.master_bytes + pr.optimizer_bytes;
  // ZeRO-1 shards optimizer states (master + Adam), ZeRO-2 also gradients, ZeRO-3 also weights.
  const DpMode held = shard_group > 1 ? s.dp : DpMode::kDdp;
  c.param_bytes = (held == DpMode::kZero3 ? shard : on_device) * pr.param_bytes;
  c.grad_bytes =
      (held == DpMode::kZero2 || held == DpMode::kZero3 ? shard : on_device) * pr.grad_bytes;
  c.optimizer_bytes = (held == DpMode::kDdp ? on_device : shard) * states_per_param;
  AddMemory(kind, s, samples, &c);
  AddStepEnd(held == DpMode::kDdp ? on_device : shard,
             held == DpMode::kDdp ? params.vectors : CeilDiv(params.vectors, shard_group), &c);
  // The step end's sums over TP ranks (Engine::ReduceAndUpdate, before the gradient norm): one
  // all-reduce per tensor, each over the rank's updated range (under ZeRO a 1/shard_group part
  // of the layer's tensors and elements).
  if (!ulysses && s.tp > 1) {
    const TpGradientSums sums =
        TpSummedGradients(m, kind, s.tp, s.mode == ParallelMode::kTensorSequence);
    const int part = held == DpMode::kDdp ? 1 : shard_group;
    auto all_reduces = [&](int group, int tensors, int64_t elements) {
      if (tensors == 0) return 0.0;
      const int calls = problem_.runtime.per_tensor_step_end ? CeilDiv(tensors, part) : 1;
      const double bytes = static_cast<double>(elements) / part * pr.grad_bytes;
      const GroupPlacement spans = hw_.Placement(group, s.tp_consecutive ? 1 : dp);
      return calls * hw_.CollectiveTime(CollectiveOp::kAllReduce, group, spans, bytes / calls);
    };
    c.tp_grad_sum_s = all_reduces(s.tp, sums.partial_tensors, sums.partial_elements) +
                      all_reduces(sums.kv_group, sums.kv_tensors, sums.kv_elements);
    c.step_sync_s += c.tp_grad_sum_s;
  }
  // What the runtime's overlapped data parallelism holds (runtime/engine, docs/cost-model.md
  // "Memory").
  c.own_transient_bytes = c.transient_bytes;
  if (shard_group > 1) {
    const int64_t full_grad = on_device * pr.grad_bytes, shard_grad = shard * pr.grad_bytes;
    switch (s.dp) {
      case DpMode::kDdp:
        break;
      case DpMode::kZero1:
        c.step_shard_bytes = shard_grad;
        break;
      case DpMode::kZero2:
        // This micro-batch's unsharded gradient; reduce-scattered one layer later.
        c.own_transient_bytes += full_grad;
        c.reduce_bytes = full_grad + shard_grad;
        break;
      case DpMode::kZero3:
        // As ZeRO-2, plus its gathered weights (gathered for forward and again for backward).
        c.own_transient_bytes += on_device * pr.param_bytes + full_grad;
        c.gathered_bytes = on_device * pr.param_bytes;
        c.reduce_bytes = full_grad + shard_grad;
        break;
    }
  }
  // The bound: the neighbours' share counted at this layer's size.
  c.transient_bytes = c.own_transient_bytes + c.gathered_bytes + c.reduce_bytes;
  return c;
}

int CostModel::RelocationStride(const Layout& from, const Layout& to, int group) {
  // Who holds the pieces (runtime/engine/engine.cc, Relocate): local rank r of layout `from`
  // holds row block r / from.tp and, when the sequence is sharded, sequence piece r % from.tp.
  // A device collects row_blocks blocks of rows, each in group / row_blocks sequence pieces.
  const int row_blocks = std::max(1, from.dp / std::max(1, to.dp));
  const int seq_pieces = std::max(1, group / row_blocks);
  // Pieces of one row block only: consecutive ranks of one from.tp group. Whole from.tp groups
  // of consecutive row blocks: consecutive ranks too.
  if (row_blocks == 1) return 1;
  if (from.seq_sharded && seq_pieces >= from.tp) return 1;
  // Row blocks held by every from.tp-th rank (one piece each, or some of each group's pieces).
  return std::max(1, from.tp);
}

TransitionCost CostModel::Transition(const Layout& from, const Layout& to,
                                     const StageContext& ctx) const {
  TransitionCost tc;
  if (from == to) return tc;
  const double act = static_cast<double>(ctx.micro_batch) * problem_.seq_len *
                     problem_.model.hidden * problem_.precision.activation_bytes;
  // The runtime relocates what a device needs in `b` and does not hold in `a` (a slice of what it
  // holds is free), charged as an all-gather over the ranks it collects pieces from.
  auto gather = [&](const Layout& a, const Layout& b) -> double {
    const int group = plan::RelocationGroupSize(a, b);
    if (group == 1) return 0.0;
    const double need = (1.0 / b.dp) * (b.seq_sharded ? 1.0 / b.tp : 1.0);
    return hw_.CollectiveTime(CollectiveOp::kAllGather, group,
                              hw_.Placement(group, RelocationStride(a, b, group)), need * act);
  };
  tc.forward_s = gather(from, to);
  tc.backward_s = gather(to, from);
  return tc;
}

int64_t CostModel::PipelineHopBytes(const StageContext& ctx) const {
  const Layout l = BoundaryLayout(ctx);
  const double act = static_cast<double>(ctx.micro_batch) * problem_.seq_len *
                     problem_.model.hidden * problem_.precision.activation_bytes;
  return static_cast<int64_t>(act / l.dp / (l.seq_sharded ? l.tp : 1));
}

double CostModel::PipelineHop(const StageContext& ctx) const {
  if (ctx.pipeline_degree <= 1 || ctx.stage_index >= ctx.pipeline_degree - 1) return 0;
  return PipelineHop(ctx, ctx.stage_index, ctx.stage_index + 1);
}

double CostModel::PipelineHop(const StageContext& ctx, int from, int to) const {
  if (ctx.pipeline_degree <= 1 || from == to) return 0;
  const int n = ctx.stage_devices;
  const int g = hw_.hardware().devices_per_node;
  // Device r of one stage talks to device r of the other: same node only if both stages share one.
  const bool spans = (from * n) / g != (to * n) / g || n >= g;
  return hw_.CollectiveTime(CollectiveOp::kSendRecv, 2, spans,
                            static_cast<double>(PipelineHopBytes(ctx)));
}

}  // namespace cairn::planner
