#include "planner/problem/problem_builder.h"

#include <limits>
#include <string>
#include <vector>

#include "common/testing/status_matchers.h"
#include "common/units.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "planner/catalog/clusters.h"
#include "planner/catalog/models.h"

namespace cairn::planner {
namespace {

using cairn::testing::StatusIs;
using cairn::v1::SearchRequest;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

// llama2-7b on 2 x 8 H100, global batch 64, seq 2048.
SearchRequest BaseRequest() {
  SearchRequest r;
  *r.mutable_model() = LookupModel("llama2-7b").value();
  *r.mutable_cluster() = MakeCluster("h100-sxm", 2).value();
  r.set_global_batch_size(64);
  r.set_seq_len(2048);
  return r;
}

cairn::v1::LayerTiming Timing(cairn::v1::LayerKind kind, int mbs, double forward_s) {
  cairn::v1::LayerTiming t;
  t.set_kind(kind);
  t.set_tp_degree(1);
  t.set_micro_batch_size(mbs);
  t.set_seq_len(2048);
  t.set_forward_s(forward_s);
  return t;
}

TEST(ProblemBuilderTest, BuildsTheDefaults) {
  ASSERT_OK_AND_ASSIGN(SearchProblem p, BuildSearchProblem(BaseRequest()));
  EXPECT_EQ(p.model.name, "llama2-7b");
  EXPECT_EQ(p.model.num_layers, 32);
  EXPECT_EQ(p.model.ffn_hidden, 11008);
  EXPECT_TRUE(p.model.rms_norm && p.model.swiglu && p.model.rope);
  EXPECT_FALSE(p.model.tied_embeddings || p.model.bias);
  EXPECT_EQ(p.hardware.name, "h100-sxm (default)");
  // A name that already says its source (an agent's profile) does not say it twice.
  cairn::v1::Cluster measured = BaseRequest().cluster();
  measured.mutable_hardware()->set_name("cpu x2 (measured)");
  measured.mutable_hardware()->set_source(cairn::v1::PROFILE_SOURCE_MEASURED);
  EXPECT_EQ(ToHardware(measured).name, "cpu x2 (measured)");
  EXPECT_EQ(p.hardware.device_model, "NVIDIA H100 80GB HBM3");
  EXPECT_EQ(p.hardware.num_devices(), 16);
  EXPECT_EQ(p.global_batch_sizes, std::vector<int>({64}));
  EXPECT_EQ(p.seq_len, 2048);
  EXPECT_EQ(p.memory_budget_bytes, 81559LL << 20);  // 0 -> the device memory
  EXPECT_EQ(p.top_k, 1);
  EXPECT_EQ(p.precision.activation_bytes, 2);
  EXPECT_EQ(p.precision.master_bytes, 4);
  EXPECT_EQ(p.space.modes.size(), 3u);
  EXPECT_EQ(p.space.dp_modes.size(), 4u);
  EXPECT_THAT(p.space.schedules, ElementsAre(Schedule::k1F1B, Schedule::kInterleaved1F1B));
  EXPECT_TRUE(p.space.virtual_stages.empty());
  EXPECT_EQ(p.runtime.name, "cairn");
  EXPECT_EQ(p.precision.grad_bytes, 4);
  EXPECT_TRUE(p.space.pipeline_degrees.empty());
  EXPECT_TRUE(p.space.allow_recompute);
  EXPECT_TRUE(p.measured.empty());
  EXPECT_EQ(p.model_profile_name, "analytic");
}

// A measured profile of one node (intra-node tables only, as one agent probes it) cut down to one
// device per node keeps no table: fine for one device alone, an error for two nodes, which would
// have to talk.
TEST(ProblemBuilderTest, OneDeviceNeedsNoCollectiveTablesTwoNodesDo) {
  const cairn::v1::HardwareProfile catalog = LookupHardware("h100-sxm").value();
  cairn::v1::HardwareProfile node = catalog;
  node.clear_collectives();
  for (const cairn::v1::CollectiveCost& c : catalog.collectives()) {
    if (!c.spans_nodes()) *node.add_collectives() = c;
  }
  ASSERT_OK(ValidateHardwareProfile(node));
  SearchRequest one = BaseRequest();
  ASSERT_OK_AND_ASSIGN(*one.mutable_cluster(), MakeCluster(node, 1, 1));
  EXPECT_EQ(one.cluster().hardware().collectives_size(), 0);
  ASSERT_OK_AND_ASSIGN(SearchProblem p, BuildSearchProblem(one));
  EXPECT_EQ(p.hardware.num_devices(), 1);
  SearchRequest two = BaseRequest();
  ASSERT_OK_AND_ASSIGN(*two.mutable_cluster(), MakeCluster(node, 2, 1));
  EXPECT_THAT(BuildSearchProblem(two),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("collectives has no entry for all_reduce")));
}

TEST(ProblemBuilderTest, ResolvesBatchRangeDtypeAndSpaceLists) {
  SearchRequest r = BaseRequest();
  r.clear_global_batch_size();
  r.mutable_batch_range()->set_min(32);
  r.mutable_batch_range()->set_max(130);
  r.mutable_batch_range()->set_step(32);
  r.set_dtype_bytes(4);
  r.set_top_k(5);
  r.set_memory_budget_bytes(GiB(40));
  auto* s = r.mutable_space();
  for (int p : {4, 2, 4}) s->add_pipeline_degrees(p);
  s->add_modes(cairn::v1::PARALLEL_MODE_ULYSSES);
  s->add_modes(cairn::v1::PARALLEL_MODE_TENSOR);
  s->add_modes(cairn::v1::PARALLEL_MODE_ULYSSES);
  s->add_dp_modes(cairn::v1::DATA_PARALLEL_MODE_ZERO3);
  s->add_schedules(cairn::v1::PIPELINE_SCHEDULE_GPIPE);
  for (int m : {8, 1, 8}) s->add_micro_batch_counts(m);
  s->set_max_tp_degree(8);
  s->set_disable_recompute(true);
  s->set_uniform_layers(true);
  ASSERT_OK_AND_ASSIGN(SearchProblem p, BuildSearchProblem(r));
  EXPECT_EQ(p.global_batch_sizes, std::vector<int>({32, 64, 96, 128}));
  EXPECT_EQ(p.precision.activation_bytes, 4);
  EXPECT_EQ(p.precision.master_bytes, 0);
  EXPECT_EQ(p.top_k, 5);
  EXPECT_EQ(p.memory_budget_bytes, GiB(40));
  EXPECT_EQ(p.space.pipeline_degrees, std::vector<int>({2, 4}));
  EXPECT_THAT(p.space.modes, ElementsAre(ParallelMode::kTensor, ParallelMode::kUlysses));
  EXPECT_THAT(p.space.dp_modes, ElementsAre(DpMode::kZero3));
  EXPECT_THAT(p.space.schedules, ElementsAre(Schedule::kGPipe));
  EXPECT_EQ(p.space.micro_batch_counts, std::vector<int>({1, 8}));
  EXPECT_EQ(p.space.max_tp, 8);
  EXPECT_FALSE(p.space.allow_recompute);
  EXPECT_TRUE(p.space.uniform_layers);
}

TEST(ProblemBuilderTest, MeasuredTimingsKeepActivationOnlyEntries) {
  SearchRequest r = BaseRequest();
  auto* profile = r.mutable_model_profile();
  profile->set_model_name("llama2-7b");
  profile->set_source("galvatron:computation.json");
  *profile->add_timings() = Timing(cairn::v1::LAYER_KIND_TRANSFORMER_BLOCK, 8, 0.031);
  *profile->add_timings() = Timing(cairn::v1::LAYER_KIND_HEAD, 8, 0.012);
  cairn::v1::LayerTiming activation_only = Timing(cairn::v1::LAYER_KIND_TRANSFORMER_BLOCK, 1, 0);
  activation_only.set_tp_degree(4);
  activation_only.set_activation_bytes(MiB(136));
  *profile->add_timings() = activation_only;
  ASSERT_OK_AND_ASSIGN(SearchProblem p, BuildSearchProblem(r));
  ASSERT_EQ(p.measured.size(), 3u);
  EXPECT_EQ(p.measured[0].kind, LayerKind::kBlock);
  EXPECT_EQ(p.measured[0].micro_batch_size, 8);
  EXPECT_DOUBLE_EQ(p.measured[0].forward_s, 0.031);
  EXPECT_EQ(p.measured[1].kind, LayerKind::kHead);
  // The activation-only entry keeps its bytes (the cost model's memory reads them) and no time.
  EXPECT_EQ(p.measured[2].tp_degree, 4);
  EXPECT_EQ(p.measured[2].forward_s, 0.0);
  EXPECT_EQ(p.measured[2].activation_bytes, MiB(136));
  EXPECT_EQ(p.model_profile_name, "galvatron:computation.json");
}

TEST(ProblemBuilderTest, RuntimeTraitsRestrictTheSpaceAndTheGradientDtype) {
  SearchRequest r = BaseRequest();
  r.set_runtime("megatron-core");
  r.set_grad_reduce_dtype_bytes(2);
  ASSERT_OK_AND_ASSIGN(SearchProblem p, BuildSearchProblem(r));
  EXPECT_EQ(p.runtime.name, "megatron-core");
  EXPECT_EQ(p.space.modes.size(), 2u);  // no Ulysses
  EXPECT_EQ(p.space.dp_modes.size(), 2u);
  EXPECT_TRUE(p.space.uniform_layers);
  EXPECT_EQ(p.precision.grad_bytes, 2);
  EXPECT_EQ(p.precision.master_bytes, 8);  // + the optimizer's fp32 gradient copy
  r.set_runtime("cairn");
  EXPECT_THAT(BuildSearchProblem(r),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("grad_reduce_dtype_bytes: the cairn runtime accumulates and "
                                 "reduces gradients in fp32 only")));
  r.set_runtime("jax");
  EXPECT_THAT(BuildSearchProblem(r), StatusIs(absl::StatusCode::kInvalidArgument,
                                              HasSubstr("runtime: unknown runtime 'jax'")));
  r.set_runtime("megatron-core");
  r.set_grad_reduce_dtype_bytes(0);
  r.mutable_space()->add_modes(cairn::v1::PARALLEL_MODE_ULYSSES);
  EXPECT_THAT(BuildSearchProblem(r), StatusIs(absl::StatusCode::kInvalidArgument,
                                              HasSubstr("nothing left to search")));
  r.clear_space();
  r.mutable_space()->add_virtual_stages(1);
  EXPECT_THAT(BuildSearchProblem(r), StatusIs(absl::StatusCode::kInvalidArgument,
                                              HasSubstr("space.virtual_stages[0]")));
}

TEST(ProblemBuilderTest, ToHardwareSortsAndFillsDefaults) {
  cairn::v1::Cluster c = MakeCluster("cpu", 3).value();
  auto* gemm = c.mutable_hardware()->mutable_device()->mutable_gemm();
  std::swap(*gemm->Mutable(0), *gemm->Mutable(gemm->size() - 1));
  c.mutable_hardware()->mutable_device()->set_attention_efficiency(0);
  cairn::v1::CollectiveCost* curve = c.mutable_hardware()->add_collectives();
  curve->set_op(cairn::v1::COLLECTIVE_OP_ALL_TO_ALL);
  curve->set_group_size(3);
  for (double bytes : {4e6, 1e6, 2e6}) {
    auto* point = curve->add_points();
    point->set_bytes(bytes);
    point->set_time_s(bytes * 1e-9);
  }
  c.mutable_hardware()->add_collectives()->set_group_size(2);  // op unspecified: dropped
  const Hardware hw = ToHardware(c);
  EXPECT_EQ(hw.name, "cpu (default)");
  EXPECT_EQ(hw.num_nodes, 3);
  EXPECT_EQ(hw.devices_per_node, 4);
  EXPECT_EQ(hw.num_devices(), 12);
  for (size_t i = 1; i < hw.gemm.size(); ++i) EXPECT_LT(hw.gemm[i - 1].flops, hw.gemm[i].flops);
  EXPECT_EQ(hw.attention_efficiency, 1.0);
  EXPECT_DOUBLE_EQ(hw.overlap_slowdown, 1.2);
  EXPECT_EQ(hw.collectives.size(), static_cast<size_t>(c.hardware().collectives_size() - 1));
  const CommTable& last = hw.collectives.back();
  EXPECT_EQ(last.op, CollectiveOp::kAllToAll);
  ASSERT_EQ(last.points.size(), 3u);
  EXPECT_EQ(last.points[0].bytes, 1e6);
  EXPECT_EQ(last.points[2].bytes, 4e6);
}

TEST(ProblemBuilderTest, ToModelDimsMirrorsGpt2) {
  const ModelDims d = ToModelDims(LookupModel("gpt2-124m").value());
  EXPECT_EQ(d.hidden, 768);
  EXPECT_EQ(d.num_kv_heads, 12);
  EXPECT_EQ(d.vocab, 50257);
  EXPECT_EQ(d.max_seq_len, 1024);
  EXPECT_FALSE(d.rms_norm || d.swiglu || d.rope);
  EXPECT_TRUE(d.tied_embeddings && d.bias);
}

struct BadRequest {
  const char* what;
  void (*mutate)(SearchRequest*);
  const char* message;
};

TEST(ProblemBuilderTest, RejectsBadRequestsWithActionableMessages) {
  const BadRequest kCases[] = {
      {"no model", [](SearchRequest* r) { r->clear_model(); }, "model: missing"},
      {"bad model", [](SearchRequest* r) { r->mutable_model()->set_num_heads(0); },
       "model: num_heads must be positive"},
      {"no cluster", [](SearchRequest* r) { r->clear_cluster(); }, "cluster: missing"},
      {"no nodes", [](SearchRequest* r) { r->mutable_cluster()->set_num_nodes(0); },
       "cluster.num_nodes: must be >= 1, got 0"},
      {"too many nodes", [](SearchRequest* r) { r->mutable_cluster()->set_num_nodes(1 << 20); },
       "cluster.num_nodes: must be <="},
      {"bad hardware",
       [](SearchRequest* r) { r->mutable_cluster()->mutable_hardware()->set_overlap_slowdown(0); },
       "cluster.hardware: overlap_slowdown must be >= 1"},
      {"both batches", [](SearchRequest* r) { r->mutable_batch_range()->set_min(8); },
       "global_batch_size and batch_range are both set"},
      {"no batch", [](SearchRequest* r) { r->clear_global_batch_size(); },
       "global_batch_size: must be positive (samples per optimizer step), got 0"},
      {"negative batch", [](SearchRequest* r) { r->set_global_batch_size(-4); },
       "global_batch_size: must be positive"},
      {"range min",
       [](SearchRequest* r) {
         r->clear_global_batch_size();
         r->mutable_batch_range()->set_max(8);
         r->mutable_batch_range()->set_step(1);
       },
       "batch_range.min: must be >= 1, got 0"},
      {"range order",
       [](SearchRequest* r) {
         r->clear_global_batch_size();
         *r->mutable_batch_range() = cairn::v1::BatchRange();
         r->mutable_batch_range()->set_min(32);
         r->mutable_batch_range()->set_max(16);
         r->mutable_batch_range()->set_step(8);
       },
       "batch_range.max: 16 is below batch_range.min 32"},
      {"range step",
       [](SearchRequest* r) {
         r->clear_global_batch_size();
         r->mutable_batch_range()->set_min(8);
         r->mutable_batch_range()->set_max(16);
       },
       "batch_range.step: must be >= 1, got 0"},
      {"range size",
       [](SearchRequest* r) {
         r->clear_global_batch_size();
         r->mutable_batch_range()->set_min(1);
         r->mutable_batch_range()->set_max(10000);
         r->mutable_batch_range()->set_step(1);
       },
       "batch_range: gives 10000 candidates, at most 4096: raise step"},
      {"no seq", [](SearchRequest* r) { r->set_seq_len(0); }, "seq_len: must be positive"},
      {"long seq", [](SearchRequest* r) { r->set_seq_len(8192); },
       "seq_len: 8192 exceeds the max_seq_len 4096 of model llama2-7b"},
      {"negative budget", [](SearchRequest* r) { r->set_memory_budget_bytes(-1); },
       "memory_budget_bytes: must be >= 0"},
      {"budget above memory", [](SearchRequest* r) { r->set_memory_budget_bytes(GiB(100)); },
       "exceeds the device memory"},
      {"budget below reserved", [](SearchRequest* r) { r->set_memory_budget_bytes(GiB(1)); },
       "leaves nothing after the"},
      {"quantum", [](SearchRequest* r) { r->set_memory_quantum_bytes(-1); },
       "memory_quantum_bytes: must be in [0, memory budget"},
      {"threads", [](SearchRequest* r) { r->set_threads(-2); }, "threads: must be in [0, 1024]"},
      {"top_k", [](SearchRequest* r) { r->set_top_k(-1); }, "top_k: must be >= 0"},
      {"dtype", [](SearchRequest* r) { r->set_dtype_bytes(3); },
       "dtype_bytes: must be 0 or 2 (bf16 mixed precision) or 4 (fp32), got 3"},
      {"pp divides", [](SearchRequest* r) { r->mutable_space()->add_pipeline_degrees(3); },
       "space.pipeline_degrees[0]: 3 does not divide the 16 devices"},
      {"pp positive", [](SearchRequest* r) { r->mutable_space()->add_pipeline_degrees(0); },
       "space.pipeline_degrees[0]: must be >= 1"},
      {"pp above layers",
       [](SearchRequest* r) {
         *r->mutable_model() = LookupModel("llama-tiny").value();
         r->set_seq_len(256);
         r->mutable_space()->add_pipeline_degrees(2);
         r->mutable_space()->add_pipeline_degrees(8);
       },
       "space.pipeline_degrees[1]: 8 exceeds the model's 4 layers"},
      {"max tp power", [](SearchRequest* r) { r->mutable_space()->set_max_tp_degree(6); },
       "space.max_tp_degree: must be 0 (devices per node) or a power of 2 up to the 16 devices"},
      {"max tp size", [](SearchRequest* r) { r->mutable_space()->set_max_tp_degree(32); },
       "space.max_tp_degree"},
      {"mode unset",
       [](SearchRequest* r) { r->mutable_space()->add_modes(cairn::v1::PARALLEL_MODE_UNSPECIFIED); },
       "space.modes[0]: is unspecified"},
      {"dp mode unknown",
       [](SearchRequest* r) {
         r->mutable_space()->add_dp_modes(cairn::v1::DATA_PARALLEL_MODE_ZERO2);
         r->mutable_space()->add_dp_modes(static_cast<cairn::v1::DataParallelMode>(9));
       },
       "space.dp_modes[1]: unknown value 9"},
      {"schedule unset",
       [](SearchRequest* r) {
         r->mutable_space()->add_schedules(cairn::v1::PIPELINE_SCHEDULE_UNSPECIFIED);
       },
       "space.schedules[0]: is unspecified"},
      {"micro-batches positive",
       [](SearchRequest* r) { r->mutable_space()->add_micro_batch_counts(0); },
       "space.micro_batch_counts[0]: must be >= 1"},
      {"micro-batches above batch",
       [](SearchRequest* r) { r->mutable_space()->add_micro_batch_counts(128); },
       "space.micro_batch_counts[0]: 128 exceeds the largest global batch 64"},
      {"profile of another model",
       [](SearchRequest* r) {
         r->mutable_model_profile()->set_model_name("llama2-13b");
         *r->mutable_model_profile()->add_timings() =
             Timing(cairn::v1::LAYER_KIND_TRANSFORMER_BLOCK, 1, 0.01);
       },
       "model_profile.model_name: the profile is for model \"llama2-13b\""},
      {"timing kind",
       [](SearchRequest* r) {
         *r->mutable_model_profile()->add_timings() =
             Timing(cairn::v1::LAYER_KIND_UNSPECIFIED, 1, 0.01);
       },
       "model_profile.timings[0].kind: is unspecified"},
      {"timing degree",
       [](SearchRequest* r) {
         cairn::v1::LayerTiming t = Timing(cairn::v1::LAYER_KIND_HEAD, 1, 0.01);
         t.set_tp_degree(0);
         *r->mutable_model_profile()->add_timings() = t;
       },
       "model_profile.timings[0]: tp_degree (0)"},
      {"timing negative",
       [](SearchRequest* r) {
         *r->mutable_model_profile()->add_timings() =
             Timing(cairn::v1::LAYER_KIND_HEAD, 1, -1);
       },
       "forward_s (-1)"},
  };
  for (const BadRequest& c : kCases) {
    SearchRequest r = BaseRequest();
    c.mutate(&r);
    EXPECT_THAT(BuildSearchProblem(r),
                StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr(c.message)))
        << c.what;
  }
}

// Issue 12: sizes and counts that overflowed int, divided by zero or made the search allocate
// without bound are refused up front, each valid alone.
TEST(ProblemBuilderTest, RefusesWhatWouldOverflowOrExhaustTheSearch) {
  const BadRequest kCases[] = {
      {"int max batch", [](SearchRequest* r) { r->set_global_batch_size(2147483647); },
       "global_batch_size: 2147483647 samples exceeds the planner's limit of 16777216"},
      {"prime batch", [](SearchRequest* r) { r->set_global_batch_size(1000000007); },
       "exceeds the planner's limit"},
      {"tokens per step", [](SearchRequest* r) { r->set_global_batch_size(10000019); },
       "tokens per step exceeds the planner's limit of 4294967296"},
      {"range max",
       [](SearchRequest* r) {
         r->clear_global_batch_size();
         r->mutable_batch_range()->set_min(1 << 24);
         r->mutable_batch_range()->set_max(2147483647);
         r->mutable_batch_range()->set_step(1 << 30);
       },
       "batch_range.max: 2147483647 samples exceeds"},
      {"device count overflows int",
       [](SearchRequest* r) {
         r->mutable_cluster()->mutable_hardware()->set_devices_per_node(65536);
         r->mutable_cluster()->set_num_nodes(65536);
       },
       "cluster: 65536 nodes x 65536 devices = 4294967296 devices; the planner searches at most "
       "1048576"},
      {"10k layers", [](SearchRequest* r) { r->mutable_model()->set_num_layers(10000); },
       "model.num_layers: 10000 exceeds the planner's limit of 1024"},
      {"hidden", [](SearchRequest* r) { r->mutable_model()->set_hidden_size(1 << 20); },
       "model.hidden_size"},
      {"activation bytes beyond int64",
       [](SearchRequest* r) {
         r->mutable_model()->set_num_layers(1024);
         r->mutable_model()->set_hidden_size(1 << 17);
         r->mutable_model()->set_ffn_hidden_size(1 << 19);
         r->set_global_batch_size(1 << 20);
         r->set_seq_len(4096);  // 2^32 tokens per step: within that limit
       },
       "64-bit memory arithmetic holds (2^55)"},
      {"micro-batches", [](SearchRequest* r) {
         r->set_global_batch_size(8192);
         r->set_seq_len(128);
         r->mutable_space()->add_micro_batch_counts(8192);
       },
       "space.micro_batch_counts[0]: 8192 exceeds the planner's limit of 4096 micro-batches"},
      {"infinite peak",
       [](SearchRequest* r) {
         r->mutable_cluster()->mutable_hardware()->mutable_device()->set_peak_flops_per_s(
             std::numeric_limits<double>::infinity());
       },
       "peak_flops_per_s"},
      {"infinite bandwidth",
       [](SearchRequest* r) {
         r->mutable_cluster()->mutable_hardware()->mutable_device()->set_memory_bandwidth_bytes_per_s(
             std::numeric_limits<double>::infinity());
       },
       "device.memory_bandwidth_bytes_per_s = inf: every number must be finite"},
      {"infinite overlap",
       [](SearchRequest* r) {
         r->mutable_cluster()->mutable_hardware()->set_overlap_slowdown(
             std::numeric_limits<double>::infinity());
       },
       "overlap_slowdown = inf"},
      {"infinite latency",
       [](SearchRequest* r) {
         r->mutable_cluster()->mutable_hardware()->mutable_collectives(0)->set_latency_s(
             std::numeric_limits<double>::infinity());
       },
       "collectives[0].latency_s = inf"},
      {"nan timing",
       [](SearchRequest* r) {
         *r->mutable_model_profile()->add_timings() = Timing(
             cairn::v1::LAYER_KIND_HEAD, 1, std::numeric_limits<double>::quiet_NaN());
       },
       "forward_s (nan)"},
      {"too many combinations",
       [](SearchRequest* r) {
         // 3328 batch sizes, each a multiple of 5040 with dozens of divisors, on 16 devices.
         r->clear_global_batch_size();
         r->set_seq_len(256);
         r->mutable_batch_range()->set_min(5040);
         r->mutable_batch_range()->set_max(5040 * 3328);
         r->mutable_batch_range()->set_step(5040);
       },
       "space: the search would consider more than 262144"},
  };
  for (const BadRequest& c : kCases) {
    SearchRequest r = BaseRequest();
    c.mutate(&r);
    EXPECT_THAT(BuildSearchProblem(r),
                StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr(c.message)))
        << c.what;
  }
}

}  // namespace
}  // namespace cairn::planner
