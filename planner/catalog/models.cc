#include "planner/catalog/models.h"

#include <algorithm>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/status_macros.h"
#include "planner/catalog/hf_config.h"
#include "planner/catalog/json_io.h"

namespace cairn::planner {
namespace {

using cairn::v1::ModelSpec;

enum class Family { kGpt2, kLlama };

// One catalog row. Families fix the block type: GPT-2 style (LayerNorm, GELU, learned positions,
// biases, tied embeddings) or Llama style (RMSNorm, SwiGLU, RoPE, no biases, untied).
struct Entry {
  const char* name;
  Family family;
  int num_layers;
  int hidden;
  int ffn_hidden;
  int num_heads;
  int num_kv_heads;
  int vocab;
  int max_seq_len;
  const char* source;
};

constexpr char kGpt2Source[] =
    "Radford et al. 2019, 'Language Models are Unsupervised Multitask Learners'; dimensions as in "
    "the released checkpoints (Hugging Face configs gpt2, gpt2-medium, gpt2-large, gpt2-xl)";
constexpr char kGpt3Source[] =
    "Brown et al. 2020, 'Language Models are Few-Shot Learners' (arXiv 2005.14165), Table 2.1; "
    "ffn = 4h, GPT-2 style blocks, GPT-2 tokenizer";
constexpr char kLlama2Source[] =
    "Touvron et al. 2023, 'Llama 2' (arXiv 2307.09288); Hugging Face configs meta-llama/Llama-2-*-hf";
constexpr char kLlama3Source[] =
    "Llama Team 2024, 'The Llama 3 Herd of Models' (arXiv 2407.21783), Table 3; Hugging Face "
    "configs meta-llama/Meta-Llama-3-8B, Meta-Llama-3-70B, Llama-3.1-405B";

// Published dimensions. Two GPT-3 rows deviate from the paper's table where it is internally
// inconsistent: GPT-3 XL lists d_model 2048 with 24 heads of d_head 128 (24 x 128 != 2048), and
// GPT-3 13B lists d_model 5140 with 40 heads of d_head 128 (40 x 128 = 5120). Cairn needs
// hidden = heads x head_dim, so it keeps the published d_head 128: 16 heads for 1.3B, hidden 5120
// for 13B (as Megatron-LM and most reproductions do).
constexpr Entry kCatalog[] = {
    {"gpt2-124m", Family::kGpt2, 12, 768, 3072, 12, 12, 50257, 1024, kGpt2Source},
    {"gpt2-355m", Family::kGpt2, 24, 1024, 4096, 16, 16, 50257, 1024, kGpt2Source},
    {"gpt2-774m", Family::kGpt2, 36, 1280, 5120, 20, 20, 50257, 1024, kGpt2Source},
    {"gpt2-1.5b", Family::kGpt2, 48, 1600, 6400, 25, 25, 50257, 1024, kGpt2Source},
    {"gpt3-1.3b", Family::kGpt2, 24, 2048, 8192, 16, 16, 50257, 2048,
     "Brown et al. 2020 (arXiv 2005.14165), Table 2.1 'GPT-3 XL'; 16 heads of the published "
     "d_head 128 (the table's 24 heads do not divide d_model 2048); ffn = 4h, GPT-2 style blocks"},
    {"gpt3-2.7b", Family::kGpt2, 32, 2560, 10240, 32, 32, 50257, 2048, kGpt3Source},
    {"gpt3-6.7b", Family::kGpt2, 32, 4096, 16384, 32, 32, 50257, 2048, kGpt3Source},
    {"gpt3-13b", Family::kGpt2, 40, 5120, 20480, 40, 40, 50257, 2048,
     "Brown et al. 2020 (arXiv 2005.14165), Table 2.1 'GPT-3 13B'; d_model 5120 = 40 heads x "
     "d_head 128 (the table's 5140 is not a multiple of 40); ffn = 4h, GPT-2 style blocks"},
    {"gpt3-175b", Family::kGpt2, 96, 12288, 49152, 96, 96, 50257, 2048, kGpt3Source},
    {"llama2-7b", Family::kLlama, 32, 4096, 11008, 32, 32, 32000, 4096, kLlama2Source},
    {"llama2-13b", Family::kLlama, 40, 5120, 13824, 40, 40, 32000, 4096, kLlama2Source},
    {"llama2-70b", Family::kLlama, 80, 8192, 28672, 64, 8, 32000, 4096, kLlama2Source},
    {"llama3-8b", Family::kLlama, 32, 4096, 14336, 32, 8, 128256, 8192, kLlama3Source},
    {"llama3-70b", Family::kLlama, 80, 8192, 28672, 64, 8, 128256, 8192, kLlama3Source},
    {"llama3-405b", Family::kLlama, 126, 16384, 53248, 128, 8, 128256, 8192, kLlama3Source},
    {"gpt2-tiny", Family::kGpt2, 4, 128, 512, 4, 4, 256, 256,
     "Cairn: tiny GPT-2 style model for CPU training and tests (byte-level vocabulary)"},
    {"llama-tiny", Family::kLlama, 4, 128, 352, 4, 2, 256, 256,
     "Cairn: tiny Llama style model for CPU training and tests (byte-level vocabulary, GQA 4:2)"},
};

ModelSpec ToSpec(const Entry& e) {
  ModelSpec spec;
  spec.set_name(e.name);
  spec.set_num_layers(e.num_layers);
  spec.set_hidden_size(e.hidden);
  spec.set_ffn_hidden_size(e.ffn_hidden);
  spec.set_num_heads(e.num_heads);
  spec.set_num_kv_heads(e.num_kv_heads);
  spec.set_vocab_size(e.vocab);
  spec.set_max_seq_len(e.max_seq_len);
  const bool gpt2 = e.family == Family::kGpt2;
  spec.set_norm(gpt2 ? cairn::v1::NORM_KIND_LAYERNORM : cairn::v1::NORM_KIND_RMSNORM);
  spec.set_activation(gpt2 ? cairn::v1::ACTIVATION_KIND_GELU : cairn::v1::ACTIVATION_KIND_SWIGLU);
  spec.set_position(gpt2 ? cairn::v1::POSITION_KIND_LEARNED : cairn::v1::POSITION_KIND_ROPE);
  spec.set_tied_embeddings(gpt2);
  spec.set_bias(gpt2);
  spec.set_source(e.source);
  return spec;
}

absl::Status Positive(absl::string_view field, int value) {
  if (value > 0) return absl::OkStatus();
  return absl::InvalidArgumentError(
      absl::StrCat(field, " must be positive, got ", value));
}

}  // namespace

std::vector<std::string> ModelNames() {
  std::vector<std::string> names;
  for (const Entry& e : kCatalog) names.emplace_back(e.name);
  return names;
}

absl::StatusOr<ModelSpec> LookupModel(absl::string_view name) {
  for (const Entry& e : kCatalog) {
    if (name == e.name) return ToSpec(e);
  }
  return absl::NotFoundError(absl::StrCat("unknown model \"", name, "\"; built-in models: ",
                                          absl::StrJoin(ModelNames(), ", ")));
}

absl::Status ValidateModelSpec(const ModelSpec& spec) {
  CAIRN_RETURN_IF_ERROR(Positive("num_layers", spec.num_layers()));
  CAIRN_RETURN_IF_ERROR(Positive("hidden_size", spec.hidden_size()));
  CAIRN_RETURN_IF_ERROR(Positive("ffn_hidden_size", spec.ffn_hidden_size()));
  CAIRN_RETURN_IF_ERROR(Positive("num_heads", spec.num_heads()));
  if (spec.num_kv_heads() <= 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("num_kv_heads must be positive, got ", spec.num_kv_heads(),
                     " (set it to num_heads = ", spec.num_heads(),
                     " for multi-head attention)"));
  }
  CAIRN_RETURN_IF_ERROR(Positive("vocab_size", spec.vocab_size()));
  CAIRN_RETURN_IF_ERROR(Positive("max_seq_len", spec.max_seq_len()));
  if (spec.hidden_size() % spec.num_heads() != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("hidden_size ", spec.hidden_size(), " is not divisible by num_heads ",
                     spec.num_heads(), " (head dimension = hidden_size / num_heads)"));
  }
  if (spec.num_heads() % spec.num_kv_heads() != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("num_heads ", spec.num_heads(), " is not divisible by num_kv_heads ",
                     spec.num_kv_heads()));
  }
  if (spec.norm() == cairn::v1::NORM_KIND_UNSPECIFIED) {
    return absl::InvalidArgumentError(
        "norm is unset: choose NORM_KIND_LAYERNORM or NORM_KIND_RMSNORM");
  }
  if (spec.activation() == cairn::v1::ACTIVATION_KIND_UNSPECIFIED) {
    return absl::InvalidArgumentError(
        "activation is unset: choose ACTIVATION_KIND_GELU or ACTIVATION_KIND_SWIGLU");
  }
  if (spec.position() == cairn::v1::POSITION_KIND_UNSPECIFIED) {
    return absl::InvalidArgumentError(
        "position is unset: choose POSITION_KIND_LEARNED or POSITION_KIND_ROPE");
  }
  // Enum values outside the known range can arrive as numbers in JSON.
  if (!cairn::v1::NormKind_IsValid(spec.norm())) {
    return absl::InvalidArgumentError(absl::StrCat("norm has unknown value ", spec.norm()));
  }
  if (!cairn::v1::ActivationKind_IsValid(spec.activation())) {
    return absl::InvalidArgumentError(
        absl::StrCat("activation has unknown value ", spec.activation()));
  }
  if (!cairn::v1::PositionKind_IsValid(spec.position())) {
    return absl::InvalidArgumentError(
        absl::StrCat("position has unknown value ", spec.position()));
  }
  const int head_dim = spec.hidden_size() / spec.num_heads();
  if (spec.position() == cairn::v1::POSITION_KIND_ROPE && head_dim % 2 != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("head dimension hidden_size / num_heads = ", head_dim,
                     " must be even with rotary positions (POSITION_KIND_ROPE)"));
  }
  return absl::OkStatus();
}

absl::StatusOr<ModelSpec> LoadModelSpecFile(const std::string& path) {
  CAIRN_ASSIGN_OR_RETURN(std::string text, ReadTextFile(path));
  // The file's base name without ".json"; for a Hugging Face "config.json", its folder's name.
  const size_t slash = path.find_last_of('/');
  std::string base = path.substr(slash + 1);
  if (absl::EndsWith(base, ".json")) base.resize(base.size() - 5);
  if (base == "config" && slash != std::string::npos && slash > 0) {
    const std::string dir = path.substr(0, slash);
    base = dir.substr(dir.find_last_of('/') + 1);
  }
  ModelSpec spec;
  if (IsHfConfig(text)) {
    CAIRN_ASSIGN_OR_RETURN(spec, ModelSpecFromHfConfig(text, path, base));
  } else {
    CAIRN_RETURN_IF_ERROR(ParseProtoJson(text, path, &spec));
  }
  if (spec.name().empty()) spec.set_name(base);
  const absl::Status valid = ValidateModelSpec(spec);
  if (!valid.ok()) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": ", valid.message()));
  }
  return spec;
}

absl::StatusOr<ModelSpec> ResolveModel(const std::string& name_or_path) {
  absl::StatusOr<ModelSpec> spec = LookupModel(name_or_path);
  if (spec.ok()) return spec;
  if (absl::EndsWith(name_or_path, ".json")) return LoadModelSpecFile(name_or_path);
  return absl::NotFoundError(absl::StrCat(
      "\"", name_or_path, "\" is neither a built-in model nor a .json ModelSpec file; built-in models: ",
      absl::StrJoin(ModelNames(), ", ")));
}

int64_t BlockParameterCount(const ModelSpec& spec) {
  const int64_t h = spec.hidden_size();
  const int64_t ffn = spec.ffn_hidden_size();
  const int64_t kv = static_cast<int64_t>(spec.num_kv_heads()) * (h / spec.num_heads());
  const bool bias = spec.bias();
  int64_t n = 2 * h * h + 2 * h * kv;               // Q, O; K, V
  if (bias) n += 2 * h + 2 * kv;
  if (spec.activation() == cairn::v1::ACTIVATION_KIND_SWIGLU) {
    n += 3 * h * ffn;                               // gate, up, down
    if (bias) n += 2 * ffn + h;
  } else {
    n += 2 * h * ffn;                               // up, down
    if (bias) n += ffn + h;
  }
  const int64_t norm = spec.norm() == cairn::v1::NORM_KIND_LAYERNORM && bias ? 2 * h : h;
  return n + 2 * norm;
}

int64_t ParameterCount(const ModelSpec& spec) {
  const int64_t h = spec.hidden_size();
  const int64_t vocab = spec.vocab_size();
  int64_t n = spec.num_layers() * BlockParameterCount(spec);
  n += vocab * h;                                                  // token embedding
  if (spec.position() == cairn::v1::POSITION_KIND_LEARNED) n += spec.max_seq_len() * h;
  n += spec.norm() == cairn::v1::NORM_KIND_LAYERNORM && spec.bias() ? 2 * h : h;  // final norm
  if (!spec.tied_embeddings()) n += vocab * h;                     // LM head
  return n;
}

}  // namespace cairn::planner
