#include "agent/agent.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "agent/probes/probe_harness.h"
#include "common/logging.h"
#include "common/status_macros.h"
#include "google/protobuf/util/message_differencer.h"

namespace cairn::agent {
namespace {

bool Retryable(const absl::Status& s) {
  return s.code() == absl::StatusCode::kUnavailable ||
         s.code() == absl::StatusCode::kDeadlineExceeded ||
         s.code() == absl::StatusCode::kUnknown || s.code() == absl::StatusCode::kInternal ||
         s.code() == absl::StatusCode::kAborted ||
         s.code() == absl::StatusCode::kResourceExhausted;
}

std::string ReadSmallFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return std::string(absl::StripAsciiWhitespace(s.str()));
}

}  // namespace

std::string LocalAddressTowards(const std::string& planner_address) {
  const size_t colon = planner_address.rfind(':');
  std::string host = planner_address.substr(0, colon);
  std::string port = colon == std::string::npos ? "7070" : planner_address.substr(colon + 1);
  if (!host.empty() && host.front() == '[') host = host.substr(1, host.size() - 2);
  addrinfo hints{};
  hints.ai_family = AF_INET;
  hints.ai_socktype = SOCK_DGRAM;
  addrinfo* res = nullptr;
  if (getaddrinfo(host.c_str(), port.c_str(), &hints, &res) != 0 || res == nullptr) {
    return "127.0.0.1";
  }
  std::string out = "127.0.0.1";
  const int fd = socket(AF_INET, SOCK_DGRAM, 0);
  if (fd >= 0 && connect(fd, res->ai_addr, res->ai_addrlen) == 0) {  // UDP: no packet is sent
    sockaddr_in local{};
    socklen_t len = sizeof(local);
    char buf[INET_ADDRSTRLEN] = {0};
    if (getsockname(fd, reinterpret_cast<sockaddr*>(&local), &len) == 0 &&
        inet_ntop(AF_INET, &local.sin_addr, buf, sizeof(buf)) != nullptr) {
      out = buf;
    }
  }
  if (fd >= 0) close(fd);
  freeaddrinfo(res);
  return out;
}

Agent::Agent(AgentOptions options, std::unique_ptr<PlannerClient> planner, NodeFacts facts)
    : options_(std::move(options)), planner_(std::move(planner)), facts_(std::move(facts)) {}

absl::StatusOr<std::unique_ptr<Agent>> Agent::Create(const AgentOptions& o,
                                                     std::unique_ptr<PlannerClient> planner,
                                                     NodeFacts facts) {
  if (o.planner.address.empty()) {
    return absl::InvalidArgumentError("--planner is required (HOST:PORT of cairn-planner)");
  }
  if (o.device_kind != "cpu" && o.device_kind != "cuda") {
    return absl::InvalidArgumentError("--device-kind must be cpu or cuda");
  }
  if (o.device_kind == "cpu" && o.cpu_slots < 1) {
    return absl::InvalidArgumentError("--cpu-slots must be at least 1");
  }
  if (o.probe_on_register != "auto" && o.probe_on_register != "always" &&
      o.probe_on_register != "never") {
    return absl::InvalidArgumentError("--probe-on-register must be auto, always or never");
  }
  if (o.probe_budget != "full" && o.probe_budget != "quick") {
    return absl::InvalidArgumentError("--probe-budget must be full or quick");
  }
  if (!(o.probe_time_limit_s >= 0)) {
    return absl::InvalidArgumentError("--probe-time-limit-s must be >= 0 (0 = no limit)");
  }
  if (facts.node.device_count() < 1) {
    return absl::InvalidArgumentError(
        "no devices: --device-kind cuda found no GPU (nvidia-smi), or --gpus is empty");
  }
  std::error_code ec;
  std::filesystem::create_directories(o.work_dir, ec);
  if (ec) {
    return absl::UnavailableError(
        absl::StrCat("cannot create --work-dir ", o.work_dir, ": ", ec.message()));
  }
  std::unique_ptr<Agent> a(new Agent(o, std::move(planner), std::move(facts)));
  a->advertise_ = o.advertise_address.empty() ? LocalAddressTowards(o.planner.address)
                                              : o.advertise_address;
  CAIRN_RETURN_IF_ERROR(a->metrics_.Start(o.metrics_address));
  a->prober_ = std::make_unique<ProbeRunner>(a->options_, a->facts_, a->advertise_);
  {
    absl::MutexLock lock(&a->mu_);
    a->agent_id_ = ReadSmallFile(o.work_dir + "/agent_id");
  }
  a->metrics_.SetUp(true);
  a->metrics_.SetDevices(o.device_kind, a->facts_.node.device_count());
  return a;
}

Agent::~Agent() {
  Shutdown();
  for (std::thread* t : {&heartbeat_thread_, &watch_thread_, &work_thread_}) {
    if (t->joinable()) t->join();
  }
  absl::MutexLock lock(&mu_);
  for (auto& [id, job] : jobs_) job->Cancel("the agent is shutting down");
  jobs_.clear();  // JobHost's destructor joins
}

std::string Agent::agent_id() const {
  absl::MutexLock lock(&mu_);
  return agent_id_;
}

int Agent::active_jobs() const {
  absl::MutexLock lock(&mu_);
  int n = 0;
  for (const auto& [id, job] : jobs_) n += job->done() ? 0 : 1;
  return n;
}

int Agent::probes_done() const {
  absl::MutexLock lock(&mu_);
  return probes_done_;
}

JobHostConfig Agent::HostConfigLocked() const {
  JobHostConfig c;
  c.agent_id = agent_id_;
  c.node_name = facts_.hostname;
  c.work_dir = options_.work_dir;
  c.train_binary =
      options_.train_binary.empty() ? FindBinary("cairn-train") : options_.train_binary;
  c.advertise_address = advertise_;
  c.planner = options_.planner;
  c.threads_per_worker =
      options_.threads_per_worker > 0
          ? options_.threads_per_worker
          : std::max(1, facts_.node.cpu_cores() / std::max(1, facts_.node.device_count()));
  if (options_.device_kind == "cuda") {
    c.gpus = options_.gpus;
    if (c.gpus.empty()) {
      for (int i = 0; i < facts_.node.device_count(); ++i) c.gpus.push_back(i);
    }
  }
  c.worker_grace = options_.worker_grace;
  c.poll_interval = options_.poll_interval;
  c.log_upload_interval = options_.log_upload_interval;
  return c;
}

absl::Status Agent::Register() {
  cairn::v1::RegisterAgentRequest req;
  req.set_hostname(facts_.hostname);
  // HOST:PORT: the node's advertised address and the port the agent serves on (its metrics;
  // workers take ports of their own at rendezvous). Without a metrics endpoint the port is only
  // nominal (the planner requires one).
  req.set_address(absl::StrCat(advertise_, ":", metrics_.port() > 0 ? metrics_.port() : 9465));
  req.set_num_devices(facts_.node.device_count());
  *req.mutable_fingerprint() = facts_.fingerprint;
  *req.mutable_node() = facts_.node;
  req.mutable_node()->set_metrics_address(metrics_.address());
  req.set_agent_id(agent_id());
  absl::Duration backoff = options_.reconnect_initial;
  while (true) {
    absl::StatusOr<cairn::v1::RegisterAgentResponse> r = planner_->Register(req);
    if (r.ok()) {
      {
        absl::MutexLock lock(&mu_);
        agent_id_ = r->agent_id();
        if (r->heartbeat_interval_s() > 0) {
          heartbeat_interval_ = absl::Seconds(r->heartbeat_interval_s());
        }
        need_register_ = false;
      }
      std::ofstream(options_.work_dir + "/agent_id") << r->agent_id() << "\n";
      metrics_.SetRegistered(true);
      if (!registered_.HasBeenNotified()) {
        registered_.Notify();
        if (on_registered_) on_registered_();
      }
      CAIRN_LOG(INFO) << "registered with " << options_.planner.address << " as "
                      << r->agent_id() << " (" << facts_.node.device_count() << " "
                      << options_.device_kind << " devices, "
                      << facts_.fingerprint.device_model() << ")";
      return absl::OkStatus();
    }
    if (!Retryable(r.status())) return r.status();
    CAIRN_LOG(WARNING) << "cannot register with " << options_.planner.address << " ("
                       << r.status().message() << "); retrying in "
                       << absl::FormatDuration(backoff);
    if (!Pause(backoff)) return absl::CancelledError("shutting down");
    backoff = std::min(backoff * 2, options_.reconnect_max);
  }
}

std::optional<cairn::v1::StoredHardwareProfile> Agent::FreshProfile() {
  absl::StatusOr<cairn::v1::ListHardwareProfilesResponse> list = planner_->ListHardwareProfiles();
  if (!list.ok()) {
    CAIRN_LOG(WARNING) << "cannot list the planner's profiles: " << list.status();
    return std::nullopt;
  }
  for (const cairn::v1::StoredHardwareProfile& p : list->profiles()) {
    if (p.profile().source() != cairn::v1::PROFILE_SOURCE_MEASURED ||
        !google::protobuf::util::MessageDifferencer::Equals(p.profile().fingerprint(),
                                                            facts_.fingerprint)) {
      continue;
    }
    absl::Time created;
    std::string err;
    if (!absl::ParseTime(absl::RFC3339_full, p.created_at(), &created, &err)) continue;
    const bool fresh = absl::Now() - created < options_.probe_max_age;
    const bool same_version = absl::StrContains(p.profile().notes(), kProbeVersion);
    if (fresh && same_version) {
      metrics_.SetProfile(p.profile(), created);
      return p;
    }
    CAIRN_LOG(INFO) << "the planner's profile " << p.id() << " of this node is "
                    << (same_version ? "older than --probe-max-age" : "of another probe version");
  }
  return std::nullopt;
}

absl::Status Agent::ProbeAndUpload(const ProbeRun& run) {
  const absl::Time start = absl::Now();
  std::optional<cairn::v1::HardwareProfile> previous;
  // The latest stored profile of this fingerprint, whole (lists carry no tables).
  if (absl::StatusOr<cairn::v1::ListHardwareProfilesResponse> list =
          planner_->ListHardwareProfiles();
      list.ok()) {
    for (const auto& p : list->profiles()) {
      if (google::protobuf::util::MessageDifferencer::Equals(p.profile().fingerprint(),
                                                             facts_.fingerprint)) {
        if (absl::StatusOr<cairn::v1::StoredHardwareProfile> full =
                planner_->GetHardwareProfile(p.id());
            full.ok()) {
          previous = full->profile();
        }
      }
    }
  }
  absl::StatusOr<std::vector<ProbeReport>> reports = prober_->Run(run, [this] {
    absl::MutexLock lock(&mu_);
    return stop_.HasBeenNotified() || probe_cancelled_;
  });
  const double duration = absl::ToDoubleSeconds(absl::Now() - start);
  if (!reports.ok()) {
    metrics_.RecordProbe(false, duration);
    return reports.status();
  }
  const bool hosts_rank0 =
      std::find(run.ranks.begin(), run.ranks.end(), 0) != run.ranks.end();
  if (!hosts_rank0) {
    // A coordinated probe's numbers are uploaded by the agent hosting rank 0 (it holds the
    // collectives of the whole probe world).
    metrics_.RecordProbe(true, duration);
    return absl::OkStatus();
  }
  absl::StatusOr<BuiltProfiles> built =
      BuildProfiles(prober_->Describe(), *reports, previous ? &*previous : nullptr);
  if (!built.ok()) {
    metrics_.RecordProbe(false, duration);
    return built.status();
  }
  absl::StatusOr<cairn::v1::StoredHardwareProfile> stored =
      planner_->PutHardwareProfile(built->hardware);
  if (!stored.ok()) {
    metrics_.RecordProbe(false, duration);
    return stored.status();
  }
  for (const cairn::v1::ModelProfile& m : built->models) {
    absl::StatusOr<cairn::v1::StoredModelProfile> s = planner_->PutModelProfile(m);
    if (!s.ok()) {
      CAIRN_LOG(WARNING) << "model profile " << m.model_name() << " not stored: " << s.status();
      continue;
    }
    CAIRN_LOG(INFO) << "model profile " << m.model_name() << " stored as " << s->id() << " v"
                    << s->version();
  }
  metrics_.RecordProbe(true, duration);
  metrics_.SetProfile(built->hardware, absl::Now());
  CAIRN_LOG(INFO) << "probe " << run.probe_id << " done in " << absl::StrFormat("%.1f", duration)
                  << " s: hardware profile " << stored->id() << " v" << stored->version() << "; "
                  << absl::StrJoin(built->summary, "; ");
  return absl::OkStatus();
}

void Agent::HeartbeatLoop() {
  while (true) {
    absl::Duration interval;
    bool reregister;
    {
      absl::MutexLock lock(&mu_);
      interval = heartbeat_interval_;
      reregister = need_register_;
    }
    if (!Pause(reregister ? options_.reconnect_initial : interval)) return;
    metrics_.RefreshProbeAge(absl::Now());
    if (reregister) {
      if (absl::Status s = Register(); !s.ok() && !stopping()) {
        CAIRN_LOG(ERROR) << "registration refused: " << s;
      }
      continue;
    }
    absl::StatusOr<cairn::v1::HeartbeatResponse> r = planner_->Heartbeat(agent_id());
    if (r.ok()) continue;
    metrics_.RecordHeartbeatFailure();
    if (r.status().code() == absl::StatusCode::kNotFound) {
      CAIRN_LOG(WARNING) << "the planner does not know this agent any more; registering again";
      absl::MutexLock lock(&mu_);
      need_register_ = true;
    } else if (!stopping()) {
      CAIRN_LOG(DEBUG) << "heartbeat failed: " << r.status();
    }
  }
}

void Agent::WatchLoop() {
  absl::Duration backoff = options_.reconnect_initial;
  bool first = true;
  while (!stopping()) {
    const absl::Time opened = absl::Now();
    if (!first) metrics_.RecordReconnect();
    first = false;
    const absl::Status s = planner_->WatchAssignments(
        agent_id(), [this](const cairn::v1::Assignment& a) { OnAssignment(a); });
    if (stopping()) return;
    if (s.code() == absl::StatusCode::kNotFound) {
      absl::MutexLock lock(&mu_);
      need_register_ = true;
    }
    if (absl::Now() - opened > options_.reconnect_max) backoff = options_.reconnect_initial;
    CAIRN_LOG(INFO) << "assignment stream ended (" << s.message() << "); reconnecting in "
                    << absl::FormatDuration(backoff);
    if (!Pause(backoff)) return;
    backoff = std::min(backoff * 2, options_.reconnect_max);
  }
}

void Agent::ReapJobsLocked() {
  int running = 0;
  for (auto& [id, job] : jobs_) running += job->workers_running();
  metrics_.SetWorkersRunning(running);
}

void Agent::OnAssignment(const cairn::v1::Assignment& a) {
  if (stopping()) return;
  absl::MutexLock lock(&mu_);
  if (a.has_probe()) {
    const std::string& id = a.probe().probe_id();
    if (a.cancel()) {
      // A coordinated probe the planner ended (another agent failed it, or it was cancelled).
      probe_queue_.erase(std::remove_if(probe_queue_.begin(), probe_queue_.end(),
                                        [&](const cairn::v1::Assignment& q) {
                                          return q.probe().probe_id() == id;
                                        }),
                         probe_queue_.end());
      if (probing_job_ == a.job_id() && !a.job_id().empty()) probe_cancelled_ = true;
      return;
    }
    if (!probes_seen_.insert(id).second) return;  // a repeat after a reconnect
    CAIRN_LOG(INFO) << "probe requested: " << id
                    << (a.job_id().empty() ? "" : absl::StrCat(" (ranks ",
                                                                absl::StrJoin(a.ranks(), ","),
                                                                " of ", a.world_size(), ")"));
    probe_queue_.push_back(a);
    return;
  }
  auto it = jobs_.find(a.job_id());
  if (a.cancel()) {
    if (it != jobs_.end() && (a.attempt() == 0 || a.attempt() >= it->second->attempt())) {
      CAIRN_LOG(INFO) << "job " << a.job_id() << " cancelled by the planner";
      it->second->Cancel("cancelled by the planner");
    }
    return;
  }
  if (it != jobs_.end()) {
    if (it->second->attempt() >= a.attempt()) return;  // a repeat (reconnect) of what runs here
    it->second->Cancel("a newer attempt replaces it");
    it->second->Join();
    jobs_.erase(it);
  }
  CAIRN_LOG(INFO) << "job " << a.job_id() << " attempt " << std::max(1, a.attempt()) << ": ranks "
                  << absl::StrJoin(a.ranks(), ",") << " of " << a.world_size();
  auto host = std::make_unique<JobHost>(HostConfigLocked(), planner_.get(), &metrics_, a);
  JobHost* raw = host.get();
  jobs_[a.job_id()] = std::move(host);
  // A job that arrives while a probe runs starts when it ends (WorkLoop).
  if (!probing_) raw->Start();
}

void Agent::WorkLoop() {
  while (true) {
    cairn::v1::Assignment next;
    {
      absl::MutexLock lock(&mu_);
      // Start jobs deferred by a probe; then take the next probe once no job runs here.
      auto ready = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
        if (stop_.HasBeenNotified()) return true;
        for (auto& [id, job] : jobs_) {
          if (!job->done()) return false;
        }
        return !probe_queue_.empty();
      };
      mu_.AwaitWithTimeout(absl::Condition(&ready), absl::Milliseconds(200));
      ReapJobsLocked();
      if (stopping()) return;
      if (!ready()) continue;
      next = probe_queue_.front();
      probe_queue_.pop_front();
      probing_ = true;
      probing_job_ = next.job_id();
      probe_cancelled_ = false;
    }
    const cairn::v1::ProbeRequest& req = next.probe();
    const ProbeRun run = ProbeRun::FromRequest(req, facts_.node.device_count());
    if (!next.job_id().empty()) {
      cairn::v1::ReportJobStatusRequest r;
      r.set_job_id(next.job_id());
      r.set_agent_id(agent_id());
      r.set_state(cairn::v1::JOB_STATE_RUNNING);
      r.set_message(absl::StrCat("probing on ", facts_.hostname));
      (void)planner_->ReportJobStatus(r);
    }
    const absl::Status s = ProbeAndUpload(run);
    if (!s.ok() && !stopping()) {
      CAIRN_LOG(ERROR) << "probe " << req.probe_id() << " failed: " << s;
    }
    if (!next.job_id().empty() && !stopping()) {
      // A coordinated probe is reported like a job: it ends when every agent of it reported.
      cairn::v1::ReportJobStatusRequest r;
      r.set_job_id(next.job_id());
      r.set_agent_id(agent_id());
      r.set_state(s.ok() ? cairn::v1::JOB_STATE_SUCCEEDED : cairn::v1::JOB_STATE_FAILED);
      r.set_message(s.ok() ? absl::StrCat("probed ", facts_.hostname)
                           : absl::StrCat("probe on ", facts_.hostname, " failed: ", s.message()));
      if (absl::Status rs = planner_->ReportJobStatus(r); !rs.ok()) {
        CAIRN_LOG(WARNING) << "probe job " << next.job_id() << ": report failed: " << rs;
      }
    }
    absl::MutexLock lock(&mu_);
    probing_ = false;
    probing_job_.clear();
    ++probes_done_;
    for (auto& [id, job] : jobs_) {
      if (!job->started()) job->Start();
    }
  }
}

absl::Status Agent::Run() {
  if (absl::Status s = Register(); !s.ok()) {
    if (stopping()) return absl::OkStatus();
    return s;
  }
  bool probe = options_.probe_on_register == "always";
  if (options_.probe_on_register == "auto") {
    std::optional<cairn::v1::StoredHardwareProfile> fresh = FreshProfile();
    probe = !fresh.has_value();
    if (fresh) {
      CAIRN_LOG(INFO) << "the planner has a fresh measured profile of this node (" << fresh->id()
                      << " v" << fresh->version() << ", " << fresh->created_at()
                      << "); not probing";
    }
  }
  if (probe) {
    cairn::v1::Assignment a;
    a.mutable_probe()->set_probe_id(absl::StrCat("register-", absl::ToUnixSeconds(absl::Now())));
    absl::MutexLock lock(&mu_);
    probe_queue_.push_back(a);
  }
  heartbeat_thread_ = std::thread([this] { HeartbeatLoop(); });
  work_thread_ = std::thread([this] { WorkLoop(); });
  watch_thread_ = std::thread([this] { WatchLoop(); });
  stop_.WaitForNotification();
  // Shutdown: no new assignments, then every worker and probe stopped, then the loops.
  planner_->CancelWatches();
  {
    absl::MutexLock lock(&mu_);
    for (auto& [id, job] : jobs_) job->Cancel("the agent is shutting down");
  }
  for (std::thread* t : {&watch_thread_, &work_thread_, &heartbeat_thread_}) {
    if (t->joinable()) t->join();
  }
  std::map<std::string, std::unique_ptr<JobHost>> jobs;
  {
    absl::MutexLock lock(&mu_);
    jobs.swap(jobs_);
  }
  jobs.clear();  // joins every JobHost: its workers are gone when this returns
  metrics_.SetWorkersRunning(0);
  metrics_.SetUp(false);
  CAIRN_LOG(INFO) << "agent stopped";
  return absl::OkStatus();
}

void Agent::Shutdown() {
  if (!stop_.HasBeenNotified()) stop_.Notify();
}

}  // namespace cairn::agent
