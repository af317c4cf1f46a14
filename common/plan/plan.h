// common/plan/plan.h — what a plan is: the model's dimensions, each layer's strategy, the pipeline.
//
// Overview
// --------
// This folder is the plan contract: the one definition of a plan that the planner (which scores
// and searches plans) and the runtime (which executes them) share. It holds plain data and pure
// functions only, no hardware and no protobuf types except in plan_proto.h:
//
//   plan.h        ModelDims, LayerKind, Strategy, PlanSpec (this file)
//   layout.h      where activations live between layers (ActLayout), vocabulary and head ranges
//   schedule.h    the order a pipeline stage runs its micro-batches in (StageSchedule), and when
//                 its point-to-point sends are known to have arrived (SendReleases)
//   validate.h    ValidatePlan: every rule a plan must satisfy to be scored or run
//   plan_proto.h  cairn.v1.Plan / ModelSpec <-> these structs
//
// planner/cost, planner/search and runtime/engine all use it; runtime/ depends on nothing else of
// the planner. Adding a rule means adding it to validate.h, once: the search then never proposes a
// plan the runtime refuses, and the runtime refuses exactly what the planner calls invalid.
//
// Example (a 2-stage plan of a 4-block model on 8 devices, Megatron TP 2 everywhere):
//
//   PlanSpec plan;
//   plan.global_batch = 16;
//   plan.num_micro_batches = 4;
//   plan.stage_layers = {3, 3};                 // embedding + 2 blocks | 2 blocks + head
//   plan.layers.assign(model.num_layers + 2, Strategy{.tp = 2});
//   std::vector<std::string> problems = ValidatePlan(model, plan, /*world_size=*/8, /*seq_len=*/512);
//
// Layer indices: 0 = embedding, 1..L = transformer blocks, L+1 = head (the numbering of
// cairn.v1.LayerStrategy.index).
//
// Interleaved 1F1B (Megatron's virtual pipeline stages): with `virtual_stages` = v > 1 the layers
// are cut into p x v contiguous model chunks, listed in model order in `stage_layers`; chunk c runs
// on pipeline stage c mod p, so stage i holds chunks i, i + p, ..., i + (v - 1) p. For v = 1 a chunk
// is a stage. Example: 8 blocks on p = 2 stages with v = 2 ->
//   plan.schedule = Schedule::kInterleaved1F1B; plan.virtual_stages = 2;
//   plan.stage_layers = {3, 2, 2, 3};   // stage 0: emb + blocks 1-2 and blocks 5-6;
//                                       // stage 1: blocks 3-4 and blocks 7-8 + head
#ifndef CAIRN_COMMON_PLAN_PLAN_H_
#define CAIRN_COMMON_PLAN_PLAN_H_

#include <string>
#include <vector>

namespace cairn::plan {

// Architecture and dimensions of a decoder-only transformer (mirror of cairn.v1.ModelSpec).
struct ModelDims {
  std::string name;
  int num_layers = 0;          // transformer blocks
  int hidden = 0;              // C
  int ffn_hidden = 0;          // F (MLP width)
  int num_heads = 0;           // H (query heads)
  int num_kv_heads = 0;        // KV (key/value heads; H for multi-head attention)
  int vocab = 0;               // V
  int max_seq_len = 0;
  bool rms_norm = false;       // false: LayerNorm
  bool swiglu = false;         // false: GELU (2 matrices)
  bool rope = false;           // false: learned positions
  bool tied_embeddings = false;
  bool bias = false;

  int head_dim() const { return num_heads > 0 ? hidden / num_heads : 0; }
};

enum class LayerKind { kEmbedding, kBlock, kHead };

// How a layer splits its work over its model-parallel group (cairn.v1.ParallelMode).
enum class ParallelMode { kTensor, kTensorSequence, kUlysses };
// How a layer's states are held over its data-parallel group (cairn.v1.DataParallelMode).
enum class DpMode { kDdp, kZero1, kZero2, kZero3 };
// Pipeline schedules (common/plan/schedule.h has the order of operations of each).
enum class Schedule { k1F1B, kGPipe, kInterleaved1F1B };

// The strategy of one layer (mirror of cairn.v1.LayerStrategy without the index).
struct Strategy {
  int tp = 1;                     // model-parallel degree t (TP or Ulysses degree)
  ParallelMode mode = ParallelMode::kTensor;
  DpMode dp = DpMode::kDdp;
  bool recompute = false;         // full recomputation (blocks only)
  bool tp_consecutive = true;     // model-parallel group on consecutive ranks

  bool ulysses() const { return tp > 1 && mode == ParallelMode::kUlysses; }
  // Megatron tensor parallelism with t > 1 (with or without sequence parallelism): the weights
  // (and the vocabulary of the embedding and head) are split t ways.
  bool splits_weights() const { return tp > 1 && mode != ParallelMode::kUlysses; }
  // The activations between layers are split over the sequence (SP and Ulysses with t > 1).
  bool seq_sharded() const { return tp > 1 && mode != ParallelMode::kTensor; }
  bool operator==(const Strategy& o) const {
    return tp == o.tp && mode == o.mode && dp == o.dp && recompute == o.recompute &&
           tp_consecutive == o.tp_consecutive;
  }
  bool operator!=(const Strategy& o) const { return !(*this == o); }
};

// A plan in plain form.
struct PlanSpec {
  int global_batch = 0;
  int num_micro_batches = 1;
  Schedule schedule = Schedule::k1F1B;
  // Model chunks per pipeline stage: v >= 2 with kInterleaved1F1B, 1 otherwise.
  int virtual_stages = 1;
  // Layers per model chunk in layer-index numbering, in model order; sums to num_layers + 2 (chunk
  // 0 holds the embedding, the last chunk the head). p x v entries; for v = 1 one per stage.
  std::vector<int> stage_layers;
  std::vector<Strategy> layers;   // num_layers + 2 entries
  std::string origin;             // "search", "uniform:megatron ...", "file", ...

  // p: the number of stages (devices are split into p groups of N / p).
  int pipeline_degree() const {
    return static_cast<int>(stage_layers.size()) / (virtual_stages > 0 ? virtual_stages : 1);
  }
  // p x v model chunks.
  int num_chunks() const { return static_cast<int>(stage_layers.size()); }
  int micro_batch() const { return num_micro_batches > 0 ? global_batch / num_micro_batches : 0; }
  // First layer index of model chunk `chunk` (in [0, num_chunks()]); for v = 1 chunk = stage.
  int FirstLayer(int chunk) const;
  // The stage holding layer `index`, or -1 when the chunks do not cover it.
  int StageOf(int index) const;
  // The model chunk holding layer `index`, or -1.
  int ChunkOf(int index) const;
  // Stage that runs model chunk `chunk`: chunk mod p.
  int ChunkStage(int chunk) const { return chunk % pipeline_degree(); }
  // Model chunk of stage `stage`'s local chunk `local` (0..v-1): local x p + stage.
  int ModelChunk(int stage, int local) const { return local * pipeline_degree() + stage; }
};

// The kind of the layer at `index` for a model with `num_layers` blocks.
inline LayerKind KindOf(int index, int num_layers) {
  if (index == 0) return LayerKind::kEmbedding;
  if (index == num_layers + 1) return LayerKind::kHead;
  return LayerKind::kBlock;
}

const char* ToString(ParallelMode mode);   // "tp", "tp+sp", "ulysses"
const char* ToString(DpMode mode);         // "ddp", "zero1", ...
const char* ToString(Schedule schedule);   // "1f1b", "gpipe"
const char* ToString(LayerKind kind);      // "embedding", "block", "head"
// "tp=4 sp zero1 recompute" style one-word-per-field description of a strategy.
std::string Describe(const Strategy& s);

}  // namespace cairn::plan

#endif  // CAIRN_COMMON_PLAN_PLAN_H_
