#include "planner/cli/commands.h"

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>

#include "CLI/CLI.hpp"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "common/cli_app.h"
#include "common/status_macros.h"
#include "common/units.h"
#include "common/version.h"
#include "planner/catalog/clusters.h"
#include "planner/catalog/galvatron.h"
#include "planner/catalog/json_io.h"
#include "planner/catalog/models.h"
#include "planner/cli/export.h"
#include "planner/cli/problem_flags.h"
#include "planner/cli/remote.h"
#include "planner/cli/render.h"
#include "planner/picture/picture_render.h"
#include "planner/cost/evaluate.h"
#include "planner/cost/model_math.h"
#include "planner/plan/plan_convert.h"
#include "planner/problem/problem_builder.h"
#include "planner/problem/proto_enums.h"
#include "planner/search/search.h"

namespace cairn::cli {
namespace {

using planner::Evaluation;
using planner::PlanSpec;
using planner::SearchProblem;


int Fail(std::ostream& err, const absl::Status& s) {
  err << "cairn: " << s.message() << "\n";
  return 2;
}

int CmdPlan(const Flags& a, std::ostream& out, std::ostream& err) {
  absl::StatusOr<Loaded> loaded = LoadProblem(a);
  if (!loaded.ok()) return Fail(err, loaded.status());
  const SearchProblem& pb = loaded->problem;
  std::string format = a.Has("json") ? "json" : a.Get("format");
  if (absl::Status s = CheckOutputFormat(format); !s.ok()) return Fail(err, s);
  if (absl::Status s = CheckOutputFiles(a); !s.ok()) return Fail(err, s);
  planner::SearchOptions opt;
  std::mutex mu;
  auto last = std::chrono::steady_clock::now();
  const bool show_progress = !a.Has("quiet");
  const bool tty = IsTerminal(err);
  if (show_progress) {
    opt.progress = [&](int64_t done, int64_t total) {
      std::lock_guard<std::mutex> lock(mu);
      const auto now = std::chrono::steady_clock::now();
      if (done != total && now - last < std::chrono::milliseconds(500)) return;
      last = now;
      PrintProgress(err, tty,
                    absl::StrCat("searching: ", done, "/", total,
                                 " (batch, pp, micro-batch) combinations"),
                    done == total);
    };
  }
  absl::StatusOr<planner::SearchResult> r = planner::Search(pb, opt);
  if (!r.ok()) return Fail(err, r.status());
  if (r->plans.empty()) {
    err << "cairn: " << r->infeasible_reason << "\n";
    return 1;
  }
  planner::ProvenanceInfo prov;
  prov.hardware_profile = loaded->hardware_label;
  prov.model_profile = pb.model_profile_name;
  prov.search_time_s = r->search_time_s;
  prov.candidates_evaluated = r->stats.plans_evaluated;
  const PlanSpec& best = r->plans[0];
  const Evaluation& be = r->evaluations[0];
  const cairn::v1::Plan proto = planner::ToPlanProto(pb, best, be, prov);
  absl::StatusOr<std::string> json = planner::PlanToJson(proto);
  if (!json.ok()) return Fail(err, json.status());
  if (a.Has("output")) {
    if (absl::Status s = planner::WriteTextFile(a.Get("output"), *json); !s.ok()) {
      return Fail(err, s);
    }
  }
  if (absl::Status s = planner::WritePlanPictures({a.Get("svg"), a.Get("html")}, pb, best, be, err);
      !s.ok()) {
    return Fail(err, s);
  }
  if (format == "json") {
    out << *json << "\n";
    return 0;
  }
  if (IsExportFormat(format)) {
    return PrintExport(pb, planner::ToSearchResponse(pb, *r, prov), format,
                       /*allow_resplit=*/true, out, err);
  }
  RenderSearchResponse(planner::ToSearchResponse(pb, *r, prov), a.Has("explain"), out);
  if (a.Has("output")) out << "Plan written to " << a.Get("output") << "\n";
  return 0;
}

int CmdEvaluate(Flags a, std::ostream& out, std::ostream& err) {
  cairn::v1::Plan plan_proto;
  if (a.Has("plan")) {
    absl::StatusOr<std::string> text = planner::ReadTextFile(a.Get("plan"));
    if (!text.ok()) return Fail(err, text.status());
    absl::StatusOr<cairn::v1::Plan> proto = planner::PlanFromJson(*text);
    if (!proto.ok()) return Fail(err, proto.status());
    plan_proto = *std::move(proto);
    if (absl::Status s = TakeProblemFromPlan(plan_proto, a.Get("plan"), &a); !s.ok()) {
      return Fail(err, s);
    }
  }
  const std::string format = a.Has("json") ? "json" : a.Get("format", "text");
  if (absl::Status s = CheckOutputFormat(format); !s.ok()) return Fail(err, s);
  absl::StatusOr<Loaded> loaded = LoadProblem(a);
  if (!loaded.ok()) return Fail(err, loaded.status());
  const SearchProblem& pb = loaded->problem;
  PlanSpec plan;
  if (a.Has("plan")) {
    absl::StatusOr<PlanSpec> spec = planner::PlanSpecFromProto(pb, plan_proto);
    if (!spec.ok()) return Fail(err, spec.status());
    plan = *spec;
  } else if (a.Has("galvatron-strategy")) {
    absl::StatusOr<PlanSpec> spec = planner::ImportGalvatronStrategyFile(
        a.Get("galvatron-strategy"), pb.model, pb.hardware.num_devices());
    if (!spec.ok()) return Fail(err, spec.status());
    plan = *spec;
  } else {
    planner::Strategy s;
    absl::StatusOr<int> tp = a.GetInt("tp");
    absl::StatusOr<std::vector<int>> pp = a.GetIntList("pp");
    absl::StatusOr<std::vector<int>> ms = a.GetIntList("micro-batches");
    if (!tp.ok()) return Fail(err, tp.status());
    if (!pp.ok()) return Fail(err, pp.status());
    if (!ms.ok()) return Fail(err, ms.status());
    s.tp = *tp;
    auto mode = ParseMode(a.Get("mode", s.tp > 1 ? "tp+sp" : "tp"));
    auto dp = ParseDpMode(a.Get("dp-mode"));
    auto sched = ParseSchedule(a.Get("schedule"));
    if (!mode.ok()) return Fail(err, mode.status());
    if (!dp.ok()) return Fail(err, dp.status());
    if (!sched.ok()) return Fail(err, sched.status());
    s.mode = *mode;
    s.dp = *dp;
    s.recompute = a.Has("recompute");
    planner::Strategy eh = s;
    eh.recompute = false;
    const int p = pp->empty() ? 1 : pp->front();
    const int batch = pb.global_batch_sizes.front();
    int m = ms->empty() ? std::max(1, p) : ms->front();
    if (a.Has("micro-batch-size")) {
      // Megatron's --micro-batch-size: samples per device per micro-batch, so
      // m = batch / (dp x size) with dp = devices / (pp x tp).
      absl::StatusOr<int> mbs = a.GetInt("micro-batch-size");
      if (!mbs.ok()) return Fail(err, mbs.status());
      const int n = pb.hardware.num_devices();
      const int dp = p > 0 && s.tp > 0 ? n / p / s.tp : 0;
      if (*mbs < 1 || dp < 1 || batch % (dp * *mbs) != 0) {
        return Fail(err, absl::InvalidArgumentError(absl::StrCat(
                             "--micro-batch-size ", a.Get("micro-batch-size"),
                             " does not divide global batch ", batch, " over ", std::max(dp, 0),
                             " data-parallel ranks (", n, " devices / pp ", p, " / tp ", s.tp,
                             ")")));
      }
      const int from_size = batch / (dp * *mbs);
      if (!ms->empty() && ms->front() != from_size) {
        return Fail(err, absl::InvalidArgumentError(absl::StrCat(
                             "--micro-batches ", ms->front(), " contradicts --micro-batch-size ",
                             *mbs, " (which means ", from_size, " micro-batches)")));
      }
      m = from_size;
    }
    absl::StatusOr<int> v = a.GetInt("virtual-stages");
    if (!v.ok()) return Fail(err, v.status());
    const std::string layout_name = a.Get("chunk-layout");
    if (layout_name != "blocks" && layout_name != "slots") {
      return Fail(err, absl::InvalidArgumentError(absl::StrCat(
                           "--chunk-layout must be blocks or slots, got '", layout_name, "'")));
    }
    const planner::ChunkLayout layout =
        layout_name == "slots" ? planner::ChunkLayout::kSlots : planner::ChunkLayout::kBlocks;
    if ((*v > 1) != (*sched == planner::Schedule::kInterleaved1F1B)) {
      return Fail(err, absl::InvalidArgumentError(
                           "--virtual-stages V >= 2 goes with --schedule interleaved, and "
                           "--schedule interleaved needs it"));
    }
    if (!planner::MakeUniformPlan(pb, batch, p, m, *sched, s, eh, &plan, *v, layout)) {
      return Fail(err, absl::InvalidArgumentError(absl::StrCat(
                           "pp=", p, *v > 1 ? absl::StrCat(" x ", *v, " virtual stages") : "",
                           " micro-batches=", m, " is not a valid shape for ", pb.model.num_layers,
                           " layers and global batch ", batch,
                           layout == planner::ChunkLayout::kSlots || *v > 1
                               ? absl::StrCat(" (equal chunks of ", layout_name, ")")
                               : "")));
    }
    plan.origin = absl::StrCat("uniform ", planner::Describe(s), " pp=", p,
                               *v > 1 ? absl::StrCat(" v=", *v) : "", " m=", m,
                               layout == planner::ChunkLayout::kSlots ? " (equal slots)" : "");
  }
  planner::CostModel cm(pb);
  absl::StatusOr<Evaluation> e = planner::Evaluate(cm, plan);
  if (!e.ok()) return Fail(err, e.status());
  if (!e->valid) {
    // No step time or MFU for a plan that cannot run: its violations, each once.
    err << "cairn: " << plan.origin << " cannot run on " << pb.hardware.num_devices()
        << " devices:\n";
    std::set<std::string> seen;
    for (const std::string& v : e->violations) {
      if (seen.insert(v).second) err << "  " << v << "\n";
    }
    return 2;
  }
  if (absl::Status s = planner::WritePlanPictures({a.Get("svg"), a.Get("html")}, pb, plan, *e, err);
      !s.ok()) {
    return Fail(err, s);
  }
  if (IsExportFormat(format)) {
    // This plan exactly, as the framework runs it (no substitute): exit 2 with the reason if not.
    absl::StatusOr<ExportedPlan> x = ExportPlan(format, pb, plan);
    if (!x.ok()) return Fail(err, x.status());
    out << x->text << "\n";
    err << x->note;
  } else if (format == "json") {
    planner::ProvenanceInfo prov;
    prov.hardware_profile = loaded->hardware_label;
    prov.model_profile = pb.model_profile_name;
    absl::StatusOr<std::string> json =
        planner::PlanToJson(planner::ToPlanProto(pb, plan, *e, prov));
    if (!json.ok()) return Fail(err, json.status());
    out << *json << "\n";
  } else {
    out << absl::StrFormat("Evaluation of %s for %s on %d x %s (%d devices)\n", plan.origin,
                           pb.model.name, pb.hardware.num_nodes, pb.hardware.name,
                           pb.hardware.num_devices());
    planner::ProvenanceInfo prov;
    prov.hardware_profile = loaded->hardware_label;
    prov.model_profile = pb.model_profile_name;
    const cairn::v1::Plan rendered = planner::ToPlanProto(pb, plan, *e, prov);
    RenderPlan(rendered, out);
    // RenderPlan has named each stage whose predicted peak is over the budget; the evaluation's
    // own line for such a stage (its upper bound) would say it again.
    std::set<std::string> said;
    for (const cairn::v1::StageMemory& mem : rendered.prediction().stage_memory()) {
      if (mem.total_bytes() > mem.budget_bytes()) {
        said.insert(planner::MemoryViolationPrefix(mem.stage()));
      }
    }
    for (const std::string& v : e->violations) {
      const bool repeated = std::any_of(said.begin(), said.end(), [&](const std::string& prefix) {
        return absl::StartsWith(v, prefix);
      });
      if (!repeated) out << "  VIOLATION: " << v << "\n";
    }
    if (a.Has("explain")) {
      out << "\nWhere each stage's step goes:\n" << planner::ExplainStages(*e);
      planner::SearchOptions opt;
      opt.with_baselines = false;
      absl::StatusOr<planner::SearchResult> r = planner::Search(pb, opt);
      if (r.ok() && !r->plans.empty()) {
        out << "\nCompared with the best plan the search finds:\n"
            << planner::Explain(cm, r->plans[0], r->evaluations[0], plan, *e);
      }
    }
  }
  if (!e->feasible) {
    err << "cairn: this plan is not feasible: " << e->violations.front() << "\n";
    return 1;
  }
  return 0;
}

// `models`/`clusters` take [--json NAME]: the catalog entry as JSON, a starting file for
// --model FILE.json / --hardware-profile FILE.json.
int CmdModels(const Flags& a, std::ostream& out, std::ostream& err) {
  if (a.Has("json")) {
    absl::StatusOr<cairn::v1::ModelSpec> spec = planner::ResolveModel(a.Get("json"));
    if (!spec.ok()) return Fail(err, spec.status());
    absl::StatusOr<std::string> json = planner::ProtoToJson(*spec);
    if (!json.ok()) return Fail(err, json.status());
    out << *json << "\n";
    return 0;
  }
  out << absl::StrFormat("%-14s %7s %7s %7s %6s %4s %7s %6s %9s\n", "name", "layers", "hidden",
                         "ffn", "heads", "kv", "vocab", "seq", "params");
  for (const std::string& name : planner::ModelNames()) {
    auto spec = planner::LookupModel(name);
    if (!spec.ok()) continue;
    out << absl::StrFormat("%-14s %7d %7d %7d %6d %4d %7d %6d %9s\n", name, spec->num_layers(),
                           spec->hidden_size(), spec->ffn_hidden_size(), spec->num_heads(),
                           spec->num_kv_heads(), spec->vocab_size(), spec->max_seq_len(),
                           FormatCount(planner::ParameterCount(*spec)));
  }
  out << "(cairn models --json NAME: one entry as a starting file for --model FILE.json)\n";
  return 0;
}

// 989 TFLOP/s, 59.2 GFLOP/s: three significant figures in the largest unit below the value.
std::string FormatFlopRate(double flops_per_s) {
  if (flops_per_s >= 1e12) return absl::StrFormat("%.0f TFLOP/s", flops_per_s / 1e12);
  if (flops_per_s >= 1e9) return absl::StrFormat("%.1f GFLOP/s", flops_per_s / 1e9);
  return absl::StrFormat("%.1f MFLOP/s", flops_per_s / 1e6);
}

int CmdClusters(const Flags& a, std::ostream& out, std::ostream& err) {
  if (a.Has("json")) {
    absl::StatusOr<cairn::v1::HardwareProfile> hw = planner::LookupHardware(a.Get("json"));
    if (!hw.ok()) return Fail(err, hw.status());
    absl::StatusOr<std::string> json = planner::ProtoToJson(*hw);
    if (!json.ok()) return Fail(err, json.status());
    out << *json << "\n";
    return 0;
  }
  for (const std::string& name : planner::ClusterNames()) {
    auto hw = planner::LookupHardware(name);
    if (!hw.ok()) continue;
    out << absl::StrFormat("%-14s %d x %s, %s per device, %s peak; %s\n", name,
                           hw->devices_per_node(), hw->fingerprint().device_model(),
                           FormatBytes(hw->device().memory_bytes()),
                           FormatFlopRate(hw->device().peak_flops_per_s()),
                           hw->fingerprint().topology());
  }
  out << "(cairn clusters --json NAME: one entry as a starting file for --hardware-profile "
         "FILE.json)\n";
  return 0;
}

// The `cairn` command line: every command, its flags with their defaults, and their help (CLI11
// prints it for `cairn COMMAND --help`). A new flag is one more line in its command's block; the
// command's body reads it by name (a.Get("svg"), a.Has("svg")).
struct CommandLine {
  std::unique_ptr<CLI::App> app;
  Flags global;                           // --planner, --token-file, --tls-ca, --timeout
  std::map<std::string, Flags> commands;  // by path: "plan", "jobs submit"

  // A command under `parent` ("" = the top level), with its help line.
  Flags& Add(const std::string& parent, const std::string& name, const std::string& help) {
    CLI::App* under = parent.empty() ? app.get() : app->get_subcommand(parent);
    const std::string path = parent.empty() ? name : parent + " " + name;
    CLI::App* command = under->add_subcommand(name, help);
    if (parent.empty()) AddVersion(command);  // verbs may have their own --version (profiles)
    return commands.emplace(path, Flags(command)).first->second;
  }
  // A command whose verbs are its subcommands (`cairn jobs submit`).
  void AddGroup(const std::string& name, const std::string& help) {
    AddVersion(app->add_subcommand(name, help)->require_subcommand(1));
  }
  // `cairn plan --version` as `cairn --version`.
  static void AddVersion(CLI::App* command) {
    command->set_version_flag("--version", VersionLine("cairn"), "print the version and exit");
  }
};

constexpr char kExitStatus[] =
    "Exit status: 0 ok, 1 nothing fits (the message says what would), 2 bad input. Every flag "
    "with its default: cairn COMMAND --help, docs/cli.md.";

std::unique_ptr<CommandLine> MakeCommandLine() {
  auto cl = std::make_unique<CommandLine>();
  cl->app = MakeApp("cairn", "cairn — find and score hybrid-parallel training plans.");
  cl->app->footer(kExitStatus);  // every command's (set before they are added)
  const char* env = std::getenv("CAIRN_PLANNER");
  cl->global = Flags(cl->app.get());
  cl->global
      .Value("planner", "HOST:PORT",
             "the planner daemon to talk to (default: $CAIRN_PLANNER; none: local commands)",
             env != nullptr ? env : "")
      .Value("token-file", "F", "first line: the bearer token (default: none)")
      .Value("tls-ca", "CA.pem", "TLS with this CA (default: plaintext)")
      .Value("timeout", "S", "seconds per call to the daemon, searches included", "300");

  Flags& plan = cl->Add("", "plan", "search for the fastest plans (by the daemon with --planner)");
  AddProblemFlags(plan);
  plan.Value("top", "K", "plans to print", "1")
      .Value("format", "text|json|megatron|galvatron|torchtitan|deepspeed|megatron-deepspeed", "output form", "text")
      .Value("svg", "FILE", "a picture of the best plan: layers, memory, the pipeline step")
      .Value("html", "FILE", "the same picture in an HTML page with a table per stage")
      .Bool("json", "the best plan as JSON (--format json)")
      .Value("output", "FILE", "also write the best plan as JSON")
      .Bool("explain", "why the best uniform plan (and alternative 2) are slower")
      .Bool("quiet", "no search progress on stderr")
      .Value("profile", "ID", "with --planner: a stored hardware profile instead of --cluster")
      .Bool("no-cache", "with --planner: search again even if the plan cache has the answer");

  Flags& evaluate = cl->Add("", "evaluate", "score one plan with the same cost model");
  AddProblemFlags(evaluate);
  evaluate.Value("plan", "PLAN.json", "the plan (it fixes the model, cluster, batch and sequence)")
      .Value("galvatron-strategy", "FILE.json", "a plan in Galvatron's strategy format")
      .Value("tp", "T", "uniform plan: tensor-parallel degree", "1")
      .Value("mode", "tp|tp+sp|ulysses",
             "uniform plan: tensor/sequence mode (default: tp+sp when T > 1, else tp)")
      .Value("dp-mode", "ddp|zero1|zero2|zero3", "uniform plan: data-parallel mode", "zero1")
      .Value("schedule", "1f1b|gpipe|interleaved", "uniform plan: pipeline schedule", "1f1b")
      .Value("virtual-stages", "V", "uniform plan: model chunks per stage (interleaved: >= 2)", "1")
      .Value("chunk-layout", "blocks|slots",
             "uniform plan: equal chunks of blocks, or of layer slots with the embedding and head "
             "counted (Megatron's --account-for-embedding/loss-in-pipeline-split)",
             "blocks")
      .Value("micro-batch-size", "PER_DEVICE",
             "uniform plan: Megatron's per-device micro-batch size (instead of --micro-batches)")
      .Bool("recompute", "uniform plan: recompute every block's activations")
      .Value("top", "K", "plans compared with --explain", "1")
      .Bool("json", "the scored Plan as JSON")
      .Value("format", "text|json|megatron|galvatron|torchtitan|deepspeed|megatron-deepspeed",
             "output form: another framework's form of exactly this plan (exit 2 if it cannot "
             "express it)",
             "text")
      .Value("svg", "FILE", "a picture of the plan: layers, memory, the pipeline step")
      .Value("html", "FILE", "the same picture in an HTML page with a table per stage")
      .Bool("explain", "where each stage's step goes, against the best plan the search finds")
      .Bool("quiet", "no search progress on stderr");

  cl->Add("", "models", "list the built-in models")
      .Value("json", "NAME", "print one as JSON (a starting file for --model FILE.json)");
  cl->Add("", "clusters", "list the built-in clusters")
      .Value("json", "NAME",
             "print one as JSON (a starting file for --hardware-profile FILE.json)");
  cl->Add("", "help", "this text (cairn COMMAND --help: one command's)");

  // The daemon's commands (--planner or CAIRN_PLANNER).
  cl->AddGroup("profiles", "stored hardware and model profiles (daemon)");
  auto kind = [](Flags& f) -> Flags& {
    return f.Value("kind", "hardware|model", "which profiles", "hardware");
  };
  kind(cl->Add("profiles", "list", "list stored profiles"));
  for (const char* verb : {"show", "export"}) {
    kind(cl->Add("profiles", verb,
                 std::string(verb) == "show" ? "one stored profile, with its id and version"
                                             : "one profile as a file for --hardware-profile"))
        .Value("id", "ID", "the profile (required)")
        .Value("version", "N", "its version (0: the latest)", "0")
        .Value("output", "F", "write it here instead of stdout");
  }
  kind(cl->Add("profiles", "import", "store a profile from a proto3 JSON file"))
      .Value("file", "F", "the profile (required)");
  kind(cl->Add("profiles", "delete", "delete every version of a stored profile"))
      .Value("id", "ID", "the profile (required)");
  kind(cl->Add("profiles", "diff",
               "a measured hardware profile against the catalog default it "
               "replaces, or another profile"))
      .Value("id", "ID", "the measured profile (required)")
      .Value("version", "N", "its version (0: the latest)", "0")
      .Value("against", "CLUSTER|ID[@V]",
             "compare with (default: the catalog cluster of its device)");

  cl->AddGroup("plans", "stored plans (daemon)");
  cl->Add("plans", "list", "list stored plans").Value("model", "M", "only this model's");
  cl->Add("plans", "show", "one stored plan, in any output form of `cairn plan`")
      .Value("id", "ID", "the plan (required)")
      .Value("format", "text|json|megatron|galvatron|torchtitan|deepspeed|megatron-deepspeed", "output form", "text")
      .Value("svg", "FILE", "a picture of the best plan")
      .Value("html", "FILE", "the same picture in an HTML page")
      .Value("output", "FILE", "also write the best plan as JSON")
      .Bool("explain", "why the best uniform plan (and alternative 2) are slower")
      .Bool("json", "the stored PlanResponse as JSON")
      .Value("model", "NAME|FILE.json", "exports and pictures: the model, when outside the catalog")
      .Value("cluster", "NAME", "exports and pictures: the cluster, when the plan cannot name it")
      .Value("hardware-profile", "FILE.json",
             "exports and pictures: the hardware, instead of --cluster");

  cl->AddGroup("agents", "the node agents (daemon)");
  cl->Add("agents", "list", "the agents, UP or DOWN, with devices and last heartbeat")
      .Bool("json", "their node facts as JSON");
  cl->Add("agents", "probe", "ask agents to probe their nodes now (when no job runs on them)")
      .Positionals("NODE", "agent ids or host names (none: every UP agent)")
      .Bool("cross-node", "the communication probes as one world across the agents")
      .Bool("quick", "a quick probe (seconds)")
      .Value("suites", "compute,comm,overlap,layers", "which probes (default: all)")
      .Value("models", "M1,M2", "models whose shapes and layers are probed (default: the agents')");

  cl->AddGroup("jobs", "training jobs run by the agents (daemon)");
  cl->Add("jobs", "list", "every job");
  for (const char* verb : {"show", "watch", "cancel", "logs"}) {
    Flags& f = cl->Add("jobs", verb,
                       std::string(verb) == "show" ? "one job (--json: with measured vs predicted)"
                       : std::string(verb) == "watch"  ? "follow a job's steps until it ends"
                       : std::string(verb) == "cancel" ? "cancel a job"
                                                       : "the workers' output the agents sent");
    f.Positionals("JOB", "the job id").Value("id", "JOB", "the job id (instead of JOB)");
    if (std::string(verb) == "show") f.Bool("json", "the Job as JSON");
    if (std::string(verb) == "logs") {
      f.Value("rank", "R", "only this rank (-1: every rank)", "-1")
          .Value("tail", "BYTES", "the last BYTES of each (0: all that is kept)", "0");
    }
  }
  cl->Add("jobs", "submit", "run a job: a plan file, a stored plan, or one the daemon plans")
      .Value("model", "M", "the model (required with --plan auto)")
      .Value("data", "DIR", "token shards from cairn-data (required)")
      .Value("plan", "auto|FILE.json|PLAN_ID",
             "auto: planned by the daemon for the UP agents' measured profiles (or --profile)",
             "auto")
      .Value("steps", "N", "optimizer steps", "10")
      .Value("global-batch", "B", "samples per step (--plan auto)", "16")
      .Value("seq-len", "S", "tokens per sample (0: the daemon's planning picks)", "0")
      .Value("dtype", "bf16|fp32", "precision (default: the daemon's planning picks)")
      .Value("profile", "ID", "plan for this stored hardware profile instead of the agents'")
      .Value("model-profile", "ID", "with --profile: a stored model profile")
      .Value("nodes", "N", "nodes (0: the daemon's planning picks)", "0")
      .Value("gpus-per-node", "G", "devices per node (0: the daemon's planning picks)", "0")
      .Value("max-restarts", "R", "restart a failed attempt from its checkpoint up to R times", "0")
      .Value("checkpoint-dir", "DIR", "where the workers write checkpoints")
      .Value("checkpoint-every", "K", "steps between checkpoints (0: never)", "0")
      .Value("name", "NAME", "a name for the job")
      .Bool("watch", "follow the job until it ends")
      .Bool("json", "print the submitted Job as JSON");
  cl->app->footer(absl::StrCat(
      "Against a planner daemon: the global flags before the command, or "
      "CAIRN_PLANNER=HOST:PORT; plan then runs there, and profiles, plans, agents and jobs only "
      "run there.\n",
      kExitStatus));
  return cl;
}

}  // namespace

int RunCommand(const std::vector<std::string>& args, std::ostream& out, std::ostream& err) {
  std::unique_ptr<CommandLine> cl = MakeCommandLine();
  if (std::optional<int> exit = ParseCommandLine(*cl->app, args, out, err)) return *exit;
  // "cairn jobs submit" -> command "jobs", verb "submit".
  std::vector<std::string> path = absl::StrSplit(SelectedCommandPath(*cl->app), ' ');
  const std::string command = path.size() > 1 ? path[1] : "";
  const std::string verb = path.size() > 2 ? path[2] : "";
  if (command.empty() || command == "help") {
    out << cl->app->get_formatter()->make_help(cl->app.get(), "cairn", CLI::AppFormatMode::Normal);
    return command.empty() ? 2 : 0;
  }
  const Flags& a = cl->commands.at(verb.empty() ? command : command + " " + verb);
  // The planner daemon to talk to.
  Connection conn;
  conn.address = cl->global.Get("planner");
  conn.token_file = cl->global.Get("token-file");
  conn.tls_ca = cl->global.Get("tls-ca");
  if (!absl::SimpleAtod(cl->global.Get("timeout"), &conn.timeout_s) || !(conn.timeout_s > 0)) {
    err << "cairn: --timeout must be a positive number of seconds\n";
    return 2;
  }
  const std::set<std::string> remote_only = {"profiles", "plans", "agents", "jobs"};
  if (remote_only.count(command) && conn.address.empty()) {
    err << "cairn: '" << command
        << "' talks to the planner daemon: pass --planner HOST:PORT (or set CAIRN_PLANNER)\n";
    return 2;
  }
  if (!conn.address.empty() && (command == "plan" || remote_only.count(command))) {
    return RunRemoteCommand(conn, command, verb, a, out, err);
  }
  if (a.Has("profile") || a.Has("no-cache")) {
    err << "cairn: --profile and --no-cache are for the planner daemon: pass --planner "
           "HOST:PORT (or set CAIRN_PLANNER)\n";
    return 2;
  }
  if (command == "plan") return CmdPlan(a, out, err);
  if (command == "evaluate") return CmdEvaluate(a, out, err);
  if (command == "models") return CmdModels(a, out, err);
  if (command == "clusters") return CmdClusters(a, out, err);
  err << "cairn: unknown command '" << command << "'\n";  // declared but not dispatched: a bug
  return 2;
}

}  // namespace cairn::cli
