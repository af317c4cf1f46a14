// Parity of the engine: every plan on 2, 4 and 8 ranks trains exactly the model one rank trains
// (same losses step by step, same parameters after the optimizer steps; fp32, relative error
// < 1e-5). Ranks are threads with the in-process communicator; the Gloo path is covered by
// tests/train_test.
#include <cmath>
#include <map>
#include <mutex>
#include <thread>

#include "absl/strings/str_cat.h"
#include "common/testing/status_matchers.h"
#include "gtest/gtest.h"
#include "runtime/comm/local/local_communicator.h"
#include "runtime/compute/cpu/cpu_backend.h"
#include "planner/catalog/clusters.h"
#include "planner/cost/evaluate.h"
#include "planner/problem/problem_builder.h"
#include "runtime/engine/engine.h"

namespace cairn::runtime {
namespace {

using planner::DpMode;
using planner::ModelDims;
using planner::ParallelMode;
using planner::PlanSpec;
using planner::Schedule;
using planner::Strategy;

constexpr int kSteps = 3;
constexpr int kSeq = 16;

ModelDims Llama() {
  ModelDims m;
  m.name = "llama-micro";
  m.num_layers = 4;
  m.hidden = 32;
  m.ffn_hidden = 64;
  m.num_heads = 4;
  m.num_kv_heads = 2;
  m.vocab = 64;
  m.max_seq_len = 32;
  m.rms_norm = m.swiglu = m.rope = true;
  return m;
}

ModelDims Gpt(bool tied) {
  ModelDims m;
  m.name = "gpt-micro";
  m.num_layers = 4;
  m.hidden = 32;
  m.ffn_hidden = 128;
  m.num_heads = 4;
  m.num_kv_heads = 4;
  m.vocab = 64;
  m.max_seq_len = 32;
  m.bias = true;
  m.tied_embeddings = tied;
  return m;
}

absl::Status Sample(int64_t step, int64_t sample, std::vector<int32_t>* in,
                    std::vector<int32_t>* tg) {
  in->resize(kSeq);
  tg->resize(kSeq);
  uint64_t h = 0x9e3779b97f4a7c15ULL * (step * 1000 + sample + 1);
  auto next = [&] {
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdULL;
    h ^= h >> 29;
    return static_cast<int32_t>(h % 64);
  };
  int32_t prev = next();
  for (int i = 0; i < kSeq; ++i) {
    (*in)[i] = prev;
    // A learnable pattern: mostly (previous + 1) mod 64.
    prev = (next() % 4 == 0) ? next() : (prev + 1) % 64;
    (*tg)[i] = prev;
  }
  return absl::OkStatus();
}

struct RunResult {
  std::vector<double> losses;
  std::map<std::string, std::map<int64_t, float>> params;
  std::vector<int64_t> peak_bytes;
};

PlanSpec Uniform(const ModelDims& m, int batch, int micro, std::vector<int> stage_blocks,
                 Strategy block, Strategy eh) {
  PlanSpec p;
  p.global_batch = batch;
  p.num_micro_batches = micro;
  for (size_t i = 0; i < stage_blocks.size(); ++i) {
    p.stage_layers.push_back(stage_blocks[i] + (i == 0) + (i + 1 == stage_blocks.size()));
  }
  p.layers.assign(m.num_layers + 2, block);
  p.layers.front() = eh;
  p.layers.back() = eh;
  return p;
}

Strategy S(int tp, ParallelMode mode = ParallelMode::kTensor, DpMode dp = DpMode::kDdp,
           bool rc = false) {
  Strategy s;
  s.tp = tp;
  s.mode = mode;
  s.dp = dp;
  s.recompute = rc;
  return s;
}

RunResult Train(const ModelDims& model, const PlanSpec& plan, int world) {
  auto comms = LocalCommunicator::CreateGroup(world);
  RunResult out;
  out.losses.assign(kSteps, 0);
  out.peak_bytes.assign(world, 0);
  std::mutex mu;
  std::vector<absl::Status> status(world);
  std::vector<std::thread> threads;
  for (int r = 0; r < world; ++r) {
    threads.emplace_back([&, r] {
      CpuBackend backend;
      TrainOptions opt;
      // AdamW divides each gradient by its own magnitude, so a rounding difference in a gradient
      // near zero would become a difference of order lr in its parameter; eps = 1e-4 bounds that
      // amplification (a summation-order difference of 1e-9 moves a parameter by <= 1e-8).
      opt.adamw.learning_rate = 1e-3f;
      opt.adamw.eps = 1e-4f;
      opt.adamw.weight_decay = 0.1f;
      opt.warmup_steps = 1;
      opt.total_steps = kSteps;
      opt.grad_clip = 1.0f;
      auto engine = Engine::Create(model, plan, kSeq, comms[r].get(), &backend, opt);
      if (!engine.ok()) {
        status[r] = engine.status();
        comms[r]->Abort(engine.status().message());
        return;
      }
      for (int step = 0; step < kSteps; ++step) {
        auto res = (*engine)->Step(step, Sample);
        if (!res.ok()) {
          status[r] = res.status();
          comms[r]->Abort(res.status().message());
          return;
        }
        std::lock_guard<std::mutex> lock(mu);
        out.losses[step] = res->loss;
        out.peak_bytes[r] = std::max(out.peak_bytes[r], res->peak_memory_bytes);
      }
      auto params = (*engine)->LocalParameters();
      if (!params.ok()) {
        status[r] = params.status();
        return;
      }
      std::lock_guard<std::mutex> lock(mu);
      for (auto& [name, values] : *params) {
        for (auto& [index, value] : values) out.params[name][index] = value;
      }
    });
  }
  for (auto& t : threads) t.join();
  for (int r = 0; r < world; ++r) EXPECT_OK(status[r]) << "rank " << r << ": " << status[r];
  return out;
}

void ExpectParity(const RunResult& ref, const RunResult& got, const std::string& what) {
  for (int s = 0; s < kSteps; ++s) {
    EXPECT_NEAR(got.losses[s], ref.losses[s], 1e-5 * std::fabs(ref.losses[s]))
        << what << ": loss at step " << s;
  }
  double worst = 0;
  std::string where;
  for (const auto& [name, values] : ref.params) {
    auto it = got.params.find(name);
    if (it == got.params.end()) {
      ADD_FAILURE() << what << ": no parameter " << name;
      continue;
    }
    ASSERT_EQ(it->second.size(), values.size()) << what << ": " << name;
    for (const auto& [index, value] : values) {
      const float other = it->second.at(index);
      const double err = std::fabs(other - value) / std::max(1e-2, std::fabs(static_cast<double>(value)));
      if (err > worst) {
        worst = err;
        where = absl::StrCat(name, "[", index, "] ", other, " vs ", value);
      }
    }
  }
  EXPECT_LT(worst, 1e-5) << what << ": worst parameter " << where;
}

// The planner's predicted per-stage memory (fp32, the CPU profile, runtime reservation excluded:
// the engine counts the tensors it allocates) against the measured peak of the stage's ranks.
void ExpectMemoryMatchesPlanner(const ModelDims& model, const PlanSpec& plan, int world,
                                const RunResult& got) {
  planner::SearchProblem pb;
  pb.model = model;
  pb.hardware = planner::ToHardware(planner::MakeCluster("cpu", 1, world).value());
  pb.hardware.reserved_bytes = 0;
  pb.precision = planner::Precision::Fp32();
  pb.seq_len = kSeq;
  pb.global_batch_sizes = {plan.global_batch};
  pb.memory_budget_bytes = pb.hardware.device_memory_bytes;
  planner::CostModel cm(pb);
  auto e = planner::Evaluate(cm, plan);
  ASSERT_TRUE(e.ok()) << e.status();
  const int n = world / plan.pipeline_degree();
  for (int st = 0; st < plan.pipeline_degree(); ++st) {
    int64_t measured = 0;
    for (int r = st * n; r < (st + 1) * n; ++r) measured = std::max(measured, got.peak_bytes[r]);
    const int64_t predicted = e->stages[st].total_bytes;
    const planner::StageCost& sc = e->stages[st];
    EXPECT_NEAR(static_cast<double>(predicted), static_cast<double>(measured), 0.05 * measured)
        << "stage " << st;
    std::printf("memory stage %d: measured %lld predicted %lld (%+.1f%%): params %lld grads %lld "
                "optimizer %lld activations %lld transient %lld\n",
                st, static_cast<long long>(measured), static_cast<long long>(predicted),
                100.0 * (predicted - measured) / measured, (long long)sc.param_bytes,
                (long long)sc.grad_bytes, (long long)sc.optimizer_bytes,
                (long long)sc.activation_bytes, (long long)sc.transient_bytes);
  }
}

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
};

class ParityTest : public ::testing::TestWithParam<Case> {};

TEST_P(ParityTest, MatchesSingleRank) {
  const Case& c = GetParam();
  const ModelDims model = c.llama ? Llama() : Gpt(false);
  const PlanSpec ref_plan = Uniform(model, c.batch, 1, {model.num_layers}, S(1), S(1));
  static std::map<std::pair<bool, int>, RunResult> refs;
  auto key = std::make_pair(c.llama, c.batch);
  if (!refs.count(key)) refs[key] = Train(model, ref_plan, 1);
  PlanSpec plan = Uniform(model, c.batch, c.micro, c.stages, c.block, c.eh);
  plan.schedule = c.schedule;
  for (size_t i = 0; i < c.per_block.size(); ++i) plan.layers[i + 1] = c.per_block[i];
  const RunResult got = Train(model, plan, c.world);
  ExpectParity(refs[key], got, c.name);
  ExpectMemoryMatchesPlanner(model, plan, c.world, got);
}

const ParallelMode TP = ParallelMode::kTensor, SP = ParallelMode::kTensorSequence,
                   UL = ParallelMode::kUlysses;

INSTANTIATE_TEST_SUITE_P(
    Plans, ParityTest,
    ::testing::Values(
        Case{"dp2_ddp", true, 2, 8, 2, {4}, S(1), S(1)},
        Case{"tp2", true, 2, 8, 1, {4}, S(2, TP), S(2, TP)},
        Case{"tp2_sp_zero1", true, 2, 8, 2, {4}, S(2, SP), S(2, SP)},
        Case{"ulysses2", true, 2, 8, 1, {4}, S(2, UL), S(2, UL)},
        Case{"gpt_tp2_sp_zero2", false, 2, 8, 2, {4}, S(2, SP, DpMode::kZero2), S(2, SP)},
        Case{"pp2_uneven_1f1b", true, 2, 8, 4, {1, 3}, S(1), S(1)},
        Case{"pp2_gpipe_tp2", false, 4, 8, 4, {3, 1}, S(2, TP), S(2, TP), {}, Schedule::kGPipe},
        Case{"zero3_tp2_dp2", true, 4, 8, 2, {4}, S(2, TP, DpMode::kZero3), S(2, TP, DpMode::kZero3)},
        Case{"mixed_layers_4", true, 4, 8, 2, {4}, S(1), S(4, SP, DpMode::kZero1),
             {S(2, SP, DpMode::kZero2), S(1, TP, DpMode::kZero3, true), S(4, UL, DpMode::kDdp),
              S(4, TP, DpMode::kZero1, true)}},
        Case{"pp4_uneven", true, 4, 8, 4, {0, 2, 1, 1}, S(1), S(1)},
        Case{"pp2_tp2_dp2_zero1_recompute", true, 8, 8, 4, {2, 2},
             S(2, SP, DpMode::kZero1, true), S(2, SP, DpMode::kZero1)},
        Case{"ulysses4_dp2_zero3_kv_replicated", true, 8, 8, 2, {4}, S(4, UL, DpMode::kZero3),
             S(4, UL, DpMode::kZero3)},
        Case{"gpt_mixed_tp_dp_8", false, 8, 8, 1, {4}, S(1), S(8, TP),
             {S(4, TP), S(2, SP, DpMode::kZero3), S(4, UL, DpMode::kZero2, true), S(1)}}),
    [](const ::testing::TestParamInfo<Case>& info) { return std::string(info.param.name); });

TEST(ParityTiedTest, TiedEmbeddingsOnOneAndTwoStages) {
  const ModelDims model = Gpt(true);
  const RunResult ref = Train(model, Uniform(model, 8, 1, {4}, S(1), S(1)), 1);
  ExpectParity(ref, Train(model, Uniform(model, 8, 2, {4}, S(2, TP), S(2, SP)), 2), "tied_tp2");
  ExpectParity(ref, Train(model, Uniform(model, 8, 2, {2, 2}, S(1), S(1)), 2), "tied_pp2");
}

TEST(EngineTest, RejectsPlansThatCannotRun) {
  const ModelDims model = Llama();
  auto comms = LocalCommunicator::CreateGroup(1);
  CpuBackend backend;
  // Degree 3 does not divide one device; 5 blocks for a 4-block model.
  PlanSpec bad = Uniform(model, 8, 1, {4}, S(2), S(1));
  EXPECT_THAT(Engine::Create(model, bad, kSeq, comms[0].get(), &backend, {}),
              cairn::testing::StatusIs(absl::StatusCode::kInvalidArgument,
                                       ::testing::HasSubstr("does not divide")));
  PlanSpec wrong = Uniform(model, 8, 3, {4}, S(1), S(1));
  EXPECT_THAT(Engine::Create(model, wrong, kSeq, comms[0].get(), &backend, {}),
              cairn::testing::StatusIs(absl::StatusCode::kInvalidArgument,
                                       ::testing::HasSubstr("micro-batches")));
}

}  // namespace
}  // namespace cairn::runtime

namespace cairn::runtime {
namespace {

// Trains `steps` steps from `from` (a checkpoint dir or "") and saves to `to` (or not).
RunResult TrainFrom(const ModelDims& model, const PlanSpec& plan, int world, int first_step,
                    int steps, const std::string& from, const std::string& to) {
  auto comms = LocalCommunicator::CreateGroup(world);
  RunResult out;
  out.losses.assign(first_step + steps, 0);
  std::mutex mu;
  std::vector<std::thread> threads;
  std::vector<absl::Status> status(world);
  for (int r = 0; r < world; ++r) {
    threads.emplace_back([&, r] {
      CpuBackend backend;
      TrainOptions opt;
      opt.adamw.learning_rate = 1e-3f;
      opt.adamw.eps = 1e-4f;
      opt.total_steps = 4;
      auto engine = Engine::Create(model, plan, kSeq, comms[r].get(), &backend, opt);
      absl::Status st = engine.status();
      if (st.ok() && !from.empty()) {
        auto ck = ReadCheckpoint(from);
        st = ck.ok() ? (*engine)->Restore(*ck) : ck.status();
      }
      for (int step = first_step; st.ok() && step < first_step + steps; ++step) {
        auto res = (*engine)->Step(step, Sample);
        st = res.status();
        if (res.ok()) {
          std::lock_guard<std::mutex> lock(mu);
          out.losses[step] = res->loss;
        }
      }
      if (st.ok() && !to.empty()) {
        auto snap = (*engine)->Snapshot();
        st = snap.ok() ? WriteRankFile(to, r, *snap) : snap.status();
        if (st.ok()) st = comms[r]->Barrier();
        if (st.ok() && r == 0) st = WriteMeta(to, {first_step + steps, model.name, world, 1});
      }
      if (st.ok()) {
        auto params = (*engine)->LocalParameters();
        st = params.status();
        std::lock_guard<std::mutex> lock(mu);
        if (params.ok()) {
          for (auto& [name, values] : *params) {
            for (auto& [index, value] : values) out.params[name][index] = value;
          }
        }
      }
      status[r] = st;
      if (!st.ok()) comms[r]->Abort(st.message());
    });
  }
  for (auto& t : threads) t.join();
  for (int r = 0; r < world; ++r) EXPECT_OK(status[r]) << "rank " << r << ": " << status[r];
  return out;
}

TEST(CheckpointTest, ResumesIdenticallyAndUnderAnotherPlan) {
  const ModelDims model = Llama();
  const char* tmp = std::getenv("TEST_TMPDIR");
  const std::string dir = std::string(tmp ? tmp : "/tmp") + "/cairn_ckpt_test";
  const PlanSpec a = Uniform(model, 8, 2, {4}, S(2, SP, DpMode::kZero1), S(2, SP));
  const RunResult straight = TrainFrom(model, a, 2, 0, 4, "", "");
  TrainFrom(model, a, 2, 0, 2, "", dir);
  // Same plan: bit-for-bit the same continuation.
  const RunResult resumed = TrainFrom(model, a, 2, 2, 2, dir, "");
  for (int s = 2; s < 4; ++s) EXPECT_EQ(resumed.losses[s], straight.losses[s]) << "step " << s;
  EXPECT_EQ(resumed.params, straight.params);
  // Another plan and world size (pipeline + ZeRO-3 + Ulysses): resharded on load.
  PlanSpec b = Uniform(model, 8, 4, {2, 2}, S(2, UL, DpMode::kZero3), S(1));
  const RunResult other = TrainFrom(model, b, 4, 2, 2, dir, "");
  for (int s = 2; s < 4; ++s) {
    EXPECT_NEAR(other.losses[s], straight.losses[s], 1e-5 * straight.losses[s]) << "step " << s;
  }
  EXPECT_THAT(ReadCheckpoint(dir + "/missing"),
              cairn::testing::StatusIs(absl::StatusCode::kNotFound, ::testing::HasSubstr("meta.txt")));
}

}  // namespace
}  // namespace cairn::runtime
