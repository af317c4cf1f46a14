// planner/cli/export.h — `cairn plan --format megatron|galvatron|torchtitan|deepspeed|
// megatron-deepspeed`: the fastest plan of a search answer that another framework can express,
// written in that framework's own form, for the local search and the planner daemon alike.
//
//   int status = PrintExport(problem, response, "torchtitan", /*allow_resplit=*/true, out, err);
//
// Candidates, fastest (time per sample) first: the search's plans, then the feasible uniform
// baselines (which the search space restricts as it restricts the search). For Megatron-LM, a plan
// whose stages Megatron cannot express is also offered re-split with equal middle stages
// (planner::MegatronStageSplit, scored by the local cost model). When the printed plan is not the
// best plan, stderr says which it is, what it costs, and why the best one is not expressible.
//
// The formats (one function each below; ExportPlan picks one by name):
//   megatron            one line of Megatron-LM flags (planner::MegatronFlags)
//   galvatron           Galvatron's strategy JSON (planner::ExportGalvatronStrategy)
//   torchtitan          a TorchTitan job config TOML (TorchTitanToml)
//   deepspeed           a DeepSpeed config JSON (DeepSpeedExport::config_json); when the plan needs
//                       tensor, pipeline or Ulysses parallelism, which DeepSpeed gets from
//                       Megatron-DeepSpeed, its launcher flags go to stderr beside it
//   megatron-deepspeed  those Megatron-DeepSpeed flags alone (DeepSpeedExport::launcher_flags)
//
// Every per-format function is pure and returns Unimplemented, with one sentence saying exactly
// what the framework cannot express, for a plan it cannot run as costed. Thread-safe.
#ifndef CAIRN_PLANNER_CLI_EXPORT_H_
#define CAIRN_PLANNER_CLI_EXPORT_H_

#include <ostream>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "planner/problem/problem.h"
#include "proto/cairn/v1/search.pb.h"
#include "proto/cairn/v1/service.pb.h"

namespace cairn::cli {

// True for the export formats above (not "text" or "json").
bool IsExportFormat(const std::string& format);

// OK for "text", "json" and the export formats; InvalidArgument listing them otherwise (for the
// `--format` flag of `cairn plan` and `cairn plans show`).
absl::Status CheckOutputFormat(const std::string& format);

// What a search for `format` may return, where the request leaves it open: an empty (unrestricted)
// list of data-parallel modes, parallel modes or schedules becomes the ones the framework runs
// (torchtitan: DDP and ZeRO-3 = FSDP2, TP with sequence parallelism; deepspeed and
// megatron-deepspeed: 1F1B). Lists the user gave are kept. Per-layer strategies stay searched
// (--uniform-layers would narrow the search to the baseline families, which have no FSDP with TP or
// PP): a plan that mixes them falls back, like any plan outside the framework, to the fastest
// expressible candidate, saying so. No-op for other formats ("megatron" is searched under the
// megatron-core runtime traits instead, planner/cost/runtime_traits.h).
void RestrictSpaceForExport(const std::string& format, cairn::v1::SearchSpace* space);

// A TorchTitan job config (torchtitan/config/job_config.py, the TOML form `--job.config_file`
// reads) that runs `plan` for `problem`: [job], [model] (name "llama3"; flavor "8B"/"70B"/"405B"
// for the Llama 3 catalog models, else the Cairn model name with the dimensions to register it
// under in a comment), [training] (local_batch_size, global_batch_size, seq_len, mixed precision),
// [parallelism] (data_parallel_replicate_degree for DDP or data_parallel_shard_degree for ZeRO-3,
// tensor_parallel_degree, pipeline_parallel_degree/_schedule/_microbatch_size and
// module_fqns_per_model_part for the stage split, context_parallel_degree 1) and
// [activation_checkpoint] (mode "full" or "none"). Training steps are not part of a plan and are
// left to TorchTitan's default (a comment says so).
// Unimplemented when TorchTitan cannot run the plan as costed: blocks with different strategies,
// embedding or head with another TP degree or data-parallel mode than the blocks, recomputation of
// some blocks only, tensor-parallel groups strided over the ranks, Ulysses, ZeRO-1/2, a model other than Llama style (RMSNorm, SwiGLU, RoPE, no
// biases, untied embeddings), gradients reduced in bf16, a micro-batch that does not split evenly
// over the data-parallel ranks.
absl::StatusOr<std::string> TorchTitanToml(const planner::SearchProblem& problem,
                                           const planner::PlanSpec& plan);

struct DeepSpeedExport {
  // The DeepSpeed config (deepspeed.ai/docs/config-json): train_batch_size,
  // train_micro_batch_size_per_gpu, gradient_accumulation_steps, zero_optimization.stage,
  // bf16.enabled, communication_data_type, data_types.grad_accum_dtype, activation_checkpointing
  // when the plan recomputes. No gradient_clipping: a plan does not know it.
  std::string config_json;
  // Megatron-DeepSpeed (microsoft/Megatron-DeepSpeed pretrain_gpt.py) flags that launch the plan
  // with this config as ds_config.json: parallel degrees, ZeRO stage, batch, sequence, the model.
  std::string launcher_flags;
  // True when the plan needs Megatron-DeepSpeed (TP, Ulysses or PP > 1); plain DeepSpeed otherwise.
  bool needs_megatron_deepspeed = false;
};

// DeepSpeed's form of `plan`. Unimplemented when it cannot run the plan as costed: blocks with
// different strategies, embedding or head with another degree or mode than the blocks, some blocks
// recomputed and others not, strided tensor-parallel groups, a pipeline that is not 1F1B or has uneven stages (its pipeline engine
// gives every stage the same number of blocks), ZeRO-2/3 with pipeline parallelism (its pipeline
// engine takes ZeRO-0/1 only), a micro-batch that does not split evenly over the data-parallel
// ranks.
absl::StatusOr<DeepSpeedExport> ExportDeepSpeed(const planner::SearchProblem& problem,
                                                const planner::PlanSpec& plan);

// One plan in `format`: `text` is what goes to stdout; `note` (possibly empty) what goes to stderr
// beside it. InvalidArgument for a format that is not an export format; the per-format errors
// otherwise.
struct ExportedPlan {
  std::string text;
  std::string note;
};
absl::StatusOr<ExportedPlan> ExportPlan(const std::string& format,
                                        const planner::SearchProblem& problem,
                                        const planner::PlanSpec& plan);

// `problem` is the search the response answers (the cluster shape is taken from the plans);
// `allow_resplit` only when its hardware is the one the response was scored on. Returns 0 after
// printing the fastest expressible candidate in `format`, 1 when no candidate is expressible
// (stderr says why, and for Megatron why its baselines do not fit), 2 for a format that is not an
// export format.
int PrintExport(const planner::SearchProblem& problem, const cairn::v1::SearchResponse& response,
                const std::string& format, bool allow_resplit, std::ostream& out,
                std::ostream& err);

// A planner daemon's answer (`cairn --planner ADDR plan --format F`) printed in `format`. For
// "megatron", the answer's own PlanResponse.megatron_flags (stdout) and megatron_note (stderr,
// "cairn: " before it) when it carries either: the daemon rendered them with PrintExport on the
// hardware it searched (a stored profile's too, which this side may not have); exit 0 with flags,
// 1 with a note only. Otherwise, and for the other formats, PrintExport of the answer's result.
int PrintPlanResponseExport(const planner::SearchProblem& problem,
                            const cairn::v1::PlanResponse& response, const std::string& format,
                            bool allow_resplit, std::ostream& out, std::ostream& err);

}  // namespace cairn::cli

#endif  // CAIRN_PLANNER_CLI_EXPORT_H_
