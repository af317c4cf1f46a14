// runtime/comm/tcp_store.h — a rendezvous Store served over TCP, for multi-host (torchrun-style) launch.
//
// Rank 0 hosts a TcpStoreServer on MASTER_ADDR:MASTER_PORT; every rank (rank 0 included) connects a
// TcpStore client to it and uses it as a Store (store.h). Gloo's Debian package has no TCP store, so
// this is ours; the NCCL backend will exchange its unique id through it too.
//
//   // rank 0 and the others alike; `host_server` is true on rank 0 only:
//   CAIRN_ASSIGN_OR_RETURN(std::unique_ptr<TcpStore> store,
//                          TcpStore::Create(master_addr, master_port, /*host_server=*/rank == 0,
//                                           absl::Minutes(5)));
//   CAIRN_RETURN_IF_ERROR(store->Set("world/join/3", "1"));
//
//   // tests and launchers that host the server themselves bind port 0 and pass the port on:
//   CAIRN_ASSIGN_OR_RETURN(auto server, TcpStoreServer::Start("127.0.0.1", 0));
//   CAIRN_ASSIGN_OR_RETURN(auto client, TcpStore::Connect("127.0.0.1", server->port(), timeout));
//
// Protocol (one TCP connection per client, one request at a time, integers little-endian):
//   request  = u8 command, then
//              SET:  str key, str value                  reply: u8 0
//              GET:  str key, i64 timeout_ms             reply: u8 0, str value | u8 1 (timed out)
//              WAIT: u32 n, n x str key, i64 timeout_ms  reply: u8 0 | u8 1, u32 m, m x str missing
//   str      = u32 length, bytes (keys up to 64 KiB, values up to 64 MiB)
// The server waits on GET/WAIT itself (no client polling); a malformed request closes that
// connection only. One thread per connection: sized for rendezvous traffic (a few requests per rank
// per group), not as a general database.
#ifndef CAIRN_RUNTIME_COMM_TCP_STORE_H_
#define CAIRN_RUNTIME_COMM_TCP_STORE_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "runtime/comm/store.h"

namespace cairn::runtime {

// The server: an in-memory map behind a listening socket, served by background threads until
// destroyed. Thread-safe.
class TcpStoreServer {
 public:
  // Listens on `host`:`port`. `host` "" or "0.0.0.0" listens on every IPv4 interface, "::" on every
  // IPv6 one; port 0 picks a free port (read it back with port()).
  // Errors: InvalidArgument for a port outside [0, 65535] or a host that does not resolve;
  // Unavailable when the address cannot be bound (e.g. the port is taken).
  static absl::StatusOr<std::unique_ptr<TcpStoreServer>> Start(const std::string& host, int port);

  // Closes the listening socket and every client connection (their pending calls fail with
  // Unavailable) and joins the threads.
  ~TcpStoreServer();

  // The port actually listened on.
  int port() const { return port_; }

 private:
  struct State;
  TcpStoreServer(std::shared_ptr<State> state, int port);
  std::shared_ptr<State> state_;
  const int port_;
};

// A client connection to a TcpStoreServer. Thread-safe (requests are serialised on the one
// connection).
class TcpStore final : public Store {
 public:
  // Connects to `host`:`port`, retrying while nothing listens there yet (the server's rank may start
  // later than this one) until `timeout`.
  // Errors: InvalidArgument for a bad port or a host that does not resolve; DeadlineExceeded when no
  // server accepted within `timeout`.
  static absl::StatusOr<std::unique_ptr<TcpStore>> Connect(const std::string& host, int port,
                                                           absl::Duration timeout);

  // torchrun-style: when `host_server`, first starts a TcpStoreServer on every IPv4 interface at
  // `port` (port 0: a free one; owned by the returned store and stopped with it), then connects to
  // `host` at that port.
  static absl::StatusOr<std::unique_ptr<TcpStore>> Create(const std::string& host, int port,
                                                          bool host_server,
                                                          absl::Duration timeout);

  ~TcpStore() override;

  // Errors beyond Store's: Unavailable (naming the server) when the connection is lost, e.g. because
  // the process hosting the server exited.
  absl::Status Set(absl::string_view key, absl::string_view value) override;
  absl::StatusOr<std::string> Get(absl::string_view key, absl::Duration timeout) override;
  absl::Status Wait(const std::vector<std::string>& keys, absl::Duration timeout) override;

  // This end's IP address on the connection ("10.1.2.3", "127.0.0.1"): an address of this host that
  // routes to the server's host, hence a good default address to advertise to peers.
  const std::string& local_address() const { return local_address_; }
  // "host:port" of the server, for messages.
  const std::string& server_address() const { return server_address_; }
  // The port of the server this store hosts (Create with host_server), 0 when it hosts none.
  int hosted_port() const;

 private:
  TcpStore(int fd, std::string server_address, std::string local_address,
           std::unique_ptr<TcpStoreServer> server);
  struct Reply {
    bool ok = false;      // false: the server's wait timed out
    std::string payload;  // GET: the value; WAIT that timed out: the missing keys, comma-separated
  };
  // Sends `request` and reads the reply, allowing `wait` for the server to answer plus a margin.
  absl::StatusOr<Reply> Call(const std::string& request, absl::Duration wait);

  absl::Mutex mu_;
  int fd_ ABSL_GUARDED_BY(mu_);
  const std::string server_address_;
  const std::string local_address_;
  // The server this client hosts (Create with host_server), or null. The destructor closes the
  // connection first, then stops the server.
  std::unique_ptr<TcpStoreServer> server_;
};

}  // namespace cairn::runtime

#endif  // CAIRN_RUNTIME_COMM_TCP_STORE_H_
