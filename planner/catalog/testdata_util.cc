#include "planner/catalog/testdata_util.h"

#include <sys/stat.h>

#include <climits>
#include <cstdlib>

#include "absl/strings/str_cat.h"

namespace cairn::planner::testing {
namespace {

constexpr char kAnchor[] = "galvatron_config_llama2-7b_1nodes_8gpus_per_node_36GB_bf16.json";

bool IsDir(const std::string& path) {
  struct stat info;
  return stat(path.c_str(), &info) == 0 && S_ISDIR(info.st_mode);
}

std::string Env(const char* name) {
  const char* v = std::getenv(name);
  return v == nullptr ? "" : v;
}

}  // namespace

std::string RunfilePath(absl::string_view workspace_relative) {
  const std::string srcdir = Env("TEST_SRCDIR");
  if (srcdir.empty()) return std::string(workspace_relative);
  std::string workspace = Env("TEST_WORKSPACE");
  if (workspace.empty()) workspace = "cairn";
  return absl::StrCat(srcdir, "/", workspace, "/", workspace_relative);
}

std::string TestDataPath(absl::string_view name) {
  return RunfilePath(absl::StrCat("planner/catalog/testdata/", name));
}

std::string FindSharedReferenceAbove(const std::string& path) {
  std::string dir = path;
  while (true) {
    const size_t slash = dir.find_last_of('/');
    if (slash == std::string::npos || slash == 0) return "";
    dir.resize(slash);
    const std::string candidate = dir + "/shared/reference";
    if (IsDir(candidate + "/galvatron")) return candidate;
  }
}

std::string ReferenceDir() {
  const std::string env = Env("CAIRN_REFERENCE_DIR");
  if (!env.empty() && IsDir(env)) return env;
  // The runfile is a symlink into the source checkout; its real path leads to <clone>/..
  char resolved[PATH_MAX];
  if (realpath(TestDataPath(kAnchor).c_str(), resolved) != nullptr) {
    const std::string found = FindSharedReferenceAbove(resolved);
    if (!found.empty()) return found;
  }
  if (IsDir("/work/shared/reference/galvatron")) return "/work/shared/reference";
  return "";
}

}  // namespace cairn::planner::testing
