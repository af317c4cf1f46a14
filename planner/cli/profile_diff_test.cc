// RenderProfileDiff on hand-made profiles: every measured GEMM shape, attention kernel and the
// launch cost get a row, timed as the cost model times them.
#include "planner/cli/profile_diff.h"

#include <sstream>
#include <string>

#include "gtest/gtest.h"

namespace cairn::cli {
namespace {

// Returns the line of `text` that starts with `prefix` ("" when none does).
std::string Line(const std::string& text, const std::string& prefix) {
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) {
    if (line.rfind(prefix, 0) == 0) return line;
  }
  return "";
}

cairn::v1::HardwareProfile Profile(double rate_flops_per_s) {
  cairn::v1::HardwareProfile p;
  p.mutable_fingerprint()->set_device_model("NVIDIA H100 80GB HBM3");
  p.set_devices_per_node(8);
  cairn::v1::DeviceSpec* d = p.mutable_device();
  d->set_memory_bytes(int64_t{80} << 30);
  d->set_peak_flops_per_s(989e12);
  d->set_memory_bandwidth_bytes_per_s(3e12);
  cairn::v1::GemmPoint* g = d->add_gemm();
  g->set_flops(1e9);
  g->set_achieved_flops_per_s(rate_flops_per_s);
  return p;
}

TEST(ProfileDiffTest, MeasuredShapesKernelsAndLaunchCostGetRows) {
  cairn::v1::HardwareProfile measured = Profile(500e12);
  cairn::v1::DeviceSpec* d = measured.mutable_device();
  // 4096 x 4096 x 4096: 137 GFLOP forward in 0.25 ms, both gradients in 0.5 ms.
  cairn::v1::GemmShapePoint* s = d->add_gemm_shapes();
  s->set_m(4096);
  s->set_n(4096);
  s->set_k(4096);
  s->set_forward_s(2.5e-4);
  s->set_backward_s(5e-4);
  cairn::v1::AttentionPoint* a = d->add_attention();
  a->set_batch(1);
  a->set_heads(32);
  a->set_kv_heads(32);
  a->set_seq_len(4096);
  a->set_head_dim(128);
  a->set_forward_s(1e-3);
  a->set_backward_s(2e-3);
  d->set_kernel_launch_s(4e-6);
  std::ostringstream out;
  RenderProfileDiff(measured, "measured", Profile(500e12), "catalog", out);
  const std::string text = out.str();

  // The measured side reads its shape (0.75 ms); the catalog side its table: 3 x 137.4 GFLOP at
  // 500 TFLOP/s = 0.8246 ms.
  const std::string gemm = Line(text, "GEMM 4096x4096x4096 fwd+bwd time");
  ASSERT_FALSE(gemm.empty()) << text;
  EXPECT_NE(gemm.find("0.75 ms"), std::string::npos) << gemm;
  EXPECT_NE(gemm.find("0.8246 ms"), std::string::npos) << gemm;
  EXPECT_NE(gemm.find("0.91"), std::string::npos) << gemm;  // ratio measured / catalog

  const std::string att = Line(text, "attention 32 seqs x heads, s=4096 d=128 fwd+bwd");
  ASSERT_FALSE(att.empty()) << text;
  EXPECT_NE(att.find("3 ms"), std::string::npos) << att;

  const std::string launch = Line(text, "kernel launch");
  ASSERT_FALSE(launch.empty()) << text;
  EXPECT_NE(launch.find("4 us"), std::string::npos) << launch;
  EXPECT_NE(launch.find(" - "), std::string::npos) << launch;  // the catalog has none
}

TEST(ProfileDiffTest, ProfilesWithoutShapesHaveNoShapeRows) {
  std::ostringstream out;
  RenderProfileDiff(Profile(400e12), "a", Profile(500e12), "b", out);
  EXPECT_EQ(out.str().find("fwd+bwd"), std::string::npos) << out.str();
  EXPECT_NE(out.str().find("GEMM rate at"), std::string::npos);
}

}  // namespace
}  // namespace cairn::cli
