// The compute and layer probes on the CUDA backend built for the CPU
// (//runtime/compute/cuda:cuda_backend_emulated: the GPU build's kernels run by the SIMT emulator,
// the CUDA runtime and cuBLASLt emulated). What the CPU-backend tests (probes_test.cc) cannot
// show: bf16 working buffers filled and read back on a CUDA device, the LM head's fp32 logits,
// the flash attention kernels, AdamW with a bf16 working copy, and the layer timer over device
// copies. Every case must be measured, checked correct and without an error, so a probe that
// would fail on the GPU fails here first. Shapes are tiny (the emulator runs at CPU speed); no
// time is asserted.
#include <memory>
#include <string>

#include "agent/probes/compute_probes.h"
#include "agent/probes/layer_probe.h"
#include "agent/probes/probe_testing.h"
#include "common/plan/plan_proto.h"
#include "common/testing/status_matchers.h"
#include "gtest/gtest.h"
#include "planner/catalog/models.h"
#include "runtime/compute/cuda/cuda_backend.h"

namespace cairn::agent {
namespace {

using ::cairn::testing::IsOk;

using testing::ExpectAllMeasured;
using testing::LlamaTiny;

// One operation per case: the emulator runs at CPU speed.
ProbeBudget Tiny() {
  ProbeBudget b = testing::TinyBudget();
  b.samples = 1;
  b.min_iters = 1;
  b.max_iters = 2;
  return b;
}

std::unique_ptr<runtime::ComputeBackend> Cuda() {
  absl::StatusOr<std::unique_ptr<runtime::CudaBackend>> be = runtime::CudaBackend::Create(0);
  EXPECT_THAT(be.status(), IsOk());
  return be.ok() ? std::move(*be) : nullptr;
}

TEST(ProbesOnEmulatedCudaTest, ComputeSuitesMeasureAndCheckEveryCase) {
  std::unique_ptr<runtime::ComputeBackend> be = Cuda();
  ASSERT_NE(be, nullptr);
  EXPECT_EQ(be->working_dtype(), runtime::DType::kBFloat16);
  ComputeProbeConfig c = ComputeProbeConfig::ForGpu({LlamaTiny()});
  c.budget = Tiny();
  c.tp_degrees = {1};
  c.micro_batches = {1};
  c.seq_len = 32;
  c.attention_seq_lens = {64};
  c.attention_head_dims = {64};
  c.attention_heads = 2;
  c.memory_bytes = int64_t{1} << 20;
  ProbeReport r;
  ASSERT_THAT(ProbeGemms(be.get(), c, &r), IsOk());
  // q, kv, up, down, lm_head, gate_up_fused (the output projection repeats Q's shape, the fused
  // QKV the LM head's).
  EXPECT_EQ(ExpectAllMeasured(r, "gemm"), 6);
  bool head = false;
  for (const Measurement& m : r.measurements()) {
    if (m.op() == "lm_head") {
      head = true;
      EXPECT_GT(m.params().at("forward_s"), 0);
      EXPECT_GT(m.params().at("backward_s"), 0);
    }
  }
  EXPECT_TRUE(head) << "the LM head (fp32 logits) was not measured";
  ASSERT_THAT(ProbeAttention(be.get(), c, &r), IsOk());
  EXPECT_EQ(ExpectAllMeasured(r, "attention"), 2);  // forward and backward
  ASSERT_THAT(ProbeMemory(be.get(), c, &r), IsOk());
  EXPECT_EQ(ExpectAllMeasured(r, "memory"), 3);     // copy, add, adamw
  ASSERT_THAT(ProbeLaunch(be.get(), c, &r), IsOk());
  EXPECT_EQ(ExpectAllMeasured(r, "launch"), 1);
}

TEST(ProbesOnEmulatedCudaTest, LayerProbeTimesEveryKind) {
  std::unique_ptr<runtime::ComputeBackend> be = Cuda();
  ASSERT_NE(be, nullptr);
  LayerProbeConfig c;
  c.models = {LlamaTiny()};
  c.seq_lens = {32};
  c.micro_batches = {1};
  c.iterations = 1;
  c.min_seconds = 0;
  ProbeReport r;
  ASSERT_THAT(ProbeLayers(be.get(), c, &r), IsOk());
  EXPECT_EQ(ExpectAllMeasured(r, "layer"), 3);  // embedding, block, head
  for (const Measurement& m : r.measurements()) {
    EXPECT_GT(m.params().at("forward_s"), 0) << m.name();
    EXPECT_GT(m.params().at("backward_s"), 0) << m.name();
    if (m.op() == "block") {
      EXPECT_GT(m.params().at("activation_bytes"), 0);
    }
  }
}

}  // namespace
}  // namespace cairn::agent
