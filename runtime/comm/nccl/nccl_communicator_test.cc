// NcclCommunicator on one GPU (a group of one rank): must pass on any GPU machine. Every operation on
// every element type with device buffers, stream ordering (a copy enqueued on a stream, then the
// collective, then WaitOn and a copy back, all without host synchronisation in between), abort,
// sub-groups, and NVLS kept off. Point-to-point needs two ranks: nccl_multiprocess_test and the
// parity suite on NCCL (../communicator_parity_test.cc, target :nccl_parity_test) cover it.
#include "runtime/comm/nccl/nccl_communicator.h"

#include <cuda_runtime.h>
#include <unistd.h>

#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/testing/status_matchers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "runtime/comm/file_store.h"
#include "runtime/compute/cuda/cuda_stream.h"

namespace cairn::runtime {
namespace {

using ::cairn::testing::StatusIs;
using ::testing::HasSubstr;

#define ASSERT_CUDA(call) ASSERT_EQ((call), cudaSuccess) << #call

std::shared_ptr<Store> FreshStore() {
  static std::atomic<int> counter{0};
  const char* tmp = std::getenv("TEST_TMPDIR");
  absl::StatusOr<std::unique_ptr<FileStore>> store = FileStore::Open(
      absl::StrCat(tmp != nullptr ? tmp : "/tmp", "/nccl-", getpid(), "-", counter++));
  EXPECT_OK(store.status());
  return std::shared_ptr<Store>(*std::move(store));
}

std::unique_ptr<NcclCommunicator> MakeSingleRank(const std::string& name = "world") {
  NcclOptions options;
  options.device = 0;
  options.timeout = absl::Seconds(60);
  options.rendezvous_timeout = absl::Seconds(60);
  options.name = name;
  absl::StatusOr<std::unique_ptr<NcclCommunicator>> comm =
      NcclCommunicator::Create(0, 1, FreshStore(), options);
  EXPECT_OK(comm.status());
  return comm.ok() ? *std::move(comm) : nullptr;
}

// A device buffer of `count` elements of T, freed with the object.
template <typename T>
class DeviceBuffer {
 public:
  explicit DeviceBuffer(size_t count) : count_(count) {
    EXPECT_EQ(cudaMalloc(&ptr_, count * sizeof(T)), cudaSuccess);
  }
  ~DeviceBuffer() { (void)cudaFree(ptr_); }
  T* get() const { return static_cast<T*>(ptr_); }
  void Set(const std::vector<T>& host) {
    ASSERT_EQ(host.size(), count_);
    ASSERT_CUDA(cudaMemcpy(ptr_, host.data(), count_ * sizeof(T), cudaMemcpyHostToDevice));
  }
  std::vector<T> Get() const {
    std::vector<T> host(count_);
    EXPECT_EQ(cudaMemcpy(host.data(), ptr_, count_ * sizeof(T), cudaMemcpyDeviceToHost),
              cudaSuccess);
    return host;
  }

 private:
  void* ptr_ = nullptr;
  size_t count_;
};

template <typename T>
T Make(size_t i);
template <>
float Make<float>(size_t i) {
  return static_cast<float>(static_cast<int>(i % 101) - 50) + 0.25f;
}
template <>
BFloat16 Make<BFloat16>(size_t i) {
  return ToBFloat16(Make<float>(i));
}
template <>
int32_t Make<int32_t>(size_t i) {
  return static_cast<int32_t>(i % 1000) - 500;
}
template <>
int64_t Make<int64_t>(size_t i) {
  return (static_cast<int64_t>(i % 1000) - 500) * (int64_t{1} << 35);
}

template <typename T>
std::vector<T> Input(size_t count) {
  std::vector<T> v(count);
  for (size_t i = 0; i < count; ++i) v[i] = Make<T>(i);
  return v;
}

template <typename T>
std::vector<uint8_t> Bytes(const std::vector<T>& v) {
  std::vector<uint8_t> bytes(v.size() * sizeof(T));
  std::memcpy(bytes.data(), v.data(), bytes.size());
  return bytes;
}

// On one rank every collective is the identity (kAvg divides by 1) and all-to-all and broadcast
// copy: the output must equal the input bit for bit.
template <typename T>
void CheckEveryOperation(Communicator& c) {
  SCOPED_TRACE(DTypeName(DTypeOf<T>::value));
  for (size_t count : {size_t{1}, size_t{1001}, size_t{1} << 20}) {
    SCOPED_TRACE(absl::StrCat("count ", count));
    const std::vector<T> in = Input<T>(count);
    DeviceBuffer<T> input(count), output(count);
    input.Set(in);
    for (ReduceOp op : {ReduceOp::kSum, ReduceOp::kAvg, ReduceOp::kMax, ReduceOp::kMin}) {
      SCOPED_TRACE(ReduceOpName(op));
      ASSERT_OK(c.AllReduce(input.get(), output.get(), count, op));
      EXPECT_EQ(Bytes(output.Get()), Bytes(in));
      ASSERT_OK(c.ReduceScatter(input.get(), output.get(), count, op));
      EXPECT_EQ(Bytes(output.Get()), Bytes(in));
    }
    ASSERT_OK(c.AllGather(input.get(), output.get(), count));
    EXPECT_EQ(Bytes(output.Get()), Bytes(in));
    ASSERT_OK(c.AllToAll(input.get(), output.get(), count));
    EXPECT_EQ(Bytes(output.Get()), Bytes(in));
    output.Set(in);
    ASSERT_OK(c.Broadcast(output.get(), count, 0));
    EXPECT_EQ(Bytes(output.Get()), Bytes(in));
    // In place.
    ASSERT_OK(c.AllReduce(output.get(), output.get(), count, ReduceOp::kSum));
    EXPECT_EQ(Bytes(output.Get()), Bytes(in));
  }
}

TEST(NcclCommunicatorTest, EveryOperationOnEveryElementType) {
  std::unique_ptr<NcclCommunicator> comm = MakeSingleRank();
  ASSERT_NE(comm, nullptr);
  EXPECT_EQ(comm->backend(), "nccl");
  EXPECT_EQ(comm->rank(), 0);
  EXPECT_EQ(comm->size(), 1);
  EXPECT_EQ(comm->device(), 0);
  CheckEveryOperation<float>(*comm);
  CheckEveryOperation<BFloat16>(*comm);
  CheckEveryOperation<int32_t>(*comm);
  CheckEveryOperation<int64_t>(*comm);
  EXPECT_OK(comm->Barrier());
}

TEST(NcclCommunicatorTest, AsynchronousOperationsWaitedInReverseOrder) {
  std::unique_ptr<NcclCommunicator> comm = MakeSingleRank();
  ASSERT_NE(comm, nullptr);
  const size_t count = 4099;
  const std::vector<int64_t> in = Input<int64_t>(count);
  DeviceBuffer<int64_t> input(count), a(count), b(count), g(count);
  input.Set(in);
  ASSERT_OK_AND_ASSIGN(auto ha, comm->AllReduceAsync(input.get(), a.get(), count));
  ASSERT_OK_AND_ASSIGN(auto hb, comm->ReduceScatterAsync(input.get(), b.get(), count));
  ASSERT_OK_AND_ASSIGN(auto hg, comm->AllGatherAsync(input.get(), g.get(), count));
  ASSERT_OK_AND_ASSIGN(auto barrier, comm->BarrierAsync());
  EXPECT_OK(barrier->Wait());
  EXPECT_OK(hg->Wait());
  EXPECT_OK(hb->Wait());
  EXPECT_OK(ha->Wait());
  EXPECT_OK(ha->Wait());  // again: the same status
  EXPECT_EQ(a.Get(), in);
  EXPECT_EQ(b.Get(), in);
  EXPECT_EQ(g.Get(), in);
}

// The collective runs after a copy enqueued on the caller's stream before it, and a copy enqueued
// on that stream after WaitOn sees its result; the host waits only at the end. 64 MiB copies leave
// a wrong order plenty of time to show.
TEST(NcclCommunicatorTest, OperationsAreOrderedOnTheCallersStream) {
  std::unique_ptr<NcclCommunicator> comm = MakeSingleRank();
  ASSERT_NE(comm, nullptr);
  const size_t count = size_t{16} << 20;  // 64 MiB of f32
  const size_t bytes = count * sizeof(float);
  float* host_in = nullptr;
  float* host_out = nullptr;
  ASSERT_CUDA(cudaMallocHost(&host_in, bytes));  // pinned: the copies are truly asynchronous
  ASSERT_CUDA(cudaMallocHost(&host_out, bytes));
  DeviceBuffer<float> input(count), output(count);
  cudaStream_t raw = nullptr;
  ASSERT_CUDA(cudaStreamCreateWithFlags(&raw, cudaStreamNonBlocking));
  Stream stream(raw);
  for (int round = 0; round < 3; ++round) {
    SCOPED_TRACE(absl::StrCat("round ", round));
    for (size_t i = 0; i < count; ++i) host_in[i] = static_cast<float>(round * 1000 + i % 997);
    ASSERT_CUDA(cudaMemset(input.get(), 0, bytes));
    ASSERT_CUDA(cudaMemset(output.get(), 0xff, bytes));  // NaNs
    ASSERT_CUDA(cudaMemcpyAsync(input.get(), host_in, bytes, cudaMemcpyHostToDevice, raw));
    if (round == 0) {
      // The blocking form with a stream: stream-ordered, returns without waiting on the host.
      ASSERT_OK(comm->AllReduce(input.get(), output.get(), count, ReduceOp::kSum, &stream));
    } else {
      ASSERT_OK_AND_ASSIGN(auto pending, comm->AllReduceAsync(input.get(), output.get(), count,
                                                              ReduceOp::kMax, &stream));
      ASSERT_OK(pending->WaitOn(&stream));
      if (round == 2) {
        ASSERT_OK(pending->Wait());  // a host wait after WaitOn is fine too
      }
    }
    ASSERT_CUDA(cudaMemcpyAsync(host_out, output.get(), bytes, cudaMemcpyDeviceToHost, raw));
    ASSERT_CUDA(cudaStreamSynchronize(raw));
    ASSERT_EQ(std::memcmp(host_out, host_in, bytes), 0);
  }
  ASSERT_CUDA(cudaStreamDestroy(raw));
  ASSERT_CUDA(cudaFreeHost(host_in));
  ASSERT_CUDA(cudaFreeHost(host_out));
}

TEST(NcclCommunicatorTest, AbortFailsLaterOperationsWithTheReason) {
  std::unique_ptr<NcclCommunicator> comm = MakeSingleRank();
  ASSERT_NE(comm, nullptr);
  DeviceBuffer<float> x(16);
  x.Set(Input<float>(16));
  ASSERT_OK_AND_ASSIGN(auto pending, comm->AllReduceAsync(x.get(), x.get(), 16));
  comm->Abort("the loss became NaN");
  EXPECT_THAT(pending->Wait(),
              StatusIs(absl::StatusCode::kAborted, HasSubstr("the loss became NaN")));
  EXPECT_THAT(comm->AllReduce(x.get(), x.get(), 16),
              StatusIs(absl::StatusCode::kAborted, HasSubstr("earlier failure")));
  EXPECT_THAT(comm->Barrier(), StatusIs(absl::StatusCode::kAborted, HasSubstr("NaN")));
  comm.reset();
  // The process can make a new communicator afterwards.
  std::unique_ptr<NcclCommunicator> fresh = MakeSingleRank("fresh");
  ASSERT_NE(fresh, nullptr);
  EXPECT_OK(fresh->AllReduce(x.get(), x.get(), 16));
}

TEST(NcclCommunicatorTest, SubGroupOfOneWorksIndependently) {
  std::unique_ptr<NcclCommunicator> comm = MakeSingleRank();
  ASSERT_NE(comm, nullptr);
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<Communicator> sub, comm->Split({0}, "tp"));
  ASSERT_NE(sub, nullptr);
  EXPECT_EQ(sub->name(), "tp");
  EXPECT_EQ(sub->backend(), "nccl");
  DeviceBuffer<BFloat16> x(1000);
  x.Set(Input<BFloat16>(1000));
  EXPECT_OK(sub->AllReduce(x.get(), x.get(), 1000));
  EXPECT_EQ(Bytes(x.Get()), Bytes(Input<BFloat16>(1000)));
  sub->Abort("only the sub-group");
  EXPECT_THAT(sub->Barrier(), StatusIs(absl::StatusCode::kAborted, ::testing::_));
  EXPECT_OK(comm->Barrier());  // the parent is unaffected
}

TEST(NcclCommunicatorTest, NvlsIsOffUnlessAllowed) {
  std::unique_ptr<NcclCommunicator> comm = MakeSingleRank();
  ASSERT_NE(comm, nullptr);
  const char* allow = std::getenv("CAIRN_ALLOW_NVLS");
  const char* nvls = std::getenv("NCCL_NVLS_ENABLE");
  if (allow != nullptr && std::string(allow) == "1") {
    EXPECT_TRUE(DisableNvlsUnlessAllowed());
  } else {
    ASSERT_NE(nvls, nullptr);
    EXPECT_STREQ(nvls, "0");
    EXPECT_FALSE(DisableNvlsUnlessAllowed());
  }
}

TEST(NcclCommunicatorTest, CreateFromEnvUsesLocalRankAsTheDevice) {
  setenv("RANK", "0", 1);
  setenv("WORLD_SIZE", "1", 1);
  setenv("LOCAL_RANK", "0", 1);
  unsetenv("MASTER_PORT");
  setenv("MASTER_ADDR", "127.0.0.1", 1);
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<NcclCommunicator> comm, NcclCommunicator::CreateFromEnv());
  EXPECT_EQ(comm->device(), 0);
  EXPECT_OK(comm->Barrier());
}

}  // namespace
}  // namespace cairn::runtime
