// runtime/engine/engine.h — executes a plan: one optimizer step at a time, on one rank.
//
// The engine owns this rank's layers (those of its pipeline stage), their parameters, gradients
// and AdamW states under each layer's data-parallel mode, and runs the plan's pipeline schedule
// over micro-batches: activations are relocated between layers of different layouts and sent
// between stages point-to-point; after the last backward, gradients are reduced (DDP all-reduce,
// ZeRO reduce-scatter, sums over TP ranks for sequence-parallel norms, over twin stages for tied
// embeddings), clipped by their global norm, and AdamW updates each rank's shard (ZeRO-1/2 then
// all-gather the weights). Everything is fp32 on the CPU backend; the same code drives a CUDA
// backend behind the interfaces.
//
//   CAIRN_ASSIGN_OR_RETURN(auto engine, Engine::Create(model, plan, seq_len, world, &backend, opt));
//   for (int step = 0; step < steps; ++step) {
//     CAIRN_ASSIGN_OR_RETURN(StepResult r, engine->Step(step, sampler));
//   }
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
#include <vector>

#include "absl/status/statusor.h"
#include "planner/problem/problem.h"
#include "runtime/checkpoint/checkpoint.h"
#include "runtime/comm/communicator.h"
#include "runtime/compute/compute_backend.h"
#include "runtime/engine/buffer.h"
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

// Fills sample `sample` (0 <= sample < global batch) of step `step`.
using Sampler = std::function<absl::Status(int64_t step, int64_t sample, std::vector<int32_t>* inputs,
                                           std::vector<int32_t>* targets)>;

struct StepResult {
  double loss = 0;              // mean token loss of the global batch (same on every rank)
  double grad_norm = 0;         // before clipping
  double learning_rate = 0;
  double step_time_s = 0;
  int64_t peak_memory_bytes = 0;  // this rank, since the previous step
  double compute_s = 0;         // this rank's time in layer forward/backward (incl. TP collectives)
  double comm_s = 0;            // relocation, pipeline and gradient-sync time
};

class Engine {
 public:
  // Validates the plan for `world->size()` ranks, builds the groups (collective: every rank calls
  // Create), and initialises parameters.
  static absl::StatusOr<std::unique_ptr<Engine>> Create(const planner::ModelDims& model,
                                                        const planner::PlanSpec& plan, int seq_len,
                                                        Communicator* world,
                                                        ComputeBackend* backend,
                                                        const TrainOptions& options);
  ~Engine();

  absl::StatusOr<StepResult> Step(int64_t step, const Sampler& sampler);

  // Forward and backward of step `step`'s batch without updating anything: returns the mean loss
  // and fills `grads` with this rank's reduced gradients by unsharded tensor and index (the
  // gradient check and debugging; gradients are zeroed again before returning).
  absl::StatusOr<double> LossAndGradients(
      int64_t step, const Sampler& sampler,
      std::map<std::string, std::vector<std::pair<int64_t, float>>>* grads);

  // This rank's parameter values by unsharded tensor: for each local tensor, (name -> pairs of
  // (global index, value)); names are "<layer index>.<tensor>". Collective over the shard groups
  // (ZeRO-3 gathers). Used by parity tests and checkpoints.
  absl::StatusOr<std::map<std::string, std::vector<std::pair<int64_t, float>>>> LocalParameters();

  // This rank's share of the training state for a checkpoint: every local tensor's values and the
  // Adam moments of the elements it updates, keyed by unsharded tensor and index. Collective over
  // ZeRO-3 shard groups.
  absl::StatusOr<TensorRecords> Snapshot();
  // Loads values and Adam moments from a checkpoint written under any plan. NotFound naming the
  // tensor when an element is missing (another model).
  absl::Status Restore(const Checkpoint& checkpoint);

  const Topology& topology() const { return topo_; }
  MemoryTracker& memory() { return memory_; }

 private:
  struct Layer;
  Engine(const planner::ModelDims& model, const planner::PlanSpec& plan, int seq_len,
         Communicator* world, ComputeBackend* backend, const TrainOptions& options);
  absl::Status Init();
  Communicator* Group(const std::vector<int>& ranks) const;

  // Weights of a layer for compute (ZeRO-3: gathered into `tmp`).
  absl::StatusOr<const float*> Weights(Layer& l, Buffer* tmp);
  // Gradient target of a layer for one backward (ZeRO-2/3: a zeroed full buffer in `tmp`), and
  // the matching finish (ZeRO-2/3: reduce-scatter into the gradient shard).
  float* GradTarget(Layer& l, Buffer* tmp);
  absl::Status FinishGrad(Layer& l, Buffer* tmp);

  absl::Status Relocate(const ActLayout& from, const ActLayout& to, Buffer* data);
  absl::Status ForwardMicroBatch(int j, const MicroBatch& mb);
  absl::Status BackwardMicroBatch(int j, const MicroBatch& mb);
  absl::Status ReduceAndUpdate(int64_t step, StepResult* result, bool update = true);
  absl::Status RunSchedule(int64_t step, const Sampler& sampler);
  double LearningRate(int64_t step) const;

  planner::ModelDims model_;
  planner::PlanSpec plan_;
  int seq_;
  Communicator* world_;
  ComputeBackend* be_;
  TrainOptions opt_;
  Topology topo_;
  MemoryTracker memory_;
  std::map<std::vector<int>, std::unique_ptr<Communicator>> groups_;
  std::vector<std::unique_ptr<Layer>> layers_;
  // Per micro-batch: each layer's saved state, and pending sends.
  std::vector<std::vector<Saved>> saved_;
  // Sends in flight, by micro-batch: a forward send is known to be received once the backward of
  // that micro-batch arrives from the next stage; a backward send (1F1B) once the previous stage's
  // forward of micro-batch j + (p - stage) + 1 arrives. Their buffers are freed then.
  struct PendingSend {
    std::unique_ptr<CommHandle> handle;
    Buffer buffer;
  };
  std::map<int, PendingSend> forward_sends_, backward_sends_;
  absl::Status Complete(std::map<int, PendingSend>* sends, int up_to);
  uint64_t relocation_counter_ = 0;  // same sequence on every rank of a stage: message tags
  double loss_sum_ = 0;
  int64_t loss_tokens_ = 0;
  double compute_s_ = 0, comm_s_ = 0;
};

}  // namespace cairn::runtime

#endif  // CAIRN_RUNTIME_ENGINE_ENGINE_H_
