// runtime/train/trainer.h — a training job as a library: what `cairn-train` runs and what an agent
// hosts.
//
// Overview
// --------
// TrainerOptions says everything a job needs: the model's dimensions, the plan (already chosen:
// from a plan file, the planner library or the planner daemon — this library never plans), the
// data, the optimizer, checkpoints and the prediction to compare measurements with. Nothing here
// depends on the planner: plans arrive as the contract's PlanSpec (common/plan).
//
//   TrainerOptions opt;
//   opt.model = ...; opt.plan = ...; opt.seq_len = 256; opt.world_size = 4;
//   opt.data_dir = "data/"; opt.steps = 100;
//   CAIRN_RETURN_IF_ERROR(CheckTrainingInputs(opt));     // before any worker starts
//   CAIRN_RETURN_IF_ERROR(TrainLocally(opt));             // forks 4 workers, supervises them
//   // or, in a process that is already one rank of a job (torchrun-style environment, agents):
//   CAIRN_RETURN_IF_ERROR(TrainRank(opt, world.get(), backend.get()));
//
// Rank 0 prints one progress line per step (unless quiet; runtime/train/progress.h: rewritten in
// place on a terminal, plain lines otherwise) and appends one JSON line per step to
// `metrics_path`.
//
// Validation: when the data directory holds a validation split (val_*.bin, cairn-data
// --val-fraction), every `val_every` steps and after the last step the trainer evaluates the mean
// token loss of `val_batches` global batches of it (the same batches each time), forward only,
// under the same plan on the same ranks (Engine::Evaluate), and reports it on that step's line
// ("val 2.3456") and as "val_loss" in its JSON line. Without a validation split (or with one shorter
// than seq_len + 1 tokens) it says so once and trains without.
//
// Errors are Status: InvalidArgument for input the user can fix, the engine's and communicators'
// errors otherwise.
#ifndef CAIRN_RUNTIME_TRAIN_TRAINER_H_
#define CAIRN_RUNTIME_TRAIN_TRAINER_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/plan/plan.h"
#include "runtime/comm/communicator.h"
#include "runtime/compute/compute_backend.h"
#include "runtime/engine/engine.h"

namespace cairn::runtime {

// What the planner predicted for this plan on this hardware (zero: unknown).
struct Prediction {
  double step_time_s = 0;
  int64_t peak_bytes = 0;  // per rank, tensors only (the runtime reservation excluded)
};

// Makes rank `local_rank`'s compute backend (the CPU backend by default).
using BackendFactory =
    std::function<absl::StatusOr<std::unique_ptr<ComputeBackend>>(int local_rank)>;

class Store;
// Makes rank `rank`'s world communicator of `world_size` ranks meeting through `store`, for
// `backend`'s buffers (Gloo over host memory by default; NCCL or a staged communicator for GPUs).
using WorldFactory = std::function<absl::StatusOr<std::unique_ptr<Communicator>>(
    int rank, int world_size, std::shared_ptr<Store> store, ComputeBackend* backend)>;

struct TrainerOptions {
  plan::ModelDims model;
  plan::PlanSpec plan;
  int seq_len = 0;
  int world_size = 1;
  std::string data_dir;           // token shards written by cairn-data
  int steps = 10;                 // optimizer steps of the whole run (a resume continues to it)
  // Stop after this step (0: at `steps`), saving a checkpoint there when checkpoint_dir is set:
  // for time-limited allocations, a run cut into several jobs keeps one learning-rate schedule.
  int stop_at = 0;
  TrainOptions train;
  std::string checkpoint_dir;     // empty: no checkpoints
  int checkpoint_every = 0;       // steps between checkpoints (0: at the end only)
  std::string resume_dir;         // empty: start from the initialisation
  std::string metrics_path;       // JSON lines, appended by rank 0; empty: none
  bool quiet = false;             // no per-step lines
  // How rank 0 prints the step lines: kAuto rewrites one line in place when stdout is a terminal
  // and prints plain lines otherwise; kLines / kTerminal force either.
  enum class Progress { kAuto, kLines, kTerminal };
  Progress progress = Progress::kAuto;
  // Validation loss every `val_every` steps and after the last (0: never), over `val_batches`
  // global batches of the data directory's validation split (skipped, said once, when it has
  // none).
  int val_every = 50;
  int val_batches = 4;
  Prediction predicted;
  // For MFU on the progress lines and metrics (0: not reported): model FLOPs per token by the
  // PaLM/Megatron convention (planner/cost/model_math.h) and the device's peak FLOP/s.
  double model_flops_per_token = 0;
  double peak_flops_per_s = 0;
  std::string device_name = "CPU";  // for messages ("CPU", "NVIDIA H100 80GB HBM3", ...)
  BackendFactory make_backend;      // empty: CpuBackend
  WorldFactory make_world;          // empty: GlooCommunicator
  // Test builds only (the cairn-train-testing binary): rank `fault_rank` exits with status 3 at
  // the start of step `fault_step`.
  int fault_rank = -1;
  int fault_step = -1;
};

// Everything that can be checked before a worker starts: the plan against the contract for this
// world size and sequence length, the data (present, vocabulary within the model's, long enough
// for one sample; a validation split's tokens within the vocabulary), the step counts and
// validation settings. InvalidArgument naming what to change. (A validation split shorter than one
// sample is not an error: the run says so and trains without validation.)
absl::Status CheckTrainingInputs(const TrainerOptions& options);

// Runs this process's rank of the job over `world` (one communicator per process, any
// implementation) with `backend`: create the engine (its memory planned before the first step),
// resume, train, checkpoint. Collective: every rank calls it.
absl::Status TrainRank(const TrainerOptions& options, Communicator* world,
                       ComputeBackend* backend);

// Forks options.world_size local worker processes that meet through a fresh directory store and
// run TrainRank over Gloo; a failing worker fails the run fast, naming its rank. The store
// directory is removed afterwards.
absl::Status TrainLocally(const TrainerOptions& options);

// This process as one rank of a job started by a launcher (RANK, WORLD_SIZE, MASTER_ADDR,
// MASTER_PORT as torchrun, Slurm or Kubernetes set them): Gloo over the rank-0-hosted TCP store.
// With CAIRN_RDZV_PLANNER set (cairn-agent's workers), TrainThroughPlanner instead.
absl::Status TrainFromEnvironment(const TrainerOptions& options);

// This process as one rank of a job hosted by cairn-agent: RANK, WORLD_SIZE, LOCAL_RANK as above,
// and the ranks meet through the planner daemon's rendezvous (runtime/comm/planner_store.h:
// CAIRN_RDZV_PLANNER, CAIRN_RDZV_JOB, CAIRN_RDZV_PREFIX, credentials), Gloo listening on
// CAIRN_HOST_ADDRESS (the node's address the other nodes reach; default 127.0.0.1).
absl::Status TrainThroughPlanner(const TrainerOptions& options);

}  // namespace cairn::runtime

#endif  // CAIRN_RUNTIME_TRAIN_TRAINER_H_
