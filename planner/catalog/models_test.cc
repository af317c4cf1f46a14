#include "planner/catalog/models.h"

#include <cstdio>
#include <fstream>
#include <set>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/testing/status_matchers.h"
#include "gmock/gmock.h"
#include "google/protobuf/util/message_differencer.h"
#include "gtest/gtest.h"
#include "planner/catalog/json_io.h"
#include "planner/catalog/testdata_util.h"

namespace cairn::planner {
namespace {

using cairn::testing::StatusIs;
using cairn::v1::ModelSpec;
using ::testing::HasSubstr;

std::string WriteTemp(const std::string& name, const std::string& text) {
  const char* dir = std::getenv("TEST_TMPDIR");
  const std::string path = absl::StrCat(dir ? dir : "/tmp", "/", name);
  std::ofstream(path) << text;
  return path;
}

TEST(ModelsTest, CatalogHasEveryPublishedModelInOrder) {
  EXPECT_THAT(ModelNames(),
              ::testing::ElementsAre("gpt2-124m", "gpt2-355m", "gpt2-774m", "gpt2-1.5b",
                                     "gpt3-1.3b", "gpt3-2.7b", "gpt3-6.7b", "gpt3-13b",
                                     "gpt3-175b", "llama2-7b", "llama2-13b", "llama2-70b",
                                     "llama3-8b", "llama3-70b", "llama3-405b", "gpt2-tiny",
                                     "llama-tiny"));
}

TEST(ModelsTest, EveryCatalogModelIsValidNamedAndSourced) {
  for (const std::string& name : ModelNames()) {
    ASSERT_OK_AND_ASSIGN(ModelSpec spec, LookupModel(name));
    EXPECT_EQ(spec.name(), name);
    EXPECT_OK(ValidateModelSpec(spec)) << name;
    EXPECT_FALSE(spec.source().empty()) << name;
  }
}

// Parameter counts of the released checkpoints (Hugging Face model cards / config arithmetic):
// matching them to the parameter checks every dimension and architecture flag at once.
TEST(ModelsTest, ParameterCountsMatchTheReleasedCheckpoints) {
  const std::pair<const char*, int64_t> kExpected[] = {
      {"gpt2-124m", 124439808},      {"gpt2-355m", 354823168},
      {"gpt2-774m", 774030080},      {"gpt2-1.5b", 1557611200},
      {"llama2-7b", 6738415616},     {"llama2-13b", 13015864320},
      {"llama2-70b", 68976648192},   {"llama3-8b", 8030261248},
      {"llama3-70b", 70553706496},   {"llama3-405b", 405853388800},
  };
  for (const auto& [name, params] : kExpected) {
    ASSERT_OK_AND_ASSIGN(ModelSpec spec, LookupModel(name));
    EXPECT_EQ(ParameterCount(spec), params) << name;
  }
}

TEST(ModelsTest, Gpt3SizesAreWithinTwoPercentOfTheirNames) {
  const std::pair<const char*, double> kExpected[] = {
      {"gpt3-1.3b", 1.3e9}, {"gpt3-2.7b", 2.7e9}, {"gpt3-6.7b", 6.7e9},
      {"gpt3-13b", 13e9},   {"gpt3-175b", 175e9}};
  for (const auto& [name, params] : kExpected) {
    ASSERT_OK_AND_ASSIGN(ModelSpec spec, LookupModel(name));
    EXPECT_NEAR(ParameterCount(spec) / params, 1.0, 0.02) << name;
    EXPECT_EQ(spec.max_seq_len(), 2048);
    EXPECT_EQ(spec.ffn_hidden_size(), 4 * spec.hidden_size());
    EXPECT_TRUE(spec.tied_embeddings());
  }
}

TEST(ModelsTest, ArchitectureFlagsFollowTheFamily) {
  ASSERT_OK_AND_ASSIGN(ModelSpec gpt, LookupModel("gpt2-tiny"));
  EXPECT_EQ(gpt.norm(), cairn::v1::NORM_KIND_LAYERNORM);
  EXPECT_EQ(gpt.activation(), cairn::v1::ACTIVATION_KIND_GELU);
  EXPECT_EQ(gpt.position(), cairn::v1::POSITION_KIND_LEARNED);
  EXPECT_TRUE(gpt.bias());
  EXPECT_TRUE(gpt.tied_embeddings());
  EXPECT_EQ(gpt.vocab_size(), 256);

  ASSERT_OK_AND_ASSIGN(ModelSpec llama, LookupModel("llama-tiny"));
  EXPECT_EQ(llama.norm(), cairn::v1::NORM_KIND_RMSNORM);
  EXPECT_EQ(llama.activation(), cairn::v1::ACTIVATION_KIND_SWIGLU);
  EXPECT_EQ(llama.position(), cairn::v1::POSITION_KIND_ROPE);
  EXPECT_FALSE(llama.bias());
  EXPECT_FALSE(llama.tied_embeddings());
  EXPECT_EQ(llama.num_kv_heads(), 2);
  EXPECT_EQ(llama.ffn_hidden_size(), 352);

  ASSERT_OK_AND_ASSIGN(ModelSpec l70, LookupModel("llama2-70b"));
  EXPECT_EQ(l70.num_kv_heads(), 8);
  ASSERT_OK_AND_ASSIGN(ModelSpec l7, LookupModel("llama2-7b"));
  EXPECT_EQ(l7.num_kv_heads(), 32);
}

TEST(ModelsTest, BlockParameterCount) {
  ASSERT_OK_AND_ASSIGN(ModelSpec gpt, LookupModel("gpt2-124m"));
  // 4h^2 + 4h (attention + biases) + 8h^2 + 5h (MLP + biases) + 4h (two LayerNorms), h = 768.
  EXPECT_EQ(BlockParameterCount(gpt), 12 * 768 * 768 + 13 * 768);
  ASSERT_OK_AND_ASSIGN(ModelSpec llama, LookupModel("llama3-8b"));
  // 2h^2 (Q, O) + 2 h 1024 (K, V with 8 of 32 heads) + 3 h ffn + 2h, h = 4096, ffn = 14336.
  EXPECT_EQ(BlockParameterCount(llama),
            2LL * 4096 * 4096 + 2LL * 4096 * 1024 + 3LL * 4096 * 14336 + 2 * 4096);
}

TEST(ModelsTest, UnknownNameListsTheCatalog) {
  EXPECT_THAT(LookupModel("llama4"),
              StatusIs(absl::StatusCode::kNotFound,
                       ::testing::AllOf(HasSubstr("llama4"), HasSubstr("gpt2-124m"),
                                        HasSubstr("llama3-405b"), HasSubstr("llama-tiny"))));
}

struct BadSpecCase {
  const char* what;
  void (*mutate)(ModelSpec*);
  const char* message;
};

TEST(ModelsTest, ValidateRejectsEachBadFieldByName) {
  const BadSpecCase kCases[] = {
      {"layers", [](ModelSpec* s) { s->set_num_layers(0); }, "num_layers must be positive, got 0"},
      {"hidden", [](ModelSpec* s) { s->set_hidden_size(-8); }, "hidden_size must be positive, got -8"},
      {"ffn", [](ModelSpec* s) { s->set_ffn_hidden_size(0); }, "ffn_hidden_size"},
      {"heads", [](ModelSpec* s) { s->set_num_heads(0); }, "num_heads must be positive"},
      {"kv", [](ModelSpec* s) { s->set_num_kv_heads(0); }, "num_kv_heads must be positive, got 0"},
      {"vocab", [](ModelSpec* s) { s->set_vocab_size(0); }, "vocab_size"},
      {"seq", [](ModelSpec* s) { s->set_max_seq_len(0); }, "max_seq_len"},
      {"divisible", [](ModelSpec* s) { s->set_num_heads(24); },
       "hidden_size 4096 is not divisible by num_heads 24"},
      {"gqa", [](ModelSpec* s) { s->set_num_kv_heads(5); },
       "num_heads 32 is not divisible by num_kv_heads 5"},
      {"norm", [](ModelSpec* s) { s->clear_norm(); }, "norm is unset"},
      {"activation", [](ModelSpec* s) { s->clear_activation(); }, "activation is unset"},
      {"position", [](ModelSpec* s) { s->clear_position(); }, "position is unset"},
      {"unknown enum", [](ModelSpec* s) { s->set_norm(static_cast<cairn::v1::NormKind>(7)); },
       "norm has unknown value 7"},
      {"rope odd", [](ModelSpec* s) { s->set_hidden_size(32 * 33); }, "must be even"},
  };
  for (const BadSpecCase& c : kCases) {
    ModelSpec spec = LookupModel("llama2-7b").value();
    c.mutate(&spec);
    EXPECT_THAT(ValidateModelSpec(spec),
                StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr(c.message)))
        << c.what;
  }
}

TEST(ModelsTest, LoadsSnakeCaseAndCamelCaseJson) {
  const std::string snake = WriteTemp("snake.json", R"({
      "name": "mine", "num_layers": 2, "hidden_size": 64, "ffn_hidden_size": 256,
      "num_heads": 4, "num_kv_heads": 4, "vocab_size": 100, "max_seq_len": 128,
      "norm": "NORM_KIND_LAYERNORM", "activation": "ACTIVATION_KIND_GELU",
      "position": "POSITION_KIND_LEARNED", "bias": true })");
  ASSERT_OK_AND_ASSIGN(ModelSpec a, LoadModelSpecFile(snake));
  EXPECT_EQ(a.name(), "mine");
  EXPECT_EQ(a.hidden_size(), 64);
  EXPECT_TRUE(a.bias());

  const std::string camel = WriteTemp("my-model.json", R"({
      "numLayers": 2, "hiddenSize": 64, "ffnHiddenSize": 256, "numHeads": 4, "numKvHeads": 2,
      "vocabSize": 100, "maxSeqLen": 128, "norm": "NORM_KIND_RMSNORM",
      "activation": "ACTIVATION_KIND_SWIGLU", "position": 2 })");
  ASSERT_OK_AND_ASSIGN(ModelSpec b, LoadModelSpecFile(camel));
  EXPECT_EQ(b.name(), "my-model");  // from the file name
  EXPECT_EQ(b.num_kv_heads(), 2);
  EXPECT_EQ(b.position(), cairn::v1::POSITION_KIND_ROPE);
}

TEST(ModelsTest, CatalogSpecsRoundTripThroughJsonFiles) {
  for (const std::string& name : ModelNames()) {
    const ModelSpec spec = LookupModel(name).value();
    ASSERT_OK_AND_ASSIGN(std::string text, ProtoToJson(spec));
    ASSERT_OK_AND_ASSIGN(ModelSpec back, LoadModelSpecFile(WriteTemp(name + ".json", text)));
    EXPECT_TRUE(google::protobuf::util::MessageDifferencer::Equals(spec, back)) << name;
  }
}

TEST(ModelsTest, LoadErrorsNameTheFileAndTheProblem) {
  EXPECT_THAT(LoadModelSpecFile("/nonexistent/model.json"),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("/nonexistent/model.json")));
  const std::string bad_json = WriteTemp("bad.json", "{ \"num_layers\": ");
  EXPECT_THAT(LoadModelSpecFile(bad_json),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       ::testing::AllOf(HasSubstr(bad_json), HasSubstr("cairn.v1.ModelSpec"))));
  const std::string typo = WriteTemp("typo.json", R"({"num_layer": 2})");
  EXPECT_THAT(LoadModelSpecFile(typo),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("num_layer")));
  const std::string dims = WriteTemp("dims.json", R"({
      "num_layers": 2, "hidden_size": 65, "ffn_hidden_size": 256, "num_heads": 4,
      "num_kv_heads": 4, "vocab_size": 100, "max_seq_len": 128, "norm": "NORM_KIND_RMSNORM",
      "activation": "ACTIVATION_KIND_SWIGLU", "position": "POSITION_KIND_ROPE" })");
  EXPECT_THAT(LoadModelSpecFile(dims),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       ::testing::AllOf(HasSubstr(dims), HasSubstr("hidden_size 65"))));
  const char* tmp = std::getenv("TEST_TMPDIR");
  EXPECT_THAT(LoadModelSpecFile(tmp ? tmp : "/tmp"),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("directory")));
}

TEST(ModelsTest, ResolveTakesANameOrAJsonPath) {
  ASSERT_OK_AND_ASSIGN(ModelSpec by_name, ResolveModel("llama3-8b"));
  EXPECT_EQ(by_name.vocab_size(), 128256);
  const std::string path =
      WriteTemp("resolve.json", ProtoToJson(LookupModel("gpt2-tiny").value()).value());
  ASSERT_OK_AND_ASSIGN(ModelSpec by_path, ResolveModel(path));
  EXPECT_EQ(by_path.name(), "gpt2-tiny");
  EXPECT_THAT(ResolveModel("gpt5"),
              StatusIs(absl::StatusCode::kNotFound,
                       ::testing::AllOf(HasSubstr("gpt5"), HasSubstr(".json"),
                                        HasSubstr("llama2-7b"))));
  EXPECT_THAT(ResolveModel("/nonexistent/x.json"), StatusIs(absl::StatusCode::kNotFound,
                                                            HasSubstr("/nonexistent/x.json")));
}

// docs/catalog.md must list every model with the numbers in the code. The row is generated here;
// when the catalog changes, paste the row this test prints into the document.
std::string ModelRow(const ModelSpec& s) {
  const bool llama = s.norm() == cairn::v1::NORM_KIND_RMSNORM;
  const double params = ParameterCount(s);
  const std::string count = params >= 1e9 ? absl::StrFormat("%.2fB", params / 1e9)
                                          : absl::StrFormat("%.1fM", params / 1e6);
  return absl::StrFormat("| %s | %s | %d | %d | %d | %d | %d | %d | %d | %s |", s.name(),
                         llama ? "Llama" : "GPT-2", s.num_layers(), s.hidden_size(),
                         s.ffn_hidden_size(), s.num_heads(), s.num_kv_heads(), s.vocab_size(),
                         s.max_seq_len(), count);
}

TEST(ModelsTest, DocsCatalogListsEveryModelWithItsNumbers) {
  std::ifstream in(testing::RunfilePath("docs/catalog.md"));
  ASSERT_TRUE(in.good()) << "docs/catalog.md not found in runfiles";
  std::set<std::string> lines;
  for (std::string line; std::getline(in, line);) lines.insert(line);
  for (const std::string& name : ModelNames()) {
    const std::string row = ModelRow(LookupModel(name).value());
    EXPECT_TRUE(lines.count(row)) << "docs/catalog.md lacks the row:\n" << row;
  }
}

}  // namespace
}  // namespace cairn::planner
