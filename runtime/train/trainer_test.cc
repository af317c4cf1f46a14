// The Trainer in-process on the CPU backend (ranks are threads over the in-process communicator):
// the validation loss on the data directory's val split is computed every --val-every steps and at
// the end, is finite, falls as a small model learns a repetitive text, and equals the training
// loss of the same batch under the same weights; the metrics JSON lines and the progress lines
// (off a terminal: plain lines) carry it; without a val split the run says so once and trains.
#include "runtime/train/trainer.h"

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/testing/status_matchers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "runtime/comm/local/local_communicator.h"
#include "runtime/compute/cpu/cpu_backend.h"
#include "runtime/data/token_shards.h"
#include "runtime/engine/testing/engine_test_util.h"

namespace cairn::runtime {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

constexpr int kSeq = 32;

std::string TmpDir(const std::string& name) {
  const char* t = std::getenv("TEST_TMPDIR");
  const std::string dir = absl::StrCat(t ? t : "/tmp", "/", name);
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  return dir;
}

// A byte-level model small enough to train in seconds: the engine tests' micro Llama (hidden 32,
// GQA 4/2) with 2 blocks and a vocabulary of 256 bytes.
plan::ModelDims TinyByteModel() {
  plan::ModelDims m = testing::MicroLlama();
  m.name = "llama-bytes";
  m.num_layers = 2;
  m.vocab = 256;
  m.max_seq_len = kSeq;
  return m;
}

// `stages` pipeline stages of equal blocks (the embedding on the first, the head on the last),
// data-parallel over the rest of `world`; global batch 8 in `micro` micro-batches.
plan::PlanSpec Plan(const plan::ModelDims& m, int stages, int micro) {
  plan::PlanSpec p;
  p.global_batch = 8;
  p.num_micro_batches = micro;
  for (int i = 0; i < stages; ++i) {
    p.stage_layers.push_back(m.num_layers / stages + (i == 0) + (i + 1 == stages));
  }
  p.layers.assign(m.num_layers + 2, plan::Strategy{});
  return p;
}

TrainerOptions Options(const std::string& data_dir, int world, int stages, int micro) {
  TrainerOptions o;
  o.model = TinyByteModel();
  o.plan = Plan(o.model, stages, micro);
  o.seq_len = kSeq;
  o.world_size = world;
  o.data_dir = data_dir;
  o.steps = 30;
  o.train.adamw.learning_rate = 3e-3f;
  o.train.total_steps = o.steps;
  o.progress = TrainerOptions::Progress::kLines;
  return o;
}

// Runs TrainRank on `o.world_size` threads; returns rank 0's stdout.
std::string Train(const TrainerOptions& o) {
  ::testing::internal::CaptureStdout();
  auto comms = LocalCommunicator::CreateGroup(o.world_size);
  std::vector<absl::Status> status(o.world_size);
  std::vector<std::thread> threads;
  for (int r = 0; r < o.world_size; ++r) {
    threads.emplace_back([&, r] {
      CpuBackend backend;
      status[r] = TrainRank(o, comms[r].get(), &backend);
      if (!status[r].ok()) comms[r]->Abort(status[r].message());
    });
  }
  for (auto& t : threads) t.join();
  const std::string out = ::testing::internal::GetCapturedStdout();
  for (int r = 0; r < o.world_size; ++r) EXPECT_OK(status[r]) << "rank " << r << "\n" << out;
  return out;
}

// Each metrics JSON line's numbers by key (the trainer writes flat objects of numbers).
std::vector<std::map<std::string, double>> ReadMetrics(const std::string& path) {
  std::vector<std::map<std::string, double>> out;
  std::ifstream in(path);
  std::string line;
  while (std::getline(in, line)) {
    std::map<std::string, double> fields;
    std::string body = line.substr(1, line.size() - 2);  // without { }
    for (absl::string_view field : absl::StrSplit(body, ", ")) {
      std::vector<std::string> kv = absl::StrSplit(field, ": ");
      double v = 0;
      if (kv.size() == 2 && absl::SimpleAtod(kv[1], &v)) fields[kv[0].substr(1, kv[0].size() - 2)] = v;
    }
    out.push_back(fields);
  }
  return out;
}

// A repetitive English text: learnable by a tiny byte-level model within a few dozen steps.
std::vector<uint32_t> Corpus(int lines) {
  std::string text;
  for (int i = 0; i < lines; ++i) {
    absl::StrAppend(&text, "Cairn plans and runs hybrid-parallel training. Line ", i % 10,
                    " of a small corpus.\n");
  }
  return ByteTokens(text);
}

TEST(TrainerTest, ValidationLossIsReportedAndFallsAsTheModelLearns) {
  const std::string dir = TmpDir("learnable");
  const std::vector<uint32_t> tokens = Corpus(300);
  const size_t val = tokens.size() / 10;
  ASSERT_OK(WriteShard(dir + "/train_00000.bin",
                       std::vector<uint32_t>(tokens.begin(), tokens.end() - val), 2));
  ASSERT_OK(WriteShard(dir + "/val_00000.bin",
                       std::vector<uint32_t>(tokens.end() - val, tokens.end()), 2));
  TrainerOptions o = Options(dir, 1, 1, 2);
  o.val_every = 10;
  o.val_batches = 2;
  o.steps = 35;  // evaluations at 10, 20, 30 and the last step, 35
  o.train.total_steps = o.steps;
  o.metrics_path = dir + "/metrics.jsonl";
  ASSERT_OK(CheckTrainingInputs(o));
  const std::string out = Train(o);

  std::vector<double> val_losses;
  std::vector<int> val_steps;
  for (const auto& m : ReadMetrics(o.metrics_path)) {
    if (!m.count("val_loss")) continue;
    val_steps.push_back(static_cast<int>(m.at("step")));
    val_losses.push_back(m.at("val_loss"));
  }
  EXPECT_THAT(val_steps, ::testing::ElementsAre(10, 20, 30, 35));
  ASSERT_EQ(val_losses.size(), 4u);
  for (double v : val_losses) {
    EXPECT_TRUE(std::isfinite(v));
    EXPECT_GT(v, 0);
  }
  // A uniform guess over 256 bytes costs ln 256 = 5.55 nats; the text is far more predictable.
  EXPECT_LT(val_losses.back(), 0.8 * val_losses.front()) << out;
  EXPECT_LT(val_losses.back(), 4.0) << out;

  // Off a terminal: one plain line per step, the evaluated steps with "val".
  EXPECT_THAT(out, Not(HasSubstr("\r")));
  EXPECT_THAT(out, Not(HasSubstr("validation skipped")));
  int step_lines = 0, val_lines = 0;
  for (absl::string_view line : absl::StrSplit(out, '\n')) {
    if (!absl::StartsWith(line, "step ")) continue;
    ++step_lines;
    EXPECT_THAT(std::string(line), HasSubstr("| elapsed "));
    EXPECT_THAT(std::string(line), HasSubstr("| ETA "));
    if (absl::StrContains(line, "| val ")) ++val_lines;
  }
  EXPECT_EQ(step_lines, 35);
  EXPECT_EQ(val_lines, 4);
  EXPECT_THAT(out, HasSubstr("step    10/35 | loss "));
}

// With training and validation data both a single window of seq_len + 1 tokens, every sample of
// every batch is that window: the validation loss after step N (weights after N updates) must be
// the training loss step N + 1 reports (its forward runs on those weights before its update).
class SameDataTest : public ::testing::TestWithParam<std::tuple<int, int, int>> {};

TEST_P(SameDataTest, ValidationLossEqualsTrainingLossOnTheSameBatch) {
  const auto [world, stages, micro] = GetParam();
  const std::string dir = TmpDir(absl::StrCat("same_", world, "_", stages));
  std::vector<uint32_t> window = Corpus(2);
  window.resize(kSeq + 1);
  ASSERT_OK(WriteShard(dir + "/train_00000.bin", window, 2));
  ASSERT_OK(WriteShard(dir + "/val_00000.bin", window, 2));
  TrainerOptions o = Options(dir, world, stages, micro);
  o.steps = 5;
  o.train.total_steps = o.steps;
  o.val_every = 1;
  o.val_batches = 1;
  o.quiet = true;
  o.metrics_path = dir + "/metrics.jsonl";
  Train(o);
  const auto metrics = ReadMetrics(o.metrics_path);
  ASSERT_EQ(metrics.size(), 5u);
  for (size_t k = 0; k + 1 < metrics.size(); ++k) {
    ASSERT_TRUE(metrics[k].count("val_loss")) << "step " << k + 1;
    // Both written with 6 decimals.
    EXPECT_NEAR(metrics[k].at("val_loss"), metrics[k + 1].at("loss"), 2e-6)
        << "validation after step " << k + 1 << " vs the training loss of step " << k + 2;
  }
  // The loss moved: the comparison above is between different weights at each step.
  EXPECT_LT(metrics.back().at("loss"), metrics.front().at("loss"));
}

INSTANTIATE_TEST_SUITE_P(Plans, SameDataTest,
                         ::testing::Values(std::make_tuple(1, 1, 2),    // one rank
                                           std::make_tuple(2, 1, 2),    // data parallel
                                           std::make_tuple(2, 2, 4)));  // 1F1B pipeline

TEST(TrainerTest, WithoutValidationDataItSaysSoOnceAndTrains) {
  const std::string dir = TmpDir("no_val");
  ASSERT_OK(WriteShard(dir + "/train_00000.bin", Corpus(50), 2));
  TrainerOptions o = Options(dir, 1, 1, 1);
  o.steps = 3;
  o.val_every = 1;
  o.metrics_path = dir + "/metrics.jsonl";
  ASSERT_OK(CheckTrainingInputs(o));
  const std::string out = Train(o);
  size_t said = 0;
  for (size_t at = out.find("no validation data in"); at != std::string::npos;
       at = out.find("no validation data in", at + 1)) {
    ++said;
  }
  EXPECT_EQ(said, 1u) << out;
  EXPECT_THAT(out, HasSubstr("validation skipped"));
  EXPECT_THAT(out, Not(HasSubstr("| val ")));
  const auto metrics = ReadMetrics(o.metrics_path);
  ASSERT_EQ(metrics.size(), 3u);
  for (const auto& m : metrics) EXPECT_FALSE(m.count("val_loss"));
}

TEST(TrainerTest, ValidationSettingsAndDataAreChecked) {
  const std::string dir = TmpDir("checks");
  ASSERT_OK(WriteShard(dir + "/train_00000.bin", Corpus(50), 2));
  TrainerOptions o = Options(dir, 1, 1, 1);
  o.val_batches = 0;
  EXPECT_THAT(CheckTrainingInputs(o).message(), HasSubstr("--val-batches"));
  o.val_batches = 1;
  o.val_every = -1;
  EXPECT_THAT(CheckTrainingInputs(o).message(), HasSubstr("--val-every"));
  o.val_every = 10;
  // A validation token outside the vocabulary is an error, not a skip.
  o.model.vocab = 128;
  std::vector<uint32_t> train = Corpus(50);
  for (uint32_t& t : train) t %= 128;
  ASSERT_OK(WriteShard(dir + "/train_00000.bin", train, 2));
  ASSERT_OK(WriteShard(dir + "/val_00000.bin", std::vector<uint32_t>(64, 200), 2));
  const absl::Status s = CheckTrainingInputs(o);
  EXPECT_TRUE(absl::IsInvalidArgument(s)) << s;
  EXPECT_THAT(s.message(), HasSubstr("validation data"));
}

}  // namespace
}  // namespace cairn::runtime
