// runtime/train/launcher.h — starts N local worker processes and keeps them honest.
//
// `cairn-train --nproc N` forks N workers (RANK, WORLD_SIZE, LOCAL_RANK set in each) that meet
// through a fresh FileStore directory. The parent waits; when a worker fails (non-zero exit or a
// signal), the others are terminated (SIGTERM, then SIGKILL after a grace period) so nothing
// hangs, and the parent reports which rank failed first and how.
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

}  // namespace cairn::runtime

#endif  // CAIRN_RUNTIME_TRAIN_LAUNCHER_H_
