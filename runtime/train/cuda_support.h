// runtime/train/cuda_support.h — what a training job needs to run on GPUs: the CUDA backend per
// rank and the world communicator that fits the GPUs at hand.
//
//   CAIRN_ASSIGN_OR_RETURN(GpuSetup gpus, DetectGpus());
//   options.make_backend = CudaBackendFactory(gpus);
//   options.make_world = CudaWorldFactory(gpus, options.world_size);
//
// Ranks take GPU local_rank % count. When there are at least as many GPUs as ranks, ranks talk
// through NCCL (one GPU each); when several ranks share a GPU (NCCL cannot), through a
// StagedCommunicator over Gloo (device buffers staged through host memory, runtime/comm/staged):
// every plan then runs on a single GPU with several processes, slower but exact.
//
// Built only with the CUDA toolkit (tag "cuda"); cairn-train links it when it is there.
#ifndef CAIRN_RUNTIME_TRAIN_CUDA_SUPPORT_H_
#define CAIRN_RUNTIME_TRAIN_CUDA_SUPPORT_H_

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "runtime/train/trainer.h"

namespace cairn::runtime {

struct GpuSetup {
  int count = 0;                 // visible CUDA devices
  std::string name;              // device 0's name, e.g. "NVIDIA H100 80GB HBM3"
  int64_t memory_bytes = 0;      // device 0's memory
  int compute_capability = 0;    // major x 10 + minor, e.g. 90
};

// The visible GPUs. FailedPrecondition when there is none (no driver, no device), saying so.
absl::StatusOr<GpuSetup> DetectGpus();

// The catalog hardware profile of a GPU by its CUDA name ("h100-sxm", "h200-sxm",
// "a100-80g-sxm"), or "" when the catalog has none for it.
std::string CatalogClusterFor(const std::string& gpu_name);

BackendFactory CudaBackendFactory(const GpuSetup& gpus);
// `ranks_per_host`: ranks on this host (the world for a local launch; LOCAL_WORLD_SIZE for a
// multi-host one, e.g. an agent's workers). Ranks are consecutive per host, so rank r of a host
// uses GPU (r % ranks_per_host) % count; NCCL when the host has a GPU per rank, staged otherwise.
WorldFactory CudaWorldFactory(const GpuSetup& gpus, int ranks_per_host);

}  // namespace cairn::runtime

#endif  // CAIRN_RUNTIME_TRAIN_CUDA_SUPPORT_H_
