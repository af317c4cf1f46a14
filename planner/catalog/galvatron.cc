#include "planner/catalog/galvatron.h"

#include <sys/stat.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <regex>
#include <set>
#include <tuple>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "common/collective_proto.h"
#include "common/status_macros.h"
#include "common/math.h"
#include "common/units.h"
#include "planner/catalog/clusters.h"
#include "planner/catalog/json_io.h"
#include "planner/catalog/models.h"

namespace cairn::planner {
namespace {

using cairn::v1::CollectiveCost;
using ::cairn::plan::DpMode;
using ::cairn::plan::KindOf;
using ::cairn::plan::LayerKind;
using ::cairn::plan::ParallelMode;
using ::cairn::plan::Schedule;
using ::cairn::plan::Strategy;
using cairn::v1::CollectiveOp;
using nlohmann::json;

// Galvatron's units.
constexpr double kGalvatronMB = kMiB;                  // "MB" = 2^20 bytes
constexpr double kMBPerMsToBytesPerS = kMiB * 1000.0;  // MB/ms -> bytes/s

std::string BaseName(const std::string& path) {
  const size_t slash = path.find_last_of('/');
  return slash == std::string::npos ? path : path.substr(slash + 1);
}

// nlohmann::json reports errors by exception; this is the one place they are turned into Status.
absl::StatusOr<json> ParseJson(const std::string& text, absl::string_view what) {
  try {
    return json::parse(text);
  } catch (const json::exception& e) {
    return absl::InvalidArgumentError(absl::StrCat(what, ": not valid JSON: ", e.what()));
  }
}

absl::StatusOr<json> ReadJsonObject(const std::string& path) {
  CAIRN_ASSIGN_OR_RETURN(std::string text, ReadTextFile(path));
  CAIRN_ASSIGN_OR_RETURN(json j, ParseJson(text, path));
  if (!j.is_object()) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": expected a JSON object"));
  }
  return j;
}

// A numeric value, with the file and key in the error.
absl::StatusOr<double> Number(const json& value, absl::string_view file, absl::string_view key) {
  if (!value.is_number()) {
    return absl::InvalidArgumentError(
        absl::StrCat(file, ": key \"", key, "\" must be a number, got ", value.dump()));
  }
  return value.get<double>();
}

absl::StatusOr<double> PositiveNumber(const json& value, absl::string_view file,
                                      absl::string_view key) {
  CAIRN_ASSIGN_OR_RETURN(double v, Number(value, file, key));
  if (!(v > 0) || !std::isfinite(v)) {
    return absl::InvalidArgumentError(
        absl::StrCat(file, ": key \"", key, "\" must be positive, got ", v));
  }
  return v;
}

int ToInt(const std::string& digits) {
  int v = 0;
  if (!absl::SimpleAtoi(digits, &v)) return -1;
  return v;
}

// ---------------------------------------------------------------------------------------------
// Hardware.

using CommKey = std::tuple<int, int, bool>;  // op, group size, spans nodes

CommKey KeyOf(const CollectiveCost& c) { return {c.op(), c.group_size(), c.spans_nodes()}; }

CollectiveCost Bandwidth(CollectiveOp op, int g, bool spans, double busbw) {
  CollectiveCost c;
  c.set_op(op);
  c.set_group_size(g);
  c.set_spans_nodes(spans);
  c.set_latency_s(0);
  c.set_busbw_bytes_per_s(busbw);
  return c;
}

// Entry from (bytes, seconds) points, sorted by bytes. Latency and bus bandwidth come from the
// least-squares line t = a x bytes + b over the points (Galvatron fits the same line).
CollectiveCost Curve(CollectiveOp op, int g, bool spans,
                     const std::vector<std::pair<double, double>>& points) {
  const double n = points.size();
  double sx = 0, sy = 0, sxx = 0, sxy = 0;
  for (const auto& [x, y] : points) {
    sx += x;
    sy += y;
    sxx += x * x;
    sxy += x * y;
  }
  const double denom = n * sxx - sx * sx;
  double a = 0, b = 0;
  if (points.size() >= 2 && denom > 0) {
    a = (n * sxy - sx * sy) / denom;
    b = (sy - a * sx) / n;
  }
  if (!(a > 0)) {  // one point, or a degenerate fit: bandwidth of the largest point, no latency
    a = points.back().second / points.back().first;
    b = 0;
  }
  CollectiveCost c = Bandwidth(op, g, spans, BusFactor(op, g) / a);
  c.set_latency_s(std::max(0.0, b));
  for (const auto& [bytes, time_s] : points) {
    cairn::v1::CommPoint* p = c.add_points();
    p->set_bytes(bytes);
    p->set_time_s(time_s);
  }
  return c;
}

std::string FileSuffix(int num_nodes, int gpus_per_node) {
  return absl::StrCat(num_nodes, "nodes_", gpus_per_node, "gpus_per_node.json");
}

// Optional files: absent -> skipped; present but unreadable -> the reader reports it.
bool FileExists(const std::string& path) {
  struct stat info;
  return stat(path.c_str(), &info) == 0;
}

// Keeps the lower-bandwidth entry when two keys map to the same (op, g, placement).
void PutMin(std::map<CommKey, CollectiveCost>* out, const CollectiveCost& c) {
  auto it = out->find(KeyOf(c));
  if (it == out->end()) {
    out->emplace(KeyOf(c), c);
  } else if (c.busbw_bytes_per_s() < it->second.busbw_bytes_per_s()) {
    it->second = c;
  }
}

absl::Status ReadAllReduceBandwidth(const std::string& path, int num_nodes, int gpus_per_node,
                                    std::map<CommKey, CollectiveCost>* out) {
  CAIRN_ASSIGN_OR_RETURN(json j, ReadJsonObject(path));
  static const std::regex kKey(R"(allreduce_size_(\d+)_consec_([01]))");
  const int world = num_nodes * gpus_per_node;
  for (const auto& [key, value] : j.items()) {
    std::smatch m;
    if (!std::regex_match(key, m, kKey)) {
      return absl::InvalidArgumentError(absl::StrCat(
          path, ": unknown key \"", key, "\" (expected allreduce_size_{g}_consec_{0|1})"));
    }
    const int g = ToInt(m[1]);
    const bool consecutive = m[2] == "1";
    if (g < 2 || g > world || world % g != 0) {
      return absl::InvalidArgumentError(absl::StrCat(
          path, ": key \"", key, "\": group size ", g, " does not divide the ", num_nodes,
          " x ", gpus_per_node, " = ", world, " GPUs"));
    }
    CAIRN_ASSIGN_OR_RETURN(double mb_per_ms, PositiveNumber(value, path, key));
    // Consecutive ranks [i g, (i+1) g) cross a node boundary when g > k; strided ranks
    // i, i + N/g, ..., i + (g-1) N/g do when the last one is on another node than the first.
    const bool spans = consecutive ? g > gpus_per_node
                                   : (g - 1) * (world / g) >= gpus_per_node;
    const double busbw = mb_per_ms * kMBPerMsToBytesPerS;
    for (CollectiveOp op : {cairn::v1::COLLECTIVE_OP_ALL_REDUCE,
                            cairn::v1::COLLECTIVE_OP_ALL_GATHER,
                            cairn::v1::COLLECTIVE_OP_REDUCE_SCATTER}) {
      PutMin(out, Bandwidth(op, g, spans, busbw));
    }
  }
  if (out->empty()) return absl::InvalidArgumentError(absl::StrCat(path, ": no entries"));
  return absl::OkStatus();
}

absl::Status ReadP2pBandwidth(const std::string& path, int num_nodes, int gpus_per_node,
                              std::map<CommKey, CollectiveCost>* out) {
  CAIRN_ASSIGN_OR_RETURN(json j, ReadJsonObject(path));
  static const std::regex kKey(R"(pp_size_(\d+))");
  const int world = num_nodes * gpus_per_node;
  for (const auto& [key, value] : j.items()) {
    std::smatch m;
    if (!std::regex_match(key, m, kKey)) {
      return absl::InvalidArgumentError(
          absl::StrCat(path, ": unknown key \"", key, "\" (expected pp_size_{p})"));
    }
    const int p = ToInt(m[1]);
    if (p < 2 || p > world || world % p != 0) {
      return absl::InvalidArgumentError(absl::StrCat(path, ": key \"", key, "\": pp degree ", p,
                                                     " does not divide the ", world, " GPUs"));
    }
    CAIRN_ASSIGN_OR_RETURN(double mb_per_ms, PositiveNumber(value, path, key));
    PutMin(out, Bandwidth(cairn::v1::COLLECTIVE_OP_SEND_RECV, 2, num_nodes > 1,
                          mb_per_ms * kMBPerMsToBytesPerS));
  }
  return absl::OkStatus();
}

absl::Status ReadSpTime(const std::string& path, int num_nodes, int gpus_per_node,
                        std::map<CommKey, CollectiveCost>* out) {
  CAIRN_ASSIGN_OR_RETURN(json j, ReadJsonObject(path));
  static const std::regex kKey(R"((allreduce|all2all)_size_(\d+)_(\d+)MB_time)");
  const int world = num_nodes * gpus_per_node;
  // (is all-to-all, g) -> (bytes, seconds)
  std::map<std::pair<bool, int>, std::vector<std::pair<double, double>>> curves;
  for (const auto& [key, value] : j.items()) {
    std::smatch m;
    if (!std::regex_match(key, m, kKey)) {
      return absl::InvalidArgumentError(absl::StrCat(
          path, ": unknown key \"", key,
          "\" (expected allreduce_size_{g}_{S}MB_time or all2all_size_{g}_{S}MB_time)"));
    }
    const int g = ToInt(m[2]);
    const int size_mb = ToInt(m[3]);
    if (g < 2 || g > world || world % g != 0) {
      return absl::InvalidArgumentError(absl::StrCat(path, ": key \"", key, "\": group size ", g,
                                                     " does not divide the ", world, " GPUs"));
    }
    if (size_mb < 1) {
      return absl::InvalidArgumentError(
          absl::StrCat(path, ": key \"", key, "\": message size must be >= 1 MB"));
    }
    CAIRN_ASSIGN_OR_RETURN(double ms, PositiveNumber(value, path, key));
    curves[{m[1] == "all2all", g}].emplace_back(size_mb * kGalvatronMB, ms * 1e-3);
  }
  for (auto& [which, points] : curves) {
    std::sort(points.begin(), points.end());
    const auto [all_to_all, g] = which;
    const bool spans = g > gpus_per_node;  // sp_time groups are consecutive
    if (all_to_all) {
      (*out)[{cairn::v1::COLLECTIVE_OP_ALL_TO_ALL, g, spans}] =
          Curve(cairn::v1::COLLECTIVE_OP_ALL_TO_ALL, g, spans, points);
      continue;
    }
    (*out)[{cairn::v1::COLLECTIVE_OP_ALL_REDUCE, g, spans}] =
        Curve(cairn::v1::COLLECTIVE_OP_ALL_REDUCE, g, spans, points);
    // Galvatron: all-gather / reduce-scatter of the same buffer take half the all-reduce time.
    std::vector<std::pair<double, double>> half = points;
    for (auto& p : half) p.second /= 2;
    for (CollectiveOp op :
         {cairn::v1::COLLECTIVE_OP_ALL_GATHER, cairn::v1::COLLECTIVE_OP_REDUCE_SCATTER}) {
      (*out)[{op, g, spans}] = Curve(op, g, spans, half);
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<double> ReadOverlap(const std::string& path) {
  CAIRN_ASSIGN_OR_RETURN(json j, ReadJsonObject(path));
  double coe = 0;
  bool found = false;
  for (const auto& [key, value] : j.items()) {
    if (key != "overlap_coe") {
      return absl::InvalidArgumentError(
          absl::StrCat(path, ": unknown key \"", key, "\" (expected overlap_coe)"));
    }
    CAIRN_ASSIGN_OR_RETURN(coe, Number(value, path, key));
    found = true;
  }
  if (!found) return absl::InvalidArgumentError(absl::StrCat(path, ": missing key overlap_coe"));
  if (!(coe >= 1)) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, ": overlap_coe must be >= 1, got ", coe));
  }
  return coe;
}

// ---------------------------------------------------------------------------------------------
// Model profile.

absl::StatusOr<int> ParseSeqKey(const std::string& key, const std::string& path, int max_seq) {
  const int seq = ToInt(key);
  if (seq < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, ": key \"", key, "\" is not a sequence length"));
  }
  if (seq > max_seq) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": sequence length ", seq,
                                                   " exceeds the model's max_seq_len ", max_seq));
  }
  return seq;
}

struct TimingKey {
  int kind, tp, seq, mbs;
  bool operator<(const TimingKey& o) const {
    return std::tie(kind, tp, seq, mbs) < std::tie(o.kind, o.tp, o.seq, o.mbs);
  }
};

absl::Status ReadMemoryProfile(const std::string& path, const cairn::v1::ModelSpec& model,
                               int default_seq, std::map<TimingKey, cairn::v1::LayerTiming>* out,
                               std::string* used_key) {
  CAIRN_ASSIGN_OR_RETURN(json j, ReadJsonObject(path));
  const char* key = j.contains("layertype_0") ? "layertype_0" : "layertype_0_sp";
  if (!j.contains(key)) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, ": has neither \"layertype_0\" nor \"layertype_0_sp\""));
  }
  *used_key = key;
  const json& layer = j[key];
  if (!layer.is_object()) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": \"", key, "\" must be an object"));
  }
  // {seq: {...}} (3.0 and 2.x sequence mode) or the block itself (2.x static mode).
  std::vector<std::pair<int, const json*>> per_seq;
  if (layer.contains("parameter_size") || layer.contains("tp_activation_per_bsz_dict")) {
    per_seq.emplace_back(default_seq, &layer);
  } else {
    for (const auto& [seq_key, block] : layer.items()) {
      CAIRN_ASSIGN_OR_RETURN(int seq, ParseSeqKey(seq_key, path, model.max_seq_len()));
      per_seq.emplace_back(seq, &block);
    }
  }
  if (per_seq.empty()) return absl::InvalidArgumentError(absl::StrCat(path, ": \"", key, "\" is empty"));
  const double model_block_mb = 4.0 * BlockParameterCount(model) / kGalvatronMB;
  for (const auto& [seq, block_ptr] : per_seq) {
    const json& block = *block_ptr;
    const std::string where = absl::StrCat(key, ".", seq);
    if (!block.is_object()) {
      return absl::InvalidArgumentError(absl::StrCat(path, ": \"", where, "\" must be an object"));
    }
    if (block.contains("parameter_size")) {
      CAIRN_ASSIGN_OR_RETURN(double mb, PositiveNumber(block["parameter_size"], path,
                                                       where + ".parameter_size"));
      const double ratio = mb / model_block_mb;
      if (ratio < 0.75 || ratio > 1.0 / 0.75) {
        return absl::InvalidArgumentError(absl::StrCat(
            path, ": ", where, ".parameter_size is ", mb, " MB of fp32 parameters per layer, but a "
            "block of model \"", model.name(), "\" has ", BlockParameterCount(model),
            " parameters (", model_block_mb, " MB): is this a profile of another model?"));
      }
    }
    if (!block.contains("tp_activation_per_bsz_dict")) {
      return absl::InvalidArgumentError(
          absl::StrCat(path, ": \"", where, "\" has no tp_activation_per_bsz_dict"));
    }
    const json& acts = block["tp_activation_per_bsz_dict"];
    if (!acts.is_object()) {
      return absl::InvalidArgumentError(
          absl::StrCat(path, ": \"", where, ".tp_activation_per_bsz_dict\" must be an object"));
    }
    for (const auto& [tp_key, value] : acts.items()) {
      if (tp_key == "checkpoint") continue;  // activation with recomputation: no field for it
      const int tp = ToInt(tp_key);
      const std::string name = absl::StrCat(where, ".tp_activation_per_bsz_dict.", tp_key);
      if (tp < 1) {
        return absl::InvalidArgumentError(
            absl::StrCat(path, ": key \"", name, "\" is not a tp degree"));
      }
      CAIRN_ASSIGN_OR_RETURN(double mb, PositiveNumber(value, path, name));
      const TimingKey k{cairn::v1::LAYER_KIND_TRANSFORMER_BLOCK, tp, seq, 1};
      cairn::v1::LayerTiming& t = (*out)[k];
      t.set_kind(cairn::v1::LAYER_KIND_TRANSFORMER_BLOCK);
      t.set_tp_degree(tp);
      t.set_seq_len(seq);
      t.set_micro_batch_size(1);
      t.set_activation_bytes(std::llround(mb * kGalvatronMB));
    }
  }
  return absl::OkStatus();
}

// ---------------------------------------------------------------------------------------------
// Strategy.

const std::set<std::string>& KnownStrategyKeys() {
  static const auto* keys = new std::set<std::string>{
      "pp_deg",         "tp_sizes_enc", "tp_consecutive_flags", "dp_types_enc",
      "use_sp",         "checkpoint",   "global_bsz",           "chunks",
      "pp_division",    "pipeline_type", "default_dp_type",     "vtp",
      "vsp",            "embed_sdp",    "vocab_sdp",            "world_size",
      "cp_sizes_enc",   "ep_sizes_enc", "tp_of_ep_sizes_enc",   "vcp"};
  return *keys;
}

absl::StatusOr<int> IntScalar(const json& j, const std::string& key) {
  const json& v = j.at(key);
  if (v.is_number_integer()) return v.get<int>();
  if (v.is_number_float()) {
    const double d = v.get<double>();
    if (d == std::floor(d) && std::abs(d) < 1e9) return static_cast<int>(d);
  }
  if (v.is_string()) {
    int out = 0;
    if (absl::SimpleAtoi(absl::StripAsciiWhitespace(v.get<std::string>()), &out)) return out;
  }
  return absl::InvalidArgumentError(
      absl::StrCat(key, ": expected an integer, got ", v.dump()));
}

absl::StatusOr<int> OptionalInt(const json& j, const std::string& key, int fallback) {
  if (!j.contains(key)) return fallback;
  return IntScalar(j, key);
}

absl::StatusOr<int> RequiredInt(const json& j, const std::string& key) {
  if (!j.contains(key)) return absl::InvalidArgumentError(absl::StrCat(key, ": missing"));
  return IntScalar(j, key);
}

// "1,2,2", [1, 2, 2] or a single integer.
absl::StatusOr<std::vector<int>> IntList(const json& j, const std::string& key) {
  const json& v = j.at(key);
  std::vector<int> out;
  if (v.is_string()) {
    for (absl::string_view part : absl::StrSplit(v.get<std::string>(), ',')) {
      int x = 0;
      if (!absl::SimpleAtoi(absl::StripAsciiWhitespace(part), &x)) {
        return absl::InvalidArgumentError(
            absl::StrCat(key, ": \"", part, "\" is not an integer in ", v.dump()));
      }
      out.push_back(x);
    }
  } else if (v.is_array()) {
    for (const json& e : v) {
      if (!e.is_number_integer()) {
        return absl::InvalidArgumentError(
            absl::StrCat(key, ": ", e.dump(), " is not an integer in ", v.dump()));
      }
      out.push_back(e.get<int>());
    }
  } else if (v.is_number_integer()) {
    out.push_back(v.get<int>());
  } else {
    return absl::InvalidArgumentError(
        absl::StrCat(key, ": expected a comma-separated string or a list, got ", v.dump()));
  }
  return out;
}

// A per-layer list of `num_layers` entries (all `fallback` when the key is absent).
absl::StatusOr<std::vector<int>> LayerList(const json& j, const std::string& key, int num_layers,
                                           int fallback, bool flags) {
  if (!j.contains(key)) return std::vector<int>(num_layers, fallback);
  CAIRN_ASSIGN_OR_RETURN(std::vector<int> v, IntList(j, key));
  if (static_cast<int>(v.size()) != num_layers) {
    return absl::InvalidArgumentError(absl::StrCat(key, ": has ", v.size(),
                                                   " entries, the model has ", num_layers,
                                                   " layers"));
  }
  if (flags) {
    for (size_t i = 0; i < v.size(); ++i) {
      if (v[i] != 0 && v[i] != 1) {
        return absl::InvalidArgumentError(
            absl::StrCat(key, ": entry ", i, " is ", v[i], ", expected 0 or 1"));
      }
    }
  }
  return v;
}

absl::Status AllOnes(const json& j, const std::string& key, absl::string_view feature) {
  if (!j.contains(key)) return absl::OkStatus();
  CAIRN_ASSIGN_OR_RETURN(std::vector<int> v, IntList(j, key));
  for (int x : v) {
    if (x != 1) {
      return absl::UnimplementedError(absl::StrCat(
          key, ": ", feature, " (degree ", x, ") is not supported by Cairn's plans"));
    }
  }
  return absl::OkStatus();
}

// Checks a model-parallel degree for a layer; `what` names it in the error.
absl::Status CheckDegree(int t, int stage_devices, int pp, int num_devices, int num_heads,
                         const std::string& what) {
  if (!IsPowerOfTwo(t) || stage_devices % t != 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        what, " is ", t, ", which does not divide the ", stage_devices,
        " devices of a pipeline stage (", num_devices, " devices / pp_deg ", pp,
        ") or is not a power of 2"));
  }
  if (num_heads % t != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat(what, " is ", t, ", which does not divide num_heads ", num_heads));
  }
  return absl::OkStatus();
}

absl::StatusOr<DpMode> ParseDpType(const std::string& s) {
  if (s == "ddp") return DpMode::kDdp;
  if (s == "zero1") return DpMode::kZero1;
  if (s == "zero2") return DpMode::kZero2;
  if (s == "zero3") return DpMode::kZero3;
  return absl::InvalidArgumentError(absl::StrCat(
      "default_dp_type: \"", s, "\" is not one of ddp, zero1, zero2, zero3"));
}

absl::StatusOr<std::string> RequiredString(const json& j, const std::string& key) {
  if (!j.contains(key)) return absl::InvalidArgumentError(absl::StrCat(key, ": missing"));
  if (!j.at(key).is_string()) {
    return absl::InvalidArgumentError(
        absl::StrCat(key, ": expected a string, got ", j.at(key).dump()));
  }
  return j.at(key).get<std::string>();
}

absl::StatusOr<PlanSpec> ImportStrategy(const json& j, const ModelDims& model, int num_devices) {
  if (!j.is_object()) return absl::InvalidArgumentError("expected a JSON object");
  for (const auto& [key, value] : j.items()) {
    if (KnownStrategyKeys().count(key) == 0) {
      return absl::InvalidArgumentError(absl::StrCat(
          "unknown key \"", key, "\"; known keys: ", absl::StrJoin(KnownStrategyKeys(), ", ")));
    }
  }
  const int L = model.num_layers;
  if (L < 1) return absl::InvalidArgumentError("model has no layers");
  if (num_devices < 1) {
    return absl::InvalidArgumentError(absl::StrCat("num_devices must be >= 1, got ", num_devices));
  }
  CAIRN_ASSIGN_OR_RETURN(int world, OptionalInt(j, "world_size", num_devices));
  if (world != num_devices) {
    return absl::InvalidArgumentError(absl::StrCat(
        "world_size: the strategy is for ", world, " devices, not ", num_devices));
  }
  CAIRN_RETURN_IF_ERROR(AllOnes(j, "cp_sizes_enc", "context parallelism"));
  CAIRN_RETURN_IF_ERROR(AllOnes(j, "ep_sizes_enc", "expert parallelism"));
  CAIRN_RETURN_IF_ERROR(AllOnes(j, "tp_of_ep_sizes_enc", "expert tensor parallelism"));
  CAIRN_RETURN_IF_ERROR(AllOnes(j, "vcp", "vocabulary context parallelism"));

  CAIRN_ASSIGN_OR_RETURN(int pp, RequiredInt(j, "pp_deg"));
  if (pp < 1 || num_devices % pp != 0 || pp > L) {
    return absl::InvalidArgumentError(absl::StrCat(
        "pp_deg: ", pp, " must be between 1 and num_layers ", L, " and divide the ",
        num_devices, " devices"));
  }
  const int stage_devices = num_devices / pp;
  if (!j.contains("tp_sizes_enc")) return absl::InvalidArgumentError("tp_sizes_enc: missing");
  CAIRN_ASSIGN_OR_RETURN(std::vector<int> tp, LayerList(j, "tp_sizes_enc", L, 1, false));
  CAIRN_ASSIGN_OR_RETURN(std::vector<int> consec,
                         LayerList(j, "tp_consecutive_flags", L, 1, true));
  CAIRN_ASSIGN_OR_RETURN(std::vector<int> sdp, LayerList(j, "dp_types_enc", L, 0, true));
  CAIRN_ASSIGN_OR_RETURN(std::vector<int> ulysses, LayerList(j, "use_sp", L, 0, true));
  CAIRN_ASSIGN_OR_RETURN(std::vector<int> ckpt, LayerList(j, "checkpoint", L, 0, true));
  CAIRN_ASSIGN_OR_RETURN(std::string dp_type, RequiredString(j, "default_dp_type"));
  CAIRN_ASSIGN_OR_RETURN(DpMode default_dp, ParseDpType(dp_type));
  CAIRN_ASSIGN_OR_RETURN(std::string pipeline, RequiredString(j, "pipeline_type"));

  PlanSpec plan;
  plan.origin = "galvatron import";
  if (pipeline == "pipedream_flush") {
    plan.schedule = Schedule::k1F1B;
  } else if (pipeline == "gpipe") {
    plan.schedule = Schedule::kGPipe;
  } else {
    return absl::InvalidArgumentError(absl::StrCat(
        "pipeline_type: \"", pipeline, "\" is not one of pipedream_flush, gpipe"));
  }
  CAIRN_ASSIGN_OR_RETURN(plan.global_batch, RequiredInt(j, "global_bsz"));
  if (plan.global_batch < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("global_bsz: must be >= 1, got ", plan.global_batch));
  }
  CAIRN_ASSIGN_OR_RETURN(plan.num_micro_batches, OptionalInt(j, "chunks", 1));
  if (plan.num_micro_batches < 1 || plan.num_micro_batches > plan.global_batch) {
    return absl::InvalidArgumentError(absl::StrCat("chunks: must be between 1 and global_bsz ",
                                                   plan.global_batch, ", got ",
                                                   plan.num_micro_batches));
  }

  std::vector<int> division;
  if (j.contains("pp_division")) {
    CAIRN_ASSIGN_OR_RETURN(division, IntList(j, "pp_division"));
  } else if (pp == 1) {
    division = {L};
  } else {
    return absl::InvalidArgumentError("pp_division: missing (required when pp_deg > 1)");
  }
  if (static_cast<int>(division.size()) != pp) {
    return absl::InvalidArgumentError(absl::StrCat("pp_division: has ", division.size(),
                                                   " entries, pp_deg is ", pp));
  }
  int sum = 0;
  for (int i = 0; i < pp; ++i) {
    if (division[i] < 1) {
      return absl::InvalidArgumentError(
          absl::StrCat("pp_division: stage ", i, " has ", division[i], " layers, need >= 1"));
    }
    sum += division[i];
  }
  if (sum != L) {
    return absl::InvalidArgumentError(absl::StrCat("pp_division: stages hold ", sum,
                                                   " layers in all, the model has ", L));
  }
  for (int i = 0; i < pp; ++i) {
    plan.stage_layers.push_back(division[i] + (i == 0 ? 1 : 0) + (i == pp - 1 ? 1 : 0));
  }

  CAIRN_ASSIGN_OR_RETURN(int vtp, OptionalInt(j, "vtp", 1));
  CAIRN_ASSIGN_OR_RETURN(int vsp, OptionalInt(j, "vsp", 0));
  CAIRN_ASSIGN_OR_RETURN(int embed_sdp, OptionalInt(j, "embed_sdp", 0));
  if (j.contains("vocab_sdp")) {
    CAIRN_ASSIGN_OR_RETURN(int vocab_sdp, IntScalar(j, "vocab_sdp"));
    if (j.contains("embed_sdp") && vocab_sdp != embed_sdp) {
      return absl::InvalidArgumentError(absl::StrCat(
          "vocab_sdp: ", vocab_sdp, " disagrees with embed_sdp ", embed_sdp));
    }
    embed_sdp = vocab_sdp;
  }
  for (const auto& [name, value] : {std::pair<const char*, int>{"vsp", vsp}, {"embed_sdp", embed_sdp}}) {
    if (value != 0 && value != 1) {
      return absl::InvalidArgumentError(absl::StrCat(name, ": expected 0 or 1, got ", value));
    }
  }
  CAIRN_RETURN_IF_ERROR(CheckDegree(vtp, stage_devices, pp, num_devices, model.num_heads, "vtp"));

  Strategy vocab;
  vocab.tp = vtp;
  vocab.mode = vsp ? ParallelMode::kUlysses : ParallelMode::kTensor;
  vocab.dp = embed_sdp ? DpMode::kZero3 : default_dp;
  vocab.recompute = false;
  vocab.tp_consecutive = true;
  plan.layers.push_back(vocab);
  for (int i = 0; i < L; ++i) {
    CAIRN_RETURN_IF_ERROR(CheckDegree(tp[i], stage_devices, pp, num_devices, model.num_heads,
                                      absl::StrCat("tp_sizes_enc: layer ", i)));
    Strategy s;
    s.tp = tp[i];
    s.mode = ulysses[i] ? ParallelMode::kUlysses : ParallelMode::kTensor;
    s.dp = sdp[i] ? DpMode::kZero3 : default_dp;
    s.recompute = ckpt[i] != 0;
    s.tp_consecutive = consec[i] != 0;
    plan.layers.push_back(s);
  }
  plan.layers.push_back(vocab);

  for (size_t i = 0; i < plan.layers.size(); ++i) {
    const int dp = stage_devices / plan.layers[i].tp;
    if (plan.global_batch % dp != 0) {
      return absl::InvalidArgumentError(absl::StrCat(
          "global_bsz: ", plan.global_batch, " is not divisible by the data-parallel degree ", dp,
          " of ", i == 0 ? "the embedding (vtp)"
                         : (i + 1 == plan.layers.size() ? "the head (vtp)"
                                                         : absl::StrCat("layer ", i - 1))));
    }
  }
  return plan;
}

absl::Status CheckPlanShape(const PlanSpec& plan, const ModelDims& model, int num_devices) {
  const int L = model.num_layers;
  if (num_devices < 1) {
    return absl::InvalidArgumentError(absl::StrCat("num_devices must be >= 1, got ", num_devices));
  }
  if (static_cast<int>(plan.layers.size()) != L + 2) {
    return absl::InvalidArgumentError(absl::StrCat("plan has ", plan.layers.size(),
                                                   " layer strategies, model \"", model.name,
                                                   "\" needs num_layers + 2 = ", L + 2));
  }
  const int pp = plan.pipeline_degree();
  if (pp < 1 || num_devices % pp != 0) {
    return absl::InvalidArgumentError(absl::StrCat("pipeline degree ", pp,
                                                   " does not divide the ", num_devices,
                                                   " devices"));
  }
  int sum = 0;
  for (int n : plan.stage_layers) sum += n;
  if (sum != L + 2) {
    return absl::InvalidArgumentError(
        absl::StrCat("stage_layers sum to ", sum, ", expected num_layers + 2 = ", L + 2));
  }
  if (plan.global_batch < 1 || plan.num_micro_batches < 1 ||
      plan.num_micro_batches > plan.global_batch) {
    return absl::InvalidArgumentError(absl::StrCat(
        "need 1 <= num_micro_batches (", plan.num_micro_batches, ") <= global_batch (",
        plan.global_batch, ")"));
  }
  const int stage_devices = num_devices / pp;
  for (int i = 0; i < L + 2; ++i) {
    const Strategy& s = plan.layers[i];
    CAIRN_RETURN_IF_ERROR(CheckDegree(s.tp, stage_devices, pp, num_devices, model.num_heads,
                                      absl::StrCat("tp of layer index ", i)));
    if (plan.global_batch % (stage_devices / s.tp) != 0) {
      return absl::InvalidArgumentError(absl::StrCat(
          "global_batch ", plan.global_batch, " is not divisible by the data-parallel degree ",
          stage_devices / s.tp, " of layer index ", i));
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<cairn::v1::HardwareProfile> ImportHardware(
    const std::string& dir, int num_nodes, int gpus_per_node,
    const cairn::v1::HardwareProfile& base) {
  if (num_nodes < 1 || gpus_per_node < 1) {
    return absl::InvalidArgumentError(absl::StrCat("num_nodes (", num_nodes,
                                                   ") and gpus_per_node (", gpus_per_node,
                                                   ") must be >= 1"));
  }
  const std::string prefix = dir.empty() || dir.back() == '/' ? dir : dir + "/";
  const std::string suffix = FileSuffix(num_nodes, gpus_per_node);
  std::vector<std::string> read;

  std::map<CommKey, CollectiveCost> imported;
  const std::string allreduce_path = prefix + "allreduce_bandwidth_" + suffix;
  CAIRN_RETURN_IF_ERROR(ReadAllReduceBandwidth(allreduce_path, num_nodes, gpus_per_node,
                                               &imported));
  read.push_back(BaseName(allreduce_path));

  const std::string p2p_path = prefix + "p2p_bandwidth_" + suffix;
  if (FileExists(p2p_path)) {
    CAIRN_RETURN_IF_ERROR(ReadP2pBandwidth(p2p_path, num_nodes, gpus_per_node, &imported));
    read.push_back(BaseName(p2p_path));
  }
  const std::string sp_path = prefix + "sp_time_" + suffix;
  if (FileExists(sp_path)) {
    CAIRN_RETURN_IF_ERROR(ReadSpTime(sp_path, num_nodes, gpus_per_node, &imported));
    read.push_back(BaseName(sp_path));
  }
  cairn::v1::HardwareProfile hw = base;
  const std::string overlap_path = prefix + "overlap_coefficient.json";
  if (FileExists(overlap_path)) {
    CAIRN_ASSIGN_OR_RETURN(double coe, ReadOverlap(overlap_path));
    hw.set_overlap_slowdown(coe);
    read.push_back(BaseName(overlap_path));
  }

  // Base entries that nothing replaces stay, in their order; then the imported ones by key.
  hw.clear_collectives();
  hw.set_devices_per_node(gpus_per_node);
  std::vector<std::string> kept;
  for (const CollectiveCost& c : base.collectives()) {
    if (imported.count(KeyOf(c)) != 0) continue;
    if (!c.spans_nodes() && c.group_size() > gpus_per_node) continue;
    *hw.add_collectives() = c;
  }
  const int kept_count = hw.collectives_size();
  for (const auto& [key, c] : imported) *hw.add_collectives() = c;

  hw.set_name(base.name() + "+galvatron");
  hw.set_source(cairn::v1::PROFILE_SOURCE_IMPORTED);
  hw.set_notes(absl::StrCat(
      "Imported from Galvatron profiles in ", dir, " (", num_nodes, " node(s) x ", gpus_per_node,
      " GPUs): ", absl::StrJoin(read, ", "), ". ", imported.size(),
      " collective entries imported (Galvatron MB = 2^20 bytes, MB/ms = 2^20 x 1000 bytes/s; "
      "bandwidth-only entries have latency 0 as in Galvatron's model; all-gather/reduce-scatter "
      "= half an all-reduce). Device, GEMM table", FileExists(overlap_path) ? "" : ", overlap",
      " and ", kept_count, " collective entries Galvatron does not measure come from \"",
      base.name(), "\": ", base.notes()));
  const absl::Status valid = ValidateHardwareProfile(hw);
  if (!valid.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("profile imported from ", dir, " is invalid: ", valid.message()));
  }
  return hw;
}

absl::StatusOr<cairn::v1::ModelProfile> ImportModelProfile(
    const std::string& computation_json_path, const std::string& memory_json_path,
    const cairn::v1::ModelSpec& model, int seq_len) {
  const absl::Status valid_model = ValidateModelSpec(model);
  if (!valid_model.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("model: ", valid_model.message()));
  }
  const int default_seq = seq_len > 0 ? seq_len : model.max_seq_len();
  if (default_seq > model.max_seq_len()) {
    return absl::InvalidArgumentError(absl::StrCat("seq_len ", seq_len,
                                                   " exceeds the model's max_seq_len ",
                                                   model.max_seq_len()));
  }
  const std::string& path = computation_json_path;
  CAIRN_ASSIGN_OR_RETURN(json j, ReadJsonObject(path));
  const std::string file = BaseName(path);
  static const std::regex kRaw(R"(layernum\[[0-9,\s]+\]_bsz\d+(_seq\d+)?)");
  static const std::regex kLayer(R"(layertype_(\d+|other)(?:_bsz(\d+))?(?:_seq(\d+))?)");

  std::map<TimingKey, cairn::v1::LayerTiming> timings;
  std::map<TimingKey, std::string> key_of;  // to name both keys of a duplicate
  int block_count = 0;
  for (const auto& [key, value] : j.items()) {
    std::smatch m;
    if (std::regex_match(key, m, kRaw)) continue;
    if (!std::regex_match(key, m, kLayer)) {
      return absl::InvalidArgumentError(absl::StrCat(
          path, ": unknown key \"", key,
          "\" (expected layertype_{0|other}[_bsz{b}][_seq{s}] or layernum[...]_bsz{b}_seq{s})"));
    }
    const bool other = m[1] == "other";
    if (!other && m[1] != "0") {
      return absl::UnimplementedError(absl::StrCat(
          path, ": key \"", key, "\": Cairn models have one transformer block type; Galvatron's "
          "layer type ", m[1].str(), " (e.g. a decoder of an encoder-decoder model) is not supported"));
    }
    const int mbs = m[2].matched ? ToInt(m[2]) : 1;
    if (mbs < 1) {
      return absl::InvalidArgumentError(
          absl::StrCat(path, ": key \"", key, "\": micro-batch size must be >= 1"));
    }
    int seq = default_seq;
    if (m[3].matched) {
      seq = ToInt(m[3]);
      if (seq < 1 || seq > model.max_seq_len()) {
        return absl::InvalidArgumentError(absl::StrCat(
            path, ": key \"", key, "\": sequence length ", seq, " is not in [1, max_seq_len = ",
            model.max_seq_len(), "] of model \"", model.name(), "\""));
      }
    }
    CAIRN_ASSIGN_OR_RETURN(double ms, Number(value, path, key));
    if (!(ms >= 0) || !std::isfinite(ms) || (!other && ms == 0)) {
      return absl::InvalidArgumentError(absl::StrCat(
          path, ": key \"", key, "\" must be ", other ? "non-negative" : "positive", ", got ", ms));
    }
    const double forward_s = mbs * ms * 1e-3;
    std::vector<cairn::v1::LayerKind> kinds;
    if (other) {
      if (ms == 0) continue;  // Galvatron clamps "other" at 0: nothing measured
      kinds = {cairn::v1::LAYER_KIND_EMBEDDING, cairn::v1::LAYER_KIND_HEAD};
    } else {
      kinds = {cairn::v1::LAYER_KIND_TRANSFORMER_BLOCK};
      ++block_count;
    }
    for (cairn::v1::LayerKind kind : kinds) {
      const TimingKey k{kind, 1, seq, mbs};
      if (timings.count(k) != 0) {
        return absl::InvalidArgumentError(absl::StrCat(
            path, ": keys \"", key_of[k], "\" and \"", key,
            "\" both give micro-batch ", mbs, " at sequence length ", seq));
      }
      key_of[k] = key;
      cairn::v1::LayerTiming& t = timings[k];
      t.set_kind(kind);
      t.set_tp_degree(1);
      t.set_micro_batch_size(mbs);
      t.set_seq_len(seq);
      t.set_forward_s(other ? forward_s / 2 : forward_s);
      t.set_backward_s(0);
    }
  }
  if (block_count == 0) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, ": no layertype_0 timings (is this a computation profile?)"));
  }

  std::string source = absl::StrCat("galvatron:", file);
  if (!memory_json_path.empty()) {
    std::string used_key;
    CAIRN_RETURN_IF_ERROR(
        ReadMemoryProfile(memory_json_path, model, default_seq, &timings, &used_key));
    absl::StrAppend(&source, " + ", BaseName(memory_json_path), " (", used_key,
                    " activation per sample at each tp; tp > 1 entries carry no time)");
  }

  cairn::v1::ModelProfile profile;
  profile.set_model_name(model.name());
  const bool fp32 = file.find("fp32") != std::string::npos;
  profile.set_activation_dtype_bytes(fp32 ? 4 : 2);
  absl::StrAppend(&source, "; forward times only (backward unknown)");
  profile.set_source(source);
  for (const auto& [key, t] : timings) *profile.add_timings() = t;
  return profile;
}

}  // namespace

absl::StatusOr<cairn::v1::HardwareProfile> ImportGalvatronHardware(
    const std::string& dir, int num_nodes, int gpus_per_node,
    const cairn::v1::HardwareProfile& base) {
  try {
    return ImportHardware(dir, num_nodes, gpus_per_node, base);
  } catch (const json::exception& e) {  // defensive: every access is type-checked
    return absl::InvalidArgumentError(absl::StrCat("Galvatron hardware files in ", dir, ": ",
                                                   e.what()));
  }
}

absl::StatusOr<cairn::v1::ModelProfile> ImportGalvatronModelProfile(
    const std::string& computation_json_path, const std::string& memory_json_path,
    const cairn::v1::ModelSpec& model, int seq_len) {
  try {
    return ImportModelProfile(computation_json_path, memory_json_path, model, seq_len);
  } catch (const json::exception& e) {  // defensive: every access is type-checked
    return absl::InvalidArgumentError(absl::StrCat("Galvatron model profile ",
                                                   computation_json_path, ": ", e.what()));
  }
}

absl::StatusOr<PlanSpec> ImportGalvatronStrategy(const std::string& json_text,
                                                 const ModelDims& model, int num_devices) {
  CAIRN_ASSIGN_OR_RETURN(json j, ParseJson(json_text, "Galvatron strategy"));
  try {
    return ImportStrategy(j, model, num_devices);
  } catch (const json::exception& e) {  // defensive: every access above is type-checked
    return absl::InvalidArgumentError(absl::StrCat("Galvatron strategy: ", e.what()));
  }
}

absl::StatusOr<PlanSpec> ImportGalvatronStrategyFile(const std::string& path,
                                                     const ModelDims& model, int num_devices) {
  CAIRN_ASSIGN_OR_RETURN(std::string text, ReadTextFile(path));
  absl::StatusOr<PlanSpec> plan = ImportGalvatronStrategy(text, model, num_devices);
  if (!plan.ok()) {
    return absl::Status(plan.status().code(), absl::StrCat(path, ": ", plan.status().message()));
  }
  return plan;
}

absl::StatusOr<std::string> ExportGalvatronStrategy(const PlanSpec& plan, const ModelDims& model,
                                                    int num_devices) {
  CAIRN_RETURN_IF_ERROR(CheckPlanShape(plan, model, num_devices));
  const int L = model.num_layers;
  const int pp = plan.pipeline_degree();
  const Strategy& embedding = plan.layers.front();
  const Strategy& head = plan.layers.back();
  if (embedding != head) {
    return absl::UnimplementedError(absl::StrCat(
        "Galvatron gives the embedding and the head one strategy (vtp, vsp, embed_sdp); the plan "
        "has \"", Describe(embedding), "\" and \"", Describe(head), "\""));
  }
  if (embedding.recompute || !embedding.tp_consecutive) {
    return absl::UnimplementedError(
        "Galvatron cannot recompute the embedding/head or place them on strided ranks");
  }
  std::vector<int> division(pp);
  for (int i = 0; i < pp; ++i) {
    division[i] = plan.stage_layers[i] - (i == 0 ? 1 : 0) - (i == pp - 1 ? 1 : 0);
    if (division[i] < 1) {
      return absl::UnimplementedError(absl::StrCat(
          "pipeline stage ", i, " holds no transformer block; Galvatron's pp_division needs at "
          "least one per stage"));
    }
  }
  // One default_dp_type for every layer that is not ZeRO-3.
  bool have_default = false;
  DpMode default_dp = DpMode::kZero2;
  for (int i = 0; i < L + 2; ++i) {
    const Strategy& s = plan.layers[i];
    if (s.mode == ParallelMode::kTensorSequence) {
      return absl::UnimplementedError(absl::StrCat(
          "layer index ", i, " uses Megatron sequence parallelism (tp+sp); Galvatron's strategy "
          "file has no per-layer field for it (it is the global --sequence-parallel runtime flag)"));
    }
    if (s.dp == DpMode::kZero1) {
      return absl::UnimplementedError(absl::StrCat(
          "layer index ", i, " uses ZeRO-1, which Galvatron does not implement"));
    }
    if (s.dp == DpMode::kZero3) continue;
    if (have_default && s.dp != default_dp) {
      return absl::UnimplementedError(absl::StrCat(
          "layers use both ", ToString(default_dp), " and ", ToString(s.dp),
          "; Galvatron allows ZeRO-3 plus one default_dp_type"));
    }
    have_default = true;
    default_dp = s.dp;
  }

  std::vector<int> tp, consec, sdp, ulysses, ckpt;
  for (int i = 1; i <= L; ++i) {
    const Strategy& s = plan.layers[i];
    tp.push_back(s.tp);
    consec.push_back(s.tp_consecutive ? 1 : 0);
    sdp.push_back(s.dp == DpMode::kZero3 ? 1 : 0);
    ulysses.push_back(s.mode == ParallelMode::kUlysses ? 1 : 0);
    ckpt.push_back(s.recompute ? 1 : 0);
  }
  const int embed_sdp = embedding.dp == DpMode::kZero3 ? 1 : 0;
  nlohmann::ordered_json out;
  out["pp_deg"] = pp;
  out["tp_sizes_enc"] = absl::StrJoin(tp, ",");
  out["tp_consecutive_flags"] = absl::StrJoin(consec, ",");
  out["dp_types_enc"] = absl::StrJoin(sdp, ",");
  out["use_sp"] = absl::StrJoin(ulysses, ",");
  out["checkpoint"] = absl::StrJoin(ckpt, ",");
  out["global_bsz"] = plan.global_batch;
  out["chunks"] = plan.num_micro_batches;
  out["pp_division"] = absl::StrJoin(division, ",");
  out["pipeline_type"] = plan.schedule == Schedule::kGPipe ? "gpipe" : "pipedream_flush";
  out["default_dp_type"] = ToString(default_dp);
  out["vtp"] = embedding.tp;
  out["vsp"] = embedding.mode == ParallelMode::kUlysses ? 1 : 0;
  out["embed_sdp"] = embed_sdp;
  out["vocab_sdp"] = embed_sdp;
  out["world_size"] = num_devices;
  return out.dump(4);
}

}  // namespace cairn::planner
