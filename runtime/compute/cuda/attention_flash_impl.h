// runtime/compute/cuda/attention_flash_impl.h — the bodies of the FlashAttention-2-style kernels
// (private to runtime/compute/cuda). attention_flash.cu wraps them in __global__ kernels;
// attention_flash_emulation_test.cc runs the very same code on the CPU through
// flash_primitives.h's emulator. Read attention_simple.cu first: it computes the same function
// with plain fp32 loops.
//
// Shapes: head dim kD in {64, 128}; key tiles of kBlockN = 64; the forward's query tile is
// 16 x kWarps rows (one 16-row mma strip per warp), the backward's 64 keys per block (16 per warp)
// against query tiles of 64. Tiles are bf16 in shared memory, rows of kD elements, 16-byte chunks
// XOR-swizzled by (row % 8) so that the 8 row addresses of every ldmatrix hit 8 different bank
// groups (Swizzled below).
//
// Forward (one block per (query tile, batch x local head); heavy tiles first):
//   Q tile -> registers (A fragments) once; K, V tiles double-buffered with cp.async;
//   per key tile: S = Q K^T (mma), scaled by scale x log2(e), causal mask on tiles that cross the
//   diagonal, online softmax in base 2 (running max m and sum l per row, the 4 threads of a quad
//   holding one row combine their maxima with two shuffles), P rounded to bf16 and reused in
//   registers as the A operand of O += P V (the C-fragment layout of two n-tiles is the A-fragment
//   layout of one k-step).
//   End: O / l through shared memory to out (16-byte stores); lse = (m + log2 l) ln 2.
// Backward (one block per (key tile of 64, batch x local kv head)):
//   K, V tiles stay in shared memory; dK, dV accumulate in registers over every query head of the
//   group and every query tile from the diagonal on (deterministic order); per query tile, with
//   Q, dO (double-buffered), lse and delta = rowsum(dO o O) (DeltaBlock, a pre-pass):
//     S^T = K Q^T, P^T = exp2(S^T scale log2e - lse log2e) (causal mask on the diagonal tile),
//     dP^T = V dO^T, dS^T = P^T (dP^T - delta), dV += P^T dO, dK += dS^T Q,
//     dS^T -> shared memory, dQ += dS K (scale folded in) by fp32 atomics into dq_accum.
//   End: dK x scale and dV through shared memory to dk, dv (strided); ConvertDqBlock turns
//   dq_accum into bf16 dq (strided) afterwards.
#ifndef CAIRN_RUNTIME_COMPUTE_CUDA_ATTENTION_FLASH_IMPL_H_
#define CAIRN_RUNTIME_COMPUTE_CUDA_ATTENTION_FLASH_IMPL_H_

#include <cstdint>

#include "runtime/compute/cuda/flash_primitives.h"

namespace cairn::runtime::cuda::flash {

constexpr int kBlockN = 64;     // keys per tile (forward) / per block (backward)
constexpr int kBwdBlockM = 64;  // queries per backward tile
constexpr int kBwdWarps = 4;    // backward: 16 keys per warp
constexpr float kLog2e = 1.4426950408889634f;
constexpr float kLn2 = 0.6931471805599453f;

// One call's geometry (kernels.h AttentionArgs without CUDA types).
struct FlashArgs {
  int64_t batch, seq;
  int64_t local_heads, local_kv_heads;
  int64_t head_begin, group_size, kv_begin;
  int64_t q_stride, kv_stride;  // elements between tokens; out/dout use local_heads x kD
  float scale;                  // 1 / sqrt(kD)
  float scale_log2;             // scale x log2(e)
};

FLASH_INLINE int64_t KvHead(const FlashArgs& a, int64_t local_head) {
  return (a.head_begin + local_head) / a.group_size - a.kv_begin;
}

// Byte offset of element (row, col) in a swizzled tile of kCols bf16 per row.
template <int kCols>
FLASH_INLINE int Swizzled(int row, int col) {
  return row * (kCols * 2) + ((((col >> 3) ^ (row & 7))) << 4) + ((col & 7) << 1);
}

// cp.async of rows [row0, row0 + kRows) of a [T, kCols] slice (token stride `stride` elements)
// into a swizzled tile; rows >= end are zero-filled.
template <int kCols, int kRows, int kThreads>
FLASH_INLINE void LoadTile(char* tile, const bf16* base, int64_t row0, int64_t end,
                           int64_t stride) {
  constexpr int kChunks = kCols / 8;
  for (int c = ThreadIndex(); c < kRows * kChunks; c += kThreads) {
    const int r = c / kChunks, chunk = c - r * kChunks;
    const int64_t row = row0 + r;
    const bool valid = row < end;
    const bf16* src = valid ? base + row * stride + chunk * 8 : base;
    CpAsync16(tile + Swizzled<kCols>(r, chunk * 8), src, valid);
  }
}

// A fragment (16 x 16) at (row0, col0) of a row-major swizzled tile.
template <int kCols>
FLASH_INLINE void LoadA(uint32_t (&a)[4], const char* tile, int row0, int col0) {
  const int lane = ThreadIndex() & 31;
  LdMatrixX4(a, tile + Swizzled<kCols>(row0 + (lane & 15), col0 + (lane >> 4) * 8));
}

// A fragment of A[m][k] = tile[k][m] (the tile holds A transposed), at (m0, k0).
template <int kCols>
FLASH_INLINE void LoadATransposed(uint32_t (&a)[4], const char* tile, int m0, int k0) {
  const int lane = ThreadIndex() & 31;
  LdMatrixX4Trans(
      a, tile + Swizzled<kCols>(k0 + (lane & 7) + (lane >> 4) * 8, m0 + ((lane >> 3) & 1) * 8));
}

// B fragments of two n-tiles (n0 and n0 + 8, k-step at k0) from a tile stored [n][k] (e.g. K for
// S = Q K^T): b[0], b[1] for n0; b[2], b[3] for n0 + 8.
template <int kCols>
FLASH_INLINE void LoadBFromNK(uint32_t (&b)[4], const char* tile, int n0, int k0) {
  const int lane = ThreadIndex() & 31;
  LdMatrixX4(b,
             tile + Swizzled<kCols>(n0 + (lane & 7) + (lane >> 4) * 8, k0 + ((lane >> 3) & 1) * 8));
}

// The same from a tile stored [k][n] (e.g. V for O = P V).
template <int kCols>
FLASH_INLINE void LoadBFromKN(uint32_t (&b)[4], const char* tile, int k0, int n0) {
  const int lane = ThreadIndex() & 31;
  LdMatrixX4Trans(
      b, tile + Swizzled<kCols>(k0 + (lane & 7) + ((lane >> 3) & 1) * 8, n0 + (lane >> 4) * 8));
}

// The A fragment of k-step kc built from C fragments (n-tiles 2 kc and 2 kc + 1), rounded to bf16.
template <int kTiles>
FLASH_INLINE void AFromC(uint32_t (&a)[4], const float (&c)[kTiles][4], int kc) {
  a[0] = PackBf16(c[2 * kc][0], c[2 * kc][1]);
  a[1] = PackBf16(c[2 * kc][2], c[2 * kc][3]);
  a[2] = PackBf16(c[2 * kc + 1][0], c[2 * kc + 1][1]);
  a[3] = PackBf16(c[2 * kc + 1][2], c[2 * kc + 1][3]);
}

FLASH_INLINE float QuadMax(float v) {
  v = fmaxf(v, ShflXor(v, 1));
  return fmaxf(v, ShflXor(v, 2));
}
FLASH_INLINE float QuadSum(float v) {
  v += ShflXor(v, 1);
  return v + ShflXor(v, 2);
}

// ---- Forward
// --------------------------------------------------------------------------------------

template <int kD, int kWarps>
struct ForwardConfig {
  static constexpr int kBlockM = 16 * kWarps;
  static constexpr int kThreads = 32 * kWarps;
  static constexpr int kQBytes = kBlockM * kD * 2;
  static constexpr int kKVBytes = kBlockN * kD * 2;
  static constexpr int kSmemBytes = kQBytes + 4 * kKVBytes;  // Q, K x 2 stages, V x 2 stages
};

template <int kD, int kWarps>
FLASH_INLINE void ForwardBlock(const FlashArgs& a, const bf16* q, const bf16* k, const bf16* v,
                               bf16* out, float* lse, int block_x, int block_y, int grid_x,
                               char* smem) {
  using Config = ForwardConfig<kD, kWarps>;
  constexpr int kBlockM = Config::kBlockM, kThreads = Config::kThreads;
  constexpr int kNTiles = kBlockN / 8;  // n-tiles of S
  constexpr int kDTiles = kD / 8;       // n-tiles of O
  constexpr int kKSteps = kD / 16;      // k-steps of Q K^T
  const int tid = ThreadIndex(), lane = tid & 31, warp = tid >> 5;
  const int g = lane >> 2, c = lane & 3;
  const int64_t T = a.seq, Hl = a.local_heads;
  const int64_t q0 = static_cast<int64_t>(grid_x - 1 - block_x) * kBlockM;  // heavy tiles first
  const int64_t b = block_y / Hl, h = block_y % Hl, kvh = KvHead(a, h);
  const bf16* q_base = q + b * T * a.q_stride + h * kD;
  const bf16* k_base = k + b * T * a.kv_stride + kvh * kD;
  const bf16* v_base = v + b * T * a.kv_stride + kvh * kD;
  char* q_tile = smem;
  char* k_tiles = smem + Config::kQBytes;
  char* v_tiles = k_tiles + 2 * Config::kKVBytes;
  const int64_t key_end = T < q0 + kBlockM ? T : q0 + kBlockM;  // keys any row of the tile sees
  const int tiles = static_cast<int>((key_end + kBlockN - 1) / kBlockN);

  LoadTile<kD, kBlockM, kThreads>(q_tile, q_base, q0, T, a.q_stride);
  LoadTile<kD, kBlockN, kThreads>(k_tiles, k_base, 0, T, a.kv_stride);
  LoadTile<kD, kBlockN, kThreads>(v_tiles, v_base, 0, T, a.kv_stride);
  CpAsyncCommit();

  const int row_a = warp * 16 + g;  // this thread's rows in the tile: row_a and row_a + 8
  const int64_t query_a = q0 + row_a, query_b = query_a + 8;
  uint32_t qf[kKSteps][4];
  float o[kDTiles][4];
  FLASH_UNROLL
  for (int i = 0; i < kDTiles; ++i) o[i][0] = o[i][1] = o[i][2] = o[i][3] = 0.0f;
  float m[2] = {-INFINITY, -INFINITY}, l[2] = {0.0f, 0.0f};

  for (int t = 0; t < tiles; ++t) {
    const int stage = t & 1;
    if (t + 1 < tiles) {
      // The other stage was last read in iteration t - 1, which ended with a barrier.
      LoadTile<kD, kBlockN, kThreads>(k_tiles + (stage ^ 1) * Config::kKVBytes, k_base,
                                      static_cast<int64_t>(t + 1) * kBlockN, T, a.kv_stride);
      LoadTile<kD, kBlockN, kThreads>(v_tiles + (stage ^ 1) * Config::kKVBytes, v_base,
                                      static_cast<int64_t>(t + 1) * kBlockN, T, a.kv_stride);
      CpAsyncCommit();
      CpAsyncWait<1>();  // everything but the prefetch: Q and tile t
    } else {
      CpAsyncWait<0>();
    }
    SyncThreads();
    if (t == 0) {
      FLASH_UNROLL
      for (int kk = 0; kk < kKSteps; ++kk) LoadA<kD>(qf[kk], q_tile, warp * 16, kk * 16);
    }
    const char* k_tile = k_tiles + stage * Config::kKVBytes;
    const char* v_tile = v_tiles + stage * Config::kKVBytes;

    // S = Q K^T for this warp's 16 rows and the tile's 64 keys.
    float s[kNTiles][4];
    FLASH_UNROLL
    for (int i = 0; i < kNTiles; ++i) s[i][0] = s[i][1] = s[i][2] = s[i][3] = 0.0f;
    FLASH_UNROLL
    for (int kk = 0; kk < kKSteps; ++kk) {
      FLASH_UNROLL
      for (int np = 0; np < kNTiles / 2; ++np) {
        uint32_t bfrag[4];
        LoadBFromNK<kD>(bfrag, k_tile, np * 16, kk * 16);
        Mma(s[2 * np], qf[kk], bfrag[0], bfrag[1]);
        Mma(s[2 * np + 1], qf[kk], bfrag[2], bfrag[3]);
      }
    }

    // Scale into base 2; mask keys after the query on tiles that reach past the tile's first row.
    const int64_t key0 = static_cast<int64_t>(t) * kBlockN;
    const bool masked = key0 + kBlockN - 1 > q0;
    float tile_max[2] = {-INFINITY, -INFINITY};
    FLASH_UNROLL
    for (int nt = 0; nt < kNTiles; ++nt) {
      FLASH_UNROLL
      for (int e = 0; e < 4; ++e) {
        const int64_t key = key0 + nt * 8 + 2 * c + (e & 1);
        const int64_t query = e < 2 ? query_a : query_b;
        const float x = (masked && key > query) ? -INFINITY : s[nt][e] * a.scale_log2;
        s[nt][e] = x;
        tile_max[e >> 1] = fmaxf(tile_max[e >> 1], x);
      }
    }
    float correction[2], m_used[2];
    FLASH_UNROLL
    for (int r = 0; r < 2; ++r) {
      const float m_new = fmaxf(m[r], QuadMax(tile_max[r]));
      // A row with no visible key so far keeps m = -inf; exponentiate against 0 instead
      // (exp2(-inf) = 0), never -inf - -inf.
      m_used[r] = m_new == -INFINITY ? 0.0f : m_new;
      correction[r] = Exp2(m[r] - m_used[r]);
      m[r] = m_new;
    }
    float row_sum[2] = {0.0f, 0.0f};
    FLASH_UNROLL
    for (int nt = 0; nt < kNTiles; ++nt) {
      FLASH_UNROLL
      for (int e = 0; e < 4; ++e) {
        const float p = Exp2(s[nt][e] - m_used[e >> 1]);
        s[nt][e] = p;
        row_sum[e >> 1] += p;
      }
    }
    FLASH_UNROLL
    for (int r = 0; r < 2; ++r) l[r] = l[r] * correction[r] + row_sum[r];  // quad sum at the end
    FLASH_UNROLL
    for (int dt = 0; dt < kDTiles; ++dt) {
      o[dt][0] *= correction[0];
      o[dt][1] *= correction[0];
      o[dt][2] *= correction[1];
      o[dt][3] *= correction[1];
    }

    // O += P V.
    FLASH_UNROLL
    for (int kc = 0; kc < kBlockN / 16; ++kc) {
      uint32_t pa[4];
      AFromC<kNTiles>(pa, s, kc);
      FLASH_UNROLL
      for (int dp = 0; dp < kDTiles / 2; ++dp) {
        uint32_t bfrag[4];
        LoadBFromKN<kD>(bfrag, v_tile, kc * 16, dp * 16);
        Mma(o[2 * dp], pa, bfrag[0], bfrag[1]);
        Mma(o[2 * dp + 1], pa, bfrag[2], bfrag[3]);
      }
    }
    SyncThreads();  // this stage is consumed before the next iteration's prefetch refills it
  }

  // O / l into the Q tile (free: its fragments are in registers), then 16-byte stores to out.
  float inv_l[2];
  FLASH_UNROLL
  for (int r = 0; r < 2; ++r) {
    l[r] = QuadSum(l[r]);
    inv_l[r] = 1.0f / l[r];
  }
  FLASH_UNROLL
  for (int dt = 0; dt < kDTiles; ++dt) {
    StoreShared32(q_tile + Swizzled<kD>(row_a, dt * 8 + 2 * c),
                  PackBf16(o[dt][0] * inv_l[0], o[dt][1] * inv_l[0]));
    StoreShared32(q_tile + Swizzled<kD>(row_a + 8, dt * 8 + 2 * c),
                  PackBf16(o[dt][2] * inv_l[1], o[dt][3] * inv_l[1]));
  }
  if (c == 0) {
    float* lse_row = lse + (b * Hl + h) * T;
    if (query_a < T) lse_row[query_a] = (m[0] + Log2(l[0])) * kLn2;
    if (query_b < T) lse_row[query_b] = (m[1] + Log2(l[1])) * kLn2;
  }
  SyncThreads();
  constexpr int kChunks = kD / 8;
  for (int i = tid; i < kBlockM * kChunks; i += kThreads) {
    const int r = i / kChunks, chunk = i - r * kChunks;
    const int64_t query = q0 + r;
    if (query < T) {
      StoreGlobal16(out + ((b * T + query) * Hl + h) * kD + chunk * 8,
                    LoadShared16(q_tile + Swizzled<kD>(r, chunk * 8)));
    }
  }
}

// ---- Backward
// -------------------------------------------------------------------------------------

// delta[b, h, i] = sum_d dout[b, i, h, d] out[b, i, h, d]: one warp per row, 8 elements per lane
// (16-byte loads; out and dout are contiguous [B, T, local_heads, kD]).
template <int kD>
FLASH_INLINE void DeltaBlock(const FlashArgs& a, const bf16* out, const bf16* dout, float* delta,
                             int block_x, int warps_per_block) {
  const int lane = ThreadIndex() & 31, warp = ThreadIndex() >> 5;
  const int64_t row = static_cast<int64_t>(block_x) * warps_per_block + warp;  // (b Hl + h) T + i
  const int64_t rows = a.batch * a.local_heads * a.seq;
  if (row >= rows) return;  // warp-uniform; this kernel has no barrier
  const int64_t i = row % a.seq, bh = row / a.seq;
  const int64_t b = bh / a.local_heads, h = bh % a.local_heads;
  const int64_t offset = ((b * a.seq + i) * a.local_heads + h) * kD;
  float sum = 0.0f;
  for (int chunk = lane; chunk < kD / 8; chunk += 32) {
    const Vec16 o16 = LoadGlobal16(out + offset + chunk * 8);
    const Vec16 d16 = LoadGlobal16(dout + offset + chunk * 8);
    const uint32_t ow[4] = {o16.x, o16.y, o16.z, o16.w}, dw[4] = {d16.x, d16.y, d16.z, d16.w};
    FLASH_UNROLL
    for (int e = 0; e < 4; ++e) {
      const float2 of = UnpackBf16(ow[e]), df = UnpackBf16(dw[e]);
      sum += of.x * df.x + of.y * df.y;
    }
  }
  FLASH_UNROLL
  for (int mask = 16; mask > 0; mask >>= 1) sum += ShflXor(sum, mask);
  if (lane == 0) delta[row] = sum;
}

// dq (strided like q) = dq_accum ([B, T, local_heads, kD] fp32), 8 elements per thread.
template <int kD>
FLASH_INLINE void ConvertDqBlock(const FlashArgs& a, const float* dq_accum, bf16* dq, int block_x,
                                 int threads) {
  constexpr int kChunks = kD / 8;
  const int64_t item = static_cast<int64_t>(block_x) * threads + ThreadIndex();
  const int64_t rows = a.batch * a.seq * a.local_heads;  // (b T + i) Hl + h
  if (item >= rows * kChunks) return;
  const int64_t row = item / kChunks, chunk = item - row * kChunks;
  const int64_t h = row % a.local_heads, token = row / a.local_heads;  // token = b T + i
  const float* src = dq_accum + row * kD + chunk * 8;
  Vec16 packed;
  packed.x = PackBf16(src[0], src[1]);
  packed.y = PackBf16(src[2], src[3]);
  packed.z = PackBf16(src[4], src[5]);
  packed.w = PackBf16(src[6], src[7]);
  StoreGlobal16(dq + token * a.q_stride + h * kD + chunk * 8, packed);
}

template <int kD>
struct BackwardConfig {
  static constexpr int kThreads = 32 * kBwdWarps;
  static constexpr int kKVBytes = kBlockN * kD * 2;
  static constexpr int kQBytes = kBwdBlockM * kD * 2;
  static constexpr int kDsBytes = kBlockN * kBwdBlockM * 2;  // dS^T [key][query] bf16
  // K, V, Q x 2 stages, dO x 2 stages, dS^T, then lse and delta x 2 stages (fp32).
  static constexpr int kKOffset = 0;
  static constexpr int kVOffset = kKVBytes;
  static constexpr int kQOffset = 2 * kKVBytes;
  static constexpr int kDoOffset = kQOffset + 2 * kQBytes;
  static constexpr int kDsOffset = kDoOffset + 2 * kQBytes;
  static constexpr int kLseOffset = kDsOffset + kDsBytes;
  static constexpr int kDeltaOffset = kLseOffset + 2 * kBwdBlockM * 4;
  static constexpr int kSmemBytes = kDeltaOffset + 2 * kBwdBlockM * 4;
};

template <int kD>
FLASH_INLINE void BackwardBlock(const FlashArgs& a, const bf16* q, const bf16* k, const bf16* v,
                                const float* lse, const float* delta, const bf16* dout,
                                float* dq_accum, bf16* dk, bf16* dv, int block_x, int block_y,
                                char* smem) {
  using Config = BackwardConfig<kD>;
  constexpr int kThreads = Config::kThreads;
  constexpr int kNTiles = kBwdBlockM / 8;  // query n-tiles of S^T
  constexpr int kDTiles = kD / 8;
  constexpr int kKSteps = kD / 16;
  const int tid = ThreadIndex(), lane = tid & 31, warp = tid >> 5;
  const int g = lane >> 2, c = lane & 3;
  const int64_t T = a.seq, Hl = a.local_heads, KVl = a.local_kv_heads;
  const int64_t key0 = static_cast<int64_t>(block_x) * kBlockN;
  const int64_t b = block_y / KVl, kvh = block_y % KVl;
  char* k_tile = smem + Config::kKOffset;
  char* v_tile = smem + Config::kVOffset;
  char* q_tiles = smem + Config::kQOffset;
  char* do_tiles = smem + Config::kDoOffset;
  char* ds_tile = smem + Config::kDsOffset;
  float* lse_tiles = reinterpret_cast<float*>(smem + Config::kLseOffset);
  float* delta_tiles = reinterpret_cast<float*>(smem + Config::kDeltaOffset);

  // The local query heads reading kv head kvh: global [(kv_begin + kvh) G, + G) in the local range.
  const int64_t first_head = (a.kv_begin + kvh) * a.group_size - a.head_begin;
  const int64_t h_begin = first_head > 0 ? first_head : 0;
  const int64_t h_end = first_head + a.group_size < Hl ? first_head + a.group_size : Hl;
  // Query tiles from the one holding key0 (queries before it see none of these keys).
  const int64_t qt_begin = key0 / kBwdBlockM;
  const int64_t qt_count = (T + kBwdBlockM - 1) / kBwdBlockM - qt_begin;
  const int64_t iterations = (h_end - h_begin) * qt_count;

  const bf16* k_base = k + b * T * a.kv_stride + kvh * kD;
  const bf16* v_base = v + b * T * a.kv_stride + kvh * kD;
  LoadTile<kD, kBlockN, kThreads>(k_tile, k_base, key0, T, a.kv_stride);
  LoadTile<kD, kBlockN, kThreads>(v_tile, v_base, key0, T, a.kv_stride);

  // Stages Q, dO (cp.async) and lse x log2(e), delta (plain stores; +inf and 0 past the end, so
  // that padded queries get P = 0) of iteration `it`.
  auto prefetch = [&](int64_t it, int stage) {
    const int64_t h = h_begin + it / qt_count;
    const int64_t q0 = (qt_begin + it % qt_count) * kBwdBlockM;
    LoadTile<kD, kBwdBlockM, kThreads>(q_tiles + stage * Config::kQBytes,
                                       q + b * T * a.q_stride + h * kD, q0, T, a.q_stride);
    LoadTile<kD, kBwdBlockM, kThreads>(do_tiles + stage * Config::kQBytes,
                                       dout + (b * T * Hl + h) * kD, q0, T, Hl * kD);
    for (int i = tid; i < kBwdBlockM; i += kThreads) {
      const int64_t query = q0 + i;
      const int64_t at = (b * Hl + h) * T + query;
      StoreSharedFloat(lse_tiles + stage * kBwdBlockM + i, query < T ? lse[at] * kLog2e : INFINITY);
      StoreSharedFloat(delta_tiles + stage * kBwdBlockM + i, query < T ? delta[at] : 0.0f);
    }
  };
  if (iterations > 0) prefetch(0, 0);
  CpAsyncCommit();

  float dk_acc[kDTiles][4], dv_acc[kDTiles][4];
  FLASH_UNROLL
  for (int i = 0; i < kDTiles; ++i) {
    FLASH_UNROLL
    for (int e = 0; e < 4; ++e) dk_acc[i][e] = dv_acc[i][e] = 0.0f;
  }
  const int64_t key_a = key0 + warp * 16 + g, key_b = key_a + 8;  // this thread's keys

  for (int64_t it = 0; it < iterations; ++it) {
    const int stage = static_cast<int>(it & 1);
    if (it + 1 < iterations) {
      prefetch(it + 1, stage ^ 1);  // that stage was released by the barrier ending it - 1
      CpAsyncCommit();
      CpAsyncWait<1>();
    } else {
      CpAsyncWait<0>();
    }
    SyncThreads();
    const int64_t h = h_begin + it / qt_count;
    const int64_t q0 = (qt_begin + it % qt_count) * kBwdBlockM;
    const char* q_tile = q_tiles + stage * Config::kQBytes;
    const char* do_tile = do_tiles + stage * Config::kQBytes;
    const float* lse_tile = lse_tiles + stage * kBwdBlockM;
    const float* delta_tile = delta_tiles + stage * kBwdBlockM;

    // S^T = K Q^T and dP^T = V dO^T for this warp's 16 keys and the tile's 64 queries.
    float st[kNTiles][4], dpt[kNTiles][4];
    FLASH_UNROLL
    for (int i = 0; i < kNTiles; ++i) {
      FLASH_UNROLL
      for (int e = 0; e < 4; ++e) st[i][e] = dpt[i][e] = 0.0f;
    }
    FLASH_UNROLL
    for (int kk = 0; kk < kKSteps; ++kk) {
      uint32_t ka[4], va[4];
      LoadA<kD>(ka, k_tile, warp * 16, kk * 16);
      LoadA<kD>(va, v_tile, warp * 16, kk * 16);
      FLASH_UNROLL
      for (int np = 0; np < kNTiles / 2; ++np) {
        uint32_t bq[4], bd[4];
        LoadBFromNK<kD>(bq, q_tile, np * 16, kk * 16);
        Mma(st[2 * np], ka, bq[0], bq[1]);
        Mma(st[2 * np + 1], ka, bq[2], bq[3]);
        LoadBFromNK<kD>(bd, do_tile, np * 16, kk * 16);
        Mma(dpt[2 * np], va, bd[0], bd[1]);
        Mma(dpt[2 * np + 1], va, bd[2], bd[3]);
      }
    }

    // P^T (masked: query < key on the diagonal tile) and dS^T = P^T (dP^T - delta).
    const bool diagonal = q0 < key0 + kBlockN;
    FLASH_UNROLL
    for (int nt = 0; nt < kNTiles; ++nt) {
      FLASH_UNROLL
      for (int e = 0; e < 4; ++e) {
        const int col = nt * 8 + 2 * c + (e & 1);
        const int64_t key = e < 2 ? key_a : key_b;
        float p = Exp2(st[nt][e] * a.scale_log2 - LoadSharedFloat(lse_tile + col));
        if (diagonal && q0 + col < key) p = 0.0f;
        st[nt][e] = p;
        dpt[nt][e] = p * (dpt[nt][e] - LoadSharedFloat(delta_tile + col));
      }
    }

    // dV += P^T dO and dK += dS^T Q (k-steps over the tile's queries).
    FLASH_UNROLL
    for (int kc = 0; kc < kBwdBlockM / 16; ++kc) {
      uint32_t pa[4], dsa[4];
      AFromC<kNTiles>(pa, st, kc);
      AFromC<kNTiles>(dsa, dpt, kc);
      FLASH_UNROLL
      for (int dp = 0; dp < kDTiles / 2; ++dp) {
        uint32_t bd[4], bq[4];
        LoadBFromKN<kD>(bd, do_tile, kc * 16, dp * 16);
        Mma(dv_acc[2 * dp], pa, bd[0], bd[1]);
        Mma(dv_acc[2 * dp + 1], pa, bd[2], bd[3]);
        LoadBFromKN<kD>(bq, q_tile, kc * 16, dp * 16);
        Mma(dk_acc[2 * dp], dsa, bq[0], bq[1]);
        Mma(dk_acc[2 * dp + 1], dsa, bq[2], bq[3]);
      }
    }

    // dS^T to shared memory ([key][query]), then dQ[q0 + 16 w .., :] += scale dS K.
    FLASH_UNROLL
    for (int nt = 0; nt < kNTiles; ++nt) {
      StoreShared32(ds_tile + Swizzled<kBwdBlockM>(warp * 16 + g, nt * 8 + 2 * c),
                    PackBf16(dpt[nt][0], dpt[nt][1]));
      StoreShared32(ds_tile + Swizzled<kBwdBlockM>(warp * 16 + g + 8, nt * 8 + 2 * c),
                    PackBf16(dpt[nt][2], dpt[nt][3]));
    }
    SyncThreads();
    const int64_t query_a = q0 + warp * 16 + g, query_b = query_a + 8;
    float* dq_a = dq_accum + ((b * T + query_a) * Hl + h) * kD;
    float* dq_b = dq_accum + ((b * T + query_b) * Hl + h) * kD;
    // In column halves of 64 (8 n-tiles) to bound the live accumulators.
    FLASH_UNROLL
    for (int half = 0; half < kD / 64; ++half) {
      float dq[8][4];
      FLASH_UNROLL
      for (int i = 0; i < 8; ++i) dq[i][0] = dq[i][1] = dq[i][2] = dq[i][3] = 0.0f;
      FLASH_UNROLL
      for (int kc = 0; kc < kBlockN / 16; ++kc) {
        uint32_t dsq[4];
        LoadATransposed<kBwdBlockM>(dsq, ds_tile, warp * 16, kc * 16);
        FLASH_UNROLL
        for (int dp = 0; dp < 4; ++dp) {
          uint32_t bk[4];
          LoadBFromKN<kD>(bk, k_tile, kc * 16, half * 64 + dp * 16);
          Mma(dq[2 * dp], dsq, bk[0], bk[1]);
          Mma(dq[2 * dp + 1], dsq, bk[2], bk[3]);
        }
      }
      FLASH_UNROLL
      for (int dt = 0; dt < 8; ++dt) {
        const int col = half * 64 + dt * 8 + 2 * c;
        if (query_a < T) {
          AtomicAddFloat(dq_a + col, dq[dt][0] * a.scale);
          AtomicAddFloat(dq_a + col + 1, dq[dt][1] * a.scale);
        }
        if (query_b < T) {
          AtomicAddFloat(dq_b + col, dq[dt][2] * a.scale);
          AtomicAddFloat(dq_b + col + 1, dq[dt][3] * a.scale);
        }
      }
    }
    SyncThreads();  // Q, dO, lse, delta of this stage and dS^T are consumed
  }
  if (iterations == 0) {
    CpAsyncWait<0>();
    SyncThreads();
  }

  // dK x scale and dV through the K and V tiles (free now) to dk, dv.
  FLASH_UNROLL
  for (int dt = 0; dt < kDTiles; ++dt) {
    const int col = dt * 8 + 2 * c;
    StoreShared32(k_tile + Swizzled<kD>(warp * 16 + g, col),
                  PackBf16(dk_acc[dt][0] * a.scale, dk_acc[dt][1] * a.scale));
    StoreShared32(k_tile + Swizzled<kD>(warp * 16 + g + 8, col),
                  PackBf16(dk_acc[dt][2] * a.scale, dk_acc[dt][3] * a.scale));
    StoreShared32(v_tile + Swizzled<kD>(warp * 16 + g, col),
                  PackBf16(dv_acc[dt][0], dv_acc[dt][1]));
    StoreShared32(v_tile + Swizzled<kD>(warp * 16 + g + 8, col),
                  PackBf16(dv_acc[dt][2], dv_acc[dt][3]));
  }
  SyncThreads();
  constexpr int kChunks = kD / 8;
  for (int i = tid; i < kBlockN * kChunks; i += kThreads) {
    const int r = i / kChunks, chunk = i - r * kChunks;
    const int64_t key = key0 + r;
    if (key < T) {
      const int64_t offset = (b * T + key) * a.kv_stride + kvh * kD + chunk * 8;
      StoreGlobal16(dk + offset, LoadShared16(k_tile + Swizzled<kD>(r, chunk * 8)));
      StoreGlobal16(dv + offset, LoadShared16(v_tile + Swizzled<kD>(r, chunk * 8)));
    }
  }
}

}  // namespace cairn::runtime::cuda::flash

#endif  // CAIRN_RUNTIME_COMPUTE_CUDA_ATTENTION_FLASH_IMPL_H_
