// planner/catalog/json_io.h — reading files and proto3 JSON at the edges of the catalog.
//
// Every loader in planner/catalog turns a file into a message through these two calls, so that a
// missing file, a directory, or malformed JSON gives the same kind of error everywhere, always
// naming the file:
//
//   CAIRN_ASSIGN_OR_RETURN(std::string text, ReadTextFile(path));
//   cairn::v1::ModelSpec spec;
//   CAIRN_RETURN_IF_ERROR(ParseProtoJson(text, path, &spec));
//
// Thread-safe (no shared state).
#ifndef CAIRN_PLANNER_CATALOG_JSON_IO_H_
#define CAIRN_PLANNER_CATALOG_JSON_IO_H_

#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "google/protobuf/message.h"

namespace cairn::planner {

// Reads the whole file at `path`.
// Errors: NotFound when nothing exists at `path`; FailedPrecondition when it is a directory or
// cannot be read. Messages name the path.
absl::StatusOr<std::string> ReadTextFile(const std::string& path);

// Writes `text` to `path`, replacing the file. Errors: FailedPrecondition "cannot write PATH:
// REASON" when it cannot be created or opened (missing folder, permissions, a directory); DataLoss
// when writing or closing fails (disk full).
absl::Status WriteTextFile(const std::string& path, absl::string_view text);

// Whether WriteTextFile(path, ...) can create or replace `path`, checked without touching it (its
// folder exists and is writable; the file, if it exists, is a writable regular file), so a command
// refuses a bad output path before long work instead of after it. The same FailedPrecondition
// "cannot write PATH: REASON" as WriteTextFile.
absl::Status CheckWritableFile(const std::string& path);

// Parses proto3 JSON into `message` (cleared first). Field names may be the proto names
// (snake_case) or lowerCamelCase; enums may be names or numbers. Unknown fields are rejected, so a
// misspelt field is an error rather than silently dropped.
// Errors: InvalidArgument "<what>: not valid <message type> JSON: <parser detail>", where `what`
// is usually the file name.
absl::Status ParseProtoJson(absl::string_view json, absl::string_view what,
                            google::protobuf::Message* message);

// Serialises `message` as indented proto3 JSON with the proto (snake_case) field names, the form the
// loaders read back. Errors: Internal (serialisation of a valid message does not fail in practice).
absl::StatusOr<std::string> ProtoToJson(const google::protobuf::Message& message);

}  // namespace cairn::planner

#endif  // CAIRN_PLANNER_CATALOG_JSON_IO_H_
