// nccl_bench — bandwidth of the NCCL communicator's operations, one process per GPU.
//
//   bazel build -c opt //runtime/comm/nccl:nccl_bench        # here; run on a GPU machine:
//   nccl_bench --nproc=1
//   nccl_bench --nproc=8 --ops=all_reduce,all_gather --sizes=1048576,1073741824 --dtype=bf16
//
// For each process count the binary forks that many ranks (rank r on GPU r; the parent never
// initialises CUDA, so the children can), which meet through a FileStore in a fresh temporary
// directory. For each operation and size, every rank runs the operation once and checks the result,
// runs `warmup` more, then times `iters` operations issued back to back (waiting for them all at
// the end, as nccl-tests does) between two barriers. Rank 0 prints one Markdown row per case.
//
// Definitions (nccl-tests, doc/PERFORMANCE.md; common/collective.h): `size` is the bytes of the
// whole buffer — the all-reduce buffer, the all-gather output, the reduce-scatter input, the
// all-to-all buffer of one rank, one send/recv message; time is per operation, the slowest rank's
// mean; algbw = size / time; busbw = algbw x BusFactor (2(n-1)/n for all-reduce, (n-1)/n for
// all-gather, reduce-scatter and all-to-all, 1 for send/recv: each rank sends to the next and
// receives from the previous one). With one rank busbw is 0 (nothing crosses a link) and algbw is
// the device's copy rate through NCCL.
//
// Exit status: 0 when every rank finished and every check passed; 1 otherwise (the failing rank
// prints why); 2 for bad flags.
#include <cuda_runtime.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "CLI/CLI.hpp"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "common/cli_app.h"
#include "common/collective.h"
#include "common/status_macros.h"
#include "runtime/comm/file_store.h"
#include "runtime/comm/nccl/nccl_communicator.h"
#include "runtime/comm/testing/fork_ranks.h"

namespace {
// The command line (--help lists every flag with its default).
struct CommandLineFlags {
  std::string nproc = "1";
  std::string ops = "all_reduce,all_gather,reduce_scatter,all_to_all,send_recv";
  std::string sizes = "1048576,16777216,268435456,1073741824";
  std::string dtype = "bf16";
  double seconds = 0.3;
  int warmup = 5;
  int min_iters = 5;
  int max_iters = 1000;
  std::string tmpdir = "";
};
CommandLineFlags g_flags;

void AddFlags(CLI::App& app) {
  app.add_option("--nproc", g_flags.nproc, "comma-separated process counts (one GPU each)");
  app.add_option("--ops", g_flags.ops,
                 "comma-separated operations (send_recv needs 2 or more ranks)");
  app.add_option("--sizes", g_flags.sizes,
                 "comma-separated buffer sizes in bytes (see the definitions in the source)");
  app.add_option("--dtype", g_flags.dtype, "element type: f32 or bf16");
  app.add_option("--seconds", g_flags.seconds,
                 "target timed duration per case; iterations are chosen to fill it");
  app.add_option("--warmup", g_flags.warmup, "untimed operations before timing");
  app.add_option("--min-iters", g_flags.min_iters, "fewest timed iterations per case");
  app.add_option("--max-iters", g_flags.max_iters, "most timed iterations per case");
  app.add_option("--tmpdir", g_flags.tmpdir,
                 "where the rendezvous directories go (default: $TMPDIR or /tmp)");
}
}  // namespace

namespace cairn::runtime {
namespace {

struct Case {
  CollectiveOp op;
  size_t bytes;
};

absl::Status Cuda(cudaError_t error, absl::string_view call) {
  if (error == cudaSuccess) return absl::OkStatus();
  return absl::InternalError(absl::StrCat(call, ": ", cudaGetErrorString(error)));
}

// Element i of a buffer of `dtype` holding `value` (small integers: exact in bf16).
std::vector<char> Filled(DType dtype, size_t count, float value) {
  std::vector<char> bytes(count * DTypeSize(dtype));
  for (size_t i = 0; i < count; ++i) {
    if (dtype == DType::kBFloat16) {
      const BFloat16 v = ToBFloat16(value);
      std::memcpy(bytes.data() + 2 * i, &v, 2);
    } else {
      std::memcpy(bytes.data() + 4 * i, &value, 4);
    }
  }
  return bytes;
}

float ElementAt(DType dtype, const std::vector<char>& bytes, size_t i) {
  if (dtype == DType::kBFloat16) {
    BFloat16 v;
    std::memcpy(&v, bytes.data() + 2 * i, 2);
    return FromBFloat16(v);
  }
  float v;
  std::memcpy(&v, bytes.data() + 4 * i, 4);
  return v;
}

// One rank's buffers for a case: inputs hold rank + 1.
struct Buffers {
  void* in = nullptr;
  void* out = nullptr;
  size_t in_count = 0;
  size_t out_count = 0;
  ~Buffers() {
    (void)cudaFree(in);
    (void)cudaFree(out);
  }
};

// Starts `op` once. `elements` is the element count of `size` (a multiple of the rank count).
absl::StatusOr<std::unique_ptr<CommHandle>> Start(Communicator& c, CollectiveOp op, DType dtype,
                                                  const Buffers& b, size_t elements) {
  const size_t per_rank = elements / c.size();
  switch (op) {
    case CollectiveOp::kAllReduce:
      return c.StartAllReduce(b.in, b.out, elements, dtype, ReduceOp::kSum);
    case CollectiveOp::kAllGather:
      return c.StartAllGather(b.in, b.out, per_rank, dtype);
    case CollectiveOp::kReduceScatter:
      return c.StartReduceScatter(b.in, b.out, per_rank, dtype, ReduceOp::kSum);
    case CollectiveOp::kAllToAll:
      return c.StartAllToAll(b.in, b.out, per_rank, dtype);
    case CollectiveOp::kSendRecv:
      break;
  }
  // A ring exchange of one message: both are deferred and issued together when waited on.
  const int next = (c.rank() + 1) % c.size();
  const int prev = (c.rank() + c.size() - 1) % c.size();
  CAIRN_ASSIGN_OR_RETURN(auto recv, c.StartRecv(b.out, elements, dtype, prev, 0));
  CAIRN_ASSIGN_OR_RETURN(auto send, c.StartSend(b.in, elements, dtype, next, 0));
  // One handle for both: waiting on it waits on the two.
  class Both final : public CommHandle {
   public:
    Both(std::unique_ptr<CommHandle> a, std::unique_ptr<CommHandle> b)
        : a_(std::move(a)), b_(std::move(b)) {}
    absl::Status Wait() override {
      absl::Status sa = a_->Wait();
      absl::Status sb = b_->Wait();
      return sa.ok() ? sb : sa;
    }

   private:
    std::unique_ptr<CommHandle> a_, b_;
  };
  return std::unique_ptr<CommHandle>(new Both(std::move(recv), std::move(send)));
}

// Whether the output is right for inputs of rank + 1: sums n(n+1)/2, chunk r of gathers r + 1,
// a received message the previous rank's + 1.
bool Correct(const Communicator& c, CollectiveOp op, DType dtype, const std::vector<char>& out,
             size_t out_count) {
  const int n = c.size();
  const float sum = n * (n + 1) / 2.0f;
  const size_t per_chunk = out_count / n;
  for (size_t i = 0; i < out_count; i += std::max<size_t>(1, out_count / 4096)) {
    const float v = ElementAt(dtype, out, i);
    float want = 0;
    switch (op) {
      case CollectiveOp::kAllReduce:
      case CollectiveOp::kReduceScatter:
        want = sum;
        break;
      case CollectiveOp::kAllGather:
      case CollectiveOp::kAllToAll:
        want = static_cast<float>(i / per_chunk + 1);
        break;
      case CollectiveOp::kSendRecv:
        want = static_cast<float>((c.rank() + n - 1) % n + 1);
        break;
    }
    if (v != want) return false;
  }
  return true;
}

// The maximum of `value` over ranks.
absl::StatusOr<float> MaxOverRanks(Communicator& c, float value, float* device_scratch) {
  CAIRN_RETURN_IF_ERROR(
      Cuda(cudaMemcpy(device_scratch, &value, sizeof(float), cudaMemcpyHostToDevice), "cudaMemcpy"));
  CAIRN_RETURN_IF_ERROR(c.AllReduce(device_scratch, device_scratch, 1, ReduceOp::kMax));
  CAIRN_RETURN_IF_ERROR(
      Cuda(cudaMemcpy(&value, device_scratch, sizeof(float), cudaMemcpyDeviceToHost), "cudaMemcpy"));
  return value;
}

absl::Status RunRank(int rank, int n, const std::string& dir, DType dtype,
                     const std::vector<Case>& cases) {
  CAIRN_ASSIGN_OR_RETURN(std::shared_ptr<Store> store, FileStore::Open(dir));
  NcclOptions options;
  options.device = rank;
  options.timeout = absl::Minutes(5);
  options.rendezvous_timeout = absl::Minutes(1);
  CAIRN_ASSIGN_OR_RETURN(auto comm, NcclCommunicator::Create(rank, n, store, options));
  float* scratch = nullptr;
  CAIRN_RETURN_IF_ERROR(Cuda(cudaMalloc(&scratch, sizeof(float)), "cudaMalloc"));
  const size_t element_bytes = DTypeSize(dtype);
  for (const Case& c : cases) {
    if (c.op == CollectiveOp::kSendRecv && n < 2) continue;
    const size_t elements = c.bytes / element_bytes / n * n;  // a multiple of n
    if (elements == 0) continue;
    Buffers b;
    b.in_count = c.op == CollectiveOp::kAllGather ? elements / n : elements;
    b.out_count = c.op == CollectiveOp::kReduceScatter ? elements / n : elements;
    CAIRN_RETURN_IF_ERROR(Cuda(cudaMalloc(&b.in, b.in_count * element_bytes), "cudaMalloc"));
    CAIRN_RETURN_IF_ERROR(Cuda(cudaMalloc(&b.out, b.out_count * element_bytes), "cudaMalloc"));
    const std::vector<char> in = Filled(dtype, b.in_count, rank + 1.0f);
    CAIRN_RETURN_IF_ERROR(
        Cuda(cudaMemcpy(b.in, in.data(), in.size(), cudaMemcpyHostToDevice), "cudaMemcpy"));
    // For all-to-all, chunk j of every rank's input must come back as chunk `rank` elsewhere:
    // inputs hold rank + 1 throughout, so chunk r of the output holds r + 1.
    {
      CAIRN_ASSIGN_OR_RETURN(auto once, Start(*comm, c.op, dtype, b, elements));
      CAIRN_RETURN_IF_ERROR(once->Wait());
    }
    std::vector<char> out(b.out_count * element_bytes);
    CAIRN_RETURN_IF_ERROR(
        Cuda(cudaMemcpy(out.data(), b.out, out.size(), cudaMemcpyDeviceToHost), "cudaMemcpy"));
    CAIRN_ASSIGN_OR_RETURN(
        const float wrong,
        MaxOverRanks(*comm, Correct(*comm, c.op, dtype, out, b.out_count) ? 0.0f : 1.0f, scratch));

    auto run = [&](int iters) -> absl::StatusOr<double> {
      CAIRN_RETURN_IF_ERROR(comm->Barrier());
      const absl::Time start = absl::Now();
      std::vector<std::unique_ptr<CommHandle>> pending;
      pending.reserve(iters);
      for (int i = 0; i < iters; ++i) {
        CAIRN_ASSIGN_OR_RETURN(auto handle, Start(*comm, c.op, dtype, b, elements));
        // Point-to-point batches are issued when waited on: wait on each to keep them moving.
        if (c.op == CollectiveOp::kSendRecv) CAIRN_RETURN_IF_ERROR(handle->Wait());
        pending.push_back(std::move(handle));
      }
      for (auto& handle : pending) CAIRN_RETURN_IF_ERROR(handle->Wait());
      return absl::ToDoubleSeconds(absl::Now() - start) / iters;
    };
    CAIRN_ASSIGN_OR_RETURN(double warm_s, run(std::max(1, g_flags.warmup)));
    CAIRN_ASSIGN_OR_RETURN(const float slowest_warm_s,
                           MaxOverRanks(*comm, static_cast<float>(warm_s), scratch));
    const int iters = std::clamp(static_cast<int>(g_flags.seconds / slowest_warm_s),
                                 g_flags.min_iters, g_flags.max_iters);
    CAIRN_ASSIGN_OR_RETURN(double time_s, run(iters));
    CAIRN_ASSIGN_OR_RETURN(const float slowest_s,
                           MaxOverRanks(*comm, static_cast<float>(time_s), scratch));
    if (rank == 0) {
      const double bytes = static_cast<double>(elements * element_bytes);
      const double algbw = bytes / slowest_s / 1e9;
      std::printf("| %s | %d | %s | %.0f | %.1f | %.2f | %.2f | %d | %s |\n", ToString(c.op), n,
                  DTypeName(dtype), bytes, slowest_s * 1e6, algbw, algbw * BusFactor(c.op, n),
                  iters, wrong == 0 ? "ok" : "WRONG");
      std::fflush(stdout);
    }
    if (wrong != 0) {
      return absl::InternalError(absl::StrCat(ToString(c.op), " of ", c.bytes,
                                              " bytes gave a wrong result"));
    }
  }
  (void)cudaFree(scratch);
  return comm->Barrier();
}

std::vector<std::string> SplitList(const std::string& text) {
  return absl::StrSplit(text, ',', absl::SkipEmpty());
}

int Main() {
  std::vector<int> nprocs;
  for (const std::string& s : SplitList(g_flags.nproc)) {
    int n = 0;
    if (!absl::SimpleAtoi(s, &n) || n < 1) {
      std::fprintf(stderr, "nccl_bench: bad --nproc entry '%s'\n", s.c_str());
      return 2;
    }
    nprocs.push_back(n);
  }
  DType dtype;
  const std::string dtype_name = g_flags.dtype;
  if (dtype_name == "f32") {
    dtype = DType::kFloat32;
  } else if (dtype_name == "bf16") {
    dtype = DType::kBFloat16;
  } else {
    std::fprintf(stderr, "nccl_bench: --dtype must be f32 or bf16, not '%s'\n",
                 dtype_name.c_str());
    return 2;
  }
  std::vector<Case> cases;
  for (const std::string& name : SplitList(g_flags.ops)) {
    const std::optional<CollectiveOp> op = CollectiveOpFromName(name);
    if (!op.has_value()) {
      std::fprintf(stderr, "nccl_bench: unknown op '%s'\n", name.c_str());
      return 2;
    }
    for (const std::string& s : SplitList(g_flags.sizes)) {
      size_t bytes = 0;
      if (!absl::SimpleAtoi(s, &bytes)) {
        std::fprintf(stderr, "nccl_bench: bad --sizes entry '%s'\n", s.c_str());
        return 2;
      }
      cases.push_back({*op, bytes});
    }
  }
  std::string tmp = g_flags.tmpdir;
  if (tmp.empty()) tmp = std::getenv("TMPDIR") != nullptr ? std::getenv("TMPDIR") : "/tmp";

  std::printf("nccl_bench: time = slowest rank's mean per operation; NCCL_NVLS_ENABLE forced to 0 "
              "unless CAIRN_ALLOW_NVLS=1\n\n");
  std::printf("| op | ranks | dtype | size (B) | time (us) | algbw (GB/s) | busbw (GB/s) | iters | "
              "check |\n");
  std::printf("|---|---|---|---|---|---|---|---|---|\n");
  std::fflush(stdout);
  int failures = 0;
  for (int n : nprocs) {
    std::string dir = absl::StrCat(tmp, "/nccl_bench-XXXXXX");
    if (mkdtemp(dir.data()) == nullptr) {
      std::perror("nccl_bench: mkdtemp");
      return 1;
    }
    const std::vector<absl::Status> results =
        ForkRanks(n, dir, [&](int rank) { return RunRank(rank, n, dir, dtype, cases); });
    for (int rank = 0; rank < n; ++rank) {
      if (results[rank].ok()) continue;
      std::fprintf(stderr, "rank %d: %s\n", rank, results[rank].ToString().c_str());
      ++failures;
    }
    std::error_code ignored;  // best effort: the rendezvous files are small
    std::filesystem::remove_all(dir, ignored);
  }
  return failures == 0 ? 0 : 1;
}

}  // namespace
}  // namespace cairn::runtime

int main(int argc, char** argv) {
  std::unique_ptr<CLI::App> app = cairn::MakeApp(
      "nccl_bench", "bandwidth of the NCCL communicator's operations, one process per GPU.");
  AddFlags(*app);
  if (std::optional<int> exit = cairn::ParseCommandLine(*app, argc, argv)) return *exit;
  return cairn::runtime::Main();
}
