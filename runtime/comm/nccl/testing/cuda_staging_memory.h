// runtime/comm/nccl/testing/cuda_staging_memory.h — host buffers over a device communicator, for
// tests: the reverse of the staged communicator's production use.
//
// StagedCommunicator normally carries device buffers through a host communicator. Wrapped around an
// NcclCommunicator with this StagingMemory it does the opposite: callers pass host buffers, which
// are copied into device staging memory on GPU `device`, communicated by NCCL and copied back. So
// the parity suite (host std::vectors) runs unchanged on NCCL:
//
//   std::unique_ptr<Communicator> comm = StagedCommunicator::Create(
//       std::move(nccl_communicator), std::make_shared<CudaStagingMemory>(device));
//   comm->AllReduce(host.data(), host.data(), n);   // through GPU `device`
//
// Copies run on the caller's stream of `device` (nullptr: its legacy default stream). Testonly.
#ifndef CAIRN_RUNTIME_COMM_NCCL_TESTING_CUDA_STAGING_MEMORY_H_
#define CAIRN_RUNTIME_COMM_NCCL_TESTING_CUDA_STAGING_MEMORY_H_

#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "runtime/comm/staged/staged_communicator.h"

namespace cairn::runtime::testing {

class CudaStagingMemory final : public StagingMemory {
 public:
  explicit CudaStagingMemory(int device) : device_(device) {}

  std::string name() const override { return "cuda"; }
  // cudaMalloc on the device.
  absl::StatusOr<void*> AllocateStaging(size_t bytes) override;
  void FreeStaging(void* staging) override;
  // cudaMemcpyAsync host -> device and device -> host.
  absl::Status CopyToStaging(void* staging, const void* buffer, size_t bytes,
                             Stream* stream) override;
  absl::Status CopyFromStaging(void* buffer, const void* staging, size_t bytes,
                               Stream* stream) override;
  absl::Status Synchronize(Stream* stream) override;

 private:
  // Makes the device current on the calling thread (ranks' threads, and threads that wait).
  absl::Status Use() const;

  const int device_;
};

// The number of CUDA devices this process sees; 0 when there is no device or driver.
int VisibleGpuCount();

}  // namespace cairn::runtime::testing

#endif  // CAIRN_RUNTIME_COMM_NCCL_TESTING_CUDA_STAGING_MEMORY_H_
