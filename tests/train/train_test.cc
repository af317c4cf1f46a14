// End-to-end tests of cairn-train as real processes over Gloo: multi-process training under
// explicit plans matches one process, a dying worker makes the run fail fast with a clear error,
// bad plans are refused before any worker starts, and checkpoints resume. Fault injection exists
// only in the cairn-train-testing build.
#include <dirent.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <thread>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace cairn {
namespace {

using ::testing::HasSubstr;

struct Result {
  int status = -1;
  std::string output;  // stdout and stderr
};

Result Sh(const std::string& command) {
  Result r;
  FILE* p = popen((command + " 2>&1").c_str(), "r");
  if (!p) return r;
  char buf[4096];
  while (size_t n = fread(buf, 1, sizeof(buf), p)) r.output.append(buf, n);
  const int st = pclose(p);
  r.status = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
  return r;
}

std::string Tmp() {
  const char* d = std::getenv("TEST_TMPDIR");
  return d ? d : "/tmp";
}

std::vector<double> Losses(const std::string& out) {
  std::vector<double> losses;
  for (absl::string_view line : absl::StrSplit(out, '\n')) {
    const size_t at = line.find("| loss ");
    if (line.substr(0, 5) != "step " || at == absl::string_view::npos) continue;
    double v;
    std::string num(line.substr(at + 7, line.find(' ', at + 7) - at - 7));
    if (absl::SimpleAtod(num, &v)) losses.push_back(v);
  }
  return losses;
}


// The workers of `launcher`: the processes whose parent it is (from /proc/PID/stat).
std::vector<pid_t> ChildrenOf(pid_t launcher) {
  std::vector<pid_t> out;
  DIR* proc = opendir("/proc");
  if (proc == nullptr) return out;
  while (dirent* e = readdir(proc)) {
    int pid = 0;
    if (!absl::SimpleAtoi(e->d_name, &pid)) continue;
    std::ifstream stat(absl::StrCat("/proc/", pid, "/stat"));
    std::string line;
    std::getline(stat, line);
    // "PID (COMM) STATE PPID ...": COMM may hold spaces, so parse after the last ')'.
    const size_t close = line.rfind(')');
    if (close == std::string::npos) continue;
    std::vector<std::string> f = absl::StrSplit(line.substr(close + 2), ' ');
    int ppid = 0;
    if (f.size() > 1 && absl::SimpleAtoi(f[1], &ppid) && ppid == launcher) out.push_back(pid);
  }
  closedir(proc);
  return out;
}

// Running (not gone, not a zombie waiting for init to reap it).
bool Alive(pid_t pid) {
  std::ifstream stat(absl::StrCat("/proc/", pid, "/stat"));
  std::string line;
  if (!std::getline(stat, line)) return false;
  const size_t close = line.rfind(')');
  return close != std::string::npos && line.size() > close + 2 && line[close + 2] != 'Z';
}

std::vector<std::string> StoreDirs(const std::string& dir) {
  std::vector<std::string> out;
  if (DIR* d = opendir(dir.c_str())) {
    while (dirent* e = readdir(d)) {
      if (std::string(e->d_name).rfind("cairn-train-", 0) == 0) out.push_back(e->d_name);
    }
    closedir(d);
  }
  return out;
}

std::string ReadAll(const std::string& path) {
  std::ifstream f(path);
  return std::string(std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>());
}

class TrainTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    std::ofstream text(Tmp() + "/corpus.txt");
    for (int i = 0; i < 400; ++i) {
      text << "Cairn plans and runs hybrid-parallel training. Line " << i
           << " of a small corpus for the end-to-end test.\n";
    }
    text.close();
    const Result r = Sh(absl::StrCat("runtime/data/cairn-data ", Tmp(), "/corpus.txt --output ",
                                     Tmp(), "/data"));
    ASSERT_EQ(r.status, 0) << r.output;
  }
  // cairn-train (or its fault-injecting test build) on the test corpus with `args`.
  std::string Train(const std::string& args, bool testing_build = false) {
    return absl::StrCat("runtime/train/", testing_build ? "cairn-train-testing" : "cairn-train",
                        " --model llama-tiny --data ", Tmp(),
                        "/data --global-batch 8 --seq-len 32 --lr 1e-3 ", args);
  }
  // A plan file for llama-tiny (4 blocks) on `devices` devices: one strategy for every layer,
  // `stages` pipeline stages of equal blocks, `micro` micro-batches of the batch of 8.
  std::string PlanFile(const std::string& name, int devices, const std::string& strategy,
                       int stages = 1, int micro = 1) {
    std::string layers, stage_list;
    for (int i = 0; i < 6; ++i) {
      absl::StrAppend(&layers, i ? ", " : "", "{\"index\": ", i, ", ", strategy,
                      ", \"tp_consecutive\": true}");
    }
    const int blocks = 4 / stages;
    int first = 0;
    for (int s = 0; s < stages; ++s) {
      const int n = blocks + (s == 0) + (s == stages - 1);
      absl::StrAppend(&stage_list, s ? ", " : "", "{\"first_layer\": ", first,
                      ", \"num_layers\": ", n, "}");
      first += n;
    }
    const std::string path = absl::StrCat(Tmp(), "/", name, ".json");
    std::ofstream(path) << absl::StrCat(
        "{\"format_version\": 1, \"model_name\": \"llama-tiny\", \"num_nodes\": 1, ",
        "\"devices_per_node\": ", devices, ", \"global_batch_size\": 8, \"seq_len\": 32, ",
        "\"num_micro_batches\": ", micro, ", \"pipeline_degree\": ", stages,
        ", \"stages\": [", stage_list, "], \"layers\": [", layers, "]}");
    return path;
  }
};

TEST_F(TrainTest, MultiProcessMatchesOneProcess) {
  const Result one = Sh(Train("--nproc 1 --steps 4 --plan " + PlanFile("one", 1, "\"tp_degree\": 1")));
  ASSERT_EQ(one.status, 0) << one.output;
  const std::vector<double> ref = Losses(one.output);
  ASSERT_EQ(ref.size(), 4u) << one.output;
  const std::string zero1 = "\"tp_degree\": 1, \"dp_mode\": \"DATA_PARALLEL_MODE_ZERO1\"";
  const std::string tp_sp =
      "\"tp_degree\": 2, \"mode\": \"PARALLEL_MODE_TENSOR_SEQUENCE\", "
      "\"dp_mode\": \"DATA_PARALLEL_MODE_ZERO3\"";
  for (const std::string& plan :
       {"--nproc 2 --plan " + PlanFile("dp2_zero1", 2, zero1),
        "--nproc 4 --plan " + PlanFile("tp2_sp_zero3", 4, tp_sp),
        "--nproc 4 --plan " + PlanFile("pp2_dp2", 4, "\"tp_degree\": 1", 2, 4)}) {
    const Result many = Sh(Train(absl::StrCat(plan, " --steps 4")));
    ASSERT_EQ(many.status, 0) << many.output;
    const std::vector<double> got = Losses(many.output);
    ASSERT_EQ(got.size(), ref.size()) << many.output;
    for (size_t i = 0; i < ref.size(); ++i) {
      EXPECT_NEAR(got[i], ref[i], 2e-4 * ref[i]) << plan << " step " << i + 1 << "\n"
                                                 << many.output;
    }
  }
}

TEST_F(TrainTest, TorchrunStyleLaunchFromEnvironment) {
  // Two separately started processes meet through MASTER_ADDR:MASTER_PORT (rank 0 hosts the
  // store), as torchrun, Slurm or Kubernetes would start them. Rank 0 binds port 0 and writes the
  // port it got to CAIRN_MASTER_PORT_FILE; rank 1 starts once the file exists.
  const Result one = Sh(Train("--nproc 1 --steps 3 --plan " + PlanFile("one", 1, "\"tp_degree\": 1")));
  ASSERT_EQ(one.status, 0) << one.output;
  const std::string plan = " --plan " + PlanFile("dp2", 2, "\"tp_degree\": 1");
  const std::string port_file = Tmp() + "/master_port";
  std::remove(port_file.c_str());
  const std::string env = "WORLD_SIZE=2 MASTER_ADDR=127.0.0.1 LOCAL_RANK=0 ";
  const std::string log = Tmp() + "/rank0.log";
  const Result r = Sh(absl::StrCat(
      "(", env, "MASTER_PORT=0 CAIRN_MASTER_PORT_FILE=", port_file, " RANK=0 ",
      Train("--steps 3" + plan), " > ", log, " 2>&1; echo $? > ", log, ".status) & ",
      "for i in $(seq 1 600); do [ -s ", port_file, " ] && break; sleep 0.05; done; ", env,
      "MASTER_PORT=$(cat ", port_file, ") RANK=1 ", Train("--steps 3" + plan), "; wait; cat ", log));
  ASSERT_EQ(r.status, 0) << r.output;
  const std::vector<double> ref = Losses(one.output), got = Losses(r.output);
  ASSERT_EQ(got.size(), ref.size()) << r.output;
  for (size_t i = 0; i < ref.size(); ++i) EXPECT_NEAR(got[i], ref[i], 2e-4 * ref[i]);
}

TEST_F(TrainTest, DeadWorkerFailsTheRunFast) {
  const Result r = Sh("CAIRN_FAULT_EXIT=1:1 " + Train("--nproc 2 --steps 5", true));
  EXPECT_EQ(r.status, 1) << r.output;
  EXPECT_THAT(r.output, HasSubstr("worker rank 1 exited with status 3"));
  EXPECT_THAT(r.output, ::testing::Not(HasSubstr("step     5/5")));
}

TEST_F(TrainTest, StepLinesSayElapsedAndEta) {
  const Result r = Sh(Train("--nproc 1 --steps 3 --plan " + PlanFile("one", 1, "\"tp_degree\": 1")));
  ASSERT_EQ(r.status, 0) << r.output;
  int lines = 0;
  for (absl::string_view line : absl::StrSplit(r.output, '\n')) {
    if (line.substr(0, 5) != "step ") continue;
    ++lines;
    EXPECT_THAT(std::string(line), HasSubstr("| elapsed ")) << line;
    EXPECT_THAT(std::string(line), HasSubstr("| ETA ")) << line;
  }
  EXPECT_EQ(lines, 3) << r.output;
  // Nothing left after the last step.
  EXPECT_THAT(r.output, HasSubstr("step     3/3"));
  EXPECT_THAT(r.output.substr(r.output.find("step     3/3")), HasSubstr("| ETA 0"));
}

// The validation split cairn-data writes (--val-fraction, 5% by default) is evaluated every
// --val-every steps and at the end, on a 2-stage pipeline too: "val" on those steps' lines and
// val_loss in their metrics lines. Through a pipe (not a terminal) every step is a plain line.
TEST_F(TrainTest, ValidationLossEveryNStepsOnPlainLines) {
  const std::string metrics = Tmp() + "/val.jsonl";
  const Result r = Sh(Train("--nproc 2 --steps 5 --val-every 2 --val-batches 2 --metrics " +
                            metrics + " --plan " +
                            PlanFile("val_pp2", 2, "\"tp_degree\": 1", 2, 2)));
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_THAT(r.output, ::testing::Not(HasSubstr("\r")));
  EXPECT_THAT(r.output, ::testing::Not(HasSubstr("validation skipped")));
  std::vector<int> val_steps;
  int lines = 0;
  for (absl::string_view line : absl::StrSplit(r.output, '\n')) {
    if (line.substr(0, 5) != "step ") continue;
    ++lines;
    if (line.find("| val ") != absl::string_view::npos) val_steps.push_back(lines);
  }
  EXPECT_EQ(lines, 5) << r.output;
  EXPECT_THAT(val_steps, ::testing::ElementsAre(2, 4, 5)) << r.output;
  int with_val = 0;
  for (absl::string_view line : absl::StrSplit(ReadAll(metrics), '\n', absl::SkipEmpty())) {
    if (line.find("\"val_loss\": ") != absl::string_view::npos) ++with_val;
  }
  EXPECT_EQ(with_val, 3);
  // A data directory without a validation split: said once, training goes on.
  ASSERT_EQ(Sh("mkdir -p " + Tmp() + "/train_only && cp " + Tmp() + "/data/train_* " + Tmp() +
               "/train_only/").status, 0);
  const Result none = Sh(absl::StrCat("runtime/train/cairn-train --model llama-tiny --data ", Tmp(),
                                      "/train_only --global-batch 8 --seq-len 32 --steps 2 "
                                      "--val-every 1 --nproc 1"));
  ASSERT_EQ(none.status, 0) << none.output;
  EXPECT_THAT(none.output, HasSubstr("no validation data in"));
  EXPECT_THAT(none.output, ::testing::Not(HasSubstr("| val ")));
}

// --prediction-from-plan: the run compares itself with the prediction the plan file carries (as an
// agent's worker does with the planner's), not with one for this device's catalog profile.
TEST_F(TrainTest, PredictionFromThePlanFile) {
  const std::string plain = PlanFile("predicted", 1, "\"tp_degree\": 1");
  std::string text = ReadAll(plain);
  ASSERT_EQ(text.back(), '}');
  text.pop_back();
  text += ", \"prediction\": {\"step_time_s\": 7.5, \"stage_memory\": [{\"stage\": 0, "
          "\"total_bytes\": 5000000, \"reserved_bytes\": 1000000}]}}";
  const std::string path = Tmp() + "/predicted_with.json";
  std::ofstream(path) << text;
  const std::string metrics = Tmp() + "/predicted.jsonl";
  const Result r = Sh(Train("--nproc 1 --steps 2 --prediction-from-plan --plan " + path +
                            " --metrics " + metrics));
  ASSERT_EQ(r.status, 0) << r.output;
  const std::string jsonl = ReadAll(metrics);
  EXPECT_THAT(jsonl, HasSubstr("\"predicted_step_time_s\": 7.500000")) << jsonl;
  EXPECT_THAT(jsonl, HasSubstr("\"predicted_memory_bytes\": 4000000")) << jsonl;
  // Without the flag the prediction is the run's own (not the file's 7.5 s).
  const std::string own = Tmp() + "/own.jsonl";
  ASSERT_EQ(Sh(Train("--nproc 1 --steps 2 --plan " + path + " --metrics " + own)).status, 0);
  EXPECT_THAT(ReadAll(own), ::testing::Not(HasSubstr("\"predicted_step_time_s\": 7.500000")));
  // A plan without a prediction (or --plan auto) cannot supply one: bad input, exit 2.
  const Result none = Sh(Train("--nproc 1 --steps 1 --prediction-from-plan --plan " + plain));
  EXPECT_EQ(none.status, 2) << none.output;
  EXPECT_THAT(none.output, HasSubstr("--prediction-from-plan"));
}

TEST_F(TrainTest, FaultInjectionExistsOnlyInTheTestingBuild) {
  const Result r = Sh("CAIRN_FAULT_EXIT=0:0 " + Train("--nproc 1 --steps 1"));
  EXPECT_EQ(r.status, 0) << r.output;
  EXPECT_THAT(r.output, ::testing::Not(HasSubstr("injected failure")));
}

TEST_F(TrainTest, BadPlanRefusedBeforeWorkersStart) {
  std::ofstream(Tmp() + "/bad_plan.json")
      << R"({"format_version": 1, "model_name": "llama-tiny", "num_nodes": 1,
             "devices_per_node": 2, "global_batch_size": 8, "seq_len": 32,
             "num_micro_batches": 1, "pipeline_degree": 1,
             "stages": [{"first_layer": 0, "num_layers": 3}],
             "layers": [{"index": 0, "tp_degree": 1}, {"index": 1, "tp_degree": 1},
                        {"index": 2, "tp_degree": 1}]})";
  const Result r = Sh(Train("--nproc 2 --steps 2 --plan " + Tmp() + "/bad_plan.json"));
  EXPECT_EQ(r.status, 2) << r.output;
  EXPECT_THAT(r.output, HasSubstr("layers"));
  EXPECT_THAT(r.output, ::testing::Not(HasSubstr("step ")));
  const Result missing = Sh(Train("--nproc 2 --plan " + Tmp() + "/nope.json"));
  EXPECT_EQ(missing.status, 2) << missing.output;
}

TEST_F(TrainTest, CheckpointAndResume) {
  const std::string ck = Tmp() + "/ckpt";
  const Result straight = Sh(Train("--nproc 2 --steps 4"));
  ASSERT_EQ(straight.status, 0) << straight.output;
  // A 4-step run that saves every 2 steps and crashes at step 3 (after the step-2 checkpoint).
  const Result crashed = Sh("CAIRN_FAULT_EXIT=0:2 " +
                            Train("--nproc 2 --steps 4 --checkpoint-dir " + ck +
                                      " --checkpoint-every 2",
                                  true));
  EXPECT_EQ(crashed.status, 1) << crashed.output;
  EXPECT_THAT(crashed.output, HasSubstr("checkpoint: step 2 saved"));
  // Resume it under another world size (and so another plan): the same continuation.
  const Result resumed = Sh(Train("--nproc 4 --steps 4 --resume " + ck));
  ASSERT_EQ(resumed.status, 0) << resumed.output;
  EXPECT_THAT(resumed.output, HasSubstr("resumed from"));
  const std::vector<double> a = Losses(straight.output), b = Losses(resumed.output);
  ASSERT_EQ(a.size(), 4u);
  ASSERT_EQ(b.size(), 2u) << resumed.output;
  EXPECT_NEAR(b[0], a[2], 2e-4 * a[2]);
  EXPECT_NEAR(b[1], a[3], 2e-4 * a[3]);
}

// Killing the --nproc launcher stops its workers and (for SIGTERM/SIGINT, which it can catch)
// removes its store directory; SIGKILL cannot be caught, but PR_SET_PDEATHSIG still stops the
// workers. A normal run leaves no directory either.
TEST_F(TrainTest, KillingTheLauncherStopsItsWorkersAndCleansUp) {
  const std::string plan = PlanFile("kill_dp2", 2, "\"tp_degree\": 1");
  {
    const std::string tmp = Tmp() + "/tmp_normal";
    ASSERT_EQ(Sh("mkdir -p " + tmp).status, 0);
    const Result r = Sh("TMPDIR=" + tmp + " " + Train("--nproc 2 --steps 2 --plan " + plan));
    ASSERT_EQ(r.status, 0) << r.output;
    EXPECT_TRUE(StoreDirs(tmp).empty()) << "left " << StoreDirs(tmp)[0];
  }
  for (int sig : {SIGTERM, SIGINT, SIGKILL}) {
    const std::string tmp = absl::StrCat(Tmp(), "/tmp_sig", sig);
    const std::string log = tmp + ".log";
    ASSERT_EQ(Sh("mkdir -p " + tmp).status, 0);
    const std::string command = absl::StrCat("TMPDIR=", tmp, " exec ",
                                             Train("--nproc 2 --steps 1000000 --plan " + plan),
                                             " > ", log, " 2>&1");
    const pid_t launcher = fork();
    ASSERT_GE(launcher, 0);
    if (launcher == 0) {
      execl("/bin/sh", "sh", "-c", command.c_str(), static_cast<char*>(nullptr));
      _exit(127);
    }
    // Wait (bounded) until the workers train: their first loss line.
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(120);
    while (ReadAll(log).find("| loss ") == std::string::npos &&
           std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    ASSERT_NE(ReadAll(log).find("| loss "), std::string::npos) << ReadAll(log);
    const std::vector<pid_t> workers = ChildrenOf(launcher);
    ASSERT_EQ(workers.size(), 2u);
    ASSERT_EQ(StoreDirs(tmp).size(), 1u);
    ASSERT_EQ(kill(launcher, sig), 0);
    int status = 0;
    ASSERT_EQ(waitpid(launcher, &status, 0), launcher);
    EXPECT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == sig) << "signal " << sig << " status "
                                                                 << status << "\n" << ReadAll(log);
    // The workers go with it (bounded wait: SIGKILL's death signal is delivered asynchronously).
    const auto gone_by = std::chrono::steady_clock::now() + std::chrono::seconds(30);
    for (pid_t w : workers) {
      while (Alive(w) && std::chrono::steady_clock::now() < gone_by) {
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
      }
      EXPECT_FALSE(Alive(w)) << "worker " << w << " outlived its launcher (signal " << sig << ")";
      if (Alive(w)) kill(w, SIGKILL);
    }
    if (sig != SIGKILL) {
      EXPECT_TRUE(StoreDirs(tmp).empty()) << "signal " << sig << " left a store directory";
      EXPECT_THAT(ReadAll(log), HasSubstr("stopped by signal"));
    }
  }
}

}  // namespace
}  // namespace cairn
