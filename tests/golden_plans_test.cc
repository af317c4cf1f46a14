// Golden plans for a few catalog cases: the search's best plan (shape, strategies, predicted step
// time to 4 significant digits) must match tests/golden/<case>.txt. A change to the cost model or
// the search that moves a plan shows up here as a readable diff.
//
// To accept new plans after an intended change, run
//   CAIRN_UPDATE_GOLDEN=$PWD/tests/golden bazel test //tests:golden_plans_test
// and review the diff of tests/golden/ before committing.
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/testing/status_matchers.h"
#include "gtest/gtest.h"
#include "runtime/engine/topology.h"
#include "planner/catalog/clusters.h"
#include "planner/catalog/models.h"
#include "planner/cost/evaluate.h"
#include "planner/problem/problem_builder.h"
#include "planner/search/search.h"

namespace cairn {
namespace {

using namespace cairn::planner;  // NOLINT

struct Case {
  const char* name;
  const char* model;
  const char* cluster;
  int nodes;
  int batch;
  int seq;
  int dtype_bytes;
};

std::string Render(const SearchProblem& pb, const PlanSpec& plan, const Evaluation& e) {
  const int p = plan.pipeline_degree();
  const bool interleaved = plan.virtual_stages > 1;
  std::string out = absl::StrFormat("pp=%d schedule=%s micro_batches=%d global_batch=%d", p,
                                    ToString(plan.schedule), plan.num_micro_batches,
                                    plan.global_batch);
  if (interleaved) absl::StrAppendFormat(&out, " virtual_stages=%d", plan.virtual_stages);
  absl::StrAppend(&out, "\n");
  int first = 0;
  // Model chunks in model order (one per stage without interleaving; chunk i on stage i mod p).
  for (int i = 0; i < plan.num_chunks(); ++i) {
    if (interleaved) {
      absl::StrAppendFormat(&out, "chunk %d (stage %d):\n", i, i % p);
    } else {
      absl::StrAppendFormat(&out, "stage %d:\n", i);
    }
    for (const std::string& line :
         SummarizeLayers(plan, first, plan.stage_layers[i], pb.model.num_layers)) {
      absl::StrAppend(&out, "  ", line, "\n");
    }
    first += plan.stage_layers[i];
  }
  absl::StrAppendFormat(&out, "step_time_s=%.4g peak_memory_gib=%.3g\n", e.step_time_s,
                        e.PeakBytes() / 1073741824.0);
  return out;
}

class GoldenPlansTest : public ::testing::TestWithParam<Case> {};

TEST_P(GoldenPlansTest, MatchesGolden) {
  const Case& c = GetParam();
  cairn::v1::SearchRequest req;
  *req.mutable_model() = LookupModel(c.model).value();
  *req.mutable_cluster() = MakeCluster(c.cluster, c.nodes, 0).value();
  req.set_global_batch_size(c.batch);
  req.set_seq_len(c.seq);
  req.set_threads(1);  // deterministic tie-breaking
  req.set_dtype_bytes(c.dtype_bytes);
  absl::StatusOr<SearchProblem> pb = BuildSearchProblem(req);
  ASSERT_TRUE(pb.ok()) << pb.status();
  SearchOptions opt;
  opt.with_baselines = false;
  absl::StatusOr<SearchResult> r = Search(*pb, opt);
  ASSERT_TRUE(r.ok()) << r.status();
  ASSERT_FALSE(r->plans.empty()) << r->infeasible_reason;
  // Every returned plan is feasible when scored again from scratch.
  CostModel cm(*pb);
  for (size_t i = 0; i < r->plans.size(); ++i) {
    absl::StatusOr<Evaluation> e = Evaluate(cm, r->plans[i]);
    ASSERT_TRUE(e.ok());
    EXPECT_TRUE(e->feasible) << (e->violations.empty() ? "" : e->violations[0]);
    EXPECT_DOUBLE_EQ(e->step_time_s, r->evaluations[i].step_time_s);
    // The runtime accepts it on every rank (its validator is the plan contract's).
    const int world = pb->hardware.num_devices();
    for (int rank : {0, world - 1}) {
      EXPECT_OK(runtime::Topology(world, rank, r->plans[i], pb->model, pb->seq_len).Validate());
    }
  }
  const std::string got = Render(*pb, r->plans[0], r->evaluations[0]);
  const std::string file = absl::StrCat(c.name, ".txt");
  if (const char* dir = std::getenv("CAIRN_UPDATE_GOLDEN")) {
    std::ofstream(absl::StrCat(dir, "/", file)) << got;
    GTEST_SKIP() << "wrote " << dir << "/" << file;
  }
  std::ifstream in(absl::StrCat("tests/golden/", file));
  ASSERT_TRUE(in.good()) << "missing tests/golden/" << file << "; see the header of this test";
  std::stringstream want;
  want << in.rdbuf();
  EXPECT_EQ(got, want.str()) << "the plan for " << c.name << " changed; see the header of this test";
}

INSTANTIATE_TEST_SUITE_P(
    Catalog, GoldenPlansTest,
    ::testing::Values(Case{"gpt2-124m_h100x8_b64_s1024", "gpt2-124m", "h100-sxm", 1, 64, 1024, 2},
                      Case{"llama2-7b_h100x32_b512_s4096", "llama2-7b", "h100-sxm", 4, 512, 4096, 2},
                      Case{"llama2-70b_a100x64_b256_s4096", "llama2-70b", "a100-80g-sxm", 8, 256,
                           4096, 2},
                      Case{"llama-tiny_cpu4_b16_s256", "llama-tiny", "cpu", 1, 16, 256, 4}),
    [](const ::testing::TestParamInfo<Case>& info) {
      std::string n = info.param.name;
      for (char& ch : n) {
        if (!isalnum(static_cast<unsigned char>(ch))) ch = '_';
      }
      return n;
    });

}  // namespace
}  // namespace cairn
