// cuda_backend_bench — speed of the CUDA backend on a GPU: every operation at the shapes of
// gpt2-124m, Llama-3-8B and Llama-2-7B, with achieved TFLOP/s (matmuls, attention) or GB/s
// (memory-bound operations) next to the ceilings measured in the same run (a device-to-device copy
// for bandwidth, an 8192^3 bf16 matmul through the same cuBLASLt path for arithmetic), and the
// simple attention kernels against the flash kernels.
//
//   cuda_backend_bench [--reps N] [--warmup N] [--json FILE] [--only SUBSTRING] [--quick]
//
// Timing: CUDA events around each call on the backend's stream; `warmup` untimed calls first, then
// the median (and minimum) of `reps` timed calls. Inputs are random normal values (never zeros),
// tiled from one host-generated block. Sizes are large enough that inputs do not stay in L2 (the
// smallest memory-bound tensors are 48 MiB).
//
// Conventions (docs/runtime.md, "CUDA backend"):
//   * matmul FLOPs 2 m n k per product; backward = da + db = 2 x forward;
//   * attention: the causal forward counts as 2 B H T^2 D FLOPs ("useful" work: half of the
//     4 B H T^2 D of the two full T x T products), the backward 2.5 x that (5 B H T^2 D);
//   * GB/s counts the bytes the operation must move at least (each input read once, each output
//     written once; accumulated outputs read and written), over the time; "% copy" divides by the
//     copy's rate measured in this run (bytes read + written).
// The last lines are one table; with --json the same rows are written to FILE.
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <functional>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "CLI/CLI.hpp"
#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/cli_app.h"
#include "common/logging.h"
#include "common/status_macros.h"
#include "runtime/compute/compute_backend.h"
#include "runtime/compute/cuda/cuda_backend.h"
#include "runtime/compute/cuda/cuda_stream.h"
#include "runtime/dtype.h"

namespace {

using cairn::runtime::AdamWConfig;
using cairn::runtime::AttentionShape;
using cairn::runtime::CrossEntropyShape;
using cairn::runtime::CudaBackend;
using cairn::runtime::CudaBackendOptions;
using cairn::runtime::EmbeddingShape;
using cairn::runtime::MatmulShape;
using cairn::runtime::NormShape;
using cairn::runtime::RopeShape;

#define BENCH_OK(expr)                                                 \
  do {                                                                 \
    const absl::Status bench_status_ = (expr);                         \
    CAIRN_CHECK(bench_status_.ok()) << #expr << ": " << bench_status_; \
  } while (0)
#define BENCH_CUDA(expr)                                                                           \
  do {                                                                                             \
    const cudaError_t bench_error_ = (expr);                                                       \
    CAIRN_CHECK(bench_error_ == cudaSuccess) << #expr << ": " << cudaGetErrorString(bench_error_); \
  } while (0)

struct Flags {
  int reps = 20;
  int warmup = 3;
  std::string json;
  std::string only;
  bool quick = false;  // fewer shapes (a smoke run)
};

struct Row {
  std::string group, op, shape, kernel;
  double median_ms = 0, min_ms = 0;
  double flops = 0;  // per call; 0 for memory-bound rows
  double bytes = 0;  // per call; 0 for compute rows
};

// ---- Device buffers filled with random values -----------------------------------------------

class Bench {
 public:
  Bench(const Flags& flags) : flags_(flags) {
    backend_ = Make(CudaBackendOptions());
    stream_ = cairn::runtime::CudaStreamOf(backend_->default_stream());
    BENCH_CUDA(cudaEventCreate(&start_));
    BENCH_CUDA(cudaEventCreate(&stop_));
    // One block of random values of each dtype, tiled into every buffer.
    std::mt19937 gen(1234);
    std::normal_distribution<float> normal(0.0f, 1.0f);
    pattern_f32_.resize(kPatternElements);
    pattern_bf16_.resize(kPatternElements);
    for (int64_t i = 0; i < kPatternElements; ++i) {
      pattern_f32_[i] = normal(gen);
      pattern_bf16_[i] = cairn::runtime::ToBFloat16(pattern_f32_[i]).bits;
    }
  }
  ~Bench() {
    cudaEventDestroy(start_);
    cudaEventDestroy(stop_);
  }

  static std::unique_ptr<CudaBackend> Make(const CudaBackendOptions& options) {
    auto backend = CudaBackend::Create(0, options);
    CAIRN_CHECK(backend.ok()) << backend.status();
    return std::move(*backend);
  }

  CudaBackend& be() { return *backend_; }
  const Flags& flags() const { return flags_; }
  std::vector<Row>& rows() { return rows_; }
  bool Selected(const std::string& name) const {
    return flags_.only.empty() || name.find(flags_.only) != std::string::npos;
  }

  // A device buffer of `elements` of `element_bytes` (2: bf16, 4: fp32) holding random values.
  class Buffer {
   public:
    Buffer(Bench& bench, int64_t elements, int element_bytes) : bench_(bench) {
      const int64_t bytes = std::max<int64_t>(elements * element_bytes, 256);
      auto ptr = bench_.be().Allocate(bytes);
      CAIRN_CHECK(ptr.ok()) << ptr.status();
      ptr_ = *ptr;
      bench_.Fill(ptr_, elements, element_bytes);
    }
    ~Buffer() { bench_.be().Free(ptr_); }
    Buffer(const Buffer&) = delete;
    Buffer& operator=(const Buffer&) = delete;
    void* get() const { return ptr_; }
    float* f32() const { return static_cast<float*>(ptr_); }

   private:
    Bench& bench_;
    void* ptr_ = nullptr;
  };

  void Fill(void* ptr, int64_t elements, int element_bytes) {
    const void* pattern = element_bytes == 4 ? static_cast<const void*>(pattern_f32_.data())
                                             : static_cast<const void*>(pattern_bf16_.data());
    const int64_t block = std::min(elements, kPatternElements) * element_bytes;
    const int64_t total = elements * element_bytes;
    if (total <= 0) return;
    BENCH_OK(be().CopyToDevice(ptr, pattern, block));
    for (int64_t done = block; done < total; done += std::min(done, total - done)) {
      BENCH_OK(
          be().CopyOnDevice(static_cast<char*>(ptr) + done, ptr, std::min(done, total - done)));
    }
    BENCH_OK(be().Synchronize());
  }

  // Median and minimum milliseconds of `fn`, which enqueues work on `stream` (the bench backend's
  // stream when null).
  std::pair<double, double> Time(const std::function<void()>& fn, int reps = -1,
                                 cudaStream_t stream = nullptr) {
    if (reps < 0) reps = flags_.reps;
    if (stream == nullptr) stream = stream_;
    for (int i = 0; i < flags_.warmup; ++i) fn();
    BENCH_CUDA(cudaStreamSynchronize(stream));
    std::vector<double> ms;
    for (int i = 0; i < reps; ++i) {
      BENCH_CUDA(cudaEventRecord(start_, stream));
      fn();
      BENCH_CUDA(cudaEventRecord(stop_, stream));
      BENCH_CUDA(cudaEventSynchronize(stop_));
      float elapsed = 0;
      BENCH_CUDA(cudaEventElapsedTime(&elapsed, start_, stop_));
      ms.push_back(elapsed);
    }
    std::sort(ms.begin(), ms.end());
    return {ms[ms.size() / 2], ms.front()};
  }

  void Add(Row row, const std::function<void()>& fn, int reps = -1, cudaStream_t stream = nullptr) {
    const auto [median, min] = Time(fn, reps, stream);
    row.median_ms = median;
    row.min_ms = min;
    std::fprintf(stderr, "  %-10s %-22s %-34s %-8s %9.3f ms\n", row.group.c_str(), row.op.c_str(),
                 row.shape.c_str(), row.kernel.c_str(), median);
    rows_.push_back(std::move(row));
  }

  double copy_gbps = 0;      // bytes read + written per second / 1e9
  double matmul_tflops = 0;  // 8192^3 through the backend

 private:
  static constexpr int64_t kPatternElements = int64_t{16} << 20;
  Flags flags_;
  std::unique_ptr<CudaBackend> backend_;
  cudaStream_t stream_ = nullptr;
  cudaEvent_t start_ = nullptr, stop_ = nullptr;
  std::vector<float> pattern_f32_;
  std::vector<uint16_t> pattern_bf16_;
  std::vector<Row> rows_;
};

using Buffer = Bench::Buffer;

std::string Dims(std::initializer_list<int64_t> dims) {
  std::string s;
  for (int64_t d : dims) absl::StrAppend(&s, s.empty() ? "" : "x", d);
  return s;
}

// ---- Ceilings ------------------------------------------------------------------------------

void Ceilings(Bench& b) {
  const int64_t bytes = int64_t{2} << 30;
  Buffer src(b, bytes / 4, 4), dst(b, bytes / 4, 4);
  Row row{"ceiling", "hbm_copy", "2 GiB", "memcpy"};
  row.bytes = 2.0 * bytes;
  b.Add(row, [&] { BENCH_OK(b.be().CopyOnDevice(dst.get(), src.get(), bytes)); });
  b.copy_gbps = row.bytes / (b.rows().back().median_ms * 1e-3) / 1e9;

  const MatmulShape s = MatmulShape::Linear(8192, 8192, 8192);
  Buffer a(b, s.m * s.k, 2), w(b, s.n * s.k, 2), c(b, s.m * s.n, 2);
  Row mm{"ceiling", "matmul", "8192^3", "cublaslt"};
  mm.flops = s.Flops();
  b.Add(mm, [&] { BENCH_OK(b.be().MatmulForward(s, a.get(), w.get(), nullptr, c.get(), false)); });
  b.matmul_tflops = mm.flops / (b.rows().back().median_ms * 1e-3) / 1e12;
}

// ---- Matmuls ----------------------------------------------------------------------------------

struct Model {
  const char* name;
  int64_t C, F, H, KV, D, V;
  bool gated;                  // SwiGLU (gate and up fused in one matmul) vs GELU
  std::vector<int64_t> batch;  // tokens per batch entry is T
  int64_t T;
};

std::vector<Model> Models(bool quick) {
  std::vector<Model> models = {
      {"gpt2-124m", 768, 3072, 12, 12, 64, 50257, false, {8}, 1024},
      {"llama3-8b", 4096, 14336, 32, 8, 128, 128256, true, {1, 2}, 4096},
      {"llama2-7b", 4096, 11008, 32, 32, 128, 32000, true, {1, 2}, 4096},
  };
  if (quick) {
    for (Model& m : models) m.batch = {m.batch.back()};
  }
  return models;
}

void Matmuls(Bench& b) {
  for (const Model& m : Models(b.flags().quick)) {
    for (int64_t batch : m.batch) {
      const int64_t N = batch * m.T;
      struct Gemm {
        const char* what;
        MatmulShape shape;
      };
      MatmulShape head = MatmulShape::Linear(N, m.C, m.V);
      head.output_f32 = true;
      const std::vector<Gemm> gemms = {
          {"qkv", MatmulShape::Linear(N, m.C, (m.H + 2 * m.KV) * m.D)},
          {"attn_out", MatmulShape::Linear(N, m.H * m.D, m.C)},
          {m.gated ? "mlp_gate_up" : "mlp_up",
           MatmulShape::Linear(N, m.C, (m.gated ? 2 : 1) * m.F)},
          {"mlp_down", MatmulShape::Linear(N, m.F, m.C)},
          {"lm_head_f32", head},
      };
      for (const Gemm& g : gemms) {
        const std::string name = absl::StrCat(m.name, " ", g.what);
        if (!b.Selected(name)) continue;
        const MatmulShape& s = g.shape;
        Buffer a(b, s.m * s.k, 2), w(b, s.n * s.k, 2), c(b, s.m * s.n, s.output_f32 ? 4 : 2);
        Buffer bias(b, s.n, s.output_f32 ? 4 : 2);
        const std::string dims = absl::StrCat(Dims({s.m, s.n, s.k}), " N=", N);
        Row fwd{m.name, absl::StrCat(g.what, " fwd"), dims, "cublaslt"};
        fwd.flops = s.Flops();
        b.Add(fwd, [&] {
          BENCH_OK(b.be().MatmulForward(s, a.get(), w.get(), s.output_f32 ? bias.get() : nullptr,
                                        c.get(), false));
        });
        if (s.output_f32) continue;  // the head's backward reads bf16 dlogits: same shapes as da/db
        Buffer da(b, s.m * s.k, 2), dw(b, s.n * s.k, 4);
        Row bwd{m.name, absl::StrCat(g.what, " bwd"), dims, "cublaslt"};
        bwd.flops = 2 * s.Flops();
        b.Add(bwd, [&] {
          BENCH_OK(b.be().MatmulBackward(s, a.get(), w.get(), c.get(), da.get(), dw.f32(), nullptr,
                                         false));
        });
      }
    }
  }
  // The simple kernel at one shape, for scale.
  if (b.Selected("simple matmul")) {
    CudaBackendOptions options;
    options.matmul = CudaBackendOptions::Matmul::kSimple;
    auto simple = Bench::Make(options);
    const MatmulShape s = MatmulShape::Linear(8192, 768, 3072);
    Buffer a(b, s.m * s.k, 2), w(b, s.n * s.k, 2), c(b, s.m * s.n, 2);
    Row row{"gpt2-124m", "mlp_up fwd", Dims({s.m, s.n, s.k}), "simple"};
    row.flops = s.Flops();
    b.Add(
        row, [&] { BENCH_OK(simple->MatmulForward(s, a.get(), w.get(), nullptr, c.get(), false)); },
        5, cairn::runtime::CudaStreamOf(simple->default_stream()));
  }
}

// ---- Attention -------------------------------------------------------------------------------

void Attention(Bench& b) {
  struct Case {
    const char* model;
    int64_t B, T, H, KV, D;
  };
  std::vector<Case> cases = {
      {"gpt2-124m", 8, 1024, 12, 12, 64}, {"llama3-8b", 1, 4096, 32, 8, 128},
      {"llama3-8b", 2, 4096, 32, 8, 128}, {"llama2-7b", 2, 4096, 32, 32, 128},
      {"d64-t4096", 4, 4096, 16, 16, 64}, {"d128-t1024", 8, 1024, 32, 8, 128},
  };
  if (b.flags().quick) cases = {cases[0], cases[2]};
  auto simple = [] {
    CudaBackendOptions options;
    options.attention = CudaBackendOptions::Attention::kSimple;
    return Bench::Make(options);
  }();
  auto flash = [] {
    CudaBackendOptions options;
    options.attention = CudaBackendOptions::Attention::kFlash;
    return Bench::Make(options);
  }();
  for (const Case& c : cases) {
    const std::string name = absl::StrCat(c.model, " attention");
    if (!b.Selected(name)) continue;
    const AttentionShape s = AttentionShape::AllHeads(c.B, c.T, c.H, c.KV, c.D);
    const int64_t tokens = c.B * c.T;
    Buffer q(b, tokens * c.H * c.D, 2), k(b, tokens * c.KV * c.D, 2), v(b, tokens * c.KV * c.D, 2);
    Buffer out(b, tokens * c.H * c.D, 2), dout(b, tokens * c.H * c.D, 2);
    Buffer lse(b, c.B * c.H * c.T, 4);
    Buffer dq(b, tokens * c.H * c.D, 2), dk(b, tokens * c.KV * c.D, 2),
        dv(b, tokens * c.KV * c.D, 2);
    const double fwd_flops = 2.0 * c.B * c.H * static_cast<double>(c.T) * c.T * c.D;
    const std::string dims = absl::StrCat("B", c.B, " T", c.T, " H", c.H, "/", c.KV, " D", c.D);
    for (CudaBackend* be : {flash.get(), simple.get()}) {
      const bool is_flash = be == flash.get();
      const char* kernel = is_flash ? "flash" : "simple";
      const int reps = is_flash ? -1 : 3;
      const cudaStream_t stream = cairn::runtime::CudaStreamOf(be->default_stream());
      Row fwd{c.model, "attention fwd", dims, kernel};
      fwd.flops = fwd_flops;
      b.Add(
          fwd,
          [&] {
            BENCH_OK(be->AttentionForward(s, q.get(), k.get(), v.get(), out.get(), lse.f32()));
          },
          reps, stream);
      Row bwd{c.model, "attention bwd", dims, kernel};
      bwd.flops = 2.5 * fwd_flops;
      b.Add(
          bwd,
          [&] {
            BENCH_OK(be->AttentionBackward(s, q.get(), k.get(), v.get(), out.get(), lse.f32(),
                                           dout.get(), dq.get(), dk.get(), dv.get()));
          },
          reps, stream);
    }
  }
}

// ---- Memory-bound operations -------------------------------------------------------------------

void MemoryBound(Bench& b) {
  auto& be = b.be();
  auto add = [&](const std::string& group, const std::string& op, const std::string& shape,
                 double bytes, const std::function<void()>& fn) {
    if (!b.Selected(absl::StrCat(group, " ", op))) return;
    Row row{group, op, shape, "fused"};
    row.bytes = bytes;
    b.Add(row, fn);
  };
  // Norms: gpt2 LayerNorm (8 x 1024 x 768), Llama RMSNorm (2 x 4096 x 4096).
  for (const auto& [group, N, C, layer] :
       {std::tuple<const char*, int64_t, int64_t, bool>{"gpt2-124m", 8192, 768, true},
        {"llama3-8b", 8192, 4096, false}}) {
    const NormShape s{N, C, 1e-5f};
    Buffer x(b, N * C, 2), w(b, C, 2), bias(b, C, 2), y(b, N * C, 2), dy(b, N * C, 2),
        dx(b, N * C, 2), rstd(b, N, 4), dw(b, C, 4), db(b, C, 4);
    const std::string dims = Dims({N, C});
    const double nc = static_cast<double>(N) * C;
    if (layer) {
      add(group, "layernorm fwd", dims, 4 * nc + 4.0 * N, [&] {
        BENCH_OK(be.LayerNormForward(s, x.get(), w.get(), bias.get(), y.get(), rstd.f32()));
      });
      add(group, "layernorm bwd", dims, 8 * nc + 4.0 * N, [&] {
        BENCH_OK(be.LayerNormBackward(s, x.get(), w.get(), rstd.f32(), dy.get(), dx.get(), dw.f32(),
                                      db.f32(), true));
      });
    } else {
      add(group, "rmsnorm fwd", dims, 4 * nc + 4.0 * N,
          [&] { BENCH_OK(be.RmsNormForward(s, x.get(), w.get(), y.get(), rstd.f32())); });
      add(group, "rmsnorm bwd", dims, 8 * nc + 4.0 * N, [&] {
        BENCH_OK(be.RmsNormBackward(s, x.get(), w.get(), rstd.f32(), dy.get(), dx.get(), dw.f32(),
                                    true));
      });
    }
  }
  // Activations at the MLP widths.
  {
    const int64_t n = int64_t{8192} * 3072;
    Buffer x(b, n, 2), dy(b, n, 2), y(b, n, 2);
    add("gpt2-124m", "gelu fwd", Dims({8192, 3072}), 4.0 * n,
        [&] { BENCH_OK(be.GeluForward(n, x.get(), y.get())); });
    add("gpt2-124m", "gelu bwd", Dims({8192, 3072}), 6.0 * n,
        [&] { BENCH_OK(be.GeluBackward(n, x.get(), dy.get(), y.get())); });
  }
  {
    const int64_t n = int64_t{8192} * 14336;
    Buffer g(b, n, 2), u(b, n, 2), dy(b, n, 2), y(b, n, 2), dg(b, n, 2);
    add("llama3-8b", "swiglu fwd", Dims({8192, 14336}), 6.0 * n,
        [&] { BENCH_OK(be.SwiGluForward(n, g.get(), u.get(), y.get())); });
    add("llama3-8b", "swiglu bwd", Dims({8192, 14336}), 10.0 * n,
        [&] { BENCH_OK(be.SwiGluBackward(n, g.get(), u.get(), dy.get(), dg.get(), y.get())); });
    add("llama3-8b", "residual fwd", Dims({8192, 14336}), 6.0 * n,
        [&] { BENCH_OK(be.ResidualForward(n, g.get(), u.get(), y.get())); });
  }
  // RoPE on Q of Llama-3-8B (2 x 4096 tokens, 32 heads of 128).
  {
    const RopeShape s{2, 4096, 32, 128, 0, 0, 500000.0f};
    const int64_t n = 2 * 4096 * 32 * 128;
    Buffer x(b, n, 2), y(b, n, 2);
    add("llama3-8b", "rope fwd", "2x4096x32x128", 4.0 * n,
        [&] { BENCH_OK(be.RopeForward(s, x.get(), y.get())); });
    add("llama3-8b", "rope bwd (in place)", "2x4096x32x128", 4.0 * n,
        [&] { BENCH_OK(be.RopeBackward(s, y.get(), y.get())); });
  }
  // Embedding and cross-entropy at gpt2's and Llama-3's vocabularies (8 x 1024 tokens).
  for (const auto& [group, C, V] :
       {std::tuple<const char*, int64_t, int64_t>{"gpt2-124m", 768, 50257},
        {"llama3-8b", 4096, 128256}}) {
    const int64_t B = 8, T = 1024, N = B * T;
    std::vector<int32_t> ids(N);
    std::mt19937 gen(7);
    std::uniform_int_distribution<int32_t> dist(0, static_cast<int32_t>(V - 1));
    for (int32_t& id : ids) id = dist(gen);
    auto ids_dev = be.Allocate(N * 4);
    CAIRN_CHECK(ids_dev.ok());
    int32_t* ids_ptr = static_cast<int32_t*>(*ids_dev);
    BENCH_OK(be.CopyToDevice(ids_ptr, ids.data(), N * 4));
    {
      const EmbeddingShape s{B, T, C, 0, V, 0, T};
      Buffer wte(b, V * C, 2), wpe(b, T * C, 2), out(b, N * C, 2), dwte(b, V * C, 4),
          dwpe(b, T * C, 4);
      const double nc = static_cast<double>(N) * C;
      add(group, "embedding fwd", Dims({N, C}), 6.0 * nc,  // wte row + wpe row read, out written
          [&] { BENCH_OK(be.EmbeddingForward(s, ids_ptr, wte.get(), wpe.get(), out.get())); });
      // dout read, then each touched wte row and the wpe rows read and written in fp32.
      add(group, "embedding bwd", Dims({N, C}), 2.0 * nc + 8.0 * nc + 8.0 * T * C,
          [&] { BENCH_OK(be.EmbeddingBackward(s, ids_ptr, out.get(), dwte.f32(), dwpe.f32())); });
    }
    {
      const CrossEntropyShape s{N, V, 0, V};
      Buffer logits(b, N * V, 4), max(b, N, 4), stats(b, 2 * N, 4), losses(b, N, 4),
          dlogits(b, N * V, 2);
      const double nv = static_cast<double>(N) * V;
      BENCH_OK(be.CrossEntropyMax(s, logits.f32(), max.f32()));
      add(group, "xent max", Dims({N, V}), 4.0 * nv,
          [&] { BENCH_OK(be.CrossEntropyMax(s, logits.f32(), max.f32())); });
      add(group, "xent sums", Dims({N, V}), 4.0 * nv, [&] {
        BENCH_OK(
            be.CrossEntropySums(s, logits.f32(), ids_ptr, max.f32(), stats.f32(), stats.f32() + N));
      });
      add(group, "xent loss+grad", Dims({N, V}), 6.0 * nv, [&] {
        BENCH_OK(be.CrossEntropyLossAndGrad(s, logits.f32(), ids_ptr, max.f32(), stats.f32(),
                                            stats.f32() + N, 1.0f / N, losses.f32(),
                                            dlogits.get()));
      });
    }
    be.Free(ids_ptr);
  }
  // Optimizer and gradient utilities over 500M fp32 parameters (a 7B model's TP-8 shard, roughly).
  {
    const int64_t n = b.flags().quick ? 100000000 : 500000000;
    Buffer p(b, n, 4), g(b, n, 4), m(b, n, 4), v(b, n, 4), sum(b, 1, 4), w(b, n, 2);
    // Second moments must be non-negative: v = |pattern| via Scale is not possible; use g^2 >= 0
    // semantics by zeroing v (AdamW's time does not depend on the values).
    BENCH_OK(be.Zero(v.get(), n * 4));
    const std::string dims = absl::StrCat(n / 1000000, "M");
    const AdamWConfig config;
    add("optimizer", "adamw", dims, 28.0 * n, [&] {
      BENCH_OK(be.AdamWUpdate(n, config, 10, true, 1.0f, p.f32(), g.f32(), m.f32(), v.f32()));
    });
    add("optimizer", "norm_squared", dims, 4.0 * n,
        [&] { BENCH_OK(be.NormSquared(n, g.f32(), sum.f32())); });
    add("optimizer", "scale", dims, 8.0 * n, [&] { BENCH_OK(be.Scale(n, 1.0f, g.f32())); });
    add("optimizer", "to_working", dims, 6.0 * n,
        [&] { BENCH_OK(be.ToWorking(n, p.f32(), w.get())); });
    add("optimizer", "from_working", dims, 6.0 * n,
        [&] { BENCH_OK(be.FromWorking(n, w.get(), g.f32())); });
  }
  // Strided row moves (Ulysses kv-head gradients, relocations): 8192 rows of 1024 of 4096.
  {
    const int64_t rows = 8192, cols = 1024, pitch = 4096;
    Buffer src(b, rows * pitch, 2), dst(b, rows * pitch, 2);
    add("utility", "add2d", Dims({rows, cols}), 6.0 * rows * cols,
        [&] { BENCH_OK(be.Add2D(rows, cols, src.get(), pitch, dst.get(), pitch)); });
    add("utility", "copy2d", Dims({rows, cols}), 4.0 * rows * cols,
        [&] { BENCH_OK(be.Copy2D(rows, cols * 2, src.get(), pitch * 2, dst.get(), pitch * 2)); });
  }
}

// ---- Output ----------------------------------------------------------------------------------

void Print(Bench& b) {
  std::printf("\n%-10s %-22s %-34s %-8s %10s %10s %9s %8s\n", "group", "op", "shape", "kernel",
              "median ms", "min ms", "TFLOP/s", "GB/s");
  for (const Row& r : b.rows()) {
    const double seconds = r.median_ms * 1e-3;
    std::string rate, bw;
    if (r.flops > 0) rate = absl::StrFormat("%.1f", r.flops / seconds / 1e12);
    if (r.bytes > 0) {
      const double gbps = r.bytes / seconds / 1e9;
      bw = absl::StrFormat("%.0f (%.0f%%)", gbps, 100.0 * gbps / b.copy_gbps);
    }
    std::printf("%-10s %-22s %-34s %-8s %10.3f %10.3f %9s %8s\n", r.group.c_str(), r.op.c_str(),
                r.shape.c_str(), r.kernel.c_str(), r.median_ms, r.min_ms, rate.c_str(), bw.c_str());
  }
  // Flash vs simple attention.
  std::printf("\nattention: flash speed-up over the simple kernels (median times)\n");
  for (size_t i = 0; i < b.rows().size(); ++i) {
    const Row& r = b.rows()[i];
    if (r.kernel != "simple" || r.op.rfind("attention", 0) != 0) continue;
    for (const Row& f : b.rows()) {
      if (f.kernel == "flash" && f.op == r.op && f.shape == r.shape && f.group == r.group) {
        std::printf("  %-10s %-14s %-26s %7.1fx  (flash %.1f TFLOP/s)\n", r.group.c_str(),
                    r.op.c_str(), r.shape.c_str(), r.median_ms / f.median_ms,
                    f.flops / (f.median_ms * 1e-3) / 1e12);
      }
    }
  }
  std::printf("\nceilings: copy %.0f GB/s (read + write), matmul 8192^3 %.0f TFLOP/s; device %s\n",
              b.copy_gbps, b.matmul_tflops, b.be().device_name().c_str());
}

void WriteJson(Bench& b, const std::string& path) {
  FILE* f = std::fopen(path.c_str(), "w");
  CAIRN_CHECK(f != nullptr) << "cannot write " << path;
  std::fprintf(f,
               "{\"device\": \"%s\", \"copy_gbps\": %.1f, \"matmul_tflops\": %.1f, \"rows\": [\n",
               b.be().device_name().c_str(), b.copy_gbps, b.matmul_tflops);
  for (size_t i = 0; i < b.rows().size(); ++i) {
    const Row& r = b.rows()[i];
    const double seconds = r.median_ms * 1e-3;
    std::fprintf(f,
                 "  {\"group\": \"%s\", \"op\": \"%s\", \"shape\": \"%s\", \"kernel\": \"%s\", "
                 "\"median_ms\": %.4f, \"min_ms\": %.4f, \"tflops\": %.2f, \"gbps\": %.1f}%s\n",
                 r.group.c_str(), r.op.c_str(), r.shape.c_str(), r.kernel.c_str(), r.median_ms,
                 r.min_ms, r.flops > 0 ? r.flops / seconds / 1e12 : 0.0,
                 r.bytes > 0 ? r.bytes / seconds / 1e9 : 0.0, i + 1 < b.rows().size() ? "," : "");
  }
  std::fprintf(f, "]}\n");
  std::fclose(f);
}

}  // namespace

int main(int argc, char** argv) {
  Flags flags;
  std::unique_ptr<CLI::App> app = cairn::MakeApp(
      "cuda_backend_bench",
      "speed of the CUDA backend on a GPU, next to the ceilings measured in the same run");
  app->add_option("--reps", flags.reps, "timed repetitions per case")->check(CLI::PositiveNumber);
  app->add_option("--warmup", flags.warmup, "untimed repetitions first")
      ->check(CLI::NonNegativeNumber);
  app->add_option("--json", flags.json, "also write the results as JSON to FILE")
      ->type_name("FILE");
  app->add_option("--only", flags.only, "only the cases whose name contains SUBSTRING")
      ->type_name("SUBSTRING");
  app->add_flag("--quick", flags.quick, "fewer shapes (a smoke run)");
  if (std::optional<int> exit = cairn::ParseCommandLine(*app, argc, argv)) return *exit;
  auto probe = CudaBackend::Create(0);
  if (!probe.ok()) {
    std::fprintf(stderr, "cuda_backend_bench: %s\n", probe.status().ToString().c_str());
    return 1;
  }
  probe->reset();
  Bench bench(flags);
  std::fprintf(stderr, "cuda_backend_bench on %s (reps %d, warm-up %d)\n",
               bench.be().device_name().c_str(), flags.reps, flags.warmup);
  Ceilings(bench);
  Matmuls(bench);
  Attention(bench);
  MemoryBound(bench);
  if (!flags.json.empty()) WriteJson(bench, flags.json);
  Print(bench);
  return 0;
}
