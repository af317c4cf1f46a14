// runtime/train/launcher.h — starts N local worker processes and keeps them honest.
//
// `cairn-train --nproc N` forks N workers (RANK, WORLD_SIZE, LOCAL_RANK set in each) that meet
// through a fresh FileStore directory. The parent waits; when a worker fails (non-zero exit or a
// signal), the others are terminated (SIGTERM, then SIGKILL after a grace period) so nothing
// hangs, and the parent reports which rank failed first and how.
//
// Signals: SIGTERM, SIGINT or SIGHUP to the launcher while workers run is forwarded to every worker;
// RunLocalWorkers then waits for them (SIGKILL after the grace period) and returns Cancelled, so the
// caller can clean up and exit. Workers also get PR_SET_PDEATHSIG(SIGKILL): a launcher killed with
// SIGKILL takes its workers with it.
//
//   absl::Status s = RunLocalWorkers(4, [](int rank) { return TrainWorker(rank, ...); });
#ifndef CAIRN_RUNTIME_TRAIN_LAUNCHER_H_
#define CAIRN_RUNTIME_TRAIN_LAUNCHER_H_

#include <functional>

#include "absl/status/status.h"
#include "absl/time/time.h"

namespace cairn::runtime {

// Runs `worker(rank)` in `nproc` child processes (exit status 0 when it returns OK, 1 otherwise,
// after printing the error). OK when all succeed; otherwise Aborted/Internal naming the first
// failed rank, its exit code or signal.
absl::Status RunLocalWorkers(int nproc, const std::function<absl::Status(int rank)>& worker,
                             absl::Duration grace = absl::Seconds(5));

// The signal that stopped the last RunLocalWorkers (0: none), so main can exit the way it was asked
// to (re-raising it once it has cleaned up).
int LauncherStopSignal();

}  // namespace cairn::runtime

#endif  // CAIRN_RUNTIME_TRAIN_LAUNCHER_H_
