#include "common/version.h"

namespace cairn {

const char* BuildKind() {
  // Abseil's own --version reports how Debian compiled Abseil, not this binary: decide here.
#if defined(NDEBUG)
  return "opt build";
#elif defined(__OPTIMIZE__)
  return "fastbuild, -O2, assertions on";
#else
  return "debug build";
#endif
}

std::string VersionLine(const std::string& program) {
  return program + " " + kCairnVersion + " (" + BuildKind() + ")";
}

}  // namespace cairn
