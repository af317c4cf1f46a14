// cairn-planner — the planner daemon. Flags map one to one onto ServerOptions (server_options.h,
// where the defaults live); docs/planner-daemon.md describes them and the API.
//
//   cairn-planner --db /var/lib/cairn/planner.db --listen 0.0.0.0:7070
//       --tls-cert server.pem --tls-key server.key --token-file /etc/cairn/tokens
//
// Prints one line "cairn-planner: serving on HOST:PORT ..." once it accepts calls (PORT is the
// bound port, also with --listen HOST:0). SIGTERM or SIGINT shut it down gracefully; exit status 0
// then, 2 for bad flags, 1 when it cannot start.
#include <signal.h>

#include <algorithm>
#include <cstdio>
#include <iostream>
#include <memory>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "common/cli_flags.h"
#include "common/logging.h"
#include "planner/plan/plan_convert.h"
#include "planner/server/server.h"
#include "planner/server/server_options.h"
#include "planner/store/sqlite/sqlite_store.h"

namespace {
const cairn::planner::ServerOptions kDefaults;

}  // namespace

ABSL_FLAG(std::string, listen, kDefaults.listen_address,
          "gRPC address HOST:PORT (port 0: any free port, printed at start)");
ABSL_FLAG(std::string, metrics_address, kDefaults.metrics_address,
          "Prometheus endpoint HOST:PORT serving /metrics; empty disables it");
ABSL_FLAG(std::string, db, "", "SQLite database file (created if missing); required");
ABSL_FLAG(std::string, log_level, "info", "debug, info, warning or error");
ABSL_FLAG(double, agent_timeout, absl::ToDoubleSeconds(kDefaults.agent_timeout),
          "seconds without a heartbeat before an agent is marked down");
ABSL_FLAG(int, search_workers, kDefaults.search_workers, "searches running at once");
ABSL_FLAG(int, search_queue, kDefaults.search_queue,
          "searches waiting for a worker beyond those; more are refused (RESOURCE_EXHAUSTED)");
ABSL_FLAG(double, max_search_seconds, absl::ToDoubleSeconds(kDefaults.max_search_time),
          "a search running longer is stopped (DEADLINE_EXCEEDED)");
ABSL_FLAG(int, max_search_threads, kDefaults.max_search_threads,
          "threads per search; 0 = every core");
ABSL_FLAG(int, max_request_bytes, kDefaults.max_request_bytes,
          "largest request accepted, bytes (RESOURCE_EXHAUSTED beyond)");
ABSL_FLAG(int, worker_threads, kDefaults.worker_threads,
          "threads that run the calls' database work and plan-cache lookups off gRPC's threads");
ABSL_FLAG(int, worker_queue, kDefaults.worker_queue,
          "calls that may wait for a worker thread; more are refused (RESOURCE_EXHAUSTED)");
ABSL_FLAG(bool, read_only, false,
          "serve a database this process may not write: reads and cached plans only, every "
          "write refused (FAILED_PRECONDITION); without it a read-only --db is refused at start");
ABSL_FLAG(std::string, tls_cert, "", "PEM server certificate chain; enables TLS (with --tls-key)");
ABSL_FLAG(std::string, tls_key, "", "PEM private key of --tls-cert");
ABSL_FLAG(std::string, tls_client_ca, "",
          "PEM CA bundle; clients must present a certificate it signed (mutual TLS)");
ABSL_FLAG(std::string, token_file, "",
          "file of 'ROLE TOKEN' lines (roles admin, client, agent); empty: no authentication");
ABSL_FLAG(double, shutdown_grace_seconds, absl::ToDoubleSeconds(kDefaults.shutdown_grace),
          "on SIGTERM, how long in-flight calls may take to finish");

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(
      "the Cairn planner daemon: strategy searches, profiles, agents, jobs and rendezvous over "
      "gRPC.\nUsage: cairn-planner --db PATH [--listen HOST:PORT] [flags]; see "
      "docs/planner-daemon.md");
  // Dashed flag names, --help/--version (exit 0), flag mistakes exit 2.
  std::vector<char*> rest = cairn::ParseFlagsOrExit("cairn-planner", argc, argv);
  if (rest.size() > 1) {
    std::cerr << "cairn-planner: unexpected argument '" << rest[1]
              << "' (every setting is a --flag; see --help)\n";
    return 2;
  }
  cairn::LogLevel level;
  if (!cairn::ParseLogLevel(absl::GetFlag(FLAGS_log_level), &level)) {
    std::cerr << "cairn-planner: --log-level must be debug, info, warning or error\n";
    return 2;
  }
  cairn::SetLogLevel(level);
  const std::string db = absl::GetFlag(FLAGS_db);
  if (db.empty()) {
    std::cerr << "cairn-planner: --db is required: the SQLite file to keep profiles, plans, agents "
                 "and jobs in (created if missing), e.g. --db /var/lib/cairn/planner.db\n";
    return 2;
  }

  cairn::planner::ServerOptions options;
  options.listen_address = absl::GetFlag(FLAGS_listen);
  options.metrics_address = absl::GetFlag(FLAGS_metrics_address);
  options.agent_timeout = absl::Seconds(absl::GetFlag(FLAGS_agent_timeout));
  options.search_workers = absl::GetFlag(FLAGS_search_workers);
  options.search_queue = absl::GetFlag(FLAGS_search_queue);
  options.max_search_time = absl::Seconds(absl::GetFlag(FLAGS_max_search_seconds));
  options.max_search_threads = absl::GetFlag(FLAGS_max_search_threads);
  options.max_request_bytes = absl::GetFlag(FLAGS_max_request_bytes);
  options.worker_threads = absl::GetFlag(FLAGS_worker_threads);
  options.worker_queue = absl::GetFlag(FLAGS_worker_queue);
  options.tls_cert_file = absl::GetFlag(FLAGS_tls_cert);
  options.tls_key_file = absl::GetFlag(FLAGS_tls_key);
  options.tls_client_ca_file = absl::GetFlag(FLAGS_tls_client_ca);
  options.token_file = absl::GetFlag(FLAGS_token_file);
  options.shutdown_grace = absl::Seconds(absl::GetFlag(FLAGS_shutdown_grace_seconds));

  // SIGTERM/SIGINT are taken by sigwait below, never by a handler: block them before any thread
  // starts so every thread inherits the mask.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  // One daemon per database: the file stays locked (flock) while this process runs.
  cairn::planner::SqliteOptions store_options;
  store_options.lock_file = true;
  store_options.read_only = absl::GetFlag(FLAGS_read_only);
  absl::StatusOr<std::unique_ptr<cairn::planner::SqliteStore>> store =
      cairn::planner::SqliteStore::Open(db, store_options);
  if (!store.ok()) {
    std::cerr << "cairn-planner: cannot open --db " << db << ": " << store.status().message()
              << "\n";
    return 1;
  }
  if (absl::StatusOr<std::string> settings = (*store)->EffectiveSettings(); settings.ok()) {
    CAIRN_LOG(INFO) << "store: " << *settings;
  }
  absl::StatusOr<std::unique_ptr<cairn::planner::Server>> server =
      cairn::planner::Server::BuildAndStart(options, *std::move(store));
  if (!server.ok()) {
    std::cerr << "cairn-planner: " << server.status().message() << "\n";
    return 1;
  }
  const std::string host = options.listen_address.substr(0, options.listen_address.rfind(':'));
  std::cout << "cairn-planner " << cairn::planner::kCairnVersion << ": serving on " << host << ":"
            << (*server)->port() << (options.tls_cert_file.empty() ? " (plaintext" : " (TLS")
            << (options.token_file.empty() ? ", no authentication)" : ", bearer tokens)");
  if ((*server)->metrics_port() != 0) {
    const std::string mhost =
        options.metrics_address.substr(0, options.metrics_address.rfind(':'));
    std::cout << ", metrics on http://" << mhost << ":" << (*server)->metrics_port() << "/metrics";
  }
  std::cout << std::endl;
  if (options.token_file.empty() && host != "127.0.0.1" && host != "localhost" && host != "[::1]") {
    CAIRN_LOG(WARNING) << "listening on " << host
                       << " without --token-file: anyone who can reach the port may call "
                          "everything";
  }

  int sig = 0;
  sigwait(&signals, &sig);
  CAIRN_LOG(INFO) << "received " << (sig == SIGTERM ? "SIGTERM" : "SIGINT")
                  << ", shutting down (grace " << absl::FormatDuration(options.shutdown_grace)
                  << ")";
  (*server)->Shutdown();
  return 0;
}
