// runtime/compute/cuda/optimizer.cu — AdamW, Scale, and the deterministic fp32 sums behind
// NormSquared and Sum (all fp32 tensors).
//
// AdamW and Scale: grid-stride loops, four elements per thread with float4 loads when every pointer
// is 16-byte aligned (the flat parameter, gradient and moment buffers usually are), the rest
// scalar. One launch per call whatever n is.
//
// Sums: two kernels and no float atomics, so the result has the same bits every run. SumKernel runs
// a grid of SumPartials(n) blocks (a function of n only); block b adds the elements
// b x 256 + i x (grid x 256) in a fixed order per thread, then the block's threads in a fixed tree
// (device_utils.cuh BlockSum), and writes partials[b]. FinishSumKernel (one block) adds the
// partials in a fixed order and does *sum += total.
#include "runtime/compute/cuda/device_utils.cuh"
#include "runtime/compute/cuda/kernels.h"

namespace cairn::runtime::cuda {
namespace {

constexpr int kThreads = 256;
constexpr int64_t kMaxSumBlocks = 1024;

__device__ __forceinline__ void AdamWElement(const AdamWArgs& a, float& p, float grad, float& m,
                                             float& v) {
  // cpu_backend.cc's formula, operation for operation.
  const float g = grad * a.grad_scale;
  m = a.beta1 * m + (1.0f - a.beta1) * g;
  v = a.beta2 * v + (1.0f - a.beta2) * g * g;
  const float m_hat = m / a.bias_correction1;
  const float v_hat = v / a.bias_correction2;
  p -= a.learning_rate * (m_hat / (sqrtf(v_hat) + a.eps) + a.weight_decay * p);
}

__global__ void AdamWKernel(int64_t n, AdamWArgs args, float* params, const float* grads, float* m,
                            float* v, bool vectorized) {
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  const int64_t tid = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  int64_t scalar_begin = 0;
  if (vectorized) {
    const int64_t vectors = n / 4;
    for (int64_t i = tid; i < vectors; i += stride) {
      float4 p4 = reinterpret_cast<float4*>(params)[i];
      const float4 g4 = reinterpret_cast<const float4*>(grads)[i];
      float4 m4 = reinterpret_cast<float4*>(m)[i];
      float4 v4 = reinterpret_cast<float4*>(v)[i];
      AdamWElement(args, p4.x, g4.x, m4.x, v4.x);
      AdamWElement(args, p4.y, g4.y, m4.y, v4.y);
      AdamWElement(args, p4.z, g4.z, m4.z, v4.z);
      AdamWElement(args, p4.w, g4.w, m4.w, v4.w);
      reinterpret_cast<float4*>(params)[i] = p4;
      reinterpret_cast<float4*>(m)[i] = m4;
      reinterpret_cast<float4*>(v)[i] = v4;
    }
    scalar_begin = vectors * 4;
  }
  for (int64_t i = scalar_begin + tid; i < n; i += stride) {
    AdamWElement(args, params[i], grads[i], m[i], v[i]);
  }
}

__global__ void ScaleKernel(int64_t n, float alpha, float* x, bool vectorized) {
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  const int64_t tid = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  int64_t scalar_begin = 0;
  if (vectorized) {
    const int64_t vectors = n / 4;
    for (int64_t i = tid; i < vectors; i += stride) {
      float4 q = reinterpret_cast<float4*>(x)[i];
      q.x *= alpha;
      q.y *= alpha;
      q.z *= alpha;
      q.w *= alpha;
      reinterpret_cast<float4*>(x)[i] = q;
    }
    scalar_begin = vectors * 4;
  }
  for (int64_t i = scalar_begin + tid; i < n; i += stride) x[i] *= alpha;
}

// y += alpha x (fp32), float4 when both are 16-byte aligned.
__global__ void AxpyKernel(int64_t n, float alpha, const float* x, float* y, bool vectorized) {
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  const int64_t tid = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  int64_t scalar_begin = 0;
  if (vectorized) {
    const int64_t vectors = n / 4;
    for (int64_t i = tid; i < vectors; i += stride) {
      const float4 a = reinterpret_cast<const float4*>(x)[i];
      float4 b = reinterpret_cast<float4*>(y)[i];
      b.x += alpha * a.x;
      b.y += alpha * a.y;
      b.z += alpha * a.z;
      b.w += alpha * a.w;
      reinterpret_cast<float4*>(y)[i] = b;
    }
    scalar_begin = vectors * 4;
  }
  for (int64_t i = scalar_begin + tid; i < n; i += stride) y[i] += alpha * x[i];
}

__device__ __forceinline__ float Term(float x, bool squared) { return squared ? x * x : x; }

__global__ void SumKernel(int64_t n, const float* x, bool squared, bool vectorized,
                          float* partials) {
  __shared__ float shared[32];
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  const int64_t tid = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  float acc = 0.0f;
  int64_t scalar_begin = 0;
  if (vectorized) {
    const int64_t vectors = n / 4;
#pragma unroll 4
    for (int64_t i = tid; i < vectors; i += stride) {
      const float4 q = reinterpret_cast<const float4*>(x)[i];
      acc += (Term(q.x, squared) + Term(q.y, squared)) + (Term(q.z, squared) + Term(q.w, squared));
    }
    scalar_begin = vectors * 4;
  }
  for (int64_t i = scalar_begin + tid; i < n; i += stride) acc += Term(x[i], squared);
  const float total = BlockSum(acc, shared);
  if (threadIdx.x == 0) partials[blockIdx.x] = total;
}

__global__ void FinishSumKernel(int64_t count, const float* partials, float* sum) {
  __shared__ float shared[32];
  float acc = 0.0f;
  for (int64_t i = threadIdx.x; i < count; i += blockDim.x) acc += partials[i];
  const float total = BlockSum(acc, shared);
  if (threadIdx.x == 0) *sum += total;
}

}  // namespace

cudaError_t LaunchAdamW(int64_t n, const AdamWArgs& args, float* params, const float* grads,
                        float* m, float* v, cudaStream_t stream) {
  if (n <= 0) return cudaSuccess;
  const bool vectorized = Aligned16(params) && Aligned16(grads) && Aligned16(m) && Aligned16(v);
  return Launch(AdamWKernel, GridFor(vectorized ? n / 4 + n % 4 : n, kThreads), kThreads, 0, stream,
                n, args, params, grads, m, v, vectorized);
}

cudaError_t LaunchScale(int64_t n, float alpha, float* x, cudaStream_t stream) {
  if (n <= 0) return cudaSuccess;
  const bool vectorized = Aligned16(x);
  return Launch(ScaleKernel, GridFor(vectorized ? n / 4 + n % 4 : n, kThreads), kThreads, 0, stream,
                n, alpha, x, vectorized);
}

cudaError_t LaunchAxpy(int64_t n, float alpha, const float* x, float* y, cudaStream_t stream) {
  if (n <= 0) return cudaSuccess;
  const bool vectorized = Aligned16(x) && Aligned16(y);
  return Launch(AxpyKernel, GridFor(vectorized ? n / 4 + n % 4 : n, kThreads), kThreads, 0, stream,
                n, alpha, x, y, vectorized);
}

int64_t SumPartials(int64_t n) {
  // About 8 float4 per thread before the cap; at least one block.
  const int64_t per_block = int64_t{kThreads} * 32;
  int64_t blocks = (n + per_block - 1) / per_block;
  if (blocks < 1) blocks = 1;
  return blocks < kMaxSumBlocks ? blocks : kMaxSumBlocks;
}

cudaError_t LaunchSum(int64_t n, const float* x, bool squared, float* partials, float* sum,
                      cudaStream_t stream) {
  if (n <= 0) return cudaSuccess;
  const int64_t blocks = SumPartials(n);
  if (const cudaError_t launched = Launch(SumKernel, static_cast<unsigned int>(blocks), kThreads, 0,
                                          stream, n, x, squared, Aligned16(x), partials);
      launched != cudaSuccess)
    return launched;
  return Launch(FinishSumKernel, 1, kThreads, 0, stream, blocks, partials, sum);
}

}  // namespace cairn::runtime::cuda
