// cairn-data as a process: flag mistakes exit 2 with a message (never a crash).
#include <sys/wait.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace {

using ::testing::HasSubstr;

struct ProcessResult {
  int exit_code = -1;  // -1: killed by a signal
  std::string output;
};

ProcessResult RunCairnData(const std::string& args) {
  const std::string bin = std::string(std::getenv("TEST_SRCDIR")) + "/" +
                          std::getenv("TEST_WORKSPACE") + "/runtime/data/cairn-data";
  ProcessResult r;
  FILE* p = popen((bin + " " + args + " 2>&1").c_str(), "r");
  char buf[512];
  while (size_t n = fread(buf, 1, sizeof(buf), p)) r.output.append(buf, n);
  const int status = pclose(p);
  if (WIFEXITED(status)) r.exit_code = WEXITSTATUS(status);
  return r;
}

// Regression (issue 12): `--val-fraction nan` passed the [0, 1) check (comparisons with NaN are
// false) and cairn-data died of SIGSEGV.
TEST(CairnDataTest, RefusesANonNumericValidationFraction) {
  const std::string dir = std::getenv("TEST_TMPDIR");
  std::ofstream(dir + "/book.txt") << "the quick brown fox jumps over the lazy dog\n";
  for (const char* bad : {"nan", "-nan", "inf", "1", "-0.5", "x"}) {
    const ProcessResult r = RunCairnData(dir + "/book.txt --output " + dir + "/d --val-fraction " + bad);
    EXPECT_EQ(r.exit_code, 2) << bad << ": " << r.output;
    EXPECT_THAT(r.output, HasSubstr("--val-fraction must be in [0, 1)")) << bad;
  }
  const ProcessResult ok = RunCairnData(dir + "/book.txt --output " + dir + "/d --val-fraction 0.25");
  EXPECT_EQ(ok.exit_code, 0) << ok.output;
  EXPECT_THAT(ok.output, HasSubstr("44 tokens from 1 file(s): 33 train, 11 validation"));
}

}  // namespace
