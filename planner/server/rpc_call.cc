#include "planner/server/rpc_call.h"

#include <string>

#include "common/logging.h"

namespace cairn::planner {

grpc::Status ToGrpcStatus(const absl::Status& status) {
  if (status.ok()) return grpc::Status::OK;
  // absl::StatusCode and grpc::StatusCode share their numbering.
  return grpc::Status(static_cast<grpc::StatusCode>(status.code()), std::string(status.message()));
}

RpcCall::RpcCall(const ServiceEnv& env, grpc::CallbackServerContext* ctx, const char* method)
    : env_(env), ctx_(ctx), method_(method), start_(std::chrono::steady_clock::now()) {}

absl::Status RpcCall::Authorize() const {
  if (!env_.auth->enabled()) return absl::OkStatus();
  const auto& md = ctx_->client_metadata();
  auto it = md.find("authorization");
  std::optional<absl::string_view> value;
  if (it != md.end()) value = absl::string_view(it->second.data(), it->second.size());
  return env_.auth->Check(method_, value);
}

grpc::Status RpcCall::Finish(const absl::Status& status) const {
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  const std::string code = absl::StatusCodeToString(status.code());
  env_.metrics->RecordRpc(method_, code, seconds);
  CAIRN_LOG(DEBUG) << method_ << " " << code << " " << seconds * 1e3 << " ms from "
                   << ctx_->peer() << (status.ok() ? "" : ": ") << status.message();
  return ToGrpcStatus(status);
}

void AsyncUnaryReactor::SetCancelHook(std::function<void()> cancel) {
  bool run_now;
  {
    absl::MutexLock lock(&mu_);
    run_now = cancelled_;
    if (!run_now) cancel_ = cancel;
  }
  if (run_now && cancel) cancel();
}

void AsyncUnaryReactor::OnCancel() {
  std::function<void()> cancel;
  {
    absl::MutexLock lock(&mu_);
    cancelled_ = true;
    cancel = std::move(cancel_);
  }
  if (cancel) cancel();
}

}  // namespace cairn::planner
