#include "runtime/comm/planner_store.h"

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <thread>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "common/status_macros.h"

namespace cairn::runtime {
namespace {

// The daemon's limits (planner/server/validation.h); checked here so a worker gets a clear error
// before any call.
constexpr size_t kMaxKeyBytes = 256;
constexpr size_t kMaxValueBytes = 64 * 1024;

std::string Env(const char* name) {
  const char* v = std::getenv(name);
  return v == nullptr ? "" : v;
}

absl::StatusOr<std::string> ReadFile(const std::string& path, const char* what) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot read ", what, " ", path));
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

// The daemon's status as this Store's contract names it.
absl::Status FromGrpc(const grpc::Status& s, absl::string_view what) {
  if (s.ok()) return absl::OkStatus();
  const std::string msg = absl::StrCat("planner rendezvous (", what, "): ", s.error_message());
  switch (s.error_code()) {
    case grpc::StatusCode::DEADLINE_EXCEEDED: return absl::DeadlineExceededError(msg);
    case grpc::StatusCode::NOT_FOUND: return absl::NotFoundError(msg);
    case grpc::StatusCode::INVALID_ARGUMENT: return absl::InvalidArgumentError(msg);
    case grpc::StatusCode::FAILED_PRECONDITION: return absl::FailedPreconditionError(msg);
    case grpc::StatusCode::UNAUTHENTICATED: return absl::UnauthenticatedError(msg);
    case grpc::StatusCode::PERMISSION_DENIED: return absl::PermissionDeniedError(msg);
    case grpc::StatusCode::RESOURCE_EXHAUSTED: return absl::ResourceExhaustedError(msg);
    case grpc::StatusCode::CANCELLED: return absl::CancelledError(msg);
    default: return absl::UnavailableError(msg);
  }
}

// Retried while time is left: the daemon restarting, a connection reset.
bool Retryable(const grpc::Status& s) { return s.error_code() == grpc::StatusCode::UNAVAILABLE; }

}  // namespace

absl::StatusOr<PlannerConnection> PlannerConnection::FromEnvironment() {
  PlannerConnection c;
  c.address = Env("CAIRN_RDZV_PLANNER");
  if (c.address.empty()) {
    return absl::InvalidArgumentError(
        "CAIRN_RDZV_PLANNER is not set (HOST:PORT of cairn-planner, set by cairn-agent)");
  }
  c.token_file = Env("CAIRN_RDZV_TOKEN_FILE");
  c.tls_ca_file = Env("CAIRN_RDZV_TLS_CA");
  c.tls_cert_file = Env("CAIRN_RDZV_TLS_CERT");
  c.tls_key_file = Env("CAIRN_RDZV_TLS_KEY");
  return c;
}

absl::StatusOr<std::string> ReadBearerToken(const std::string& path) {
  CAIRN_ASSIGN_OR_RETURN(std::string text, ReadFile(path, "token file"));
  std::string line = text.substr(0, text.find('\n'));
  line = std::string(absl::StripAsciiWhitespace(line));
  const size_t space = line.find_last_of(" \t");
  if (space != std::string::npos) line = line.substr(space + 1);
  if (line.empty()) return absl::InvalidArgumentError(absl::StrCat(path, " holds no token"));
  return line;
}

absl::StatusOr<std::shared_ptr<grpc::Channel>> OpenPlannerChannel(const PlannerConnection& c) {
  if (c.address.empty()) return absl::InvalidArgumentError("no planner address (HOST:PORT)");
  if (c.tls_cert_file.empty() != c.tls_key_file.empty()) {
    return absl::InvalidArgumentError(
        "a TLS client certificate needs its key and the other way round (both or neither)");
  }
  std::shared_ptr<grpc::ChannelCredentials> creds;
  if (c.tls_ca_file.empty()) {
    if (!c.tls_cert_file.empty()) {
      return absl::InvalidArgumentError(
          "a TLS client certificate without the server's CA: give the CA too");
    }
    creds = grpc::InsecureChannelCredentials();
  } else {
    grpc::SslCredentialsOptions opt;
    CAIRN_ASSIGN_OR_RETURN(opt.pem_root_certs, ReadFile(c.tls_ca_file, "TLS CA"));
    if (!c.tls_cert_file.empty()) {
      CAIRN_ASSIGN_OR_RETURN(opt.pem_cert_chain, ReadFile(c.tls_cert_file, "TLS certificate"));
      CAIRN_ASSIGN_OR_RETURN(opt.pem_private_key, ReadFile(c.tls_key_file, "TLS key"));
    }
    creds = grpc::SslCredentials(opt);
  }
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(64 << 20);
  // Reconnect quickly after a planner restart (gRPC's default backoff grows to 2 minutes).
  args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 2000);
  args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 100);
  return grpc::CreateCustomChannel(c.address, creds, args);
}

PlannerStore::PlannerStore(std::shared_ptr<grpc::Channel> channel, std::string token,
                           std::string job_id, std::string prefix)
    : channel_(std::move(channel)),
      stub_(cairn::v1::Rendezvous::NewStub(channel_)),
      token_(std::move(token)),
      job_id_(std::move(job_id)),
      prefix_(std::move(prefix)) {}

PlannerStore::~PlannerStore() = default;

absl::StatusOr<std::unique_ptr<PlannerStore>> PlannerStore::Connect(
    const PlannerConnection& connection, const std::string& job_id,
    const std::string& key_prefix) {
  if (job_id.empty()) return absl::InvalidArgumentError("planner store: empty job id");
  std::string token;
  if (!connection.token_file.empty()) {
    CAIRN_ASSIGN_OR_RETURN(token, ReadBearerToken(connection.token_file));
  }
  CAIRN_ASSIGN_OR_RETURN(std::shared_ptr<grpc::Channel> channel, OpenPlannerChannel(connection));
  return FromChannel(std::move(channel), token, job_id, key_prefix);
}

std::unique_ptr<PlannerStore> PlannerStore::FromChannel(std::shared_ptr<grpc::Channel> channel,
                                                        const std::string& token,
                                                        const std::string& job_id,
                                                        const std::string& key_prefix) {
  return std::unique_ptr<PlannerStore>(
      new PlannerStore(std::move(channel), token, job_id, key_prefix));
}

absl::StatusOr<std::unique_ptr<PlannerStore>> PlannerStore::FromEnvironment() {
  CAIRN_ASSIGN_OR_RETURN(PlannerConnection c, PlannerConnection::FromEnvironment());
  const std::string job = Env("CAIRN_RDZV_JOB");
  if (job.empty()) {
    return absl::InvalidArgumentError("CAIRN_RDZV_JOB is not set (the job id, set by cairn-agent)");
  }
  return Connect(c, job, Env("CAIRN_RDZV_PREFIX"));
}

std::unique_ptr<grpc::ClientContext> PlannerStore::Context(absl::Duration deadline) const {
  auto ctx = std::make_unique<grpc::ClientContext>();
  ctx->set_deadline(absl::ToChronoTime(absl::Now() + deadline));
  // Wait for the channel to (re)connect rather than failing at once while the daemon restarts.
  ctx->set_wait_for_ready(true);
  if (!token_.empty()) ctx->AddMetadata("authorization", "Bearer " + token_);
  return ctx;
}

absl::Status PlannerStore::CheckKey(absl::string_view key) const {
  if (key.empty()) return absl::InvalidArgumentError("planner store: empty key");
  if (prefix_.size() + key.size() > kMaxKeyBytes) {
    return absl::InvalidArgumentError(absl::StrCat("planner store: key '", prefix_, key, "' is ",
                                                   prefix_.size() + key.size(),
                                                   " bytes; the planner allows ", kMaxKeyBytes));
  }
  return absl::OkStatus();
}

absl::Status PlannerStore::Set(absl::string_view key, absl::string_view value) {
  CAIRN_RETURN_IF_ERROR(CheckKey(key));
  if (value.size() > kMaxValueBytes) {
    return absl::InvalidArgumentError(absl::StrCat("planner store: the value of '", key, "' is ",
                                                   value.size(), " bytes; the planner allows ",
                                                   kMaxValueBytes));
  }
  cairn::v1::RendezvousSetRequest req;
  req.set_job_id(job_id_);
  req.set_key(absl::StrCat(prefix_, key));
  req.set_value(std::string(value));
  const absl::Time deadline = absl::Now() + kCallTimeout;
  absl::Duration backoff = absl::Milliseconds(50);
  while (true) {
    cairn::v1::RendezvousSetResponse resp;
    auto ctx = Context(std::max(deadline - absl::Now(), absl::Milliseconds(1)));
    const grpc::Status s = stub_->Set(ctx.get(), req, &resp);
    if (!Retryable(s) || absl::Now() + backoff >= deadline) return FromGrpc(s, "set " + req.key());
    absl::SleepFor(backoff);
    backoff = std::min(backoff * 2, absl::Seconds(1));
  }
}

absl::Status PlannerStore::WaitUntil(const std::vector<std::string>& keys, absl::Time deadline,
                                     std::vector<std::string>* values) {
  cairn::v1::RendezvousWaitRequest req;
  req.set_job_id(job_id_);
  for (const std::string& k : keys) req.add_keys(k);
  absl::Duration backoff = absl::Milliseconds(50);
  while (true) {
    const absl::Duration left = deadline - absl::Now();
    const absl::Duration this_call = std::min(std::max(left, absl::ZeroDuration()), kMaxWaitPerCall);
    req.set_timeout_s(absl::ToDoubleSeconds(this_call));
    cairn::v1::RendezvousWaitResponse resp;
    // The daemon answers DEADLINE_EXCEEDED itself, naming the missing keys; the call's own
    // deadline leaves it time to.
    auto ctx = Context(this_call + absl::Seconds(10));
    const grpc::Status s = stub_->Wait(ctx.get(), req, &resp);
    if (s.ok()) {
      if (values != nullptr) {
        values->clear();
        for (const std::string& k : keys) {
          auto it = resp.values().find(k);
          values->push_back(it == resp.values().end() ? "" : it->second);
        }
      }
      return absl::OkStatus();
    }
    const bool more_time = deadline - absl::Now() > backoff;
    if (s.error_code() == grpc::StatusCode::DEADLINE_EXCEEDED && more_time &&
        this_call < left) {
      continue;  // one call of several ran out; the caller's timeout has not
    }
    if (!Retryable(s) || !more_time) {
      return FromGrpc(s, absl::StrCat("wait for ", absl::StrJoin(keys, ", ")));
    }
    absl::SleepFor(backoff);
    backoff = std::min(backoff * 2, absl::Seconds(1));
  }
}

absl::StatusOr<std::string> PlannerStore::Get(absl::string_view key, absl::Duration timeout) {
  CAIRN_RETURN_IF_ERROR(CheckKey(key));
  const std::string full = absl::StrCat(prefix_, key);
  if (timeout <= absl::ZeroDuration()) {
    cairn::v1::RendezvousGetRequest req;
    req.set_job_id(job_id_);
    req.set_key(full);
    cairn::v1::RendezvousGetResponse resp;
    auto ctx = Context(kCallTimeout);
    const grpc::Status s = stub_->Get(ctx.get(), req, &resp);
    if (s.error_code() == grpc::StatusCode::NOT_FOUND &&
        s.error_message().find(full) != std::string::npos) {
      return absl::DeadlineExceededError(
          absl::StrCat("planner rendezvous: key '", full, "' is not set"));
    }
    CAIRN_RETURN_IF_ERROR(FromGrpc(s, "get " + full));
    return resp.value();
  }
  std::vector<std::string> values;
  CAIRN_RETURN_IF_ERROR(WaitUntil({full}, absl::Now() + timeout, &values));
  return values[0];
}

absl::Status PlannerStore::Wait(const std::vector<std::string>& keys, absl::Duration timeout) {
  std::vector<std::string> full;
  for (const std::string& k : keys) {
    CAIRN_RETURN_IF_ERROR(CheckKey(k));
    full.push_back(absl::StrCat(prefix_, k));
  }
  if (full.empty()) return absl::OkStatus();
  return WaitUntil(full, absl::Now() + std::max(timeout, absl::ZeroDuration()), nullptr);
}

}  // namespace cairn::runtime
