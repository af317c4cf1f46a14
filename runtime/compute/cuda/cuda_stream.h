// runtime/compute/cuda/cuda_stream.h — what a `Stream*` is on the CUDA backend: a cudaStream_t.
//
// compute_backend.h and communicator.h only forward-declare `class Stream`; CUDA code (this
// folder, runtime/comm/nccl/) includes this header to reach the CUDA stream behind one:
//
//   cudaStream_t s = CudaStreamOf(stream);   // nullptr -> the legacy default stream (0)
//
// The CUDA backend owns its Stream objects (default_stream() and any it creates); a Stream* handed
// to a communicator stays valid while the backend lives.
#ifndef CAIRN_RUNTIME_COMPUTE_CUDA_CUDA_STREAM_H_
#define CAIRN_RUNTIME_COMPUTE_CUDA_CUDA_STREAM_H_

#include <cuda_runtime.h>

namespace cairn::runtime {

class Stream {
 public:
  explicit Stream(cudaStream_t handle) : handle_(handle) {}
  cudaStream_t handle() const { return handle_; }

 private:
  cudaStream_t handle_;
};

inline cudaStream_t CudaStreamOf(const Stream* stream) {
  return stream != nullptr ? stream->handle() : nullptr;
}

}  // namespace cairn::runtime

#endif  // CAIRN_RUNTIME_COMPUTE_CUDA_CUDA_STREAM_H_
