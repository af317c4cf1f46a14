#include "runtime/engine/engine.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "common/plan/schedule.h"
#include "common/status_macros.h"
#include "runtime/comm/null/null_communicator.h"
#include "runtime/compute/null/null_backend.h"

namespace cairn::runtime {

using plan::DpMode;
using plan::LayerKind;

namespace {

double Now() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

// Steps the dry run replays: the first (optimizer states appear) and a steady one.
constexpr int kDryRunSteps = 2;

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
  // DDP / ZeRO-1 reduction started during the last micro-batch's backward (not for tied layers
  // on two stages, whose copies are summed first).
  bool overlap_sync = false;
  ArenaBuffer working;   // working dtype: padded (DDP, ZeRO-1/2) or the shard (ZeRO-3)
  ArenaBuffer master;    // fp32 over the updated range; empty when the working dtype is fp32
  ArenaBuffer grads;     // fp32: padded (DDP, ZeRO-1) or the shard (ZeRO-2/3)
  ArenaBuffer m, v;      // AdamW moments over the updated range
  ArenaBuffer z1_shard;  // ZeRO-1: this step's reduce-scattered gradient shard

  bool sharded_weights() const { return mode == DpMode::kZero3; }
  bool sharded_grads() const { return mode == DpMode::kZero2 || mode == DpMode::kZero3; }
  // The range of the flat buffer this rank updates.
  int64_t update_begin() const { return mode == DpMode::kDdp ? 0 : shard_begin; }
  int64_t update_len() const { return mode == DpMode::kDdp ? padded : shard_len; }
  // fp32 values of the updated range (element x at [x - update_begin()]).
  float* Master() const {
    if (!master.empty()) return master.f32();
    return sharded_weights() ? working.f32() : working.f32() + update_begin();
  }
  // The working copy of the updated range.
  void* WorkingUpdated() const {
    return sharded_weights() ? working.data() : working.at(update_begin());
  }
  // The reduced gradient of the updated range (valid after the data-parallel reduction).
  float* UpdatedGrads() const {
    return mode == DpMode::kZero1 ? z1_shard.f32() : grads.f32();
  }
};

struct Engine::Gathered {
  ArenaBuffer buffer;                    // ZeRO-3: the gathered weights
  std::unique_ptr<CommHandle> handle;    // the all-gather in flight
  Layer* layer = nullptr;
};

struct Engine::PendingReduce {
  Layer* layer = nullptr;
  ArenaBuffer full;                      // the micro-batch's full gradient
  ArenaBuffer part;                      // this rank's reduced shard of it
  std::unique_ptr<CommHandle> handle;
};

Engine::Engine(const plan::ModelDims& model, const plan::PlanSpec& plan, int seq_len,
               Communicator* world, ComputeBackend* backend, const TrainOptions& options,
               DeviceArena* arena, bool dry_run)
    : model_(model),
      plan_(plan),
      seq_(seq_len),
      world_(world),
      be_(backend),
      opt_(options),
      topo_(world->size(), world->rank(), plan, model, seq_len),
      arena_(arena),
      dry_run_(dry_run),
      wd_(backend->working_dtype()),
      stream_(backend->default_stream()) {}

Engine::~Engine() = default;

absl::Status Engine::DryRun(const plan::ModelDims& model, const plan::PlanSpec& plan, int seq_len,
                            int world_size, int rank, DType working_dtype,
                            const TrainOptions& options, DeviceArena* arena) {
  NullBackend null_backend(working_dtype);
  NullCommunicator null_world(rank, world_size);
  Engine dry(model, plan, seq_len, &null_world, &null_backend, options, arena, /*dry_run=*/true);
  CAIRN_RETURN_IF_ERROR(dry.topo_.Validate());
  CAIRN_RETURN_IF_ERROR(dry.Init());
  for (int s = 0; s < kDryRunSteps; ++s) CAIRN_RETURN_IF_ERROR(dry.Step(s, Sampler()).status());
  // An evaluation between steps (what the trainer runs every --val-every steps): its transient
  // buffers are freed before it returns, so the steps after it replay the same offsets, and its
  // extent is in the plan.
  return dry.Evaluate(0, Sampler()).status();
}

absl::StatusOr<int64_t> Engine::PlanMemory(const plan::ModelDims& model,
                                           const plan::PlanSpec& plan, int seq_len,
                                           int world_size, int rank, DType working_dtype,
                                           const TrainOptions& options) {
  std::unique_ptr<DeviceArena> planning = DeviceArena::ForPlanning();
  CAIRN_RETURN_IF_ERROR(DryRun(model, plan, seq_len, world_size, rank, working_dtype, options,
                               planning.get()));
  return planning->extent_bytes();
}

absl::StatusOr<std::unique_ptr<Engine>> Engine::Create(const plan::ModelDims& model,
                                                       const plan::PlanSpec& plan, int seq_len,
                                                       Communicator* world,
                                                       ComputeBackend* backend,
                                                       const TrainOptions& options) {
  CAIRN_ASSIGN_OR_RETURN(int64_t bytes,
                         PlanMemory(model, plan, seq_len, world->size(), world->rank(),
                                    backend->working_dtype(), options));
  CAIRN_ASSIGN_OR_RETURN(std::unique_ptr<DeviceArena> arena,
                         DeviceArena::Create(backend, bytes));
  std::unique_ptr<Engine> e(
      new Engine(model, plan, seq_len, world, backend, options, arena.get(), /*dry_run=*/false));
  e->owned_arena_ = std::move(arena);
  CAIRN_RETURN_IF_ERROR(e->Init());
  return e;
}

Communicator* Engine::Group(const std::vector<int>& ranks) const {
  if (ranks.size() <= 1) return nullptr;
  auto it = groups_.find(ranks);
  return it == groups_.end() ? nullptr : it->second.get();
}

absl::Status Engine::Finish(CommHandle* handle) {
  return stream_ != nullptr ? handle->WaitOn(stream_) : handle->Wait();
}

absl::Status Engine::Finish(absl::StatusOr<std::unique_ptr<CommHandle>> op) {
  if (!op.ok()) return op.status();
  return Finish(op->get());
}

std::vector<char> Engine::HostWorking(const float* values, int64_t n) const {
  std::vector<char> out(static_cast<size_t>(n) * DTypeSize(wd_));
  if (wd_ == DType::kBFloat16) {
    auto* dst = reinterpret_cast<BFloat16*>(out.data());
    for (int64_t i = 0; i < n; ++i) dst[i] = ToBFloat16(values[i]);
  } else {
    std::memcpy(out.data(), values, out.size());
  }
  return out;
}

absl::Status Engine::LoadValues(Layer& l, const std::vector<float>& full) {
  if (dry_run_) return absl::OkStatus();
  const int64_t begin = l.sharded_weights() ? l.shard_begin : 0;
  const std::vector<char> w = HostWorking(full.data() + begin, l.working.count());
  CAIRN_RETURN_IF_ERROR(be_->CopyToDevice(l.working.data(), w.data(), l.working.bytes()));
  if (!l.master.empty()) {
    CAIRN_RETURN_IF_ERROR(
        be_->CopyToDevice(l.master.data(), full.data() + l.update_begin(), l.master.bytes()));
  }
  return absl::OkStatus();
}

absl::Status Engine::Init() {
  // Every rank takes part in every split (NCCL's split is collective over the parent); ranks
  // outside a group get nullptr.
  for (const std::vector<int>& g : topo_.AllGroups()) {
    std::string name = "group[";
    for (int r : g) absl::StrAppend(&name, r, ",");
    CAIRN_ASSIGN_OR_RETURN(std::unique_ptr<Communicator> c, world_->Split(g, name + "]"));
    if (c != nullptr) groups_[g] = std::move(c);
  }
  pp_forward_ = pp_backward_ = world_;
  if (topo_.num_chunks() > 1) {
    std::vector<int> all(world_->size());
    for (int r = 0; r < world_->size(); ++r) all[r] = r;
    CAIRN_ASSIGN_OR_RETURN(owned_pp_forward_, world_->Split(all, "pipeline-forward"));
    CAIRN_ASSIGN_OR_RETURN(owned_pp_backward_, world_->Split(all, "pipeline-backward"));
    pp_forward_ = owned_pp_forward_.get();
    pp_backward_ = owned_pp_backward_.get();
  }
  CAIRN_ASSIGN_OR_RETURN(scalars_, F32(2));
  const int p = topo_.pipeline_degree();
  const bool tied_local = model_.tied_embeddings && p == 1;
  const float loss_scale = 1.0f / (static_cast<float>(plan_.global_batch) * seq_);
  std::vector<int> indices;
  for (int c = 0; c < topo_.num_chunks(); ++c) {
    chunk_begin_.push_back(indices.size());
    for (int i = 0; i < topo_.chunk_num_layers(c); ++i) {
      indices.push_back(topo_.chunk_first_layer(c) + i);
    }
  }
  chunk_begin_.push_back(indices.size());
  for (int i : indices) {
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
    const bool tied_across = model_.tied_embeddings && p > 1 && l->place.kind != LayerKind::kBlock;
    l->overlap_sync = g > 1 && !l->sharded_grads() && !tied_across;
    CAIRN_ASSIGN_OR_RETURN(l->working, W(l->sharded_weights() ? l->shard_len : l->padded));
    if (wd_ != DType::kFloat32) {
      CAIRN_ASSIGN_OR_RETURN(l->master, F32(l->update_len()));
    }
    CAIRN_ASSIGN_OR_RETURN(l->grads, F32(l->sharded_grads() ? l->shard_len : l->padded));
    CAIRN_ASSIGN_OR_RETURN(l->m, F32(l->update_len()));
    CAIRN_ASSIGN_OR_RETURN(l->v, F32(l->update_len()));
    for (ArenaBuffer* b : {&l->grads, &l->m, &l->v}) {
      CAIRN_RETURN_IF_ERROR(be_->Zero(b->data(), b->bytes()));
    }
    if (!dry_run_) {
      std::vector<float> full(static_cast<size_t>(l->padded), 0.0f);
      l->params.Initialize(opt_.seed, full.data());
      CAIRN_RETURN_IF_ERROR(LoadValues(*l, full));
    }
    LayerComms comms;
    comms.tp = l->tp;
    comms.kv = l->kv;
    l->runner = std::make_unique<LayerRunner>(model_, l->place, l->params, seq_,
                                              topo_.micro_batch(), be_, comms, arena_,
                                              loss_scale, scalars_.f32());
    layers_.push_back(std::move(l));
  }
  return be_->Synchronize();
}

// ---- Weights, gradients and their data-parallel reduction -------------------------------------

absl::StatusOr<Engine::Gathered> Engine::StartGather(Layer& l) {
  Gathered g;
  g.layer = &l;
  if (!l.sharded_weights()) return g;
  CAIRN_ASSIGN_OR_RETURN(g.buffer, W(l.padded));
  CAIRN_ASSIGN_OR_RETURN(g.handle, l.shard->StartAllGather(l.working.data(), g.buffer.data(),
                                                           l.shard_len, wd_, stream_));
  return g;
}

absl::StatusOr<const void*> Engine::UseWeights(Layer& l, Gathered* g) {
  if (!l.sharded_weights()) return static_cast<const void*>(l.working.data());
  if (g->handle != nullptr) {
    CAIRN_RETURN_IF_ERROR(Finish(g->handle.get()));
    g->handle.reset();
  }
  return static_cast<const void*>(g->buffer.data());
}

absl::StatusOr<float*> Engine::GradTarget(Layer& l, ArenaBuffer* tmp) {
  if (!l.sharded_grads()) return l.grads.f32();
  CAIRN_ASSIGN_OR_RETURN(*tmp, F32(l.padded));
  CAIRN_RETURN_IF_ERROR(be_->Zero(tmp->data(), tmp->bytes()));
  return tmp->f32();
}

absl::Status Engine::AfterBackward(Layer& l, ArenaBuffer tmp, bool last_micro_batch) {
  if (l.sharded_grads()) {
    // ZeRO-2/3: reduce-scatter this micro-batch's gradient, completed one layer later.
    PendingReduce r;
    r.layer = &l;
    r.full = std::move(tmp);
    CAIRN_ASSIGN_OR_RETURN(r.part, F32(l.shard_len));
    CAIRN_ASSIGN_OR_RETURN(r.handle,
                           l.shard->StartReduceScatter(r.full.data(), r.part.data(), l.shard_len,
                                                       DType::kFloat32, ReduceOp::kSum, stream_));
    reduce_scatters_.push_back(std::move(r));
    return DrainReduceScatters(/*keep_newest=*/true);
  }
  if (!last_micro_batch || !l.overlap_sync) return absl::OkStatus();
  // DDP / ZeRO-1: the step's reduction, under the backward of the layers still to come.
  std::unique_ptr<CommHandle> h;
  if (l.mode == DpMode::kDdp) {
    CAIRN_ASSIGN_OR_RETURN(h, l.shard->StartAllReduce(l.grads.data(), l.grads.data(), l.padded,
                                                      DType::kFloat32, ReduceOp::kSum, stream_));
  } else {
    CAIRN_ASSIGN_OR_RETURN(l.z1_shard, F32(l.shard_len));
    CAIRN_ASSIGN_OR_RETURN(h, l.shard->StartReduceScatter(l.grads.data(), l.z1_shard.data(),
                                                          l.shard_len, DType::kFloat32,
                                                          ReduceOp::kSum, stream_));
  }
  step_syncs_.push_back(std::move(h));
  return absl::OkStatus();
}

absl::Status Engine::DrainReduceScatters(bool keep_newest) {
  const size_t keep = keep_newest ? 1 : 0;
  while (reduce_scatters_.size() > keep) {
    PendingReduce& r = reduce_scatters_.front();
    CAIRN_RETURN_IF_ERROR(Finish(r.handle.get()));
    CAIRN_RETURN_IF_ERROR(be_->Axpy(r.layer->shard_len, 1.0f, r.part.f32(), r.layer->grads.f32()));
    reduce_scatters_.erase(reduce_scatters_.begin());
  }
  return absl::OkStatus();
}

// ---- Activation relocation between layouts -------------------------------------------------------

absl::Status Engine::Relocate(const ActLayout& from, const ActLayout& to, ArenaBuffer* data) {
  if (from == to) return absl::OkStatus();
  using plan::Slice;
  const int n = topo_.stage_devices();
  const int me = topo_.local_rank();
  const int base = topo_.stage() * n;
  const int64_t C = model_.hidden, B = topo_.micro_batch(), S = seq_;
  const int64_t es = static_cast<int64_t>(DTypeSize(wd_));
  const Slice mine = plan::SliceOf(from, me, B, S);
  const Slice want = plan::SliceOf(to, me, B, S);
  CAIRN_ASSIGN_OR_RETURN(ArenaBuffer out, W(want.elements() * C));
  // Tags above the pipeline's (2 x micro-batch + direction), 4096 per relocation, cycling.
  const int tag_base = (1 << 24) + 4096 * static_cast<int>(relocation_counter_++ % 4096);
  // Who provides what: a rank that already holds an element keeps its own copy; otherwise the
  // element's canonical holder (the lowest-numbered rank holding it) sends it.
  auto provider = [&](int target, const Slice& piece) -> int {
    if (plan::SliceOf(from, target, B, S).Contains(piece)) return target;
    return static_cast<int>((piece.row_begin / mine.rows) * from.tp +
                            (from.seq_sharded ? piece.pos_begin / mine.positions : 0));
  };
  // Pieces: the target's wanted slice cut by the source layout's holdings.
  auto pieces = [&](int target) {
    std::vector<std::pair<int, Slice>> out_pieces;  // (provider, piece)
    const Slice w = plan::SliceOf(to, target, B, S);
    for (int q = 0; q < n; ++q) {
      // Only canonical holders (tp index 0 of replicated layouts) cut pieces; then assign.
      if (!from.seq_sharded && q % from.tp != 0) continue;
      const Slice part = plan::Intersect(w, plan::SliceOf(from, q, B, S));
      if (part.elements() == 0) continue;
      out_pieces.push_back({provider(target, part), part});
    }
    return out_pieces;
  };
  // Copies `part` between a [src.rows, src.positions, C] and a [dst.rows, dst.positions, C]
  // tensor.
  auto copy_piece = [&](const Slice& part, const Slice& src, const void* src_data,
                        const Slice& dst, void* dst_data) {
    const int64_t src_off =
        ((part.row_begin - src.row_begin) * src.positions + (part.pos_begin - src.pos_begin)) * C;
    const int64_t dst_off =
        ((part.row_begin - dst.row_begin) * dst.positions + (part.pos_begin - dst.pos_begin)) * C;
    return be_->Copy2D(part.rows, part.positions * C * es,
                       static_cast<const char*>(src_data) + src_off * es, src.positions * C * es,
                       static_cast<char*>(dst_data) + dst_off * es, dst.positions * C * es);
  };
  std::vector<std::unique_ptr<CommHandle>> sends;
  std::vector<ArenaBuffer> staging;
  for (int target = 0; target < n; ++target) {
    if (target == me) continue;
    int k = 0;  // index of the piece among those I send to `target`: its message tag
    for (const auto& [who, part] : pieces(target)) {
      if (who != me) continue;
      CAIRN_ASSIGN_OR_RETURN(ArenaBuffer buf, W(part.elements() * C));
      CAIRN_RETURN_IF_ERROR(copy_piece(part, mine, data->data(), part, buf.data()));
      CAIRN_ASSIGN_OR_RETURN(std::unique_ptr<CommHandle> h,
                             world_->StartSend(buf.data(), buf.count(), wd_, base + target,
                                               tag_base + k++, stream_));
      sends.push_back(std::move(h));
      staging.push_back(std::move(buf));
    }
  }
  std::vector<int> received(n, 0);
  for (const auto& [who, part] : pieces(me)) {
    if (who == me) {
      CAIRN_RETURN_IF_ERROR(copy_piece(part, mine, data->data(), want, out.data()));
      continue;
    }
    CAIRN_ASSIGN_OR_RETURN(ArenaBuffer buf, W(part.elements() * C));
    CAIRN_RETURN_IF_ERROR(Finish(world_->StartRecv(buf.data(), buf.count(), wd_, base + who,
                                                   tag_base + received[who]++, stream_)));
    CAIRN_RETURN_IF_ERROR(copy_piece(part, part, buf.data(), want, out.data()));
  }
  for (auto& h : sends) CAIRN_RETURN_IF_ERROR(Finish(h.get()));
  *data = std::move(out);
  return absl::OkStatus();
}

// ---- The schedule ---------------------------------------------------------------------------------

absl::StatusOr<MicroBatch> Engine::LoadMicroBatch(int64_t step, int j, const Sampler* sampler) {
  MicroBatch mb;
  mb.batch = topo_.micro_batch();
  mb.seq = seq_;
  const int64_t n = static_cast<int64_t>(mb.batch) * seq_;
  const bool inputs = topo_.is_first_stage(), targets = topo_.is_last_stage();
  if (inputs) {
    CAIRN_ASSIGN_OR_RETURN(mb.inputs, arena_->Allocate(n, DType::kInt32));
  }
  if (targets) {
    CAIRN_ASSIGN_OR_RETURN(mb.targets, arena_->Allocate(n, DType::kInt32));
  }
  if (dry_run_ || sampler == nullptr || !*sampler) return mb;
  std::vector<int32_t> in_all(static_cast<size_t>(n)), tg_all(static_cast<size_t>(n)), in, tg;
  for (int s = 0; s < mb.batch; ++s) {
    CAIRN_RETURN_IF_ERROR((*sampler)(step, static_cast<int64_t>(j) * mb.batch + s, &in, &tg));
    if (static_cast<int>(in.size()) != seq_ || static_cast<int>(tg.size()) != seq_) {
      return absl::InvalidArgumentError("the sampler returned a sample of the wrong length");
    }
    std::copy(in.begin(), in.end(), in_all.begin() + static_cast<int64_t>(s) * seq_);
    std::copy(tg.begin(), tg.end(), tg_all.begin() + static_cast<int64_t>(s) * seq_);
  }
  if (inputs) CAIRN_RETURN_IF_ERROR(be_->CopyToDevice(mb.inputs.data(), in_all.data(), n * 4));
  if (targets) CAIRN_RETURN_IF_ERROR(be_->CopyToDevice(mb.targets.data(), tg_all.data(), n * 4));
  return mb;
}

absl::Status Engine::ForwardMicroBatch(int j, int chunk, const MicroBatch& mb,
                                       const std::vector<plan::SentMessage>& released,
                                       bool evaluate) {
  const ActLayout boundary = topo_.BoundaryLayout();
  const int g = topo_.model_chunk(chunk);
  const size_t begin = chunk_begin_[chunk], end = chunk_begin_[chunk + 1];
  ArenaBuffer x;
  ActLayout cur = boundary;
  double t0 = Now();
  if (const int from = topo_.PreviousChunkRank(chunk); from >= 0) {
    const plan::Slice s = plan::SliceOf(boundary, topo_.local_rank(), topo_.micro_batch(), seq_);
    CAIRN_ASSIGN_OR_RETURN(x, W(s.elements() * model_.hidden));
    CAIRN_RETURN_IF_ERROR(Finish(pp_forward_->StartRecv(x.data(), x.count(), wd_, from,
                                                        PipelineTag(true, g - 1, j), stream_)));
  }
  CAIRN_RETURN_IF_ERROR(Complete(released));
  Gathered next;
  for (size_t i = begin; i < end; ++i) {
    Layer& l = *layers_[i];
    if (l.place.kind != LayerKind::kEmbedding) {
      CAIRN_RETURN_IF_ERROR(Relocate(cur, l.place.layout, &x));
    }
    cur = l.place.layout;
    comm_s_ += Now() - t0;
    t0 = Now();
    // This layer's weights (prefetched with the previous layer), then start the next layer's.
    Gathered here;
    if (next.layer == &l) {
      here = std::move(next);
    } else {
      CAIRN_ASSIGN_OR_RETURN(here, StartGather(l));
    }
    next = Gathered();
    if (i + 1 < end) {
      CAIRN_ASSIGN_OR_RETURN(next, StartGather(*layers_[i + 1]));
    }
    CAIRN_ASSIGN_OR_RETURN(const void* w, UseWeights(l, &here));
    Gathered embedding;
    if (l.place.kind == LayerKind::kHead && l.params.slots().lm_head < 0) {
      Layer& e = *layers_.front();
      CAIRN_ASSIGN_OR_RETURN(embedding, StartGather(e));
      CAIRN_ASSIGN_OR_RETURN(const void* ew, UseWeights(e, &embedding));
      l.runner->SetTiedLmHead(
          static_cast<const char*>(ew) + e.params.OffsetOf(e.params.slots().wte) * DTypeSize(wd_),
          nullptr);
    }
    ArenaBuffer y;
    CAIRN_RETURN_IF_ERROR(
        l.runner->Forward(w, mb, std::move(x), &y, evaluate ? nullptr : &saved_[j][i]));
    x = std::move(y);
    compute_s_ += Now() - t0;
    t0 = Now();
  }
  if (const int to = topo_.NextChunkRank(chunk); to >= 0) {
    CAIRN_RETURN_IF_ERROR(Relocate(cur, boundary, &x));
    CAIRN_ASSIGN_OR_RETURN(std::unique_ptr<CommHandle> h,
                           pp_forward_->StartSend(x.data(), x.count(), wd_, to,
                                                  PipelineTag(true, g, j), stream_));
    sends_[{true, chunk, j}] = PendingSend{std::move(h), std::move(x)};
  }
  comm_s_ += Now() - t0;
  return absl::OkStatus();
}

absl::Status Engine::BackwardMicroBatch(int j, int chunk, const MicroBatch& mb,
                                        const std::vector<plan::SentMessage>& released) {
  const ActLayout boundary = topo_.BoundaryLayout();
  const int g = topo_.model_chunk(chunk);
  const size_t begin = chunk_begin_[chunk], end = chunk_begin_[chunk + 1];
  // The last backward of the step for this chunk's layers (every schedule runs a chunk's
  // backwards in micro-batch order).
  const bool last = j == plan_.num_micro_batches - 1;
  ArenaBuffer dy;
  ActLayout cur = boundary;
  double t0 = Now();
  if (const int from = topo_.NextChunkRank(chunk); from >= 0) {
    const plan::Slice s = plan::SliceOf(boundary, topo_.local_rank(), topo_.micro_batch(), seq_);
    CAIRN_ASSIGN_OR_RETURN(dy, W(s.elements() * model_.hidden));
    CAIRN_RETURN_IF_ERROR(Finish(pp_backward_->StartRecv(dy.data(), dy.count(), wd_, from,
                                                         PipelineTag(false, g + 1, j), stream_)));
  }
  CAIRN_RETURN_IF_ERROR(Complete(released));
  Gathered next;
  for (size_t i = end; i-- > begin;) {
    Layer& l = *layers_[i];
    if (l.place.kind != LayerKind::kHead) {
      CAIRN_RETURN_IF_ERROR(Relocate(cur, l.place.layout, &dy));
    }
    cur = l.place.layout;
    comm_s_ += Now() - t0;
    t0 = Now();
    Gathered here;
    if (next.layer == &l) {
      here = std::move(next);
    } else {
      CAIRN_ASSIGN_OR_RETURN(here, StartGather(l));
    }
    next = Gathered();
    if (i > begin) {
      CAIRN_ASSIGN_OR_RETURN(next, StartGather(*layers_[i - 1]));
    }
    CAIRN_ASSIGN_OR_RETURN(const void* w, UseWeights(l, &here));
    ArenaBuffer gtmp;
    CAIRN_ASSIGN_OR_RETURN(float* gr, GradTarget(l, &gtmp));
    Layer* tied = nullptr;
    Gathered embedding;
    ArenaBuffer egtmp;
    if (l.place.kind == LayerKind::kHead && l.params.slots().lm_head < 0) {
      tied = layers_.front().get();
      CAIRN_ASSIGN_OR_RETURN(embedding, StartGather(*tied));
      CAIRN_ASSIGN_OR_RETURN(const void* ew, UseWeights(*tied, &embedding));
      CAIRN_ASSIGN_OR_RETURN(float* eg, GradTarget(*tied, &egtmp));
      const int64_t off = tied->params.OffsetOf(tied->params.slots().wte);
      l.runner->SetTiedLmHead(static_cast<const char*>(ew) + off * DTypeSize(wd_), eg + off);
    }
    ArenaBuffer dx;
    CAIRN_RETURN_IF_ERROR(l.runner->Backward(w, mb, &saved_[j][i], std::move(dy), &dx, gr));
    CAIRN_RETURN_IF_ERROR(AfterBackward(l, std::move(gtmp), last));
    // The tied head's share of the embedding gradient: the embedding's own backward (later in
    // this loop) starts the embedding's step reduction.
    if (tied) CAIRN_RETURN_IF_ERROR(AfterBackward(*tied, std::move(egtmp), false));
    dy = std::move(dx);
    compute_s_ += Now() - t0;
    t0 = Now();
  }
  CAIRN_RETURN_IF_ERROR(DrainReduceScatters(/*keep_newest=*/false));
  if (const int to = topo_.PreviousChunkRank(chunk); to >= 0) {
    CAIRN_RETURN_IF_ERROR(Relocate(cur, boundary, &dy));
    CAIRN_ASSIGN_OR_RETURN(std::unique_ptr<CommHandle> h,
                           pp_backward_->StartSend(dy.data(), dy.count(), wd_, to,
                                                   PipelineTag(false, g, j), stream_));
    sends_[{false, chunk, j}] = PendingSend{std::move(h), std::move(dy)};
  }
  comm_s_ += Now() - t0;
  return absl::OkStatus();
}

absl::Status Engine::Complete(const std::vector<plan::SentMessage>& released) {
  for (const plan::SentMessage& m : released) {
    auto it = sends_.find({m.forward, m.chunk, m.micro_batch});
    if (it == sends_.end()) continue;
    CAIRN_RETURN_IF_ERROR(Finish(it->second.handle.get()));
    sends_.erase(it);
  }
  return absl::OkStatus();
}

absl::Status Engine::CompleteAllSends() {
  for (auto& [key, send] : sends_) CAIRN_RETURN_IF_ERROR(Finish(send.handle.get()));
  sends_.clear();
  return absl::OkStatus();
}

absl::Status Engine::RunSchedule(int64_t step, const Sampler* sampler) {
  compute_s_ = comm_s_ = 0;
  const int m = plan_.num_micro_batches;
  saved_.clear();
  saved_.resize(m);
  for (auto& per_layer : saved_) per_layer.resize(layers_.size());
  batches_.clear();
  batches_.resize(m);
  for (auto& l : layers_) l->runner->ResetLossTokens();
  const int p = topo_.pipeline_degree(), v = topo_.num_chunks();
  const std::vector<plan::PipelineOp> ops =
      plan::StageSchedule(plan_.schedule, p, topo_.stage(), m, v);
  const std::vector<std::vector<plan::SentMessage>> released =
      plan::SendReleases(plan_.schedule, p, topo_.stage(), m, v);
  for (size_t k = 0; k < ops.size(); ++k) {
    const plan::PipelineOp& op = ops[k];
    const int j = op.micro_batch;
    // A micro-batch enters a stage through its first chunk and leaves through it (backwards run
    // the chunks in reverse).
    if (op.forward) {
      if (op.chunk == 0) {
        CAIRN_ASSIGN_OR_RETURN(batches_[j], LoadMicroBatch(step, j, sampler));
      }
      CAIRN_RETURN_IF_ERROR(ForwardMicroBatch(j, op.chunk, batches_[j], released[k]));
    } else {
      CAIRN_RETURN_IF_ERROR(BackwardMicroBatch(j, op.chunk, batches_[j], released[k]));
      if (op.chunk == 0) batches_[j] = MicroBatch();
    }
  }
  CAIRN_RETURN_IF_ERROR(CompleteAllSends());
  saved_.clear();
  batches_.clear();
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

absl::StatusOr<float> Engine::ReadScalar(const ArenaBuffer& b) {
  float value = 0;
  CAIRN_RETURN_IF_ERROR(be_->CopyToHost(&value, b.data(), sizeof(float)));
  CAIRN_RETURN_IF_ERROR(be_->Synchronize());
  return value;
}

absl::Status Engine::ReduceAndUpdate(int64_t step, StepResult* result, bool update) {
  const int p = topo_.pipeline_degree();
  // 1. The reductions started under the last backward.
  for (auto& h : step_syncs_) CAIRN_RETURN_IF_ERROR(Finish(h.get()));
  step_syncs_.clear();
  // 2. Tied embeddings split over stages: sum the two copies' gradients (full gradients), then
  //    their data-parallel reduction.
  if (model_.tied_embeddings && p > 1 && (topo_.is_first_stage() || topo_.is_last_stage())) {
    Layer& l = topo_.is_first_stage() ? *layers_.front() : *layers_.back();
    const ParamTensor& t = l.params.tensors()[topo_.is_first_stage() ? l.params.slots().wte
                                                                     : l.params.slots().lm_head];
    Communicator* twin =
        Group({topo_.local_rank(), (p - 1) * topo_.stage_devices() + topo_.local_rank()});
    float* g = l.grads.f32() + t.offset;
    CAIRN_RETURN_IF_ERROR(Finish(
        twin->StartAllReduce(g, g, t.count(), DType::kFloat32, ReduceOp::kSum, stream_)));
  }
  for (auto& lp : layers_) {
    Layer& l = *lp;
    if (l.place.shard_size == 1 || l.overlap_sync || l.sharded_grads()) continue;
    if (l.mode == DpMode::kDdp) {
      CAIRN_RETURN_IF_ERROR(Finish(l.shard->StartAllReduce(
          l.grads.data(), l.grads.data(), l.padded, DType::kFloat32, ReduceOp::kSum, stream_)));
    } else {
      CAIRN_ASSIGN_OR_RETURN(l.z1_shard, F32(l.shard_len));
      CAIRN_RETURN_IF_ERROR(Finish(l.shard->StartReduceScatter(l.grads.data(), l.z1_shard.data(),
                                                               l.shard_len, DType::kFloat32,
                                                               ReduceOp::kSum, stream_)));
    }
  }
  // 3. Sums over TP ranks (partial replicated tensors) and over ranks sharing a kv head, on the
  //    updated range (the same offsets on every member: TP ranks share their shard rank).
  auto for_each_slice = [&](Layer& l, const ParamTensor& t, auto fn) -> absl::Status {
    const int64_t b = std::max(t.offset, l.update_begin());
    const int64_t e = std::min(t.offset + t.count(), l.update_begin() + l.update_len());
    if (b >= e) return absl::OkStatus();
    return fn(b - l.update_begin(), e - b);
  };
  for (auto& lp : layers_) {
    Layer& l = *lp;
    for (const ParamTensor& t : l.params.tensors()) {
      Communicator* c = t.tp_partial ? l.tp : (t.kv_share > 1 ? l.kv : nullptr);
      if (c == nullptr) continue;
      CAIRN_RETURN_IF_ERROR(for_each_slice(l, t, [&](int64_t r, int64_t len) {
        float* g = l.UpdatedGrads() + r;
        return Finish(c->StartAllReduce(g, g, len, DType::kFloat32, ReduceOp::kSum, stream_));
      }));
    }
  }
  // 4. Global gradient norm over unique elements, reduced with the loss sum in one all-reduce.
  CAIRN_RETURN_IF_ERROR(be_->Zero(scalars_.f32() + 1, sizeof(float)));
  for (auto& lp : layers_) {
    Layer& l = *lp;
    if (l.mode == DpMode::kDdp && l.place.shard_rank != 0) continue;  // replicas
    for (const ParamTensor& t : l.params.tensors()) {
      if (t.tp_replicated && l.place.tp_rank != 0) continue;
      if (t.kv_share > 1 && l.place.tp_rank % t.kv_share != 0) continue;
      if (model_.tied_embeddings && p > 1 && t.name == "lm_head") continue;
      CAIRN_RETURN_IF_ERROR(for_each_slice(l, t, [&](int64_t r, int64_t len) {
        return be_->NormSquared(len, l.UpdatedGrads() + r, scalars_.f32() + 1);
      }));
    }
  }
  CAIRN_RETURN_IF_ERROR(Finish(world_->StartAllReduce(scalars_.data(), scalars_.data(), 2,
                                                      DType::kFloat32, ReduceOp::kSum, stream_)));
  float host[2] = {0, 0};
  CAIRN_RETURN_IF_ERROR(be_->CopyToHost(host, scalars_.data(), sizeof(host)));
  CAIRN_RETURN_IF_ERROR(be_->Synchronize());
  result->loss = host[0] / (static_cast<double>(plan_.global_batch) * seq_);
  const double norm = std::sqrt(static_cast<double>(host[1]));
  result->grad_norm = norm;
  if (!update) return absl::OkStatus();  // gradients kept (LossAndGradients reads them)
  {
    const float clip = opt_.grad_clip > 0 && norm > opt_.grad_clip
                           ? static_cast<float>(opt_.grad_clip / (norm + 1e-6))
                           : 1.0f;
    // 5. AdamW on the updated range, the working copy refreshed, ZeRO-1/2 weights gathered.
    AdamWConfig cfg = opt_.adamw;
    cfg.learning_rate = static_cast<float>(LearningRate(step));
    result->learning_rate = cfg.learning_rate;
    for (auto& lp : layers_) {
      Layer& l = *lp;
      for (const ParamTensor& t : l.params.tensors()) {
        CAIRN_RETURN_IF_ERROR(for_each_slice(l, t, [&](int64_t r, int64_t len) {
          return be_->AdamWUpdate(len, cfg, step + 1, t.decay, clip, l.Master() + r,
                                  l.UpdatedGrads() + r, l.m.f32() + r, l.v.f32() + r);
        }));
      }
      if (!l.master.empty()) {
        CAIRN_RETURN_IF_ERROR(be_->ToWorking(l.update_len(), l.master.f32(), l.WorkingUpdated()));
      }
      if ((l.mode == DpMode::kZero1 || l.mode == DpMode::kZero2) && l.place.shard_size > 1) {
        CAIRN_RETURN_IF_ERROR(Finish(l.shard->StartAllGather(
            l.working.at(l.shard_begin), l.working.data(), l.shard_len, wd_, stream_)));
      }
    }
  }
  for (auto& lp : layers_) {
    CAIRN_RETURN_IF_ERROR(be_->Zero(lp->grads.data(), lp->grads.bytes()));
    lp->z1_shard.Release();
  }
  return absl::OkStatus();
}

absl::StatusOr<StepResult> Engine::Step(int64_t step, const Sampler& sampler) {
  const double start = Now();
  arena_->ResetPeak();
  StepResult result;
  CAIRN_RETURN_IF_ERROR(be_->Zero(scalars_.data(), sizeof(float)));
  CAIRN_RETURN_IF_ERROR(RunSchedule(step, &sampler));
  const double t0 = Now();
  CAIRN_RETURN_IF_ERROR(ReduceAndUpdate(step, &result));
  // The update is only enqueued on an asynchronous backend: the step ends when it has run (without
  // this the optimizer's time fell between steps, outside every step's time: 24 ms of an 83 ms
  // step for llama3-8b-l4 on an H100).
  CAIRN_RETURN_IF_ERROR(be_->Synchronize());
  comm_s_ += Now() - t0;
  result.step_time_s = Now() - start;
  result.peak_memory_bytes = arena_->peak_live_bytes();
  result.compute_s = compute_s_;
  result.comm_s = comm_s_;
  return result;
}

absl::StatusOr<double> Engine::Evaluate(int64_t batch, const Sampler& sampler) {
  // Forward only, micro-batch after micro-batch, each through the stage's chunks in model order.
  // Every forward depends only on forwards of the same micro-batch earlier in the model, or of
  // earlier micro-batches, so this order cannot deadlock under any schedule (1F1B, GPipe,
  // interleaved); waiting for a micro-batch's sends before the next one keeps at most one
  // micro-batch of pipeline messages alive.
  CAIRN_RETURN_IF_ERROR(be_->Zero(scalars_.data(), sizeof(float)));
  const int m = plan_.num_micro_batches;
  for (auto& l : layers_) l->runner->ResetLossTokens();
  for (int j = 0; j < m; ++j) {
    CAIRN_ASSIGN_OR_RETURN(MicroBatch mb, LoadMicroBatch(batch, j, &sampler));
    for (int c = 0; c < topo_.num_chunks(); ++c) {
      CAIRN_RETURN_IF_ERROR(ForwardMicroBatch(j, c, mb, {}, /*evaluate=*/true));
    }
    CAIRN_RETURN_IF_ERROR(CompleteAllSends());
  }
  // The loss sum of the reporting ranks (the last stage's heads), summed over every rank.
  CAIRN_RETURN_IF_ERROR(Finish(world_->StartAllReduce(scalars_.data(), scalars_.data(), 1,
                                                      DType::kFloat32, ReduceOp::kSum, stream_)));
  CAIRN_ASSIGN_OR_RETURN(const float sum, ReadScalar(scalars_));
  return sum / (static_cast<double>(plan_.global_batch) * seq_);
}

absl::StatusOr<double> Engine::LossAndGradients(int64_t step, const Sampler& sampler,
                                                TensorValues* grads) {
  for (auto& lp : layers_) {
    if (lp->place.shard_size > 1 && lp->mode != DpMode::kDdp) {
      return absl::UnimplementedError("LossAndGradients supports DDP layers only");
    }
  }
  CAIRN_RETURN_IF_ERROR(be_->Zero(scalars_.data(), sizeof(float)));
  CAIRN_RETURN_IF_ERROR(RunSchedule(step, &sampler));
  StepResult result;
  CAIRN_RETURN_IF_ERROR(ReduceAndUpdate(step, &result, /*update=*/false));
  for (auto& lp : layers_) {
    Layer& l = *lp;
    std::vector<float> host(static_cast<size_t>(l.padded));
    CAIRN_RETURN_IF_ERROR(be_->CopyToHost(host.data(), l.grads.data(), l.grads.bytes()));
    CAIRN_RETURN_IF_ERROR(be_->Synchronize());
    for (const ParamTensor& t : l.params.tensors()) {
      auto& v = (*grads)[absl::StrCat(l.place.index, ".", t.name)];
      for (int64_t k = 0; k < t.count(); ++k) v.push_back({t.GlobalIndex(k), host[t.offset + k]});
    }
    CAIRN_RETURN_IF_ERROR(be_->Zero(l.grads.data(), l.grads.bytes()));
  }
  return result.loss;
}

absl::StatusOr<TensorRecords> Engine::Snapshot() {
  TensorRecords out;
  CAIRN_RETURN_IF_ERROR(be_->Synchronize());
  for (auto& lp : layers_) {
    Layer& l = *lp;
    const int64_t n = l.update_len();
    std::vector<float> values(n), m(n), v(n);
    if (!dry_run_) {
      CAIRN_RETURN_IF_ERROR(be_->CopyToHost(values.data(), l.Master(), n * 4));
      CAIRN_RETURN_IF_ERROR(be_->CopyToHost(m.data(), l.m.data(), n * 4));
      CAIRN_RETURN_IF_ERROR(be_->CopyToHost(v.data(), l.v.data(), n * 4));
      CAIRN_RETURN_IF_ERROR(be_->Synchronize());
    }
    for (const ParamTensor& t : l.params.tensors()) {
      const int64_t b = std::max(t.offset, l.update_begin());
      const int64_t e = std::min(t.offset + t.count(), l.update_begin() + n);
      if (b >= e) continue;
      const std::string name = absl::StrCat(l.place.index, ".", t.name);
      TensorRecord rv{name, RecordKind::kValue, {}, {}}, rm{name, RecordKind::kAdamM, {}, {}},
          rs{name, RecordKind::kAdamV, {}, {}};
      for (int64_t x = b; x < e; ++x) {
        const int64_t g = t.GlobalIndex(x - t.offset);
        const int64_t r = x - l.update_begin();
        rv.indices.push_back(g);
        rv.values.push_back(values[r]);
        rm.indices.push_back(g);
        rm.values.push_back(m[r]);
        rs.indices.push_back(g);
        rs.values.push_back(v[r]);
      }
      out.push_back(std::move(rv));
      out.push_back(std::move(rm));
      out.push_back(std::move(rs));
    }
  }
  return out;
}

absl::StatusOr<TensorValues> Engine::LocalParameters() {
  CAIRN_ASSIGN_OR_RETURN(TensorRecords records, Snapshot());
  TensorValues out;
  for (const TensorRecord& r : records) {
    if (r.kind != RecordKind::kValue) continue;
    auto& v = out[r.name];
    for (size_t k = 0; k < r.indices.size(); ++k) v.push_back({r.indices[k], r.values[k]});
  }
  return out;
}

absl::Status Engine::Restore(const Checkpoint& ck) {
  for (auto& lp : layers_) {
    Layer& l = *lp;
    std::vector<float> full(l.padded, 0.0f);
    const int64_t n = l.update_len();
    std::vector<float> m(n, 0.0f), v(n, 0.0f);
    for (const ParamTensor& t : l.params.tensors()) {
      std::string name = absl::StrCat(l.place.index, ".", t.name);
      // A tied head's own copy starts from the embedding when the checkpoint has none.
      if (t.name == "lm_head" && model_.tied_embeddings && !ck.values.count(name)) name = "0.wte";
      auto find = [&](const auto& table, int64_t g, float* value) -> absl::Status {
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
        *value = e->second;
        return absl::OkStatus();
      };
      for (int64_t k = 0; k < t.count(); ++k) {
        CAIRN_RETURN_IF_ERROR(find(ck.values, t.GlobalIndex(k), &full[t.offset + k]));
      }
      const int64_t b = std::max(t.offset, l.update_begin());
      const int64_t e = std::min(t.offset + t.count(), l.update_begin() + n);
      for (int64_t x = b; x < e; ++x) {
        const int64_t g = t.GlobalIndex(x - t.offset);
        CAIRN_RETURN_IF_ERROR(find(ck.adam_m, g, &m[x - l.update_begin()]));
        CAIRN_RETURN_IF_ERROR(find(ck.adam_v, g, &v[x - l.update_begin()]));
      }
    }
    CAIRN_RETURN_IF_ERROR(LoadValues(l, full));
    if (!dry_run_) {
      CAIRN_RETURN_IF_ERROR(be_->CopyToDevice(l.m.data(), m.data(), n * 4));
      CAIRN_RETURN_IF_ERROR(be_->CopyToDevice(l.v.data(), v.data(), n * 4));
      // fp32 backends hold the master in the working buffer, which LoadValues wrote.
    }
  }
  return be_->Synchronize();
}

absl::StatusOr<int64_t> Engine::MaxOverRanks(int64_t value) {
  // Through the loss/norm scalars' slot 1 (free between steps), as fp32 (2^-24 relative).
  const float mine = static_cast<float>(value);
  CAIRN_RETURN_IF_ERROR(be_->CopyToDevice(scalars_.f32() + 1, &mine, sizeof(float)));
  CAIRN_RETURN_IF_ERROR(Finish(world_->StartAllReduce(scalars_.f32() + 1, scalars_.f32() + 1, 1,
                                                      DType::kFloat32, ReduceOp::kMax, stream_)));
  float out = 0;
  CAIRN_RETURN_IF_ERROR(be_->CopyToHost(&out, scalars_.f32() + 1, sizeof(float)));
  CAIRN_RETURN_IF_ERROR(be_->Synchronize());
  return static_cast<int64_t>(out);
}

}  // namespace cairn::runtime
