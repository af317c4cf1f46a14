// runtime/engine/engine.h — executes a plan: one optimizer step at a time, on one rank.
//
// The engine owns this rank's layers (those of its pipeline stage), their parameters, gradients
// and AdamW states under each layer's data-parallel mode, and runs the plan's pipeline schedule
// (common/plan/schedule.h, the order the planner simulates; with the interleaved schedule each
// rank holds v model chunks) over micro-batches: activations are relocated between layers of
// different layouts and sent between stages point-to-point; gradients
// are reduced (DDP all-reduce, ZeRO reduce-scatter, sums over TP ranks for sequence-parallel norms,
// over twin stages for tied embeddings), clipped by their global norm, and AdamW updates each
// rank's shard (ZeRO-1/2 then all-gather the weights).
//
// Device-agnostic: every buffer comes from one DeviceArena per rank (runtime/compute/arena.h) and
// every byte is touched through the ComputeBackend and the Communicator. Before the first step,
// Create runs the whole step once on a NullBackend with NullCommunicators and a planning arena,
// which records every allocation; the real arena is then allocated once with exactly the extent
// that dry run reached, so the rank's peak memory is known (planned_bytes()) before any compute,
// and an arena that does not fit fails here with the backend's numbers.
//
// Overlap (docs/cost-model.md describes the same): in the last micro-batch's backward, each DDP or
// ZeRO-1 layer's gradient all-reduce / reduce-scatter starts as soon as its backward is done and
// runs under the backward of the layers before it (the optimizer waits for them); ZeRO-2/3 layers
// reduce-scatter after every micro-batch, one layer behind the backward; ZeRO-3 weights are
// gathered one layer ahead of the compute that needs them (forward and backward). Layers of tied
// embeddings split over two stages reduce after the backward (their twin sum comes first).
//
//   CAIRN_ASSIGN_OR_RETURN(auto engine, Engine::Create(model, plan, seq_len, world, &backend, opt));
//   std::printf("needs %lld bytes per rank\n", engine->planned_bytes());
//   for (int step = 0; step < steps; ++step) {
//     CAIRN_ASSIGN_OR_RETURN(StepResult r, engine->Step(step, sampler));
//   }
//   CAIRN_ASSIGN_OR_RETURN(double val_loss, engine->Evaluate(/*batch=*/0, val_sampler));
//
// Determinism: parameters come from a counter-based RNG keyed by (seed, tensor, global index) and
// batches from the sampler by (step, sample index), so any plan on any number of ranks trains the
// same model on the same data as one rank, up to floating-point summation order.
#ifndef CAIRN_RUNTIME_ENGINE_ENGINE_H_
#define CAIRN_RUNTIME_ENGINE_ENGINE_H_

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <tuple>
#include <vector>

#include "absl/status/statusor.h"
#include "common/plan/plan.h"
#include "common/plan/schedule.h"
#include "runtime/checkpoint/checkpoint.h"
#include "runtime/comm/communicator.h"
#include "runtime/compute/arena.h"
#include "runtime/compute/compute_backend.h"
#include "runtime/engine/layers.h"
#include "runtime/engine/params.h"
#include "runtime/engine/topology.h"

namespace cairn::runtime {

struct TrainOptions {
  uint64_t seed = 1234;
  AdamWConfig adamw;            // learning_rate is the peak rate
  int warmup_steps = 0;         // linear warm-up from 0
  int total_steps = 0;          // cosine decay to min_lr_ratio x peak over the run (0: constant)
  float min_lr_ratio = 0.1f;
  float grad_clip = 1.0f;       // global-norm clipping (0: off)
};

// Fills sample `sample` (0 <= sample < global batch) of step `step` (host vectors of seq_len ids).
using Sampler = std::function<absl::Status(int64_t step, int64_t sample, std::vector<int32_t>* inputs,
                                           std::vector<int32_t>* targets)>;

struct StepResult {
  double loss = 0;              // mean token loss of the global batch (same on every rank)
  double grad_norm = 0;         // before clipping
  double learning_rate = 0;
  // From the step's first enqueue until its last kernel (the optimizer update, the gradients
  // zeroed) has finished on the device.
  double step_time_s = 0;
  int64_t peak_memory_bytes = 0;  // this rank's live tensors at their peak during the step
  // Host time in layer forward/backward (incl. TP collectives) and in relocation, pipeline and
  // gradient-sync calls. Exact on synchronous backends (CPU); on asynchronous ones it is the time
  // to enqueue.
  double compute_s = 0;
  double comm_s = 0;
};

// Tensor name ("<layer>.<tensor>") -> (global index, value) pairs.
using TensorValues = std::map<std::string, std::vector<std::pair<int64_t, float>>>;

class Engine {
 public:
  // Validates the plan against the contract (plan::CheckPlan) for `world->size()` ranks, plans
  // this rank's memory with a dry run, allocates the arena, builds the groups (collective: every
  // rank calls Create) and initialises parameters.
  static absl::StatusOr<std::unique_ptr<Engine>> Create(const plan::ModelDims& model,
                                                        const plan::PlanSpec& plan, int seq_len,
                                                        Communicator* world,
                                                        ComputeBackend* backend,
                                                        const TrainOptions& options);
  // The bytes Create would allocate for `rank` of `world_size` ranks with a backend of
  // `working_dtype`: the dry run alone (no device, no peers).
  static absl::StatusOr<int64_t> PlanMemory(const plan::ModelDims& model,
                                            const plan::PlanSpec& plan, int seq_len,
                                            int world_size, int rank, DType working_dtype,
                                            const TrainOptions& options);
  ~Engine();

  absl::StatusOr<StepResult> Step(int64_t step, const Sampler& sampler);

  // The mean token loss of one global batch through the plan, forward only: no gradients, no
  // update, no state kept (validation). The batch is `sampler`'s step `batch` (a validation
  // sampler, say), split into the plan's micro-batches exactly as Step splits it, so on the same
  // data and parameters it equals the loss Step(batch, sampler) reports (up to summation order).
  // Any schedule: each micro-batch runs forward through the stages in model order. Its buffers
  // come from the arena and are freed before it returns (Create's dry run includes one, so it
  // fits between any two steps). Collective: every rank calls it with the same `batch`; the same
  // loss on every rank.
  absl::StatusOr<double> Evaluate(int64_t batch, const Sampler& sampler);

  // Forward and backward of step `step`'s batch without updating anything: returns the mean loss
  // and fills `grads` with this rank's reduced gradients (DDP layers only; Unimplemented
  // otherwise), zeroed again before returning. For the gradient check.
  absl::StatusOr<double> LossAndGradients(int64_t step, const Sampler& sampler, TensorValues* grads);

  // This rank's share of the training state for a checkpoint: the fp32 values and Adam moments of
  // the elements it updates (its data-parallel shard; all of its tensors under DDP), keyed by
  // unsharded tensor and index. The union over ranks holds every element. Not collective.
  absl::StatusOr<TensorRecords> Snapshot();
  // The values part of Snapshot, by tensor (parity tests merge them over ranks).
  absl::StatusOr<TensorValues> LocalParameters();
  // Loads values and Adam moments from a checkpoint written under any plan. NotFound naming the
  // tensor when an element is missing (another model).
  absl::Status Restore(const Checkpoint& checkpoint);

  // The largest `value` over all ranks (collective).
  absl::StatusOr<int64_t> MaxOverRanks(int64_t value);

  const Topology& topology() const { return topo_; }
  // Device memory this rank holds for the whole run (the arena), planned before the first step.
  int64_t planned_bytes() const { return arena_->capacity_bytes(); }

 private:
  struct Layer;
  struct Gathered;
  struct PendingReduce;
  struct PendingSend {
    std::unique_ptr<CommHandle> handle;
    ArenaBuffer buffer;
  };

  Engine(const plan::ModelDims& model, const plan::PlanSpec& plan, int seq_len,
         Communicator* world, ComputeBackend* backend, const TrainOptions& options,
         DeviceArena* arena, bool dry_run);
  // Runs Init and the steps of a dry run on `arena` (a planning arena).
  static absl::Status DryRun(const plan::ModelDims& model, const plan::PlanSpec& plan, int seq_len,
                             int world_size, int rank, DType working_dtype,
                             const TrainOptions& options, DeviceArena* arena);
  absl::Status Init();
  Communicator* Group(const std::vector<int>& ranks) const;
  absl::StatusOr<ArenaBuffer> W(int64_t count) { return arena_->Allocate(count, wd_); }
  absl::StatusOr<ArenaBuffer> F32(int64_t count) {
    return arena_->Allocate(count, DType::kFloat32);
  }
  // Completes a communication with respect to the compute stream.
  absl::Status Finish(CommHandle* handle);
  absl::Status Finish(absl::StatusOr<std::unique_ptr<CommHandle>> op);
  // Host fp32 values -> the working dtype's bytes (what CopyToDevice of working tensors takes).
  std::vector<char> HostWorking(const float* values, int64_t n) const;
  // Loads a layer's values (host, padded flat layout, fp32) into its working and master buffers.
  absl::Status LoadValues(Layer& l, const std::vector<float>& full);

  // Weights of a layer for compute: the working buffer, or (ZeRO-3) a gathered copy, started
  // asynchronously by StartGather and completed by UseWeights.
  absl::StatusOr<Gathered> StartGather(Layer& l);
  absl::StatusOr<const void*> UseWeights(Layer& l, Gathered* g);
  // Gradient target of a layer for one backward (ZeRO-2/3: a zeroed full buffer in `tmp`).
  absl::StatusOr<float*> GradTarget(Layer& l, ArenaBuffer* tmp);
  // After a layer's backward: starts its data-parallel reduction when the plan overlaps it.
  absl::Status AfterBackward(Layer& l, ArenaBuffer tmp, bool last_micro_batch);
  // Completes reduce-scatters of ZeRO-2/3 gradients (all, or all but the newest).
  absl::Status DrainReduceScatters(bool keep_newest);

  absl::Status Relocate(const ActLayout& from, const ActLayout& to, ArenaBuffer* data);
  // The forward / backward of micro-batch `j` through local chunk `chunk`; after receiving its
  // input, completes the sends `released` lists (plan::SendReleases).
  // `evaluate`: forward only, nothing saved for a backward (Evaluate).
  absl::Status ForwardMicroBatch(int j, int chunk, const MicroBatch& mb,
                                 const std::vector<plan::SentMessage>& released,
                                 bool evaluate = false);
  absl::Status BackwardMicroBatch(int j, int chunk, const MicroBatch& mb,
                                  const std::vector<plan::SentMessage>& released);
  // Point-to-point message tag of a pipeline message leaving model chunk `g` for micro-batch `j`.
  int PipelineTag(bool forward, int g, int j) const {
    return 2 * (g * plan_.num_micro_batches + j) + (forward ? 0 : 1);
  }
  // Reduces gradients, computes the loss and the norm; with `update`, clips, steps AdamW and
  // zeroes the gradients (without, the reduced gradients stay for the caller).
  absl::Status ReduceAndUpdate(int64_t step, StepResult* result, bool update = true);
  absl::Status RunSchedule(int64_t step, const Sampler* sampler);
  absl::StatusOr<MicroBatch> LoadMicroBatch(int64_t step, int j, const Sampler* sampler);
  absl::Status Complete(const std::vector<plan::SentMessage>& released);
  absl::Status CompleteAllSends();
  double LearningRate(int64_t step) const;
  absl::StatusOr<float> ReadScalar(const ArenaBuffer& b);

  plan::ModelDims model_;
  plan::PlanSpec plan_;
  int seq_;
  Communicator* world_;
  ComputeBackend* be_;
  TrainOptions opt_;
  Topology topo_;
  std::unique_ptr<DeviceArena> owned_arena_;  // destroyed after every buffer below
  DeviceArena* arena_;
  bool dry_run_;
  DType wd_;
  Stream* stream_;
  std::map<std::vector<int>, std::unique_ptr<Communicator>> groups_;
  ArenaBuffer scalars_;  // fp32 [loss sum, squared gradient norm]
  std::vector<std::unique_ptr<Layer>> layers_;  // this rank's chunks' layers, chunk after chunk
  std::vector<size_t> chunk_begin_;             // layers_ index of each local chunk, + the end
  std::vector<std::vector<Saved>> saved_;  // [micro-batch][layer]
  std::vector<MicroBatch> batches_;        // micro-batches in flight, by index
  // Pipeline sends in flight, by (forward, local chunk, micro-batch); freed where
  // plan::SendReleases proves the peer received them (or at the end of the step).
  std::map<std::tuple<bool, int, int>, PendingSend> sends_;
  // Point-to-point between stages: the world communicator, or with interleaving one sub-group of
  // every rank per direction (NCCL matches messages between two ranks in issue order whatever
  // their tags; with one direction per communicator both ends issue them in the same order).
  Communicator* pp_forward_ = nullptr;
  Communicator* pp_backward_ = nullptr;
  std::unique_ptr<Communicator> owned_pp_forward_, owned_pp_backward_;
  std::vector<PendingReduce> reduce_scatters_;  // ZeRO-2/3, at most two in flight
  std::vector<std::unique_ptr<CommHandle>> step_syncs_;  // DDP/ZeRO-1, waited for by the optimizer
  uint64_t relocation_counter_ = 0;  // same sequence on every rank of a stage: message tags
  double compute_s_ = 0, comm_s_ = 0;
};

}  // namespace cairn::runtime

#endif  // CAIRN_RUNTIME_ENGINE_ENGINE_H_
