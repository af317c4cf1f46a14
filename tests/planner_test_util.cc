#include "tests/planner_test_util.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cmath>
#include <cstdlib>
#include <fstream>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "planner/store/sqlite/sqlite_store.h"

namespace cairn::testing {
namespace {

std::string TmpDir() {
  const char* d = std::getenv("TEST_TMPDIR");
  return d != nullptr ? d : "/tmp";
}

std::atomic<int> g_counter{0};

}  // namespace

std::string TempDb(const std::string& name) {
  return absl::StrCat(TmpDir(), "/", name, "-", getpid(), "-", g_counter++, ".db");
}

std::string WriteTempFile(const std::string& name, const std::string& text) {
  const std::string path = absl::StrCat(TmpDir(), "/", name, "-", g_counter++);
  std::ofstream(path) << text;
  chmod(path.c_str(), 0600);  // token files must not be readable by every user
  return path;
}

std::string RunfilePath(const std::string& path) {
  const char* dir = std::getenv("TEST_SRCDIR");
  const char* ws = std::getenv("TEST_WORKSPACE");
  if (dir == nullptr) return path;
  return absl::StrCat(dir, "/", ws != nullptr ? ws : "cairn", "/", path);
}

planner::ServerOptions TestOptions(bool metrics) {
  planner::ServerOptions o;
  o.listen_address = "127.0.0.1:0";
  o.metrics_address = metrics ? "127.0.0.1:0" : "";
  o.shutdown_grace = absl::Seconds(5);
  return o;
}

absl::StatusOr<std::unique_ptr<planner::Server>> StartPlanner(const planner::ServerOptions& options,
                                                              const std::string& db) {
  absl::StatusOr<std::unique_ptr<planner::Store>> store = planner::OpenSqliteStore(db);
  if (!store.ok()) return store.status();
  return planner::Server::BuildAndStart(options, *std::move(store));
}

std::shared_ptr<grpc::Channel> Connect(int port) {
  return grpc::CreateChannel(absl::StrCat("127.0.0.1:", port), grpc::InsecureChannelCredentials());
}

std::unique_ptr<grpc::ClientContext> Context(const std::string& token, absl::Duration deadline) {
  auto ctx = std::make_unique<grpc::ClientContext>();
  ctx->set_deadline(absl::ToChronoTime(absl::Now() + deadline));
  if (!token.empty()) ctx->AddMetadata("authorization", "Bearer " + token);
  return ctx;
}

absl::StatusOr<std::string> HttpGet(int port, const std::string& path) {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return absl::InternalError("socket() failed");
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    close(fd);
    return absl::UnavailableError(absl::StrCat("cannot connect to 127.0.0.1:", port));
  }
  const std::string request =
      absl::StrCat("GET ", path, " HTTP/1.0\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n");
  if (write(fd, request.data(), request.size()) != static_cast<ssize_t>(request.size())) {
    close(fd);
    return absl::InternalError("short write");
  }
  std::string response;
  char buf[8192];
  for (ssize_t n; (n = read(fd, buf, sizeof(buf))) > 0;) response.append(buf, n);
  close(fd);
  const size_t body = response.find("\r\n\r\n");
  if (body == std::string::npos || response.rfind("HTTP/1.", 0) != 0) {
    return absl::InternalError(absl::StrCat("not an HTTP response: ", response.substr(0, 100)));
  }
  const std::string status_line = response.substr(0, response.find("\r\n"));
  if (status_line.find(" 200") == std::string::npos) {
    return absl::InternalError(status_line);
  }
  return response.substr(body + 4);
}

std::map<std::string, double> ParsePrometheusText(const std::string& text) {
  std::map<std::string, double> out;
  for (absl::string_view line : absl::StrSplit(text, '\n', absl::SkipEmpty())) {
    line = absl::StripAsciiWhitespace(line);
    if (line.empty() || line[0] == '#') continue;
    const size_t space = line.rfind(' ');
    if (space == absl::string_view::npos) continue;
    double value = 0;
    const absl::string_view v = line.substr(space + 1);
    if (!absl::SimpleAtod(v, &value)) {
      if (v == "Nan" || v == "NaN") value = std::nan("");
      else continue;
    }
    out[std::string(line.substr(0, space))] = value;
  }
  return out;
}

std::map<std::string, double> ScrapeMetrics(int port) {
  absl::StatusOr<std::string> body = HttpGet(port, "/metrics");
  if (!body.ok()) return {};
  return ParsePrometheusText(*body);
}

cairn::v1::PlanRequest TinyPlanRequest(int global_batch) {
  cairn::v1::PlanRequest r;
  r.set_model_name("llama-tiny");
  r.set_cluster_name("cpu");
  r.mutable_search()->set_global_batch_size(global_batch);
  r.mutable_search()->set_seq_len(256);
  return r;
}

cairn::v1::PlanRequest SlowPlanRequest() {
  cairn::v1::PlanRequest r;
  r.set_model_name("llama2-70b");
  r.set_cluster_name("h100-sxm");
  r.set_num_nodes(8);
  r.mutable_search()->mutable_batch_range()->set_min(128);
  r.mutable_search()->mutable_batch_range()->set_max(1024);
  r.mutable_search()->mutable_batch_range()->set_step(128);
  r.mutable_search()->set_seq_len(4096);
  return r;
}

}  // namespace cairn::testing
