// planner/server/rpc_call.h — what every RPC adapter does the same way: parse and check the request
// bytes, authorize, hand the work to the executor, time, count, log, convert the Status; and the
// reactors for calls that finish later.
//
// The services take their requests as raw bytes (gRPC's "raw callback" methods) and parse them
// here, because gRPC's generated parser answers a malformed message with UNIMPLEMENTED and an empty
// message; ParseRequest answers INVALID_ARGUMENT saying what is wrong (truncated bytes, a string
// that is not UTF-8, which field). Every request then passes ValidateRequestLimits (string sizes)
// before the logic sees it. A service registers its methods in its constructor:
//
//   class JobsService final : public RawCallbackService<cairn::v1::Jobs::Service> {
//     explicit JobsService(const ServiceEnv& env) : RawCallbackService(env) {
//       ServeUnary<GetJobRequest, Job>("cairn.v1.Jobs/GetJob",
//                                      [this](const GetJobRequest& r) { return env_.jobs->Get(r); });
//     }
//   };
//
// Threads: gRPC's callback threads only parse and authorize; the logic (SQLite calls, plan-cache
// lookups, rendezvous reads) runs on the Executor (executor.h), so a slow commit never stalls the
// other calls of a connection. A full executor queue answers RESOURCE_EXHAUSTED.
//
// RpcCall::Authorize checks the bearer token (Authorizer) before anything else runs; Finish
// records cairn_planner_rpcs_total and cairn_planner_rpc_duration_seconds, logs the call at debug
// level (method, code, milliseconds, peer; never metadata), and cuts status messages to
// kMaxStatusMessageBytes (a status travels as HTTP/2 metadata; an 11 KB one made clients fail with
// RESOURCE_EXHAUSTED instead of seeing the real code). UnaryCall finishes when the logic calls
// Complete (at once, or later: search done, rendezvous keys arrived); EventStreamReactor writes
// the events an EventSink receives one at a time, queueing at most a bounded number of them.
#ifndef CAIRN_PLANNER_SERVER_RPC_CALL_H_
#define CAIRN_PLANNER_SERVER_RPC_CALL_H_

#include <atomic>
#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <optional>
#include <string>
#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "google/protobuf/message.h"
#include "grpcpp/grpcpp.h"
#include "grpcpp/impl/codegen/server_callback_handlers.h"
#include "planner/server/auth.h"
#include "planner/server/event_sink.h"
#include "planner/server/executor.h"
#include "planner/server/metrics.h"

namespace cairn::planner {

class AgentsLogic;
class JobsLogic;
class PlannerLogic;
class ProfilesLogic;
class RendezvousLogic;

// Longest status message sent to a client; longer ones are cut (at a UTF-8 boundary) and say how
// much was left out.
inline constexpr size_t kMaxStatusMessageBytes = 1024;

// What the adapters share; owned by Server.
struct ServiceEnv {
  const Authorizer* auth = nullptr;
  Metrics* metrics = nullptr;
  PlannerLogic* planner = nullptr;
  ProfilesLogic* profiles = nullptr;
  AgentsLogic* agents = nullptr;
  JobsLogic* jobs = nullptr;
  RendezvousLogic* rendezvous = nullptr;
  Executor* executor = nullptr;
  // Per stream: events queued for a client that does not read; beyond either the stream ends
  // (RESOURCE_EXHAUSTED; the client watches again and gets the current state first).
  int max_stream_events = 1024;
  int64_t max_stream_bytes = int64_t{4} << 20;
};

// `status` as a grpc::Status, its message cut to kMaxStatusMessageBytes.
grpc::Status ToGrpcStatus(const absl::Status& status);

// Parses `bytes` into `message`. INVALID_ARGUMENT naming the message type and what is wrong
// (malformed or truncated bytes; a string field that is not valid UTF-8, naming the field).
absl::Status ParseRequest(const grpc::ByteBuffer& bytes, google::protobuf::Message* message);
// Serializes `message` into `out` (INTERNAL if it cannot be, which does not happen for valid
// messages).
absl::Status SerializeToByteBuffer(const google::protobuf::Message& message, grpc::ByteBuffer* out);

class RpcCall {
 public:
  RpcCall(const ServiceEnv& env, grpc::CallbackServerContext* ctx, const char* method);
  // The token check; OK when the call may proceed.
  absl::Status Authorize() const;
  // Records and logs the call; returns the status to send.
  grpc::Status Finish(const absl::Status& status) const;
  const char* method() const { return method_; }
  const ServiceEnv& env() const { return env_; }
  grpc::CallbackServerContext* context() const { return ctx_; }

 private:
  const ServiceEnv& env_;
  grpc::CallbackServerContext* ctx_;
  const char* method_;
  std::chrono::steady_clock::time_point start_;
};

// Authorize, ParseRequest and ValidateRequestLimits, in that order (validation.h).
absl::Status BeginCall(const RpcCall& call, const grpc::ByteBuffer* bytes,
                       google::protobuf::Message* request);

// A unary call: owns the parsed request and the response. Complete finishes it, exactly once,
// from any thread. Reference counted: gRPC holds one reference (dropped in OnDone), whoever
// starts the call holds the other (Release) while it may still touch the call, so a call
// completed synchronously inside the logic is not deleted under its starter.
template <typename Request, typename Response>
class UnaryCall final : public grpc::ServerUnaryReactor {
 public:
  UnaryCall(const ServiceEnv& env, grpc::CallbackServerContext* ctx, const char* method,
            grpc::ByteBuffer* response_bytes)
      : call_(env, ctx, method), response_bytes_(response_bytes) {}

  const RpcCall& call() const { return call_; }
  const Request& request() const { return request_; }
  Request* mutable_request() { return &request_; }

  // Serializes the response (when OK) and finishes the call. Exactly once.
  void Complete(absl::StatusOr<Response> result) {
    absl::Status status = result.status();
    if (status.ok()) status = SerializeToByteBuffer(*result, response_bytes_);
    Finish(call_.Finish(status));  // `this` may be gone after this line
  }
  // Runs `cancel` on OnCancel (the client went away or its deadline passed), or now if the call
  // was already cancelled.
  void SetCancelHook(std::function<void()> cancel) {
    bool run_now;
    {
      absl::MutexLock lock(&mu_);
      run_now = cancelled_;
      if (!run_now) cancel_ = cancel;
    }
    if (run_now && cancel) cancel();
  }
  // The starter's reference.
  void Release() { Unref(); }

  void OnCancel() override {
    std::function<void()> cancel;
    {
      absl::MutexLock lock(&mu_);
      cancelled_ = true;
      cancel = std::move(cancel_);
    }
    if (cancel) cancel();
  }
  void OnDone() override { Unref(); }

 private:
  void Unref() {
    if (refs_.fetch_sub(1) == 1) delete this;
  }

  RpcCall call_;
  grpc::ByteBuffer* const response_bytes_;
  Request request_;
  std::atomic<int> refs_{2};
  absl::Mutex mu_;
  bool cancelled_ ABSL_GUARDED_BY(mu_) = false;
  std::function<void()> cancel_ ABSL_GUARDED_BY(mu_);
};

// A server stream fed by the logic through EventSink<T>. Events are serialized as they arrive and
// written in order, one at a time; Close finishes the stream after the queued events. At most
// env.max_stream_events events or env.max_stream_bytes bytes wait for a slow client: beyond that
// the queue is dropped (its memory freed) and the stream ends with RESOURCE_EXHAUSTED (the call is
// cancelled if a write is stuck on a client that stopped reading). Reference counted like
// UnaryCall; the stream does not finish before Registered() (so the logic's registration, which
// runs on the executor, never races with the reactor's deletion).
template <typename T>
class EventStreamReactor final : public grpc::ServerWriteReactor<grpc::ByteBuffer>,
                                 public EventSink<T> {
 public:
  explicit EventStreamReactor(RpcCall call) : call_(std::move(call)) {}
  const RpcCall& call() const { return call_; }

  // Called on OnCancel and OnDone (must be idempotent): removes the sink from the logic.
  void SetUnwatch(std::function<void()> unwatch) {
    absl::MutexLock lock(&mu_);
    unwatch_ = std::move(unwatch);
  }
  // True once the stream is over (cancelled, dropped, or closed): registering it is pointless.
  bool Closing() {
    absl::MutexLock lock(&mu_);
    return close_.has_value() || finished_;
  }
  // The registration is over (it succeeded or `status` says why not); the stream may finish.
  void Registered(const absl::Status& status) {
    mu_.Lock();
    registered_ = true;
    if (!status.ok() && !close_) close_ = status;
    StartNextAndUnlock();
  }
  void Release() { Unref(); }

  void Send(const T& event) override {
    grpc::ByteBuffer bytes;
    const absl::Status s = SerializeToByteBuffer(event, &bytes);
    mu_.Lock();
    if (finished_ || close_) {
      mu_.Unlock();
      return;
    }
    if (!s.ok()) {
      close_ = s;
    } else if (static_cast<int>(pending_.size()) >= call_.env().max_stream_events ||
               pending_bytes_ + static_cast<int64_t>(bytes.Length()) >
                   call_.env().max_stream_bytes) {
      close_ = absl::ResourceExhaustedError(absl::StrCat(
          "the client reads too slowly: ", pending_.size(), " events (", pending_bytes_,
          " bytes) were waiting to be sent; the stream is dropped, watch again"));
      std::deque<grpc::ByteBuffer>().swap(pending_);
      pending_bytes_ = 0;
      if (writing_) cancel_stuck_write_ = true;
    } else {
      pending_bytes_ += static_cast<int64_t>(bytes.Length());
      pending_.push_back(std::move(bytes));
    }
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
    current_.Clear();
    if (!ok) {
      // The client is gone: drop what is queued and finish.
      std::deque<grpc::ByteBuffer>().swap(pending_);
      pending_bytes_ = 0;
      if (!close_) close_ = absl::CancelledError("the client went away");
    }
    StartNextAndUnlock();
  }
  void OnCancel() override {
    Unwatch();
    mu_.Lock();
    std::deque<grpc::ByteBuffer>().swap(pending_);
    pending_bytes_ = 0;
    if (!close_) close_ = absl::CancelledError("the client cancelled the stream");
    StartNextAndUnlock();
  }
  void OnDone() override {
    Unwatch();
    Unref();
  }

 private:
  void Unref() {
    if (refs_.fetch_sub(1) == 1) delete this;
  }
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
    if (cancel_stuck_write_) {
      // A write the client never acknowledges would hold the stream open forever.
      cancel_stuck_write_ = false;
      mu_.Unlock();
      call_.context()->TryCancel();
      return;
    }
    if (writing_ || finished_) {
      mu_.Unlock();
      return;
    }
    if (!pending_.empty()) {
      current_ = std::move(pending_.front());
      pending_.pop_front();
      pending_bytes_ -= static_cast<int64_t>(current_.Length());
      writing_ = true;
      mu_.Unlock();
      this->StartWrite(&current_);
      return;
    }
    if (close_ && registered_) {
      finished_ = true;
      const absl::Status status = *close_;
      mu_.Unlock();
      this->Finish(call_.Finish(status));
      return;
    }
    mu_.Unlock();
  }

  RpcCall call_;
  std::atomic<int> refs_{2};
  absl::Mutex mu_;
  std::deque<grpc::ByteBuffer> pending_ ABSL_GUARDED_BY(mu_);
  int64_t pending_bytes_ ABSL_GUARDED_BY(mu_) = 0;  // of the queued events
  grpc::ByteBuffer current_;  // the message being written; touched only while writing_ is false
  bool writing_ ABSL_GUARDED_BY(mu_) = false;
  bool finished_ ABSL_GUARDED_BY(mu_) = false;
  bool registered_ ABSL_GUARDED_BY(mu_) = false;
  bool cancel_stuck_write_ ABSL_GUARDED_BY(mu_) = false;
  std::optional<absl::Status> close_ ABSL_GUARDED_BY(mu_);
  std::function<void()> unwatch_ ABSL_GUARDED_BY(mu_);
};

// The index of `method` ("cairn.v1.Jobs/GetJob") in its service, from the generated descriptors.
int MethodIndex(const char* method);

// Base of the five services: registers raw callback handlers for the generated Service's methods.
template <typename GeneratedService>
class RawCallbackService : public GeneratedService {
 protected:
  explicit RawCallbackService(const ServiceEnv& env) : env_(env) {}

  // `logic(const Request&)` returns absl::StatusOr<Response>; it runs on the executor.
  template <typename Request, typename Response, typename Logic>
  void ServeUnary(const char* method, Logic logic) {
    ServeAsync<Request, Response>(method, [logic](UnaryCall<Request, Response>* call) {
      call->Complete(logic(call->request()));
    });
  }

  // `start(UnaryCall<Request, Response>*)` runs on the executor and must make sure Complete is
  // called exactly once (now, or later from any thread).
  template <typename Request, typename Response, typename Start>
  void ServeAsync(const char* method, Start start) {
    const ServiceEnv* env = &env_;
    this->MarkMethodRawCallback(
        MethodIndex(method),
        new grpc::internal::CallbackUnaryHandler<grpc::ByteBuffer, grpc::ByteBuffer>(
            [env, method, start](grpc::CallbackServerContext* ctx, const grpc::ByteBuffer* bytes,
                                 grpc::ByteBuffer* response) -> grpc::ServerUnaryReactor* {
              auto* call = new UnaryCall<Request, Response>(*env, ctx, method, response);
              if (absl::Status s = BeginCall(call->call(), bytes, call->mutable_request());
                  !s.ok()) {
                call->Complete(s);
                call->Release();
                return call;
              }
              absl::Status queued = env->executor->Submit([call, start] {
                start(call);
                call->Release();
              });
              if (!queued.ok()) {
                call->Complete(queued);
                call->Release();
              }
              return call;
            }));
  }

  // A server stream of Events: `watch(const Request&, EventSink<Event>*)` returns
  // absl::StatusOr<WatchId> and runs on the executor; `unwatch(WatchId)` removes the sink.
  template <typename Request, typename Event, typename Watch, typename Unwatch>
  void ServeStream(const char* method, Watch watch, Unwatch unwatch) {
    const ServiceEnv* env = &env_;
    this->MarkMethodRawCallback(
        MethodIndex(method),
        new grpc::internal::CallbackServerStreamingHandler<grpc::ByteBuffer, grpc::ByteBuffer>(
            [env, method, watch, unwatch](grpc::CallbackServerContext* ctx,
                                          const grpc::ByteBuffer* bytes)
                -> grpc::ServerWriteReactor<grpc::ByteBuffer>* {
              auto* reactor = new EventStreamReactor<Event>(RpcCall(*env, ctx, method));
              auto request = std::make_shared<Request>();
              if (absl::Status s = BeginCall(reactor->call(), bytes, request.get()); !s.ok()) {
                reactor->Registered(s);
                reactor->Release();
                return reactor;
              }
              absl::Status queued = env->executor->Submit([reactor, request, watch, unwatch] {
                if (reactor->Closing()) {
                  reactor->Registered(absl::OkStatus());
                  reactor->Release();
                  return;
                }
                absl::StatusOr<WatchId> id = watch(*request, reactor);
                if (id.ok()) {
                  const WatchId watch_id = *id;
                  reactor->SetUnwatch([unwatch, watch_id] { unwatch(watch_id); });
                  // Cancelled while registering: OnCancel found no unwatch hook yet.
                  if (reactor->Closing()) unwatch(watch_id);
                }
                reactor->Registered(id.status());
                reactor->Release();
              });
              if (!queued.ok()) {
                reactor->Registered(queued);
                reactor->Release();
              }
              return reactor;
            }));
  }

  const ServiceEnv& env_;
};

}  // namespace cairn::planner

#endif  // CAIRN_PLANNER_SERVER_RPC_CALL_H_
