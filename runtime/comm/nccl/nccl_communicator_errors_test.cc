// What NcclCommunicator must do without a GPU (this test runs in CI, where there is no device or
// driver, and on GPU machines): reject bad arguments before touching CUDA, report a missing device
// as FailedPrecondition, and keep NVLink multicast off unless CAIRN_ALLOW_NVLS=1.
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>

#include "absl/strings/str_cat.h"
#include "common/testing/status_matchers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "runtime/comm/file_store.h"
#include "runtime/comm/nccl/nccl_communicator.h"

namespace cairn::runtime {
namespace {

using ::cairn::testing::StatusIs;
using ::testing::HasSubstr;

std::shared_ptr<Store> TempStore(const std::string& name) {
  const char* tmp = std::getenv("TEST_TMPDIR");
  absl::StatusOr<std::unique_ptr<FileStore>> store =
      FileStore::Open(absl::StrCat(tmp != nullptr ? tmp : "/tmp", "/nccl-errors-", getpid(), "-",
                                   name));
  EXPECT_OK(store.status());
  return std::shared_ptr<Store>(*std::move(store));
}

TEST(NcclCommunicatorErrorsTest, BadArgumentsAreRejectedBeforeAnythingElse) {
  EXPECT_THAT(NcclCommunicator::Create(2, 2, TempStore("a")).status(),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("outside a group of size 2")));
  EXPECT_THAT(NcclCommunicator::Create(0, 0, TempStore("b")).status(),
              StatusIs(absl::StatusCode::kInvalidArgument, ::testing::_));
  EXPECT_THAT(NcclCommunicator::Create(0, 1, nullptr).status(),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("no store")));
  NcclOptions options;
  options.timeout = absl::ZeroDuration();
  EXPECT_THAT(NcclCommunicator::Create(0, 1, TempStore("c"), options).status(),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("timeouts")));
}

TEST(NcclCommunicatorErrorsTest, AMissingDeviceIsAFailedPrecondition) {
  // No driver (CI): "no CUDA device"; a GPU machine: device 1000 "does not exist".
  NcclOptions options;
  options.device = 1000;
  options.rendezvous_timeout = absl::Seconds(5);
  EXPECT_THAT(NcclCommunicator::Create(0, 1, TempStore("d"), options).status(),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       HasSubstr("rendezvous of group 'world' (rank 0 of 1, nccl)")));
}

// When this binary is started with CAIRN_NVLS_PROBE=<expected result>,<expected NCCL_NVLS_ENABLE>
// it only calls DisableNvlsUnlessAllowed() (first thing in the process, before main) and exits 0
// if both match. The first call decides for a process, so each case needs a fresh one.
const bool kNvlsProbe = [] {
  const char* probe = std::getenv("CAIRN_NVLS_PROBE");
  if (probe == nullptr) return false;
  const bool expect_allowed = probe[0] == '1';
  const char* expect_env = probe + 2;
  const bool allowed = DisableNvlsUnlessAllowed();
  const char* nvls = std::getenv("NCCL_NVLS_ENABLE");
  _exit(allowed == expect_allowed && nvls != nullptr && std::strcmp(nvls, expect_env) == 0 ? 0 : 1);
  return true;
}();

// Runs the probe in a fresh process with CAIRN_ALLOW_NVLS = `allow` (nullptr: unset) and
// NCCL_NVLS_ENABLE=1 set as a user might have; whether the probe's expectations held.
bool NvlsInFreshProcess(const char* allow, bool expect_allowed, const char* expect_env) {
  const std::string probe = absl::StrCat(expect_allowed ? "1" : "0", ",", expect_env);
  const pid_t pid = fork();
  if (pid == 0) {
    if (allow != nullptr) {
      setenv("CAIRN_ALLOW_NVLS", allow, 1);
    } else {
      unsetenv("CAIRN_ALLOW_NVLS");
    }
    setenv("NCCL_NVLS_ENABLE", "1", 1);
    setenv("CAIRN_NVLS_PROBE", probe.c_str(), 1);
    execl("/proc/self/exe", "nccl_communicator_errors_test", static_cast<char*>(nullptr));
    _exit(2);
  }
  if (pid < 0) return false;
  int status = 0;
  if (waitpid(pid, &status, 0) != pid) return false;
  return WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

TEST(NcclCommunicatorErrorsTest, NvlsIsForcedOffEvenOverAUserSetting) {
  EXPECT_TRUE(NvlsInFreshProcess(nullptr, /*expect_allowed=*/false, "0"));
  EXPECT_TRUE(NvlsInFreshProcess("0", /*expect_allowed=*/false, "0"));
}

TEST(NcclCommunicatorErrorsTest, CairnAllowNvlsLeavesTheUsersSetting) {
  EXPECT_TRUE(NvlsInFreshProcess("1", /*expect_allowed=*/true, "1"));
}

TEST(NcclCommunicatorErrorsTest, CreateTurnsNvlsOff) {
  if (std::getenv("CAIRN_ALLOW_NVLS") != nullptr) GTEST_SKIP() << "CAIRN_ALLOW_NVLS is set";
  NcclOptions options;
  options.device = 1000;  // fails after turning NVLS off
  EXPECT_FALSE(NcclCommunicator::Create(0, 1, TempStore("e"), options).ok());
  EXPECT_STREQ(std::getenv("NCCL_NVLS_ENABLE"), "0");
}

}  // namespace
}  // namespace cairn::runtime
