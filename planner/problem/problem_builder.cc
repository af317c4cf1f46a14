#include "planner/problem/problem_builder.h"

#include <algorithm>
#include <cmath>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/math.h"
#include "common/proto_fields.h"
#include "common/status_macros.h"
#include "google/protobuf/descriptor.h"
#include "google/protobuf/message.h"
#include "common/units.h"
#include "planner/catalog/clusters.h"
#include "planner/catalog/models.h"
#include "planner/cost/runtime_traits.h"
#include "planner/problem/proto_enums.h"

namespace cairn::planner {
namespace {

// Limits that bound the work and memory of one search (docs/reliability.md lists them with what
// each protects): sizes and counts that flow from a request into int arithmetic, loops and
// per-micro-batch allocations are checked here, in 64 bits, before anything is computed from them.
constexpr int64_t kMaxDevices = int64_t{1} << 20;     // num_nodes x devices_per_node
constexpr int kMaxLayers = 1024;                      // transformer blocks
constexpr int kMaxHidden = 1 << 17;                   // hidden_size
constexpr int kMaxFfnHidden = 1 << 19;                // ffn_hidden_size
constexpr int kMaxVocab = 1 << 22;                    // vocab_size
constexpr int kMaxSeqLen = 1 << 22;                   // max_seq_len
constexpr int kMaxGlobalBatch = 1 << 24;              // samples per step
constexpr int64_t kMaxTokensPerStep = int64_t{1} << 32;  // global batch x seq_len
constexpr int kMaxMicroBatches = 4096;                // also search.cc's bound on divisors
constexpr int64_t kMaxCombinations = int64_t{1} << 18;   // (batch, pp, m, schedule) tuples
constexpr int64_t kMaxDeviceMemoryBytes = int64_t{1} << 50;  // 1 PiB
// layers x hidden x tokens per step: the activation bytes of a whole step (about 70 bytes per
// token, hidden unit and layer) summed in int64 by the cost model and the DP stay below 2^63.
constexpr double kMaxActivationScale = 0x1p55;

absl::Status Invalid(absl::string_view field, absl::string_view problem) {
  return absl::InvalidArgumentError(absl::StrCat(field, ": ", problem));
}

// Divisors of x >= 1 (O(sqrt(x)), 64-bit loop variable).
int64_t CountDivisorsUpTo(int x, int limit) {
  int64_t count = 0;
  for (int64_t i = 1; i * i <= x; ++i) {
    if (x % i != 0) continue;
    if (i <= limit) ++count;
    if (i * i != x && x / i <= limit) ++count;
  }
  return count;
}

absl::Status CheckModelLimits(const cairn::v1::ModelSpec& m) {
  struct Dim {
    const char* field;
    int value;
    int max;
  };
  for (const Dim& d : {Dim{"num_layers", m.num_layers(), kMaxLayers},
                       Dim{"hidden_size", m.hidden_size(), kMaxHidden},
                       Dim{"ffn_hidden_size", m.ffn_hidden_size(), kMaxFfnHidden},
                       Dim{"num_heads", m.num_heads(), m.hidden_size()},
                       Dim{"vocab_size", m.vocab_size(), kMaxVocab},
                       Dim{"max_seq_len", m.max_seq_len(), kMaxSeqLen}}) {
    if (d.value > d.max) {
      return Invalid(absl::StrCat("model.", d.field),
                     absl::StrCat(d.value, " exceeds the planner's limit of ", d.max));
    }
  }
  return absl::OkStatus();
}

// Limits on the cluster beyond ValidateHardwareProfile: finite numbers, a device count that fits
// the search's int arithmetic, a sane memory size.
absl::Status CheckClusterLimits(const cairn::v1::Cluster& c) {
  const std::string bad = NonFiniteField(c.hardware());
  if (!bad.empty()) {
    return Invalid("cluster.hardware", absl::StrCat(bad, ": every number must be finite"));
  }
  const int64_t devices = static_cast<int64_t>(c.hardware().devices_per_node()) * c.num_nodes();
  if (devices > kMaxDevices) {
    return Invalid("cluster", absl::StrCat(c.num_nodes(), " nodes x ",
                                           c.hardware().devices_per_node(), " devices = ", devices,
                                           " devices; the planner searches at most ", kMaxDevices));
  }
  if (c.hardware().device().memory_bytes() > kMaxDeviceMemoryBytes) {
    return Invalid("cluster.hardware.device.memory_bytes",
                   absl::StrCat(c.hardware().device().memory_bytes(), " exceeds the limit of ",
                                kMaxDeviceMemoryBytes, " (1 PiB)"));
  }
  return absl::OkStatus();
}

// (batch, pipeline degree, micro-batch count, schedule) tuples the search would consider.
int64_t CountCombinations(const SearchProblem& pb) {
  const int n = pb.hardware.num_devices();
  int64_t pps = static_cast<int64_t>(pb.space.pipeline_degrees.size());
  if (pps == 0) pps = CountDivisorsUpTo(n, pb.model.num_layers);
  // The interleaved schedule is tried with each of its virtual-stage counts.
  int64_t schedules = 0;
  for (Schedule s : pb.space.schedules) {
    schedules += s != Schedule::kInterleaved1F1B ? 1
                 : pb.space.virtual_stages.empty()
                     ? kMaxDefaultVirtualStages - 1
                     : static_cast<int64_t>(pb.space.virtual_stages.size());
  }
  int64_t total = 0;
  for (int batch : pb.global_batch_sizes) {
    int64_t ms = 0;
    if (pb.space.micro_batch_counts.empty()) {
      ms = CountDivisorsUpTo(batch, kMaxMicroBatches);
    } else {
      for (int m : pb.space.micro_batch_counts) ms += batch % m == 0 ? 1 : 0;
    }
    total += ms * pps * schedules;
    if (total > kMaxCombinations) break;
  }
  return total;
}

// Checks a proto enum value before the (total) FromProto conversion: proto3 enums are open, and
// UNSPECIFIED would silently become a default there.
absl::Status CheckEnum(int value, bool (*is_valid)(int), absl::string_view field,
                       absl::string_view names) {
  if (value == 0) return Invalid(field, absl::StrCat("is unspecified; use one of ", names));
  if (!is_valid(value)) {
    return Invalid(field, absl::StrCat("unknown value ", value, "; use one of ", names));
  }
  return absl::OkStatus();
}

// Converts a repeated proto enum field, sorted and without duplicates; empty keeps `defaults`.
template <typename ProtoEnum, typename Plain>
absl::StatusOr<std::vector<Plain>> EnumList(const google::protobuf::RepeatedField<int>& list,
                                            absl::string_view field, bool (*is_valid)(int),
                                            absl::string_view names, std::vector<Plain> defaults) {
  if (list.empty()) return defaults;
  std::set<Plain> out;
  for (int i = 0; i < list.size(); ++i) {
    CAIRN_RETURN_IF_ERROR(CheckEnum(list.Get(i), is_valid, absl::StrCat(field, "[", i, "]"), names));
    out.insert(FromProto(static_cast<ProtoEnum>(list.Get(i))));
  }
  return std::vector<Plain>(out.begin(), out.end());
}

const char* SourceWord(cairn::v1::ProfileSource source) {
  switch (source) {
    case cairn::v1::PROFILE_SOURCE_DEFAULT: return "default";
    case cairn::v1::PROFILE_SOURCE_MEASURED: return "measured";
    case cairn::v1::PROFILE_SOURCE_IMPORTED: return "imported";
    default: return "unspecified";
  }
}

absl::Status BuildBatches(const cairn::v1::SearchRequest& r, std::vector<int>* out) {
  if (r.has_batch_range() && r.global_batch_size() != 0) {
    return absl::InvalidArgumentError(
        "global_batch_size and batch_range are both set: set global_batch_size for a fixed batch "
        "or batch_range to search the batch size, not both");
  }
  if (!r.has_batch_range()) {
    if (r.global_batch_size() <= 0) {
      return Invalid("global_batch_size",
                     absl::StrCat("must be positive (samples per optimizer step), got ",
                                  r.global_batch_size(), "; or set batch_range instead"));
    }
    if (r.global_batch_size() > kMaxGlobalBatch) {
      return Invalid("global_batch_size", absl::StrCat(r.global_batch_size(),
                                                       " samples exceeds the planner's limit of ",
                                                       kMaxGlobalBatch));
    }
    out->push_back(r.global_batch_size());
    return absl::OkStatus();
  }
  const cairn::v1::BatchRange& b = r.batch_range();
  if (b.min() < 1) return Invalid("batch_range.min", absl::StrCat("must be >= 1, got ", b.min()));
  if (b.max() < b.min()) {
    return Invalid("batch_range.max",
                   absl::StrCat(b.max(), " is below batch_range.min ", b.min()));
  }
  if (b.step() < 1) {
    return Invalid("batch_range.step", absl::StrCat("must be >= 1, got ", b.step()));
  }
  if (b.max() > kMaxGlobalBatch) {
    return Invalid("batch_range.max", absl::StrCat(b.max(), " samples exceeds the planner's limit of ",
                                                   kMaxGlobalBatch));
  }
  const int64_t count = (static_cast<int64_t>(b.max()) - b.min()) / b.step() + 1;
  if (count > kMaxBatchCandidates) {
    return Invalid("batch_range", absl::StrCat("gives ", count, " candidates, at most ",
                                               kMaxBatchCandidates, ": raise step"));
  }
  for (int64_t v = b.min(); v <= b.max(); v += b.step()) out->push_back(static_cast<int>(v));
  return absl::OkStatus();
}

absl::Status BuildSpace(const cairn::v1::SearchSpace& s, int num_devices, int num_layers,
                        int max_global_batch, SearchSpace* out) {
  std::set<int> degrees;
  for (int i = 0; i < s.pipeline_degrees_size(); ++i) {
    const int p = s.pipeline_degrees(i);
    const std::string field = absl::StrCat("space.pipeline_degrees[", i, "]");
    if (p < 1) return Invalid(field, absl::StrCat("must be >= 1, got ", p));
    if (num_devices % p != 0) {
      return Invalid(field, absl::StrCat(p, " does not divide the ", num_devices, " devices"));
    }
    if (p > num_layers) {
      return Invalid(field, absl::StrCat(p, " exceeds the model's ", num_layers,
                                         " layers (each stage needs a layer)"));
    }
    degrees.insert(p);
  }
  out->pipeline_degrees.assign(degrees.begin(), degrees.end());

  const int max_tp = s.max_tp_degree();
  if (max_tp != 0 && (!IsPowerOfTwo(max_tp) || max_tp > num_devices)) {
    return Invalid("space.max_tp_degree",
                   absl::StrCat("must be 0 (devices per node) or a power of 2 up to the ",
                                num_devices, " devices, got ", max_tp));
  }
  out->max_tp = max_tp;

  CAIRN_ASSIGN_OR_RETURN(
      out->modes, EnumList<cairn::v1::ParallelMode>(
                      s.modes(), "space.modes", &cairn::v1::ParallelMode_IsValid,
                      "PARALLEL_MODE_TENSOR, PARALLEL_MODE_TENSOR_SEQUENCE, PARALLEL_MODE_ULYSSES",
                      out->modes));
  CAIRN_ASSIGN_OR_RETURN(
      out->dp_modes,
      EnumList<cairn::v1::DataParallelMode>(
          s.dp_modes(), "space.dp_modes", &cairn::v1::DataParallelMode_IsValid,
          "DATA_PARALLEL_MODE_DDP, _ZERO1, _ZERO2, _ZERO3", out->dp_modes));
  CAIRN_ASSIGN_OR_RETURN(
      out->schedules, EnumList<cairn::v1::PipelineSchedule>(
                          s.schedules(), "space.schedules", &cairn::v1::PipelineSchedule_IsValid,
                          "PIPELINE_SCHEDULE_1F1B, PIPELINE_SCHEDULE_GPIPE, "
                          "PIPELINE_SCHEDULE_INTERLEAVED_1F1B",
                          out->schedules));
  std::set<int> virtual_stages;
  for (int i = 0; i < s.virtual_stages_size(); ++i) {
    const int v = s.virtual_stages(i);
    if (v < 2 || v > num_layers) {
      return Invalid(absl::StrCat("space.virtual_stages[", i, "]"),
                     absl::StrCat("must be in [2, ", num_layers, "] (model chunks per pipeline "
                                  "stage), got ", v));
    }
    virtual_stages.insert(v);
  }
  out->virtual_stages.assign(virtual_stages.begin(), virtual_stages.end());
  out->allow_recompute = !s.disable_recompute();
  out->uniform_layers = s.uniform_layers();

  std::set<int> counts;
  for (int i = 0; i < s.micro_batch_counts_size(); ++i) {
    const int m = s.micro_batch_counts(i);
    const std::string field = absl::StrCat("space.micro_batch_counts[", i, "]");
    if (m < 1) return Invalid(field, absl::StrCat("must be >= 1, got ", m));
    if (m > max_global_batch) {
      return Invalid(field, absl::StrCat(m, " exceeds the largest global batch ",
                                         max_global_batch));
    }
    if (m > kMaxMicroBatches) {
      return Invalid(field, absl::StrCat(m, " exceeds the planner's limit of ", kMaxMicroBatches,
                                         " micro-batches"));
    }
    counts.insert(m);
  }
  out->micro_batch_counts.assign(counts.begin(), counts.end());
  return absl::OkStatus();
}

absl::Status BuildMeasured(const cairn::v1::ModelProfile& profile, const std::string& model_name,
                           SearchProblem* problem) {
  problem->model_profile_name = "analytic";
  if (profile.timings_size() == 0) return absl::OkStatus();
  if (!profile.model_name().empty() && profile.model_name() != model_name) {
    return Invalid("model_profile.model_name",
                   absl::StrCat("the profile is for model \"", profile.model_name(),
                                "\", the request's model is \"", model_name, "\""));
  }
  for (int i = 0; i < profile.timings_size(); ++i) {
    const cairn::v1::LayerTiming& t = profile.timings(i);
    const std::string field = absl::StrCat("model_profile.timings[", i, "]");
    CAIRN_RETURN_IF_ERROR(CheckEnum(t.kind(), &cairn::v1::LayerKind_IsValid, field + ".kind",
                                    "LAYER_KIND_EMBEDDING, _TRANSFORMER_BLOCK, _HEAD"));
    if (t.tp_degree() < 1 || t.micro_batch_size() < 1 || t.seq_len() < 1) {
      return Invalid(field, absl::StrCat("tp_degree (", t.tp_degree(), "), micro_batch_size (",
                                         t.micro_batch_size(), ") and seq_len (", t.seq_len(),
                                         ") must all be >= 1"));
    }
    if (!(t.forward_s() >= 0) || !(t.backward_s() >= 0) || !std::isfinite(t.forward_s()) ||
        !std::isfinite(t.backward_s()) || t.activation_bytes() < 0) {
      return Invalid(field, absl::StrCat("forward_s (", t.forward_s(), "), backward_s (",
                                         t.backward_s(), ") and activation_bytes (",
                                         t.activation_bytes(), ") must be >= 0"));
    }
    if (t.forward_s() == 0 && t.activation_bytes() == 0 && t.recompute_activation_bytes() == 0) {
      continue;  // nothing measured
    }
    LayerTimingPoint p;
    p.kind = FromProto(t.kind());
    p.tp_degree = t.tp_degree();
    p.micro_batch_size = t.micro_batch_size();
    p.seq_len = t.seq_len();
    p.forward_s = t.forward_s();
    p.backward_s = t.backward_s();
    p.activation_bytes = t.activation_bytes();
    p.recompute_activation_bytes = t.recompute_activation_bytes();
    problem->measured.push_back(p);
  }
  const bool timed = std::any_of(problem->measured.begin(), problem->measured.end(),
                                 [](const LayerTimingPoint& p) { return p.forward_s > 0; });
  if (timed) {
    problem->model_profile_name =
        profile.source().empty() ? absl::StrCat("measured:", profile.model_name())
                                 : profile.source();
  }
  return absl::OkStatus();
}

}  // namespace

ModelDims ToModelDims(const cairn::v1::ModelSpec& spec) { return plan::ModelDimsFromSpec(spec); }

Hardware ToHardware(const cairn::v1::Cluster& cluster) {
  const cairn::v1::HardwareProfile& hw = cluster.hardware();
  const cairn::v1::DeviceSpec& d = hw.device();
  Hardware out;
  // "h100-sxm (default)"; an agent's profile already says it: "cpu x2 (measured)".
  const std::string source = absl::StrCat(" (", SourceWord(hw.source()), ")");
  out.name = absl::EndsWith(hw.name(), source) ? hw.name() : absl::StrCat(hw.name(), source);
  out.device_model = hw.fingerprint().device_model().empty() ? d.name()
                                                              : hw.fingerprint().device_model();
  out.device_memory_bytes = d.memory_bytes();
  out.reserved_bytes = d.reserved_bytes();
  out.peak_flops_per_s = d.peak_flops_per_s();
  for (const cairn::v1::GemmPoint& g : d.gemm()) {
    out.gemm.push_back(GemmRate{g.flops(), g.achieved_flops_per_s()});
  }
  std::sort(out.gemm.begin(), out.gemm.end(),
            [](const GemmRate& a, const GemmRate& b) { return a.flops < b.flops; });
  out.attention_efficiency = d.attention_efficiency() > 0 ? d.attention_efficiency() : 1.0;
  out.memory_bandwidth_bytes_per_s = d.memory_bandwidth_bytes_per_s();
  out.devices_per_node = hw.devices_per_node();
  out.num_nodes = cluster.num_nodes();
  for (const cairn::v1::CollectiveCost& c : hw.collectives()) {
    if (c.op() == cairn::v1::COLLECTIVE_OP_UNSPECIFIED || !cairn::v1::CollectiveOp_IsValid(c.op())) {
      continue;
    }
    CommTable t;
    t.op = FromProto(c.op());
    t.group_size = c.group_size();
    t.spans_nodes = c.spans_nodes();
    t.latency_s = c.latency_s();
    t.busbw_bytes_per_s = c.busbw_bytes_per_s();
    t.ranks_per_node = c.ranks_per_node();
    for (const cairn::v1::CommPoint& p : c.points()) {
      t.points.push_back(CommPoint{p.bytes(), p.time_s()});
    }
    std::sort(t.points.begin(), t.points.end(),
              [](const CommPoint& a, const CommPoint& b) { return a.bytes < b.bytes; });
    out.collectives.push_back(std::move(t));
  }
  out.overlap_slowdown = hw.overlap_slowdown() >= 1 ? hw.overlap_slowdown() : 1.0;
  for (const cairn::v1::GemmShapePoint& g : d.gemm_shapes()) {
    out.gemm_shapes.push_back(GemmShapePoint{static_cast<double>(g.m()), static_cast<double>(g.n()),
                                             static_cast<double>(g.k()), g.forward_s(),
                                             g.backward_s()});
  }
  for (const cairn::v1::AttentionPoint& a : d.attention()) {
    out.attention.push_back(AttentionPoint{static_cast<double>(a.batch()) * a.heads(),
                                           static_cast<double>(a.seq_len()),
                                           static_cast<double>(a.head_dim()), a.forward_s(),
                                           a.backward_s()});
  }
  out.kernel_launch_s = d.kernel_launch_s() > 0 ? d.kernel_launch_s() : 0;
  return out;
}

absl::StatusOr<SearchProblem> BuildSearchProblem(const cairn::v1::SearchRequest& r) {
  SearchProblem problem;
  if (!r.has_model()) {
    return Invalid("model", "missing: give a ModelSpec (e.g. from the catalog: llama2-7b)");
  }
  const absl::Status model_ok = ValidateModelSpec(r.model());
  if (!model_ok.ok()) return Invalid("model", model_ok.message());
  CAIRN_RETURN_IF_ERROR(CheckModelLimits(r.model()));
  problem.model = ToModelDims(r.model());

  if (!r.has_cluster()) {
    return Invalid("cluster", "missing: give a Cluster (hardware profile and node count)");
  }
  if (r.cluster().num_nodes() < 1) {
    return Invalid("cluster.num_nodes",
                   absl::StrCat("must be >= 1, got ", r.cluster().num_nodes()));
  }
  if (r.cluster().num_nodes() > kMaxNodes) {
    return Invalid("cluster.num_nodes", absl::StrCat("must be <= ", kMaxNodes, ", got ",
                                                     r.cluster().num_nodes()));
  }
  const absl::Status hardware_ok = ValidateHardwareProfile(r.cluster().hardware());
  if (!hardware_ok.ok()) return Invalid("cluster.hardware", hardware_ok.message());
  if (r.cluster().num_nodes() > 1) {
    // Devices that talk need every collective's table (one device alone needs none).
    const absl::Status links_ok = CheckEveryCollectiveOp(r.cluster().hardware());
    if (!links_ok.ok()) return Invalid("cluster.hardware", links_ok.message());
  }
  CAIRN_RETURN_IF_ERROR(CheckClusterLimits(r.cluster()));
  problem.hardware = ToHardware(r.cluster());
  const int num_devices = problem.hardware.num_devices();

  CAIRN_RETURN_IF_ERROR(BuildBatches(r, &problem.global_batch_sizes));
  const int max_batch =
      *std::max_element(problem.global_batch_sizes.begin(), problem.global_batch_sizes.end());

  if (r.seq_len() <= 0) {
    return Invalid("seq_len", absl::StrCat("must be positive (tokens per sample), got ",
                                           r.seq_len()));
  }
  if (r.seq_len() > r.model().max_seq_len()) {
    return Invalid("seq_len", absl::StrCat(r.seq_len(), " exceeds the max_seq_len ",
                                           r.model().max_seq_len(), " of model ",
                                           r.model().name()));
  }
  problem.seq_len = r.seq_len();
  const double scale = static_cast<double>(max_batch) * r.seq_len() * r.model().hidden_size() *
                       (r.model().num_layers() + 2);
  if (scale > kMaxActivationScale) {
    return Invalid("global_batch_size",
                   absl::StrCat(max_batch, " samples x seq_len ", r.seq_len(), " x hidden ",
                                r.model().hidden_size(), " x ", r.model().num_layers() + 2,
                                " layers is beyond what the planner's 64-bit memory arithmetic "
                                "holds (2^55); use a smaller batch"));
  }
  if (static_cast<int64_t>(max_batch) * r.seq_len() > kMaxTokensPerStep) {
    return Invalid("global_batch_size",
                   absl::StrCat(max_batch, " samples x seq_len ", r.seq_len(), " = ",
                                static_cast<int64_t>(max_batch) * r.seq_len(),
                                " tokens per step exceeds the planner's limit of ",
                                kMaxTokensPerStep));
  }

  const int64_t device_memory = problem.hardware.device_memory_bytes;
  const int64_t reserved = problem.hardware.reserved_bytes;
  if (r.memory_budget_bytes() < 0) {
    return Invalid("memory_budget_bytes",
                   absl::StrCat("must be >= 0 (0 = the device memory), got ",
                                r.memory_budget_bytes()));
  }
  problem.memory_budget_bytes = r.memory_budget_bytes() == 0 ? device_memory
                                                             : r.memory_budget_bytes();
  if (problem.memory_budget_bytes > device_memory) {
    return Invalid("memory_budget_bytes",
                   absl::StrCat(FormatBytes(problem.memory_budget_bytes),
                                " exceeds the device memory ", FormatBytes(device_memory),
                                " of ", r.cluster().hardware().name()));
  }
  if (problem.memory_budget_bytes <= reserved) {
    return Invalid("memory_budget_bytes",
                   absl::StrCat(FormatBytes(problem.memory_budget_bytes),
                                " leaves nothing after the ", FormatBytes(reserved),
                                " the runtime reserves on each device (device.reserved_bytes)"));
  }
  if (r.memory_quantum_bytes() < 0 || r.memory_quantum_bytes() >= problem.memory_budget_bytes) {
    return Invalid("memory_quantum_bytes",
                   absl::StrCat("must be in [0, memory budget ", problem.memory_budget_bytes,
                                ") (0 = budget / 2048), got ", r.memory_quantum_bytes()));
  }
  problem.memory_quantum_bytes = r.memory_quantum_bytes();
  if (r.threads() < 0 || r.threads() > 1024) {
    return Invalid("threads", absl::StrCat("must be in [0, 1024] (0 = hardware concurrency), got ",
                                           r.threads()));
  }
  problem.threads = r.threads();
  if (r.top_k() < 0) {
    return Invalid("top_k", absl::StrCat("must be >= 0 (0 = 1), got ", r.top_k()));
  }
  problem.top_k = r.top_k() == 0 ? 1 : r.top_k();
  if (!(r.simplicity_tolerance() <= 1)) {  // NaN fails too
    return Invalid("simplicity_tolerance",
                   absl::StrCat("must be at most 1 (0 = 0.01, negative = off), got ",
                                r.simplicity_tolerance()));
  }
  problem.simplicity_tolerance =
      r.simplicity_tolerance() == 0 ? 0.01 : std::max(0.0, r.simplicity_tolerance());
  switch (r.dtype_bytes()) {
    case 0:
    case 2: problem.precision = Precision::Bf16Mixed(); break;
    case 4: problem.precision = Precision::Fp32(); break;
    default:
      return Invalid("dtype_bytes",
                     absl::StrCat("must be 0 or 2 (bf16 mixed precision) or 4 (fp32), got ",
                                  r.dtype_bytes()));
  }

  CAIRN_RETURN_IF_ERROR(BuildSpace(r.space(), num_devices, problem.model.num_layers, max_batch,
                                   &problem.space));
  absl::StatusOr<RuntimeTraits> runtime = RuntimeTraitsByName(r.runtime());
  if (!runtime.ok()) return Invalid("runtime", runtime.status().message());
  problem.runtime = *runtime;
  RestrictSpaceToRuntime(problem.runtime, &problem.space);
  if (problem.space.modes.empty() || problem.space.dp_modes.empty() ||
      problem.space.schedules.empty()) {
    return Invalid("space", absl::StrCat("nothing left to search: the ", problem.runtime.name,
                                         " runtime runs none of the requested modes, "
                                         "data-parallel modes or schedules"));
  }
  if (r.grad_reduce_dtype_bytes() != 0) {
    const auto& allowed = problem.runtime.grad_dtype_bytes;
    if (std::find(allowed.begin(), allowed.end(), r.grad_reduce_dtype_bytes()) == allowed.end()) {
      return Invalid("grad_reduce_dtype_bytes",
                     absl::StrCat("the ", problem.runtime.name, " runtime accumulates and reduces "
                                  "gradients in ", allowed.size() == 1 ? "fp32 only" :
                                  "fp32 (4) or bf16 (2)", ", got ", r.grad_reduce_dtype_bytes()));
    }
    problem.precision.grad_bytes = r.grad_reduce_dtype_bytes();
    // The optimizer then keeps an fp32 copy of its shard of the gradients (Megatron-Core's
    // distrib_optimizer.md: bf16 params and grads, 4 + 16/d bytes per parameter).
    if (problem.precision.grad_bytes < 4 && problem.precision.master_bytes > 0) {
      problem.precision.master_bytes += 4;
    }
  }
  CAIRN_RETURN_IF_ERROR(BuildMeasured(r.model_profile(), r.model().name(), &problem));
  if (const int64_t combos = CountCombinations(problem); combos > kMaxCombinations) {
    return Invalid("space", absl::StrCat("the search would consider more than ", kMaxCombinations,
                                         " (global batch, pipeline degree, micro-batch count, "
                                         "schedule, virtual stages) combinations; narrow "
                                         "batch_range, "
                                         "space.pipeline_degrees or space.micro_batch_counts"));
  }
  return problem;
}

}  // namespace cairn::planner
