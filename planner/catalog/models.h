// planner/catalog/models.h — the built-in model catalog and ModelSpec loading/validation.
//
// A cairn.v1.ModelSpec is the architecture and dimensions of a transformer (see
// proto/cairn/v1/model.proto). The catalog holds the published dimensions of GPT-2, GPT-3, Llama 2
// and Llama 3, plus two tiny models for CPU training and tests; docs/catalog.md lists them with their
// sources. A user's own model is a proto3 JSON file:
//
//   { "name": "my-7b", "num_layers": 32, "hidden_size": 4096, "ffn_hidden_size": 11008,
//     "num_heads": 32, "num_kv_heads": 32, "vocab_size": 32000, "max_seq_len": 4096,
//     "norm": "NORM_KIND_RMSNORM", "activation": "ACTIVATION_KIND_SWIGLU",
//     "position": "POSITION_KIND_ROPE" }
//
// (camelCase names such as "numLayers" are accepted too), or a Hugging Face config.json of a
// supported architecture (hf_config.h). Command-line tools take either form:
//
//   CAIRN_ASSIGN_OR_RETURN(cairn::v1::ModelSpec spec, ResolveModel(flag_model));
//
// All functions are thread-safe; the catalog is immutable.
#ifndef CAIRN_PLANNER_CATALOG_MODELS_H_
#define CAIRN_PLANNER_CATALOG_MODELS_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "proto/cairn/v1/model.pb.h"

namespace cairn::planner {

// Names of the built-in models, in catalog order (families together, smallest first).
std::vector<std::string> ModelNames();

// The built-in model called `name` (exact, case-sensitive). Every returned spec passes
// ValidateModelSpec and carries a `source` naming where its dimensions come from.
// Errors: NotFound listing every valid name.
absl::StatusOr<cairn::v1::ModelSpec> LookupModel(absl::string_view name);

// Checks that `spec` describes a buildable model: num_layers, hidden_size, ffn_hidden_size,
// num_heads, num_kv_heads, vocab_size and max_seq_len positive; hidden_size divisible by num_heads;
// num_heads divisible by num_kv_heads; norm, activation and position set; an even head dimension
// with rotary positions. The name may be empty.
// Errors: InvalidArgument naming the first offending field and its value.
absl::Status ValidateModelSpec(const cairn::v1::ModelSpec& spec);

// Reads a ModelSpec from a proto3 JSON file, or from a Hugging Face config.json (hf_config.h:
// recognised by its "architectures" / "model_type"), and validates it. When the file has no name,
// the file's base name without ".json" is used (for "config.json", its folder's name).
// Errors: NotFound (no such file), FailedPrecondition (a directory, unreadable), InvalidArgument
// (bad JSON, unknown field, invalid dimensions); every message starts with the path.
absl::StatusOr<cairn::v1::ModelSpec> LoadModelSpecFile(const std::string& path);

// A catalog name, else a path ending in ".json" (loaded with LoadModelSpecFile).
// Errors: NotFound listing the valid names when `name_or_path` is neither; LoadModelSpecFile's
// errors for a path.
absl::StatusOr<cairn::v1::ModelSpec> ResolveModel(const std::string& name_or_path);

// Parameters of one transformer block of `spec`: Q and O projections h x h, K and V h x (kv_heads x
// head_dim), the MLP (2 matrices h x ffn for GELU, 3 for SwiGLU), two norms (LayerNorm: gain and
// bias when `bias`, RMSNorm: gain), plus bias vectors of every linear when `bias`. Assumes a valid
// spec (ValidateModelSpec). Example: gpt2-124m -> 7,087,872; llama2-7b -> 202,383,360.
int64_t BlockParameterCount(const cairn::v1::ModelSpec& spec);

// Parameters of the whole model: blocks, token embedding, learned position table, final norm and an
// untied LM head (no bias). Example: gpt2-124m -> 124,439,808; llama2-7b -> 6,738,415,616.
int64_t ParameterCount(const cairn::v1::ModelSpec& spec);

}  // namespace cairn::planner

#endif  // CAIRN_PLANNER_CATALOG_MODELS_H_
