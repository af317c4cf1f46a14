// What only the in-process communicator does: name engine bugs (mismatched collectives, mismatched
// send/recv sizes and types), reduce bf16 with one rounding, and run a body on N ranks. The collectives themselves are checked against the
// other backends in ../communicator_parity_test.cc.
#include "runtime/comm/local/local_communicator.h"

#include <cstdint>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/testing/status_matchers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace cairn::runtime {
namespace {

using ::cairn::testing::StatusIs;
using ::testing::AllOf;
using ::testing::HasSubstr;

TEST(LocalCommunicatorTest, RunLocalRanksRunsEveryRank) {
  EXPECT_OK(RunLocalRanks(4, [](Communicator& comm) -> absl::Status {
    float x = static_cast<float>(comm.rank());
    absl::Status s = comm.AllReduce(&x, &x, 1);
    if (!s.ok()) return s;
    if (x != 6.0f) return absl::InternalError(absl::StrCat("sum is ", x));
    return absl::OkStatus();
  }));
}

TEST(LocalCommunicatorTest, RunLocalRanksReportsTheFailingRankAndStopsTheOthers) {
  // Rank 1 fails before the all-reduce; the others must not wait for the (one-minute) timeout.
  absl::Status s = RunLocalRanks(3, [](Communicator& comm) -> absl::Status {
    if (comm.rank() == 1) return absl::InternalError("bad batch");
    float x = 1.0f;
    return comm.AllReduce(&x, &x, 1);
  });
  EXPECT_THAT(s, StatusIs(absl::StatusCode::kUnavailable,
                          AllOf(HasSubstr("rank 0: "), HasSubstr("rank 1 aborted: bad batch"))));
}

TEST(LocalCommunicatorTest, MismatchedCollectivesFailOnEveryRankNamingBothCalls) {
  std::vector<absl::Status> results(2);
  auto comms = LocalCommunicator::CreateGroup(2);
  std::vector<std::thread> threads;
  threads.emplace_back([&] {
    std::vector<float> x(8, 1.0f);
    results[0] = comms[0]->AllReduce(x.data(), x.data(), 8);
  });
  threads.emplace_back([&] {
    std::vector<float> in(4, 1.0f), out(8);
    results[1] = comms[1]->AllGather(in.data(), out.data(), 4);
  });
  for (std::thread& t : threads) t.join();
  for (const absl::Status& s : results) {
    EXPECT_THAT(s, StatusIs(absl::StatusCode::kInvalidArgument,
                            AllOf(HasSubstr("all_reduce(count=8, f32, sum)"),
                                  HasSubstr("all_gather(count=4, f32)"),
                                  HasSubstr("operation #0"))));
  }
}

TEST(LocalCommunicatorTest, MismatchedSendAndRecvSizesFailBothSides) {
  auto comms = LocalCommunicator::CreateGroup(2);
  std::vector<float> buf(8, 1.0f);
  ASSERT_OK_AND_ASSIGN(auto send, comms[0]->SendAsync(buf.data(), 8, 1, 0));
  std::vector<float> got(4);
  EXPECT_THAT(comms[1]->Recv(got.data(), 4, 0, 0),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("send of 8 f32 elements")));
  EXPECT_THAT(send->Wait(), StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("recv of 4")));
}

TEST(LocalCommunicatorTest, SendWaitsForTheMatchingRecvLikeGloo) {
  // Both ranks send first: with rendezvous semantics this deadlocks until the timeout, which is how
  // such an engine bug must show up in tests that use this fake.
  LocalOptions options;
  options.timeout = absl::Milliseconds(100);
  auto comms = LocalCommunicator::CreateGroup(2, options);
  std::vector<absl::Status> results(2);
  std::vector<std::thread> threads;
  for (int r = 0; r < 2; ++r) {
    threads.emplace_back([&, r] {
      float x = 1.0f;
      results[r] = comms[r]->Send(&x, 1, 1 - r, 0);
    });
  }
  for (std::thread& t : threads) t.join();
  for (const absl::Status& s : results) {
    EXPECT_TRUE(absl::IsDeadlineExceeded(s) || absl::IsUnavailable(s)) << s;
  }
}

TEST(LocalCommunicatorTest, SendAndRecvOfDifferentTypesFailOnBothSides) {
  auto comms = LocalCommunicator::CreateGroup(2);
  std::vector<absl::Status> results(2);
  std::thread sender([&] {
    int32_t x = 7;
    results[0] = comms[0]->Send(&x, 1, 1, 0);
  });
  std::thread receiver([&] {
    float y = 0;
    results[1] = comms[1]->Recv(&y, 1, 0, 0);
  });
  sender.join();
  receiver.join();
  for (const absl::Status& s : results) {
    EXPECT_THAT(s, StatusIs(absl::StatusCode::kInvalidArgument,
                            AllOf(HasSubstr("1 i32 elements"), HasSubstr("recv of 1 f32"))));
  }
}

TEST(LocalCommunicatorTest, Bf16SumsRoundOnceAtTheEnd) {
  // 1 + 2^-8 + 2^-8 in fp32 is 1 + 2^-7, a bf16 value; rounding after each step would give 1
  // (1 + 2^-8 is a tie that rounds to the even 1).
  EXPECT_OK(RunLocalRanks(3, [](Communicator& comm) -> absl::Status {
    BFloat16 x = ToBFloat16(comm.rank() == 0 ? 1.0f : 1.0f / 256);
    absl::Status s = comm.AllReduce(&x, &x, 1);
    if (!s.ok()) return s;
    if (FromBFloat16(x) != 1.0f + 1.0f / 128) {
      return absl::InternalError(absl::StrCat("sum is ", FromBFloat16(x)));
    }
    return absl::OkStatus();
  }));
}

TEST(LocalCommunicatorTest, SingleRankGroupWorks) {
  auto comms = LocalCommunicator::CreateGroup(1);
  std::vector<float> x = {1, 2, 3};
  std::vector<float> y(3);
  EXPECT_OK(comms[0]->AllReduce(x.data(), y.data(), 3, ReduceOp::kAvg));
  EXPECT_EQ(y, x);
  EXPECT_OK(comms[0]->Barrier());
  ASSERT_OK_AND_ASSIGN(auto self, comms[0]->Split({0}));
  ASSERT_NE(self, nullptr);
  EXPECT_OK(self->AllGather(x.data(), y.data(), 3));
  EXPECT_EQ(y, x);
}

}  // namespace
}  // namespace cairn::runtime
