#include "runtime/engine/testing/engine_test_util.h"

#include <cmath>
#include <mutex>
#include <thread>

#include "absl/strings/str_cat.h"
#include "common/testing/status_matchers.h"
#include "gtest/gtest.h"
#include "runtime/comm/local/local_communicator.h"
#include "runtime/compute/cpu/cpu_backend.h"

namespace cairn::runtime::testing {

plan::ModelDims MicroLlama() {
  plan::ModelDims m;
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

plan::ModelDims MicroGpt(bool tied, int vocab) {
  plan::ModelDims m;
  m.name = "gpt-micro";
  m.num_layers = 4;
  m.hidden = 32;
  m.ffn_hidden = 128;
  m.num_heads = 4;
  m.num_kv_heads = 4;
  m.vocab = vocab;
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
    return static_cast<int32_t>(h % 63);
  };
  int32_t prev = next();
  for (int i = 0; i < kSeq; ++i) {
    (*in)[i] = prev;
    // A learnable pattern: mostly (previous + 1) mod 63.
    prev = (next() % 4 == 0) ? next() : (prev + 1) % 63;
    (*tg)[i] = prev;
  }
  return absl::OkStatus();
}

plan::Strategy S(int tp, plan::ParallelMode mode, plan::DpMode dp, bool recompute) {
  plan::Strategy s;
  s.tp = tp;
  s.mode = mode;
  s.dp = dp;
  s.recompute = recompute;
  return s;
}

plan::PlanSpec Uniform(const plan::ModelDims& m, int batch, int micro,
                       std::vector<int> stage_blocks, plan::Strategy block, plan::Strategy eh) {
  plan::PlanSpec p;
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

plan::PlanSpec Interleaved(const plan::ModelDims& m, int batch, int micro, int virtual_stages,
                           std::vector<int> chunk_blocks, plan::Strategy block,
                           plan::Strategy eh) {
  plan::PlanSpec p = Uniform(m, batch, micro, std::move(chunk_blocks), block, eh);
  p.schedule = plan::Schedule::kInterleaved1F1B;
  p.virtual_stages = virtual_stages;
  return p;
}

TrainOptions ParityOptions(int total_steps) {
  TrainOptions opt;
  opt.adamw.learning_rate = 1e-3f;
  opt.adamw.eps = 1e-4f;
  opt.adamw.weight_decay = 0.1f;
  opt.warmup_steps = 1;
  opt.total_steps = total_steps;
  opt.grad_clip = 1.0f;
  return opt;
}

RunResult Train(const plan::ModelDims& model, const plan::PlanSpec& plan, int world, int steps,
                int first_step, const std::string& from, const std::string& to) {
  auto comms = LocalCommunicator::CreateGroup(world);
  RunResult out;
  out.first_step = first_step;
  out.losses.assign(world, std::vector<double>(first_step + steps, 0.0));
  out.peak_bytes.assign(world, 0);
  out.planned_bytes.assign(world, 0);
  std::mutex mu;
  std::vector<absl::Status> status(world);
  std::vector<std::thread> threads;
  for (int r = 0; r < world; ++r) {
    threads.emplace_back([&, r] {
      CpuBackend backend;
      auto engine = Engine::Create(model, plan, kSeq, comms[r].get(), &backend,
                                   ParityOptions(first_step + steps + 1));
      absl::Status st = engine.status();
      if (st.ok()) out.planned_bytes[r] = (*engine)->planned_bytes();
      if (st.ok() && !from.empty()) {
        auto ck = ReadCheckpoint(from);
        st = ck.ok() ? (*engine)->Restore(*ck) : ck.status();
      }
      for (int step = first_step; st.ok() && step < first_step + steps; ++step) {
        auto res = (*engine)->Step(step, Sample);
        st = res.status();
        if (res.ok()) {
          std::lock_guard<std::mutex> lock(mu);
          out.losses[r][step] = res->loss;
          out.peak_bytes[r] = std::max(out.peak_bytes[r], res->peak_memory_bytes);
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

void ExpectParity(const RunResult& ref, const RunResult& got, const std::string& what) {
  ASSERT_FALSE(ref.losses.empty());
  const std::vector<double>& expected = ref.losses[0];
  for (size_t r = 0; r < got.losses.size(); ++r) {
    ASSERT_EQ(got.losses[r].size(), expected.size()) << what;
    for (size_t s = static_cast<size_t>(std::max(ref.first_step, got.first_step)); s < expected.size(); ++s) {
      EXPECT_NEAR(got.losses[r][s], expected[s], 1e-5 * std::fabs(expected[s]))
          << what << ": rank " << r << " loss at step " << s;
    }
  }
  double worst = 0;
  std::string where;
  auto compare = [&](const auto& a, const auto& b, const char* direction) {
    for (const auto& [name, values] : a) {
      auto it = b.find(name);
      const bool tied_copy = name.size() > 8 && name.substr(name.size() - 8) == ".lm_head";
      if (it == b.end() && tied_copy) it = b.find("0.wte");
      if (it == b.end()) {
        ADD_FAILURE() << what << ": parameter " << name << " missing " << direction;
        continue;
      }
      if (it->second.size() != values.size()) {
        ADD_FAILURE() << what << ": " << name << " has " << it->second.size() << " elements "
                      << direction << ", expected " << values.size();
        continue;
      }
      for (const auto& [index, value] : values) {
        auto e = it->second.find(index);
        if (e == it->second.end()) {
          ADD_FAILURE() << what << ": " << name << "[" << index << "] missing " << direction;
          return;
        }
        const double err = std::fabs(e->second - value) /
                           std::max(1e-2, std::fabs(static_cast<double>(value)));
        if (err > worst) {
          worst = err;
          where = absl::StrCat(name, "[", index, "] ", e->second, " vs ", value);
        }
      }
    }
  };
  compare(ref.params, got.params, "in the plan's run");
  compare(got.params, ref.params, "in the reference run");
  EXPECT_LT(worst, 1e-5) << what << ": worst parameter " << where;
}

}  // namespace cairn::runtime::testing
