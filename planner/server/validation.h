// planner/server/validation.h — checks every cairn.v1 request before the logic acts on it.
//
// One function per request message. Each returns OK or INVALID_ARGUMENT whose message starts with
// the offending field and says what to send instead, e.g.
//
//   "steps must be at least 1 (the number of optimizer steps to run)"
//   "keys: at most 1024 keys per wait (got 5000)"
//
// They check what can be checked without the store: presence, ranges, sizes, exclusive choices.
// What needs the store (does the plan exist?) is checked by the logic classes (NOT_FOUND,
// FAILED_PRECONDITION); the search request itself is checked by BuildSearchProblem after the
// model and cluster are resolved. validation_test.cc holds the table of bad requests.
// Thread-safe (pure functions).
#ifndef CAIRN_PLANNER_SERVER_VALIDATION_H_
#define CAIRN_PLANNER_SERVER_VALIDATION_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "google/protobuf/message.h"
#include "proto/cairn/v1/service.pb.h"

namespace cairn::planner {

inline constexpr int kDefaultPageSize = 50;
inline constexpr int kMaxPageSize = 1000;
inline constexpr int kMaxIdBytes = 128;            // ids, page tokens, job names
inline constexpr int kMaxJobLogChunkBytes = 256 * 1024;  // AppendJobLogs.data
inline constexpr int kMaxAgentDevices = 1024;
inline constexpr int kMaxRendezvousKeyBytes = 256;
inline constexpr int kMaxRendezvousValueBytes = 64 * 1024;
inline constexpr int kMaxRendezvousWaitKeys = 1024;
inline constexpr double kMaxRendezvousWaitS = 3600;
inline constexpr int kMaxRendezvousKeysPerJob = 4096;
inline constexpr int64_t kMaxRendezvousBytesPerJob = int64_t{16} << 20;
inline constexpr int kMaxRendezvousWaiters = 4096;        // waits pending at once, all jobs
inline constexpr int kMaxRendezvousWaitersPerJob = 1024;
inline constexpr int kMaxKeysNamedInMessages = 10;        // a timeout names this many missing keys
inline constexpr int kMaxWatchStreams = 4096;             // WatchJob + WatchAssignments streams
inline constexpr int kMaxJobMessageBytes = 4096;
inline constexpr int kMaxStringBytes = 4096;         // any other string field of a request
inline constexpr int kMaxNotesBytes = 64 * 1024;     // HardwareProfile.notes
inline constexpr int kMaxBytesFieldBytes = 1 << 20;  // any bytes field (rendezvous values: 64 KiB)

// page_size 0 -> kDefaultPageSize (call after validation).
int EffectivePageSize(int page_size);

// Lists ask the store for one row more than the page holds: if it came, the page is cut to `limit`
// rows and the next page starts after the last one kept. Returns the next_page_token ("" = last page).
template <typename T, typename IdOf>
std::string TrimToPage(std::vector<T>* rows, int limit, IdOf id_of) {
  if (static_cast<int>(rows->size()) <= limit) return "";
  rows->resize(limit);
  return id_of(rows->back());
}

// Every request, before its own check: no string field longer than kMaxStringBytes (notes:
// kMaxNotesBytes), no bytes field longer than kMaxBytesFieldBytes, at any depth. The message
// names the field path ("search.model.name is 5000 bytes; at most 4096").
absl::Status ValidateRequestLimits(const google::protobuf::Message& request);

// Every float and double field of `message` (at any depth) is finite; otherwise INVALID_ARGUMENT
// "<prefix>.<path> = inf: must be a finite number". Profiles with infinite rates are refused
// before they are stored.
absl::Status CheckFinite(const google::protobuf::Message& message, absl::string_view prefix);

absl::Status ValidatePlanRequest(const cairn::v1::PlanRequest& r);
absl::Status ValidateGetPlanRequest(const cairn::v1::GetPlanRequest& r);
absl::Status ValidateListPlansRequest(const cairn::v1::ListPlansRequest& r);

absl::Status ValidatePutHardwareProfileRequest(const cairn::v1::PutHardwareProfileRequest& r);
absl::Status ValidatePutModelProfileRequest(const cairn::v1::PutModelProfileRequest& r);
absl::Status ValidateProfileKey(const cairn::v1::ProfileKey& r);
absl::Status ValidateListProfilesRequest(const cairn::v1::ListProfilesRequest& r);
absl::Status ValidateDeleteProfileRequest(const cairn::v1::DeleteProfileRequest& r);

absl::Status ValidateRegisterAgentRequest(const cairn::v1::RegisterAgentRequest& r);
absl::Status ValidateHeartbeatRequest(const cairn::v1::HeartbeatRequest& r);
absl::Status ValidateWatchAssignmentsRequest(const cairn::v1::WatchAssignmentsRequest& r);

absl::Status ValidateSubmitJobRequest(const cairn::v1::SubmitJobRequest& r);
absl::Status ValidateGetJobRequest(const cairn::v1::GetJobRequest& r);
absl::Status ValidateListJobsRequest(const cairn::v1::ListJobsRequest& r);
absl::Status ValidateCancelJobRequest(const cairn::v1::CancelJobRequest& r);
absl::Status ValidateWatchJobRequest(const cairn::v1::WatchJobRequest& r);
absl::Status ValidateReportJobStatusRequest(const cairn::v1::ReportJobStatusRequest& r);
absl::Status ValidateAppendJobLogsRequest(const cairn::v1::AppendJobLogsRequest& r);
absl::Status ValidateGetJobLogsRequest(const cairn::v1::GetJobLogsRequest& r);
absl::Status ValidateProbeAgentsRequest(const cairn::v1::ProbeAgentsRequest& r);

absl::Status ValidateRendezvousSetRequest(const cairn::v1::RendezvousSetRequest& r);
absl::Status ValidateRendezvousGetRequest(const cairn::v1::RendezvousGetRequest& r);
absl::Status ValidateRendezvousWaitRequest(const cairn::v1::RendezvousWaitRequest& r);

}  // namespace cairn::planner

#endif  // CAIRN_PLANNER_SERVER_VALIDATION_H_
