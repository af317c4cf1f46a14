#include "planner/cli/remote.h"

#include <memory>
#include <sstream>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "common/status_macros.h"
#include "common/units.h"
#include "google/protobuf/util/json_util.h"
#include "planner/catalog/clusters.h"
#include "planner/catalog/json_io.h"
#include "planner/cli/export.h"
#include "planner/cli/problem_flags.h"
#include "planner/cli/profile_diff.h"
#include "planner/cli/render.h"
#include "planner/picture/picture_render.h"
#include "planner/plan/plan_convert.h"
#include "proto/cairn/v1/service.grpc.pb.h"
#include "runtime/comm/planner_store.h"

namespace cairn::cli {
namespace {

using cairn::v1::Agents;
using cairn::v1::Jobs;
using cairn::v1::Planner;
using cairn::v1::Profiles;

int Fail(std::ostream& err, const absl::Status& s) {
  err << "cairn: " << s.message() << "\n";
  return s.code() == absl::StatusCode::kInvalidArgument ||
                 s.code() == absl::StatusCode::kNotFound ||
                 s.code() == absl::StatusCode::kAlreadyExists
             ? 2
             : 1;
}

class Client {
 public:
  static absl::StatusOr<std::unique_ptr<Client>> Connect(const Connection& c) {
    // The daemon's one client connection (runtime/comm/planner_store.h): TLS, bearer token file,
    // message size, reconnect backoff, as for agents and workers.
    runtime::PlannerConnection pc;
    pc.address = c.address;
    pc.token_file = c.token_file;
    pc.tls_ca_file = c.tls_ca;
    auto client = std::unique_ptr<Client>(new Client);
    client->connection_ = c;
    if (!c.token_file.empty()) {
      CAIRN_ASSIGN_OR_RETURN(client->token_, runtime::ReadBearerToken(c.token_file));
    }
    CAIRN_ASSIGN_OR_RETURN(std::shared_ptr<grpc::Channel> channel, runtime::OpenPlannerChannel(pc));
    client->planner_ = Planner::NewStub(channel);
    client->profiles_ = Profiles::NewStub(channel);
    client->agents_ = Agents::NewStub(channel);
    client->jobs_ = Jobs::NewStub(channel);
    return client;
  }

  std::unique_ptr<grpc::ClientContext> Context() const {
    auto ctx = std::make_unique<grpc::ClientContext>();
    ctx->set_deadline(std::chrono::system_clock::now() +
                      std::chrono::milliseconds(static_cast<int64_t>(connection_.timeout_s * 1000)));
    if (!token_.empty()) ctx->AddMetadata("authorization", "Bearer " + token_);
    return ctx;
  }

  absl::Status Check(const grpc::Status& s) const { return FromGrpc(s, connection_.address); }

  Connection connection_;
  std::string token_;
  std::unique_ptr<Planner::Stub> planner_;
  std::unique_ptr<Profiles::Stub> profiles_;
  std::unique_ptr<Agents::Stub> agents_;
  std::unique_ptr<Jobs::Stub> jobs_;
};

std::string Json(const google::protobuf::Message& m) {
  std::string out;
  google::protobuf::util::JsonPrintOptions opt;
  opt.add_whitespace = true;
  opt.preserve_proto_field_names = true;
  (void)google::protobuf::util::MessageToJsonString(m, &out, opt);
  return out;
}

const char* JobStateName(cairn::v1::JobState s) {
  switch (s) {
    case cairn::v1::JOB_STATE_PENDING: return "pending";
    case cairn::v1::JOB_STATE_ASSIGNED: return "assigned";
    case cairn::v1::JOB_STATE_RUNNING: return "running";
    case cairn::v1::JOB_STATE_SUCCEEDED: return "succeeded";
    case cairn::v1::JOB_STATE_FAILED: return "failed";
    case cairn::v1::JOB_STATE_CANCELLED: return "cancelled";
    default: return "unknown";
  }
}

// `--output FILE`: the plan as the JSON `cairn plan --output` writes.
absl::Status WritePlanJson(const cairn::v1::Plan& plan, const std::string& path) {
  CAIRN_ASSIGN_OR_RETURN(std::string json, planner::PlanToJson(plan));
  return planner::WriteTextFile(path, json);
}

void RenderJob(const cairn::v1::Job& j, std::ostream& out) {
  out << absl::StrFormat("%-24s %-10s plan %-24s steps %d  %s\n", j.job_id(),
                         JobStateName(j.state()), j.plan_id(), j.steps(), j.message());
}

int RemotePlan(Client& c, const Flags& a, std::ostream& out, std::ostream& err) {
  absl::StatusOr<Loaded> loaded = LoadProblem(a);
  if (!loaded.ok()) return Fail(err, loaded.status());
  // The same output forms as the local search (--json is --format json).
  const std::string format = a.Has("json") ? "json" : a.Get("format");
  if (absl::Status s = CheckOutputFormat(format); !s.ok()) return Fail(err, s);
  if (absl::Status s = CheckOutputFiles(a); !s.ok()) return Fail(err, s);
  const planner::PictureFiles pictures{a.Get("svg"), a.Get("html")};
  if (!pictures.empty() && a.Has("profile")) {
    // The picture re-scores the plan with the local cost model, which has no stored profile.
    return Fail(err, absl::InvalidArgumentError(
                         "--svg/--html need the plan's hardware here: not with --profile (save the "
                         "plan with --output and run `cairn evaluate --plan FILE "
                         "--hardware-profile FILE.json --svg ...`)"));
  }
  cairn::v1::PlanRequest req;
  *req.mutable_search() = loaded->request;
  req.set_no_cache(a.Has("no-cache"));
  if (a.Has("profile")) {
    req.mutable_search()->mutable_cluster()->clear_hardware();
    req.set_hardware_profile_id(a.Get("profile"));
    req.set_num_nodes(loaded->request.cluster().num_nodes());
  }
  auto ctx = c.Context();
  auto reader = c.planner_->PlanStream(ctx.get(), req);
  cairn::v1::PlanProgress progress;
  cairn::v1::PlanResponse response;
  bool done = false;
  const bool tty = IsTerminal(err);
  bool open_line = false;
  while (reader->Read(&progress)) {
    if (progress.has_response()) {
      response = progress.response();
      done = true;
    } else if (!a.Has("quiet")) {
      const bool last = progress.combinations_done() == progress.combinations_total();
      PrintProgress(err, tty,
                    absl::StrCat("searching on ", c.connection_.address, ": ",
                                 progress.combinations_done(), "/",
                                 progress.combinations_total(), " combinations"),
                    last);
      open_line = tty && !last;
    }
  }
  if (open_line) err << "\n";  // the terminal's progress line ended without its final report
  if (absl::Status s = c.Check(reader->Finish()); !s.ok()) return Fail(err, s);
  if (!done) return Fail(err, absl::InternalError("the planner closed the stream without a result"));
  const cairn::v1::SearchResponse& r = response.result();
  if (r.plans_size() == 0) {
    err << "cairn: " << r.infeasible_reason() << "\n";
    return 1;
  }
  if (a.Has("output")) {
    if (absl::Status st = WritePlanJson(r.plans(0), a.Get("output")); !st.ok()) return Fail(err, st);
  }
  if (absl::Status s = planner::WritePlanPictures(pictures, loaded->problem, r.plans(0), err);
      !s.ok()) {
    return Fail(err, s);
  }
  if (format == "json") {
    // The best Plan, exactly as the local `cairn plan --json` prints it; the daemon's plan id (for
    // `jobs submit --plan ID`, `plans show`) goes to stderr.
    absl::StatusOr<std::string> json = planner::PlanToJson(r.plans(0));
    if (!json.ok()) return Fail(err, json.status());
    out << *json << "\n";
    err << "cairn: plan id " << response.plan_id()
        << (response.cached() ? " (from the plan cache)" : "") << "\n";
    return 0;
  }
  if (IsExportFormat(format)) {
    // Megatron: the flags the daemon rendered (PlanResponse.megatron_flags). The other forms here;
    // re-splitting scores plans with the local cost model: only when it has the daemon's hardware
    // (not for a stored --profile).
    return PrintPlanResponseExport(loaded->problem, response, format,
                                   /*allow_resplit=*/!a.Has("profile"), out, err);
  }
  RenderSearchResponse(r, a.Has("explain"), out);
  out << "Plan id " << response.plan_id() << (response.cached() ? " (from the plan cache)" : "")
      << "\n";
  return 0;
}

int Profiles(Client& c, const std::string& verb, const Flags& a, std::ostream& out,
             std::ostream& err) {
  const std::string kind = a.Get("kind");
  if (kind != "hardware" && kind != "model") {
    return Fail(err, absl::InvalidArgumentError("--kind must be hardware or model"));
  }
  const bool hw = kind == "hardware";
  if (verb == "list") {
    cairn::v1::ListProfilesRequest req;
    req.set_page_size(1000);
    auto ctx = c.Context();
    if (hw) {
      cairn::v1::ListHardwareProfilesResponse resp;
      if (auto s = c.Check(c.profiles_->ListHardwareProfiles(ctx.get(), req, &resp)); !s.ok()) {
        return Fail(err, s);
      }
      for (const auto& p : resp.profiles()) {
        out << absl::StrFormat("%-18s v%-3d %-10s %-32s %s\n", p.id(), p.version(),
                               p.profile().name(), p.profile().fingerprint().device_model(),
                               p.created_at());
      }
    } else {
      cairn::v1::ListModelProfilesResponse resp;
      if (auto s = c.Check(c.profiles_->ListModelProfiles(ctx.get(), req, &resp)); !s.ok()) {
        return Fail(err, s);
      }
      for (const auto& p : resp.profiles()) {
        out << absl::StrFormat("%-18s v%-3d %-14s %-32s %s\n", p.id(), p.version(),
                               p.profile().model_name(), p.profile().device_model(),
                               p.created_at());
      }
    }
    return 0;
  }
  if (verb == "show" || verb == "export") {
    cairn::v1::ProfileKey key;
    key.set_id(a.Get("id"));
    absl::StatusOr<int> version = a.GetInt("version");
    if (!version.ok()) return Fail(err, version.status());
    key.set_version(*version);
    if (key.id().empty()) return Fail(err, absl::InvalidArgumentError("--id is required"));
    auto ctx = c.Context();
    std::string text;
    if (hw) {
      cairn::v1::StoredHardwareProfile p;
      if (auto s = c.Check(c.profiles_->GetHardwareProfile(ctx.get(), key, &p)); !s.ok()) {
        return Fail(err, s);
      }
      text = Json(verb == "export" ? static_cast<const google::protobuf::Message&>(p.profile())
                                   : static_cast<const google::protobuf::Message&>(p));
    } else {
      cairn::v1::StoredModelProfile p;
      if (auto s = c.Check(c.profiles_->GetModelProfile(ctx.get(), key, &p)); !s.ok()) {
        return Fail(err, s);
      }
      text = Json(verb == "export" ? static_cast<const google::protobuf::Message&>(p.profile())
                                   : static_cast<const google::protobuf::Message&>(p));
    }
    if (a.Has("output")) {
      if (absl::Status st = planner::WriteTextFile(a.Get("output"), text + "\n"); !st.ok()) {
        return Fail(err, st);
      }
      out << "Profile written to " << a.Get("output") << "\n";
    } else {
      out << text << "\n";
    }
    return 0;
  }
  if (verb == "import") {
    absl::StatusOr<std::string> text = planner::ReadTextFile(a.Get("file"));
    if (!text.ok()) return Fail(err, text.status());
    auto ctx = c.Context();
    if (hw) {
      cairn::v1::PutHardwareProfileRequest req;
      if (auto s = planner::ParseProtoJson(*text, a.Get("file"), req.mutable_profile()); !s.ok()) {
        return Fail(err, s);
      }
      cairn::v1::StoredHardwareProfile stored;
      if (auto s = c.Check(c.profiles_->PutHardwareProfile(ctx.get(), req, &stored)); !s.ok()) {
        return Fail(err, s);
      }
      out << "Stored hardware profile " << stored.id() << " version " << stored.version() << "\n";
    } else {
      cairn::v1::PutModelProfileRequest req;
      if (auto s = planner::ParseProtoJson(*text, a.Get("file"), req.mutable_profile()); !s.ok()) {
        return Fail(err, s);
      }
      cairn::v1::StoredModelProfile stored;
      if (auto s = c.Check(c.profiles_->PutModelProfile(ctx.get(), req, &stored)); !s.ok()) {
        return Fail(err, s);
      }
      out << "Stored model profile " << stored.id() << " version " << stored.version() << "\n";
    }
    return 0;
  }
  if (verb == "diff") {
    // A measured profile against the catalog default it replaces (--against CLUSTER), or against
    // another stored profile (--against ID or ID@VERSION).
    if (!hw) return Fail(err, absl::InvalidArgumentError("diff compares hardware profiles"));
    cairn::v1::ProfileKey key;
    key.set_id(a.Get("id"));
    absl::StatusOr<int> version = a.GetInt("version");
    if (!version.ok()) return Fail(err, version.status());
    key.set_version(*version);
    if (key.id().empty()) return Fail(err, absl::InvalidArgumentError("--id is required"));
    cairn::v1::StoredHardwareProfile mine;
    if (auto st = c.Check(c.profiles_->GetHardwareProfile(c.Context().get(), key, &mine));
        !st.ok()) {
      return Fail(err, st);
    }
    std::string against = a.Get("against", DefaultClusterFor(mine.profile()));
    if (against.empty()) {
      return Fail(err, absl::InvalidArgumentError(
                           "no catalog cluster matches this device: pass --against CLUSTER|ID"));
    }
    cairn::v1::HardwareProfile other;
    std::string other_label;
    absl::StatusOr<cairn::v1::Cluster> builtin =
        planner::MakeCluster(against, 1, against == "cpu" ? mine.profile().devices_per_node() : 0);
    if (builtin.ok()) {
      other = builtin->hardware();
      other_label = absl::StrCat(against, " (built-in)");
    } else {
      cairn::v1::ProfileKey k2;
      const size_t at = against.find('@');
      k2.set_id(against.substr(0, at));
      if (at != std::string::npos) k2.set_version(std::atoi(against.c_str() + at + 1));
      cairn::v1::StoredHardwareProfile stored;
      if (auto st = c.Check(c.profiles_->GetHardwareProfile(c.Context().get(), k2, &stored));
          !st.ok()) {
        return Fail(err, st);
      }
      other = stored.profile();
      other_label = absl::StrCat(stored.id(), "@", stored.version());
    }
    RenderProfileDiff(mine.profile(), absl::StrCat(mine.id(), "@", mine.version()), other,
                      other_label, out);
    return 0;
  }
  if (verb == "delete") {
    cairn::v1::DeleteProfileRequest req;
    req.set_id(a.Get("id"));
    if (req.id().empty()) return Fail(err, absl::InvalidArgumentError("--id is required"));
    cairn::v1::DeleteProfileResponse resp;
    auto ctx = c.Context();
    const grpc::Status st = hw ? c.profiles_->DeleteHardwareProfile(ctx.get(), req, &resp)
                               : c.profiles_->DeleteModelProfile(ctx.get(), req, &resp);
    if (auto s = c.Check(st); !s.ok()) return Fail(err, s);
    out << "Deleted " << resp.versions_deleted() << " version(s) of " << req.id() << "\n";
    return 0;
  }
  return Fail(err, absl::InvalidArgumentError(
                       "usage: cairn profiles list|show|export|import|delete|diff [--kind "
                       "hardware|model] [--id ID] [--version N] [--file F] [--output F] "
                       "[--against CLUSTER|ID[@V]]"));
}

// The problem a stored plan was made for, from the plan itself (model, cluster, shape, batch,
// sequence); --model/--cluster/--hardware-profile in `a` only where the plan cannot name them.
absl::StatusOr<Loaded> ProblemOfStoredPlan(const Flags& a, const cairn::v1::Plan& plan,
                                           const std::string& plan_id) {
  Flags problem_args;
  AddProblemFlags(problem_args);
  for (const char* flag : {"model", "cluster", "hardware-profile"}) {
    if (a.Has(flag)) problem_args.Set(flag, a.Get(flag));
  }
  CAIRN_RETURN_IF_ERROR(TakeProblemFromPlan(plan, "plan " + plan_id, &problem_args));
  return LoadProblem(problem_args);
}

int Plans(Client& c, const std::string& verb, const Flags& a, std::ostream& out,
          std::ostream& err) {
  auto ctx = c.Context();
  if (verb == "list") {
    cairn::v1::ListPlansRequest req;
    req.set_page_size(1000);
    req.set_model_name(a.Get("model"));
    cairn::v1::ListPlansResponse resp;
    if (auto s = c.Check(c.planner_->ListPlans(ctx.get(), req, &resp)); !s.ok()) {
      return Fail(err, s);
    }
    for (const auto& p : resp.plans()) {
      out << absl::StrFormat("%-24s %-14s %5d devices  batch %-5d seq %-6d %10s/step  %s\n",
                             p.plan_id(), p.model_name(), p.num_devices(), p.global_batch_size(),
                             p.seq_len(), FormatSeconds(p.step_time_s()), p.created_at());
    }
    return 0;
  }
  if (verb == "show") {
    cairn::v1::GetPlanRequest req;
    req.set_plan_id(a.Get("id"));
    if (req.plan_id().empty()) return Fail(err, absl::InvalidArgumentError("--id is required"));
    cairn::v1::PlanResponse resp;
    if (auto s = c.Check(c.planner_->GetPlan(ctx.get(), req, &resp)); !s.ok()) {
      return Fail(err, s);
    }
    const cairn::v1::SearchResponse& r = resp.result();
    const std::string format = a.Get("format");
    if (absl::Status s = CheckOutputFormat(format); !s.ok()) return Fail(err, s);
    const planner::PictureFiles pictures{a.Get("svg"), a.Get("html")};
    if ((a.Has("output") || format != "text" || !pictures.empty()) && r.plans_size() == 0) {
      err << "cairn: plan " << req.plan_id() << " has no plan: " << r.infeasible_reason() << "\n";
      return 1;
    }
    if (a.Has("output")) {
      if (absl::Status st = WritePlanJson(r.plans(0), a.Get("output")); !st.ok()) {
        return Fail(err, st);
      }
    }
    if (!pictures.empty()) {
      absl::StatusOr<Loaded> loaded = ProblemOfStoredPlan(a, r.plans(0), req.plan_id());
      if (!loaded.ok()) return Fail(err, loaded.status());
      if (absl::Status s = planner::WritePlanPictures(pictures, loaded->problem, r.plans(0), err);
          !s.ok()) {
        return Fail(err, s);
      }
    }
    if (a.Has("json")) {
      out << Json(resp) << "\n";  // the stored PlanResponse, id and all
    } else if (format == "json") {
      absl::StatusOr<std::string> json = planner::PlanToJson(r.plans(0));
      if (!json.ok()) return Fail(err, json.status());
      out << *json << "\n";
    } else if (IsExportFormat(format)) {
      absl::StatusOr<Loaded> loaded = ProblemOfStoredPlan(a, r.plans(0), req.plan_id());
      if (!loaded.ok()) return Fail(err, loaded.status());
      const bool built_in =
          absl::EndsWith(r.plans(0).provenance().hardware_profile(), " (built-in default)");
      return PrintExport(loaded->problem, r, format, /*allow_resplit=*/built_in, out, err);
    } else {
      RenderSearchResponse(r, a.Has("explain"), out);
    }
    if (a.Has("output") && format == "text" && !a.Has("json")) {
      out << "Plan written to " << a.Get("output") << "\n";
    }
    return 0;
  }
  return Fail(err, absl::InvalidArgumentError(
                       "usage: cairn plans list [--model M] | show --id ID [--format "
                       "text|json|megatron|galvatron|torchtitan|deepspeed|megatron-deepspeed] "
                       "[--output FILE] [--explain] [--json] [--svg FILE] [--html FILE]"));
}

int JobsCmd(Client& c, const std::string& verb, const Flags& a, std::ostream& out,
            std::ostream& err);

int AgentsCmd(Client& c, const std::string& verb, const Flags& a, std::ostream& out,
              std::ostream& err) {
  const std::vector<std::string> nodes = a.List("NODE");
  if (verb == "list") {
    cairn::v1::ListAgentsResponse resp;
    if (auto s = c.Check(c.agents_->ListAgents(c.Context().get(), {}, &resp)); !s.ok()) {
      return Fail(err, s);
    }
    if (a.Has("json")) {
      out << Json(resp) << "\n";
      return 0;
    }
    for (const auto& ag : resp.agents()) {
      out << absl::StrFormat("%-24s %-4s %-20s %-22s %2d devices  last heartbeat %s\n",
                             ag.agent_id(), ag.state() == cairn::v1::AGENT_STATE_UP ? "up" : "down",
                             ag.hostname(), ag.address(), ag.num_devices(),
                             ag.last_heartbeat_at());
    }
    return 0;
  }
  if (verb == "probe") {
    // cairn agents probe [NODE...] [--cross-node] [--quick] [--suites compute,comm] [--models M]
    cairn::v1::ProbeAgentsRequest req;
    for (const std::string& n : nodes) req.add_agent_ids(n);
    for (absl::string_view x : absl::StrSplit(a.Get("suites"), ',', absl::SkipEmpty())) {
      req.add_suites(std::string(x));
    }
    for (absl::string_view x : absl::StrSplit(a.Get("models"), ',', absl::SkipEmpty())) {
      req.add_models(std::string(x));
    }
    req.set_cross_node(a.Has("cross-node"));
    req.set_quick(a.Has("quick"));
    cairn::v1::ProbeAgentsResponse resp;
    if (auto s = c.Check(c.agents_->ProbeAgents(c.Context().get(), req, &resp)); !s.ok()) {
      return Fail(err, s);
    }
    out << "Probe " << resp.probe_id() << " asked of " << resp.agent_ids_size() << " agent(s): "
        << absl::StrJoin(resp.agent_ids(), ", ")
        << "\n(they probe when no job runs on them; `cairn profiles list` shows the new versions)\n";
    return 0;
  }
  return Fail(err, absl::InvalidArgumentError(
                       "usage: cairn agents list [--json] | probe [NODE...] [--cross-node] "
                       "[--quick] [--suites compute,comm,overlap,layers] [--models M1,M2]"));
}

// `cairn jobs submit`: a job from a plan file, a stored plan id, or a search (auto) run by the
// planner for the agents' measured profiles.
int JobsSubmit(Client& c, const Flags& a, std::ostream& out, std::ostream& err) {
  if (!a.Has("data")) return Fail(err, absl::InvalidArgumentError("--data DIR is required"));
  cairn::v1::SubmitJobRequest req;
  req.set_data_path(a.Get("data"));
  req.set_name(a.Get("name"));
  req.set_checkpoint_dir(a.Get("checkpoint-dir"));
  absl::StatusOr<int> steps = a.GetInt("steps"), restarts = a.GetInt("max-restarts"),
                      every = a.GetInt("checkpoint-every"), gb = a.GetInt("global-batch"),
                      seq = a.GetInt("seq-len"), nodes = a.GetInt("nodes"),
                      gpn = a.GetInt("gpus-per-node");
  for (const auto* v : {&steps, &restarts, &every, &gb, &seq, &nodes, &gpn}) {
    if (!v->ok()) return Fail(err, v->status());
  }
  req.set_steps(*steps);
  req.set_max_restarts(*restarts);
  req.set_checkpoint_every(*every);
  const std::string plan = a.Get("plan");
  if (plan == "auto") {
    if (!a.Has("model")) {
      return Fail(err, absl::InvalidArgumentError("--model is required with --plan auto"));
    }
    cairn::v1::PlanRequest* pr = req.mutable_search();
    pr->set_model_name(a.Get("model"));
    pr->mutable_search()->set_global_batch_size(*gb);
    pr->mutable_search()->set_seq_len(*seq);
    if (a.Has("dtype")) pr->mutable_search()->set_dtype_bytes(a.Get("dtype") == "fp32" ? 4 : 2);
    pr->set_num_nodes(*nodes);
    pr->set_devices_per_node(*gpn);
    if (a.Has("profile")) {
      pr->set_hardware_profile_id(a.Get("profile"));
      pr->set_model_profile_id(a.Get("model-profile"));
    } else {
      req.set_plan_for_agents(true);  // the planner picks the agents' measured profiles
    }
  } else if (plan.size() > 5 && plan.substr(plan.size() - 5) == ".json") {
    absl::StatusOr<std::string> text = planner::ReadTextFile(plan);
    if (!text.ok()) return Fail(err, text.status());
    absl::StatusOr<cairn::v1::Plan> proto = planner::PlanFromJson(*text);
    if (!proto.ok()) return Fail(err, proto.status());
    *req.mutable_plan() = *proto;
  } else {
    req.set_plan_id(plan);
  }
  cairn::v1::Job job;
  if (auto s = c.Check(c.jobs_->SubmitJob(c.Context().get(), req, &job)); !s.ok()) {
    return Fail(err, s);
  }
  if (a.Has("json")) {
    out << Json(job) << "\n";
  } else {
    out << "Submitted job " << job.job_id() << " (plan " << job.plan_id() << ", "
        << JobStateName(job.state()) << "): " << job.message() << "\n";
  }
  if (!a.Has("watch")) return 0;
  Flags watch;
  watch.Set("id", job.job_id());
  return JobsCmd(c, "watch", watch, out, err);
}

// `cairn jobs logs JOB [--rank R] [--tail BYTES]`: the workers' output the agents sent.
int JobsLogs(Client& c, const std::string& id, const Flags& a, std::ostream& out,
             std::ostream& err) {
  cairn::v1::GetJobLogsRequest req;
  req.set_job_id(id);
  if (req.job_id().empty()) return Fail(err, absl::InvalidArgumentError("usage: cairn jobs logs JOB"));
  absl::StatusOr<int> rank = a.GetInt("rank"), tail = a.GetInt("tail");
  if (!rank.ok()) return Fail(err, rank.status());
  if (!tail.ok()) return Fail(err, tail.status());
  if (*rank >= 0) req.add_ranks(*rank);
  req.set_tail_bytes(*tail);
  cairn::v1::GetJobLogsResponse resp;
  if (auto s = c.Check(c.jobs_->GetJobLogs(c.Context().get(), req, &resp)); !s.ok()) {
    return Fail(err, s);
  }
  for (const cairn::v1::JobLog& log : resp.logs()) {
    out << "==> rank " << log.rank() << " (agent " << log.agent_id() << ", attempt "
        << log.attempt() << ")"
        << (log.dropped_bytes() > 0 ? absl::StrCat(", ", log.dropped_bytes(),
                                                   " earlier bytes not kept")
                                    : "")
        << " <==\n"
        << log.data();
    if (!log.data().empty() && log.data().back() != '\n') out << "\n";
  }
  return 0;
}

int JobsCmd(Client& c, const std::string& verb, const Flags& a, std::ostream& out,
            std::ostream& err) {
  if (verb == "submit") return JobsSubmit(c, a, out, err);
  // "cairn jobs show JOB" as well as "--id JOB".
  const std::vector<std::string> ids = a.List("JOB");
  const std::string id = ids.empty() ? a.Get("id") : ids[0];
  if (verb == "logs") return JobsLogs(c, id, a, out, err);
  auto ctx = c.Context();
  if (verb == "list") {
    cairn::v1::ListJobsRequest req;
    req.set_page_size(1000);
    cairn::v1::ListJobsResponse resp;
    if (auto s = c.Check(c.jobs_->ListJobs(ctx.get(), req, &resp)); !s.ok()) return Fail(err, s);
    for (const auto& j : resp.jobs()) RenderJob(j, out);
    return 0;
  }
  if (id.empty() && (verb == "show" || verb == "watch" || verb == "cancel")) {
    return Fail(err, absl::InvalidArgumentError("--id is required"));
  }
  if (verb == "show") {
    cairn::v1::GetJobRequest req;
    req.set_job_id(id);
    cairn::v1::Job job;
    if (auto s = c.Check(c.jobs_->GetJob(ctx.get(), req, &job)); !s.ok()) return Fail(err, s);
    if (a.Has("json")) {
      out << Json(job) << "\n";
    } else {
      RenderJob(job, out);
    }
    return 0;
  }
  if (verb == "cancel") {
    cairn::v1::CancelJobRequest req;
    req.set_job_id(id);
    cairn::v1::Job job;
    if (auto s = c.Check(c.jobs_->CancelJob(ctx.get(), req, &job)); !s.ok()) return Fail(err, s);
    RenderJob(job, out);
    return 0;
  }
  if (verb == "watch") {
    cairn::v1::WatchJobRequest req;
    req.set_job_id(id);
    auto reader = c.jobs_->WatchJob(ctx.get(), req);
    cairn::v1::JobEvent ev;
    while (reader->Read(&ev)) {
      if (ev.has_step()) {
        const auto& s = ev.step();
        out << absl::StrFormat(
            "step %5d  loss %.4f  %s/step (predicted %s)  %s tokens/s  MFU %.1f%%  mem %s\n",
            s.step(), s.loss(), FormatSeconds(s.step_time_s()),
            FormatSeconds(s.predicted_step_time_s()), FormatCount(s.tokens_per_s()),
            100 * s.mfu(), FormatBytes(s.peak_memory_bytes()));
      } else {
        RenderJob(ev.job(), out);
      }
      out.flush();
    }
    if (auto s = c.Check(reader->Finish()); !s.ok()) return Fail(err, s);
    return 0;
  }
  return Fail(err, absl::InvalidArgumentError(
                       "usage: cairn jobs list | submit --model M --data DIR [--plan auto|FILE.json|"
                       "PLAN_ID] ... | show JOB | watch JOB | cancel JOB | logs JOB [--rank R]"));
}

}  // namespace

absl::Status FromGrpc(const grpc::Status& s, const std::string& address) {
  const std::string msg = s.error_message();
  switch (s.error_code()) {
    case grpc::StatusCode::OK:
      return absl::OkStatus();
    case grpc::StatusCode::UNAVAILABLE:
      return absl::UnavailableError(absl::StrCat(
          "cannot reach the planner at ", address, " (", msg,
          "); check that cairn-planner is running there, the address and port, and --tls-ca if "
          "the server uses TLS"));
    case grpc::StatusCode::UNAUTHENTICATED:
      return absl::UnauthenticatedError(absl::StrCat(
          "the planner at ", address, " did not accept the credentials (", msg,
          "); pass --token-file with a valid token"));
    case grpc::StatusCode::PERMISSION_DENIED:
      return absl::PermissionDeniedError(absl::StrCat(
          "your token may not do this (", msg, "); ask an operator for a token with that role"));
    case grpc::StatusCode::DEADLINE_EXCEEDED:
      return absl::DeadlineExceededError(absl::StrCat(
          "the planner took too long (", msg, "); narrow the search or raise --timeout"));
    case grpc::StatusCode::RESOURCE_EXHAUSTED:
      return absl::ResourceExhaustedError(absl::StrCat("the planner is busy or the request is too "
                                                       "large: ", msg));
    case grpc::StatusCode::INVALID_ARGUMENT:
      return absl::InvalidArgumentError(msg);
    case grpc::StatusCode::NOT_FOUND:
      return absl::NotFoundError(msg);
    case grpc::StatusCode::ALREADY_EXISTS:
      return absl::AlreadyExistsError(msg);
    case grpc::StatusCode::FAILED_PRECONDITION:
      return absl::FailedPreconditionError(msg);
    default:
      return absl::InternalError(absl::StrCat("the planner failed: ", msg));
  }
}

int RunRemoteCommand(const Connection& connection, const std::string& command,
                     const std::string& verb, const Flags& a, std::ostream& out,
                     std::ostream& err) {
  absl::StatusOr<std::unique_ptr<Client>> client = Client::Connect(connection);
  if (!client.ok()) return Fail(err, client.status());
  const std::string& cmd = command;
  if (cmd == "plan") return RemotePlan(**client, a, out, err);
  if (cmd == "profiles") return Profiles(**client, verb, a, out, err);
  if (cmd == "plans") return Plans(**client, verb, a, out, err);
  if (cmd == "agents") return AgentsCmd(**client, verb, a, out, err);
  if (cmd == "jobs") return JobsCmd(**client, verb, a, out, err);
  return Fail(err, absl::InvalidArgumentError(absl::StrCat(
                       "'", cmd, "' does not run against the planner daemon; commands: plan, "
                       "profiles, plans, agents, jobs")));
}

}  // namespace cairn::cli
