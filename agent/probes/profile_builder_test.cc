// BuildProfiles on hand-made reports: the numbers below are chosen so the expected profile fields
// follow from the formulas in profile_builder.h by hand.
#include "agent/probes/profile_builder.h"

#include <cmath>

#include "absl/strings/str_format.h"
#include "planner/catalog/clusters.h"
#include "common/testing/status_matchers.h"
#include "gtest/gtest.h"

namespace cairn::agent {
namespace {

using ::cairn::testing::IsOk;

Measurement* Add(ProbeReport* r, const std::string& probe, const std::string& name,
                 const std::string& op) {
  Measurement* m = r->add_measurements();
  m->set_probe(probe);
  m->set_name(name);
  m->set_op(op);
  m->set_correct(true);
  return m;
}

NodeDescription Node() {
  NodeDescription n;
  n.node_name = "node-a";
  n.fingerprint.set_device_model("cpu: Test CPU");
  n.profile_name = "cpu-test (measured)";
  n.device_name = "cpu worker";
  n.devices_per_node = 2;
  n.device_memory_bytes = int64_t{4} << 30;
  n.reserved_bytes = int64_t{128} << 20;
  n.activation_dtype_bytes = 4;
  n.measured_at = "2026-12-05T00:00:00Z";
  return n;
}

// Two ranks, the same GEMM: 2 GFLOP forward (6 GFLOP in all) in 0.1 s and 0.2 s -> the mean time
// 0.15 s, rate 40 GFLOP/s at 2 GFLOP.
std::vector<ProbeReport> Reports() {
  std::vector<ProbeReport> rs(2);
  for (int r = 0; r < 2; ++r) {
    rs[r].set_version("cairn-probes/1");
    Measurement* g = Add(&rs[r], "gemm", "gemm x", "qkv");
    g->set_flops(6e9);
    g->set_time_s(r == 0 ? 0.1 : 0.2);
    // Its shape (2 x 1000 x 1000 x 1000 = 2 GFLOP forward): forward 0.04 / 0.06 s, backward
    // 0.06 / 0.14 s on the two ranks -> the shape point's means 0.05 and 0.1.
    (*g->mutable_params())["m"] = 1000;
    (*g->mutable_params())["n"] = 1000;
    (*g->mutable_params())["k"] = 1000;
    (*g->mutable_params())["forward_s"] = r == 0 ? 0.04 : 0.06;
    (*g->mutable_params())["backward_s"] = r == 0 ? 0.06 : 0.14;
    // A second shape 3% larger in FLOPs: merged with the first.
    Measurement* g2 = Add(&rs[r], "gemm", "gemm y", "out");
    g2->set_flops(6.18e9);
    g2->set_time_s(0.15);
    // Attention at 2 GFLOP: forward 0.1 s, backward 0.25 s -> efficiency
    // 3.5 x 2e9 / (rate x 0.35).
    Measurement* af = Add(&rs[r], "attention", "attention s forward", "forward");
    af->set_flops(2e9);
    af->set_time_s(0.1);
    Measurement* ab = Add(&rs[r], "attention", "attention s backward", "backward");
    ab->set_flops(5e9);
    ab->set_time_s(r == 0 ? 0.2 : 0.3);
    for (Measurement* a : {af, ab}) {
      (*a->mutable_params())["batch"] = 1;
      (*a->mutable_params())["seq"] = 512;
      (*a->mutable_params())["heads"] = 8;
      (*a->mutable_params())["head_dim"] = 64;
    }
    Add(&rs[r], "launch", "launch", "scale")->set_time_s(r == 0 ? 4e-6 : 6e-6);
    Add(&rs[r], "memory", "memory adamw", "adamw")->set_rate(5e9);
    Add(&rs[r], "memory", "memory copy", "copy")->set_rate(9e9);
    Measurement* l = Add(&rs[r], "layer", "llama-tiny block b=2 seq=128", "block");
    l->set_model("llama-tiny");
    (*l->mutable_params())["micro_batch"] = 2;
    (*l->mutable_params())["seq"] = 128;
    (*l->mutable_params())["tp"] = 1;
    (*l->mutable_params())["forward_s"] = r == 0 ? 0.01 : 0.03;
    (*l->mutable_params())["backward_s"] = 0.04;
    (*l->mutable_params())["activation_bytes"] = 1000;
  }
  // Rank 0 holds the collectives: all-reduce of 2 consecutive (no span) and strided (spans).
  for (int stride : {1, 2}) {
    Measurement* f = Add(&rs[0], "collective_fit", "fit", "all_reduce");
    (*f->mutable_params())["group_size"] = 2;
    (*f->mutable_params())["stride"] = stride;
    (*f->mutable_params())["spans_nodes"] = stride == 2;
    (*f->mutable_params())["latency_s"] = 1e-4 * stride;
    (*f->mutable_params())["busbw_bytes_per_s"] = 1e9 / stride;
    (*f->mutable_params())["max_rel_error"] = 0.1;
    for (double bytes : {1024.0, 1048576.0}) {
      Measurement* m = Add(&rs[0], "collective", "c", "all_reduce");
      (*m->mutable_params())["group_size"] = 2;
      (*m->mutable_params())["stride"] = stride;
      m->set_bytes(bytes);
      m->set_time_s(1e-4 * stride + bytes / 1e9);
    }
  }
  Add(&rs[0], "overlap", "overlap gamma", "gamma")->set_rate(1.3);
  return rs;
}

TEST(ProfileBuilderTest, BuildsTheHardwareProfileFieldByField) {
  ASSERT_OK_AND_ASSIGN(BuiltProfiles p, BuildProfiles(Node(), Reports(), nullptr));
  const cairn::v1::HardwareProfile& hw = p.hardware;
  EXPECT_EQ(hw.fingerprint().device_model(), "cpu: Test CPU");
  EXPECT_EQ(hw.source(), cairn::v1::PROFILE_SOURCE_MEASURED);
  EXPECT_EQ(hw.devices_per_node(), 2);
  // One merged GEMM point: work 6e9 + 6.18e9 over time 0.15 + 0.15.
  ASSERT_EQ(hw.device().gemm_size(), 1);
  EXPECT_NEAR(hw.device().gemm(0).achieved_flops_per_s(), 12.18e9 / 0.3, 1e3);
  // No datasheet peak: the best measured rate.
  EXPECT_NEAR(hw.device().peak_flops_per_s(), 12.18e9 / 0.3, 1e3);
  const double rate = 12.18e9 / 0.3;
  EXPECT_NEAR(hw.device().attention_efficiency(), 3.5 * 2e9 / (rate * 0.35), 1e-9);
  EXPECT_EQ(hw.device().memory_bandwidth_bytes_per_s(), 5e9);
  // The measured shape, times averaged over the ranks ("gemm y" has no shape: table only).
  ASSERT_EQ(hw.device().gemm_shapes_size(), 1);
  const cairn::v1::GemmShapePoint& shape = hw.device().gemm_shapes(0);
  EXPECT_EQ(shape.m(), 1000);
  EXPECT_EQ(shape.n(), 1000);
  EXPECT_EQ(shape.k(), 1000);
  EXPECT_NEAR(shape.forward_s(), 0.05, 1e-12);
  EXPECT_NEAR(shape.backward_s(), 0.1, 1e-12);
  // The attention kernel: forward 0.1 s, backward the mean of 0.2 and 0.3.
  ASSERT_EQ(hw.device().attention_size(), 1);
  const cairn::v1::AttentionPoint& att = hw.device().attention(0);
  EXPECT_EQ(att.batch(), 1);
  EXPECT_EQ(att.heads(), 8);
  EXPECT_EQ(att.kv_heads(), 8);
  EXPECT_EQ(att.seq_len(), 512);
  EXPECT_EQ(att.head_dim(), 64);
  EXPECT_NEAR(att.forward_s(), 0.1, 1e-12);
  EXPECT_NEAR(att.backward_s(), 0.25, 1e-12);
  EXPECT_NEAR(hw.device().kernel_launch_s(), 5e-6, 1e-15);
  ASSERT_EQ(hw.collectives_size(), 2);
  for (const cairn::v1::CollectiveCost& c : hw.collectives()) {
    EXPECT_EQ(c.op(), cairn::v1::COLLECTIVE_OP_ALL_REDUCE);
    ASSERT_EQ(c.points_size(), 3);  // two measured, one continuing at the fitted bandwidth
    EXPECT_EQ(c.points(2).bytes(), 16 * c.points(1).bytes());
    EXPECT_NEAR(c.points(2).time_s() - c.points(1).time_s(),
                15 * c.points(1).bytes() * 1.0 / c.busbw_bytes_per_s(), 1e-12);  // factor 1 at g=2
    EXPECT_EQ(c.busbw_bytes_per_s(), c.spans_nodes() ? 0.5e9 : 1e9);
  }
  EXPECT_EQ(hw.overlap_slowdown(), 1.3);
  EXPECT_NE(hw.notes().find("node-a"), std::string::npos);
  EXPECT_NE(hw.notes().find("cairn-probes/1"), std::string::npos);
}

TEST(ProfileBuilderTest, ModelProfileAveragesRanks) {
  ASSERT_OK_AND_ASSIGN(BuiltProfiles p, BuildProfiles(Node(), Reports(), nullptr));
  ASSERT_EQ(p.models.size(), 1u);
  const cairn::v1::ModelProfile& m = p.models[0];
  EXPECT_EQ(m.model_name(), "llama-tiny");
  EXPECT_EQ(m.device_model(), "cpu: Test CPU");
  EXPECT_EQ(m.activation_dtype_bytes(), 4);
  ASSERT_EQ(m.timings_size(), 1);
  EXPECT_EQ(m.timings(0).kind(), cairn::v1::LAYER_KIND_TRANSFORMER_BLOCK);
  EXPECT_DOUBLE_EQ(m.timings(0).forward_s(), 0.02);
  EXPECT_DOUBLE_EQ(m.timings(0).backward_s(), 0.04);
  EXPECT_EQ(m.timings(0).micro_batch_size(), 2);
  EXPECT_EQ(m.timings(0).activation_bytes(), 1000);
}

TEST(ProfileBuilderTest, KeepsPreviousTablesNotMeasuredAgainAndRefusesEmptyReports) {
  cairn::v1::HardwareProfile previous;
  cairn::v1::CollectiveCost* old = previous.add_collectives();
  old->set_op(cairn::v1::COLLECTIVE_OP_ALL_GATHER);
  old->set_group_size(4);
  old->set_spans_nodes(true);
  cairn::v1::CollectiveCost* replaced = previous.add_collectives();
  replaced->set_op(cairn::v1::COLLECTIVE_OP_ALL_REDUCE);
  replaced->set_group_size(2);
  replaced->set_busbw_bytes_per_s(123);
  ASSERT_OK_AND_ASSIGN(BuiltProfiles p, BuildProfiles(Node(), Reports(), &previous));
  EXPECT_EQ(p.hardware.collectives_size(), 3);
  for (const auto& c : p.hardware.collectives()) EXPECT_NE(c.busbw_bytes_per_s(), 123);
  EXPECT_FALSE(BuildProfiles(Node(), {ProbeReport()}, nullptr).ok());
}

TEST(ProfileBuilderTest, NoisyCollectiveTimesAreMadeMonotone) {
  std::vector<ProbeReport> rs = Reports();
  for (Measurement& m : *rs[0].mutable_measurements()) {
    if (m.probe() == "collective" && m.bytes() > 2000) m.set_time_s(1e-5);  // faster than 1 KiB
  }
  ASSERT_OK_AND_ASSIGN(BuiltProfiles p, BuildProfiles(Node(), rs, nullptr));
  for (const cairn::v1::CollectiveCost& c : p.hardware.collectives()) {
    for (int i = 1; i < c.points_size(); ++i) {
      EXPECT_GE(c.points(i).time_s(), c.points(i - 1).time_s());
    }
  }
}

TEST(ProfileBuilderTest, APartialProbeKeepsThePreviousComputeNumbers) {
  ASSERT_OK_AND_ASSIGN(BuiltProfiles first, BuildProfiles(Node(), Reports(), nullptr));
  // Only collectives this time (`cairn agents probe --suites comm`).
  std::vector<ProbeReport> comm(1);
  comm[0].set_version("cairn-probes/1");
  const std::vector<ProbeReport> all = Reports();
  for (const Measurement& m : all[0].measurements()) {
    if (m.probe() == "collective" || m.probe() == "collective_fit") *comm[0].add_measurements() = m;
  }
  ASSERT_OK_AND_ASSIGN(BuiltProfiles p, BuildProfiles(Node(), comm, &first.hardware));
  EXPECT_EQ(p.hardware.device().gemm_size(), first.hardware.device().gemm_size());
  EXPECT_EQ(p.hardware.device().memory_bandwidth_bytes_per_s(), 5e9);
  EXPECT_EQ(p.hardware.overlap_slowdown(), 1.3);
  EXPECT_EQ(p.hardware.collectives_size(), 2);
  EXPECT_NE(p.hardware.notes().find("kept from the previous profile"), std::string::npos);
}

TEST(ProfileBuilderTest, GemmRateAtInterpolatesLikeTheCostModel) {
  cairn::v1::DeviceSpec d;
  auto* a = d.add_gemm();
  a->set_flops(1e6);
  a->set_achieved_flops_per_s(1e9);
  auto* b = d.add_gemm();
  b->set_flops(1e8);
  b->set_achieved_flops_per_s(3e9);
  EXPECT_EQ(GemmRateAt(d, 1e3), 1e9);    // clamped below
  EXPECT_EQ(GemmRateAt(d, 1e12), 3e9);   // clamped above
  EXPECT_NEAR(GemmRateAt(d, 1e7), 2e9, 1);  // halfway in log(flops)
}

TEST(ProfileBuilderTest, NotesTheTablesLeaveOneOutInterpolationError) {
  std::vector<ProbeReport> rs = Reports();
  // A third all-reduce point between the two of the consecutive placement, at 4 KiB: 0.2 ms
  // measured where its neighbours' straight line says t0 + (t2 - t0) x 3072 / 1047552.
  Measurement* m = Add(&rs[0], "collective", "c", "all_reduce");
  (*m->mutable_params())["group_size"] = 2;
  (*m->mutable_params())["stride"] = 1;
  m->set_bytes(4096);
  m->set_time_s(2e-4);
  const double t0 = 1e-4 + 1024 / 1e9, t2 = 1e-4 + 1048576 / 1e9;
  const double guess = t0 + (t2 - t0) * 3072.0 / 1047552.0;
  const double error = std::abs(guess - 2e-4) / 2e-4;
  ASSERT_OK_AND_ASSIGN(BuiltProfiles p, BuildProfiles(Node(), rs, nullptr));
  const std::string expect = absl::StrFormat("table interpolation error %.0f%%", 100 * error);
  bool found = false;
  for (const std::string& line : p.summary) found = found || line.find(expect) != std::string::npos;
  EXPECT_TRUE(found) << expect;
  EXPECT_NE(p.hardware.notes().find("leave-one-out"), std::string::npos);
}


// One GPU: the compute and layer suites ran, no collective (one rank has no group) and so no
// overlap. The profile must still be one the planner accepts (it refused overlap_slowdown 0 when
// the agent first probed an H100), with 1 for the slowdown nothing measured.
TEST(ProfileBuilderTest, OneRankWithoutCollectivesBuildsAProfileThePlannerAccepts) {
  std::vector<ProbeReport> rs = Reports();
  rs.resize(1);
  ProbeReport compute_only;
  compute_only.set_version(rs[0].version());
  for (const Measurement& m : rs[0].measurements()) {
    if (m.probe() != "collective" && m.probe() != "collective_fit" && m.probe() != "overlap") {
      *compute_only.add_measurements() = m;
    }
  }
  NodeDescription node = Node();
  node.devices_per_node = 1;
  ASSERT_OK_AND_ASSIGN(BuiltProfiles p, BuildProfiles(node, {compute_only}, nullptr));
  EXPECT_EQ(p.hardware.collectives_size(), 0);
  EXPECT_EQ(p.hardware.overlap_slowdown(), 1.0);
  EXPECT_NE(p.hardware.notes().find("Overlap not measured"), std::string::npos);
  EXPECT_THAT(cairn::planner::ValidateHardwareProfile(p.hardware), IsOk());
}

}  // namespace
}  // namespace cairn::agent
