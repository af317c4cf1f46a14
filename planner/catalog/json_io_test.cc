#include "planner/catalog/json_io.h"

#include <cstdlib>
#include <fstream>

#include "absl/strings/str_cat.h"
#include "common/testing/status_matchers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "proto/cairn/v1/model.pb.h"

namespace cairn::planner {
namespace {

using cairn::testing::StatusIs;
using ::testing::HasSubstr;

std::string TempDir() {
  const char* dir = std::getenv("TEST_TMPDIR");
  return dir ? dir : "/tmp";
}

TEST(JsonIoTest, ReadsAWholeFile) {
  const std::string path = TempDir() + "/text.txt";
  std::ofstream(path) << "line 1\nline 2\n";
  ASSERT_OK_AND_ASSIGN(std::string text, ReadTextFile(path));
  EXPECT_EQ(text, "line 1\nline 2\n");
}

TEST(JsonIoTest, MissingFileAndDirectoryAreDistinguished) {
  EXPECT_THAT(ReadTextFile(TempDir() + "/absent.json"),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("absent.json")));
  EXPECT_THAT(ReadTextFile(TempDir()),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("is a directory")));
}

TEST(JsonIoTest, WritesAndReplacesAFile) {
  const std::string path = TempDir() + "/written.txt";
  ASSERT_OK(WriteTextFile(path, "a longer first version\n"));
  ASSERT_OK(WriteTextFile(path, "second\n"));
  ASSERT_OK_AND_ASSIGN(std::string text, ReadTextFile(path));
  EXPECT_EQ(text, "second\n");
}

TEST(JsonIoTest, WriteErrorsNameThePathAndTheReason) {
  const std::string missing = TempDir() + "/no-such-folder/x.txt";
  EXPECT_THAT(WriteTextFile(missing, "x"),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       HasSubstr("cannot write " + missing + ": No such file or directory")));
  EXPECT_THAT(WriteTextFile(TempDir(), "x"),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("is a directory")));
}

// Checked before long work: the same refusals as WriteTextFile, and nothing is created.
TEST(JsonIoTest, ChecksAnOutputPathWithoutWritingIt) {
  const std::string missing = TempDir() + "/no-such-folder/x.txt";
  EXPECT_THAT(CheckWritableFile(missing),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       HasSubstr("cannot write " + missing + ": No such file or directory")));
  EXPECT_THAT(CheckWritableFile(TempDir()),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("is a directory")));
  const std::string fresh = TempDir() + "/not-yet.txt";
  ASSERT_OK(CheckWritableFile(fresh));
  EXPECT_THAT(ReadTextFile(fresh), StatusIs(absl::StatusCode::kNotFound, HasSubstr(fresh)));
  ASSERT_OK(WriteTextFile(fresh, "x"));
  ASSERT_OK(CheckWritableFile(fresh));  // an existing file is replaced
}

TEST(JsonIoTest, ParsesProtoNamesAndCamelCase) {
  cairn::v1::ModelSpec spec;
  ASSERT_OK(ParseProtoJson(R"({"num_layers": 3, "maxSeqLen": 7, "norm": "NORM_KIND_RMSNORM"})",
                           "inline", &spec));
  EXPECT_EQ(spec.num_layers(), 3);
  EXPECT_EQ(spec.max_seq_len(), 7);
  EXPECT_EQ(spec.norm(), cairn::v1::NORM_KIND_RMSNORM);
}

TEST(JsonIoTest, ParseClearsTheMessageFirst) {
  cairn::v1::ModelSpec spec;
  spec.set_hidden_size(99);
  ASSERT_OK(ParseProtoJson(R"({"num_layers": 3})", "inline", &spec));
  EXPECT_EQ(spec.hidden_size(), 0);
}

TEST(JsonIoTest, ParseErrorsNameTheSourceAndType) {
  cairn::v1::ModelSpec spec;
  EXPECT_THAT(ParseProtoJson("{", "f.json", &spec),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       ::testing::AllOf(HasSubstr("f.json"), HasSubstr("cairn.v1.ModelSpec"))));
  EXPECT_THAT(ParseProtoJson(R"({"layers": 3})", "g.json", &spec),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("layers")));
  EXPECT_THAT(ParseProtoJson(R"({"norm": "NORM_KIND_BATCH"})", "h.json", &spec),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("h.json")));
}

TEST(JsonIoTest, ProtoToJsonUsesProtoFieldNamesAndRoundTrips) {
  cairn::v1::ModelSpec spec;
  spec.set_num_layers(5);
  spec.set_norm(cairn::v1::NORM_KIND_LAYERNORM);
  ASSERT_OK_AND_ASSIGN(std::string text, ProtoToJson(spec));
  EXPECT_THAT(text, HasSubstr("\"num_layers\": 5"));
  EXPECT_THAT(text, HasSubstr("NORM_KIND_LAYERNORM"));
  cairn::v1::ModelSpec back;
  ASSERT_OK(ParseProtoJson(text, "round trip", &back));
  EXPECT_EQ(back.num_layers(), 5);
  EXPECT_EQ(back.norm(), cairn::v1::NORM_KIND_LAYERNORM);
}

}  // namespace
}  // namespace cairn::planner
