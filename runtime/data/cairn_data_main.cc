// cairn-data — turns text files into token shards for cairn-train (byte-level tokens, vocab 256).
//
//   cairn-data book.txt notes.txt --output data/ [--val-fraction 0.05] [--shard-tokens 100000000]
//
// Writes data/train_00000.bin ... and data/val_00000.bin (format: runtime/data/token_shards.h) and
// prints what it wrote. Exit status 2 on bad input, 1 on I/O failure.
#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>
#include <sys/stat.h>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_format.h"
#include "common/version.h"
#include "runtime/data/token_shards.h"

namespace {

constexpr const char* kUsage =
    "usage: cairn-data FILE... --output DIR [--val-fraction F (0.05)] "
    "[--shard-tokens N (100000000)] [--help] [--version]\n"
    "Exit status: 0 done, 1 I/O failure, 2 bad input.\n";

int Usage() {
  std::fputs(kUsage, stderr);
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::string> files;
  std::string output;
  double val_fraction = 0.05;
  int64_t shard_tokens = 100000000;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--help" || a == "-h") {
      std::fputs(kUsage, stdout);
      return 0;
    }
    if (a == "--version") {
      std::printf("%s\n", cairn::VersionLine("cairn-data").c_str());
      return 0;
    }
    auto value = [&](const char* name) -> const char* {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "cairn-data: %s needs a value\n", name);
        return nullptr;
      }
      return argv[++i];
    };
    if (a == "--output") {
      const char* v = value("--output");
      if (!v) return 2;
      output = v;
    } else if (a == "--val-fraction") {
      const char* v = value("--val-fraction");
      // Written so that NaN fails too (every comparison with NaN is false).
      if (!v || !absl::SimpleAtod(v, &val_fraction) || !(val_fraction >= 0 && val_fraction < 1)) {
        std::fprintf(stderr, "cairn-data: --val-fraction must be in [0, 1), got %s\n",
                     v ? v : "nothing");
        return 2;
      }
    } else if (a == "--shard-tokens") {
      const char* v = value("--shard-tokens");
      if (!v || !absl::SimpleAtoi(v, &shard_tokens) || shard_tokens < 1) {
        std::fprintf(stderr, "cairn-data: --shard-tokens must be a positive integer\n");
        return 2;
      }
    } else if (a.rfind("--", 0) == 0) {
      std::fprintf(stderr, "cairn-data: unknown flag %s\n", a.c_str());
      return Usage();
    } else {
      files.push_back(a);
    }
  }
  if (files.empty() || output.empty()) return Usage();
  std::string text;
  for (const std::string& f : files) {
    std::ifstream in(f, std::ios::binary);
    if (!in) {
      std::fprintf(stderr, "cairn-data: cannot read %s\n", f.c_str());
      return 2;
    }
    std::stringstream ss;
    ss << in.rdbuf();
    text += ss.str();
  }
  const std::vector<uint32_t> tokens = cairn::runtime::ByteTokens(text);
  if (tokens.size() < 2) {
    std::fprintf(stderr, "cairn-data: the input has %zu bytes; need at least 2\n", tokens.size());
    return 2;
  }
  mkdir(output.c_str(), 0755);
  const size_t val = static_cast<size_t>(tokens.size() * val_fraction);
  const size_t train = tokens.size() - val;
  auto write_split = [&](const char* split, size_t begin, size_t end) -> bool {
    int index = 0;
    for (size_t s = begin; s < end; s += shard_tokens, ++index) {
      const size_t e = std::min(end, s + static_cast<size_t>(shard_tokens));
      std::vector<uint32_t> part(tokens.begin() + s, tokens.begin() + e);
      const std::string path = absl::StrFormat("%s/%s_%05d.bin", output, split, index);
      absl::Status st = cairn::runtime::WriteShard(path, part, 2);
      if (!st.ok()) {
        std::fprintf(stderr, "cairn-data: %s\n", std::string(st.message()).c_str());
        return false;
      }
      std::printf("wrote %s (%zu tokens)\n", path.c_str(), part.size());
    }
    return true;
  };
  if (!write_split("train", 0, train)) return 1;
  if (val > 0 && !write_split("val", train, tokens.size())) return 1;
  std::printf("%zu tokens from %zu file(s): %zu train, %zu validation (byte-level, vocab 256)\n",
              tokens.size(), files.size(), train, val);
  return 0;
}
