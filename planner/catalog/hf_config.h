// planner/catalog/hf_config.h — a Hugging Face `config.json` as a Cairn ModelSpec.
//
// Hugging Face checkpoints describe their architecture in a config.json (transformers'
// PretrainedConfig). `--model path/to/config.json` accepts one wherever a ModelSpec file is
// accepted: LoadModelSpecFile (models.h) recognises it by its "architectures" or "model_type" key
// and converts it here, then validates the result like any ModelSpec.
//
//   CAIRN_ASSIGN_OR_RETURN(std::string text, ReadTextFile("Llama-2-7b-hf/config.json"));
//   if (IsHfConfig(text)) {
//     CAIRN_ASSIGN_OR_RETURN(cairn::v1::ModelSpec spec,
//                            ModelSpecFromHfConfig(text, "Llama-2-7b-hf/config.json", "llama2"));
//   }
//
// Supported architectures (HfArchitectures()) and how their fields map:
//   LlamaForCausalLM, MistralForCausalLM, Qwen2ForCausalLM, Qwen3ForCausalLM (Llama style: RMSNorm,
//   rotary positions, a gated MLP):
//     num_hidden_layers -> num_layers, hidden_size, intermediate_size -> ffn_hidden_size,
//     num_attention_heads -> num_heads, num_key_value_heads -> num_kv_heads (default: the heads),
//     vocab_size, max_position_embeddings -> max_seq_len, tie_word_embeddings (default false);
//     hidden_act "silu" -> SwiGLU (another activation is an error: Cairn's Llama-style block is
//     SwiGLU); bias only when both attention_bias and mlp_bias are true (Llama's options).
//   GPT2LMHeadModel: n_layer, n_embd, n_head (and as many kv heads), n_inner (null: 4 x n_embd),
//     n_positions (else n_ctx), vocab_size; LayerNorm, GELU (activation_function gelu*), learned
//     positions, biases, tie_word_embeddings (default true).
// What a ModelSpec cannot hold is refused or, where it changes only a small part of the cost,
// written into `source`: Qwen2's q/k/v biases (the other linears have none, so bias stays false),
// Mistral's and Qwen's sliding-window attention (costed as full causal attention). Refused: a
// head_dim other than hidden_size / num_attention_heads, mixture-of-experts configs
// (num_local_experts / num_experts > 1), any other architecture (the error lists the supported
// ones). The model's name is `_name_or_path`'s last component when the config has one, else
// `fallback_name`. Thread-safe (no shared state).
#ifndef CAIRN_PLANNER_CATALOG_HF_CONFIG_H_
#define CAIRN_PLANNER_CATALOG_HF_CONFIG_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "proto/cairn/v1/model.pb.h"

namespace cairn::planner {

// The architectures ModelSpecFromHfConfig converts (the names in a config's "architectures").
std::vector<std::string> HfArchitectures();

// True when `json` is a JSON object with an "architectures" or "model_type" key (a Hugging Face
// config, which a Cairn ModelSpec never has). False for anything else, malformed JSON included.
bool IsHfConfig(absl::string_view json);

// Converts a Hugging Face config. `what` names the file in messages (usually its path).
// Errors: InvalidArgument starting with `what`: malformed JSON, an unsupported architecture
// (listing the supported ones), a missing or non-integer required field (named), an activation,
// head_dim or expert count Cairn cannot represent. The result is not validated (LoadModelSpecFile
// validates it).
absl::StatusOr<cairn::v1::ModelSpec> ModelSpecFromHfConfig(absl::string_view json,
                                                           absl::string_view what,
                                                           absl::string_view fallback_name);

}  // namespace cairn::planner

#endif  // CAIRN_PLANNER_CATALOG_HF_CONFIG_H_
