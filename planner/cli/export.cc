#include "planner/cli/export.h"

#include <algorithm>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "common/status_macros.h"
#include "common/units.h"
#include "planner/catalog/galvatron.h"
#include "planner/cost/cost_model.h"
#include "planner/cost/evaluate.h"
#include "planner/plan/plan_convert.h"
#include "planner/problem/proto_enums.h"

namespace cairn::cli {
namespace {

using planner::DpMode;
using planner::ModelDims;
using planner::ParallelMode;
using planner::PlanSpec;
using planner::Schedule;
using planner::SearchProblem;
using planner::Strategy;

constexpr const char* kExportFormats[] = {"megatron", "galvatron", "torchtitan", "deepspeed",
                                          "megatron-deepspeed"};

struct Candidate {
  double per_sample_s;
  PlanSpec plan;
  std::string label;
};

// The one strategy every block runs, for frameworks that apply one strategy to the whole model.
// The embedding and head must share its degree and data-parallel mode; recomputation is per model;
// tensor-parallel groups are consecutive ranks (the innermost dimension of their device meshes).
absl::StatusOr<Strategy> UniformBlockStrategy(const SearchProblem& problem, const PlanSpec& plan,
                                              const std::string& framework) {
  const int L = problem.model.num_layers;
  const Strategy& b = plan.layers[1];
  for (int i = 2; i <= L; ++i) {
    if (plan.layers[i].tp != b.tp || plan.layers[i].mode != b.mode ||
        plan.layers[i].dp != b.dp || plan.layers[i].tp_consecutive != b.tp_consecutive) {
      return absl::UnimplementedError(absl::StrCat(
          framework, " applies one parallel strategy to every block; this plan mixes ",
          Describe(b), " and ", Describe(plan.layers[i]), " across its blocks"));
    }
    if (plan.layers[i].recompute != b.recompute) {
      return absl::UnimplementedError(absl::StrCat(
          framework, " recomputes every block or none; this plan recomputes some blocks only"));
    }
  }
  if (b.tp > 1 && !b.tp_consecutive) {
    return absl::UnimplementedError(absl::StrCat(
        framework, " puts a tensor-parallel group on consecutive ranks; this plan strides it"));
  }
  for (int i : {0, L + 1}) {
    if (plan.layers[i].tp != b.tp || plan.layers[i].dp != b.dp) {
      return absl::UnimplementedError(absl::StrCat(
          framework, " gives the embedding and head the blocks' parallel degree and data-parallel "
          "mode; this plan's ", i == 0 ? "embedding" : "head", " runs ",
          Describe(plan.layers[i]), " beside blocks of ", Describe(b)));
    }
  }
  return b;
}

// Samples per device per micro-batch (what the frameworks call the micro-batch size).
absl::StatusOr<int> DeviceMicroBatch(const PlanSpec& plan, int dp, const std::string& framework) {
  const int per_micro = plan.micro_batch();
  if (plan.num_micro_batches <= 0 || plan.global_batch % plan.num_micro_batches != 0 ||
      per_micro % dp != 0) {
    return absl::UnimplementedError(absl::StrCat(
        framework, " gives every data-parallel rank the same whole number of samples per "
        "micro-batch; this plan's ", per_micro, " samples per micro-batch do not split over ", dp,
        " data-parallel ranks"));
  }
  return per_micro / dp;
}

std::string TomlString(const std::string& s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') out += '\\';
    out += c;
  }
  return out + "\"";
}

// TorchTitan's llama3 flavors whose dimensions equal the Cairn catalog entries.
std::string TorchTitanFlavor(const ModelDims& md) {
  if (md.name == "llama3-8b") return "8B";
  if (md.name == "llama3-70b") return "70B";
  if (md.name == "llama3-405b") return "405B";
  return md.name;
}

// module_fqns_per_model_part: the modules of each model chunk in TorchTitan's llama3 naming
// (tok_embeddings, layers.0 .. layers.L-1, norm + output), one chunk per line.
std::string TorchTitanModelParts(const PlanSpec& plan, int num_layers) {
  std::vector<std::string> parts;
  for (int c = 0; c < plan.num_chunks(); ++c) {
    std::vector<std::string> modules;
    const int first = plan.FirstLayer(c);
    for (int i = first; i < first + plan.stage_layers[c]; ++i) {
      if (i == 0) {
        modules.push_back(TomlString("tok_embeddings"));
      } else if (i == num_layers + 1) {
        modules.push_back(TomlString("norm"));
        modules.push_back(TomlString("output"));
      } else {
        modules.push_back(TomlString(absl::StrCat("layers.", i - 1)));
      }
    }
    parts.push_back(absl::StrCat("  [", absl::StrJoin(modules, ", "), "]"));
  }
  return absl::StrCat("[\n", absl::StrJoin(parts, ",\n"), ",\n]");
}

// Megatron-DeepSpeed's names for the model (its defaults: LayerNorm, GELU, learned positions,
// tied embeddings, biases).
std::string MegatronDeepSpeedModelFlags(const SearchProblem& problem) {
  const ModelDims& md = problem.model;
  std::string out = absl::StrFormat(
      "--num-layers %d --hidden-size %d --ffn-hidden-size %d --num-attention-heads %d",
      md.num_layers, md.hidden, md.ffn_hidden, md.num_heads);
  if (md.num_kv_heads > 0 && md.num_kv_heads != md.num_heads) {
    absl::StrAppendFormat(&out, " --num-key-value-heads %d", md.num_kv_heads);
  }
  absl::StrAppendFormat(&out, " --seq-length %d --max-position-embeddings %d", problem.seq_len,
                        std::max(md.max_seq_len, problem.seq_len));
  if (md.rms_norm) absl::StrAppend(&out, " --normalization rmsnorm");
  if (md.swiglu) absl::StrAppend(&out, " --swiglu");
  if (md.rope) absl::StrAppend(&out, " --use-rotary-position-embeddings --no-position-embedding");
  if (!md.tied_embeddings) absl::StrAppend(&out, " --untie-embeddings-and-output-weights");
  if (!md.bias) absl::StrAppend(&out, " --disable-bias-linear");
  return out;
}

// For the frameworks that apply one strategy to the whole model (TorchTitan, DeepSpeed): the
// fastest plan, scored by the local cost model, that `c`'s plan becomes with one strategy for every
// block (each block strategy the plan uses, with and without recomputation), the embedding and head
// on that strategy's degree and data-parallel mode, and, for DeepSpeed's pipeline, equal stages;
// among those that fit and `format` expresses. The Megatron-LM re-split (MegatronStageSplit) is the
// same idea for Megatron's stage rule. NotFound when none does.
absl::StatusOr<Candidate> UniformSubstitute(const std::string& format, const SearchProblem& problem,
                                            const planner::CostModel& cm, const Candidate& c) {
  const int L = problem.model.num_layers;
  const int p = c.plan.pipeline_degree();
  std::vector<Strategy> block_strategies;
  for (int i = 1; i <= L; ++i) {
    Strategy s = c.plan.layers[i];
    s.recompute = false;
    if (std::find(block_strategies.begin(), block_strategies.end(), s) == block_strategies.end()) {
      block_strategies.push_back(s);
    }
  }
  absl::StatusOr<Candidate> best = absl::NotFoundError("no uniform variant fits");
  for (const Strategy& s : block_strategies) {
    for (bool recompute : {false, true}) {
      PlanSpec q = c.plan;
      for (int i = 0; i <= L + 1; ++i) {
        q.layers[i] = s;
        q.layers[i].recompute = recompute && i >= 1 && i <= L;
      }
      if (format != "torchtitan" && p > 1 && L % p == 0 && c.plan.virtual_stages == 1) {
        q.stage_layers.assign(p, L / p);
        q.stage_layers.front() += 1;
        q.stage_layers.back() += 1;
      }
      if (!ExportPlan(format, problem, q).ok()) continue;
      absl::StatusOr<planner::Evaluation> e = planner::Evaluate(cm, q);
      if (!e.ok() || !e->feasible) continue;
      const double per_sample_s = e->step_time_s / q.global_batch;
      if (!best.ok() || per_sample_s < best->per_sample_s) {
        best = Candidate{per_sample_s, q,
                         absl::StrCat(c.label, " with one strategy for every layer")};
      }
    }
  }
  return best;
}

}  // namespace

bool IsExportFormat(const std::string& format) {
  return std::find(std::begin(kExportFormats), std::end(kExportFormats), format) !=
         std::end(kExportFormats);
}

absl::Status CheckOutputFormat(const std::string& format) {
  if (format == "text" || format == "json" || IsExportFormat(format)) return absl::OkStatus();
  return absl::InvalidArgumentError(absl::StrCat("--format must be text, json, ",
                                                 absl::StrJoin(kExportFormats, ", "), "; got '",
                                                 format, "'"));
}

void RestrictSpaceForExport(const std::string& format, cairn::v1::SearchSpace* space) {
  if (format == "torchtitan") {
    if (space->dp_modes().empty()) {
      space->add_dp_modes(planner::ToProto(DpMode::kDdp));
      space->add_dp_modes(planner::ToProto(DpMode::kZero3));
    }
    if (space->modes().empty()) space->add_modes(planner::ToProto(ParallelMode::kTensorSequence));
  } else if (format == "deepspeed" || format == "megatron-deepspeed") {
    if (space->schedules().empty()) space->add_schedules(planner::ToProto(Schedule::k1F1B));
  }
}

absl::StatusOr<std::string> TorchTitanToml(const SearchProblem& problem, const PlanSpec& plan) {
  const ModelDims& md = problem.model;
  if (!md.rms_norm || !md.swiglu || !md.rope || md.bias || md.tied_embeddings) {
    return absl::UnimplementedError(absl::StrCat(
        "TorchTitan's llama3 model has RMSNorm, SwiGLU, rotary positions, no biases and untied "
        "embeddings; ", md.name, " has ", md.rms_norm ? "RMSNorm" : "LayerNorm", ", ",
        md.swiglu ? "SwiGLU" : "GELU", ", ", md.rope ? "rotary" : "learned", " positions, ",
        md.bias ? "biases" : "no biases", " and ", md.tied_embeddings ? "tied" : "untied",
        " embeddings"));
  }
  // What no layer may use, checked before the uniformity the substitutes can repair.
  for (const Strategy& s : plan.layers) {
    if (s.ulysses()) {
      return absl::UnimplementedError(
          "TorchTitan has no Ulysses (all-to-all) sequence parallelism; its context parallelism "
          "is ring attention, which the plan was not costed with");
    }
    if (s.dp == DpMode::kZero1 || s.dp == DpMode::kZero2) {
      return absl::UnimplementedError(absl::StrCat(
          "TorchTitan has no ", ToString(s.dp), ": its FSDP2 shards parameters, gradients and "
          "optimizer states together (ZeRO-3) and its DDP shards nothing; plan with --dp-modes "
          "ddp,zero3 for a plan it runs"));
    }
  }
  CAIRN_ASSIGN_OR_RETURN(const Strategy b, UniformBlockStrategy(problem, plan, "TorchTitan"));
  if (problem.precision.grad_bytes == 2) {
    return absl::UnimplementedError(
        "TorchTitan reduces gradients in float32 only (mixed_precision_reduce); this plan was "
        "costed with gradients reduced in bf16");
  }
  const int p = plan.pipeline_degree();
  const int N = problem.hardware.num_devices();
  const int dp = N / p / b.tp;
  CAIRN_ASSIGN_OR_RETURN(const int micro, DeviceMicroBatch(plan, dp, "TorchTitan"));
  // With a pipeline, a step's micro-batches are the schedule's (local batch = all of them); without
  // one they are gradient-accumulation steps (local batch = one micro-batch).
  const int local_batch = p > 1 ? micro * plan.num_micro_batches : micro;
  std::string out = absl::StrFormat(
      "# TorchTitan job config (torchtitan/config/job_config.py) written by cairn %s for %s on "
      "%d devices.\n# Run: torchrun --nproc_per_node %d ... -m torchtitan.train "
      "--job.config_file THIS.toml\n\n",
      kCairnVersion, md.name, N, problem.hardware.devices_per_node);
  absl::StrAppend(&out, "[job]\ndump_folder = \"./outputs\"\ndescription = ",
                  TomlString(absl::StrFormat("%s: Cairn plan, TP %d x PP %d x %s %d", md.name,
                                             b.tp, p, b.dp == DpMode::kZero3 ? "FSDP" : "DDP",
                                             dp)),
                  "\n\n");
  absl::StrAppend(&out, "[model]\nname = \"llama3\"\nflavor = ", TomlString(TorchTitanFlavor(md)),
                  "\n");
  if (TorchTitanFlavor(md) == md.name) {
    absl::StrAppendFormat(
        &out,
        "# TorchTitan has no flavor of these dimensions: register one named \"%s\" with dim = %d, "
        "n_layers = %d, n_heads = %d,\n# n_kv_heads = %d, vocab_size = %d and multiple_of / "
        "ffn_dim_multiplier that give an FFN width of %d.\n",
        md.name, md.hidden, md.num_layers, md.num_heads, md.num_kv_heads, md.vocab, md.ffn_hidden);
  }
  absl::StrAppendFormat(&out,
                        "\n[training]\nlocal_batch_size = %d\nglobal_batch_size = %d\n"
                        "seq_len = %d\nmixed_precision_param = \"%s\"\n"
                        "mixed_precision_reduce = \"float32\"\n"
                        "# steps: not part of a plan (TorchTitan's default applies)\n\n",
                        local_batch, plan.global_batch, problem.seq_len,
                        problem.precision.param_bytes == 2 ? "bfloat16" : "float32");
  absl::StrAppendFormat(&out,
                        "[parallelism]\ndata_parallel_replicate_degree = %d\n"
                        "data_parallel_shard_degree = %d\n",
                        b.dp == DpMode::kZero3 ? 1 : dp, b.dp == DpMode::kZero3 ? dp : 1);
  if (b.dp != DpMode::kZero3 && dp > 1 && (b.tp > 1 || p > 1)) {
    absl::StrAppend(&out,
                    "# DDP beside TP/PP needs a TorchTitan whose DDP takes the dp_replicate mesh "
                    "(older ones raise\n# \"DDP has not supported > 1D parallelism\")\n");
  }
  if (b.dp == DpMode::kZero3 && dp > 1) {
    // Cairn's ZeRO-3 gathers a layer's weights again for its backward.
    absl::StrAppend(&out, "fsdp_reshard_after_forward = \"always\"\n");
  }
  absl::StrAppendFormat(&out, "tensor_parallel_degree = %d\nenable_async_tensor_parallel = false\n",
                        b.tp);
  if (b.tp > 1 && b.mode == ParallelMode::kTensor) {
    absl::StrAppend(&out,
                    "# TorchTitan's tensor parallelism always shards the sequence between blocks "
                    "(sequence parallelism):\n# less activation memory than this plan's TP, the "
                    "same communication volume.\n");
  }
  absl::StrAppendFormat(&out, "pipeline_parallel_degree = %d\n", p);
  if (p > 1) {
    const char* schedule = plan.schedule == Schedule::kGPipe            ? "GPipe"
                           : plan.schedule == Schedule::kInterleaved1F1B ? "Interleaved1F1B"
                                                                         : "1F1B";
    absl::StrAppendFormat(&out,
                          "pipeline_parallel_schedule = \"%s\"\n"
                          "pipeline_parallel_microbatch_size = %d\n"
                          "module_fqns_per_model_part = %s\n",
                          schedule, micro, TorchTitanModelParts(plan, md.num_layers));
  }
  absl::StrAppend(&out, "context_parallel_degree = 1\n\n[activation_checkpoint]\nmode = ",
                  b.recompute ? "\"full\"" : "\"none\"", "\n");
  return out;
}

absl::StatusOr<DeepSpeedExport> ExportDeepSpeed(const SearchProblem& problem,
                                                const PlanSpec& plan) {
  CAIRN_ASSIGN_OR_RETURN(const Strategy b, UniformBlockStrategy(problem, plan, "DeepSpeed"));
  const int p = plan.pipeline_degree();
  const int N = problem.hardware.num_devices();
  const int dp = N / p / b.tp;
  if (p > 1) {
    if (plan.schedule != Schedule::k1F1B) {
      return absl::UnimplementedError(absl::StrCat(
          "DeepSpeed's pipeline engine runs its own 1F1B schedule; this plan runs ",
          ToString(plan.schedule)));
    }
    if (b.dp == DpMode::kZero2 || b.dp == DpMode::kZero3) {
      return absl::UnimplementedError(absl::StrCat(
          "DeepSpeed's pipeline engine takes ZeRO stage 0 or 1 only; this plan pipelines ", p,
          " stages with ", ToString(b.dp)));
    }
    const int L = problem.model.num_layers;
    for (int s = 0; s < p; ++s) {
      const int blocks = plan.stage_layers[s] - (s == 0) - (s == p - 1);
      if (blocks * p != L) {
        return absl::UnimplementedError(absl::StrCat(
            "DeepSpeed's pipeline (partition-method type:transformer) gives every stage the same "
            "number of blocks; this plan's stage ", s, " holds ", blocks, " of ", L, " blocks on ",
            p, " stages"));
      }
    }
  }
  CAIRN_ASSIGN_OR_RETURN(const int micro, DeviceMicroBatch(plan, dp, "DeepSpeed"));
  const int stage = b.dp == DpMode::kDdp ? 0 : b.dp == DpMode::kZero1 ? 1
                    : b.dp == DpMode::kZero2                       ? 2
                                                                   : 3;
  const bool bf16 = problem.precision.param_bytes == 2;
  const char* grad_dtype = problem.precision.grad_bytes == 2 ? "bf16" : "fp32";
  DeepSpeedExport ds;
  ds.config_json = absl::StrFormat(
      "{\n"
      "  \"train_batch_size\": %d,\n"
      "  \"train_micro_batch_size_per_gpu\": %d,\n"
      "  \"gradient_accumulation_steps\": %d,\n"
      "  \"zero_optimization\": {\n"
      "    \"stage\": %d,\n"
      "    \"overlap_comm\": %s,\n"
      "    \"contiguous_gradients\": true\n"
      "  },\n"
      "  \"bf16\": {\"enabled\": %s},\n"
      "  \"communication_data_type\": \"%s\",\n"
      "  \"data_types\": {\"grad_accum_dtype\": \"%s\"}",
      plan.global_batch, micro, plan.num_micro_batches, stage,
      problem.runtime.overlap_grad_reduce ? "true" : "false", bf16 ? "true" : "false", grad_dtype,
      grad_dtype);
  if (b.recompute) {
    absl::StrAppend(&ds.config_json,
                    ",\n  \"activation_checkpointing\": {\n"
                    "    \"partition_activations\": false,\n"
                    "    \"cpu_checkpointing\": false,\n"
                    "    \"contiguous_memory_optimization\": false,\n"
                    "    \"synchronize_checkpoint_boundary\": false\n"
                    "  }");
  }
  absl::StrAppend(&ds.config_json, "\n}");
  ds.needs_megatron_deepspeed = b.tp > 1 || p > 1;
  // Megatron-DeepSpeed: Ulysses is its DeepSpeed sequence parallelism (--ds-sequence-parallel-size,
  // tensor parallelism 1); without a pipeline its DeepSpeed pipeline engine is switched off.
  ds.launcher_flags = absl::StrFormat(
      "--deepspeed --deepspeed_config ds_config.json --zero-stage %d "
      "--tensor-model-parallel-size %d --pipeline-model-parallel-size %d",
      stage, b.ulysses() ? 1 : b.tp, p);
  if (b.ulysses()) {
    absl::StrAppendFormat(&ds.launcher_flags, " --ds-sequence-parallel-size %d", b.tp);
  }
  if (b.tp > 1 && b.mode == ParallelMode::kTensorSequence) {
    absl::StrAppend(&ds.launcher_flags, " --sequence-parallel");
  }
  if (p == 1) absl::StrAppend(&ds.launcher_flags, " --no-pipeline-parallel");
  if (b.recompute) {
    absl::StrAppend(&ds.launcher_flags,
                    " --recompute-granularity full --recompute-method uniform"
                    " --deepspeed-activation-checkpointing");
  }
  absl::StrAppendFormat(&ds.launcher_flags, " --micro-batch-size %d --global-batch-size %d %s",
                        micro, plan.global_batch, MegatronDeepSpeedModelFlags(problem));
  if (bf16) absl::StrAppend(&ds.launcher_flags, " --bf16");
  return ds;
}

absl::StatusOr<ExportedPlan> ExportPlan(const std::string& format, const SearchProblem& problem,
                                        const PlanSpec& plan) {
  ExportedPlan e;
  if (format == "megatron") {
    CAIRN_ASSIGN_OR_RETURN(e.text, planner::MegatronFlags(problem, plan));
  } else if (format == "galvatron") {
    CAIRN_ASSIGN_OR_RETURN(e.text, planner::ExportGalvatronStrategy(
                                       plan, problem.model, problem.hardware.num_devices()));
  } else if (format == "torchtitan") {
    CAIRN_ASSIGN_OR_RETURN(e.text, TorchTitanToml(problem, plan));
  } else if (format == "deepspeed" || format == "megatron-deepspeed") {
    CAIRN_ASSIGN_OR_RETURN(DeepSpeedExport ds, ExportDeepSpeed(problem, plan));
    e.text = format == "deepspeed" ? ds.config_json : ds.launcher_flags;
    if (format == "deepspeed" && ds.needs_megatron_deepspeed) {
      e.note = absl::StrCat(
          "cairn: this plan's tensor/pipeline/Ulysses parallelism needs Megatron-DeepSpeed; save "
          "the config as ds_config.json and launch pretrain_gpt.py with (--format "
          "megatron-deepspeed prints them alone):\n  ",
          ds.launcher_flags, "\n");
    }
  } else {
    return absl::InvalidArgumentError(absl::StrCat("'", format, "' is not an export format (",
                                                   absl::StrJoin(kExportFormats, ", "), ")"));
  }
  return e;
}

int PrintExport(const SearchProblem& problem, const cairn::v1::SearchResponse& response,
                const std::string& format, bool allow_resplit, std::ostream& out,
                std::ostream& err) {
  if (!IsExportFormat(format)) {
    err << "cairn: " << CheckOutputFormat(format).message() << "\n";
    return 2;
  }
  if (response.plans_size() == 0) {
    err << "cairn: " << response.infeasible_reason() << "\n";
    return 1;
  }
  SearchProblem pb = problem;
  pb.hardware.num_nodes = response.plans(0).num_nodes();
  pb.hardware.devices_per_node = response.plans(0).devices_per_node();
  std::vector<Candidate> candidates;
  auto add = [&](const cairn::v1::Plan& p, const std::string& label) {
    absl::StatusOr<PlanSpec> spec = planner::PlanSpecFromProto(pb, p);
    if (!spec.ok() || spec->global_batch <= 0) return;
    candidates.push_back({p.prediction().step_time_s() / spec->global_batch, *spec, label});
  };
  for (int i = 0; i < response.plans_size(); ++i) {
    add(response.plans(i), i == 0 ? "the best plan" : "search plan");
  }
  for (const cairn::v1::Baseline& b : response.baselines()) {
    if (b.feasible()) add(b.plan(), absl::StrCat(b.family(), " (", b.description(), ")"));
  }
  if (candidates.empty()) {
    err << "cairn: the answer's plans do not match the problem\n";
    return 1;
  }
  const double best_step_s = response.plans(0).prediction().step_time_s();
  // Substitutes for the candidates the framework cannot express, scored by the local cost model:
  // only when it has the hardware the response was scored on.
  if (allow_resplit && format != "galvatron") {
    const planner::CostModel cm(pb);
    const size_t n = candidates.size();
    for (size_t i = 0; i < n; ++i) {
      if (ExportPlan(format, pb, candidates[i].plan).ok()) continue;
      if (format == "megatron") {
        planner::Evaluation e;
        absl::StatusOr<PlanSpec> q = planner::MegatronStageSplit(pb, candidates[i].plan, &e);
        if (!q.ok()) continue;
        candidates.push_back({e.step_time_s / q->global_batch, *q,
                              candidates[i].label + " with stages re-split for Megatron-LM"});
      } else if (absl::StatusOr<Candidate> u = UniformSubstitute(format, pb, cm, candidates[i]);
                 u.ok()) {
        candidates.push_back(*std::move(u));
      }
    }
  }
  std::stable_sort(candidates.begin(), candidates.end(),
                   [](const Candidate& x, const Candidate& y) {
                     return x.per_sample_s < y.per_sample_s;
                   });
  // Why the best plan itself is not expressible: a faster candidate (a re-split, a baseline) may be
  // printed before any inexpressible one was tried, so this is asked of the best plan directly.
  absl::Status best_error;
  for (const Candidate& c : candidates) {
    if (c.label == "the best plan") best_error = ExportPlan(format, pb, c.plan).status();
  }
  absl::Status first_error;
  for (const Candidate& c : candidates) {
    absl::StatusOr<ExportedPlan> exported = ExportPlan(format, pb, c.plan);
    if (!exported.ok()) {
      if (first_error.ok()) first_error = exported.status();
      continue;
    }
    if (c.label != "the best plan") {
      err << "cairn: the best plan is not expressible in " << format << " ("
          << (best_error.ok() ? first_error : best_error).message() << "); printing " << c.label
          << ", "
          << FormatSeconds(c.per_sample_s * c.plan.global_batch) << " per step vs "
          << FormatSeconds(best_step_s) << "\n";
    }
    out << exported->text << "\n";
    err << exported->note;
    return 0;
  }
  err << "cairn: no plan that fits is expressible in " << format << ": " << first_error.message()
      << "\n";
  for (const cairn::v1::Baseline& b : response.baselines()) {
    if (!b.feasible() && format == "megatron" && absl::StartsWith(b.family(), "megatron")) {
      err << "  " << b.family() << " baseline: " << b.reason() << "\n";
    }
  }
  return 1;
}

int PrintPlanResponseExport(const SearchProblem& problem, const cairn::v1::PlanResponse& response,
                            const std::string& format, bool allow_resplit, std::ostream& out,
                            std::ostream& err) {
  if (format == "megatron" &&
      (!response.megatron_flags().empty() || !response.megatron_note().empty())) {
    if (!response.megatron_note().empty()) err << "cairn: " << response.megatron_note() << "\n";
    if (response.megatron_flags().empty()) return 1;
    out << response.megatron_flags() << "\n";
    return 0;
  }
  return PrintExport(problem, response.result(), format, allow_resplit, out, err);
}

}  // namespace cairn::cli
