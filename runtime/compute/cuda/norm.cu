// runtime/compute/cuda/norm.cu — LayerNorm and RMSNorm, forward and backward.
//
// Layout: one thread block per row at a time (grid-stride over rows). The row lives in registers:
// thread t holds kVecs items of kWidth consecutive columns, item j starting at column
// (j x blockDim.x + t) x kWidth. kWidth is 8 (one 16-byte load of 8 bf16) when cols % 8 == 0 and
// every pointer is 16-byte aligned, else 1; kVecs is chosen so that a block has at most 256
// threads where possible (PickConfig). So each row is read once from memory, statistics are exact
// two-pass (mean, then the sum of squared deviations, from registers), and the output is written
// once. Columns up to kMaxNormCols (8192; Llama-70B's hidden size).
//
// Backward: dx = rstd (g - mean(g) - xhat mean(g xhat)) with g = dy w (LayerNorm; RMSNorm drops
// the mean(g) term and the mean in xhat), the mean recomputed from the saved input (only rstd is
// saved). dweight and dbias are deterministic: each block accumulates dy xhat and dy for its rows
// in registers (its columns are fixed), writes them to partials[block][2][cols], and
// FinishNormBackward adds the blocks in block order. No float atomics.
#include "runtime/compute/cuda/device_utils.cuh"
#include "runtime/compute/cuda/kernels.h"

namespace cairn::runtime::cuda {
namespace {

template <int kWidth>
__device__ __forceinline__ int64_t ItemColumn(int j) {
  return (static_cast<int64_t>(j) * blockDim.x + threadIdx.x) * kWidth;
}

// One item: kWidth consecutive columns at `p` (16-byte aligned when kWidth == 8).
template <int kWidth>
__device__ __forceinline__ void LoadItem(const bf16* p, float (&x)[kWidth]) {
  if constexpr (kWidth == 8) {
    Load8(p, x);
  } else {
    x[0] = ToFloat(*p);
  }
}
template <int kWidth>
__device__ __forceinline__ void StoreItem(bf16* p, const float (&x)[kWidth]) {
  if constexpr (kWidth == 8) {
    Store8(p, x);
  } else {
    *p = ToBf16(x[0]);
  }
}

// Loads the thread's items of a row (zeros for columns past the end).
template <int kWidth, int kVecs>
__device__ __forceinline__ void LoadItems(const bf16* row, int64_t cols,
                                          float (&x)[kVecs][kWidth]) {
#pragma unroll
  for (int j = 0; j < kVecs; ++j) {
    const int64_t col = ItemColumn<kWidth>(j);
    if (col < cols) {
      if constexpr (kWidth == 8) {
        Load8(row + col, x[j]);
      } else {
        x[j][0] = ToFloat(row[col]);
      }
    } else {
#pragma unroll
      for (int e = 0; e < kWidth; ++e) x[j][e] = 0.0f;
    }
  }
}

template <int kWidth, int kVecs>
__device__ __forceinline__ void StoreItems(bf16* row, int64_t cols,
                                           const float (&y)[kVecs][kWidth]) {
#pragma unroll
  for (int j = 0; j < kVecs; ++j) {
    const int64_t col = ItemColumn<kWidth>(j);
    if (col < cols) {
      if constexpr (kWidth == 8) {
        Store8(row + col, y[j]);
      } else {
        row[col] = ToBf16(y[j][0]);
      }
    }
  }
}

// The most threads PickConfig gives each configuration: the register cap that keeps the row (and
// the backward's accumulators) in registers.
template <int kWidth, int kVecs>
constexpr int MaxThreads() {
  return kWidth == 8 ? 256 * kVecs : 256 * (kVecs / 8);
}

template <int kWidth, int kVecs, bool kLayerNorm>
__global__ void __launch_bounds__(MaxThreads<kWidth, kVecs>())
    NormForwardKernel(int64_t rows, int64_t cols, float eps, const bf16* inp, const bf16* weight,
                      const bf16* bias, bf16* out, float* rstd) {
  __shared__ float shared[32];
  const float n = static_cast<float>(cols);
  float w[kVecs][kWidth], b[kVecs][kWidth];
  LoadItems<kWidth, kVecs>(weight, cols, w);
  if (bias != nullptr) {
    LoadItems<kWidth, kVecs>(bias, cols, b);
  } else {
#pragma unroll
    for (int j = 0; j < kVecs; ++j) {
#pragma unroll
      for (int e = 0; e < kWidth; ++e) b[j][e] = 0.0f;
    }
  }
  for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
    float x[kVecs][kWidth];
    LoadItems<kWidth, kVecs>(inp + r * cols, cols, x);
    float mean = 0.0f;
    if constexpr (kLayerNorm) {
      float sum = 0.0f;  // columns past the end hold zeros
#pragma unroll
      for (int j = 0; j < kVecs; ++j) {
#pragma unroll
        for (int e = 0; e < kWidth; ++e) sum += x[j][e];
      }
      mean = BlockSum(sum, shared) / n;
    }
    float sq = 0.0f;
#pragma unroll
    for (int j = 0; j < kVecs; ++j) {
      if (ItemColumn<kWidth>(j) < cols) {
#pragma unroll
        for (int e = 0; e < kWidth; ++e) {
          const float d = x[j][e] - mean;
          sq += d * d;
        }
      }
    }
    const float rs = 1.0f / sqrtf(BlockSum(sq, shared) / n + eps);
#pragma unroll
    for (int j = 0; j < kVecs; ++j) {
#pragma unroll
      for (int e = 0; e < kWidth; ++e) x[j][e] = (x[j][e] - mean) * rs * w[j][e] + b[j][e];
    }
    StoreItems<kWidth, kVecs>(out + r * cols, cols, x);
    if (threadIdx.x == 0) rstd[r] = rs;
  }
}

// The weight is re-read per row (L1-resident) rather than held in registers: the row's x and dy and
// the block's dweight/dbias accumulators are what must stay in registers.
template <int kWidth, int kVecs, bool kLayerNorm>
__global__ void __launch_bounds__(MaxThreads<kWidth, kVecs>())
    NormBackwardKernel(int64_t rows, int64_t cols, const bf16* inp, const bf16* weight,
                       const float* rstd, const bf16* dout, bf16* dinp, bool accumulate,
                       float* partials) {
  __shared__ float shared[64];
  const float n = static_cast<float>(cols);
  float dw[kVecs][kWidth], db[kVecs][kWidth];
#pragma unroll
  for (int j = 0; j < kVecs; ++j) {
#pragma unroll
    for (int e = 0; e < kWidth; ++e) dw[j][e] = db[j][e] = 0.0f;
  }
  for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
    float x[kVecs][kWidth], dy[kVecs][kWidth];
    LoadItems<kWidth, kVecs>(inp + r * cols, cols, x);
    LoadItems<kWidth, kVecs>(dout + r * cols, cols, dy);
    const float rs = rstd[r];
    float mean = 0.0f;
    if constexpr (kLayerNorm) {
      float sum = 0.0f;
#pragma unroll
      for (int j = 0; j < kVecs; ++j) {
#pragma unroll
        for (int e = 0; e < kWidth; ++e) sum += x[j][e];
      }
      mean = BlockSum(sum, shared) / n;
    }
    // Columns past the end have x = dy = 0 (and w is not read there), so they add nothing.
    float g_sum = 0.0f, gx_sum = 0.0f;
#pragma unroll
    for (int j = 0; j < kVecs; ++j) {
      const int64_t col = ItemColumn<kWidth>(j);
      if (col < cols) {
        float w[kWidth];
        LoadItem<kWidth>(weight + col, w);
#pragma unroll
        for (int e = 0; e < kWidth; ++e) {
          const float xhat = (x[j][e] - mean) * rs;
          const float g = dy[j][e] * w[e];
          g_sum += g;
          gx_sum += g * xhat;
          dw[j][e] += dy[j][e] * xhat;
          db[j][e] += dy[j][e];
        }
      }
    }
    if constexpr (kLayerNorm) {
      BlockSum2(g_sum, gx_sum, shared);
    } else {
      gx_sum = BlockSum(gx_sum, shared);
    }
    const float mean_g = kLayerNorm ? g_sum / n : 0.0f;
    const float mean_gx = gx_sum / n;
    bf16* dx_row = dinp + r * cols;
#pragma unroll
    for (int j = 0; j < kVecs; ++j) {
      const int64_t col = ItemColumn<kWidth>(j);
      if (col < cols) {
        float w[kWidth], dx[kWidth];
        LoadItem<kWidth>(weight + col, w);
        if (accumulate) {
          LoadItem<kWidth>(dx_row + col, dx);
        } else {
#pragma unroll
          for (int e = 0; e < kWidth; ++e) dx[e] = 0.0f;
        }
#pragma unroll
        for (int e = 0; e < kWidth; ++e) {
          const float xhat = (x[j][e] - mean) * rs;
          const float g = dy[j][e] * w[e];
          dx[e] += rs * (g - mean_g - xhat * mean_gx);
        }
        StoreItem<kWidth>(dx_row + col, dx);
      }
    }
  }
  float* mine = partials + static_cast<int64_t>(blockIdx.x) * 2 * cols;
#pragma unroll
  for (int j = 0; j < kVecs; ++j) {
    const int64_t col = ItemColumn<kWidth>(j);
    if (col < cols) {
#pragma unroll
      for (int e = 0; e < kWidth; ++e) {
        mine[col + e] = dw[j][e];
        mine[cols + col + e] = db[j][e];
      }
    }
  }
}

__global__ void FinishNormBackwardKernel(int64_t cols, int64_t blocks, const float* partials,
                                         float* dweight, float* dbias) {
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t c = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; c < cols;
       c += stride) {
    float sw = 0.0f, sb = 0.0f;
    for (int64_t b = 0; b < blocks; ++b) {
      sw += partials[b * 2 * cols + c];
      sb += partials[b * 2 * cols + cols + c];
    }
    dweight[c] += sw;
    if (dbias != nullptr) dbias[c] += sb;
  }
}

struct Config {
  int width;
  int vecs;
  int threads;
};

int64_t RoundUp32(int64_t x) { return (x + 31) / 32 * 32; }

// Items per thread: 8 (8 x 1 or 1 x 8) with up to 256 threads, else 16 (8 x 2 or 1 x 16) with up
// to 512 threads: every cols up to kMaxNormCols (8192). Returns vecs = 0 when wider.
Config PickConfig(int64_t cols, bool aligned) {
  const bool wide = aligned && cols % 8 == 0;
  const int width = wide ? 8 : 1;
  const int64_t units = cols / width;
  const int small = wide ? 1 : 8, large = wide ? 2 : 16;
  const int64_t small_threads = RoundUp32((units + small - 1) / small);
  if (small_threads <= 256) return Config{width, small, static_cast<int>(small_threads)};
  const int64_t large_threads = RoundUp32((units + large - 1) / large);
  if (large_threads <= 512) return Config{width, large, static_cast<int>(large_threads)};
  return Config{width, 0, 0};
}

// Calls f.template operator()<kWidth, kVecs>() for the configuration.
template <typename F>
cudaError_t Dispatch(const Config& c, F&& f) {
  switch (c.width * 100 + c.vecs) {
    case 801:
      return f.template operator()<8, 1>();
    case 802:
      return f.template operator()<8, 2>();
    case 108:
      return f.template operator()<1, 8>();
    case 116:
      return f.template operator()<1, 16>();
  }
  return cudaErrorInvalidValue;
}

constexpr int64_t kMaxForwardBlocks = 4096;

// The launches, as functors for Dispatch (member templates cannot live in local classes).
template <bool kLayerNorm>
struct ForwardLaunch {
  const Config& c;
  unsigned int blocks;
  int64_t rows, cols;
  float eps;
  const bf16 *inp, *weight, *bias;
  bf16* out;
  float* rstd;
  cudaStream_t stream;
  template <int kWidth, int kVecs>
  cudaError_t operator()() {
    return Launch(NormForwardKernel<kWidth, kVecs, kLayerNorm>, blocks, c.threads, 0, stream, rows,
                  cols, eps, inp, weight, bias, out, rstd);
  }
};

template <bool kLayerNorm>
struct BackwardLaunch {
  const Config& c;
  int64_t blocks, rows, cols;
  const bf16 *inp, *weight;
  const float* rstd;
  const bf16* dout;
  bf16* dinp;
  bool accumulate;
  float* partials;
  cudaStream_t stream;
  template <int kWidth, int kVecs>
  cudaError_t operator()() {
    return Launch(NormBackwardKernel<kWidth, kVecs, kLayerNorm>, static_cast<unsigned int>(blocks),
                  c.threads, 0, stream, rows, cols, inp, weight, rstd, dout, dinp, accumulate,
                  partials);
  }
};

template <bool kLayerNorm>
cudaError_t Forward(int64_t rows, int64_t cols, float eps, const bf16* inp, const bf16* weight,
                    const bf16* bias, bf16* out, float* rstd, cudaStream_t stream) {
  if (cols > kMaxNormCols) return cudaErrorInvalidValue;
  const bool aligned =
      Aligned16(inp) && Aligned16(weight) && Aligned16(out) && (bias == nullptr || Aligned16(bias));
  const Config c = PickConfig(cols, aligned);
  const auto blocks =
      static_cast<unsigned int>(rows < kMaxForwardBlocks ? rows : kMaxForwardBlocks);
  return Dispatch(c, ForwardLaunch<kLayerNorm>{c, blocks, rows, cols, eps, inp, weight, bias, out,
                                               rstd, stream});
}

template <bool kLayerNorm>
cudaError_t Backward(int64_t rows, int64_t cols, const bf16* inp, const bf16* weight,
                     const float* rstd, const bf16* dout, bf16* dinp, bool accumulate,
                     int64_t blocks, float* partials, float* dweight, float* dbias,
                     cudaStream_t stream) {
  if (cols > kMaxNormCols || blocks < 1 || blocks > 0x7fffffff) return cudaErrorInvalidValue;
  const bool aligned = Aligned16(inp) && Aligned16(weight) && Aligned16(dout) && Aligned16(dinp);
  const Config c = PickConfig(cols, aligned);
  const cudaError_t launched =
      Dispatch(c, BackwardLaunch<kLayerNorm>{c, blocks, rows, cols, inp, weight, rstd, dout, dinp,
                                             accumulate, partials, stream});
  if (launched != cudaSuccess) return launched;
  return Launch(FinishNormBackwardKernel, GridFor(cols, 256), 256, 0, stream, cols, blocks,
                partials, dweight, dbias);
}

}  // namespace

cudaError_t LaunchLayerNormForward(int64_t rows, int64_t cols, float eps, const bf16* inp,
                                   const bf16* weight, const bf16* bias, bf16* out, float* rstd,
                                   cudaStream_t stream) {
  return Forward<true>(rows, cols, eps, inp, weight, bias, out, rstd, stream);
}

cudaError_t LaunchRmsNormForward(int64_t rows, int64_t cols, float eps, const bf16* inp,
                                 const bf16* weight, bf16* out, float* rstd, cudaStream_t stream) {
  return Forward<false>(rows, cols, eps, inp, weight, nullptr, out, rstd, stream);
}

int64_t NormBackwardBlocks(int64_t rows, int64_t cols, int sm_count, int64_t max_partial_floats) {
  int64_t blocks = 4 * static_cast<int64_t>(sm_count > 0 ? sm_count : 1);
  if (blocks > rows) blocks = rows;
  if (blocks * 2 * cols > max_partial_floats) blocks = max_partial_floats / (2 * cols);
  return blocks < 1 ? 1 : blocks;
}

cudaError_t LaunchLayerNormBackward(int64_t rows, int64_t cols, const bf16* inp, const bf16* weight,
                                    const float* rstd, const bf16* dout, bf16* dinp,
                                    bool accumulate, int64_t blocks, float* partials,
                                    float* dweight, float* dbias, cudaStream_t stream) {
  return Backward<true>(rows, cols, inp, weight, rstd, dout, dinp, accumulate, blocks, partials,
                        dweight, dbias, stream);
}

cudaError_t LaunchRmsNormBackward(int64_t rows, int64_t cols, const bf16* inp, const bf16* weight,
                                  const float* rstd, const bf16* dout, bf16* dinp, bool accumulate,
                                  int64_t blocks, float* partials, float* dweight,
                                  cudaStream_t stream) {
  return Backward<false>(rows, cols, inp, weight, rstd, dout, dinp, accumulate, blocks, partials,
                         dweight, nullptr, stream);
}

}  // namespace cairn::runtime::cuda
