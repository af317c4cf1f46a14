// cairn-data — turns text files into token shards for cairn-train (byte-level tokens, vocab 256).
//
//   cairn-data book.txt notes.txt --output data/ [--val-fraction 0.05] [--shard-tokens 100000000]
//
// Writes data/train_00000.bin ... and data/val_00000.bin (format: runtime/data/token_shards.h) and
// prints what it wrote. Exit status 2 on bad input, 1 on I/O failure.
#include <sys/stat.h>

#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "CLI/CLI.hpp"
#include "absl/strings/numbers.h"
#include "absl/strings/str_format.h"
#include "common/cli_app.h"
#include "runtime/data/token_shards.h"

int main(int argc, char** argv) {
  std::unique_ptr<CLI::App> app = cairn::MakeApp(
      "cairn-data",
      "turns text files into token shards for cairn-train (byte-level tokens, vocab 256). Exit "
      "status: 0 done, 1 I/O failure, 2 bad input.");
  cairn::Flags a(app.get());
  a.Positionals("FILE", "text files to tokenize, in order (at least one)")
      .Value("output", "DIR", "where the shards go (required)")
      .Value("val-fraction", "F", "fraction of the tokens held out for validation, in [0, 1)",
             "0.05")
      .Value("shard-tokens", "N", "tokens per shard file", "100000000");
  if (std::optional<int> exit = cairn::ParseCommandLine(*app, argc, argv)) return *exit;
  const std::vector<std::string> files = a.List("FILE");
  const std::string output = a.Get("output");
  if (files.empty() || output.empty()) {
    std::fprintf(stderr,
                 "cairn-data: give the text FILEs and --output DIR (see cairn-data --help)\n");
    return 2;
  }
  // Written so that NaN fails too (every comparison with NaN is false).
  double val_fraction = 0;
  if (!absl::SimpleAtod(a.Get("val-fraction"), &val_fraction) ||
      !(val_fraction >= 0 && val_fraction < 1)) {
    std::fprintf(stderr, "cairn-data: --val-fraction must be in [0, 1), got %s\n",
                 a.Get("val-fraction").c_str());
    return 2;
  }
  int64_t shard_tokens = 0;
  if (!absl::SimpleAtoi(a.Get("shard-tokens"), &shard_tokens) || shard_tokens < 1) {
    std::fprintf(stderr, "cairn-data: --shard-tokens must be a positive integer\n");
    return 2;
  }
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
