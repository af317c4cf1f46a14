// runtime/compute/cuda/kernels.h — the launch functions of the CUDA backend's kernels (private to
// runtime/compute/cuda; cuda_backend.cc is the only caller).
//
// One .cu file per family (elementwise.cu, optimizer.cu, matmul_simple.cu, norm.cu, rope.cu,
// embedding.cu, cross_entropy.cu, attention_simple.cu, attention_flash*.cu); each launcher
// enqueues its kernel(s) on `stream` and returns the launch's cudaError_t (cudaGetLastError()),
// which cuda_backend.cc turns into a Status. Launchers take arguments that the public boundary has
// already validated (compute_backend.cc), so they check nothing but what their kernels need to pick
// a variant (alignment for 16-byte vector loads, sizes). Scratch memory is passed in: the backend
// owns allocation (its stream-ordered pool), the launchers say how much they need.
//
// Conventions: `bf16` tensors are __nv_bfloat16; sizes and indices are int64_t end to end (no
// int32 products of dimensions anywhere); "rows x cols" tensors are row-major and contiguous unless
// a pitch/stride is given.
#ifndef CAIRN_RUNTIME_COMPUTE_CUDA_KERNELS_H_
#define CAIRN_RUNTIME_COMPUTE_CUDA_KERNELS_H_

#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>

namespace cairn::runtime::cuda {

using bf16 = __nv_bfloat16;

// ---- elementwise.cu
// ------------------------------------------------------------------------------ dst =
// round_to_nearest_even(src) / the exact widening.
cudaError_t LaunchFloatToBf16(int64_t n, const float* src, bf16* dst, cudaStream_t stream);
cudaError_t LaunchBf16ToFloat(int64_t n, const bf16* src, float* dst, cudaStream_t stream);
// The activations of compute_backend.h, fp32 math, out may alias inp (and dinp dout).
cudaError_t LaunchGeluForward(int64_t n, const bf16* inp, bf16* out, cudaStream_t stream);
cudaError_t LaunchGeluBackward(int64_t n, const bf16* inp, const bf16* dout, bf16* dinp,
                               cudaStream_t stream);
cudaError_t LaunchSwiGluForward(int64_t n, const bf16* gate, const bf16* up, bf16* out,
                                cudaStream_t stream);
cudaError_t LaunchSwiGluBackward(int64_t n, const bf16* gate, const bf16* up, const bf16* dout,
                                 bf16* dgate, bf16* dup, cudaStream_t stream);
// out = a + b (out may alias a or b).
cudaError_t LaunchAdd(int64_t n, const bf16* a, const bf16* b, bf16* out, cudaStream_t stream);
// dst[r, c] += src[r, c] for r < rows, c < cols; pitches in elements.
cudaError_t LaunchAdd2D(int64_t rows, int64_t cols, const bf16* src, int64_t src_pitch, bf16* dst,
                        int64_t dst_pitch, cudaStream_t stream);

// ---- optimizer.cu
// --------------------------------------------------------------------------------
struct AdamWArgs {
  float learning_rate, beta1, beta2, eps;
  float weight_decay;      // 0 when the update applies none
  float bias_correction1;  // 1 - beta1^step
  float bias_correction2;  // 1 - beta2^step
  float grad_scale;
};
cudaError_t LaunchAdamW(int64_t n, const AdamWArgs& args, float* params, const float* grads,
                        float* m, float* v, cudaStream_t stream);
// x *= alpha
cudaError_t LaunchScale(int64_t n, float alpha, float* x, cudaStream_t stream);
cudaError_t LaunchAxpy(int64_t n, float alpha, const float* x, float* y, cudaStream_t stream);
// Deterministic *sum += sum_i x_i (or x_i^2 when `squared`): a fixed grid writes
// SumPartials(n) per-block partial sums to `partials`, one block adds them in order.
int64_t SumPartials(int64_t n);
cudaError_t LaunchSum(int64_t n, const float* x, bool squared, float* partials, float* sum,
                      cudaStream_t stream);

// ---- matmul_simple.cu
// ---------------------------------------------------------------------------- C[m, n] = beta C +
// op(A) op(B) (+ bias[n]) with the stored layouts of compute_backend.h's MatmulShape: A [m, k] (or
// [k, m] when ta), B [n, k] when tb (else [k, n]). A and B are bf16; C and bias are fp32 when
// c_f32, else bf16.
struct GemmArgs {
  int64_t m = 0, n = 0, k = 0;
  bool ta = false, tb = false;
  const bf16* a = nullptr;
  const bf16* b = nullptr;
  void* c = nullptr;
  bool c_f32 = false;
  float beta = 0.0f;
  const void* bias = nullptr;
};
// A plain tiled kernel (fp32 accumulation): the correctness baseline and the fallback when cuBLASLt
// has no algorithm for a configuration.
cudaError_t LaunchSimpleGemm(const GemmArgs& args, cudaStream_t stream);
// c[i, j] += bias[j] over an [m, n] matrix (fp32 or bf16 like GemmArgs).
cudaError_t LaunchAddBias(int64_t m, int64_t n, const void* bias, void* c, bool f32,
                          cudaStream_t stream);
// dbias[j] += sum_i dc[i, j] (dc bf16 [m, n]), deterministic: row chunks write
// ColumnSumChunks(...) x n partial sums to `partials`, a second kernel adds them in order.
int64_t ColumnSumChunks(int64_t m, int64_t n, int64_t max_partial_floats);
cudaError_t LaunchColumnSums(int64_t m, int64_t n, const bf16* dc, int64_t chunks, float* partials,
                             float* dbias, cudaStream_t stream);

// ---- norm.cu
// ------------------------------------------------------------------------------------- LayerNorm
// (bias may be null) / RMSNorm forward over [rows, cols], and their backward. The backward writes
// NormBackwardBlocks(...) x 2 x cols per-block partial sums of dweight and dbias to `partials` and
// adds them in block order (deterministic; dbias may be null).
constexpr int64_t kMaxNormCols = 8192;  // wider rows: cudaErrorInvalidValue
cudaError_t LaunchLayerNormForward(int64_t rows, int64_t cols, float eps, const bf16* inp,
                                   const bf16* weight, const bf16* bias, bf16* out, float* rstd,
                                   cudaStream_t stream);
cudaError_t LaunchRmsNormForward(int64_t rows, int64_t cols, float eps, const bf16* inp,
                                 const bf16* weight, bf16* out, float* rstd, cudaStream_t stream);
int64_t NormBackwardBlocks(int64_t rows, int64_t cols, int sm_count, int64_t max_partial_floats);
cudaError_t LaunchLayerNormBackward(int64_t rows, int64_t cols, const bf16* inp, const bf16* weight,
                                    const float* rstd, const bf16* dout, bf16* dinp,
                                    bool accumulate, int64_t blocks, float* partials,
                                    float* dweight, float* dbias, cudaStream_t stream);
cudaError_t LaunchRmsNormBackward(int64_t rows, int64_t cols, const bf16* inp, const bf16* weight,
                                  const float* rstd, const bf16* dout, bf16* dinp, bool accumulate,
                                  int64_t blocks, float* partials, float* dweight,
                                  cudaStream_t stream);

// ---- rope.cu
// -------------------------------------------------------------------------------------
struct RopeArgs {
  int64_t batch, seq, heads, head_dim, token_stride, position_offset;
  float theta;
};
// Rotates every (x[i], x[i + D/2]) pair by sign x angle (sign = +1 forward, -1 backward); out may
// alias inp.
cudaError_t LaunchRope(const RopeArgs& args, float sign, const bf16* inp, bf16* out,
                       cudaStream_t stream);

// ---- embedding.cu
// --------------------------------------------------------------------------------
struct EmbeddingArgs {
  int64_t tokens;  // B x T
  int64_t seq;     // T
  int64_t channels;
  int64_t vocab_begin, vocab_end;
  int64_t position_offset;
};
cudaError_t LaunchEmbeddingForward(const EmbeddingArgs& args, const int32_t* ids, const bf16* wte,
                                   const bf16* wpe, bf16* out, cudaStream_t stream);
// Scratch for the deterministic table gradient (sorting the ids): bytes, from the CUB size query.
cudaError_t EmbeddingBackwardScratchBytes(const EmbeddingArgs& args, size_t* bytes);
cudaError_t LaunchEmbeddingBackward(const EmbeddingArgs& args, const int32_t* ids, const bf16* dout,
                                    float* dwte, float* dwpe, void* scratch, size_t scratch_bytes,
                                    cudaStream_t stream);

// ---- cross_entropy.cu
// ----------------------------------------------------------------------------
struct CrossEntropyArgs {
  int64_t tokens, vocab_begin, local_vocab;
};
cudaError_t LaunchCrossEntropyMax(const CrossEntropyArgs& args, const float* logits, float* max,
                                  cudaStream_t stream);
cudaError_t LaunchCrossEntropySums(const CrossEntropyArgs& args, const float* logits,
                                   const int32_t* targets, const float* max, float* sum_exp,
                                   float* target_logit, cudaStream_t stream);
// dlogits may be the logits' own memory (in place: bf16 rows over fp32 rows, see the .cu).
cudaError_t LaunchCrossEntropyLossAndGrad(const CrossEntropyArgs& args, const float* logits,
                                          const int32_t* targets, const float* max,
                                          const float* sum_exp, const float* target_logit,
                                          float loss_scale, float* losses, bf16* dlogits,
                                          cudaStream_t stream);

// ---- attention
// ----------------------------------------------------------------------------------- One call's
// geometry (compute_backend.h AttentionShape, resolved): local query head h reads local kv head
// (head_begin + h) / group_size - kv_begin; out/dout are [B, T, local_heads, D] contiguous, lse and
// delta [B, local_heads, T].
struct AttentionArgs {
  int64_t batch, seq, head_dim;
  int64_t local_heads, local_kv_heads;
  int64_t head_begin, head_end, group_size, kv_begin;
  int64_t q_stride, kv_stride;  // elements from token t to t + 1
  float scale;                  // 1 / sqrt(D)
};
__host__ __device__ inline int64_t KvHeadOf(const AttentionArgs& a, int64_t local_head) {
  return (a.head_begin + local_head) / a.group_size - a.kv_begin;
}

// attention_simple.cu: fp32 tiled kernels, any head dim up to kMaxSimpleHeadDim.
constexpr int64_t kMaxSimpleHeadDim = 512;
cudaError_t LaunchAttentionForwardSimple(const AttentionArgs& args, const bf16* q, const bf16* k,
                                         const bf16* v, bf16* out, float* lse, cudaStream_t stream);
// delta: scratch of batch x local_heads x seq floats.
cudaError_t LaunchAttentionBackwardSimple(const AttentionArgs& args, const bf16* q, const bf16* k,
                                          const bf16* v, const bf16* out, const float* lse,
                                          const bf16* dout, bf16* dq, bf16* dk, bf16* dv,
                                          float* delta, cudaStream_t stream);

// attention_flash.cu: FlashAttention-2-style tensor-core kernels (mma.sync m16n8k16 bf16). They
// take head dims 64 and 128, token strides that are multiples of 8 elements, and 16-byte aligned
// tensors: `pointers` lists every tensor of the call (q, k, v, out; and dout, dq, dk, dv).
bool FlashAttentionSupported(const AttentionArgs& args, const void* const* pointers, int count);
cudaError_t LaunchAttentionForwardFlash(const AttentionArgs& args, const bf16* q, const bf16* k,
                                        const bf16* v, bf16* out, float* lse, cudaStream_t stream);
// delta: batch x local_heads x seq floats; dq_accum: batch x seq x local_heads x head_dim floats
// (zeroed here); both scratch.
cudaError_t LaunchAttentionBackwardFlash(const AttentionArgs& args, const bf16* q, const bf16* k,
                                         const bf16* v, const bf16* out, const float* lse,
                                         const bf16* dout, bf16* dq, bf16* dk, bf16* dv,
                                         float* delta, float* dq_accum, cudaStream_t stream);

}  // namespace cairn::runtime::cuda

#endif  // CAIRN_RUNTIME_COMPUTE_CUDA_KERNELS_H_
