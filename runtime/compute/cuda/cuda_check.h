// runtime/compute/cuda/cuda_check.h — the one place where CUDA runtime and cuBLAS(Lt) error codes
// become absl::Status (private to runtime/compute/cuda).
//
//   CAIRN_CUDA_RETURN_IF_ERROR(cudaMemsetAsync(ptr, 0, bytes, stream));
//   CAIRN_CUBLAS_RETURN_IF_ERROR(cublasLtMatmul(...));
//
// The message names the failing call (its source text), the error's name and description, e.g.
// "cudaMalloc(&ptr, bytes): cudaErrorMemoryAllocation (out of memory)". Codes are chosen by what
// the caller can do: no device or driver -> FailedPrecondition (run elsewhere), out of memory ->
// ResourceExhausted (ask for less), a bad argument that validation should have caught -> Internal,
// everything else (launch failures, illegal addresses, unsupported cuBLAS configurations) ->
// Internal.
#ifndef CAIRN_RUNTIME_COMPUTE_CUDA_CUDA_CHECK_H_
#define CAIRN_RUNTIME_COMPUTE_CUDA_CUDA_CHECK_H_

#include <cublasLt.h>
#include <cuda_runtime.h>

#include <string>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "common/status_macros.h"

namespace cairn::runtime::cuda {

inline absl::Status CudaStatus(cudaError_t error, const char* what) {
  if (error == cudaSuccess) return absl::OkStatus();
  const std::string detail =
      absl::StrCat(what, ": ", cudaGetErrorName(error), " (", cudaGetErrorString(error), ")");
  switch (error) {
    case cudaErrorNoDevice:
    case cudaErrorInsufficientDriver:
    case cudaErrorInitializationError:
    case cudaErrorCompatNotSupportedOnDevice:
    case cudaErrorInvalidDevice:
      return absl::FailedPreconditionError(absl::StrCat("no usable CUDA device: ", detail));
    case cudaErrorMemoryAllocation:
      return absl::ResourceExhaustedError(detail);
    default:
      return absl::InternalError(detail);
  }
}

inline absl::Status CublasStatus(cublasStatus_t status, const char* what) {
  if (status == CUBLAS_STATUS_SUCCESS) return absl::OkStatus();
  const std::string detail = absl::StrCat(what, ": ", cublasLtGetStatusName(status), " (",
                                          cublasLtGetStatusString(status), ")");
  switch (status) {
    case CUBLAS_STATUS_ALLOC_FAILED:
      return absl::ResourceExhaustedError(detail);
    case CUBLAS_STATUS_NOT_SUPPORTED:
      return absl::UnimplementedError(detail);
    default:
      return absl::InternalError(detail);
  }
}

}  // namespace cairn::runtime::cuda

// Returns from the enclosing function (absl::Status or StatusOr) when a CUDA runtime call fails.
#define CAIRN_CUDA_RETURN_IF_ERROR(call) \
  CAIRN_RETURN_IF_ERROR(::cairn::runtime::cuda::CudaStatus((call), #call))
// The same for cuBLAS / cuBLASLt calls.
#define CAIRN_CUBLAS_RETURN_IF_ERROR(call) \
  CAIRN_RETURN_IF_ERROR(::cairn::runtime::cuda::CublasStatus((call), #call))

#endif  // CAIRN_RUNTIME_COMPUTE_CUDA_CUDA_CHECK_H_
