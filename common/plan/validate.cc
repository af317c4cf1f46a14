#include "common/plan/validate.h"

#include <numeric>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/plan/layout.h"
#include "common/math.h"

namespace cairn::plan {
namespace {

// Sharded data parallelism of the gradients (ZeRO-2/3) on a group of more than one rank.
bool ShardsGradients(const Strategy& s, int stage_devices) {
  const int group = s.ulysses() ? stage_devices : stage_devices / std::max(1, s.tp);
  return group > 1 && (s.dp == DpMode::kZero2 || s.dp == DpMode::kZero3);
}

}  // namespace

std::string CheckModel(const ModelDims& m) {
  if (m.num_layers < 1) return absl::StrCat("model ", m.name, " has no transformer blocks");
  if (m.hidden < 1 || m.ffn_hidden < 1 || m.vocab < 1 || m.max_seq_len < 1) {
    return absl::StrCat("model ", m.name, " has a non-positive size (hidden ", m.hidden, ", ffn ",
                        m.ffn_hidden, ", vocab ", m.vocab, ", max_seq_len ", m.max_seq_len, ")");
  }
  if (m.num_heads < 1 || m.hidden % m.num_heads != 0) {
    return absl::StrCat("model ", m.name, ": ", m.num_heads, " heads do not divide the hidden size ",
                        m.hidden);
  }
  if (m.num_kv_heads < 1 || m.num_heads % m.num_kv_heads != 0) {
    return absl::StrCat("model ", m.name, ": ", m.num_heads,
                        " query heads are not a multiple of ", m.num_kv_heads,
                        " key/value heads");
  }
  if (m.rope && m.head_dim() % 2 != 0) {
    return absl::StrCat("model ", m.name, ": RoPE needs an even head dimension, got ",
                        m.head_dim());
  }
  return "";
}

std::string CheckLayer(const ModelDims& m, LayerKind kind, const Strategy& s,
                       const StageShape& stage) {
  if (!IsPowerOfTwo(s.tp)) return absl::StrCat("degree ", s.tp, " is not a power of 2");
  // A stage of no devices (a device count that overflowed int) would divide by zero below.
  if (stage.devices < 1) return absl::StrCat("the stage has ", stage.devices, " devices");
  if (stage.devices % s.tp != 0) {
    return absl::StrCat("degree ", s.tp, " does not divide the ", stage.devices,
                        " devices of the stage");
  }
  const int dp = stage.devices / s.tp;
  if (stage.micro_batch % dp != 0) {
    return absl::StrCat("micro-batch of ", stage.micro_batch, " samples does not split over ", dp,
                        " data-parallel ranks");
  }
  if (s.recompute && kind != LayerKind::kBlock) {
    return "recomputation applies to transformer blocks only";
  }
  if (s.tp == 1) return "";
  if (!s.tp_consecutive) {
    return "strided placement of the model-parallel group is not supported by the runtime (use "
           "consecutive ranks)";
  }
  if (s.seq_sharded() && stage.seq_len % s.tp != 0) {
    return absl::StrCat("sequence length ", stage.seq_len, " does not split over ", s.tp);
  }
  if (kind == LayerKind::kBlock) {
    if (m.num_heads % s.tp != 0) return absl::StrCat(m.num_heads, " heads do not split over ", s.tp);
    if (m.num_kv_heads % s.tp != 0 && s.tp % m.num_kv_heads != 0) {
      return absl::StrCat(m.num_kv_heads, " key/value heads do not split over ", s.tp);
    }
    if (s.splits_weights() && m.ffn_hidden % s.tp != 0) {
      return absl::StrCat("MLP width ", m.ffn_hidden, " does not split over ", s.tp);
    }
  } else if (s.splits_weights() && m.vocab < s.tp) {
    return absl::StrCat("vocabulary of ", m.vocab, " does not split over ", s.tp, " ranks");
  }
  return "";
}

std::vector<std::string> CheckAcrossLayers(const ModelDims& m, const PlanSpec& plan,
                                           int world_size, int seq_len) {
  std::vector<std::string> out;
  const int p = plan.pipeline_degree();
  const int n = world_size / p;
  if (p > 1) {
    const ActLayout b = BoundaryLayout(n, plan.micro_batch(), seq_len);
    if (b.tp > 1 && !b.seq_sharded) {
      out.push_back(absl::StrCat("a micro-batch of ", plan.micro_batch(), " samples x ", seq_len,
                                 " positions cannot be split over the ", n,
                                 " devices of a pipeline stage to cross a stage boundary"));
    }
  }
  if (m.tied_embeddings) {
    const Strategy& e = plan.layers.front();
    const Strategy& h = plan.layers.back();
    if (VocabDegree(e) != VocabDegree(h)) {
      out.push_back(absl::StrCat(
          "with tied embeddings the embedding (", Describe(e), ") and the head (", Describe(h),
          ") must split the vocabulary the same way (same tensor-parallel degree, or neither)"));
    }
    if (p > 1 && (ShardsGradients(e, n) || ShardsGradients(h, n))) {
      out.push_back(
          "with tied embeddings on different pipeline stages, the embedding and the head need DDP "
          "or ZeRO-1 (the two copies' gradients are summed before the data-parallel reduction)");
    }
  }
  return out;
}

std::vector<std::string> CheckPlanShape(const ModelDims& m, const PlanSpec& plan, int world_size,
                                        int seq_len) {
  const int L = m.num_layers;
  const int p = plan.pipeline_degree();
  std::vector<std::string> out;
  if (static_cast<int>(plan.layers.size()) != L + 2) {
    out.push_back(absl::StrCat("the plan has ", plan.layers.size(), " layer strategies but model ",
                               m.name, " needs ", L + 2, " (embedding, ", L, " blocks, head)"));
  }
  if (p < 1 || world_size < 1 || world_size % p != 0) {
    out.push_back(absl::StrCat("pipeline degree ", p, " does not divide the ", world_size,
                               " devices"));
  } else {
    for (int i = 0; i < p; ++i) {
      if (plan.stage_layers[i] < 1) out.push_back(absl::StrCat("stage ", i, " has no layers"));
    }
    const int sum = std::accumulate(plan.stage_layers.begin(), plan.stage_layers.end(), 0);
    if (sum != L + 2) {
      out.push_back(absl::StrCat("the stages hold ", sum, " layers; the model has ", L + 2,
                                 " (embedding + ", L, " blocks + head)"));
    }
  }
  if (plan.global_batch < 1 || plan.num_micro_batches < 1 ||
      plan.global_batch % plan.num_micro_batches != 0) {
    out.push_back(absl::StrCat("global batch ", plan.global_batch, " does not split into ",
                               plan.num_micro_batches, " micro-batches"));
  }
  if (seq_len < 1 || seq_len > m.max_seq_len) {
    out.push_back(absl::StrCat("sequence length ", seq_len, " is outside [1, ", m.max_seq_len,
                               "] for model ", m.name));
  }
  return out;
}

std::vector<std::string> ValidatePlan(const ModelDims& m, const PlanSpec& plan, int world_size,
                                      int seq_len) {
  if (std::string why = CheckModel(m); !why.empty()) return {why};
  std::vector<std::string> out = CheckPlanShape(m, plan, world_size, seq_len);
  if (!out.empty()) return out;  // the checks below rely on the shape
  const int L = m.num_layers;
  const int p = plan.pipeline_degree();
  const StageShape stage{world_size / p, plan.micro_batch(), seq_len};
  // Per layer, grouping runs of consecutive layers with the same strategy and problem.
  int run_begin = -1;
  std::string run_why;
  auto flush = [&](int end) {
    if (run_begin < 0) return;
    const LayerKind kind = KindOf(run_begin, L);
    const std::string where =
        end - run_begin == 1
            ? absl::StrCat("layer ", run_begin, " (", ToString(kind), ", ",
                           Describe(plan.layers[run_begin]), ")")
            : absl::StrCat("layers ", run_begin, "-", end - 1, " (", ToString(kind), ", ",
                           Describe(plan.layers[run_begin]), ")");
    out.push_back(absl::StrCat(where, ": ", run_why));
    run_begin = -1;
  };
  for (int i = 0; i < L + 2; ++i) {
    const std::string why = CheckLayer(m, KindOf(i, L), plan.layers[i], stage);
    const bool continues = run_begin >= 0 && why == run_why &&
                           plan.layers[i] == plan.layers[run_begin] &&
                           KindOf(i, L) == KindOf(run_begin, L);
    if (!continues) flush(i);
    if (!why.empty() && run_begin < 0) {
      run_begin = i;
      run_why = why;
    }
  }
  flush(L + 2);
  for (std::string& v : CheckAcrossLayers(m, plan, world_size, seq_len)) out.push_back(std::move(v));
  return out;
}

absl::Status CheckPlan(const ModelDims& m, const PlanSpec& plan, int world_size, int seq_len) {
  const std::vector<std::string> v = ValidatePlan(m, plan, world_size, seq_len);
  if (v.empty()) return absl::OkStatus();
  return absl::InvalidArgumentError(
      absl::StrCat(v.size() == 1 ? "the plan cannot run: " : "the plan cannot run (",
                   v.size() == 1 ? "" : absl::StrCat(v.size(), " problems): "),
                   absl::StrJoin(v, "; ")));
}

}  // namespace cairn::plan
