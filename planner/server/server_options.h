// planner/server/server_options.h — every setting of the planner daemon, with its default.
//
// main.cc maps its flags one to one onto these fields (docs/planner-daemon.md lists both); tests
// build a ServerOptions directly. Nothing else in the daemon has a default of its own.
#ifndef CAIRN_PLANNER_SERVER_SERVER_OPTIONS_H_
#define CAIRN_PLANNER_SERVER_SERVER_OPTIONS_H_

#include <cstdint>
#include <string>

#include "absl/time/time.h"

namespace cairn::planner {

class Clock;

struct ServerOptions {
  // gRPC address, HOST:PORT; port 0 picks a free port (Server::port() tells which).
  std::string listen_address = "127.0.0.1:7070";
  // Prometheus scrape endpoint (HTTP GET /metrics), HOST:PORT; "" = no metrics server.
  std::string metrics_address = "127.0.0.1:9464";

  // An agent without a heartbeat for this long is DOWN (its jobs fail).
  absl::Duration agent_timeout = absl::Seconds(30);
  // Real time between sweeps for silent agents; 0 = agent_timeout / 4 within [10 ms, 5 s].
  absl::Duration agent_sweep_interval = absl::ZeroDuration();

  // Searches running at once, and waiting beyond those (then RESOURCE_EXHAUSTED).
  int search_workers = 2;
  int search_queue = 16;
  // A search running longer is stopped (DEADLINE_EXCEEDED).
  absl::Duration max_search_time = absl::Seconds(300);
  // Threads one search may use; 0 = every core.
  int max_search_threads = 0;
  // Largest request gRPC accepts, bytes (RESOURCE_EXHAUSTED beyond).
  int max_request_bytes = 4 << 20;

  // Threads that run the logic of every call (store reads and writes, plan-cache lookups) off
  // gRPC's callback threads, and calls that may wait for one of them (then RESOURCE_EXHAUSTED).
  int worker_threads = 4;
  int worker_queue = 1024;
  // Per WatchJob / WatchAssignments stream: events (and bytes) queued for a client that does not
  // read; beyond that the stream ends with RESOURCE_EXHAUSTED and its memory is freed.
  int max_stream_events = 1024;
  int64_t max_stream_bytes = int64_t{4} << 20;

  // TLS: PEM files. Both cert and key, or neither (plaintext). With a client CA, clients must present
  // a certificate it signed (mTLS).
  std::string tls_cert_file;
  std::string tls_key_file;
  std::string tls_client_ca_file;
  // Bearer tokens with roles (auth.h); "" = no authentication.
  std::string token_file;

  // On Shutdown, in-flight unary calls get this long to finish before they are cancelled.
  absl::Duration shutdown_grace = absl::Seconds(10);

  // Tests only: the clock for timestamps and agent timeouts (nullptr = the real clock). Must
  // outlive the server.
  const Clock* clock = nullptr;
};

}  // namespace cairn::planner

#endif  // CAIRN_PLANNER_SERVER_SERVER_OPTIONS_H_
