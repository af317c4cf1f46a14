#include "runtime/checkpoint/checkpoint.h"

#include <dirent.h>
#include <sys/stat.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace cairn::runtime {
namespace {

constexpr char kMagic[8] = {'C', 'A', 'I', 'R', 'N', 'C', 'K', 'P'};
constexpr uint32_t kVersion = 1;

template <typename T>
void Put(std::ofstream& f, const T& v) {
  f.write(reinterpret_cast<const char*>(&v), sizeof(T));
}

template <typename T>
bool Get(std::ifstream& f, T* v) {
  return static_cast<bool>(f.read(reinterpret_cast<char*>(v), sizeof(T)));
}

// mkdir -p.
absl::Status MakeDirs(const std::string& dir) {
  std::string path;
  for (absl::string_view part : absl::StrSplit(dir, '/')) {
    path += std::string(part) + "/";
    if (part.empty()) continue;
    if (mkdir(path.c_str(), 0755) != 0 && errno != EEXIST) {
      return absl::FailedPreconditionError(absl::StrCat("cannot create directory ", path, ": ",
                                                        std::strerror(errno)));
    }
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status WriteRankFile(const std::string& dir, int rank, const TensorRecords& records) {
  if (absl::Status s = MakeDirs(dir); !s.ok()) return s;
  const std::string path = absl::StrCat(dir, "/rank_", rank, ".bin");
  const std::string tmp = path + ".tmp";
  std::ofstream f(tmp, std::ios::binary | std::ios::trunc);
  if (!f) return absl::FailedPreconditionError(absl::StrCat("cannot write ", tmp));
  f.write(kMagic, 8);
  Put(f, kVersion);
  for (const TensorRecord& r : records) {
    Put(f, static_cast<uint32_t>(r.name.size()));
    f.write(r.name.data(), r.name.size());
    Put(f, static_cast<uint8_t>(r.kind));
    Put(f, static_cast<uint64_t>(r.values.size()));
    f.write(reinterpret_cast<const char*>(r.indices.data()), r.indices.size() * sizeof(int64_t));
    f.write(reinterpret_cast<const char*>(r.values.data()), r.values.size() * sizeof(float));
  }
  f.close();
  if (!f) return absl::DataLossError(absl::StrCat("writing ", tmp, " failed"));
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    return absl::DataLossError(absl::StrCat("cannot rename ", tmp, " to ", path));
  }
  return absl::OkStatus();
}

absl::Status WriteMeta(const std::string& dir, const CheckpointMeta& meta) {
  const std::string path = dir + "/meta.txt";
  const std::string tmp = path + ".tmp";
  std::ofstream f(tmp, std::ios::trunc);
  if (!f) return absl::FailedPreconditionError(absl::StrCat("cannot write ", tmp));
  f << "format_version=" << meta.format_version << "\nstep=" << meta.step
    << "\nmodel=" << meta.model << "\nworld_size=" << meta.world_size << "\n";
  f.close();
  if (!f || std::rename(tmp.c_str(), path.c_str()) != 0) {
    return absl::DataLossError(absl::StrCat("writing ", path, " failed"));
  }
  return absl::OkStatus();
}

absl::StatusOr<Checkpoint> ReadCheckpoint(const std::string& dir) {
  Checkpoint ck;
  {
    std::ifstream meta(dir + "/meta.txt");
    if (!meta) {
      return absl::NotFoundError(absl::StrCat(
          "no checkpoint in ", dir, " (meta.txt missing: the directory is absent or the save that "
          "wrote it did not finish)"));
    }
    std::string line;
    while (std::getline(meta, line)) {
      std::vector<std::string> kv = absl::StrSplit(line, absl::MaxSplits('=', 1));
      if (kv.size() != 2) continue;
      if (kv[0] == "step" && !absl::SimpleAtoi(kv[1], &ck.meta.step)) {
        return absl::InvalidArgumentError(absl::StrCat(dir, "/meta.txt: bad step"));
      }
      if (kv[0] == "model") ck.meta.model = kv[1];
      if (kv[0] == "world_size") (void)absl::SimpleAtoi(kv[1], &ck.meta.world_size);
      if (kv[0] == "format_version") (void)absl::SimpleAtoi(kv[1], &ck.meta.format_version);
    }
    if (ck.meta.format_version != 1) {
      return absl::FailedPreconditionError(absl::StrCat(
          dir, ": checkpoint format ", ck.meta.format_version, "; this Cairn reads format 1"));
    }
  }
  DIR* d = opendir(dir.c_str());
  if (!d) return absl::NotFoundError(absl::StrCat("cannot open ", dir));
  std::vector<std::string> files;
  while (dirent* e = readdir(d)) {
    const std::string n = e->d_name;
    if (absl::StartsWith(n, "rank_") && absl::EndsWith(n, ".bin")) files.push_back(dir + "/" + n);
  }
  closedir(d);
  if (files.empty()) return absl::InvalidArgumentError(absl::StrCat(dir, " has no rank files"));
  for (const std::string& path : files) {
    std::ifstream f(path, std::ios::binary);
    char magic[8];
    uint32_t version = 0;
    if (!f.read(magic, 8) || std::memcmp(magic, kMagic, 8) != 0 || !Get(f, &version) ||
        version != kVersion) {
      return absl::InvalidArgumentError(absl::StrCat(path, " is not a Cairn checkpoint file"));
    }
    while (true) {
      uint32_t len;
      if (!Get(f, &len)) break;  // end of file
      std::string name(len, '\0');
      uint8_t kind;
      uint64_t count;
      if (len > 4096 || !f.read(name.data(), len) || !Get(f, &kind) || !Get(f, &count) ||
          kind > 2 || count > (uint64_t{1} << 40)) {
        return absl::InvalidArgumentError(absl::StrCat(path, ": corrupt record"));
      }
      std::vector<int64_t> idx(count);
      std::vector<float> val(count);
      if (!f.read(reinterpret_cast<char*>(idx.data()), count * sizeof(int64_t)) ||
          !f.read(reinterpret_cast<char*>(val.data()), count * sizeof(float))) {
        return absl::InvalidArgumentError(absl::StrCat(path, ": truncated record ", name));
      }
      auto& target = kind == 0 ? ck.values : (kind == 1 ? ck.adam_m : ck.adam_v);
      auto& t = target[name];
      for (uint64_t i = 0; i < count; ++i) t.emplace(idx[i], val[i]);
    }
  }
  return ck;
}

}  // namespace cairn::runtime
