// Parity suite: every operation of communicator.h, on every implementation (testing/backends.h),
// for groups of 2, 3, 4 and 8 ranks and every element type (f32, bf16, i32, i64), checked against
// values computed here.
//
// Each rank r of a group fills its input with Make<T>(r, i), derived from Value(r, i): small
// multiples of 0.25 of both signs (max/min differ from "the highest rank"):
//   f32   Value itself: sums over up to 8 ranks are exact in fp32 whatever the summation order, and
//         kAvg divides the exact sum by the group size, which the CPU implementations do the same
//         way, so results are compared exactly. (NCCL's ncclAvg multiplies each input by 1/n before
//         summing: on backends that say so, f32 averages get a tolerance of n ulps of the sum of
//         magnitudes.)
//   bf16  Value rounded to bf16. Sums round to bf16 at every ring step, so sum and avg are compared
//         with the tolerance n x (sum over ranks of |x|) x 2^-8 (up to n roundings, each at most
//         2^-9 of a partial sum, doubled for margin; avg: that over n, plus one final rounding of
//         2^-8 |result|). max and min involve no arithmetic and are exact.
//   i32   4 x Value (an integer), exact; kAvg truncates toward zero.
//   i64   4 x Value x 2^33 + r (uses the high 32 bits), exact.
// The byte-moving operations (all-gather, all-to-all, broadcast, send/recv) are exact for every type.
// Results are compared as doubles (exact for all of the above), so failures print numbers.
//
// Where to add a case: a new collective gets a Check* function template below (called from a TEST_P
// for every dtype, and from CheckEverything, which also runs it on sub-groups); a new backend needs
// nothing here (see testing/backends.h).
#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdint>
#include <memory>
#include <numeric>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/testing/status_matchers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "runtime/comm/communicator.h"
#include "runtime/comm/testing/backends.h"
#include "runtime/dtype.h"

namespace cairn::runtime {
namespace {

using ::cairn::testing::StatusIs;
using ::testing::HasSubstr;
using testing::AllCommBackends;
using testing::CommBackend;
using testing::CommGroup;
using testing::FindCommBackend;
using testing::RunOnRanks;

float Value(int rank, size_t i) {
  return static_cast<float>(static_cast<int>((rank * 37 + i * 11) % 101) - 50) + 0.25f * rank;
}

// ---- Element types.

template <typename T>
T Make(int rank, size_t i);
template <>
float Make<float>(int rank, size_t i) {
  return Value(rank, i);
}
template <>
BFloat16 Make<BFloat16>(int rank, size_t i) {
  return ToBFloat16(Value(rank, i));
}
template <>
int32_t Make<int32_t>(int rank, size_t i) {
  return static_cast<int32_t>(4.0f * Value(rank, i));
}
template <>
int64_t Make<int64_t>(int rank, size_t i) {
  return static_cast<int64_t>(Make<int32_t>(rank, i)) * (int64_t{1} << 33) + rank;
}

double ToDouble(float x) { return x; }
double ToDouble(BFloat16 x) { return FromBFloat16(x); }
double ToDouble(int32_t x) { return x; }
double ToDouble(int64_t x) { return static_cast<double>(x); }

template <typename T>
std::vector<double> AsDoubles(const std::vector<T>& v) {
  std::vector<double> out(v.size());
  for (size_t i = 0; i < v.size(); ++i) out[i] = ToDouble(v[i]);
  return out;
}

// Chunk `r` (of `count` elements) of `v`, as doubles.
template <typename T>
std::vector<double> Chunk(const std::vector<T>& v, int r, size_t count) {
  return AsDoubles(std::vector<T>(v.begin() + r * count, v.begin() + (r + 1) * count));
}

template <typename T>
std::vector<T> Input(int rank, size_t count, size_t offset = 0) {
  std::vector<T> v(count);
  for (size_t i = 0; i < count; ++i) v[i] = Make<T>(rank, offset + i);
  return v;
}

// The expected reduction of element i over ranks 0..n-1, and how far a result may be from it.
struct Expected {
  double value = 0;
  double tolerance = 0;
};

// What a backend promises beyond the exact cases (testing/backends.h).
struct Precision {
  bool exact_float_avg = true;
};

template <typename T>
Expected Reduced(ReduceOp op, int n, size_t i, const Precision& precision) {
  Expected e;
  if constexpr (std::is_same_v<T, float>) {
    // In fp32, as the CPU implementations compute it (sums are exact).
    float acc = Make<float>(0, i);
    float sum_abs = std::fabs(acc);
    for (int r = 1; r < n; ++r) {
      const float v = Make<float>(r, i);
      sum_abs += std::fabs(v);
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
    if (op == ReduceOp::kAvg) {
      acc /= static_cast<float>(n);
      if (!precision.exact_float_avg) e.tolerance = n * std::ldexp(sum_abs, -23);
    }
    e.value = acc;
  } else if constexpr (std::is_same_v<T, BFloat16>) {
    double acc = ToDouble(Make<BFloat16>(0, i));
    double sum_abs = std::fabs(acc);
    for (int r = 1; r < n; ++r) {
      const double v = ToDouble(Make<BFloat16>(r, i));
      sum_abs += std::fabs(v);
      if (op == ReduceOp::kSum || op == ReduceOp::kAvg) acc += v;
      if (op == ReduceOp::kMax) acc = std::max(acc, v);
      if (op == ReduceOp::kMin) acc = std::min(acc, v);
    }
    if (op == ReduceOp::kSum) e.tolerance = n * std::ldexp(sum_abs, -8);
    if (op == ReduceOp::kAvg) {
      acc /= n;
      e.tolerance = std::ldexp(sum_abs, -8) + std::ldexp(std::fabs(acc), -8);
    }
    e.value = acc;
  } else {
    // Integers: exact in int64 (the values are far from overflowing), kAvg truncating.
    int64_t acc = Make<T>(0, i);
    for (int r = 1; r < n; ++r) {
      const int64_t v = Make<T>(r, i);
      if (op == ReduceOp::kSum || op == ReduceOp::kAvg) acc += v;
      if (op == ReduceOp::kMax) acc = std::max(acc, v);
      if (op == ReduceOp::kMin) acc = std::min(acc, v);
    }
    if (op == ReduceOp::kAvg) acc /= n;
    e.value = static_cast<double>(static_cast<T>(acc));
  }
  return e;
}

// Checks got[i] against the reduction of element offset + i, for i < got.size().
template <typename T>
void ExpectReduced(const std::vector<T>& got, ReduceOp op, int n, size_t offset,
                   const Precision& precision) {
  for (size_t i = 0; i < got.size(); ++i) {
    const Expected e = Reduced<T>(op, n, offset + i, precision);
    if (e.tolerance == 0) {
      ASSERT_EQ(ToDouble(got[i]), e.value) << "i=" << i;
    } else {
      ASSERT_NEAR(ToDouble(got[i]), e.value, e.tolerance) << "i=" << i;
    }
  }
}

// Counts below, at and above the group size, and ones that do not divide by it.
const size_t kCounts[] = {1, 7, 64, 1001, 4099};
const ReduceOp kOps[] = {ReduceOp::kSum, ReduceOp::kAvg, ReduceOp::kMax, ReduceOp::kMin};

template <typename T>
std::string Where(const Communicator& c, absl::string_view what) {
  return absl::StrCat(what, " (", DTypeName(DTypeOf<T>::value), ") on group '", c.name(),
                      "' rank ", c.rank(), " of ", c.size());
}

template <typename T>
void CheckAllReduce(Communicator& c, const Precision& precision) {
  const int n = c.size();
  for (ReduceOp op : kOps) {
    for (size_t count : kCounts) {
      SCOPED_TRACE(Where<T>(c, absl::StrCat("all_reduce ", ReduceOpName(op), " count ", count)));
      const std::vector<T> in = Input<T>(c.rank(), count);
      std::vector<T> out(count, Make<T>(99, 0));
      ASSERT_OK(c.AllReduce(in.data(), out.data(), count, op));
      ExpectReduced(out, op, n, 0, precision);
      // In place.
      std::vector<T> buf = in;
      ASSERT_OK(c.AllReduce(buf.data(), buf.data(), count, op));
      EXPECT_EQ(AsDoubles(buf), AsDoubles(out));
    }
  }
}

template <typename T>
void CheckAllGather(Communicator& c) {
  const int n = c.size();
  for (size_t count : kCounts) {
    SCOPED_TRACE(Where<T>(c, absl::StrCat("all_gather count ", count)));
    const std::vector<T> in = Input<T>(c.rank(), count);
    std::vector<T> out(n * count, Make<T>(99, 0));
    ASSERT_OK(c.AllGather(in.data(), out.data(), count));
    for (int r = 0; r < n; ++r) {
      EXPECT_EQ(Chunk(out, r, count), AsDoubles(Input<T>(r, count))) << "chunk " << r;
    }
    // In place: the input is this rank's chunk of the output.
    std::vector<T> buf(n * count, Make<T>(99, 0));
    std::copy(in.begin(), in.end(), buf.begin() + c.rank() * count);
    ASSERT_OK(c.AllGather(buf.data() + c.rank() * count, buf.data(), count));
    EXPECT_EQ(AsDoubles(buf), AsDoubles(out));
  }
}

template <typename T>
void CheckReduceScatter(Communicator& c, const Precision& precision) {
  const int n = c.size();
  for (ReduceOp op : kOps) {
    for (size_t count : kCounts) {
      SCOPED_TRACE(
          Where<T>(c, absl::StrCat("reduce_scatter ", ReduceOpName(op), " count ", count)));
      const std::vector<T> in = Input<T>(c.rank(), n * count);
      std::vector<T> out(count, Make<T>(99, 0));
      ASSERT_OK(c.ReduceScatter(in.data(), out.data(), count, op));
      ExpectReduced(out, op, n, c.rank() * count, precision);
      // In place: the output is this rank's chunk of the input.
      std::vector<T> buf = in;
      ASSERT_OK(c.ReduceScatter(buf.data(), buf.data() + c.rank() * count, count, op));
      EXPECT_EQ(Chunk(buf, c.rank(), count), AsDoubles(out));
    }
  }
}

template <typename T>
void CheckAllToAll(Communicator& c) {
  const int n = c.size();
  for (size_t count : kCounts) {
    SCOPED_TRACE(Where<T>(c, absl::StrCat("all_to_all count ", count)));
    const std::vector<T> in = Input<T>(c.rank(), n * count);
    std::vector<T> out(n * count, Make<T>(99, 0));
    ASSERT_OK(c.AllToAll(in.data(), out.data(), count));
    for (int r = 0; r < n; ++r) {
      // Chunk r of the output is chunk rank() of rank r's input.
      EXPECT_EQ(Chunk(out, r, count), AsDoubles(Input<T>(r, count, c.rank() * count)))
          << "chunk " << r;
    }
  }
}

template <typename T>
void CheckBroadcast(Communicator& c) {
  for (int root = 0; root < c.size(); ++root) {
    for (size_t count : {size_t{1}, size_t{4099}}) {
      SCOPED_TRACE(Where<T>(c, absl::StrCat("broadcast root ", root, " count ", count)));
      std::vector<T> buf = Input<T>(c.rank(), count);
      ASSERT_OK(c.Broadcast(buf.data(), count, root));
      EXPECT_EQ(AsDoubles(buf), AsDoubles(Input<T>(root, count)));
    }
  }
}

// Every rank sends two tagged messages to the next rank and receives from the previous one, posted
// in an order that deadlocks with blocking calls; same-tag messages arrive in order.
template <typename T>
void CheckSendRecv(Communicator& c) {
  const int n = c.size();
  if (n == 1) return;  // no peer to talk to
  const int next = (c.rank() + 1) % n;
  const int prev = (c.rank() + n - 1) % n;
  for (size_t count : {size_t{1}, size_t{1001}}) {
    SCOPED_TRACE(Where<T>(c, absl::StrCat("send/recv count ", count)));
    const std::vector<T> first = Input<T>(c.rank(), count);
    const std::vector<T> second = Input<T>(c.rank(), count, 1000);
    const std::vector<T> tagged = Input<T>(c.rank() + 100, count);
    std::vector<T> got_first(count), got_second(count), got_tagged(count);
    // Receive tag 7 before tag 3 although the peer sends tag 3 first: tags are independent.
    ASSERT_OK_AND_ASSIGN(auto r7, c.RecvAsync(got_tagged.data(), count, prev, 7));
    ASSERT_OK_AND_ASSIGN(auto r3a, c.RecvAsync(got_first.data(), count, prev, 3));
    ASSERT_OK_AND_ASSIGN(auto s3a, c.SendAsync(first.data(), count, next, 3));
    ASSERT_OK_AND_ASSIGN(auto s3b, c.SendAsync(second.data(), count, next, 3));
    ASSERT_OK_AND_ASSIGN(auto s7, c.SendAsync(tagged.data(), count, next, 7));
    ASSERT_OK_AND_ASSIGN(auto r3b, c.RecvAsync(got_second.data(), count, prev, 3));
    for (auto* h : {&r7, &r3a, &s3a, &s3b, &s7, &r3b}) EXPECT_OK((*h)->Wait());
    EXPECT_EQ(AsDoubles(got_first), AsDoubles(Input<T>(prev, count)));
    EXPECT_EQ(AsDoubles(got_second), AsDoubles(Input<T>(prev, count, 1000)));
    EXPECT_EQ(AsDoubles(got_tagged), AsDoubles(Input<T>(prev + 100, count)));
  }
  // Blocking forms, ordered so that they cannot deadlock: even ranks send first.
  if (n % 2 == 0) {
    const int partner = c.rank() ^ 1;
    std::vector<T> mine = Input<T>(c.rank(), 5), theirs(5);
    if (c.rank() % 2 == 0) {
      ASSERT_OK(c.Send(mine.data(), 5, partner, 0));
      ASSERT_OK(c.Recv(theirs.data(), 5, partner, 0));
    } else {
      ASSERT_OK(c.Recv(theirs.data(), 5, partner, 0));
      ASSERT_OK(c.Send(mine.data(), 5, partner, 0));
    }
    EXPECT_EQ(AsDoubles(theirs), AsDoubles(Input<T>(partner, 5)));
  }
}

// No rank leaves the barrier before every rank has entered it.
void CheckBarrier(Communicator& c, std::atomic<int>* entered) {
  entered->fetch_add(1);
  ASSERT_OK(c.Barrier());
  EXPECT_GE(entered->load(), c.size()) << Where<float>(c, "barrier");
}

// Several asynchronous collectives in flight, waited on in reverse order.
template <typename T>
void CheckAsyncOverlap(Communicator& c, const Precision& precision) {
  const int n = c.size();
  const size_t count = 1001;
  SCOPED_TRACE(Where<T>(c, "async"));
  const std::vector<T> in = Input<T>(c.rank(), n * count);
  std::vector<T> reduced(n * count), shard(count), gathered(n * count), bcast = in;
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
  ExpectReduced(reduced, ReduceOp::kSum, n, 0, precision);
  ExpectReduced(shard, ReduceOp::kSum, n, c.rank() * count, precision);
  for (int r = 0; r < n; ++r) EXPECT_EQ(Chunk(gathered, r, count), AsDoubles(Input<T>(r, count)));
  EXPECT_EQ(AsDoubles(bcast), AsDoubles(Input<T>(n - 1, n * count)));
}

template <typename T>
void CheckEverythingOf(Communicator& c, const Precision& precision) {
  CheckAllReduce<T>(c, precision);
  CheckAllGather<T>(c);
  CheckReduceScatter<T>(c, precision);
  CheckAllToAll<T>(c);
  CheckBroadcast<T>(c);
  CheckSendRecv<T>(c);
  CheckAsyncOverlap<T>(c, precision);
}

void CheckEverything(Communicator& c, std::atomic<int>* entered, const Precision& precision) {
  CheckEverythingOf<float>(c, precision);
  CheckEverythingOf<BFloat16>(c, precision);
  CheckEverythingOf<int32_t>(c, precision);
  CheckEverythingOf<int64_t>(c, precision);
  CheckBarrier(c, entered);
}

// Runs check<T>(args...) for every element type.
#define FOR_EACH_DTYPE(check, ...)       \
  do {                                   \
    check<float>(__VA_ARGS__);           \
    check<BFloat16>(__VA_ARGS__);        \
    check<int32_t>(__VA_ARGS__);         \
    check<int64_t>(__VA_ARGS__);         \
  } while (0)

// ---- Parameterised over (backend, group size).

class CommParityTest : public ::testing::TestWithParam<std::tuple<std::string, int>> {
 protected:
  void SetUp() override {
    const CommBackend& b = FindCommBackend(backend());
    precision_.exact_float_avg = b.exact_float_avg;
    absl::StatusOr<CommGroup> group = b.make_group(size(), absl::Seconds(60));
    if (absl::IsFailedPrecondition(group.status())) {
      // A backend that needs hardware this machine lacks (NCCL: one GPU per rank).
      GTEST_SKIP() << group.status();
    }
    ASSERT_OK(group.status());
    comms_ = *std::move(group);
    ASSERT_EQ(static_cast<int>(comms_.size()), size());
  }
  void TearDown() override {
    // Each rank destroys its own communicator at the same time as the others: destroying one may
    // wait for its peers (NCCL's destroy synchronises the ranks of a node).
    std::vector<std::thread> threads;
    for (auto& comm : comms_) threads.emplace_back([&comm] { comm.reset(); });
    for (std::thread& t : threads) t.join();
  }
  const std::string& backend() const { return std::get<0>(GetParam()); }
  int size() const { return std::get<1>(GetParam()); }

  CommGroup comms_;
  Precision precision_;
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
  RunOnRanks(comms_, [&](int, Communicator& c) { FOR_EACH_DTYPE(CheckAllReduce, c, precision_); });
}

TEST_P(CommParityTest, AllGather) {
  RunOnRanks(comms_, [](int, Communicator& c) { FOR_EACH_DTYPE(CheckAllGather, c); });
}

TEST_P(CommParityTest, ReduceScatter) {
  RunOnRanks(comms_,
             [&](int, Communicator& c) { FOR_EACH_DTYPE(CheckReduceScatter, c, precision_); });
}

TEST_P(CommParityTest, AllToAll) {
  RunOnRanks(comms_, [](int, Communicator& c) { FOR_EACH_DTYPE(CheckAllToAll, c); });
}

TEST_P(CommParityTest, Broadcast) {
  RunOnRanks(comms_, [](int, Communicator& c) { FOR_EACH_DTYPE(CheckBroadcast, c); });
}

TEST_P(CommParityTest, SendRecv) {
  RunOnRanks(comms_, [](int, Communicator& c) { FOR_EACH_DTYPE(CheckSendRecv, c); });
}

TEST_P(CommParityTest, Barrier) {
  std::atomic<int> entered{0};
  RunOnRanks(comms_, [&](int, Communicator& c) { CheckBarrier(c, &entered); });
}

TEST_P(CommParityTest, AsyncOverlap) {
  RunOnRanks(comms_,
             [&](int, Communicator& c) { FOR_EACH_DTYPE(CheckAsyncOverlap, c, precision_); });
}

TEST_P(CommParityTest, Bf16SumsRoundToNearestEven) {
  // Element 0: 1 + 2^-8, halfway between 1 and 1 + 2^-7: ties to the even 1.
  // Element 1: (1 + 2^-7) + 2^-8, halfway between 1 + 2^-7 and 1 + 2^-6: ties to the even 1 + 2^-6.
  // Every other rank adds zeros, so the result does not depend on the order of the additions.
  RunOnRanks(comms_, [](int rank, Communicator& c) {
    std::vector<BFloat16> x(2, ToBFloat16(0.0f));
    if (rank == 0) x = {ToBFloat16(1.0f), ToBFloat16(1.0f + 1.0f / 128)};
    if (rank == 1) x = {ToBFloat16(1.0f / 256), ToBFloat16(1.0f / 256)};
    ASSERT_OK(c.AllReduce(x.data(), x.data(), 2));
    EXPECT_EQ(FromBFloat16(x[0]), 1.0f);
    EXPECT_EQ(FromBFloat16(x[1]), 1.0f + 1.0f / 64);
  });
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
  int64_t y = 0;
  EXPECT_OK(c.StartAllReduce(&y, &y, 0, DType::kInt64, ReduceOp::kMax).status());
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
  // Overlap is counted in bytes of the element type: 3 bf16 elements (6 bytes) reach past the
  // output 4 bytes further on.
  EXPECT_THAT(c.StartAllReduce(buf.data(), buf.data() + 1, 3, DType::kBFloat16, ReduceOp::kSum)
                  .status(),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("overlap")));
  EXPECT_THAT(c.AllToAll(buf.data(), buf.data() + 1, 1),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("overlap")));
  EXPECT_THAT(c.AllGather(buf.data() + 1, buf.data(), 2),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("overlap")));
  EXPECT_THAT(c.AllReduce<float>(nullptr, buf.data(), 4),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("null")));
  EXPECT_THAT(c.Split({}), StatusIs(absl::StatusCode::kInvalidArgument, ::testing::_));
  EXPECT_THAT(c.Split({0, 0}), StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("twice")));
  EXPECT_THAT(c.Split({0, size()}), StatusIs(absl::StatusCode::kInvalidArgument, ::testing::_));
  // The group still works: nothing was sent.
  RunOnRanks(comms_, [](int, Communicator& c) { EXPECT_OK(c.Barrier()); });
}

// Sub-groups made of non-contiguous, unsorted rank lists, used concurrently; every operation is
// checked on each for every element type, then all-reduce on a sub-group of a sub-group.
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
      // Every rank calls Split for every list (the portable rule): non-members get nullptr.
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
    CheckEverything(*mine, &entered[my_list], precision_);

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
    FOR_EACH_DTYPE(CheckAllReduce, *nested, precision_);
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
  for (const CommBackend& backend : AllCommBackends()) {
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
