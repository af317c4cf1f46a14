// runtime/compute/cuda/embedding.cu — token (+ position) embedding forward, and its deterministic
// backward.
//
// Forward: one thread per (token, 8 channels) with 16-byte loads when C % 8 == 0 and the tables and
// output are aligned (else per channel): out = wte[id - vocab_begin] (0 for ids outside the local
// range) + wpe[position_offset + t], added in fp32, rounded once.
//
// Backward, dwte (the same bits every run, no float atomics):
//   1. keys[i] = id_i - vocab_begin for the local ids, else local_vocab (a sentinel sorting last);
//      values[i] = i (the token's position in [B, T]).
//   2. cub::DeviceRadixSort::SortPairs: a stable radix sort, so equal ids stay in token order.
//   3. One warp per sorted position; the warps at the start of a run of equal ids sum the dout rows
//      of the run in token order (fp32, channels across lanes, 8 per lane with 16-byte loads where
//      aligned) and add the sum to their dwte row. Each row is written by exactly one warp.
// dwpe: one thread per (t, channel) adds dout[b, t, c] over b in order.
#if defined(CAIRN_CUDA_EMULATION)
#include <algorithm>
#include <utility>
#include <vector>
#else
#include <cub/device/device_radix_sort.cuh>
#endif

#include "runtime/compute/cuda/device_utils.cuh"
#include "runtime/compute/cuda/kernels.h"

namespace cairn::runtime::cuda {
namespace {

constexpr int kThreads = 256;

__global__ void EmbeddingForwardKernel(EmbeddingArgs a, const int32_t* ids, const bf16* wte,
                                       const bf16* wpe, bf16* out, int width) {
  const int64_t per_token = a.channels / width;
  const int64_t items = a.tokens * per_token;
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t item = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; item < items;
       item += stride) {
    const int64_t token = item / per_token;
    const int64_t c = (item - token * per_token) * width;
    const int64_t id = ids[token];
    const bool local = id >= a.vocab_begin && id < a.vocab_end;
    const int64_t position = a.position_offset + token % a.seq;
    bf16* y = out + token * a.channels + c;
    if (width == 8) {
      float x[8] = {0, 0, 0, 0, 0, 0, 0, 0};
      if (local) Load8(wte + (id - a.vocab_begin) * a.channels + c, x);
      if (wpe != nullptr) {
        float p[8];
        Load8(wpe + position * a.channels + c, p);
#pragma unroll
        for (int e = 0; e < 8; ++e) x[e] += p[e];
      }
      Store8(y, x);
    } else {
      float x = local ? ToFloat(wte[(id - a.vocab_begin) * a.channels + c]) : 0.0f;
      if (wpe != nullptr) x += ToFloat(wpe[position * a.channels + c]);
      *y = ToBf16(x);
    }
  }
}

__global__ void MakeSortKeysKernel(int64_t tokens, const int32_t* ids, int64_t vocab_begin,
                                   int64_t vocab_end, int32_t* keys, int32_t* values) {
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < tokens;
       i += stride) {
    const int64_t id = ids[i];
    const bool local = id >= vocab_begin && id < vocab_end;
    keys[i] = static_cast<int32_t>(local ? id - vocab_begin : vocab_end - vocab_begin);
    values[i] = static_cast<int32_t>(i);
  }
}

// One warp per sorted position; only the first position of each run of equal keys works.
__global__ void AccumulateRunsKernel(int64_t tokens, int64_t channels, int64_t local_vocab,
                                     const int32_t* keys, const int32_t* values, const bf16* dout,
                                     float* dwte, bool vectorized) {
  const int lane = threadIdx.x & 31;
  const int64_t warps = static_cast<int64_t>(gridDim.x) * (blockDim.x / 32);
  for (int64_t i = (static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x) / 32; i < tokens;
       i += warps) {
    const int32_t key = keys[i];
    if (key >= local_vocab || (i > 0 && keys[i - 1] == key)) continue;  // warp-uniform
    int64_t end = i + 1;
    while (end < tokens && keys[end] == key) ++end;
    float* row = dwte + static_cast<int64_t>(key) * channels;
    if (vectorized) {
      for (int64_t c = static_cast<int64_t>(lane) * 8; c < channels; c += 32 * 8) {
        float sum[8] = {0, 0, 0, 0, 0, 0, 0, 0};
        for (int64_t j = i; j < end; ++j) {
          float x[8];
          Load8(dout + static_cast<int64_t>(values[j]) * channels + c, x);
#pragma unroll
          for (int e = 0; e < 8; ++e) sum[e] += x[e];
        }
#pragma unroll
        for (int e = 0; e < 8; ++e) row[c + e] += sum[e];
      }
    } else {
      for (int64_t c = lane; c < channels; c += 32) {
        float sum = 0.0f;
        for (int64_t j = i; j < end; ++j) {
          sum += ToFloat(dout[static_cast<int64_t>(values[j]) * channels + c]);
        }
        row[c] += sum;
      }
    }
  }
}

__global__ void PositionGradKernel(EmbeddingArgs a, const bf16* dout, float* dwpe) {
  const int64_t batch = a.tokens / a.seq;
  const int64_t items = a.seq * a.channels;
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t item = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; item < items;
       item += stride) {
    const int64_t t = item / a.channels, c = item - t * a.channels;
    float sum = 0.0f;
    for (int64_t b = 0; b < batch; ++b) sum += ToFloat(dout[(b * a.seq + t) * a.channels + c]);
    dwpe[(a.position_offset + t) * a.channels + c] += sum;
  }
}

// A stable sort of (key, value) pairs by the low `bits` bits of the keys: CUB's radix sort, or in
// the CPU emulation build (which has no CUB; device memory is host memory there) std::stable_sort.
// With temp == nullptr, sets temp_bytes to what the sort needs.
cudaError_t SortPairs(void* temp, size_t& temp_bytes, const int32_t* keys_in, int32_t* keys_out,
                      const int32_t* values_in, int32_t* values_out, int count, int bits,
                      cudaStream_t stream) {
#if defined(CAIRN_CUDA_EMULATION)
  if (temp == nullptr) {
    temp_bytes = 16;
    return cudaSuccess;
  }
  std::vector<std::pair<int32_t, int32_t>> pairs(static_cast<size_t>(count));
  for (int i = 0; i < count; ++i) pairs[i] = {keys_in[i], values_in[i]};
  std::stable_sort(pairs.begin(), pairs.end(),
                   [](const auto& a, const auto& b) { return a.first < b.first; });
  for (int i = 0; i < count; ++i) {
    keys_out[i] = pairs[i].first;
    values_out[i] = pairs[i].second;
  }
  (void)bits;
  (void)stream;
  return cudaSuccess;
#else
  return cub::DeviceRadixSort::SortPairs(temp, temp_bytes, keys_in, keys_out, values_in, values_out,
                                         count, 0, bits, stream);
#endif
}

// Bits of the sort keys: enough for the sentinel local_vocab.
int KeyBits(int64_t local_vocab) {
  int bits = 1;
  while ((int64_t{1} << bits) <= local_vocab) ++bits;
  return bits;
}

// Scratch layout: keys_in, keys_out, values_in, values_out (int32 x tokens each, 256-byte aligned),
// then CUB's temporary storage.
int64_t AlignUp(int64_t bytes) { return (bytes + 255) / 256 * 256; }

}  // namespace

cudaError_t LaunchEmbeddingForward(const EmbeddingArgs& args, const int32_t* ids, const bf16* wte,
                                   const bf16* wpe, bf16* out, cudaStream_t stream) {
  const bool vectorized = args.channels % 8 == 0 && Aligned16(wte) && Aligned16(out) &&
                          (wpe == nullptr || Aligned16(wpe));
  const int width = vectorized ? 8 : 1;
  return Launch(EmbeddingForwardKernel, GridFor(args.tokens * (args.channels / width), kThreads),
                kThreads, 0, stream, args, ids, wte, wpe, out, width);
}

cudaError_t EmbeddingBackwardScratchBytes(const EmbeddingArgs& args, size_t* bytes) {
  if (args.tokens > 0x7fffffff) return cudaErrorInvalidValue;  // CUB's item count is an int
  size_t temp = 0;
  const cudaError_t status =
      SortPairs(nullptr, temp, nullptr, nullptr, nullptr, nullptr, static_cast<int>(args.tokens),
                KeyBits(args.vocab_end - args.vocab_begin), nullptr);
  if (status != cudaSuccess) return status;
  *bytes = static_cast<size_t>(4 * AlignUp(args.tokens * 4)) + temp;
  return cudaSuccess;
}

cudaError_t LaunchEmbeddingBackward(const EmbeddingArgs& args, const int32_t* ids, const bf16* dout,
                                    float* dwte, float* dwpe, void* scratch, size_t scratch_bytes,
                                    cudaStream_t stream) {
  const int64_t local_vocab = args.vocab_end - args.vocab_begin;
  const int64_t array_bytes = AlignUp(args.tokens * 4);
  char* base = static_cast<char*>(scratch);
  int32_t* keys_in = reinterpret_cast<int32_t*>(base);
  int32_t* keys_out = reinterpret_cast<int32_t*>(base + array_bytes);
  int32_t* values_in = reinterpret_cast<int32_t*>(base + 2 * array_bytes);
  int32_t* values_out = reinterpret_cast<int32_t*>(base + 3 * array_bytes);
  void* temp = base + 4 * array_bytes;
  if (scratch_bytes < static_cast<size_t>(4 * array_bytes)) return cudaErrorInvalidValue;
  size_t temp_bytes = scratch_bytes - static_cast<size_t>(4 * array_bytes);

  cudaError_t status =
      Launch(MakeSortKeysKernel, GridFor(args.tokens, kThreads), kThreads, 0, stream, args.tokens,
             ids, args.vocab_begin, args.vocab_end, keys_in, values_in);
  if (status != cudaSuccess) return status;
  status = SortPairs(temp, temp_bytes, keys_in, keys_out, values_in, values_out,
                     static_cast<int>(args.tokens), KeyBits(local_vocab), stream);
  if (status != cudaSuccess) return status;
  const bool vectorized = args.channels % 8 == 0 && Aligned16(dout) && Aligned16(dwte);
  status =
      Launch(AccumulateRunsKernel, GridFor(args.tokens * 32, kThreads), kThreads, 0, stream,
             args.tokens, args.channels, local_vocab, keys_out, values_out, dout, dwte, vectorized);
  if (status != cudaSuccess || dwpe == nullptr) return status;
  return Launch(PositionGradKernel, GridFor(args.seq * args.channels, kThreads), kThreads, 0,
                stream, args, dout, dwpe);
}

}  // namespace cairn::runtime::cuda
