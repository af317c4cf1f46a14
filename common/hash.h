// common/hash.h — small stable hashes (the same value on every machine and run).
//
//   std::string key = absl::StrFormat("%016x", Fnv1a64("h100-sxm|8|..."));
#ifndef CAIRN_COMMON_HASH_H_
#define CAIRN_COMMON_HASH_H_

#include <cstdint>
#include "absl/strings/string_view.h"

namespace cairn {

// 64-bit FNV-1a of `bytes`: stable names for store keys, rendezvous groups and file names. Not
// for security.
inline uint64_t Fnv1a64(absl::string_view bytes) {
  uint64_t h = 14695981039346656037ULL;  // the FNV offset basis
  for (unsigned char c : bytes) h = (h ^ c) * 1099511628211ULL;
  return h;
}

}  // namespace cairn

#endif  // CAIRN_COMMON_HASH_H_
