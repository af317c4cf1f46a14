// libFuzzer target: the checkpoint reader (cairn-train --resume).
//
// The first byte picks what the rest of the input is:
//   even: the bytes of one rank file -> ParseRankFile, and ReadCheckpoint of a step directory
//         whose MANIFEST lists that file with its true size and SHA-256 (so the parser runs
//         behind a passing checksum, as it does on a file written by a buggy or hostile writer;
//         the write path, with its fsyncs, is checkpoint_test's);
//   odd:  the text of a MANIFEST -> ParseManifest, and ReadCheckpoint of a directory holding it.
// Crashes, sanitizer reports and huge allocations are findings; Status errors are the expected
// outcome.
//
//   tools/fuzz.sh checkpoint_fuzz          # seeds: runtime/checkpoint/testdata/checkpoint_fuzz/
#include <openssl/evp.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <fstream>
#include <string>

#include "runtime/checkpoint/checkpoint.h"

namespace {

const std::string& Dir() {
  static const std::string* dir = [] {
    const char* tmp = std::getenv("TMPDIR");
    std::string tmpl = std::string(tmp != nullptr ? tmp : "/tmp") + "/cairn-ckpt-fuzz-XXXXXX";
    if (mkdtemp(tmpl.data()) == nullptr) std::abort();
    return new std::string(tmpl);
  }();
  return *dir;
}

std::string Sha256Hex(const std::string& bytes) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_Digest(bytes.data(), bytes.size(), digest, &len, EVP_sha256(), nullptr);
  static const char* kHex = "0123456789abcdef";
  std::string out;
  for (unsigned int i = 0; i < len; ++i) {
    out.push_back(kHex[digest[i] >> 4]);
    out.push_back(kHex[digest[i] & 15]);
  }
  return out;
}

void Write(const std::string& path, const std::string& bytes) {
  std::ofstream(path, std::ios::trunc | std::ios::binary) << bytes;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace cairn::runtime;  // NOLINT
  if (size < 1) return 0;
  const std::string bytes(reinterpret_cast<const char*>(data + 1), size - 1);
  const std::string dir = Dir() + "/step_00000001";
  if (data[0] % 2 == 0) {
    Checkpoint ck;
    (void)ParseRankFile(bytes, "rank_00000.bin", &ck);
    // A committed step directory around these bytes, its MANIFEST made here the way WriteMeta
    // makes it (without WriteMeta's fsyncs, which would cap the fuzzer at ~100 runs/s).
    static const bool made = mkdir(dir.c_str(), 0755) == 0 || errno == EEXIST;
    (void)made;
    Write(dir + "/rank_00000.bin", bytes);
    std::string manifest = "cairn-checkpoint 2\nstep 1\nmodel m\nworld_size 1\nplan \nfile rank_00000.bin " +
                           std::to_string(bytes.size()) + " " + Sha256Hex(bytes) + "\n";
    manifest += "sha256 " + Sha256Hex(manifest) + "\n";
    Write(dir + "/MANIFEST", manifest);
    (void)ReadCheckpoint(dir);
  } else {
    (void)ParseManifest(bytes, "MANIFEST");
    Write(Dir() + "/MANIFEST", bytes);
    (void)ReadCheckpoint(Dir());
  }
  return 0;
}
