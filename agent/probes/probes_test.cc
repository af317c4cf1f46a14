// The probe suites on the CPU backend with tiny configurations: every case is recorded, checked
// and has a positive rate; GEMM shapes are the cost model's; collectives and overlap on two ranks
// (threads, Gloo over a directory store). No timing is asserted, only that times were taken.
#include <algorithm>
#include <map>
#include <memory>

#include "agent/probes/comm_probes.h"
#include "agent/probes/compute_probes.h"
#include "agent/probes/device_buffer.h"
#include "agent/probes/layer_probe.h"
#include "agent/probes/overlap_probe.h"
#include "agent/probes/probe_testing.h"
#include "common/plan/plan_proto.h"
#include "common/status_macros.h"
#include "common/testing/status_matchers.h"
#include "gtest/gtest.h"
#include "planner/catalog/models.h"
#include "runtime/compute/null/null_backend.h"
#include "runtime/train/backends.h"

namespace cairn::agent {
namespace {

using ::cairn::testing::IsOk;

using testing::ExpectAllMeasured;
using testing::LlamaTiny;

ProbeBudget Tiny() { return testing::TinyBudget(); }

// llama-tiny's GEMMs at tp 1, one micro-batch of 32 tokens; attention at seq 32, head dim 16.
ComputeProbeConfig TinyCompute() {
  ComputeProbeConfig c = ComputeProbeConfig::ForCpu({LlamaTiny()});
  c.budget = Tiny();
  c.micro_batches = {1};
  c.seq_len = 32;
  c.tp_degrees = {1};
  c.attention_seq_lens = {32};
  c.attention_head_dims = {16};
  return c;
}

TEST(LayerGemmShapesTest, TheRuntimesGemmsCutByTensorParallelDegree) {
  const plan::ModelDims m = LlamaTiny();  // hidden 128, 4 heads, 2 kv heads, ffn 352, vocab 256
  const std::vector<GemmCase> tp1 = LayerGemmShapes(m, 1, 512);
  ASSERT_EQ(tp1.size(), 8u);  // q, kv, out, up, down, lm_head, qkv_fused, gate_up_fused
  auto find = [](const std::vector<GemmCase>& cases, const std::string& name) {
    for (const GemmCase& c : cases) {
      if (c.name == name) return c.shape;
    }
    ADD_FAILURE() << "no " << name;
    return runtime::MatmulShape{};
  };
  EXPECT_EQ(find(tp1, "q").m, 512);
  EXPECT_EQ(find(tp1, "q").k, 128);
  EXPECT_EQ(find(tp1, "q").n, 128);
  EXPECT_EQ(find(tp1, "kv").n, 64);                 // 2 kv heads of 32
  EXPECT_EQ(find(tp1, "up").n, 352);                // gate and up: one GEMM each
  EXPECT_EQ(find(tp1, "down").k, 352);
  EXPECT_EQ(find(tp1, "lm_head").n, m.vocab);
  EXPECT_TRUE(find(tp1, "lm_head").output_f32);     // fp32 logits, as the runtime writes them
  EXPECT_FALSE(find(tp1, "q").output_f32);
  EXPECT_EQ(find(tp1, "qkv_fused").n, 128 + 2 * 64);
  EXPECT_EQ(find(tp1, "gate_up_fused").n, 2 * 352);
  const std::vector<GemmCase> tp2 = LayerGemmShapes(m, 2, 512);
  EXPECT_EQ(find(tp2, "q").n, 64);                  // column parallel
  EXPECT_EQ(find(tp2, "kv").n, 32);
  EXPECT_EQ(find(tp2, "out").k, 64);                // row parallel
  EXPECT_EQ(find(tp2, "down").k, 176);
  // More ranks than K/V heads: each keeps one head.
  EXPECT_EQ(find(LayerGemmShapes(m, 4, 512), "kv").n, 32);
}

void ExpectMeasured(const ProbeReport& r, const std::string& probe, int at_least) {
  EXPECT_GE(ExpectAllMeasured(r, probe), at_least) << probe;
}

// Probe buffers are filled on the device (a first chunk, then doubled by device copies): every
// element holds the value, across the chunk boundaries and in a ragged tail.
TEST(DeviceBufferTest, FillsEveryElementOnTheDevice) {
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<runtime::ComputeBackend> be,
                       runtime::MakeComputeBackend(runtime::DeviceKind::kCpu, 0));
  const int64_t count = 3 * (int64_t{1} << 20) + 12345;
  for (float value : {0.0f, 0.25f, -3.0f}) {
    ASSERT_OK_AND_ASSIGN(DeviceBuffer f, DeviceBuffer::F32(be.get(), count, value));
    ASSERT_OK_AND_ASSIGN(DeviceBuffer w, DeviceBuffer::Working(be.get(), count, value));
    ASSERT_OK_AND_ASSIGN(std::vector<float> f_all, f.ReadF32(count));
    ASSERT_OK_AND_ASSIGN(std::vector<float> w_all, w.ReadWorking(count));
    for (const std::vector<float>& all : {f_all, w_all}) {
      ASSERT_EQ(static_cast<int64_t>(all.size()), count);
      int64_t wrong = 0;
      for (float x : all) wrong += x != value;
      EXPECT_EQ(wrong, 0) << "value " << value;
    }
  }
}

TEST(ComputeProbesTest, EverySuiteMeasuresAndChecksOnTheCpuBackend) {
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<runtime::ComputeBackend> be,
                       runtime::MakeComputeBackend(runtime::DeviceKind::kCpu, 0));
  ComputeProbeConfig c = TinyCompute();
  c.memory_bytes = 1 << 16;
  ProbeReport r;
  ASSERT_THAT(ProbeGemms(be.get(), c, &r), IsOk());
  ASSERT_THAT(ProbeAttention(be.get(), c, &r), IsOk());
  ASSERT_THAT(ProbeMemory(be.get(), c, &r), IsOk());
  ASSERT_THAT(ProbeLaunch(be.get(), c, &r), IsOk());
  ExpectMeasured(r, "gemm", 4);  // the LM head [32x256x128] is the QKV shape: measured once
  ExpectMeasured(r, "attention", 2);
  ExpectMeasured(r, "memory", 3);
  ExpectMeasured(r, "launch", 1);
  for (const Measurement& m : r.measurements()) {
    if (m.probe() == "gemm") {
      EXPECT_EQ(m.model(), "llama-tiny");
    }
  }
}

TEST(LayerProbeTest, TimesEveryLayerKindWithItsActivations) {
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<runtime::ComputeBackend> be,
                       runtime::MakeComputeBackend(runtime::DeviceKind::kCpu, 0));
  LayerProbeConfig c;
  c.models = {LlamaTiny()};
  c.seq_lens = {32};
  c.micro_batches = {1, 2};
  c.iterations = 1;
  c.min_seconds = 0;
  ProbeReport r;
  ASSERT_THAT(ProbeLayers(be.get(), c, &r), IsOk());
  ExpectMeasured(r, "layer", 6);
  for (const Measurement& m : r.measurements()) {
    EXPECT_GT(m.params().at("forward_s"), 0);
    if (m.op() == "block") {
      EXPECT_GT(m.params().at("activation_bytes"), 0) << m.name();
    }
  }
}

// GEMM cases are visited by FLOPs in bisection order: the first two measured are the smallest
// and the largest shape, the third lies between them.
TEST(ComputeProbesTest, GemmsVisitSmallestLargestThenMiddleFlops) {
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<runtime::ComputeBackend> be,
                       runtime::MakeComputeBackend(runtime::DeviceKind::kCpu, 0));
  ComputeProbeConfig c = ComputeProbeConfig::ForCpu({LlamaTiny()});
  c.budget = Tiny();
  c.micro_batches = {1, 4};
  c.seq_len = 16;
  c.tp_degrees = {1};
  ProbeReport r;
  ASSERT_THAT(ProbeGemms(be.get(), c, &r), IsOk());
  ASSERT_GE(r.measurements_size(), 3);
  double lo = 1e300, hi = 0;
  for (const Measurement& m : r.measurements()) {
    lo = std::min(lo, m.flops());
    hi = std::max(hi, m.flops());
  }
  EXPECT_EQ(r.measurements(0).flops(), lo);
  EXPECT_EQ(r.measurements(1).flops(), hi);
  EXPECT_GE(r.measurements(2).flops(), lo);
  EXPECT_LE(r.measurements(2).flops(), hi);
  EXPECT_EQ(r.skipped_size(), 0);
}

// Past the deadline nothing starts: every case is counted as skipped, per probe, and no
// measurement (nor error) is recorded.
TEST(ComputeProbesTest, PastTheDeadlineEveryCaseIsSkippedAndCounted) {
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<runtime::ComputeBackend> be,
                       runtime::MakeComputeBackend(runtime::DeviceKind::kCpu, 0));
  ComputeProbeConfig c = TinyCompute();
  c.attention_seq_lens = {32, 64};
  c.deadline = absl::Now() - absl::Seconds(1);
  ProbeReport r;
  ASSERT_THAT(ProbeGemms(be.get(), c, &r), IsOk());
  ASSERT_THAT(ProbeAttention(be.get(), c, &r), IsOk());
  ASSERT_THAT(ProbeMemory(be.get(), c, &r), IsOk());
  ASSERT_THAT(ProbeLaunch(be.get(), c, &r), IsOk());
  EXPECT_EQ(r.measurements_size(), 0);
  std::map<std::string, int> skipped;
  for (const SkippedCases& s : r.skipped()) {
    EXPECT_EQ(s.suite(), "compute");
    skipped[s.probe()] = s.count();
  }
  // 6 unique GEMM shapes (q, kv, up, down, lm_head, gate_up_fused: the output projection repeats
  // Q's and the fused QKV the LM head's), 2 attention cases, copy/add/adamw, launch.
  EXPECT_EQ(skipped, (std::map<std::string, int>{
                         {"gemm", 6}, {"attention", 2}, {"memory", 3}, {"launch", 1}}));
}

TEST(LayerProbeTest, PastTheDeadlineNoLayerIsBuiltAndEveryPointIsCounted) {
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<runtime::ComputeBackend> be,
                       runtime::MakeComputeBackend(runtime::DeviceKind::kCpu, 0));
  LayerProbeConfig c;
  c.models = {LlamaTiny()};
  c.seq_lens = {32, 64};
  c.micro_batches = {1, 2, 4};
  c.deadline = absl::Now() - absl::Seconds(1);
  ProbeReport r;
  ASSERT_THAT(ProbeLayers(be.get(), c, &r), IsOk());
  EXPECT_EQ(r.measurements_size(), 0);
  ASSERT_EQ(r.skipped_size(), 1);
  EXPECT_EQ(r.skipped(0).suite(), "layers");
  EXPECT_EQ(r.skipped(0).count(), 3 * 2 * 3);  // kinds x seqs x micro-batches
}

// Micro-batches in bisection order within a (model, kind) group, the same timer for all.
TEST(LayerProbeTest, MicroBatchesInBisectionOrderPerKind) {
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<runtime::ComputeBackend> be,
                       runtime::MakeComputeBackend(runtime::DeviceKind::kCpu, 0));
  LayerProbeConfig c;
  c.models = {LlamaTiny()};
  c.seq_lens = {16};
  c.micro_batches = {4, 1, 2};  // sorted first: 1 2 4 -> visited 1 4 2
  c.iterations = 1;
  c.min_seconds = 0;
  ProbeReport r;
  ASSERT_THAT(ProbeLayers(be.get(), c, &r), IsOk());
  ASSERT_EQ(r.measurements_size(), 9);
  const double expected[] = {1, 4, 2};
  for (int i = 0; i < 9; ++i) {
    EXPECT_EQ(r.measurements(i).params().at("micro_batch"), expected[i % 3]) << i;
    EXPECT_EQ(r.measurements(i).iterations(), 1) << r.measurements(i).name();
  }
}

TEST(CommProbesTest, PlacementsAndNodeSpans) {
  EXPECT_EQ(PlacementGroups(4, 2, true), (std::vector<std::vector<int>>{{0, 1}, {2, 3}}));
  EXPECT_EQ(PlacementGroups(4, 2, false), (std::vector<std::vector<int>>{{0, 2}, {1, 3}}));
  EXPECT_TRUE(PlacementGroups(4, 3, true).empty());
  const std::vector<int> nodes = {0, 0, 1, 1};
  EXPECT_FALSE(SpansNodes({0, 1}, nodes));
  EXPECT_TRUE(SpansNodes({0, 2}, nodes));
}

TEST(CommProbesTest, CollectivesAndOverlapOnTwoRanksWithFits) {
  ASSERT_OK_AND_ASSIGN(runtime::testing::CommGroup world, testing::TwoCpuRanks());
  ProbeReport reports[2];
  absl::Status status[2];
  runtime::testing::RunOnRanks(world, [&](int r, runtime::Communicator& comm) {
    status[r] = [&]() -> absl::Status {
      CAIRN_ASSIGN_OR_RETURN(auto be, runtime::MakeComputeBackend(runtime::DeviceKind::kCpu, 0));
      CommProbeConfig c;
      c.budget = Tiny();
      c.min_bytes = 1024;
      c.max_bytes = 16 * 1024;
      c.size_factor = 4;
      CAIRN_RETURN_IF_ERROR(ProbeCollectives(&comm, &comm, be.get(), {0, 1}, c, &reports[r]));
      OverlapProbeConfig o;
      o.gemm_size = 32;
      o.comm_bytes = 4096;
      o.samples = 1;
      return ProbeOverlap(&comm, &comm, be.get(), o, &reports[r]);
    }();
  });
  ASSERT_THAT(status[0], IsOk());
  ASSERT_THAT(status[1], IsOk());
  // Rank 0 reports: 5 ops x 3 sizes, a fit per op, the overlap triple. The pair spans nodes.
  ExpectMeasured(reports[0], "collective", 15);
  int fits = 0;
  for (const Measurement& m : reports[0].measurements()) {
    if (m.probe() == "collective") {
      EXPECT_EQ(m.params().at("spans_nodes"), 1) << m.name();
    }
    if (m.probe() != "collective_fit") continue;
    ++fits;
    EXPECT_GT(m.params().at("busbw_bytes_per_s"), 0) << m.name();
    EXPECT_GE(m.params().at("max_rel_error"), 0) << m.name();
  }
  EXPECT_EQ(fits, 5);
  bool gamma = false;
  for (const Measurement& m : reports[0].measurements()) {
    if (m.probe() == "overlap" && m.op() == "gamma") gamma = m.rate() >= 1.0;
  }
  EXPECT_TRUE(gamma);
  EXPECT_EQ(reports[1].measurements_size(), 0);  // measurements live in rank 0's report
}

}  // namespace
}  // namespace cairn::agent

namespace cairn::agent {
namespace {

// Ranks probing at once where one cannot allocate (the null backend has no memory, as a GPU out
// of memory): no rank waits for the other in a timing collective; the failing rank records its
// own error, the other "not timed", and both go on to the next case and finish.
TEST(ComputeProbesTest, ACaseFailingOnOneRankIsSkippedOnAll) {
  ASSERT_OK_AND_ASSIGN(runtime::testing::CommGroup world, testing::TwoCpuRanks());
  ProbeReport reports[2];
  absl::Status status[2];
  runtime::testing::RunOnRanks(world, [&](int r, runtime::Communicator& comm) {
    status[r] = [&]() -> absl::Status {
      std::unique_ptr<runtime::ComputeBackend> be;
      if (r == 0) {
        CAIRN_ASSIGN_OR_RETURN(be, runtime::MakeComputeBackend(runtime::DeviceKind::kCpu, 0));
      } else {
        be = std::make_unique<runtime::NullBackend>(runtime::DType::kFloat32);
      }
      ComputeProbeConfig c = TinyCompute();
      c.lockstep = &comm;
      CAIRN_RETURN_IF_ERROR(ProbeGemms(be.get(), c, &reports[r]));
      return ProbeAttention(be.get(), c, &reports[r]);
    }();
  });
  ASSERT_THAT(status[0], IsOk());
  ASSERT_THAT(status[1], IsOk());
  for (int r = 0; r < 2; ++r) {
    int gemm = 0, attention = 0;
    for (const Measurement& m : reports[r].measurements()) {
      gemm += m.probe() == "gemm";
      attention += m.probe() == "attention";
      ASSERT_FALSE(m.error().empty()) << "rank " << r << " timed " << m.name();
      if (r == 0) {
        EXPECT_NE(m.error().find("another rank"), std::string::npos) << m.error();
      }
    }
    EXPECT_EQ(gemm, 6) << "rank " << r;       // every unique shape tried, none timed
    EXPECT_EQ(attention, 1) << "rank " << r;  // one error record per attention case
  }
}

}  // namespace
}  // namespace cairn::agent
