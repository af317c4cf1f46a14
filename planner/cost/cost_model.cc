#include "planner/cost/cost_model.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <vector>

#include "absl/strings/str_cat.h"
#include "planner/cost/model_math.h"

namespace cairn::planner {
namespace {

bool IsPowerOfTwo(int x) { return x > 0 && (x & (x - 1)) == 0; }

int64_t CeilDiv(int64_t a, int64_t b) { return (a + b - 1) / b; }

}  // namespace

CostModel::CostModel(const SearchProblem& problem) : problem_(problem), hw_(problem.hardware) {}

double CostModel::Overlap(double compute_s, double comm_s) const {
  const double gamma = hw_.hardware().overlap_slowdown;
  return std::max(compute_s, comm_s) + (gamma - 1.0) * std::min(compute_s, comm_s);
}

Layout CostModel::LayoutOf(const Strategy& s, int stage_devices) {
  Layout l;
  l.tp = s.tp;
  l.dp = stage_devices / s.tp;
  l.seq_sharded = s.tp > 1 && s.mode != ParallelMode::kTensor;
  return l;
}

Layout CostModel::BoundaryLayout(const StageContext& ctx) const {
  Layout l;
  l.dp = std::gcd(ctx.stage_devices, ctx.micro_batch);
  l.tp = ctx.stage_devices / l.dp;
  l.seq_sharded = l.tp > 1 && problem_.seq_len % l.tp == 0;
  return l;
}

std::string CostModel::CheckStrategy(LayerKind kind, const Strategy& s,
                                     const StageContext& ctx) const {
  const ModelDims& m = problem_.model;
  if (s.tp < 1 || !IsPowerOfTwo(s.tp)) return absl::StrCat("degree ", s.tp, " is not a power of 2");
  // A stage of no devices (a device count that overflowed int) would divide by zero below.
  if (ctx.stage_devices < 1) return absl::StrCat("the stage has ", ctx.stage_devices, " devices");
  if (ctx.stage_devices % s.tp != 0) {
    return absl::StrCat("degree ", s.tp, " does not divide the ", ctx.stage_devices,
                        " devices of the stage");
  }
  const int dp = ctx.stage_devices / s.tp;
  if (ctx.micro_batch % dp != 0) {
    return absl::StrCat("micro-batch of ", ctx.micro_batch, " samples does not split over ", dp,
                        " data-parallel ranks");
  }
  if (s.tp == 1) return "";
  if (s.mode != ParallelMode::kTensor && problem_.seq_len % s.tp != 0) {
    return absl::StrCat("sequence length ", problem_.seq_len, " does not split over ", s.tp);
  }
  if (kind == LayerKind::kBlock) {
    if (m.num_heads % s.tp != 0) {
      return absl::StrCat(m.num_heads, " heads do not split over ", s.tp);
    }
    if (m.num_kv_heads % s.tp != 0 && s.tp % m.num_kv_heads != 0) {
      return absl::StrCat(m.num_kv_heads, " key/value heads do not split over ", s.tp);
    }
  }
  return "";
}

bool CostModel::MeasuredCompute(LayerKind kind, int tp, int samples, double* forward_s,
                                double* backward_s) const {
  // Points of this kind and sequence length; the closest measured degree (scaled by degree ratio,
  // Galvatron's assumption that work divides evenly) when `tp` itself was not measured.
  std::vector<const LayerTimingPoint*> pts;
  int best_tp = 0;
  for (const LayerTimingPoint& p : problem_.measured) {
    if (p.kind != kind || p.seq_len != problem_.seq_len) continue;
    if (best_tp == 0 || std::abs(std::log2(p.tp_degree) - std::log2(tp)) <
                            std::abs(std::log2(best_tp) - std::log2(tp))) {
      best_tp = p.tp_degree;
    }
  }
  if (best_tp == 0) return false;
  for (const LayerTimingPoint& p : problem_.measured) {
    if (p.kind == kind && p.seq_len == problem_.seq_len && p.tp_degree == best_tp) pts.push_back(&p);
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
  const double dt = problem_.precision.activation_bytes;
  const double seq = problem_.seq_len;
  const double h = m.hidden, f = m.ffn_hidden, kv = KvWidth(m), v = m.vocab;
  const bool ulysses = s.mode == ParallelMode::kUlysses;
  // Megatron TP splits the weights and keeps all tokens; Ulysses keeps the weights and splits tokens.
  const double tokens = samples * seq / (ulysses ? s.tp : 1);
  const double w = ulysses ? 1.0 : s.tp;  // weight split
  const double outside = (s.tp > 1 && s.mode != ParallelMode::kTensor) ? s.tp : 1;  // seq split
  double fwd = 0, bwd = 0;
  auto gemm = [&](double m_rows, double n_cols, double k) {
    const double t = hw_.GemmTime(2.0 * m_rows * n_cols * k);
    fwd += t;
    bwd += 2.0 * t;  // data gradient + weight gradient, same shapes
  };
  switch (kind) {
    case LayerKind::kBlock: {
      gemm(tokens, (h + 2 * kv) / w, h);     // QKV
      gemm(tokens, h, h / w);                // output projection
      gemm(tokens, (m.swiglu ? 2 : 1) * f / w, h);  // up (+ gate)
      gemm(tokens, h, f / w);                // down
      // Causal attention on the local heads: QK^T and PV, half the square.
      const double attn = 2.0 * samples * seq * seq * h / s.tp;
      const double ta = hw_.AttentionTime(attn);
      fwd += ta;
      bwd += 2.5 * ta;  // flash backward recomputes P
      // Element-wise: norms and residuals on the (possibly sequence-split) stream, RoPE on Q/K,
      // the activation function on the MLP width.
      const double elem = samples * seq * dt *
                          (10.0 * h / outside + 4.0 * (h + 2 * kv) / s.tp +
                           (m.swiglu ? 3.0 : 2.0) * f / s.tp);
      fwd += hw_.MemoryTime(elem);
      bwd += 2.0 * hw_.MemoryTime(elem);
      break;
    }
    case LayerKind::kEmbedding: {
      // Row gather (and masking for vocab-parallel), position add; backward scatter-adds in fp32.
      const double t = samples * seq * h / (ulysses ? s.tp : 1);
      fwd += hw_.MemoryTime(t * dt * 3);
      bwd += hw_.MemoryTime(t * (dt + 8));
      break;
    }
    case LayerKind::kHead: {
      gemm(tokens, v / w, h);                // LM head (vocab-parallel)
      // Final norm, then cross-entropy over fp32 logits (max, exp-sum, gradient): ~4 passes.
      const double logits = tokens * (v / w);
      fwd += hw_.MemoryTime(samples * seq * h * dt * 3 / outside + logits * 4.0 * 4);
      bwd += hw_.MemoryTime(samples * seq * h * dt * 4 / outside + logits * dt * 2);
      break;
    }
  }
  *forward_s = fwd;
  *backward_s = bwd;
}

void CostModel::AddDataParallel(LayerKind kind, const Strategy& s, const StageContext& ctx,
                                int64_t params_on_device, LayerCost* c) const {
  const Precision& pr = problem_.precision;
  const int dp = ctx.stage_devices / s.tp;
  // Ulysses replicates weights over its group too, so gradients are reduced over all n devices.
  const int shard_group = s.mode == ParallelMode::kUlysses ? ctx.stage_devices : dp;
  const int stride = s.mode == ParallelMode::kUlysses ? 1 : (s.tp_consecutive ? s.tp : 1);
  const bool spans = hw_.SpansNodes(shard_group, stride);
  const double grad_bytes = static_cast<double>(params_on_device) * pr.grad_bytes;
  const double weight_bytes = static_cast<double>(params_on_device) * pr.param_bytes;
  auto coll = [&](CollectiveOp op, double bytes) {
    return hw_.CollectiveTime(op, shard_group, spans, bytes);
  };
  const int m = ctx.num_micro_batches;
  double exposed_per_micro_batch = 0;
  double step_comm = 0;
  if (shard_group > 1) {
    switch (s.dp) {
      case DpMode::kDdp: {
        // One all-reduce per step, overlapped with the last micro-batch's backward.
        const double ar = coll(CollectiveOp::kAllReduce, grad_bytes);
        step_comm = Overlap(c->compute_backward_s, ar) - c->compute_backward_s;
        break;
      }
      case DpMode::kZero1: {
        const double rs = coll(CollectiveOp::kReduceScatter, grad_bytes);
        const double ag = coll(CollectiveOp::kAllGather, weight_bytes);
        step_comm = Overlap(c->compute_backward_s, rs) - c->compute_backward_s + ag;
        break;
      }
      case DpMode::kZero2: {
        // Reduce-scatter after every micro-batch's backward; gather updated weights after the step.
        const double rs = coll(CollectiveOp::kReduceScatter, grad_bytes);
        const double b = Overlap(c->compute_backward_s, rs);
        exposed_per_micro_batch = b - c->compute_backward_s;
        c->backward_s += exposed_per_micro_batch;
        step_comm = coll(CollectiveOp::kAllGather, weight_bytes);
        break;
      }
      case DpMode::kZero3: {
        // Gather weights before forward and again before backward; reduce-scatter gradients.
        const double ag = coll(CollectiveOp::kAllGather, weight_bytes);
        const double rs = coll(CollectiveOp::kReduceScatter, grad_bytes);
        const double f = Overlap(c->compute_forward_s, ag);
        const double b = Overlap(c->compute_backward_s, ag + rs);
        exposed_per_micro_batch = (f - c->compute_forward_s) + (b - c->compute_backward_s);
        c->forward_s += f - c->compute_forward_s;
        c->backward_s += b - c->compute_backward_s;
        break;
      }
    }
  }
  // AdamW on the local shard: read master, grad, m, v; write master, m, v; write working copy.
  const int64_t updated =
      (s.dp == DpMode::kDdp || shard_group == 1) ? params_on_device
                                                 : CeilDiv(params_on_device, shard_group);
  const double bytes_per_param =
      pr.master_bytes * 2 + pr.grad_bytes + pr.optimizer_bytes * 2 + pr.param_bytes;
  c->optimizer_s = hw_.MemoryTime(static_cast<double>(updated) * bytes_per_param);
  c->step_sync_s = step_comm + c->optimizer_s;
  c->dp_comm_exposed_s = step_comm + m * exposed_per_micro_batch;
  (void)kind;
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
      const double full_saved =
          tokens * dt * (4.0 * h / outside + (h + 2 * kv) / t + h / t + (m.swiglu ? 3.0 : 2.0) * f / t) +
          tokens * 4.0 * (m.num_heads / t + 2.0 / outside);  // softmax stats + norm rstd (fp32)
      saved = s.recompute ? tokens * dt * h / outside : full_saved;
      working = tokens * dt * (2.0 * h / outside + (m.swiglu ? 2.0 : 1.0) * f / t);
      if (s.tp > 1 && s.mode == ParallelMode::kTensorSequence) working += tokens * dt * h;
      if (ulysses && s.tp > 1) working += tokens * dt * (h + 2 * kv) / t;
      if (s.recompute) working += full_saved;
      break;
    }
    case LayerKind::kEmbedding: {
      // Token ids only are saved. The output is the next layer's input (counted there) or a
      // pipeline send buffer; vocab-parallel adds the partial sums of the whole sequence.
      saved = 0;
      if (s.tp > 1 && s.mode != ParallelMode::kUlysses) working = tokens * dt * h;
      break;
    }
    case LayerKind::kHead: {
      // Input and normed input on the stream, gradient of the logits (computed with the loss in
      // the forward pass, stored in the activation dtype).
      const double vocab_local = ulysses ? v : v / t;
      const double tok_local = ulysses ? tokens / t : tokens;
      saved = tokens * dt * 2.0 * h / outside + tok_local * vocab_local * dt;
      working = tok_local * vocab_local * 4.0 + tokens * dt * h;  // fp32 logits + gathered input
      break;
    }
  }
  c->activation_bytes = static_cast<int64_t>(saved);
  c->transient_bytes = static_cast<int64_t>(working);
}

LayerCost CostModel::Layer(LayerKind kind, const Strategy& s, const StageContext& ctx) const {
  LayerCost c;
  const std::string why = CheckStrategy(kind, s, ctx);
  if (!why.empty()) {
    c.valid = false;
    c.invalid_reason = why;
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
    case LayerKind::kBlock: params = BlockParams(m); break;
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
    const bool spans = hw_.SpansNodes(s.tp, s.tp_consecutive ? 1 : dp);
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
  c.forward_s = c.compute_forward_s + c.tp_comm_forward_s;
  c.backward_s = c.compute_backward_s + c.tp_comm_backward_s;

  // Tied embedding split across first and last stage: the two copies' gradients are summed.
  AddDataParallel(kind, s, ctx, on_device, &c);
  if (kind == LayerKind::kHead && m.tied_embeddings && ctx.pipeline_degree > 1) {
    const double bytes = static_cast<double>(on_device) * pr.grad_bytes;
    c.step_sync_s += hw_.CollectiveTime(CollectiveOp::kAllReduce, 2, true, bytes);
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
  if (shard_group > 1 && s.dp == DpMode::kZero2) c.transient_bytes += on_device * pr.grad_bytes;
  if (shard_group > 1 && s.dp == DpMode::kZero3) {
    // Gathered weights of this layer (gathered again for backward, one copy at a time: the
    // runtime does not prefetch the next layer yet), plus the unsharded gradient.
    c.transient_bytes += on_device * pr.param_bytes + on_device * pr.grad_bytes;
  }
  return c;
}

TransitionCost CostModel::Transition(const Layout& from, const Layout& to,
                                     const StageContext& ctx) const {
  TransitionCost tc;
  if (from == to) return tc;
  const double act = static_cast<double>(ctx.micro_batch) * problem_.seq_len *
                     problem_.model.hidden * problem_.precision.activation_bytes;
  // Fraction of the micro-batch a device needs in `b` that it does not hold in `a`: devices are
  // tp-innermost and splits are nested, so it is enough to compare rank 0's slices.
  auto gather = [&](const Layout& a, const Layout& b) -> double {
    const double a_batch = 1.0 / a.dp, b_batch = 1.0 / b.dp;
    const double a_seq = a.seq_sharded ? 1.0 / a.tp : 1.0;
    const double b_seq = b.seq_sharded ? 1.0 / b.tp : 1.0;
    const double need = b_batch * b_seq;
    const double have = std::min(a_batch, b_batch) * std::min(a_seq, b_seq);
    const double ratio = need / have;
    if (ratio < 1.0 + 1e-9) return 0.0;  // a slice of what is held
    const int group = static_cast<int>(std::lround(ratio));
    const bool spans = hw_.SpansNodes(group, std::min(a.tp, b.tp));
    return hw_.CollectiveTime(CollectiveOp::kAllGather, group, spans, need * act);
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
  const int n = ctx.stage_devices;
  const int g = hw_.hardware().devices_per_node;
  // Device r of stage i talks to device r of stage i+1: same node only if both stages share one.
  const bool spans = (ctx.stage_index * n) / g != ((ctx.stage_index + 1) * n) / g || n >= g;
  return hw_.CollectiveTime(CollectiveOp::kSendRecv, 2, spans,
                            static_cast<double>(PipelineHopBytes(ctx)));
}

}  // namespace cairn::planner
