#include "runtime/engine/topology.h"

#include <algorithm>
#include <numeric>
#include <set>

#include "absl/strings/str_cat.h"
#include "common/plan/validate.h"

namespace cairn::runtime {

using plan::LayerKind;
using plan::ParallelMode;

Topology::Topology(int world_size, int rank, const plan::PlanSpec& plan,
                   const plan::ModelDims& model, int seq_len)
    : world_(world_size), rank_(rank), p_(std::max(1, plan.pipeline_degree())),
      n_(std::max(1, world_size / std::max(1, plan.pipeline_degree()))), seq_(seq_len),
      plan_(plan), model_(model) {
  const int s = std::min(stage(), p_ - 1);
  for (int c = s; c < plan.num_chunks(); c += p_) {
    chunk_first_.push_back(plan.FirstLayer(c));
    chunk_count_.push_back(plan.stage_layers[c]);
  }
}

int Topology::PreviousChunkRank(int local_chunk) const {
  const int g = model_chunk(local_chunk);
  return g == 0 ? -1 : ((g - 1) % p_) * n_ + local_rank();
}

int Topology::NextChunkRank(int local_chunk) const {
  const int g = model_chunk(local_chunk);
  return g + 1 >= total_chunks() ? -1 : ((g + 1) % p_) * n_ + local_rank();
}

absl::Status Topology::Validate() const {
  return plan::CheckPlan(model_, plan_, world_, seq_);
}

ActLayout Topology::BoundaryLayout() const {
  return plan::BoundaryLayout(n_, micro_batch(), seq_);
}

LayerPlace Topology::PlaceOn(int index, int stage, int local) const {
  LayerPlace l;
  l.index = index;
  l.kind = plan::KindOf(index, model_.num_layers);
  l.strategy = plan_.layers[index];
  l.tp = l.strategy.tp;
  l.dp = n_ / l.tp;
  l.tp_rank = local % l.tp;
  l.dp_rank = local / l.tp;
  const bool ulysses = l.strategy.mode == ParallelMode::kUlysses && l.tp > 1;
  l.shard_size = ulysses ? n_ : l.dp;
  l.shard_rank = ulysses ? local : l.dp_rank;
  l.layout = plan::LayoutOf(l.strategy, n_);
  const int base = stage * n_;
  for (int j = 0; j < l.tp; ++j) l.tp_group.push_back(base + l.dp_rank * l.tp + j);
  const int kv = model_.num_kv_heads;
  if (!ulysses && l.kind == LayerKind::kBlock && l.tp > kv && kv > 0) {
    const int share = l.tp / kv;
    const int first = (l.tp_rank / share) * share;
    for (int j = first; j < first + share; ++j) l.kv_group.push_back(l.tp_group[j]);
  } else {
    l.kv_group = {base + local};
  }
  if (ulysses) {
    for (int j = 0; j < n_; ++j) l.shard_group.push_back(base + j);
  } else {
    for (int i = 0; i < l.dp; ++i) l.shard_group.push_back(base + i * l.tp + l.tp_rank);
  }
  return l;
}

LayerPlace Topology::Place(int index) const { return PlaceOn(index, stage(), local_rank()); }

std::vector<int> Topology::StageGroup(int s) const {
  std::vector<int> g(n_);
  std::iota(g.begin(), g.end(), s * n_);
  return g;
}

std::vector<std::vector<int>> Topology::AllGroups() const {
  std::set<std::vector<int>> seen;
  std::vector<std::vector<int>> out;
  auto add = [&](const std::vector<int>& g) {
    if (g.size() > 1 && seen.insert(g).second) out.push_back(g);
  };
  for (int s = 0; s < p_; ++s) {
    add(StageGroup(s));
    for (int c = s; c < plan_.num_chunks(); c += p_) {
      const int first = plan_.FirstLayer(c);
      for (int i = first; i < first + plan_.stage_layers[c]; ++i) {
        for (int local = 0; local < n_; ++local) {
          const LayerPlace l = PlaceOn(i, s, local);
          add(l.tp_group);
          add(l.shard_group);
          add(l.kv_group);
        }
      }
    }
  }
  // Tied embeddings across the first and last stage: each device pairs with its twin.
  if (model_.tied_embeddings && p_ > 1) {
    for (int local = 0; local < n_; ++local) add({local, (p_ - 1) * n_ + local});
  }
  return out;
}

}  // namespace cairn::runtime
