// planner/server/profiles_logic.h — the Profiles service's logic: hardware and model profiles,
// keyed by fingerprint (StableProfileId) and versioned by the store.
//
//   ProfilesLogic profiles(&store, &clock);
//   absl::StatusOr<cairn::v1::StoredHardwareProfile> p = profiles.PutHardware(request);
//   // p->id() is the fingerprint's id; putting the same fingerprint again makes version 2.
//
// Lists return the latest version of each id without the measurement tables (GEMM points,
// collectives, layer timings), so a page stays small; Get returns everything.
// Errors: INVALID_ARGUMENT (validation.h), NOT_FOUND naming the id (and version) asked for, store
// errors as they are. Thread-safe.
#ifndef CAIRN_PLANNER_SERVER_PROFILES_LOGIC_H_
#define CAIRN_PLANNER_SERVER_PROFILES_LOGIC_H_

#include "absl/status/statusor.h"
#include "planner/server/clock.h"
#include "planner/store/store.h"
#include "proto/cairn/v1/service.pb.h"

namespace cairn::planner {

class ProfilesLogic {
 public:
  ProfilesLogic(Store* store, const Clock* clock) : store_(store), clock_(clock) {}

  absl::StatusOr<cairn::v1::StoredHardwareProfile> PutHardware(
      const cairn::v1::PutHardwareProfileRequest& request);
  absl::StatusOr<cairn::v1::StoredHardwareProfile> GetHardware(const cairn::v1::ProfileKey& key);
  absl::StatusOr<cairn::v1::ListHardwareProfilesResponse> ListHardware(
      const cairn::v1::ListProfilesRequest& request);
  absl::StatusOr<cairn::v1::DeleteProfileResponse> DeleteHardware(
      const cairn::v1::DeleteProfileRequest& request);

  absl::StatusOr<cairn::v1::StoredModelProfile> PutModel(
      const cairn::v1::PutModelProfileRequest& request);
  absl::StatusOr<cairn::v1::StoredModelProfile> GetModel(const cairn::v1::ProfileKey& key);
  absl::StatusOr<cairn::v1::ListModelProfilesResponse> ListModel(
      const cairn::v1::ListProfilesRequest& request);
  absl::StatusOr<cairn::v1::DeleteProfileResponse> DeleteModel(
      const cairn::v1::DeleteProfileRequest& request);

 private:
  Store* const store_;
  const Clock* const clock_;
};

}  // namespace cairn::planner

#endif  // CAIRN_PLANNER_SERVER_PROFILES_LOGIC_H_
