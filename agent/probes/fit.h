// agent/probes/fit.h — the latency/bandwidth form the cost model reads collectives in
// (hardware.proto CollectiveCost; planner/cost/hardware_model.cc TableTime):
//
//   time(bytes) = latency_s + bytes x bus_factor / busbw_bytes_per_s
//
// fitted to measured (bytes, seconds) points by least squares on the relative error (times span
// six decades from 1 KiB to 1 GiB; an absolute fit would ignore the small sizes), with the fit error
// recorded so a profile says how well the form describes the machine.
//
//   CAIRN_ASSIGN_OR_RETURN(AlphaBetaFit f, FitAlphaBeta(points, BusFactor(kAllReduce, 4)));
//   // f.latency_s, f.busbw_bytes_per_s, f.max_rel_error (0.12 = the worst point is 12% off)
#ifndef CAIRN_AGENT_PROBES_FIT_H_
#define CAIRN_AGENT_PROBES_FIT_H_

#include <utility>
#include <vector>

#include "absl/status/statusor.h"

namespace cairn::agent {

struct AlphaBetaFit {
  double latency_s = 0;          // alpha >= 0
  double busbw_bytes_per_s = 0;  // > 0
  double max_rel_error = 0;      // max over points of |fit - measured| / measured
  double rms_rel_error = 0;
};

// `points`: (bytes, seconds), at least two distinct sizes, every time > 0; bus_factor > 0.
// Minimises sum ((alpha + beta x_i - t_i) / t_i)^2 with alpha >= 0, beta > 0 (a negative alpha is
// clamped to 0 and beta refitted; a non-positive beta, i.e. time not growing with size, takes the
// largest point's bandwidth). InvalidArgument for fewer than two sizes or bad numbers.
absl::StatusOr<AlphaBetaFit> FitAlphaBeta(const std::vector<std::pair<double, double>>& points,
                                          double bus_factor);

// log-spaced sizes from min to max (both included when max/min is a power of factor), each rounded
// down to a multiple of `multiple` (at least one multiple).
std::vector<double> LogSpacedSizes(double min_bytes, double max_bytes, double factor,
                                   double multiple);

}  // namespace cairn::agent

#endif  // CAIRN_AGENT_PROBES_FIT_H_
