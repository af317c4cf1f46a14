// What only the staged communicator does: copies in and out per operation, staging buffers reused
// once warm, device failures that fail the rank and its peers fast, results copied back by a handle
// dropped without Wait. Every operation on every element type, and the failure behaviour shared
// with the other implementations, are checked in ../communicator_parity_test.cc and
// ../communicator_failure_test.cc (backends "staged_local" and "staged_gloo").
#include "runtime/comm/staged/staged_communicator.h"

#include <atomic>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <thread>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "common/testing/status_matchers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "runtime/comm/local/local_communicator.h"
#include "runtime/compute/cpu/cpu_backend.h"

namespace cairn::runtime {
namespace {

using ::cairn::testing::StatusIs;
using ::testing::AllOf;
using ::testing::HasSubstr;

// Host memory standing in for a device, counting what the staged communicator asks of it.
class CountingMemory final : public StagingMemory {
 public:
  std::string name() const override { return "counting"; }
  absl::StatusOr<void*> AllocateStaging(size_t bytes) override {
    ++allocations;
    return std::malloc(bytes);
  }
  void FreeStaging(void* staging) override {
    ++frees;
    std::free(staging);
  }
  absl::Status CopyToStaging(void* staging, const void* buffer, size_t bytes, Stream*) override {
    if (fail_copies) return absl::InternalError("device lost");
    ++copies_in;
    std::memcpy(staging, buffer, bytes);
    return absl::OkStatus();
  }
  absl::Status CopyFromStaging(void* buffer, const void* staging, size_t bytes,
                               Stream*) override {
    ++copies_out;
    std::memcpy(buffer, staging, bytes);
    return absl::OkStatus();
  }
  absl::Status Synchronize(Stream*) override {
    ++syncs;
    return absl::OkStatus();
  }

  std::atomic<int> allocations{0}, frees{0}, copies_in{0}, copies_out{0}, syncs{0};
  std::atomic<bool> fail_copies{false};
};

struct StagedGroup {
  std::vector<std::shared_ptr<CountingMemory>> memory;
  std::vector<std::unique_ptr<Communicator>> comms;
};

StagedGroup MakeGroup(int size, absl::Duration timeout = absl::Seconds(60)) {
  LocalOptions options;
  options.timeout = timeout;
  StagedGroup group;
  for (std::unique_ptr<Communicator>& local : LocalCommunicator::CreateGroup(size, options)) {
    group.memory.push_back(std::make_shared<CountingMemory>());
    group.comms.push_back(StagedCommunicator::Create(std::move(local), group.memory.back()));
  }
  return group;
}

void OnRanks(StagedGroup& group, const std::function<void(int, Communicator&)>& fn) {
  std::vector<std::thread> threads;
  for (size_t r = 0; r < group.comms.size(); ++r) {
    threads.emplace_back([&, r] { fn(static_cast<int>(r), *group.comms[r]); });
  }
  for (std::thread& t : threads) t.join();
}

TEST(StagedCommunicatorTest, CopiesInAndOutOncePerOperationAndReusesStagingWhenWarm) {
  StagedGroup group = MakeGroup(2);
  OnRanks(group, [&](int rank, Communicator& c) {
    EXPECT_EQ(c.backend(), "staged");
    std::vector<float> x(1000);
    for (int step = 0; step < 10; ++step) {
      std::fill(x.begin(), x.end(), static_cast<float>(rank + step));
      ASSERT_OK(c.AllReduce(x.data(), x.data(), x.size()));
      EXPECT_EQ(x[999], static_cast<float>(1 + 2 * step));
      if (step == 0) {
        EXPECT_EQ(group.memory[rank]->allocations.load(), 1);
      }
    }
    // Operations of other kinds as large (4000 bytes of staging) reuse the same buffer.
    std::vector<float> gathered(1000);
    ASSERT_OK(c.AllGather(x.data(), gathered.data(), 500));
    std::vector<float> shard(500);
    ASSERT_OK(c.ReduceScatter(x.data(), shard.data(), 500));
  });
  for (const auto& memory : group.memory) {
    EXPECT_EQ(memory->allocations.load(), 1);  // 4 KiB fits every operation above
    EXPECT_EQ(memory->copies_in.load(), 12);   // one per operation
    EXPECT_EQ(memory->copies_out.load(), 12);
    EXPECT_EQ(memory->syncs.load(), 24);       // after the copy in, after the copy out
  }
  group.comms.clear();
  for (const auto& memory : group.memory) EXPECT_EQ(memory->frees.load(), 1);
}

TEST(StagedCommunicatorTest, OperationsInFlightTakeTheirOwnStagingBuffers) {
  StagedGroup group = MakeGroup(2);
  OnRanks(group, [&](int rank, Communicator& c) {
    std::vector<float> a(10, 1.0f), b(10, 2.0f);
    ASSERT_OK_AND_ASSIGN(auto send_a, c.SendAsync(a.data(), 10, 1 - rank, 0));
    ASSERT_OK_AND_ASSIGN(auto send_b, c.SendAsync(b.data(), 10, 1 - rank, 1));
    std::vector<float> got_a(10), got_b(10);
    ASSERT_OK(c.Recv(got_b.data(), 10, 1 - rank, 1));
    ASSERT_OK(c.Recv(got_a.data(), 10, 1 - rank, 0));
    EXPECT_OK(send_a->Wait());
    EXPECT_OK(send_b->Wait());
    EXPECT_EQ(got_a, a);
    EXPECT_EQ(got_b, b);
  });
  // Two sends in flight and a receive: three buffers on each rank, then none allocated again.
  for (const auto& memory : group.memory) EXPECT_EQ(memory->allocations.load(), 3);
}

TEST(StagedCommunicatorTest, BroadcastCopiesInOnTheRootAndOutElsewhere) {
  StagedGroup group = MakeGroup(3);
  OnRanks(group, [&](int rank, Communicator& c) {
    std::vector<int64_t> x(5, rank == 1 ? int64_t{1} << 40 : 0);
    ASSERT_OK(c.Broadcast(x.data(), x.size(), 1));
    EXPECT_EQ(x, std::vector<int64_t>(5, int64_t{1} << 40));
  });
  EXPECT_EQ(group.memory[1]->copies_in.load(), 1);
  EXPECT_EQ(group.memory[1]->copies_out.load(), 0);
  for (int r : {0, 2}) {
    EXPECT_EQ(group.memory[r]->copies_in.load(), 0);
    EXPECT_EQ(group.memory[r]->copies_out.load(), 1);
  }
}

TEST(StagedCommunicatorTest, AHandleDroppedWithoutWaitStillDeliversTheResult) {
  StagedGroup group = MakeGroup(2);
  OnRanks(group, [&](int rank, Communicator& c) {
    std::vector<int32_t> x(100, rank + 1);
    {
      ASSERT_OK_AND_ASSIGN(auto pending, c.AllReduceAsync(x.data(), x.data(), x.size()));
    }
    EXPECT_EQ(x, std::vector<int32_t>(100, 3));
  });
}

TEST(StagedCommunicatorTest, ADeviceFailureFailsThisRankAndItsPeersFast) {
  StagedGroup group = MakeGroup(2, absl::Minutes(10));
  group.memory[0]->fail_copies = true;
  std::vector<absl::Status> results(2);
  OnRanks(group, [&](int rank, Communicator& c) {
    float x = 1.0f;
    results[rank] = c.AllReduce(&x, &x, 1);
  });
  EXPECT_THAT(results[0], StatusIs(absl::StatusCode::kInternal,
                                   AllOf(HasSubstr("all_reduce #0"),
                                         HasSubstr("copying the input to staging memory"),
                                         HasSubstr("device lost"))));
  // Rank 1 learns at once (not after ten minutes) that rank 0 is gone.
  EXPECT_THAT(results[1], StatusIs(absl::StatusCode::kUnavailable, HasSubstr("rank 0")));
  // Rank 0 stays failed with its first failure.
  EXPECT_THAT(group.comms[0]->Barrier(),
              StatusIs(absl::StatusCode::kInternal, HasSubstr("device lost")));
}

TEST(StagedCommunicatorTest, SubGroupsAreStagedAndShareThePool) {
  StagedGroup group = MakeGroup(4);
  OnRanks(group, [&](int rank, Communicator& world) {
    std::unique_ptr<Communicator> mine;
    for (const std::vector<int>& list : {std::vector<int>{0, 2}, std::vector<int>{3, 1}}) {
      ASSERT_OK_AND_ASSIGN(std::unique_ptr<Communicator> sub, world.Split(list, "pair"));
      if (sub != nullptr) mine = std::move(sub);
    }
    ASSERT_NE(mine, nullptr);
    EXPECT_EQ(mine->backend(), "staged");
    EXPECT_EQ(mine->name(), "pair");
    BFloat16 x = ToBFloat16(static_cast<float>(rank));
    ASSERT_OK(mine->AllReduce(&x, &x, 1, ReduceOp::kMax));
    EXPECT_EQ(FromBFloat16(x), rank % 2 == 0 ? 2.0f : 3.0f);
  });
  for (const auto& memory : group.memory) EXPECT_EQ(memory->allocations.load(), 1);
}

TEST(StagedCommunicatorTest, CarriesCpuBackendBuffers) {
  CpuBackend cpu;
  std::vector<std::unique_ptr<Communicator>> comms;
  for (std::unique_ptr<Communicator>& local : LocalCommunicator::CreateGroup(2)) {
    comms.push_back(StagedCommunicator::Create(std::move(local), &cpu));
  }
  std::vector<std::thread> threads;
  for (int r = 0; r < 2; ++r) {
    threads.emplace_back([&, r] {
      absl::StatusOr<void*> buffer = cpu.Allocate(4 * sizeof(float));
      ASSERT_OK(buffer.status());
      const std::vector<float> in = {1.0f * r, 2.0f, 3.0f, 4.0f};
      ASSERT_OK(cpu.CopyToDevice(*buffer, in.data(), 4 * sizeof(float)));
      ASSERT_OK(comms[r]->AllReduce(static_cast<float*>(*buffer), static_cast<float*>(*buffer), 4,
                                    ReduceOp::kSum, cpu.default_stream()));
      std::vector<float> out(4);
      ASSERT_OK(cpu.CopyToHost(out.data(), *buffer, 4 * sizeof(float)));
      EXPECT_EQ(out, (std::vector<float>{1.0f, 4.0f, 6.0f, 8.0f}));
      cpu.Free(*buffer);
    });
  }
  for (std::thread& t : threads) t.join();
}

}  // namespace
}  // namespace cairn::runtime
