#include "planner/server/profiles_logic.h"

#include "common/testing/status_matchers.h"
#include "gtest/gtest.h"
#include "planner/catalog/clusters.h"
#include "planner/server/testing/fake_clock.h"
#include "planner/store/testing/memory_store.h"

namespace cairn::planner {
namespace {

using ::cairn::testing::StatusIs;
using ::testing::HasSubstr;

class ProfilesLogicTest : public ::testing::Test {
 protected:
  cairn::planner::testing::MemoryStore store_;
  cairn::planner::testing::FakeClock clock_;
  ProfilesLogic profiles_{&store_, &clock_};
};

TEST_F(ProfilesLogicTest, HardwarePutTwiceMakesVersionsOfOneId) {
  cairn::v1::PutHardwareProfileRequest put;
  *put.mutable_profile() = LookupHardware("h100-sxm").value();
  ASSERT_OK_AND_ASSIGN(cairn::v1::StoredHardwareProfile v1, profiles_.PutHardware(put));
  EXPECT_EQ(v1.version(), 1);
  EXPECT_EQ(v1.created_at(), Rfc3339(clock_.Now()));
  clock_.Advance(absl::Hours(1));
  put.mutable_profile()->set_notes("re-measured");
  ASSERT_OK_AND_ASSIGN(cairn::v1::StoredHardwareProfile v2, profiles_.PutHardware(put));
  EXPECT_EQ(v2.id(), v1.id());
  EXPECT_EQ(v2.version(), 2);

  cairn::v1::ProfileKey key;
  key.set_id(v1.id());
  ASSERT_OK_AND_ASSIGN(cairn::v1::StoredHardwareProfile latest, profiles_.GetHardware(key));
  EXPECT_EQ(latest.version(), 2);
  EXPECT_GT(latest.profile().collectives_size(), 0);  // Get returns the tables
  key.set_version(1);
  ASSERT_OK_AND_ASSIGN(cairn::v1::StoredHardwareProfile first, profiles_.GetHardware(key));
  EXPECT_TRUE(first.profile().notes() != "re-measured");
  key.set_version(7);
  EXPECT_THAT(profiles_.GetHardware(key),
              StatusIs(absl::StatusCode::kNotFound,
                       HasSubstr("hardware profile '" + v1.id() + "' version 7 not found")));

  ASSERT_OK_AND_ASSIGN(cairn::v1::ListHardwareProfilesResponse list,
                       profiles_.ListHardware({}));
  ASSERT_EQ(list.profiles_size(), 1);
  EXPECT_EQ(list.profiles(0).version(), 2);
  EXPECT_EQ(list.profiles(0).profile().collectives_size(), 0);  // lists leave tables out
  EXPECT_EQ(list.profiles(0).profile().device().gemm_size(), 0);

  cairn::v1::DeleteProfileRequest del;
  del.set_id(v1.id());
  ASSERT_OK_AND_ASSIGN(cairn::v1::DeleteProfileResponse deleted, profiles_.DeleteHardware(del));
  EXPECT_EQ(deleted.versions_deleted(), 2);
  EXPECT_THAT(profiles_.DeleteHardware(del),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("nothing deleted")));
}

TEST_F(ProfilesLogicTest, ListPagesByIdWithATokenForTheNextPage) {
  cairn::v1::PutHardwareProfileRequest put;
  for (const char* name : {"h100-sxm", "h200-sxm", "a100-80g-sxm"}) {
    *put.mutable_profile() = LookupHardware(name).value();
    ASSERT_OK(profiles_.PutHardware(put).status());
  }
  cairn::v1::ListProfilesRequest req;
  req.set_page_size(2);
  ASSERT_OK_AND_ASSIGN(auto page1, profiles_.ListHardware(req));
  ASSERT_EQ(page1.profiles_size(), 2);
  ASSERT_FALSE(page1.next_page_token().empty());
  req.set_page_token(page1.next_page_token());
  ASSERT_OK_AND_ASSIGN(auto page2, profiles_.ListHardware(req));
  ASSERT_EQ(page2.profiles_size(), 1);
  EXPECT_TRUE(page2.next_page_token().empty());
  EXPECT_LT(page1.profiles(1).id(), page2.profiles(0).id());
}

TEST_F(ProfilesLogicTest, ModelProfiles) {
  cairn::v1::PutModelProfileRequest put;
  put.mutable_profile()->set_model_name("llama2-7b");
  put.mutable_profile()->set_device_model("NVIDIA H100 80GB HBM3");
  cairn::v1::LayerTiming* t = put.mutable_profile()->add_timings();
  t->set_kind(cairn::v1::LAYER_KIND_TRANSFORMER_BLOCK);
  t->set_tp_degree(1);
  t->set_micro_batch_size(1);
  t->set_seq_len(4096);
  t->set_forward_s(0.01);
  ASSERT_OK_AND_ASSIGN(cairn::v1::StoredModelProfile stored, profiles_.PutModel(put));
  ASSERT_OK_AND_ASSIGN(auto list, profiles_.ListModel({}));
  ASSERT_EQ(list.profiles_size(), 1);
  EXPECT_EQ(list.profiles(0).profile().timings_size(), 0);
  cairn::v1::ProfileKey key;
  key.set_id(stored.id());
  ASSERT_OK_AND_ASSIGN(auto got, profiles_.GetModel(key));
  EXPECT_EQ(got.profile().timings_size(), 1);
  key.set_id("ffffffffffffffff");
  EXPECT_THAT(profiles_.GetModel(key),
              StatusIs(absl::StatusCode::kNotFound,
                       HasSubstr("model profile 'ffffffffffffffff' not found "
                                 "(ListModelProfiles shows the stored ones)")));
}

TEST_F(ProfilesLogicTest, InvalidProfilesAreRefusedBeforeTheStore) {
  cairn::v1::PutHardwareProfileRequest put;
  *put.mutable_profile() = LookupHardware("h100-sxm").value();
  put.mutable_profile()->set_devices_per_node(0);
  EXPECT_THAT(profiles_.PutHardware(put),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("profile: ")));
  EXPECT_EQ(store_.calls(), 0);
}

}  // namespace
}  // namespace cairn::planner
