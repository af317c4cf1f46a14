// agent/probes/probe_harness.h — how every probe measures: warm-up, iteration counts that fill a
// time budget, correctness checked before timing, medians over samples, the same iteration count
// on every rank of a collective, the slowest rank's time. nccl-tests' discipline, for compute and
// communication alike, so that CPU and GPU probes share one harness (a GPU probe only passes a
// `sync` that waits for its stream).
//
//   ProbeBudget budget = ProbeBudget::Quick();
//   CAIRN_ASSIGN_OR_RETURN(Timing t, TimeLocal(
//       [&] { return backend->MatmulForward(shape, a, b, nullptr, c, false); },   // enqueue one
//       [&] { return backend->Synchronize(); },                                   // wait for all
//       budget));
//   // t.median_s: one operation's time, the median over budget.samples samples
//
//   // Collectives: every rank of `control` calls it with the same budget. `control` is a
//   // communicator over host memory (Gloo) spanning the probe's ranks: the measured operation may
//   // run on another (NCCL, a sub-group), the agreement and timing run on this one.
//   CAIRN_ASSIGN_OR_RETURN(Timing t, TimeCollective(control, [&] { return comm->AllReduce(...); },
//                                                   budget));
//
// Sampling: a sample runs the operation k times and waits once (so GPU launch latency is not
// counted per operation), k chosen from a timed warm-up so that a sample lasts about
// target_seconds / samples (between min_iters and max_iters operations in all). Errors: the
// operation's first error.
#ifndef CAIRN_AGENT_PROBES_PROBE_HARNESS_H_
#define CAIRN_AGENT_PROBES_PROBE_HARNESS_H_

#include <functional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "runtime/comm/communicator.h"

namespace cairn::agent {

// Version of the probes' definitions: profiles record it; reports of other versions are not mixed.
inline constexpr char kProbeVersion[] = "cairn-probes/1";

struct ProbeBudget {
  double target_seconds = 0.2;  // timed duration per case (all samples together)
  int samples = 5;              // median and best are over these
  int min_iters = 5;            // operations per case, at least and at most
  int max_iters = 2000;
  int warmup_iters = 1;

  // CI and tests: a few seconds for every suite on a small machine.
  static ProbeBudget Quick();
  // Registration and `cairn agents probe`: the numbers profiles are made of.
  static ProbeBudget Full();
};

struct Timing {
  double median_s = 0;  // one operation
  double best_s = 0;
  int iterations = 0;   // timed operations in all
};

// `op` enqueues (or runs) one operation; `sync` waits until all enqueued ones are done (a no-op
// for synchronous backends: pass nullptr). With `lockstep` (a host communicator over the node's
// ranks probing at once) every rank runs the same number of operations per sample (the largest
// any rank asks for) and the samples start together: ranks sharing cores contend for the whole of
// every sample, as training workers do, instead of one finishing early and the others then
// running alone.
absl::StatusOr<Timing> TimeLocal(const std::function<absl::Status()>& op,
                                 const std::function<absl::Status()>& sync,
                                 const ProbeBudget& budget,
                                 runtime::Communicator* lockstep = nullptr);

// Every rank of `control` (host memory: Gloo) calls this with the same budget and its part of the
// collective `op` (blocking: returns when this rank's part is complete). Iteration counts are
// agreed (the slowest rank's warm-up decides), samples are started together (a barrier) and each
// sample's time is the slowest rank's. Errors: the op's, the control communicator's.
absl::StatusOr<Timing> TimeCollective(runtime::Communicator* control,
                                      const std::function<absl::Status()>& op,
                                      const ProbeBudget& budget);

double Median(std::vector<double> values);

}  // namespace cairn::agent

#endif  // CAIRN_AGENT_PROBES_PROBE_HARNESS_H_
