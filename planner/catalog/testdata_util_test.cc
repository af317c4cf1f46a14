#include "planner/catalog/testdata_util.h"

#include <sys/stat.h>

#include <cstdlib>
#include <fstream>
#include <string>

#include "gtest/gtest.h"

namespace cairn::planner::testing {
namespace {

std::string Tmp() {
  const char* dir = std::getenv("TEST_TMPDIR");
  return dir ? dir : "/tmp";
}

void MakeDirs(const std::string& path) {
  for (size_t i = 1; i <= path.size(); ++i) {
    if (i == path.size() || path[i] == '/') mkdir(path.substr(0, i).c_str(), 0755);
  }
}

TEST(TestdataUtilTest, FindsSharedReferenceBesideTheClone) {
  // <root>/ci/clone/planner/catalog/testdata/x.json with <root>/ci/shared/reference/galvatron.
  const std::string root = Tmp() + "/layout";
  MakeDirs(root + "/ci/clone/planner/catalog/testdata");
  MakeDirs(root + "/ci/shared/reference/galvatron");
  EXPECT_EQ(FindSharedReferenceAbove(root + "/ci/clone/planner/catalog/testdata/x.json"),
            root + "/ci/shared/reference");
  // A shared/ without reference/galvatron is not taken.
  MakeDirs(root + "/ci/clone/shared");
  EXPECT_EQ(FindSharedReferenceAbove(root + "/ci/clone/planner/x.json"),
            root + "/ci/shared/reference");
  EXPECT_EQ(FindSharedReferenceAbove(root + "/elsewhere/x.json"), "");
}

TEST(TestdataUtilTest, EnvironmentOverrideWins) {
  const std::string dir = Tmp() + "/override";
  MakeDirs(dir);
  setenv("CAIRN_REFERENCE_DIR", dir.c_str(), 1);
  EXPECT_EQ(ReferenceDir(), dir);
  unsetenv("CAIRN_REFERENCE_DIR");
}

TEST(TestdataUtilTest, TestDataIsInRunfiles) {
  std::ifstream in(
      TestDataPath("galvatron_config_llama2-7b_1nodes_8gpus_per_node_36GB_bf16.json"));
  EXPECT_TRUE(in.good());
}

}  // namespace
}  // namespace cairn::planner::testing
