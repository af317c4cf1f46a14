#include "runtime/engine/layers.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "common/plan/layout.h"
#include "common/status_macros.h"

namespace cairn::runtime {

using plan::LayerKind;
using plan::ParallelMode;

LayerRunner::LayerRunner(const plan::ModelDims& model, const LayerPlace& place,
                         const LayerParams& params, int seq_len, int micro_batch,
                         ComputeBackend* backend, LayerComms comms, DeviceArena* arena,
                         float loss_scale, float* loss_sum)
    : m_(model),
      place_(place),
      params_(params),
      slot_(params_.slots()),
      seq_(seq_len),
      micro_batch_(micro_batch),
      be_(backend),
      comms_(comms),
      arena_(arena),
      wd_(backend->working_dtype()),
      esize_(static_cast<int64_t>(DTypeSize(backend->working_dtype()))),
      stream_(backend->default_stream()),
      loss_scale_(loss_scale),
      loss_sum_(loss_sum) {
  ulysses_ = place.tp > 1 && place.strategy.mode == ParallelMode::kUlysses;
  sp_ = place.tp > 1 && place.strategy.mode == ParallelMode::kTensorSequence;
  tp_ = place.tp > 1 && !ulysses_;
  b_ = micro_batch / place.dp;
  s_loc_ = place.layout.seq_sharded ? seq_len / place.tp : seq_len;
}

int64_t LayerRunner::ActivationCount() const { return b_ * s_loc_ * m_.hidden; }

const void* LayerRunner::P(const void* w, int slot) const {
  const int64_t off = params_.OffsetOf(slot);
  return off < 0 ? nullptr : static_cast<const char*>(w) + off * esize_;
}

float* LayerRunner::G(float* g, int slot) const {
  const int64_t off = params_.OffsetOf(slot);
  return off < 0 ? nullptr : g + off;
}

absl::StatusOr<ArenaBuffer> LayerRunner::Copy(const ArenaBuffer& src) {
  CAIRN_ASSIGN_OR_RETURN(ArenaBuffer out, arena_->Allocate(src.count(), src.dtype()));
  CAIRN_RETURN_IF_ERROR(be_->CopyOnDevice(out.data(), src.data(), src.bytes()));
  return out;
}

absl::Status LayerRunner::Run(absl::StatusOr<std::unique_ptr<CommHandle>> op) {
  if (!op.ok()) return op.status();
  return stream_ != nullptr ? (*op)->WaitOn(stream_) : (*op)->Wait();
}

absl::Status LayerRunner::TpAllReduce(const void* in, void* out, int64_t count) {
  return Run(comms_.tp->StartAllReduce(in, out, count, wd_, ReduceOp::kSum, stream_));
}

absl::StatusOr<ArenaBuffer> LayerRunner::SliceTokens(const ArenaBuffer& all) {
  // Sequence-sharded layouts not split by vocabulary (Ulysses) take their sequence slice too.
  const int64_t s0 = place_.layout.seq_sharded && !tp_ ? place_.tp_rank * s_loc_ : 0;
  const int64_t sl = place_.layout.seq_sharded && !tp_ ? s_loc_ : seq_;
  CAIRN_ASSIGN_OR_RETURN(ArenaBuffer out, arena_->Allocate(b_ * sl, DType::kInt32));
  const int64_t row = place_.dp_rank * b_;
  CAIRN_RETURN_IF_ERROR(be_->Copy2D(b_, sl * 4, all.i32() + row * seq_ + s0, seq_ * 4, out.data(),
                                    sl * 4));
  return out;
}

// ---- Sequence-parallel and Ulysses data movement ---------------------------------------------

absl::Status LayerRunner::GatherSeq(const void* shard, int64_t width, ArenaBuffer* full) {
  const int t = place_.tp;
  const int64_t sl = seq_ / t, piece = b_ * sl * width;
  CAIRN_ASSIGN_OR_RETURN(ArenaBuffer chunks, W(t * piece));
  CAIRN_RETURN_IF_ERROR(
      Run(comms_.tp->StartAllGather(shard, chunks.data(), piece, wd_, stream_)));
  CAIRN_ASSIGN_OR_RETURN(*full, W(b_ * seq_ * width));
  // Chunk r holds [b, positions of block r, width].
  for (int r = 0; r < t; ++r) {
    CAIRN_RETURN_IF_ERROR(be_->Copy2D(b_, sl * width * esize_, chunks.at(r * piece),
                                      sl * width * esize_, full->at(r * sl * width),
                                      seq_ * width * esize_));
  }
  return absl::OkStatus();
}

absl::Status LayerRunner::ReduceScatterSeq(const void* full, int64_t width, ArenaBuffer* shard) {
  const int t = place_.tp;
  const int64_t sl = seq_ / t, piece = b_ * sl * width;
  CAIRN_ASSIGN_OR_RETURN(ArenaBuffer chunks, W(t * piece));
  for (int r = 0; r < t; ++r) {
    CAIRN_RETURN_IF_ERROR(be_->Copy2D(b_, sl * width * esize_,
                                      static_cast<const char*>(full) + r * sl * width * esize_,
                                      seq_ * width * esize_, chunks.at(r * piece),
                                      sl * width * esize_));
  }
  CAIRN_ASSIGN_OR_RETURN(*shard, W(piece));
  return Run(comms_.tp->StartReduceScatter(chunks.data(), shard->data(), piece, wd_,
                                           ReduceOp::kSum, stream_));
}

std::pair<int64_t, int64_t> LayerRunner::UlyssesHeads(int j, bool kv) const {
  const int64_t H = m_.num_heads, per = H / place_.tp;
  const int64_t qb = j * per, qe = qb + per;
  if (!kv) return {qb, qe};
  const int64_t group = H / m_.num_kv_heads;
  return {qb / group, (qe - 1) / group + 1};
}

absl::Status LayerRunner::HeadsToSeq(const void* in, int64_t heads, bool kv, ArenaBuffer* out) {
  const int u = place_.tp;
  const int64_t D = m_.head_dim();
  const int64_t hc = UlyssesHeads(0, kv).second - UlyssesHeads(0, kv).first;
  const int64_t chunk = b_ * s_loc_ * hc * D;
  CAIRN_ASSIGN_OR_RETURN(ArenaBuffer send, W(u * chunk));
  CAIRN_ASSIGN_OR_RETURN(ArenaBuffer recv, W(u * chunk));
  for (int j = 0; j < u; ++j) {
    const int64_t h0 = UlyssesHeads(j, kv).first;
    CAIRN_RETURN_IF_ERROR(be_->Copy2D(b_ * s_loc_, hc * D * esize_,
                                      static_cast<const char*>(in) + h0 * D * esize_,
                                      heads * D * esize_, send.at(j * chunk), hc * D * esize_));
  }
  CAIRN_RETURN_IF_ERROR(
      Run(comms_.tp->StartAllToAll(send.data(), recv.data(), chunk, wd_, stream_)));
  // Chunk i holds sequence block i of my heads.
  CAIRN_ASSIGN_OR_RETURN(*out, W(b_ * seq_ * hc * D));
  for (int i = 0; i < u; ++i) {
    CAIRN_RETURN_IF_ERROR(be_->Copy2D(b_, s_loc_ * hc * D * esize_, recv.at(i * chunk),
                                      s_loc_ * hc * D * esize_, out->at(i * s_loc_ * hc * D),
                                      seq_ * hc * D * esize_));
  }
  return absl::OkStatus();
}

absl::Status LayerRunner::SeqToHeads(const void* in, int64_t heads, bool kv, ArenaBuffer* out) {
  const int u = place_.tp;
  const int64_t D = m_.head_dim();
  const int64_t hc = UlyssesHeads(0, kv).second - UlyssesHeads(0, kv).first;
  const int64_t chunk = b_ * s_loc_ * hc * D;
  CAIRN_ASSIGN_OR_RETURN(ArenaBuffer send, W(u * chunk));
  CAIRN_ASSIGN_OR_RETURN(ArenaBuffer recv, W(u * chunk));
  for (int i = 0; i < u; ++i) {
    CAIRN_RETURN_IF_ERROR(be_->Copy2D(b_, s_loc_ * hc * D * esize_,
                                      static_cast<const char*>(in) + i * s_loc_ * hc * D * esize_,
                                      seq_ * hc * D * esize_, send.at(i * chunk),
                                      s_loc_ * hc * D * esize_));
  }
  CAIRN_RETURN_IF_ERROR(
      Run(comms_.tp->StartAllToAll(send.data(), recv.data(), chunk, wd_, stream_)));
  // Chunk j holds rank j's heads for my sequence block; replicated key/value heads add up.
  CAIRN_ASSIGN_OR_RETURN(*out, W(b_ * s_loc_ * heads * D));
  CAIRN_RETURN_IF_ERROR(be_->Zero(out->data(), out->bytes()));
  for (int j = 0; j < u; ++j) {
    const int64_t h0 = UlyssesHeads(j, kv).first;
    CAIRN_RETURN_IF_ERROR(be_->Add2D(b_ * s_loc_, hc * D, recv.at(j * chunk), hc * D,
                                     out->at(h0 * D), heads * D));
  }
  return absl::OkStatus();
}

// ---- Shared pieces -------------------------------------------------------------------------------

AttentionShape LayerRunner::LocalAttention() const {
  AttentionShape a;
  a.batch = b_;
  a.seq = seq_;
  a.num_heads = m_.num_heads;
  a.num_kv_heads = m_.num_kv_heads;
  a.head_dim = m_.head_dim();
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
    const plan::Range v = plan::SplitRange(m_.vocab, place_.tp, place_.tp_rank);
    shape.seq = seq_;
    shape.vocab_begin = v.begin;
    shape.vocab_end = v.end;
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
  r.head_dim = m_.head_dim();
  r.position_offset = ulysses_ ? place_.tp_rank * s_loc_ : 0;
  return r;
}

absl::Status LayerRunner::NormForward(const void* w, int weight_slot, int bias_slot,
                                      const NormShape& shape, const void* inp, void* out,
                                      float* rstd) {
  if (m_.rms_norm) return be_->RmsNormForward(shape, inp, P(w, weight_slot), out, rstd);
  return be_->LayerNormForward(shape, inp, P(w, weight_slot), P(w, bias_slot), out, rstd);
}

absl::Status LayerRunner::NormBackward(const void* w, float* g, int weight_slot, int bias_slot,
                                       const NormShape& shape, const void* inp, const float* rstd,
                                       const void* dout, void* dinp, bool accumulate) {
  if (m_.rms_norm) {
    return be_->RmsNormBackward(shape, inp, P(w, weight_slot), rstd, dout, dinp,
                                G(g, weight_slot), accumulate);
  }
  return be_->LayerNormBackward(shape, inp, P(w, weight_slot), rstd, dout, dinp,
                                G(g, weight_slot), G(g, bias_slot), accumulate);
}

// ---- Dispatch ----------------------------------------------------------------------------------

absl::Status LayerRunner::Forward(const void* w, const MicroBatch& mb, ArenaBuffer x,
                                  ArenaBuffer* y, Saved* saved) {
  switch (place_.kind) {
    case LayerKind::kEmbedding:
      return EmbeddingForward(w, mb, y);
    case LayerKind::kHead: {
      if (saved != nullptr) return HeadForward(w, mb, std::move(x), &saved->head);
      HeadSaved scratch;  // evaluation: dropped here
      return HeadForward(w, mb, std::move(x), &scratch, /*keep_gradient=*/false);
    }
    case LayerKind::kBlock: {
      if (saved == nullptr) {
        BlockSaved scratch;  // evaluation: dropped here
        return BlockForward(w, std::move(x), y, &scratch);
      }
      if (!place_.strategy.recompute) return BlockForward(w, std::move(x), y, &saved->block);
      BlockSaved scratch;
      CAIRN_RETURN_IF_ERROR(BlockForward(w, std::move(x), y, &scratch));
      saved->input = std::move(scratch.x);  // the rest is dropped here
      return absl::OkStatus();
    }
  }
  return absl::InternalError("unknown layer kind");
}

absl::Status LayerRunner::Backward(const void* w, const MicroBatch& mb, Saved* saved,
                                   ArenaBuffer dy, ArenaBuffer* dx, float* grads) {
  switch (place_.kind) {
    case LayerKind::kEmbedding:
      return EmbeddingBackward(mb, dy, grads);
    case LayerKind::kHead:
      return HeadBackward(w, &saved->head, dx, grads);
    case LayerKind::kBlock:
      if (place_.strategy.recompute) {
        // Recompute the forward (with its collectives) from the saved input.
        ArenaBuffer y;
        CAIRN_RETURN_IF_ERROR(BlockForward(w, std::move(saved->input), &y, &saved->block));
      }
      return BlockBackward(w, &saved->block, std::move(dy), dx, grads);
  }
  return absl::InternalError("unknown layer kind");
}

// ---- Embedding -------------------------------------------------------------------------------

absl::Status LayerRunner::EmbeddingForward(const void* w, const MicroBatch& mb, ArenaBuffer* y) {
  const int64_t C = m_.hidden;
  CAIRN_ASSIGN_OR_RETURN(ArenaBuffer tokens, SliceTokens(mb.inputs));
  const EmbeddingShape shape = EmbeddingShapeHere();
  if (tp_) {
    // Vocab-parallel: every TP rank embeds the whole sequence with its vocabulary rows.
    CAIRN_ASSIGN_OR_RETURN(ArenaBuffer partial, W(b_ * seq_ * C));
    CAIRN_RETURN_IF_ERROR(be_->EmbeddingForward(
        shape, tokens.i32(), P(w, slot_.wte), place_.tp_rank == 0 ? P(w, slot_.wpe) : nullptr,
        partial.data()));
    tokens.Release();
    if (sp_) return ReduceScatterSeq(partial.data(), C, y);
    CAIRN_RETURN_IF_ERROR(TpAllReduce(partial.data(), partial.data(), partial.count()));
    *y = std::move(partial);
    return absl::OkStatus();
  }
  CAIRN_ASSIGN_OR_RETURN(*y, W(b_ * s_loc_ * C));
  return be_->EmbeddingForward(shape, tokens.i32(), P(w, slot_.wte), P(w, slot_.wpe), y->data());
}

absl::Status LayerRunner::EmbeddingBackward(const MicroBatch& mb, const ArenaBuffer& dy, float* g) {
  const int64_t C = m_.hidden;
  CAIRN_ASSIGN_OR_RETURN(ArenaBuffer tokens, SliceTokens(mb.inputs));
  const EmbeddingShape shape = EmbeddingShapeHere();
  if (tp_) {
    ArenaBuffer full;
    const void* d = dy.data();
    if (sp_) {
      CAIRN_RETURN_IF_ERROR(GatherSeq(dy.data(), C, &full));
      d = full.data();
    }
    return be_->EmbeddingBackward(shape, tokens.i32(), d, G(g, slot_.wte),
                                  place_.tp_rank == 0 ? G(g, slot_.wpe) : nullptr);
  }
  return be_->EmbeddingBackward(shape, tokens.i32(), dy.data(), G(g, slot_.wte), G(g, slot_.wpe));
}

// ---- Transformer block -------------------------------------------------------------------------

absl::Status LayerRunner::BlockForward(const void* w, ArenaBuffer x_in, ArenaBuffer* y,
                                       BlockSaved* s) {
  const int64_t C = m_.hidden, H = m_.num_heads, KV = m_.num_kv_heads, D = m_.head_dim();
  const int64_t Tin = b_ * s_loc_;
  const int64_t Ta = ulysses_ ? Tin : b_ * seq_;  // tokens the projections see
  const int64_t hq = ulysses_ ? H : H / place_.tp;
  const AttentionShape attn_local = LocalAttention();  // heads attended over the full sequence
  // Projection outputs: all heads under Ulysses, the local ones under TP.
  const int64_t kvh = ulysses_ ? KV : attn_local.local_kv_heads();
  const int64_t f = ulysses_ ? m_.ffn_hidden : m_.ffn_hidden / place_.tp;
  const NormShape n_in{Tin, C, 1e-5f};
  // Row-parallel biases are added once, by TP rank 0, before the reduction.
  const bool bias_here = !tp_ || place_.tp_rank == 0;
  // Row-parallel output -> the input layout (reduce-scatter, all-reduce in place, or as is).
  auto to_input_layout = [&](ArenaBuffer* partial, ArenaBuffer* out) -> absl::Status {
    if (sp_) return ReduceScatterSeq(partial->data(), C, out);
    if (tp_) CAIRN_RETURN_IF_ERROR(TpAllReduce(partial->data(), partial->data(), Tin * C));
    *out = std::move(*partial);
    return absl::OkStatus();
  };

  s->x = std::move(x_in);
  CAIRN_ASSIGN_OR_RETURN(s->xn1, W(Tin * C));
  CAIRN_ASSIGN_OR_RETURN(s->rstd1, F32(Tin));
  CAIRN_RETURN_IF_ERROR(NormForward(w, slot_.norm1_w, slot_.norm1_b, n_in, s->x.data(),
                                    s->xn1.data(), s->rstd1.f32()));
  ArenaBuffer gathered;
  const void* xa = s->xn1.data();
  if (sp_) {
    CAIRN_RETURN_IF_ERROR(GatherSeq(s->xn1.data(), C, &gathered));
    xa = gathered.data();
  }
  CAIRN_ASSIGN_OR_RETURN(ArenaBuffer q, W(Ta * hq * D));
  CAIRN_ASSIGN_OR_RETURN(ArenaBuffer k, W(Ta * kvh * D));
  CAIRN_ASSIGN_OR_RETURN(ArenaBuffer v, W(Ta * kvh * D));
  CAIRN_RETURN_IF_ERROR(be_->MatmulForward(MatmulShape::Linear(Ta, C, hq * D), xa,
                                           P(w, slot_.wq), P(w, slot_.bq), q.data(), false));
  CAIRN_RETURN_IF_ERROR(be_->MatmulForward(MatmulShape::Linear(Ta, C, kvh * D), xa,
                                           P(w, slot_.wk), P(w, slot_.bk), k.data(), false));
  CAIRN_RETURN_IF_ERROR(be_->MatmulForward(MatmulShape::Linear(Ta, C, kvh * D), xa,
                                           P(w, slot_.wv), P(w, slot_.bv), v.data(), false));
  gathered.Release();
  if (m_.rope) {
    RopeShape r = Rope();
    r.num_heads = hq;
    CAIRN_RETURN_IF_ERROR(be_->RopeForward(r, q.data(), q.data()));
    r.num_heads = kvh;
    CAIRN_RETURN_IF_ERROR(be_->RopeForward(r, k.data(), k.data()));
  }
  if (ulysses_) {
    ArenaBuffer qf, kf, vf;
    CAIRN_RETURN_IF_ERROR(HeadsToSeq(q.data(), H, false, &qf));
    CAIRN_RETURN_IF_ERROR(HeadsToSeq(k.data(), KV, true, &kf));
    CAIRN_RETURN_IF_ERROR(HeadsToSeq(v.data(), KV, true, &vf));
    q = std::move(qf);
    k = std::move(kf);
    v = std::move(vf);
  }
  CAIRN_ASSIGN_OR_RETURN(s->attn, W(b_ * seq_ * attn_local.local_heads() * D));
  CAIRN_ASSIGN_OR_RETURN(s->lse, F32(b_ * attn_local.local_heads() * seq_));
  CAIRN_RETURN_IF_ERROR(be_->AttentionForward(attn_local, q.data(), k.data(), v.data(),
                                              s->attn.data(), s->lse.f32()));
  s->q = std::move(q);
  s->k = std::move(k);
  s->v = std::move(v);
  const void* attn_in = s->attn.data();  // input of the output projection
  if (ulysses_) {
    CAIRN_RETURN_IF_ERROR(SeqToHeads(s->attn.data(), H, false, &s->attn_shard));
    attn_in = s->attn_shard.data();
  }
  CAIRN_ASSIGN_OR_RETURN(ArenaBuffer o, W(Ta * C));
  CAIRN_RETURN_IF_ERROR(be_->MatmulForward(MatmulShape::Linear(Ta, hq * D, C), attn_in,
                                           P(w, slot_.wo), bias_here ? P(w, slot_.bo) : nullptr,
                                           o.data(), false));
  ArenaBuffer o_in;
  CAIRN_RETURN_IF_ERROR(to_input_layout(&o, &o_in));
  o.Release();
  CAIRN_ASSIGN_OR_RETURN(s->x1, W(Tin * C));
  CAIRN_RETURN_IF_ERROR(be_->ResidualForward(Tin * C, s->x.data(), o_in.data(), s->x1.data()));
  o_in.Release();
  // MLP.
  CAIRN_ASSIGN_OR_RETURN(s->xn2, W(Tin * C));
  CAIRN_ASSIGN_OR_RETURN(s->rstd2, F32(Tin));
  CAIRN_RETURN_IF_ERROR(NormForward(w, slot_.norm2_w, slot_.norm2_b, n_in, s->x1.data(),
                                    s->xn2.data(), s->rstd2.f32()));
  const void* xm = s->xn2.data();
  if (sp_) {
    CAIRN_RETURN_IF_ERROR(GatherSeq(s->xn2.data(), C, &gathered));
    xm = gathered.data();
  }
  CAIRN_ASSIGN_OR_RETURN(s->up, W(Ta * f));
  CAIRN_ASSIGN_OR_RETURN(s->act, W(Ta * f));
  CAIRN_RETURN_IF_ERROR(be_->MatmulForward(MatmulShape::Linear(Ta, C, f), xm, P(w, slot_.w_up),
                                           P(w, slot_.b_up), s->up.data(), false));
  if (m_.swiglu) {
    CAIRN_ASSIGN_OR_RETURN(s->gate, W(Ta * f));
    CAIRN_RETURN_IF_ERROR(be_->MatmulForward(MatmulShape::Linear(Ta, C, f), xm,
                                             P(w, slot_.w_gate), nullptr, s->gate.data(), false));
    CAIRN_RETURN_IF_ERROR(
        be_->SwiGluForward(Ta * f, s->gate.data(), s->up.data(), s->act.data()));
  } else {
    CAIRN_RETURN_IF_ERROR(be_->GeluForward(Ta * f, s->up.data(), s->act.data()));
  }
  gathered.Release();
  CAIRN_ASSIGN_OR_RETURN(ArenaBuffer down, W(Ta * C));
  CAIRN_RETURN_IF_ERROR(be_->MatmulForward(MatmulShape::Linear(Ta, f, C), s->act.data(),
                                           P(w, slot_.w_down),
                                           bias_here ? P(w, slot_.b_down) : nullptr, down.data(),
                                           false));
  CAIRN_RETURN_IF_ERROR(to_input_layout(&down, y));
  // y = x1 + mlp, in place.
  return be_->ResidualForward(Tin * C, s->x1.data(), y->data(), y->data());
}

absl::Status LayerRunner::BlockBackward(const void* w, BlockSaved* s, ArenaBuffer dy,
                                        ArenaBuffer* dx, float* g) {
  const int64_t C = m_.hidden, H = m_.num_heads, KV = m_.num_kv_heads, D = m_.head_dim();
  const int64_t Tin = b_ * s_loc_;
  const int64_t Ta = ulysses_ ? Tin : b_ * seq_;
  const int64_t hq = ulysses_ ? H : H / place_.tp;
  const int64_t f = ulysses_ ? m_.ffn_hidden : m_.ffn_hidden / place_.tp;
  const AttentionShape attn_local = LocalAttention();
  const int64_t kvh = ulysses_ ? KV : attn_local.local_kv_heads();
  const NormShape n_in{Tin, C, 1e-5f};
  const bool bias_here = !tp_ || place_.tp_rank == 0;
  // Partial input gradient of column-parallel projections -> complete, in the input layout.
  auto from_projection = [&](ArenaBuffer* partial, ArenaBuffer* d_in) -> absl::Status {
    if (sp_) return ReduceScatterSeq(partial->data(), C, d_in);
    if (tp_) CAIRN_RETURN_IF_ERROR(TpAllReduce(partial->data(), partial->data(), Tin * C));
    *d_in = std::move(*partial);
    return absl::OkStatus();
  };

  // MLP. dx1, the gradient of the middle residual stream, starts as dy; the projection reads dy
  // in its token layout (gathered under SP, as is otherwise).
  ArenaBuffer dx1 = std::move(dy);
  ArenaBuffer gathered;
  const void* d_down = dx1.data();
  if (sp_) {
    CAIRN_RETURN_IF_ERROR(GatherSeq(dx1.data(), C, &gathered));
    d_down = gathered.data();
  }
  CAIRN_ASSIGN_OR_RETURN(ArenaBuffer d_act, W(Ta * f));
  CAIRN_RETURN_IF_ERROR(be_->MatmulBackward(
      MatmulShape::Linear(Ta, f, C), s->act.data(), P(w, slot_.w_down), d_down, d_act.data(),
      G(g, slot_.w_down), bias_here ? G(g, slot_.b_down) : nullptr, false));
  gathered.Release();
  const void* xm = s->xn2.data();
  if (sp_) {
    CAIRN_RETURN_IF_ERROR(GatherSeq(s->xn2.data(), C, &gathered));
    xm = gathered.data();
  }
  CAIRN_ASSIGN_OR_RETURN(ArenaBuffer d_xm, W(Ta * C));
  CAIRN_ASSIGN_OR_RETURN(ArenaBuffer d_up, W(Ta * f));
  if (m_.swiglu) {
    CAIRN_ASSIGN_OR_RETURN(ArenaBuffer d_gate, W(Ta * f));
    CAIRN_RETURN_IF_ERROR(be_->SwiGluBackward(Ta * f, s->gate.data(), s->up.data(),
                                              d_act.data(), d_gate.data(), d_up.data()));
    d_act.Release();
    CAIRN_RETURN_IF_ERROR(be_->MatmulBackward(MatmulShape::Linear(Ta, C, f), xm,
                                              P(w, slot_.w_gate), d_gate.data(), d_xm.data(),
                                              G(g, slot_.w_gate), nullptr, false));
    CAIRN_RETURN_IF_ERROR(be_->MatmulBackward(MatmulShape::Linear(Ta, C, f), xm,
                                              P(w, slot_.w_up), d_up.data(), d_xm.data(),
                                              G(g, slot_.w_up), G(g, slot_.b_up), true));
  } else {
    CAIRN_RETURN_IF_ERROR(
        be_->GeluBackward(Ta * f, s->up.data(), d_act.data(), d_up.data()));
    d_act.Release();
    CAIRN_RETURN_IF_ERROR(be_->MatmulBackward(MatmulShape::Linear(Ta, C, f), xm,
                                              P(w, slot_.w_up), d_up.data(), d_xm.data(),
                                              G(g, slot_.w_up), G(g, slot_.b_up), false));
  }
  d_up.Release();
  gathered.Release();
  ArenaBuffer d_xn2;
  CAIRN_RETURN_IF_ERROR(from_projection(&d_xm, &d_xn2));
  CAIRN_RETURN_IF_ERROR(NormBackward(w, g, slot_.norm2_w, slot_.norm2_b, n_in, s->x1.data(),
                                     s->rstd2.f32(), d_xn2.data(), dx1.data(), true));
  d_xn2.Release();
  for (ArenaBuffer* b : {&s->act, &s->up, &s->gate, &s->xn2, &s->rstd2, &s->x1}) b->Release();

  // Attention.
  const void* d_o = dx1.data();
  if (sp_) {
    CAIRN_RETURN_IF_ERROR(GatherSeq(dx1.data(), C, &gathered));
    d_o = gathered.data();
  }
  const void* attn_in = ulysses_ ? s->attn_shard.data() : s->attn.data();
  CAIRN_ASSIGN_OR_RETURN(ArenaBuffer d_attn_in, W(Ta * hq * D));
  CAIRN_RETURN_IF_ERROR(be_->MatmulBackward(
      MatmulShape::Linear(Ta, hq * D, C), attn_in, P(w, slot_.wo), d_o, d_attn_in.data(),
      G(g, slot_.wo), bias_here ? G(g, slot_.bo) : nullptr, false));
  gathered.Release();
  s->attn_shard.Release();
  ArenaBuffer d_out;  // in attention layout
  if (ulysses_) {
    CAIRN_RETURN_IF_ERROR(HeadsToSeq(d_attn_in.data(), H, false, &d_out));
    d_attn_in.Release();
  } else {
    d_out = std::move(d_attn_in);
  }
  CAIRN_ASSIGN_OR_RETURN(ArenaBuffer dq, W(s->q.count()));
  CAIRN_ASSIGN_OR_RETURN(ArenaBuffer dk, W(s->k.count()));
  CAIRN_ASSIGN_OR_RETURN(ArenaBuffer dv, W(s->v.count()));
  CAIRN_RETURN_IF_ERROR(be_->AttentionBackward(attn_local, s->q.data(), s->k.data(), s->v.data(),
                                               s->attn.data(), s->lse.f32(), d_out.data(),
                                               dq.data(), dk.data(), dv.data()));
  d_out.Release();
  for (ArenaBuffer* b : {&s->q, &s->k, &s->v, &s->attn, &s->lse}) b->Release();
  if (ulysses_) {
    ArenaBuffer a, b, c;
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
  const void* xa = s->xn1.data();
  if (sp_) {
    CAIRN_RETURN_IF_ERROR(GatherSeq(s->xn1.data(), C, &gathered));
    xa = gathered.data();
  }
  CAIRN_ASSIGN_OR_RETURN(ArenaBuffer d_xa, W(Ta * C));
  CAIRN_RETURN_IF_ERROR(be_->MatmulBackward(MatmulShape::Linear(Ta, C, hq * D), xa,
                                            P(w, slot_.wq), dq.data(), d_xa.data(),
                                            G(g, slot_.wq), G(g, slot_.bq), false));
  CAIRN_RETURN_IF_ERROR(be_->MatmulBackward(MatmulShape::Linear(Ta, C, kvh * D), xa,
                                            P(w, slot_.wk), dk.data(), d_xa.data(),
                                            G(g, slot_.wk), G(g, slot_.bk), true));
  CAIRN_RETURN_IF_ERROR(be_->MatmulBackward(MatmulShape::Linear(Ta, C, kvh * D), xa,
                                            P(w, slot_.wv), dv.data(), d_xa.data(),
                                            G(g, slot_.wv), G(g, slot_.bv), true));
  dq.Release();
  dk.Release();
  dv.Release();
  gathered.Release();
  ArenaBuffer d_xn1;
  CAIRN_RETURN_IF_ERROR(from_projection(&d_xa, &d_xn1));
  *dx = std::move(dx1);
  CAIRN_RETURN_IF_ERROR(NormBackward(w, g, slot_.norm1_w, slot_.norm1_b, n_in, s->x.data(),
                                     s->rstd1.f32(), d_xn1.data(), dx->data(), true));
  *s = BlockSaved();
  return absl::OkStatus();
}

// ---- Head: final norm, LM head, cross-entropy ---------------------------------------------------

absl::Status LayerRunner::HeadForward(const void* w, const MicroBatch& mb, ArenaBuffer x,
                                      HeadSaved* s, bool keep_gradient) {
  const int64_t C = m_.hidden;
  const int64_t Tin = b_ * s_loc_;
  const int64_t T = tp_ ? b_ * seq_ : Tin;  // tokens the LM head sees
  const plan::Range vocab = plan::SplitRange(m_.vocab, tp_ ? place_.tp : 1, tp_ ? place_.tp_rank : 0);
  const int64_t vloc = vocab.size();
  const NormShape n_in{Tin, C, 1e-5f};
  s->x = std::move(x);
  CAIRN_ASSIGN_OR_RETURN(s->xn, W(Tin * C));
  CAIRN_ASSIGN_OR_RETURN(s->rstd, F32(Tin));
  CAIRN_RETURN_IF_ERROR(NormForward(w, slot_.norm_f_w, slot_.norm_f_b, n_in, s->x.data(),
                                    s->xn.data(), s->rstd.f32()));
  ArenaBuffer gathered;
  const void* xh = s->xn.data();
  if (sp_) {
    CAIRN_RETURN_IF_ERROR(GatherSeq(s->xn.data(), C, &gathered));
    xh = gathered.data();
  }
  const void* lm = slot_.lm_head >= 0 ? P(w, slot_.lm_head) : tied_w_;
  if (lm == nullptr) return absl::InternalError("head without LM-head weights");
  // fp32 logits for the cross-entropy; the gradient (saved) in the working dtype.
  CAIRN_ASSIGN_OR_RETURN(ArenaBuffer logits, F32(T * vloc));
  MatmulShape head = MatmulShape::Linear(T, C, vloc);
  head.output_f32 = true;
  CAIRN_RETURN_IF_ERROR(be_->MatmulForward(head, xh, lm, nullptr, logits.data(), false));
  gathered.Release();
  CAIRN_ASSIGN_OR_RETURN(ArenaBuffer targets, SliceTokens(mb.targets));
  CrossEntropyShape ce;
  ce.tokens = T;
  ce.vocab_size = m_.vocab;
  ce.vocab_begin = vocab.begin;
  ce.vocab_end = vocab.end;
  CAIRN_ASSIGN_OR_RETURN(ArenaBuffer max, F32(T));
  CAIRN_ASSIGN_OR_RETURN(ArenaBuffer sums, F32(2 * T));
  CAIRN_ASSIGN_OR_RETURN(ArenaBuffer losses, F32(T));
  CAIRN_RETURN_IF_ERROR(be_->CrossEntropyMax(ce, logits.f32(), max.f32()));
  if (tp_) {
    CAIRN_RETURN_IF_ERROR(Run(comms_.tp->StartAllReduce(max.data(), max.data(), T,
                                                        DType::kFloat32, ReduceOp::kMax, stream_)));
  }
  CAIRN_RETURN_IF_ERROR(be_->CrossEntropySums(ce, logits.f32(), targets.i32(), max.f32(),
                                              sums.f32(), sums.f32() + T));
  if (tp_) {
    CAIRN_RETURN_IF_ERROR(Run(comms_.tp->StartAllReduce(sums.data(), sums.data(), 2 * T,
                                                        DType::kFloat32, ReduceOp::kSum, stream_)));
  }
  if (keep_gradient) {
    CAIRN_ASSIGN_OR_RETURN(s->dlogits, W(T * vloc));
  }
  CAIRN_RETURN_IF_ERROR(be_->CrossEntropyLossAndGrad(
      ce, logits.f32(), targets.i32(), max.f32(), sums.f32(), sums.f32() + T, loss_scale_,
      losses.f32(), keep_gradient ? s->dlogits.data() : logits.data()));
  // Every TP rank of a vocab-parallel head has every token's loss: rank 0 reports them.
  if (!tp_ || place_.tp_rank == 0) {
    CAIRN_RETURN_IF_ERROR(be_->Sum(T, losses.f32(), loss_sum_));
    loss_tokens_ += T;
  }
  return absl::OkStatus();
}

absl::Status LayerRunner::HeadBackward(const void* w, HeadSaved* s, ArenaBuffer* dx, float* g) {
  const int64_t C = m_.hidden;
  const int64_t Tin = b_ * s_loc_;
  const int64_t T = tp_ ? b_ * seq_ : Tin;
  const int64_t vloc = s->dlogits.count() / T;
  const NormShape n_in{Tin, C, 1e-5f};
  ArenaBuffer gathered;
  const void* xh = s->xn.data();
  if (sp_) {
    CAIRN_RETURN_IF_ERROR(GatherSeq(s->xn.data(), C, &gathered));
    xh = gathered.data();
  }
  CAIRN_ASSIGN_OR_RETURN(ArenaBuffer d_xh, W(T * C));
  const bool own = slot_.lm_head >= 0;
  CAIRN_RETURN_IF_ERROR(be_->MatmulBackward(
      MatmulShape::Linear(T, C, vloc), xh, own ? P(w, slot_.lm_head) : tied_w_,
      s->dlogits.data(), d_xh.data(), own ? G(g, slot_.lm_head) : tied_g_, nullptr, false));
  gathered.Release();
  s->dlogits.Release();
  ArenaBuffer d_xn;
  if (sp_) {
    CAIRN_RETURN_IF_ERROR(ReduceScatterSeq(d_xh.data(), C, &d_xn));
  } else {
    if (tp_) CAIRN_RETURN_IF_ERROR(TpAllReduce(d_xh.data(), d_xh.data(), Tin * C));
    d_xn = std::move(d_xh);
  }
  CAIRN_ASSIGN_OR_RETURN(*dx, W(Tin * C));
  CAIRN_RETURN_IF_ERROR(NormBackward(w, g, slot_.norm_f_w, slot_.norm_f_b, n_in, s->x.data(),
                                     s->rstd.f32(), d_xn.data(), dx->data(), false));
  *s = HeadSaved();
  return absl::OkStatus();
}

}  // namespace cairn::runtime
