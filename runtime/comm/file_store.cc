#include "runtime/comm/file_store.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/hash.h"
#include "absl/strings/str_join.h"
#include "common/status_macros.h"

namespace cairn::runtime {
namespace {

// Longest file name we produce; file systems allow 255 bytes.
constexpr size_t kMaxFileName = 200;

std::string ErrnoText(int error) { return std::strerror(error); }

absl::Status MakeDirectories(const std::string& path) {
  std::string prefix;
  for (size_t pos = 0; pos != std::string::npos;) {
    const size_t next = path.find('/', pos + 1);
    prefix = path.substr(0, next);
    pos = next;
    if (prefix.empty() || prefix == "/") continue;
    if (mkdir(prefix.c_str(), 0755) != 0 && errno != EEXIST) {
      return absl::UnavailableError(
          absl::StrCat("file store: cannot create directory '", prefix, "': ", ErrnoText(errno)));
    }
  }
  struct stat info;
  if (stat(path.c_str(), &info) != 0 || !S_ISDIR(info.st_mode)) {
    return absl::UnavailableError(absl::StrCat("file store: '", path, "' is not a directory"));
  }
  if (access(path.c_str(), W_OK | X_OK) != 0) {
    return absl::UnavailableError(
        absl::StrCat("file store: directory '", path, "' is not writable: ", ErrnoText(errno)));
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<std::unique_ptr<FileStore>> FileStore::Open(const std::string& path) {
  if (path.empty()) return absl::InvalidArgumentError("file store: empty directory path");
  CAIRN_RETURN_IF_ERROR(MakeDirectories(path));
  return std::unique_ptr<FileStore>(new FileStore(path));
}

std::string FileStore::KeyPath(absl::string_view key) const {
  std::string name;
  name.reserve(key.size());
  for (unsigned char c : key) {
    if (std::isalnum(c) || c == '.' || c == '_' || c == '-') {
      name.push_back(static_cast<char>(c));
    } else {
      absl::StrAppendFormat(&name, "%%%02X", c);
    }
  }
  if (name.size() > kMaxFileName) {
    // Keep a readable head and make the name unique with a hash of the whole key.
    name = absl::StrFormat("%s~%016x", name.substr(0, kMaxFileName - 17),
                           ::cairn::Fnv1a64(key));
  }
  return absl::StrCat(path_, "/", name);
}

absl::StatusOr<std::string> FileStore::TryRead(absl::string_view key) const {
  const std::string file = KeyPath(key);
  std::ifstream in(file, std::ios::binary);
  if (!in) {
    if (errno == ENOENT || access(file.c_str(), F_OK) != 0) {
      return absl::NotFoundError(absl::StrCat("key '", key, "' is not set"));
    }
    return absl::UnavailableError(
        absl::StrCat("file store: cannot read '", file, "': ", ErrnoText(errno)));
  }
  std::ostringstream value;
  value << in.rdbuf();
  return value.str();
}

absl::Status FileStore::Set(absl::string_view key, absl::string_view value) {
  if (key.empty()) return absl::InvalidArgumentError("file store: empty key");
  static std::atomic<uint64_t> counter{0};
  const std::string file = KeyPath(key);
  // A unique temporary name per writer (process, thread, call), renamed into place atomically.
  const std::string tmp = absl::StrFormat("%s.tmp.%d.%x.%d", file, getpid(),
                                          std::hash<std::thread::id>()(std::this_thread::get_id()),
                                          counter.fetch_add(1));
  const int fd = open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) {
    return absl::UnavailableError(
        absl::StrCat("file store: cannot create '", tmp, "': ", ErrnoText(errno)));
  }
  size_t written = 0;
  while (written < value.size()) {
    const ssize_t n = write(fd, value.data() + written, value.size() - written);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      const int error = errno;
      close(fd);
      unlink(tmp.c_str());
      return absl::UnavailableError(
          absl::StrCat("file store: cannot write '", tmp, "': ", ErrnoText(error)));
    }
    written += static_cast<size_t>(n);
  }
  close(fd);
  if (rename(tmp.c_str(), file.c_str()) != 0) {
    const int error = errno;
    unlink(tmp.c_str());
    return absl::UnavailableError(
        absl::StrCat("file store: cannot rename '", tmp, "' to '", file, "': ", ErrnoText(error)));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::string> FileStore::Get(absl::string_view key, absl::Duration timeout) {
  if (key.empty()) return absl::InvalidArgumentError("file store: empty key");
  const absl::Time deadline = absl::Now() + timeout;
  absl::Duration pause = absl::Milliseconds(1);
  while (true) {
    absl::StatusOr<std::string> value = TryRead(key);
    if (value.ok() || !absl::IsNotFound(value.status())) return value;
    const absl::Time now = absl::Now();
    if (now >= deadline) {
      return absl::DeadlineExceededError(absl::StrCat("file store '", path_, "': key '", key,
                                                      "' was not set within ",
                                                      absl::FormatDuration(timeout)));
    }
    absl::SleepFor(std::min(pause, deadline - now));
    pause = std::min(pause * 2, absl::Milliseconds(20));
  }
}

absl::Status FileStore::Wait(const std::vector<std::string>& keys, absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  absl::Duration pause = absl::Milliseconds(1);
  while (true) {
    std::vector<std::string> missing;
    for (const std::string& key : keys) {
      absl::StatusOr<std::string> value = TryRead(key);
      if (value.ok()) continue;
      if (!absl::IsNotFound(value.status())) return value.status();
      missing.push_back(key);
    }
    if (missing.empty()) return absl::OkStatus();
    const absl::Time now = absl::Now();
    if (now >= deadline) {
      return absl::DeadlineExceededError(absl::StrCat(
          "file store '", path_, "': keys not set within ", absl::FormatDuration(timeout), ": ",
          absl::StrJoin(missing, ", ")));
    }
    absl::SleepFor(std::min(pause, deadline - now));
    pause = std::min(pause * 2, absl::Milliseconds(20));
  }
}

}  // namespace cairn::runtime
