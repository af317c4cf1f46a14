// agent/probes/probe_testing.h — what the probe tests share: the model they probe, a budget that
// keeps every suite to milliseconds, and the check that every case of a probe was measured.
//
//   ComputeProbeConfig c = ComputeProbeConfig::ForCpu({testing::LlamaTiny()});
//   c.budget = testing::TinyBudget();
//   ... ProbeGemms(backend, c, &report) ...
//   EXPECT_GE(testing::ExpectAllMeasured(report, "gemm"), 6);
//
//   // Two ranks probing together: Gloo over a file store, one thread each.
//   ASSERT_OK_AND_ASSIGN(runtime::testing::CommGroup world, testing::TwoCpuRanks());
//   runtime::testing::RunOnRanks(world, [&](int rank, runtime::Communicator& comm) { ... });
#ifndef CAIRN_AGENT_PROBES_PROBE_TESTING_H_
#define CAIRN_AGENT_PROBES_PROBE_TESTING_H_

#include <string>

#include "agent/probes/probe_harness.h"
#include "agent/probes/probe_report.pb.h"
#include "common/plan/plan.h"
#include "common/plan/plan_proto.h"
#include "common/testing/status_matchers.h"
#include "gtest/gtest.h"
#include "planner/catalog/models.h"
#include "runtime/comm/testing/backends.h"

namespace cairn::agent::testing {

// The catalog's llama-tiny (hidden 128, 4 heads, 2 KV heads, ffn 352, vocab 256).
inline plan::ModelDims LlamaTiny() {
  absl::StatusOr<cairn::v1::ModelSpec> spec = planner::LookupModel("llama-tiny");
  EXPECT_THAT(spec.status(), ::cairn::testing::IsOk());
  return plan::ModelDimsFromSpec(*spec);
}

// A few operations per case: tests check what was measured, never how fast.
inline ProbeBudget TinyBudget() {
  ProbeBudget b;
  b.target_seconds = 0.002;
  b.samples = 2;
  b.min_iters = 2;
  b.max_iters = 8;
  return b;
}

// Ranks 0 and 1 of a CPU world (runtime/comm/testing/backends.h "gloo_file"), as a node's
// probe ranks meet; run them with runtime::testing::RunOnRanks.
inline absl::StatusOr<runtime::testing::CommGroup> TwoCpuRanks() {
  return runtime::testing::FindCommBackend("gloo_file").make_group(2, absl::Seconds(60));
}

// Every measurement of `probe` in `r`: no error, checked correct, a positive time. Returns their
// number.
inline int ExpectAllMeasured(const ProbeReport& r, const std::string& probe) {
  int n = 0;
  for (const Measurement& m : r.measurements()) {
    if (m.probe() != probe) continue;
    ++n;
    EXPECT_TRUE(m.error().empty()) << m.name() << ": " << m.error();
    EXPECT_TRUE(m.correct()) << m.name();
    EXPECT_GT(m.time_s(), 0) << m.name();
  }
  return n;
}

}  // namespace cairn::agent::testing

#endif  // CAIRN_AGENT_PROBES_PROBE_TESTING_H_
