// Checkpoints commit as a unit: the failures of issue 12 (a save killed half-way, a resume with
// fewer ranks into the same directory, values changed on disk) are refused or never seen.
#include "runtime/checkpoint/checkpoint.h"

#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string>

#include "absl/strings/str_cat.h"
#include "common/testing/status_matchers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace cairn::runtime {
namespace {

using ::cairn::testing::StatusIs;
using ::testing::HasSubstr;

std::string Root(const std::string& name) {
  const char* tmp = std::getenv("TEST_TMPDIR");
  return absl::StrCat(tmp ? tmp : "/tmp", "/", name);
}

bool Exists(const std::string& path) {
  struct stat st;
  return stat(path.c_str(), &st) == 0;
}

std::string Slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

// Rank `rank` of `world` holds elements rank, rank + world, ... of a 12-element tensor, each
// `base` + its index; Adam states alongside.
TensorRecords Records(int rank, int world, float base) {
  TensorRecord v{"1.w", RecordKind::kValue, {}, {}};
  TensorRecord m{"1.w", RecordKind::kAdamM, {}, {}};
  for (int64_t i = rank; i < 12; i += world) {
    v.indices.push_back(i);
    v.values.push_back(base + static_cast<float>(i));
    m.indices.push_back(i);
    m.values.push_back(-static_cast<float>(i));
  }
  return {v, m};
}

// A full save of `step` by `world` ranks (what cairn-train does), committed unless `commit` is off
// (a save killed after the rank files).
void Save(const std::string& root, int64_t step, int world, float base, bool commit = true,
          int keep_last = 0) {
  for (int r = 0; r < world; ++r) {
    ASSERT_OK(WriteRankFile(StepDirectory(root, step), r, Records(r, world, base)));
  }
  if (commit) {
    ASSERT_OK(CommitCheckpoint(root, {step, "llama-tiny", world, 2, "pp=1 m=2"}, keep_last));
  }
}

TEST(CheckpointTest, RoundTripsThroughLatestAndAStepDirectory) {
  const std::string root = Root("roundtrip");
  Save(root, 6, 3, 100);
  EXPECT_EQ(Slurp(root + "/latest"), "step_00000006\n");
  ASSERT_OK_AND_ASSIGN(Checkpoint ck, ReadCheckpoint(root));
  EXPECT_EQ(ck.meta.step, 6);
  EXPECT_EQ(ck.meta.model, "llama-tiny");
  EXPECT_EQ(ck.meta.world_size, 3);
  EXPECT_EQ(ck.meta.plan, "pp=1 m=2");
  ASSERT_EQ(ck.values["1.w"].size(), 12u);
  for (int64_t i = 0; i < 12; ++i) {
    EXPECT_EQ(ck.values["1.w"][i], 100 + i);
    EXPECT_EQ(ck.adam_m["1.w"][i], -i);
  }
  ASSERT_OK_AND_ASSIGN(Checkpoint same, ReadCheckpoint(StepDirectory(root, 6)));
  EXPECT_EQ(same.values, ck.values);
  // sha256sum's format, so `sha256sum -c` verifies a file by hand.
  EXPECT_THAT(Slurp(StepDirectory(root, 6) + "/rank_00002.bin.sha256"),
              ::testing::MatchesRegex("[0-9a-f]{64}  rank_00002\\.bin\n"));
}

// Regression: a worker killed during the step-9 save left step-9 files beside step-6 metadata, and
// --resume merged them (loss 1.29 where the true resume gives 2.53).
TEST(CheckpointTest, ASaveKilledBeforeItsManifestIsNeverRead) {
  const std::string root = Root("killed");
  Save(root, 6, 2, 100);
  Save(root, 9, 2, 900, /*commit=*/false);
  ASSERT_OK_AND_ASSIGN(Checkpoint ck, ReadCheckpoint(root));
  EXPECT_EQ(ck.meta.step, 6);
  EXPECT_EQ(ck.values["1.w"][5], 105);
  EXPECT_THAT(ReadCheckpoint(StepDirectory(root, 9)),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("no MANIFEST")));
  // The next committed save replaces the leftover and becomes `latest`.
  Save(root, 12, 2, 1200);
  ASSERT_OK_AND_ASSIGN(ck, ReadCheckpoint(root));
  EXPECT_EQ(ck.meta.step, 12);
  EXPECT_FALSE(Exists(StepDirectory(root, 9))) << "an uncommitted older save is pruned";
}

// Regression: resuming with fewer ranks into the same directory left stale rank files that the
// next resume merged.
TEST(CheckpointTest, RankFilesOfAnotherWorldSizeAreNotPartOfTheCheckpoint) {
  const std::string root = Root("fewer");
  Save(root, 9, 4, 400, /*commit=*/false);  // an attempt with 4 ranks, killed
  Save(root, 9, 2, 200);                     // the step saved again by 2 ranks
  EXPECT_FALSE(Exists(StepDirectory(root, 9) + "/rank_00003.bin"));
  ASSERT_OK_AND_ASSIGN(Checkpoint ck, ReadCheckpoint(root));
  EXPECT_EQ(ck.meta.world_size, 2);
  for (int64_t i = 0; i < 12; ++i) EXPECT_EQ(ck.values["1.w"][i], 200 + i) << i;
  // A stray file of a higher rank dropped in later is ignored too.
  ASSERT_OK(WriteRankFile(StepDirectory(root, 9), 3, Records(3, 4, 999)));
  ASSERT_OK_AND_ASSIGN(ck, ReadCheckpoint(root));
  EXPECT_EQ(ck.values["1.w"][3], 203);
}

// Regression: values carried no checksum (1e30 written into 200 weights resumed without a word).
TEST(CheckpointTest, DamagedFilesAreRefusedNamingTheFile) {
  const std::string root = Root("damaged");
  Save(root, 6, 2, 100);
  const std::string rank1 = StepDirectory(root, 6) + "/rank_00001.bin";
  std::string bytes = Slurp(rank1);
  const float big = 1e30f;
  std::memcpy(&bytes[bytes.size() - sizeof(float)], &big, sizeof(float));  // the last weight
  std::ofstream(rank1, std::ios::binary | std::ios::trunc) << bytes;
  EXPECT_THAT(ReadCheckpoint(root), StatusIs(absl::StatusCode::kDataLoss,
                                             HasSubstr("rank_00001.bin is damaged: its SHA-256")));

  Save(root, 7, 2, 100);
  const std::string rank0 = StepDirectory(root, 7) + "/rank_00000.bin";
  ASSERT_EQ(truncate(rank0.c_str(), 20), 0);
  EXPECT_THAT(ReadCheckpoint(root),
              StatusIs(absl::StatusCode::kDataLoss, HasSubstr("rank_00000.bin has 20 bytes")));
  ASSERT_EQ(unlink(rank0.c_str()), 0);
  EXPECT_THAT(ReadCheckpoint(root),
              StatusIs(absl::StatusCode::kDataLoss, HasSubstr("rank_00000.bin")));

  Save(root, 8, 2, 100);
  const std::string manifest = StepDirectory(root, 8) + "/MANIFEST";
  std::string text = Slurp(manifest);
  text.replace(text.find("step 8"), 6, "step 3");
  std::ofstream(manifest, std::ios::trunc) << text;
  EXPECT_THAT(ReadCheckpoint(root), StatusIs(absl::StatusCode::kDataLoss,
                                             HasSubstr("MANIFEST is damaged: its checksum")));

  Save(root, 10, 2, 100);
  std::ofstream(root + "/latest", std::ios::trunc) << "step_00000011\n";
  EXPECT_THAT(ReadCheckpoint(root),
              StatusIs(absl::StatusCode::kDataLoss, HasSubstr("latest names step_00000011")));
}

TEST(CheckpointTest, OldStepsArePrunedByPolicy) {
  const std::string root = Root("prune");
  for (int step = 1; step <= 5; ++step) Save(root, step, 2, step, true, /*keep_last=*/2);
  for (int step = 1; step <= 3; ++step) EXPECT_FALSE(Exists(StepDirectory(root, step))) << step;
  EXPECT_TRUE(Exists(StepDirectory(root, 4)));
  EXPECT_TRUE(Exists(StepDirectory(root, 5)));
  // An uncommitted newer directory (a save in progress elsewhere) is left alone.
  Save(root, 7, 2, 7, /*commit=*/false);
  Save(root, 6, 2, 6, true, 2);
  EXPECT_TRUE(Exists(StepDirectory(root, 7)));
  EXPECT_FALSE(Exists(StepDirectory(root, 4)));
  ASSERT_OK_AND_ASSIGN(Checkpoint ck, ReadCheckpoint(root));
  EXPECT_EQ(ck.meta.step, 6);
}

TEST(CheckpointTest, MissingCheckpointIsNotFoundAndCommitNeedsEveryRank) {
  EXPECT_THAT(ReadCheckpoint(Root("nothing-here")),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("no latest pointer and no MANIFEST")));
  const std::string root = Root("partial");
  ASSERT_OK(WriteRankFile(StepDirectory(root, 3), 0, Records(0, 2, 0)));
  EXPECT_THAT(CommitCheckpoint(root, {3, "m", 2, 2, ""}, 0),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       HasSubstr("rank 1's file rank_00001.bin is missing")));
  EXPECT_FALSE(Exists(root + "/latest"));
}

TEST(CheckpointTest, ParsersRejectHostileBytesWithoutAllocatingForThem) {
  Checkpoint ck;
  std::string bytes("CAIRNCKP\x02\x00\x00\x00", 12);
  const uint32_t len = 1;
  bytes.append(reinterpret_cast<const char*>(&len), 4);
  bytes += "x";
  bytes.push_back('\0');
  const uint64_t count = uint64_t{1} << 62;  // 2^62 values claimed, none present
  bytes.append(reinterpret_cast<const char*>(&count), 8);
  EXPECT_THAT(ParseRankFile(bytes, "f", &ck),
              StatusIs(absl::StatusCode::kDataLoss, HasSubstr("truncated record x")));
  EXPECT_THAT(ParseRankFile("CAIRNCKP", "f", &ck),
              StatusIs(absl::StatusCode::kDataLoss, HasSubstr("truncated")));
  EXPECT_THAT(ParseManifest("cairn-checkpoint 2\nstep 1\n", "M"),
              StatusIs(absl::StatusCode::kDataLoss, HasSubstr("not its checksum")));
}

}  // namespace
}  // namespace cairn::runtime
