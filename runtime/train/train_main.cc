// cairn-train — the training worker's command line: reads the flags, resolves the model and the
// plan (a plan file, or `--plan auto` through the planner library), and runs the Trainer
// (runtime/train/trainer.h). Everything past the flags lives in that library, which agents host.
//
//   cairn-data book.txt --output data/
//   cairn-train --model llama-tiny --plan auto --nproc 4 --global-batch 16 --seq-len 128
//     --data data/ --steps 50 [--checkpoint-dir ckpt/ --checkpoint-every 10] [--resume ckpt/]
//   cairn-train --model gpt2-tiny --plan plan.json --nproc 2 --data data/ --steps 20
//   cairn-train --device cuda --model gpt2-124m --plan auto --global-batch 16 --seq-len 1024 ...
//
// Device: --device cuda trains in bf16 on the visible GPUs (the default when this build has CUDA
// and a GPU is visible), rank r on GPU r % count: NCCL when every rank has its own GPU, else the
// ranks sharing a GPU talk through a staged Gloo communicator. --device cpu: the fp32 CPU backend.
//
// Launch: --nproc N forks N local workers that meet through a fresh directory store; without it,
// RANK/WORLD_SIZE/MASTER_ADDR/MASTER_PORT (torchrun, Slurm, Kubernetes) make this process one rank
// of a multi-host job (with CAIRN_RDZV_PLANNER, as cairn-agent starts workers, the ranks meet
// through the planner daemon instead of rank 0's store); with neither it trains on one process. Rank 0 prints one line per step.
// Exit status: 0 done, 1 training failed (the failing rank and reason are printed), 2 bad input
// (reported before any worker starts).
#include <algorithm>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <optional>
#include <string>
#include <vector>

#include "CLI/CLI.hpp"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/cli_app.h"
#include "common/plan/plan_proto.h"
#include "common/status_macros.h"
#include "common/units.h"
#include "planner/catalog/json_io.h"
#include "planner/catalog/models.h"
#include "planner/plan/plan_convert.h"
#include "planner/plan/run_planning.h"
#include "runtime/train/launcher.h"
#include "runtime/train/trainer.h"
#ifdef CAIRN_WITH_CUDA
#include "runtime/train/cuda_support.h"
#endif

namespace cairn::runtime {
namespace {

int Fail(const absl::Status& s) {
  std::fprintf(stderr, "cairn-train: %s\n", std::string(s.message()).c_str());
  return 2;
}

// Every flag with its default (`cairn-train --help`; docs/runtime.md).
void AddFlags(Flags& a) {
  a.Value("model", "NAME|FILE.json", "catalog model, ModelSpec JSON or Hugging Face config.json",
          "llama-tiny")
      .Value("plan", "PLAN.json|auto",
             "the plan to execute, or auto: planned here for this world and device", "auto")
      .Value("data", "DIR", "token shards written by cairn-data (required)")
      .Value("nproc", "N",
             "fork N local workers; 0: one rank of a launcher's world (RANK, WORLD_SIZE), or one "
             "process",
             "0")
      .Value("steps", "N", "optimizer steps", "10")
      .Value("seed", "S", "initialization and data order seed", "1234")
      .Value("global-batch", "B", "samples per step (--plan auto)", "8")
      .Value("seq-len", "S", "tokens per sample (--plan auto; default: min(256, the model's))")
      .Value("lr", "LR", "peak AdamW learning rate", "3e-4")
      .Value("warmup", "N", "linear warm-up steps", "0")
      .Value("min-lr-ratio", "F", "cosine decay floor, a fraction of --lr", "0.1")
      .Value("grad-clip", "NORM", "global gradient-norm clip", "1")
      .Value("weight-decay", "WD", "AdamW weight decay", "0.1")
      .Value("checkpoint-dir", "DIR", "where checkpoints go")
      .Value("checkpoint-every", "N", "steps between checkpoints (0: only at the end)", "0")
      .Value("resume", "DIR", "resume from this checkpoint (under any plan)")
      .Value("memory-gb", "X", "per-device memory budget for --plan auto (0: the device's)", "0")
      .Value("metrics", "FILE.jsonl", "append one JSON line per step")
      .Value("model-profile", "PROFILE.json", "measured layer times for planning and prediction")
      .Value("device", "cuda|cpu", "cuda when this build has it and a GPU is visible, else cpu")
      .Value("stop-at", "STEP", "stop after this step as if interrupted (tests of resume)", "0")
      .Value("val-every", "N",
             "validation loss every N steps and after the last (0: never; needs a val_ shard)",
             "50")
      .Value("val-batches", "K", "global batches of validation data per evaluation", "4")
      .Bool("quiet", "no per-step lines")
      .Bool("prediction-from-plan",
            "report measured against the plan file's own prediction instead of one for this "
            "device");
}

int Main(int argc, char** argv) {
  std::unique_ptr<CLI::App> app = MakeApp(
      "cairn-train",
      "trains a model under a plan (a file, or --plan auto) on CPU or CUDA workers. Exit status: "
      "0 done, 1 training failed, 2 bad input. See docs/runtime.md.");
  Flags a(app.get());
  AddFlags(a);
  if (std::optional<int> exit = ParseCommandLine(*app, argc, argv)) return *exit;
  if (!a.Has("data")) {
    std::fprintf(stderr, "cairn-train: --data is required (see cairn-train --help)\n");
    return 2;
  }
  TrainerOptions opt;
  opt.data_dir = a.Get("data");
  opt.checkpoint_dir = a.Get("checkpoint-dir");
  opt.resume_dir = a.Get("resume");
  opt.metrics_path = a.Get("metrics");
  opt.quiet = a.Has("quiet");
  absl::StatusOr<int> nproc = a.GetInt("nproc"), steps = a.GetInt("steps"),
                      every = a.GetInt("checkpoint-every"), warmup = a.GetInt("warmup"),
                      stop_at = a.GetInt("stop-at"), val_every = a.GetInt("val-every"),
                      val_batches = a.GetInt("val-batches"), seed = a.GetInt("seed");
  absl::StatusOr<double> lr = a.GetDouble("lr"), clip = a.GetDouble("grad-clip"),
                         wd = a.GetDouble("weight-decay"), min_lr = a.GetDouble("min-lr-ratio"),
                         mem_gb = a.GetDouble("memory-gb");
  for (const absl::Status& s :
       {nproc.status(), steps.status(), every.status(), warmup.status(), seed.status(),
        stop_at.status(), val_every.status(), val_batches.status(),
        lr.status(), clip.status(), wd.status(), min_lr.status(), mem_gb.status()}) {
    if (!s.ok()) return Fail(s);
  }
  opt.steps = *steps;
  opt.checkpoint_every = *every;
  opt.stop_at = *stop_at;
  opt.val_every = *val_every;
  opt.val_batches = *val_batches;
  opt.train.seed = static_cast<uint64_t>(*seed);
  opt.train.adamw.learning_rate = static_cast<float>(*lr);
  opt.train.adamw.weight_decay = static_cast<float>(*wd);
  opt.train.warmup_steps = *warmup;
  opt.train.total_steps = *steps;
  opt.train.grad_clip = static_cast<float>(*clip);
  opt.train.min_lr_ratio = static_cast<float>(*min_lr);
  if (opt.steps < 1) return Fail(absl::InvalidArgumentError("--steps must be at least 1"));
#ifdef CAIRN_TESTING_FAULTS
  // Test builds only (cairn-train-testing): CAIRN_FAULT_EXIT=rank:step makes that rank exit.
  if (const char* f = std::getenv("CAIRN_FAULT_EXIT")) {
    std::vector<std::string> parts = absl::StrSplit(f, ':');
    if (parts.size() != 2 || !absl::SimpleAtoi(parts[0], &opt.fault_rank) ||
        !absl::SimpleAtoi(parts[1], &opt.fault_step)) {
      return Fail(absl::InvalidArgumentError("CAIRN_FAULT_EXIT must be RANK:STEP"));
    }
  }
#endif

  // World: --nproc, else the launcher's environment, else one process.
  int world = *nproc;
  const char* env_world = std::getenv("WORLD_SIZE");
  if (world <= 0) {
    world = 1;
    if (env_world && !absl::SimpleAtoi(env_world, &world)) {
      return Fail(absl::InvalidArgumentError("WORLD_SIZE is not a number"));
    }
  }
  opt.world_size = world;

  // The device: CUDA (bf16) when asked for, or by default when this build has it and a GPU is
  // visible; else the CPU (fp32).
  std::string device = a.Get("device");
  if (!device.empty() && device != "cpu" && device != "cuda") {
    return Fail(absl::InvalidArgumentError(
        absl::StrCat("--device must be cuda or cpu, got '", device, "'")));
  }
  planner::RunRequest req;
  req.cluster = "cpu";
  req.dtype_bytes = 4;
#ifdef CAIRN_WITH_CUDA
  absl::StatusOr<GpuSetup> gpus = DetectGpus();
  if (device.empty()) device = gpus.ok() ? "cuda" : "cpu";
  if (device == "cuda") {
    if (!gpus.ok()) return Fail(gpus.status());
    req.cluster = CatalogClusterFor(gpus->name);
    if (req.cluster.empty()) {
      std::fprintf(stderr,
                   "cairn-train: warning: no catalog profile for %s; planning with h100-sxm's\n",
                   gpus->name.c_str());
      req.cluster = "h100-sxm";
    }
    req.dtype_bytes = 2;
    opt.make_backend = CudaBackendFactory(*gpus);
    // Ranks on this host: all of them for --nproc; LOCAL_WORLD_SIZE when a launcher (torchrun,
    // cairn-agent) starts this process as one rank of a multi-host job.
    int per_host = world;
    if (const char* local = std::getenv("LOCAL_WORLD_SIZE"); *nproc <= 0 && local != nullptr) {
      (void)absl::SimpleAtoi(local, &per_host);
    }
    opt.make_world = CudaWorldFactory(*gpus, per_host);
    opt.device_name = gpus->name;
  }
#else
  if (device == "cuda") {
    return Fail(absl::FailedPreconditionError(
        "this cairn-train was built without CUDA (the toolkit was missing): use --device cpu"));
  }
  device = "cpu";
#endif
  absl::StatusOr<cairn::v1::ModelSpec> spec = planner::ResolveModel(a.Get("model"));
  if (!spec.ok()) return Fail(spec.status());
  req.model = *spec;
  req.world_size = world;
  req.memory_budget_bytes = static_cast<int64_t>(*mem_gb * kGiB);
  if (a.Has("model-profile")) {
    absl::StatusOr<std::string> text = planner::ReadTextFile(a.Get("model-profile"));
    if (!text.ok()) return Fail(text.status());
    cairn::v1::ModelProfile profile;
    if (absl::Status s = planner::ParseProtoJson(*text, a.Get("model-profile"), &profile);
        !s.ok()) {
      return Fail(s);
    }
    req.model_profile = profile;
  }
  opt.model = plan::ModelDimsFromSpec(*spec);
  const std::string plan_arg = a.Get("plan");
  std::optional<cairn::v1::Plan> plan_proto;  // the plan file, when one is given
  if (plan_arg != "auto") {
    absl::StatusOr<std::string> text = planner::ReadTextFile(plan_arg);
    if (!text.ok()) return Fail(text.status());
    absl::StatusOr<cairn::v1::Plan> proto = planner::PlanFromJson(*text);
    if (!proto.ok()) return Fail(proto.status());
    if (!proto->model_name().empty() && proto->model_name() != opt.model.name) {
      return Fail(absl::InvalidArgumentError(absl::StrCat(
          "the plan is for model '", proto->model_name(), "', not '", opt.model.name, "'")));
    }
    if (proto->num_nodes() * proto->devices_per_node() != world) {
      return Fail(absl::InvalidArgumentError(absl::StrCat(
          "the plan is for ", proto->num_nodes() * proto->devices_per_node(),
          " devices but this run has ", world, " (set --nproc to match)")));
    }
    absl::StatusOr<plan::PlanSpec> p = plan::PlanSpecFromProto(*proto);
    if (!p.ok()) return Fail(p.status());
    opt.plan = *p;
    opt.seq_len = proto->seq_len();
    plan_proto = *std::move(proto);
  } else {
    absl::StatusOr<int> gb = a.GetInt("global-batch"), sl = a.GetInt("seq-len");
    if (!gb.ok()) return Fail(gb.status());
    if (!sl.ok()) return Fail(sl.status());
    req.global_batch = *gb;
    req.seq_len = *sl > 0 ? *sl : std::min(256, spec->max_seq_len());
    absl::StatusOr<planner::PlannedRun> run = planner::PlanRun(req);
    if (!run.ok()) return Fail(run.status());
    opt.plan = run->plan;
    opt.seq_len = req.seq_len;
    std::printf("plan (auto, %s): pp=%d m=%d\n", FormatSeconds(run->search_time_s).c_str(),
                opt.plan.pipeline_degree(), opt.plan.num_micro_batches);
    for (const std::string& line : run->summary) std::printf("  %s\n", line.c_str());
  }
  // Reject what cannot run before any worker starts: the plan (the contract), and the data.
  if (absl::Status s = CheckTrainingInputs(opt); !s.ok()) return Fail(s);
  req.global_batch = opt.plan.global_batch;
  req.seq_len = opt.seq_len;
  absl::StatusOr<planner::PlannedRun> predicted = planner::PredictRun(req, opt.plan);
  if (predicted.ok()) {
    opt.predicted.step_time_s = predicted->predicted_step_time_s;
    opt.predicted.peak_bytes = predicted->predicted_peak_bytes;
    opt.model_flops_per_token = predicted->model_flops_per_token;
    opt.peak_flops_per_s = predicted->peak_flops_per_s;
  } else {
    std::fprintf(stderr, "cairn-train: warning: no prediction for this plan: %s\n",
                 std::string(predicted.status().message()).c_str());
  }
  // --prediction-from-plan: the step time and memory the plan file was scored with (by the planner,
  // on the profile it names: an agent's measured one, say) instead of a prediction for this
  // device's catalog profile; the run then reports measured against what its planner promised.
  if (a.Has("prediction-from-plan")) {
    if (!plan_proto.has_value() || plan_proto->prediction().step_time_s() <= 0) {
      return Fail(absl::InvalidArgumentError(
          "--prediction-from-plan needs a plan file that carries a prediction (plan.prediction)"));
    }
    opt.predicted.step_time_s = plan_proto->prediction().step_time_s();
    int64_t peak = 0;
    for (const cairn::v1::StageMemory& m : plan_proto->prediction().stage_memory()) {
      peak = std::max(peak, m.total_bytes() - m.reserved_bytes());
    }
    if (peak > 0) opt.predicted.peak_bytes = peak;
  }
  std::printf("training %s on %d %s worker%s: global batch %d x seq %d, %d steps; predicted %s "
              "per step, %s of tensors per rank\n",
              opt.model.name.c_str(), world, opt.device_name.c_str(), world > 1 ? "s" : "",
              opt.plan.global_batch,
              opt.seq_len, opt.steps, FormatSeconds(opt.predicted.step_time_s).c_str(),
              FormatBytes(static_cast<double>(opt.predicted.peak_bytes)).c_str());
  std::fflush(stdout);

  absl::Status s;
  if (*nproc > 0 || env_world == nullptr) {
    s = TrainLocally(opt);  // removes its store directory on every return
    if (const int sig = LauncherStopSignal(); sig != 0) {
      // Stopped from outside: the workers are gone and the directory removed; exit as asked.
      std::fprintf(stderr, "cairn-train: %s\n", std::string(s.message()).c_str());
      std::fflush(stderr);
      std::signal(sig, SIG_DFL);
      std::raise(sig);
      return 128 + sig;
    }
    if (!s.ok()) {
      std::fprintf(stderr, "cairn-train: training failed: %s\n", std::string(s.message()).c_str());
      return 1;
    }
    return 0;
  }
  s = TrainFromEnvironment(opt);
  if (!s.ok()) {
    std::fprintf(stderr, "cairn-train: %s\n", std::string(s.message()).c_str());
    return 1;
  }
  return 0;
}

}  // namespace
}  // namespace cairn::runtime

int main(int argc, char** argv) { return cairn::runtime::Main(argc, argv); }
