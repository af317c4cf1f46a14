// gloo_bench — bandwidth of the Gloo communicator's collectives on N local processes over loopback.
//
//   bazel run -c opt //runtime/comm/gloo:gloo_bench -- --nproc=2,4
//   bazel-bin/runtime/comm/gloo/gloo_bench --nproc=4 --ops=all_reduce --sizes=1048576,67108864
//
// For each process count the binary forks that many ranks, which meet through a FileStore in a fresh
// temporary directory (as a `--nproc` launch does). For each collective and size, every rank runs the
// operation once and checks the result, runs it once more to warm up, then times `iters` runs between
// two barriers. Rank 0 prints one Markdown row per case.
//
// Definitions (nccl-tests, doc/PERFORMANCE.md): `size` is the bytes of the whole buffer — the
// all-reduce buffer, the all-gather output, the reduce-scatter input, the all-to-all buffer of one
// rank; time is per operation, the slowest rank's mean; algbw = size / time;
// busbw = algbw * 2(n-1)/n for all-reduce and algbw * (n-1)/n for the other three (BusFactor,
// common/collective.h). busbw is the rate each rank's link carries, comparable across collectives and
// rank counts.
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <optional>
#include <string>
#include <thread>
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
#include "runtime/comm/gloo/gloo_communicator.h"
#include "runtime/comm/testing/fork_ranks.h"

namespace {
// The command line (--help lists every flag with its default).
struct CommandLineFlags {
  std::string nproc = "2,4";
  std::string ops = "all_reduce,all_gather,reduce_scatter,all_to_all";
  std::string sizes = "4096,65536,1048576,16777216,67108864";
  double seconds = 0.5;
  int min_iters = 5;
  int max_iters = 1000;
  std::string tmpdir = "";
};
CommandLineFlags g_flags;

void AddFlags(CLI::App& app) {
  app.add_option("--nproc", g_flags.nproc, "comma-separated process counts");
  app.add_option("--ops", g_flags.ops, "comma-separated collectives");
  app.add_option("--sizes", g_flags.sizes,
                 "comma-separated buffer sizes in bytes (see the definitions in the source)");
  app.add_option("--seconds", g_flags.seconds,
                 "target timed duration per case; iterations are chosen to fill it");
  app.add_option("--min-iters", g_flags.min_iters, "fewest timed iterations per case");
  app.add_option("--max-iters", g_flags.max_iters, "most timed iterations per case");
  app.add_option("--tmpdir", g_flags.tmpdir,
                 "where the rendezvous directories go (default: $TMPDIR or /tmp)");
}
}  // namespace

namespace cairn::runtime {
namespace {

struct Case {
  std::string op;
  size_t bytes;
};

// Runs `op` once on buffers sized for `bytes`. count_per_rank = bytes / 4 / n except for all-reduce.
absl::Status RunOnce(Communicator& c, const std::string& op, std::vector<float>& in,
                     std::vector<float>& out, size_t elements) {
  const size_t per_rank = elements / c.size();
  if (op == "all_reduce") return c.AllReduce(in.data(), out.data(), elements);
  if (op == "all_gather") return c.AllGather(in.data(), out.data(), per_rank);
  if (op == "reduce_scatter") return c.ReduceScatter(in.data(), out.data(), per_rank);
  if (op == "all_to_all") return c.AllToAll(in.data(), out.data(), per_rank);
  return absl::InvalidArgumentError(absl::StrCat("unknown op ", op));
}

// Whether `out` holds the right result for inputs in[i] = rank + 1 (sums are exact).
bool Correct(const Communicator& c, const std::string& op, const std::vector<float>& out,
             size_t elements) {
  const int n = c.size();
  const size_t per_rank = elements / n;
  const float sum = static_cast<float>(n * (n + 1) / 2);
  if (op == "all_reduce") {
    return std::all_of(out.begin(), out.begin() + elements, [&](float v) { return v == sum; });
  }
  if (op == "reduce_scatter") {
    return std::all_of(out.begin(), out.begin() + per_rank, [&](float v) { return v == sum; });
  }
  // all_gather and all_to_all: chunk r came from rank r.
  for (int r = 0; r < n; ++r) {
    for (size_t i = 0; i < per_rank; ++i) {
      if (out[r * per_rank + i] != static_cast<float>(r + 1)) return false;
    }
  }
  return true;
}

absl::Status RunRank(int rank, int n, const std::string& dir, const std::vector<Case>& cases) {
  CAIRN_ASSIGN_OR_RETURN(std::shared_ptr<Store> store, FileStore::Open(dir));
  GlooOptions options;
  options.timeout = absl::Minutes(5);
  options.rendezvous_timeout = absl::Minutes(1);
  CAIRN_ASSIGN_OR_RETURN(auto comm, GlooCommunicator::Create(rank, n, store, options));
  for (const Case& c : cases) {
    const size_t elements = c.bytes / sizeof(float) / n * n;  // a multiple of n
    if (elements == 0) continue;
    const size_t in_elements = c.op == "all_gather" ? elements / n : elements;
    const size_t out_elements = c.op == "reduce_scatter" ? elements / n : elements;
    std::vector<float> in(in_elements, static_cast<float>(rank + 1));
    std::vector<float> out(out_elements, 0.0f);
    CAIRN_RETURN_IF_ERROR(RunOnce(*comm, c.op, in, out, elements));
    float wrong = Correct(*comm, c.op, out, elements) ? 0.0f : 1.0f;
    CAIRN_RETURN_IF_ERROR(comm->AllReduce(&wrong, &wrong, 1));

    // Warm-up, timed, sets the iteration count (the same on every rank: the slowest rank's).
    CAIRN_RETURN_IF_ERROR(comm->Barrier());
    absl::Time start = absl::Now();
    CAIRN_RETURN_IF_ERROR(RunOnce(*comm, c.op, in, out, elements));
    float warm_s = static_cast<float>(absl::ToDoubleSeconds(absl::Now() - start));
    CAIRN_RETURN_IF_ERROR(comm->AllReduce(&warm_s, &warm_s, 1, ReduceOp::kMax));
    const int iters = std::clamp(static_cast<int>(g_flags.seconds / warm_s), g_flags.min_iters,
                                 g_flags.max_iters);

    CAIRN_RETURN_IF_ERROR(comm->Barrier());
    start = absl::Now();
    for (int i = 0; i < iters; ++i) CAIRN_RETURN_IF_ERROR(RunOnce(*comm, c.op, in, out, elements));
    float time_s = static_cast<float>(absl::ToDoubleSeconds(absl::Now() - start) / iters);
    CAIRN_RETURN_IF_ERROR(comm->AllReduce(&time_s, &time_s, 1, ReduceOp::kMax));

    if (rank == 0) {
      const double bytes = static_cast<double>(elements * sizeof(float));
      const double algbw = bytes / time_s / 1e9;
      std::printf("| %s | %d | %s | %.1f | %.3f | %.3f | %d | %s |\n", c.op.c_str(), n,
                  absl::StrFormat("%.0f", bytes).c_str(), time_s * 1e6, algbw,
                  algbw * BusFactor(*CollectiveOpFromName(c.op), n), iters,
                  wrong == 0 ? "ok" : "WRONG");
      std::fflush(stdout);
    }
  }
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
      std::fprintf(stderr, "gloo_bench: bad --nproc entry '%s'\n", s.c_str());
      return 2;
    }
    nprocs.push_back(n);
  }
  std::vector<Case> cases;
  for (const std::string& op : SplitList(g_flags.ops)) {
    const std::optional<CollectiveOp> known = CollectiveOpFromName(op);
    if (!known.has_value() || *known == CollectiveOp::kSendRecv) {
      std::fprintf(stderr, "gloo_bench: unknown op '%s'\n", op.c_str());
      return 2;
    }
    for (const std::string& s : SplitList(g_flags.sizes)) {
      size_t bytes = 0;
      if (!absl::SimpleAtoi(s, &bytes)) {
        std::fprintf(stderr, "gloo_bench: bad --sizes entry '%s'\n", s.c_str());
        return 2;
      }
      cases.push_back({op, bytes});
    }
  }
  std::string tmp = g_flags.tmpdir;
  if (tmp.empty()) tmp = std::getenv("TMPDIR") != nullptr ? std::getenv("TMPDIR") : "/tmp";

  std::printf("gloo_bench: %u hardware threads; time = slowest rank's mean per operation\n\n",
              std::thread::hardware_concurrency());
  std::printf("| op | ranks | size (B) | time (us) | algbw (GB/s) | busbw (GB/s) | iters | check |\n");
  std::printf("|---|---|---|---|---|---|---|---|\n");
  std::fflush(stdout);
  int failures = 0;
  for (int n : nprocs) {
    std::string dir = absl::StrCat(tmp, "/gloo_bench-XXXXXX");
    if (mkdtemp(dir.data()) == nullptr) {
      std::perror("gloo_bench: mkdtemp");
      return 1;
    }
    const std::vector<absl::Status> results =
        ForkRanks(n, dir, [&](int rank) { return RunRank(rank, n, dir, cases); });
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
      "gloo_bench",
      "bandwidth of the Gloo communicator's collectives on N local processes over loopback.");
  AddFlags(*app);
  if (std::optional<int> exit = cairn::ParseCommandLine(*app, argc, argv)) return *exit;
  return cairn::runtime::Main();
}
