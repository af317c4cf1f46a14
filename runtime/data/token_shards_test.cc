#include "runtime/data/token_shards.h"

#include <sys/stat.h>

#include <cstring>
#include <fstream>

#include "common/testing/status_matchers.h"
#include "gtest/gtest.h"

namespace cairn::runtime {
namespace {

using ::cairn::testing::StatusIs;
using ::testing::HasSubstr;

std::string TempDir() {
  const char* d = std::getenv("TEST_TMPDIR");
  return d ? d : "/tmp";
}

TEST(TokenShardsTest, RoundTripsBothWidths) {
  const std::vector<uint32_t> small = {0, 1, 65535, 7};
  const std::vector<uint32_t> big = {0, 70000, 128255};
  ASSERT_OK(WriteShard(TempDir() + "/a.bin", small, 2));
  ASSERT_OK(WriteShard(TempDir() + "/b.bin", big, 4));
  EXPECT_EQ(ReadShard(TempDir() + "/a.bin").value(), small);
  EXPECT_EQ(ReadShard(TempDir() + "/b.bin").value(), big);
  EXPECT_THAT(WriteShard(TempDir() + "/c.bin", big, 2),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("does not fit 2 bytes")));
}

TEST(TokenShardsTest, RejectsCorruptFiles) {
  std::ofstream(TempDir() + "/junk.bin") << "not a shard at all, clearly too long to be a header";
  EXPECT_THAT(ReadShard(TempDir() + "/junk.bin"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("not a Cairn token shard")));
  ASSERT_OK(WriteShard(TempDir() + "/trunc.bin", {1, 2, 3, 4}, 2));
  std::ofstream(TempDir() + "/trunc.bin", std::ios::app) << "x";
  EXPECT_THAT(ReadShard(TempDir() + "/trunc.bin"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("header says 4 tokens")));
}

// Regression (issue 12): a 32-byte file whose header claims 2^63 tokens of 2 bytes passed the size
// check (2^63 x 2 wraps to 0) and cairn-train died of std::length_error instead of exiting 2.
TEST(TokenShardsTest, RejectsACountWhoseByteSizeWraps) {
  for (const uint64_t count : {uint64_t{1} << 63, (uint64_t{1} << 63) + 1, ~uint64_t{0}}) {
    char header[32] = {};
    std::memcpy(header, kShardMagic, 8);
    const uint32_t version = kShardVersion, width = count == ~uint64_t{0} ? 4 : 2;
    std::memcpy(header + 8, &version, 4);
    std::memcpy(header + 12, &width, 4);
    std::memcpy(header + 16, &count, 8);
    const std::string path = TempDir() + "/wrap.bin";
    std::ofstream(path, std::ios::binary).write(header, sizeof(header));
    EXPECT_THAT(ReadShard(path), StatusIs(absl::StatusCode::kInvalidArgument,
                                          HasSubstr("but the file has 0 bytes of data")))
        << count;
  }
}

TEST(TokenShardsTest, SamplesAreDeterministicWindows) {
  const std::string dir = TempDir() + "/ds";
  mkdir(dir.c_str(), 0755);
  ASSERT_OK(WriteShard(dir + "/train_00000.bin", ByteTokens("hello world, "), 2));
  ASSERT_OK(WriteShard(dir + "/train_00001.bin", ByteTokens("hello cairn!"), 2));
  ASSERT_OK_AND_ASSIGN(TokenDataset ds, TokenDataset::Open(dir, "train"));
  EXPECT_EQ(ds.num_tokens(), 25);
  std::vector<int32_t> in1, tg1, in2, tg2;
  ASSERT_OK(ds.Sample(7, 3, 5, 8, &in1, &tg1));
  ASSERT_OK(ds.Sample(7, 3, 5, 8, &in2, &tg2));
  EXPECT_EQ(in1, in2);
  for (int i = 0; i + 1 < 8; ++i) EXPECT_EQ(tg1[i], in1[i + 1]);  // targets are shifted inputs
  EXPECT_THAT(ds.Sample(7, 0, 0, 25, &in1, &tg1),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("seq_len + 1")));
  EXPECT_THAT(TokenDataset::Open(dir, "val"), StatusIs(absl::StatusCode::kNotFound, HasSubstr("cairn-data")));
}

}  // namespace
}  // namespace cairn::runtime
