// agent/probes/time_limit.h — how a probe run keeps to `cairn-probe --time-limit-s`: the time
// left is shared among the suites still to run, and inside a suite no case starts after its
// deadline. Skipped cases are counted in the report (ProbeReport.skipped), so a partial report
// says what it lacks; the exit status stays 0.
//
//   // cairn-probe: the limit from the process start, shared by the suites that will run.
//   TimeShares shares(start + absl::Seconds(limit_s), {{"compute", 0.35}, {"layers", 0.35}});
//   config.deadline = shares.Start("compute");   // now + left x 0.35 / (0.35 + 0.35)
//   ... the compute suite runs, maybe ending early ...
//   layers.deadline = shares.Start("layers");    // all that is left
//
//   // A suite: one gate per suite, asked before every case, on every rank of `lockstep` alike.
//   CaseGate gate(config.deadline, config.lockstep);
//   for (const Case& c : cases) {
//     CAIRN_ASSIGN_OR_RETURN(bool run, gate.Next());
//     if (!run) continue;                         // counted as skipped
//     ... measure c ...
//   }
//   RecordSkipped(report, "compute", "gemm", gate.skipped());
//
// Agreement: ranks probing together (a lockstep or control communicator) must run the same cases,
// or their collectives would pair different cases. With a deadline, CaseGate::Next() takes the
// AllReduce max of "this rank is past the deadline" over `lockstep` before each case: every rank
// runs the case or every rank skips it. The first skip is final (later cases are skipped without
// communicating; every rank knows it at once). Without a deadline (InfiniteFuture) Next() is always
// true and communicates nothing, so a run without a limit makes the same collective calls as
// before limits existed. Every rank must pass the same --time-limit-s (all finite or all none).
//
// The limit bounds when cases start, not when they end: a run ends after its limit by at most the
// case in flight and the report's writing. A suite that overruns its share leaves less to the
// next ones (their shares are computed from what is actually left when they start).
#ifndef CAIRN_AGENT_PROBES_TIME_LIMIT_H_
#define CAIRN_AGENT_PROBES_TIME_LIMIT_H_

#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "agent/probes/probe_report.pb.h"
#include "runtime/comm/communicator.h"

namespace cairn::agent {

// The time left until `deadline`, shared by weight among parts (suites, or a suite's probes) in
// the order they start. Not thread-safe.
class TimeShares {
 public:
  // `deadline` InfiniteFuture: no limit (every Start returns InfiniteFuture). Weights > 0; list
  // only the parts that will run, so that their shares add up to the whole.
  TimeShares(absl::Time deadline, std::vector<std::pair<std::string, double>> weights);

  // The deadline of `part`, which starts at `now`: now + (deadline - now) x w(part) / (sum of the
  // weights of the parts not started yet, this one included). Marks it started. At or past the
  // deadline: `deadline` itself (the part's cases are all skipped). A part not listed, or started
  // twice, gets the whole time left.
  absl::Time Start(const std::string& part, absl::Time now = absl::Now());

 private:
  absl::Time deadline_;
  std::vector<std::pair<std::string, double>> waiting_;  // parts not started yet
};

// Whether the next case of a suite may start (see the overview). Not thread-safe.
class CaseGate {
 public:
  // `deadline` InfiniteFuture: every case runs, no communication. `lockstep`: the ranks probing
  // together (nullptr: this rank alone); all of them build a gate with their own deadline and
  // call Next() the same number of times.
  CaseGate(absl::Time deadline, runtime::Communicator* lockstep);

  // True: start the case. False: skip it (counted in skipped()); from then on always false.
  // Errors: the lockstep communicator's (the suite then fails as a whole, as it would in its
  // next collective).
  absl::StatusOr<bool> Next(absl::Time now = absl::Now());
  // True once Next() returned false: every rank of the lockstep knows it (the ranks agreed), so a
  // suite may skip a whole group of cases, and collectives between them, on this alone.
  bool expired() const { return expired_; }
  // Counts `n` more skipped cases (a group left out on expired() without asking per case).
  void Skip(int n) { skipped_ += n; }
  int skipped() const { return skipped_; }

 private:
  absl::Time deadline_;
  runtime::Communicator* lockstep_;
  bool expired_ = false;
  int skipped_ = 0;
};

// Adds `count` (> 0) skipped cases of `suite` / `probe` to the report, reason "time limit".
void RecordSkipped(ProbeReport* report, const std::string& suite, const std::string& probe,
                   int count);
// The skipped cases of `suite` in the report, all probes together.
int SkippedIn(const ProbeReport& report, const std::string& suite);

// The order to visit n sorted cases so that any prefix spans the range: the first, the last, then
// midpoints breadth first (n = 7: 0 6 3 1 4 2 5). Each index once.
std::vector<int> BisectionOrder(int n);

}  // namespace cairn::agent

#endif  // CAIRN_AGENT_PROBES_TIME_LIMIT_H_
