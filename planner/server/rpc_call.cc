#include "planner/server/rpc_call.h"

#include <mutex>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "common/logging.h"
#include "common/status_macros.h"
#include "google/protobuf/descriptor.h"
#include "google/protobuf/stubs/logging.h"
#include "google/protobuf/unknown_field_set.h"
#include "planner/server/validation.h"

namespace cairn::planner {
namespace {

// Protobuf reports why a parse failed (e.g. which string field is not UTF-8) only to its log
// handler. While ParseRequest runs, the handler keeps the last message for the thread instead.
thread_local std::string* parse_log = nullptr;

void ProtobufLogHandler(google::protobuf::LogLevel level, const char* filename, int line,
                        const std::string& message) {
  if (parse_log != nullptr) {
    *parse_log = message;
    return;
  }
  CAIRN_LOG(WARNING) << "protobuf (" << filename << ":" << line << ", level " << level
                     << "): " << message;
}

void InstallProtobufLogHandler() {
  static std::once_flag once;
  std::call_once(once, [] { google::protobuf::SetLogHandler(&ProtobufLogHandler); });
}

// The longest prefix of `s` of at most `max` bytes that does not end inside a UTF-8 sequence.
size_t Utf8Prefix(const std::string& s, size_t max) {
  if (s.size() <= max) return s.size();
  size_t n = max;
  while (n > 0 && (static_cast<unsigned char>(s[n]) & 0xC0) == 0x80) --n;
  return n;
}

}  // namespace

grpc::Status ToGrpcStatus(const absl::Status& status) {
  if (status.ok()) return grpc::Status::OK;
  std::string message(status.message());
  if (message.size() > kMaxStatusMessageBytes) {
    const size_t keep = Utf8Prefix(message, kMaxStatusMessageBytes - 40);
    message = absl::StrCat(message.substr(0, keep), "... (", message.size() - keep,
                           " more bytes left out)");
  }
  // absl::StatusCode and grpc::StatusCode share their numbering.
  return grpc::Status(static_cast<grpc::StatusCode>(status.code()), message);
}

absl::Status ParseRequest(const grpc::ByteBuffer& bytes, google::protobuf::Message* message) {
  InstallProtobufLogHandler();
  std::vector<grpc::Slice> slices;
  if (!bytes.Dump(&slices).ok()) {
    return absl::InvalidArgumentError("the request could not be read (compressed or broken frame)");
  }
  std::string data;
  data.reserve(bytes.Length());
  for (const grpc::Slice& s : slices) {
    data.append(reinterpret_cast<const char*>(s.begin()), s.size());
  }
  std::string why;
  parse_log = &why;
  const bool ok = message->ParseFromString(data);
  parse_log = nullptr;
  if (ok) return absl::OkStatus();
  const std::string type = message->GetDescriptor()->full_name();
  message->Clear();
  // The wire format alone parses: the bytes are well formed, a field's content is not.
  google::protobuf::UnknownFieldSet wire;
  if (wire.ParseFromString(data)) {
    if (why.find("UTF-8") != std::string::npos) {
      const size_t q1 = why.find('\'');
      const size_t q2 = q1 == std::string::npos ? q1 : why.find('\'', q1 + 1);
      const std::string field =
          q2 == std::string::npos ? "a string field" : why.substr(q1 + 1, q2 - q1 - 1);
      return absl::InvalidArgumentError(absl::StrCat(
          "the request is not a valid ", type, ": ", field,
          " is not valid UTF-8 (string fields must be UTF-8 text)"));
    }
    return absl::InvalidArgumentError(absl::StrCat(
        "the request is not a valid ", type, ": a field has content of the wrong kind",
        why.empty() ? "" : absl::StrCat(" (", why, ")")));
  }
  return absl::InvalidArgumentError(
      absl::StrCat("the request is not a valid ", type, ": its ", data.size(),
                   " bytes are not well-formed protobuf (truncated, or not a ", type, " at all)"));
}

absl::Status SerializeToByteBuffer(const google::protobuf::Message& message,
                                   grpc::ByteBuffer* out) {
  std::string bytes;
  if (!message.SerializeToString(&bytes)) {
    return absl::InternalError(
        absl::StrCat("cannot serialize the ", message.GetDescriptor()->full_name(), " response"));
  }
  grpc::Slice slice(std::move(bytes));
  *out = grpc::ByteBuffer(&slice, 1);
  return absl::OkStatus();
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
  const grpc::Status out = ToGrpcStatus(status);
  CAIRN_LOG(DEBUG) << method_ << " " << code << " " << seconds * 1e3 << " ms from "
                   << ctx_->peer() << (status.ok() ? "" : ": ") << out.error_message();
  return out;
}

absl::Status BeginCall(const RpcCall& call, const grpc::ByteBuffer* bytes,
                       google::protobuf::Message* request) {
  CAIRN_RETURN_IF_ERROR(call.Authorize());
  if (bytes == nullptr) return absl::InvalidArgumentError("the request has no message");
  CAIRN_RETURN_IF_ERROR(ParseRequest(*bytes, request));
  return ValidateRequestLimits(*request);
}

int MethodIndex(const char* method) {
  const std::string dotted = absl::StrReplaceAll(method, {{"/", "."}});
  const google::protobuf::MethodDescriptor* m =
      google::protobuf::DescriptorPool::generated_pool()->FindMethodByName(dotted);
  CAIRN_CHECK(m != nullptr) << "no method " << method << " in the generated descriptors";
  return m->index();
}

}  // namespace cairn::planner
