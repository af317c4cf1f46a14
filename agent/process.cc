#include "agent/process.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <set>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"

extern char** environ;

namespace cairn::agent {
namespace {

ExitStatus FromWaitStatus(int status) {
  ExitStatus s;
  if (WIFEXITED(status)) {
    s.exit_code = WEXITSTATUS(status);
  } else if (WIFSIGNALED(status)) {
    s.signal = WTERMSIG(status);
  }
  return s;
}

}  // namespace

std::string ExitStatus::ToString() const {
  if (signal != 0) return absl::StrCat("killed by signal ", signal, " (", strsignal(signal), ")");
  return absl::StrCat("exited with status ", exit_code);
}

absl::StatusOr<std::unique_ptr<Process>> Process::Spawn(const SpawnOptions& o) {
  if (o.argv.empty()) return absl::InvalidArgumentError("spawn: empty argv");
  if (access(o.argv[0].c_str(), X_OK) != 0) {
    return absl::NotFoundError(absl::StrCat("spawn: ", o.argv[0], " is not an executable file"));
  }
  // Everything the child needs, prepared before fork.
  std::vector<std::string> env_strings;
  std::set<std::string> overridden;
  for (const auto& [k, v] : o.env) {
    env_strings.push_back(absl::StrCat(k, "=", v));
    overridden.insert(k);
  }
  for (char** e = environ; *e != nullptr; ++e) {
    const std::string entry(*e);
    const std::string key = entry.substr(0, entry.find('='));
    if (!overridden.count(key)) env_strings.push_back(entry);
  }
  std::vector<char*> envp, argv;
  for (std::string& s : env_strings) envp.push_back(s.data());
  envp.push_back(nullptr);
  std::vector<std::string> args = o.argv;
  for (std::string& s : args) argv.push_back(s.data());
  argv.push_back(nullptr);
  const std::string log = o.log_path.empty() ? "/dev/null" : o.log_path;
  const int log_fd = open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (log_fd < 0) {
    return absl::UnavailableError(absl::StrCat("spawn: cannot open ", log, ": ", strerror(errno)));
  }
  const int null_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
  const pid_t parent = getpid();
  const char* dir = o.working_dir.empty() ? nullptr : o.working_dir.c_str();

  const pid_t pid = fork();
  if (pid < 0) {
    const int err = errno;
    close(log_fd);
    if (null_fd >= 0) close(null_fd);
    return absl::UnavailableError(absl::StrCat("spawn: fork failed: ", strerror(err)));
  }
  if (pid == 0) {
    // Child: async-signal-safe calls only.
    setpgid(0, 0);
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent) _exit(127);  // the agent died before the line above
    // Signals the agent ignores or blocks are not the worker's business.
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, nullptr);
    signal(SIGPIPE, SIG_DFL);
    signal(SIGTERM, SIG_DFL);
    signal(SIGINT, SIG_DFL);
    if (null_fd >= 0) dup2(null_fd, STDIN_FILENO);
    dup2(log_fd, STDOUT_FILENO);
    dup2(log_fd, STDERR_FILENO);
    if (dir != nullptr && chdir(dir) != 0) _exit(126);
    execve(argv[0], argv.data(), envp.data());
    _exit(127);
  }
  close(log_fd);
  if (null_fd >= 0) close(null_fd);
  setpgid(pid, pid);  // also from the parent: no race with an early Terminate
  return std::unique_ptr<Process>(new Process(pid));
}

Process::~Process() {
  if (!status_.has_value()) Terminate(absl::ZeroDuration());
}

std::optional<ExitStatus> Process::Poll() {
  if (status_.has_value()) return status_;
  // Look without reaping first: while the leader is unreaped its group id cannot be reused, so
  // whatever it left in its group can be killed safely before the reap.
  siginfo_t info{};
  if (waitid(P_PID, pid_, &info, WEXITED | WNOHANG | WNOWAIT) != 0) {
    if (errno == ECHILD) status_ = ExitStatus{};  // reaped elsewhere; nothing more to learn
    return status_;
  }
  if (info.si_pid != pid_) return std::nullopt;  // still running
  kill(-pid_, SIGKILL);
  int status = 0;
  if (waitpid(pid_, &status, 0) == pid_) {
    status_ = FromWaitStatus(status);
  } else {
    status_ = ExitStatus{};
  }
  return status_;
}

std::optional<ExitStatus> Process::Wait(absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  absl::Duration step = absl::Milliseconds(1);
  while (true) {
    if (std::optional<ExitStatus> s = Poll()) return s;
    if (absl::Now() >= deadline) return std::nullopt;
    absl::SleepFor(std::min(step, deadline - absl::Now()));
    step = std::min(step * 2, absl::Milliseconds(50));
  }
}

ExitStatus Process::Terminate(absl::Duration grace) {
  if (std::optional<ExitStatus> s = Poll()) return *s;
  kill(-pid_, SIGTERM);
  if (grace > absl::ZeroDuration()) {
    if (std::optional<ExitStatus> s = Wait(grace)) return *s;
  }
  kill(-pid_, SIGKILL);
  int status = 0;
  if (waitpid(pid_, &status, 0) == pid_) {
    status_ = FromWaitStatus(status);
  } else {
    status_ = ExitStatus{0, SIGKILL};
  }
  return *status_;
}

std::string TailOfFile(const std::string& path, size_t max_bytes) {
  std::ifstream in(path, std::ios::binary | std::ios::ate);
  if (!in) return "";
  const std::streamoff size = in.tellg();
  const std::streamoff start = size > static_cast<std::streamoff>(max_bytes)
                                   ? size - static_cast<std::streamoff>(max_bytes)
                                   : 0;
  in.seekg(start);
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (start > 0) {
    const size_t nl = text.find('\n');
    if (nl != std::string::npos && nl + 1 < text.size()) text = text.substr(nl + 1);
  }
  return text;
}

}  // namespace cairn::agent
