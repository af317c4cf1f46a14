// agent/process.h — a child process the agent starts (a cairn-train worker, a cairn-probe rank):
// its own process group, stdout and stderr appended to a log file, killed with the agent.
//
//   SpawnOptions o;
//   o.argv = {"/opt/cairn/cairn-train", "--plan", "plan.json", ...};
//   o.env = {{"RANK", "3"}, ...};          // added to (or replacing) the agent's environment
//   o.log_path = "/var/lib/cairn-agent/jobs/job-7/rank-3.log";
//   CAIRN_ASSIGN_OR_RETURN(std::unique_ptr<Process> p, Process::Spawn(o));
//   ...
//   std::optional<ExitStatus> done = p->Poll();   // nullopt while it runs
//   p->Terminate(absl::Seconds(5));               // SIGTERM to the group, SIGKILL after the grace
//
// Contracts:
// - The child gets PR_SET_PDEATHSIG(SIGKILL) tied to the thread that spawned it: when that thread
//   (or the agent) dies, the kernel kills the child, so a `kill -9` of the agent leaves no worker
//   running. Spawn from a thread that outlives the child (the agent's job threads do).
// - fork + exec with nothing but async-signal-safe calls between them (everything the child
//   needs is prepared before fork), so it is safe in the agent's multi-threaded process.
// - Terminate signals the whole process group (a worker's own children too) and reaps the child.
// - The destructor terminates a child still running (grace 0).
// Thread-compatible: one thread drives a Process.
#ifndef CAIRN_AGENT_PROCESS_H_
#define CAIRN_AGENT_PROCESS_H_

#include <sys/types.h>

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace cairn::agent {

struct SpawnOptions {
  std::vector<std::string> argv;             // argv[0] is the executable's path
  std::map<std::string, std::string> env;    // added to the agent's environment
  std::string log_path;                      // stdout and stderr, appended; "" = /dev/null
  std::string working_dir;                   // "" = the agent's
};

struct ExitStatus {
  int exit_code = 0;   // when exited normally
  int signal = 0;      // when killed by a signal (then exit_code is 0)
  bool ok() const { return exit_code == 0 && signal == 0; }
  // "exited with status 3", "killed by signal 9 (Killed)".
  std::string ToString() const;
};

class Process {
 public:
  // Errors: InvalidArgument for an empty argv; NotFound when argv[0] is not an executable file;
  // Unavailable when the log cannot be opened or fork fails.
  static absl::StatusOr<std::unique_ptr<Process>> Spawn(const SpawnOptions& options);
  ~Process();
  Process(const Process&) = delete;
  Process& operator=(const Process&) = delete;

  pid_t pid() const { return pid_; }
  // The exit status once the child ended (reaped on the first call that sees it), else nullopt.
  std::optional<ExitStatus> Poll();
  // Blocks until the child ends (bounded by `timeout`; nullopt when it is still running).
  std::optional<ExitStatus> Wait(absl::Duration timeout);
  // SIGTERM to the process group, SIGKILL after `grace` if it has not exited; reaps it. Returns
  // its exit status. Idempotent.
  ExitStatus Terminate(absl::Duration grace);

 private:
  explicit Process(pid_t pid) : pid_(pid) {}
  pid_t pid_;
  std::optional<ExitStatus> status_;
};

// The last `max_bytes` of a file, from a line start where possible ("" when unreadable): the tail of
// a worker's log for a failure message.
std::string TailOfFile(const std::string& path, size_t max_bytes);

}  // namespace cairn::agent

#endif  // CAIRN_AGENT_PROCESS_H_
