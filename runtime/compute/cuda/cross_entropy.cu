// runtime/compute/cuda/cross_entropy.cu — the three passes of the vocab-parallel cross-entropy
// (compute_backend.h): row max, sums (sum of exp and the target's logit), loss and logits gradient.
//
// One 512-thread block per row at a time (grid-stride over rows). Rows of fp32 logits start at
// arbitrary 4-byte offsets (V = 50257 is odd), so ForEachInRow walks a scalar head up to the first
// 16-byte boundary, float4s after it, and a scalar tail. Block reductions are fixed-order
// (device_utils.cuh), so every pass gives the same bits every run.
//
// In-place gradient: dlogits (bf16) may be the logits' own memory. Row i of dlogits then occupies
// the bytes of fp32 logits row floor(i / 2), so writing row i destroys a row that i itself does not
// read but another block may still need. The rows are therefore done in launches over doubling
// ranges: row 0, row 1, rows [2, 4), [4, 8), ...; the rows of one launch read [2^(k-1), 2^k) and
// write over [2^(k-2), 2^(k-1)), finished by the previous launch. Row 0 overwrites its own first
// half, so in place each block reads a chunk of blockDim elements, synchronises, then writes that
// chunk: chunk c writes fp32 elements [c B / 2, (c + 1) B / 2), all read in chunks <= c.
#include "runtime/compute/cuda/device_utils.cuh"
#include "runtime/compute/cuda/kernels.h"

namespace cairn::runtime::cuda {
namespace {

constexpr int kThreads = 512;
constexpr int64_t kMaxBlocks = 8192;

// Calls f(j, row[j]) for every j < n, each j on exactly one thread of the block.
template <typename F>
__device__ __forceinline__ void ForEachInRow(const float* row, int64_t n, F&& f) {
  const int64_t misaligned = static_cast<int64_t>(reinterpret_cast<uintptr_t>(row) & 15u) / 4;
  int64_t head = (4 - misaligned) & 3;
  if (head > n) head = n;
  for (int64_t j = threadIdx.x; j < head; j += blockDim.x) f(j, row[j]);
  const int64_t vectors = (n - head) / 4;
  const float4* body = reinterpret_cast<const float4*>(row + head);
#pragma unroll 4
  for (int64_t v = threadIdx.x; v < vectors; v += blockDim.x) {
    const float4 q = body[v];
    const int64_t j = head + 4 * v;
    f(j, q.x);
    f(j + 1, q.y);
    f(j + 2, q.z);
    f(j + 3, q.w);
  }
  for (int64_t j = head + 4 * vectors + threadIdx.x; j < n; j += blockDim.x) f(j, row[j]);
}

__global__ void __launch_bounds__(kThreads)
    MaxKernel(CrossEntropyArgs a, const float* logits, float* max) {
  __shared__ float shared[32];
  for (int64_t r = blockIdx.x; r < a.tokens; r += gridDim.x) {
    float m = -INFINITY;
    ForEachInRow(logits + r * a.local_vocab, a.local_vocab,
                 [&](int64_t, float x) { m = fmaxf(m, x); });
    m = BlockMax(m, shared);
    if (threadIdx.x == 0) max[r] = m;
  }
}

__global__ void __launch_bounds__(kThreads)
    SumsKernel(CrossEntropyArgs a, const float* logits, const int32_t* targets, const float* max,
               float* sum_exp, float* target_logit) {
  __shared__ float shared[32];
  for (int64_t r = blockIdx.x; r < a.tokens; r += gridDim.x) {
    const float* row = logits + r * a.local_vocab;
    const float m = max[r];
    float s = 0.0f;
    ForEachInRow(row, a.local_vocab, [&](int64_t, float x) { s += expf(x - m); });
    s = BlockSum(s, shared);
    if (threadIdx.x == 0) {
      sum_exp[r] = s;
      const int64_t target = targets[r];
      const bool local = target >= a.vocab_begin && target < a.vocab_begin + a.local_vocab;
      target_logit[r] = local ? row[target - a.vocab_begin] : 0.0f;
    }
  }
}

// Rows [row_begin, row_end). in_place: dlogits is the logits' memory (see the banner).
__global__ void __launch_bounds__(kThreads)
    LossAndGradKernel(CrossEntropyArgs a, int64_t row_begin, int64_t row_end, const float* logits,
                      const int32_t* targets, const float* max, const float* sum_exp,
                      const float* target_logit, float loss_scale, float* losses, bf16* dlogits,
                      bool in_place) {
  const int64_t V = a.local_vocab;
  for (int64_t r = row_begin + blockIdx.x; r < row_end; r += gridDim.x) {
    const float* row = logits + r * V;
    bf16* drow = dlogits + r * V;
    const int64_t target = targets[r];
    const bool ignored = target < 0;
    // loss = log(sum_exp) + max - target_logit; d loss / d logit_j = softmax_j - [j == target].
    if (threadIdx.x == 0) {
      losses[r] = ignored ? 0.0f : logf(sum_exp[r]) + max[r] - target_logit[r];
    }
    const float m = max[r];
    const float inv_sum = 1.0f / sum_exp[r];
    const int64_t local_target = target - a.vocab_begin;  // outside [0, V) when not local
    auto grad = [&](int64_t j, float x) {
      if (ignored) return 0.0f;
      const float prob = expf(x - m) * inv_sum;
      return loss_scale * (prob - (j == local_target ? 1.0f : 0.0f));
    };
    if (!in_place) {
      ForEachInRow(row, V, [&](int64_t j, float x) { drow[j] = ToBf16(grad(j, x)); });
    } else {
      for (int64_t base = 0; base < V; base += blockDim.x) {
        const int64_t j = base + threadIdx.x;
        const float x = j < V ? row[j] : 0.0f;
        __syncthreads();  // the whole chunk is read before any of it is overwritten
        if (j < V) drow[j] = ToBf16(grad(j, x));
      }
      __syncthreads();
    }
  }
}

unsigned int Blocks(int64_t rows) {
  return static_cast<unsigned int>(rows < kMaxBlocks ? (rows > 0 ? rows : 1) : kMaxBlocks);
}

}  // namespace

cudaError_t LaunchCrossEntropyMax(const CrossEntropyArgs& args, const float* logits, float* max,
                                  cudaStream_t stream) {
  return Launch(MaxKernel, Blocks(args.tokens), kThreads, 0, stream, args, logits, max);
}

cudaError_t LaunchCrossEntropySums(const CrossEntropyArgs& args, const float* logits,
                                   const int32_t* targets, const float* max, float* sum_exp,
                                   float* target_logit, cudaStream_t stream) {
  return Launch(SumsKernel, Blocks(args.tokens), kThreads, 0, stream, args, logits, targets, max,
                sum_exp, target_logit);
}

cudaError_t LaunchCrossEntropyLossAndGrad(const CrossEntropyArgs& args, const float* logits,
                                          const int32_t* targets, const float* max,
                                          const float* sum_exp, const float* target_logit,
                                          float loss_scale, float* losses, bf16* dlogits,
                                          cudaStream_t stream) {
  const bool in_place = static_cast<const void*>(dlogits) == static_cast<const void*>(logits);
  if (!in_place) {
    return Launch(LossAndGradKernel, Blocks(args.tokens), kThreads, 0, stream, args, 0, args.tokens,
                  logits, targets, max, sum_exp, target_logit, loss_scale, losses, dlogits, false);
  }
  // Doubling row ranges: [0, 1), [1, 2), [2, 4), [4, 8), ...
  for (int64_t begin = 0; begin < args.tokens; begin = begin == 0 ? 1 : 2 * begin) {
    const int64_t end = begin == 0 ? 1 : (2 * begin < args.tokens ? 2 * begin : args.tokens);
    const cudaError_t status =
        Launch(LossAndGradKernel, Blocks(end - begin), kThreads, 0, stream, args, begin, end,
               logits, targets, max, sum_exp, target_logit, loss_scale, losses, dlogits, true);
    if (status != cudaSuccess) return status;
  }
  return cudaSuccess;
}

}  // namespace cairn::runtime::cuda
