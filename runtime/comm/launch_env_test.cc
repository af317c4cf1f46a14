#include "runtime/comm/launch_env.h"

#include <map>
#include <optional>
#include <string>

#include "common/testing/status_matchers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace cairn::runtime {
namespace {

using ::cairn::testing::StatusIs;
using ::testing::HasSubstr;

absl::StatusOr<LaunchEnv> Parse(const std::map<std::string, std::string>& vars) {
  return LaunchEnv::FromLookup([&](absl::string_view name) -> std::optional<std::string> {
    auto it = vars.find(std::string(name));
    if (it == vars.end()) return std::nullopt;
    return it->second;
  });
}

TEST(LaunchEnvTest, TorchrunStyle) {
  ASSERT_OK_AND_ASSIGN(LaunchEnv env, Parse({{"RANK", "5"},
                                             {"WORLD_SIZE", "8"},
                                             {"LOCAL_RANK", "1"},
                                             {"LOCAL_WORLD_SIZE", "4"},
                                             {"MASTER_ADDR", "node0"},
                                             {"MASTER_PORT", "29500"}}));
  EXPECT_EQ(env.rank, 5);
  EXPECT_EQ(env.world_size, 8);
  EXPECT_EQ(env.local_rank, 1);
  EXPECT_EQ(env.local_world_size, 4);
  EXPECT_EQ(env.master_addr, "node0");
  EXPECT_EQ(env.master_port, 29500);
}

TEST(LaunchEnvTest, PortZeroOnlyOnRankZeroWithAPortFile) {
  ASSERT_OK_AND_ASSIGN(LaunchEnv env, Parse({{"RANK", "0"},
                                             {"WORLD_SIZE", "2"},
                                             {"MASTER_PORT", "0"},
                                             {"CAIRN_MASTER_PORT_FILE", "/tmp/port"}}));
  EXPECT_EQ(env.master_port, 0);
  EXPECT_EQ(env.master_port_file, "/tmp/port");
  EXPECT_THAT(Parse({{"RANK", "1"}, {"WORLD_SIZE", "2"}, {"MASTER_PORT", "0"},
                     {"CAIRN_MASTER_PORT_FILE", "/tmp/port"}}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("MASTER_PORT=0")));
  EXPECT_THAT(Parse({{"RANK", "0"}, {"WORLD_SIZE", "2"}, {"MASTER_PORT", "0"}}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("MASTER_PORT=0")));
}

TEST(LaunchEnvTest, Defaults) {
  ASSERT_OK_AND_ASSIGN(LaunchEnv env, Parse({{"RANK", "0"}, {"WORLD_SIZE", "1"}}));
  EXPECT_EQ(env.local_rank, 0);
  EXPECT_EQ(env.local_world_size, 1);
  EXPECT_EQ(env.master_addr, "127.0.0.1");
  EXPECT_EQ(env.master_port, 0);
}

TEST(LaunchEnvTest, ErrorsNameTheVariable) {
  EXPECT_THAT(Parse({{"WORLD_SIZE", "2"}}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("RANK is not set")));
  EXPECT_THAT(Parse({{"RANK", "0"}, {"WORLD_SIZE", "two"}}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("WORLD_SIZE='two'")));
  EXPECT_THAT(Parse({{"RANK", "2"}, {"WORLD_SIZE", "2"}, {"MASTER_PORT", "1"}}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("RANK=2")));
  EXPECT_THAT(Parse({{"RANK", "0"}, {"WORLD_SIZE", "0"}}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("WORLD_SIZE=0")));
  EXPECT_THAT(Parse({{"RANK", "0"}, {"WORLD_SIZE", "2"}}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("MASTER_PORT is not set")));
  EXPECT_THAT(Parse({{"RANK", "0"}, {"WORLD_SIZE", "2"}, {"MASTER_PORT", "70000"}}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("MASTER_PORT=70000")));
  EXPECT_THAT(Parse({{"RANK", "0"},
                     {"WORLD_SIZE", "2"},
                     {"MASTER_PORT", "1"},
                     {"LOCAL_RANK", "3"},
                     {"LOCAL_WORLD_SIZE", "2"}}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("LOCAL_RANK=3")));
}

}  // namespace
}  // namespace cairn::runtime
