#include "runtime/data/token_shards.h"

#include <dirent.h>

#include <algorithm>
#include <cstring>
#include <fstream>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

namespace cairn::runtime {
namespace {

struct Header {
  char magic[8];
  uint32_t version;
  uint32_t bytes_per_token;
  uint64_t count;
  uint64_t reserved;
};
static_assert(sizeof(Header) == 32, "shard header is 32 bytes");

// SplitMix64: a counter-based hash, so positions depend only on (seed, step, sample).
uint64_t Mix(uint64_t x) {
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

}  // namespace

absl::Status WriteShard(const std::string& path, const std::vector<uint32_t>& tokens,
                        int bytes_per_token) {
  if (bytes_per_token != 2 && bytes_per_token != 4) {
    return absl::InvalidArgumentError(
        absl::StrCat("bytes per token must be 2 or 4, got ", bytes_per_token));
  }
  Header h{};
  std::memcpy(h.magic, kShardMagic, 8);
  h.version = kShardVersion;
  h.bytes_per_token = bytes_per_token;
  h.count = tokens.size();
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  if (!f) return absl::FailedPreconditionError(absl::StrCat("cannot create ", path));
  f.write(reinterpret_cast<const char*>(&h), sizeof(h));
  if (bytes_per_token == 2) {
    std::vector<uint16_t> narrow(tokens.size());
    for (size_t i = 0; i < tokens.size(); ++i) {
      if (tokens[i] > 0xffff) {
        return absl::InvalidArgumentError(absl::StrCat(
            path, ": token ", tokens[i], " at ", i, " does not fit 2 bytes; use 4-byte tokens"));
      }
      narrow[i] = static_cast<uint16_t>(tokens[i]);
    }
    f.write(reinterpret_cast<const char*>(narrow.data()), narrow.size() * 2);
  } else {
    f.write(reinterpret_cast<const char*>(tokens.data()), tokens.size() * 4);
  }
  f.close();
  if (!f) return absl::DataLossError(absl::StrCat("writing ", path, " failed"));
  return absl::OkStatus();
}

absl::StatusOr<std::vector<uint32_t>> ReadShard(const std::string& path) {
  std::ifstream f(path, std::ios::binary | std::ios::ate);
  if (!f) return absl::NotFoundError(absl::StrCat("cannot open ", path));
  const int64_t size = f.tellg();
  f.seekg(0);
  Header h{};
  if (size < static_cast<int64_t>(sizeof(h)) || !f.read(reinterpret_cast<char*>(&h), sizeof(h)) ||
      std::memcmp(h.magic, kShardMagic, 8) != 0) {
    return absl::InvalidArgumentError(absl::StrCat(path, " is not a Cairn token shard"));
  }
  if (h.version != kShardVersion) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, ": shard version ", h.version, ", this Cairn reads ", kShardVersion));
  }
  // The count is compared by division: count x bytes_per_token wraps for a count near 2^63 (a
  // 32-byte file claiming 2^63 tokens once passed and made the vector below throw length_error).
  const uint64_t data_bytes = static_cast<uint64_t>(size) - sizeof(h);
  if ((h.bytes_per_token != 2 && h.bytes_per_token != 4) ||
      data_bytes % h.bytes_per_token != 0 || h.count != data_bytes / h.bytes_per_token) {
    return absl::InvalidArgumentError(absl::StrCat(
        path, ": header says ", h.count, " tokens of ", h.bytes_per_token,
        " bytes but the file has ", size - static_cast<int64_t>(sizeof(h)), " bytes of data"));
  }
  std::vector<uint32_t> tokens(h.count);
  if (h.bytes_per_token == 2) {
    std::vector<uint16_t> narrow(h.count);
    f.read(reinterpret_cast<char*>(narrow.data()), h.count * 2);
    std::copy(narrow.begin(), narrow.end(), tokens.begin());
  } else {
    f.read(reinterpret_cast<char*>(tokens.data()), h.count * 4);
  }
  if (!f) return absl::DataLossError(absl::StrCat("reading ", path, " failed"));
  return tokens;
}

absl::StatusOr<TokenDataset> TokenDataset::Open(const std::string& dir, const std::string& split) {
  DIR* d = opendir(dir.c_str());
  if (!d) return absl::NotFoundError(absl::StrCat("cannot open data directory ", dir));
  std::vector<std::string> names;
  while (dirent* e = readdir(d)) {
    const std::string name = e->d_name;
    if (absl::StartsWith(name, split + "_") && absl::EndsWith(name, ".bin")) names.push_back(name);
  }
  closedir(d);
  std::sort(names.begin(), names.end());
  if (names.empty()) {
    return absl::NotFoundError(absl::StrCat("no ", split, "_*.bin shards in ", dir,
                                            "; create them with cairn-data"));
  }
  TokenDataset ds;
  for (const std::string& name : names) {
    absl::StatusOr<std::vector<uint32_t>> t = ReadShard(dir + "/" + name);
    if (!t.ok()) return t.status();
    ds.tokens_.insert(ds.tokens_.end(), t->begin(), t->end());
  }
  for (uint32_t t : ds.tokens_) ds.max_token_ = std::max(ds.max_token_, t);
  return ds;
}

absl::Status TokenDataset::Sample(uint64_t seed, int64_t step, int64_t sample, int seq_len,
                                  std::vector<int32_t>* inputs,
                                  std::vector<int32_t>* targets) const {
  const int64_t n = num_tokens();
  if (seq_len < 1 || n < seq_len + 1) {
    return absl::FailedPreconditionError(absl::StrCat("the dataset has ", n,
                                                      " tokens; a sample needs seq_len + 1 = ",
                                                      seq_len + 1));
  }
  const uint64_t h = Mix(Mix(Mix(seed) ^ static_cast<uint64_t>(step)) ^ static_cast<uint64_t>(sample));
  const int64_t pos = static_cast<int64_t>(h % static_cast<uint64_t>(n - seq_len));
  inputs->resize(seq_len);
  targets->resize(seq_len);
  for (int i = 0; i < seq_len; ++i) {
    (*inputs)[i] = static_cast<int32_t>(tokens_[pos + i]);
    (*targets)[i] = static_cast<int32_t>(tokens_[pos + i + 1]);
  }
  return absl::OkStatus();
}

std::vector<uint32_t> ByteTokens(const std::string& text) {
  std::vector<uint32_t> out(text.size());
  for (size_t i = 0; i < text.size(); ++i) out[i] = static_cast<unsigned char>(text[i]);
  return out;
}

}  // namespace cairn::runtime
