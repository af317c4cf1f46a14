// planner/catalog/galvatron.h — reading and writing Galvatron's files.
//
// Galvatron (PKU-DAIR/Hetu-Galvatron) profiles hardware and models into JSON files and writes its
// searched strategy as JSON (shared/reference/galvatron-notes.md §1.1, §1.2, §5.3). These functions
// let Cairn plan from Galvatron's measurements and exchange plans with Galvatron's runtime:
//
//   // Hardware: Galvatron's collective measurements on top of a built-in profile.
//   CAIRN_ASSIGN_OR_RETURN(cairn::v1::HardwareProfile base, LookupHardware("a100-80g-sxm"));
//   CAIRN_ASSIGN_OR_RETURN(cairn::v1::HardwareProfile hw,
//                          ImportGalvatronHardware(dir, /*num_nodes=*/1, /*gpus_per_node=*/8, base));
//   // Model: per-layer forward times (and activation sizes) measured by Galvatron.
//   CAIRN_ASSIGN_OR_RETURN(cairn::v1::ModelProfile profile,
//                          ImportGalvatronModelProfile(computation_path, memory_path, spec));
//   // Strategy: Galvatron's searched plan <-> Cairn's PlanSpec.
//   CAIRN_ASSIGN_OR_RETURN(PlanSpec plan, ImportGalvatronStrategy(text, dims, /*num_devices=*/8));
//   CAIRN_ASSIGN_OR_RETURN(std::string json, ExportGalvatronStrategy(plan, dims, 8));
//
// Units. Galvatron's "MB" is 2^20 bytes and its bandwidths are MB/ms = 2^20 x 1000 bytes/s (which
// it treats as ~GB/s); its times are ms. Cairn stores bytes, seconds and bytes/s.
//
// Strategy mapping (Galvatron field -> Cairn), per transformer block i:
//   tp_sizes_enc[i]         -> Strategy.tp
//   use_sp[i] = 1 / 0       -> ParallelMode::kUlysses / kTensor. Megatron sequence parallelism is
//                              Galvatron's global --sequence-parallel runtime flag, not part of the
//                              file, so imports never produce kTensorSequence and exports refuse it.
//   dp_types_enc[i] = 1 / 0 -> DpMode::kZero3 / default_dp_type ("ddp" -> kDdp, "zero1" -> kZero1,
//                              "zero2" -> kZero2, "zero3" -> kZero3)
//   checkpoint[i]           -> recompute;  tp_consecutive_flags[i] -> tp_consecutive
// Embedding and head share one strategy: tp = vtp, kUlysses if vsp else kTensor, kZero3 if
// embed_sdp (or vocab_sdp, which Galvatron 3.0's runtime reads) else default_dp_type, no
// recompute, consecutive ranks.
// Pipeline: pp_deg stages; pp_division = blocks per stage, so stage_layers = pp_division with the
// embedding added to the first stage and the head to the last ([L + 2] for pp_deg 1);
// pipeline_type "pipedream_flush" -> Schedule::k1F1B, "gpipe" -> kGPipe; chunks ->
// num_micro_batches; global_bsz -> global_batch.
//
// Export writes every field above (lists as Galvatron's comma strings), plus world_size and both
// embed_sdp and vocab_sdp (so Galvatron 2.x and 3.0 runtimes both read the embedding's ZeRO-3
// choice). import(export(p)) equals p in every field but `origin` for each plan export accepts.
// Export returns Unimplemented for plans Galvatron cannot express: a kTensorSequence layer; a
// kZero1 layer (Galvatron has no ZeRO-1); non-ZeRO-3 layers with different data-parallel modes (one
// default_dp_type); embedding and head with different strategies, recomputation or strided ranks;
// a pipeline stage without a transformer block.
//
// Thread-safe (no shared state).
#ifndef CAIRN_PLANNER_CATALOG_GALVATRON_H_
#define CAIRN_PLANNER_CATALOG_GALVATRON_H_

#include <string>

#include "absl/status/statusor.h"
#include "common/plan/plan.h"
#include "proto/cairn/v1/hardware.pb.h"
#include "proto/cairn/v1/model.pb.h"

namespace cairn::planner {

using ::cairn::plan::ModelDims;
using ::cairn::plan::PlanSpec;

// Reads Galvatron's hardware profile files for `num_nodes` x `gpus_per_node` GPUs from `dir` and
// returns `base` with the measured collectives and overlap coefficient in place of its own:
//  - allreduce_bandwidth_{n}nodes_{k}gpus_per_node.json (required): `allreduce_size_{g}_consec_{c}`
//    = all-reduce bus bandwidth, MB/ms. A consecutive group (c = 1) spans nodes when g > k; a
//    strided group (c = 0, ranks i, i + N/g, ...) when its ranks fall on different nodes. Each
//    becomes all-reduce, all-gather and reduce-scatter entries with that bus bandwidth (Galvatron
//    takes all-gather / reduce-scatter as half an all-reduce) and latency 0 (Galvatron's model has
//    none). When two keys map to the same (group size, placement), the lower bandwidth is kept.
//  - p2p_bandwidth_{n}nodes_{k}gpus_per_node.json (optional): `pp_size_{p}` = send/recv bandwidth,
//    MB/ms, between pipeline neighbours; the lowest over p becomes the one send/recv entry
//    (inter-node when n > 1, since some neighbours then sit on different nodes).
//  - sp_time_{n}nodes_{k}gpus_per_node.json (optional): `allreduce_size_{g}_{S}MB_time`,
//    `all2all_size_{g}_{S}MB_time` = ms for an S-MB message in a consecutive group; become CommPoint
//    curves (all-gather / reduce-scatter at half the all-reduce time) that take precedence over the
//    bandwidth file's entries, with latency and bus bandwidth from a least-squares line.
//  - overlap_coefficient.json (optional): `overlap_coe` -> overlap_slowdown.
// Entries of `base` that nothing replaces are kept (intra-node ones only up to gpus_per_node). The
// result has name "<base>+galvatron", devices_per_node = gpus_per_node, source
// PROFILE_SOURCE_IMPORTED and notes naming the files read, and passes ValidateHardwareProfile.
// Errors: InvalidArgument for counts < 1, malformed JSON, unknown keys, non-positive values or group
// sizes that do not fit the cluster (messages name the file and key); NotFound when the all-reduce
// file is missing.
absl::StatusOr<cairn::v1::HardwareProfile> ImportGalvatronHardware(
    const std::string& dir, int num_nodes, int gpus_per_node,
    const cairn::v1::HardwareProfile& base);

// Reads Galvatron's model profiles of `model` into a ModelProfile:
//  - computation file: `layertype_0_bsz{b}_seq{s}` = forward ms per sample of one block at
//    micro-batch b -> LayerTiming{TRANSFORMER_BLOCK, tp 1, micro_batch_size b, seq s, forward_s =
//    b x ms / 1000, backward_s = 0 (unknown)}; `layertype_other_bsz{b}_seq{s}` (embedding + LM head
//    + loss, per sample) is split evenly into EMBEDDING and HEAD timings (skipped when 0). Galvatron
//    2.x keys without `_seq` use `seq_len` (0 = model.max_seq_len); a bare `layertype_0` (static
//    mode) is micro-batch 1. The raw `layernum[...]` keys are ignored.
//  - memory file (optional, "" to skip): `layertype_0` (or `layertype_0_sp`) -> {seq ->
//    tp_activation_per_bsz_dict{t: MB per sample per layer}}: the activation bytes of micro-batch 1
//    at each tp degree t go into the matching tp-1 timing, or into an activation-only timing with
//    forward_s = 0 (no time measured) for t > 1. Its `parameter_size` must be within 25% of the
//    model's fp32 block size, which catches a profile of another model.
// activation_dtype_bytes comes from the file name (fp32 -> 4, else 2 as for bf16/fp16); source
// names the files. Timings are sorted by (kind, tp, seq, micro-batch).
// Errors: NotFound/FailedPrecondition for unreadable files; InvalidArgument naming the file and key
// for malformed JSON, unknown keys, negative or missing values, a seq above model.max_seq_len, a
// duplicate (micro-batch, seq) or a parameter-size mismatch; Unimplemented for several layer types
// (`layertype_1...`, e.g. encoder-decoder models).
absl::StatusOr<cairn::v1::ModelProfile> ImportGalvatronModelProfile(
    const std::string& computation_json_path, const std::string& memory_json_path,
    const cairn::v1::ModelSpec& model, int seq_len = 0);

// Parses a Galvatron strategy JSON (see the mapping above) for `model` on `num_devices` devices.
// Lists may be comma strings ("1,2,2") or JSON arrays; scalars numbers or digit strings. Optional
// keys and defaults: tp_consecutive_flags (all 1), dp_types_enc, use_sp, checkpoint (all 0),
// chunks (1), vtp (1), vsp (0), embed_sdp / vocab_sdp (0), pp_division (required when pp_deg > 1).
// Galvatron 3.0's world_size must equal num_devices; cp_sizes_enc, ep_sizes_enc,
// tp_of_ep_sizes_enc and vcp must be all 1. The result's origin is "galvatron import".
// Errors: InvalidArgument naming the key for malformed JSON, unknown or missing keys, lists whose
// length is not num_layers (pp_deg for pp_division), degrees that do not divide the devices of a
// stage (num_devices / pp_deg) or num_heads, pp_division not summing to num_layers, a global batch
// not divisible by every layer's data-parallel degree, unknown pipeline_type/default_dp_type;
// Unimplemented for context or expert parallelism.
absl::StatusOr<PlanSpec> ImportGalvatronStrategy(const std::string& json_text,
                                                 const ModelDims& model, int num_devices);

// ImportGalvatronStrategy on the file at `path`; errors are prefixed with the path.
absl::StatusOr<PlanSpec> ImportGalvatronStrategyFile(const std::string& path,
                                                     const ModelDims& model, int num_devices);

// Writes `plan` as a Galvatron strategy JSON (4-space indented, Galvatron's key order).
// Errors: InvalidArgument when the plan is malformed for `model` and `num_devices` (layer count,
// stage sizes, degrees that do not divide a stage's devices, batch not divisible by a layer's
// data-parallel degree); Unimplemented, with the reason, when Galvatron cannot express it (see
// above).
absl::StatusOr<std::string> ExportGalvatronStrategy(const PlanSpec& plan, const ModelDims& model,
                                                    int num_devices);

}  // namespace cairn::planner

#endif  // CAIRN_PLANNER_CATALOG_GALVATRON_H_
