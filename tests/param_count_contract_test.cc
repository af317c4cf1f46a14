// One contract for parameters: the planner's counts (planner/cost/model_math: what its memory,
// optimizer and communication terms are built from) against the tensors the runtime actually
// creates (runtime/engine/params.cc), layer by layer, for every combination of the architecture
// switches (biases, SwiGLU, RMSNorm, rotary or learned positions, tied embeddings, grouped KV heads)
// and Megatron TP degrees, beyond the kv head count too (each rank then holds a whole kv head).
// Nothing here trains; a mismatch means a plan's predicted memory or step end describes tensors the
// runtime does not have.
#include <string>

#include "absl/strings/str_cat.h"
#include "common/plan/plan.h"
#include "gtest/gtest.h"
#include "planner/cost/model_math.h"
#include "runtime/engine/params.h"
#include "runtime/engine/topology.h"

namespace cairn {
namespace {

using plan::LayerKind;

plan::ModelDims Variant(int bits) {
  plan::ModelDims m;
  m.name = "variant";
  m.num_layers = 3;
  m.hidden = 64;
  m.ffn_hidden = 160;
  m.num_heads = 8;
  m.num_kv_heads = (bits & 32) ? 4 : 8;  // grouped-query attention or not
  m.vocab = 96;
  m.max_seq_len = 48;
  m.bias = bits & 1;
  m.swiglu = bits & 2;
  m.rms_norm = bits & 4;
  m.rope = bits & 8;
  m.tied_embeddings = bits & 16;
  return m;
}

std::string Describe(const plan::ModelDims& m) {
  return absl::StrCat("bias=", m.bias, " swiglu=", m.swiglu, " rms=", m.rms_norm,
                      " rope=", m.rope, " tied=", m.tied_embeddings, " kv=", m.num_kv_heads);
}

// The runtime's tensors of one layer on TP rank `rank` of `tp` (Megatron TP, one data-parallel rank).
runtime::LayerParams RuntimeLayer(const plan::ModelDims& m, LayerKind kind, int tp, int rank,
                                  bool owns_lm_head, bool sp = false) {
  runtime::LayerPlace place;
  place.index = 1;
  place.kind = kind;
  place.strategy.mode = sp ? plan::ParallelMode::kTensorSequence : plan::ParallelMode::kTensor;
  place.tp = tp;
  place.tp_rank = rank;
  return runtime::LayerParams::Build(m, place, owns_lm_head);
}

// Tensors of one row or one column: what the planner calls `vectors` (one launch each per
// per-tensor kernel).
int VectorCount(const runtime::LayerParams& p) {
  int n = 0;
  for (const runtime::ParamTensor& t : p.tensors()) n += (t.global_rows == 1 || t.global_cols == 1);
  return n;
}

TEST(ParamCountContractTest, PlannerCountsAreTheRuntimesTensors) {
  int checked = 0;
  for (int bits = 0; bits < 64; ++bits) {
    const plan::ModelDims m = Variant(bits);
    for (int tp : {1, 2, 4, 8}) {
      for (int rank = 0; rank < tp; ++rank) {
        const std::string where = absl::StrCat(Describe(m), " tp=", tp, " rank=", rank);
        const runtime::LayerParams block = RuntimeLayer(m, LayerKind::kBlock, tp, rank, false);
        const planner::LayerParams want_block = planner::BlockParams(m, tp);
        EXPECT_EQ(block.size(), want_block.PerDevice(tp)) << "block, " << where;
        EXPECT_EQ(VectorCount(block), want_block.vectors) << "block vectors, " << where;

        const runtime::LayerParams emb = RuntimeLayer(m, LayerKind::kEmbedding, tp, rank, false);
        EXPECT_EQ(emb.size(), planner::EmbeddingParams(m).PerDevice(tp)) << "embedding, " << where;

        for (bool owns : {false, true}) {
          const runtime::LayerParams head = RuntimeLayer(m, LayerKind::kHead, tp, rank, owns);
          const planner::LayerParams want_head = planner::HeadParams(m, owns);
          EXPECT_EQ(head.size(), want_head.PerDevice(tp)) << "head owns=" << owns << ", " << where;
          EXPECT_EQ(VectorCount(head), want_head.vectors) << "head vectors, " << where;
        }
        ++checked;
      }
    }
  }
  EXPECT_EQ(checked, 64 * 15);
}

// The step end's sums over TP ranks (planner: TpSummedGradients, charged as all-reduces) are the
// tensors the engine sums: partial replicated tensors over the TP group, shared kv rows over the
// ranks sharing a kv head.
TEST(ParamCountContractTest, TpGradientSumsAreTheRuntimesPartialAndSharedTensors) {
  for (int bits = 0; bits < 64; ++bits) {
    const plan::ModelDims m = Variant(bits);
    for (int tp : {1, 2, 4, 8}) {
      for (bool sp : {false, true}) {
        for (LayerKind kind : {LayerKind::kEmbedding, LayerKind::kBlock, LayerKind::kHead}) {
          const runtime::LayerParams p = RuntimeLayer(m, kind, tp, tp - 1, true, sp);
          planner::TpGradientSums got;
          for (const runtime::ParamTensor& t : p.tensors()) {
            if (t.tp_partial) {
              ++got.partial_tensors;
              got.partial_elements += t.count();
            } else if (t.kv_share > 1) {
              ++got.kv_tensors;
              got.kv_elements += t.count();
              got.kv_group = t.kv_share;
            }
          }
          const planner::TpGradientSums want = planner::TpSummedGradients(m, kind, tp, sp);
          const std::string where = absl::StrCat(Describe(m), " tp=", tp, " sp=", sp, " kind=",
                                                 static_cast<int>(kind));
          EXPECT_EQ(got.partial_tensors, want.partial_tensors) << where;
          EXPECT_EQ(got.partial_elements, want.partial_elements) << where;
          EXPECT_EQ(got.kv_tensors, want.kv_tensors) << where;
          EXPECT_EQ(got.kv_elements, want.kv_elements) << where;
          EXPECT_EQ(got.kv_group, want.kv_group) << where;
        }
      }
    }
  }
}

// The whole model, unsharded: the planner's total is the sum of the runtime's layers (the LM head
// counted once when tied, as the runtime holds it once when embedding and head share a stage).
TEST(ParamCountContractTest, TotalParamsIsTheSumOfTheRuntimesLayers) {
  for (int bits = 0; bits < 64; ++bits) {
    const plan::ModelDims m = Variant(bits);
    const int64_t runtime_total =
        RuntimeLayer(m, LayerKind::kEmbedding, 1, 0, false).size() +
        m.num_layers * RuntimeLayer(m, LayerKind::kBlock, 1, 0, false).size() +
        RuntimeLayer(m, LayerKind::kHead, 1, 0, !m.tied_embeddings).size();
    EXPECT_EQ(planner::TotalParams(m), runtime_total) << Describe(m);
  }
}

}  // namespace
}  // namespace cairn
