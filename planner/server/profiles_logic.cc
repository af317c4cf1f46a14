#include "planner/server/profiles_logic.h"

#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "planner/server/validation.h"

namespace cairn::planner {
namespace {

absl::Status NotFoundProfile(absl::string_view kind, const cairn::v1::ProfileKey& key,
                             const absl::Status& s) {
  if (s.code() != absl::StatusCode::kNotFound) return s;
  return absl::NotFoundError(
      absl::StrCat(kind, " profile '", key.id(), "'",
                   key.version() > 0 ? absl::StrCat(" version ", key.version()) : "",
                   " not found (List", kind == "hardware" ? "Hardware" : "Model",
                   "Profiles shows the stored ones)"));
}

absl::Status NotFoundDelete(absl::string_view kind, const std::string& id, const absl::Status& s) {
  if (s.code() != absl::StatusCode::kNotFound) return s;
  return absl::NotFoundError(absl::StrCat(kind, " profile '", id, "' not found; nothing deleted"));
}

}  // namespace

absl::StatusOr<cairn::v1::StoredHardwareProfile> ProfilesLogic::PutHardware(
    const cairn::v1::PutHardwareProfileRequest& request) {
  CAIRN_RETURN_IF_ERROR(ValidatePutHardwareProfileRequest(request));
  return store_->PutHardwareProfile(request.profile(), Rfc3339(clock_->Now()));
}

absl::StatusOr<cairn::v1::StoredHardwareProfile> ProfilesLogic::GetHardware(
    const cairn::v1::ProfileKey& key) {
  CAIRN_RETURN_IF_ERROR(ValidateProfileKey(key));
  absl::StatusOr<cairn::v1::StoredHardwareProfile> p =
      store_->GetHardwareProfile(key.id(), key.version());
  if (!p.ok()) return NotFoundProfile("hardware", key, p.status());
  return p;
}

absl::StatusOr<cairn::v1::ListHardwareProfilesResponse> ProfilesLogic::ListHardware(
    const cairn::v1::ListProfilesRequest& request) {
  CAIRN_RETURN_IF_ERROR(ValidateListProfilesRequest(request));
  const int limit = EffectivePageSize(request.page_size());
  CAIRN_ASSIGN_OR_RETURN(std::vector<cairn::v1::StoredHardwareProfile> page,
                         store_->ListHardwareProfiles(limit + 1, request.page_token()));
  cairn::v1::ListHardwareProfilesResponse out;
  out.set_next_page_token(TrimToPage(
      &page, limit, [](const cairn::v1::StoredHardwareProfile& p) { return p.id(); }));
  for (cairn::v1::StoredHardwareProfile& stored : page) {
    cairn::v1::StoredHardwareProfile* p = out.add_profiles();
    *p = std::move(stored);
    p->mutable_profile()->mutable_device()->clear_gemm();
    p->mutable_profile()->clear_collectives();
  }
  return out;
}

absl::StatusOr<cairn::v1::DeleteProfileResponse> ProfilesLogic::DeleteHardware(
    const cairn::v1::DeleteProfileRequest& request) {
  CAIRN_RETURN_IF_ERROR(ValidateDeleteProfileRequest(request));
  absl::StatusOr<int> n = store_->DeleteHardwareProfile(request.id());
  if (!n.ok()) return NotFoundDelete("hardware", request.id(), n.status());
  cairn::v1::DeleteProfileResponse out;
  out.set_versions_deleted(*n);
  return out;
}

absl::StatusOr<cairn::v1::StoredModelProfile> ProfilesLogic::PutModel(
    const cairn::v1::PutModelProfileRequest& request) {
  CAIRN_RETURN_IF_ERROR(ValidatePutModelProfileRequest(request));
  return store_->PutModelProfile(request.profile(), Rfc3339(clock_->Now()));
}

absl::StatusOr<cairn::v1::StoredModelProfile> ProfilesLogic::GetModel(
    const cairn::v1::ProfileKey& key) {
  CAIRN_RETURN_IF_ERROR(ValidateProfileKey(key));
  absl::StatusOr<cairn::v1::StoredModelProfile> p = store_->GetModelProfile(key.id(), key.version());
  if (!p.ok()) return NotFoundProfile("model", key, p.status());
  return p;
}

absl::StatusOr<cairn::v1::ListModelProfilesResponse> ProfilesLogic::ListModel(
    const cairn::v1::ListProfilesRequest& request) {
  CAIRN_RETURN_IF_ERROR(ValidateListProfilesRequest(request));
  const int limit = EffectivePageSize(request.page_size());
  CAIRN_ASSIGN_OR_RETURN(std::vector<cairn::v1::StoredModelProfile> page,
                         store_->ListModelProfiles(limit + 1, request.page_token()));
  cairn::v1::ListModelProfilesResponse out;
  out.set_next_page_token(TrimToPage(
      &page, limit, [](const cairn::v1::StoredModelProfile& p) { return p.id(); }));
  for (cairn::v1::StoredModelProfile& stored : page) {
    cairn::v1::StoredModelProfile* p = out.add_profiles();
    *p = std::move(stored);
    p->mutable_profile()->clear_timings();
  }
  return out;
}

absl::StatusOr<cairn::v1::DeleteProfileResponse> ProfilesLogic::DeleteModel(
    const cairn::v1::DeleteProfileRequest& request) {
  CAIRN_RETURN_IF_ERROR(ValidateDeleteProfileRequest(request));
  absl::StatusOr<int> n = store_->DeleteModelProfile(request.id());
  if (!n.ok()) return NotFoundDelete("model", request.id(), n.status());
  cairn::v1::DeleteProfileResponse out;
  out.set_versions_deleted(*n);
  return out;
}

}  // namespace cairn::planner
