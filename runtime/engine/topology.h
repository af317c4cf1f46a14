// runtime/engine/topology.h — where each rank sits in a plan, and the process groups it needs.
//
// Ranks are numbered pipeline-outermost: stage i owns world ranks [i n, (i+1) n), n = world / p.
// A stage runs one contiguous range of layers, or with the interleaved schedule v model chunks
// (chunk c of the model on stage c mod p: common/plan/plan.h); local chunk k of stage i is model
// chunk k p + i, and its activations come from the rank at the same local position of the stage
// running model chunk k p + i - 1 and go to the one running k p + i + 1.
// Inside a stage, a layer with model-parallel degree t puts its TP (or Ulysses) group innermost
// (common/plan/layout.h): local rank l has tp_rank = l % t and dp_rank = l / t; its TP group is the
// t consecutive ranks sharing dp_rank, its data-parallel group the d = n / t ranks sharing tp_rank
// (every n ranks of the stage for Ulysses, whose weights are replicated over the sequence group too).
//
//   Topology topo(world_size, rank, plan, model, seq_len);
//   CAIRN_RETURN_IF_ERROR(topo.Validate());     // the plan contract: plan::CheckPlan
//   const LayerPlace& l = topo.Place(7);        // this rank's view of layer 7 (if in its stage)
//   for (const auto& ranks : topo.AllGroups()) ...  // every group, same order on every rank
#ifndef CAIRN_RUNTIME_ENGINE_TOPOLOGY_H_
#define CAIRN_RUNTIME_ENGINE_TOPOLOGY_H_

#include <vector>

#include "absl/status/status.h"
#include "common/plan/layout.h"
#include "common/plan/plan.h"

namespace cairn::runtime {

using plan::ActLayout;

// This rank's view of one layer of its stage.
struct LayerPlace {
  int index = 0;
  plan::LayerKind kind = plan::LayerKind::kBlock;
  plan::Strategy strategy;
  int tp = 1;          // model-parallel degree
  int dp = 1;          // n / tp
  int tp_rank = 0;
  int dp_rank = 0;
  int shard_size = 1;  // data-parallel / ZeRO group size (dp, or n for Ulysses)
  int shard_rank = 0;
  ActLayout layout;    // of its input and output activations
  std::vector<int> tp_group;     // world ranks
  std::vector<int> shard_group;  // world ranks
  // Ranks of tp_group sharing this rank's key/value heads (Megatron TP with more ranks than kv
  // heads replicates each kv head over tp / kv_heads ranks); size 1 otherwise.
  std::vector<int> kv_group;
};

class Topology {
 public:
  Topology(int world_size, int rank, const plan::PlanSpec& plan, const plan::ModelDims& model,
           int seq_len);

  // InvalidArgument listing every violation of the plan contract (common/plan/validate.h) for
  // this world size, model and sequence length: exactly what the planner calls invalid.
  absl::Status Validate() const;

  int world_size() const { return world_; }
  int rank() const { return rank_; }
  int pipeline_degree() const { return p_; }
  int stage_devices() const { return n_; }
  int stage() const { return rank_ / n_; }
  int local_rank() const { return rank_ % n_; }
  int micro_batch() const { return plan_.micro_batch(); }
  // This stage's model chunks (1 without interleaving), each a contiguous range of layers.
  int num_chunks() const { return static_cast<int>(chunk_first_.size()); }
  int chunk_first_layer(int local_chunk) const { return chunk_first_[local_chunk]; }
  int chunk_num_layers(int local_chunk) const { return chunk_count_[local_chunk]; }
  // Model chunk of local chunk `local_chunk`, and the whole model's chunk count (p x v).
  int model_chunk(int local_chunk) const { return local_chunk * p_ + stage(); }
  int total_chunks() const { return plan_.num_chunks(); }
  // World ranks this rank exchanges local chunk `local_chunk`'s activations with: the rank that
  // runs the previous model chunk (its input; -1 for model chunk 0) and the next one (its output;
  // -1 for the last chunk).
  int PreviousChunkRank(int local_chunk) const;
  int NextChunkRank(int local_chunk) const;
  bool is_first_stage() const { return stage() == 0; }
  bool is_last_stage() const { return stage() == p_ - 1; }
  const plan::PlanSpec& plan() const { return plan_; }
  const plan::ModelDims& model() const { return model_; }
  int seq_len() const { return seq_; }

  // This rank's view of layer `index` (must be in its stage).
  LayerPlace Place(int index) const;
  // The same for any stage (used to build groups).
  LayerPlace PlaceOn(int index, int stage, int local_rank) const;
  // The layout activations cross a stage boundary in (plan::BoundaryLayout).
  ActLayout BoundaryLayout() const;
  std::vector<int> StageGroup(int stage) const;
  // Every group any rank needs, in one deterministic order (so Split calls match on all ranks).
  std::vector<std::vector<int>> AllGroups() const;

 private:
  int world_, rank_, p_, n_, seq_;
  std::vector<int> chunk_first_, chunk_count_;
  plan::PlanSpec plan_;
  plan::ModelDims model_;
};

}  // namespace cairn::runtime

#endif  // CAIRN_RUNTIME_ENGINE_TOPOLOGY_H_
