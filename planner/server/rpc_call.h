// planner/server/rpc_call.h — what every RPC adapter does the same way: authorize, time, count,
// log, convert the Status; and the reactors for calls that finish later.
//
//   grpc::ServerUnaryReactor* GetJob(grpc::CallbackServerContext* ctx, const GetJobRequest* req,
//                                    Job* resp) override {
//     return RunUnary(env_, ctx, "cairn.v1.Jobs/GetJob", resp, [&] { return env_.jobs->Get(*req); });
//   }
//
// RpcCall::Start checks the bearer token (Authorizer) before anything else runs; Finish records
// cairn_planner_rpcs_total and cairn_planner_rpc_duration_seconds and logs the call at debug level
// (method, code, milliseconds, peer; never metadata). The reactors never block: AsyncUnaryReactor
// finishes when the logic calls back (search done, rendezvous keys arrived), EventStreamReactor
// writes the events an EventSink receives one at a time, queueing the rest.
#ifndef CAIRN_PLANNER_SERVER_RPC_CALL_H_
#define CAIRN_PLANNER_SERVER_RPC_CALL_H_

#include <chrono>
#include <deque>
#include <functional>
#include <optional>
#include <string>
#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "grpcpp/grpcpp.h"
#include "planner/server/auth.h"
#include "planner/server/event_sink.h"
#include "planner/server/metrics.h"

namespace cairn::planner {

class AgentsLogic;
class JobsLogic;
class PlannerLogic;
class ProfilesLogic;
class RendezvousLogic;

// What the adapters share; owned by Server.
struct ServiceEnv {
  const Authorizer* auth = nullptr;
  Metrics* metrics = nullptr;
  PlannerLogic* planner = nullptr;
  ProfilesLogic* profiles = nullptr;
  AgentsLogic* agents = nullptr;
  JobsLogic* jobs = nullptr;
  RendezvousLogic* rendezvous = nullptr;
};

grpc::Status ToGrpcStatus(const absl::Status& status);

class RpcCall {
 public:
  RpcCall(const ServiceEnv& env, grpc::CallbackServerContext* ctx, const char* method);
  // The token check; OK when the call may proceed.
  absl::Status Authorize() const;
  // Records and logs the call; returns the status to send.
  grpc::Status Finish(const absl::Status& status) const;
  const char* method() const { return method_; }

 private:
  const ServiceEnv& env_;
  grpc::CallbackServerContext* ctx_;
  const char* method_;
  std::chrono::steady_clock::time_point start_;
};

// A unary call answered on the calling thread.
template <typename Response, typename Fn>
grpc::ServerUnaryReactor* RunUnary(const ServiceEnv& env, grpc::CallbackServerContext* ctx,
                                   const char* method, Response* response, Fn&& fn) {
  RpcCall call(env, ctx, method);
  grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
  absl::Status status = call.Authorize();
  if (status.ok()) {
    absl::StatusOr<Response> r = fn();
    status = r.status();
    if (r.ok()) *response = *std::move(r);
  }
  reactor->Finish(call.Finish(status));
  return reactor;
}

// A unary call answered later, from any thread; OnCancel runs the cancel hook (the client went
// away or its deadline passed). Deletes itself when gRPC is done with it.
class AsyncUnaryReactor final : public grpc::ServerUnaryReactor {
 public:
  explicit AsyncUnaryReactor(RpcCall call) : call_(std::move(call)) {}
  const RpcCall& call() const { return call_; }
  // Runs `cancel` on OnCancel, or now if the call was already cancelled.
  void SetCancelHook(std::function<void()> cancel);
  // Exactly once.
  void Complete(const absl::Status& status) { Finish(call_.Finish(status)); }

  void OnCancel() override;
  void OnDone() override { delete this; }

 private:
  RpcCall call_;
  absl::Mutex mu_;
  bool cancelled_ ABSL_GUARDED_BY(mu_) = false;
  std::function<void()> cancel_ ABSL_GUARDED_BY(mu_);
};

// A server stream fed by the logic through EventSink<T>. Events are written in order, one at a
// time; Close finishes the stream after the queued events. Deletes itself when gRPC is done.
template <typename T>
class EventStreamReactor final : public grpc::ServerWriteReactor<T>, public EventSink<T> {
 public:
  explicit EventStreamReactor(RpcCall call) : call_(std::move(call)) {}
  const RpcCall& call() const { return call_; }
  // Called on OnCancel and OnDone (must be idempotent): removes the sink from the logic.
  void SetUnwatch(std::function<void()> unwatch) {
    absl::MutexLock lock(&mu_);
    unwatch_ = std::move(unwatch);
  }
  // Finishes at once (an error before anything was sent).
  void FinishNow(const absl::Status& status) {
    {
      absl::MutexLock lock(&mu_);
      if (finished_) return;
      finished_ = true;
    }
    this->Finish(call_.Finish(status));
  }

  void Send(const T& event) override {
    mu_.Lock();
    if (finished_ || close_) {
      mu_.Unlock();
      return;
    }
    pending_.push_back(event);
    StartNextAndUnlock();
  }
  void Close(const absl::Status& status) override {
    mu_.Lock();
    if (!close_) close_ = status;
    StartNextAndUnlock();
  }

  void OnWriteDone(bool ok) override {
    mu_.Lock();
    writing_ = false;
    if (!ok) {
      // The client is gone: drop what is queued and finish.
      pending_.clear();
      if (!close_) close_ = absl::CancelledError("the client went away");
    }
    StartNextAndUnlock();
  }
  void OnCancel() override {
    Unwatch();
    mu_.Lock();
    pending_.clear();
    if (!close_) close_ = absl::CancelledError("the client cancelled the stream");
    StartNextAndUnlock();
  }
  void OnDone() override {
    Unwatch();
    delete this;
  }

 private:
  void Unwatch() {
    std::function<void()> unwatch;
    {
      absl::MutexLock lock(&mu_);
      unwatch = unwatch_;
    }
    if (unwatch) unwatch();
  }
  // Starts the next write, or the Finish once nothing is queued; at most one write in flight.
  void StartNextAndUnlock() ABSL_UNLOCK_FUNCTION(mu_) {
    if (writing_ || finished_) {
      mu_.Unlock();
      return;
    }
    if (!pending_.empty()) {
      current_ = std::move(pending_.front());
      pending_.pop_front();
      writing_ = true;
      mu_.Unlock();
      this->StartWrite(&current_);
      return;
    }
    if (close_) {
      finished_ = true;
      const absl::Status status = *close_;
      mu_.Unlock();
      this->Finish(call_.Finish(status));
      return;
    }
    mu_.Unlock();
  }

  RpcCall call_;
  absl::Mutex mu_;
  std::deque<T> pending_ ABSL_GUARDED_BY(mu_);
  T current_;  // the message being written; touched only while writing_ is false
  bool writing_ ABSL_GUARDED_BY(mu_) = false;
  bool finished_ ABSL_GUARDED_BY(mu_) = false;
  std::optional<absl::Status> close_ ABSL_GUARDED_BY(mu_);
  std::function<void()> unwatch_ ABSL_GUARDED_BY(mu_);
};

}  // namespace cairn::planner

#endif  // CAIRN_PLANNER_SERVER_RPC_CALL_H_
