// cpu_backend_bench — speed of the CPU backend: matmul GFLOP/s at the shapes of the tiny models,
// and the time of one llama-tiny transformer block forward and backward (hidden 128, 4 heads, 2 kv
// heads, ffn 352, seq 256, batch 4), with a per-operation breakdown.
//
// Run: `bazel run -c opt //runtime/compute/cpu:cpu_backend_bench [-- --reps N]`. The numbers in
// docs/benchmarks.md ("CPU runtime kernels") come from this binary. OpenBLAS picks its threads and
// kernels from the environment (OPENBLAS_NUM_THREADS, OPENBLAS_CORETYPE); both are printed, neither
// is changed. Timings are medians and bests over the repetitions after one warm-up (the development
// machine is shared: the best is what the kernels do when nothing else runs).
//
// The block is laid out as the runtime's layers will be (llm.c style): parameters, gradients and
// activations are structs of pointers into one allocation each, and the block saves exactly the
// activations docs/cost-model.md lists (norm inputs and outputs, Q/K/V, attention output, gate, up
// and their product, logsumexp and rstd).
#include <cblas.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "CLI/CLI.hpp"
#include "absl/strings/str_format.h"
#include "common/cli_app.h"
#include "common/logging.h"
#include "common/status_macros.h"
#include "runtime/compute/compute_backend.h"
#include "runtime/compute/cpu/cpu_backend.h"

namespace {

using cairn::runtime::AttentionShape;
using cairn::runtime::ComputeBackend;
using cairn::runtime::CpuBackend;
using cairn::runtime::MatmulShape;
using cairn::runtime::NormShape;
using cairn::runtime::RopeShape;

#define BENCH_OK(expr)                                                 \
  do {                                                                 \
    const absl::Status bench_status_ = (expr);                         \
    CAIRN_CHECK(bench_status_.ok()) << #expr << ": " << bench_status_; \
  } while (0)

double Seconds(const std::function<void()>& fn) {
  const auto start = std::chrono::steady_clock::now();
  fn();
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

double Best(const std::vector<double>& v) { return *std::min_element(v.begin(), v.end()); }

// Carves consecutive float tensors out of one allocation (the runtime's arena, in miniature).
class Carver {
 public:
  explicit Carver(float* base) : next_(base) {}
  float* Take(int64_t n) {
    float* p = next_;
    next_ += n;
    return p;
  }

 private:
  float* next_;
};

// ---- Matmul throughput -------------------------------------------------------------------------

void BenchMatmul(ComputeBackend& be, int reps) {
  struct Case {
    const char* what;
    int64_t m, n, k;
  };
  const Case cases[] = {
      {"QKV      [1024,128]x[256,128]^T", 1024, 256, 128},
      {"out proj [1024,128]x[128,128]^T", 1024, 128, 128},
      {"gate/up  [1024,128]x[352,128]^T", 1024, 352, 128},
      {"down     [1024,352]x[128,352]^T", 1024, 128, 352},
      {"LM head  [1024,128]x[256,128]^T (V=256)", 1024, 256, 128},
      {"square 512", 512, 512, 512},
      {"square 1024", 1024, 1024, 1024},
      {"square 2048", 2048, 2048, 2048},
  };
  {
    // Wake OpenBLAS's threads and the cores' clocks before the first timed shape (~0.2 s).
    const MatmulShape s = MatmulShape::Linear(512, 512, 512);
    std::vector<float> a(512 * 512, 0.5f), out(512 * 512);
    for (int i = 0; i < 50; ++i) {
      BENCH_OK(be.MatmulForward(s, a.data(), a.data(), nullptr, out.data(), false));
    }
  }
  std::printf("\nMatmul (C = A B^T, fp32, OpenBLAS sgemm); backward = dA and dB\n");
  std::printf("%-42s %8s %21s %21s\n", "shape [m,k]x[n,k]^T", "MFLOP", "fwd GFLOP/s med (best)",
              "bwd GFLOP/s med (best)");
  for (const Case& c : cases) {
    const MatmulShape s = MatmulShape::Linear(c.m, c.k, c.n);
    std::vector<float> a(c.m * c.k, 0.5f), b(c.n * c.k, 0.25f), out(c.m * c.n), da(a.size()),
        db(b.size());
    const int r = c.m * c.n * c.k > 1e9 ? std::max(3, reps / 4) : reps;
    std::vector<double> fwd, bwd;
    for (int i = 0; i <= r; ++i) {
      const double f = Seconds(
          [&] { BENCH_OK(be.MatmulForward(s, a.data(), b.data(), nullptr, out.data(), false)); });
      const double g = Seconds([&] {
        BENCH_OK(be.MatmulBackward(s, a.data(), b.data(), out.data(), da.data(), db.data(), nullptr,
                                   false));
      });
      if (i > 0) {  // the first run warms up
        fwd.push_back(f);
        bwd.push_back(g);
      }
    }
    std::printf("%-42s %8.1f %13.1f (%5.1f) %13.1f (%5.1f)\n", c.what, s.Flops() / 1e6,
                s.Flops() / Median(fwd) / 1e9, s.Flops() / Best(fwd) / 1e9,
                2 * s.Flops() / Median(bwd) / 1e9, 2 * s.Flops() / Best(bwd) / 1e9);
  }
}

// ---- llama-tiny block ---------------------------------------------------------------------------

struct Dims {
  int64_t B = 4, T = 256, C = 128, H = 4, KV = 2, F = 352;
  int64_t D() const { return C / H; }
  int64_t N() const { return B * T; }
  int64_t QKV() const { return (H + 2 * KV) * D(); }  // fused QKV width
};

// Parameters (and, with the same layout, their gradients).
struct BlockParams {
  float *norm1, *wqkv, *wo, *norm2, *wgate, *wup, *wdown;
  static int64_t Count(const Dims& d) {
    return d.C + d.QKV() * d.C + d.C * d.C + d.C + 2 * d.F * d.C + d.C * d.F;
  }
  static BlockParams Carve(const Dims& d, float* base) {
    Carver c(base);
    BlockParams p;
    p.norm1 = c.Take(d.C);
    p.wqkv = c.Take(d.QKV() * d.C);
    p.wo = c.Take(d.C * d.C);
    p.norm2 = c.Take(d.C);
    p.wgate = c.Take(d.F * d.C);
    p.wup = c.Take(d.F * d.C);
    p.wdown = c.Take(d.C * d.F);
    return p;
  }
};

// Saved activations (cost model: block saves x, xn1, qkv, att, x1, xn2, gate, up, prod, lse, rstd
// x2), the output, and backward scratch.
struct BlockActs {
  float *x, *rstd1, *xn1, *qkv, *att, *lse, *attn_out, *x1, *rstd2, *xn2, *gate, *up, *prod, *mlp,
      *y;
  float *dstream, *dxn, *dqkv, *datt, *dprod, *dgate, *dup;  // backward
  static int64_t Count(const Dims& d) {
    const int64_t N = d.N();
    return N * d.C * 8 + 2 * N + N * d.QKV() + d.B * d.H * d.T + N * d.F * 3 +  // forward
           N * d.C * 3 + N * d.QKV() + N * d.F * 3;                             // backward
  }
  static BlockActs Carve(const Dims& d, float* base) {
    const int64_t N = d.N();
    Carver c(base);
    BlockActs a;
    a.x = c.Take(N * d.C);
    a.rstd1 = c.Take(N);
    a.xn1 = c.Take(N * d.C);
    a.qkv = c.Take(N * d.QKV());
    a.att = c.Take(N * d.C);
    a.lse = c.Take(d.B * d.H * d.T);
    a.attn_out = c.Take(N * d.C);
    a.x1 = c.Take(N * d.C);
    a.rstd2 = c.Take(N);
    a.xn2 = c.Take(N * d.C);
    a.gate = c.Take(N * d.F);
    a.up = c.Take(N * d.F);
    a.prod = c.Take(N * d.F);
    a.mlp = c.Take(N * d.C);
    a.y = c.Take(N * d.C);
    a.dstream = c.Take(N * d.C);
    a.dxn = c.Take(N * d.C);
    a.dqkv = c.Take(N * d.QKV());
    a.datt = c.Take(N * d.C);
    a.dprod = c.Take(N * d.F);
    a.dgate = c.Take(N * d.F);
    a.dup = c.Take(N * d.F);
    return a;
  }
};

class BlockBench {
 public:
  BlockBench(ComputeBackend& be, const Dims& d) : be_(be), d_(d) {
    params_.resize(BlockParams::Count(d));
    grads_.resize(BlockParams::Count(d));
    acts_.resize(BlockActs::Count(d));
    std::srand(1);
    for (float& p : params_) p = 0.02f * (static_cast<float>(std::rand()) / RAND_MAX - 0.5f);
    p_ = BlockParams::Carve(d, params_.data());
    g_ = BlockParams::Carve(d, grads_.data());
    a_ = BlockActs::Carve(d, acts_.data());
    std::fill(p_.norm1, p_.norm1 + d.C, 1.0f);
    std::fill(p_.norm2, p_.norm2 + d.C, 1.0f);
    for (int64_t i = 0; i < d.N() * d.C; ++i) a_.x[i] = std::sin(0.1f * i);
  }

  // Runs `fn` and adds its time to the op's total.
  void Timed(const char* op, const std::function<absl::Status()>& fn) {
    const double s = Seconds([&] { BENCH_OK(fn()); });
    op_seconds_[op] += s;
  }

  void Forward() {
    const Dims& d = d_;
    const int64_t N = d.N(), D = d.D();
    const NormShape norm{N, d.C, 1e-5f};
    Timed("rmsnorm", [&] { return be_.RmsNormForward(norm, a_.x, p_.norm1, a_.xn1, a_.rstd1); });
    Timed("matmul", [&] {
      return be_.MatmulForward(MatmulShape::Linear(N, d.C, d.QKV()), a_.xn1, p_.wqkv, nullptr,
                               a_.qkv, false);
    });
    Timed("rope", [&] {
      RopeShape rope{d.B, d.T, d.H, D, d.QKV(), 0, 10000.0f};
      CAIRN_RETURN_IF_ERROR(be_.RopeForward(rope, a_.qkv, a_.qkv));  // Q, in place
      rope.num_heads = d.KV;
      return be_.RopeForward(rope, a_.qkv + d.H * D, a_.qkv + d.H * D);  // K
    });
    Timed("attention", [&] {
      return be_.AttentionForward(FusedAttention(), a_.qkv, a_.qkv + d.H * D,
                                  a_.qkv + (d.H + d.KV) * D, a_.att, a_.lse);
    });
    Timed("matmul", [&] {
      return be_.MatmulForward(MatmulShape::Linear(N, d.C, d.C), a_.att, p_.wo, nullptr,
                               a_.attn_out, false);
    });
    Timed("residual", [&] { return be_.ResidualForward(N * d.C, a_.x, a_.attn_out, a_.x1); });
    Timed("rmsnorm", [&] { return be_.RmsNormForward(norm, a_.x1, p_.norm2, a_.xn2, a_.rstd2); });
    Timed("matmul", [&] {
      const MatmulShape up = MatmulShape::Linear(N, d.C, d.F);
      CAIRN_RETURN_IF_ERROR(be_.MatmulForward(up, a_.xn2, p_.wgate, nullptr, a_.gate, false));
      return be_.MatmulForward(up, a_.xn2, p_.wup, nullptr, a_.up, false);
    });
    Timed("swiglu", [&] { return be_.SwiGluForward(N * d.F, a_.gate, a_.up, a_.prod); });
    Timed("matmul", [&] {
      return be_.MatmulForward(MatmulShape::Linear(N, d.F, d.C), a_.prod, p_.wdown, nullptr, a_.mlp,
                               false);
    });
    Timed("residual", [&] { return be_.ResidualForward(N * d.C, a_.x1, a_.mlp, a_.y); });
  }

  // Backward from dL/dy = y (any gradient will do for timing). dstream carries dL/d(residual
  // stream).
  void Backward() {
    const Dims& d = d_;
    const int64_t N = d.N(), D = d.D();
    const NormShape norm{N, d.C, 1e-5f};
    std::memcpy(a_.dstream, a_.y, sizeof(float) * N * d.C);
    Timed("matmul", [&] {
      return be_.MatmulBackward(MatmulShape::Linear(N, d.F, d.C), a_.prod, p_.wdown, a_.dstream,
                                a_.dprod, g_.wdown, nullptr, false);
    });
    Timed("swiglu",
          [&] { return be_.SwiGluBackward(N * d.F, a_.gate, a_.up, a_.dprod, a_.dgate, a_.dup); });
    Timed("matmul", [&] {
      const MatmulShape up = MatmulShape::Linear(N, d.C, d.F);
      CAIRN_RETURN_IF_ERROR(
          be_.MatmulBackward(up, a_.xn2, p_.wgate, a_.dgate, a_.dxn, g_.wgate, nullptr, false));
      return be_.MatmulBackward(up, a_.xn2, p_.wup, a_.dup, a_.dxn, g_.wup, nullptr, true);
    });
    Timed("rmsnorm", [&] {
      return be_.RmsNormBackward(norm, a_.x1, p_.norm2, a_.rstd2, a_.dxn, a_.dstream, g_.norm2,
                                 true);
    });
    Timed("matmul", [&] {
      return be_.MatmulBackward(MatmulShape::Linear(N, d.C, d.C), a_.att, p_.wo, a_.dstream,
                                a_.datt, g_.wo, nullptr, false);
    });
    Timed("attention", [&] {
      float* dq = a_.dqkv;
      return be_.AttentionBackward(FusedAttention(), a_.qkv, a_.qkv + d.H * D,
                                   a_.qkv + (d.H + d.KV) * D, a_.att, a_.lse, a_.datt, dq,
                                   dq + d.H * D, dq + (d.H + d.KV) * D);
    });
    Timed("rope", [&] {
      RopeShape rope{d.B, d.T, d.H, D, d.QKV(), 0, 10000.0f};
      CAIRN_RETURN_IF_ERROR(be_.RopeBackward(rope, a_.dqkv, a_.dqkv));
      rope.num_heads = d.KV;
      return be_.RopeBackward(rope, a_.dqkv + d.H * D, a_.dqkv + d.H * D);
    });
    Timed("matmul", [&] {
      return be_.MatmulBackward(MatmulShape::Linear(N, d.C, d.QKV()), a_.xn1, p_.wqkv, a_.dqkv,
                                a_.dxn, g_.wqkv, nullptr, false);
    });
    Timed("rmsnorm", [&] {
      return be_.RmsNormBackward(norm, a_.x, p_.norm1, a_.rstd1, a_.dxn, a_.dstream, g_.norm1,
                                 true);
    });
  }

  void ResetOps() { op_seconds_.clear(); }
  const std::map<std::string, double>& op_seconds() const { return op_seconds_; }
  int64_t saved_activation_floats() const {
    const Dims& d = d_;
    const int64_t N = d.N();
    // x, xn1, qkv, att, x1, xn2, gate, up, prod, lse, rstd1, rstd2 (docs/cost-model.md "Memory").
    return N * d.C * 4 + N * d.QKV() + N * d.F * 3 + d.B * d.H * d.T + 2 * N;
  }

  // Forward FLOPs: matmuls plus causal attention (q k^T and P v over the T(T+1)/2 visible pairs).
  double ForwardFlops() const {
    const Dims& d = d_;
    const double N = static_cast<double>(d.N());
    const double matmul = 2 * N * d.C * (d.QKV() + d.C + 2 * d.F) + 2 * N * d.F * d.C;
    const double attention = 4.0 * d.B * d.H * (d.T * (d.T + 1) / 2.0) * d.D();
    return matmul + attention;
  }

 private:
  AttentionShape FusedAttention() const {
    AttentionShape s = AttentionShape::AllHeads(d_.B, d_.T, d_.H, d_.KV, d_.D());
    s.q_stride = d_.QKV();
    s.kv_stride = d_.QKV();
    return s;
  }

  ComputeBackend& be_;
  Dims d_;
  std::vector<float> params_, grads_, acts_;
  BlockParams p_, g_;
  BlockActs a_;
  std::map<std::string, double> op_seconds_;
};

void BenchBlock(ComputeBackend& be, int reps) {
  const Dims d;
  BlockBench bench(be, d);
  std::vector<double> fwd, bwd;
  std::map<std::string, double> fwd_ops, bwd_ops;
  for (int i = 0; i <= reps; ++i) {
    bench.ResetOps();
    const double f = Seconds([&] { bench.Forward(); });
    if (i > 0) {
      for (const auto& [op, s] : bench.op_seconds()) fwd_ops[op] += s;
    }
    bench.ResetOps();
    const double b = Seconds([&] { bench.Backward(); });
    if (i > 0) {
      for (const auto& [op, s] : bench.op_seconds()) bwd_ops[op] += s;
      fwd.push_back(f);
      bwd.push_back(b);
    }
  }
  const double flops = bench.ForwardFlops();
  std::printf(
      "\nllama-tiny block (B=%lld T=%lld C=%lld heads %lld, kv heads %lld, ffn %lld; %lld "
      "tokens)\n",
      static_cast<long long>(d.B), static_cast<long long>(d.T), static_cast<long long>(d.C),
      static_cast<long long>(d.H), static_cast<long long>(d.KV), static_cast<long long>(d.F),
      static_cast<long long>(d.N()));
  std::printf(
      "  forward : %7.2f ms median, %7.2f ms best  (%.0f MFLOP; %.1f GFLOP/s at the median)\n",
      Median(fwd) * 1e3, Best(fwd) * 1e3, flops / 1e6, flops / Median(fwd) / 1e9);
  // Backward FLOPs: 2x the matmuls' (dA and dB), 2.5x attention's (probabilities recomputed).
  std::printf(
      "  backward: %7.2f ms median, %7.2f ms best  (%.1f GFLOP/s at the median, counting 2x "
      "forward FLOPs)\n",
      Median(bwd) * 1e3, Best(bwd) * 1e3, 2 * flops / Median(bwd) / 1e9);
  std::printf("  tokens/s (forward + backward, one block): %.0f median, %.0f best\n",
              static_cast<double>(d.N()) / (Median(fwd) + Median(bwd)),
              static_cast<double>(d.N()) / (Best(fwd) + Best(bwd)));
  std::printf("  saved activations: %.2f MiB (fp32)\n",
              bench.saved_activation_floats() * 4.0 / (1 << 20));
  std::printf("  %-10s %12s %12s   (mean ms per block)\n", "op", "forward", "backward");
  for (const char* op : {"matmul", "attention", "rmsnorm", "rope", "swiglu", "residual"}) {
    const auto f = fwd_ops.find(op), b = bwd_ops.find(op);
    std::printf("  %-10s %12.3f %12.3f\n", op, f == fwd_ops.end() ? 0.0 : f->second / reps * 1e3,
                b == bwd_ops.end() ? 0.0 : b->second / reps * 1e3);
  }
}

}  // namespace

int main(int argc, char** argv) {
  int reps = 20;
  std::unique_ptr<CLI::App> app = cairn::MakeApp(
      "cpu_backend_bench", "speed of the CPU backend: matmuls and one llama-tiny block");
  app->add_option("--reps", reps, "timed repetitions per case")->check(CLI::PositiveNumber);
  if (std::optional<int> exit = cairn::ParseCommandLine(*app, argc, argv)) return *exit;
  const char* coretype = std::getenv("OPENBLAS_CORETYPE");
  std::printf(
      "cpu_backend_bench: OpenBLAS %s; core %s; %d threads; OPENBLAS_CORETYPE=%s; %d reps\n",
      openblas_get_config(), openblas_get_corename(), openblas_get_num_threads(),
      coretype != nullptr ? coretype : "(unset)", reps);
  CpuBackend cpu;
  BenchMatmul(cpu, reps);
  BenchBlock(cpu, reps);
  return 0;
}
