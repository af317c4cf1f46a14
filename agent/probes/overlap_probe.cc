#include "agent/probes/overlap_probe.h"

#include <algorithm>
#include <chrono>
#include <thread>

#include "absl/strings/str_format.h"
#include "agent/probes/device_buffer.h"
#include "agent/probes/time_limit.h"
#include "common/status_macros.h"
#include "runtime/dtype.h"

namespace cairn::agent {
namespace {

using runtime::CommHandle;

double Now() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

float MaxOver(runtime::Communicator* control, double v, absl::Status* status) {
  float x = static_cast<float>(v);
  if (status->ok()) *status = control->AllReduce(&x, &x, 1, runtime::ReduceOp::kMax);
  return x;
}

}  // namespace

OverlapProbeConfig OverlapProbeConfig::ForCpu() { return OverlapProbeConfig{}; }

OverlapProbeConfig OverlapProbeConfig::ForGpu() {
  OverlapProbeConfig c;
  c.gemm_size = 8192;
  c.comm_bytes = 256.0 * 1024 * 1024;
  return c;
}

absl::Status ProbeOverlap(runtime::Communicator* world, runtime::Communicator* control,
                          runtime::ComputeBackend* be, const OverlapProbeConfig& config,
                          ProbeReport* report) {
  CaseGate gate(config.deadline, control);
  CAIRN_ASSIGN_OR_RETURN(const bool run, gate.Next());
  if (!run) {
    RecordSkipped(report, "overlap", "overlap", gate.skipped());
    return absl::OkStatus();
  }
  const int64_t n = config.gemm_size;
  const runtime::MatmulShape shape = runtime::MatmulShape::Linear(n, n, n);
  CAIRN_ASSIGN_OR_RETURN(DeviceBuffer a, DeviceBuffer::Working(be, n * n, 0.5f));
  CAIRN_ASSIGN_OR_RETURN(DeviceBuffer out, DeviceBuffer::Working(be, n * n, 0.0f));
  const runtime::DType dt = be->working_dtype();
  const int64_t count = std::max<int64_t>(
      world->size(), static_cast<int64_t>(config.comm_bytes) /
                         static_cast<int64_t>(runtime::DTypeSize(dt)));
  CAIRN_ASSIGN_OR_RETURN(DeviceBuffer buf, DeviceBuffer::Working(be, count, 1.0f));

  auto compute = [&](int k) -> absl::Status {
    for (int i = 0; i < k; ++i) {
      CAIRN_RETURN_IF_ERROR(be->MatmulForward(shape, a.data(), a.data(), nullptr, out.data(), false));
    }
    return be->Synchronize();
  };
  auto start_comm = [&] {
    return world->StartAllReduce(buf.data(), buf.data(), count, dt, runtime::ReduceOp::kSum);
  };
  // Warm up both, then size the compute block to the collective's time.
  CAIRN_RETURN_IF_ERROR(compute(1));
  CAIRN_RETURN_IF_ERROR(control->Barrier());
  double t0 = Now();
  CAIRN_RETURN_IF_ERROR(compute(2));
  const double one_gemm = (Now() - t0) / 2;
  absl::Status status;
  CAIRN_RETURN_IF_ERROR(control->Barrier());
  t0 = Now();
  {
    CAIRN_ASSIGN_OR_RETURN(auto h, start_comm());
    CAIRN_RETURN_IF_ERROR(h->Wait());
  }
  const double comm_guess = MaxOver(control, Now() - t0, &status);
  const float gemm_guess = MaxOver(control, one_gemm, &status);
  CAIRN_RETURN_IF_ERROR(status);
  const int k = std::clamp(static_cast<int>(comm_guess / std::max(gemm_guess, 1e-9f)), 1, 10000);

  std::vector<double> alone_c, alone_m, with_c, with_m, both;
  for (int s = 0; s < std::max(1, config.samples); ++s) {
    CAIRN_RETURN_IF_ERROR(control->Barrier());
    t0 = Now();
    CAIRN_RETURN_IF_ERROR(compute(k));
    alone_c.push_back(MaxOver(control, Now() - t0, &status));
    CAIRN_RETURN_IF_ERROR(control->Barrier());
    t0 = Now();
    {
      CAIRN_ASSIGN_OR_RETURN(auto h, start_comm());
      CAIRN_RETURN_IF_ERROR(h->Wait());
    }
    alone_m.push_back(MaxOver(control, Now() - t0, &status));
    CAIRN_RETURN_IF_ERROR(status);
    // Both at once: the collective waited on by a second thread, so its own end is timed.
    CAIRN_RETURN_IF_ERROR(control->Barrier());
    t0 = Now();
    CAIRN_ASSIGN_OR_RETURN(std::unique_ptr<CommHandle> h, start_comm());
    double comm_end = 0;
    absl::Status comm_status;
    std::thread waiter([&] {
      comm_status = h->Wait();
      comm_end = Now();
    });
    const absl::Status compute_status = compute(k);
    const double compute_end = Now();
    waiter.join();
    CAIRN_RETURN_IF_ERROR(compute_status);
    CAIRN_RETURN_IF_ERROR(comm_status);
    with_c.push_back(MaxOver(control, compute_end - t0, &status));
    with_m.push_back(MaxOver(control, comm_end - t0, &status));
    both.push_back(MaxOver(control, std::max(compute_end, comm_end) - t0, &status));
    CAIRN_RETURN_IF_ERROR(status);
  }
  if (world->rank() != 0) return absl::OkStatus();
  const double c = Median(alone_c), m = Median(alone_m), cw = Median(with_c),
               mw = Median(with_m), b = Median(both);
  // Gamma per sample (each sample's own alone/together times), then the median: a sample where
  // the two sides came out unbalanced (noise on a shared machine) divides by a small min and
  // would dominate a ratio of medians. Clamped to [1, kMaxGamma]; the raw median is kept too.
  std::vector<double> gammas;
  for (size_t i = 0; i < both.size(); ++i) {
    const double lo = std::max(1e-12, std::min(alone_c[i], alone_m[i]));
    gammas.push_back(1.0 + (both[i] - std::max(alone_c[i], alone_m[i])) / lo);
  }
  const double raw_gamma = Median(gammas);
  constexpr double kMaxGamma = 3.0;
  const double gamma = std::clamp(raw_gamma, 1.0, kMaxGamma);
  auto add = [&](const std::string& op, double rate, const std::string& unit, double time_s) {
    Measurement* x = report->add_measurements();
    x->set_probe("overlap");
    x->set_op(op);
    x->set_name(absl::StrFormat("overlap %s: %d GEMMs %dx%dx%d beside an all-reduce of %.0f B",
                                op, k, n, n, n, config.comm_bytes));
    (*x->mutable_params())["compute_alone_s"] = c;
    (*x->mutable_params())["comm_alone_s"] = m;
    (*x->mutable_params())["compute_with_comm_s"] = cw;
    (*x->mutable_params())["comm_with_compute_s"] = mw;
    (*x->mutable_params())["both_s"] = b;
    (*x->mutable_params())["gemms"] = k;
    (*x->mutable_params())["gamma_unclamped"] = raw_gamma;
    x->set_time_s(time_s);
    x->set_rate(rate);
    x->set_unit(unit);
    x->set_correct(true);
  };
  add("compute", cw / c, "x", cw);
  add("comm", mw / m, "x", mw);
  add("gamma", gamma, "x", b);
  return absl::OkStatus();
}

}  // namespace cairn::agent
