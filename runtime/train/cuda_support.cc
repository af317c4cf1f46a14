#include "runtime/train/cuda_support.h"

#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>

#include <memory>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/status_macros.h"
#include "runtime/comm/gloo/gloo_communicator.h"
#include "runtime/comm/nccl/nccl_communicator.h"
#include "runtime/comm/staged/staged_communicator.h"
#include "runtime/compute/cuda/cuda_backend.h"
#include "runtime/cuda/device_probe.h"

namespace cairn::runtime {

namespace {

// The device list, probed in a child process: a process that initialises CUDA and then forks
// leaves its children without CUDA (cudaErrorInitializationError), and cairn-train forks its local
// workers after choosing the device.
absl::StatusOr<std::vector<cuda::DeviceInfo>> ProbeInChild() {
  int fds[2];
  if (pipe(fds) != 0) return absl::InternalError("cannot create a pipe to probe the GPUs");
  const pid_t pid = fork();
  if (pid < 0) return absl::InternalError("cannot fork to probe the GPUs");
  if (pid == 0) {
    close(fds[0]);
    absl::StatusOr<std::vector<cuda::DeviceInfo>> devices = cuda::ProbeDevices();
    std::string text;
    if (!devices.ok()) {
      text = absl::StrCat("error\n", devices.status().message());
    } else {
      for (const cuda::DeviceInfo& d : *devices) {
        absl::StrAppend(&text, d.total_memory_bytes, "\t", d.sm_count, "\t",
                        d.compute_capability_major, "\t", d.compute_capability_minor, "\t",
                        d.name, "\n");
      }
    }
    const ssize_t written = write(fds[1], text.data(), text.size());
    _exit(written == static_cast<ssize_t>(text.size()) ? 0 : 1);
  }
  close(fds[1]);
  std::string text;
  char buf[4096];
  ssize_t n;
  while ((n = read(fds[0], buf, sizeof(buf))) > 0) text.append(buf, static_cast<size_t>(n));
  close(fds[0]);
  int wstatus = 0;
  waitpid(pid, &wstatus, 0);
  if (absl::StartsWith(text, "error\n")) {
    return absl::FailedPreconditionError(text.substr(6));
  }
  std::vector<cuda::DeviceInfo> out;
  for (absl::string_view line : absl::StrSplit(text, '\n', absl::SkipEmpty())) {
    std::vector<std::string> f = absl::StrSplit(line, absl::MaxSplits('\t', 4));
    cuda::DeviceInfo d;
    if (f.size() != 5 || !absl::SimpleAtoi(f[0], &d.total_memory_bytes) ||
        !absl::SimpleAtoi(f[1], &d.sm_count) || !absl::SimpleAtoi(f[2], &d.compute_capability_major) ||
        !absl::SimpleAtoi(f[3], &d.compute_capability_minor)) {
      return absl::InternalError(absl::StrCat("cannot read the GPU probe's answer: ", line));
    }
    d.index = static_cast<int>(out.size());
    d.name = f[4];
    out.push_back(d);
  }
  return out;
}

}  // namespace

absl::StatusOr<GpuSetup> DetectGpus() {
  absl::StatusOr<std::vector<cuda::DeviceInfo>> devices = ProbeInChild();
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
