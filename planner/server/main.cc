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

#include "CLI/CLI.hpp"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "common/cli_app.h"
#include "common/logging.h"
#include "planner/plan/plan_convert.h"
#include "planner/server/server.h"
#include "planner/server/server_options.h"
#include "planner/store/sqlite/sqlite_store.h"

namespace {

// The daemon's flags, each with its default (ServerOptions' where it has one).
struct Flags {
  cairn::planner::ServerOptions defaults;
  std::string listen = defaults.listen_address;
  std::string metrics_address = defaults.metrics_address;
  std::string db;
  std::string log_level = "info";
  double agent_timeout = absl::ToDoubleSeconds(defaults.agent_timeout);
  int search_workers = defaults.search_workers;
  int search_queue = defaults.search_queue;
  double max_search_seconds = absl::ToDoubleSeconds(defaults.max_search_time);
  int max_search_threads = defaults.max_search_threads;
  int max_request_bytes = defaults.max_request_bytes;
  int worker_threads = defaults.worker_threads;
  int worker_queue = defaults.worker_queue;
  bool read_only = false;
  std::string tls_cert, tls_key, tls_client_ca, token_file;
  double shutdown_grace_seconds = absl::ToDoubleSeconds(defaults.shutdown_grace);
};

void AddFlags(CLI::App& app, Flags& f) {
  app.add_option("--listen", f.listen,
                 "gRPC address HOST:PORT (port 0: any free port, printed at start)")
      ->type_name("HOST:PORT");
  app.add_option("--metrics-address", f.metrics_address,
                 "Prometheus endpoint HOST:PORT serving /metrics; empty disables it")
      ->type_name("HOST:PORT");
  app.add_option("--db", f.db, "SQLite database file (created if missing); required")
      ->type_name("PATH");
  app.add_option("--log-level", f.log_level, "debug, info, warning or error")->type_name("LEVEL");
  app.add_option("--agent-timeout", f.agent_timeout,
                 "seconds without a heartbeat before an agent is marked down")
      ->type_name("S");
  app.add_option("--search-workers", f.search_workers, "searches running at once")->type_name("N");
  app.add_option("--search-queue", f.search_queue,
                 "searches waiting for a worker beyond those; more are refused "
                 "(RESOURCE_EXHAUSTED)")
      ->type_name("N");
  app.add_option("--max-search-seconds", f.max_search_seconds,
                 "a search running longer is stopped (DEADLINE_EXCEEDED)")
      ->type_name("S");
  app.add_option("--max-search-threads", f.max_search_threads, "threads per search; 0 = every core")
      ->type_name("N");
  app.add_option("--max-request-bytes", f.max_request_bytes,
                 "largest request accepted, bytes (RESOURCE_EXHAUSTED beyond)")
      ->type_name("BYTES");
  app.add_option("--worker-threads", f.worker_threads,
                 "threads that run the calls' database work and plan-cache lookups off gRPC's "
                 "threads")
      ->type_name("N");
  app.add_option("--worker-queue", f.worker_queue,
                 "calls that may wait for a worker thread; more are refused (RESOURCE_EXHAUSTED)")
      ->type_name("N");
  app.add_flag("--read-only,!--no-read-only", f.read_only,
               "serve a database this process may not write: reads and cached plans only, every "
               "write refused (FAILED_PRECONDITION); without it a read-only --db is refused at "
               "start");
  app.add_option("--tls-cert", f.tls_cert,
                 "PEM server certificate chain; enables TLS (with --tls-key)")
      ->type_name("FILE");
  app.add_option("--tls-key", f.tls_key, "PEM private key of --tls-cert")->type_name("FILE");
  app.add_option("--tls-client-ca", f.tls_client_ca,
                 "PEM CA bundle; clients must present a certificate it signed (mutual TLS)")
      ->type_name("FILE");
  app.add_option("--token-file", f.token_file,
                 "file of 'ROLE TOKEN' lines (roles admin, client, agent); empty: no "
                 "authentication")
      ->type_name("FILE");
  app.add_option("--shutdown-grace-seconds", f.shutdown_grace_seconds,
                 "on SIGTERM, how long in-flight calls may take to finish")
      ->type_name("S");
  cairn::AddFlagfile(&app);
}

}  // namespace

int main(int argc, char** argv) {
  std::unique_ptr<CLI::App> app = cairn::MakeApp(
      "cairn-planner",
      "the Cairn planner daemon: strategy searches, profiles, agents, jobs and rendezvous over "
      "gRPC. Run as cairn-planner --db PATH [--listen HOST:PORT] [flags]; see "
      "docs/planner-daemon.md");
  Flags flags;
  AddFlags(*app, flags);
  // --help/--version exit 0, flag mistakes exit 2 (the systemd unit does not restart on 2).
  if (std::optional<int> exit = cairn::ParseCommandLine(*app, argc, argv)) return *exit;
  cairn::LogLevel level;
  if (!cairn::ParseLogLevel(flags.log_level, &level)) {
    std::cerr << "cairn-planner: --log-level must be debug, info, warning or error\n";
    return 2;
  }
  cairn::SetLogLevel(level);
  const std::string db = flags.db;
  if (db.empty()) {
    std::cerr << "cairn-planner: --db is required: the SQLite file to keep profiles, plans, agents "
                 "and jobs in (created if missing), e.g. --db /var/lib/cairn/planner.db\n";
    return 2;
  }

  cairn::planner::ServerOptions options;
  options.listen_address = flags.listen;
  options.metrics_address = flags.metrics_address;
  options.agent_timeout = absl::Seconds(flags.agent_timeout);
  options.search_workers = flags.search_workers;
  options.search_queue = flags.search_queue;
  options.max_search_time = absl::Seconds(flags.max_search_seconds);
  options.max_search_threads = flags.max_search_threads;
  options.max_request_bytes = flags.max_request_bytes;
  options.worker_threads = flags.worker_threads;
  options.worker_queue = flags.worker_queue;
  options.tls_cert_file = flags.tls_cert;
  options.tls_key_file = flags.tls_key;
  options.tls_client_ca_file = flags.tls_client_ca;
  options.token_file = flags.token_file;
  options.shutdown_grace = absl::Seconds(flags.shutdown_grace_seconds);

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
  store_options.read_only = flags.read_only;
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
