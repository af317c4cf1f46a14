// tests/planner_test_util.h — helpers for the planner daemon's service tests: a real Server on
// 127.0.0.1 port 0 with a SQLite file under TEST_TMPDIR, client contexts with deadlines, an HTTP
// GET of the metrics endpoint, and a parser of the Prometheus text format.
//
//   ASSERT_OK_AND_ASSIGN(auto server, StartPlanner(TestOptions(), TempDb("plan")));
//   auto planner = cairn::v1::Planner::NewStub(Connect(server->port()));
//   auto ctx = Context();                        // 60 s deadline
//   std::map<std::string, double> m = ScrapeMetrics(server->metrics_port());
//   EXPECT_EQ(m["cairn_planner_plan_cache_hits_total"], 1);
#ifndef CAIRN_TESTS_PLANNER_TEST_UTIL_H_
#define CAIRN_TESTS_PLANNER_TEST_UTIL_H_

#include <map>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "grpcpp/grpcpp.h"
#include "planner/server/server.h"
#include "proto/cairn/v1/service.grpc.pb.h"

namespace cairn::testing {

// EXPECT_THAT(stub->Plan(ctx, r, &out), GrpcIs(grpc::StatusCode::NOT_FOUND, "not found"));
MATCHER_P2(GrpcIs, code, substring, "") {
  *result_listener << "status " << arg.error_code() << ": " << arg.error_message();
  return arg.error_code() == code && arg.error_message().find(substring) != std::string::npos;
}

// Polls `condition` every millisecond for at most 30 s: for state the server reaches on its own
// threads (never to wait for wall-clock time to pass). The condition's last value.
template <typename F>
bool Eventually(F condition) {
  const absl::Time deadline = absl::Now() + absl::Seconds(30);
  while (absl::Now() < deadline) {
    if (condition()) return true;
    absl::SleepFor(absl::Milliseconds(1));
  }
  return condition();
}

// A fresh path under TEST_TMPDIR (the file does not exist yet).
std::string TempDb(const std::string& name);
// Writes `text` to a fresh file under TEST_TMPDIR and returns its path.
std::string WriteTempFile(const std::string& name, const std::string& text);
// A file of the source tree (a `data` dependency of the test).
std::string RunfilePath(const std::string& path);

// Loopback, port 0 for gRPC (and for metrics when `metrics`; they are off otherwise because
// prometheus-cpp's HTTP server takes about 2 s to stop when it started moments before), the
// defaults otherwise.
planner::ServerOptions TestOptions(bool metrics = false);
// Opens (or reopens) the SQLite store at `db` and starts a Server on it.
absl::StatusOr<std::unique_ptr<planner::Server>> StartPlanner(const planner::ServerOptions& options,
                                                              const std::string& db);

std::shared_ptr<grpc::Channel> Connect(int port);
// A context with a deadline, and the bearer token when one is given.
std::unique_ptr<grpc::ClientContext> Context(const std::string& token = "",
                                             absl::Duration deadline = absl::Seconds(60));

// GET http://127.0.0.1:port/path over a plain socket; the body of a 200 response.
absl::StatusOr<std::string> HttpGet(int port, const std::string& path);
// Sample lines of the text format: "name{labels}" (as written) -> value. Comments skipped.
std::map<std::string, double> ParsePrometheusText(const std::string& text);
// HttpGet + ParsePrometheusText of /metrics; empty on failure (the test then fails on values).
std::map<std::string, double> ScrapeMetrics(int port);

// llama-tiny on the 4-worker CPU cluster: a search of a few milliseconds.
cairn::v1::PlanRequest TinyPlanRequest(int global_batch = 16);
// llama2-70b on 8 H100 nodes over 8 batch sizes: a search of about 20 s on 2 cores, for tests
// that need one still running (they cancel it or let the time limit stop it).
cairn::v1::PlanRequest SlowPlanRequest();

}  // namespace cairn::testing

#endif  // CAIRN_TESTS_PLANNER_TEST_UTIL_H_
