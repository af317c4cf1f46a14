// planner/server/server.h — the cairn-planner daemon: builds the logic classes on a Store, serves
// them over gRPC (with health checking and reflection) and the metrics over HTTP.
//
//   ServerOptions options;                 // every default is in server_options.h
//   options.listen_address = "127.0.0.1:0";
//   CAIRN_ASSIGN_OR_RETURN(std::unique_ptr<Store> store, OpenSqliteStore(path));
//   CAIRN_ASSIGN_OR_RETURN(std::unique_ptr<Server> server,
//                          Server::BuildAndStart(options, std::move(store)));
//   std::cout << "listening on port " << server->port() << "\n";
//   ...
//   server->Shutdown();                    // e.g. on SIGTERM
//
// Shutdown, in order: health turns NOT_SERVING; searches are cancelled (their callers get
// UNAVAILABLE) and the workers joined; every stream and rendezvous wait is closed with
// UNAVAILABLE; the gRPC server stops accepting and gives in-flight unary calls
// `shutdown_grace` to finish (then cancels them); the worker threads finish what is queued; the
// sweeper, timers and metrics endpoint stop; the store is closed (SQLite flushes its WAL).
// Thread-safe; Shutdown is idempotent.
#ifndef CAIRN_PLANNER_SERVER_SERVER_H_
#define CAIRN_PLANNER_SERVER_SERVER_H_

#include <memory>

#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "grpcpp/grpcpp.h"
#include "planner/server/agents_logic.h"
#include "planner/server/auth.h"
#include "planner/server/executor.h"
#include "planner/server/jobs_logic.h"
#include "planner/server/metrics.h"
#include "planner/server/planner_logic.h"
#include "planner/server/profiles_logic.h"
#include "planner/server/rendezvous_logic.h"
#include "planner/server/server_options.h"
#include "planner/server/service_impl.h"
#include "planner/server/timer_thread.h"
#include "planner/store/store.h"

namespace prometheus {
class Exposer;
}  // namespace prometheus

namespace cairn::planner {

class Server {
 public:
  // Errors: INVALID_ARGUMENT for inconsistent options (the message names the flag);
  // NOT_FOUND / FAILED_PRECONDITION for unreadable TLS or token files; UNAVAILABLE when an address
  // cannot be bound; the store's errors while loading agents and jobs.
  static absl::StatusOr<std::unique_ptr<Server>> BuildAndStart(const ServerOptions& options,
                                                               std::unique_ptr<Store> store);
  ~Server();  // Shutdown()
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  int port() const { return port_; }
  int metrics_port() const { return metrics_port_; }  // 0 when metrics are off

  void Shutdown();
  // Blocks until Shutdown has finished.
  void Wait() { shutdown_done_.WaitForNotification(); }

  // For tests: drive the sweeper by hand, read metrics, see the queue.
  AgentsLogic* agents() { return agents_.get(); }
  PlannerLogic* planner() { return planner_.get(); }
  Metrics* metrics() { return metrics_.get(); }
  Executor* executor() { return executor_.get(); }

 private:
  Server() = default;

  ServerOptions options_;
  int port_ = 0;
  int metrics_port_ = 0;
  // Destroyed bottom-up: the gRPC server before the services, the services before the logic, the
  // logic before the store and metrics.
  std::unique_ptr<Metrics> metrics_;
  std::unique_ptr<Store> store_;
  std::unique_ptr<TimerThread> timers_;
  std::unique_ptr<Executor> executor_;
  Authorizer auth_;
  std::unique_ptr<PlannerLogic> planner_;
  std::unique_ptr<ProfilesLogic> profiles_;
  std::unique_ptr<AgentsLogic> agents_;
  std::unique_ptr<JobsLogic> jobs_;
  std::unique_ptr<RendezvousLogic> rendezvous_;
  ServiceEnv env_;
  std::unique_ptr<PlannerService> planner_service_;
  std::unique_ptr<ProfilesService> profiles_service_;
  std::unique_ptr<AgentsService> agents_service_;
  std::unique_ptr<JobsService> jobs_service_;
  std::unique_ptr<RendezvousService> rendezvous_service_;
  std::unique_ptr<grpc::Server> grpc_server_;
  std::unique_ptr<prometheus::Exposer> exposer_;

  absl::Mutex mu_;
  bool shutting_down_ ABSL_GUARDED_BY(mu_) = false;
  absl::Notification shutdown_done_;
};

}  // namespace cairn::planner

#endif  // CAIRN_PLANNER_SERVER_SERVER_H_
