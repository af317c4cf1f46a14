#include "runtime/train/launcher.h"

#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"

namespace cairn::runtime {
namespace {

// The workers of the running launch, for the signal handler (which may only read these and call
// kill). Written before the handlers are installed and cleared after they are removed.
constexpr int kMaxWorkers = 4096;
pid_t g_workers[kMaxWorkers];
volatile sig_atomic_t g_num_workers = 0;
volatile sig_atomic_t g_stop_signal = 0;

// SIGTERM/SIGINT/SIGHUP to the launcher: remember it and pass it on to every worker, which then
// exits; the launcher's wait loop sees them go and returns Cancelled (so the caller cleans up).
void ForwardToWorkers(int sig) {
  g_stop_signal = sig;
  for (int i = 0; i < g_num_workers; ++i) {
    if (g_workers[i] > 0) kill(g_workers[i], sig);
  }
}

constexpr int kForwarded[] = {SIGTERM, SIGINT, SIGHUP};

}  // namespace

int LauncherStopSignal() { return g_stop_signal; }

absl::Status RunLocalWorkers(int nproc, const std::function<absl::Status(int rank)>& worker,
                             absl::Duration grace) {
  if (nproc > kMaxWorkers) {
    return absl::InvalidArgumentError(absl::StrCat("--nproc ", nproc, " exceeds ", kMaxWorkers));
  }
  std::vector<pid_t> pids(nproc, -1);
  std::fflush(stdout);
  std::fflush(stderr);
  g_stop_signal = 0;
  g_num_workers = 0;
  const pid_t launcher = getpid();
  // From here a stop signal reaches the workers (each resets it to the default). No SA_RESTART:
  // waitpid returns EINTR.
  struct sigaction forward = {}, previous[3];
  forward.sa_handler = ForwardToWorkers;
  sigemptyset(&forward.sa_mask);
  for (int i = 0; i < 3; ++i) sigaction(kForwarded[i], &forward, &previous[i]);
  auto restore = [&] {
    for (int i = 0; i < 3; ++i) sigaction(kForwarded[i], &previous[i], nullptr);
    g_num_workers = 0;
  };
  for (int r = 0; r < nproc; ++r) {
    const pid_t pid = fork();
    if (pid < 0) {
      for (pid_t p : pids) {
        if (p > 0) kill(p, SIGKILL);
      }
      restore();
      return absl::ResourceExhaustedError(absl::StrCat("cannot start worker ", r, ": fork failed"));
    }
    if (pid == 0) {
      // A worker dies with its launcher, even one killed with SIGKILL (which cannot be
      // forwarded); if the launcher is already gone, stop now.
      prctl(PR_SET_PDEATHSIG, SIGKILL);
      if (getppid() != launcher) _exit(1);
      for (int sig : kForwarded) std::signal(sig, SIG_DFL);
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
    g_workers[r] = pid;
    g_num_workers = r + 1;
  }
  // A signal that came while the workers were being forked missed the later ones.
  if (g_stop_signal != 0) ForwardToWorkers(g_stop_signal);
  int remaining = nproc;
  // Reaps workers for up to the grace period, then SIGKILLs those still running (the main loop's
  // blocking waitpid reaps them).
  auto ReapThenKill = [&] {
    const absl::Time deadline = absl::Now() + grace;
    int wstatus = 0;
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
  };
  absl::Status first_failure;
  bool stopping = false;
  while (remaining > 0) {
    if (g_stop_signal != 0 && !stopping) {
      // Stopped from outside: the workers have the signal; give them the grace period, then
      // SIGKILL (below, through the failure path's deadline).
      stopping = true;
      first_failure = absl::CancelledError(absl::StrCat(
          "stopped by signal ", static_cast<int>(g_stop_signal), " (", strsignal(g_stop_signal),
          "); the workers were stopped too"));
      ReapThenKill();
      continue;
    }
    int wstatus = 0;
    const pid_t pid = waitpid(-1, &wstatus, 0);
    if (pid < 0 && errno == EINTR) continue;
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
    ReapThenKill();
  }
  restore();
  return first_failure;
}

}  // namespace cairn::runtime
