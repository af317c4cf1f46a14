#include "runtime/engine/layers.h"

#include <algorithm>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "common/logging.h"
#include "common/status_macros.h"

namespace cairn::runtime {

using planner::LayerKind;
using planner::ParallelMode;

namespace {

// Copies `src` into a new tracked buffer.
Buffer Copy(MemoryTracker* mem, const float* src, int64_t n) {
  Buffer b(mem, n);
  std::memcpy(b.data(), src, n * sizeof(float));
  return b;
}

}  // namespace

LayerRunner::LayerRunner(const planner::ModelDims& model, const LayerPlace& place,
                         const LayerParams& params, int seq_len, int micro_batch,
                         ComputeBackend* backend, LayerComms comms, MemoryTracker* memory,
                         float loss_scale)
    : m_(model),
      place_(place),
      params_(params),
      seq_(seq_len),
      micro_batch_(micro_batch),
      be_(backend),
      comms_(comms),
      memory_(memory),
      loss_scale_(loss_scale) {
  ulysses_ = place.tp > 1 && place.strategy.mode == ParallelMode::kUlysses;
  sp_ = place.tp > 1 && place.strategy.mode == ParallelMode::kTensorSequence;
  tp_ = place.tp > 1 && !ulysses_;
  b_ = micro_batch / place.dp;
  s_loc_ = place.layout.seq_sharded ? seq_len / place.tp : seq_len;
}

int64_t LayerRunner::ActivationCount() const { return b_ * s_loc_ * m_.hidden; }

const float* LayerRunner::P(const float* w, const char* name) const {
  return params_.has(name) ? w + params_.tensor(name).offset : nullptr;
}
float* LayerRunner::G(float* g, const char* name) const {
  return params_.has(name) ? g + params_.tensor(name).offset : nullptr;
}

void LayerRunner::SliceTokens(const std::vector<int32_t>& all, std::vector<int32_t>* out) const {
  // This rank's batch rows; the sequence slice for sequence-sharded layouts not split by vocab.
  const int64_t s0 = place_.layout.seq_sharded && !tp_ ? place_.tp_rank * s_loc_ : 0;
  const int64_t sl = place_.layout.seq_sharded && !tp_ ? s_loc_ : seq_;
  out->resize(b_ * sl);
  for (int64_t b = 0; b < b_; ++b) {
    const int64_t row = place_.dp_rank * b_ + b;
    std::copy(all.begin() + row * seq_ + s0, all.begin() + row * seq_ + s0 + sl,
              out->begin() + b * sl);
  }
}

// ---- Sequence-parallel and Ulysses data movement ---------------------------------------------

absl::Status LayerRunner::GatherSeq(const float* shard, int64_t width, Buffer* full) {
  const int t = place_.tp;
  const int64_t sl = seq_ / t;
  Buffer chunks = New(t * b_ * sl * width);
  CAIRN_RETURN_IF_ERROR(comms_.tp->AllGather(shard, chunks.data(), b_ * sl * width));
  *full = New(b_ * seq_ * width);
  for (int r = 0; r < t; ++r) {
    for (int64_t b = 0; b < b_; ++b) {
      std::memcpy(full->data() + (b * seq_ + r * sl) * width,
                  chunks.data() + ((r * b_ + b) * sl) * width, sl * width * sizeof(float));
    }
  }
  return absl::OkStatus();
}

absl::Status LayerRunner::ReduceScatterSeq(const float* full, int64_t width, Buffer* shard) {
  const int t = place_.tp;
  const int64_t sl = seq_ / t;
  Buffer chunks = New(t * b_ * sl * width);
  for (int r = 0; r < t; ++r) {
    for (int64_t b = 0; b < b_; ++b) {
      std::memcpy(chunks.data() + ((r * b_ + b) * sl) * width, full + (b * seq_ + r * sl) * width,
                  sl * width * sizeof(float));
    }
  }
  *shard = New(b_ * sl * width);
  return comms_.tp->ReduceScatter(chunks.data(), shard->data(), b_ * sl * width);
}

std::pair<int64_t, int64_t> LayerRunner::UlyssesHeads(int j, bool kv) const {
  const int64_t H = m_.num_heads, per = H / place_.tp;
  const int64_t qb = j * per, qe = qb + per;
  if (!kv) return {qb, qe};
  const int64_t group = H / m_.num_kv_heads;
  return {qb / group, (qe - 1) / group + 1};
}

absl::Status LayerRunner::HeadsToSeq(const float* in, int64_t heads, bool kv, Buffer* out) {
  const int u = place_.tp;
  const int64_t D = m_.hidden / m_.num_heads;
  const int64_t hc = UlyssesHeads(0, kv).second - UlyssesHeads(0, kv).first;
  const int64_t chunk = b_ * s_loc_ * hc * D;
  Buffer send = New(u * chunk), recv = New(u * chunk);
  for (int j = 0; j < u; ++j) {
    const int64_t h0 = UlyssesHeads(j, kv).first;
    for (int64_t bt = 0; bt < b_ * s_loc_; ++bt) {
      std::memcpy(send.data() + j * chunk + bt * hc * D, in + (bt * heads + h0) * D,
                  hc * D * sizeof(float));
    }
  }
  CAIRN_RETURN_IF_ERROR(comms_.tp->AllToAll(send.data(), recv.data(), chunk));
  // Chunk i holds sequence block i of my heads.
  *out = New(b_ * seq_ * hc * D);
  for (int i = 0; i < u; ++i) {
    for (int64_t b = 0; b < b_; ++b) {
      std::memcpy(out->data() + ((b * seq_ + i * s_loc_) * hc) * D,
                  recv.data() + i * chunk + (b * s_loc_ * hc) * D, s_loc_ * hc * D * sizeof(float));
    }
  }
  return absl::OkStatus();
}

absl::Status LayerRunner::SeqToHeads(const float* in, int64_t heads, bool kv, Buffer* out) {
  const int u = place_.tp;
  const int64_t D = m_.hidden / m_.num_heads;
  const int64_t hc = UlyssesHeads(0, kv).second - UlyssesHeads(0, kv).first;
  const int64_t chunk = b_ * s_loc_ * hc * D;
  Buffer send = New(u * chunk), recv = New(u * chunk);
  for (int i = 0; i < u; ++i) {
    for (int64_t b = 0; b < b_; ++b) {
      std::memcpy(send.data() + i * chunk + (b * s_loc_ * hc) * D,
                  in + ((b * seq_ + i * s_loc_) * hc) * D, s_loc_ * hc * D * sizeof(float));
    }
  }
  CAIRN_RETURN_IF_ERROR(comms_.tp->AllToAll(send.data(), recv.data(), chunk));
  // Chunk j holds rank j's heads for my sequence block; replicated key/value heads add up.
  *out = New(b_ * s_loc_ * heads * D);
  for (int j = 0; j < u; ++j) {
    const int64_t h0 = UlyssesHeads(j, kv).first;
    for (int64_t bt = 0; bt < b_ * s_loc_; ++bt) {
      float* dst = out->data() + (bt * heads + h0) * D;
      const float* src = recv.data() + j * chunk + bt * hc * D;
      for (int64_t e = 0; e < hc * D; ++e) dst[e] += src[e];
    }
  }
  return absl::OkStatus();
}

// ---- Shared pieces
// -------------------------------------------------------------------------------

AttentionShape LayerRunner::LocalAttention() const {
  AttentionShape a;
  a.batch = b_;
  a.seq = seq_;
  a.num_heads = m_.num_heads;
  a.num_kv_heads = m_.num_kv_heads;
  a.head_dim = m_.hidden / m_.num_heads;
  if (ulysses_) {
    a.head_begin = UlyssesHeads(place_.tp_rank, false).first;
    a.head_end = UlyssesHeads(place_.tp_rank, false).second;
  } else {
    const int64_t hq = m_.num_heads / place_.tp;
    a.head_begin = place_.tp_rank * hq;
    a.head_end = a.head_begin + hq;
  }
  return a;
}

EmbeddingShape LayerRunner::EmbeddingShapeHere() const {
  EmbeddingShape shape;
  shape.batch = b_;
  shape.channels = m_.hidden;
  shape.max_positions = m_.max_seq_len;
  if (tp_) {
    // Vocab-parallel: the whole sequence, this rank's vocabulary rows.
    const int64_t vloc = m_.vocab / place_.tp;
    shape.seq = seq_;
    shape.vocab_begin = place_.tp_rank * vloc;
    shape.vocab_end = shape.vocab_begin + vloc;
  } else {
    // The whole table; the sequence shard under Ulysses.
    shape.seq = s_loc_;
    shape.vocab_begin = 0;
    shape.vocab_end = m_.vocab;
    shape.position_offset = place_.layout.seq_sharded ? place_.tp_rank * s_loc_ : 0;
  }
  return shape;
}

RopeShape LayerRunner::Rope() const {
  RopeShape r;
  r.batch = b_;
  r.seq = ulysses_ ? s_loc_ : seq_;  // Ulysses projects its sequence shard, TP the whole sequence
  r.head_dim = m_.hidden / m_.num_heads;
  r.position_offset = ulysses_ ? place_.tp_rank * s_loc_ : 0;
  return r;
}

absl::Status LayerRunner::NormForward(const float* w, const std::string& prefix,
                                      const NormShape& shape, const float* inp, float* out,
                                      float* rstd) {
  const float* weight = P(w, (prefix + "_w").c_str());
  if (m_.rms_norm) return be_->RmsNormForward(shape, inp, weight, out, rstd);
  return be_->LayerNormForward(shape, inp, weight, P(w, (prefix + "_b").c_str()), out, rstd);
}

absl::Status LayerRunner::NormBackward(const float* w, float* g, const std::string& prefix,
                                       const NormShape& shape, const float* inp, const float* rstd,
                                       const float* dout, float* dinp, bool accumulate) {
  const float* weight = P(w, (prefix + "_w").c_str());
  float* dweight = G(g, (prefix + "_w").c_str());
  if (m_.rms_norm) {
    return be_->RmsNormBackward(shape, inp, weight, rstd, dout, dinp, dweight, accumulate);
  }
  return be_->LayerNormBackward(shape, inp, weight, rstd, dout, dinp, dweight,
                                G(g, (prefix + "_b").c_str()), accumulate);
}

// ---- Dispatch ----------------------------------------------------------------------------------

absl::Status LayerRunner::Forward(const float* w, const MicroBatch& mb, const float* x, Buffer* y,
                                  Saved* saved) {
  switch (place_.kind) {
    case LayerKind::kEmbedding:
      return EmbeddingForward(w, mb, y);
    case LayerKind::kHead:
      return HeadForward(w, mb, x, saved);
    case LayerKind::kBlock:
      if (!place_.strategy.recompute) return BlockForward(w, x, y, saved);
      {
        Saved scratch;
        CAIRN_RETURN_IF_ERROR(BlockForward(w, x, y, &scratch));
        saved->b["x"] = Copy(memory_, x, ActivationCount());
        return absl::OkStatus();
      }
  }
  return absl::InternalError("unknown layer kind");
}

absl::Status LayerRunner::Backward(const float* w, const MicroBatch& mb, Saved* saved,
                                   const float* dy, Buffer* dx, float* grads) {
  switch (place_.kind) {
    case LayerKind::kEmbedding:
      return EmbeddingBackward(mb, dy, grads);
    case LayerKind::kHead:
      return HeadBackward(w, saved, dx, grads);
    case LayerKind::kBlock:
      if (place_.strategy.recompute) {
        // Recompute the forward (with its collectives) from the saved input.
        Buffer x = std::move(saved->b["x"]);
        saved->b.clear();
        Buffer y;
        CAIRN_RETURN_IF_ERROR(BlockForward(w, x.data(), &y, saved));
      }
      return BlockBackward(w, saved, dy, dx, grads);
  }
  return absl::InternalError("unknown layer kind");
}

// ---- Embedding -------------------------------------------------------------------------------

absl::Status LayerRunner::EmbeddingForward(const float* w, const MicroBatch& mb, Buffer* y) {
  const int64_t C = m_.hidden;
  std::vector<int32_t> tokens;
  SliceTokens(mb.inputs, &tokens);
  const EmbeddingShape shape = EmbeddingShapeHere();
  if (tp_) {
    // Vocab-parallel: every TP rank embeds the whole sequence with its vocabulary rows.
    Buffer partial = New(b_ * seq_ * C);
    CAIRN_RETURN_IF_ERROR(be_->EmbeddingForward(shape, tokens.data(), P(w, "wte"),
                                                place_.tp_rank == 0 ? P(w, "wpe") : nullptr,
                                                partial.data()));
    if (sp_) return ReduceScatterSeq(partial.data(), C, y);
    *y = New(b_ * seq_ * C);
    return comms_.tp->AllReduce(partial.data(), y->data(), b_ * seq_ * C);
  }
  *y = New(b_ * s_loc_ * C);
  return be_->EmbeddingForward(shape, tokens.data(), P(w, "wte"), P(w, "wpe"), y->data());
}

absl::Status LayerRunner::EmbeddingBackward(const MicroBatch& mb, const float* dy, float* g) {
  const int64_t C = m_.hidden;
  std::vector<int32_t> tokens;
  SliceTokens(mb.inputs, &tokens);
  const EmbeddingShape shape = EmbeddingShapeHere();
  if (tp_) {
    Buffer full;
    const float* d = dy;
    if (sp_) {
      CAIRN_RETURN_IF_ERROR(GatherSeq(dy, C, &full));
      d = full.data();
    }
    return be_->EmbeddingBackward(shape, tokens.data(), d, G(g, "wte"),
                                  place_.tp_rank == 0 ? G(g, "wpe") : nullptr);
  }
  return be_->EmbeddingBackward(shape, tokens.data(), dy, G(g, "wte"), G(g, "wpe"));
}

// ---- Transformer block -------------------------------------------------------------------------

absl::Status LayerRunner::BlockForward(const float* w, const float* x, Buffer* y, Saved* s) {
  const int64_t C = m_.hidden, H = m_.num_heads, KV = m_.num_kv_heads, D = C / H;
  const int64_t Tin = b_ * s_loc_;
  const int64_t Ta = ulysses_ ? Tin : b_ * seq_;  // tokens the projections see
  const int64_t hq = ulysses_ ? H : H / place_.tp;
  const AttentionShape attn_local = LocalAttention();  // heads attended over the full sequence
  // Projection outputs: all heads under Ulysses, the local ones under TP.
  const int64_t kvh = ulysses_ ? KV : attn_local.local_kv_heads();
  const NormShape n_in{Tin, C, 1e-5f};

  s->b["x"] = Copy(memory_, x, Tin * C);
  Buffer& xn1 = s->b["xn1"] = New(Tin * C);
  Buffer& rstd1 = s->b["rstd1"] = New(Tin);
  CAIRN_RETURN_IF_ERROR(NormForward(w, "norm1", n_in, x, xn1.data(), rstd1.data()));
  Buffer gathered;
  const float* xa = xn1.data();
  if (sp_) {
    CAIRN_RETURN_IF_ERROR(GatherSeq(xn1.data(), C, &gathered));
    xa = gathered.data();
  }
  Buffer q = New(Ta * hq * D), k = New(Ta * kvh * D), v = New(Ta * kvh * D);
  CAIRN_RETURN_IF_ERROR(be_->MatmulForward(MatmulShape::Linear(Ta, C, hq * D), xa, P(w, "wq"),
                                           P(w, "bq"), q.data(), false));
  CAIRN_RETURN_IF_ERROR(be_->MatmulForward(MatmulShape::Linear(Ta, C, kvh * D), xa, P(w, "wk"),
                                           P(w, "bk"), k.data(), false));
  CAIRN_RETURN_IF_ERROR(be_->MatmulForward(MatmulShape::Linear(Ta, C, kvh * D), xa, P(w, "wv"),
                                           P(w, "bv"), v.data(), false));
  gathered.Release();
  if (m_.rope) {
    RopeShape r = Rope();
    r.num_heads = hq;
    CAIRN_RETURN_IF_ERROR(be_->RopeForward(r, q.data(), q.data()));
    r.num_heads = kvh;
    CAIRN_RETURN_IF_ERROR(be_->RopeForward(r, k.data(), k.data()));
  }
  if (ulysses_) {
    Buffer qf, kf, vf;
    CAIRN_RETURN_IF_ERROR(HeadsToSeq(q.data(), H, false, &qf));
    CAIRN_RETURN_IF_ERROR(HeadsToSeq(k.data(), KV, true, &kf));
    CAIRN_RETURN_IF_ERROR(HeadsToSeq(v.data(), KV, true, &vf));
    q = std::move(qf);
    k = std::move(kf);
    v = std::move(vf);
  }
  Buffer& out = s->b["attn"] = New(b_ * seq_ * attn_local.local_heads() * D);
  Buffer& lse = s->b["lse"] = New(b_ * attn_local.local_heads() * seq_);
  CAIRN_RETURN_IF_ERROR(
      be_->AttentionForward(attn_local, q.data(), k.data(), v.data(), out.data(), lse.data()));
  s->b["q"] = std::move(q);
  s->b["k"] = std::move(k);
  s->b["v"] = std::move(v);
  const float* attn_in = out.data();  // input of the output projection
  if (ulysses_) {
    CAIRN_RETURN_IF_ERROR(SeqToHeads(out.data(), H, false, &s->b["attn_shard"]));
    attn_in = s->b["attn_shard"].data();
  }
  // Output projection (row-parallel under TP: partial sums reduced over the group; the bias is
  // added once, by TP rank 0, before the reduction).
  const bool bias_here = !tp_ || place_.tp_rank == 0;
  Buffer o = New(Ta * C);
  CAIRN_RETURN_IF_ERROR(be_->MatmulForward(MatmulShape::Linear(Ta, hq * D, C), attn_in, P(w, "wo"),
                                           bias_here ? P(w, "bo") : nullptr, o.data(), false));
  Buffer o_in;  // in the input layout
  if (sp_) {
    CAIRN_RETURN_IF_ERROR(ReduceScatterSeq(o.data(), C, &o_in));
  } else if (tp_) {
    o_in = New(Tin * C);
    CAIRN_RETURN_IF_ERROR(comms_.tp->AllReduce(o.data(), o_in.data(), Tin * C));
  } else {
    o_in = std::move(o);
  }
  o.Release();
  Buffer& x1 = s->b["x1"] = New(Tin * C);
  CAIRN_RETURN_IF_ERROR(be_->ResidualForward(Tin * C, x, o_in.data(), x1.data()));
  o_in.Release();
  // MLP.
  Buffer& xn2 = s->b["xn2"] = New(Tin * C);
  Buffer& rstd2 = s->b["rstd2"] = New(Tin);
  CAIRN_RETURN_IF_ERROR(NormForward(w, "norm2", n_in, x1.data(), xn2.data(), rstd2.data()));
  const float* xm = xn2.data();
  if (sp_) {
    CAIRN_RETURN_IF_ERROR(GatherSeq(xn2.data(), C, &gathered));
    xm = gathered.data();
  }
  const int64_t f = ulysses_ ? m_.ffn_hidden : m_.ffn_hidden / place_.tp;
  Buffer& up = s->b["up"] = New(Ta * f);
  Buffer& act = s->b["act"] = New(Ta * f);
  CAIRN_RETURN_IF_ERROR(be_->MatmulForward(MatmulShape::Linear(Ta, C, f), xm, P(w, "w_up"),
                                           P(w, "b_up"), up.data(), false));
  if (m_.swiglu) {
    Buffer& gate = s->b["gate"] = New(Ta * f);
    CAIRN_RETURN_IF_ERROR(be_->MatmulForward(MatmulShape::Linear(Ta, C, f), xm, P(w, "w_gate"),
                                             nullptr, gate.data(), false));
    CAIRN_RETURN_IF_ERROR(be_->SwiGluForward(Ta * f, gate.data(), up.data(), act.data()));
  } else {
    CAIRN_RETURN_IF_ERROR(be_->GeluForward(Ta * f, up.data(), act.data()));
  }
  gathered.Release();
  Buffer down = New(Ta * C);
  CAIRN_RETURN_IF_ERROR(be_->MatmulForward(MatmulShape::Linear(Ta, f, C), act.data(),
                                           P(w, "w_down"), bias_here ? P(w, "b_down") : nullptr,
                                           down.data(), false));
  Buffer down_in;
  if (sp_) {
    CAIRN_RETURN_IF_ERROR(ReduceScatterSeq(down.data(), C, &down_in));
  } else if (tp_) {
    down_in = New(Tin * C);
    CAIRN_RETURN_IF_ERROR(comms_.tp->AllReduce(down.data(), down_in.data(), Tin * C));
  } else {
    down_in = std::move(down);
  }
  *y = New(Tin * C);
  return be_->ResidualForward(Tin * C, x1.data(), down_in.data(), y->data());
}

absl::Status LayerRunner::BlockBackward(const float* w, Saved* s, const float* dy, Buffer* dx,
                                        float* g) {
  const int64_t C = m_.hidden, H = m_.num_heads, KV = m_.num_kv_heads, D = C / H;
  const int64_t Tin = b_ * s_loc_;
  const int64_t Ta = ulysses_ ? Tin : b_ * seq_;
  const int64_t hq = ulysses_ ? H : H / place_.tp;
  const int64_t f = ulysses_ ? m_.ffn_hidden : m_.ffn_hidden / place_.tp;
  const AttentionShape attn_local = LocalAttention();
  const int64_t kvh = ulysses_ ? KV : attn_local.local_kv_heads();
  const NormShape n_in{Tin, C, 1e-5f};
  const bool bias_here = !tp_ || place_.tp_rank == 0;
  // Gradient of a row-parallel output, in the projection's token layout.
  auto to_projection = [&](const float* d_in, Buffer* full) -> absl::Status {
    if (sp_) return GatherSeq(d_in, C, full);
    *full = Copy(memory_, d_in, Tin * C);  // replicated (TP) or local (Ulysses / t = 1)
    return absl::OkStatus();
  };
  // Partial input gradient of column-parallel projections -> complete, in the input layout.
  auto from_projection = [&](Buffer* partial, Buffer* d_in) -> absl::Status {
    if (sp_) return ReduceScatterSeq(partial->data(), C, d_in);
    if (tp_) {
      *d_in = New(Tin * C);
      return comms_.tp->AllReduce(partial->data(), d_in->data(), Tin * C);
    }
    *d_in = std::move(*partial);
    return absl::OkStatus();
  };

  // MLP. dx1 (gradient of the middle residual stream) starts as dy.
  Buffer dx1 = Copy(memory_, dy, Tin * C);
  Buffer d_down;
  CAIRN_RETURN_IF_ERROR(to_projection(dy, &d_down));
  Buffer d_act = New(Ta * f);
  CAIRN_RETURN_IF_ERROR(be_->MatmulBackward(
      MatmulShape::Linear(Ta, f, C), s->b["act"].data(), P(w, "w_down"), d_down.data(),
      d_act.data(), G(g, "w_down"), bias_here ? G(g, "b_down") : nullptr, false));
  d_down.Release();
  Buffer xm_full;
  const float* xm = s->b["xn2"].data();
  if (sp_) {
    CAIRN_RETURN_IF_ERROR(GatherSeq(s->b["xn2"].data(), C, &xm_full));
    xm = xm_full.data();
  }
  Buffer d_xm = New(Ta * C);
  Buffer d_up = New(Ta * f);
  if (m_.swiglu) {
    Buffer d_gate = New(Ta * f);
    CAIRN_RETURN_IF_ERROR(be_->SwiGluBackward(Ta * f, s->b["gate"].data(), s->b["up"].data(),
                                              d_act.data(), d_gate.data(), d_up.data()));
    CAIRN_RETURN_IF_ERROR(be_->MatmulBackward(MatmulShape::Linear(Ta, C, f), xm, P(w, "w_gate"),
                                              d_gate.data(), d_xm.data(), G(g, "w_gate"), nullptr,
                                              false));
    CAIRN_RETURN_IF_ERROR(be_->MatmulBackward(MatmulShape::Linear(Ta, C, f), xm, P(w, "w_up"),
                                              d_up.data(), d_xm.data(), G(g, "w_up"), G(g, "b_up"),
                                              true));
  } else {
    CAIRN_RETURN_IF_ERROR(be_->GeluBackward(Ta * f, s->b["up"].data(), d_act.data(), d_up.data()));
    CAIRN_RETURN_IF_ERROR(be_->MatmulBackward(MatmulShape::Linear(Ta, C, f), xm, P(w, "w_up"),
                                              d_up.data(), d_xm.data(), G(g, "w_up"), G(g, "b_up"),
                                              false));
  }
  d_act.Release();
  d_up.Release();
  xm_full.Release();
  Buffer d_xn2;
  CAIRN_RETURN_IF_ERROR(from_projection(&d_xm, &d_xn2));
  CAIRN_RETURN_IF_ERROR(NormBackward(w, g, "norm2", n_in, s->b["x1"].data(), s->b["rstd2"].data(),
                                     d_xn2.data(), dx1.data(), true));
  d_xn2.Release();
  for (const char* name : {"act", "up", "gate", "xn2", "rstd2", "x1"}) s->b.erase(name);

  // Attention.
  Buffer d_o;
  CAIRN_RETURN_IF_ERROR(to_projection(dx1.data(), &d_o));
  const float* attn_in = ulysses_ ? s->b["attn_shard"].data() : s->b["attn"].data();
  Buffer d_attn_in = New(Ta * hq * D);
  CAIRN_RETURN_IF_ERROR(be_->MatmulBackward(MatmulShape::Linear(Ta, hq * D, C), attn_in, P(w, "wo"),
                                            d_o.data(), d_attn_in.data(), G(g, "wo"),
                                            bias_here ? G(g, "bo") : nullptr, false));
  d_o.Release();
  Buffer d_out;  // in attention layout
  if (ulysses_) {
    CAIRN_RETURN_IF_ERROR(HeadsToSeq(d_attn_in.data(), H, false, &d_out));
  } else {
    d_out = std::move(d_attn_in);
  }
  Buffer dq = New(s->b["q"].size()), dk = New(s->b["k"].size()), dv = New(s->b["v"].size());
  CAIRN_RETURN_IF_ERROR(be_->AttentionBackward(
      attn_local, s->b["q"].data(), s->b["k"].data(), s->b["v"].data(), s->b["attn"].data(),
      s->b["lse"].data(), d_out.data(), dq.data(), dk.data(), dv.data()));
  d_out.Release();
  if (ulysses_) {
    Buffer a, b, c;
    CAIRN_RETURN_IF_ERROR(SeqToHeads(dq.data(), H, false, &a));
    CAIRN_RETURN_IF_ERROR(SeqToHeads(dk.data(), KV, true, &b));
    CAIRN_RETURN_IF_ERROR(SeqToHeads(dv.data(), KV, true, &c));
    dq = std::move(a);
    dk = std::move(b);
    dv = std::move(c);
  }
  if (m_.rope) {
    RopeShape r = Rope();
    r.num_heads = hq;
    CAIRN_RETURN_IF_ERROR(be_->RopeBackward(r, dq.data(), dq.data()));
    r.num_heads = kvh;
    CAIRN_RETURN_IF_ERROR(be_->RopeBackward(r, dk.data(), dk.data()));
  }
  Buffer xa_full;
  const float* xa = s->b["xn1"].data();
  if (sp_) {
    CAIRN_RETURN_IF_ERROR(GatherSeq(s->b["xn1"].data(), C, &xa_full));
    xa = xa_full.data();
  }
  Buffer d_xa = New(Ta * C);
  CAIRN_RETURN_IF_ERROR(be_->MatmulBackward(MatmulShape::Linear(Ta, C, hq * D), xa, P(w, "wq"),
                                            dq.data(), d_xa.data(), G(g, "wq"), G(g, "bq"), false));
  CAIRN_RETURN_IF_ERROR(be_->MatmulBackward(MatmulShape::Linear(Ta, C, kvh * D), xa, P(w, "wk"),
                                            dk.data(), d_xa.data(), G(g, "wk"), G(g, "bk"), true));
  CAIRN_RETURN_IF_ERROR(be_->MatmulBackward(MatmulShape::Linear(Ta, C, kvh * D), xa, P(w, "wv"),
                                            dv.data(), d_xa.data(), G(g, "wv"), G(g, "bv"), true));
  dq.Release();
  dk.Release();
  dv.Release();
  xa_full.Release();
  Buffer d_xn1;
  CAIRN_RETURN_IF_ERROR(from_projection(&d_xa, &d_xn1));
  *dx = std::move(dx1);
  CAIRN_RETURN_IF_ERROR(NormBackward(w, g, "norm1", n_in, s->b["x"].data(), s->b["rstd1"].data(),
                                     d_xn1.data(), dx->data(), true));
  s->b.clear();
  return absl::OkStatus();
}

// ---- Head: final norm, LM head, cross-entropy ---------------------------------------------------

absl::Status LayerRunner::HeadForward(const float* w, const MicroBatch& mb, const float* x,
                                      Saved* s) {
  const int64_t C = m_.hidden;
  const int64_t Tin = b_ * s_loc_;
  const int64_t T = tp_ ? b_ * seq_ : Tin;  // tokens the LM head sees
  const int64_t vloc = tp_ ? m_.vocab / place_.tp : m_.vocab;
  const NormShape n_in{Tin, C, 1e-5f};
  s->b["x"] = Copy(memory_, x, Tin * C);
  Buffer& xn = s->b["xn"] = New(Tin * C);
  Buffer& rstd = s->b["rstd"] = New(Tin);
  CAIRN_RETURN_IF_ERROR(NormForward(w, "norm_f", n_in, x, xn.data(), rstd.data()));
  Buffer gathered;
  const float* xh = xn.data();
  if (sp_) {
    CAIRN_RETURN_IF_ERROR(GatherSeq(xn.data(), C, &gathered));
    xh = gathered.data();
  }
  Buffer& logits = s->b["dlogits"] = New(T * vloc);
  const float* lm = params_.has("lm_head") ? P(w, "lm_head") : tied_w_;
  if (lm == nullptr) return absl::InternalError("head without LM-head weights");
  CAIRN_RETURN_IF_ERROR(
      be_->MatmulForward(MatmulShape::Linear(T, C, vloc), xh, lm, nullptr, logits.data(), false));
  gathered.Release();
  std::vector<int32_t> targets;
  SliceTokens(mb.targets, &targets);
  CrossEntropyShape ce;
  ce.tokens = T;
  ce.vocab_size = m_.vocab;
  ce.vocab_begin = tp_ ? place_.tp_rank * vloc : 0;
  ce.vocab_end = ce.vocab_begin + vloc;
  Buffer max = New(T), sums = New(2 * T), losses = New(T);
  CAIRN_RETURN_IF_ERROR(be_->CrossEntropyMax(ce, logits.data(), max.data()));
  if (tp_) {
    CAIRN_RETURN_IF_ERROR(comms_.tp->AllReduce(max.data(), max.data(), T, ReduceOp::kMax));
  }
  CAIRN_RETURN_IF_ERROR(be_->CrossEntropySums(ce, logits.data(), targets.data(), max.data(),
                                              sums.data(), sums.data() + T));
  if (tp_) CAIRN_RETURN_IF_ERROR(comms_.tp->AllReduce(sums.data(), sums.data(), 2 * T));
  CAIRN_RETURN_IF_ERROR(be_->CrossEntropyLossAndGrad(ce, logits.data(), targets.data(), max.data(),
                                                     sums.data(), sums.data() + T, loss_scale_,
                                                     losses.data(), logits.data()));
  // Every TP rank of a vocab-parallel head has every token's loss: rank 0 reports them.
  if (!tp_ || place_.tp_rank == 0) {
    for (int64_t i = 0; i < T; ++i) s->loss_sum += losses.data()[i];
    s->loss_tokens = T;
  }
  return absl::OkStatus();
}

absl::Status LayerRunner::HeadBackward(const float* w, Saved* s, Buffer* dx, float* g) {
  const int64_t C = m_.hidden;
  const int64_t Tin = b_ * s_loc_;
  const int64_t T = tp_ ? b_ * seq_ : Tin;
  const int64_t vloc = tp_ ? m_.vocab / place_.tp : m_.vocab;
  const NormShape n_in{Tin, C, 1e-5f};
  Buffer gathered;
  const float* xh = s->b["xn"].data();
  if (sp_) {
    CAIRN_RETURN_IF_ERROR(GatherSeq(s->b["xn"].data(), C, &gathered));
    xh = gathered.data();
  }
  Buffer d_xh = New(T * C);
  const bool own = params_.has("lm_head");
  CAIRN_RETURN_IF_ERROR(be_->MatmulBackward(
      MatmulShape::Linear(T, C, vloc), xh, own ? P(w, "lm_head") : tied_w_, s->b["dlogits"].data(),
      d_xh.data(), own ? G(g, "lm_head") : tied_g_, nullptr, false));
  gathered.Release();
  s->b.erase("dlogits");
  Buffer d_xn;
  if (sp_) {
    CAIRN_RETURN_IF_ERROR(ReduceScatterSeq(d_xh.data(), C, &d_xn));
  } else if (tp_) {
    d_xn = New(Tin * C);
    CAIRN_RETURN_IF_ERROR(comms_.tp->AllReduce(d_xh.data(), d_xn.data(), Tin * C));
  } else {
    d_xn = std::move(d_xh);
  }
  *dx = New(Tin * C);
  CAIRN_RETURN_IF_ERROR(NormBackward(w, g, "norm_f", n_in, s->b["x"].data(), s->b["rstd"].data(),
                                     d_xn.data(), dx->data(), false));
  s->b.clear();
  return absl::OkStatus();
}

}  // namespace cairn::runtime
