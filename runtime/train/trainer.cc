#include "runtime/train/trainer.h"

#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <optional>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/plan/validate.h"
#include "common/status_macros.h"
#include "common/units.h"
#include "runtime/checkpoint/checkpoint.h"
#include "runtime/comm/file_store.h"
#include "runtime/comm/gloo/gloo_communicator.h"
#include "runtime/comm/launch_env.h"
#include "runtime/comm/planner_store.h"
#include "runtime/comm/tcp_store.h"
#include "runtime/compute/cpu/cpu_backend.h"
#include "runtime/data/token_shards.h"
#include "runtime/train/launcher.h"
#include "runtime/train/progress.h"

namespace cairn::runtime {
namespace {

absl::StatusOr<std::unique_ptr<ComputeBackend>> MakeBackend(const TrainerOptions& o,
                                                           int local_rank) {
  if (o.make_backend) return o.make_backend(local_rank);
  return std::unique_ptr<ComputeBackend>(std::make_unique<CpuBackend>());
}

absl::StatusOr<std::unique_ptr<Communicator>> MakeWorld(const TrainerOptions& o, int rank,
                                                       std::shared_ptr<Store> store,
                                                       ComputeBackend* backend) {
  if (o.make_world) return o.make_world(rank, o.world_size, std::move(store), backend);
  CAIRN_ASSIGN_OR_RETURN(std::unique_ptr<GlooCommunicator> gloo,
                         GlooCommunicator::Create(rank, o.world_size, std::move(store)));
  return std::unique_ptr<Communicator>(std::move(gloo));
}

// Model FLOPs utilisation of a step, or 0 when the options do not say how to count it.
double Mfu(const TrainerOptions& o, double tokens_per_s) {
  if (o.model_flops_per_token <= 0 || o.peak_flops_per_s <= 0) return 0;
  return o.model_flops_per_token * tokens_per_s / (o.peak_flops_per_s * o.world_size);
}

absl::Status CheckVocabulary(const TrainerOptions& o, const TokenDataset& data,
                             const std::string& split) {
  if (static_cast<int64_t>(data.max_token()) >= o.model.vocab) {
    return absl::InvalidArgumentError(absl::StrCat("the ", split, " data in ", o.data_dir,
                                                   " has token ", data.max_token(), " but ",
                                                   o.model.name, "'s vocabulary is ",
                                                   o.model.vocab));
  }
  return absl::OkStatus();
}

absl::Status CheckData(const TrainerOptions& o, const TokenDataset& data) {
  CAIRN_RETURN_IF_ERROR(CheckVocabulary(o, data, "training"));
  if (data.num_tokens() < o.seq_len + 1) {
    return absl::InvalidArgumentError(absl::StrCat("the data in ", o.data_dir, " has ",
                                                   data.num_tokens(),
                                                   " tokens; one sample needs seq_len + 1 = ",
                                                   o.seq_len + 1));
  }
  return absl::OkStatus();
}

// The validation split of the data directory when it can be used; nullopt with `why` (said once
// by rank 0) when there is none or it is shorter than one sample; an error for a corrupt one or
// tokens outside the vocabulary.
absl::StatusOr<std::optional<TokenDataset>> OpenValidation(const TrainerOptions& o,
                                                           std::string* why) {
  if (o.val_every <= 0) return std::optional<TokenDataset>();
  absl::StatusOr<TokenDataset> val = TokenDataset::Open(o.data_dir, "val");
  if (absl::IsNotFound(val.status())) {
    *why = absl::StrCat("no validation data in ", o.data_dir,
                        " (val_*.bin, cairn-data --val-fraction): validation skipped");
    return std::optional<TokenDataset>();
  }
  if (!val.ok()) return val.status();
  CAIRN_RETURN_IF_ERROR(CheckVocabulary(o, *val, "validation"));
  if (val->num_tokens() < o.seq_len + 1) {
    *why = absl::StrCat("the validation data in ", o.data_dir, " has ", val->num_tokens(),
                        " tokens, fewer than one sample (seq_len + 1 = ", o.seq_len + 1,
                        "): validation skipped");
    return std::optional<TokenDataset>();
  }
  return std::optional<TokenDataset>(*std::move(val));
}

// The mean loss of validation batches 0 .. batches - 1 (the same batches at every evaluation, so
// the numbers compare), forward only. Collective.
absl::StatusOr<double> ValidationLoss(Engine* engine, const Sampler& val_sampler, int batches) {
  double sum = 0;
  for (int k = 0; k < batches; ++k) {
    CAIRN_ASSIGN_OR_RETURN(const double loss, engine->Evaluate(k, val_sampler));
    sum += loss;
  }
  return sum / batches;
}

}  // namespace

absl::Status CheckTrainingInputs(const TrainerOptions& o) {
  if (o.steps < 1) return absl::InvalidArgumentError("the run needs at least one step");
  if (o.checkpoint_every < 0) {
    return absl::InvalidArgumentError("the checkpoint interval must be >= 0");
  }
  if (o.stop_at < 0) return absl::InvalidArgumentError("--stop-at must be >= 0");
  if (o.val_every < 0) return absl::InvalidArgumentError("--val-every must be >= 0");
  if (o.val_batches < 1) return absl::InvalidArgumentError("--val-batches must be >= 1");
  CAIRN_RETURN_IF_ERROR(plan::CheckPlan(o.model, o.plan, o.world_size, o.seq_len));
  CAIRN_ASSIGN_OR_RETURN(TokenDataset data, TokenDataset::Open(o.data_dir, "train"));
  CAIRN_RETURN_IF_ERROR(CheckData(o, data));
  std::string ignored;
  return OpenValidation(o, &ignored).status();
}

absl::Status TrainRank(const TrainerOptions& o, Communicator* world, ComputeBackend* backend) {
  const int rank = world->rank();
  CAIRN_ASSIGN_OR_RETURN(TokenDataset data, TokenDataset::Open(o.data_dir, "train"));
  CAIRN_RETURN_IF_ERROR(CheckData(o, data));
  const Sampler sampler = [&](int64_t step, int64_t sample, std::vector<int32_t>* in,
                              std::vector<int32_t>* tg) {
    return data.Sample(o.train.seed, step, sample, o.seq_len, in, tg);
  };
  std::string no_validation;
  CAIRN_ASSIGN_OR_RETURN(std::optional<TokenDataset> val, OpenValidation(o, &no_validation));
  const Sampler val_sampler = [&](int64_t batch, int64_t sample, std::vector<int32_t>* in,
                                  std::vector<int32_t>* tg) {
    return val->Sample(o.train.seed, batch, sample, o.seq_len, in, tg);
  };
  CAIRN_ASSIGN_OR_RETURN(std::unique_ptr<Engine> engine,
                         Engine::Create(o.model, o.plan, o.seq_len, world, backend, o.train));
  CAIRN_ASSIGN_OR_RETURN(const int64_t planned, engine->MaxOverRanks(engine->planned_bytes()));
  const bool terminal =
      o.progress == TrainerOptions::Progress::kTerminal ||
      (o.progress == TrainerOptions::Progress::kAuto && ProgressPrinter::IsTerminal(stdout));
  ProgressPrinter out(stdout, rank == 0 && terminal);
  if (rank == 0 && !o.quiet) {
    out.Message(absl::StrFormat("device memory: %s per rank planned before the first step "
                                "(largest rank)",
                                FormatBytes(static_cast<double>(planned))));
    if (!no_validation.empty()) out.Message(no_validation);
  }
  int64_t start = 0;
  if (!o.resume_dir.empty()) {
    CAIRN_ASSIGN_OR_RETURN(Checkpoint ck, ReadCheckpoint(o.resume_dir));
    if (ck.meta.model != o.model.name) {
      return absl::FailedPreconditionError(absl::StrCat("the checkpoint in ", o.resume_dir,
                                                        " is for model ", ck.meta.model));
    }
    CAIRN_RETURN_IF_ERROR(engine->Restore(ck));
    start = ck.meta.step;
    if (rank == 0) {
      out.Message(absl::StrCat("resumed from ", o.resume_dir, " at step ", start));
    }
  }
  // Each step in its own directory; rank 0 commits it (manifest, then `latest`) once every rank's
  // file is on disk, and keeps the newest 3 (runtime/checkpoint/checkpoint.h).
  auto save = [&](int64_t done) -> absl::Status {
    CAIRN_ASSIGN_OR_RETURN(TensorRecords records, engine->Snapshot());
    const std::string step_dir = StepDirectory(o.checkpoint_dir, done);
    CAIRN_RETURN_IF_ERROR(WriteRankFile(step_dir, rank, records));
    CAIRN_RETURN_IF_ERROR(world->Barrier());
    if (rank == 0) {
      const std::string plan = absl::StrCat("pp=", o.plan.pipeline_degree(), " m=",
                                            o.plan.num_micro_batches, " batch=",
                                            o.plan.global_batch);
      CAIRN_RETURN_IF_ERROR(CommitCheckpoint(
          o.checkpoint_dir, {done, o.model.name, o.world_size, 2, plan}, /*keep_last=*/3));
      out.Message(absl::StrCat("checkpoint: step ", done, " saved to ", step_dir));
    }
    return absl::OkStatus();
  };
  std::unique_ptr<std::ofstream> metrics;
  if (rank == 0 && !o.metrics_path.empty()) {
    metrics = std::make_unique<std::ofstream>(o.metrics_path, std::ios::app);
    if (!*metrics) {
      return absl::InvalidArgumentError(absl::StrCat("cannot write metrics to ", o.metrics_path));
    }
  }
  const double tokens = static_cast<double>(o.plan.global_batch) * o.seq_len;
  double time_sum = 0;
  int timed = 0;
  double eval_time_sum_s = 0;
  int evaluations = 0;
  int64_t peak = 0;
  const int64_t last = o.stop_at > 0 ? std::min(o.stop_at, o.steps) : o.steps;
  const int val_every = val.has_value() ? o.val_every : 0;
  auto evaluate = [&]() -> absl::StatusOr<double> {
    const auto t0 = std::chrono::steady_clock::now();
    absl::StatusOr<double> loss = ValidationLoss(engine.get(), val_sampler, o.val_batches);
    eval_time_sum_s += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    ++evaluations;
    return loss;
  };
  const auto loop_start = std::chrono::steady_clock::now();
  for (int64_t step = start; step < last; ++step) {
    if (rank == o.fault_rank && step == o.fault_step) {
      std::fprintf(stderr, "cairn-train: rank %d: injected failure at step %lld\n", rank,
                   static_cast<long long>(step));
      std::fflush(stdout);
      std::fflush(stderr);
      _exit(3);
    }
    CAIRN_ASSIGN_OR_RETURN(StepResult r, engine->Step(step, sampler));
    CAIRN_ASSIGN_OR_RETURN(const int64_t worst, engine->MaxOverRanks(r.peak_memory_bytes));
    peak = std::max(peak, worst);
    if (step > start) {  // the first step warms up
      time_sum += r.step_time_s;
      ++timed;
    }
    const int64_t done = step + 1;
    std::optional<double> val_loss;
    if (val_every > 0 && (done % val_every == 0 || done == last)) {
      CAIRN_ASSIGN_OR_RETURN(val_loss, evaluate());
    }
    const double mfu = Mfu(o, tokens / r.step_time_s);
    if (rank == 0 && !o.quiet) {
      StepProgress p;
      p.step = done;
      p.steps = o.steps;
      p.loss = r.loss;
      p.val_loss = val_loss;
      p.step_time_s = r.step_time_s;
      // The compute/communication split is host time: exact where the backend runs synchronously
      // (CPU), only the time to enqueue on an asynchronous one (CUDA), so it is not printed there.
      p.split_known = backend->default_stream() == nullptr;
      p.compute_s = r.compute_s;
      p.comm_s = r.comm_s;
      p.tokens_per_s = tokens / r.step_time_s;
      p.mfu = mfu;
      p.peak_bytes = worst;
      p.learning_rate = r.learning_rate;
      p.grad_norm = r.grad_norm;
      // Wall time of this run's steps and evaluations; the rest at the mean times so far (the
      // warm-up step alone until there is a second).
      p.elapsed_s =
          std::chrono::duration<double>(std::chrono::steady_clock::now() - loop_start).count();
      p.eta_s = EtaSeconds(last - done, timed > 0 ? time_sum / timed : r.step_time_s,
                           EvaluationsLeft(done, last, val_every),
                           evaluations > 0 ? eval_time_sum_s / evaluations : 0);
      // On a terminal the line is rewritten in place; evaluations and the last step stay.
      out.Update(FormatStepLine(p), val_loss.has_value() || done == last);
    }
    if (metrics) {
      *metrics << absl::StrFormat(
          "{\"step\": %d, \"loss\": %.6f, \"step_time_s\": %.6f, \"tokens_per_s\": %.1f, "
          "\"peak_memory_bytes\": %d, \"planned_memory_bytes\": %d, \"learning_rate\": %.6g, "
          "\"grad_norm\": %.6f, \"compute_s\": %.6f, \"comm_s\": %.6f, \"mfu\": %.4f, "
          "\"predicted_step_time_s\": %.6f, \"predicted_memory_bytes\": %d, "
          "\"backend_scratch_bytes\": %d%s}\n",
          done, r.loss, r.step_time_s, tokens / r.step_time_s, worst, planned,
          r.learning_rate, r.grad_norm, r.compute_s, r.comm_s, mfu, o.predicted.step_time_s,
          o.predicted.peak_bytes, backend->ScratchHighWaterBytes(),
          val_loss.has_value() ? absl::StrFormat(", \"val_loss\": %.6f", *val_loss) : "");
      metrics->flush();
    }
    if (!o.checkpoint_dir.empty() && o.checkpoint_every > 0 &&
        (step + 1) % o.checkpoint_every == 0) {
      CAIRN_RETURN_IF_ERROR(save(step + 1));
    }
  }
  if (!o.checkpoint_dir.empty() && last > start &&
      (o.checkpoint_every <= 0 || last % o.checkpoint_every != 0)) {
    CAIRN_RETURN_IF_ERROR(save(last));
  }
  if (rank == 0 && timed > 0) {
    const double mean = time_sum / timed;
    const double mfu = Mfu(o, tokens / mean);
    out.Message(absl::StrFormat(
        "done: %d steps | mean step %s (predicted %s) | %s tokens/s%s | peak memory %s per rank "
        "(predicted %s, planned %s) + backend scratch %s",
        last, FormatSeconds(mean), FormatSeconds(o.predicted.step_time_s),
        FormatCount(tokens / mean),
        mfu > 0 ? absl::StrFormat(" | MFU %.1f%%", 100 * mfu) : "",
        FormatBytes(static_cast<double>(peak)),
        FormatBytes(static_cast<double>(o.predicted.peak_bytes)),
        FormatBytes(static_cast<double>(planned)),
        FormatBytes(static_cast<double>(backend->ScratchHighWaterBytes()))));
  }
  return world->Barrier();
}

absl::Status TrainLocally(const TrainerOptions& o) {
  const char* tmpdir = std::getenv("TMPDIR");
  std::string tmpl = absl::StrCat(tmpdir != nullptr && *tmpdir ? tmpdir : "/tmp",
                                  "/cairn-train-XXXXXX");
  if (mkdtemp(tmpl.data()) == nullptr) {
    return absl::InternalError(absl::StrCat("cannot create a store directory ", tmpl));
  }
  const std::string store_dir = tmpl;
  const absl::Status status = RunLocalWorkers(o.world_size, [&](int rank) -> absl::Status {
    CAIRN_ASSIGN_OR_RETURN(std::shared_ptr<Store> store, FileStore::Open(store_dir));
    CAIRN_ASSIGN_OR_RETURN(std::unique_ptr<ComputeBackend> backend, MakeBackend(o, rank));
    CAIRN_ASSIGN_OR_RETURN(std::unique_ptr<Communicator> world,
                           MakeWorld(o, rank, store, backend.get()));
    return TrainRank(o, world.get(), backend.get());
  });
  std::error_code ignored;
  std::filesystem::remove_all(store_dir, ignored);
  return status;
}

absl::Status TrainFromEnvironment(const TrainerOptions& o) {
  if (const char* planner = std::getenv("CAIRN_RDZV_PLANNER"); planner != nullptr && *planner) {
    return TrainThroughPlanner(o);
  }
  CAIRN_ASSIGN_OR_RETURN(const LaunchEnv env, LaunchEnv::FromEnvironment());
  CAIRN_ASSIGN_OR_RETURN(std::unique_ptr<ComputeBackend> backend, MakeBackend(o, env.local_rank));
  if (!o.make_world) {
    // Gloo advertises the address that routes to MASTER_ADDR (multi-host launches).
    CAIRN_ASSIGN_OR_RETURN(std::unique_ptr<GlooCommunicator> gloo,
                           GlooCommunicator::CreateFromEnv());
    return TrainRank(o, gloo.get(), backend.get());
  }
  CAIRN_ASSIGN_OR_RETURN(std::unique_ptr<TcpStore> store, OpenLaunchStore(env, absl::Minutes(5)));
  CAIRN_ASSIGN_OR_RETURN(std::unique_ptr<Communicator> world,
                         MakeWorld(o, env.rank, std::shared_ptr<Store>(std::move(store)),
                                   backend.get()));
  return TrainRank(o, world.get(), backend.get());
}

absl::Status TrainThroughPlanner(const TrainerOptions& o) {
  // RANK, WORLD_SIZE and LOCAL_RANK as for any launch; MASTER_ADDR/MASTER_PORT mean nothing here
  // (the planner is the rendezvous), so the launch checks are given a placeholder port.
  const auto lookup = [](absl::string_view name) -> std::optional<std::string> {
    const char* v = std::getenv(std::string(name).c_str());
    if (v != nullptr) return std::string(v);
    if (name == "MASTER_PORT") return std::string("1");
    return std::nullopt;
  };
  CAIRN_ASSIGN_OR_RETURN(const LaunchEnv env, LaunchEnv::FromLookup(lookup));
  CAIRN_ASSIGN_OR_RETURN(std::unique_ptr<PlannerStore> planner_store,
                         PlannerStore::FromEnvironment());
  std::shared_ptr<Store> store(std::move(planner_store));
  CAIRN_ASSIGN_OR_RETURN(std::unique_ptr<ComputeBackend> backend, MakeBackend(o, env.local_rank));
  std::unique_ptr<Communicator> world;
  if (o.make_world) {
    CAIRN_ASSIGN_OR_RETURN(world, MakeWorld(o, env.rank, store, backend.get()));
  } else {
    GlooOptions gloo;
    if (const char* host = std::getenv("CAIRN_HOST_ADDRESS"); host != nullptr && *host) {
      gloo.hostname = host;
    }
    CAIRN_ASSIGN_OR_RETURN(world, GlooCommunicator::Create(env.rank, o.world_size, store, gloo));
  }
  return TrainRank(o, world.get(), backend.get());
}

}  // namespace cairn::runtime
