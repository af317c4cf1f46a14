// runtime/compute/cuda/matmul_simple.cu — the matmul kernels that are not cuBLASLt: a plain tiled
// GEMM (correctness baseline and fallback), the bias broadcast, and the deterministic column sums
// behind MatmulBackward's dbias.
//
// SimpleGemmKernel: one 16 x 16 thread block per 16 x 16 tile of C; the k dimension is walked in
// steps of 16 through two shared-memory tiles (op(A) rows x k, k x op(B) columns) read with the
// stored layouts of compute_backend.h, fp32 accumulation, one rounding at the store. No tensor
// cores: it exists to be obviously right.
//
// ColumnSums: dbias[j] += sum_i dc[i, j]. Block (x, y) owns columns [64 x, 64 x + 64) and the
// rows of chunk y; its 8 warps take every 8th row, each lane two columns (lane and lane + 32), so a
// warp reads 64 consecutive bf16 per row. The 8 warp sums are added in warp order and written to
// partials[y, j]; FinishColumnSums adds the chunks in chunk order. No atomics: same bits every run.
#include "runtime/compute/cuda/device_utils.cuh"
#include "runtime/compute/cuda/kernels.h"

namespace cairn::runtime::cuda {
namespace {

constexpr int kTile = 16;

__device__ __forceinline__ float LoadC(const void* c, bool f32, int64_t i) {
  return f32 ? static_cast<const float*>(c)[i] : ToFloat(static_cast<const bf16*>(c)[i]);
}
__device__ __forceinline__ void StoreC(void* c, bool f32, int64_t i, float value) {
  if (f32) {
    static_cast<float*>(c)[i] = value;
  } else {
    static_cast<bf16*>(c)[i] = ToBf16(value);
  }
}

__global__ void SimpleGemmKernel(GemmArgs g) {
  __shared__ float a_tile[kTile][kTile + 1];  // a_tile[r][p] = op(A)[row0 + r, p0 + p]
  __shared__ float b_tile[kTile][kTile + 1];  // b_tile[p][c] = op(B)[p0 + p, col0 + c]
  const int tx = threadIdx.x, ty = threadIdx.y;
  const int64_t row = static_cast<int64_t>(blockIdx.y) * kTile + ty;
  const int64_t col = static_cast<int64_t>(blockIdx.x) * kTile + tx;
  float acc = 0.0f;
  for (int64_t p0 = 0; p0 < g.k; p0 += kTile) {
    // Thread (ty, tx) loads op(A)[row, p0 + tx] and op(B)[p0 + ty, col].
    const int64_t pa = p0 + tx, pb = p0 + ty;
    float a = 0.0f, b = 0.0f;
    if (row < g.m && pa < g.k) a = ToFloat(g.a[g.ta ? pa * g.m + row : row * g.k + pa]);
    if (col < g.n && pb < g.k) b = ToFloat(g.b[g.tb ? col * g.k + pb : pb * g.n + col]);
    a_tile[ty][tx] = a;
    b_tile[ty][tx] = b;
    __syncthreads();
#pragma unroll
    for (int p = 0; p < kTile; ++p) acc += a_tile[ty][p] * b_tile[p][tx];
    __syncthreads();
  }
  if (row < g.m && col < g.n) {
    const int64_t i = row * g.n + col;
    float value = acc;
    if (g.bias != nullptr) value += LoadC(g.bias, g.c_f32, col);
    if (g.beta != 0.0f) value += g.beta * LoadC(g.c, g.c_f32, i);
    StoreC(g.c, g.c_f32, i, value);
  }
}

__global__ void AddBiasKernel(int64_t m, int64_t n, const void* bias, void* c, bool f32) {
  const int64_t total = m * n;
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < total;
       i += stride) {
    StoreC(c, f32, i, LoadC(c, f32, i) + LoadC(bias, f32, i % n));
  }
}

constexpr int kSumColumns = 64;
constexpr int kSumWarps = 8;

__global__ void ColumnSumsKernel(int64_t m, int64_t n, const bf16* dc, int64_t rows_per_chunk,
                                 float* partials) {
  __shared__ float shared[kSumWarps][kSumColumns];
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int64_t col0 = static_cast<int64_t>(blockIdx.x) * kSumColumns;
  const int64_t row_begin = static_cast<int64_t>(blockIdx.y) * rows_per_chunk;
  const int64_t row_end = row_begin + rows_per_chunk < m ? row_begin + rows_per_chunk : m;
  const int64_t c0 = col0 + lane, c1 = col0 + 32 + lane;
  float s0 = 0.0f, s1 = 0.0f;
  for (int64_t r = row_begin + warp; r < row_end; r += kSumWarps) {
    const bf16* row = dc + r * n;
    if (c0 < n) s0 += ToFloat(row[c0]);
    if (c1 < n) s1 += ToFloat(row[c1]);
  }
  shared[warp][lane] = s0;
  shared[warp][32 + lane] = s1;
  __syncthreads();
  if (warp == 0) {
    float t0 = 0.0f, t1 = 0.0f;
#pragma unroll
    for (int w = 0; w < kSumWarps; ++w) {
      t0 += shared[w][lane];
      t1 += shared[w][32 + lane];
    }
    float* out = partials + static_cast<int64_t>(blockIdx.y) * n;
    if (c0 < n) out[c0] = t0;
    if (c1 < n) out[c1] = t1;
  }
}

__global__ void FinishColumnSumsKernel(int64_t n, int64_t chunks, const float* partials,
                                       float* dbias) {
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t j = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; j < n;
       j += stride) {
    float total = 0.0f;
    for (int64_t c = 0; c < chunks; ++c) total += partials[c * n + j];
    dbias[j] += total;
  }
}

}  // namespace

cudaError_t LaunchSimpleGemm(const GemmArgs& args, cudaStream_t stream) {
  const int64_t grid_x = (args.n + kTile - 1) / kTile, grid_y = (args.m + kTile - 1) / kTile;
  if (grid_y > 65535) return cudaErrorInvalidValue;  // m > 1M rows: not a shape this kernel takes
  return Launch(SimpleGemmKernel,
                dim3(static_cast<unsigned int>(grid_x), static_cast<unsigned int>(grid_y)),
                dim3(kTile, kTile), 0, stream, args);
}

cudaError_t LaunchAddBias(int64_t m, int64_t n, const void* bias, void* c, bool f32,
                          cudaStream_t stream) {
  return Launch(AddBiasKernel, GridFor(m * n, 256), 256, 0, stream, m, n, bias, c, f32);
}

int64_t ColumnSumChunks(int64_t m, int64_t n, int64_t max_partial_floats) {
  // About 256 rows per chunk, no more chunks than the scratch holds (and at least one).
  int64_t chunks = (m + 255) / 256;
  if (chunks > 1024) chunks = 1024;
  if (chunks * n > max_partial_floats) chunks = max_partial_floats / n;
  return chunks < 1 ? 1 : chunks;
}

cudaError_t LaunchColumnSums(int64_t m, int64_t n, const bf16* dc, int64_t chunks, float* partials,
                             float* dbias, cudaStream_t stream) {
  const int64_t rows_per_chunk = (m + chunks - 1) / chunks;
  const int64_t column_blocks = (n + kSumColumns - 1) / kSumColumns;
  if (column_blocks > 0x7fffffff || chunks > 65535) return cudaErrorInvalidValue;
  if (const cudaError_t launched =
          Launch(ColumnSumsKernel,
                 dim3(static_cast<unsigned int>(column_blocks), static_cast<unsigned int>(chunks)),
                 kSumWarps * 32, 0, stream, m, n, dc, rows_per_chunk, partials);
      launched != cudaSuccess)
    return launched;
  return Launch(FinishColumnSumsKernel, GridFor(n, 256), 256, 0, stream, n, chunks, partials,
                dbias);
}

}  // namespace cairn::runtime::cuda
