#include "runtime/comm/testing/fork_ranks.h"

#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <system_error>

#include "absl/strings/str_cat.h"

namespace cairn::runtime {

std::vector<absl::Status> ForkRanks(int n, const std::string& results_dir,
                                    const std::function<absl::Status(int rank)>& body) {
  std::error_code error;
  std::filesystem::create_directories(results_dir, error);
  if (error) {
    return std::vector<absl::Status>(
        n, absl::FailedPreconditionError(
               absl::StrCat("cannot create ", results_dir, ": ", error.message())));
  }
  auto result_path = [&](int rank) { return absl::StrCat(results_dir, "/result.", rank); };
  std::vector<pid_t> pids;
  for (int rank = 0; rank < n; ++rank) {
    std::fflush(nullptr);  // nothing buffered is written twice
    const pid_t pid = fork();
    if (pid == 0) {
      const absl::Status status = body(rank);
      {
        std::ofstream out(result_path(rank));
        out << static_cast<int>(status.code()) << "\n" << status.message();
      }
      std::fflush(nullptr);
      _exit(0);
    }
    pids.push_back(pid);
  }
  std::vector<absl::Status> results(n);
  for (int rank = 0; rank < n; ++rank) {
    if (pids[rank] < 0) {
      results[rank] = absl::InternalError(absl::StrCat("rank ", rank, ": fork failed"));
      continue;
    }
    int wstatus = 0;
    waitpid(pids[rank], &wstatus, 0);
    std::ifstream in(result_path(rank));
    int code = 0;
    if (!(in >> code)) {
      results[rank] = absl::InternalError(absl::StrCat(
          "rank ", rank, " wrote no result (",
          WIFSIGNALED(wstatus) ? absl::StrCat("killed by signal ", WTERMSIG(wstatus))
                               : absl::StrCat("exit status ", WEXITSTATUS(wstatus)),
          ")"));
      continue;
    }
    in.get();  // the newline
    std::stringstream message;
    message << in.rdbuf();
    results[rank] = absl::Status(static_cast<absl::StatusCode>(code), message.str());
  }
  return results;
}

}  // namespace cairn::runtime
