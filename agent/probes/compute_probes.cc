#include "agent/probes/compute_probes.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <set>
#include <tuple>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "agent/probes/device_buffer.h"
#include "agent/probes/time_limit.h"
#include "common/status_macros.h"
#include "runtime/dtype.h"

namespace cairn::agent {
namespace {

using runtime::AttentionShape;
using runtime::ComputeBackend;
using runtime::MatmulShape;

int64_t CeilDiv(int64_t a, int64_t b) { return (a + b - 1) / b; }

// Records a case that failed; the suite goes on.
void RecordError(ProbeReport* report, const std::string& probe, const std::string& name,
                 const absl::Status& s) {
  Measurement* m = report->add_measurements();
  m->set_probe(probe);
  m->set_name(name);
  m->set_error(std::string(s.message()));
}

absl::Status Barrier(const ComputeProbeConfig& c) {
  return c.lockstep != nullptr ? c.lockstep->Barrier() : absl::OkStatus();
}

int SeqLen(const ComputeProbeConfig& c, const plan::ModelDims& m) {
  if (c.seq_len > 0) return std::min(c.seq_len, m.max_seq_len);
  return std::min(m.max_seq_len, 1024);
}

// Bytes one GEMM case allocates: A, B, C and their gradients (working dtype; dB in fp32).
int64_t CaseBytes(ComputeBackend* be, const MatmulShape& s) {
  const int64_t wbytes = static_cast<int64_t>(runtime::DTypeSize(be->working_dtype()));
  // A, B, C, dC, dA in the working dtype (C in fp32 for an fp32-output GEMM), dB in fp32.
  const int64_t c_bytes = s.m * s.n * (s.output_f32 ? 4 : wbytes);
  return (s.m * s.k + s.n * s.k) * 2 * wbytes + s.m * s.n * wbytes + c_bytes + s.n * s.k * 4;
}

// After a case's buffers and first run on this rank (`prepared`): whether every rank probing at
// once (config.lockstep) got as far, so that all time the case or none does — a rank whose
// allocation failed (out of memory) would otherwise leave the others waiting in the timing's
// collectives. OK: time it. This rank's error, or Aborted when only another rank failed.
absl::Status AllRanksPrepared(const ComputeProbeConfig& config, const absl::Status& prepared) {
  if (config.lockstep == nullptr) return prepared;
  int failed = prepared.ok() ? 0 : 1;
  CAIRN_RETURN_IF_ERROR(
      config.lockstep->AllReduce(&failed, &failed, 1, runtime::ReduceOp::kMax));
  if (!prepared.ok()) return prepared;
  if (failed != 0) {
    return absl::AbortedError("not timed: the case failed on another rank probing at once");
  }
  return absl::OkStatus();
}

// One GEMM shape: checked, then forward and backward timed.
absl::Status OneGemm(ComputeBackend* be, const ComputeProbeConfig& config, const GemmCase& c,
                     const std::string& model, const std::string& label, const std::map<std::string, double>& extra,
                     ProbeReport* report) {
  const MatmulShape& s = c.shape;
  DeviceBuffer a, b, out, dc, da, db;
  std::vector<float> head;
  const absl::Status prepared = [&]() -> absl::Status {
    CAIRN_ASSIGN_OR_RETURN(a, DeviceBuffer::Working(be, s.m * s.k, 0.5f));
    CAIRN_ASSIGN_OR_RETURN(b, DeviceBuffer::Working(be, s.n * s.k, 0.25f));
    // The LM head writes fp32 logits (s.output_f32), every other layer the working dtype.
    CAIRN_ASSIGN_OR_RETURN(out, s.output_f32 ? DeviceBuffer::F32(be, s.m * s.n, 0.0f)
                                             : DeviceBuffer::Working(be, s.m * s.n, 0.0f));
    CAIRN_ASSIGN_OR_RETURN(dc, DeviceBuffer::Working(be, s.m * s.n, 1e-3f));
    CAIRN_ASSIGN_OR_RETURN(da, DeviceBuffer::Working(be, s.m * s.k, 0.0f));
    CAIRN_ASSIGN_OR_RETURN(db, DeviceBuffer::F32(be, s.n * s.k, 0.0f));
    CAIRN_RETURN_IF_ERROR(be->MatmulForward(s, a.data(), b.data(), nullptr, out.data(), false));
    CAIRN_ASSIGN_OR_RETURN(head, s.output_f32 ? out.ReadF32(8) : out.ReadWorking(8));
    return absl::OkStatus();
  }();
  CAIRN_RETURN_IF_ERROR(AllRanksPrepared(config, prepared));
  const float expect = static_cast<float>(s.k) * 0.125f;
  bool correct = true;
  for (float v : head) correct = correct && std::abs(v - expect) <= 0.01f * expect;
  auto sync = [be] { return be->Synchronize(); };
  CAIRN_ASSIGN_OR_RETURN(
      Timing fwd,
      TimeLocal([&] { return be->MatmulForward(s, a.data(), b.data(), nullptr, out.data(), false); },
                sync, config.budget, config.lockstep));
  CAIRN_ASSIGN_OR_RETURN(Timing bwd, TimeLocal(
                                         [&] {
                                           return be->MatmulBackward(s, a.data(), b.data(),
                                                                     dc.data(), da.data(), db.f32(),
                                                                     nullptr, false);
                                         },
                                         sync, config.budget, config.lockstep));
  Measurement* m = report->add_measurements();
  m->set_probe("gemm");
  m->set_name(absl::StrFormat("gemm %s %s [%dx%dx%d]", label, c.name, s.m, s.n, s.k));
  m->set_op(c.name);
  m->set_model(model);
  (*m->mutable_params())["m"] = static_cast<double>(s.m);
  (*m->mutable_params())["n"] = static_cast<double>(s.n);
  (*m->mutable_params())["k"] = static_cast<double>(s.k);
  for (const auto& [key, v] : extra) (*m->mutable_params())[key] = v;
  (*m->mutable_params())["forward_s"] = fwd.median_s;
  (*m->mutable_params())["backward_s"] = bwd.median_s;
  (*m->mutable_params())["forward_flops_per_s"] = s.Flops() / fwd.median_s;
  m->set_flops(3 * s.Flops());  // forward + dA + dB
  m->set_time_s(fwd.median_s + bwd.median_s);
  m->set_best_time_s(fwd.best_s + bwd.best_s);
  m->set_iterations(fwd.iterations + bwd.iterations);
  m->set_rate(m->flops() / m->time_s());
  m->set_unit("FLOP/s");
  m->set_correct(correct);
  if (!correct) {
    m->set_error(absl::StrCat("C[0] = ", head.empty() ? 0.0f : head[0], ", expected ", expect));
  }
  return absl::OkStatus();
}

}  // namespace

ComputeProbeConfig ComputeProbeConfig::ForCpu(std::vector<plan::ModelDims> models) {
  ComputeProbeConfig c;
  c.models = std::move(models);
  c.tp_degrees = {1, 2};
  c.micro_batches = {1, 2, 4, 8};
  c.seq_len = 128;
  c.attention_seq_lens = {128, 256};
  c.attention_head_dims = {32, 64};
  c.attention_heads = 4;
  c.memory_bytes = int64_t{16} << 20;
  c.max_case_bytes = int64_t{256} << 20;
  c.budget = ProbeBudget::Full();
  return c;
}

ComputeProbeConfig ComputeProbeConfig::ForGpu(std::vector<plan::ModelDims> models) {
  ComputeProbeConfig c;
  c.models = std::move(models);
  c.tp_degrees = {1, 2, 4, 8};
  c.micro_batches = {1, 2, 4};
  c.seq_len = 4096;
  c.attention_seq_lens = {512, 1024, 2048, 4096, 8192};
  c.attention_head_dims = {64, 128};
  c.attention_heads = 32;
  c.memory_bytes = int64_t{1} << 30;
  c.max_case_bytes = int64_t{8} << 30;
  c.budget = ProbeBudget::Full();
  return c;
}

std::vector<GemmCase> LayerGemmShapes(const plan::ModelDims& m, int tp, int64_t tokens) {
  const int64_t h = m.hidden, f = m.ffn_hidden, v = m.vocab;
  const int64_t kv = static_cast<int64_t>(m.num_kv_heads) * m.head_dim();
  const int64_t q_cols = CeilDiv(h, tp);
  // Key/value heads split over the degree, or one head per rank when it exceeds them.
  const int64_t kv_cols = std::max<int64_t>(CeilDiv(kv, tp), m.head_dim());
  const int64_t f_cols = CeilDiv(f, tp);
  MatmulShape head = MatmulShape::Linear(tokens, h, CeilDiv(v, tp));
  head.output_f32 = true;  // fp32 logits for the cross-entropy, as the runtime writes them
  std::vector<GemmCase> out = {
      {"q", MatmulShape::Linear(tokens, h, q_cols)},
      {"kv", MatmulShape::Linear(tokens, h, kv_cols)},
      {"out", MatmulShape::Linear(tokens, q_cols, h)},
      {"up", MatmulShape::Linear(tokens, h, f_cols)},
      {"down", MatmulShape::Linear(tokens, f_cols, h)},
      {"lm_head", head},
      // Megatron-Core's fused projections (runtime traits fused_qkv / fused_gate_up).
      {"qkv_fused", MatmulShape::Linear(tokens, h, q_cols + 2 * kv_cols)},
  };
  if (m.swiglu) out.push_back({"gate_up_fused", MatmulShape::Linear(tokens, h, 2 * f_cols)});
  return out;
}

absl::Status ProbeGemms(ComputeBackend* be, const ComputeProbeConfig& config,
                        ProbeReport* report) {
  // The unique shapes, named by their first occurrence.
  struct Case {
    GemmCase gemm;
    std::string model, label;
    std::map<std::string, double> params;
  };
  std::vector<Case> cases;
  std::set<std::tuple<int64_t, int64_t, int64_t>> seen;
  for (const plan::ModelDims& model : config.models) {
    const int seq = SeqLen(config, model);
    for (int tp : config.tp_degrees) {
      for (int b : config.micro_batches) {
        for (const GemmCase& c : LayerGemmShapes(model, tp, int64_t{b} * seq)) {
          if (!seen.insert({c.shape.m, c.shape.n, c.shape.k}).second) continue;
          if (CaseBytes(be, c.shape) > config.max_case_bytes) continue;
          cases.push_back({c, model.name, absl::StrFormat("%s tp=%d b=%d", model.name, tp, b),
                           {{"tp", tp}, {"micro_batch", b}, {"seq", seq}}});
        }
      }
    }
  }
  // By FLOPs (ties by shape: the same order on every rank), visited in bisection order.
  std::sort(cases.begin(), cases.end(), [](const Case& a, const Case& b) {
    const MatmulShape &x = a.gemm.shape, &y = b.gemm.shape;
    return std::make_tuple(x.Flops(), x.m, x.n, x.k) < std::make_tuple(y.Flops(), y.m, y.n, y.k);
  });
  CaseGate gate(config.deadline, config.lockstep);
  for (int i : BisectionOrder(static_cast<int>(cases.size()))) {
    CAIRN_ASSIGN_OR_RETURN(const bool run, gate.Next());
    if (!run) continue;
    const Case& c = cases[i];
    CAIRN_RETURN_IF_ERROR(Barrier(config));
    const absl::Status s = OneGemm(be, config, c.gemm, c.model, c.label, c.params, report);
    if (!s.ok()) RecordError(report, "gemm", absl::StrCat(c.label, " ", c.gemm.name), s);
  }
  RecordSkipped(report, "compute", "gemm", gate.skipped());
  return absl::OkStatus();
}

absl::Status ProbeAttention(ComputeBackend* be, const ComputeProbeConfig& config,
                            ProbeReport* report) {
  CaseGate gate(config.deadline, config.lockstep);
  for (int d : config.attention_head_dims) {
    for (int seq : config.attention_seq_lens) {
      CAIRN_ASSIGN_OR_RETURN(const bool go, gate.Next());
      if (!go) continue;
      const int64_t b = config.attention_batch, h = config.attention_heads;
      const AttentionShape shape = AttentionShape::AllHeads(b, seq, h, h, d);
      const int64_t n = b * seq * h * d;
      const std::string name = absl::StrFormat("attention b=%d s=%d heads=%d d=%d", b, seq, h, d);
      CAIRN_RETURN_IF_ERROR(Barrier(config));
      auto run = [&]() -> absl::Status {
        DeviceBuffer q, k, v, out, dout, dq, dk, dv, lse;
        std::vector<float> head;
        const absl::Status prepared = [&]() -> absl::Status {
          CAIRN_ASSIGN_OR_RETURN(q, DeviceBuffer::Working(be, n, 0.01f));
          CAIRN_ASSIGN_OR_RETURN(k, DeviceBuffer::Working(be, n, 0.01f));
          CAIRN_ASSIGN_OR_RETURN(v, DeviceBuffer::Working(be, n, 1.0f));
          CAIRN_ASSIGN_OR_RETURN(out, DeviceBuffer::Working(be, n, 0.0f));
          CAIRN_ASSIGN_OR_RETURN(dout, DeviceBuffer::Working(be, n, 1e-3f));
          CAIRN_ASSIGN_OR_RETURN(dq, DeviceBuffer::Working(be, n, 0.0f));
          CAIRN_ASSIGN_OR_RETURN(dk, DeviceBuffer::Working(be, n, 0.0f));
          CAIRN_ASSIGN_OR_RETURN(dv, DeviceBuffer::Working(be, n, 0.0f));
          CAIRN_ASSIGN_OR_RETURN(lse, DeviceBuffer::F32(be, b * h * seq, 0.0f));
          CAIRN_RETURN_IF_ERROR(
              be->AttentionForward(shape, q.data(), k.data(), v.data(), out.data(), lse.f32()));
          // v = 1 everywhere: every output element is a convex combination of ones.
          CAIRN_ASSIGN_OR_RETURN(head, out.ReadWorking(8));
          return absl::OkStatus();
        }();
        CAIRN_RETURN_IF_ERROR(AllRanksPrepared(config, prepared));
        bool correct = true;
        for (float x : head) correct = correct && std::abs(x - 1.0f) < 0.02f;
        auto sync = [be] { return be->Synchronize(); };
        CAIRN_ASSIGN_OR_RETURN(Timing fwd, TimeLocal(
                                               [&] {
                                                 return be->AttentionForward(
                                                     shape, q.data(), k.data(), v.data(),
                                                     out.data(), lse.f32());
                                               },
                                               sync, config.budget, config.lockstep));
        CAIRN_ASSIGN_OR_RETURN(Timing bwd, TimeLocal(
                                               [&] {
                                                 return be->AttentionBackward(
                                                     shape, q.data(), k.data(), v.data(),
                                                     out.data(), lse.f32(), dout.data(), dq.data(),
                                                     dk.data(), dv.data());
                                               },
                                               sync, config.budget, config.lockstep));
        // The cost model's count (cost_model.cc): 2 x samples x seq^2 x hidden, hidden = h x d.
        const double flops = 2.0 * b * seq * static_cast<double>(seq) * h * d;
        for (int pass = 0; pass < 2; ++pass) {
          const Timing& t = pass == 0 ? fwd : bwd;
          Measurement* m = report->add_measurements();
          m->set_probe("attention");
          m->set_op(pass == 0 ? "forward" : "backward");
          m->set_name(absl::StrCat(name, " ", m->op()));
          (*m->mutable_params())["batch"] = b;
          (*m->mutable_params())["seq"] = seq;
          (*m->mutable_params())["heads"] = h;
          (*m->mutable_params())["head_dim"] = d;
          m->set_flops(pass == 0 ? flops : 2.5 * flops);
          m->set_time_s(t.median_s);
          m->set_best_time_s(t.best_s);
          m->set_iterations(t.iterations);
          m->set_rate(m->flops() / t.median_s);
          m->set_unit("FLOP/s");
          m->set_correct(correct);
          if (pass == 1) (*m->mutable_params())["backward_over_forward"] = bwd.median_s / fwd.median_s;
        }
        return absl::OkStatus();
      };
      if (absl::Status s = run(); !s.ok()) RecordError(report, "attention", name, s);
    }
  }
  RecordSkipped(report, "compute", "attention", gate.skipped());
  return absl::OkStatus();
}

absl::Status ProbeMemory(ComputeBackend* be, const ComputeProbeConfig& config,
                         ProbeReport* report) {
  const int64_t wbytes = static_cast<int64_t>(runtime::DTypeSize(be->working_dtype()));
  const int64_t n = std::max<int64_t>(1024, config.memory_bytes / 4);  // fp32 elements
  auto sync = [be] { return be->Synchronize(); };
  auto record = [&](const std::string& op, double bytes, const Timing& t, bool correct) {
    Measurement* m = report->add_measurements();
    m->set_probe("memory");
    m->set_op(op);
    m->set_name(absl::StrFormat("memory %s %.0f MiB", op, bytes / (1 << 20)));
    (*m->mutable_params())["elements"] = static_cast<double>(n);
    m->set_bytes(bytes);
    m->set_time_s(t.median_s);
    m->set_best_time_s(t.best_s);
    m->set_iterations(t.iterations);
    m->set_rate(bytes / t.median_s);
    m->set_unit("B/s");
    m->set_correct(correct);
  };
  CaseGate gate(config.deadline, config.lockstep);
  CAIRN_ASSIGN_OR_RETURN(bool go, gate.Next());
  if (go) {
    CAIRN_RETURN_IF_ERROR(Barrier(config));
    CAIRN_ASSIGN_OR_RETURN(DeviceBuffer src, DeviceBuffer::F32(be, n, 2.0f));
    CAIRN_ASSIGN_OR_RETURN(DeviceBuffer dst, DeviceBuffer::F32(be, n, 0.0f));
    CAIRN_RETURN_IF_ERROR(be->CopyOnDevice(dst.data(), src.data(), src.bytes()));
    CAIRN_ASSIGN_OR_RETURN(std::vector<float> head, dst.ReadF32(4));
    const bool ok = std::all_of(head.begin(), head.end(), [](float v) { return v == 2.0f; });
    CAIRN_ASSIGN_OR_RETURN(
        Timing t, TimeLocal([&] { return be->CopyOnDevice(dst.data(), src.data(), src.bytes()); },
                            sync, config.budget, config.lockstep));
    record("copy", 2.0 * src.bytes(), t, ok);  // read + write
  }
  CAIRN_ASSIGN_OR_RETURN(go, gate.Next());
  if (go) {
    CAIRN_RETURN_IF_ERROR(Barrier(config));
    CAIRN_ASSIGN_OR_RETURN(DeviceBuffer a, DeviceBuffer::Working(be, n, 1.0f));
    CAIRN_ASSIGN_OR_RETURN(DeviceBuffer b, DeviceBuffer::Working(be, n, 2.0f));
    CAIRN_ASSIGN_OR_RETURN(DeviceBuffer out, DeviceBuffer::Working(be, n, 0.0f));
    CAIRN_RETURN_IF_ERROR(be->ResidualForward(n, a.data(), b.data(), out.data()));
    CAIRN_ASSIGN_OR_RETURN(std::vector<float> head, out.ReadWorking(4));
    const bool ok = std::all_of(head.begin(), head.end(), [](float v) { return v == 3.0f; });
    CAIRN_ASSIGN_OR_RETURN(
        Timing t,
        TimeLocal([&] { return be->ResidualForward(n, a.data(), b.data(), out.data()); }, sync,
                  config.budget, config.lockstep));
    record("add", 3.0 * n * wbytes, t, ok);
  }
  CAIRN_ASSIGN_OR_RETURN(go, gate.Next());
  if (go) {
    // One optimizer step as the cost model charges it (cost_model.cc AddDataParallel): its bytes
    // per parameter are 24 with fp32 weights (grad 4, Adam moments 2 x 8, weights 4) and 30 with
    // bf16 ones (+ master 2 x 4, weights 2), over the measured time of the AdamW kernel (and, on a
    // bf16 backend, the refresh of the working copy). Its rate is the bandwidth the profile gives
    // the cost model's memory-bound terms.
    CAIRN_RETURN_IF_ERROR(Barrier(config));
    const int64_t p = n / 4;
    const bool fp32 = be->working_dtype() == runtime::DType::kFloat32;
    CAIRN_ASSIGN_OR_RETURN(DeviceBuffer params, DeviceBuffer::F32(be, p, 1.0f));
    CAIRN_ASSIGN_OR_RETURN(DeviceBuffer grads, DeviceBuffer::F32(be, p, 1e-3f));
    CAIRN_ASSIGN_OR_RETURN(DeviceBuffer mom, DeviceBuffer::F32(be, p, 0.0f));
    CAIRN_ASSIGN_OR_RETURN(DeviceBuffer var, DeviceBuffer::F32(be, p, 0.0f));
    CAIRN_ASSIGN_OR_RETURN(DeviceBuffer working, DeviceBuffer::Working(be, fp32 ? 1 : p, 0.0f));
    runtime::AdamWConfig adamw;
    int64_t step = 1;
    CAIRN_RETURN_IF_ERROR(be->AdamWUpdate(p, adamw, step, true, 1.0f, params.f32(), grads.f32(),
                                          mom.f32(), var.f32()));
    CAIRN_ASSIGN_OR_RETURN(std::vector<float> head, params.ReadF32(4));
    const bool ok = std::all_of(head.begin(), head.end(), [](float v) { return v < 1.0f; });
    CAIRN_ASSIGN_OR_RETURN(Timing t, TimeLocal(
                                         [&]() -> absl::Status {
                                           CAIRN_RETURN_IF_ERROR(be->AdamWUpdate(
                                               p, adamw, ++step, true, 1.0f, params.f32(),
                                               grads.f32(), mom.f32(), var.f32()));
                                           if (fp32) return absl::OkStatus();
                                           return be->ToWorking(p, params.f32(), working.data());
                                         },
                                         sync, config.budget, config.lockstep));
    record("adamw", (fp32 ? 24.0 : 30.0) * p, t, ok);
  }
  RecordSkipped(report, "compute", "memory", gate.skipped());
  return absl::OkStatus();
}

absl::Status ProbeLaunch(ComputeBackend* be, const ComputeProbeConfig& config,
                         ProbeReport* report) {
  CaseGate gate(config.deadline, config.lockstep);
  CAIRN_ASSIGN_OR_RETURN(const bool go, gate.Next());
  if (!go) {
    RecordSkipped(report, "compute", "launch", gate.skipped());
    return absl::OkStatus();
  }
  CAIRN_ASSIGN_OR_RETURN(DeviceBuffer x, DeviceBuffer::F32(be, 1, 1.0f));
  CAIRN_RETURN_IF_ERROR(Barrier(config));
  ProbeBudget budget = config.budget;
  budget.min_iters = std::max(budget.min_iters, 100);
  CAIRN_ASSIGN_OR_RETURN(Timing t, TimeLocal([&] { return be->Scale(1, 1.0f, x.f32()); },
                                             [be] { return be->Synchronize(); }, budget,
                                             config.lockstep));
  Measurement* m = report->add_measurements();
  m->set_probe("launch");
  m->set_op("scale");
  m->set_name("launch: 1-element kernel, back to back");
  m->set_time_s(t.median_s);
  m->set_best_time_s(t.best_s);
  m->set_iterations(t.iterations);
  m->set_rate(1.0 / t.median_s);
  m->set_unit("kernels/s");
  m->set_correct(true);
  return absl::OkStatus();
}

}  // namespace cairn::agent
