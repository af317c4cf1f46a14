// End-to-end tests of the `cairn` commands (the same code path as the binary, without a process).
#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/cli_app.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "planner/cli/commands.h"
#include "planner/cli/problem_flags.h"
#include "planner/cli/render.h"
#include "planner/plan/plan_convert.h"
#include "planner/search/search.h"

namespace cairn {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

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

TEST(CliTest, CatalogEntriesAsJsonAreUsableAsInputFiles) {
  CliRun m = Cairn({"models", "--json", "llama3-8b"});
  ASSERT_EQ(m.status, 0) << m.err;
  EXPECT_THAT(m.out, HasSubstr("\"num_layers\": 32"));
  CliRun c = Cairn({"clusters", "--json", "a100-80g-sxm"});
  ASSERT_EQ(c.status, 0) << c.err;
  EXPECT_THAT(c.out, HasSubstr("\"devices_per_node\": 8"));
  const std::string model = TempPath("model_entry.json"), hw = TempPath("cluster_entry.json");
  std::ofstream(model) << m.out;
  std::ofstream(hw) << c.out;
  // The files give the same plan as the names.
  const std::vector<std::string> rest = {"--nodes", "1", "--global-batch", "32", "--seq-len",
                                         "2048", "--quiet", "--json"};
  std::vector<std::string> by_name = {"plan", "--model", "llama3-8b", "--cluster", "a100-80g-sxm"};
  std::vector<std::string> by_file = {"plan", "--model", model, "--hardware-profile", hw};
  by_name.insert(by_name.end(), rest.begin(), rest.end());
  by_file.insert(by_file.end(), rest.begin(), rest.end());
  CliRun a = Cairn(by_name), b = Cairn(by_file);
  ASSERT_EQ(a.status, 0) << a.err;
  ASSERT_EQ(b.status, 0) << b.err;
  auto pa = planner::PlanFromJson(a.out), pb = planner::PlanFromJson(b.out);
  ASSERT_TRUE(pa.ok() && pb.ok());
  EXPECT_DOUBLE_EQ(pa->prediction().step_time_s(), pb->prediction().step_time_s());
  // Unknown names list the valid ones; stray arguments are errors.
  CliRun bad = Cairn({"clusters", "--json", "tpu-v9"});
  EXPECT_EQ(bad.status, 2);
  EXPECT_THAT(bad.err, HasSubstr("h100-sxm"));
  EXPECT_EQ(Cairn({"models", "--frobnicate"}).status, 2);
}

TEST(CliTest, ClustersShowEveryPeakInAUnitThatIsNotZero) {
  CliRun r = Cairn({"clusters"});
  ASSERT_EQ(r.status, 0);
  EXPECT_THAT(r.out, Not(HasSubstr(" 0 TFLOP/s")));
  EXPECT_THAT(r.out, HasSubstr("59.2 GFLOP/s peak"));  // cpu: half a Zen 4 core, fp32
  EXPECT_THAT(r.out, HasSubstr("989 TFLOP/s peak"));   // h100-sxm, dense bf16
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

// The whole file (empty when it cannot be read).
std::string ReadAll(const std::string& path) {
  std::ifstream f(path);
  std::stringstream text;
  text << f.rdbuf();
  return text.str();
}

TEST(CliTest, JsonPlanRoundTripsThroughEvaluate) {
  const std::string path = TempPath("plan.json");
  CliRun r = Cairn({"plan", "--model", "gpt2-355m", "--cluster", "a100-80g-sxm", "--nodes", "2",
                 "--global-batch", "128", "--seq-len", "1024", "--quiet", "--output", path});
  ASSERT_EQ(r.status, 0) << r.err;
  auto plan = planner::PlanFromJson(ReadAll(path));
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

TEST(CliTest, EvaluateTakesTheProblemFromThePlanFile) {
  // A plan made for 2 nodes, batch 96, sequence 2048 (not the defaults: 1 node, sequence 1024 for
  // gpt2-355m, h100-sxm).
  const std::string path = TempPath("plan_problem.json");
  CliRun r = Cairn({"plan", "--model", "gpt2-355m", "--cluster", "a100-80g-sxm", "--nodes", "2",
                    "--global-batch", "96", "--seq-len", "1024", "--quiet", "--output", path});
  ASSERT_EQ(r.status, 0) << r.err;
  auto plan = planner::PlanFromJson(ReadAll(path));
  ASSERT_TRUE(plan.ok()) << plan.status();
  // No problem flags at all: everything comes from the plan, and the score is the plan's own.
  CliRun e = Cairn({"evaluate", "--plan", path, "--json"});
  ASSERT_EQ(e.status, 0) << e.err;
  auto again = planner::PlanFromJson(e.out);
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ(again->num_nodes(), 2);
  EXPECT_EQ(again->seq_len(), 1024);
  EXPECT_EQ(again->global_batch_size(), 96);
  EXPECT_DOUBLE_EQ(again->prediction().step_time_s(), plan->prediction().step_time_s());
  // Flags that repeat the plan are fine.
  e = Cairn({"evaluate", "--plan", path, "--nodes", "2", "--seq-len", "1024", "--model",
             "gpt2-355m", "--cluster", "a100-80g-sxm", "--global-batch", "96"});
  EXPECT_EQ(e.status, 0) << e.err;
  // Flags that contradict it are errors naming both values.
  e = Cairn({"evaluate", "--plan", path, "--seq-len", "4096"});
  EXPECT_EQ(e.status, 2);
  EXPECT_THAT(e.err, HasSubstr("--seq-len 4096 contradicts the plan's seq_len 1024"));
  e = Cairn({"evaluate", "--plan", path, "--nodes", "1"});
  EXPECT_EQ(e.status, 2);
  EXPECT_THAT(e.err, HasSubstr("--nodes 1 contradicts the plan's num_nodes 2"));
  e = Cairn({"evaluate", "--plan", path, "--global-batch", "64"});
  EXPECT_EQ(e.status, 2);
  EXPECT_THAT(e.err, HasSubstr("global_batch_size 96"));
  e = Cairn({"evaluate", "--plan", path, "--cluster", "h100-sxm"});
  EXPECT_EQ(e.status, 2);
  EXPECT_THAT(e.err, HasSubstr("--cluster h100-sxm contradicts the plan's cluster a100-80g-sxm"));
  e = Cairn({"evaluate", "--plan", path, "--model", "llama2-7b"});
  EXPECT_EQ(e.status, 2);
  EXPECT_THAT(e.err, HasSubstr("gpt2-355m"));
}

TEST(CliTest, EvaluatesAUniformConfigurationFromFlags) {
  CliRun r = Cairn({"evaluate", "--model", "llama2-13b", "--cluster", "h100-sxm", "--nodes", "2",
                 "--global-batch", "128", "--seq-len", "4096", "--tp", "4", "--pp", "2",
                 "--micro-batches", "16", "--recompute"});
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr("tp=4 sp zero1 recompute"));
  EXPECT_THAT(r.out, HasSubstr("stage 1"));
}

// A plan over the memory budget: each stage over it is named once (the rendered plan's line), not
// again by the evaluation's upper-bound check.
TEST(CliTest, EvaluateNamesAStageOverTheBudgetOnce) {
  CliRun r = Cairn({"evaluate", "--model", "llama3-70b", "--nodes", "1", "--global-batch", "8",
                    "--seq-len", "4096", "--tp", "8", "--pp", "1"});
  EXPECT_NE(r.status, 0);
  size_t count = 0;
  for (size_t at = r.out.find("VIOLATION: stage 0"); at != std::string::npos;
       at = r.out.find("VIOLATION: stage 0", at + 1)) {
    ++count;
  }
  EXPECT_EQ(count, 1u) << r.out;
  EXPECT_THAT(r.out, HasSubstr("over the budget of 79.65 GiB"));
}

TEST(CliTest, EvaluateTakesMegatronsMicroBatchSize) {
  // 16 devices, tp=4 pp=2: dp=2; batch 128 at 4 samples per device = 16 micro-batches of 8.
  CliRun r = Cairn({"evaluate", "--model", "llama2-13b", "--cluster", "h100-sxm", "--nodes", "2",
                    "--global-batch", "128", "--seq-len", "4096", "--tp", "4", "--pp", "2",
                    "--micro-batch-size", "4", "--recompute"});
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr("16 micro-batches of 8 samples (micro-batch size 4 per device)"));
  // The same as --micro-batches 16; a contradiction or an impossible size is bad input.
  CliRun same = Cairn({"evaluate", "--model", "llama2-13b", "--cluster", "h100-sxm", "--nodes",
                       "2", "--global-batch", "128", "--seq-len", "4096", "--tp", "4", "--pp", "2",
                       "--micro-batches", "16", "--recompute"});
  EXPECT_EQ(same.out, r.out);
  r = Cairn({"evaluate", "--model", "llama2-13b", "--nodes", "2", "--global-batch", "128", "--tp",
             "4", "--pp", "2", "--micro-batch-size", "4", "--micro-batches", "8"});
  EXPECT_EQ(r.status, 2);
  EXPECT_THAT(r.err, HasSubstr("contradicts --micro-batch-size 4"));
  r = Cairn({"evaluate", "--model", "llama2-13b", "--nodes", "2", "--global-batch", "128", "--tp",
             "4", "--pp", "2", "--micro-batch-size", "3"});
  EXPECT_EQ(r.status, 2);
  EXPECT_THAT(r.err, HasSubstr("does not divide global batch 128 over 2 data-parallel ranks"));
}

TEST(CliTest, SearchProgressIsOneLineOnATerminalAndPlainLinesOtherwise) {
  std::ostringstream tty, log;
  for (int done : {1, 2, 3}) {
    cli::PrintProgress(tty, true, absl::StrCat("searching: ", done, "/3"), done == 3);
    cli::PrintProgress(log, false, absl::StrCat("searching: ", done, "/3"), done == 3);
  }
  EXPECT_EQ(tty.str(),
            "\rsearching: 1/3\033[K\rsearching: 2/3\033[K\rsearching: 3/3\033[K\n");
  EXPECT_EQ(log.str(), "searching: 1/3\nsearching: 2/3\nsearching: 3/3\n");
  // Not a terminal: a string stream, whatever stderr is.
  EXPECT_FALSE(cli::IsTerminal(log));
  // A real search reports in plain lines here (the stream is not a terminal).
  CliRun r = Cairn({"plan", "--model", "gpt2-124m", "--cluster", "h100-sxm", "--nodes", "1",
                    "--global-batch", "64", "--seq-len", "1024"});
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_THAT(r.err, HasSubstr("searching: "));
  EXPECT_THAT(r.err, Not(HasSubstr("\r")));
}

TEST(CliTest, MegatronFormat) {
  CliRun r = Cairn({"plan", "--model", "llama2-7b", "--cluster", "h100-sxm", "--nodes", "1",
                 "--global-batch", "64", "--seq-len", "2048", "--quiet", "--format", "megatron"});
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr("--tensor-model-parallel-size"));
  EXPECT_THAT(r.out, HasSubstr("--global-batch-size 64"));
}

// --format torchtitan|deepspeed|megatron-deepspeed (planner/cli/export.h; the per-format content is
// unit-tested in planner/cli/export_test.cc): the command-line path, substitutes and refusals.
TEST(CliTest, TorchTitanAndDeepSpeedFormats) {
  const std::vector<std::string> problem = {"plan", "--model", "llama3-8b", "--cluster",
                                            "h100-sxm", "--nodes", "1", "--global-batch", "64",
                                            "--seq-len", "2048", "--quiet", "--format"};
  auto with = [&](std::vector<std::string> extra) {
    std::vector<std::string> argv = problem;
    argv.insert(argv.end(), extra.begin(), extra.end());
    return Cairn(argv);
  };
  CliRun t = with({"torchtitan"});
  ASSERT_EQ(t.status, 0) << t.err;
  for (const char* line : {"[parallelism]\n", "flavor = \"8B\"\n", "global_batch_size = 64\n",
                           "seq_len = 2048\n", "[activation_checkpoint]\n", "mode = \""}) {
    EXPECT_THAT(t.out, HasSubstr(line));
  }
  CliRun d = with({"deepspeed"});
  ASSERT_EQ(d.status, 0) << d.err;
  EXPECT_THAT(d.out, HasSubstr("\"train_batch_size\": 64,"));
  EXPECT_THAT(d.out, HasSubstr("\"zero_optimization\": {"));
  CliRun md = with({"megatron-deepspeed"});
  ASSERT_EQ(md.status, 0) << md.err;
  EXPECT_THAT(md.out, HasSubstr("--deepspeed --deepspeed_config ds_config.json --zero-stage "));
  EXPECT_THAT(md.out, HasSubstr("--global-batch-size 64 "));
  // A pipeline needs Megatron-DeepSpeed: its flags go to stderr beside the config.
  CliRun pp = with({"deepspeed", "--pp", "2"});
  ASSERT_EQ(pp.status, 0) << pp.err;
  EXPECT_THAT(pp.err, HasSubstr("--pipeline-model-parallel-size 2 "));
  // Search restrictions the user gives are kept; what TorchTitan cannot run is refused with why.
  CliRun zero1 = with({"torchtitan", "--dp-modes", "zero1"});
  EXPECT_EQ(zero1.status, 1);
  EXPECT_THAT(zero1.err, HasSubstr("TorchTitan has no zero1"));
  CliRun gpt = Cairn({"plan", "--model", "gpt2-124m", "--nodes", "1", "--global-batch", "64",
                      "--seq-len", "1024", "--quiet", "--format", "torchtitan"});
  EXPECT_EQ(gpt.status, 1);
  EXPECT_THAT(gpt.err, HasSubstr("TorchTitan's llama3 model has RMSNorm"));
  CliRun bad = with({"toml"});
  EXPECT_EQ(bad.status, 2);
  EXPECT_THAT(bad.err, HasSubstr("torchtitan, deepspeed, megatron-deepspeed"));
}

// `evaluate --format F` exports the evaluated plan itself: no substitute, exit 2 with the reason
// when the framework cannot run it.
TEST(CliTest, EvaluateExportsThePlanItself) {
  const std::vector<std::string> uniform = {
      "evaluate", "--model", "llama3-8b", "--nodes", "1", "--global-batch", "64", "--seq-len",
      "2048", "--tp", "2", "--pp", "2", "--micro-batches", "8"};
  auto with = [&](std::vector<std::string> extra) {
    std::vector<std::string> argv = uniform;
    argv.insert(argv.end(), extra.begin(), extra.end());
    return Cairn(argv);
  };
  CliRun t = with({"--dp-mode", "ddp", "--format", "torchtitan"});
  ASSERT_EQ(t.status, 0) << t.err;
  EXPECT_THAT(t.out, HasSubstr("tensor_parallel_degree = 2\n"));
  EXPECT_THAT(t.out, HasSubstr("pipeline_parallel_degree = 2\n"));
  EXPECT_THAT(t.out, HasSubstr("data_parallel_replicate_degree = 2\n"));
  CliRun z1 = with({"--dp-mode", "zero1", "--format", "torchtitan"});
  EXPECT_EQ(z1.status, 2);
  EXPECT_THAT(z1.err, HasSubstr("TorchTitan has no zero1"));
  CliRun z3 = with({"--dp-mode", "zero3", "--format", "deepspeed"});
  EXPECT_EQ(z3.status, 2);
  EXPECT_THAT(z3.err, HasSubstr("ZeRO stage 0 or 1 only"));
  CliRun ds = with({"--dp-mode", "zero1", "--format", "deepspeed"});
  ASSERT_EQ(ds.status, 0) << ds.err;
  EXPECT_THAT(ds.out, HasSubstr("\"stage\": 1,"));
  EXPECT_THAT(ds.err, HasSubstr("--tensor-model-parallel-size 2 --pipeline-model-parallel-size 2"));
}

TEST(CliTest, MegatronFlagsCarryTheModelAndWhatThePlanAssumes) {
  // --pp 1 --max-tp 1: tp=1 pp=1 dp=8, so the data-parallel gradient reduction the cost model
  // overlaps with the backward must be asked of Megatron too.
  CliRun r = Cairn({"plan", "--model", "llama3-8b", "--cluster", "h100-sxm", "--nodes", "1",
                    "--global-batch", "64", "--seq-len", "2048", "--quiet", "--format",
                    "megatron", "--pp", "1", "--max-tp", "1"});
  ASSERT_EQ(r.status, 0) << r.err;
  for (const char* flag :
       {"--tensor-model-parallel-size 1 ", "--pipeline-model-parallel-size 1 ",
        "--num-layers 32 ", "--hidden-size 4096 ", "--ffn-hidden-size 14336 ",
        "--num-attention-heads 32 ", "--group-query-attention --num-query-groups 8 ",
        "--seq-length 2048 ", "--max-position-embeddings 8192 ", "--vocab-size 128256 ",
        "--normalization RMSNorm ", "--swiglu ", "--position-embedding-type rope ",
        "--untie-embeddings-and-output-weights ", "--disable-bias-linear ",
        "--overlap-grad-reduce ", "--use-distributed-optimizer ", "--bf16"}) {
    EXPECT_THAT(r.out, HasSubstr(flag));
  }
  // GPT-2: Megatron's defaults (LayerNorm, GELU, learned positions, tied embeddings, biases).
  r = Cairn({"plan", "--model", "gpt2-355m", "--cluster", "h100-sxm", "--nodes", "1",
             "--global-batch", "64", "--seq-len", "1024", "--quiet", "--format", "megatron"});
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr("--num-layers 24 --hidden-size 1024 --ffn-hidden-size 4096"));
  for (const char* flag : {"--swiglu", "RMSNorm", "rope", "--untie", "--disable-bias-linear",
                           "--group-query-attention"}) {
    EXPECT_THAT(r.out, Not(HasSubstr(flag)));
  }
  // fp32 plans are not bf16.
  r = Cairn({"plan", "--model", "gpt2-124m", "--cluster", "h100-sxm", "--nodes", "1",
             "--global-batch", "64", "--seq-len", "1024", "--quiet", "--format", "megatron",
             "--dtype", "fp32"});
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_THAT(r.out, Not(HasSubstr("--bf16")));
}

TEST(CliTest, SearchRestrictionsAlsoRestrictTheBaselinesAndTheMegatronSubstitute) {
  // Before: the best plans need ZeRO-2/3 or mixed strategies, so the export fell back to the
  // unrestricted megatron baseline and printed --pipeline-model-parallel-size 4.
  const std::vector<std::string> problem = {
      "plan", "--model", "llama2-13b", "--cluster", "h100-sxm", "--nodes", "1",
      "--global-batch", "64", "--seq-len", "4096", "--quiet", "--pp", "1", "--max-tp", "1"};
  CliRun text = Cairn(problem);
  ASSERT_EQ(text.status, 0) << text.err;
  EXPECT_THAT(text.out, Not(HasSubstr("pp=4")));
  EXPECT_THAT(text.out, Not(HasSubstr("pp=2")));
  EXPECT_THAT(text.out, Not(HasSubstr("tp=2")));
  std::vector<std::string> megatron = problem;
  megatron.insert(megatron.end(), {"--format", "megatron"});
  CliRun r = Cairn(megatron);
  EXPECT_THAT(r.out, Not(HasSubstr("--pipeline-model-parallel-size 4")));
  if (r.status == 0) {
    EXPECT_THAT(r.out, HasSubstr("--tensor-model-parallel-size 1 --pipeline-model-parallel-size 1"));
  } else {
    EXPECT_EQ(r.status, 1);
    // Says why: the search under Megatron-Core's traits finds nothing that fits, or the Megatron
    // family fails.
    EXPECT_THAT(r.err, ::testing::AnyOf(HasSubstr("no plan fits"), HasSubstr("megatron baseline: ")));
  }
  // Excluded families say so instead of appearing.
  CliRun ddp_only = Cairn({"plan", "--model", "gpt2-124m", "--cluster", "h100-sxm", "--nodes",
                           "1", "--global-batch", "64", "--seq-len", "1024", "--quiet",
                           "--dp-modes", "ddp,zero1", "--no-recompute"});
  ASSERT_EQ(ddp_only.status, 0) << ddp_only.err;
  EXPECT_THAT(ddp_only.out, HasSubstr("excludes zero3 (--dp-modes)"));
  EXPECT_THAT(ddp_only.out, HasSubstr("excludes recomputation (--no-recompute)"));
}

// --format megatron searches under the megatron-core runtime traits (its overlap, the plans it
// runs), so its flags assume what Megatron-Core does: the distributed optimizer's parameter
// all-gather overlapped with the forward. Under cairn's traits that gather is charged exposed, so
// the flag is not printed.
TEST(CliTest, MegatronFormatSearchesUnderMegatronCoreTraits) {
  const std::vector<std::string> problem = {
      "plan", "--model", "llama2-7b", "--cluster", "h100-sxm", "--nodes", "1", "--global-batch",
      "64", "--seq-len", "4096", "--quiet", "--format", "megatron"};
  CliRun core = Cairn(problem);
  ASSERT_EQ(core.status, 0) << core.err;
  EXPECT_THAT(core.out, HasSubstr("--use-distributed-optimizer"));
  EXPECT_THAT(core.out, HasSubstr("--overlap-grad-reduce"));
  EXPECT_THAT(core.out, HasSubstr("--overlap-param-gather"));
  std::vector<std::string> cairn_traits = problem;
  cairn_traits.insert(cairn_traits.end(), {"--runtime", "cairn"});
  CliRun ours = Cairn(cairn_traits);
  ASSERT_EQ(ours.status, 0) << ours.err;
  EXPECT_THAT(ours.out, Not(HasSubstr("--overlap-param-gather")));
}

// An interleaved plan reads per pipeline stage, each with its model chunks (chunk c on stage
// c mod p), and says its schedule; the Plan JSON carries Megatron's micro-batch size.
TEST(CliTest, InterleavedPlansReadPerStageWithTheirChunks) {
  CliRun r = Cairn({"plan", "--model", "llama-tiny", "--cluster", "cpu", "--nodes", "1",
                    "--gpus-per-node", "4", "--global-batch", "16", "--seq-len", "256", "--quiet",
                    "--schedules", "interleaved", "--pp", "2"});
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr("interleaved 1f1b (2 model chunks per stage)"));
  EXPECT_THAT(r.out, HasSubstr("stage 0: layers 0-1, 3-3"));
  EXPECT_THAT(r.out, HasSubstr("stage 1: layers 2-2, 4-5"));
  EXPECT_THAT(r.out, HasSubstr("model chunk 3:"));
  EXPECT_THAT(r.out, Not(HasSubstr("stage 2:")));
  CliRun j = Cairn({"plan", "--model", "gpt2-124m", "--cluster", "h100-sxm", "--nodes", "1",
                    "--global-batch", "64", "--seq-len", "1024", "--quiet", "--json"});
  ASSERT_EQ(j.status, 0) << j.err;
  EXPECT_THAT(j.out, HasSubstr("\"micro_batch_size\": "));
}

TEST(CliTest, MegatronExportReSplitsUnevenStages) {
  // The case from issue 13: 126 blocks over 8 stages. The uniform baseline splits 16,16,16,16,16,
  // 16,15,15 (+ embedding, head), which Megatron cannot express; re-split as equal middle stages
  // with --decoder-first/last-pipeline-num-layers it is exportable.
  CliRun r = Cairn({"plan", "--model", "llama3-405b", "--cluster", "h200-sxm", "--nodes", "128",
                    "--global-batch", "2048", "--seq-len", "8192", "--quiet", "--format",
                    "megatron"});
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr("--pipeline-model-parallel-size"));
  EXPECT_THAT(r.out, HasSubstr("--num-layers 126"));
}

// `evaluate --schedule interleaved --virtual-stages V --chunk-layout slots`: equal chunks of layer
// slots (the embedding and the head counted), rendered as Megatron's account-for flags. 40 blocks
// + 2 = 42 slots on 3 stages x 2 chunks of 7: the first and the last chunk hold 6 blocks.
TEST(CliTest, EvaluateCutsEqualSlotChunksAndMegatronRendersThem) {
  const std::vector<std::string> problem = {
      "evaluate", "--model", "llama2-13b", "--cluster", "h100-sxm", "--nodes", "3",
      "--global-batch", "48", "--seq-len", "4096", "--runtime", "megatron-core", "--tp", "8",
      "--pp", "3", "--micro-batch-size", "1", "--schedule", "interleaved"};
  std::vector<std::string> args = problem;
  args.insert(args.end(), {"--virtual-stages", "2", "--chunk-layout", "slots"});
  CliRun text = Cairn(args);
  ASSERT_EQ(text.status, 0) << text.err;
  EXPECT_THAT(text.out, HasSubstr("pp=3 v=2 m=48 (equal slots)"));
  EXPECT_THAT(text.out, Not(HasSubstr("VIOLATION")));
  args.insert(args.end(), {"--format", "megatron"});
  CliRun flags = Cairn(args);
  ASSERT_EQ(flags.status, 0) << flags.err;
  EXPECT_THAT(flags.out, HasSubstr("--pipeline-model-parallel-size 3 --sequence-parallel "
                                   "--use-distributed-optimizer "
                                   "--account-for-embedding-in-pipeline-split "
                                   "--account-for-loss-in-pipeline-split "
                                   "--num-layers-per-virtual-pipeline-stage 7 "));
  EXPECT_THAT(flags.out, HasSubstr("--num-layers 40 "));
  // 40 blocks do not cut into 6 equal block chunks; interleaving needs --virtual-stages.
  std::vector<std::string> blocks = problem;
  blocks.insert(blocks.end(), {"--virtual-stages", "2"});
  CliRun refused = Cairn(blocks);
  EXPECT_EQ(refused.status, 2);
  EXPECT_THAT(refused.err, HasSubstr("(equal chunks of blocks)"));
  CliRun no_v = Cairn(problem);
  EXPECT_EQ(no_v.status, 2);
  EXPECT_THAT(no_v.err, HasSubstr("--virtual-stages V >= 2 goes with --schedule interleaved"));
}

TEST(CliTest, MegatronStageSplitKeepsMiddleStagesEqual) {
  Flags a;
  cli::AddProblemFlags(a);
  a.Set("model", "llama2-13b");
  a.Set("nodes", "2");
  a.Set("global-batch", "64");
  a.Set("seq-len", "2048");
  absl::StatusOr<cli::Loaded> l = cli::LoadProblem(a);
  ASSERT_TRUE(l.ok()) << l.status();
  planner::Strategy s;  // tp=1
  planner::PlanSpec plan;
  // 40 blocks over 16 stages: 3 on the first eight, 2 on the rest: uneven middle stages.
  ASSERT_TRUE(planner::MakeUniformPlan(l->problem, 64, 16, 16, planner::Schedule::k1F1B, s, s,
                                       &plan));
  EXPECT_FALSE(planner::MegatronFlags(l->problem, plan).ok());
  planner::Evaluation e;
  absl::StatusOr<planner::PlanSpec> q = planner::MegatronStageSplit(l->problem, plan, &e);
  ASSERT_TRUE(q.ok()) << q.status();
  EXPECT_TRUE(e.feasible);
  int blocks = 0;
  for (int i = 0; i < 16; ++i) blocks += q->stage_layers[i];
  EXPECT_EQ(blocks, 40 + 2);
  for (int i = 2; i < 15; ++i) EXPECT_EQ(q->stage_layers[i], q->stage_layers[1]);
  absl::StatusOr<std::string> flags = planner::MegatronFlags(l->problem, *q);
  ASSERT_TRUE(flags.ok()) << flags.status();
  EXPECT_THAT(*flags, HasSubstr("--decoder-first-pipeline-num-layers"));
  // GPipe plans are not re-split (Megatron cannot run them however they are split).
  plan.schedule = planner::Schedule::kGPipe;
  EXPECT_FALSE(planner::MegatronStageSplit(l->problem, plan, &e).ok());
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

// Issue 13: --svg/--html on plan and evaluate (planner/picture; the browser test loads them).
TEST(CliTest, PlanAndEvaluateDrawPictures) {
  const std::string svg = TempPath("picture.svg"), html = TempPath("picture.html");
  CliRun r = Cairn({"plan", "--model", "gpt2-355m", "--nodes", "1", "--global-batch", "32",
                    "--seq-len", "1024", "--quiet", "--svg", svg, "--html", html});
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_THAT(r.err, HasSubstr("picture written to " + svg));
  EXPECT_THAT(r.err, HasSubstr("picture written to " + html));
  EXPECT_EQ(ReadAll(svg).rfind("<svg xmlns=\"http://www.w3.org/2000/svg\"", 0), 0u);
  EXPECT_EQ(ReadAll(html).rfind("<!DOCTYPE html>", 0), 0u);
  EXPECT_THAT(ReadAll(html), HasSubstr("gpt2-355m"));
  // --json output stays a plan alone on stdout.
  r = Cairn({"plan", "--model", "gpt2-355m", "--nodes", "1", "--global-batch", "32", "--seq-len",
             "1024", "--quiet", "--json", "--svg", svg});
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_TRUE(planner::PlanFromJson(r.out).ok());
  // evaluate: 2 stages x 8 micro-batches -> 16 forward blocks.
  r = Cairn({"evaluate", "--model", "gpt2-355m", "--nodes", "1", "--global-batch", "32",
             "--seq-len", "1024", "--tp", "2", "--pp", "2", "--micro-batches", "8", "--svg", svg});
  ASSERT_EQ(r.status, 0) << r.err;
  const std::string text = ReadAll(svg);
  EXPECT_THAT(text, HasSubstr("data-stages=\"2\""));
  int forwards = 0;
  for (size_t at = text.find("class=\"timeline-block fwd"); at != std::string::npos;
       at = text.find("class=\"timeline-block fwd", at + 1)) {
    ++forwards;
  }
  EXPECT_EQ(forwards, 16);
  // A file that cannot be written: exit 2, naming it, as other bad input.
  const std::string bad = TempPath("no-such-folder/picture.svg");
  r = Cairn({"evaluate", "--model", "gpt2-355m", "--nodes", "1", "--global-batch", "32",
             "--seq-len", "1024", "--svg", bad});
  EXPECT_EQ(r.status, 2);
  EXPECT_THAT(r.err, HasSubstr("cannot write " + bad));
  r = Cairn({"plan", "--model", "gpt2-355m", "--global-batch", "32", "--quiet", "--html",
             TempPath("")});
  EXPECT_EQ(r.status, 2);
  EXPECT_THAT(r.err, HasSubstr("is a directory"));
  // Refused before the search, which would otherwise be lost: no search progress was printed.
  const std::string bad_json = TempPath("no-such-folder/plan.json");
  r = Cairn({"plan", "--model", "gpt2-355m", "--global-batch", "32", "--output", bad_json});
  EXPECT_EQ(r.status, 2);
  EXPECT_THAT(r.err, HasSubstr("cannot write " + bad_json + ": No such file or directory"));
  EXPECT_THAT(r.err, Not(HasSubstr("searching")));
  EXPECT_EQ(r.out, "");
  r = Cairn({"plan", "--model", "gpt2-355m", "--global-batch", "32", "--svg"});
  EXPECT_EQ(r.status, 2);  // a flag without its value
  EXPECT_THAT(Cairn({"plan", "--help"}).out, HasSubstr("--svg"));
  EXPECT_THAT(Cairn({"evaluate", "--help"}).out, HasSubstr("--html"));
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
  EXPECT_EQ(r.status, 2);  // bad input, not "nothing fits"
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
