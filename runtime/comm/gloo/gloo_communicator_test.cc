// What only the Gloo communicator does: rendezvous errors, options, the environment launch of a
// single rank. Collectives and failures shared with the other backends are checked in
// ../communicator_parity_test.cc and ../communicator_failure_test.cc; real processes in
// gloo_multiprocess_test.cc.
#include "runtime/comm/gloo/gloo_communicator.h"

#include <atomic>
#include <cstdlib>
#include <memory>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/testing/status_matchers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "runtime/comm/file_store.h"

namespace cairn::runtime {
namespace {

using ::cairn::testing::StatusIs;
using ::testing::AllOf;
using ::testing::HasSubstr;
using ::testing::Not;

std::shared_ptr<Store> FreshStore() {
  static std::atomic<int> counter{0};
  absl::StatusOr<std::unique_ptr<FileStore>> store =
      FileStore::Open(absl::StrCat(std::getenv("TEST_TMPDIR"), "/gloo-", counter++));
  EXPECT_OK(store.status());
  return std::shared_ptr<Store>(*std::move(store));
}

GlooOptions WithTimeout(absl::Duration timeout) {
  GlooOptions options;
  options.timeout = timeout;
  options.rendezvous_timeout = timeout;
  return options;
}

TEST(GlooCommunicatorTest, RendezvousNamesTheRanksThatDidNotJoin) {
  std::shared_ptr<Store> store = FreshStore();
  std::vector<absl::Status> results(2);
  std::vector<std::thread> threads;
  for (int r = 0; r < 2; ++r) {  // ranks 2 and 3 of 4 never come
    threads.emplace_back([&, r] {
      results[r] = GlooCommunicator::Create(r, 4, store, WithTimeout(absl::Seconds(1))).status();
    });
  }
  for (std::thread& t : threads) t.join();
  for (const absl::Status& s : results) {
    EXPECT_THAT(s, StatusIs(absl::StatusCode::kDeadlineExceeded,
                            AllOf(HasSubstr("rendezvous of group 'world'"),
                                  HasSubstr("rank 2, rank 3 did not join"),
                                  Not(HasSubstr("rank 1,")))));
  }
}

TEST(GlooCommunicatorTest, SplitNamesTheMembersThatDidNotCome) {
  std::shared_ptr<Store> store = FreshStore();
  std::vector<std::unique_ptr<GlooCommunicator>> world(3);
  std::vector<std::thread> threads;
  for (int r = 0; r < 3; ++r) {
    threads.emplace_back([&, r] {
      GlooOptions options;
      // Long enough for three threads to meet even on a loaded machine; the Split below waits it out.
      options.rendezvous_timeout = absl::Seconds(2);
      auto made = GlooCommunicator::Create(r, 3, store, options);
      ASSERT_OK(made.status());
      world[r] = *std::move(made);
    });
  }
  for (std::thread& t : threads) t.join();
  ASSERT_TRUE(world[0] && world[1] && world[2]);
  threads.clear();
  std::vector<absl::Status> results(2);
  for (int r = 0; r < 2; ++r) {  // world rank 2 is a member but never calls Split
    threads.emplace_back([&, r] { results[r] = world[r]->Split({2, 0, 1}, "tp").status(); });
  }
  for (std::thread& t : threads) t.join();
  for (const absl::Status& s : results) {
    EXPECT_THAT(s, StatusIs(absl::StatusCode::kDeadlineExceeded,
                            AllOf(HasSubstr("into 'tp'"),
                                  HasSubstr("rank 0 (world rank 2) did not join"))));
  }
}

TEST(GlooCommunicatorTest, BadArgumentsAndHostnames) {
  std::shared_ptr<Store> store = FreshStore();
  EXPECT_THAT(GlooCommunicator::Create(2, 2, store), StatusIs(absl::StatusCode::kInvalidArgument,
                                                              HasSubstr("outside")));
  EXPECT_THAT(GlooCommunicator::Create(0, 1, nullptr),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("store")));
  EXPECT_THAT(GlooCommunicator::Create(0, 1, store, WithTimeout(absl::ZeroDuration())),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("timeouts")));
  GlooOptions options;
  options.hostname = "no-such-host.invalid";
  EXPECT_THAT(GlooCommunicator::Create(0, 1, store, options),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("no-such-host.invalid")));
}

TEST(GlooCommunicatorTest, SingleRankFromTheEnvironment) {
  // WORLD_SIZE=1 needs no MASTER_PORT: rank 0 hosts a store on a free port.
  setenv("RANK", "0", 1);
  setenv("WORLD_SIZE", "1", 1);
  unsetenv("MASTER_PORT");
  unsetenv("MASTER_ADDR");
  ASSERT_OK_AND_ASSIGN(auto world, GlooCommunicator::CreateFromEnv(WithTimeout(absl::Seconds(30))));
  EXPECT_EQ(world->size(), 1);
  EXPECT_EQ(world->backend(), "gloo");
  std::vector<float> x = {1, 2, 3}, y(3);
  EXPECT_OK(world->AllReduce(x.data(), y.data(), 3, ReduceOp::kAvg));
  EXPECT_EQ(y, x);
  EXPECT_OK(world->ReduceScatter(x.data(), y.data(), 3));
  EXPECT_EQ(y, x);
  EXPECT_OK(world->Barrier());
  ASSERT_OK_AND_ASSIGN(auto self, world->Split({0}));
  ASSERT_NE(self, nullptr);
  EXPECT_OK(self->Broadcast(y.data(), 3, 0));

  setenv("WORLD_SIZE", "2", 1);
  EXPECT_THAT(GlooCommunicator::CreateFromEnv(),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("MASTER_PORT")));
}

TEST(GlooCommunicatorTest, DestroyingWithOperationsInFlightFinishesThem) {
  std::shared_ptr<Store> store = FreshStore();
  std::vector<float> a(1000, 1.0f), b(1000, 2.0f);
  std::vector<std::thread> threads;
  std::vector<float>* bufs[2] = {&a, &b};
  for (int r = 0; r < 2; ++r) {
    threads.emplace_back([&, r] {
      auto made = GlooCommunicator::Create(r, 2, store, WithTimeout(absl::Seconds(30)));
      ASSERT_OK(made.status());
      std::unique_ptr<GlooCommunicator> comm = *std::move(made);
      std::vector<float>& buf = *bufs[r];
      ASSERT_OK_AND_ASSIGN(auto handle, comm->AllReduceAsync(buf.data(), buf.data(), buf.size()));
      handle.reset();  // dropping the handle waits for the operation
      comm.reset();
    });
  }
  for (std::thread& t : threads) t.join();
  EXPECT_EQ(a, std::vector<float>(1000, 3.0f));
  EXPECT_EQ(b, std::vector<float>(1000, 3.0f));
}

}  // namespace
}  // namespace cairn::runtime
