// Tests of the TorchTitan and DeepSpeed forms of a plan (planner/cli/export.h) on hand-built plans
// of an 8-block Llama-style model (planner/cost/test_problems.h: hidden 1024, ffn 2816, 16 heads,
// 8 kv heads, vocabulary 32000) on one node of 8 devices, global batch 64, sequence 2048.
//
// Where to add a case: build the PlanSpec with Plan(), export it, and check the lines the framework
// reads; a plan the framework cannot run must fail with Unimplemented naming the reason.
#include "planner/cli/export.h"

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <set>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "common/testing/status_matchers.h"
#include "google/protobuf/struct.pb.h"
#include "google/protobuf/util/json_util.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "planner/cost/runtime_traits.h"
#include "planner/plan/plan_convert.h"
#include "planner/cost/test_problems.h"

namespace cairn::cli {
namespace {

using ::cairn::testing::StatusIs;
using planner::DpMode;
using planner::ParallelMode;
using planner::PlanSpec;
using planner::Schedule;
using planner::SearchProblem;
using planner::Strategy;
using ::testing::HasSubstr;
using ::testing::Not;

constexpr int kLayers = 8;

SearchProblem Problem() {
  return planner::testing::SmallProblem(kLayers, /*devices_per_node=*/8, /*num_nodes=*/1,
                                        /*global_batch=*/64, /*seq_len=*/2048, /*budget=*/0);
}

// Every layer runs `s`; the blocks are split into chunks of `blocks_per_chunk` (embedding on the
// first chunk, head on the last).
PlanSpec Plan(Strategy s, std::vector<int> blocks_per_chunk, int micro_batches,
              Schedule schedule = Schedule::k1F1B, int virtual_stages = 1) {
  PlanSpec plan;
  plan.global_batch = 64;
  plan.num_micro_batches = micro_batches;
  plan.schedule = schedule;
  plan.virtual_stages = virtual_stages;
  plan.stage_layers = blocks_per_chunk;
  plan.stage_layers.front() += 1;
  plan.stage_layers.back() += 1;
  plan.layers.assign(kLayers + 2, s);
  for (int i : {0, kLayers + 1}) plan.layers[i].recompute = false;
  return plan;
}

// The value of `key = value` in TOML section `section` ("" when absent).
std::string TomlValue(const std::string& toml, const std::string& section, const std::string& key) {
  std::string current;
  for (absl::string_view line : absl::StrSplit(toml, '\n')) {
    if (absl::ConsumePrefix(&line, "[") && absl::ConsumeSuffix(&line, "]")) {
      current = std::string(line);
      continue;
    }
    if (current == section && absl::ConsumePrefix(&line, key) &&
        absl::ConsumePrefix(&line, " = ")) {
      return std::string(line);
    }
  }
  return "";
}

// Line-by-line TOML structure: comments, blank lines, [section] headers, `key = value` pairs, and
// the lines of a multi-line array; every key unique within its section.
void ExpectTomlStructure(const std::string& toml) {
  std::set<std::string> keys;
  std::string section;
  bool in_array = false;
  for (absl::string_view line : absl::StrSplit(toml, '\n')) {
    if (in_array) {
      in_array = line != "]";
      if (in_array) {
        EXPECT_TRUE(absl::StartsWith(line, "  [")) << line;
      }
      continue;
    }
    if (line.empty() || absl::StartsWith(line, "#")) continue;
    if (absl::StartsWith(line, "[")) {
      ASSERT_TRUE(absl::EndsWith(line, "]")) << line;
      section = std::string(line);
      EXPECT_TRUE(keys.insert(section).second) << "section twice: " << line;
      continue;
    }
    const size_t eq = line.find(" = ");
    ASSERT_NE(eq, absl::string_view::npos) << "not key = value: " << line;
    EXPECT_TRUE(keys.insert(absl::StrCat(section, ".", line.substr(0, eq))).second) << line;
    in_array = absl::EndsWith(line, "= [");
  }
  EXPECT_FALSE(in_array) << "unterminated array";
}

// Parses with Python's tomllib (3.11+) where the machine has it; skipped otherwise.
void ExpectPythonParsesToml(const std::string& toml) {
  if (std::system("python3 -c 'import tomllib' >/dev/null 2>&1") != 0) return;
  const char* dir = std::getenv("TEST_TMPDIR");
  const std::string path = std::string(dir ? dir : "/tmp") + "/export_test.toml";
  std::ofstream(path) << toml;
  const std::string cmd =
      "python3 -c 'import sys, tomllib; tomllib.load(open(sys.argv[1], \"rb\"))' " + path;
  EXPECT_EQ(std::system(cmd.c_str()), 0) << toml;
}

google::protobuf::Struct ParseJson(const std::string& json) {
  google::protobuf::Struct s;
  const auto status = google::protobuf::util::JsonStringToMessage(json, &s);
  EXPECT_TRUE(status.ok()) << status.ToString() << "\n" << json;
  return s;
}

double Number(const google::protobuf::Struct& s, const std::string& key) {
  auto it = s.fields().find(key);
  return it == s.fields().end() ? -1 : it->second.number_value();
}

// `toml` is well formed (line structure; Python's tomllib where available) and says each
// {"section.key", value} of `want`.
void ExpectToml(const std::string& toml,
                const std::vector<std::pair<std::string, std::string>>& want) {
  ExpectTomlStructure(toml);
  ExpectPythonParsesToml(toml);
  for (const auto& [where, value] : want) {
    const size_t dot = where.find('.');
    EXPECT_EQ(TomlValue(toml, where.substr(0, dot), where.substr(dot + 1)), value) << where;
  }
}

TEST(TorchTitanTest, UniformDataParallel) {
  // DDP over 8 devices, 4 micro-batches of 16: 2 samples per device per micro-batch, accumulated 4
  // times (64 = 2 x 8 x 4).
  const std::string toml =
      *TorchTitanToml(Problem(), Plan(Strategy{.tp = 1}, {kLayers}, /*micro_batches=*/4));
  ExpectToml(toml, {{"training.local_batch_size", "2"},
                    {"training.global_batch_size", "64"},
                    {"training.seq_len", "2048"},
                    {"training.mixed_precision_param", "\"bfloat16\""},
                    {"parallelism.data_parallel_replicate_degree", "8"},
                    {"parallelism.data_parallel_shard_degree", "1"},
                    {"parallelism.tensor_parallel_degree", "1"},
                    {"parallelism.pipeline_parallel_degree", "1"},
                    {"parallelism.context_parallel_degree", "1"},
                    {"parallelism.enable_async_tensor_parallel", "false"},
                    {"activation_checkpoint.mode", "\"none\""},
                    {"model.name", "\"llama3\""},
                    {"model.flavor", "\"small-llama\""}});
  // No TorchTitan flavor has small-llama's dimensions: a comment says what to register.
  EXPECT_THAT(toml, HasSubstr("dim = 1024, n_layers = 8, n_heads = 16"));
  EXPECT_THAT(toml, Not(HasSubstr("module_fqns_per_model_part")));
  EXPECT_THAT(toml, Not(HasSubstr("DDP beside TP/PP")));  // plain DDP runs on every version
}

TEST(TorchTitanTest, TensorAndPipelineParallel) {
  // TP 2 (with SP) x PP 2 x DDP 2, 8 micro-batches of 8: 4 samples per device per micro-batch; the
  // pipeline takes all 8 micro-batches of a step, so the local batch is 32. Stages of 3 and 5
  // blocks: uneven, which module_fqns_per_model_part expresses.
  Strategy s{.tp = 2, .mode = ParallelMode::kTensorSequence, .recompute = true};
  const std::string toml = *TorchTitanToml(Problem(), Plan(s, {3, 5}, /*micro_batches=*/8));
  ExpectToml(toml, {{"training.local_batch_size", "32"},
                    {"parallelism.data_parallel_replicate_degree", "2"},
                    {"parallelism.tensor_parallel_degree", "2"},
                    {"parallelism.pipeline_parallel_degree", "2"},
                    {"parallelism.pipeline_parallel_schedule", "\"1F1B\""},
                    {"parallelism.pipeline_parallel_microbatch_size", "4"},
                    {"activation_checkpoint.mode", "\"full\""}});
  EXPECT_THAT(toml, HasSubstr("  [\"tok_embeddings\", \"layers.0\", \"layers.1\", \"layers.2\"],\n"
                              "  [\"layers.3\", \"layers.4\", \"layers.5\", \"layers.6\", "
                              "\"layers.7\", \"norm\", \"output\"],\n]"));
  EXPECT_THAT(toml, Not(HasSubstr("always shards the sequence")));
  EXPECT_THAT(toml, HasSubstr("DDP beside TP/PP needs"));
  // Plain TP runs as TP + SP in TorchTitan: said in a comment.
  s.mode = ParallelMode::kTensor;
  EXPECT_THAT(*TorchTitanToml(Problem(), Plan(s, {3, 5}, 8)),
              HasSubstr("always shards the sequence"));
}

TEST(TorchTitanTest, ZeroThreeIsFsdp) {
  const std::string toml =
      *TorchTitanToml(Problem(), Plan(Strategy{.dp = DpMode::kZero3}, {kLayers}, 1));
  ExpectToml(toml, {{"parallelism.data_parallel_replicate_degree", "1"},
                    {"parallelism.data_parallel_shard_degree", "8"},
                    {"parallelism.fsdp_reshard_after_forward", "\"always\""},
                    {"training.local_batch_size", "8"}});
}

TEST(TorchTitanTest, Interleaved) {
  // PP 4 x v 2 = 8 chunks of one block each; chunk c runs on stage c mod 4, as TorchTitan's looped
  // schedules place them.
  const std::string toml = *TorchTitanToml(
      Problem(), Plan(Strategy{.tp = 1}, {1, 1, 1, 1, 1, 1, 1, 1}, /*micro_batches=*/8,
                      Schedule::kInterleaved1F1B, /*virtual_stages=*/2));
  ExpectToml(toml, {{"parallelism.pipeline_parallel_degree", "4"},
                    {"parallelism.pipeline_parallel_schedule", "\"Interleaved1F1B\""},
                    {"parallelism.pipeline_parallel_microbatch_size", "4"},
                    {"parallelism.data_parallel_replicate_degree", "2"}});
  EXPECT_THAT(toml, HasSubstr("  [\"tok_embeddings\", \"layers.0\"],\n  [\"layers.1\"],\n"));
  EXPECT_THAT(toml, HasSubstr("  [\"layers.7\", \"norm\", \"output\"],\n]"));
}

TEST(TorchTitanTest, RefusesWhatItCannotExpressSayingWhy) {
  const SearchProblem pb = Problem();
  PlanSpec mixed = Plan(Strategy{.tp = 1}, {kLayers}, 4);
  mixed.layers[3].tp = 2;
  EXPECT_THAT(TorchTitanToml(pb, mixed),
              StatusIs(absl::StatusCode::kUnimplemented,
                       HasSubstr("one parallel strategy to every block")));
  PlanSpec partial = Plan(Strategy{.tp = 1}, {kLayers}, 4);
  partial.layers[2].recompute = true;
  EXPECT_THAT(TorchTitanToml(pb, partial),
              StatusIs(absl::StatusCode::kUnimplemented, HasSubstr("some blocks only")));
  EXPECT_THAT(TorchTitanToml(pb, Plan(Strategy{.dp = DpMode::kZero1}, {kLayers}, 4)),
              StatusIs(absl::StatusCode::kUnimplemented, HasSubstr("TorchTitan has no zero1")));
  EXPECT_THAT(TorchTitanToml(pb, Plan(Strategy{.dp = DpMode::kZero2}, {kLayers}, 4)),
              StatusIs(absl::StatusCode::kUnimplemented, HasSubstr("--dp-modes ddp,zero3")));
  EXPECT_THAT(
      TorchTitanToml(pb, Plan(Strategy{.tp = 4, .mode = ParallelMode::kUlysses}, {kLayers}, 4)),
      StatusIs(absl::StatusCode::kUnimplemented, HasSubstr("no Ulysses")));
  EXPECT_THAT(TorchTitanToml(pb, Plan(Strategy{.tp = 2, .tp_consecutive = false}, {kLayers}, 4)),
              StatusIs(absl::StatusCode::kUnimplemented, HasSubstr("this plan strides it")));
  PlanSpec head = Plan(Strategy{.tp = 2}, {kLayers}, 4);
  head.layers[kLayers + 1].tp = 1;
  EXPECT_THAT(TorchTitanToml(pb, head),
              StatusIs(absl::StatusCode::kUnimplemented, HasSubstr("this plan's head runs")));
  // 64 samples in 16 micro-batches of 4 do not split over 8 data-parallel ranks.
  EXPECT_THAT(TorchTitanToml(pb, Plan(Strategy{.tp = 1}, {kLayers}, 16)),
              StatusIs(absl::StatusCode::kUnimplemented, HasSubstr("do not split over 8")));
  SearchProblem gpt = pb;
  gpt.model.rms_norm = false;
  gpt.model.swiglu = false;
  gpt.model.rope = false;
  gpt.model.bias = true;
  gpt.model.tied_embeddings = true;
  EXPECT_THAT(TorchTitanToml(gpt, Plan(Strategy{.tp = 1}, {kLayers}, 4)),
              StatusIs(absl::StatusCode::kUnimplemented,
                       HasSubstr("has LayerNorm, GELU, learned positions, biases and tied")));
  SearchProblem bf16_grads = pb;
  bf16_grads.precision.grad_bytes = 2;
  EXPECT_THAT(TorchTitanToml(bf16_grads, Plan(Strategy{.tp = 1}, {kLayers}, 4)),
              StatusIs(absl::StatusCode::kUnimplemented, HasSubstr("float32 only")));
}

TEST(TorchTitanTest, CatalogLlama3KeepsItsFlavor) {
  SearchProblem pb = Problem();
  pb.model.name = "llama3-8b";
  const std::string toml = *TorchTitanToml(pb, Plan(Strategy{.tp = 1}, {kLayers}, 4));
  ExpectToml(toml, {{"model.flavor", "\"8B\""}});
  EXPECT_THAT(toml, Not(HasSubstr("register one")));
}

TEST(DeepSpeedTest, UniformDataParallelIsPlainDeepSpeed) {
  absl::StatusOr<DeepSpeedExport> ds =
      ExportDeepSpeed(Problem(), Plan(Strategy{.tp = 1}, {kLayers}, /*micro_batches=*/4));
  ASSERT_TRUE(ds.ok()) << ds.status();
  const google::protobuf::Struct c = ParseJson(ds->config_json);
  // DeepSpeed's rule: train_batch_size = micro-batch per GPU x accumulation x data-parallel ranks.
  EXPECT_EQ(Number(c, "train_batch_size"), 64);
  EXPECT_EQ(Number(c, "train_micro_batch_size_per_gpu"), 2);
  EXPECT_EQ(Number(c, "gradient_accumulation_steps"), 4);
  EXPECT_EQ(c.fields().at("zero_optimization").struct_value().fields().at("stage").number_value(),
            0);
  EXPECT_TRUE(c.fields().at("bf16").struct_value().fields().at("enabled").bool_value());
  EXPECT_EQ(c.fields().at("communication_data_type").string_value(), "fp32");
  EXPECT_EQ(c.fields().count("activation_checkpointing"), 0u);
  EXPECT_EQ(c.fields().count("gradient_clipping"), 0u);  // not part of a plan
  EXPECT_FALSE(ds->needs_megatron_deepspeed);
  absl::StatusOr<ExportedPlan> e =
      ExportPlan("deepspeed", Problem(), Plan(Strategy{.tp = 1}, {kLayers}, 4));
  ASSERT_TRUE(e.ok());
  EXPECT_EQ(e->text, ds->config_json);
  EXPECT_EQ(e->note, "");
}

TEST(DeepSpeedTest, TensorAndPipelineGoThroughMegatronDeepSpeed) {
  Strategy s{.tp = 2, .mode = ParallelMode::kTensorSequence, .dp = DpMode::kZero1,
             .recompute = true};
  const PlanSpec plan = Plan(s, {4, 4}, /*micro_batches=*/8);
  absl::StatusOr<DeepSpeedExport> ds = ExportDeepSpeed(Problem(), plan);
  ASSERT_TRUE(ds.ok()) << ds.status();
  const google::protobuf::Struct c = ParseJson(ds->config_json);
  EXPECT_EQ(Number(c, "train_micro_batch_size_per_gpu"), 4);  // 64 / 8 / dp 2
  EXPECT_EQ(Number(c, "gradient_accumulation_steps"), 8);     // = the pipeline's micro-batches
  EXPECT_EQ(c.fields().at("zero_optimization").struct_value().fields().at("stage").number_value(),
            1);
  EXPECT_EQ(c.fields().count("activation_checkpointing"), 1u);
  EXPECT_TRUE(ds->needs_megatron_deepspeed);
  for (const char* flag :
       {"--deepspeed --deepspeed_config ds_config.json --zero-stage 1 ",
        "--tensor-model-parallel-size 2 --pipeline-model-parallel-size 2 --sequence-parallel ",
        "--recompute-granularity full --recompute-method uniform "
        "--deepspeed-activation-checkpointing ",
        "--micro-batch-size 4 --global-batch-size 64 ", "--num-layers 8 --hidden-size 1024 ",
        "--ffn-hidden-size 2816 --num-attention-heads 16 --num-key-value-heads 8 ",
        "--seq-length 2048 ", "--normalization rmsnorm --swiglu ",
        "--use-rotary-position-embeddings --no-position-embedding ",
        "--untie-embeddings-and-output-weights --disable-bias-linear", " --bf16"}) {
    EXPECT_THAT(ds->launcher_flags, HasSubstr(flag));
  }
  EXPECT_THAT(ds->launcher_flags, Not(HasSubstr("--no-pipeline-parallel")));
  absl::StatusOr<ExportedPlan> e = ExportPlan("deepspeed", Problem(), plan);
  ASSERT_TRUE(e.ok());
  EXPECT_THAT(e->note, HasSubstr(ds->launcher_flags));
  e = ExportPlan("megatron-deepspeed", Problem(), plan);
  ASSERT_TRUE(e.ok());
  EXPECT_EQ(e->text, ds->launcher_flags);
}

TEST(DeepSpeedTest, ZeroThreeAndUlysses) {
  absl::StatusOr<DeepSpeedExport> ds =
      ExportDeepSpeed(Problem(), Plan(Strategy{.dp = DpMode::kZero3}, {kLayers}, 1));
  ASSERT_TRUE(ds.ok()) << ds.status();
  EXPECT_EQ(ParseJson(ds->config_json)
                .fields().at("zero_optimization").struct_value().fields().at("stage")
                .number_value(),
            3);
  EXPECT_THAT(ds->launcher_flags, HasSubstr("--zero-stage 3 "));
  EXPECT_THAT(ds->launcher_flags, HasSubstr("--no-pipeline-parallel"));
  // Ulysses 4 is DeepSpeed's sequence parallelism, with tensor parallelism 1.
  ds = ExportDeepSpeed(Problem(),
                       Plan(Strategy{.tp = 4, .mode = ParallelMode::kUlysses, .dp = DpMode::kZero2},
                            {kLayers}, 2));
  ASSERT_TRUE(ds.ok()) << ds.status();
  EXPECT_THAT(ds->launcher_flags, HasSubstr("--tensor-model-parallel-size 1 "));
  EXPECT_THAT(ds->launcher_flags, HasSubstr("--ds-sequence-parallel-size 4"));
  EXPECT_THAT(ds->launcher_flags, Not(HasSubstr("--sequence-parallel ")));
  EXPECT_EQ(Number(ParseJson(ds->config_json), "train_micro_batch_size_per_gpu"), 16);  // 64/2/2
}

TEST(DeepSpeedTest, RefusesWhatItCannotExpressSayingWhy) {
  const SearchProblem pb = Problem();
  EXPECT_THAT(ExportDeepSpeed(pb, Plan(Strategy{.tp = 1}, {1, 1, 1, 1, 1, 1, 1, 1}, 8,
                                       Schedule::kInterleaved1F1B, 2)),
              StatusIs(absl::StatusCode::kUnimplemented, HasSubstr("this plan runs interleaved")));
  EXPECT_THAT(ExportDeepSpeed(pb, Plan(Strategy{.tp = 1}, {4, 4}, 8, Schedule::kGPipe)),
              StatusIs(absl::StatusCode::kUnimplemented, HasSubstr("this plan runs gpipe")));
  EXPECT_THAT(ExportDeepSpeed(pb, Plan(Strategy{.dp = DpMode::kZero3}, {4, 4}, 8)),
              StatusIs(absl::StatusCode::kUnimplemented, HasSubstr("ZeRO stage 0 or 1 only")));
  EXPECT_THAT(ExportDeepSpeed(pb, Plan(Strategy{.tp = 1}, {3, 5}, 8)),
              StatusIs(absl::StatusCode::kUnimplemented,
                       HasSubstr("stage 0 holds 3 of 8 blocks on 2 stages")));
  PlanSpec mixed = Plan(Strategy{.tp = 1}, {kLayers}, 4);
  mixed.layers[5].dp = DpMode::kZero3;
  EXPECT_THAT(ExportDeepSpeed(pb, mixed),
              StatusIs(absl::StatusCode::kUnimplemented, HasSubstr("mixes")));
}

// A model of `blocks` blocks: 6 blocks make 8 layer slots with the embedding and the head, which
// cut into 4 equal chunks of 2 where the 6 blocks do not (the Llama 3 405B case in small: 128
// slots, 126 blocks); 10 blocks make 12 slots, 3 stages x 2 chunks of 2.
SearchProblem Blocks(int blocks) {
  return planner::testing::SmallProblem(blocks, /*devices_per_node=*/12, /*num_nodes=*/1,
                                        /*global_batch=*/48, /*seq_len=*/2048, /*budget=*/0);
}

PlanSpec BlockPlan(int blocks, std::vector<int> stage_layers, int virtual_stages) {
  PlanSpec plan;
  plan.global_batch = 48;
  plan.num_micro_batches = 12;
  plan.schedule = virtual_stages > 1 ? Schedule::kInterleaved1F1B : Schedule::k1F1B;
  plan.virtual_stages = virtual_stages;
  plan.stage_layers = std::move(stage_layers);
  plan.layers.assign(blocks + 2, Strategy{.tp = 2, .mode = ParallelMode::kTensorSequence,
                                          .dp = DpMode::kZero1});
  return plan;
}

TEST(MegatronTest, EqualSlotChunksAreTheAccountForFlags) {
  // Interleaved, 3 stages x 2 chunks of 2 slots: embedding + block 1 | 2-3 | ... | block 10 +
  // head. Megatron counts 10 + 2 = 12 layers, 4 per stage, 2 per virtual stage.
  absl::StatusOr<ExportedPlan> e =
      ExportPlan("megatron", Blocks(10), BlockPlan(10, {2, 2, 2, 2, 2, 2}, 2));
  ASSERT_TRUE(e.ok()) << e.status();
  EXPECT_THAT(e->text, HasSubstr("--pipeline-model-parallel-size 3 "));
  EXPECT_THAT(e->text, HasSubstr(" --account-for-embedding-in-pipeline-split"
                                 " --account-for-loss-in-pipeline-split"
                                 " --num-layers-per-virtual-pipeline-stage 2 "));
  EXPECT_THAT(e->text, HasSubstr("--num-layers 10 "));
  EXPECT_THAT(e->text, Not(HasSubstr("--decoder-first-pipeline-num-layers")));
  // 1F1B on 4 stages of 2 slots: the same flags, no virtual stages.
  e = ExportPlan("megatron", Blocks(6), BlockPlan(6, {2, 2, 2, 2}, 1));
  ASSERT_TRUE(e.ok()) << e.status();
  EXPECT_THAT(e->text, HasSubstr("--pipeline-model-parallel-size 4 --sequence-parallel "
                                 "--use-distributed-optimizer --account-for-embedding-in-pipeline-"
                                 "split --account-for-loss-in-pipeline-split --micro-batch-size "));
  EXPECT_THAT(e->text, Not(HasSubstr("--num-layers-per-virtual-pipeline-stage")));
  // Equal blocks (12 blocks on 3 x 2 chunks of 2): no account flags, 2 layers per virtual stage.
  e = ExportPlan("megatron", Blocks(12), BlockPlan(12, {3, 2, 2, 2, 2, 3}, 2));
  ASSERT_TRUE(e.ok()) << e.status();
  EXPECT_THAT(e->text, HasSubstr(" --num-layers-per-virtual-pipeline-stage 2 "));
  EXPECT_THAT(e->text, Not(HasSubstr("--account-for")));
  // Two stages do not interleave in Megatron (more than 2 unless --overlap-p2p-comm).
  EXPECT_THAT(ExportPlan("megatron", Blocks(6), BlockPlan(6, {2, 2, 2, 2}, 2)),
              StatusIs(absl::StatusCode::kUnimplemented,
                       HasSubstr("needs more than 2 pipeline stages")));
  // Uneven 1F1B ends: 2, 1, 1, 2 blocks.
  e = ExportPlan("megatron", Blocks(6), BlockPlan(6, {3, 1, 1, 3}, 1));
  ASSERT_TRUE(e.ok()) << e.status();
  EXPECT_THAT(e->text, HasSubstr(" --decoder-first-pipeline-num-layers 2"
                                 " --decoder-last-pipeline-num-layers 2 "));
  EXPECT_THAT(e->text, Not(HasSubstr("--account-for")));
  // Megatron-DeepSpeed's pipeline (DeepSpeed's engine, partition type:transformer) has neither.
  EXPECT_THAT(ExportPlan("megatron-deepspeed", Blocks(6), BlockPlan(6, {2, 2, 2, 2}, 1)),
              StatusIs(absl::StatusCode::kUnimplemented,
                       HasSubstr("stage 0 holds 1 of 6 blocks on 4 stages")));
  EXPECT_THAT(ExportPlan("megatron-deepspeed", Blocks(6), BlockPlan(6, {2, 2, 2, 2}, 2)),
              StatusIs(absl::StatusCode::kUnimplemented, HasSubstr("this plan runs interleaved")));
}

// Megatron-Core never replicates kv heads over TP ranks: the export refuses TP above the kv head
// count with the megatron-core traits' own reason (one rule).
TEST(MegatronTest, RefusesTensorParallelismBeyondTheKvHeads) {
  SearchProblem pb = Blocks(6);
  pb.model.num_kv_heads = 1;
  const PlanSpec plan = BlockPlan(6, {2, 2, 2, 2}, 1);  // TP 2
  const std::string why =
      planner::CheckRuntimeSupports(planner::MegatronCoreRuntimeTraits(), plan, pb.model);
  EXPECT_THAT(why, HasSubstr("TP 2 exceeds the model's 1 kv heads"));
  EXPECT_THAT(ExportPlan("megatron", pb, plan),
              StatusIs(absl::StatusCode::kUnimplemented, why));
  pb.model.num_kv_heads = 2;
  EXPECT_TRUE(ExportPlan("megatron", pb, plan).ok());
}

// One validator: every split of the 6-block model into 2 or 4 chunks (1F1B and interleaved) is
// rendered by the Megatron export exactly when the megatron-core runtime traits accept it, and
// refused with the same reason otherwise.
TEST(MegatronTest, ExportsExactlyWhatTheMegatronCoreTraitsAccept) {
  const planner::RuntimeTraits mc = planner::MegatronCoreRuntimeTraits();
  int accepted = 0, refused = 0;
  for (int chunks : {2, 4}) {
    for (int v : {1, 2}) {
      if (chunks / v < 2) continue;
      // Every composition of the 8 layers into `chunks` positive parts.
      std::vector<int> parts(chunks, 1);
      std::function<void(int, int)> fill = [&](int i, int left) {
        if (i == chunks - 1) {
          parts[i] = left;
          const PlanSpec plan = BlockPlan(6, parts, v);
          const SearchProblem pb = Blocks(6);
          const std::string why = planner::CheckRuntimeSupports(mc, plan, pb.model);
          absl::StatusOr<ExportedPlan> e = ExportPlan("megatron", pb, plan);
          EXPECT_EQ(e.ok(), why.empty()) << absl::StrJoin(parts, ",") << " v=" << v << ": " << why;
          if (!e.ok()) {
            EXPECT_THAT(why, HasSubstr(std::string(e.status().message())));
          }
          (why.empty() ? accepted : refused) += 1;
          return;
        }
        for (int k = 1; k <= left - (chunks - 1 - i); ++k) {
          parts[i] = k;
          fill(i + 1, left - k);
        }
      };
      fill(0, 8);
    }
  }
  EXPECT_GT(accepted, 3);
  EXPECT_GT(refused, 3);
}

// `cairn --planner ADDR plan --format megatron` prints the flags the daemon rendered
// (PlanResponse.megatron_flags / megatron_note), not its own rendering of the answer.
TEST(MegatronTest, DaemonAnswersPrintTheirOwnMegatronFlags) {
  cairn::v1::PlanResponse response;
  // An answer whose result has no plan: rendered here it would say why (exit 1).
  response.mutable_result()->set_infeasible_reason("nothing fits here");
  std::ostringstream out, err;
  EXPECT_EQ(PrintPlanResponseExport(Problem(), response, "megatron", true, out, err), 1);
  EXPECT_THAT(err.str(), HasSubstr("nothing fits here"));
  response.set_megatron_flags("--tensor-model-parallel-size 8 --from-the-daemon");
  response.set_megatron_note("the best plan is not expressible in megatron (...); printing x");
  out.str("");
  err.str("");
  EXPECT_EQ(PrintPlanResponseExport(Problem(), response, "megatron", true, out, err), 0);
  EXPECT_EQ(out.str(), "--tensor-model-parallel-size 8 --from-the-daemon\n");
  EXPECT_EQ(err.str(),
            "cairn: the best plan is not expressible in megatron (...); printing x\n");
  // No flags, a note: the daemon found nothing expressible.
  response.clear_megatron_flags();
  response.set_megatron_note("no plan that fits is expressible in megatron: reason");
  out.str("");
  err.str("");
  EXPECT_EQ(PrintPlanResponseExport(Problem(), response, "megatron", true, out, err), 1);
  EXPECT_EQ(out.str(), "");
  EXPECT_THAT(err.str(), HasSubstr("cairn: no plan that fits is expressible"));
  // Other formats are rendered here from the result.
  out.str("");
  err.str("");
  EXPECT_EQ(PrintPlanResponseExport(Problem(), response, "torchtitan", true, out, err), 1);
  EXPECT_THAT(err.str(), HasSubstr("nothing fits here"));
}

// When a faster candidate than the best plan is printed (here a baseline whose answer predicts it
// faster), stderr still says why the best plan is not expressible (it said "()" before).
TEST(MegatronTest, SaysWhyTheBestPlanIsNotExpressibleWhenAFasterOneIsPrinted) {
  const SearchProblem pb = Problem();
  planner::Evaluation slow, fast;
  slow.step_time_s = 2.0;
  fast.step_time_s = 1.0;
  cairn::v1::SearchResponse response;
  // 8 blocks on 4 stages as 2, 1, 2, 3: uneven middle stages.
  *response.add_plans() = planner::ToPlanProto(
      pb, Plan(Strategy{.tp = 2}, {2, 1, 2, 3}, 8), slow, planner::ProvenanceInfo{});
  cairn::v1::Baseline* b = response.add_baselines();
  b->set_family("megatron");
  b->set_description("tp=2 pp=2");
  b->set_feasible(true);
  *b->mutable_plan() =
      planner::ToPlanProto(pb, Plan(Strategy{.tp = 2}, {4, 4}, 8), fast, planner::ProvenanceInfo{});
  std::ostringstream out, err;
  ASSERT_EQ(PrintExport(pb, response, "megatron", /*allow_resplit=*/false, out, err), 0)
      << err.str();
  EXPECT_THAT(out.str(), HasSubstr("--pipeline-model-parallel-size 2 "));
  EXPECT_THAT(err.str(), HasSubstr("the best plan is not expressible in megatron (the megatron-core "
                                   "runtime cannot cut these stages: Megatron-LM gives every "
                                   "middle stage the same number of blocks"));
  EXPECT_THAT(err.str(), HasSubstr("printing megatron (tp=2 pp=2)"));
}

TEST(ExportFormatsTest, NamesAndSearchRestrictions) {
  for (const char* f : {"megatron", "galvatron", "torchtitan", "deepspeed", "megatron-deepspeed"}) {
    EXPECT_TRUE(IsExportFormat(f)) << f;
    EXPECT_TRUE(CheckOutputFormat(f).ok()) << f;
  }
  EXPECT_FALSE(IsExportFormat("json"));
  EXPECT_TRUE(CheckOutputFormat("text").ok());
  EXPECT_THAT(CheckOutputFormat("toml"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("torchtitan, deepspeed")));
  EXPECT_THAT(ExportPlan("json", Problem(), Plan(Strategy{.tp = 1}, {kLayers}, 4)),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("not an export format")));

  cairn::v1::SearchSpace space;
  RestrictSpaceForExport("torchtitan", &space);
  EXPECT_FALSE(space.uniform_layers());  // that would search the baseline families only
  EXPECT_EQ(space.dp_modes_size(), 2);  // DDP and ZeRO-3
  EXPECT_EQ(space.modes_size(), 1);     // TP with SP
  cairn::v1::SearchSpace given;
  given.add_dp_modes(cairn::v1::DATA_PARALLEL_MODE_ZERO1);
  RestrictSpaceForExport("deepspeed", &given);
  EXPECT_EQ(given.dp_modes_size(), 1);   // the user's list is kept
  EXPECT_EQ(given.schedules_size(), 1);  // 1F1B
  cairn::v1::SearchSpace untouched;
  RestrictSpaceForExport("megatron", &untouched);
  EXPECT_EQ(untouched.dp_modes_size(), 0);
}

}  // namespace
}  // namespace cairn::cli
