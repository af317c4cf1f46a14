#include "runtime/train/backends.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "runtime/comm/file_store.h"
#include "runtime/comm/gloo/gloo_communicator.h"
#include "runtime/compute/cpu/cpu_backend.h"
#ifdef CAIRN_WITH_CUDA
#include "runtime/comm/nccl/nccl_communicator.h"
#include "runtime/compute/cuda/cuda_backend.h"
#endif

namespace cairn::runtime {

const char* ToString(DeviceKind kind) { return kind == DeviceKind::kCuda ? "cuda" : "cpu"; }

absl::StatusOr<DeviceKind> DeviceKindFromName(absl::string_view name) {
  if (name == "cpu") return DeviceKind::kCpu;
  if (name == "cuda" || name == "gpu") return DeviceKind::kCuda;
  return absl::InvalidArgumentError(absl::StrCat("unknown device kind '", name,
                                                 "' (cpu or cuda)"));
}

bool Supports(DeviceKind kind) {
#ifdef CAIRN_WITH_CUDA
  return true;
#else
  return kind == DeviceKind::kCpu;
#endif
}

namespace {
absl::Status NoCuda() {
  return absl::UnimplementedError(
      "this binary was built without CUDA (build the *_cuda target on a machine with the CUDA "
      "toolkit)");
}
}  // namespace

absl::StatusOr<std::unique_ptr<ComputeBackend>> MakeComputeBackend(DeviceKind kind, int device) {
  if (kind == DeviceKind::kCpu) return std::unique_ptr<ComputeBackend>(new CpuBackend());
#ifdef CAIRN_WITH_CUDA
  CAIRN_ASSIGN_OR_RETURN(std::unique_ptr<CudaBackend> cuda, CudaBackend::Create(device));
  return std::unique_ptr<ComputeBackend>(std::move(cuda));
#else
  (void)device;
  return NoCuda();
#endif
}

absl::StatusOr<std::unique_ptr<Communicator>> MakeWorldCommunicator(
    DeviceKind kind, int rank, int size, std::shared_ptr<Store> store, ComputeBackend* backend,
    const WorldOptions& options) {
  (void)backend;
  if (kind == DeviceKind::kCpu) {
    GlooOptions gloo;
    gloo.hostname = options.hostname;
    gloo.name = options.name;
    gloo.timeout = options.timeout;
    gloo.rendezvous_timeout = options.rendezvous_timeout;
    CAIRN_ASSIGN_OR_RETURN(std::unique_ptr<GlooCommunicator> c,
                           GlooCommunicator::Create(rank, size, std::move(store), gloo));
    return std::unique_ptr<Communicator>(std::move(c));
  }
#ifdef CAIRN_WITH_CUDA
  NcclOptions nccl;
  nccl.device = options.device;
  nccl.name = options.name;
  nccl.timeout = options.timeout;
  nccl.rendezvous_timeout = options.rendezvous_timeout;
  CAIRN_ASSIGN_OR_RETURN(std::unique_ptr<NcclCommunicator> c,
                         NcclCommunicator::Create(rank, size, std::move(store), nccl));
  return std::unique_ptr<Communicator>(std::move(c));
#else
  return NoCuda();
#endif
}

absl::StatusOr<std::shared_ptr<Store>> OpenDirectoryStore(const std::string& dir) {
  CAIRN_ASSIGN_OR_RETURN(std::unique_ptr<FileStore> s, FileStore::Open(dir));
  return std::shared_ptr<Store>(std::move(s));
}

}  // namespace cairn::runtime
