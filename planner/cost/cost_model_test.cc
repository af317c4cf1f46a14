#include "planner/cost/cost_model.h"

#include "common/testing/status_matchers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "planner/cost/evaluate.h"
#include "planner/cost/runtime_traits.h"
#include "planner/cost/test_problems.h"

namespace cairn::planner {
namespace {

// Small Llama (h=1024, f=2816, 16 heads, 8 kv heads) on 8 devices of RoundHardware: GEMMs at a flat
// 100 TFLOP/s, memory 1 TB/s, intra-node collectives 10 us + bus bytes / 100 GB/s, gamma 1.1.
// One stage, micro-batch of 8 samples, seq 1024.
class CostModelTest : public ::testing::Test {
 protected:
  CostModelTest() : pb_(testing::SmallProblem(2, 8, 1, 8, 1024, int64_t{80} << 30)), cm_(pb_) {
    ctx_.stage_devices = 8;
    ctx_.micro_batch = 8;
    ctx_.num_micro_batches = 1;
  }
  SearchProblem pb_;
  CostModel cm_;
  StageContext ctx_;
};

TEST_F(CostModelTest, BlockComputeFromFlopsAndBytes) {
  Strategy s;
  s.tp = 2;  // dp = 4, 2 samples per rank, 2048 tokens
  const LayerCost c = cm_.Layer(LayerKind::kBlock, s, ctx_);
  ASSERT_TRUE(c.valid) << c.invalid_reason;
  // GEMMs: 2 * 2048 tokens * 5,898,240 local matmul params / 1e14 = 241.5919104 us.
  // Attention: 2 * 2 * 1024^2 * 1024 / 2 / 1e14 = 21.47483648 us.
  // Element-wise: 2*1024 tokens * 2 B * (10*1024 + 4*2048/2 + 3*2816/2) / 1e12 = 76.02176 us.
  EXPECT_NEAR(c.compute_forward_s, 339.08850688e-6, 1e-12);
  // Backward: 2x GEMMs, 2.5x attention, 2x element-wise.
  EXPECT_NEAR(c.compute_backward_s, 688.914432e-6, 1e-12);
}

TEST_F(CostModelTest, TensorParallelCollectives) {
  Strategy s;
  s.tp = 2;
  // Activation of one rank's micro-batch: 2 * 1024 * 1024 * 2 B = 4,194,304 B.
  // All-reduce (g=2): 10 us + 4194304 * 1 / 100e9 = 51.94304 us; AG/RS: 10 us + half = 30.97152 us.
  s.mode = ParallelMode::kTensor;
  LayerCost c = cm_.Layer(LayerKind::kBlock, s, ctx_);
  EXPECT_NEAR(c.tp_comm_forward_s, 2 * 51.94304e-6, 1e-12);
  EXPECT_NEAR(c.tp_comm_backward_s, 2 * 51.94304e-6, 1e-12);
  s.mode = ParallelMode::kTensorSequence;
  c = cm_.Layer(LayerKind::kBlock, s, ctx_);
  EXPECT_NEAR(c.tp_comm_forward_s, 4 * 30.97152e-6, 1e-12);
  EXPECT_NEAR(c.tp_comm_backward_s, 6 * 30.97152e-6, 1e-12);
  // Recomputation repeats the forward (and its collectives) in backward.
  s.recompute = true;
  const LayerCost r = cm_.Layer(LayerKind::kBlock, s, ctx_);
  EXPECT_NEAR(r.tp_comm_backward_s, 10 * 30.97152e-6, 1e-12);
  EXPECT_NEAR(r.compute_backward_s, c.compute_backward_s + c.compute_forward_s, 1e-15);
  EXPECT_LT(r.activation_bytes, c.activation_bytes);
}

TEST_F(CostModelTest, ZeroLevelsShardModelStates) {
  Strategy s;
  s.tp = 2;  // 5,900,288 parameters per device, data-parallel group of 4
  s.dp = DpMode::kDdp;
  LayerCost c = cm_.Layer(LayerKind::kBlock, s, ctx_);
  EXPECT_EQ(c.param_bytes, 5900288 * 2);
  EXPECT_EQ(c.grad_bytes, 5900288 * 4);
  EXPECT_EQ(c.optimizer_bytes, 5900288 * 12);  // fp32 master + two Adam moments
  s.dp = DpMode::kZero1;
  c = cm_.Layer(LayerKind::kBlock, s, ctx_);
  EXPECT_EQ(c.optimizer_bytes, 1475072 * 12);
  EXPECT_EQ(c.grad_bytes, 5900288 * 4);
  // The step's end (1 TB/s): norm and AdamW over the shard (4 + 30 B), the full gradients zeroed.
  EXPECT_NEAR(c.optimizer_s, (1475072.0 * 34 + 5900288.0 * 4) / 1e12, 1e-15);
  s.dp = DpMode::kZero3;
  c = cm_.Layer(LayerKind::kBlock, s, ctx_);
  EXPECT_EQ(c.param_bytes, 1475072 * 2);
  EXPECT_EQ(c.grad_bytes, 1475072 * 4);
  EXPECT_EQ(c.optimizer_bytes, 1475072 * 12);
  EXPECT_NEAR(c.optimizer_s, 1475072.0 * (34 + 4) / 1e12, 1e-15);  // gradients held as a shard
  // ZeRO-3 gathers weights per micro-batch: forward gets slower than plain compute.
  EXPECT_GT(c.forward_s, c.compute_forward_s + c.tp_comm_forward_s);
}

// Under TP+SP each TP rank's RMSNorm weight gradients are partial sums over the TP group: the step
// end all-reduces each (Engine::ReduceAndUpdate): 2 norms of 1024 fp32 elements, all-reduce over 2
// ranks = 10 us + 4096 B / 100 GB/s each. Plain TP holds whole norm gradients (no bias here).
TEST_F(CostModelTest, StepEndSumsPartialGradientsOverTensorParallelRanks) {
  Strategy s;
  s.tp = 2;
  s.mode = ParallelMode::kTensor;
  EXPECT_EQ(cm_.Layer(LayerKind::kBlock, s, ctx_).tp_grad_sum_s, 0);
  s.mode = ParallelMode::kTensorSequence;
  const LayerCost sp = cm_.Layer(LayerKind::kBlock, s, ctx_);
  EXPECT_NEAR(sp.tp_grad_sum_s, 2 * (10e-6 + 4096 / 100e9), 1e-15);
  // In step_sync_s: the same layer without the sums is that much faster at the step's end.
  s.mode = ParallelMode::kTensor;
  const LayerCost tp = cm_.Layer(LayerKind::kBlock, s, ctx_);
  EXPECT_NEAR(sp.step_sync_s - sp.tp_grad_sum_s - sp.optimizer_s,
              tp.step_sync_s - tp.optimizer_s, 1e-9);
  // ZeRO-1 over the 4 data-parallel ranks: a rank's updated range holds ceil(2 / 4) = 1 of them
  // and a quarter of the elements.
  s.mode = ParallelMode::kTensorSequence;
  s.dp = DpMode::kZero1;
  EXPECT_NEAR(cm_.Layer(LayerKind::kBlock, s, ctx_).tp_grad_sum_s, 10e-6 + 2048 / 100e9, 1e-15);
  // Megatron-Core coalesces them: one all-reduce of both.
  SearchProblem megatron = pb_;
  megatron.runtime = MegatronCoreRuntimeTraits();
  s.dp = DpMode::kDdp;
  EXPECT_NEAR(CostModel(megatron).Layer(LayerKind::kBlock, s, ctx_).tp_grad_sum_s,
              10e-6 + 8192 / 100e9, 1e-15);
}

// A block the runtime cannot run is invalid, so the search never picks it: Megatron-Core does not
// replicate kv heads, so TP 8 over 4 kv heads is refused under its traits and costed under Cairn's.
TEST_F(CostModelTest, LayersTheRuntimeCannotRunAreInvalid) {
  SearchProblem pb = pb_;
  pb.model.num_kv_heads = 4;
  Strategy s;
  s.tp = 8;
  EXPECT_TRUE(CostModel(pb).Layer(LayerKind::kBlock, s, ctx_).valid);
  pb.runtime = MegatronCoreRuntimeTraits();
  const LayerCost c = CostModel(pb).Layer(LayerKind::kBlock, s, ctx_);
  EXPECT_FALSE(c.valid);
  EXPECT_THAT(c.invalid_reason, ::testing::HasSubstr("exceeds the model's 4 kv heads"));
  s.tp = 4;
  EXPECT_TRUE(CostModel(pb).Layer(LayerKind::kBlock, s, ctx_).valid);
}

TEST_F(CostModelTest, DdpSyncOverlapsBackward) {
  Strategy s;  // tp=1, dp=8, 11,798,528 params per device
  const LayerCost c = cm_.Layer(LayerKind::kBlock, s, ctx_);
  const double ar = 10e-6 + 11798528.0 * 4 * (2 * 7.0 / 8) / 100e9;
  // ov(b, c) - b = max(b, c) + 0.1 min(b, c) - b.
  const double b = c.compute_backward_s;
  const double expected = std::max(b, ar) + 0.1 * std::min(b, ar) - b;
  EXPECT_NEAR(c.step_sync_s - c.optimizer_s, expected, 1e-12);
  // The step's end at 1 TB/s: the gradient norm reads 4 B per parameter, AdamW reads/writes 30,
  // zeroing the fp32 gradients writes 4.
  EXPECT_NEAR(c.optimizer_s, 11798528.0 * (4 + 30 + 4) / 1e12, 1e-12);
}

// The step's per-tensor kernels (gradient norm: 2, AdamW: 1) on the block's two RMSNorm weights
// cost a launch each; a matrix's launches hide under its bytes. DDP updates both norms on every
// device, ZeRO-3 over 4 devices the shard's ceil(2 / 4) = 1.
TEST_F(CostModelTest, StepEndPaysTheLaunchesOfOneRowTensors) {
  SearchProblem pb = pb_;
  pb.hardware.kernel_launch_s = 5e-6;
  const CostModel launches(pb);
  Strategy s;
  EXPECT_NEAR(launches.Layer(LayerKind::kBlock, s, ctx_).optimizer_s -
                  cm_.Layer(LayerKind::kBlock, s, ctx_).optimizer_s,
              3 * 2 * 5e-6, 1e-12);
  // Megatron-Core's multi-tensor kernels batch the tensors: no launch term.
  SearchProblem megatron = pb;
  megatron.runtime = MegatronCoreRuntimeTraits();
  SearchProblem megatron_no_launch = megatron;
  megatron_no_launch.hardware.kernel_launch_s = 0;
  EXPECT_NEAR(CostModel(megatron).Layer(LayerKind::kBlock, s, ctx_).optimizer_s,
              CostModel(megatron_no_launch).Layer(LayerKind::kBlock, s, ctx_).optimizer_s, 1e-15);
  s.tp = 2;
  s.dp = DpMode::kZero3;
  EXPECT_NEAR(launches.Layer(LayerKind::kBlock, s, ctx_).optimizer_s -
                  cm_.Layer(LayerKind::kBlock, s, ctx_).optimizer_s,
              3 * 1 * 5e-6, 1e-12);
}

TEST_F(CostModelTest, RuntimeTraitsDecideWhatIsHidden) {
  Strategy s;  // DDP over 8 devices, as above
  const double ar = 10e-6 + 11798528.0 * 4 * (2 * 7.0 / 8) / 100e9;  // 1.652 ms
  const LayerCost overlapped = cm_.Layer(LayerKind::kBlock, s, ctx_);
  // Cairn overlaps the all-reduce with the backward: the part under it is hidden.
  EXPECT_NEAR(overlapped.dp_comm_hidden_s, std::min(overlapped.compute_backward_s, ar), 1e-12);
  // A runtime that reduces after the backward: all of it exposed, nothing hidden.
  SearchProblem pb = pb_;
  pb.runtime.overlap_grad_reduce = false;
  const CostModel cm(pb);
  const LayerCost after = cm.Layer(LayerKind::kBlock, s, ctx_);
  EXPECT_NEAR(after.step_sync_s - after.optimizer_s, ar, 1e-12);
  EXPECT_EQ(after.dp_comm_hidden_s, 0.0);
  // ZeRO-1: Cairn hides the gradient reduce-scatter under the backward and gathers the updated
  // weights after AdamW (exposed); with only overlap_param_gather the gather hides under the
  // forward and the reduce-scatter is exposed.
  s.dp = DpMode::kZero1;
  const double rs = 10e-6 + 11798528.0 * 4 * (7.0 / 8) / 100e9;
  const double ag = 10e-6 + 11798528.0 * 2 * (7.0 / 8) / 100e9;
  const LayerCost cairn = cm_.Layer(LayerKind::kBlock, s, ctx_);
  EXPECT_NEAR(cairn.dp_comm_hidden_s, std::min(cairn.compute_backward_s, rs), 1e-12);
  pb.runtime.overlap_param_gather = true;
  const CostModel gather_hidden(pb);
  const LayerCost g = gather_hidden.Layer(LayerKind::kBlock, s, ctx_);
  EXPECT_NEAR(g.dp_comm_hidden_s, std::min(g.compute_forward_s, ag), 1e-12);
}

TEST_F(CostModelTest, TransitionGathersWhatIsMissing) {
  // From batch split over 8 to batch split over 4 (TP 2, activations replicated): each device
  // gathers the other half of its new batch slice, 1/4 of the 16 MiB micro-batch activation:
  // all-gather of 4,194,304 B over 2 ranks = 30.97152 us; backward slices for free.
  const Layout from{8, 1, false}, to{4, 2, false};
  const TransitionCost t = cm_.Transition(from, to, ctx_);
  EXPECT_NEAR(t.forward_s, 30.97152e-6, 1e-12);
  EXPECT_EQ(t.backward_s, 0.0);
  const TransitionCost back = cm_.Transition(to, from, ctx_);
  EXPECT_EQ(back.forward_s, 0.0);
  EXPECT_NEAR(back.backward_s, 30.97152e-6, 1e-12);
  EXPECT_EQ(cm_.Transition(to, to, ctx_).total(), 0.0);
}

TEST(TransitionPlacementTest, SequenceGatherStaysInsideTheNode) {
  // 16 devices per stage on nodes of 8 (RoundHardware: intra-node 10 us + bus / 100 GB/s,
  // inter-node 20 us + bus / 10 GB/s). From TP+SP 8 (dp 2, sequence over 8) to plain TP 8
  // (dp 2, replicated): each device gathers the 8 sequence pieces of its rows, held by the 8
  // consecutive ranks of its TP group, which share a node. Micro-batch 2 x 1024 x 1024 x 2 B =
  // 4 MiB; a device needs half (its row block): all-gather of 2,097,152 B over 8 ranks,
  // 10 us + 2097152 x 7/8 / 100e9 = 28.35008 us (inter-node would be 20 us + 183.5 us).
  const SearchProblem pb = testing::SmallProblem(2, 8, 2, 2, 1024, int64_t{80} << 30);
  const CostModel cm(pb);
  StageContext ctx;
  ctx.stage_devices = 16;
  ctx.micro_batch = 2;
  const Layout sp{2, 8, true}, tp{2, 8, false};
  EXPECT_EQ(CostModel::RelocationStride(sp, tp, 8), 1);
  EXPECT_NEAR(cm.Transition(sp, tp, ctx).forward_s, 28.35008e-6, 1e-12);
  // Row blocks of a batch split over 16 into a batch split over 2 with TP 8 (replicated): the 8
  // blocks sit on every rank (from.tp = 1): consecutive as well.
  EXPECT_EQ(CostModel::RelocationStride(Layout{16, 1, false}, tp, 8), 1);
  // Row blocks of a TP 2 layout (replicated) into a TP 8 one: every second rank holds a block.
  EXPECT_EQ(CostModel::RelocationStride(Layout{8, 2, false}, tp, 4), 2);
  // TP+SP 2 into TP 8: four row blocks, both sequence pieces of each: whole TP groups.
  EXPECT_EQ(CostModel::RelocationStride(Layout{8, 2, true}, tp, 8), 1);
}

TEST_F(CostModelTest, InvalidStrategiesSayWhy) {
  Strategy s;
  s.tp = 32;
  EXPECT_FALSE(cm_.Layer(LayerKind::kBlock, s, ctx_).valid);
  s.tp = 3;
  EXPECT_NE(cm_.Layer(LayerKind::kBlock, s, ctx_).invalid_reason.find("power of 2"),
            std::string::npos);
  ctx_.micro_batch = 4;  // 4 samples over 8 data-parallel ranks
  s.tp = 1;
  EXPECT_NE(cm_.Layer(LayerKind::kBlock, s, ctx_).invalid_reason.find("does not split"),
            std::string::npos);
}

TEST_F(CostModelTest, EvaluateAddsStagesAndFlagsMemory) {
  PlanSpec plan;
  plan.global_batch = 8;
  plan.num_micro_batches = 1;
  plan.stage_layers = {4};
  plan.layers.assign(4, Strategy{});
  ASSERT_OK_AND_ASSIGN(Evaluation e, Evaluate(cm_, plan));
  EXPECT_TRUE(e.feasible);
  ASSERT_EQ(e.stages.size(), 1u);
  // One stage, one micro-batch: step = forward + backward + sync of the stage.
  const StageCost& s = e.stages[0];
  EXPECT_NEAR(e.step_time_s, s.times.forward_s + s.times.backward_s + s.times.step_sync_s, 1e-12);
  EXPECT_EQ(s.total_bytes, s.param_bytes + s.grad_bytes + s.optimizer_bytes + s.activation_bytes +
                               s.transient_bytes + s.reserved_bytes);
  EXPECT_GE(s.bound_bytes, s.total_bytes);
  pb_.memory_budget_bytes = s.bound_bytes - 1;
  CostModel tight(pb_);
  ASSERT_OK_AND_ASSIGN(Evaluation t, Evaluate(tight, plan));
  EXPECT_FALSE(t.feasible);
  EXPECT_NE(t.violations[0].find("over the budget"), std::string::npos);
  plan.layers.pop_back();
  EXPECT_FALSE(Evaluate(cm_, plan).ok());
}

TEST_F(CostModelTest, FixedCostPerOperationChargesEveryChunkAndMicroBatch) {
  // The 2-block model on 8 devices: one stage (embedding, 2 blocks, head) against two stages of
  // one block each (4 devices per stage), both with 4 micro-batches of 8 samples. A fixed cost of 1 ms per
  // operation (RuntimeTraits::op_overhead_s) adds 2 m = 8 ms to the one-stage step (one chunk,
  // 4 forwards and 4 backwards in a row) and 2 (m + p - 1) = 10 ms to the two-stage step (each
  // of its 1F1B slots holds one operation of each stage).
  auto step = [&](const PlanSpec& plan, double overhead_s) {
    SearchProblem pb = pb_;
    pb.runtime.op_overhead_s = overhead_s;
    const CostModel cm(pb);
    absl::StatusOr<Evaluation> e = Evaluate(cm, plan);
    EXPECT_TRUE(e.ok());
    return e.ok() ? e->step_time_s : 0.0;
  };
  PlanSpec one;
  one.global_batch = 32;
  one.num_micro_batches = 4;
  one.stage_layers = {4};
  one.layers.assign(4, Strategy{});
  EXPECT_NEAR(step(one, 1e-3) - step(one, 0), 8e-3, 1e-9);
  PlanSpec two = one;
  two.stage_layers = {2, 2};
  const double added = step(two, 1e-3) - step(two, 0);
  EXPECT_GE(added, 8e-3 - 1e-9);
  EXPECT_LE(added, 10e-3 + 1e-9);
}

}  // namespace
}  // namespace cairn::planner

namespace cairn::planner {
namespace {

TEST(MeasuredComputeTest, InterpolatesMeasuredMicroBatchesAndScalesByDegree) {
  SearchProblem pb = testing::SmallProblem(2, 8, 1, 8, 1024, int64_t{80} << 30);
  // Block: 1 ms forward at micro-batch 2, 3 ms at 8; backward measured only at 2 (6 ms), unknown
  // (2 x forward) at 8.
  pb.measured = {{LayerKind::kBlock, 1, 2, 1024, 1e-3, 6e-3}, {LayerKind::kBlock, 1, 8, 1024, 3e-3, 0}};
  CostModel cm(pb);
  StageContext ctx;
  ctx.stage_devices = 8;
  ctx.num_micro_batches = 1;
  Strategy s;  // dp = 8
  auto fwd_at = [&](int micro_batch, int tp) {
    ctx.micro_batch = micro_batch;
    s.tp = tp;
    return cm.Layer(LayerKind::kBlock, s, ctx).compute_forward_s;
  };
  EXPECT_NEAR(fwd_at(8 * 2, 1), 1e-3, 1e-12);               // measured point (2 per rank)
  EXPECT_NEAR(fwd_at(8 * 5, 1), 1e-3 + 2e-3 * 3 / 6, 1e-12); // between 2 and 8
  EXPECT_NEAR(fwd_at(8 * 11, 1), 3e-3 + (1.0 / 3e3) * 3, 1e-12);  // past 8: last slope
  EXPECT_NEAR(fwd_at(8, 1), 0.5e-3, 1e-12);                 // below 2: proportional
  // Degree 2 was not measured: degree-1 work halves (4 data-parallel ranks, 2 samples each).
  EXPECT_NEAR(fwd_at(4 * 2, 2), 0.5e-3, 1e-12);
  ctx.micro_batch = 8 * 8;
  s.tp = 1;
  // Backward at 8 is 2 x 3 ms = 6 ms, the same as measured at 2.
  EXPECT_NEAR(cm.Layer(LayerKind::kBlock, s, ctx).compute_backward_s, 6e-3, 1e-12);
}

}  // namespace
}  // namespace cairn::planner
