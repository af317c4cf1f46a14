// runtime/comm/file_store.h — a rendezvous Store kept as files in a directory.
//
// Every rank opens a FileStore on the same directory (local launch: a fresh temporary directory made by
// the launcher; several hosts: a directory on a shared file system). Each key is one file, written
// under a temporary name and renamed into place, so a reader sees a whole value or none. Waiting
// readers poll the directory (every millisecond at first, backing off to 20 ms).
//
//   CAIRN_ASSIGN_OR_RETURN(std::unique_ptr<FileStore> store, FileStore::Open("/tmp/job-1234"));
//   CAIRN_RETURN_IF_ERROR(store->Set("world/join/0", "1"));
//
// Use a fresh directory per job: files left by an earlier job would satisfy this job's waits.
// Thread-safe; several processes may share one directory.
#ifndef CAIRN_RUNTIME_COMM_FILE_STORE_H_
#define CAIRN_RUNTIME_COMM_FILE_STORE_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "runtime/comm/store.h"

namespace cairn::runtime {

class FileStore final : public Store {
 public:
  // Opens (creating it and its parents if missing) the directory `path`.
  // Errors: InvalidArgument for an empty path; Unavailable when it cannot be created or is not a
  // writable directory.
  static absl::StatusOr<std::unique_ptr<FileStore>> Open(const std::string& path);

  absl::Status Set(absl::string_view key, absl::string_view value) override;
  absl::StatusOr<std::string> Get(absl::string_view key, absl::Duration timeout) override;
  absl::Status Wait(const std::vector<std::string>& keys, absl::Duration timeout) override;

  const std::string& path() const { return path_; }

 private:
  explicit FileStore(std::string path) : path_(std::move(path)) {}
  // The file holding `key`: every byte outside [A-Za-z0-9._-] is written as %XX, so any key is one
  // file name.
  std::string KeyPath(absl::string_view key) const;
  // The value if the key's file exists; NotFound if not; Unavailable on an I/O error.
  absl::StatusOr<std::string> TryRead(absl::string_view key) const;

  const std::string path_;
};

}  // namespace cairn::runtime

#endif  // CAIRN_RUNTIME_COMM_FILE_STORE_H_
