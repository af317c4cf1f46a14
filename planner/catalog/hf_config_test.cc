// Tests of the Hugging Face config.json import (hf_config.h). The fixtures under
// testdata/hf/NAME/config.json are written from the published configs' field names and values
// (meta-llama/Llama-2-7b-hf, mistralai/Mistral-7B-v0.1, openai-community/gpt2, Qwen/Qwen2-7B).
#include "planner/catalog/hf_config.h"

#include <string>

#include "common/testing/status_matchers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "planner/catalog/json_io.h"
#include "planner/catalog/models.h"
#include "planner/catalog/testdata_util.h"

namespace cairn::planner {
namespace {

using ::cairn::testing::StatusIs;
using ::testing::HasSubstr;

absl::StatusOr<cairn::v1::ModelSpec> Load(const std::string& name) {
  return LoadModelSpecFile(testing::TestDataPath("hf/" + name + "/config.json"));
}

TEST(HfConfigTest, Llama2SevenBIsTheCatalogEntry) {
  absl::StatusOr<cairn::v1::ModelSpec> spec = Load("Llama-2-7b-hf");
  ASSERT_TRUE(spec.ok()) << spec.status();
  absl::StatusOr<cairn::v1::ModelSpec> catalog = LookupModel("llama2-7b");
  ASSERT_TRUE(catalog.ok());
  EXPECT_EQ(spec->name(), "Llama-2-7b-hf");  // from _name_or_path
  EXPECT_EQ(ParameterCount(*spec), ParameterCount(*catalog));
  EXPECT_EQ(ParameterCount(*spec), 6738415616);  // as models.h documents for llama2-7b
  cairn::v1::ModelSpec same = *spec;
  same.set_name(catalog->name());
  same.set_source(catalog->source());
  EXPECT_EQ(same.SerializeAsString(), catalog->SerializeAsString());
  EXPECT_THAT(spec->source(), HasSubstr("(LlamaForCausalLM)"));
}

TEST(HfConfigTest, Gpt2IsTheCatalogGpt2) {
  absl::StatusOr<cairn::v1::ModelSpec> spec = Load("gpt2");
  ASSERT_TRUE(spec.ok()) << spec.status();
  EXPECT_EQ(spec->name(), "gpt2");  // no _name_or_path: the folder's name
  EXPECT_EQ(spec->ffn_hidden_size(), 3072);  // n_inner absent: 4 x n_embd
  EXPECT_EQ(spec->norm(), cairn::v1::NORM_KIND_LAYERNORM);
  EXPECT_EQ(spec->activation(), cairn::v1::ACTIVATION_KIND_GELU);
  EXPECT_EQ(spec->position(), cairn::v1::POSITION_KIND_LEARNED);
  EXPECT_TRUE(spec->tied_embeddings());
  EXPECT_TRUE(spec->bias());
  EXPECT_EQ(ParameterCount(*spec), ParameterCount(*LookupModel("gpt2-124m")));
}

TEST(HfConfigTest, MistralAndQwenSayWhatTheSpecDoesNotHold) {
  absl::StatusOr<cairn::v1::ModelSpec> mistral = Load("Mistral-7B-v0.1");
  ASSERT_TRUE(mistral.ok()) << mistral.status();
  EXPECT_EQ(mistral->num_kv_heads(), 8);
  EXPECT_EQ(mistral->ffn_hidden_size(), 14336);
  EXPECT_EQ(mistral->max_seq_len(), 32768);
  EXPECT_FALSE(mistral->tied_embeddings());
  EXPECT_THAT(mistral->source(), HasSubstr("sliding-window attention (4096 tokens)"));
  absl::StatusOr<cairn::v1::ModelSpec> qwen = Load("Qwen2-7B");
  ASSERT_TRUE(qwen.ok()) << qwen.status();
  EXPECT_EQ(qwen->hidden_size(), 3584);
  EXPECT_EQ(qwen->num_heads(), 28);
  EXPECT_EQ(qwen->num_kv_heads(), 4);
  EXPECT_EQ(qwen->vocab_size(), 152064);
  EXPECT_FALSE(qwen->bias());
  // q/k/v biases: 3584 + 2 x 4 x 128 = 4608 per block.
  EXPECT_THAT(qwen->source(), HasSubstr("q/k/v biases (4608 parameters per block)"));
  EXPECT_THAT(qwen->source(), ::testing::Not(HasSubstr("sliding")));  // use_sliding_window false
}

TEST(HfConfigTest, RecognisesOnlyHuggingFaceConfigs) {
  EXPECT_TRUE(IsHfConfig(R"({"model_type": "llama"})"));
  EXPECT_TRUE(IsHfConfig(R"({"architectures": ["GPT2LMHeadModel"]})"));
  EXPECT_FALSE(IsHfConfig(R"({"name": "my-7b", "num_layers": 32})"));
  EXPECT_FALSE(IsHfConfig("not json"));
  // model_type alone picks the architecture.
  absl::StatusOr<cairn::v1::ModelSpec> spec = ModelSpecFromHfConfig(
      R"({"model_type": "qwen3", "num_hidden_layers": 2, "hidden_size": 256,
          "intermediate_size": 512, "num_attention_heads": 4, "vocab_size": 1000,
          "max_position_embeddings": 512, "tie_word_embeddings": true})",
      "inline", "tiny");
  ASSERT_TRUE(spec.ok()) << spec.status();
  EXPECT_EQ(spec->name(), "tiny");
  EXPECT_EQ(spec->num_kv_heads(), 4);  // num_key_value_heads absent: multi-head attention
  EXPECT_TRUE(spec->tied_embeddings());
  EXPECT_THAT(spec->source(), HasSubstr("Qwen3ForCausalLM"));
}

TEST(HfConfigTest, RefusesWhatCairnCannotModel) {
  EXPECT_THAT(ModelSpecFromHfConfig(R"({"architectures": ["MixtralForCausalLM"]})", "m.json", ""),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("m.json: Hugging Face architecture MixtralForCausalLM is not "
                                 "supported; supported: LlamaForCausalLM, MistralForCausalLM, "
                                 "Qwen2ForCausalLM, Qwen3ForCausalLM, GPT2LMHeadModel")));
  const std::string llama = R"({"architectures": ["LlamaForCausalLM"], "num_hidden_layers": 2,
      "hidden_size": 256, "intermediate_size": 512, "num_attention_heads": 4, "vocab_size": 1000,
      "max_position_embeddings": 512)";
  EXPECT_TRUE(ModelSpecFromHfConfig(llama + "}", "x", "x").ok());
  // Llama's attention_bias alone: q, k, v, o biases = 256 + 2 x 4 x 64 + 256 = 1024 per block.
  absl::StatusOr<cairn::v1::ModelSpec> biased =
      ModelSpecFromHfConfig(llama + R"(, "attention_bias": true})", "x", "x");
  ASSERT_TRUE(biased.ok()) << biased.status();
  EXPECT_FALSE(biased->bias());
  EXPECT_THAT(biased->source(), HasSubstr("attention biases (1024 parameters per block)"));
  EXPECT_TRUE(
      ModelSpecFromHfConfig(llama + R"(, "attention_bias": true, "mlp_bias": true})", "x", "x")
          ->bias());
  EXPECT_THAT(ModelSpecFromHfConfig(llama + R"(, "hidden_act": "gelu"})", "x", "x"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("SwiGLU")));
  EXPECT_THAT(ModelSpecFromHfConfig(llama + R"(, "head_dim": 128})", "x", "x"),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("head_dim 128 is not hidden_size / num_attention_heads")));
  EXPECT_THAT(ModelSpecFromHfConfig(llama + R"(, "num_local_experts": 8})", "x", "x"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("mixture of 8 experts")));
  EXPECT_THAT(ModelSpecFromHfConfig(llama + R"(, "num_key_value_heads": 2.5})", "x", "x"),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("\"num_key_value_heads\" must be a positive whole number")));
  EXPECT_THAT(ModelSpecFromHfConfig(R"({"model_type": "gpt2", "n_layer": 2})", "g.json", ""),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("g.json: the Hugging Face config has no \"n_embd\"")));
  // A file whose dimensions Cairn cannot build fails validation, naming the file.
  EXPECT_THAT(ModelSpecFromHfConfig("{", "bad.json", ""),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("bad.json: not valid JSON")));
}

}  // namespace
}  // namespace cairn::planner
