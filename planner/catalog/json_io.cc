#include "planner/catalog/json_io.h"

#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "google/protobuf/util/json_util.h"

namespace cairn::planner {

absl::StatusOr<std::string> ReadTextFile(const std::string& path) {
  struct stat info;
  if (stat(path.c_str(), &info) != 0) {
    if (errno == ENOENT || errno == ENOTDIR) {
      return absl::NotFoundError(absl::StrCat(path, ": no such file"));
    }
    return absl::FailedPreconditionError(absl::StrCat(path, ": ", std::strerror(errno)));
  }
  if (S_ISDIR(info.st_mode)) {
    return absl::FailedPreconditionError(absl::StrCat(path, ": is a directory, not a file"));
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    return absl::FailedPreconditionError(absl::StrCat(path, ": cannot be opened for reading"));
  }
  std::ostringstream text;
  text << in.rdbuf();
  if (in.bad()) {
    return absl::FailedPreconditionError(absl::StrCat(path, ": read error"));
  }
  return text.str();
}

absl::Status WriteTextFile(const std::string& path, absl::string_view text) {
  struct stat info;
  if (stat(path.c_str(), &info) == 0 && S_ISDIR(info.st_mode)) {
    return absl::FailedPreconditionError(absl::StrCat("cannot write ", path, ": is a directory"));
  }
  errno = 0;
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  if (!out) {
    return absl::FailedPreconditionError(absl::StrCat(
        "cannot write ", path, ": ", errno != 0 ? std::strerror(errno) : "cannot be opened"));
  }
  out.write(text.data(), static_cast<std::streamsize>(text.size()));
  out.close();
  if (!out) return absl::DataLossError(absl::StrCat("writing ", path, " failed"));
  return absl::OkStatus();
}

absl::Status CheckWritableFile(const std::string& path) {
  auto refuse = [&](const char* reason) {
    return absl::FailedPreconditionError(absl::StrCat("cannot write ", path, ": ", reason));
  };
  struct stat info;
  if (stat(path.c_str(), &info) == 0) {
    if (S_ISDIR(info.st_mode)) return refuse("is a directory");
    if (access(path.c_str(), W_OK) != 0) return refuse(std::strerror(errno));
    return absl::OkStatus();
  }
  const size_t slash = path.find_last_of('/');
  const std::string folder =
      slash == std::string::npos ? "." : (slash == 0 ? "/" : path.substr(0, slash));
  if (access(folder.c_str(), W_OK) != 0) return refuse(std::strerror(errno));
  return absl::OkStatus();
}

absl::Status ParseProtoJson(absl::string_view json, absl::string_view what,
                            google::protobuf::Message* message) {
  message->Clear();
  google::protobuf::util::JsonParseOptions options;
  options.ignore_unknown_fields = false;
  const auto status = google::protobuf::util::JsonStringToMessage(
      google::protobuf::StringPiece(json.data(), json.size()), message, options);
  if (!status.ok()) {
    return absl::InvalidArgumentError(absl::StrCat(what, ": not valid ",
                                                   message->GetDescriptor()->full_name(),
                                                   " JSON: ", status.message().ToString()));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::string> ProtoToJson(const google::protobuf::Message& message) {
  google::protobuf::util::JsonPrintOptions options;
  options.add_whitespace = true;
  options.preserve_proto_field_names = true;
  std::string out;
  const auto status = google::protobuf::util::MessageToJsonString(message, &out, options);
  if (!status.ok()) {
    return absl::InternalError(absl::StrCat("cannot serialise ",
                                            message.GetDescriptor()->full_name(),
                                            " to JSON: ", status.message().ToString()));
  }
  return out;
}

}  // namespace cairn::planner
