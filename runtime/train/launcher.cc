#include "runtime/train/launcher.h"

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"

namespace cairn::runtime {

absl::Status RunLocalWorkers(int nproc, const std::function<absl::Status(int rank)>& worker,
                             absl::Duration grace) {
  std::vector<pid_t> pids(nproc, -1);
  std::fflush(stdout);
  std::fflush(stderr);
  for (int r = 0; r < nproc; ++r) {
    const pid_t pid = fork();
    if (pid < 0) {
      for (pid_t p : pids) {
        if (p > 0) kill(p, SIGKILL);
      }
      return absl::ResourceExhaustedError(absl::StrCat("cannot start worker ", r, ": fork failed"));
    }
    if (pid == 0) {
      setenv("RANK", std::to_string(r).c_str(), 1);
      setenv("LOCAL_RANK", std::to_string(r).c_str(), 1);
      setenv("WORLD_SIZE", std::to_string(nproc).c_str(), 1);
      const absl::Status s = worker(r);
      if (!s.ok()) std::fprintf(stderr, "cairn-train: rank %d: %s\n", r, std::string(s.message()).c_str());
      std::fflush(stdout);
      std::fflush(stderr);
      _exit(s.ok() ? 0 : 1);
    }
    pids[r] = pid;
  }
  int remaining = nproc;
  absl::Status first_failure;
  while (remaining > 0) {
    int wstatus = 0;
    const pid_t pid = waitpid(-1, &wstatus, 0);
    if (pid < 0) break;
    int rank = -1;
    for (int r = 0; r < nproc; ++r) {
      if (pids[r] == pid) rank = r;
    }
    if (rank < 0) continue;
    pids[rank] = -1;
    --remaining;
    const bool ok = WIFEXITED(wstatus) && WEXITSTATUS(wstatus) == 0;
    if (ok || !first_failure.ok()) continue;
    first_failure = absl::AbortedError(
        WIFSIGNALED(wstatus)
            ? absl::StrCat("worker rank ", rank, " was killed by signal ", WTERMSIG(wstatus))
            : absl::StrCat("worker rank ", rank, " exited with status ", WEXITSTATUS(wstatus)));
    // Stop the others: they would otherwise wait on the dead rank until their timeout.
    for (pid_t p : pids) {
      if (p > 0) kill(p, SIGTERM);
    }
    const absl::Time deadline = absl::Now() + grace;
    while (remaining > 0 && absl::Now() < deadline) {
      const pid_t q = waitpid(-1, &wstatus, WNOHANG);
      if (q > 0) {
        for (int r = 0; r < nproc; ++r) {
          if (pids[r] == q) {
            pids[r] = -1;
            --remaining;
          }
        }
      } else {
        absl::SleepFor(absl::Milliseconds(20));
      }
    }
    for (pid_t p : pids) {
      if (p > 0) kill(p, SIGKILL);
    }
  }
  return first_failure;
}

}  // namespace cairn::runtime
