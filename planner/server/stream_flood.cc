// stream_flood — the daemon's memory under WatchJob clients that never read (docs/reliability.md).
// Not a test: it measures, never asserts.
//
//   cairn-planner --db /tmp/flood.db --metrics-address "" --listen 127.0.0.1:7070 &
//   bazel run -c opt //planner/server:stream_flood -- --target 127.0.0.1:7070 --streams 20 \
//       --reports 30000 --pid $!
//
// Registers an agent, plans llama-tiny, submits a job, opens --streams WatchJob streams that are
// never read, sends --reports step reports for the job, then cancels the streams. With --pid it
// prints the daemon's resident memory (VmRSS, and the peak VmHWM) before, after the reports, and
// after the cancel, and how the streams ended.
#include <cstdio>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "CLI/CLI.hpp"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "common/cli_app.h"
#include "grpcpp/grpcpp.h"
#include "proto/cairn/v1/service.grpc.pb.h"

namespace {
// The command line (--help lists every flag with its default).
struct CommandLineFlags {
  std::string target = "127.0.0.1:7070";
  int streams = 20;
  int reports = 30000;
  int pid = 0;
};
CommandLineFlags g_flags;

void AddFlags(CLI::App& app) {
  app.add_option("--target", g_flags.target, "cairn-planner address");
  app.add_option("--streams", g_flags.streams, "WatchJob streams that never read");
  app.add_option("--reports", g_flags.reports, "step reports sent for the job");
  app.add_option("--pid", g_flags.pid, "the daemon's pid, to print its memory");
}
}  // namespace

namespace {

std::string Memory(int pid) {
  if (pid <= 0) return "";
  std::ifstream in(absl::StrCat("/proc/", pid, "/status"));
  std::string line, out;
  while (std::getline(in, line)) {
    if (line.rfind("VmRSS:", 0) == 0 || line.rfind("VmHWM:", 0) == 0) {
      absl::StrAppend(&out, out.empty() ? "" : ", ", line);
    }
  }
  return out;
}

std::unique_ptr<grpc::ClientContext> Ctx() {
  auto c = std::make_unique<grpc::ClientContext>();
  c->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(60));
  return c;
}

}  // namespace

int main(int argc, char** argv) {
  std::unique_ptr<CLI::App> app = cairn::MakeApp(
      "stream_flood",
      "the daemon's memory under WatchJob clients that never read (docs/reliability.md).");
  AddFlags(*app);
  if (std::optional<int> exit = cairn::ParseCommandLine(*app, argc, argv)) return *exit;
  const int pid = g_flags.pid;
  auto channel = grpc::CreateChannel(g_flags.target, grpc::InsecureChannelCredentials());
  auto agents = cairn::v1::Agents::NewStub(channel);
  auto planner = cairn::v1::Planner::NewStub(channel);
  auto jobs = cairn::v1::Jobs::NewStub(channel);
  std::printf("before:        %s\n", Memory(pid).c_str());

  cairn::v1::RegisterAgentRequest reg;
  reg.set_hostname("flood");
  reg.set_address("flood:7071");
  reg.set_num_devices(4);
  cairn::v1::RegisterAgentResponse agent;
  grpc::Status s = agents->RegisterAgent(Ctx().get(), reg, &agent);
  cairn::v1::PlanRequest plan_req;
  plan_req.set_model_name("llama-tiny");
  plan_req.set_cluster_name("cpu");
  plan_req.mutable_search()->set_global_batch_size(16);
  plan_req.mutable_search()->set_seq_len(256);
  cairn::v1::PlanResponse plan;
  if (s.ok()) s = planner->Plan(Ctx().get(), plan_req, &plan);
  cairn::v1::SubmitJobRequest submit;
  submit.set_plan_id(plan.plan_id());
  submit.set_data_path("/data/tiny");
  submit.set_steps(1000000);
  cairn::v1::Job job;
  if (s.ok()) s = jobs->SubmitJob(Ctx().get(), submit, &job);
  if (!s.ok()) {
    std::fprintf(stderr, "stream_flood: setup failed: %s\n", s.error_message().c_str());
    return 1;
  }

  // Streams whose messages are never read.
  std::vector<std::unique_ptr<grpc::ClientContext>> contexts;
  std::vector<std::unique_ptr<grpc::ClientReader<cairn::v1::JobEvent>>> readers;
  cairn::v1::WatchJobRequest watch;
  watch.set_job_id(job.job_id());
  for (int i = 0; i < g_flags.streams; ++i) {
    contexts.push_back(std::make_unique<grpc::ClientContext>());
    readers.push_back(jobs->WatchJob(contexts.back().get(), watch));
  }
  const absl::Time start = absl::Now();
  for (int i = 0; i < g_flags.reports; ++i) {
    cairn::v1::ReportJobStatusRequest r;
    r.set_job_id(job.job_id());
    r.set_agent_id(agent.agent_id());
    r.mutable_step()->set_step(i);
    r.mutable_step()->set_loss(2.5);
    r.mutable_step()->set_step_time_s(0.5);
    r.mutable_step()->set_tokens_per_s(1000);
    cairn::v1::ReportJobStatusResponse out;
    s = jobs->ReportJobStatus(Ctx().get(), r, &out);
    if (!s.ok()) {
      std::fprintf(stderr, "stream_flood: report %d: %s\n", i, s.error_message().c_str());
      return 1;
    }
  }
  std::printf("after reports: %s (%d reports in %.1f s)\n", Memory(pid).c_str(), g_flags.reports,
              absl::ToDoubleSeconds(absl::Now() - start));
  for (auto& c : contexts) c->TryCancel();
  int ended = 0, read_events = 0;
  std::string codes;
  for (auto& r : readers) {
    cairn::v1::JobEvent e;
    while (r->Read(&e)) ++read_events;
    const grpc::Status st = r->Finish();
    absl::StrAppend(&codes, codes.empty() ? "" : " ", st.error_code());
    ++ended;
  }
  absl::SleepFor(absl::Seconds(1));
  std::printf("after cancel:  %s (%d streams ended, codes %s, %d events were still readable)\n",
              Memory(pid).c_str(), ended, codes.c_str(), read_events);
  return 0;
}
