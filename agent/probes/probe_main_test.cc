// cairn-probe as processes (CPU backend, llama-tiny) under --time-limit-s: a tiny limit ends the
// run early with a valid, partial report (skipped > 0, exit 0); two ranks meeting through
// --store-dir skip exactly the same cases (they agree before each case, so their collectives
// match and both finish); no limit, or a generous one, skips nothing. Wall-clock bounds are loose
// (a shared 2-core CI machine): they tell a limit that works (seconds) from one that does not
// (the unlimited run of the same flags takes tens of seconds here).
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "agent/probes/probe_report.pb.h"
#include "agent/process.h"
#include "google/protobuf/util/json_util.h"
#include "gtest/gtest.h"

namespace cairn::agent {
namespace {

std::string ProbeBinary() {
  const char* dir = std::getenv("TEST_SRCDIR");
  const char* ws = std::getenv("TEST_WORKSPACE");
  const std::string path = "agent/probes/cairn-probe";
  if (dir == nullptr) return path;
  return absl::StrCat(dir, "/", ws != nullptr ? ws : "cairn", "/", path);
}

std::string Tmp(const std::string& name) { return absl::StrCat(::testing::TempDir(), "/", name); }

struct RankRun {
  ExitStatus exit;
  ProbeReport report;
  bool parsed = false;
  std::string log;
};

std::string ReadAll(const std::string& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

// Runs `world` ranks of cairn-probe at once with `args` (+ rank flags and --store-dir when
// world > 1) and reads their reports. Each gets at most `max_wait`.
std::vector<RankRun> RunProbe(const std::string& name, int world, std::vector<std::string> args,
                          absl::Duration max_wait = absl::Seconds(240)) {
  std::vector<std::unique_ptr<Process>> procs;
  std::vector<RankRun> runs(world);
  for (int r = 0; r < world; ++r) {
    SpawnOptions o;
    o.argv = {ProbeBinary(), "--output", Tmp(absl::StrCat(name, "-", r, ".json"))};
    o.argv.insert(o.argv.end(), args.begin(), args.end());
    if (world > 1) {
      o.argv.insert(o.argv.end(), {"--rank", absl::StrCat(r), "--world-size",
                                   absl::StrCat(world), "--local-rank", absl::StrCat(r),
                                   "--store-dir", Tmp(name + "-store"), "--timeout-s", "120"});
    }
    o.env = {{"OPENBLAS_NUM_THREADS", "1"}};
    o.log_path = Tmp(absl::StrCat(name, "-", r, ".log"));
    absl::StatusOr<std::unique_ptr<Process>> p = Process::Spawn(o);
    EXPECT_TRUE(p.ok()) << p.status();
    if (!p.ok()) return {};
    procs.push_back(std::move(*p));
  }
  for (int r = 0; r < world; ++r) {
    std::optional<ExitStatus> done = procs[r]->Wait(max_wait);
    runs[r].exit = done ? *done : procs[r]->Terminate(absl::ZeroDuration());
    EXPECT_TRUE(done.has_value()) << name << " rank " << r << " still running after " << max_wait;
    runs[r].log = ReadAll(Tmp(absl::StrCat(name, "-", r, ".log")));
    const std::string json = ReadAll(Tmp(absl::StrCat(name, "-", r, ".json")));
    runs[r].parsed = google::protobuf::util::JsonStringToMessage(json, &runs[r].report).ok();
  }
  return runs;
}

int Skipped(const ProbeReport& r) {
  int n = 0;
  for (const SkippedCases& s : r.skipped()) n += s.count();
  return n;
}

std::map<std::string, int> SkippedBySuiteAndProbe(const ProbeReport& r) {
  std::map<std::string, int> out;
  for (const SkippedCases& s : r.skipped()) out[s.suite() + "/" + s.probe()] += s.count();
  return out;
}

TEST(ProbeTimeLimitTest, ATinyLimitEndsEarlyWithAPartialReport) {
  const absl::Time start = absl::Now();
  std::vector<RankRun> runs =
      RunProbe("tiny", 1, {"--models", "llama-tiny", "--time-limit-s", "1"});
  ASSERT_EQ(runs.size(), 1u);
  const RankRun& r = runs[0];
  EXPECT_TRUE(r.exit.ok()) << r.log;
  ASSERT_TRUE(r.parsed) << r.log;
  EXPECT_EQ(r.report.time_limit_s(), 1);
  EXPECT_GT(Skipped(r.report), 0) << r.log;
  for (const SkippedCases& s : r.report.skipped()) EXPECT_EQ(s.reason(), "time limit");
  // The full budget's compute and layer suites take ~25 s unlimited on this machine; the limit
  // lets at most the cases in flight at 1 s finish.
  EXPECT_LT(r.report.duration_s(), 15) << r.log;
  EXPECT_LT(absl::Now() - start, absl::Seconds(60));
  EXPECT_NE(r.log.find("cases skipped (time limit)"), std::string::npos) << r.log;
  for (const Measurement& m : r.report.measurements()) EXPECT_TRUE(m.error().empty()) << m.name();
}

// Two ranks with every suite (collectives and overlap included) under a limit that cuts the run:
// both finish with exit 0 and skipped the same cases, and ran the same compute and layer cases.
TEST(ProbeTimeLimitTest, TwoRanksThroughAStoreDirSkipTheSameCases) {
  std::vector<RankRun> runs = RunProbe(
      "two", 2, {"--models", "llama-tiny", "--time-limit-s", "4", "--max-bytes", "262144"});
  ASSERT_EQ(runs.size(), 2u);
  for (const RankRun& r : runs) {
    EXPECT_TRUE(r.exit.ok()) << r.log;
    ASSERT_TRUE(r.parsed) << r.log;
    EXPECT_TRUE(r.report.errors().empty()) << r.log;
    EXPECT_GT(Skipped(r.report), 0) << r.log;
  }
  EXPECT_EQ(SkippedBySuiteAndProbe(runs[0].report), SkippedBySuiteAndProbe(runs[1].report));
  std::vector<std::string> names[2];
  for (int r = 0; r < 2; ++r) {
    for (const Measurement& m : runs[r].report.measurements()) {
      if (m.probe() == "gemm" || m.probe() == "layer") names[r].push_back(m.name());
    }
  }
  EXPECT_EQ(names[0], names[1]);
}

TEST(ProbeTimeLimitTest, NoLimitOrAGenerousOneSkipsNothing) {
  for (const std::string limit : {"0", "600"}) {
    std::vector<RankRun> runs =
        RunProbe("none-" + limit, 1,
                 {"--models", "llama-tiny", "--budget", "quick", "--suites", "layers",
                  "--layer-micro-batches", "1,2", "--time-limit-s", limit});
    ASSERT_EQ(runs.size(), 1u);
    const RankRun& r = runs[0];
    EXPECT_TRUE(r.exit.ok()) << r.log;
    ASSERT_TRUE(r.parsed) << r.log;
    EXPECT_EQ(r.report.skipped_size(), 0) << limit;
    int layers = 0;
    for (const Measurement& m : r.report.measurements()) {
      layers += m.probe() == "layer" && m.error().empty();
    }
    EXPECT_EQ(layers, 6) << limit;  // 3 kinds x 2 micro-batches
    EXPECT_NE(r.log.find("layers suite done after"), std::string::npos) << r.log;
    EXPECT_NE(r.log.find("0 cases skipped"), std::string::npos) << r.log;
  }
}

TEST(ProbeTimeLimitTest, ANegativeLimitIsABadFlag) {
  std::vector<RankRun> runs = RunProbe("negative", 1, {"--time-limit-s", "-1"});
  ASSERT_EQ(runs.size(), 1u);
  EXPECT_EQ(runs[0].exit.exit_code, 2) << runs[0].log;
}

}  // namespace
}  // namespace cairn::agent
