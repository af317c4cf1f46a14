// planner/catalog/testdata_util.h — where tests find their data files (testonly).
//
// Two kinds of data:
//  - files of this package under planner/catalog/testdata/, listed in the test's `data` (or this
//    library's): TestDataPath("x.json") gives their runfiles path;
//  - the read-only reference data shared by every checkout (Galvatron's profile files, ...), which
//    lives outside the repository, beside it: <clone>/../shared/reference. ReferenceDir() finds it:
//
//   const std::string ref = ReferenceDir();
//   if (ref.empty()) FAIL() << "shared/reference not found; set CAIRN_REFERENCE_DIR";
//   ... ReadTextFile(ref + "/galvatron/overlap_coefficient.json") ...
#ifndef CAIRN_PLANNER_CATALOG_TESTDATA_UTIL_H_
#define CAIRN_PLANNER_CATALOG_TESTDATA_UTIL_H_

#include <string>

#include "absl/strings/string_view.h"

namespace cairn::planner::testing {

// Runfiles path of planner/catalog/testdata/<name> ($TEST_SRCDIR/$TEST_WORKSPACE/...; relative to
// the working directory when not run by `bazel test`). The file must be in the test's data.
std::string TestDataPath(absl::string_view name);

// Path of a readable data file of the workspace given relative to its root, e.g.
// "docs/catalog.md" (must be in the test's data).
std::string RunfilePath(absl::string_view workspace_relative);

// The shared reference directory (containing galvatron/), or "" when it cannot be found. Looks, in
// order, at $CAIRN_REFERENCE_DIR; at <dir>/shared/reference for every ancestor <dir> of the real
// (symlink-resolved) path of this package's test data, i.e. of the source checkout, which finds
// <clone>/../shared/reference; and at /work/shared/reference.
std::string ReferenceDir();

// The first <dir>/shared/reference (holding galvatron/) for the ancestors <dir> of `path`, nearest
// first; "" when there is none. ReferenceDir()'s search, exposed for its test.
std::string FindSharedReferenceAbove(const std::string& path);

}  // namespace cairn::planner::testing

#endif  // CAIRN_PLANNER_CATALOG_TESTDATA_UTIL_H_
