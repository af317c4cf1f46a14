// runtime/compute/cuda/rope.cu — rotary position embedding (rotate-half pairing), forward and
// backward (the rotation by the opposite angle).
//
// One thread per (token, pair index i < D/2) rotates the pair (x[i], x[i + D/2]) of every head of
// that token: the angle (position_offset + t) x theta^(-2i/D) is computed once, in double (as the
// CPU backend does, so that far positions keep fp32 accuracy: at position 1e5 an fp32 angle would
// be off by ~5e-3 rad), reduced modulo 2 pi, and its sine and cosine used for all heads. Each
// thread reads both elements of a pair before writing them, so out may alias inp. Consecutive
// threads take consecutive i, so a warp reads 32 consecutive bf16 of each half; four heads' loads
// are in flight at once.
#include "runtime/compute/cuda/device_utils.cuh"
#include "runtime/compute/cuda/kernels.h"

namespace cairn::runtime::cuda {
namespace {

constexpr int kHeads = 4;

__global__ void RopeKernel(RopeArgs a, float sign, const bf16* inp, bf16* out) {
  const int64_t half = a.head_dim / 2;
  const int64_t total = a.batch * a.seq * half;
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  const double log_theta = log(static_cast<double>(a.theta));
  for (int64_t idx = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; idx < total;
       idx += stride) {
    const int64_t i = idx % half;
    const int64_t token = idx / half;  // b x seq + t
    const int64_t t = token % a.seq;
    const double inv_freq = exp(-2.0 * static_cast<double>(i) / a.head_dim * log_theta);
    double angle = static_cast<double>(a.position_offset + t) * inv_freq;
    angle -= 6.283185307179586 * rint(angle / 6.283185307179586);  // into [-pi, pi]
    double s, c;
    sincos(angle, &s, &c);
    const float cs = static_cast<float>(c);
    const float sn = sign * static_cast<float>(s);
    const int64_t base = token * a.token_stride + i;
    // Heads in groups of kHeads: all of a group's loads are issued before its stores (out may
    // alias inp, so the compiler could not hoist a later head's loads above a store itself; the
    // pairs of different heads never overlap, so this order is safe).
    for (int64_t h0 = 0; h0 < a.heads; h0 += kHeads) {
      float x1[kHeads], x2[kHeads];
#pragma unroll
      for (int j = 0; j < kHeads; ++j) {
        if (h0 + j < a.heads) {
          const int64_t p = base + (h0 + j) * a.head_dim;
          x1[j] = ToFloat(inp[p]);
          x2[j] = ToFloat(inp[p + half]);
        }
      }
#pragma unroll
      for (int j = 0; j < kHeads; ++j) {
        if (h0 + j < a.heads) {
          const int64_t p = base + (h0 + j) * a.head_dim;
          out[p] = ToBf16(x1[j] * cs - x2[j] * sn);
          out[p + half] = ToBf16(x2[j] * cs + x1[j] * sn);
        }
      }
    }
  }
}

}  // namespace

cudaError_t LaunchRope(const RopeArgs& args, float sign, const bf16* inp, bf16* out,
                       cudaStream_t stream) {
  const int64_t total = args.batch * args.seq * (args.head_dim / 2);
  if (total <= 0) return cudaSuccess;
  return Launch(RopeKernel, GridFor(total, 256), 256, 0, stream, args, sign, inp, out);
}

}  // namespace cairn::runtime::cuda
