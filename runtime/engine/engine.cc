#include "runtime/engine/engine.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "common/logging.h"
#include "common/status_macros.h"
#include "planner/cost/pipeline.h"

namespace cairn::runtime {

using planner::DpMode;
using planner::LayerKind;

namespace {

double Now() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

}  // namespace

struct Engine::Layer {
  LayerPlace place;
  LayerParams params;
  std::unique_ptr<LayerRunner> runner;
  Communicator* tp = nullptr;
  Communicator* shard = nullptr;
  Communicator* kv = nullptr;
  DpMode mode = DpMode::kDdp;   // effective (DDP when the shard group is one rank)
  int64_t size = 0;             // local parameters
  int64_t padded = 0;           // rounded up to a multiple of the shard group
  int64_t shard_len = 0;
  int64_t shard_begin = 0;
  Buffer weights;               // padded full, or the shard (ZeRO-3)
  Buffer grads;                 // padded full (DDP, ZeRO-1) or the shard (ZeRO-2/3)
  Buffer m, v;                  // AdamW moments over the updated range
  bool sharded_weights() const { return mode == DpMode::kZero3; }
  bool sharded_grads() const { return mode == DpMode::kZero2 || mode == DpMode::kZero3; }
  // The range of the flat buffer this rank updates.
  int64_t update_begin() const { return mode == DpMode::kDdp ? 0 : shard_begin; }
  int64_t update_len() const { return mode == DpMode::kDdp ? padded : shard_len; }
};

Engine::Engine(const planner::ModelDims& model, const planner::PlanSpec& plan, int seq_len,
               Communicator* world, ComputeBackend* backend, const TrainOptions& options)
    : model_(model), plan_(plan), seq_(seq_len), world_(world), be_(backend), opt_(options),
      topo_(world->size(), world->rank(), plan, model, seq_len) {}

Engine::~Engine() = default;

absl::StatusOr<std::unique_ptr<Engine>> Engine::Create(const planner::ModelDims& model,
                                                       const planner::PlanSpec& plan, int seq_len,
                                                       Communicator* world,
                                                       ComputeBackend* backend,
                                                       const TrainOptions& options) {
  std::unique_ptr<Engine> e(new Engine(model, plan, seq_len, world, backend, options));
  CAIRN_RETURN_IF_ERROR(e->Init());
  return e;
}

Communicator* Engine::Group(const std::vector<int>& ranks) const {
  if (ranks.size() <= 1) return nullptr;
  auto it = groups_.find(ranks);
  return it == groups_.end() ? nullptr : it->second.get();
}

absl::Status Engine::Init() {
  CAIRN_RETURN_IF_ERROR(topo_.Validate());
  if (seq_ > model_.max_seq_len) {
    return absl::InvalidArgumentError(absl::StrCat("sequence length ", seq_, " exceeds the model's ",
                                                   model_.max_seq_len));
  }
  for (const std::vector<int>& g : topo_.AllGroups()) {
    if (std::find(g.begin(), g.end(), world_->rank()) == g.end()) continue;
    std::string name = "group[";
    for (int r : g) absl::StrAppend(&name, r, ",");
    CAIRN_ASSIGN_OR_RETURN(std::unique_ptr<Communicator> c, world_->Split(g, name + "]"));
    groups_[g] = std::move(c);
  }
  const int L = model_.num_layers;
  const int p = topo_.pipeline_degree();
  const bool tied_local = model_.tied_embeddings && p == 1;
  const float loss_scale = 1.0f / (static_cast<float>(plan_.global_batch) * seq_);
  for (int i = topo_.first_layer(); i < topo_.first_layer() + topo_.num_layers(); ++i) {
    auto l = std::make_unique<Layer>();
    l->place = topo_.Place(i);
    const bool owns_lm_head = !(l->place.kind == LayerKind::kHead && tied_local);
    l->params = LayerParams::Build(model_, l->place, owns_lm_head);
    l->tp = Group(l->place.tp_group);
    l->shard = Group(l->place.shard_group);
    l->kv = Group(l->place.kv_group);
    l->mode = l->place.shard_size > 1 ? l->place.strategy.dp : DpMode::kDdp;
    l->size = l->params.size();
    const int64_t g = l->place.shard_size;
    l->padded = (l->size + g - 1) / g * g;
    l->shard_len = l->padded / g;
    l->shard_begin = l->place.shard_rank * l->shard_len;
    std::vector<float> full(l->padded, 0.0f);
    l->params.Initialize(opt_.seed, full.data());
    if (l->sharded_weights()) {
      l->weights = Buffer(&memory_, l->shard_len);
      std::memcpy(l->weights.data(), full.data() + l->shard_begin, l->shard_len * sizeof(float));
    } else {
      l->weights = Buffer(&memory_, l->padded);
      std::memcpy(l->weights.data(), full.data(), l->padded * sizeof(float));
    }
    l->grads = Buffer(&memory_, l->sharded_grads() ? l->shard_len : l->padded);
    l->m = Buffer(&memory_, l->update_len());
    l->v = Buffer(&memory_, l->update_len());
    LayerComms comms;
    comms.tp = l->tp;
    comms.kv = l->kv;
    l->runner = std::make_unique<LayerRunner>(model_, l->place, l->params, seq_,
                                              topo_.micro_batch(), be_, comms, &memory_,
                                              loss_scale);
    layers_.push_back(std::move(l));
  }
  (void)L;
  return absl::OkStatus();
}

absl::StatusOr<const float*> Engine::Weights(Layer& l, Buffer* tmp) {
  if (!l.sharded_weights()) return static_cast<const float*>(l.weights.data());
  *tmp = Buffer(&memory_, l.padded);
  CAIRN_RETURN_IF_ERROR(l.shard->AllGather(l.weights.data(), tmp->data(), l.shard_len));
  return static_cast<const float*>(tmp->data());
}

float* Engine::GradTarget(Layer& l, Buffer* tmp) {
  if (!l.sharded_grads()) return l.grads.data();
  *tmp = Buffer(&memory_, l.padded);
  return tmp->data();
}

absl::Status Engine::FinishGrad(Layer& l, Buffer* tmp) {
  if (!l.sharded_grads()) return absl::OkStatus();
  Buffer part(&memory_, l.shard_len);
  CAIRN_RETURN_IF_ERROR(l.shard->ReduceScatter(tmp->data(), part.data(), l.shard_len));
  for (int64_t i = 0; i < l.shard_len; ++i) l.grads.data()[i] += part.data()[i];
  tmp->Release();
  return absl::OkStatus();
}

namespace {

// The part of the micro-batch [B, S] a stage-local rank holds in a layout: rows [r0, r0 + rows),
// positions [s0, s0 + len).
struct Rect {
  int64_t r0 = 0, rows = 0, s0 = 0, len = 0;
  bool Contains(const Rect& o) const {
    return o.r0 >= r0 && o.r0 + o.rows <= r0 + rows && o.s0 >= s0 && o.s0 + o.len <= s0 + len;
  }
};

Rect Held(const ActLayout& l, int local, int64_t B, int64_t S) {
  Rect r;
  r.rows = B / l.dp;
  r.r0 = (local / l.tp) * r.rows;
  r.len = l.seq_sharded ? S / l.tp : S;
  r.s0 = l.seq_sharded ? (local % l.tp) * r.len : 0;
  return r;
}

Rect Intersect(const Rect& a, const Rect& b) {
  Rect r;
  r.r0 = std::max(a.r0, b.r0);
  r.s0 = std::max(a.s0, b.s0);
  r.rows = std::max<int64_t>(0, std::min(a.r0 + a.rows, b.r0 + b.rows) - r.r0);
  r.len = std::max<int64_t>(0, std::min(a.s0 + a.len, b.s0 + b.len) - r.s0);
  return r;
}

// Copies `part` (inside both rectangles) between a [a.rows, a.len, C] and a [b.rows, b.len, C]
// tensor, in either direction.
void CopyRect(const Rect& part, const Rect& src_rect, const float* src, const Rect& dst_rect,
              float* dst, int64_t C) {
  for (int64_t row = part.r0; row < part.r0 + part.rows; ++row) {
    const float* from = src + ((row - src_rect.r0) * src_rect.len + (part.s0 - src_rect.s0)) * C;
    float* to = dst + ((row - dst_rect.r0) * dst_rect.len + (part.s0 - dst_rect.s0)) * C;
    std::memcpy(to, from, part.len * C * sizeof(float));
  }
}

}  // namespace

absl::Status Engine::Relocate(const ActLayout& from, const ActLayout& to, Buffer* data) {
  if (from == to) return absl::OkStatus();
  const int n = topo_.stage_devices();
  const int me = topo_.local_rank();
  const int base = topo_.stage() * n;
  const int64_t C = model_.hidden, B = topo_.micro_batch(), S = seq_;
  const Rect mine = Held(from, me, B, S);
  const Rect want = Held(to, me, B, S);
  Buffer out(&memory_, want.rows * want.len * C);
  // Tags above the pipeline's (2 x micro-batch + direction), 4096 per relocation, cycling.
  const int tag_base = (1 << 24) + 4096 * static_cast<int>(relocation_counter_++ % 4096);
  // Who provides what: a rank that already holds an element keeps its own copy; otherwise the
  // element's canonical holder (the lowest-numbered rank holding it) sends it.
  auto provider = [&](int target, const Rect& piece_of_target) -> int {
    if (Held(from, target, B, S).Contains(piece_of_target)) return target;
    return (piece_of_target.r0 / mine.rows) * from.tp +
           (from.seq_sharded ? piece_of_target.s0 / mine.len : 0);
  };
  // Pieces: the target's wanted rectangle cut by the source layout's holdings.
  auto pieces = [&](int target) {
    std::vector<std::pair<int, Rect>> out_pieces;  // (provider, piece)
    const Rect w = Held(to, target, B, S);
    for (int q = 0; q < n; ++q) {
      const Rect h = Held(from, q, B, S);
      const Rect part = Intersect(w, h);
      if (part.rows == 0 || part.len == 0) continue;
      // Only canonical holders (tp index 0 of replicated layouts) cut pieces; then assign.
      if (!from.seq_sharded && q % from.tp != 0) continue;
      out_pieces.push_back({provider(target, part), part});
    }
    return out_pieces;
  };
  std::vector<std::unique_ptr<CommHandle>> sends;
  std::vector<Buffer> staging;
  // Send what I provide to others.
  for (int target = 0; target < n; ++target) {
    if (target == me) continue;
    int k = 0;  // index of the piece among those I send to `target`: its message tag
    for (const auto& [who, part] : pieces(target)) {
      if (who != me) continue;
      Buffer buf(&memory_, part.rows * part.len * C);
      CopyRect(part, mine, data->data(), part, buf.data(), C);
      CAIRN_ASSIGN_OR_RETURN(std::unique_ptr<CommHandle> h,
                             world_->SendAsync(buf.data(), buf.size(), base + target,
                                               tag_base + k++));
      sends.push_back(std::move(h));
      staging.push_back(std::move(buf));
    }
  }
  // Receive (or copy) what I need.
  std::vector<int> received(n, 0);
  for (const auto& [who, part] : pieces(me)) {
    if (who == me) {
      CopyRect(part, mine, data->data(), want, out.data(), C);
      continue;
    }
    Buffer buf(&memory_, part.rows * part.len * C);
    CAIRN_RETURN_IF_ERROR(
        world_->Recv(buf.data(), buf.size(), base + who, tag_base + received[who]++));
    CopyRect(part, part, buf.data(), want, out.data(), C);
  }
  for (auto& h : sends) CAIRN_RETURN_IF_ERROR(h->Wait());
  *data = std::move(out);
  return absl::OkStatus();
}

absl::Status Engine::ForwardMicroBatch(int j, const MicroBatch& mb) {
  const int n = topo_.stage_devices();
  const ActLayout boundary = topo_.BoundaryLayout();
  Buffer x;
  ActLayout cur = boundary;
  double t0 = Now();
  if (!topo_.is_first_stage()) {
    const int64_t count = (topo_.micro_batch() / boundary.dp) *
                          (boundary.seq_sharded ? seq_ / boundary.tp : seq_) * model_.hidden;
    x = Buffer(&memory_, count);
    CAIRN_RETURN_IF_ERROR(world_->Recv(x.data(), count, world_->rank() - n, 2 * j));
    if (plan_.schedule == planner::Schedule::k1F1B) {
      CAIRN_RETURN_IF_ERROR(
          Complete(&backward_sends_, j - (topo_.pipeline_degree() - topo_.stage()) - 1));
    }
  }
  for (size_t i = 0; i < layers_.size(); ++i) {
    Layer& l = *layers_[i];
    if (l.place.kind != LayerKind::kEmbedding) {
      CAIRN_RETURN_IF_ERROR(Relocate(cur, l.place.layout, &x));
    }
    cur = l.place.layout;
    comm_s_ += Now() - t0;
    t0 = Now();
    Buffer wtmp, etmp;
    CAIRN_ASSIGN_OR_RETURN(const float* w, Weights(l, &wtmp));
    if (l.place.kind == LayerKind::kHead && !l.params.has("lm_head")) {
      Layer& e = *layers_.front();
      CAIRN_ASSIGN_OR_RETURN(const float* ew, Weights(e, &etmp));
      l.runner->SetTiedLmHead(ew + e.params.tensor("wte").offset, nullptr);
    }
    Buffer y;
    Saved& s = saved_[j][i];
    CAIRN_RETURN_IF_ERROR(l.runner->Forward(w, mb, x.data(), &y, &s));
    loss_sum_ += s.loss_sum;
    loss_tokens_ += s.loss_tokens;
    x = std::move(y);
    compute_s_ += Now() - t0;
    t0 = Now();
  }
  if (!topo_.is_last_stage()) {
    CAIRN_RETURN_IF_ERROR(Relocate(cur, boundary, &x));
    CAIRN_ASSIGN_OR_RETURN(std::unique_ptr<CommHandle> h,
                           world_->SendAsync(x.data(), x.size(), world_->rank() + n, 2 * j));
    forward_sends_[j] = PendingSend{std::move(h), std::move(x)};
  }
  comm_s_ += Now() - t0;
  return absl::OkStatus();
}

absl::Status Engine::BackwardMicroBatch(int j, const MicroBatch& mb) {
  const int n = topo_.stage_devices();
  const ActLayout boundary = topo_.BoundaryLayout();
  Buffer dy;
  ActLayout cur = boundary;
  double t0 = Now();
  if (!topo_.is_last_stage()) {
    const int64_t count = (topo_.micro_batch() / boundary.dp) *
                          (boundary.seq_sharded ? seq_ / boundary.tp : seq_) * model_.hidden;
    dy = Buffer(&memory_, count);
    CAIRN_RETURN_IF_ERROR(world_->Recv(dy.data(), count, world_->rank() + n, 2 * j + 1));
    CAIRN_RETURN_IF_ERROR(Complete(&forward_sends_, j));
  }
  for (int i = static_cast<int>(layers_.size()) - 1; i >= 0; --i) {
    Layer& l = *layers_[i];
    if (l.place.kind != LayerKind::kHead) {
      CAIRN_RETURN_IF_ERROR(Relocate(cur, l.place.layout, &dy));
    }
    cur = l.place.layout;
    comm_s_ += Now() - t0;
    t0 = Now();
    Buffer wtmp, gtmp, etmp, egtmp;
    CAIRN_ASSIGN_OR_RETURN(const float* w, Weights(l, &wtmp));
    float* g = GradTarget(l, &gtmp);
    Layer* tied = nullptr;
    if (l.place.kind == LayerKind::kHead && !l.params.has("lm_head")) {
      tied = layers_.front().get();
      CAIRN_ASSIGN_OR_RETURN(const float* ew, Weights(*tied, &etmp));
      float* eg = GradTarget(*tied, &egtmp);
      const int64_t off = tied->params.tensor("wte").offset;
      l.runner->SetTiedLmHead(ew + off, eg + off);
    }
    Buffer dx;
    CAIRN_RETURN_IF_ERROR(l.runner->Backward(w, mb, &saved_[j][i], dy.data(), &dx, g));
    CAIRN_RETURN_IF_ERROR(FinishGrad(l, &gtmp));
    if (tied) CAIRN_RETURN_IF_ERROR(FinishGrad(*tied, &egtmp));
    dy = std::move(dx);
    compute_s_ += Now() - t0;
    t0 = Now();
  }
  if (!topo_.is_first_stage()) {
    CAIRN_RETURN_IF_ERROR(Relocate(cur, boundary, &dy));
    CAIRN_ASSIGN_OR_RETURN(std::unique_ptr<CommHandle> h,
                           world_->SendAsync(dy.data(), dy.size(), world_->rank() - n, 2 * j + 1));
    backward_sends_[j] = PendingSend{std::move(h), std::move(dy)};
  }
  comm_s_ += Now() - t0;
  return absl::OkStatus();
}

absl::Status Engine::Complete(std::map<int, PendingSend>* sends, int up_to) {
  while (!sends->empty() && sends->begin()->first <= up_to) {
    CAIRN_RETURN_IF_ERROR(sends->begin()->second.handle->Wait());
    sends->erase(sends->begin());
  }
  return absl::OkStatus();
}

double Engine::LearningRate(int64_t step) const {
  const double peak = opt_.adamw.learning_rate;
  if (opt_.warmup_steps > 0 && step < opt_.warmup_steps) {
    return peak * (step + 1) / opt_.warmup_steps;
  }
  if (opt_.total_steps <= opt_.warmup_steps) return peak;
  const double progress = std::min(1.0, static_cast<double>(step - opt_.warmup_steps) /
                                            (opt_.total_steps - opt_.warmup_steps));
  const double min_lr = peak * opt_.min_lr_ratio;
  return min_lr + 0.5 * (peak - min_lr) * (1.0 + std::cos(M_PI * progress));
}

absl::Status Engine::ReduceAndUpdate(int64_t step, StepResult* result, bool update) {
  const int p = topo_.pipeline_degree();
  // 1. Tied embeddings split over stages: sum the two copies' gradients (full gradients).
  if (model_.tied_embeddings && p > 1 && (topo_.is_first_stage() || topo_.is_last_stage())) {
    Layer& l = topo_.is_first_stage() ? *layers_.front() : *layers_.back();
    const ParamTensor& t = l.params.tensor(topo_.is_first_stage() ? "wte" : "lm_head");
    Communicator* twin =
        Group({topo_.local_rank(), (p - 1) * topo_.stage_devices() + topo_.local_rank()});
    float* g = l.grads.data() + t.offset;
    CAIRN_RETURN_IF_ERROR(twin->AllReduce(g, g, t.count()));
  }
  // 2. Data-parallel reduction; afterwards `upd` points at the gradient of the updated range.
  std::vector<Buffer> zero1(layers_.size());
  std::vector<float*> upd(layers_.size());
  for (size_t i = 0; i < layers_.size(); ++i) {
    Layer& l = *layers_[i];
    upd[i] = l.grads.data();
    if (l.place.shard_size == 1) continue;
    if (l.mode == DpMode::kDdp) {
      CAIRN_RETURN_IF_ERROR(l.shard->AllReduce(l.grads.data(), l.grads.data(), l.padded));
    } else if (l.mode == DpMode::kZero1) {
      zero1[i] = Buffer(&memory_, l.shard_len);
      CAIRN_RETURN_IF_ERROR(l.shard->ReduceScatter(l.grads.data(), zero1[i].data(), l.shard_len));
      upd[i] = zero1[i].data();
    }
  }
  // 3. Sums over TP ranks (partial replicated tensors) and over ranks sharing a kv head, on the
  //    updated range (the same offsets on every member: TP ranks share their shard rank).
  auto for_each_slice = [&](Layer& l, const ParamTensor& t, auto fn) -> absl::Status {
    const int64_t b = std::max(t.offset, l.update_begin());
    const int64_t e = std::min(t.offset + t.count(), l.update_begin() + l.update_len());
    if (b >= e) return absl::OkStatus();
    return fn(b, e);
  };
  for (size_t i = 0; i < layers_.size(); ++i) {
    Layer& l = *layers_[i];
    for (const ParamTensor& t : l.params.tensors()) {
      Communicator* c = t.tp_partial ? l.tp : (t.kv_share > 1 ? l.kv : nullptr);
      if (c == nullptr) continue;
      CAIRN_RETURN_IF_ERROR(for_each_slice(l, t, [&](int64_t b, int64_t e) {
        float* g = upd[i] + (b - l.update_begin());
        return c->AllReduce(g, g, e - b);
      }));
    }
  }
  // 4. Global gradient norm over unique elements.
  float local_sq = 0;
  for (size_t i = 0; i < layers_.size(); ++i) {
    Layer& l = *layers_[i];
    if (l.mode == DpMode::kDdp && l.place.shard_rank != 0) continue;  // replicas
    for (const ParamTensor& t : l.params.tensors()) {
      if (t.tp_replicated && l.place.tp_rank != 0) continue;
      if (t.kv_share > 1 && l.place.tp_rank % t.kv_share != 0) continue;
      if (model_.tied_embeddings && p > 1 && t.name == "lm_head") continue;
      CAIRN_RETURN_IF_ERROR(for_each_slice(l, t, [&](int64_t b, int64_t e) {
        return be_->NormSquared(e - b, upd[i] + (b - l.update_begin()), &local_sq);
      }));
    }
  }
  float total_sq = local_sq;
  CAIRN_RETURN_IF_ERROR(world_->AllReduce(&local_sq, &total_sq, 1));
  const double norm = std::sqrt(static_cast<double>(total_sq));
  result->grad_norm = norm;
  if (!update) return absl::OkStatus();
  const float clip =
      opt_.grad_clip > 0 && norm > opt_.grad_clip ? static_cast<float>(opt_.grad_clip / (norm + 1e-6))
                                                  : 1.0f;
  // 5. AdamW on the updated range, then gather ZeRO-1/2 weights.
  AdamWConfig cfg = opt_.adamw;
  cfg.learning_rate = static_cast<float>(LearningRate(step));
  result->learning_rate = cfg.learning_rate;
  for (size_t i = 0; i < layers_.size(); ++i) {
    Layer& l = *layers_[i];
    float* w = l.sharded_weights() ? l.weights.data() - l.update_begin() : l.weights.data();
    for (const ParamTensor& t : l.params.tensors()) {
      CAIRN_RETURN_IF_ERROR(for_each_slice(l, t, [&](int64_t b, int64_t e) {
        const int64_t r = b - l.update_begin();
        return be_->AdamWUpdate(e - b, cfg, step + 1, t.decay, clip, w + b, upd[i] + r,
                                l.m.data() + r, l.v.data() + r);
      }));
    }
    if ((l.mode == DpMode::kZero1 || l.mode == DpMode::kZero2) && l.place.shard_size > 1) {
      Buffer mine(&memory_, l.shard_len);
      std::memcpy(mine.data(), l.weights.data() + l.shard_begin, l.shard_len * sizeof(float));
      CAIRN_RETURN_IF_ERROR(l.shard->AllGather(mine.data(), l.weights.data(), l.shard_len));
    }
    l.grads.Zero();
  }
  return absl::OkStatus();
}

absl::Status Engine::RunSchedule(int64_t step, const Sampler& sampler) {
  loss_sum_ = 0;
  loss_tokens_ = 0;
  compute_s_ = comm_s_ = 0;
  const int m = plan_.num_micro_batches;
  const int mbs = topo_.micro_batch();
  saved_.clear();
  saved_.resize(m);
  for (auto& per_layer : saved_) per_layer.resize(layers_.size());
  std::vector<MicroBatch> batches(m);
  for (int j = 0; j < m; ++j) {
    MicroBatch& mb = batches[j];
    mb.batch = mbs;
    mb.seq = seq_;
    mb.inputs.resize(static_cast<size_t>(mbs) * seq_);
    mb.targets.resize(static_cast<size_t>(mbs) * seq_);
    std::vector<int32_t> in, tg;
    for (int s = 0; s < mbs; ++s) {
      CAIRN_RETURN_IF_ERROR(sampler(step, static_cast<int64_t>(j) * mbs + s, &in, &tg));
      if (static_cast<int>(in.size()) != seq_ || static_cast<int>(tg.size()) != seq_) {
        return absl::InvalidArgumentError("the sampler returned a sample of the wrong length");
      }
      std::copy(in.begin(), in.end(), mb.inputs.begin() + static_cast<int64_t>(s) * seq_);
      std::copy(tg.begin(), tg.end(), mb.targets.begin() + static_cast<int64_t>(s) * seq_);
    }
  }
  for (const planner::PipelineOp& op :
       planner::StageSchedule(plan_.schedule, topo_.pipeline_degree(), topo_.stage(), m)) {
    if (op.forward) {
      CAIRN_RETURN_IF_ERROR(ForwardMicroBatch(op.micro_batch, batches[op.micro_batch]));
    } else {
      CAIRN_RETURN_IF_ERROR(BackwardMicroBatch(op.micro_batch, batches[op.micro_batch]));
    }
  }
  CAIRN_RETURN_IF_ERROR(Complete(&forward_sends_, m));
  CAIRN_RETURN_IF_ERROR(Complete(&backward_sends_, m));
  saved_.clear();
  return absl::OkStatus();
}

absl::StatusOr<StepResult> Engine::Step(int64_t step, const Sampler& sampler) {
  const double start = Now();
  memory_.ResetPeak();
  StepResult result;
  CAIRN_RETURN_IF_ERROR(RunSchedule(step, sampler));
  const double t0 = Now();
  CAIRN_RETURN_IF_ERROR(ReduceAndUpdate(step, &result));
  float loss[2] = {static_cast<float>(loss_sum_), static_cast<float>(loss_tokens_)};
  CAIRN_RETURN_IF_ERROR(world_->AllReduce(loss, loss, 2));
  comm_s_ += Now() - t0;
  result.loss = loss[1] > 0 ? loss[0] / loss[1] : 0;
  result.step_time_s = Now() - start;
  result.peak_memory_bytes = memory_.peak_bytes();
  result.compute_s = compute_s_;
  result.comm_s = comm_s_;
  return result;
}

absl::StatusOr<double> Engine::LossAndGradients(
    int64_t step, const Sampler& sampler,
    std::map<std::string, std::vector<std::pair<int64_t, float>>>* grads) {
  CAIRN_RETURN_IF_ERROR(RunSchedule(step, sampler));
  StepResult unused;
  CAIRN_RETURN_IF_ERROR(ReduceAndUpdate(step, &unused, /*update=*/false));
  double loss[2] = {loss_sum_, static_cast<double>(loss_tokens_)};
  float lf[2] = {static_cast<float>(loss[0]), static_cast<float>(loss[1])};
  CAIRN_RETURN_IF_ERROR(world_->AllReduce(lf, lf, 2));
  // Only the gradient of the updated range is reduced on this rank (see ReduceAndUpdate); with
  // one rank that is everything.
  for (auto& lp : layers_) {
    Layer& l = *lp;
    if (l.place.shard_size > 1 && l.mode != DpMode::kDdp) {
      return absl::UnimplementedError("LossAndGradients supports DDP layers only");
    }
    for (const ParamTensor& t : l.params.tensors()) {
      auto& v = (*grads)[absl::StrCat(l.place.index, ".", t.name)];
      for (int64_t k = 0; k < t.count(); ++k) {
        v.push_back({t.GlobalIndex(k), l.grads.data()[t.offset + k]});
      }
    }
    l.grads.Zero();
  }
  return lf[1] > 0 ? static_cast<double>(lf[0]) / lf[1] : 0.0;
}

absl::StatusOr<std::map<std::string, std::vector<std::pair<int64_t, float>>>>
Engine::LocalParameters() {
  // The values part of a checkpoint snapshot.
  CAIRN_ASSIGN_OR_RETURN(TensorRecords records, Snapshot());
  std::map<std::string, std::vector<std::pair<int64_t, float>>> out;
  for (const TensorRecord& r : records) {
    if (r.kind != RecordKind::kValue) continue;
    auto& v = out[r.name];
    for (size_t k = 0; k < r.indices.size(); ++k) v.push_back({r.indices[k], r.values[k]});
  }
  return out;
}

}  // namespace cairn::runtime

namespace cairn::runtime {

absl::StatusOr<TensorRecords> Engine::Snapshot() {
  TensorRecords out;
  for (auto& lp : layers_) {
    Layer& l = *lp;
    Buffer tmp;
    CAIRN_ASSIGN_OR_RETURN(const float* w, Weights(l, &tmp));
    for (const ParamTensor& t : l.params.tensors()) {
      const std::string name = absl::StrCat(l.place.index, ".", t.name);
      TensorRecord values{name, RecordKind::kValue, {}, {}};
      for (int64_t k = 0; k < t.count(); ++k) {
        values.indices.push_back(t.GlobalIndex(k));
        values.values.push_back(w[t.offset + k]);
      }
      out.push_back(std::move(values));
      const int64_t b = std::max(t.offset, l.update_begin());
      const int64_t e = std::min(t.offset + t.count(), l.update_begin() + l.update_len());
      if (b >= e) continue;
      TensorRecord m{name, RecordKind::kAdamM, {}, {}}, v{name, RecordKind::kAdamV, {}, {}};
      for (int64_t x = b; x < e; ++x) {
        const int64_t g = t.GlobalIndex(x - t.offset);
        m.indices.push_back(g);
        v.indices.push_back(g);
        m.values.push_back(l.m.data()[x - l.update_begin()]);
        v.values.push_back(l.v.data()[x - l.update_begin()]);
      }
      out.push_back(std::move(m));
      out.push_back(std::move(v));
    }
  }
  return out;
}

absl::Status Engine::Restore(const Checkpoint& ck) {
  const int L = model_.num_layers;
  for (auto& lp : layers_) {
    Layer& l = *lp;
    std::vector<float> full(l.padded, 0.0f);
    for (const ParamTensor& t : l.params.tensors()) {
      std::string name = absl::StrCat(l.place.index, ".", t.name);
      // A tied head's own copy starts from the embedding when the checkpoint has none.
      if (t.name == "lm_head" && model_.tied_embeddings && !ck.values.count(name)) name = "0.wte";
      auto find = [&](const auto& table, int64_t g, float* out) -> absl::Status {
        auto it = table.find(name);
        if (it == table.end()) {
          return absl::NotFoundError(absl::StrCat("the checkpoint has no tensor ", name,
                                                  " (a different model?)"));
        }
        auto e = it->second.find(g);
        if (e == it->second.end()) {
          return absl::NotFoundError(absl::StrCat("the checkpoint's ", name, " has no element ", g,
                                                  " (a different model shape?)"));
        }
        *out = e->second;
        return absl::OkStatus();
      };
      for (int64_t k = 0; k < t.count(); ++k) {
        CAIRN_RETURN_IF_ERROR(find(ck.values, t.GlobalIndex(k), &full[t.offset + k]));
      }
      const int64_t b = std::max(t.offset, l.update_begin());
      const int64_t e = std::min(t.offset + t.count(), l.update_begin() + l.update_len());
      for (int64_t x = b; x < e; ++x) {
        const int64_t g = t.GlobalIndex(x - t.offset);
        CAIRN_RETURN_IF_ERROR(find(ck.adam_m, g, &l.m.data()[x - l.update_begin()]));
        CAIRN_RETURN_IF_ERROR(find(ck.adam_v, g, &l.v.data()[x - l.update_begin()]));
      }
    }
    if (l.sharded_weights()) {
      std::memcpy(l.weights.data(), full.data() + l.shard_begin, l.shard_len * sizeof(float));
    } else {
      std::memcpy(l.weights.data(), full.data(), l.padded * sizeof(float));
    }
  }
  (void)L;
  return absl::OkStatus();
}

}  // namespace cairn::runtime
