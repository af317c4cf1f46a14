// Parity of the engine: every plan on 2, 4 and 8 ranks trains exactly the model one rank trains
// (every rank's loss step by step, every parameter after the optimizer steps, compared both ways;
// fp32, relative error < 1e-5), including after a resume under another plan. Ranks are threads with
// the in-process communicator; the Gloo path is covered by tests/train. Predicted-vs-measured
// memory is tests/runtime_memory_test (it needs the planner).
#include <cstdlib>
#include <map>

#include "common/testing/status_matchers.h"
#include "gtest/gtest.h"
#include "runtime/comm/local/local_communicator.h"
#include "runtime/compute/cpu/cpu_backend.h"
#include "runtime/engine/engine.h"
#include "runtime/engine/testing/engine_test_util.h"

namespace cairn::runtime {
namespace {

using plan::DpMode;
using plan::ModelDims;
using plan::ParallelMode;
using plan::PlanSpec;
using plan::Schedule;
using plan::Strategy;
using testing::ExpectParity;
using testing::RunResult;
using testing::S;
using testing::Train;
using testing::Uniform;

struct Case {
  const char* name;
  bool llama;
  int world;
  int batch;
  int micro;
  std::vector<int> stages;  // blocks per stage
  Strategy block;
  Strategy eh;
  std::vector<Strategy> per_block;  // overrides `block` when set
  Schedule schedule = Schedule::k1F1B;
  int vocab = 64;
  int virtual_stages = 1;  // > 1: interleaved 1F1B, `stages` lists blocks per model chunk
};

class ParityTest : public ::testing::TestWithParam<Case> {};

const RunResult& Reference(bool llama, int batch, int vocab) {
  static auto* refs = new std::map<std::tuple<bool, int, int>, RunResult>();
  const auto key = std::make_tuple(llama, batch, vocab);
  if (!refs->count(key)) {
    const ModelDims model = llama ? testing::MicroLlama() : testing::MicroGpt(false, vocab);
    (*refs)[key] = Train(model, Uniform(model, batch, 1, {model.num_layers}, S(1), S(1)), 1);
  }
  return refs->at(key);
}

TEST_P(ParityTest, MatchesSingleRank) {
  const Case& c = GetParam();
  const ModelDims model = c.llama ? testing::MicroLlama() : testing::MicroGpt(false, c.vocab);
  PlanSpec plan = Uniform(model, c.batch, c.micro, c.stages, c.block, c.eh);
  plan.schedule = c.schedule;
  plan.virtual_stages = c.virtual_stages;
  for (size_t i = 0; i < c.per_block.size(); ++i) plan.layers[i + 1] = c.per_block[i];
  const RunResult got = Train(model, plan, c.world);
  ExpectParity(Reference(c.llama, c.batch, c.vocab), got, c.name);
  // The arena planned before the first step holds every step's peak.
  for (int r = 0; r < c.world; ++r) {
    EXPECT_GT(got.peak_bytes[r], 0) << "rank " << r;
    EXPECT_LE(got.peak_bytes[r], got.planned_bytes[r]) << "rank " << r;
  }
}

const ParallelMode TP = ParallelMode::kTensor, SP = ParallelMode::kTensorSequence,
                   UL = ParallelMode::kUlysses;

INSTANTIATE_TEST_SUITE_P(
    Plans, ParityTest,
    ::testing::Values(
        Case{"dp2_ddp", true, 2, 8, 2, {4}, S(1), S(1)},
        Case{"dp4_zero1_overlapped", true, 4, 8, 2, {4}, S(1, TP, DpMode::kZero1),
             S(1, TP, DpMode::kZero1)},
        Case{"tp2", true, 2, 8, 1, {4}, S(2, TP), S(2, TP)},
        Case{"tp2_sp_zero1", true, 2, 8, 2, {4}, S(2, SP), S(2, SP)},
        Case{"ulysses2", true, 2, 8, 1, {4}, S(2, UL), S(2, UL)},
        Case{"gpt_tp2_sp_zero2", false, 2, 8, 2, {4}, S(2, SP, DpMode::kZero2), S(2, SP)},
        Case{"gpt_odd_vocab_tp2", false, 2, 8, 2, {4}, S(2, TP), S(2, SP), {}, Schedule::k1F1B,
             63},
        Case{"pp2_uneven_1f1b", true, 2, 8, 4, {1, 3}, S(1), S(1)},
        Case{"pp2_gpipe_tp2", false, 4, 8, 4, {3, 1}, S(2, TP), S(2, TP), {}, Schedule::kGPipe},
        Case{"zero3_tp2_dp2", true, 4, 8, 2, {4}, S(2, TP, DpMode::kZero3),
             S(2, TP, DpMode::kZero3)},
        Case{"zero3_dp4_prefetch", true, 4, 8, 2, {4}, S(1, TP, DpMode::kZero3),
             S(1, TP, DpMode::kZero3)},
        Case{"mixed_layers_4", true, 4, 8, 2, {4}, S(1), S(4, SP, DpMode::kZero1),
             {S(2, SP, DpMode::kZero2), S(1, TP, DpMode::kZero3, true), S(4, UL, DpMode::kDdp),
              S(4, TP, DpMode::kZero1, true)}},
        Case{"pp4_uneven", true, 4, 8, 4, {0, 2, 1, 1}, S(1), S(1)},
        Case{"pp2_tp2_dp2_zero1_recompute", true, 8, 8, 4, {2, 2},
             S(2, SP, DpMode::kZero1, true), S(2, SP, DpMode::kZero1)},
        Case{"ulysses4_dp2_zero3_kv_replicated", true, 8, 8, 2, {4}, S(4, UL, DpMode::kZero3),
             S(4, UL, DpMode::kZero3)},
        Case{"gpt_mixed_tp_dp_8", false, 8, 8, 1, {4}, S(1), S(8, TP),
             {S(4, TP), S(2, SP, DpMode::kZero3), S(4, UL, DpMode::kZero2, true), S(1)}},
        // Interleaved 1F1B: p = 2 stages x v = 2 chunks of one block each (stage 0 runs blocks
        // 1 and 3, stage 1 blocks 2 and 4), in steady state (m = 4) and all-warm-up (m = p = 2).
        Case{"interleaved_pp2_v2", true, 2, 8, 4, {1, 1, 1, 1}, S(1), S(1), {},
             Schedule::kInterleaved1F1B, 64, 2},
        Case{"interleaved_pp2_v2_m2", true, 2, 8, 2, {1, 1, 1, 1}, S(1), S(1), {},
             Schedule::kInterleaved1F1B, 64, 2},
        // Two ranks per stage (TP+SP with ZeRO-1 overlapped reductions), uneven chunks: chunk 0
        // holds only the embedding.
        Case{"interleaved_pp2_v2_tp2_uneven", true, 4, 8, 4, {0, 2, 1, 1},
             S(2, SP, DpMode::kZero1), S(2, SP, DpMode::kZero1), {},
             Schedule::kInterleaved1F1B, 64, 2},
        // p = 2 x v = 3 = 6 chunks, one layer each (the embedding and the head are chunks of
        // their own), recomputation and ZeRO-3 prefetch inside chunks on 2 ranks per stage.
        Case{"interleaved_pp2_v3_dp2_zero3_recompute", false, 4, 8, 4, {0, 1, 1, 1, 1, 0},
             S(1, TP, DpMode::kZero3, true), S(1, TP, DpMode::kZero1), {},
             Schedule::kInterleaved1F1B, 64, 3}),
    [](const ::testing::TestParamInfo<Case>& info) { return std::string(info.param.name); });

TEST(ParityTiedTest, TiedEmbeddingsOnOneAndTwoStages) {
  const ModelDims model = testing::MicroGpt(true);
  const RunResult ref = Train(model, Uniform(model, 8, 1, {4}, S(1), S(1)), 1);
  ExpectParity(ref, Train(model, Uniform(model, 8, 2, {4}, S(2, TP), S(2, SP)), 2), "tied_tp2");
  ExpectParity(ref, Train(model, Uniform(model, 8, 2, {2, 2}, S(1), S(1)), 2), "tied_pp2");
  ExpectParity(ref, Train(model, Uniform(model, 8, 2, {2, 2}, S(1), S(2, SP, DpMode::kZero1)), 4),
               "tied_pp2_tp2_zero1");
  ExpectParity(ref, Train(model, testing::Interleaved(model, 8, 4, 2, {1, 1, 1, 1}, S(1), S(1)), 2),
               "tied_interleaved_pp2_v2");
}

TEST(EngineTest, RejectsPlansThatCannotRunWithEveryReason) {
  const ModelDims model = testing::MicroLlama();
  auto comms = LocalCommunicator::CreateGroup(1);
  CpuBackend backend;
  // Degree 2 does not divide one device (embedding, blocks and head: three lines); 3
  // micro-batches do not split a batch of 8.
  EXPECT_THAT(Engine::Create(model, Uniform(model, 8, 1, {4}, S(2), S(2)), testing::kSeq,
                             comms[0].get(), &backend, {}),
              cairn::testing::StatusIs(absl::StatusCode::kInvalidArgument,
                                       ::testing::HasSubstr("layers 1-4 (block, tp=2 ddp): "
                                                            "degree 2 does not divide")));
  EXPECT_THAT(Engine::Create(model, Uniform(model, 8, 3, {4}, S(1), S(1)), testing::kSeq,
                             comms[0].get(), &backend, {}),
              cairn::testing::StatusIs(absl::StatusCode::kInvalidArgument,
                                       ::testing::HasSubstr("micro-batches")));
}

TEST(EngineTest, PlansMemoryWithoutAnyDevice) {
  // The dry run alone: more ranks, less memory per rank; the same numbers Create allocates.
  const ModelDims model = testing::MicroLlama();
  ASSERT_OK_AND_ASSIGN(
      int64_t one, Engine::PlanMemory(model, Uniform(model, 8, 1, {4}, S(1), S(1)), testing::kSeq,
                                      1, 0, DType::kFloat32, {}));
  ASSERT_OK_AND_ASSIGN(
      int64_t zero3, Engine::PlanMemory(model,
                                        Uniform(model, 8, 1, {4}, S(1, TP, DpMode::kZero3),
                                                S(1, TP, DpMode::kZero3)),
                                        testing::kSeq, 4, 2, DType::kFloat32, {}));
  EXPECT_LT(zero3, one);
  const RunResult run = Train(model, Uniform(model, 8, 1, {4}, S(1), S(1)), 1, 1);
  EXPECT_EQ(run.planned_bytes[0], one);
  // bf16 working tensors: activations and weights halve, fp32 masters appear.
  ASSERT_OK_AND_ASSIGN(
      int64_t bf16, Engine::PlanMemory(model, Uniform(model, 8, 1, {4}, S(1), S(1)),
                                       testing::kSeq, 1, 0, DType::kBFloat16, {}));
  EXPECT_NE(bf16, one);
}

TEST(CheckpointTest, ResumesIdenticallyAndUnderAnotherPlan) {
  const ModelDims model = testing::MicroLlama();
  const char* tmp = std::getenv("TEST_TMPDIR");
  const std::string dir = std::string(tmp ? tmp : "/tmp") + "/cairn_ckpt_test";
  const PlanSpec a = Uniform(model, 8, 2, {4}, S(2, SP, DpMode::kZero1), S(2, SP));
  const RunResult straight = Train(model, a, 2, 4);
  Train(model, a, 2, 2, 0, "", dir);
  // Same plan: bit-for-bit the same continuation.
  const RunResult resumed = Train(model, a, 2, 2, 2, dir);
  for (int r = 0; r < 2; ++r) {
    for (int s = 2; s < 4; ++s) {
      EXPECT_EQ(resumed.losses[r][s], straight.losses[r][s]) << "rank " << r << " step " << s;
    }
  }
  EXPECT_EQ(resumed.params, straight.params);
  // Another plan and world size (pipeline + ZeRO-3 + Ulysses): resharded on load; same losses
  // and parameters, both ways.
  PlanSpec b = Uniform(model, 8, 4, {2, 2}, S(2, UL, DpMode::kZero3), S(1));
  ExpectParity(straight, Train(model, b, 4, 2, 2, dir), "resumed under pp2 ulysses2 zero3");
  EXPECT_THAT(ReadCheckpoint(dir + "/missing"),
              cairn::testing::StatusIs(absl::StatusCode::kNotFound,
                                       ::testing::HasSubstr("meta.txt")));
}

}  // namespace
}  // namespace cairn::runtime
