#include "runtime/comm/tcp_store.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <map>
#include <set>
#include <thread>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/status_macros.h"

namespace cairn::runtime {
namespace {

enum Command : uint8_t { kSet = 1, kGet = 2, kWait = 3 };
enum Reply : uint8_t { kOk = 0, kTimedOut = 1 };

constexpr uint32_t kMaxKeyBytes = 64 << 10;
constexpr uint32_t kMaxValueBytes = 64 << 20;
constexpr uint32_t kMaxWaitKeys = 1 << 20;
// How long a client waits for a reply beyond the time the server itself may wait.
constexpr absl::Duration kReplyMargin = absl::Seconds(30);

std::string ErrnoText(int error) { return std::strerror(error); }

// ---- Encoding.

void PutU8(std::string* out, uint8_t v) { out->push_back(static_cast<char>(v)); }
void PutU32(std::string* out, uint32_t v) {
  for (int i = 0; i < 4; ++i) out->push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}
void PutI64(std::string* out, int64_t v) {
  const auto u = static_cast<uint64_t>(v);
  for (int i = 0; i < 8; ++i) out->push_back(static_cast<char>((u >> (8 * i)) & 0xff));
}
void PutStr(std::string* out, absl::string_view s) {
  PutU32(out, static_cast<uint32_t>(s.size()));
  out->append(s.data(), s.size());
}

// ---- Socket I/O. `deadline` absl::InfiniteFuture() blocks until data or the connection ends.

absl::Status WriteAll(int fd, absl::string_view data) {
  size_t done = 0;
  while (done < data.size()) {
    const ssize_t n = send(fd, data.data() + done, data.size() - done, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return absl::UnavailableError(absl::StrCat("send failed: ", ErrnoText(errno)));
    done += static_cast<size_t>(n);
  }
  return absl::OkStatus();
}

absl::Status ReadExact(int fd, char* data, size_t size, absl::Time deadline) {
  size_t done = 0;
  while (done < size) {
    if (deadline != absl::InfiniteFuture()) {
      const absl::Duration left = deadline - absl::Now();
      if (left <= absl::ZeroDuration()) return absl::DeadlineExceededError("no reply in time");
      pollfd p{fd, POLLIN, 0};
      const int ready = poll(&p, 1, static_cast<int>(absl::ToInt64Milliseconds(left)) + 1);
      if (ready < 0 && errno == EINTR) continue;
      if (ready < 0) return absl::UnavailableError(absl::StrCat("poll failed: ", ErrnoText(errno)));
      if (ready == 0) continue;  // re-check the deadline
    }
    const ssize_t n = recv(fd, data + done, size - done, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n == 0) return absl::UnavailableError("connection closed by the other side");
    if (n < 0) return absl::UnavailableError(absl::StrCat("recv failed: ", ErrnoText(errno)));
    done += static_cast<size_t>(n);
  }
  return absl::OkStatus();
}

absl::StatusOr<uint8_t> ReadU8(int fd, absl::Time deadline) {
  char c;
  CAIRN_RETURN_IF_ERROR(ReadExact(fd, &c, 1, deadline));
  return static_cast<uint8_t>(c);
}

absl::StatusOr<uint32_t> ReadU32(int fd, absl::Time deadline) {
  unsigned char b[4];
  CAIRN_RETURN_IF_ERROR(ReadExact(fd, reinterpret_cast<char*>(b), 4, deadline));
  return uint32_t{b[0]} | uint32_t{b[1]} << 8 | uint32_t{b[2]} << 16 | uint32_t{b[3]} << 24;
}

absl::StatusOr<int64_t> ReadI64(int fd, absl::Time deadline) {
  unsigned char b[8];
  CAIRN_RETURN_IF_ERROR(ReadExact(fd, reinterpret_cast<char*>(b), 8, deadline));
  uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = v << 8 | b[i];
  return static_cast<int64_t>(v);
}

absl::StatusOr<std::string> ReadStr(int fd, uint32_t max_bytes, absl::Time deadline) {
  CAIRN_ASSIGN_OR_RETURN(const uint32_t size, ReadU32(fd, deadline));
  if (size > max_bytes) {
    return absl::InvalidArgumentError(absl::StrCat("string of ", size, " bytes exceeds ", max_bytes));
  }
  std::string s(size, '\0');
  CAIRN_RETURN_IF_ERROR(ReadExact(fd, s.data(), size, deadline));
  return s;
}

absl::Status CheckPort(int port) {
  if (port < 0 || port > 65535) {
    return absl::InvalidArgumentError(absl::StrCat("tcp store: port ", port, " is out of range"));
  }
  return absl::OkStatus();
}

// getaddrinfo for TCP; `passive` for a listening address ("" = any).
absl::StatusOr<std::vector<addrinfo>> Resolve(const std::string& host, int port, bool passive,
                                              addrinfo** owned) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = passive ? AI_PASSIVE : 0;
  const std::string service = std::to_string(port);
  const char* node = host.empty() ? nullptr : host.c_str();
  if (passive && host.empty()) hints.ai_family = AF_INET;
  const int rc = getaddrinfo(node, service.c_str(), &hints, owned);
  if (rc != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("tcp store: cannot resolve '", host, "': ", gai_strerror(rc)));
  }
  std::vector<addrinfo> result;
  for (addrinfo* a = *owned; a != nullptr; a = a->ai_next) result.push_back(*a);
  return result;
}

std::string SocketAddress(const sockaddr_storage& addr) {
  char text[INET6_ADDRSTRLEN] = "";
  if (addr.ss_family == AF_INET) {
    inet_ntop(AF_INET, &reinterpret_cast<const sockaddr_in&>(addr).sin_addr, text, sizeof(text));
  } else if (addr.ss_family == AF_INET6) {
    inet_ntop(AF_INET6, &reinterpret_cast<const sockaddr_in6&>(addr).sin6_addr, text,
              sizeof(text));
  }
  return text;
}

// Connects with a deadline (non-blocking connect + poll). Returns the connected fd.
absl::StatusOr<int> ConnectOnce(const addrinfo& a, absl::Time deadline) {
  const int fd = socket(a.ai_family, a.ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK, a.ai_protocol);
  if (fd < 0) return absl::UnavailableError(absl::StrCat("socket: ", ErrnoText(errno)));
  int rc = connect(fd, a.ai_addr, a.ai_addrlen);
  if (rc != 0 && errno == EINPROGRESS) {
    const absl::Duration left = std::max(deadline - absl::Now(), absl::Milliseconds(1));
    pollfd p{fd, POLLOUT, 0};
    rc = poll(&p, 1, static_cast<int>(absl::ToInt64Milliseconds(left)) + 1);
    if (rc == 0) {
      close(fd);
      return absl::DeadlineExceededError("connect timed out");
    }
    int error = 0;
    socklen_t len = sizeof(error);
    getsockopt(fd, SOL_SOCKET, SO_ERROR, &error, &len);
    rc = error == 0 ? 0 : -1;
    errno = error;
  }
  if (rc != 0) {
    const int error = errno;
    close(fd);
    return absl::UnavailableError(ErrnoText(error));
  }
  // Back to blocking mode: reads use poll for their deadlines.
  fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
  const int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  return fd;
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// Server

struct TcpStoreServer::State {
  int listen_fd = -1;
  absl::Mutex mu;
  std::map<std::string, std::string> data ABSL_GUARDED_BY(mu);
  bool stopping ABSL_GUARDED_BY(mu) = false;
  std::set<int> connections ABSL_GUARDED_BY(mu);
  std::vector<std::thread> workers ABSL_GUARDED_BY(mu);
  std::thread acceptor;

  void AcceptLoop();
  void Serve(int fd);
  // Handles one request; an error ends the connection.
  absl::Status HandleRequest(int fd);
};

void TcpStoreServer::State::AcceptLoop() {
  while (true) {
    const int fd = accept4(listen_fd, nullptr, nullptr, SOCK_CLOEXEC);
    absl::MutexLock lock(&mu);
    if (stopping) {
      if (fd >= 0) close(fd);
      return;
    }
    if (fd < 0) {
      if (errno == EINTR || errno == ECONNABORTED || errno == EMFILE || errno == ENFILE) continue;
      return;
    }
    const int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    connections.insert(fd);
    workers.emplace_back([this, fd] { Serve(fd); });
  }
}

void TcpStoreServer::State::Serve(int fd) {
  while (HandleRequest(fd).ok()) {
  }
  absl::MutexLock lock(&mu);
  connections.erase(fd);
  close(fd);
}

absl::Status TcpStoreServer::State::HandleRequest(int fd) {
  const absl::Time forever = absl::InfiniteFuture();
  CAIRN_ASSIGN_OR_RETURN(const uint8_t command, ReadU8(fd, forever));
  std::string reply;
  switch (command) {
    case kSet: {
      CAIRN_ASSIGN_OR_RETURN(std::string key, ReadStr(fd, kMaxKeyBytes, forever));
      CAIRN_ASSIGN_OR_RETURN(std::string value, ReadStr(fd, kMaxValueBytes, forever));
      {
        absl::MutexLock lock(&mu);
        data[std::move(key)] = std::move(value);
      }
      PutU8(&reply, kOk);
      break;
    }
    case kGet: {
      CAIRN_ASSIGN_OR_RETURN(const std::string key, ReadStr(fd, kMaxKeyBytes, forever));
      CAIRN_ASSIGN_OR_RETURN(const int64_t timeout_ms, ReadI64(fd, forever));
      absl::MutexLock lock(&mu);
      auto ready = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
        return stopping || data.count(key) > 0;
      };
      mu.AwaitWithTimeout(absl::Condition(&ready), absl::Milliseconds(std::max<int64_t>(0, timeout_ms)));
      if (stopping) return absl::CancelledError("stopping");
      auto it = data.find(key);
      if (it == data.end()) {
        PutU8(&reply, kTimedOut);
      } else {
        PutU8(&reply, kOk);
        PutStr(&reply, it->second);
      }
      break;
    }
    case kWait: {
      CAIRN_ASSIGN_OR_RETURN(const uint32_t n, ReadU32(fd, forever));
      if (n > kMaxWaitKeys) return absl::InvalidArgumentError("too many keys");
      std::vector<std::string> keys;
      keys.reserve(n);
      for (uint32_t i = 0; i < n; ++i) {
        CAIRN_ASSIGN_OR_RETURN(std::string key, ReadStr(fd, kMaxKeyBytes, forever));
        keys.push_back(std::move(key));
      }
      CAIRN_ASSIGN_OR_RETURN(const int64_t timeout_ms, ReadI64(fd, forever));
      absl::MutexLock lock(&mu);
      auto ready = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
        if (stopping) return true;
        for (const std::string& key : keys) {
          if (data.count(key) == 0) return false;
        }
        return true;
      };
      mu.AwaitWithTimeout(absl::Condition(&ready), absl::Milliseconds(std::max<int64_t>(0, timeout_ms)));
      if (stopping) return absl::CancelledError("stopping");
      std::vector<const std::string*> missing;
      for (const std::string& key : keys) {
        if (data.count(key) == 0) missing.push_back(&key);
      }
      if (missing.empty()) {
        PutU8(&reply, kOk);
      } else {
        PutU8(&reply, kTimedOut);
        PutU32(&reply, static_cast<uint32_t>(missing.size()));
        for (const std::string* key : missing) PutStr(&reply, *key);
      }
      break;
    }
    default:
      return absl::InvalidArgumentError(absl::StrCat("unknown command ", command));
  }
  return WriteAll(fd, reply);
}

absl::StatusOr<std::unique_ptr<TcpStoreServer>> TcpStoreServer::Start(const std::string& host,
                                                                      int port) {
  CAIRN_RETURN_IF_ERROR(CheckPort(port));
  addrinfo* owned = nullptr;
  absl::StatusOr<std::vector<addrinfo>> addresses = Resolve(host, port, /*passive=*/true, &owned);
  if (!addresses.ok()) return addresses.status();
  std::string last_error = "no address";
  int fd = -1;
  for (const addrinfo& a : *addresses) {
    fd = socket(a.ai_family, a.ai_socktype | SOCK_CLOEXEC, a.ai_protocol);
    if (fd < 0) {
      last_error = ErrnoText(errno);
      continue;
    }
    const int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (bind(fd, a.ai_addr, a.ai_addrlen) == 0 && listen(fd, 1024) == 0) break;
    last_error = ErrnoText(errno);
    close(fd);
    fd = -1;
  }
  freeaddrinfo(owned);
  if (fd < 0) {
    return absl::UnavailableError(absl::StrCat("tcp store: cannot listen on ",
                                               host.empty() ? "*" : host, ":", port, ": ",
                                               last_error));
  }
  sockaddr_storage bound{};
  socklen_t len = sizeof(bound);
  getsockname(fd, reinterpret_cast<sockaddr*>(&bound), &len);
  const int actual_port = ntohs(bound.ss_family == AF_INET6
                                    ? reinterpret_cast<sockaddr_in6&>(bound).sin6_port
                                    : reinterpret_cast<sockaddr_in&>(bound).sin_port);
  auto state = std::make_shared<State>();
  state->listen_fd = fd;
  state->acceptor = std::thread([raw = state.get()] { raw->AcceptLoop(); });
  return std::unique_ptr<TcpStoreServer>(new TcpStoreServer(std::move(state), actual_port));
}

TcpStoreServer::TcpStoreServer(std::shared_ptr<State> state, int port)
    : state_(std::move(state)), port_(port) {}

TcpStoreServer::~TcpStoreServer() {
  {
    absl::MutexLock lock(&state_->mu);
    state_->stopping = true;
    // shutdown() wakes the threads blocked in accept() and recv(); each closes its own socket.
    shutdown(state_->listen_fd, SHUT_RDWR);
    for (int fd : state_->connections) shutdown(fd, SHUT_RDWR);
  }
  state_->acceptor.join();
  close(state_->listen_fd);
  std::vector<std::thread> workers;
  {
    absl::MutexLock lock(&state_->mu);
    workers.swap(state_->workers);
  }
  for (std::thread& t : workers) t.join();
}

// ---------------------------------------------------------------------------------------------
// Client

absl::StatusOr<std::unique_ptr<TcpStore>> TcpStore::Connect(const std::string& host, int port,
                                                            absl::Duration timeout) {
  CAIRN_RETURN_IF_ERROR(CheckPort(port));
  if (port == 0) return absl::InvalidArgumentError("tcp store: cannot connect to port 0");
  const std::string server = absl::StrCat(host, ":", port);
  const absl::Time deadline = absl::Now() + timeout;
  absl::Duration pause = absl::Milliseconds(10);
  std::string last_error;
  while (true) {
    addrinfo* owned = nullptr;
    absl::StatusOr<std::vector<addrinfo>> addresses =
        Resolve(host, port, /*passive=*/false, &owned);
    if (!addresses.ok()) return addresses.status();
    for (const addrinfo& a : *addresses) {
      absl::StatusOr<int> fd = ConnectOnce(a, deadline);
      if (!fd.ok()) {
        last_error = std::string(fd.status().message());
        continue;
      }
      freeaddrinfo(owned);
      sockaddr_storage local{};
      socklen_t len = sizeof(local);
      getsockname(*fd, reinterpret_cast<sockaddr*>(&local), &len);
      return std::unique_ptr<TcpStore>(new TcpStore(*fd, server, SocketAddress(local), nullptr));
    }
    freeaddrinfo(owned);
    const absl::Time now = absl::Now();
    if (now >= deadline) {
      return absl::DeadlineExceededError(
          absl::StrCat("tcp store: no server accepted a connection at ", server, " within ",
                       absl::FormatDuration(timeout), " (last error: ", last_error, ")"));
    }
    // Nothing listens yet (the hosting rank may start later): retry.
    absl::SleepFor(std::min(pause, deadline - now));
    pause = std::min(pause * 2, absl::Milliseconds(500));
  }
}

absl::StatusOr<std::unique_ptr<TcpStore>> TcpStore::Create(const std::string& host, int port,
                                                           bool host_server,
                                                           absl::Duration timeout) {
  std::unique_ptr<TcpStoreServer> server;
  if (host_server) {
    CAIRN_ASSIGN_OR_RETURN(server, TcpStoreServer::Start("", port));
  }
  // Port 0 lets a hosted server pick a free port (useful for a one-rank job).
  const int connect_port = server != nullptr ? server->port() : port;
  CAIRN_ASSIGN_OR_RETURN(std::unique_ptr<TcpStore> client, Connect(host, connect_port, timeout));
  client->server_ = std::move(server);
  return client;
}

TcpStore::TcpStore(int fd, std::string server_address, std::string local_address,
                   std::unique_ptr<TcpStoreServer> server)
    : fd_(fd),
      server_address_(std::move(server_address)),
      local_address_(std::move(local_address)),
      server_(std::move(server)) {}

int TcpStore::hosted_port() const { return server_ != nullptr ? server_->port() : 0; }

TcpStore::~TcpStore() {
  absl::MutexLock lock(&mu_);
  if (fd_ >= 0) close(fd_);
  fd_ = -1;
}

absl::StatusOr<TcpStore::Reply> TcpStore::Call(const std::string& request, absl::Duration wait) {
  absl::MutexLock lock(&mu_);
  auto lost = [&](const absl::Status& cause) {
    if (fd_ >= 0) close(fd_);
    fd_ = -1;
    return absl::UnavailableError(absl::StrCat("tcp store: lost the connection to the server at ",
                                               server_address_, ": ", cause.message()));
  };
  if (fd_ < 0) {
    return absl::UnavailableError(absl::StrCat(
        "tcp store: the connection to the server at ", server_address_, " was lost earlier"));
  }
  absl::Status sent = WriteAll(fd_, request);
  if (!sent.ok()) return lost(sent);
  const absl::Time deadline = absl::Now() + wait + kReplyMargin;
  absl::StatusOr<uint8_t> status = ReadU8(fd_, deadline);
  if (!status.ok()) return lost(status.status());
  Reply reply;
  reply.ok = *status == kOk;
  const auto command = static_cast<uint8_t>(request[0]);
  if (command == kGet && reply.ok) {
    absl::StatusOr<std::string> value = ReadStr(fd_, kMaxValueBytes, deadline);
    if (!value.ok()) return lost(value.status());
    reply.payload = *std::move(value);
  } else if (command == kWait && !reply.ok) {
    absl::StatusOr<uint32_t> n = ReadU32(fd_, deadline);
    if (!n.ok()) return lost(n.status());
    std::vector<std::string> missing;
    for (uint32_t i = 0; i < *n; ++i) {
      absl::StatusOr<std::string> key = ReadStr(fd_, kMaxKeyBytes, deadline);
      if (!key.ok()) return lost(key.status());
      missing.push_back(*std::move(key));
    }
    reply.payload = absl::StrJoin(missing, ", ");
  }
  return reply;
}

absl::Status TcpStore::Set(absl::string_view key, absl::string_view value) {
  if (key.empty()) return absl::InvalidArgumentError("tcp store: empty key");
  if (key.size() > kMaxKeyBytes || value.size() > kMaxValueBytes) {
    return absl::InvalidArgumentError(absl::StrCat("tcp store: key (", key.size(),
                                                   " bytes) or value (", value.size(),
                                                   " bytes) too large"));
  }
  std::string request;
  PutU8(&request, kSet);
  PutStr(&request, key);
  PutStr(&request, value);
  return Call(request, absl::ZeroDuration()).status();
}

absl::StatusOr<std::string> TcpStore::Get(absl::string_view key, absl::Duration timeout) {
  if (key.empty()) return absl::InvalidArgumentError("tcp store: empty key");
  if (key.size() > kMaxKeyBytes) return absl::InvalidArgumentError("tcp store: key too large");
  timeout = std::max(timeout, absl::ZeroDuration());
  std::string request;
  PutU8(&request, kGet);
  PutStr(&request, key);
  PutI64(&request, absl::ToInt64Milliseconds(timeout));
  CAIRN_ASSIGN_OR_RETURN(Reply reply, Call(request, timeout));
  if (!reply.ok) {
    return absl::DeadlineExceededError(absl::StrCat("tcp store ", server_address_, ": key '", key,
                                                    "' was not set within ",
                                                    absl::FormatDuration(timeout)));
  }
  return std::move(reply.payload);
}

absl::Status TcpStore::Wait(const std::vector<std::string>& keys, absl::Duration timeout) {
  timeout = std::max(timeout, absl::ZeroDuration());
  std::string request;
  PutU8(&request, kWait);
  PutU32(&request, static_cast<uint32_t>(keys.size()));
  for (const std::string& key : keys) {
    if (key.size() > kMaxKeyBytes) return absl::InvalidArgumentError("tcp store: key too large");
    PutStr(&request, key);
  }
  PutI64(&request, absl::ToInt64Milliseconds(timeout));
  CAIRN_ASSIGN_OR_RETURN(Reply reply, Call(request, timeout));
  if (!reply.ok) {
    return absl::DeadlineExceededError(absl::StrCat("tcp store ", server_address_,
                                                    ": keys not set within ",
                                                    absl::FormatDuration(timeout), ": ",
                                                    reply.payload));
  }
  return absl::OkStatus();
}

}  // namespace cairn::runtime
