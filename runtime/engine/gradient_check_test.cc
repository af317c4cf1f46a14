// The engine's gradients against central finite differences of its own loss, on tiny GPT-2 and
// Llama models (one rank): checks the layers' hand-written backward as wired together (residuals,
// norms, attention, MLP, tied embeddings, cross-entropy), which the parity tests cannot (they
// compare ranks against one rank).
#include <cmath>
#include <map>
#include <random>

#include "common/testing/status_matchers.h"
#include "gtest/gtest.h"
#include "runtime/comm/local/local_communicator.h"
#include "runtime/compute/cpu/cpu_backend.h"
#include "runtime/engine/engine.h"

namespace cairn::runtime {
namespace {

constexpr int kSeq = 8;

absl::Status Sample(int64_t, int64_t sample, std::vector<int32_t>* in, std::vector<int32_t>* tg) {
  in->resize(kSeq);
  tg->resize(kSeq);
  for (int i = 0; i < kSeq; ++i) {
    (*in)[i] = static_cast<int32_t>((sample * 7 + i * 3) % 32);
    (*tg)[i] = static_cast<int32_t>((sample * 5 + i * 11 + 1) % 32);
  }
  return absl::OkStatus();
}

plan::ModelDims Tiny(bool llama) {
  plan::ModelDims m;
  m.name = llama ? "llama-fd" : "gpt-fd";
  m.num_layers = 2;
  m.hidden = 16;
  m.ffn_hidden = llama ? 24 : 32;
  m.num_heads = 4;
  m.num_kv_heads = llama ? 2 : 4;
  m.vocab = 32;
  m.max_seq_len = 16;
  m.rms_norm = m.swiglu = m.rope = llama;
  m.bias = m.tied_embeddings = !llama;
  return m;
}

void CheckGradients(bool llama) {
  const plan::ModelDims model = Tiny(llama);
  plan::PlanSpec plan;
  plan.global_batch = 2;
  plan.num_micro_batches = 1;
  plan.stage_layers = {model.num_layers + 2};
  plan.layers.assign(model.num_layers + 2, plan::Strategy{});
  auto comms = LocalCommunicator::CreateGroup(1);
  CpuBackend backend;
  TrainOptions opt;
  opt.seed = 7;
  ASSERT_OK_AND_ASSIGN(auto engine,
                       Engine::Create(model, plan, kSeq, comms[0].get(), &backend, opt));
  std::map<std::string, std::vector<std::pair<int64_t, float>>> grads;
  ASSERT_OK_AND_ASSIGN(double loss, engine->LossAndGradients(0, Sample, &grads));
  EXPECT_GT(loss, 0);
  ASSERT_OK_AND_ASSIGN(TensorRecords base, engine->Snapshot());
  auto loss_with = [&](const std::string& name, int64_t index, float delta) -> double {
    Checkpoint ck;
    for (const TensorRecord& r : base) {
      auto& table = r.kind == RecordKind::kValue ? ck.values
                    : r.kind == RecordKind::kAdamM ? ck.adam_m : ck.adam_v;
      for (size_t i = 0; i < r.indices.size(); ++i) {
        float v = r.values[i];
        if (r.kind == RecordKind::kValue && r.name == name && r.indices[i] == index) v += delta;
        table[r.name][r.indices[i]] = v;
      }
    }
    EXPECT_OK(engine->Restore(ck));
    std::map<std::string, std::vector<std::pair<int64_t, float>>> unused;
    return engine->LossAndGradients(0, Sample, &unused).value();
  };
  std::mt19937 rng(11);
  int checked = 0;
  for (const auto& [name, values] : grads) {
    // Three elements per tensor with a gradient large enough for fp32 differences.
    std::vector<std::pair<int64_t, float>> big;
    for (const auto& e : values) {
      if (std::fabs(e.second) > 1e-3) big.push_back(e);
    }
    std::shuffle(big.begin(), big.end(), rng);
    for (size_t k = 0; k < std::min<size_t>(3, big.size()); ++k) {
      const auto [index, g] = big[k];
      const float h = 3e-3f;
      const double fd = (loss_with(name, index, h) - loss_with(name, index, -h)) / (2 * h);
      EXPECT_NEAR(g, fd, 2e-2 * std::fabs(fd) + 2e-4) << name << "[" << index << "]";
      ++checked;
    }
  }
  EXPECT_GT(checked, 30);
}

TEST(GradientCheckTest, Llama) { CheckGradients(true); }
TEST(GradientCheckTest, Gpt2WithTiedEmbeddings) { CheckGradients(false); }

}  // namespace
}  // namespace cairn::runtime
