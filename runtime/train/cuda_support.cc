#include "runtime/train/cuda_support.h"

#include <algorithm>

#include <memory>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "runtime/comm/gloo/gloo_communicator.h"
#include "runtime/comm/nccl/nccl_communicator.h"
#include "runtime/comm/staged/staged_communicator.h"
#include "runtime/compute/cuda/cuda_backend.h"
#include "runtime/cuda/device_probe.h"

namespace cairn::runtime {

absl::StatusOr<GpuSetup> DetectGpus() {
  absl::StatusOr<std::vector<cuda::DeviceInfo>> devices = cuda::ProbeDevices();
  if (!devices.ok() || devices->empty()) {
    return absl::FailedPreconditionError(absl::StrCat(
        "no CUDA device is visible (", devices.ok() ? "none found" : devices.status().message(),
        "); train with --device cpu"));
  }
  const cuda::DeviceInfo& d = devices->front();
  GpuSetup out;
  out.count = static_cast<int>(devices->size());
  out.name = d.name;
  out.memory_bytes = d.total_memory_bytes;
  out.compute_capability = d.compute_capability_major * 10 + d.compute_capability_minor;
  if (out.compute_capability < 80) {
    return absl::FailedPreconditionError(absl::StrCat(
        "GPU 0 is a ", d.name, " (compute capability ", d.compute_capability_major, ".",
        d.compute_capability_minor, "); the CUDA backend needs 8.0 or newer (bf16 tensor cores)"));
  }
  return out;
}

std::string CatalogClusterFor(const std::string& gpu_name) {
  const std::string n = absl::AsciiStrToLower(gpu_name);
  if (absl::StrContains(n, "h200")) return "h200-sxm";
  if (absl::StrContains(n, "h100")) return "h100-sxm";
  if (absl::StrContains(n, "a100")) return "a100-80g-sxm";
  return "";
}

BackendFactory CudaBackendFactory(const GpuSetup& gpus) {
  const int count = gpus.count;
  return [count](int local_rank) -> absl::StatusOr<std::unique_ptr<ComputeBackend>> {
    CAIRN_ASSIGN_OR_RETURN(std::unique_ptr<CudaBackend> backend,
                           CudaBackend::Create(local_rank % count));
    return std::unique_ptr<ComputeBackend>(std::move(backend));
  };
}

WorldFactory CudaWorldFactory(const GpuSetup& gpus, int ranks_per_host) {
  const int count = gpus.count;
  const int per_host = std::max(1, ranks_per_host);
  const bool shared = per_host > count;
  return [count, shared, per_host](int rank, int world, std::shared_ptr<Store> store,
                         ComputeBackend* backend) -> absl::StatusOr<std::unique_ptr<Communicator>> {
    if (!shared) {
      NcclOptions options;
      options.device = (rank % per_host) % count;
      CAIRN_ASSIGN_OR_RETURN(std::unique_ptr<NcclCommunicator> nccl,
                             NcclCommunicator::Create(rank, world, std::move(store), options));
      return std::unique_ptr<Communicator>(std::move(nccl));
    }
    CAIRN_ASSIGN_OR_RETURN(std::unique_ptr<GlooCommunicator> gloo,
                           GlooCommunicator::Create(rank, world, std::move(store)));
    return std::unique_ptr<Communicator>(StagedCommunicator::Create(std::move(gloo), backend));
  };
}

}  // namespace cairn::runtime
