#include "agent/probes/probe_harness.h"

#include <algorithm>
#include <chrono>
#include <cmath>

#include "common/status_macros.h"

namespace cairn::agent {
namespace {

double Now() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

// Operations per sample from one operation's warm-up time.
int PerSample(const ProbeBudget& b, double one_op_s) {
  const double per_sample_s = b.target_seconds / std::max(1, b.samples);
  const int by_time = one_op_s > 0 ? static_cast<int>(per_sample_s / one_op_s) : b.max_iters;
  const int lo = std::max(1, b.min_iters / std::max(1, b.samples));
  const int hi = std::max(lo, b.max_iters / std::max(1, b.samples));
  return std::clamp(by_time, lo, hi);
}

}  // namespace

ProbeBudget ProbeBudget::Quick() {
  // Samples of ~30 ms: several scheduler slices on a core shared by two workers.
  ProbeBudget b;
  b.target_seconds = 0.1;
  b.samples = 3;
  b.min_iters = 3;
  b.max_iters = 200;
  return b;
}

ProbeBudget ProbeBudget::Full() {
  ProbeBudget b;
  b.target_seconds = 0.3;
  b.samples = 7;
  b.min_iters = 7;
  b.max_iters = 5000;
  b.warmup_iters = 2;
  return b;
}

double Median(std::vector<double> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

absl::StatusOr<Timing> TimeLocal(const std::function<absl::Status()>& op,
                                 const std::function<absl::Status()>& sync,
                                 const ProbeBudget& budget, runtime::Communicator* lockstep) {
  auto wait = [&]() { return sync ? sync() : absl::OkStatus(); };
  double one = 0;
  for (int i = 0; i < std::max(1, budget.warmup_iters); ++i) {
    const double t0 = Now();
    CAIRN_RETURN_IF_ERROR(op());
    CAIRN_RETURN_IF_ERROR(wait());
    one = Now() - t0;  // the last warm-up is the estimate (the first pays for first touches)
  }
  int k = PerSample(budget, one);
  if (lockstep != nullptr) {
    CAIRN_RETURN_IF_ERROR(lockstep->AllReduce(&k, &k, 1, runtime::ReduceOp::kMax));
  }
  std::vector<double> per_op;
  Timing t;
  for (int s = 0; s < std::max(1, budget.samples); ++s) {
    if (lockstep != nullptr) CAIRN_RETURN_IF_ERROR(lockstep->Barrier());
    const double t0 = Now();
    for (int i = 0; i < k; ++i) CAIRN_RETURN_IF_ERROR(op());
    CAIRN_RETURN_IF_ERROR(wait());
    per_op.push_back((Now() - t0) / k);
    t.iterations += k;
  }
  t.median_s = Median(per_op);
  t.best_s = *std::min_element(per_op.begin(), per_op.end());
  return t;
}

absl::StatusOr<Timing> TimeCollective(runtime::Communicator* control,
                                      const std::function<absl::Status()>& op,
                                      const ProbeBudget& budget) {
  float one = 0;
  for (int i = 0; i < std::max(1, budget.warmup_iters); ++i) {
    CAIRN_RETURN_IF_ERROR(control->Barrier());
    const double t0 = Now();
    CAIRN_RETURN_IF_ERROR(op());
    one = static_cast<float>(Now() - t0);
  }
  CAIRN_RETURN_IF_ERROR(control->AllReduce(&one, &one, 1, runtime::ReduceOp::kMax));
  const int k = PerSample(budget, one);
  std::vector<double> per_op;
  Timing t;
  for (int s = 0; s < std::max(1, budget.samples); ++s) {
    CAIRN_RETURN_IF_ERROR(control->Barrier());
    const double t0 = Now();
    for (int i = 0; i < k; ++i) CAIRN_RETURN_IF_ERROR(op());
    float sample = static_cast<float>((Now() - t0) / k);
    CAIRN_RETURN_IF_ERROR(control->AllReduce(&sample, &sample, 1, runtime::ReduceOp::kMax));
    per_op.push_back(sample);
    t.iterations += k;
  }
  t.median_s = Median(per_op);
  t.best_s = *std::min_element(per_op.begin(), per_op.end());
  return t;
}

}  // namespace cairn::agent
