#include "planner/cli/commands.h"

#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <chrono>
#include <cmath>
#include <fstream>
#include <mutex>
#include <set>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "common/status_macros.h"
#include "common/units.h"
#include "common/version.h"
#include "planner/catalog/clusters.h"
#include "planner/catalog/galvatron.h"
#include "planner/catalog/json_io.h"
#include "planner/catalog/models.h"
#include "common/args.h"
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

absl::Status WriteFile(const std::string& path, const std::string& text) {
  std::ofstream f(path);
  if (!f) return absl::FailedPreconditionError(absl::StrCat("cannot write ", path));
  f << text;
  f.close();
  if (!f) return absl::DataLossError(absl::StrCat("writing ", path, " failed"));
  return absl::OkStatus();
}

int CmdPlan(const std::vector<std::string>& argv, std::ostream& out, std::ostream& err) {
  Args a;
  std::set<std::string> valued = ProblemFlags();
  valued.insert({"top", "output", "format", "svg", "html"});
  if (absl::Status s = a.Parse(argv, valued,
                               {"explain", "json", "no-recompute", "uniform-layers", "quiet"});
      !s.ok()) {
    return Fail(err, s);
  }
  absl::StatusOr<Loaded> loaded = LoadProblem(a);
  if (!loaded.ok()) return Fail(err, loaded.status());
  const SearchProblem& pb = loaded->problem;
  std::string format = a.Has("json") ? "json" : a.Get("format", "text");
  if (absl::Status s = CheckOutputFormat(format); !s.ok()) return Fail(err, s);
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
    if (absl::Status s = WriteFile(a.Get("output"), *json); !s.ok()) return Fail(err, s);
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

int CmdEvaluate(const std::vector<std::string>& argv, std::ostream& out, std::ostream& err) {
  Args a;
  std::set<std::string> valued = ProblemFlags();
  valued.insert({"plan", "galvatron-strategy", "tp", "mode", "dp-mode", "schedule", "top",
                 "micro-batch-size", "format", "svg", "html"});
  if (absl::Status s = a.Parse(argv, valued, {"json", "recompute", "explain", "no-recompute",
                                              "uniform-layers", "quiet"});
      !s.ok()) {
    return Fail(err, s);
  }
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
    absl::StatusOr<int> tp = a.GetInt("tp", 1);
    absl::StatusOr<std::vector<int>> pp = a.GetIntList("pp");
    absl::StatusOr<std::vector<int>> ms = a.GetIntList("micro-batches");
    if (!tp.ok()) return Fail(err, tp.status());
    if (!pp.ok()) return Fail(err, pp.status());
    if (!ms.ok()) return Fail(err, ms.status());
    s.tp = *tp;
    auto mode = ParseMode(a.Get("mode", s.tp > 1 ? "tp+sp" : "tp"));
    auto dp = ParseDpMode(a.Get("dp-mode", "zero1"));
    auto sched = ParseSchedule(a.Get("schedule", "1f1b"));
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
      absl::StatusOr<int> mbs = a.GetInt("micro-batch-size", 1);
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
    if (!planner::MakeUniformPlan(pb, batch, p, m, *sched, s, eh, &plan)) {
      return Fail(err, absl::InvalidArgumentError(absl::StrCat(
                           "pp=", p, " micro-batches=", m, " is not a valid shape for ",
                           pb.model.num_layers, " layers and global batch ", batch)));
    }
    plan.origin = absl::StrCat("uniform ", planner::Describe(s), " pp=", p, " m=", m);
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
    RenderPlan(planner::ToPlanProto(pb, plan, *e, prov), out);
    for (const std::string& v : e->violations) out << "  VIOLATION: " << v << "\n";
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
absl::StatusOr<std::string> CatalogJsonName(const std::vector<std::string>& argv) {
  if (argv.empty()) return std::string();
  if (argv.size() == 2 && argv[0] == "--json") return argv[1];
  if (argv.size() == 1 && argv[0].rfind("--json=", 0) == 0) return argv[0].substr(7);
  return absl::InvalidArgumentError(absl::StrCat(
      "unexpected arguments '", absl::StrJoin(argv, " "), "' (usage: [--json NAME])"));
}

int CmdModels(const std::vector<std::string>& argv, std::ostream& out, std::ostream& err) {
  absl::StatusOr<std::string> json_name = CatalogJsonName(argv);
  if (!json_name.ok()) return Fail(err, json_name.status());
  if (!json_name->empty()) {
    absl::StatusOr<cairn::v1::ModelSpec> spec = planner::ResolveModel(*json_name);
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

int CmdClusters(const std::vector<std::string>& argv, std::ostream& out, std::ostream& err) {
  absl::StatusOr<std::string> json_name = CatalogJsonName(argv);
  if (!json_name.ok()) return Fail(err, json_name.status());
  if (!json_name->empty()) {
    absl::StatusOr<cairn::v1::HardwareProfile> hw = planner::LookupHardware(*json_name);
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

}  // namespace

std::string Usage() {
  return R"(cairn — find and score hybrid-parallel training plans.

Commands:
  cairn plan      --model NAME|FILE.json --cluster NAME --nodes N --global-batch B --seq-len S
                  [--gpus-per-node G] [--memory-gb X] [--top K] [--explain] [--json]
                  [--output FILE] [--format text|json|megatron|galvatron|torchtitan|deepspeed|
                  megatron-deepspeed]
                  [--batch-range MIN:MAX:STEP] [--pp 1,2,4] [--max-tp T] [--micro-batches 8,16]
                  [--schedules 1f1b,gpipe] [--dp-modes ddp,zero1,zero2,zero3]
                  [--modes tp,tp+sp,ulysses] [--no-recompute] [--uniform-layers]
                  [--hardware-profile FILE.json] [--galvatron-hardware DIR]
                  [--model-profile FILE.json] [--galvatron-model-profile COMP.json[,MEM.json]]
                  [--dtype bf16|fp32] [--runtime cairn|megatron-core] [--threads N]
                  [--memory-quantum-mb Q] [--simplicity-tolerance F] [--quiet]
                  [--svg FILE] [--html FILE]  (a picture of the best plan: layers,
                  memory, the pipeline timeline)
  cairn evaluate  (--plan PLAN.json | --galvatron-strategy FILE.json |
                   --tp T --pp P (--micro-batches M | --micro-batch-size PER_DEVICE)
                   [--mode tp|tp+sp|ulysses]
                   [--dp-mode ddp|zero1|zero2|zero3] [--recompute] [--schedule 1f1b|gpipe])
                  plus the model/cluster flags of `plan`; [--json] [--explain]
                  [--format text|json|megatron|galvatron|torchtitan|deepspeed|megatron-deepspeed]
                  [--svg FILE] [--html FILE]
  cairn models    list the built-in models; [--json NAME]: one as JSON (a --model FILE.json)
  cairn clusters  list the built-in clusters; [--json NAME]: one as JSON (a --hardware-profile
                  FILE.json)
  cairn help      this text (`cairn COMMAND --help`: one command's)
  cairn --version the version and build kind (opt, fastbuild or debug)

Against a planner daemon (global flags before the command, or CAIRN_PLANNER=HOST:PORT):
  cairn --planner HOST:PORT [--token-file F] [--tls-ca CA.pem] [--timeout S] COMMAND
  plan            the same flags as above, searched by the daemon (plan cache; --no-cache,
                  --profile ID to use a stored hardware profile)
  profiles        list|show|export|import|delete [--kind hardware|model] [--id ID]
                  [--version N] [--file F] [--output F]
                  diff --id ID [--against CLUSTER|ID[@V]]  (measured vs the catalog default)
  plans           list [--model M] | show --id ID [--format text|json|megatron|galvatron|
                  torchtitan|deepspeed|megatron-deepspeed] [--output FILE] [--explain] [--json]
                  [--svg FILE] [--html FILE]
  agents          list [--json] | probe [NODE...] [--cross-node] [--quick] [--suites S]
  jobs            list | show JOB | watch JOB | cancel JOB | logs JOB [--rank R] [--tail B]
                  submit --model M --data DIR [--plan auto|FILE.json|PLAN_ID] [--steps N]
                  [--global-batch B] [--seq-len S] [--dtype bf16|fp32] [--profile ID]
                  [--nodes N] [--max-restarts R --checkpoint-dir DIR] [--watch]
                  (auto: planned for the UP agents' measured profiles)

Exit status: 0 ok, 1 nothing fits (the message says what would), 2 bad input.
)";
}

std::string CommandUsage(const std::string& command) {
  // The command's entry in Usage(): its first line ("  cairn plan ..." or, for the daemon's
  // commands, "  profiles ...") and the lines indented under it.
  const std::string text = Usage();
  std::vector<std::string> lines = absl::StrSplit(text, '\n');
  std::string out;
  bool in = false;
  for (const std::string& line : lines) {
    const bool entry = line.size() > 2 && line[0] == ' ' && line[1] == ' ' && line[2] != ' ';
    if (entry) {
      in = absl::StartsWith(line, absl::StrCat("  cairn ", command, " ")) ||
           absl::StartsWith(line, absl::StrCat("  ", command, " "));
    } else if (!line.empty() && line[0] != ' ') {
      in = false;
    }
    if (in) absl::StrAppend(&out, line, "\n");
  }
  if (out.empty()) return "";
  return absl::StrCat("usage:\n", out,
                      "\nExit status: 0 ok, 1 nothing fits (the message says what would), 2 bad "
                      "input. Every flag with its default: docs/cli.md.\n");
}

int RunCommand(const std::vector<std::string>& all_args, std::ostream& out, std::ostream& err) {
  // Global flags before the command: the planner daemon to talk to.
  Connection conn;
  if (const char* env = std::getenv("CAIRN_PLANNER")) conn.address = env;
  size_t i = 0;
  for (; i < all_args.size() && all_args[i].rfind("--", 0) == 0; ++i) {
    std::string name = all_args[i].substr(2), value;
    const size_t eq = name.find('=');
    if (eq != std::string::npos) {
      value = name.substr(eq + 1);
      name = name.substr(0, eq);
    } else if (name != "help" && name != "version" && i + 1 < all_args.size()) {
      value = all_args[++i];
    }
    if (name == "planner") {
      conn.address = value;
    } else if (name == "token-file") {
      conn.token_file = value;
    } else if (name == "tls-ca") {
      conn.tls_ca = value;
    } else if (name == "timeout") {
      if (!absl::SimpleAtod(value, &conn.timeout_s) || conn.timeout_s <= 0) {
        err << "cairn: --timeout must be a positive number of seconds\n";
        return 2;
      }
    } else if (name == "help") {
      out << Usage();
      return 0;
    } else if (name == "version") {
      out << VersionLine("cairn") << "\n";
      return 0;
    } else {
      err << "cairn: unknown global flag --" << name
          << " (global flags: --planner, --token-file, --tls-ca, --timeout)\n";
      return 2;
    }
  }
  const std::vector<std::string> argv(all_args.begin() + i, all_args.end());
  // `cairn COMMAND --help` (or -h) anywhere after the command: that command's usage, exit 0, for
  // local and daemon commands alike; --version likewise.
  if (!argv.empty()) {
    for (size_t j = 1; j < argv.size(); ++j) {
      if (argv[j] == "--help" || argv[j] == "-h") {
        const std::string usage = CommandUsage(argv[0]);
        if (usage.empty()) break;  // an unknown command: reported below
        out << usage;
        return 0;
      }
      if (argv[j] == "--version") {
        out << VersionLine("cairn") << "\n";
        return 0;
      }
    }
  }
  const std::set<std::string> remote_only = {"profiles", "plans", "agents", "jobs"};
  if (!argv.empty() && remote_only.count(argv[0]) && conn.address.empty()) {
    err << "cairn: '" << argv[0]
        << "' talks to the planner daemon: pass --planner HOST:PORT (or set CAIRN_PLANNER)\n";
    return 2;
  }
  if (!argv.empty() && !conn.address.empty() && (argv[0] == "plan" || remote_only.count(argv[0]))) {
    return RunRemoteCommand(conn, argv, out, err);
  }
  if (argv.empty() || argv[0] == "help" || argv[0] == "--help" || argv[0] == "-h") {
    out << Usage();
    return argv.empty() ? 2 : 0;
  }
  const std::vector<std::string> rest(argv.begin() + 1, argv.end());
  if (argv[0] == "plan") return CmdPlan(rest, out, err);
  if (argv[0] == "evaluate") return CmdEvaluate(rest, out, err);
  if (argv[0] == "models") return CmdModels(rest, out, err);
  if (argv[0] == "clusters") return CmdClusters(rest, out, err);
  err << "cairn: unknown command '" << argv[0] << "'\n" << Usage();
  return 2;
}

}  // namespace cairn::cli
