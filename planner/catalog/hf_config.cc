#include "planner/catalog/hf_config.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/status_macros.h"
#include "google/protobuf/struct.pb.h"
#include "google/protobuf/util/json_util.h"

namespace cairn::planner {
namespace {

using google::protobuf::Struct;
using google::protobuf::Value;

constexpr const char* kLlamaStyle[] = {"LlamaForCausalLM", "MistralForCausalLM",
                                       "Qwen2ForCausalLM", "Qwen3ForCausalLM"};
constexpr const char* kGpt2 = "GPT2LMHeadModel";

// model_type -> architecture, for configs without an "architectures" list.
const char* ArchitectureOfModelType(const std::string& model_type) {
  if (model_type == "llama") return "LlamaForCausalLM";
  if (model_type == "mistral") return "MistralForCausalLM";
  if (model_type == "qwen2") return "Qwen2ForCausalLM";
  if (model_type == "qwen3") return "Qwen3ForCausalLM";
  if (model_type == "gpt2") return kGpt2;
  return nullptr;
}

absl::StatusOr<Struct> ParseObject(absl::string_view json) {
  Struct s;
  const auto status = google::protobuf::util::JsonStringToMessage(std::string(json), &s);
  if (!status.ok()) return absl::InvalidArgumentError(status.ToString());
  return s;
}

// A field present and not null.
const Value* Field(const Struct& s, const std::string& key) {
  auto it = s.fields().find(key);
  if (it == s.fields().end() || it->second.kind_case() == Value::kNullValue) return nullptr;
  return &it->second;
}

// Reads the first of `keys` present as a positive whole number; `fallback` when none is (0: the
// field is required).
class Reader {
 public:
  Reader(const Struct& s, absl::string_view what) : s_(s), what_(what) {}

  absl::StatusOr<int> Int(std::initializer_list<const char*> keys, int fallback = 0) const {
    for (const char* key : keys) {
      const Value* v = Field(s_, key);
      if (v == nullptr) continue;
      const double x = v->number_value();
      if (v->kind_case() != Value::kNumberValue || x != std::floor(x) || x < 1 || x > 1e9) {
        return absl::InvalidArgumentError(
            absl::StrCat(what_, ": \"", key, "\" must be a positive whole number"));
      }
      return static_cast<int>(x);
    }
    if (fallback > 0) return fallback;
    return absl::InvalidArgumentError(absl::StrCat(
        what_, ": the Hugging Face config has no \"", absl::StrJoin(keys, "\" or \""), "\""));
  }
  bool Bool(const char* key, bool fallback) const {
    const Value* v = Field(s_, key);
    return v != nullptr && v->kind_case() == Value::kBoolValue ? v->bool_value() : fallback;
  }
  std::string String(const char* key) const {
    const Value* v = Field(s_, key);
    return v != nullptr && v->kind_case() == Value::kStringValue ? v->string_value() : "";
  }

 private:
  const Struct& s_;
  absl::string_view what_;
};

absl::Status ConvertLlamaStyle(const Reader& r, const std::string& arch, absl::string_view what,
                               cairn::v1::ModelSpec* spec, std::vector<std::string>* notes) {
  CAIRN_ASSIGN_OR_RETURN(const int layers, r.Int({"num_hidden_layers"}));
  CAIRN_ASSIGN_OR_RETURN(const int hidden, r.Int({"hidden_size"}));
  CAIRN_ASSIGN_OR_RETURN(const int ffn, r.Int({"intermediate_size"}));
  CAIRN_ASSIGN_OR_RETURN(const int heads, r.Int({"num_attention_heads"}));
  CAIRN_ASSIGN_OR_RETURN(const int kv_heads, r.Int({"num_key_value_heads"}, heads));
  CAIRN_ASSIGN_OR_RETURN(const int vocab, r.Int({"vocab_size"}));
  CAIRN_ASSIGN_OR_RETURN(const int max_seq, r.Int({"max_position_embeddings"}));
  const std::string act = r.String("hidden_act");
  if (!act.empty() && act != "silu" && act != "swish") {
    return absl::InvalidArgumentError(absl::StrCat(
        what, ": hidden_act \"", act, "\": Cairn models ", arch,
        "'s gated MLP as SwiGLU (hidden_act \"silu\") only"));
  }
  CAIRN_ASSIGN_OR_RETURN(const int experts, r.Int({"num_local_experts", "num_experts"}, 1));
  if (experts > 1) {
    return absl::InvalidArgumentError(absl::StrCat(
        what, ": a mixture of ", experts, " experts; Cairn models dense transformers only"));
  }
  if (heads > 0 && hidden % heads == 0) {
    CAIRN_ASSIGN_OR_RETURN(const int head_dim, r.Int({"head_dim"}, hidden / heads));
    if (head_dim != hidden / heads) {
      return absl::InvalidArgumentError(absl::StrCat(
          what, ": head_dim ", head_dim, " is not hidden_size / num_attention_heads = ", hidden,
          " / ", heads, "; Cairn's attention has head dimension hidden / heads"));
    }
  }
  spec->set_num_layers(layers);
  spec->set_hidden_size(hidden);
  spec->set_ffn_hidden_size(ffn);
  spec->set_num_heads(heads);
  spec->set_num_kv_heads(kv_heads);
  spec->set_vocab_size(vocab);
  spec->set_max_seq_len(max_seq);
  spec->set_norm(cairn::v1::NORM_KIND_RMSNORM);
  spec->set_activation(cairn::v1::ACTIVATION_KIND_SWIGLU);
  spec->set_position(cairn::v1::POSITION_KIND_ROPE);
  spec->set_tied_embeddings(r.Bool("tie_word_embeddings", false));
  const bool attention_bias = r.Bool("attention_bias", false);
  const bool mlp_bias = r.Bool("mlp_bias", false);
  spec->set_bias(attention_bias && mlp_bias);
  // Qwen2 biases q, k and v; Llama's attention_bias also o. Either way the spec's all-or-nothing
  // bias cannot hold it: their parameters go into the source.
  const int64_t qkv_bias = hidden + 2 * int64_t{kv_heads} * (hidden / heads);
  if (arch == "Qwen2ForCausalLM") {
    notes->push_back(
        absl::StrCat("q/k/v biases (", qkv_bias, " parameters per block) not modelled"));
  } else if (attention_bias && !mlp_bias) {
    notes->push_back(absl::StrCat("attention biases (", qkv_bias + hidden,
                                  " parameters per block) not modelled"));
  }
  if (mlp_bias && !attention_bias) notes->push_back("MLP biases not modelled");
  // Mistral slides its attention window whenever sliding_window is set; Qwen only with
  // use_sliding_window.
  const bool sliding = arch == "MistralForCausalLM" || r.Bool("use_sliding_window", false);
  absl::StatusOr<int> window = r.Int({"sliding_window"}, -1);
  if (sliding && window.ok() && *window > 0 && *window < max_seq) {
    notes->push_back(absl::StrCat("sliding-window attention (", *window,
                                  " tokens) costed as full causal attention"));
  }
  return absl::OkStatus();
}

absl::Status ConvertGpt2(const Reader& r, absl::string_view what, cairn::v1::ModelSpec* spec) {
  CAIRN_ASSIGN_OR_RETURN(const int layers, r.Int({"n_layer"}));
  CAIRN_ASSIGN_OR_RETURN(const int hidden, r.Int({"n_embd"}));
  CAIRN_ASSIGN_OR_RETURN(const int heads, r.Int({"n_head"}));
  CAIRN_ASSIGN_OR_RETURN(const int ffn, r.Int({"n_inner"}, 4 * hidden));
  CAIRN_ASSIGN_OR_RETURN(const int vocab, r.Int({"vocab_size"}));
  CAIRN_ASSIGN_OR_RETURN(const int max_seq, r.Int({"n_positions", "n_ctx"}));
  const std::string act = r.String("activation_function");
  if (!act.empty() && !absl::StartsWith(act, "gelu")) {
    return absl::InvalidArgumentError(absl::StrCat(
        what, ": activation_function \"", act, "\": Cairn models GPT-2's MLP with GELU only"));
  }
  spec->set_num_layers(layers);
  spec->set_hidden_size(hidden);
  spec->set_ffn_hidden_size(ffn);
  spec->set_num_heads(heads);
  spec->set_num_kv_heads(heads);
  spec->set_vocab_size(vocab);
  spec->set_max_seq_len(max_seq);
  spec->set_norm(cairn::v1::NORM_KIND_LAYERNORM);
  spec->set_activation(cairn::v1::ACTIVATION_KIND_GELU);
  spec->set_position(cairn::v1::POSITION_KIND_LEARNED);
  spec->set_tied_embeddings(r.Bool("tie_word_embeddings", true));
  spec->set_bias(true);
  return absl::OkStatus();
}

}  // namespace

std::vector<std::string> HfArchitectures() {
  std::vector<std::string> out(std::begin(kLlamaStyle), std::end(kLlamaStyle));
  out.push_back(kGpt2);
  return out;
}

bool IsHfConfig(absl::string_view json) {
  absl::StatusOr<Struct> s = ParseObject(json);
  return s.ok() && (s->fields().count("architectures") > 0 || s->fields().count("model_type") > 0);
}

absl::StatusOr<cairn::v1::ModelSpec> ModelSpecFromHfConfig(absl::string_view json,
                                                           absl::string_view what,
                                                           absl::string_view fallback_name) {
  absl::StatusOr<Struct> parsed = ParseObject(json);
  if (!parsed.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat(what, ": not valid JSON: ", parsed.status().message()));
  }
  const Reader r(*parsed, what);
  // The architecture: the first of "architectures", else the one model_type stands for.
  std::string arch;
  if (const Value* list = Field(*parsed, "architectures");
      list != nullptr && list->kind_case() == Value::kListValue &&
      list->list_value().values_size() > 0) {
    arch = list->list_value().values(0).string_value();
  } else if (const char* a = ArchitectureOfModelType(r.String("model_type"))) {
    arch = a;
  } else {
    arch = absl::StrCat("model_type \"", r.String("model_type"), "\"");
  }
  cairn::v1::ModelSpec spec;
  std::vector<std::string> notes;
  if (arch == kGpt2) {
    CAIRN_RETURN_IF_ERROR(ConvertGpt2(r, what, &spec));
  } else if (std::find(std::begin(kLlamaStyle), std::end(kLlamaStyle), arch) !=
             std::end(kLlamaStyle)) {
    CAIRN_RETURN_IF_ERROR(ConvertLlamaStyle(r, arch, what, &spec, &notes));
  } else {
    return absl::InvalidArgumentError(absl::StrCat(
        what, ": Hugging Face architecture ", arch.empty() ? "(none)" : arch,
        " is not supported; supported: ", absl::StrJoin(HfArchitectures(), ", "),
        " (or write a Cairn ModelSpec: cairn models --json llama2-7b)"));
  }
  std::string name = r.String("_name_or_path");
  name = name.substr(name.find_last_of('/') + 1);
  spec.set_name(name.empty() ? std::string(fallback_name) : name);
  spec.set_source(absl::StrCat("Hugging Face config ", what, " (", arch, ")",
                               notes.empty() ? "" : "; ", absl::StrJoin(notes, "; ")));
  return spec;
}

}  // namespace cairn::planner
