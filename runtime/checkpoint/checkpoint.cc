#include "runtime/checkpoint/checkpoint.h"

#include <dirent.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <map>
#include <memory>
#include <set>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"

namespace cairn::runtime {
namespace {

constexpr char kMagic[8] = {'C', 'A', 'I', 'R', 'N', 'C', 'K', 'P'};
constexpr uint32_t kRankFileVersion = 2;
constexpr int kFormatVersion = 2;
constexpr char kManifest[] = "MANIFEST";
constexpr char kLatest[] = "latest";
constexpr size_t kMaxNameBytes = 4096;
constexpr size_t kMaxManifestBytes = 1 << 20;

std::string Errno() { return std::strerror(errno); }

// Incremental SHA-256 (OpenSSL).
class Sha256 {
 public:
  Sha256() : ctx_(EVP_MD_CTX_new(), EVP_MD_CTX_free) {
    EVP_DigestInit_ex(ctx_.get(), EVP_sha256(), nullptr);
  }
  void Update(absl::string_view bytes) { EVP_DigestUpdate(ctx_.get(), bytes.data(), bytes.size()); }
  std::string Hex() {
    unsigned char digest[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    EVP_DigestFinal_ex(ctx_.get(), digest, &len);
    std::string out;
    for (unsigned int i = 0; i < len; ++i) absl::StrAppendFormat(&out, "%02x", digest[i]);
    return out;
  }

 private:
  std::unique_ptr<EVP_MD_CTX, void (*)(EVP_MD_CTX*)> ctx_;
};

std::string Sha256Hex(absl::string_view bytes) {
  Sha256 h;
  h.Update(bytes);
  return h.Hex();
}

// mkdir -p.
absl::Status MakeDirs(const std::string& dir) {
  std::string path;
  for (absl::string_view part : absl::StrSplit(dir, '/')) {
    path += std::string(part) + "/";
    if (part.empty()) continue;
    if (mkdir(path.c_str(), 0755) != 0 && errno != EEXIST) {
      return absl::FailedPreconditionError(
          absl::StrCat("cannot create directory ", path, ": ", Errno()));
    }
  }
  return absl::OkStatus();
}

absl::Status SyncDirectory(const std::string& dir) {
  const int fd = open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return absl::DataLossError(absl::StrCat("cannot open ", dir, " to sync it: ", Errno()));
  const int rc = fsync(fd);
  close(fd);
  if (rc != 0) return absl::DataLossError(absl::StrCat("fsync of ", dir, " failed: ", Errno()));
  return absl::OkStatus();
}

// Writes `path` through a temporary name: chunks, fsync, rename, fsync of the directory. The
// SHA-256 and size of what was written are kept.
class DurableFile {
 public:
  static absl::StatusOr<std::unique_ptr<DurableFile>> Create(const std::string& dir,
                                                             const std::string& name) {
    std::unique_ptr<DurableFile> f(new DurableFile(dir, name));
    f->fd_ = open(f->tmp_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (f->fd_ < 0) {
      return absl::FailedPreconditionError(absl::StrCat("cannot write ", f->tmp_, ": ", Errno()));
    }
    return f;
  }
  ~DurableFile() {
    if (fd_ >= 0) {
      close(fd_);
      unlink(tmp_.c_str());
    }
  }
  absl::Status Write(absl::string_view bytes) {
    hash_.Update(bytes);
    bytes_ += static_cast<int64_t>(bytes.size());
    while (!bytes.empty()) {
      const ssize_t n = write(fd_, bytes.data(), bytes.size());
      if (n < 0) {
        if (errno == EINTR) continue;
        return absl::DataLossError(absl::StrCat("writing ", tmp_, " failed: ", Errno()));
      }
      bytes.remove_prefix(static_cast<size_t>(n));
    }
    return absl::OkStatus();
  }
  // fsync, rename into place, fsync the directory.
  absl::Status Commit() {
    if (fsync(fd_) != 0) {
      return absl::DataLossError(absl::StrCat("fsync of ", tmp_, " failed: ", Errno()));
    }
    const int rc = close(fd_);
    fd_ = -1;
    if (rc != 0) return absl::DataLossError(absl::StrCat("closing ", tmp_, " failed: ", Errno()));
    if (std::rename(tmp_.c_str(), path_.c_str()) != 0) {
      return absl::DataLossError(absl::StrCat("cannot rename ", tmp_, " to ", path_, ": ", Errno()));
    }
    return SyncDirectory(dir_);
  }
  std::string Sha256HexDigest() { return hash_.Hex(); }
  int64_t bytes() const { return bytes_; }

 private:
  DurableFile(const std::string& dir, const std::string& name)
      : dir_(dir), path_(dir + "/" + name), tmp_(path_ + ".tmp") {}
  const std::string dir_, path_, tmp_;
  int fd_ = -1;
  Sha256 hash_;
  int64_t bytes_ = 0;
};

absl::Status WriteWholeFile(const std::string& dir, const std::string& name,
                            absl::string_view bytes) {
  auto f = DurableFile::Create(dir, name);
  if (!f.ok()) return f.status();
  if (absl::Status s = (*f)->Write(bytes); !s.ok()) return s;
  return (*f)->Commit();
}

// Reads a whole file of at most `max_bytes` (NotFound if absent).
absl::StatusOr<std::string> ReadWholeFile(const std::string& path, int64_t max_bytes) {
  const int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    if (errno == ENOENT) return absl::NotFoundError(absl::StrCat(path, " does not exist"));
    return absl::FailedPreconditionError(absl::StrCat("cannot read ", path, ": ", Errno()));
  }
  struct stat st;
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    close(fd);
    return absl::DataLossError(absl::StrCat(path, " is not a regular file"));
  }
  if (st.st_size > max_bytes) {
    close(fd);
    return absl::DataLossError(
        absl::StrCat(path, " has ", st.st_size, " bytes, expected at most ", max_bytes));
  }
  std::string out(static_cast<size_t>(st.st_size), '\0');
  size_t done = 0;
  while (done < out.size()) {
    const ssize_t n = read(fd, out.data() + done, out.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      close(fd);
      return absl::DataLossError(absl::StrCat("reading ", path, " failed after ", done, " bytes"));
    }
    done += static_cast<size_t>(n);
  }
  close(fd);
  return out;
}

bool Exists(const std::string& path) {
  struct stat st;
  return stat(path.c_str(), &st) == 0;
}

std::string RankFileName(int rank) { return absl::StrFormat("rank_%05d.bin", rank); }

// "rank_00012.bin" -> 12; -1 for any other name.
int RankOf(absl::string_view name) {
  if (!absl::ConsumePrefix(&name, "rank_") || !absl::ConsumeSuffix(&name, ".bin") ||
      name.size() != 5) {
    return -1;
  }
  for (char c : name) {
    if (!absl::ascii_isdigit(c)) return -1;
  }
  int r = 0;
  return absl::SimpleAtoi(name, &r) ? r : -1;
}

// "step_00000009" -> 9; -1 for any other name.
int64_t StepOf(absl::string_view name) {
  if (!absl::ConsumePrefix(&name, "step_") || name.size() != 8) return -1;
  for (char c : name) {
    if (!absl::ascii_isdigit(c)) return -1;
  }
  int64_t s = 0;
  return absl::SimpleAtoi(name, &s) ? s : -1;
}

std::vector<std::string> ListDirectory(const std::string& dir) {
  std::vector<std::string> out;
  DIR* d = opendir(dir.c_str());
  if (d == nullptr) return out;
  while (dirent* e = readdir(d)) {
    const std::string n = e->d_name;
    if (n != "." && n != "..") out.push_back(n);
  }
  closedir(d);
  std::sort(out.begin(), out.end());
  return out;
}

// Removes a step directory (flat: files only) and everything in it.
void RemoveStepDirectory(const std::string& dir) {
  for (const std::string& n : ListDirectory(dir)) unlink((dir + "/" + n).c_str());
  rmdir(dir.c_str());
}

std::string OneLine(absl::string_view s) {
  std::string out(s);
  std::replace_if(out.begin(), out.end(), [](char c) { return c == '\n' || c == '\r'; }, ' ');
  return out;
}

bool IsHex64(absl::string_view s) {
  if (s.size() != 64) return false;
  for (char c : s) {
    if (!absl::ascii_isdigit(c) && !(c >= 'a' && c <= 'f')) return false;
  }
  return true;
}

template <typename T>
void PutRaw(std::string* out, const T& v) {
  out->append(reinterpret_cast<const char*>(&v), sizeof(T));
}

template <typename T>
bool GetRaw(absl::string_view* in, T* v) {
  if (in->size() < sizeof(T)) return false;
  std::memcpy(v, in->data(), sizeof(T));
  in->remove_prefix(sizeof(T));
  return true;
}

}  // namespace

std::string StepDirectory(const std::string& root, int64_t step) {
  return absl::StrFormat("%s/step_%08d", root, step);
}

absl::Status WriteRankFile(const std::string& dir, int rank, const TensorRecords& records) {
  if (rank < 0 || rank > 99999) {
    return absl::InvalidArgumentError(absl::StrCat("rank ", rank, " out of range"));
  }
  if (absl::Status s = MakeDirs(dir); !s.ok()) return s;
  const std::string name = RankFileName(rank);
  auto f = DurableFile::Create(dir, name);
  if (!f.ok()) return f.status();
  std::string header(kMagic, 8);
  PutRaw(&header, kRankFileVersion);
  if (absl::Status s = (*f)->Write(header); !s.ok()) return s;
  for (const TensorRecord& r : records) {
    if (r.name.size() > kMaxNameBytes || r.indices.size() != r.values.size()) {
      return absl::InvalidArgumentError(absl::StrCat("record ", r.name.substr(0, 64),
                                                     ": name too long or indices/values differ"));
    }
    std::string head;
    PutRaw(&head, static_cast<uint32_t>(r.name.size()));
    head += r.name;
    PutRaw(&head, static_cast<uint8_t>(r.kind));
    PutRaw(&head, static_cast<uint64_t>(r.values.size()));
    if (absl::Status s = (*f)->Write(head); !s.ok()) return s;
    if (absl::Status s = (*f)->Write(absl::string_view(
            reinterpret_cast<const char*>(r.indices.data()), r.indices.size() * sizeof(int64_t)));
        !s.ok()) {
      return s;
    }
    if (absl::Status s = (*f)->Write(absl::string_view(
            reinterpret_cast<const char*>(r.values.data()), r.values.size() * sizeof(float)));
        !s.ok()) {
      return s;
    }
  }
  const std::string digest = (*f)->Sha256HexDigest();
  if (absl::Status s = (*f)->Commit(); !s.ok()) return s;
  // `sha256sum -c rank_00000.bin.sha256` checks the file by hand.
  return WriteWholeFile(dir, name + ".sha256", absl::StrCat(digest, "  ", name, "\n"));
}

absl::Status WriteMeta(const std::string& dir, const CheckpointMeta& meta) {
  if (meta.world_size < 1 || meta.world_size > 99999) {
    return absl::InvalidArgumentError(absl::StrCat("world size ", meta.world_size, " out of range"));
  }
  std::string text = absl::StrCat("cairn-checkpoint ", kFormatVersion, "\nstep ", meta.step,
                                  "\nmodel ", OneLine(meta.model), "\nworld_size ",
                                  meta.world_size, "\nplan ", OneLine(meta.plan), "\n");
  for (int r = 0; r < meta.world_size; ++r) {
    const std::string name = RankFileName(r);
    struct stat st;
    if (stat((dir + "/" + name).c_str(), &st) != 0) {
      return absl::FailedPreconditionError(absl::StrCat(
          "cannot commit ", dir, ": rank ", r, "'s file ", name, " is missing (", Errno(), ")"));
    }
    absl::StatusOr<std::string> sum = ReadWholeFile(dir + "/" + name + ".sha256", 4096);
    if (!sum.ok() || sum->size() < 64 || !IsHex64(sum->substr(0, 64))) {
      return absl::FailedPreconditionError(
          absl::StrCat("cannot commit ", dir, ": ", name, ".sha256 is missing or damaged"));
    }
    absl::StrAppend(&text, "file ", name, " ", static_cast<int64_t>(st.st_size), " ",
                    sum->substr(0, 64), "\n");
  }
  absl::StrAppend(&text, "sha256 ", Sha256Hex(text), "\n");
  // Rank files of another world size (an earlier attempt at this step) are not part of it.
  for (const std::string& n : ListDirectory(dir)) {
    absl::string_view base = n;
    absl::ConsumeSuffix(&base, ".sha256");
    const int r = RankOf(base);
    if (r >= meta.world_size) unlink((dir + "/" + n).c_str());
  }
  return WriteWholeFile(dir, kManifest, text);
}

absl::Status CommitCheckpoint(const std::string& root, const CheckpointMeta& meta, int keep_last) {
  const std::string dir = StepDirectory(root, meta.step);
  if (absl::Status s = WriteMeta(dir, meta); !s.ok()) return s;
  const std::string step_name = dir.substr(root.size() + 1);
  if (absl::Status s = WriteWholeFile(root, kLatest, step_name + "\n"); !s.ok()) return s;
  // Prune: committed steps beyond the newest keep_last, and crashed (uncommitted) saves older than
  // the step just committed. Newer uncommitted directories may be another writer's save.
  std::vector<std::pair<int64_t, std::string>> committed;
  for (const std::string& n : ListDirectory(root)) {
    const int64_t s = StepOf(n);
    if (s < 0 || n == step_name) continue;
    const std::string path = root + "/" + n;
    if (Exists(path + "/" + kManifest)) {
      committed.emplace_back(s, path);
    } else if (s < meta.step) {
      RemoveStepDirectory(path);
    }
  }
  if (keep_last > 0) {
    std::sort(committed.rbegin(), committed.rend());  // newest first
    for (size_t i = static_cast<size_t>(keep_last) - 1; i < committed.size(); ++i) {
      if (committed[i].first < meta.step) RemoveStepDirectory(committed[i].second);
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<Manifest> ParseManifest(absl::string_view text, const std::string& name) {
  auto damaged = [&](absl::string_view why) {
    return absl::DataLossError(absl::StrCat(name, " is damaged: ", why));
  };
  if (!absl::StartsWith(text, "cairn-checkpoint ")) return damaged("not a Cairn checkpoint manifest");
  // The last line checksums every byte before it.
  absl::string_view body = text;
  if (!absl::ConsumeSuffix(&body, "\n")) return damaged("it does not end with a newline");
  const size_t last = body.rfind('\n');
  if (last == absl::string_view::npos) return damaged("it has a single line");
  absl::string_view sum_line = body.substr(last + 1);
  const absl::string_view covered = text.substr(0, last + 1);
  if (!absl::ConsumePrefix(&sum_line, "sha256 ") || !IsHex64(sum_line)) {
    return damaged("its last line is not its checksum (an interrupted write?)");
  }
  if (Sha256Hex(covered) != sum_line) return damaged("its checksum does not match its contents");
  Manifest m;
  m.meta.format_version = -1;
  m.meta.world_size = -1;
  bool have_step = false;
  std::set<int> ranks;
  for (absl::string_view line : absl::StrSplit(covered, '\n', absl::SkipEmpty())) {
    const size_t sp = line.find(' ');
    const absl::string_view key = line.substr(0, sp);
    const absl::string_view value = sp == absl::string_view::npos ? "" : line.substr(sp + 1);
    if (key == "cairn-checkpoint") {
      if (!absl::SimpleAtoi(value, &m.meta.format_version)) return damaged("bad format version");
    } else if (key == "step") {
      if (!absl::SimpleAtoi(value, &m.meta.step) || m.meta.step < 0) return damaged("bad step");
      have_step = true;
    } else if (key == "model") {
      m.meta.model = std::string(value);
    } else if (key == "plan") {
      m.meta.plan = std::string(value);
    } else if (key == "world_size") {
      if (!absl::SimpleAtoi(value, &m.meta.world_size) || m.meta.world_size < 1 ||
          m.meta.world_size > 99999) {
        return damaged("bad world_size");
      }
    } else if (key == "file") {
      std::vector<absl::string_view> parts = absl::StrSplit(value, ' ');
      ManifestEntry e;
      if (parts.size() != 3 || RankOf(parts[0]) < 0 || !absl::SimpleAtoi(parts[1], &e.bytes) ||
          e.bytes < 0 || !IsHex64(parts[2])) {
        return damaged(absl::StrCat("bad file line '", line.substr(0, 120), "'"));
      }
      if (!ranks.insert(RankOf(parts[0])).second) return damaged("a rank file is listed twice");
      e.file = std::string(parts[0]);
      e.sha256 = std::string(parts[2]);
      m.files.push_back(std::move(e));
    } else {
      return damaged(absl::StrCat("unknown line '", line.substr(0, 120), "'"));
    }
  }
  if (m.meta.format_version != kFormatVersion) {
    return absl::FailedPreconditionError(absl::StrCat(name, ": checkpoint format ",
                                                      m.meta.format_version, "; this Cairn reads ",
                                                      kFormatVersion));
  }
  if (!have_step || m.meta.world_size < 1) return damaged("step or world_size missing");
  if (static_cast<int>(m.files.size()) != m.meta.world_size ||
      (!ranks.empty() && *ranks.rbegin() != m.meta.world_size - 1)) {
    return damaged(absl::StrCat("it lists ", m.files.size(), " rank files for world size ",
                                m.meta.world_size));
  }
  return m;
}

absl::Status ParseRankFile(absl::string_view bytes, const std::string& name, Checkpoint* out) {
  char magic[8];
  uint32_t version = 0;
  if (bytes.size() < 12) return absl::DataLossError(absl::StrCat(name, " is truncated (no header)"));
  std::memcpy(magic, bytes.data(), 8);
  bytes.remove_prefix(8);
  GetRaw(&bytes, &version);
  if (std::memcmp(magic, kMagic, 8) != 0) {
    return absl::DataLossError(absl::StrCat(name, " is not a Cairn checkpoint file"));
  }
  if (version != kRankFileVersion) {
    return absl::FailedPreconditionError(absl::StrCat(name, ": rank file version ", version,
                                                      ", this Cairn reads ", kRankFileVersion));
  }
  while (!bytes.empty()) {
    uint32_t len = 0;
    uint8_t kind = 0;
    uint64_t count = 0;
    if (!GetRaw(&bytes, &len) || len > kMaxNameBytes || len > bytes.size()) {
      return absl::DataLossError(absl::StrCat(name, ": corrupt record (name length)"));
    }
    const std::string tensor(bytes.substr(0, len));
    bytes.remove_prefix(len);
    if (!GetRaw(&bytes, &kind) || kind > 2 || !GetRaw(&bytes, &count)) {
      return absl::DataLossError(absl::StrCat(name, ": corrupt record ", tensor.substr(0, 64)));
    }
    // Compared by division: count x 12 could wrap.
    if (count > bytes.size() / (sizeof(int64_t) + sizeof(float))) {
      return absl::DataLossError(absl::StrCat(name, ": truncated record ", tensor.substr(0, 64),
                                              " (", count, " values claimed)"));
    }
    const size_t n = static_cast<size_t>(count);
    const char* idx = bytes.data();
    const char* val = bytes.data() + n * sizeof(int64_t);
    auto& target = kind == 0 ? out->values : (kind == 1 ? out->adam_m : out->adam_v);
    auto& t = target[tensor];
    t.reserve(t.size() + n);
    for (size_t i = 0; i < n; ++i) {
      int64_t index;
      float value;
      std::memcpy(&index, idx + i * sizeof(int64_t), sizeof(int64_t));
      std::memcpy(&value, val + i * sizeof(float), sizeof(float));
      t[index] = value;
    }
    bytes.remove_prefix(n * (sizeof(int64_t) + sizeof(float)));
  }
  return absl::OkStatus();
}

absl::StatusOr<Checkpoint> ReadCheckpoint(const std::string& dir) {
  std::string step_dir = dir;
  if (Exists(dir + "/" + kLatest)) {
    absl::StatusOr<std::string> latest = ReadWholeFile(dir + "/" + kLatest, 256);
    if (!latest.ok()) return latest.status();
    const std::string target(absl::StripAsciiWhitespace(*latest));
    if (StepOf(target) < 0) {
      return absl::DataLossError(
          absl::StrCat(dir, "/latest is damaged: it names '", target.substr(0, 64),
                       "', not a step directory"));
    }
    step_dir = dir + "/" + target;
    if (!Exists(step_dir + "/" + kManifest)) {
      return absl::DataLossError(absl::StrCat(dir, "/latest names ", target, ", which has no ",
                                              kManifest, " (it was removed or never committed)"));
    }
  } else if (!Exists(dir + "/" + kManifest)) {
    return absl::NotFoundError(absl::StrCat(
        "no checkpoint in ", dir, ": no latest pointer and no MANIFEST (the directory is absent, "
        "or no save finished; checkpoints of older cairn-train versions, with a meta.txt and no "
        "checksums, are not read)"));
  }
  const std::string manifest_path = step_dir + "/" + kManifest;
  absl::StatusOr<std::string> text = ReadWholeFile(manifest_path, kMaxManifestBytes);
  if (!text.ok()) return text.status();
  absl::StatusOr<Manifest> manifest = ParseManifest(*text, manifest_path);
  if (!manifest.ok()) return manifest.status();
  const size_t slash = step_dir.rfind('/');
  const int64_t named_step = StepOf(slash == std::string::npos ? step_dir : step_dir.substr(slash + 1));
  if (named_step >= 0 && named_step != manifest->meta.step) {
    return absl::DataLossError(absl::StrCat(manifest_path, " says step ", manifest->meta.step,
                                            " but lies in the directory of step ", named_step));
  }
  Checkpoint ck;
  ck.meta = manifest->meta;
  for (const ManifestEntry& e : manifest->files) {
    const std::string path = step_dir + "/" + e.file;
    absl::StatusOr<std::string> bytes = ReadWholeFile(path, e.bytes);
    if (!bytes.ok()) {
      return absl::DataLossError(absl::StrCat(path, ": ", bytes.status().message(),
                                              " (the checkpoint lists it with ", e.bytes,
                                              " bytes)"));
    }
    if (static_cast<int64_t>(bytes->size()) != e.bytes) {
      return absl::DataLossError(absl::StrCat(path, " has ", bytes->size(),
                                              " bytes; the checkpoint lists ", e.bytes));
    }
    const std::string sum = Sha256Hex(*bytes);
    if (sum != e.sha256) {
      return absl::DataLossError(absl::StrCat(
          path, " is damaged: its SHA-256 is ", sum, ", the checkpoint lists ", e.sha256,
          "; restore the file, or resume from another step directory"));
    }
    if (absl::Status s = ParseRankFile(*bytes, path, &ck); !s.ok()) return s;
  }
  return ck;
}

}  // namespace cairn::runtime
