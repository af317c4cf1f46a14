// Runs the flash attention kernels (attention_flash_impl.h) on the CPU through the SIMT emulator
// (flash_emulator.h) — the same source nvcc compiles for the GPU — and checks them against the
// double-precision oracle (reference/reference_ops.h), with every emulator check on: barrier
// divergence, shared-memory bounds, alignment, uninitialised reads and races, under both cp.async
// completion models. No GPU needed: this runs in CI.
//
// What it cannot see: the PTX fragment layouts themselves (the emulator implements the PTX ISA's
// documented layouts, so a kernel that misreads them fails here only if the emulator agrees with
// the kernel's reading), timing, and register/occupancy effects. The GPU tests cover those
// (cuda_backend_gpu_test.cc compares the flash kernels with the simple fp32 kernels).
// The emulator switches fibers with _longjmp between stacks, which glibc's fortified longjmp
// rejects; this file needs none of the fortified checks.
#undef _FORTIFY_SOURCE
#define CAIRN_FLASH_EMULATE 1

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "gtest/gtest.h"
#include "runtime/compute/compute_backend.h"
#include "runtime/compute/cuda/attention_flash_impl.h"
#include "runtime/compute/reference/reference_ops.h"
#include "runtime/compute/testing/test_util.h"

namespace cairn::runtime::cuda::flash {
namespace {

using ::cairn::runtime::testing::RandomVector;
using ::cairn::runtime::testing::RelativeError;
using ::cairn::runtime::testing::RelativeL2Error;
using emulator::CopyMode;

std::vector<bf16> ToBf16Vector(const std::vector<float>& v) {
  std::vector<bf16> out(v.size());
  for (size_t i = 0; i < v.size(); ++i) out[i] = ToBf16(v[i]);
  return out;
}
std::vector<float> ToFloatVector(const std::vector<bf16>& v) {
  std::vector<float> out(v.size());
  for (size_t i = 0; i < v.size(); ++i) out[i] = ToFloat(v[i]);
  return out;
}
std::vector<double> ToDouble(const std::vector<float>& v) {
  return std::vector<double>(v.begin(), v.end());
}

struct Case {
  int64_t batch, seq, heads, kv_heads, head_dim, head_begin, head_end;
  int64_t extra_stride;  // > 0: q, k, v inside one fused buffer with this many more elements/token
};

std::string Describe(const Case& c) {
  return absl::StrCat("B=", c.batch, " T=", c.seq, " H=", c.heads, " KV=", c.kv_heads,
                      " D=", c.head_dim, " heads=[", c.head_begin, ",", c.head_end,
                      ") extra_stride=", c.extra_stride);
}

// Everything one case needs: the shape, the (bf16-valued) inputs and the oracle's results.
struct Problem {
  AttentionShape shape;
  FlashArgs args;
  int64_t q_size, kv_size, out_size, lse_size;
  // q, k, v live in one buffer (fused or not): offsets of each.
  std::vector<float> qkv;
  int64_t q_offset, k_offset, v_offset;
  std::vector<float> dout;
  std::vector<double> out, lse, dq, dk, dv;  // oracle
};

Problem MakeProblem(const Case& c, uint32_t seed) {
  Problem p;
  AttentionShape s{c.batch, c.seq, c.heads, c.kv_heads, c.head_dim, c.head_begin, c.head_end, 0, 0};
  const int64_t D = c.head_dim, tokens = c.batch * c.seq;
  const int64_t hl = s.local_heads(), kvl = s.local_kv_heads();
  if (c.extra_stride > 0) {
    const int64_t width = (hl + 2 * kvl) * D + c.extra_stride;
    s.q_stride = width;
    s.kv_stride = width;
    p.qkv = RandomVector(tokens * width, seed);
    p.q_offset = 0;
    p.k_offset = hl * D;
    p.v_offset = (hl + kvl) * D;
  } else {
    p.qkv = RandomVector(tokens * (hl + 2 * kvl) * D, seed);
    p.q_offset = 0;
    p.k_offset = tokens * hl * D;
    p.v_offset = tokens * (hl + kvl) * D;
  }
  for (float& x : p.qkv) x = ToFloat(ToBf16(x));  // the values a bf16 tensor holds
  p.shape = s;
  p.out_size = tokens * hl * D;
  p.lse_size = c.batch * hl * c.seq;
  p.dout = RandomVector(p.out_size, seed + 1);
  for (float& x : p.dout) x = ToFloat(ToBf16(x));

  p.args.batch = c.batch;
  p.args.seq = c.seq;
  p.args.local_heads = hl;
  p.args.local_kv_heads = kvl;
  p.args.head_begin = c.head_begin;
  p.args.group_size = s.group_size();
  p.args.kv_begin = s.kv_begin();
  p.args.q_stride = s.q_token_stride();
  p.args.kv_stride = s.kv_token_stride();
  p.args.scale = 1.0f / std::sqrt(static_cast<float>(D));
  p.args.scale_log2 = p.args.scale * kLog2e;

  const std::vector<double> qkv = ToDouble(p.qkv);
  p.out.assign(p.out_size, 0.0);
  p.lse.assign(p.lse_size, 0.0);
  p.dq.assign(qkv.size(), 0.0);
  p.dk.assign(qkv.size(), 0.0);
  p.dv.assign(qkv.size(), 0.0);
  reference::AttentionForward<double>(s, qkv.data() + p.q_offset, qkv.data() + p.k_offset,
                                      qkv.data() + p.v_offset, p.out.data(), p.lse.data());
  const std::vector<double> dout = ToDouble(p.dout);
  reference::AttentionBackward<double>(
      s, qkv.data() + p.q_offset, qkv.data() + p.k_offset, qkv.data() + p.v_offset, dout.data(),
      p.dq.data() + p.q_offset, p.dk.data() + p.k_offset, p.dv.data() + p.v_offset);
  return p;
}

// The elements of a [B, T, heads, D] slice at `offset`/`stride` in a flat buffer.
template <typename T>
std::vector<double> Gather(const std::vector<T>& buffer, int64_t offset, int64_t stride,
                           int64_t tokens, int64_t width) {
  std::vector<double> out;
  for (int64_t t = 0; t < tokens; ++t) {
    for (int64_t i = 0; i < width; ++i) {
      out.push_back(static_cast<double>(buffer[offset + t * stride + i]));
    }
  }
  return out;
}

template <int kD>
void RunCase(const Case& c, CopyMode mode) {
  SCOPED_TRACE(absl::StrCat(
      Describe(c), mode == CopyMode::kAtWait ? " cp.async at wait" : " cp.async at issue"));
  const Problem p = MakeProblem(c, 7);
  const FlashArgs& a = p.args;
  const int64_t tokens = c.batch * c.seq;
  const std::vector<bf16> qkv = ToBf16Vector(p.qkv), dout = ToBf16Vector(p.dout);
  const bf16* q = qkv.data() + p.q_offset;
  const bf16* k = qkv.data() + p.k_offset;
  const bf16* v = qkv.data() + p.v_offset;

  // Forward.
  constexpr int kWarps = 8;
  using Forward = ForwardConfig<kD, kWarps>;
  std::vector<bf16> out(p.out_size, ToBf16(NAN));
  std::vector<float> lse(p.lse_size, NAN);
  const int q_tiles = static_cast<int>((c.seq + Forward::kBlockM - 1) / Forward::kBlockM);
  std::vector<std::string> errors = emulator::RunGrid(
      q_tiles, static_cast<int>(c.batch * a.local_heads), Forward::kThreads, Forward::kSmemBytes,
      mode, [&](int bx, int by, char* smem) {
        ForwardBlock<kD, kWarps>(a, q, k, v, out.data(), lse.data(), bx, by, q_tiles, smem);
      });
  EXPECT_TRUE(errors.empty()) << absl::StrJoin(errors, "\n");
  const double out_error = RelativeError(ToFloatVector(out), p.out);
  const double lse_error = RelativeError(lse, p.lse);
  EXPECT_LT(out_error, 1e-2);
  EXPECT_LT(RelativeL2Error(ToFloatVector(out), p.out), 5e-3);
  EXPECT_LT(lse_error, 1e-4);

  // Backward: delta, the main kernel, the dq conversion. Gradients start as NaN: every element
  // the call owns must be written (and only those: the rest of a fused buffer stays NaN).
  std::vector<float> delta(p.lse_size, NAN);
  std::vector<float> dq_accum(tokens * a.local_heads * kD, 0.0f);
  std::vector<bf16> grads(qkv.size(), ToBf16(NAN));
  bf16* dq = grads.data() + p.q_offset;
  bf16* dk = grads.data() + p.k_offset;
  bf16* dv = grads.data() + p.v_offset;
  const int64_t rows = c.batch * a.local_heads * c.seq;
  constexpr int kDeltaWarps = 4;
  errors =
      emulator::RunGrid(static_cast<int>((rows + kDeltaWarps - 1) / kDeltaWarps), 1,
                        32 * kDeltaWarps, 16, mode, [&](int bx, int, char*) {
                          DeltaBlock<kD>(a, out.data(), dout.data(), delta.data(), bx, kDeltaWarps);
                        });
  EXPECT_TRUE(errors.empty()) << absl::StrJoin(errors, "\n");
  using Backward = BackwardConfig<kD>;
  const int kv_tiles = static_cast<int>((c.seq + kBlockN - 1) / kBlockN);
  errors =
      emulator::RunGrid(kv_tiles, static_cast<int>(c.batch * a.local_kv_heads), Backward::kThreads,
                        Backward::kSmemBytes, mode, [&](int bx, int by, char* smem) {
                          BackwardBlock<kD>(a, q, k, v, lse.data(), delta.data(), dout.data(),
                                            dq_accum.data(), dk, dv, bx, by, smem);
                        });
  EXPECT_TRUE(errors.empty()) << absl::StrJoin(errors, "\n");
  constexpr int kConvertThreads = 64;
  const int64_t items = rows * (kD / 8);
  errors = emulator::RunGrid(static_cast<int>((items + kConvertThreads - 1) / kConvertThreads), 1,
                             kConvertThreads, 16, mode, [&](int bx, int, char*) {
                               ConvertDqBlock<kD>(a, dq_accum.data(), dq, bx, kConvertThreads);
                             });
  EXPECT_TRUE(errors.empty()) << absl::StrJoin(errors, "\n");

  const int64_t hl = a.local_heads, kvl = a.local_kv_heads;
  const auto got_dq = Gather(ToFloatVector(grads), p.q_offset, a.q_stride, tokens, hl * kD);
  const auto got_dk = Gather(ToFloatVector(grads), p.k_offset, a.kv_stride, tokens, kvl * kD);
  const auto got_dv = Gather(ToFloatVector(grads), p.v_offset, a.kv_stride, tokens, kvl * kD);
  const auto want_dq = Gather(p.dq, p.q_offset, a.q_stride, tokens, hl * kD);
  const auto want_dk = Gather(p.dk, p.k_offset, a.kv_stride, tokens, kvl * kD);
  const auto want_dv = Gather(p.dv, p.v_offset, a.kv_stride, tokens, kvl * kD);
  const double dq_error = RelativeError(got_dq, want_dq), dk_error = RelativeError(got_dk, want_dk),
               dv_error = RelativeError(got_dv, want_dv);
  EXPECT_LT(dq_error, 2e-2);
  EXPECT_LT(dk_error, 2e-2);
  EXPECT_LT(dv_error, 2e-2);
  EXPECT_LT(RelativeL2Error(got_dq, want_dq), 1e-2);
  EXPECT_LT(RelativeL2Error(got_dk, want_dk), 1e-2);
  EXPECT_LT(RelativeL2Error(got_dv, want_dv), 1e-2);
  // Elements of a fused buffer outside q, k and v stay untouched (NaN).
  if (c.extra_stride > 0) {
    const int64_t width = a.q_stride, used = (hl + 2 * kvl) * kD;
    for (int64_t t = 0; t < tokens; ++t) {
      for (int64_t i = used; i < width; ++i) {
        ASSERT_TRUE(std::isnan(ToFloat(grads[t * width + i]))) << "token " << t << " element " << i;
      }
    }
  }
  // The max-norm errors, for the record (the CUDA tests' bounds are set from these).
  std::printf("%-60s out %.2e lse %.2e dq %.2e dk %.2e dv %.2e\n", Describe(c).c_str(), out_error,
              lse_error, dq_error, dk_error, dv_error);
}

TEST(AttentionFlashEmulationTest, HeadDim64) {
  for (CopyMode mode : {CopyMode::kAtWait, CopyMode::kAtIssue}) {
    RunCase<64>(Case{1, 70, 4, 2, 64, 0, 4, 0}, mode);   // GQA 2:1, partial second key tile
    RunCase<64>(Case{2, 130, 2, 1, 64, 0, 2, 0}, mode);  // two query tiles, three key tiles
  }
}

TEST(AttentionFlashEmulationTest, HeadDim64LocalHeadsInFusedBuffer) {
  for (CopyMode mode : {CopyMode::kAtWait, CopyMode::kAtIssue}) {
    RunCase<64>(Case{1, 37, 4, 2, 64, 1, 3, 8}, mode);  // heads [1, 3) of 4 read kv heads 0, 1
    RunCase<64>(Case{1, 1, 2, 1, 64, 0, 2, 0}, mode);   // one token
  }
}

TEST(AttentionFlashEmulationTest, HeadDim128) {
  for (CopyMode mode : {CopyMode::kAtWait, CopyMode::kAtIssue}) {
    RunCase<128>(Case{1, 33, 3, 3, 128, 0, 3, 0}, mode);    // multi-head
    RunCase<128>(Case{1, 140, 4, 1, 128, 0, 4, 16}, mode);  // multi-query, fused, 3 key tiles
  }
}

}  // namespace
}  // namespace cairn::runtime::cuda::flash
