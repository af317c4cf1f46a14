// cairn-train — the training worker: executes a plan on the CPU backend with Gloo collectives.
//
//   cairn-data book.txt --output data/
//   cairn-train --model llama-tiny --plan auto --nproc 4 --global-batch 16 --seq-len 128 \
//     --data data/ --steps 50 [--checkpoint-dir ckpt/ --checkpoint-every 10] [--resume ckpt/]
//   cairn-train --model gpt2-tiny --plan plan.json --nproc 2 --data data/ --steps 20
//
// Launch: --nproc N forks N local workers that meet through a fresh directory store; without it,
// RANK/WORLD_SIZE/MASTER_ADDR/MASTER_PORT (torchrun, Slurm, Kubernetes) make this process one rank
// of a multi-host job; with neither it trains on one process. Rank 0 prints one line per step.
// Exit status: 0 done, 1 training failed (the failing rank and reason are printed), 2 bad input
// (reported before any worker starts).
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <memory>
#include <string>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "common/args.h"
#include "common/status_macros.h"
#include "common/units.h"
#include "planner/catalog/clusters.h"
#include "planner/catalog/json_io.h"
#include "planner/catalog/models.h"
#include "planner/cost/evaluate.h"
#include "planner/plan/plan_convert.h"
#include "planner/problem/problem_builder.h"
#include "planner/search/search.h"
#include "runtime/checkpoint/checkpoint.h"
#include "runtime/comm/file_store.h"
#include "runtime/comm/gloo/gloo_communicator.h"
#include "runtime/compute/cpu/cpu_backend.h"
#include "runtime/data/token_shards.h"
#include "runtime/engine/engine.h"
#include "runtime/train/launcher.h"

namespace cairn::runtime {
namespace {

struct Config {
  planner::SearchProblem problem;  // model, cpu cluster of `world` workers, batch, seq, fp32
  planner::PlanSpec plan;
  planner::Evaluation predicted;
  int world = 1;
  std::string data_dir;
  int steps = 10;
  TrainOptions train;
  std::string checkpoint_dir;
  int checkpoint_every = 0;
  std::string resume_dir;
  std::string metrics_path;
  std::string store_dir;           // local launch: the directory store
  bool quiet = false;
};

absl::Status Worker(const Config& cfg, int rank) {
  std::unique_ptr<GlooCommunicator> world;
  if (!cfg.store_dir.empty()) {
    CAIRN_ASSIGN_OR_RETURN(std::shared_ptr<Store> store, FileStore::Open(cfg.store_dir));
    CAIRN_ASSIGN_OR_RETURN(world, GlooCommunicator::Create(rank, cfg.world, store));
  } else {
    CAIRN_ASSIGN_OR_RETURN(world, GlooCommunicator::CreateFromEnv());
  }
  rank = world->rank();
  CAIRN_ASSIGN_OR_RETURN(TokenDataset data, TokenDataset::Open(cfg.data_dir, "train"));
  const planner::ModelDims& model = cfg.problem.model;
  if (static_cast<int>(data.max_token()) >= model.vocab) {
    return absl::InvalidArgumentError(absl::StrCat("the data has token ", data.max_token(),
                                                   " but ", model.name, "'s vocabulary is ",
                                                   model.vocab));
  }
  const int seq = cfg.problem.seq_len;
  const Sampler sampler = [&](int64_t step, int64_t sample, std::vector<int32_t>* in,
                              std::vector<int32_t>* tg) {
    return data.Sample(cfg.train.seed, step, sample, seq, in, tg);
  };
  CpuBackend backend;
  CAIRN_ASSIGN_OR_RETURN(std::unique_ptr<Engine> engine,
                         Engine::Create(model, cfg.plan, seq, world.get(), &backend, cfg.train));
  int64_t start = 0;
  if (!cfg.resume_dir.empty()) {
    CAIRN_ASSIGN_OR_RETURN(Checkpoint ck, ReadCheckpoint(cfg.resume_dir));
    if (ck.meta.model != model.name) {
      return absl::FailedPreconditionError(absl::StrCat("the checkpoint in ", cfg.resume_dir,
                                                        " is for model ", ck.meta.model));
    }
    CAIRN_RETURN_IF_ERROR(engine->Restore(ck));
    start = ck.meta.step;
    if (rank == 0) {
      std::printf("resumed from %s at step %lld\n", cfg.resume_dir.c_str(),
                  static_cast<long long>(start));
      std::fflush(stdout);
    }
  }
  // Each step in its own directory; rank 0 commits it (manifest, then `latest`) once every rank's
  // file is on disk, and keeps the newest 3 (runtime/checkpoint/checkpoint.h).
  auto save = [&](int64_t done) -> absl::Status {
    CAIRN_ASSIGN_OR_RETURN(TensorRecords records, engine->Snapshot());
    CAIRN_RETURN_IF_ERROR(WriteRankFile(StepDirectory(cfg.checkpoint_dir, done), rank, records));
    CAIRN_RETURN_IF_ERROR(world->Barrier());
    if (rank == 0) {
      const std::string plan = absl::StrCat("pp=", cfg.plan.pipeline_degree(), " m=",
                                            cfg.plan.num_micro_batches, " batch=",
                                            cfg.plan.global_batch);
      CAIRN_RETURN_IF_ERROR(CommitCheckpoint(cfg.checkpoint_dir,
                                             {done, model.name, cfg.world, 2, plan},
                                             /*keep_last=*/3));
      std::printf("checkpoint: step %lld saved to %s\n", static_cast<long long>(done),
                  StepDirectory(cfg.checkpoint_dir, done).c_str());
      std::fflush(stdout);
    }
    return absl::OkStatus();
  };
  // Fault injection for the failure tests: CAIRN_FAULT_EXIT=rank:step makes that rank exit.
  int fault_rank = -1, fault_step = -1;
  if (const char* f = std::getenv("CAIRN_FAULT_EXIT")) {
    std::vector<std::string> parts = absl::StrSplit(f, ':');
    if (parts.size() == 2) {
      (void)absl::SimpleAtoi(parts[0], &fault_rank);
      (void)absl::SimpleAtoi(parts[1], &fault_step);
    }
  }
  std::unique_ptr<std::ofstream> metrics;
  if (rank == 0 && !cfg.metrics_path.empty()) {
    metrics = std::make_unique<std::ofstream>(cfg.metrics_path, std::ios::app);
  }
  const double tokens = static_cast<double>(cfg.plan.global_batch) * seq;
  // The engine counts the tensors it allocates; the profile's reservation (process, runtime
  // libraries) is not among them.
  const int64_t predicted_tensors =
      cfg.predicted.PeakBytes() - cfg.problem.hardware.reserved_bytes;
  double time_sum = 0;
  int timed = 0;
  int64_t peak = 0;
  for (int64_t step = start; step < cfg.steps; ++step) {
    if (rank == fault_rank && step == fault_step) {
      std::fprintf(stderr, "cairn-train: rank %d: injected failure at step %lld\n", rank,
                   static_cast<long long>(step));
      std::fflush(stdout);
      std::fflush(stderr);
      _exit(3);
    }
    CAIRN_ASSIGN_OR_RETURN(StepResult r, engine->Step(step, sampler));
    // The largest peak over ranks, for the progress line.
    float mine = static_cast<float>(r.peak_memory_bytes), worst = 0;
    CAIRN_RETURN_IF_ERROR(world->AllReduce(&mine, &worst, 1, ReduceOp::kMax));
    peak = std::max(peak, static_cast<int64_t>(worst));
    if (step > start) {
      time_sum += r.step_time_s;
      ++timed;
    }
    if (rank == 0) {
      if (!cfg.quiet) {
        std::printf("step %5lld/%d | loss %.4f | %s (compute %s, comm %s) | %s tokens/s | peak %s | "
                    "lr %.2e | norm %.3f\n",
                    static_cast<long long>(step + 1), cfg.steps, r.loss,
                    FormatSeconds(r.step_time_s).c_str(), FormatSeconds(r.compute_s).c_str(),
                    FormatSeconds(r.comm_s).c_str(),
                    FormatCount(tokens / r.step_time_s).c_str(), FormatBytes(worst).c_str(),
                    r.learning_rate, r.grad_norm);
        std::fflush(stdout);
      }
      if (metrics) {
        *metrics << absl::StrFormat(
            "{\"step\": %d, \"loss\": %.6f, \"step_time_s\": %.6f, \"tokens_per_s\": %.1f, "
            "\"peak_memory_bytes\": %d, \"predicted_step_time_s\": %.6f, "
            "\"predicted_memory_bytes\": %d}\n",
            step + 1, r.loss, r.step_time_s, tokens / r.step_time_s, static_cast<int64_t>(worst),
            cfg.predicted.step_time_s, predicted_tensors);
        metrics->flush();
      }
    }
    if (!cfg.checkpoint_dir.empty() && cfg.checkpoint_every > 0 &&
        (step + 1) % cfg.checkpoint_every == 0) {
      CAIRN_RETURN_IF_ERROR(save(step + 1));
    }
  }
  if (!cfg.checkpoint_dir.empty() &&
      (cfg.checkpoint_every <= 0 || cfg.steps % cfg.checkpoint_every != 0)) {
    CAIRN_RETURN_IF_ERROR(save(cfg.steps));
  }
  if (rank == 0 && timed > 0) {
    const double mean = time_sum / timed;
    std::printf(
        "done: %d steps | mean step %s (predicted %s) | %s tokens/s | peak memory %s per rank "
        "(predicted %s)\n",
        cfg.steps, FormatSeconds(mean).c_str(), FormatSeconds(cfg.predicted.step_time_s).c_str(),
        FormatCount(tokens / mean).c_str(), FormatBytes(peak).c_str(),
        FormatBytes(predicted_tensors).c_str());
  }
  return world->Barrier();
}

int Fail(const absl::Status& s) {
  std::fprintf(stderr, "cairn-train: %s\n", std::string(s.message()).c_str());
  return 2;
}

int Main(int argc, char** argv) {
  Args a;
  if (absl::Status s =
          a.Parse(std::vector<std::string>(argv + 1, argv + argc),
                  {"model", "plan", "data", "steps", "seed", "nproc", "seq-len", "global-batch",
                   "lr", "min-lr-ratio", "warmup", "grad-clip", "weight-decay", "checkpoint-dir",
                   "checkpoint-every", "resume", "memory-gb", "metrics", "model-profile"},
                  {"quiet", "help"});
      !s.ok()) {
    return Fail(s);
  }
  if (a.Has("help") || !a.Has("data")) {
    std::fprintf(stderr,
                 "usage: cairn-train --model NAME|FILE.json --plan PLAN.json|auto --data DIR "
                 "[--nproc N] [--steps N] [--seed S] [--global-batch B --seq-len S (plan auto)] "
                 "[--lr 3e-4] [--warmup 0] [--min-lr-ratio 0.1] [--grad-clip 1] "
                 "[--weight-decay 0.1] [--checkpoint-dir DIR] [--checkpoint-every N] "
                 "[--resume DIR] [--memory-gb X] [--metrics FILE.jsonl] "
                 "[--model-profile PROFILE.json] [--quiet]\n");
    return 2;
  }
  Config cfg;
  cfg.data_dir = a.Get("data");
  cfg.checkpoint_dir = a.Get("checkpoint-dir");
  cfg.resume_dir = a.Get("resume");
  cfg.metrics_path = a.Get("metrics");
  cfg.quiet = a.Has("quiet");
  absl::StatusOr<int> nproc = a.GetInt("nproc", 0), steps = a.GetInt("steps", 10),
                      every = a.GetInt("checkpoint-every", 0), warmup = a.GetInt("warmup", 0);
  absl::StatusOr<double> lr = a.GetDouble("lr", 3e-4), clip = a.GetDouble("grad-clip", 1.0),
                         wd = a.GetDouble("weight-decay", 0.1),
                         min_lr = a.GetDouble("min-lr-ratio", 0.1);
  for (const absl::Status& s : {nproc.status(), steps.status(), every.status(), warmup.status(),
                                lr.status(), clip.status(), wd.status(), min_lr.status()}) {
    if (!s.ok()) return Fail(s);
  }
  absl::StatusOr<int> seed = a.GetInt("seed", 1234);
  if (!seed.ok()) return Fail(seed.status());
  cfg.steps = *steps;
  cfg.checkpoint_every = *every;
  cfg.train.seed = static_cast<uint64_t>(*seed);
  cfg.train.adamw.learning_rate = static_cast<float>(*lr);
  cfg.train.adamw.weight_decay = static_cast<float>(*wd);
  cfg.train.warmup_steps = *warmup;
  cfg.train.total_steps = *steps;
  cfg.train.grad_clip = static_cast<float>(*clip);
  cfg.train.min_lr_ratio = static_cast<float>(*min_lr);
  if (cfg.steps < 1) return Fail(absl::InvalidArgumentError("--steps must be at least 1"));

  // World: --nproc, else the launcher's environment, else one process.
  int world = *nproc;
  const char* env_world = std::getenv("WORLD_SIZE");
  if (world <= 0) {
    world = 1;
    if (env_world && !absl::SimpleAtoi(env_world, &world)) {
      return Fail(absl::InvalidArgumentError("WORLD_SIZE is not a number"));
    }
  }
  cfg.world = world;

  // The search problem of this run: the model on a CPU "cluster" of `world` fp32 workers.
  cairn::v1::SearchRequest req;
  absl::StatusOr<cairn::v1::ModelSpec> spec = planner::ResolveModel(a.Get("model", "llama-tiny"));
  if (!spec.ok()) return Fail(spec.status());
  *req.mutable_model() = *spec;
  absl::StatusOr<cairn::v1::Cluster> cluster = planner::MakeCluster("cpu", 1, world);
  if (!cluster.ok()) return Fail(cluster.status());
  *req.mutable_cluster() = *cluster;
  req.set_dtype_bytes(4);
  absl::StatusOr<double> mem_gb = a.GetDouble("memory-gb", 0);
  if (!mem_gb.ok()) return Fail(mem_gb.status());
  req.set_memory_budget_bytes(static_cast<int64_t>(*mem_gb * kGiB));
  if (a.Has("model-profile")) {
    absl::StatusOr<std::string> text = planner::ReadTextFile(a.Get("model-profile"));
    if (!text.ok()) return Fail(text.status());
    if (absl::Status s = planner::ParseProtoJson(*text, a.Get("model-profile"),
                                                 req.mutable_model_profile());
        !s.ok()) {
      return Fail(s);
    }
  }
  cairn::v1::Plan plan_proto;
  const std::string plan_arg = a.Get("plan", "auto");
  if (plan_arg != "auto") {
    absl::StatusOr<std::string> text = planner::ReadTextFile(plan_arg);
    if (!text.ok()) return Fail(text.status());
    absl::StatusOr<cairn::v1::Plan> p = planner::PlanFromJson(*text);
    if (!p.ok()) return Fail(p.status());
    plan_proto = *p;
    req.set_global_batch_size(plan_proto.global_batch_size());
    req.set_seq_len(plan_proto.seq_len());
    if (plan_proto.num_nodes() * plan_proto.devices_per_node() != world) {
      return Fail(absl::InvalidArgumentError(absl::StrCat(
          "the plan is for ", plan_proto.num_nodes() * plan_proto.devices_per_node(),
          " devices but this run has ", world, " (set --nproc to match)")));
    }
  } else {
    absl::StatusOr<int> gb = a.GetInt("global-batch", 8), sl = a.GetInt("seq-len", 0);
    if (!gb.ok()) return Fail(gb.status());
    if (!sl.ok()) return Fail(sl.status());
    req.set_global_batch_size(*gb);
    req.set_seq_len(*sl > 0 ? *sl : std::min(256, spec->max_seq_len()));
  }
  absl::StatusOr<planner::SearchProblem> pb = planner::BuildSearchProblem(req);
  if (!pb.ok()) return Fail(pb.status());
  cfg.problem = *pb;
  if (plan_arg == "auto") {
    planner::SearchOptions opt;
    opt.with_baselines = false;
    absl::StatusOr<planner::SearchResult> r = planner::Search(*pb, opt);
    if (!r.ok()) return Fail(r.status());
    if (r->plans.empty()) return Fail(absl::FailedPreconditionError(r->infeasible_reason));
    cfg.plan = r->plans[0];
    std::printf("plan (auto, %s): pp=%d m=%d\n", FormatSeconds(r->search_time_s).c_str(),
                cfg.plan.pipeline_degree(), cfg.plan.num_micro_batches);
    for (const std::string& line : planner::SummarizeLayers(cfg.plan, 0, pb->model.num_layers + 2,
                                                             pb->model.num_layers)) {
      std::printf("  %s\n", line.c_str());
    }
  } else {
    absl::StatusOr<planner::PlanSpec> s = planner::PlanSpecFromProto(*pb, plan_proto);
    if (!s.ok()) return Fail(s.status());
    cfg.plan = *s;
  }
  // Reject what cannot run before any worker starts: the plan, and the data.
  Topology topo(world, 0, cfg.plan, pb->model, pb->seq_len);
  if (absl::Status s = topo.Validate(); !s.ok()) return Fail(s);
  {
    absl::StatusOr<TokenDataset> data = TokenDataset::Open(cfg.data_dir, "train");
    if (!data.ok()) return Fail(data.status());
    if (static_cast<int>(data->max_token()) >= pb->model.vocab) {
      return Fail(absl::InvalidArgumentError(absl::StrCat(
          "the data in ", cfg.data_dir, " has token ", data->max_token(), " but ",
          pb->model.name, "'s vocabulary is ", pb->model.vocab)));
    }
    if (data->num_tokens() < pb->seq_len + 1) {
      return Fail(absl::InvalidArgumentError(absl::StrCat(
          "the data in ", cfg.data_dir, " has ", data->num_tokens(),
          " tokens; one sample needs seq_len + 1 = ", pb->seq_len + 1)));
    }
  }
  planner::CostModel cm(*pb);
  absl::StatusOr<planner::Evaluation> ev = planner::Evaluate(cm, cfg.plan);
  if (ev.ok()) cfg.predicted = *ev;
  std::printf("training %s on %d CPU worker%s: global batch %d x seq %d, %d steps; predicted %s "
              "per step, %s of tensors per rank\n",
              pb->model.name.c_str(), world, world > 1 ? "s" : "", cfg.plan.global_batch,
              pb->seq_len, cfg.steps, FormatSeconds(cfg.predicted.step_time_s).c_str(),
              FormatBytes(cfg.predicted.PeakBytes() - pb->hardware.reserved_bytes).c_str());
  std::fflush(stdout);

  if (*nproc > 0 || (env_world == nullptr)) {
    char tmpl[] = "/tmp/cairn-train-XXXXXX";
    if (mkdtemp(tmpl) == nullptr) return Fail(absl::InternalError("cannot create a store directory"));
    cfg.store_dir = tmpl;
    const absl::Status s = RunLocalWorkers(world, [&](int rank) { return Worker(cfg, rank); });
    if (!s.ok()) {
      std::fprintf(stderr, "cairn-train: training failed: %s\n", std::string(s.message()).c_str());
      return 1;
    }
    return 0;
  }
  const absl::Status s = Worker(cfg, 0);
  if (!s.ok()) {
    std::fprintf(stderr, "cairn-train: %s\n", std::string(s.message()).c_str());
    return 1;
  }
  return 0;
}

}  // namespace
}  // namespace cairn::runtime

int main(int argc, char** argv) { return cairn::runtime::Main(argc, argv); }
