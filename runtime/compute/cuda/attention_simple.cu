// runtime/compute/cuda/attention_simple.cu — causal GQA attention, forward and backward, with fp32
// arithmetic throughout: the correctness baseline of the flash kernels and the path for head dims
// they do not cover (any D up to kMaxSimpleHeadDim).
//
// All three kernels share one pattern: a block of W warps owns W consecutive rows (query rows in
// the forward and dq kernels, key rows in the dk/dv kernel), one row per warp, and walks the other
// side in tiles of 32 rows staged in shared memory as fp32. In a tile, lane j takes row j of the
// tile for the dot products (q.k_j, dout.v_j), so the tile rows are stored at an odd stride (banks
// distinct for the 32 lanes); the per-row vectors (q, dout, the output accumulators) are owned
// d-wise: lane l holds d = l, l + 32, ... . Probabilities are shared through a per-warp 32-float
// array.
//
// Forward (per query row i): online softmax over the key tiles up to i (m = running max, l =
// running sum, o = running output, rescaled by exp(m_old - m_new)); out = o / l,
// lse = m + log(l).
// Backward: delta_i = dout_i . out_i (DeltaKernel); then, with P_ij = exp(scale q_i.k_j - lse_i)
// recomputed and dS_ij = P_ij (dout_i.v_j - delta_i) scale:
//   dq_i = sum_j dS_ij k_j                      (DqKernel, per query row, keys j <= i)
//   dk_j = sum_h sum_i dS_ij q_i, dv_j = sum_h sum_i P_ij dout_i
//                                              (DkDvKernel, per key row, queries i >= j, over the
//                                               query heads h that read this kv head, in order)
// No atomics: every output element is written by one warp, in a fixed order.
#include "runtime/compute/cuda/device_utils.cuh"
#include "runtime/compute/cuda/kernels.h"

namespace cairn::runtime::cuda {
namespace {

constexpr int kTileRows = 32;

__host__ __device__ inline int OddStride(int64_t d) {
  return static_cast<int>(d % 2 == 1 ? d : d + 1);
}

// Shared memory (floats) of each kernel for W warps and head dim D.
int64_t ForwardFloats(int warps, int64_t D) {
  return kTileRows * OddStride(D) + kTileRows * D + warps * (2 * D + kTileRows);
}
int64_t DqFloats(int warps, int64_t D) {
  return 2 * kTileRows * OddStride(D) + warps * (3 * D + kTileRows);
}
int64_t DkDvFloats(int warps, int64_t D) {
  return 2 * kTileRows * OddStride(D) + 2 * kTileRows + warps * (4 * D + 2 * kTileRows);
}

__global__ void ForwardKernel(AttentionArgs a, const bf16* q, const bf16* k, const bf16* v,
                              bf16* out, float* lse) {
  float* smem = DynamicShared<float>();
  const int D = static_cast<int>(a.head_dim), sD = OddStride(D);
  const int warps = blockDim.x / 32, lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  float* k_tile = smem;                     // [32][sD]
  float* v_tile = k_tile + kTileRows * sD;  // [32][D]
  float* q_row = v_tile + kTileRows * D + warp * D;
  float* o_row = v_tile + kTileRows * D + warps * D + warp * D;
  float* p_row = v_tile + kTileRows * D + 2 * warps * D + warp * kTileRows;

  const int64_t T = a.seq, Hl = a.local_heads;
  const int64_t b = blockIdx.x / Hl, h = blockIdx.x % Hl, kvh = KvHeadOf(a, h);
  const int64_t i_first = static_cast<int64_t>(blockIdx.y) * warps;
  const int64_t i = i_first + warp;
  const bool valid = i < T;  // warp-uniform
  const bf16* kb = k + b * T * a.kv_stride + kvh * D;
  const bf16* vb = v + b * T * a.kv_stride + kvh * D;
  for (int d = lane; d < D; d += 32) {
    q_row[d] = valid ? ToFloat(q[(b * T + i) * a.q_stride + h * D + d]) * a.scale : 0.0f;
    o_row[d] = 0.0f;
  }
  float m = -INFINITY, l = 0.0f;
  const int64_t last = (i_first + warps < T ? i_first + warps : T) - 1;  // the block's last row
  for (int64_t j0 = 0; j0 <= last; j0 += kTileRows) {
    __syncthreads();  // the previous tile is consumed
    for (int idx = threadIdx.x; idx < kTileRows * D; idx += blockDim.x) {
      const int jj = idx / D, d = idx - jj * D;
      const int64_t j = j0 + jj;
      k_tile[jj * sD + d] = j < T ? ToFloat(kb[j * a.kv_stride + d]) : 0.0f;
      v_tile[jj * D + d] = j < T ? ToFloat(vb[j * a.kv_stride + d]) : 0.0f;
    }
    __syncthreads();
    if (!valid) continue;
    const int64_t j = j0 + lane;
    float s = -INFINITY;
    if (j <= i) {
      float dot = 0.0f;
      for (int d = 0; d < D; ++d) dot += q_row[d] * k_tile[lane * sD + d];
      s = dot;
    }
    const float m_new = fmaxf(m, WarpMax(s));
    if (m_new == -INFINITY) continue;  // no visible key yet (cannot happen for j0 = 0)
    const float p = j <= i ? expf(s - m_new) : 0.0f;
    const float correction = expf(m - m_new);  // 0 on the first visible tile
    l = l * correction + WarpSum(p);
    m = m_new;
    p_row[lane] = p;
    __syncwarp();
    for (int d = lane; d < D; d += 32) {
      float acc = o_row[d] * correction;
      for (int jj = 0; jj < kTileRows; ++jj) acc += p_row[jj] * v_tile[jj * D + d];
      o_row[d] = acc;
    }
    __syncwarp();
  }
  if (valid) {
    const float inv_l = 1.0f / l;
    for (int d = lane; d < D; d += 32) {
      out[((b * T + i) * Hl + h) * D + d] = ToBf16(o_row[d] * inv_l);
    }
    if (lane == 0) lse[(b * Hl + h) * T + i] = m + logf(l);
  }
}

// delta[b, h, i] = sum_d dout[b, i, h, d] out[b, i, h, d]; one warp per (b, h, i).
__global__ void DeltaKernel(AttentionArgs a, const bf16* out, const bf16* dout, float* delta) {
  const int lane = threadIdx.x & 31;
  const int64_t rows = a.batch * a.local_heads * a.seq;
  const int64_t warps = static_cast<int64_t>(gridDim.x) * (blockDim.x / 32);
  for (int64_t row = (static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x) / 32; row < rows;
       row += warps) {
    const int64_t i = row % a.seq, bh = row / a.seq;
    const int64_t b = bh / a.local_heads, h = bh % a.local_heads;
    const int64_t offset = ((b * a.seq + i) * a.local_heads + h) * a.head_dim;
    float sum = 0.0f;
    for (int64_t d = lane; d < a.head_dim; d += 32) {
      sum += ToFloat(dout[offset + d]) * ToFloat(out[offset + d]);
    }
    sum = WarpSum(sum);
    if (lane == 0) delta[row] = sum;  // row = (b * Hl + h) * T + i
  }
}

__global__ void DqKernel(AttentionArgs a, const bf16* q, const bf16* k, const bf16* v,
                         const float* lse, const float* delta, const bf16* dout, bf16* dq) {
  float* smem = DynamicShared<float>();
  const int D = static_cast<int>(a.head_dim), sD = OddStride(D);
  const int warps = blockDim.x / 32, lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  float* k_tile = smem;                     // [32][sD]
  float* v_tile = k_tile + kTileRows * sD;  // [32][sD]
  float* rows = v_tile + kTileRows * sD;
  float* q_row = rows + warp * D;
  float* do_row = rows + (warps + warp) * D;
  float* dq_row = rows + (2 * warps + warp) * D;
  float* ds_row = rows + 3 * warps * D + warp * kTileRows;

  const int64_t T = a.seq, Hl = a.local_heads;
  const int64_t b = blockIdx.x / Hl, h = blockIdx.x % Hl, kvh = KvHeadOf(a, h);
  const int64_t i_first = static_cast<int64_t>(blockIdx.y) * warps;
  const int64_t i = i_first + warp;
  const bool valid = i < T;
  const bf16* kb = k + b * T * a.kv_stride + kvh * D;
  const bf16* vb = v + b * T * a.kv_stride + kvh * D;
  for (int d = lane; d < D; d += 32) {
    q_row[d] = valid ? ToFloat(q[(b * T + i) * a.q_stride + h * D + d]) : 0.0f;
    do_row[d] = valid ? ToFloat(dout[((b * T + i) * Hl + h) * D + d]) : 0.0f;
    dq_row[d] = 0.0f;
  }
  const float lse_i = valid ? lse[(b * Hl + h) * T + i] : 0.0f;
  const float delta_i = valid ? delta[(b * Hl + h) * T + i] : 0.0f;
  const int64_t last = (i_first + warps < T ? i_first + warps : T) - 1;
  for (int64_t j0 = 0; j0 <= last; j0 += kTileRows) {
    __syncthreads();
    for (int idx = threadIdx.x; idx < kTileRows * D; idx += blockDim.x) {
      const int jj = idx / D, d = idx - jj * D;
      const int64_t j = j0 + jj;
      k_tile[jj * sD + d] = j < T ? ToFloat(kb[j * a.kv_stride + d]) : 0.0f;
      v_tile[jj * sD + d] = j < T ? ToFloat(vb[j * a.kv_stride + d]) : 0.0f;
    }
    __syncthreads();
    if (!valid) continue;
    const int64_t j = j0 + lane;
    float ds = 0.0f;
    if (j <= i) {
      float s = 0.0f, dp = 0.0f;
      for (int d = 0; d < D; ++d) {
        s += q_row[d] * k_tile[lane * sD + d];
        dp += do_row[d] * v_tile[lane * sD + d];
      }
      const float p = expf(s * a.scale - lse_i);
      ds = p * (dp - delta_i) * a.scale;
    }
    ds_row[lane] = ds;
    __syncwarp();
    for (int d = lane; d < D; d += 32) {
      float acc = dq_row[d];
      for (int jj = 0; jj < kTileRows; ++jj) acc += ds_row[jj] * k_tile[jj * sD + d];
      dq_row[d] = acc;
    }
    __syncwarp();
  }
  if (valid) {
    for (int d = lane; d < D; d += 32) dq[(b * T + i) * a.q_stride + h * D + d] = ToBf16(dq_row[d]);
  }
}

__global__ void DkDvKernel(AttentionArgs a, const bf16* q, const bf16* k, const bf16* v,
                           const float* lse, const float* delta, const bf16* dout, bf16* dk,
                           bf16* dv) {
  float* smem = DynamicShared<float>();
  const int D = static_cast<int>(a.head_dim), sD = OddStride(D);
  const int warps = blockDim.x / 32, lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  float* q_tile = smem;                      // [32][sD]
  float* do_tile = q_tile + kTileRows * sD;  // [32][sD]
  float* lse_tile = do_tile + kTileRows * sD;
  float* delta_tile = lse_tile + kTileRows;
  float* rows = delta_tile + kTileRows;
  float* k_row = rows + warp * D;
  float* v_row = rows + (warps + warp) * D;
  float* dk_row = rows + (2 * warps + warp) * D;
  float* dv_row = rows + (3 * warps + warp) * D;
  float* p_row = rows + 4 * warps * D + warp * kTileRows;
  float* ds_row = rows + 4 * warps * D + (warps + warp) * kTileRows;

  const int64_t T = a.seq, Hl = a.local_heads, KVl = a.local_kv_heads;
  const int64_t b = blockIdx.x / KVl, g = blockIdx.x % KVl;
  const int64_t j_first = static_cast<int64_t>(blockIdx.y) * warps;
  const int64_t j = j_first + warp;
  const bool valid = j < T;
  for (int d = lane; d < D; d += 32) {
    const int64_t offset = (b * T + j) * a.kv_stride + g * D + d;
    k_row[d] = valid ? ToFloat(k[offset]) : 0.0f;
    v_row[d] = valid ? ToFloat(v[offset]) : 0.0f;
    dk_row[d] = 0.0f;
    dv_row[d] = 0.0f;
  }
  // The local query heads that read kv head g: global heads [(kv_begin + g) G, +G) clipped to the
  // local range.
  int64_t h_begin = (a.kv_begin + g) * a.group_size - a.head_begin;
  int64_t h_end = h_begin + a.group_size;
  if (h_begin < 0) h_begin = 0;
  if (h_end > Hl) h_end = Hl;
  for (int64_t h = h_begin; h < h_end; ++h) {
    for (int64_t i0 = j_first / kTileRows * kTileRows; i0 < T; i0 += kTileRows) {
      __syncthreads();
      for (int idx = threadIdx.x; idx < kTileRows * D; idx += blockDim.x) {
        const int ii = idx / D, d = idx - ii * D;
        const int64_t i = i0 + ii;
        q_tile[ii * sD + d] = i < T ? ToFloat(q[(b * T + i) * a.q_stride + h * D + d]) : 0.0f;
        do_tile[ii * sD + d] = i < T ? ToFloat(dout[((b * T + i) * Hl + h) * D + d]) : 0.0f;
      }
      if (threadIdx.x < kTileRows) {
        const int64_t i = i0 + threadIdx.x;
        lse_tile[threadIdx.x] = i < T ? lse[(b * Hl + h) * T + i] : 0.0f;
        delta_tile[threadIdx.x] = i < T ? delta[(b * Hl + h) * T + i] : 0.0f;
      }
      __syncthreads();
      if (!valid) continue;
      const int64_t i = i0 + lane;
      float p = 0.0f, ds = 0.0f;
      if (i < T && i >= j) {
        float s = 0.0f, dp = 0.0f;
        for (int d = 0; d < D; ++d) {
          s += q_tile[lane * sD + d] * k_row[d];
          dp += do_tile[lane * sD + d] * v_row[d];
        }
        p = expf(s * a.scale - lse_tile[lane]);
        ds = p * (dp - delta_tile[lane]) * a.scale;
      }
      p_row[lane] = p;
      ds_row[lane] = ds;
      __syncwarp();
      for (int d = lane; d < D; d += 32) {
        float acc_v = dv_row[d], acc_k = dk_row[d];
        for (int ii = 0; ii < kTileRows; ++ii) {
          acc_v += p_row[ii] * do_tile[ii * sD + d];
          acc_k += ds_row[ii] * q_tile[ii * sD + d];
        }
        dv_row[d] = acc_v;
        dk_row[d] = acc_k;
      }
      __syncwarp();
    }
  }
  if (valid) {
    for (int d = lane; d < D; d += 32) {
      const int64_t offset = (b * T + j) * a.kv_stride + g * D + d;
      dk[offset] = ToBf16(dk_row[d]);
      dv[offset] = ToBf16(dv_row[d]);
    }
  }
}

// The most warps (8, 4, 2 or 1) whose shared memory fits the device; 0 when none does.
int PickWarps(int64_t (*floats)(int, int64_t), int64_t D, int* bytes) {
  int device = 0, max_bytes = 48 << 10;
  if (cudaGetDevice(&device) == cudaSuccess) {
    cudaDeviceGetAttribute(&max_bytes, cudaDevAttrMaxSharedMemoryPerBlockOptin, device);
  }
  for (int warps = 8; warps >= 1; warps /= 2) {
    const int64_t b = floats(warps, D) * 4;
    if (b <= max_bytes) {
      *bytes = static_cast<int>(b);
      return warps;
    }
  }
  return 0;
}

template <typename Kernel>
cudaError_t AllowSharedMemory(Kernel kernel, int bytes) {
  if (bytes <= (48 << 10)) return cudaSuccess;
  return cudaFuncSetAttribute(reinterpret_cast<const void*>(kernel),
                              cudaFuncAttributeMaxDynamicSharedMemorySize, bytes);
}

dim3 Grid(int64_t bh, int64_t rows, int warps) {
  return dim3(static_cast<unsigned int>(bh), static_cast<unsigned int>((rows + warps - 1) / warps));
}

}  // namespace

cudaError_t LaunchAttentionForwardSimple(const AttentionArgs& args, const bf16* q, const bf16* k,
                                         const bf16* v, bf16* out, float* lse,
                                         cudaStream_t stream) {
  if (args.head_dim > kMaxSimpleHeadDim) return cudaErrorInvalidValue;
  int bytes = 0;
  const int warps = PickWarps(ForwardFloats, args.head_dim, &bytes);
  if (warps == 0) return cudaErrorInvalidValue;
  cudaError_t status = AllowSharedMemory(ForwardKernel, bytes);
  if (status != cudaSuccess) return status;
  return Launch(ForwardKernel, Grid(args.batch * args.local_heads, args.seq, warps), warps * 32,
                bytes, stream, args, q, k, v, out, lse);
}

cudaError_t LaunchAttentionBackwardSimple(const AttentionArgs& args, const bf16* q, const bf16* k,
                                          const bf16* v, const bf16* out, const float* lse,
                                          const bf16* dout, bf16* dq, bf16* dk, bf16* dv,
                                          float* delta, cudaStream_t stream) {
  if (args.head_dim > kMaxSimpleHeadDim) return cudaErrorInvalidValue;
  const int64_t rows = args.batch * args.local_heads * args.seq;
  cudaError_t status =
      Launch(DeltaKernel, GridFor(rows * 32, 256), 256, 0, stream, args, out, dout, delta);
  if (status != cudaSuccess) return status;

  int dq_bytes = 0, dkdv_bytes = 0;
  const int dq_warps = PickWarps(DqFloats, args.head_dim, &dq_bytes);
  const int dkdv_warps = PickWarps(DkDvFloats, args.head_dim, &dkdv_bytes);
  if (dq_warps == 0 || dkdv_warps == 0) return cudaErrorInvalidValue;
  status = AllowSharedMemory(DqKernel, dq_bytes);
  if (status != cudaSuccess) return status;
  status = AllowSharedMemory(DkDvKernel, dkdv_bytes);
  if (status != cudaSuccess) return status;
  status = Launch(DqKernel, Grid(args.batch * args.local_heads, args.seq, dq_warps), dq_warps * 32,
                  dq_bytes, stream, args, q, k, v, lse, delta, dout, dq);
  if (status != cudaSuccess) return status;
  return Launch(DkDvKernel, Grid(args.batch * args.local_kv_heads, args.seq, dkdv_warps),
                dkdv_warps * 32, dkdv_bytes, stream, args, q, k, v, lse, delta, dout, dk, dv);
}

}  // namespace cairn::runtime::cuda
