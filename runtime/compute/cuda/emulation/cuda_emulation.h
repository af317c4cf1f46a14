// runtime/compute/cuda/emulation/cuda_emulation.h — builds the CUDA backend's kernels for the CPU
// (test-only). Force-included (-include) before anything else in every file of the emulation
// build (//runtime/compute/cuda:cuda_backend_emulated): the kernels' .cu files, compiled by the
// host compiler through one-line wrappers, plus cuda_backend.cc and lt_matmul.cc unchanged, linked
// against cuda_runtime_emulation.cc instead of libcudart and libcublasLt.
//
// What it provides: CAIRN_CUDA_EMULATION (device_utils.cuh's Launch and DynamicShared then run the
// SIMT emulator, simt_emulator.h), CAIRN_FLASH_EMULATE (the flash kernels' primitives come from
// flash_emulator.h, with its shared-memory race checks), __shared__ as `static` (blocks run one
// after another, so a static local is the block's shared memory), empty __launch_bounds__,
// threadIdx / blockIdx / blockDim / gridDim, __syncthreads, __syncwarp, the float shuffles and
// atomicAdd. The CUDA headers themselves are the real ones (types, bf16 conversions).
//
// Launches check what the GPU would refuse: more than 1024 threads, empty or too-large grids,
// dynamic shared memory above 48 KiB without cudaFuncSetAttribute raising the kernel's limit.
#ifndef CAIRN_RUNTIME_COMPUTE_CUDA_EMULATION_CUDA_EMULATION_H_
#define CAIRN_RUNTIME_COMPUTE_CUDA_EMULATION_CUDA_EMULATION_H_

#define CAIRN_CUDA_EMULATION 1
#define CAIRN_FLASH_EMULATE 1

// Before the CUDA headers, which define these only when they are not defined yet.
#define __shared__ static
#define __launch_bounds__(...)

#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cmath>
#include <cstdio>
#include <string>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

#include "runtime/compute/cuda/simt_emulator.h"

namespace cairn::runtime::cuda::emulator {

inline uint3 ToUint3(const Index3& i) { return make_uint3(i.x, i.y, i.z); }

// cuda_runtime_emulation.cc: the limit cudaFuncSetAttribute(kMaxDynamicSharedMemorySize) set for
// a kernel (48 KiB by default), and the error cudaGetLastError returns next.
int AllowedSharedBytes(const void* kernel);
void SetLastError(cudaError_t error);

template <typename... Params, typename... Args>
cudaError_t LaunchKernel(void (*kernel)(Params...), dim3 grid, dim3 block, size_t shared_bytes,
                         cudaStream_t, Args&&... args) {
  const uint64_t threads = static_cast<uint64_t>(block.x) * block.y * block.z;
  cudaError_t error = cudaSuccess;
  if (threads == 0 || threads > 1024 || grid.x == 0 || grid.y == 0 || grid.z == 0 ||
      grid.y > 65535 || grid.z > 65535) {
    error = cudaErrorInvalidConfiguration;
  } else if (shared_bytes >
             static_cast<size_t>(AllowedSharedBytes(reinterpret_cast<const void*>(kernel)))) {
    error = cudaErrorInvalidValue;
  }
  if (error != cudaSuccess) {
    std::fprintf(stderr,
                 "emulated launch refused: grid (%u, %u, %u), block (%u, %u, %u), %zu "
                 "bytes of shared memory\n",
                 grid.x, grid.y, grid.z, block.x, block.y, block.z, shared_bytes);
    SetLastError(error);
    return error;
  }
  std::tuple<std::decay_t<Params>...> params(std::forward<Args>(args)...);
  std::vector<std::string> errors;
  RunGrid(Index3{grid.x, grid.y, grid.z}, Index3{block.x, block.y, block.z}, shared_bytes,
          CopyMode::kAtWait, &errors, [&params, kernel] { std::apply(kernel, params); });
  if (!errors.empty()) {
    for (const std::string& e : errors) std::fprintf(stderr, "emulated kernel: %s\n", e.c_str());
    SetLastError(cudaErrorLaunchFailure);
    return cudaErrorLaunchFailure;
  }
  return cudaSuccess;
}

}  // namespace cairn::runtime::cuda::emulator

#define threadIdx \
  (::cairn::runtime::cuda::emulator::ToUint3(::cairn::runtime::cuda::emulator::ThreadIdx()))
#define blockIdx \
  (::cairn::runtime::cuda::emulator::ToUint3(::cairn::runtime::cuda::emulator::BlockIdx()))
#define blockDim \
  (::cairn::runtime::cuda::emulator::ToUint3(::cairn::runtime::cuda::emulator::BlockDim()))
#define gridDim \
  (::cairn::runtime::cuda::emulator::ToUint3(::cairn::runtime::cuda::emulator::GridDim()))

inline void __syncthreads() { ::cairn::runtime::cuda::emulator::BlockBarrier(); }
inline void __syncwarp(unsigned int = 0xffffffffu) {
  ::cairn::runtime::cuda::emulator::WarpBarrier();
}
inline float __shfl_xor_sync(unsigned int, float v, int lane_mask, int = 32) {
  const int lane = ::cairn::runtime::cuda::emulator::Self().tid & 31;
  return static_cast<float>(::cairn::runtime::cuda::emulator::Exchange(v, lane ^ lane_mask));
}
inline float __shfl_sync(unsigned int, float v, int source, int = 32) {
  return static_cast<float>(::cairn::runtime::cuda::emulator::Exchange(v, source));
}
inline float atomicAdd(float* address, float v) {
  const float old = *address;
  *address = old + v;
  return old;
}

#endif  // CAIRN_RUNTIME_COMPUTE_CUDA_EMULATION_CUDA_EMULATION_H_
