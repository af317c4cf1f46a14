// runtime/compute/rng.h — counter-based random numbers for parameter initialisation.
//
// Overview
// --------
// Every parameter element's initial value is a pure function of (seed, tensor id, element index):
// the element's index in the *unsharded* tensor is the counter of Philox4x32-10 (Salmon, Moraes,
// Dror, Shaw: "Parallel random numbers: as easy as 1, 2, 3", SC 2011; the generator of cuRAND, JAX
// and PyTorch's CUDA RNG), keyed by the seed. So a rank that holds any shard of a tensor (a TP row
// or column block, a ZeRO-3 flat slice, a pipeline stage's layers) computes exactly the values the
// single-rank model has there, with no communication, and a plan on N ranks starts from the same
// model as one rank (DESIGN.md, "Determinism").
//
//   // Rank r of a column-parallel linear [out, in] holds rows [r0, r1):
//   FillInitValues(seed, tensor_id, /*first_index=*/r0 * in, (r1 - r0) * in, 0.02f, w);
//   // A row-parallel linear's rank holds columns [c0, c1) of every row:
//   FillInitBlock(seed, tensor_id, /*cols=*/in, 0, out, c0, c1, 0.02f, w);
//
// Contract
// --------
// * tensor_id names a logical tensor of the model (the model definition assigns ids, e.g. from the
//   layer index and parameter kind); index is the row-major element index within the whole tensor.
// * Values are N(0, std^2) by Box-Muller on two 53-bit uniforms built from the four Philox words,
//   computed in double and rounded to float once, so they are identical on every platform with an
//   IEEE double libm (a CUDA implementation of the same formula reproduces them up to libm's last
//   double ulp, which the rounding to float almost always absorbs).
// * Pure functions: thread-safe, no state.
#ifndef CAIRN_RUNTIME_COMPUTE_RNG_H_
#define CAIRN_RUNTIME_COMPUTE_RNG_H_

#include <array>
#include <cstdint>

namespace cairn::runtime {

// Philox4x32 with 10 rounds: four 32-bit output words for a 128-bit counter and a 64-bit key.
// Matches Random123's known-answer vectors (rng_test.cc).
std::array<uint32_t, 4> Philox4x32(std::array<uint32_t, 4> counter, std::array<uint32_t, 2> key);

// The initial value of element `index` of tensor `tensor_id`: a N(0, std^2) sample. Counter =
// (index low, index high, tensor_id low, tensor_id high), key = (seed low, seed high).
float InitValue(uint64_t seed, uint64_t tensor_id, uint64_t index, float std);

// out[i] = InitValue(seed, tensor_id, first_index + i, std) for 0 <= i < count (a contiguous
// shard).
void FillInitValues(uint64_t seed, uint64_t tensor_id, uint64_t first_index, int64_t count,
                    float std, float* out);

// The block rows [row_begin, row_end) x columns [col_begin, col_end) of a row-major tensor with
// `cols` columns, written densely (row-major, col_end - col_begin per row) to out.
void FillInitBlock(uint64_t seed, uint64_t tensor_id, int64_t cols, int64_t row_begin,
                   int64_t row_end, int64_t col_begin, int64_t col_end, float std, float* out);

}  // namespace cairn::runtime

#endif  // CAIRN_RUNTIME_COMPUTE_RNG_H_
