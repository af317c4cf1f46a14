// common/version.h — the Cairn version and how this binary was built, for every --version.
//
//   std::printf("%s\n", cairn::VersionLine("cairn-train").c_str());
//   // "cairn-train 0.1.0 (opt build)"
#ifndef CAIRN_COMMON_VERSION_H_
#define CAIRN_COMMON_VERSION_H_

#include <string>

namespace cairn {

// Recorded in every plan's provenance and in the planner's cache keys.
inline constexpr const char* kCairnVersion = "0.1.0";

// "opt build" (-c opt: NDEBUG), "fastbuild, -O2, assertions on" (the default, with
// .bazelrc's -O2) or "debug build" (-c dbg), as compiled into common/version.cc.
const char* BuildKind();

// "PROGRAM VERSION (BUILD KIND)".
std::string VersionLine(const std::string& program);

}  // namespace cairn

#endif  // CAIRN_COMMON_VERSION_H_
