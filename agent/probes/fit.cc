#include "agent/probes/fit.h"

#include <algorithm>
#include <cmath>
#include <set>

namespace cairn::agent {
namespace {

void Errors(const std::vector<std::pair<double, double>>& pts, double alpha, double beta,
            AlphaBetaFit* f) {
  double sum_sq = 0, worst = 0;
  for (const auto& [x, t] : pts) {
    const double e = std::abs(alpha + beta * x - t) / t;
    sum_sq += e * e;
    worst = std::max(worst, e);
  }
  f->max_rel_error = worst;
  f->rms_rel_error = std::sqrt(sum_sq / pts.size());
}

}  // namespace

absl::StatusOr<AlphaBetaFit> FitAlphaBeta(const std::vector<std::pair<double, double>>& points,
                                          double bus_factor) {
  std::set<double> sizes;
  for (const auto& [x, t] : points) {
    if (!(x > 0) || !(t > 0) || !std::isfinite(x) || !std::isfinite(t)) {
      return absl::InvalidArgumentError("fit: sizes and times must be positive and finite");
    }
    sizes.insert(x);
  }
  if (sizes.size() < 2) return absl::InvalidArgumentError("fit: need at least two sizes");
  if (!(bus_factor > 0)) return absl::InvalidArgumentError("fit: bus factor must be positive");
  // Weighted least squares, w_i = 1 / t_i^2: normal equations of min sum w (a + b x - t)^2.
  double sw = 0, swx = 0, swxx = 0, swt = 0, swxt = 0;
  for (const auto& [x, t] : points) {
    const double w = 1.0 / (t * t);
    sw += w;
    swx += w * x;
    swxx += w * x * x;
    swt += w * t;
    swxt += w * x * t;
  }
  const double det = sw * swxx - swx * swx;
  double alpha = (swxx * swt - swx * swxt) / det;
  double beta = (sw * swxt - swx * swt) / det;
  if (alpha < 0) {
    alpha = 0;
    beta = swxt / swxx;  // through the origin
  }
  if (!(beta > 0)) {
    // Time does not grow with size (latency-bound throughout): the largest point's bandwidth.
    const auto& last = *std::max_element(points.begin(), points.end());
    beta = last.second / last.first;
    alpha = 0;
  }
  AlphaBetaFit f;
  f.latency_s = alpha;
  f.busbw_bytes_per_s = bus_factor / beta;
  Errors(points, alpha, beta, &f);
  return f;
}

std::vector<double> LogSpacedSizes(double min_bytes, double max_bytes, double factor,
                                   double multiple) {
  std::vector<double> out;
  if (factor <= 1 || min_bytes <= 0 || max_bytes < min_bytes) return out;
  for (double b = min_bytes; b <= max_bytes * (1 + 1e-9); b *= factor) {
    const double rounded = std::max(multiple, std::floor(b / multiple) * multiple);
    if (out.empty() || rounded > out.back()) out.push_back(rounded);
  }
  return out;
}

}  // namespace cairn::agent
