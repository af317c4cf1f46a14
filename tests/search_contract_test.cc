// The planner never proposes a plan the runtime refuses: every plan the search returns (top 3) on a
// grid of catalog models x clusters x batch sizes passes the runtime's own validator on every
// rank, and for the tiny models the best plan trains a step (ranks as threads, CPU backend).
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/plan/validate.h"
#include "common/testing/status_matchers.h"
#include "gtest/gtest.h"
#include "planner/catalog/clusters.h"
#include "planner/catalog/models.h"
#include "planner/problem/problem_builder.h"
#include "planner/search/search.h"
#include "runtime/engine/testing/engine_test_util.h"
#include "runtime/engine/topology.h"

namespace cairn {
namespace {

struct Grid {
  std::string model;
  std::string cluster;
  int nodes;
  std::vector<int> batches;
  int seq;
  int dtype_bytes = 2;
};

absl::StatusOr<planner::SearchResult> SearchTop3(const Grid& g, int batch,
                                                  planner::SearchProblem* pb) {
  cairn::v1::SearchRequest req;
  *req.mutable_model() = planner::LookupModel(g.model).value();
  *req.mutable_cluster() = planner::MakeCluster(g.cluster, g.nodes, 0).value();
  req.set_global_batch_size(batch);
  req.set_seq_len(g.seq);
  req.set_top_k(3);
  req.set_dtype_bytes(g.dtype_bytes);
  absl::StatusOr<planner::SearchProblem> problem = planner::BuildSearchProblem(req);
  if (!problem.ok()) return problem.status();
  *pb = *problem;
  planner::SearchOptions opt;
  opt.with_baselines = false;
  return planner::Search(*pb, opt);
}

class SearchContractTest : public ::testing::TestWithParam<Grid> {};

TEST_P(SearchContractTest, EveryPlanPassesTheRuntimesValidator) {
  const Grid& g = GetParam();
  int plans = 0;
  for (int batch : g.batches) {
    planner::SearchProblem pb;
    ASSERT_OK_AND_ASSIGN(planner::SearchResult r, SearchTop3(g, batch, &pb));
    const int world = pb.hardware.num_devices();
    for (const plan::PlanSpec& p : r.plans) {
      ++plans;
      EXPECT_TRUE(plan::ValidatePlan(pb.model, p, world, pb.seq_len).empty());
      for (int rank : {0, world / 2, world - 1}) {
        EXPECT_OK(runtime::Topology(world, rank, p, pb.model, pb.seq_len).Validate())
            << g.model << " on " << g.nodes << " x " << g.cluster << ", batch " << batch
            << ", rank " << rank;
      }
    }
  }
  EXPECT_GT(plans, 0) << "no plan found at all for " << g.model;
}

INSTANTIATE_TEST_SUITE_P(
    Catalog, SearchContractTest,
    ::testing::Values(Grid{"gpt2-124m", "h100-sxm", 1, {8, 64}, 1024},
                      Grid{"gpt2-355m", "a100-80g-sxm", 2, {32, 256}, 1024},
                      Grid{"llama2-7b", "h100-sxm", 1, {16, 64}, 4096},
                      Grid{"llama3-8b", "h200-sxm", 2, {32, 512}, 8192},
                      Grid{"llama2-13b", "a100-80g-sxm", 4, {128}, 4096},
                      Grid{"gpt3-6.7b", "h100-sxm", 2, {64}, 2048},
                      Grid{"llama-tiny", "cpu", 1, {4, 8, 16}, 256, 4},
                      Grid{"gpt2-tiny", "cpu", 1, {8, 12}, 128, 4}),
    [](const ::testing::TestParamInfo<Grid>& info) {
      std::string n = absl::StrCat(info.param.model, "_", info.param.cluster);
      for (char& ch : n) {
        if (!isalnum(static_cast<unsigned char>(ch))) ch = '_';
      }
      return n;
    });

// The tiny models' best plans on 2 and 4 CPU workers train one step.
TEST(SearchContractRunTest, TinyModelsBestPlansRun) {
  for (const char* model : {"llama-tiny", "gpt2-tiny"}) {
    for (int workers : {2, 4}) {
      cairn::v1::SearchRequest req;
      *req.mutable_model() = planner::LookupModel(model).value();
      *req.mutable_cluster() = planner::MakeCluster("cpu", 1, workers).value();
      req.set_global_batch_size(8);
      req.set_seq_len(runtime::testing::kSeq);
      req.set_dtype_bytes(4);
      ASSERT_OK_AND_ASSIGN(planner::SearchProblem pb, planner::BuildSearchProblem(req));
      planner::SearchOptions opt;
      opt.with_baselines = false;
      ASSERT_OK_AND_ASSIGN(planner::SearchResult r, planner::Search(pb, opt));
      ASSERT_FALSE(r.plans.empty()) << model << ": " << r.infeasible_reason;
      const runtime::testing::RunResult run =
          runtime::testing::Train(pb.model, r.plans[0], workers, 1);
      for (int rank = 0; rank < workers; ++rank) {
        EXPECT_GT(run.losses[rank][0], 0) << model << " on " << workers << " workers";
      }
    }
  }
}

}  // namespace
}  // namespace cairn
