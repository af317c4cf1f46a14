#include "runtime/engine/topology.h"

#include <algorithm>
#include <numeric>
#include <set>

#include "absl/strings/str_cat.h"

namespace cairn::runtime {

using planner::LayerKind;
using planner::ParallelMode;

Topology::Topology(int world_size, int rank, const planner::PlanSpec& plan,
                   const planner::ModelDims& model, int seq_len)
    : world_(world_size), rank_(rank), p_(std::max(1, plan.pipeline_degree())),
      n_(std::max(1, world_size / std::max(1, plan.pipeline_degree()))), seq_(seq_len),
      plan_(plan), model_(model) {
  const int s = std::min(stage(), p_ - 1);
  for (int i = 0; i < s && i < static_cast<int>(plan.stage_layers.size()); ++i) {
    first_ += plan.stage_layers[i];
  }
  count_ = s < static_cast<int>(plan.stage_layers.size()) ? plan.stage_layers[s] : 0;
}

absl::Status Topology::Validate() const {
  const int L = model_.num_layers;
  if (static_cast<int>(plan_.layers.size()) != L + 2) {
    return absl::InvalidArgumentError(absl::StrCat("the plan has ", plan_.layers.size(),
                                                   " layer strategies; model ", model_.name,
                                                   " needs ", L + 2));
  }
  if (world_ % p_ != 0) {
    return absl::InvalidArgumentError(absl::StrCat("pipeline degree ", p_,
                                                   " does not divide the world size ", world_));
  }
  if (std::accumulate(plan_.stage_layers.begin(), plan_.stage_layers.end(), 0) != L + 2) {
    return absl::InvalidArgumentError("the plan's stages do not cover every layer exactly once");
  }
  for (int x : plan_.stage_layers) {
    if (x < 1) return absl::InvalidArgumentError("a pipeline stage has no layers");
  }
  if (plan_.num_micro_batches < 1 || plan_.global_batch % plan_.num_micro_batches != 0) {
    return absl::InvalidArgumentError(absl::StrCat("global batch ", plan_.global_batch,
                                                   " does not split into ",
                                                   plan_.num_micro_batches, " micro-batches"));
  }
  const int mb = micro_batch();
  const ActLayout b = BoundaryLayout();
  if (p_ > 1 && b.tp > 1 && !b.seq_sharded) {
    return absl::InvalidArgumentError(absl::StrCat(
        "micro-batch ", mb, " and sequence ", seq_, " cannot be split over the ", n_,
        " devices of a pipeline stage"));
  }
  for (int i = 0; i < L + 2; ++i) {
    const planner::Strategy& st = plan_.layers[i];
    const std::string where = absl::StrCat("layer ", i, " (", planner::Describe(st), "): ");
    if (st.tp < 1 || n_ % st.tp != 0) {
      return absl::InvalidArgumentError(absl::StrCat(where, "degree ", st.tp,
                                                     " does not divide the ", n_,
                                                     " devices of a stage"));
    }
    const int dp = n_ / st.tp;
    if (mb % dp != 0) {
      return absl::InvalidArgumentError(absl::StrCat(where, "micro-batch of ", mb,
                                                     " samples does not split over ", dp,
                                                     " data-parallel ranks"));
    }
    if (st.tp == 1) continue;
    const bool ulysses = st.mode == ParallelMode::kUlysses;
    if (st.mode != ParallelMode::kTensor && seq_ % st.tp != 0) {
      return absl::InvalidArgumentError(absl::StrCat(where, "sequence length ", seq_,
                                                     " does not split over ", st.tp));
    }
    const LayerKind kind = planner::KindOf(i, L);
    if (kind == LayerKind::kBlock) {
      if (model_.num_heads % st.tp != 0) {
        return absl::InvalidArgumentError(absl::StrCat(where, model_.num_heads,
                                                       " heads do not split over ", st.tp));
      }
      if (model_.num_kv_heads % st.tp != 0 && st.tp % model_.num_kv_heads != 0) {
        return absl::InvalidArgumentError(absl::StrCat(
            where, model_.num_kv_heads, " key/value heads do not split over ", st.tp));
      }
      if (!ulysses && model_.ffn_hidden % st.tp != 0) {
        return absl::InvalidArgumentError(absl::StrCat(where, "MLP width ", model_.ffn_hidden,
                                                       " does not split over ", st.tp));
      }
    } else if (!ulysses && model_.vocab % st.tp != 0) {
      return absl::InvalidArgumentError(absl::StrCat(
          where, "vocabulary ", model_.vocab, " does not split over ", st.tp,
          " (vocab-parallel needs a multiple of the degree)"));
    }
  }
  if (model_.tied_embeddings) {
    const planner::Strategy& e = plan_.layers.front();
    const planner::Strategy& h = plan_.layers.back();
    const bool e_split = e.tp > 1 && e.mode != ParallelMode::kUlysses;
    const bool h_split = h.tp > 1 && h.mode != ParallelMode::kUlysses;
    if ((e_split ? e.tp : 1) != (h_split ? h.tp : 1)) {
      return absl::InvalidArgumentError(
          "with tied embeddings the embedding and the head must split the vocabulary the same "
          "way (same vocab-parallel degree)");
    }
    auto sharded_grads = [](const planner::Strategy& s) {
      return s.dp == planner::DpMode::kZero2 || s.dp == planner::DpMode::kZero3;
    };
    if (p_ > 1 && (sharded_grads(e) || sharded_grads(h))) {
      return absl::InvalidArgumentError(
          "with tied embeddings split over pipeline stages, the embedding and the head need DDP "
          "or ZeRO-1 (their gradients are summed across the two stages before the data-parallel "
          "reduction)");
    }
  }
  return absl::OkStatus();
}

ActLayout Topology::BoundaryLayout() const {
  ActLayout l;
  l.dp = std::gcd(n_, micro_batch());
  l.tp = n_ / l.dp;
  l.seq_sharded = l.tp > 1 && seq_ % l.tp == 0;
  return l;
}

LayerPlace Topology::PlaceOn(int index, int stage, int local) const {
  LayerPlace l;
  l.index = index;
  l.kind = planner::KindOf(index, model_.num_layers);
  l.strategy = plan_.layers[index];
  l.tp = l.strategy.tp;
  l.dp = n_ / l.tp;
  l.tp_rank = local % l.tp;
  l.dp_rank = local / l.tp;
  const bool ulysses = l.strategy.mode == ParallelMode::kUlysses && l.tp > 1;
  l.shard_size = ulysses ? n_ : l.dp;
  l.shard_rank = ulysses ? local : l.dp_rank;
  l.layout.dp = l.dp;
  l.layout.tp = l.tp;
  l.layout.seq_sharded = l.tp > 1 && l.strategy.mode != ParallelMode::kTensor;
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
  int first = 0;
  for (int s = 0; s < p_; ++s) {
    add(StageGroup(s));
    for (int i = first; i < first + plan_.stage_layers[s]; ++i) {
      for (int local = 0; local < n_; ++local) {
        const LayerPlace l = PlaceOn(i, s, local);
        add(l.tp_group);
        add(l.shard_group);
        add(l.kv_group);
      }
    }
    first += plan_.stage_layers[s];
  }
  // Tied embeddings across the first and last stage: each device pairs with its twin.
  if (model_.tied_embeddings && p_ > 1) {
    for (int local = 0; local < n_; ++local) add({local, (p_ - 1) * n_ + local});
  }
  return out;
}

}  // namespace cairn::runtime
