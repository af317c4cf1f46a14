// libFuzzer target: the planner daemon's request checks, on arbitrary bytes for every RPC.
//
// The first input byte picks one of the 28 methods of cairn.v1 (in descriptor order), the rest is
// its request's wire bytes. What runs is what the daemon runs before any work: ParseRequest (the
// raw-bytes parser with its INVALID_ARGUMENT diagnosis), ValidateRequestLimits, the method's own
// Validate* function, and for Plan and SubmitJob the whole resolution of the search
// (PlannerLogic::Resolve on an empty in-memory store: catalog lookups, MakeCluster,
// BuildSearchProblem with its limits). Any crash, sanitizer report, or leak is a finding; errors
// returned as Status are the expected outcome.
//
//   tools/fuzz.sh validation_fuzz          # builds with clang, runs on testdata/validation_fuzz
//
// Seeds: planner/server/testdata/validation_fuzz/ (one file per method: selector byte + a valid
// request), made by tools/fuzz_seeds.sh.
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "google/protobuf/descriptor.h"
#include "google/protobuf/dynamic_message.h"
#include "google/protobuf/message.h"
#include "planner/search/search.h"
#include "planner/server/clock.h"
#include "planner/server/metrics.h"
#include "planner/server/planner_logic.h"
#include "planner/server/rpc_call.h"
#include "planner/server/timer_thread.h"
#include "planner/server/validation.h"
#include "planner/store/testing/memory_store.h"
#include "proto/cairn/v1/service.pb.h"

namespace cairn::planner {
namespace {

std::vector<const google::protobuf::MethodDescriptor*> AllMethods() {
  std::vector<const google::protobuf::MethodDescriptor*> out;
  for (const char* service : {"cairn.v1.Planner", "cairn.v1.Profiles", "cairn.v1.Agents",
                              "cairn.v1.Jobs", "cairn.v1.Rendezvous"}) {
    const google::protobuf::ServiceDescriptor* sd =
        google::protobuf::DescriptorPool::generated_pool()->FindServiceByName(service);
    for (int i = 0; i < sd->method_count(); ++i) out.push_back(sd->method(i));
  }
  return out;
}

// What the daemon checks before acting on `m` (a parsed request of its type).
void Check(const google::protobuf::Message& m, PlannerLogic* planner) {
  const std::string& type = m.GetDescriptor()->full_name();
  using namespace cairn::v1;  // NOLINT: the request types below
  if (type == "cairn.v1.PlanRequest") {
    (void)planner->Resolve(static_cast<const PlanRequest&>(m));
  } else if (type == "cairn.v1.GetPlanRequest") {
    (void)ValidateGetPlanRequest(static_cast<const GetPlanRequest&>(m));
  } else if (type == "cairn.v1.ListPlansRequest") {
    (void)ValidateListPlansRequest(static_cast<const ListPlansRequest&>(m));
  } else if (type == "cairn.v1.PutHardwareProfileRequest") {
    (void)ValidatePutHardwareProfileRequest(static_cast<const PutHardwareProfileRequest&>(m));
  } else if (type == "cairn.v1.PutModelProfileRequest") {
    (void)ValidatePutModelProfileRequest(static_cast<const PutModelProfileRequest&>(m));
  } else if (type == "cairn.v1.ProfileKey") {
    (void)ValidateProfileKey(static_cast<const ProfileKey&>(m));
  } else if (type == "cairn.v1.ListProfilesRequest") {
    (void)ValidateListProfilesRequest(static_cast<const ListProfilesRequest&>(m));
  } else if (type == "cairn.v1.DeleteProfileRequest") {
    (void)ValidateDeleteProfileRequest(static_cast<const DeleteProfileRequest&>(m));
  } else if (type == "cairn.v1.RegisterAgentRequest") {
    (void)ValidateRegisterAgentRequest(static_cast<const RegisterAgentRequest&>(m));
  } else if (type == "cairn.v1.HeartbeatRequest") {
    (void)ValidateHeartbeatRequest(static_cast<const HeartbeatRequest&>(m));
  } else if (type == "cairn.v1.WatchAssignmentsRequest") {
    (void)ValidateWatchAssignmentsRequest(static_cast<const WatchAssignmentsRequest&>(m));
  } else if (type == "cairn.v1.SubmitJobRequest") {
    const auto& r = static_cast<const SubmitJobRequest&>(m);
    if (ValidateSubmitJobRequest(r).ok() && r.has_search()) (void)planner->Resolve(r.search());
  } else if (type == "cairn.v1.GetJobRequest") {
    (void)ValidateGetJobRequest(static_cast<const GetJobRequest&>(m));
  } else if (type == "cairn.v1.ListJobsRequest") {
    (void)ValidateListJobsRequest(static_cast<const ListJobsRequest&>(m));
  } else if (type == "cairn.v1.CancelJobRequest") {
    (void)ValidateCancelJobRequest(static_cast<const CancelJobRequest&>(m));
  } else if (type == "cairn.v1.WatchJobRequest") {
    (void)ValidateWatchJobRequest(static_cast<const WatchJobRequest&>(m));
  } else if (type == "cairn.v1.ReportJobStatusRequest") {
    (void)ValidateReportJobStatusRequest(static_cast<const ReportJobStatusRequest&>(m));
  } else if (type == "cairn.v1.AppendJobLogsRequest") {
    (void)ValidateAppendJobLogsRequest(static_cast<const AppendJobLogsRequest&>(m));
  } else if (type == "cairn.v1.GetJobLogsRequest") {
    (void)ValidateGetJobLogsRequest(static_cast<const GetJobLogsRequest&>(m));
  } else if (type == "cairn.v1.ProbeAgentsRequest") {
    (void)ValidateProbeAgentsRequest(static_cast<const ProbeAgentsRequest&>(m));
  } else if (type == "cairn.v1.RendezvousSetRequest") {
    (void)ValidateRendezvousSetRequest(static_cast<const RendezvousSetRequest&>(m));
  } else if (type == "cairn.v1.RendezvousGetRequest") {
    (void)ValidateRendezvousGetRequest(static_cast<const RendezvousGetRequest&>(m));
  } else if (type == "cairn.v1.RendezvousWaitRequest") {
    (void)ValidateRendezvousWaitRequest(static_cast<const RendezvousWaitRequest&>(m));
  }
  // ListAgentsRequest has nothing to check.
}

}  // namespace
}  // namespace cairn::planner

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace cairn::planner;  // NOLINT
  static const std::vector<const google::protobuf::MethodDescriptor*> methods = AllMethods();
  static auto* store = new testing::MemoryStore();
  static auto* timers = new TimerThread();
  static auto* metrics = new Metrics();
  static auto* planner = [] {
    PlannerOptions o;
    o.search_workers = 1;
    o.search_queue = 0;
    return new PlannerLogic(store, timers, metrics, &RealClock::Get(), o);
  }();
  if (size < 1) return 0;
  const google::protobuf::MethodDescriptor* method = methods[data[0] % methods.size()];
  std::unique_ptr<google::protobuf::Message> request(
      google::protobuf::MessageFactory::generated_factory()
          ->GetPrototype(method->input_type())
          ->New());
  grpc::Slice slice(reinterpret_cast<const char*>(data + 1), size - 1);
  const grpc::ByteBuffer bytes(&slice, 1);
  if (!ParseRequest(bytes, request.get()).ok()) return 0;
  if (!ValidateRequestLimits(*request).ok()) return 0;
  Check(*request, planner);
  return 0;
}
