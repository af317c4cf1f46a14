#include "runtime/compute/arena.h"

#include <random>
#include <vector>

#include "common/testing/status_matchers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "runtime/compute/cpu/cpu_backend.h"

namespace cairn::runtime {
namespace {

using ::cairn::testing::StatusIs;
using ::testing::HasSubstr;

TEST(ArenaTest, ReusesFreedBlocksBestFitAndTracksExtent) {
  auto arena = DeviceArena::ForPlanning();
  ASSERT_OK_AND_ASSIGN(ArenaBuffer a, arena->Allocate(1000, DType::kFloat32));  // 4096 B
  ASSERT_OK_AND_ASSIGN(ArenaBuffer b, arena->Allocate(64, DType::kFloat32));    // 256 B
  ASSERT_OK_AND_ASSIGN(ArenaBuffer c, arena->Allocate(10, DType::kInt64));      // 256 B
  EXPECT_EQ(arena->extent_bytes(), 4096 + 256 + 256);
  EXPECT_EQ(static_cast<char*>(b.data()) - static_cast<char*>(a.data()), 4096);
  void* a_at = a.data();
  a.Release();
  EXPECT_EQ(arena->live_bytes(), 512);
  // A small block goes into the hole, at its start; the extent does not grow.
  ASSERT_OK_AND_ASSIGN(ArenaBuffer d, arena->Allocate(100, DType::kBFloat16));
  EXPECT_EQ(d.data(), a_at);
  EXPECT_EQ(arena->extent_bytes(), 4608);
  EXPECT_EQ(arena->peak_live_bytes(), 4608);
  // Freeing the top lowers it: the next large block reuses the space.
  c.Release();
  b.Release();
  ASSERT_OK_AND_ASSIGN(ArenaBuffer e, arena->Allocate(1024, DType::kFloat32));
  EXPECT_EQ(static_cast<char*>(e.data()) - static_cast<char*>(d.data()), 256);
  EXPECT_EQ(arena->extent_bytes(), 4608);  // the maximum so far
}

TEST(ArenaTest, ReplayingTheSequenceGivesTheSameOffsetsWithinTheExtent) {
  // A random sequence on a planning arena, then the same on a backed arena of exactly the
  // planned extent: same offsets, never out of room.
  auto run = [](DeviceArena* arena, std::vector<int64_t>* offsets) -> absl::Status {
    std::mt19937 gen(7);
    std::vector<ArenaBuffer> live;
    char* base = nullptr;
    for (int i = 0; i < 2000; ++i) {
      if (!live.empty() && gen() % 3 == 0) {
        live.erase(live.begin() + gen() % live.size());
        continue;
      }
      absl::StatusOr<ArenaBuffer> b = arena->Allocate(1 + gen() % 5000, DType::kFloat32);
      if (!b.ok()) return b.status();
      if (base == nullptr) base = static_cast<char*>(b->data());
      offsets->push_back(static_cast<char*>(b->data()) - base);
      live.push_back(*std::move(b));
    }
    return absl::OkStatus();
  };
  auto plan = DeviceArena::ForPlanning();
  std::vector<int64_t> planned, replayed;
  ASSERT_OK(run(plan.get(), &planned));
  CpuBackend cpu;
  ASSERT_OK_AND_ASSIGN(auto real, DeviceArena::Create(&cpu, plan->extent_bytes()));
  ASSERT_OK(run(real.get(), &replayed));
  EXPECT_EQ(planned, replayed);
  EXPECT_LE(real->extent_bytes(), real->capacity_bytes());
  EXPECT_GE(plan->extent_bytes(), plan->peak_live_bytes());
}

TEST(ArenaTest, ExceedingTheCapacityIsAnInternalError) {
  CpuBackend cpu;
  ASSERT_OK_AND_ASSIGN(auto arena, DeviceArena::Create(&cpu, 1024));
  ASSERT_OK_AND_ASSIGN(ArenaBuffer a, arena->Allocate(256, DType::kFloat32));
  EXPECT_THAT(arena->Allocate(1, DType::kFloat32),
              StatusIs(absl::StatusCode::kInternal, HasSubstr("differ from its dry run")));
  ASSERT_OK_AND_ASSIGN(ArenaBuffer empty, arena->Allocate(0, DType::kFloat32));
  EXPECT_TRUE(empty.empty());
}

}  // namespace
}  // namespace cairn::runtime
