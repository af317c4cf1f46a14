#include "planner/cost/runtime_traits.h"

#include "common/testing/status_matchers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace cairn::planner {
namespace {

using ::testing::HasSubstr;

// A model of `layers` blocks with 8 kv heads (what CheckRuntimeSupports reads of a model).
ModelDims Layers(int layers) {
  ModelDims m;
  m.num_layers = layers;
  m.num_heads = m.num_kv_heads = 8;
  return m;
}

TEST(RuntimeTraitsTest, LooksUpByName) {
  ASSERT_OK_AND_ASSIGN(RuntimeTraits c, RuntimeTraitsByName(""));
  EXPECT_EQ(c.name, "cairn");
  ASSERT_OK_AND_ASSIGN(RuntimeTraits m, RuntimeTraitsByName("megatron-core"));
  EXPECT_EQ(m.name, "megatron-core");
  EXPECT_TRUE(m.overlap_param_gather);
  EXPECT_FALSE(c.overlap_param_gather);
  EXPECT_THAT(RuntimeTraitsByName("deepspeed"),
              cairn::testing::StatusIs(absl::StatusCode::kNotFound, HasSubstr("megatron-core")));
}

TEST(RuntimeTraitsTest, MegatronSpaceHasOnlyWhatMegatronRuns) {
  SearchSpace space;
  space.schedules.push_back(Schedule::kGPipe);
  RestrictSpaceToRuntime(MegatronCoreRuntimeTraits(), &space);
  EXPECT_EQ(space.modes, (std::vector<ParallelMode>{ParallelMode::kTensor,
                                                    ParallelMode::kTensorSequence}));
  EXPECT_EQ(space.dp_modes, (std::vector<DpMode>{DpMode::kDdp, DpMode::kZero1}));
  EXPECT_EQ(space.schedules,
            (std::vector<Schedule>{Schedule::k1F1B, Schedule::kInterleaved1F1B}));
  EXPECT_TRUE(space.uniform_layers);
  SearchSpace all;
  RestrictSpaceToRuntime(CairnRuntimeTraits(), &all);
  EXPECT_EQ(all.modes.size(), 3u);
  EXPECT_FALSE(all.uniform_layers);
}

TEST(RuntimeTraitsTest, ChecksPlansAgainstTheRuntime) {
  PlanSpec p;
  p.global_batch = 8;
  p.num_micro_batches = 4;
  p.schedule = Schedule::kInterleaved1F1B;
  p.num_micro_batches = 6;
  p.global_batch = 12;
  p.virtual_stages = 2;
  p.stage_layers = {2, 1, 1, 1, 1, 2};  // 6 blocks on 3 stages x 2 chunks, one per chunk
  p.layers.assign(8, Strategy{.tp = 2, .mode = ParallelMode::kTensorSequence, .dp = DpMode::kZero1});
  const RuntimeTraits mc = MegatronCoreRuntimeTraits();
  EXPECT_EQ(CheckRuntimeSupports(mc, p, Layers(6)), "");
  p.stage_layers = {3, 1, 1, 1, 1, 1};  // 2 blocks in chunk 0
  EXPECT_THAT(CheckRuntimeSupports(mc, p, Layers(6)),
              HasSubstr("this plan's model chunks hold 2, 1, 1, 1, 1, 0 blocks"));
  p.stage_layers = {2, 1, 1, 1, 1, 2};
  p.layers[2].dp = DpMode::kZero3;
  EXPECT_THAT(CheckRuntimeSupports(mc, p, Layers(6)), HasSubstr("no zero3"));
  EXPECT_EQ(CheckRuntimeSupports(CairnRuntimeTraits(), p, Layers(6)), "");
  p.layers[2].dp = DpMode::kZero1;
  p.layers[3].recompute = true;
  EXPECT_THAT(CheckRuntimeSupports(mc, p, Layers(6)), HasSubstr("one strategy to every block"));
  p.layers[3].recompute = false;
  // Megatron-Core splits kv heads over TP ranks and never replicates them (TransformerConfig:
  // num_query_groups % tensor_model_parallel_size == 0); Cairn's runtime replicates them.
  ModelDims two_kv = Layers(6);
  two_kv.num_kv_heads = 2;
  EXPECT_EQ(CheckRuntimeSupports(mc, p, two_kv), "");  // TP 2 over 2 kv heads
  for (Strategy& s : p.layers) s.tp = 4;
  EXPECT_THAT(CheckRuntimeSupports(mc, p, two_kv), HasSubstr("TP 4 exceeds the model's 2 kv heads"));
  EXPECT_EQ(CheckRuntimeSupports(CairnRuntimeTraits(), p, two_kv), "");
  Strategy ulysses{.tp = 4, .mode = ParallelMode::kUlysses, .dp = DpMode::kDdp};
  EXPECT_EQ(CheckRuntimeSupportsLayer(MegatronCoreRuntimeTraits(), two_kv, LayerKind::kBlock,
                                      Strategy{.tp = 2, .mode = ParallelMode::kTensor}),
            "");
  EXPECT_THAT(CheckRuntimeSupportsLayer(mc, two_kv, LayerKind::kBlock, ulysses),
              HasSubstr("no Ulysses"));
}

// A 1F1B or interleaved plan of `chunks` (stage_layers) for `num_layers` blocks, one strategy.
PlanSpec SplitPlan(int num_layers, int v, std::vector<int> chunks) {
  PlanSpec p;
  p.global_batch = 64;
  p.num_micro_batches = 16;
  p.schedule = v > 1 ? Schedule::kInterleaved1F1B : Schedule::k1F1B;
  p.virtual_stages = v;
  p.stage_layers = std::move(chunks);
  p.layers.assign(num_layers + 2, Strategy{.tp = 2, .mode = ParallelMode::kTensorSequence,
                                           .dp = DpMode::kZero1});
  return p;
}

TEST(RuntimeTraitsTest, EqualChunkLayersCountBlocksOrSlots) {
  // 126 blocks on 16 x 2 chunks: 126 / 32 blocks does not divide; 128 / 32 = 4 slots does, the
  // first and the last chunk holding the embedding / head and 3 blocks.
  EXPECT_TRUE(EqualChunkLayers(126, 32, ChunkLayout::kBlocks).empty());
  const std::vector<int> slots = EqualChunkLayers(126, 32, ChunkLayout::kSlots);
  EXPECT_EQ(slots, std::vector<int>(32, 4));
  // 16 x 4: 2 slots each (embedding + 1 block, ..., 1 block + head).
  EXPECT_EQ(EqualChunkLayers(126, 64, ChunkLayout::kSlots), std::vector<int>(64, 2));
  // 16 x 8 would leave the first chunk the embedding alone: refused.
  EXPECT_TRUE(EqualChunkLayers(126, 128, ChunkLayout::kSlots).empty());
  // 8 blocks on 4 chunks: 2 + embedding, 2, 2, 2 + head.
  EXPECT_EQ(EqualChunkLayers(8, 4, ChunkLayout::kBlocks), (std::vector<int>{3, 2, 2, 3}));
  EXPECT_TRUE(EqualChunkLayers(8, 4, ChunkLayout::kSlots).empty());  // 10 slots on 4
}

TEST(RuntimeTraitsTest, MegatronStageLayersKeepMiddleStagesEqual) {
  // Divisible: equal blocks.
  EXPECT_EQ(MegatronStageLayers(8, 4), (std::vector<int>{3, 2, 2, 3}));
  // Llama 3: 126 blocks on 16 stages, 128 slots -> 8 per stage: 7 blocks on the first and last.
  std::vector<int> llama(16, 8);
  EXPECT_EQ(MegatronStageLayers(126, 16), llama);
  // 40 blocks on 16 stages: ceil(42 / 16) = 3 per middle stage would leave 40 - 14 x 3 = -2 for
  // the ends, so 2: 40 - 28 = 12 on the ends, 6 + 6 blocks -> 7 and 7 layers.
  std::vector<int> s40 = MegatronStageLayers(40, 16);
  ASSERT_EQ(s40.size(), 16u);
  EXPECT_EQ(s40.front(), 7);
  EXPECT_EQ(s40.back(), 7);
  for (int i = 1; i < 15; ++i) EXPECT_EQ(s40[i], 2) << i;
  // 13 blocks on 4 stages: ceil(15 / 4) = 4 per middle stage, 5 on the ends: 3 + 1 and 2 + 1.
  EXPECT_EQ(MegatronStageLayers(13, 4), (std::vector<int>{4, 4, 4, 3}));
  // Two stages of an odd count: the odd block first.
  EXPECT_EQ(MegatronStageLayers(5, 2), (std::vector<int>{4, 3}));
  EXPECT_TRUE(MegatronStageLayers(4, 5).empty());
  // Every split it makes is one Megatron runs.
  for (int L : {5, 13, 40, 80, 126}) {
    for (int p = 1; p <= 16 && p <= L; ++p) {
      std::vector<int> s = MegatronStageLayers(L, p);
      ASSERT_FALSE(s.empty()) << L << " " << p;
      EXPECT_TRUE(MegatronSplitOf(SplitPlan(L, 1, s), L).ok()) << L << " on " << p;
    }
  }
}

TEST(RuntimeTraitsTest, MegatronSplitSaysWhichFlagsCutThePlan) {
  // Interleaved, equal blocks: 12 blocks on 3 x 2 chunks of 2.
  absl::StatusOr<MegatronSplit> s = MegatronSplitOf(SplitPlan(12, 2, {3, 2, 2, 2, 2, 3}), 12);
  ASSERT_OK(s.status());
  EXPECT_FALSE(s->account_for_embedding_and_loss);
  EXPECT_EQ(s->layers_per_virtual_stage, 2);
  // Interleaved, equal slots: 126 blocks on 16 x 2 chunks of 4 slots; Megatron counts 128 layers,
  // 8 per stage, 4 per virtual stage.
  s = MegatronSplitOf(SplitPlan(126, 2, std::vector<int>(32, 4)), 126);
  ASSERT_OK(s.status());
  EXPECT_TRUE(s->account_for_embedding_and_loss);
  EXPECT_EQ(s->layers_per_virtual_stage, 4);
  EXPECT_EQ(s->first_stage_blocks, 0);
  // 1F1B, equal slots: the account flags, no virtual stage size.
  s = MegatronSplitOf(SplitPlan(126, 1, std::vector<int>(16, 8)), 126);
  ASSERT_OK(s.status());
  EXPECT_TRUE(s->account_for_embedding_and_loss);
  EXPECT_EQ(s->layers_per_virtual_stage, 0);
  // 1F1B, equal blocks: no flags at all.
  s = MegatronSplitOf(SplitPlan(8, 1, {3, 2, 2, 3}), 8);
  ASSERT_OK(s.status());
  EXPECT_FALSE(s->account_for_embedding_and_loss);
  EXPECT_EQ(s->first_stage_blocks, 0);
  // 1F1B, uneven ends: --decoder-first/last-pipeline-num-layers.
  s = MegatronSplitOf(SplitPlan(9, 1, {2, 3, 3, 3}), 9);
  ASSERT_OK(s.status());
  EXPECT_EQ(s->first_stage_blocks, 1);
  EXPECT_EQ(s->last_stage_blocks, 2);
  // Refused: uneven middle stages; a first stage of the embedding alone (other than equal slots);
  // interleaved chunks equal in neither count.
  EXPECT_THAT(MegatronSplitOf(SplitPlan(9, 1, {3, 3, 2, 3}), 9),
              cairn::testing::StatusIs(absl::StatusCode::kUnimplemented,
                                       HasSubstr("every middle stage the same number of blocks")));
  EXPECT_THAT(MegatronSplitOf(SplitPlan(9, 1, {1, 3, 3, 4}), 9),
              cairn::testing::StatusIs(absl::StatusCode::kUnimplemented,
                                       HasSubstr("must be at least 1")));
  EXPECT_THAT(MegatronSplitOf(SplitPlan(12, 2, {3, 3, 2, 2, 1, 3}), 12),
              cairn::testing::StatusIs(absl::StatusCode::kUnimplemented,
                                       HasSubstr("model chunks hold 2, 3, 2, 2, 1, 2 blocks")));
  // Interleaving on 2 stages, even of equal chunks (Megatron asks for more than 2).
  EXPECT_THAT(MegatronSplitOf(SplitPlan(8, 2, {3, 2, 2, 3}), 8),
              cairn::testing::StatusIs(absl::StatusCode::kUnimplemented,
                                       HasSubstr("more than 2 pipeline stages")));
  // The traits say the same, and Cairn's runtime takes any of them.
  const RuntimeTraits mc = MegatronCoreRuntimeTraits();
  EXPECT_THAT(CheckRuntimeSupports(mc, SplitPlan(9, 1, {3, 3, 2, 3}), Layers(9)),
              HasSubstr("megatron-core runtime cannot cut these stages"));
  EXPECT_EQ(CheckRuntimeSupports(mc, SplitPlan(126, 2, std::vector<int>(32, 4)), Layers(126)), "");
  EXPECT_EQ(CheckRuntimeSupports(CairnRuntimeTraits(), SplitPlan(9, 1, {3, 3, 2, 3}), Layers(9)), "");
  EXPECT_THAT(CheckRuntimeSupports(mc, SplitPlan(8, 2, {3, 2, 2, 3}), Layers(8)),
              HasSubstr("needs more than 2 pipeline stages"));
  EXPECT_EQ(CheckRuntimeSupports(CairnRuntimeTraits(), SplitPlan(8, 2, {3, 2, 2, 3}), Layers(8)), "");
}

}  // namespace
}  // namespace cairn::planner
