// End-to-end tests of the `cairn` commands (the same code path as the binary, without a process).
#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "planner/cli/commands.h"
#include "planner/plan/plan_convert.h"

namespace cairn {
namespace {

using ::testing::HasSubstr;

struct CliRun {
  int status;
  std::string out, err;
};

CliRun Cairn(std::vector<std::string> argv) {
  std::ostringstream out, err;
  const int status = cli::RunCommand(argv, out, err);
  return {status, out.str(), err.str()};
}

std::string TempPath(const std::string& name) {
  const char* dir = std::getenv("TEST_TMPDIR");
  return std::string(dir ? dir : "/tmp") + "/" + name;
}

TEST(CliTest, ListsModelsAndClusters) {
  CliRun r = Cairn({"models"});
  EXPECT_EQ(r.status, 0);
  for (const char* name : {"gpt2-124m", "gpt3-175b", "llama2-70b", "llama3-405b", "gpt2-tiny",
                           "llama-tiny"}) {
    EXPECT_THAT(r.out, HasSubstr(name));
  }
  r = Cairn({"clusters"});
  EXPECT_EQ(r.status, 0);
  for (const char* name : {"h100-sxm", "h200-sxm", "a100-80g-sxm", "cpu"}) {
    EXPECT_THAT(r.out, HasSubstr(name));
  }
}

TEST(CliTest, PlansAndReportsEverythingAUserNeeds) {
  CliRun r = Cairn({"plan", "--model", "llama2-7b", "--cluster", "h100-sxm", "--nodes", "1",
                 "--global-batch", "64", "--seq-len", "2048", "--quiet", "--explain"});
  ASSERT_EQ(r.status, 0) << r.err;
  for (const char* text : {"Plan for llama2-7b", "tokens/s", "MFU", "stage 0", "embedding:",
                           "head:", "memory", "Gain over the best uniform plan", "megatron",
                           "fsdp", "Search:", "Why the best uniform plan ("}) {
    EXPECT_THAT(r.out, HasSubstr(text));
  }
}

TEST(CliTest, JsonPlanRoundTripsThroughEvaluate) {
  const std::string path = TempPath("plan.json");
  CliRun r = Cairn({"plan", "--model", "gpt2-355m", "--cluster", "a100-80g-sxm", "--nodes", "2",
                 "--global-batch", "128", "--seq-len", "1024", "--quiet", "--output", path});
  ASSERT_EQ(r.status, 0) << r.err;
  std::ifstream f(path);
  std::stringstream text;
  text << f.rdbuf();
  auto plan = planner::PlanFromJson(text.str());
  ASSERT_TRUE(plan.ok()) << plan.status();
  EXPECT_EQ(plan->model_name(), "gpt2-355m");
  EXPECT_EQ(plan->layers_size(), 24 + 2);
  EXPECT_GT(plan->prediction().step_time_s(), 0);
  // Scoring the written plan again gives the same prediction.
  CliRun e = Cairn({"evaluate", "--model", "gpt2-355m", "--cluster", "a100-80g-sxm", "--nodes", "2",
                 "--global-batch", "128", "--seq-len", "1024", "--plan", path, "--json"});
  ASSERT_EQ(e.status, 0) << e.err;
  auto again = planner::PlanFromJson(e.out);
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_DOUBLE_EQ(again->prediction().step_time_s(), plan->prediction().step_time_s());
}

TEST(CliTest, EvaluatesAUniformConfigurationFromFlags) {
  CliRun r = Cairn({"evaluate", "--model", "llama2-13b", "--cluster", "h100-sxm", "--nodes", "2",
                 "--global-batch", "128", "--seq-len", "4096", "--tp", "4", "--pp", "2",
                 "--micro-batches", "16", "--recompute"});
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr("tp=4 sp zero1 recompute"));
  EXPECT_THAT(r.out, HasSubstr("stage 1"));
}

TEST(CliTest, MegatronFormat) {
  CliRun r = Cairn({"plan", "--model", "llama2-7b", "--cluster", "h100-sxm", "--nodes", "1",
                 "--global-batch", "64", "--seq-len", "2048", "--quiet", "--format", "megatron"});
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr("--tensor-model-parallel-size"));
  EXPECT_THAT(r.out, HasSubstr("--global-batch-size 64"));
}

TEST(CliTest, GalvatronStrategyExportImport) {
  const std::string path = TempPath("galvatron.json");
  CliRun r = Cairn({"plan", "--model", "llama2-7b", "--cluster", "a100-80g-sxm", "--nodes", "1",
                 "--global-batch", "64", "--seq-len", "2048", "--quiet", "--format", "galvatron",
                 "--dp-modes", "ddp,zero2,zero3", "--modes", "tp,ulysses"});
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr("tp_sizes_enc"));
  std::ofstream(path) << r.out;
  CliRun e = Cairn({"evaluate", "--model", "llama2-7b", "--cluster", "a100-80g-sxm", "--nodes", "1",
                 "--global-batch", "64", "--seq-len", "2048", "--galvatron-strategy", path});
  EXPECT_EQ(e.status, 0) << e.err;
  EXPECT_THAT(e.out, HasSubstr("galvatron import"));
}

TEST(CliTest, BadInputGetsClearErrors) {
  CliRun r = Cairn({"plan", "--model", "llama9-1t", "--global-batch", "8"});
  EXPECT_EQ(r.status, 2);
  EXPECT_THAT(r.err, HasSubstr("llama2-7b"));  // lists the valid names
  r = Cairn({"plan", "--model", "llama2-7b", "--cluster", "tpu-v9", "--global-batch", "8"});
  EXPECT_EQ(r.status, 2);
  EXPECT_THAT(r.err, HasSubstr("h100-sxm"));
  r = Cairn({"plan", "--model", "llama2-7b", "--global-batch", "8", "--frobnicate", "1"});
  EXPECT_EQ(r.status, 2);
  EXPECT_THAT(r.err, HasSubstr("unknown flag --frobnicate"));
  r = Cairn({"plan", "--model", "llama2-7b", "--global-batch", "8", "--nodes", "0"});
  EXPECT_EQ(r.status, 2);
  r = Cairn({"plan", "--model", "llama2-7b", "--seq-len", "4096"});
  EXPECT_EQ(r.status, 2);
  EXPECT_THAT(r.err, HasSubstr("--global-batch"));
  r = Cairn({"frobnicate"});
  EXPECT_EQ(r.status, 2);
}

TEST(CliTest, InfeasibleMemorySaysWhatWouldFit) {
  CliRun r = Cairn({"plan", "--model", "llama3-70b", "--cluster", "h100-sxm", "--nodes", "1",
                 "--global-batch", "8", "--seq-len", "8192", "--memory-gb", "20", "--quiet"});
  EXPECT_EQ(r.status, 1);
  EXPECT_THAT(r.err, HasSubstr("no plan fits"));
  EXPECT_THAT(r.err, HasSubstr("needs"));
  EXPECT_THAT(r.err, HasSubstr("nodes"));
}

TEST(CliTest, ImpossibleBatchSplitSaysSo) {
  // 3 samples cannot be split over 8 data-parallel ranks at any degree that leaves whole samples.
  CliRun r = Cairn({"plan", "--model", "gpt2-124m", "--cluster", "h100-sxm", "--nodes", "2",
                 "--global-batch", "3", "--seq-len", "1024", "--quiet", "--max-tp", "1",
                 "--pp", "1"});
  EXPECT_NE(r.status, 0);
  EXPECT_THAT(r.err, HasSubstr("global batch 3"));
}

}  // namespace
}  // namespace cairn

namespace cairn {
namespace {

TEST(CliTest, InvalidPlanGetsItsViolationsOnceAndNoScore) {
  CliRun r = Cairn({"evaluate", "--model", "llama3-70b", "--nodes", "1", "--global-batch", "64",
                    "--tp", "3"});
  EXPECT_EQ(r.status, 1);
  EXPECT_THAT(r.err, ::testing::HasSubstr("layers 1-80 (block, tp=3"));
  EXPECT_THAT(r.err, ::testing::HasSubstr("is not a power of 2"));
  EXPECT_THAT(r.out + r.err, ::testing::Not(::testing::HasSubstr("MFU")));
  EXPECT_THAT(r.out + r.err, ::testing::Not(::testing::HasSubstr("step ")));
  // One line per group of layers with the same problem (embedding, blocks, head).
  size_t lines = 0;
  for (char ch : r.err) lines += ch == '\n';
  EXPECT_EQ(lines, 4u) << r.err;
}

}  // namespace
}  // namespace cairn
