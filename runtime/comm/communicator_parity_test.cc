// Parity suite: every collective of communicator.h, on every implementation (testing/backends.h),
// for groups of 2, 3, 4 and 8 ranks, checked against values computed here.
//
// Each rank r of a group fills its input with Value(r, i): small multiples of 0.25 of both signs, so
// sums over up to 8 ranks are exact in fp32 whatever the summation order, and max/min differ from
// "the highest rank". kAvg divides the exact sum by the group size, which every implementation does
// the same way, so results are compared exactly.
//
// Where to add a case: a new collective gets a Check* function below (called from a TEST_P and from
// CheckEverything, which also runs it on sub-groups); a new backend needs nothing here (see
// testing/backends.h).
#include <algorithm>
#include <atomic>
#include <memory>
#include <numeric>
#include <string>
#include <tuple>
#include <vector>

#include "absl/strings/str_cat.h"
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
using testing::RunOnRanks;

float Value(int rank, size_t i) {
  return static_cast<float>(static_cast<int>((rank * 37 + i * 11) % 101) - 50) + 0.25f * rank;
}

std::vector<float> Input(int rank, size_t count, size_t offset = 0) {
  std::vector<float> v(count);
  for (size_t i = 0; i < count; ++i) v[i] = Value(rank, offset + i);
  return v;
}

// op over ranks 0..n-1 of Value(r, i).
float Reduced(ReduceOp op, int n, size_t i) {
  float acc = Value(0, i);
  for (int r = 1; r < n; ++r) {
    const float v = Value(r, i);
    switch (op) {
      case ReduceOp::kSum:
      case ReduceOp::kAvg:
        acc += v;
        break;
      case ReduceOp::kMax:
        acc = std::max(acc, v);
        break;
      case ReduceOp::kMin:
        acc = std::min(acc, v);
        break;
    }
  }
  return op == ReduceOp::kAvg ? acc / static_cast<float>(n) : acc;
}

// Counts below, at and above the group size, and ones that do not divide by it.
const size_t kCounts[] = {1, 7, 64, 1001, 4099};
const ReduceOp kOps[] = {ReduceOp::kSum, ReduceOp::kAvg, ReduceOp::kMax, ReduceOp::kMin};

std::string Where(const Communicator& c, absl::string_view what) {
  return absl::StrCat(what, " on group '", c.name(), "' rank ", c.rank(), " of ", c.size());
}

void CheckAllReduce(Communicator& c) {
  const int n = c.size();
  for (ReduceOp op : kOps) {
    for (size_t count : kCounts) {
      SCOPED_TRACE(Where(c, absl::StrCat("all_reduce ", ReduceOpName(op), " count ", count)));
      const std::vector<float> in = Input(c.rank(), count);
      std::vector<float> out(count, -1.0f);
      ASSERT_OK(c.AllReduce(in.data(), out.data(), count, op));
      for (size_t i = 0; i < count; ++i) ASSERT_EQ(out[i], Reduced(op, n, i)) << "i=" << i;
      // In place.
      std::vector<float> buf = in;
      ASSERT_OK(c.AllReduce(buf.data(), buf.data(), count, op));
      EXPECT_EQ(buf, out);
    }
  }
}

void CheckAllGather(Communicator& c) {
  const int n = c.size();
  for (size_t count : kCounts) {
    SCOPED_TRACE(Where(c, absl::StrCat("all_gather count ", count)));
    const std::vector<float> in = Input(c.rank(), count);
    std::vector<float> out(n * count, -1.0f);
    ASSERT_OK(c.AllGather(in.data(), out.data(), count));
    for (int r = 0; r < n; ++r) {
      EXPECT_EQ(std::vector<float>(out.begin() + r * count, out.begin() + (r + 1) * count),
                Input(r, count))
          << "chunk " << r;
    }
    // In place: the input is this rank's chunk of the output.
    std::vector<float> buf(n * count, -1.0f);
    std::copy(in.begin(), in.end(), buf.begin() + c.rank() * count);
    ASSERT_OK(c.AllGather(buf.data() + c.rank() * count, buf.data(), count));
    EXPECT_EQ(buf, out);
  }
}

void CheckReduceScatter(Communicator& c) {
  const int n = c.size();
  for (ReduceOp op : kOps) {
    for (size_t count : kCounts) {
      SCOPED_TRACE(Where(c, absl::StrCat("reduce_scatter ", ReduceOpName(op), " count ", count)));
      const std::vector<float> in = Input(c.rank(), n * count);
      std::vector<float> out(count, -1.0f);
      ASSERT_OK(c.ReduceScatter(in.data(), out.data(), count, op));
      for (size_t i = 0; i < count; ++i) {
        ASSERT_EQ(out[i], Reduced(op, n, c.rank() * count + i)) << "i=" << i;
      }
      // In place: the output is this rank's chunk of the input.
      std::vector<float> buf = in;
      ASSERT_OK(c.ReduceScatter(buf.data(), buf.data() + c.rank() * count, count, op));
      EXPECT_EQ(std::vector<float>(buf.begin() + c.rank() * count,
                                   buf.begin() + (c.rank() + 1) * count),
                out);
    }
  }
}

void CheckAllToAll(Communicator& c) {
  const int n = c.size();
  for (size_t count : kCounts) {
    SCOPED_TRACE(Where(c, absl::StrCat("all_to_all count ", count)));
    const std::vector<float> in = Input(c.rank(), n * count);
    std::vector<float> out(n * count, -1.0f);
    ASSERT_OK(c.AllToAll(in.data(), out.data(), count));
    for (int r = 0; r < n; ++r) {
      // Chunk r of the output is chunk rank() of rank r's input.
      EXPECT_EQ(std::vector<float>(out.begin() + r * count, out.begin() + (r + 1) * count),
                Input(r, count, c.rank() * count))
          << "chunk " << r;
    }
  }
}

void CheckBroadcast(Communicator& c) {
  for (int root = 0; root < c.size(); ++root) {
    for (size_t count : {size_t{1}, size_t{4099}}) {
      SCOPED_TRACE(Where(c, absl::StrCat("broadcast root ", root, " count ", count)));
      std::vector<float> buf = Input(c.rank(), count);
      ASSERT_OK(c.Broadcast(buf.data(), count, root));
      EXPECT_EQ(buf, Input(root, count));
    }
  }
}

// Every rank sends two tagged messages to the next rank and receives from the previous one, posted
// in an order that deadlocks with blocking calls; same-tag messages arrive in order.
void CheckSendRecv(Communicator& c) {
  const int n = c.size();
  if (n == 1) return;  // no peer to talk to
  const int next = (c.rank() + 1) % n;
  const int prev = (c.rank() + n - 1) % n;
  for (size_t count : {size_t{1}, size_t{1001}}) {
    SCOPED_TRACE(Where(c, absl::StrCat("send/recv count ", count)));
    const std::vector<float> first = Input(c.rank(), count);
    const std::vector<float> second = Input(c.rank(), count, 1000);
    const std::vector<float> tagged = Input(c.rank() + 100, count);
    std::vector<float> got_first(count), got_second(count), got_tagged(count);
    // Receive tag 7 before tag 3 although the peer sends tag 3 first: tags are independent.
    ASSERT_OK_AND_ASSIGN(auto r7, c.RecvAsync(got_tagged.data(), count, prev, 7));
    ASSERT_OK_AND_ASSIGN(auto r3a, c.RecvAsync(got_first.data(), count, prev, 3));
    ASSERT_OK_AND_ASSIGN(auto s3a, c.SendAsync(first.data(), count, next, 3));
    ASSERT_OK_AND_ASSIGN(auto s3b, c.SendAsync(second.data(), count, next, 3));
    ASSERT_OK_AND_ASSIGN(auto s7, c.SendAsync(tagged.data(), count, next, 7));
    ASSERT_OK_AND_ASSIGN(auto r3b, c.RecvAsync(got_second.data(), count, prev, 3));
    for (auto* h : {&r7, &r3a, &s3a, &s3b, &s7, &r3b}) EXPECT_OK((*h)->Wait());
    EXPECT_EQ(got_first, Input(prev, count));
    EXPECT_EQ(got_second, Input(prev, count, 1000));
    EXPECT_EQ(got_tagged, Input(prev + 100, count));
  }
  // Blocking forms, ordered so that they cannot deadlock: even ranks send first.
  if (n % 2 == 0) {
    const int partner = c.rank() ^ 1;
    std::vector<float> mine = Input(c.rank(), 5), theirs(5);
    if (c.rank() % 2 == 0) {
      ASSERT_OK(c.Send(mine.data(), 5, partner, 0));
      ASSERT_OK(c.Recv(theirs.data(), 5, partner, 0));
    } else {
      ASSERT_OK(c.Recv(theirs.data(), 5, partner, 0));
      ASSERT_OK(c.Send(mine.data(), 5, partner, 0));
    }
    EXPECT_EQ(theirs, Input(partner, 5));
  }
}

// No rank leaves the barrier before every rank has entered it.
void CheckBarrier(Communicator& c, std::atomic<int>* entered) {
  entered->fetch_add(1);
  ASSERT_OK(c.Barrier());
  EXPECT_GE(entered->load(), c.size()) << Where(c, "barrier");
}

// Several asynchronous collectives in flight, waited on in reverse order.
void CheckAsyncOverlap(Communicator& c) {
  const int n = c.size();
  const size_t count = 1001;
  SCOPED_TRACE(Where(c, "async"));
  const std::vector<float> in = Input(c.rank(), n * count);
  std::vector<float> reduced(n * count), shard(count), gathered(n * count), bcast = in;
  ASSERT_OK_AND_ASSIGN(auto a, c.AllReduceAsync(in.data(), reduced.data(), n * count));
  ASSERT_OK_AND_ASSIGN(auto b, c.ReduceScatterAsync(in.data(), shard.data(), count));
  ASSERT_OK_AND_ASSIGN(auto g, c.AllGatherAsync(in.data(), gathered.data(), count));
  ASSERT_OK_AND_ASSIGN(auto d, c.BroadcastAsync(bcast.data(), n * count, n - 1));
  ASSERT_OK_AND_ASSIGN(auto e, c.BarrierAsync());
  EXPECT_OK(e->Wait());
  EXPECT_OK(d->Wait());
  EXPECT_OK(g->Wait());
  EXPECT_OK(b->Wait());
  EXPECT_OK(a->Wait());
  EXPECT_OK(a->Wait());  // again: the same status
  for (size_t i = 0; i < n * count; ++i) ASSERT_EQ(reduced[i], Reduced(ReduceOp::kSum, n, i));
  for (size_t i = 0; i < count; ++i) {
    ASSERT_EQ(shard[i], Reduced(ReduceOp::kSum, n, c.rank() * count + i));
  }
  for (int r = 0; r < n; ++r) {
    EXPECT_EQ(std::vector<float>(gathered.begin() + r * count, gathered.begin() + (r + 1) * count),
              Input(r, count));
  }
  EXPECT_EQ(bcast, Input(n - 1, n * count));
}

void CheckEverything(Communicator& c, std::atomic<int>* entered) {
  CheckAllReduce(c);
  CheckAllGather(c);
  CheckReduceScatter(c);
  CheckAllToAll(c);
  CheckBroadcast(c);
  CheckSendRecv(c);
  CheckBarrier(c, entered);
  CheckAsyncOverlap(c);
}

// ---- Parameterised over (backend, group size).

class CommParityTest : public ::testing::TestWithParam<std::tuple<std::string, int>> {
 protected:
  void SetUp() override {
    ASSERT_OK_AND_ASSIGN(comms_, FindCommBackend(backend()).make_group(size(), absl::Seconds(60)));
    ASSERT_EQ(static_cast<int>(comms_.size()), size());
  }
  const std::string& backend() const { return std::get<0>(GetParam()); }
  int size() const { return std::get<1>(GetParam()); }

  CommGroup comms_;
};

TEST_P(CommParityTest, GroupShape) {
  for (int r = 0; r < size(); ++r) {
    EXPECT_EQ(comms_[r]->rank(), r);
    EXPECT_EQ(comms_[r]->size(), size());
    EXPECT_EQ(comms_[r]->name(), "world");
    EXPECT_EQ(comms_[r]->world_ranks()[r], r);
  }
}

TEST_P(CommParityTest, AllReduce) {
  RunOnRanks(comms_, [](int, Communicator& c) { CheckAllReduce(c); });
}

TEST_P(CommParityTest, AllGather) {
  RunOnRanks(comms_, [](int, Communicator& c) { CheckAllGather(c); });
}

TEST_P(CommParityTest, ReduceScatter) {
  RunOnRanks(comms_, [](int, Communicator& c) { CheckReduceScatter(c); });
}

TEST_P(CommParityTest, AllToAll) {
  RunOnRanks(comms_, [](int, Communicator& c) { CheckAllToAll(c); });
}

TEST_P(CommParityTest, Broadcast) {
  RunOnRanks(comms_, [](int, Communicator& c) { CheckBroadcast(c); });
}

TEST_P(CommParityTest, SendRecv) {
  RunOnRanks(comms_, [](int, Communicator& c) { CheckSendRecv(c); });
}

TEST_P(CommParityTest, Barrier) {
  std::atomic<int> entered{0};
  RunOnRanks(comms_, [&](int, Communicator& c) { CheckBarrier(c, &entered); });
}

TEST_P(CommParityTest, AsyncOverlap) {
  RunOnRanks(comms_, [](int, Communicator& c) { CheckAsyncOverlap(c); });
}

TEST_P(CommParityTest, ZeroCountsCompleteWithoutCommunicating) {
  // Rank 0 alone: if a zero count communicated, it would wait for the others and time out.
  Communicator& c = *comms_[0];
  float x = 0;
  EXPECT_OK(c.AllReduce(&x, &x, 0));
  EXPECT_OK(c.AllGather(&x, &x, 0));
  EXPECT_OK(c.ReduceScatter(&x, &x, 0));
  EXPECT_OK(c.AllToAll<float>(nullptr, nullptr, 0));
  EXPECT_OK(c.Broadcast(&x, 0, 0));
  EXPECT_OK(c.Send(&x, 0, size() - 1, 0));
  EXPECT_OK(c.Recv(&x, 0, size() - 1, 0));
}

TEST_P(CommParityTest, BadArgumentsAreRejectedBeforeCommunicating) {
  Communicator& c = *comms_[0];
  std::vector<float> buf(8 * size());
  EXPECT_THAT(c.Broadcast(buf.data(), 4, size()), StatusIs(absl::StatusCode::kInvalidArgument,
                                                           HasSubstr("root")));
  EXPECT_THAT(c.Send(buf.data(), 4, 0, 0),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("this rank")));
  EXPECT_THAT(c.Recv(buf.data(), 4, size(), 0), StatusIs(absl::StatusCode::kInvalidArgument, ::testing::_));
  EXPECT_THAT(c.Send(buf.data(), 4, 1, -1),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("tag")));
  EXPECT_THAT(c.AllReduce(buf.data(), buf.data() + 1, 4),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("overlap")));
  EXPECT_THAT(c.AllToAll(buf.data(), buf.data() + 1, 1),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("overlap")));
  EXPECT_THAT(c.AllGather(buf.data() + 1, buf.data(), 2),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("overlap")));
  EXPECT_THAT(c.AllReduce<float>(nullptr, buf.data(), 4),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("null")));
  EXPECT_THAT(c.StartAllReduce(buf.data(), buf.data(), 4, DType::kBFloat16, ReduceOp::kSum),
              StatusIs(absl::StatusCode::kUnimplemented, HasSubstr("bf16")));
  EXPECT_THAT(c.Split({}), StatusIs(absl::StatusCode::kInvalidArgument, ::testing::_));
  EXPECT_THAT(c.Split({0, 0}), StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("twice")));
  EXPECT_THAT(c.Split({0, size()}), StatusIs(absl::StatusCode::kInvalidArgument, ::testing::_));
  // The group still works: nothing was sent.
  RunOnRanks(comms_, [](int, Communicator& c) { EXPECT_OK(c.Barrier()); });
}

// Sub-groups made of non-contiguous, unsorted rank lists, used concurrently; every collective is
// checked on each, then on a sub-group of a sub-group.
std::vector<std::vector<int>> Partition(int n) {
  switch (n) {
    case 2:
      return {{1, 0}};
    case 3:
      return {{2, 0}, {1}};
    case 4:
      return {{3, 1}, {0, 2}};
    default:
      return {{5, 0, 3}, {7, 1}, {2, 4, 6}};
  }
}

TEST_P(CommParityTest, SubGroups) {
  const std::vector<std::vector<int>> lists = Partition(size());
  std::vector<std::atomic<int>> entered(lists.size());
  std::vector<std::atomic<int>> entered_nested(lists.size());
  RunOnRanks(comms_, [&](int rank, Communicator& world) {
    std::unique_ptr<Communicator> mine;
    size_t my_list = 0;
    for (size_t l = 0; l < lists.size(); ++l) {
      // Every rank calls Split for every list: non-members get nullptr without communicating.
      ASSERT_OK_AND_ASSIGN(std::unique_ptr<Communicator> sub, world.Split(lists[l]));
      const bool member =
          std::find(lists[l].begin(), lists[l].end(), rank) != lists[l].end();
      ASSERT_EQ(sub != nullptr, member) << "list " << l;
      if (member) {
        mine = std::move(sub);
        my_list = l;
      }
    }
    ASSERT_NE(mine, nullptr);
    const std::vector<int>& list = lists[my_list];
    const int group_rank = static_cast<int>(std::find(list.begin(), list.end(), rank) - list.begin());
    EXPECT_EQ(mine->rank(), group_rank);
    EXPECT_EQ(mine->size(), static_cast<int>(list.size()));
    EXPECT_EQ(mine->world_ranks(), list);
    CheckEverything(*mine, &entered[my_list]);

    // The world group still works while sub-groups exist.
    float one = 1.0f;
    ASSERT_OK(world.AllReduce(&one, &one, 1));
    EXPECT_EQ(one, static_cast<float>(size()));

    // A sub-group of the sub-group (its members in reverse order), named.
    std::vector<int> reversed(mine->size());
    std::iota(reversed.rbegin(), reversed.rend(), 0);
    ASSERT_OK_AND_ASSIGN(std::unique_ptr<Communicator> nested, mine->Split(reversed, "nested"));
    ASSERT_NE(nested, nullptr);
    EXPECT_EQ(nested->name(), "nested");
    EXPECT_EQ(nested->rank(), mine->size() - 1 - mine->rank());
    EXPECT_EQ(nested->world_ranks()[nested->rank()], rank);
    CheckAllReduce(*nested);
    CheckBarrier(*nested, &entered_nested[my_list]);
  });
}

TEST_P(CommParityTest, SplittingTheSameListTwiceMakesIndependentGroups) {
  std::vector<int> evens;
  for (int r = 0; r < size(); r += 2) evens.push_back(r);
  RunOnRanks(comms_, [&](int rank, Communicator& world) {
    ASSERT_OK_AND_ASSIGN(std::unique_ptr<Communicator> a, world.Split(evens, "a"));
    ASSERT_OK_AND_ASSIGN(std::unique_ptr<Communicator> b, world.Split(evens, "b"));
    if (rank % 2 == 1) {
      EXPECT_EQ(a, nullptr);
      EXPECT_EQ(b, nullptr);
      return;
    }
    ASSERT_NE(a, nullptr);
    ASSERT_NE(b, nullptr);
    // Interleaved asynchronous operations on the two groups do not mix.
    float x = static_cast<float>(rank), y = 1.0f;
    ASSERT_OK_AND_ASSIGN(auto hb, b->AllReduceAsync(&y, &y, 1));
    ASSERT_OK_AND_ASSIGN(auto ha, a->AllReduceAsync(&x, &x, 1, ReduceOp::kMax));
    EXPECT_OK(ha->Wait());
    EXPECT_OK(hb->Wait());
    EXPECT_EQ(x, static_cast<float>(evens.back()));
    EXPECT_EQ(y, static_cast<float>(evens.size()));
  });
}

std::vector<std::tuple<std::string, int>> AllCases() {
  std::vector<std::tuple<std::string, int>> cases;
  for (const testing::CommBackend& backend : AllCommBackends()) {
    for (int size : {2, 3, 4, 8}) cases.emplace_back(backend.name, size);
  }
  return cases;
}

INSTANTIATE_TEST_SUITE_P(
    Backends, CommParityTest, ::testing::ValuesIn(AllCases()),
    [](const ::testing::TestParamInfo<std::tuple<std::string, int>>& info) {
      return absl::StrCat(std::get<0>(info.param), "_", std::get<1>(info.param), "ranks");
    });

}  // namespace
}  // namespace cairn::runtime
