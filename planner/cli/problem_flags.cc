#include "planner/cli/problem_flags.h"

#include <algorithm>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/status_macros.h"
#include "common/units.h"
#include "planner/catalog/clusters.h"
#include "planner/catalog/galvatron.h"
#include "planner/catalog/json_io.h"
#include "planner/catalog/models.h"
#include "planner/cli/export.h"
#include "planner/problem/problem_builder.h"
#include "planner/problem/proto_enums.h"

namespace cairn::cli {

void AddProblemFlags(Flags& f) {
  f.Value("model", "NAME|FILE.json",
          "catalog model (cairn models), a ModelSpec in proto3 JSON or a Hugging Face config.json",
          "llama2-7b")
      .Value("cluster", "NAME", "catalog cluster (cairn clusters)", "h100-sxm")
      .Value("nodes", "N", "nodes in the cluster", "1")
      .Value("gpus-per-node", "G", "devices per node (0: the cluster's)", "0")
      .Value("global-batch", "B", "samples per optimizer step (this or --batch-range is required)")
      .Value("batch-range", "MIN:MAX:STEP", "search the global batch too")
      .Value("seq-len", "S", "tokens per sample (default: min(4096, the model's maximum))")
      .Value("memory-gb", "X", "per-device memory budget, GiB (default: the device's memory)")
      .Value("hardware-profile", "FILE.json",
             "a HardwareProfile (proto3 JSON) instead of --cluster")
      .Value("galvatron-hardware", "DIR",
             "import Galvatron's hardware profile files over the cluster")
      .Value("model-profile", "FILE.json", "measured layer times instead of the analytic model")
      .Value("galvatron-model-profile", "COMP.json[,MEM.json]",
             "Galvatron's measured layer times instead of the analytic model")
      .Value("dtype", "bf16|fp32", "runtime precision: bf16 mixed (GPU) or fp32 (CPU runtime)",
             "bf16")
      .Value("runtime", "cairn|megatron-core",
             "the runtime the plan will run on (default: cairn; megatron-core with --format "
             "megatron)")
      .Value("threads", "N", "search threads (0: every core)", "0")
      .Value("pp", "1,2,4", "pipeline degrees to search (default: every one dividing the devices)")
      .Value("max-tp", "T", "largest tensor-parallel degree (0: the devices per node)", "0")
      .Value("micro-batches", "8,16",
             "micro-batch counts to search (default: every one dividing the batch)")
      .Value("schedules", "1f1b,gpipe,interleaved", "pipeline schedules to search (default: 1f1b)")
      .Value("dp-modes", "ddp,zero1,zero2,zero3", "data-parallel modes to search (default: all)")
      .Value("modes", "tp,tp+sp,ulysses", "tensor/sequence modes to search (default: all)")
      .Value("memory-quantum-mb", "Q", "DP memory resolution, MiB (0: device memory / 2048)", "0")
      .Value("simplicity-tolerance", "F",
             "among plans within this fraction of the fastest, the simplest first (0: the "
             "fastest)",
             "0.01")
      .Bool("no-recompute", "never recompute activations")
      .Bool("uniform-layers", "one strategy for every block");
}

absl::Status CheckOutputFiles(const Flags& a) {
  for (const char* flag : {"output", "svg", "html"}) {
    if (a.Has(flag)) CAIRN_RETURN_IF_ERROR(planner::CheckWritableFile(a.Get(flag)));
  }
  return absl::OkStatus();
}

absl::StatusOr<planner::ParallelMode> ParseMode(absl::string_view s) {
  if (s == "tp") return planner::ParallelMode::kTensor;
  if (s == "tp+sp" || s == "sp") return planner::ParallelMode::kTensorSequence;
  if (s == "ulysses") return planner::ParallelMode::kUlysses;
  return absl::InvalidArgumentError(absl::StrCat("unknown mode '", s, "' (tp, tp+sp, ulysses)"));
}

absl::StatusOr<planner::DpMode> ParseDpMode(absl::string_view s) {
  if (s == "ddp") return planner::DpMode::kDdp;
  if (s == "zero1") return planner::DpMode::kZero1;
  if (s == "zero2") return planner::DpMode::kZero2;
  if (s == "zero3" || s == "fsdp") return planner::DpMode::kZero3;
  return absl::InvalidArgumentError(
      absl::StrCat("unknown data-parallel mode '", s, "' (ddp, zero1, zero2, zero3)"));
}

absl::StatusOr<planner::Schedule> ParseSchedule(absl::string_view s) {
  if (s == "1f1b") return planner::Schedule::k1F1B;
  if (s == "gpipe") return planner::Schedule::kGPipe;
  if (s == "interleaved") return planner::Schedule::kInterleaved1F1B;
  return absl::InvalidArgumentError(
      absl::StrCat("unknown schedule '", s, "' (1f1b, gpipe, interleaved)"));
}


// Builds the SearchRequest from the flags shared by `plan` and `evaluate`.
absl::StatusOr<Loaded> LoadProblem(const Flags& a) {
  cairn::v1::SearchRequest req;
  CAIRN_ASSIGN_OR_RETURN(*req.mutable_model(), planner::ResolveModel(a.Get("model")));
  CAIRN_ASSIGN_OR_RETURN(int nodes, a.GetInt("nodes"));
  CAIRN_ASSIGN_OR_RETURN(int gpn, a.GetInt("gpus-per-node"));
  std::string label;
  cairn::v1::HardwareProfile hw;
  if (a.Has("hardware-profile")) {
    CAIRN_ASSIGN_OR_RETURN(hw, planner::LoadHardwareProfileFile(a.Get("hardware-profile")));
    label = absl::StrCat(hw.name(), " (", a.Get("hardware-profile"), ")");
  } else {
    const std::string name = a.Get("cluster");
    CAIRN_ASSIGN_OR_RETURN(hw, planner::LookupHardware(name));
    label = absl::StrCat(name, " (built-in default)");
  }
  if (a.Has("galvatron-hardware")) {
    const int per_node = gpn > 0 ? gpn : hw.devices_per_node();
    CAIRN_ASSIGN_OR_RETURN(hw, planner::ImportGalvatronHardware(a.Get("galvatron-hardware"), nodes,
                                                                per_node, hw));
    label = absl::StrCat(label, " + Galvatron profiles from ", a.Get("galvatron-hardware"));
  }
  CAIRN_ASSIGN_OR_RETURN(*req.mutable_cluster(), planner::MakeCluster(hw, nodes, gpn));
  CAIRN_ASSIGN_OR_RETURN(int seq, a.GetInt("seq-len", std::min(4096, req.model().max_seq_len())));
  req.set_seq_len(seq);
  if (a.Has("batch-range")) {
    std::vector<std::string> parts = absl::StrSplit(a.Get("batch-range"), ':');
    int v[3] = {0, 0, 0};
    if (parts.size() != 3 || !absl::SimpleAtoi(parts[0], &v[0]) ||
        !absl::SimpleAtoi(parts[1], &v[1]) || !absl::SimpleAtoi(parts[2], &v[2])) {
      return absl::InvalidArgumentError("--batch-range must be MIN:MAX:STEP, e.g. 256:1024:256");
    }
    req.mutable_batch_range()->set_min(v[0]);
    req.mutable_batch_range()->set_max(v[1]);
    req.mutable_batch_range()->set_step(v[2]);
  } else {
    CAIRN_ASSIGN_OR_RETURN(int gb, a.GetInt("global-batch", 0));
    if (gb <= 0) {
      return absl::InvalidArgumentError("--global-batch is required (samples per optimizer step)");
    }
    req.set_global_batch_size(gb);
  }
  // Range checks written so NaN fails them, and bounded so the conversion to bytes cannot overflow.
  CAIRN_ASSIGN_OR_RETURN(double mem_gb, a.GetDouble("memory-gb", 0));
  if (a.Has("memory-gb") && !(mem_gb > 0 && mem_gb <= 1 << 20)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--memory-gb must be a positive number of GiB per device (leave it out for the whole "
        "device), got ", a.Get("memory-gb")));
  }
  req.set_memory_budget_bytes(static_cast<int64_t>(mem_gb * kGiB));
  CAIRN_ASSIGN_OR_RETURN(double q_mb, a.GetDouble("memory-quantum-mb"));
  if (!(q_mb >= 0 && q_mb <= 1 << 20)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--memory-quantum-mb must be a number of MiB >= 0 (0 = automatic), got ",
        a.Get("memory-quantum-mb")));
  }
  req.set_memory_quantum_bytes(static_cast<int64_t>(q_mb * kMiB));
  CAIRN_ASSIGN_OR_RETURN(int threads, a.GetInt("threads"));
  req.set_threads(threads);
  const std::string dtype = a.Get("dtype");
  if (dtype != "bf16" && dtype != "fp32") {
    return absl::InvalidArgumentError("--dtype must be bf16 or fp32");
  }
  req.set_dtype_bytes(dtype == "fp32" ? 4 : 2);
  // The runtime whose behaviour the cost model describes (planner/cost/runtime_traits.h); the
  // request builder refuses an unknown name. A plan exported to Megatron-LM is searched under
  // Megatron-Core's traits (its overlap, the plans it runs) unless --runtime says otherwise.
  req.set_runtime(a.Get("runtime", a.Get("format", "") == "megatron" ? "megatron-core" : "cairn"));
  if (a.Has("model-profile")) {
    CAIRN_ASSIGN_OR_RETURN(std::string text, planner::ReadTextFile(a.Get("model-profile")));
    CAIRN_RETURN_IF_ERROR(planner::ParseProtoJson(text, a.Get("model-profile"),
                                                  req.mutable_model_profile()));
  } else if (a.Has("galvatron-model-profile")) {
    std::vector<std::string> files = absl::StrSplit(a.Get("galvatron-model-profile"), ',');
    CAIRN_ASSIGN_OR_RETURN(*req.mutable_model_profile(),
                           planner::ImportGalvatronModelProfile(
                               files[0], files.size() > 1 ? files[1] : "", req.model(), seq));
  }
  cairn::v1::SearchSpace* sp = req.mutable_space();
  CAIRN_ASSIGN_OR_RETURN(std::vector<int> pps, a.GetIntList("pp"));
  for (int p : pps) sp->add_pipeline_degrees(p);
  CAIRN_ASSIGN_OR_RETURN(int max_tp, a.GetInt("max-tp"));
  sp->set_max_tp_degree(max_tp);
  CAIRN_ASSIGN_OR_RETURN(std::vector<int> ms, a.GetIntList("micro-batches"));
  for (int m : ms) sp->add_micro_batch_counts(m);
  sp->set_disable_recompute(a.Has("no-recompute"));
  sp->set_uniform_layers(a.Has("uniform-layers"));
  for (absl::string_view s : absl::StrSplit(a.Get("schedules"), ',', absl::SkipEmpty())) {
    CAIRN_ASSIGN_OR_RETURN(planner::Schedule sc, ParseSchedule(s));
    sp->add_schedules(planner::ToProto(sc));
  }
  for (absl::string_view s : absl::StrSplit(a.Get("dp-modes"), ',', absl::SkipEmpty())) {
    CAIRN_ASSIGN_OR_RETURN(planner::DpMode d, ParseDpMode(s));
    sp->add_dp_modes(planner::ToProto(d));
  }
  for (absl::string_view s : absl::StrSplit(a.Get("modes"), ',', absl::SkipEmpty())) {
    CAIRN_ASSIGN_OR_RETURN(planner::ParallelMode md, ParseMode(s));
    sp->add_modes(planner::ToProto(md));
  }
  RestrictSpaceForExport(a.Get("format"), sp);  // what --format torchtitan|deepspeed can express
  CAIRN_ASSIGN_OR_RETURN(int top, a.GetInt("top", 1));
  req.set_top_k(top);
  // Within this fraction of the fastest plan, the simplest first (planner/search/simplify.h);
  // 0 keeps the fastest (the request says "off" with a negative value, 0 being its default).
  CAIRN_ASSIGN_OR_RETURN(double simple, a.GetDouble("simplicity-tolerance"));
  if (!(simple >= 0 && simple <= 1)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--simplicity-tolerance must be a fraction in [0, 1] (0: the fastest plan only), got ",
        a.Get("simplicity-tolerance")));
  }
  req.set_simplicity_tolerance(simple == 0 ? -1 : simple);
  Loaded out;
  CAIRN_ASSIGN_OR_RETURN(out.problem, planner::BuildSearchProblem(req));
  out.request = req;
  out.hardware_label = label;
  return out;
}

// `cairn evaluate --plan FILE`: the plan fixes the model, the cluster shape, the batch and the
// sequence length. Flags may repeat them; a flag that contradicts the plan is an error naming both
// values (scoring the plan on another problem would answer a question nobody asked).
absl::Status TakeProblemFromPlan(const cairn::v1::Plan& plan, const std::string& path, Flags* a) {
  auto reconcile = [&](const std::string& flag, const std::string& field,
                       const std::string& value) -> absl::Status {
    if (value.empty() || value == "0") return absl::OkStatus();  // not recorded in the plan
    if (a->Has(flag) && a->Get(flag) != value) {
      int given = 0, want = 0;
      if (absl::SimpleAtoi(a->Get(flag), &given) && absl::SimpleAtoi(value, &want) &&
          given == want) {
        return absl::OkStatus();
      }
      return absl::InvalidArgumentError(absl::StrCat(
          "--", flag, " ", a->Get(flag), " contradicts the plan's ", field, " ", value, " (", path,
          "); leave --", flag, " out to use the plan's"));
    }
    a->Set(flag, value);
    return absl::OkStatus();
  };
  if (a->Has("batch-range")) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--batch-range does not apply to --plan: the plan's global batch is ",
        plan.global_batch_size()));
  }
  const std::string model = a->Get("model");
  const bool model_file = absl::EndsWith(model, ".json");
  if (!model_file) {
    CAIRN_RETURN_IF_ERROR(reconcile("model", "model_name", plan.model_name()));
  }  // A model file is checked by name when the plan is read against it.
  CAIRN_RETURN_IF_ERROR(reconcile("nodes", "num_nodes", absl::StrCat(plan.num_nodes())));
  CAIRN_RETURN_IF_ERROR(
      reconcile("gpus-per-node", "devices_per_node", absl::StrCat(plan.devices_per_node())));
  CAIRN_RETURN_IF_ERROR(
      reconcile("global-batch", "global_batch_size", absl::StrCat(plan.global_batch_size())));
  CAIRN_RETURN_IF_ERROR(reconcile("seq-len", "seq_len", absl::StrCat(plan.seq_len())));
  // The cluster: named in the provenance as "NAME (built-in default)" when the plan was made for a
  // catalog cluster; any other hardware (a profile file, a stored profile) must be given again.
  const std::string& hw = plan.provenance().hardware_profile();
  constexpr absl::string_view kBuiltIn = " (built-in default)";
  if (a->Has("hardware-profile")) return absl::OkStatus();
  if (absl::EndsWith(hw, kBuiltIn)) {
    return reconcile("cluster", "cluster", hw.substr(0, hw.size() - kBuiltIn.size()));
  }
  if (!a->Has("cluster")) {
    return absl::InvalidArgumentError(absl::StrCat(
        "the plan in ", path, " was made for hardware '", hw,
        "', not a built-in cluster: pass --hardware-profile FILE.json (or --cluster NAME)"));
  }
  return absl::OkStatus();
}

}  // namespace cairn::cli
