// runtime/compute/cuda/elementwise.cu — element-wise kernels: bf16 <-> fp32 conversions, GELU,
// SwiGLU, residual add, Add2D.
//
// Every element-wise op is one instance of MapKernel: a grid-stride loop that reads kIn bf16
// inputs, applies an fp32 functor, and writes kOut bf16 outputs. When every pointer is 16-byte
// aligned the body moves 8 elements per thread with one 16-byte load per input (Load8/Store8) and
// the last n % 8 elements go through the scalar loop; otherwise everything is scalar. Each thread
// reads all its inputs before writing, so outputs may alias inputs element for element (GELU in
// place, da += dout).
#include "runtime/compute/cuda/device_utils.cuh"
#include "runtime/compute/cuda/kernels.h"

namespace cairn::runtime::cuda {
namespace {

constexpr int kThreads = 256;

template <int kIn, int kOut>
struct Pointers {
  const bf16* in[kIn];
  bf16* out[kOut];
};

template <int kIn, int kOut>
bool AllAligned(const Pointers<kIn, kOut>& p) {
  for (int i = 0; i < kIn; ++i) {
    if (!Aligned16(p.in[i])) return false;
  }
  for (int o = 0; o < kOut; ++o) {
    if (!Aligned16(p.out[o])) return false;
  }
  return true;
}

// Op: struct with `__device__ void operator()(const float (&x)[kIn], float (&y)[kOut]) const`.
template <int kIn, int kOut, typename Op>
__global__ void MapKernel(int64_t n, Pointers<kIn, kOut> p, Op op, bool vectorized) {
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  const int64_t tid = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  int64_t scalar_begin = 0;
  if (vectorized) {
    const int64_t vectors = n / 8;
    for (int64_t v = tid; v < vectors; v += stride) {
      float x[kIn][8], y[kOut][8];
#pragma unroll
      for (int i = 0; i < kIn; ++i) Load8(p.in[i] + v * 8, x[i]);
#pragma unroll
      for (int e = 0; e < 8; ++e) {
        float xe[kIn], ye[kOut];
#pragma unroll
        for (int i = 0; i < kIn; ++i) xe[i] = x[i][e];
        op(xe, ye);
#pragma unroll
        for (int o = 0; o < kOut; ++o) y[o][e] = ye[o];
      }
#pragma unroll
      for (int o = 0; o < kOut; ++o) Store8(p.out[o] + v * 8, y[o]);
    }
    scalar_begin = vectors * 8;
  }
  for (int64_t i = scalar_begin + tid; i < n; i += stride) {
    float xe[kIn], ye[kOut];
#pragma unroll
    for (int j = 0; j < kIn; ++j) xe[j] = ToFloat(p.in[j][i]);
    op(xe, ye);
#pragma unroll
    for (int o = 0; o < kOut; ++o) p.out[o][i] = ToBf16(ye[o]);
  }
}

template <int kIn, int kOut, typename Op>
cudaError_t Map(int64_t n, const Pointers<kIn, kOut>& p, Op op, cudaStream_t stream) {
  if (n <= 0) return cudaSuccess;
  const bool vectorized = AllAligned(p);
  const int64_t units = vectorized ? n / 8 + n % 8 : n;
  return Launch(MapKernel<kIn, kOut, Op>, GridFor(units, kThreads), kThreads, 0, stream, n, p, op,
                vectorized);
}

// The formulas are cpu_backend.cc's, in fp32 (accurate tanhf/expf, not the fast intrinsics).
constexpr float kGeluScale = 0.7978845608028654f;  // sqrt(2 / pi)
constexpr float kGeluCubic = 0.044715f;

struct GeluForwardOp {
  __device__ void operator()(const float (&x)[1], float (&y)[1]) const {
    const float v = x[0];
    y[0] = 0.5f * v * (1.0f + tanhf(kGeluScale * (v + kGeluCubic * v * v * v)));
  }
};

// d/dx [x/2 (1 + tanh u)] = (1 + tanh u)/2 + x/2 (1 - tanh^2 u) du/dx, u = s (x + c x^3).
struct GeluBackwardOp {  // x = {inp, dout}
  __device__ void operator()(const float (&x)[2], float (&y)[1]) const {
    const float v = x[0];
    const float t = tanhf(kGeluScale * (v + kGeluCubic * v * v * v));
    const float du = kGeluScale * (1.0f + 3.0f * kGeluCubic * v * v);
    y[0] = x[1] * (0.5f * (1.0f + t) + 0.5f * v * (1.0f - t * t) * du);
  }
};

struct SwiGluForwardOp {  // x = {gate, up}
  __device__ void operator()(const float (&x)[2], float (&y)[1]) const {
    const float g = x[0];
    y[0] = g / (1.0f + expf(-g)) * x[1];
  }
};

// silu(g) = g sig(g), silu'(g) = sig(g) (1 + g (1 - sig(g))). x = {gate, up, dout}, y = {dgate,
// dup}.
struct SwiGluBackwardOp {
  __device__ void operator()(const float (&x)[3], float (&y)[2]) const {
    const float g = x[0], up = x[1], dout = x[2];
    const float sig = 1.0f / (1.0f + expf(-g));
    y[0] = dout * up * sig * (1.0f + g * (1.0f - sig));
    y[1] = dout * g * sig;
  }
};

struct AddOp {
  __device__ void operator()(const float (&x)[2], float (&y)[1]) const { y[0] = x[0] + x[1]; }
};

// ---- Conversions --------------------------------------------------------------------------------

__global__ void FloatToBf16Kernel(int64_t n, const float* src, bf16* dst, bool vectorized) {
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  const int64_t tid = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  int64_t scalar_begin = 0;
  if (vectorized) {
    const int64_t vectors = n / 8;
    for (int64_t v = tid; v < vectors; v += stride) {
      const float4 lo = reinterpret_cast<const float4*>(src)[2 * v];
      const float4 hi = reinterpret_cast<const float4*>(src)[2 * v + 1];
      const float x[8] = {lo.x, lo.y, lo.z, lo.w, hi.x, hi.y, hi.z, hi.w};
      Store8(dst + v * 8, x);
    }
    scalar_begin = vectors * 8;
  }
  for (int64_t i = scalar_begin + tid; i < n; i += stride) dst[i] = ToBf16(src[i]);
}

__global__ void Bf16ToFloatKernel(int64_t n, const bf16* src, float* dst, bool vectorized) {
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  const int64_t tid = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  int64_t scalar_begin = 0;
  if (vectorized) {
    const int64_t vectors = n / 8;
    for (int64_t v = tid; v < vectors; v += stride) {
      float x[8];
      Load8(src + v * 8, x);
      reinterpret_cast<float4*>(dst)[2 * v] = make_float4(x[0], x[1], x[2], x[3]);
      reinterpret_cast<float4*>(dst)[2 * v + 1] = make_float4(x[4], x[5], x[6], x[7]);
    }
    scalar_begin = vectors * 8;
  }
  for (int64_t i = scalar_begin + tid; i < n; i += stride) dst[i] = ToFloat(src[i]);
}

// ---- Add2D
// ----------------------------------------------------------------------------------------

// One item = 8 elements (vectorized: cols and both pitches multiples of 8, pointers aligned) or 1.
__global__ void Add2DKernel(int64_t rows, int64_t cols, const bf16* src, int64_t src_pitch,
                            bf16* dst, int64_t dst_pitch, int width) {
  const int64_t per_row = cols / width;
  const int64_t items = rows * per_row;
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < items;
       i += stride) {
    const int64_t r = i / per_row;
    const int64_t c = (i - r * per_row) * width;
    const bf16* s = src + r * src_pitch + c;
    bf16* d = dst + r * dst_pitch + c;
    if (width == 8) {
      float a[8], b[8];
      Load8(s, a);
      Load8(d, b);
#pragma unroll
      for (int e = 0; e < 8; ++e) b[e] += a[e];
      Store8(d, b);
    } else {
      *d = ToBf16(ToFloat(*d) + ToFloat(*s));
    }
  }
}

}  // namespace

cudaError_t LaunchFloatToBf16(int64_t n, const float* src, bf16* dst, cudaStream_t stream) {
  if (n <= 0) return cudaSuccess;
  const bool vectorized = Aligned16(src) && Aligned16(dst);
  return Launch(FloatToBf16Kernel, GridFor(vectorized ? n / 8 + n % 8 : n, kThreads), kThreads, 0,
                stream, n, src, dst, vectorized);
}

cudaError_t LaunchBf16ToFloat(int64_t n, const bf16* src, float* dst, cudaStream_t stream) {
  if (n <= 0) return cudaSuccess;
  const bool vectorized = Aligned16(src) && Aligned16(dst);
  return Launch(Bf16ToFloatKernel, GridFor(vectorized ? n / 8 + n % 8 : n, kThreads), kThreads, 0,
                stream, n, src, dst, vectorized);
}

cudaError_t LaunchGeluForward(int64_t n, const bf16* inp, bf16* out, cudaStream_t stream) {
  return Map<1, 1>(n, Pointers<1, 1>{{inp}, {out}}, GeluForwardOp{}, stream);
}

cudaError_t LaunchGeluBackward(int64_t n, const bf16* inp, const bf16* dout, bf16* dinp,
                               cudaStream_t stream) {
  return Map<2, 1>(n, Pointers<2, 1>{{inp, dout}, {dinp}}, GeluBackwardOp{}, stream);
}

cudaError_t LaunchSwiGluForward(int64_t n, const bf16* gate, const bf16* up, bf16* out,
                                cudaStream_t stream) {
  return Map<2, 1>(n, Pointers<2, 1>{{gate, up}, {out}}, SwiGluForwardOp{}, stream);
}

cudaError_t LaunchSwiGluBackward(int64_t n, const bf16* gate, const bf16* up, const bf16* dout,
                                 bf16* dgate, bf16* dup, cudaStream_t stream) {
  return Map<3, 2>(n, Pointers<3, 2>{{gate, up, dout}, {dgate, dup}}, SwiGluBackwardOp{}, stream);
}

cudaError_t LaunchAdd(int64_t n, const bf16* a, const bf16* b, bf16* out, cudaStream_t stream) {
  return Map<2, 1>(n, Pointers<2, 1>{{a, b}, {out}}, AddOp{}, stream);
}

cudaError_t LaunchAdd2D(int64_t rows, int64_t cols, const bf16* src, int64_t src_pitch, bf16* dst,
                        int64_t dst_pitch, cudaStream_t stream) {
  if (rows <= 0 || cols <= 0) return cudaSuccess;
  const bool vectorized =
      cols % 8 == 0 && src_pitch % 8 == 0 && dst_pitch % 8 == 0 && Aligned16(src) && Aligned16(dst);
  const int width = vectorized ? 8 : 1;
  return Launch(Add2DKernel, GridFor(rows * (cols / width), kThreads), kThreads, 0, stream, rows,
                cols, src, src_pitch, dst, dst_pitch, width);
}

}  // namespace cairn::runtime::cuda
