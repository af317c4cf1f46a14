// Failure behaviour shared by every implementation (testing/backends.h): a rank that leaves makes the
// others fail fast, a rank that hangs makes them fail at the timeout, errors name the peer, and a
// failed or aborted communicator stays failed.
//
// No test sleeps or asserts a duration. "Fast" is shown by giving the group a 10-minute timeout: only
// detection of the departure (Unavailable) can end those tests before Bazel's test timeout.
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/synchronization/notification.h"
#include "common/testing/status_matchers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "runtime/comm/communicator.h"
#include "runtime/comm/testing/backends.h"

namespace cairn::runtime {
namespace {

using ::cairn::testing::StatusIs;
using ::testing::HasSubstr;
using testing::AllCommBackends;
using testing::CommGroup;
using testing::FindCommBackend;

constexpr absl::Duration kForever = absl::Minutes(10);
constexpr absl::Duration kShort = absl::Milliseconds(300);

class CommFailureTest : public ::testing::TestWithParam<std::string> {
 protected:
  absl::StatusOr<CommGroup> MakeGroup(int size, absl::Duration timeout) {
    return FindCommBackend(GetParam()).make_group(size, timeout);
  }
};

TEST_P(CommFailureTest, RankThatLeavesMakesTheOthersFailFast) {
  ASSERT_OK_AND_ASSIGN(CommGroup comms, MakeGroup(4, kForever));
  comms[2].reset();  // rank 2 exits without taking part
  std::vector<absl::Status> results(4);
  std::vector<std::thread> threads;
  for (int r : {0, 1, 3}) {
    threads.emplace_back([&, r] {
      std::vector<float> x(1000, 1.0f);
      results[r] = comms[r]->AllReduce(x.data(), x.data(), x.size());
    });
  }
  for (std::thread& t : threads) t.join();
  bool someone_named_rank_2 = false;
  for (int r : {0, 1, 3}) {
    EXPECT_THAT(results[r], StatusIs(absl::StatusCode::kUnavailable, HasSubstr("all_reduce")))
        << "rank " << r;
    someone_named_rank_2 |= absl::StrContains(results[r].message(), "rank 2");
  }
  EXPECT_TRUE(someone_named_rank_2) << results[3];
  // The communicator stays failed, with the first failure's code.
  for (int r : {0, 1, 3}) {
    EXPECT_THAT(comms[r]->Barrier(),
                StatusIs(absl::StatusCode::kUnavailable, HasSubstr("earlier failure")));
  }
}

TEST_P(CommFailureTest, RankThatHangsMakesTheOthersFailAtTheTimeout) {
  ASSERT_OK_AND_ASSIGN(CommGroup comms, MakeGroup(4, kShort));
  std::vector<absl::Status> results(4);
  absl::Notification others_done;
  std::vector<std::thread> threads;
  for (int r = 0; r < 4; ++r) {
    threads.emplace_back([&, r] {
      std::vector<float> x(100, 1.0f);
      if (r == 3) others_done.WaitForNotification();  // rank 3 is late: it hangs until they gave up
      results[r] = comms[r]->AllReduce(x.data(), x.data(), x.size());
    });
  }
  for (int r = 0; r < 3; ++r) threads[r].join();
  others_done.Notify();
  threads[3].join();
  int timed_out = 0;
  for (int r = 0; r < 3; ++r) {
    // The first rank to time out closes its connections, so the others may see Unavailable first.
    EXPECT_TRUE(absl::IsDeadlineExceeded(results[r]) || absl::IsUnavailable(results[r]))
        << "rank " << r << ": " << results[r];
    EXPECT_THAT(std::string(results[r].message()), HasSubstr("all_reduce"));
    timed_out += absl::IsDeadlineExceeded(results[r]);
  }
  EXPECT_GE(timed_out, 1);
  // The late rank finds its peers gone.
  EXPECT_FALSE(results[3].ok());
}

TEST_P(CommFailureTest, RecvFromASilentPeerTimesOutNamingIt) {
  ASSERT_OK_AND_ASSIGN(CommGroup comms, MakeGroup(3, kShort));
  float x = 0;
  EXPECT_THAT(comms[0]->Recv(&x, 1, 2, 5),
              StatusIs(absl::StatusCode::kDeadlineExceeded, HasSubstr("rank 2")));
  EXPECT_THAT(comms[0]->Send(&x, 1, 1, 5), StatusIs(absl::StatusCode::kDeadlineExceeded,
                                                     HasSubstr("earlier failure")));
}

TEST_P(CommFailureTest, AbortFailsPendingAndLaterOperationsAndPeersFailFast) {
  ASSERT_OK_AND_ASSIGN(CommGroup comms, MakeGroup(2, kForever));
  float x = 0;
  ASSERT_OK_AND_ASSIGN(auto pending, comms[0]->RecvAsync(&x, 1, 1, 0));  // never sent
  std::thread aborter([&] { comms[0]->Abort("the loss became NaN"); });
  EXPECT_THAT(pending->Wait(),
              StatusIs(absl::StatusCode::kAborted, HasSubstr("the loss became NaN")));
  aborter.join();
  EXPECT_THAT(comms[0]->Barrier(), StatusIs(absl::StatusCode::kAborted, HasSubstr("NaN")));
  // Rank 1 finds rank 0 gone at once (not after ten minutes).
  EXPECT_THAT(comms[1]->Barrier(), StatusIs(absl::StatusCode::kUnavailable, HasSubstr("rank 0")));
}

TEST_P(CommFailureTest, SubGroupFailureLeavesOtherGroupsWorking) {
  ASSERT_OK_AND_ASSIGN(CommGroup comms, MakeGroup(4, kForever));
  std::vector<std::unique_ptr<Communicator>> pairs(4);
  testing::RunOnRanks(comms, [&](int rank, Communicator& world) {
    for (const std::vector<int>& list : {std::vector<int>{0, 2}, std::vector<int>{1, 3}}) {
      absl::StatusOr<std::unique_ptr<Communicator>> sub = world.Split(list);
      ASSERT_OK(sub.status());
      if (*sub != nullptr) pairs[rank] = *std::move(sub);
    }
  });
  pairs[2].reset();  // world rank 2 leaves group {0, 2}
  float x = 1.0f;
  EXPECT_THAT(pairs[0]->AllReduce(&x, &x, 1),
              StatusIs(absl::StatusCode::kUnavailable, HasSubstr("(world rank 2)")));
  // Group {1, 3} is unaffected.
  testing::RunOnRanks(comms, [&](int rank, Communicator&) {
    if (rank % 2 == 0) return;
    float y = 1.0f;
    EXPECT_OK(pairs[rank]->AllReduce(&y, &y, 1));
    EXPECT_EQ(y, 2.0f);
  });
}

INSTANTIATE_TEST_SUITE_P(Backends, CommFailureTest, ::testing::ValuesIn([] {
                           std::vector<std::string> names;
                           for (const auto& backend : AllCommBackends()) {
                             names.push_back(backend.name);
                           }
                           return names;
                         }()),
                         [](const ::testing::TestParamInfo<std::string>& info) {
                           return info.param;
                         });

}  // namespace
}  // namespace cairn::runtime
