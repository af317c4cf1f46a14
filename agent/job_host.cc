#include "agent/job_host.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <optional>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "agent/process.h"
#include "common/logging.h"
#include "common/status_macros.h"
#include "google/protobuf/struct.pb.h"
#include "google/protobuf/util/json_util.h"
#include "planner/catalog/json_io.h"
#include "planner/plan/plan_convert.h"

namespace cairn::agent {
namespace {

constexpr size_t kMaxLogChunk = 256 * 1024;

double Number(const google::protobuf::Struct& s, const char* key) {
  auto it = s.fields().find(key);
  return it == s.fields().end() ? 0 : it->second.number_value();
}

absl::Status WriteFile(const std::string& path, const std::string& text) {
  std::ofstream out(path);
  out << text << "\n";
  if (!out) return absl::UnavailableError(absl::StrCat("cannot write ", path));
  return absl::OkStatus();
}

// Calls `fn` until it is not UNAVAILABLE, at most ~30 s: the planner may be restarting.
template <typename T>
absl::StatusOr<T> Retry(const std::function<absl::StatusOr<T>()>& fn) {
  absl::Duration backoff = absl::Milliseconds(100);
  const absl::Time deadline = absl::Now() + absl::Seconds(30);
  while (true) {
    absl::StatusOr<T> r = fn();
    if (r.ok() || r.status().code() != absl::StatusCode::kUnavailable ||
        absl::Now() + backoff > deadline) {
      return r;
    }
    absl::SleepFor(backoff);
    backoff = std::min(backoff * 2, absl::Seconds(2));
  }
}

std::string OneLine(std::string text, size_t max) {
  text = std::string(absl::StripAsciiWhitespace(text));
  if (text.size() > max) text = "..." + text.substr(text.size() - max);
  return absl::StrReplaceAll(text, {{"\n", " | "}});
}

}  // namespace

std::optional<cairn::v1::StepMetrics> ParseMetricsLine(const std::string& line) {
  google::protobuf::Struct s;
  if (line.empty() || !google::protobuf::util::JsonStringToMessage(line, &s).ok() ||
      !s.fields().count("step")) {
    return std::nullopt;
  }
  cairn::v1::StepMetrics m;
  m.set_step(static_cast<int>(Number(s, "step")));
  m.set_loss(Number(s, "loss"));
  m.set_step_time_s(Number(s, "step_time_s"));
  m.set_tokens_per_s(Number(s, "tokens_per_s"));
  m.set_peak_memory_bytes(static_cast<int64_t>(Number(s, "peak_memory_bytes")));
  return m;
}

JobHost::JobHost(JobHostConfig config, PlannerClient* planner, AgentMetrics* metrics,
                 cairn::v1::Assignment assignment)
    : config_(std::move(config)),
      planner_(planner),
      metrics_(metrics),
      assignment_(std::move(assignment)) {}

JobHost::~JobHost() {
  Cancel("the agent dropped the job");
  Join();
}

void JobHost::Start() {
  if (started_.exchange(true)) return;
  thread_ = std::thread([this] { Run(); });
}

void JobHost::Cancel(const std::string& reason) {
  {
    absl::MutexLock lock(&mu_);
    if (cancel_reason_.empty()) cancel_reason_ = reason;
  }
  if (!cancel_.HasBeenNotified()) cancel_.Notify();
}

void JobHost::Join() {
  if (thread_.joinable()) {
    thread_.join();
  } else if (!started_.exchange(true)) {
    Finish("cancelled");  // never started (deferred behind a probe): nothing ran
  }
}

std::string JobHost::result() const {
  absl::MutexLock lock(&mu_);
  return result_;
}

void JobHost::Finish(const std::string& result) {
  {
    absl::MutexLock lock(&mu_);
    result_ = result;
  }
  metrics_->JobEnded(job_id(), result);
  done_.Notify();
}

void JobHost::Report(cairn::v1::JobState state, const std::string& message,
                     const cairn::v1::StepMetrics* step) {
  cairn::v1::ReportJobStatusRequest req;
  req.set_job_id(job_id());
  req.set_agent_id(config_.agent_id);
  req.set_state(state);
  req.set_message(message.substr(0, 4000));
  if (step != nullptr) *req.mutable_step() = *step;
  const bool final_state =
      state == cairn::v1::JOB_STATE_SUCCEEDED || state == cairn::v1::JOB_STATE_FAILED;
  absl::StatusOr<bool> r = Retry<bool>([&]() -> absl::StatusOr<bool> {
    const absl::Status s = planner_->ReportJobStatus(req);
    if (!s.ok() && (final_state || s.code() != absl::StatusCode::kUnavailable)) return s;
    return true;  // a step report the planner missed is not worth waiting for
  });
  if (r.ok()) return;
  if (r.status().code() == absl::StatusCode::kFailedPrecondition) {
    CAIRN_LOG(INFO) << "job " << job_id() << ": the planner says it ended ("
                    << r.status().message() << "); stopping its workers";
    planner_ended_job_ = true;
    return;
  }
  CAIRN_LOG(WARNING) << "job " << job_id() << ": report to the planner failed: " << r.status();
}

absl::Status JobHost::Prepare(std::vector<std::vector<std::string>>* argvs, std::string* dir) {
  CAIRN_ASSIGN_OR_RETURN(cairn::v1::Job job,
                         Retry<cairn::v1::Job>([&] { return planner_->GetJob(job_id()); }));
  CAIRN_ASSIGN_OR_RETURN(cairn::v1::PlanResponse plan, Retry<cairn::v1::PlanResponse>([&] {
                           return planner_->GetPlan(assignment_.plan_id());
                         }));
  if (plan.result().plans_size() == 0) {
    return absl::FailedPreconditionError(
        absl::StrCat("plan ", assignment_.plan_id(), " holds no runnable plan"));
  }
  plan_ = plan.result().plans(0);
  const int attempt = std::max(1, assignment_.attempt());
  const std::string job_dir = absl::StrCat(config_.work_dir, "/jobs/", job_id());
  *dir = absl::StrCat(job_dir, "/attempt-", attempt);
  std::error_code ec;
  std::filesystem::create_directories(*dir, ec);
  if (ec) return absl::UnavailableError(absl::StrCat("cannot create ", *dir, ": ", ec.message()));
  CAIRN_ASSIGN_OR_RETURN(std::string plan_json, planner::PlanToJson(plan_));
  const std::string plan_path = *dir + "/plan.json";
  CAIRN_RETURN_IF_ERROR(WriteFile(plan_path, plan_json));
  std::string model = plan_.model_name();
  if (job.search().search().has_model() && !job.search().search().model().name().empty()) {
    CAIRN_ASSIGN_OR_RETURN(std::string spec, planner::ProtoToJson(job.search().search().model()));
    model = *dir + "/model.json";
    CAIRN_RETURN_IF_ERROR(WriteFile(model, spec));
  }
  metrics_path_.clear();
  for (size_t i = 0; i < static_cast<size_t>(assignment_.ranks_size()); ++i) {
    const int rank = assignment_.ranks(i);
    std::vector<std::string> argv = {config_.train_binary,
                                     "--model", model,
                                     "--plan", plan_path,
                                     "--data", job.data_path(),
                                     "--steps", absl::StrCat(job.steps()),
                                     "--device", config_.gpus.empty() ? "cpu" : "cuda"};
    // Measured against what the planner predicted for these agents' profiles, as the planner
    // stores it, not against a prediction for the catalog profile of the device.
    if (plan_.prediction().step_time_s() > 0) argv.push_back("--prediction-from-plan");
    if (rank == 0) {
      metrics_path_ = *dir + "/metrics.jsonl";
      std::filesystem::remove(metrics_path_, ec);
      argv.insert(argv.end(), {"--metrics", metrics_path_});
    }
    if (!job.checkpoint_dir().empty()) {
      argv.insert(argv.end(), {"--checkpoint-dir", job.checkpoint_dir()});
      if (job.checkpoint_every() > 0) {
        argv.insert(argv.end(), {"--checkpoint-every", absl::StrCat(job.checkpoint_every())});
      }
      // A restarted attempt resumes from the last checkpoint the failed one completed.
      if (attempt > 1 && std::filesystem::exists(job.checkpoint_dir(), ec) &&
          !std::filesystem::is_empty(job.checkpoint_dir(), ec)) {
        argv.insert(argv.end(), {"--resume", job.checkpoint_dir()});
      }
    }
    argvs->push_back(std::move(argv));
  }
  return absl::OkStatus();
}

void JobHost::ReadMetrics() {
  if (metrics_path_.empty()) return;
  std::ifstream in(metrics_path_, std::ios::binary);
  if (!in) return;
  in.seekg(static_cast<std::streamoff>(metrics_offset_));
  std::string chunk((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  metrics_offset_ += chunk.size();
  metrics_partial_ += chunk;
  size_t start = 0;
  const double predicted = plan_.prediction().step_time_s();
  int64_t predicted_bytes = 0;
  for (const auto& s : plan_.prediction().stage_memory()) {
    predicted_bytes = std::max(predicted_bytes, s.total_bytes() - s.reserved_bytes());
  }
  for (size_t nl; (nl = metrics_partial_.find('\n', start)) != std::string::npos; start = nl + 1) {
    std::optional<cairn::v1::StepMetrics> m =
        ParseMetricsLine(metrics_partial_.substr(start, nl - start));
    if (!m.has_value()) continue;
    m->set_predicted_step_time_s(predicted);
    m->set_predicted_memory_bytes(predicted_bytes);
    // MFU scales with tokens/s at a fixed batch: the plan's predicted MFU (its FLOP count, its
    // profile's peak) times predicted over measured step time.
    if (m->step_time_s() > 0 && predicted > 0) {
      m->set_mfu(plan_.prediction().mfu() * predicted / m->step_time_s());
    }
    peak_bytes_ = std::max(peak_bytes_, m->peak_memory_bytes());
    StepSample sample;
    sample.step = m->step();
    sample.loss = m->loss();
    sample.step_time_s = m->step_time_s();
    sample.tokens_per_s = m->tokens_per_s();
    sample.mfu = m->mfu();
    sample.predicted_step_time_s = predicted;
    sample.peak_memory_bytes = peak_bytes_;
    sample.predicted_memory_bytes = predicted_bytes;
    if (m->step() > 1) {  // the first step of a run warms up
      step_time_sum_ += m->step_time_s();
      ++steps_timed_;
    }
    if (steps_timed_ > 0 && predicted > 0) {
      sample.measured_over_predicted = step_time_sum_ / steps_timed_ / predicted;
    }
    metrics_->RecordStep(job_id(), sample);
    Report(cairn::v1::JOB_STATE_UNSPECIFIED, "", &*m);
  }
  metrics_partial_.erase(0, start);
}

void JobHost::UploadLogs(bool final) {
  if (!final && absl::Now() - last_log_upload_ < config_.log_upload_interval) return;
  last_log_upload_ = absl::Now();
  for (size_t i = 0; i < log_paths_.size(); ++i) {
    while (true) {
      std::ifstream in(log_paths_[i], std::ios::binary);
      if (!in) break;
      in.seekg(static_cast<std::streamoff>(log_offsets_[i]));
      std::string data(kMaxLogChunk, '\0');
      in.read(data.data(), static_cast<std::streamsize>(data.size()));
      data.resize(static_cast<size_t>(in.gcount()));
      if (data.empty()) break;
      cairn::v1::AppendJobLogsRequest req;
      req.set_job_id(job_id());
      req.set_agent_id(config_.agent_id);
      req.set_rank(assignment_.ranks(static_cast<int>(i)));
      req.set_attempt(std::max(1, assignment_.attempt()));
      req.set_data(std::move(data));
      const absl::Status s = planner_->AppendJobLogs(req);
      if (!s.ok()) {
        if (s.code() == absl::StatusCode::kUnimplemented) log_paths_.clear();  // older planner
        return;  // try again next time from the same offset
      }
      log_offsets_[i] += req.data().size();
      if (req.data().size() < kMaxLogChunk) break;
    }
  }
}

void JobHost::Run() {
  metrics_->JobStarted(job_id());
  std::vector<std::vector<std::string>> argvs;
  std::string dir;
  if (absl::Status s = Prepare(&argvs, &dir); !s.ok()) {
    Report(cairn::v1::JOB_STATE_FAILED,
           absl::StrCat("node ", config_.node_name, " could not start its ranks: ", s.message()),
           nullptr);
    Finish("failed");
    return;
  }
  const int n = static_cast<int>(argvs.size());
  std::vector<std::unique_ptr<Process>> workers;
  for (int i = 0; i < n; ++i) {
    const int rank = assignment_.ranks(i);
    SpawnOptions s;
    s.argv = argvs[i];
    s.log_path = absl::StrCat(dir, "/rank-", rank, ".log");
    s.env = {{"RANK", absl::StrCat(rank)},
             {"WORLD_SIZE", absl::StrCat(assignment_.world_size())},
             {"LOCAL_RANK", absl::StrCat(i)},
             {"LOCAL_WORLD_SIZE", absl::StrCat(n)},
             {"CAIRN_RDZV_PLANNER", config_.planner.address},
             {"CAIRN_RDZV_JOB", job_id()},
             {"CAIRN_RDZV_PREFIX", absl::StrCat("attempt-", std::max(1, assignment_.attempt()), "/")},
             {"CAIRN_RDZV_TOKEN_FILE", config_.planner.token_file},
             {"CAIRN_RDZV_TLS_CA", config_.planner.tls_ca_file},
             {"CAIRN_RDZV_TLS_CERT", config_.planner.tls_cert_file},
             {"CAIRN_RDZV_TLS_KEY", config_.planner.tls_key_file},
             {"CAIRN_HOST_ADDRESS", config_.advertise_address},
             {"OPENBLAS_NUM_THREADS", absl::StrCat(std::max(1, config_.threads_per_worker))}};
    if (!config_.gpus.empty()) {
      // The agent's GPUs, in order: LOCAL_RANK i takes the i-th (runtime/train/cuda_support.h).
      s.env["CUDA_VISIBLE_DEVICES"] = absl::StrJoin(config_.gpus, ",");
    }
    log_paths_.push_back(s.log_path);
    log_offsets_.push_back(0);
    absl::StatusOr<std::unique_ptr<Process>> p = Process::Spawn(s);
    if (!p.ok()) {
      for (auto& w : workers) w->Terminate(absl::ZeroDuration());
      Report(cairn::v1::JOB_STATE_FAILED,
             absl::StrCat("node ", config_.node_name, " could not start rank ", rank, ": ",
                          p.status().message()),
             nullptr);
      Finish("failed");
      return;
    }
    workers.push_back(*std::move(p));
  }
  workers_running_ = n;
  CAIRN_LOG(INFO) << "job " << job_id() << " attempt " << std::max(1, assignment_.attempt())
                  << ": " << n << " worker(s) started in " << dir;
  Report(cairn::v1::JOB_STATE_RUNNING,
         absl::StrCat(n, " worker(s) started on ", config_.node_name), nullptr);

  std::vector<bool> exited(n, false);
  std::string failure;
  while (true) {
    int running = 0;
    for (int i = 0; i < n; ++i) {
      if (exited[i]) continue;
      std::optional<ExitStatus> s = workers[i]->Poll();
      if (!s.has_value()) {
        ++running;
        continue;
      }
      exited[i] = true;
      if (!s->ok() && failure.empty()) {
        metrics_->RecordWorkerFailure();
        failure = absl::StrCat("rank ", assignment_.ranks(i), " on node ", config_.node_name,
                               " (agent ", config_.agent_id, ") ", s->ToString(), ": ",
                               OneLine(TailOfFile(log_paths_[i], 800), 600));
      }
    }
    workers_running_ = running;
    ReadMetrics();
    UploadLogs(false);
    if (!failure.empty() || running == 0 || planner_ended_job_) break;
    if (cancel_.WaitForNotificationWithTimeout(config_.poll_interval)) break;
  }
  const bool cancelled = cancel_.HasBeenNotified() || planner_ended_job_;
  for (auto& w : workers) w->Terminate(config_.worker_grace);
  workers_running_ = 0;
  ReadMetrics();
  UploadLogs(true);
  if (cancelled && failure.empty()) {
    std::string reason;
    {
      absl::MutexLock lock(&mu_);
      reason = cancel_reason_;
    }
    CAIRN_LOG(INFO) << "job " << job_id() << ": workers stopped ("
                    << (planner_ended_job_ ? "the job ended on the planner" : reason) << ")";
    Finish("cancelled");
    return;
  }
  if (!failure.empty()) {
    CAIRN_LOG(WARNING) << "job " << job_id() << " failed here: " << failure;
    Report(cairn::v1::JOB_STATE_FAILED, failure, nullptr);
    Finish("failed");
    return;
  }
  Report(cairn::v1::JOB_STATE_SUCCEEDED,
         absl::StrCat("ranks on ", config_.node_name, " finished"), nullptr);
  Finish("succeeded");
}

}  // namespace cairn::agent
