// runtime/engine/testing/engine_test_util.h — tiny models, plans and a threaded training harness
// for engine tests (parity here, predicted-vs-measured memory in tests/).
//
//   const plan::ModelDims m = testing::MicroLlama();
//   testing::RunResult ref = testing::Train(m, testing::Uniform(m, 8, 1, {4}, S(1), S(1)), 1);
//   testing::RunResult got = testing::Train(m, plan, /*world=*/4);
//   testing::ExpectParity(ref, got, "my plan");
//
// Ranks are threads with the in-process communicator (runtime/comm/local) and the CPU backend.
// Test-only.
#ifndef CAIRN_RUNTIME_ENGINE_TESTING_ENGINE_TEST_UTIL_H_
#define CAIRN_RUNTIME_ENGINE_TESTING_ENGINE_TEST_UTIL_H_

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "common/plan/plan.h"
#include "runtime/engine/engine.h"

namespace cairn::runtime::testing {

inline constexpr int kSeq = 16;

// Llama-style (RMSNorm, SwiGLU, RoPE, GQA 4/2) and GPT-2-style (LayerNorm, GELU, learned
// positions, biases) models of 4 blocks, hidden 32, vocabulary `vocab`.
plan::ModelDims MicroLlama();
plan::ModelDims MicroGpt(bool tied, int vocab = 64);

// Deterministic token samples with a learnable pattern, ids in [0, 63).
absl::Status Sample(int64_t step, int64_t sample, std::vector<int32_t>* in,
                    std::vector<int32_t>* tg);

plan::Strategy S(int tp, plan::ParallelMode mode = plan::ParallelMode::kTensor,
                 plan::DpMode dp = plan::DpMode::kDdp, bool recompute = false);
// One strategy for the blocks, one for the embedding and the head; `stage_blocks` blocks per
// stage (the embedding joins the first, the head the last).
plan::PlanSpec Uniform(const plan::ModelDims& m, int batch, int micro,
                       std::vector<int> stage_blocks, plan::Strategy block, plan::Strategy eh);
// The same with the interleaved 1F1B schedule: `chunk_blocks` blocks per model chunk (p x v
// entries in model order; the embedding joins chunk 0, the head the last chunk).
plan::PlanSpec Interleaved(const plan::ModelDims& m, int batch, int micro, int virtual_stages,
                           std::vector<int> chunk_blocks, plan::Strategy block,
                           plan::Strategy eh);

struct RunResult {
  int first_step = 0;                                        // steps before it were not run
  std::vector<std::vector<double>> losses;                   // [rank][step]
  std::map<std::string, std::map<int64_t, float>> params;    // merged over ranks
  std::vector<int64_t> peak_bytes;                           // [rank]: live tensors at the peak
  std::vector<int64_t> planned_bytes;                        // [rank]: the arena
};

// AdamW with eps 1e-4: AdamW divides each gradient by its own magnitude, so a rounding difference
// in a gradient near zero would become a difference of order lr in its parameter; eps = 1e-4
// bounds that amplification (a summation-order difference of 1e-9 moves a parameter by <= 1e-8).
TrainOptions ParityOptions(int total_steps);

// Trains `steps` steps from `first_step` on `world` ranks; with `from`, restores that checkpoint
// first; with `to`, writes one after the last step. Expects success on every rank.
RunResult Train(const plan::ModelDims& model, const plan::PlanSpec& plan, int world,
                int steps = 3, int first_step = 0, const std::string& from = "",
                const std::string& to = "");

// Every rank's loss at every step both runs ran within 1e-5 (relative) of the reference's, and the
// same parameters (both ways: same names and elements) within 1e-5. A tied model's head copy on
// another stage ("<L+1>.lm_head") is compared with the reference's embedding ("0.wte").
void ExpectParity(const RunResult& ref, const RunResult& got, const std::string& what);

}  // namespace cairn::runtime::testing

#endif  // CAIRN_RUNTIME_ENGINE_TESTING_ENGINE_TEST_UTIL_H_
