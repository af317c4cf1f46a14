// GlooCommunicator with ranks as real processes (fork): the parity suite runs ranks as threads of one
// process; this proves the same works across processes, with both rendezvous stores and with the
// torchrun-style environment, and that a worker that dies makes the others fail fast.
//
// Each child runs a body returning a Status and exits 0 (OK), or prints the status and exits with a
// code telling its kind. No test sleeps or asserts a duration: the failure tests give the group a
// 10-minute timeout, so only detecting the death (Unavailable) can end them in time.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "common/testing/status_matchers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "runtime/comm/file_store.h"
#include "runtime/comm/gloo/gloo_communicator.h"
#include "runtime/comm/testing/fork_ranks.h"

namespace cairn::runtime {
namespace {

using ::testing::HasSubstr;

constexpr absl::Duration kForever = absl::Minutes(10);

std::string FreshDirectory(absl::string_view what) {
  static std::atomic<int> counter{0};
  return absl::StrCat(std::getenv("TEST_TMPDIR"), "/", what, "-", counter++);
}


absl::Status Expect(bool condition, absl::string_view what) {
  if (condition) return absl::OkStatus();
  return absl::InternalError(absl::StrCat("check failed: ", what));
}

// A small workout of every collective; values checked exactly (small integers).
absl::Status Workout(Communicator& c) {
  const int n = c.size();
  const int r = c.rank();
  std::vector<float> x(1001);
  for (size_t i = 0; i < x.size(); ++i) x[i] = static_cast<float>(r + i % 7);
  std::vector<float> sum(x.size());
  CAIRN_RETURN_IF_ERROR(c.AllReduce(x.data(), sum.data(), x.size()));
  for (size_t i = 0; i < x.size(); ++i) {
    CAIRN_RETURN_IF_ERROR(
        Expect(sum[i] == static_cast<float>(n * (n - 1) / 2 + n * (i % 7)), "all_reduce"));
  }
  std::vector<float> gathered(n * 3);
  const std::vector<float> mine = {float(r), float(r), float(r)};
  CAIRN_RETURN_IF_ERROR(c.AllGather(mine.data(), gathered.data(), 3));
  for (int i = 0; i < n * 3; ++i) {
    CAIRN_RETURN_IF_ERROR(Expect(gathered[i] == static_cast<float>(i / 3), "all_gather"));
  }
  std::vector<float> shard(3);
  CAIRN_RETURN_IF_ERROR(c.ReduceScatter(gathered.data(), shard.data(), 3, ReduceOp::kAvg));
  CAIRN_RETURN_IF_ERROR(Expect(shard[0] == static_cast<float>(r), "reduce_scatter"));
  std::vector<float> exchanged(n);
  std::vector<float> outgoing(n);
  for (int j = 0; j < n; ++j) outgoing[j] = static_cast<float>(10 * r + j);
  CAIRN_RETURN_IF_ERROR(c.AllToAll(outgoing.data(), exchanged.data(), 1));
  for (int j = 0; j < n; ++j) {
    CAIRN_RETURN_IF_ERROR(Expect(exchanged[j] == static_cast<float>(10 * j + r), "all_to_all"));
  }
  float root_value = static_cast<float>(r == n - 1 ? 42 : -1);
  CAIRN_RETURN_IF_ERROR(c.Broadcast(&root_value, 1, n - 1));
  CAIRN_RETURN_IF_ERROR(Expect(root_value == 42.0f, "broadcast"));
  float token = static_cast<float>(r), received = -1;
  CAIRN_ASSIGN_OR_RETURN(auto recv, c.RecvAsync(&received, 1, (r + n - 1) % n, 9));
  CAIRN_ASSIGN_OR_RETURN(auto send, c.SendAsync(&token, 1, (r + 1) % n, 9));
  CAIRN_RETURN_IF_ERROR(recv->Wait());
  CAIRN_RETURN_IF_ERROR(send->Wait());
  CAIRN_RETURN_IF_ERROR(Expect(received == static_cast<float>((r + n - 1) % n), "send/recv"));
  return c.Barrier();
}

TEST(GlooMultiprocessTest, FourProcessesOverAFileStore) {
  const std::string dir = FreshDirectory("store");
  const std::string messages = FreshDirectory("messages");
  const std::vector<absl::Status> results = ForkRanks(
      4, messages,
      [&](int rank) -> absl::Status {
        CAIRN_ASSIGN_OR_RETURN(std::shared_ptr<Store> store, FileStore::Open(dir));
        GlooOptions options;
        options.timeout = absl::Seconds(60);
        CAIRN_ASSIGN_OR_RETURN(auto world, GlooCommunicator::Create(rank, 4, store, options));
        CAIRN_RETURN_IF_ERROR(Workout(*world));
        // A non-contiguous, unsorted sub-group: world ranks 3 and 1.
        CAIRN_ASSIGN_OR_RETURN(std::unique_ptr<Communicator> odd, world->Split({3, 1}, "odd"));
        if (rank % 2 == 1) {
          CAIRN_RETURN_IF_ERROR(Expect(odd != nullptr, "member got a group"));
          CAIRN_RETURN_IF_ERROR(Workout(*odd));
        } else {
          CAIRN_RETURN_IF_ERROR(Expect(odd == nullptr, "non-member got nullptr"));
        }
        return world->Barrier();
      });
  for (int rank = 0; rank < 4; ++rank) {
    EXPECT_OK(results[rank]) << "rank " << rank;
  }
}

TEST(GlooMultiprocessTest, TorchrunStyleLaunchFromTheEnvironment) {
  // Reserve a free port: bound (port 0 picks it) but not listening, with SO_REUSEADDR so that rank
  // 0's store server can bind it while the reservation is held (no other process can take it).
  const int reservation = socket(AF_INET, SOCK_STREAM, 0);
  ASSERT_GE(reservation, 0);
  const int one = 1;
  setsockopt(reservation, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(bind(reservation, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  socklen_t len = sizeof(addr);
  getsockname(reservation, reinterpret_cast<sockaddr*>(&addr), &len);
  const int port = ntohs(addr.sin_port);

  const std::string messages = FreshDirectory("messages");
  const std::vector<absl::Status> results = ForkRanks(
      3, messages,
      [&](int rank) -> absl::Status {
        close(reservation);
        setenv("RANK", std::to_string(rank).c_str(), 1);
        setenv("WORLD_SIZE", "3", 1);
        setenv("MASTER_ADDR", "127.0.0.1", 1);
        setenv("MASTER_PORT", std::to_string(port).c_str(), 1);
        GlooOptions options;
        options.timeout = absl::Seconds(60);
        CAIRN_ASSIGN_OR_RETURN(auto world, GlooCommunicator::CreateFromEnv(options));
        CAIRN_RETURN_IF_ERROR(Expect(world->rank() == rank && world->size() == 3, "rank/size"));
        return Workout(*world);
      });
  close(reservation);
  for (int rank = 0; rank < 3; ++rank) {
    EXPECT_OK(results[rank]) << "rank " << rank;
  }
}

// Four ranks meet (so the death is not mixed up with the rendezvous), then rank 2 dies (`die` says
// how); the survivors' next operations must fail with Unavailable, and at least one must name rank 2
// (the others may name a survivor that failed, and closed its connections, before them).
void CheckSurvivorsFailFast(const std::function<void()>& die) {
  const std::string dir = FreshDirectory("store");
  const std::string messages = FreshDirectory("messages");
  constexpr int kVictim = 2;
  const std::vector<absl::Status> results = ForkRanks(
      4, messages,
      [&](int rank) -> absl::Status {
        CAIRN_ASSIGN_OR_RETURN(std::shared_ptr<Store> store, FileStore::Open(dir));
        GlooOptions options;
        options.timeout = kForever;
        CAIRN_ASSIGN_OR_RETURN(auto world, GlooCommunicator::Create(rank, 4, store, options));
        std::vector<float> x(100000, 1.0f);
        CAIRN_RETURN_IF_ERROR(world->AllReduce(x.data(), x.data(), x.size()));
        if (rank == kVictim) die();
        // Two operations: the first fails, the second must fail at once too.
        const absl::Status first = world->AllReduce(x.data(), x.data(), x.size());
        const absl::Status second = world->Barrier();
        if (first.ok() || second.ok()) return absl::InternalError("a survivor's operation succeeded");
        return first;
      });
  EXPECT_NE(results[kVictim].code(), absl::StatusCode::kUnavailable);
  bool victim_named = false;
  for (int rank = 0; rank < 4; ++rank) {
    if (rank == kVictim) continue;
    const std::string message(results[rank].message());
    EXPECT_EQ(results[rank].code(), absl::StatusCode::kUnavailable)
        << "rank " << rank << ": " << results[rank];
    EXPECT_THAT(message, HasSubstr("all_reduce"));
    victim_named |= absl::StrContains(message, absl::StrCat("rank ", kVictim, " "));
  }
  EXPECT_TRUE(victim_named);
}

// A worker that returns from main (or calls exit) without finishing the job.
TEST(GlooMultiprocessTest, WorkerThatExitsEarlyMakesTheOthersFailFast) {
  CheckSurvivorsFailFast([] { _exit(0); });
}

// A worker killed by the OOM killer or a scheduler.
TEST(GlooMultiprocessTest, WorkerKilledMidJobMakesTheOthersFailFast) {
  CheckSurvivorsFailFast([] { raise(SIGKILL); });
}

}  // namespace
}  // namespace cairn::runtime
