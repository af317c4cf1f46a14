// libFuzzer target: the token-shard reader (cairn-train --data DIR).
//
// The input is written as one shard file and read back with ReadShard (header, version, token
// width, the count checked against the file size), then, when it reads, sampled from as the
// trainer does. Crashes, sanitizer reports and huge allocations are findings; Status errors are
// the expected outcome.
//
//   tools/fuzz.sh token_shard_fuzz         # seeds: runtime/data/testdata/token_shard_fuzz/
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <fstream>
#include <string>
#include <vector>

#include "runtime/data/token_shards.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const std::string* dir = [] {
    const char* tmp = std::getenv("TMPDIR");
    std::string tmpl = std::string(tmp != nullptr ? tmp : "/tmp") + "/cairn-shard-fuzz-XXXXXX";
    if (mkdtemp(tmpl.data()) == nullptr) std::abort();
    return new std::string(tmpl);
  }();
  const std::string path = *dir + "/train_00000.bin";
  std::ofstream(path, std::ios::trunc | std::ios::binary)
      .write(reinterpret_cast<const char*>(data), static_cast<std::streamsize>(size));
  (void)cairn::runtime::ReadShard(path);
  absl::StatusOr<cairn::runtime::TokenDataset> ds = cairn::runtime::TokenDataset::Open(*dir, "train");
  if (ds.ok()) {
    std::vector<int32_t> in, tg;
    (void)ds->Sample(1, 2, 3, 4, &in, &tg);
  }
  return 0;
}
