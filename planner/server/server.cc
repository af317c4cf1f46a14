#include "planner/server/server.h"

#include <exception>
#include <fstream>
#include <sstream>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/logging.h"
#include "common/status_macros.h"
#include "grpcpp/ext/proto_server_reflection_plugin.h"
#include "grpcpp/health_check_service_interface.h"
#include "planner/server/clock.h"
#include "planner/server/timed_store.h"
#include "prometheus/exposer.h"

namespace cairn::planner {
namespace {

absl::StatusOr<std::string> ReadPem(const std::string& flag, const std::string& path) {
  std::ifstream in(path);
  if (!in) {
    return absl::NotFoundError(absl::StrCat("--", flag, " ", path, ": cannot read the file"));
  }
  std::stringstream text;
  text << in.rdbuf();
  if (text.str().find("-----BEGIN") == std::string::npos) {
    return absl::InvalidArgumentError(
        absl::StrCat("--", flag, " ", path, ": not a PEM file (no -----BEGIN line)"));
  }
  return text.str();
}

absl::Status CheckOptions(const ServerOptions& o) {
  if (o.listen_address.empty()) return absl::InvalidArgumentError("--listen is required");
  if (o.tls_cert_file.empty() != o.tls_key_file.empty()) {
    return absl::InvalidArgumentError("--tls-cert and --tls-key go together: give both or neither");
  }
  if (!o.tls_client_ca_file.empty() && o.tls_cert_file.empty()) {
    return absl::InvalidArgumentError(
        "--tls-client-ca needs --tls-cert and --tls-key (client certificates need TLS)");
  }
  if (o.search_workers < 1) return absl::InvalidArgumentError("--search-workers must be >= 1");
  if (o.search_queue < 0) return absl::InvalidArgumentError("--search-queue must be >= 0");
  if (o.max_search_time <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError("--max-search-seconds must be > 0");
  }
  if (o.max_request_bytes < 1024) {
    return absl::InvalidArgumentError("--max-request-bytes must be at least 1024");
  }
  if (o.agent_timeout <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError("--agent-timeout must be > 0");
  }
  if (o.worker_threads < 1) return absl::InvalidArgumentError("--worker-threads must be >= 1");
  if (o.worker_queue < 0) return absl::InvalidArgumentError("--worker-queue must be >= 0");
  if (o.max_stream_events < 1 || o.max_stream_bytes < 1) {
    return absl::InvalidArgumentError("stream queue limits must be >= 1");
  }
  return absl::OkStatus();
}

absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> Credentials(const ServerOptions& o) {
  if (o.tls_cert_file.empty()) return grpc::InsecureServerCredentials();
  grpc::SslServerCredentialsOptions ssl;
  grpc::SslServerCredentialsOptions::PemKeyCertPair pair;
  CAIRN_ASSIGN_OR_RETURN(pair.cert_chain, ReadPem("tls-cert", o.tls_cert_file));
  CAIRN_ASSIGN_OR_RETURN(pair.private_key, ReadPem("tls-key", o.tls_key_file));
  ssl.pem_key_cert_pairs.push_back(std::move(pair));
  if (!o.tls_client_ca_file.empty()) {
    CAIRN_ASSIGN_OR_RETURN(ssl.pem_root_certs, ReadPem("tls-client-ca", o.tls_client_ca_file));
    ssl.client_certificate_request = GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY;
  }
  return grpc::SslServerCredentials(ssl);
}

}  // namespace

absl::StatusOr<std::unique_ptr<Server>> Server::BuildAndStart(const ServerOptions& options,
                                                              std::unique_ptr<Store> store) {
  CAIRN_RETURN_IF_ERROR(CheckOptions(options));
  std::unique_ptr<Server> s(new Server());
  s->options_ = options;
  if (!options.token_file.empty()) {
    CAIRN_ASSIGN_OR_RETURN(TokenTable tokens, TokenTable::LoadFile(options.token_file));
    CAIRN_LOG(INFO) << "authentication on: " << tokens.size() << " tokens from "
                    << options.token_file;
    s->auth_ = Authorizer(std::move(tokens));
  }
  CAIRN_ASSIGN_OR_RETURN(std::shared_ptr<grpc::ServerCredentials> credentials,
                         Credentials(options));
  const Clock* clock = options.clock != nullptr ? options.clock : &RealClock::Get();

  s->metrics_ = std::make_unique<Metrics>();
  s->store_ = std::make_unique<TimedStore>(std::move(store), s->metrics_.get());
  s->timers_ = std::make_unique<TimerThread>();
  s->executor_ = std::make_unique<Executor>(options.worker_threads, options.worker_queue);
  PlannerOptions planner_options;
  planner_options.search_workers = options.search_workers;
  planner_options.search_queue = options.search_queue;
  planner_options.max_search_time = options.max_search_time;
  planner_options.max_search_threads = options.max_search_threads;
  s->planner_ = std::make_unique<PlannerLogic>(s->store_.get(), s->timers_.get(),
                                               s->metrics_.get(), clock, planner_options);
  s->profiles_ = std::make_unique<ProfilesLogic>(s->store_.get(), clock);
  AgentsOptions agents_options;
  agents_options.timeout = options.agent_timeout;
  agents_options.sweep_interval = options.agent_sweep_interval;
  s->agents_ =
      std::make_unique<AgentsLogic>(s->store_.get(), clock, s->metrics_.get(), agents_options);
  s->jobs_ = std::make_unique<JobsLogic>(s->store_.get(), s->planner_.get(), s->agents_.get(),
                                         clock, s->metrics_.get());
  s->rendezvous_ = std::make_unique<RendezvousLogic>(s->store_.get(), s->timers_.get());
  CAIRN_RETURN_IF_ERROR(s->agents_->Load());
  CAIRN_RETURN_IF_ERROR(s->jobs_->Load());
  s->agents_->SetListener(s->jobs_.get());

  s->env_ = ServiceEnv{&s->auth_,          s->metrics_.get(), s->planner_.get(),
                       s->profiles_.get(), s->agents_.get(),  s->jobs_.get(),
                       s->rendezvous_.get(), s->executor_.get()};
  s->env_.max_stream_events = options.max_stream_events;
  s->env_.max_stream_bytes = options.max_stream_bytes;
  s->planner_service_ = std::make_unique<PlannerService>(s->env_);
  s->profiles_service_ = std::make_unique<ProfilesService>(s->env_);
  s->agents_service_ = std::make_unique<AgentsService>(s->env_);
  s->jobs_service_ = std::make_unique<JobsService>(s->env_);
  s->rendezvous_service_ = std::make_unique<RendezvousService>(s->env_);

  grpc::EnableDefaultHealthCheckService(true);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  grpc::ServerBuilder builder;
  builder.AddListeningPort(options.listen_address, credentials, &s->port_);
  builder.SetMaxReceiveMessageSize(options.max_request_bytes);
  builder.RegisterService(s->planner_service_.get());
  builder.RegisterService(s->profiles_service_.get());
  builder.RegisterService(s->agents_service_.get());
  builder.RegisterService(s->jobs_service_.get());
  builder.RegisterService(s->rendezvous_service_.get());
  s->grpc_server_ = builder.BuildAndStart();
  if (s->grpc_server_ == nullptr || s->port_ == 0) {
    return absl::UnavailableError(absl::StrCat(
        "cannot listen on --listen ", options.listen_address,
        ": the address is in use, not local, or not HOST:PORT"));
  }

  if (!options.metrics_address.empty()) {
    try {
      s->exposer_ = std::make_unique<prometheus::Exposer>(options.metrics_address);
    } catch (const std::exception& e) {  // civetweb reports a failed bind by throwing
      return absl::UnavailableError(absl::StrCat("cannot serve metrics on --metrics-address ",
                                                 options.metrics_address, ": ", e.what()));
    }
    s->exposer_->RegisterCollectable(s->metrics_->registry());
    const std::vector<int> ports = s->exposer_->GetListeningPorts();
    s->metrics_port_ = ports.empty() ? 0 : ports[0];
  }
  s->agents_->StartSweeper();
  return s;
}

Server::~Server() { Shutdown(); }

void Server::Shutdown() {
  bool first;
  {
    absl::MutexLock lock(&mu_);
    first = !shutting_down_;
    shutting_down_ = true;
  }
  if (!first) {
    shutdown_done_.WaitForNotification();
    return;
  }
  CAIRN_LOG(INFO) << "shutting down";
  if (grpc_server_ != nullptr) {
    if (auto* health = grpc_server_->GetHealthCheckService()) health->SetServingStatus(false);
  }
  if (planner_) planner_->Shutdown();
  if (jobs_) jobs_->Shutdown();
  if (rendezvous_) rendezvous_->Shutdown();
  if (grpc_server_ != nullptr) {
    grpc_server_->Shutdown(absl::ToChronoTime(absl::Now() + options_.shutdown_grace));
    grpc_server_->Wait();
  }
  if (executor_) executor_->Stop();
  if (agents_) {
    agents_->SetListener(nullptr);
    agents_->StopSweeper();
  }
  if (timers_) timers_->Stop();
  exposer_.reset();
  store_.reset();  // closes the database
  CAIRN_LOG(INFO) << "shut down";
  shutdown_done_.Notify();
}

}  // namespace cairn::planner
