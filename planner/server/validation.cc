#include "planner/server/validation.h"

#include <cmath>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "common/proto_fields.h"
#include "common/status_macros.h"
#include "planner/catalog/clusters.h"

namespace cairn::planner {
namespace {

absl::Status Invalid(absl::string_view field, absl::string_view problem) {
  return absl::InvalidArgumentError(absl::StrCat(field, " ", problem));
}

// A required id-like string: non-empty, at most kMaxIdBytes, printable ASCII without spaces.
absl::Status CheckId(absl::string_view field, const std::string& value, absl::string_view what) {
  if (value.empty()) return Invalid(field, absl::StrCat("is required (", what, ")"));
  return absl::OkStatus();
}

absl::Status CheckOptionalToken(absl::string_view field, const std::string& value) {
  if (static_cast<int>(value.size()) > kMaxIdBytes) {
    return Invalid(field, absl::StrCat("is longer than ", kMaxIdBytes, " bytes (got ",
                                       value.size(), ")"));
  }
  for (unsigned char c : value) {
    if (c <= ' ' || c >= 0x7f) {
      return Invalid(field, "may only contain printable ASCII characters without spaces");
    }
  }
  return absl::OkStatus();
}

absl::Status CheckRequiredToken(absl::string_view field, const std::string& value,
                                absl::string_view what) {
  CAIRN_RETURN_IF_ERROR(CheckId(field, value, what));
  return CheckOptionalToken(field, value);
}

absl::Status CheckPageSize(int page_size) {
  if (page_size < 0 || page_size > kMaxPageSize) {
    return Invalid("page_size", absl::StrCat("must be between 0 (default ", kDefaultPageSize,
                                             ") and ", kMaxPageSize, " (got ", page_size, ")"));
  }
  return absl::OkStatus();
}

// "ID" or "ID@N" with N >= 1.
absl::Status CheckProfileRef(absl::string_view field, const std::string& ref) {
  CAIRN_RETURN_IF_ERROR(CheckOptionalToken(field, ref));
  const size_t at = ref.find('@');
  if (at == std::string::npos) return absl::OkStatus();
  int version = 0;
  if (at == 0 || !absl::SimpleAtoi(absl::string_view(ref).substr(at + 1), &version) ||
      version < 1) {
    return Invalid(field, absl::StrCat("'", ref,
                                       "' must be a profile id, or ID@VERSION with VERSION >= 1"));
  }
  return absl::OkStatus();
}

absl::Status CheckStep(absl::string_view field, const cairn::v1::StepMetrics& s) {
  if (s.step() < 0) return Invalid(absl::StrCat(field, ".step"), "must be >= 0");
  if (s.step_time_s() < 0 || !std::isfinite(s.step_time_s())) {
    return Invalid(absl::StrCat(field, ".step_time_s"), "must be a finite number >= 0");
  }
  if (s.tokens_per_s() < 0 || !std::isfinite(s.tokens_per_s())) {
    return Invalid(absl::StrCat(field, ".tokens_per_s"), "must be a finite number >= 0");
  }
  if (s.peak_memory_bytes() < 0) {
    return Invalid(absl::StrCat(field, ".peak_memory_bytes"), "must be >= 0");
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status ValidateRequestLimits(const google::protobuf::Message& request) {
  using google::protobuf::FieldDescriptor;
  auto visit = [](const std::string& path, const FieldDescriptor* f,
                  const google::protobuf::Message& m, int index) -> std::string {
    if (f->cpp_type() != FieldDescriptor::CPPTYPE_STRING) return "";
    const google::protobuf::Reflection* r = m.GetReflection();
    std::string scratch;
    const std::string& value = index < 0 ? r->GetStringReference(m, f, &scratch)
                                         : r->GetRepeatedStringReference(m, f, index, &scratch);
    const size_t limit = f->type() == FieldDescriptor::TYPE_BYTES ? kMaxBytesFieldBytes
                         : f->name() == "notes"                   ? kMaxNotesBytes
                                                                  : kMaxStringBytes;
    if (value.size() <= limit) return "";
    return absl::StrCat(path, " is ", value.size(), " bytes; at most ", limit);
  };
  const std::string problem = VisitScalarFields(request, "", visit);
  if (problem.empty()) return absl::OkStatus();
  return absl::InvalidArgumentError(problem);
}

absl::Status CheckFinite(const google::protobuf::Message& message, absl::string_view prefix) {
  const std::string bad = NonFiniteField(message, std::string(prefix));
  if (bad.empty()) return absl::OkStatus();
  return absl::InvalidArgumentError(absl::StrCat(bad, ": must be a finite number"));
}

int EffectivePageSize(int page_size) { return page_size == 0 ? kDefaultPageSize : page_size; }

absl::Status ValidatePlanRequest(const cairn::v1::PlanRequest& r) {
  CAIRN_RETURN_IF_ERROR(CheckFinite(r.search(), "search"));
  const bool inline_model = r.search().has_model();
  if (inline_model && !r.model_name().empty()) {
    return Invalid("model_name", "and search.model are both set; set only one");
  }
  if (!inline_model && r.model_name().empty()) {
    return Invalid("model_name",
                   "is required: a catalog model such as llama2-7b (or set search.model)");
  }
  CAIRN_RETURN_IF_ERROR(CheckOptionalToken("model_name", r.model_name()));
  const bool inline_hw = r.search().cluster().has_hardware();
  const int sources = (inline_hw ? 1 : 0) + (r.hardware_profile_id().empty() ? 0 : 1) +
                      (r.cluster_name().empty() ? 0 : 1);
  if (sources == 0) {
    return Invalid("cluster_name",
                   "is required: a catalog cluster such as h100-sxm (or set hardware_profile_id "
                   "to a stored profile, or search.cluster)");
  }
  if (sources > 1) {
    return Invalid("cluster_name",
                   "conflicts: set only one of search.cluster, hardware_profile_id and "
                   "cluster_name");
  }
  CAIRN_RETURN_IF_ERROR(CheckOptionalToken("cluster_name", r.cluster_name()));
  CAIRN_RETURN_IF_ERROR(CheckProfileRef("hardware_profile_id", r.hardware_profile_id()));
  CAIRN_RETURN_IF_ERROR(CheckProfileRef("model_profile_id", r.model_profile_id()));
  if (inline_hw && (r.num_nodes() != 0 || r.devices_per_node() != 0)) {
    return Invalid("num_nodes",
                   "and devices_per_node apply to cluster_name and hardware_profile_id; with "
                   "search.cluster set search.cluster.num_nodes instead");
  }
  if (r.num_nodes() < 0 || r.num_nodes() > kMaxNodes) {
    return Invalid("num_nodes", absl::StrCat("must be between 1 and ", kMaxNodes, " (0 = 1; got ",
                                             r.num_nodes(), ")"));
  }
  if (r.devices_per_node() < 0) {
    return Invalid("devices_per_node", "must be >= 0 (0 = every device of the node)");
  }
  if (!r.model_profile_id().empty() && r.search().has_model_profile()) {
    return Invalid("model_profile_id", "and search.model_profile are both set; set only one");
  }
  return absl::OkStatus();
}

absl::Status ValidateGetPlanRequest(const cairn::v1::GetPlanRequest& r) {
  return CheckRequiredToken("plan_id", r.plan_id(), "the id Plan returned, or see ListPlans");
}

absl::Status ValidateListPlansRequest(const cairn::v1::ListPlansRequest& r) {
  CAIRN_RETURN_IF_ERROR(CheckPageSize(r.page_size()));
  CAIRN_RETURN_IF_ERROR(CheckOptionalToken("page_token", r.page_token()));
  return CheckOptionalToken("model_name", r.model_name());
}

absl::Status ValidatePutHardwareProfileRequest(const cairn::v1::PutHardwareProfileRequest& r) {
  if (!r.has_profile()) return Invalid("profile", "is required");
  CAIRN_RETURN_IF_ERROR(CheckFinite(r.profile(), "profile"));
  if (r.profile().fingerprint().device_model().empty()) {
    return Invalid("profile.fingerprint.device_model",
                   "is required: profiles are keyed by their fingerprint (device model, memory, "
                   "driver, CUDA, NCCL, topology)");
  }
  absl::Status s = ValidateHardwareProfile(r.profile());
  if (!s.ok()) return Invalid("profile:", s.message());
  return absl::OkStatus();
}

absl::Status ValidatePutModelProfileRequest(const cairn::v1::PutModelProfileRequest& r) {
  if (!r.has_profile()) return Invalid("profile", "is required");
  CAIRN_RETURN_IF_ERROR(CheckFinite(r.profile(), "profile"));
  const cairn::v1::ModelProfile& p = r.profile();
  if (p.model_name().empty()) {
    return Invalid("profile.model_name", "is required (the ModelSpec name the timings are for)");
  }
  if (p.device_model().empty()) {
    return Invalid("profile.device_model",
                   "is required (HardwareProfile.fingerprint.device_model of the device timed)");
  }
  if (p.activation_dtype_bytes() != 0 && p.activation_dtype_bytes() != 2 &&
      p.activation_dtype_bytes() != 4) {
    return Invalid("profile.activation_dtype_bytes",
                   absl::StrCat("must be 2 (bf16) or 4 (fp32), got ", p.activation_dtype_bytes()));
  }
  for (int i = 0; i < p.timings_size(); ++i) {
    const cairn::v1::LayerTiming& t = p.timings(i);
    const std::string f = absl::StrCat("profile.timings[", i, "]");
    if (t.tp_degree() < 1 || t.micro_batch_size() < 1 || t.seq_len() < 1) {
      return Invalid(f, "needs tp_degree, micro_batch_size and seq_len >= 1");
    }
    if (t.forward_s() < 0 || t.backward_s() < 0) {
      return Invalid(f, "has a negative time");
    }
  }
  return absl::OkStatus();
}

absl::Status ValidateProfileKey(const cairn::v1::ProfileKey& r) {
  CAIRN_RETURN_IF_ERROR(
      CheckRequiredToken("id", r.id(), "a profile id from Put*Profile or List*Profiles"));
  if (r.version() < 0) return Invalid("version", "must be >= 0 (0 = the latest version)");
  return absl::OkStatus();
}

absl::Status ValidateListProfilesRequest(const cairn::v1::ListProfilesRequest& r) {
  CAIRN_RETURN_IF_ERROR(CheckPageSize(r.page_size()));
  return CheckOptionalToken("page_token", r.page_token());
}

absl::Status ValidateDeleteProfileRequest(const cairn::v1::DeleteProfileRequest& r) {
  return CheckRequiredToken("id", r.id(), "the profile id to delete, every version");
}

absl::Status ValidateRegisterAgentRequest(const cairn::v1::RegisterAgentRequest& r) {
  if (r.hostname().empty()) return Invalid("hostname", "is required (the node's host name)");
  if (r.hostname().size() > 253) return Invalid("hostname", "is longer than 253 characters");
  const size_t colon = r.address().rfind(':');
  int port = 0;
  if (r.address().empty() || colon == std::string::npos || colon == 0 ||
      !absl::SimpleAtoi(absl::string_view(r.address()).substr(colon + 1), &port) || port < 1 ||
      port > 65535) {
    return Invalid("address", absl::StrCat("must be HOST:PORT where the agent's workers can be "
                                           "reached, e.g. node7:7071 (got '",
                                           r.address(), "')"));
  }
  if (r.num_devices() < 1 || r.num_devices() > kMaxAgentDevices) {
    return Invalid("num_devices", absl::StrCat("must be between 1 and ", kMaxAgentDevices,
                                               " (got ", r.num_devices(), ")"));
  }
  return CheckOptionalToken("agent_id", r.agent_id());
}

absl::Status ValidateHeartbeatRequest(const cairn::v1::HeartbeatRequest& r) {
  return CheckRequiredToken("agent_id", r.agent_id(), "the id RegisterAgent returned");
}

absl::Status ValidateWatchAssignmentsRequest(const cairn::v1::WatchAssignmentsRequest& r) {
  return CheckRequiredToken("agent_id", r.agent_id(), "the id RegisterAgent returned");
}

absl::Status ValidateSubmitJobRequest(const cairn::v1::SubmitJobRequest& r) {
  const int sources = (r.plan_id().empty() ? 0 : 1) + (r.has_search() ? 1 : 0) +
                      (r.has_plan() ? 1 : 0);
  if (sources != 1) {
    return Invalid("plan_id", sources == 0
                                  ? "or search or plan is required: a stored plan, a search to "
                                    "run now, or a plan given whole"
                                  : "search and plan: set only one of them");
  }
  if (r.plan_for_agents() && !r.has_search()) {
    return Invalid("plan_for_agents", "needs search (the model, batch and sequence to plan)");
  }
  if (r.has_plan()) {
    const cairn::v1::Plan& p = r.plan();
    if (p.num_nodes() < 1 || p.devices_per_node() < 1 || p.layers().empty() ||
        p.model_name().empty()) {
      return Invalid("plan", "must name its model and have num_nodes, devices_per_node and layers "
                             "(write it with `cairn plan --output FILE`)");
    }
  }
  if (r.max_restarts() < 0 || r.max_restarts() > 100) {
    return Invalid("max_restarts", absl::StrCat("must be in [0, 100], got ", r.max_restarts()));
  }
  if (r.max_restarts() > 0 && r.checkpoint_dir().empty()) {
    return Invalid("checkpoint_dir", "is required with max_restarts (a restart resumes from it)");
  }
  if (r.checkpoint_every() < 0) {
    return Invalid("checkpoint_every", "must be >= 0 (0 = at the end only)");
  }
  if (r.checkpoint_dir().size() > 4096) return Invalid("checkpoint_dir", "is too long");
  CAIRN_RETURN_IF_ERROR(CheckOptionalToken("plan_id", r.plan_id()));
  if (r.has_search()) {
    absl::Status s = ValidatePlanRequest(r.search());
    if (!s.ok()) return absl::InvalidArgumentError(absl::StrCat("search.", s.message()));
  }
  if (r.steps() < 1) {
    return Invalid("steps", "must be at least 1 (the number of optimizer steps to run)");
  }
  if (r.data_path().empty()) {
    return Invalid("data_path",
                   "is required (the token shard directory, as the workers see it)");
  }
  if (r.name().size() > static_cast<size_t>(kMaxIdBytes)) {
    return Invalid("name", absl::StrCat("is longer than ", kMaxIdBytes, " bytes"));
  }
  return absl::OkStatus();
}

absl::Status ValidateGetJobRequest(const cairn::v1::GetJobRequest& r) {
  return CheckRequiredToken("job_id", r.job_id(), "the id SubmitJob returned, or see ListJobs");
}

absl::Status ValidateListJobsRequest(const cairn::v1::ListJobsRequest& r) {
  CAIRN_RETURN_IF_ERROR(CheckPageSize(r.page_size()));
  CAIRN_RETURN_IF_ERROR(CheckOptionalToken("page_token", r.page_token()));
  if (!cairn::v1::JobState_IsValid(r.state())) {
    return Invalid("state", absl::StrCat("has no meaning: ", r.state(), " is not a JobState"));
  }
  return absl::OkStatus();
}

absl::Status ValidateCancelJobRequest(const cairn::v1::CancelJobRequest& r) {
  return CheckRequiredToken("job_id", r.job_id(), "the job to cancel");
}

absl::Status ValidateWatchJobRequest(const cairn::v1::WatchJobRequest& r) {
  return CheckRequiredToken("job_id", r.job_id(), "the job to watch");
}

absl::Status ValidateAppendJobLogsRequest(const cairn::v1::AppendJobLogsRequest& r) {
  CAIRN_RETURN_IF_ERROR(CheckRequiredToken("job_id", r.job_id(), "the job whose output this is"));
  CAIRN_RETURN_IF_ERROR(CheckRequiredToken("agent_id", r.agent_id(), "the sending agent's id"));
  if (r.rank() < 0) return Invalid("rank", "must be >= 0");
  if (r.data().size() > static_cast<size_t>(kMaxJobLogChunkBytes)) {
    return Invalid("data", absl::StrCat("is ", r.data().size(), " bytes; send at most ",
                                        kMaxJobLogChunkBytes, " per call"));
  }
  return absl::OkStatus();
}

absl::Status ValidateGetJobLogsRequest(const cairn::v1::GetJobLogsRequest& r) {
  CAIRN_RETURN_IF_ERROR(CheckRequiredToken("job_id", r.job_id(), "the id SubmitJob returned"));
  if (r.tail_bytes() < 0) return Invalid("tail_bytes", "must be >= 0 (0 = everything kept)");
  for (int rank : r.ranks()) {
    if (rank < 0) return Invalid("ranks", "must be >= 0");
  }
  return absl::OkStatus();
}

absl::Status ValidateProbeAgentsRequest(const cairn::v1::ProbeAgentsRequest& r) {
  for (const std::string& id : r.agent_ids()) {
    CAIRN_RETURN_IF_ERROR(CheckRequiredToken("agent_ids", id, "agent ids or host names"));
  }
  for (const std::string& s : r.suites()) {
    if (s != "compute" && s != "comm" && s != "overlap" && s != "layers") {
      return Invalid("suites", absl::StrCat("has '", s, "'; the suites are compute, comm, overlap, "
                                            "layers"));
    }
  }
  for (const std::string& m : r.models()) CAIRN_RETURN_IF_ERROR(CheckRequiredToken("models", m, "a catalog model"));
  return absl::OkStatus();
}

absl::Status ValidateReportJobStatusRequest(const cairn::v1::ReportJobStatusRequest& r) {
  CAIRN_RETURN_IF_ERROR(CheckRequiredToken("job_id", r.job_id(), "the job reported on"));
  CAIRN_RETURN_IF_ERROR(
      CheckRequiredToken("agent_id", r.agent_id(), "the reporting agent's id"));
  switch (r.state()) {
    case cairn::v1::JOB_STATE_UNSPECIFIED:
      if (!r.has_step()) {
        return Invalid("state", "or step is required: report a new state, a step's metrics, or both");
      }
      break;
    case cairn::v1::JOB_STATE_RUNNING:
    case cairn::v1::JOB_STATE_SUCCEEDED:
    case cairn::v1::JOB_STATE_FAILED:
      break;
    default:
      return Invalid("state", absl::StrCat("must be RUNNING, SUCCEEDED or FAILED (agents do not "
                                           "report ",
                                           cairn::v1::JobState_IsValid(r.state())
                                               ? cairn::v1::JobState_Name(r.state())
                                               : absl::StrCat(r.state()),
                                           ")"));
  }
  if (r.message().size() > static_cast<size_t>(kMaxJobMessageBytes)) {
    return Invalid("message", absl::StrCat("is longer than ", kMaxJobMessageBytes, " bytes"));
  }
  if (r.has_step()) CAIRN_RETURN_IF_ERROR(CheckStep("step", r.step()));
  return absl::OkStatus();
}

namespace {
absl::Status CheckRendezvousKey(absl::string_view field, const std::string& key) {
  if (key.empty()) return Invalid(field, "is required (e.g. \"nccl_unique_id\")");
  if (key.size() > static_cast<size_t>(kMaxRendezvousKeyBytes)) {
    return Invalid(field, absl::StrCat("is longer than ", kMaxRendezvousKeyBytes, " bytes"));
  }
  return absl::OkStatus();
}
}  // namespace

absl::Status ValidateRendezvousSetRequest(const cairn::v1::RendezvousSetRequest& r) {
  CAIRN_RETURN_IF_ERROR(CheckRequiredToken("job_id", r.job_id(), "the job the workers belong to"));
  CAIRN_RETURN_IF_ERROR(CheckRendezvousKey("key", r.key()));
  if (r.value().size() > static_cast<size_t>(kMaxRendezvousValueBytes)) {
    return Invalid("value", absl::StrCat("is ", r.value().size(), " bytes; at most ",
                                         kMaxRendezvousValueBytes,
                                         " (64 KiB) fit: store a path or address instead"));
  }
  return absl::OkStatus();
}

absl::Status ValidateRendezvousGetRequest(const cairn::v1::RendezvousGetRequest& r) {
  CAIRN_RETURN_IF_ERROR(CheckRequiredToken("job_id", r.job_id(), "the job the workers belong to"));
  return CheckRendezvousKey("key", r.key());
}

absl::Status ValidateRendezvousWaitRequest(const cairn::v1::RendezvousWaitRequest& r) {
  CAIRN_RETURN_IF_ERROR(CheckRequiredToken("job_id", r.job_id(), "the job the workers belong to"));
  if (r.keys().empty()) return Invalid("keys", "is required: the keys to wait for");
  if (r.keys_size() > kMaxRendezvousWaitKeys) {
    return Invalid("keys", absl::StrCat("has ", r.keys_size(), " keys; wait for at most ",
                                        kMaxRendezvousWaitKeys, " per call"));
  }
  std::set<std::string> seen;
  for (int i = 0; i < r.keys_size(); ++i) {
    CAIRN_RETURN_IF_ERROR(CheckRendezvousKey(absl::StrCat("keys[", i, "]"), r.keys(i)));
    if (!seen.insert(r.keys(i)).second) {
      return Invalid(absl::StrCat("keys[", i, "]"), absl::StrCat("'", r.keys(i), "' is repeated"));
    }
  }
  if (!(r.timeout_s() > 0) || r.timeout_s() > kMaxRendezvousWaitS) {
    return Invalid("timeout_s", absl::StrCat("must be > 0 and at most ", kMaxRendezvousWaitS,
                                             " seconds (got ", r.timeout_s(), ")"));
  }
  return absl::OkStatus();
}

}  // namespace cairn::planner
