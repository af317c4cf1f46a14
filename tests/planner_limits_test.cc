// The `cairn` CLI on the requests of issue 12 that used to kill it (SIGFPE, bad_alloc, the OOM
// killer): each now ends at once with exit status 2 and a message naming the limit.
#include <sstream>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "planner/cli/commands.h"

namespace cairn {
namespace {

using ::testing::HasSubstr;

struct CliRun {
  int status;
  std::string out, err;
};

CliRun Cairn(std::vector<std::string> argv) {
  std::ostringstream out, err;
  const int status = cli::RunCommand(argv, out, err);
  return {status, out.str(), err.str()};
}

TEST(PlannerLimitsTest, LocalPlanRefusesOutOfRangeRequests) {
  struct Case {
    std::vector<std::string> extra;
    const char* message;
  };
  const Case kCases[] = {
      {{"--global-batch", "2147483647"}, "global_batch_size: 2147483647 samples exceeds"},
      {{"--global-batch", "1000000007"}, "exceeds the planner's limit of 16777216"},
      {{"--global-batch", "10000019"}, "tokens per step exceeds the planner's limit"},
      {{"--global-batch", "64", "--memory-gb", "nan"}, "--memory-gb must be a positive number of "
                                                       "GiB per device (leave it out for the "
                                                       "whole device), got nan"},
      {{"--global-batch", "64", "--memory-gb", "0"}, "got 0"},
      {{"--global-batch", "64", "--memory-quantum-mb", "nan"}, "--memory-quantum-mb must be"},
  };
  for (const Case& c : kCases) {
    std::vector<std::string> argv = {"plan", "--model", "llama2-7b", "--nodes", "1"};
    argv.insert(argv.end(), c.extra.begin(), c.extra.end());
    const CliRun r = Cairn(argv);
    EXPECT_EQ(r.status, 2) << c.message << ": " << r.err;
    EXPECT_THAT(r.err, HasSubstr(c.message));
  }
}

}  // namespace
}  // namespace cairn
