// Engine::Evaluate (the validation loss): on the same parameters and the same batch it reports the
// loss Step reports (Step computes its loss in the forward, before the update), on every rank, for
// plans with every parallelism and every pipeline schedule; it changes nothing, so the steps after
// it train as if it had not run; its buffers fit in the arena planned before the first step.
//
// Adding a case: a plan on `world` ranks (testing::Uniform / testing::Interleaved, as in
// engine_parity_test.cc) to the INSTANTIATE list below.
#include <cmath>
#include <mutex>
#include <thread>
#include <vector>

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
using testing::S;
using testing::Uniform;

struct Case {
  const char* name;
  int world;
  int micro;
  std::vector<int> stages;  // blocks per stage (per model chunk when virtual_stages > 1)
  Strategy block;
  Strategy eh;
  Schedule schedule = Schedule::k1F1B;
  int virtual_stages = 1;
};

// Per rank: [Evaluate(0), Step(0).loss, Evaluate(1), Step(1).loss, Evaluate(1) after it], and the
// step losses of a second engine that trains the same two steps without evaluating.
struct Losses {
  std::vector<std::vector<double>> with_eval, without_eval;
};

Losses RunBothWays(const ModelDims& model, const PlanSpec& plan, int world) {
  Losses out;
  out.with_eval.assign(world, {});
  out.without_eval.assign(world, {});
  for (const bool evaluate : {true, false}) {
    auto comms = LocalCommunicator::CreateGroup(world);
    std::vector<absl::Status> status(world);
    std::vector<std::thread> threads;
    for (int r = 0; r < world; ++r) {
      threads.emplace_back([&, r] {
        std::vector<double>& got = evaluate ? out.with_eval[r] : out.without_eval[r];
        CpuBackend backend;
        absl::StatusOr<std::unique_ptr<Engine>> engine = Engine::Create(
            model, plan, testing::kSeq, comms[r].get(), &backend, testing::ParityOptions(3));
        absl::Status st = engine.status();
        auto eval = [&](int64_t batch) {
          if (!st.ok() || !evaluate) return;
          absl::StatusOr<double> loss = (*engine)->Evaluate(batch, testing::Sample);
          st = loss.status();
          if (loss.ok()) got.push_back(*loss);
        };
        auto step = [&](int64_t s) {
          if (!st.ok()) return;
          absl::StatusOr<StepResult> res = (*engine)->Step(s, testing::Sample);
          st = res.status();
          if (res.ok()) {
            got.push_back(res->loss);
            if (res->peak_memory_bytes > (*engine)->planned_bytes()) {
              st = absl::InternalError("step peak above the planned arena");
            }
          }
        };
        eval(0);
        step(0);
        eval(1);
        step(1);
        eval(1);
        status[r] = st;
        if (!st.ok()) comms[r]->Abort(st.message());
      });
    }
    for (auto& t : threads) t.join();
    for (int r = 0; r < world; ++r) EXPECT_OK(status[r]) << "rank " << r;
  }
  return out;
}

class EvaluateTest : public ::testing::TestWithParam<Case> {};

TEST_P(EvaluateTest, EqualsTheStepLossOnTheSameBatchAndChangesNothing) {
  const Case& c = GetParam();
  const ModelDims model = testing::MicroLlama();
  PlanSpec plan = Uniform(model, 8, c.micro, c.stages, c.block, c.eh);
  plan.schedule = c.schedule;
  plan.virtual_stages = c.virtual_stages;
  const Losses l = RunBothWays(model, plan, c.world);
  for (int r = 0; r < c.world; ++r) {
    const std::vector<double>& e = l.with_eval[r];
    const std::vector<double>& t = l.without_eval[r];
    ASSERT_EQ(e.size(), 5u) << c.name << " rank " << r;
    ASSERT_EQ(t.size(), 2u) << c.name << " rank " << r;
    for (double v : e) EXPECT_TRUE(std::isfinite(v)) << c.name;
    EXPECT_GT(e[0], 0) << c.name;
    // Same parameters, same batch: the evaluation is the step's forward.
    EXPECT_NEAR(e[0], e[1], 1e-6 * e[1]) << c.name << " rank " << r << ": batch 0";
    EXPECT_NEAR(e[2], e[3], 1e-6 * e[3]) << c.name << " rank " << r << ": batch 1";
    // The update between them changed the loss of batch 1 (the evaluation saw new weights).
    EXPECT_NE(e[2], e[4]) << c.name << " rank " << r;
    // Training with evaluations in between is training without them.
    EXPECT_NEAR(e[1], t[0], 1e-6 * t[0]) << c.name << " rank " << r;
    EXPECT_NEAR(e[3], t[1], 1e-6 * t[1]) << c.name << " rank " << r;
    // Every rank reports the same loss.
    EXPECT_DOUBLE_EQ(e[0], l.with_eval[0][0]) << c.name << " rank " << r;
  }
}

TEST(EvaluateTest, DifferentBatchesGiveDifferentLosses) {
  const ModelDims model = testing::MicroLlama();
  const PlanSpec plan = Uniform(model, 8, 2, {4}, S(1), S(1));
  auto comms = LocalCommunicator::CreateGroup(1);
  CpuBackend backend;
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<Engine> engine,
                       Engine::Create(model, plan, testing::kSeq, comms[0].get(), &backend,
                                      testing::ParityOptions(3)));
  ASSERT_OK_AND_ASSIGN(const double a, engine->Evaluate(0, testing::Sample));
  ASSERT_OK_AND_ASSIGN(const double a_again, engine->Evaluate(0, testing::Sample));
  ASSERT_OK_AND_ASSIGN(const double b, engine->Evaluate(5, testing::Sample));
  EXPECT_EQ(a, a_again);  // deterministic, and nothing changed in between
  EXPECT_NE(a, b);
}

const ParallelMode TP = ParallelMode::kTensor, SP = ParallelMode::kTensorSequence,
                   UL = ParallelMode::kUlysses;

INSTANTIATE_TEST_SUITE_P(
    Plans, EvaluateTest,
    ::testing::Values(
        Case{"single", 1, 2, {4}, S(1), S(1)},
        Case{"dp2_zero3", 2, 2, {4}, S(1, TP, DpMode::kZero3), S(1, TP, DpMode::kZero3)},
        Case{"tp2_sp_recompute", 2, 2, {4}, S(2, SP, DpMode::kDdp, true), S(2, SP)},
        Case{"ulysses2", 2, 1, {4}, S(2, UL), S(2, UL)},
        Case{"pp2_1f1b", 2, 4, {1, 3}, S(1), S(1)},
        Case{"pp2_gpipe_tp2", 4, 4, {3, 1}, S(2, TP), S(2, TP), Schedule::kGPipe},
        Case{"interleaved_pp2_v2", 2, 4, {1, 1, 1, 1}, S(1), S(1), Schedule::kInterleaved1F1B,
             2},
        Case{"interleaved_pp2_v2_tp2", 4, 2, {0, 2, 1, 1}, S(2, SP, DpMode::kZero1),
             S(2, SP, DpMode::kZero1), Schedule::kInterleaved1F1B, 2}),
    [](const ::testing::TestParamInfo<Case>& info) { return std::string(info.param.name); });

}  // namespace
}  // namespace cairn::runtime
