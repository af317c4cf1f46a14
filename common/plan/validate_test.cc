#include "common/plan/validate.h"

#include "common/testing/status_matchers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace cairn::plan {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

ModelDims Gpt2Small() {
  ModelDims m;
  m.name = "gpt2-124m";
  m.num_layers = 12;
  m.hidden = 768;
  m.ffn_hidden = 3072;
  m.num_heads = 12;
  m.num_kv_heads = 12;
  m.vocab = 50257;
  m.max_seq_len = 1024;
  m.tied_embeddings = true;
  m.bias = true;
  return m;
}

PlanSpec Uniform(const ModelDims& m, int batch, int m_count, std::vector<int> stages, Strategy s) {
  PlanSpec p;
  p.global_batch = batch;
  p.num_micro_batches = m_count;
  p.stage_layers = std::move(stages);
  p.layers.assign(m.num_layers + 2, s);
  return p;
}

TEST(ValidateTest, AValidPlanHasNoViolations) {
  const ModelDims m = Gpt2Small();
  EXPECT_THAT(ValidatePlan(m, Uniform(m, 64, 8, {14}, Strategy{.tp = 2}), 8, 1024),
              ElementsAre());
  EXPECT_OK(CheckPlan(m, Uniform(m, 64, 8, {7, 7}, Strategy{.tp = 4}), 8, 1024));
}

TEST(ValidateTest, AnOddVocabularySplitsUnevenly) {
  // The plan the planner proposed for gpt2-124m (vocabulary 50257) with a tp=2 tied embedding:
  // valid, each rank holds 25129 or 25128 rows.
  const ModelDims m = Gpt2Small();
  PlanSpec p = Uniform(m, 64, 8, {14}, Strategy{.tp = 1});
  p.layers.front() = Strategy{.tp = 2, .mode = ParallelMode::kTensorSequence};
  p.layers.back() = Strategy{.tp = 2, .mode = ParallelMode::kTensorSequence, .dp = DpMode::kZero1};
  EXPECT_THAT(ValidatePlan(m, p, 8, 1024), ElementsAre());
}

TEST(ValidateTest, InterleavedPlansNeedChunksOfEveryStageAndGroupsOfPMicroBatches) {
  const ModelDims m = Gpt2Small();  // 12 blocks + embedding + head = 14 layers
  PlanSpec p = Uniform(m, 64, 8, {4, 3, 3, 4}, Strategy{.tp = 2});
  p.schedule = Schedule::kInterleaved1F1B;
  p.virtual_stages = 2;
  EXPECT_EQ(p.pipeline_degree(), 2);
  EXPECT_EQ(p.StageOf(0), 0);
  EXPECT_EQ(p.StageOf(4), 1);   // chunk 1
  EXPECT_EQ(p.StageOf(7), 0);   // chunk 2 (layers 7-9) runs on stage 0 again
  EXPECT_EQ(p.ChunkOf(13), 3);
  EXPECT_THAT(ValidatePlan(m, p, 8, 1024), ElementsAre());
  // 6 micro-batches on 4 stages: not a multiple of p.
  PlanSpec q = Uniform(m, 48, 6, {2, 2, 2, 2, 2, 2, 1, 1}, Strategy{});
  q.schedule = Schedule::kInterleaved1F1B;
  q.virtual_stages = 2;
  EXPECT_THAT(ValidatePlan(m, q, 8, 1024),
              ElementsAre(HasSubstr("6 micro-batches are not a multiple of 4")));
  // An empty chunk; v without the interleaved schedule; interleaving with one virtual stage.
  p.stage_layers = {5, 0, 5, 4};
  EXPECT_THAT(ValidatePlan(m, p, 8, 1024),
              ElementsAre(HasSubstr("model chunk 1 (on stage 1) has no layers")));
  p.stage_layers = {4, 3, 3, 4};
  p.schedule = Schedule::k1F1B;
  EXPECT_THAT(ValidatePlan(m, p, 8, 1024),
              ElementsAre(HasSubstr("2 virtual stages per pipeline stage need the interleaved")));
  p.schedule = Schedule::kInterleaved1F1B;
  p.virtual_stages = 1;
  p.stage_layers = {7, 7};
  EXPECT_THAT(ValidatePlan(m, p, 8, 1024), ElementsAre(HasSubstr("at least 2 virtual stages")));
  p.virtual_stages = 2;
  p.stage_layers = {4, 3, 3};
  EXPECT_THAT(ValidatePlan(m, p, 8, 1024),
              ElementsAre(HasSubstr("3 model chunks do not split into 2 virtual stages")));
}

TEST(ValidateTest, ShapeViolationsComeFirstAndAlone) {
  const ModelDims m = Gpt2Small();
  PlanSpec p = Uniform(m, 64, 8, {7, 6}, Strategy{.tp = 3});
  const auto v = ValidatePlan(m, p, 8, 1024);
  ASSERT_EQ(v.size(), 1u);
  EXPECT_THAT(v[0], HasSubstr("the stages hold 13 layers; the model has 14"));
  p = Uniform(m, 60, 8, {7, 7}, Strategy{});
  EXPECT_THAT(ValidatePlan(m, p, 6, 2048),
              ElementsAre(HasSubstr("global batch 60 does not split into 8"),
                          HasSubstr("sequence length 2048 is outside [1, 1024]")));
  EXPECT_THAT(ValidatePlan(m, Uniform(m, 64, 8, {7, 7}, Strategy{}), 7, 1024),
              ElementsAre(HasSubstr("pipeline degree 2 does not divide the 7 devices")));
}

TEST(ValidateTest, LayersWithTheSameProblemAreReportedOnce) {
  const ModelDims m = Gpt2Small();
  // tp=3 everywhere: one line for the embedding, one for the 12 blocks, one for the head.
  const auto v = ValidatePlan(m, Uniform(m, 48, 8, {14}, Strategy{.tp = 3}), 6, 1024);
  EXPECT_THAT(v, ElementsAre("layer 0 (embedding, tp=3 ddp): degree 3 is not a power of 2",
                             "layers 1-12 (block, tp=3 ddp): degree 3 is not a power of 2",
                             "layer 13 (head, tp=3 ddp): degree 3 is not a power of 2"));
  EXPECT_THAT(CheckPlan(m, Uniform(m, 48, 8, {14}, Strategy{.tp = 3}), 6, 1024),
              testing::StatusIs(absl::StatusCode::kInvalidArgument,
                                HasSubstr("the plan cannot run (3 problems): layer 0")));
}

TEST(ValidateTest, EachLayerRule) {
  ModelDims m = Gpt2Small();
  const StageShape stage{8, 8, 1024};
  auto why = [&](LayerKind k, Strategy s, StageShape st) { return CheckLayer(m, k, s, st); };
  EXPECT_EQ(why(LayerKind::kBlock, Strategy{.tp = 2}, stage), "");
  EXPECT_THAT(why(LayerKind::kBlock, Strategy{.tp = 16}, StageShape{8, 8, 1024}),
              HasSubstr("does not divide the 8 devices"));
  EXPECT_THAT(why(LayerKind::kBlock, Strategy{.tp = 1}, StageShape{8, 4, 1024}),
              HasSubstr("micro-batch of 4 samples does not split over 8"));
  EXPECT_THAT(why(LayerKind::kBlock, Strategy{.tp = 8}, stage), HasSubstr("12 heads"));
  EXPECT_THAT(why(LayerKind::kHead, Strategy{.recompute = true}, stage),
              HasSubstr("blocks only"));
  EXPECT_THAT(why(LayerKind::kBlock, Strategy{.tp = 2, .tp_consecutive = false}, stage),
              HasSubstr("strided"));
  EXPECT_THAT(why(LayerKind::kBlock, Strategy{.tp = 4, .mode = ParallelMode::kUlysses},
                  StageShape{8, 8, 1022}),
              HasSubstr("sequence length 1022 does not split over 4"));
  // Plain TP keeps the sequence whole: any length.
  EXPECT_EQ(why(LayerKind::kBlock, Strategy{.tp = 4}, StageShape{8, 8, 1022}), "");
  m.ffn_hidden = 3070;
  EXPECT_THAT(why(LayerKind::kBlock, Strategy{.tp = 4}, stage), HasSubstr("MLP width 3070"));
  // Ulysses keeps the weights whole.
  EXPECT_EQ(why(LayerKind::kBlock, Strategy{.tp = 4, .mode = ParallelMode::kUlysses}, stage), "");
  m.num_heads = 32;
  m.hidden = 4096;
  m.num_kv_heads = 8;
  m.ffn_hidden = 11008;
  EXPECT_EQ(why(LayerKind::kBlock, Strategy{.tp = 8}, stage), "");
  m.num_kv_heads = 2;
  EXPECT_EQ(why(LayerKind::kBlock, Strategy{.tp = 8}, stage), "");  // kv heads replicated 4x
  m.num_kv_heads = 32;
  m.vocab = 4;
  EXPECT_THAT(why(LayerKind::kEmbedding, Strategy{.tp = 8}, stage),
              HasSubstr("vocabulary of 4 does not split over 8"));
  EXPECT_EQ(why(LayerKind::kEmbedding, Strategy{.tp = 8, .mode = ParallelMode::kUlysses}, stage),
            "");
}

TEST(ValidateTest, TiedEmbeddingsSplitTheVocabularyAlike) {
  const ModelDims m = Gpt2Small();
  PlanSpec p = Uniform(m, 64, 8, {14}, Strategy{});
  p.layers.front() = Strategy{.tp = 2};
  EXPECT_THAT(ValidatePlan(m, p, 8, 1024),
              ElementsAre(HasSubstr("must split the vocabulary the same way")));
  // Ulysses and tp=1 both keep the whole table.
  p.layers.front() = Strategy{.tp = 2, .mode = ParallelMode::kUlysses};
  EXPECT_THAT(ValidatePlan(m, p, 8, 1024), ElementsAre());
}

TEST(ValidateTest, TiedEmbeddingsAcrossStagesNeedUnshardedGradients) {
  const ModelDims m = Gpt2Small();
  PlanSpec p = Uniform(m, 64, 8, {7, 7}, Strategy{});
  p.layers.back().dp = DpMode::kZero2;
  EXPECT_THAT(ValidatePlan(m, p, 8, 1024), ElementsAre(HasSubstr("DDP or ZeRO-1")));
  p.layers.back().dp = DpMode::kZero1;
  EXPECT_THAT(ValidatePlan(m, p, 8, 1024), ElementsAre());
  // A shard group of one rank shards nothing.
  p.layers.back() = Strategy{.tp = 4, .dp = DpMode::kZero3};
  p.layers.front() = Strategy{.tp = 4};
  EXPECT_THAT(ValidatePlan(m, p, 8, 1024), ElementsAre());
}

TEST(ValidateTest, AStageBoundaryNeedsTheMicroBatchToSplit) {
  const ModelDims m = Gpt2Small();
  // 8 devices per stage, micro-batch 1, sequence 1022: 1022 does not split over 8.
  PlanSpec p = Uniform(m, 8, 8, {7, 7}, Strategy{.tp = 8, .mode = ParallelMode::kTensor});
  p.layers.assign(14, Strategy{.tp = 4});
  const auto v = ValidatePlan(m, p, 16, 1022);
  EXPECT_THAT(v, ::testing::Contains(HasSubstr("cannot be split over the 8 devices")));
}

TEST(ValidateTest, ModelChecks) {
  ModelDims m = Gpt2Small();
  EXPECT_EQ(CheckModel(m), "");
  m.num_kv_heads = 5;
  EXPECT_THAT(CheckModel(m), HasSubstr("not a multiple of 5"));
  m = Gpt2Small();
  m.hidden = 770;
  EXPECT_THAT(CheckModel(m), HasSubstr("do not divide the hidden size"));
}

}  // namespace
}  // namespace cairn::plan
