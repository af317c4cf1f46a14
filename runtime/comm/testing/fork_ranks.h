// runtime/comm/testing/fork_ranks.h — N ranks as N forked processes on this machine, for the
// multi-process tests and the collective benchmarks (each rank then meets the others through a
// FileStore or the environment, as real workers do).
//
//   std::vector<absl::Status> results = ForkRanks(4, dir, [&](int rank) -> absl::Status {
//     CAIRN_ASSIGN_OR_RETURN(std::shared_ptr<Store> store, FileStore::Open(dir));
//     CAIRN_ASSIGN_OR_RETURN(auto world, GlooCommunicator::Create(rank, 4, store));
//     return world->Barrier();
//   });
//   for (const absl::Status& s : results) EXPECT_OK(s);
//
// Each child runs body(rank), writes its status to `<results_dir>/result.<rank>` (the directory is
// created if missing), and exits without running the parent's atexit handlers or destructors. A
// child that wrote no result (it crashed, was killed, or exited early) gets Internal naming its
// wait status. The caller owns `results_dir` (a FileStore directory may serve as well). Call from
// a single-threaded parent: fork copies only the calling thread.
#ifndef CAIRN_RUNTIME_COMM_TESTING_FORK_RANKS_H_
#define CAIRN_RUNTIME_COMM_TESTING_FORK_RANKS_H_

#include <functional>
#include <string>
#include <vector>

#include "absl/status/status.h"

namespace cairn::runtime {

std::vector<absl::Status> ForkRanks(int n, const std::string& results_dir,
                                    const std::function<absl::Status(int rank)>& body);

}  // namespace cairn::runtime

#endif  // CAIRN_RUNTIME_COMM_TESTING_FORK_RANKS_H_
