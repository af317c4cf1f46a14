// planner/catalog/clusters.h — built-in hardware profiles and cluster construction.
//
// A cairn.v1.HardwareProfile describes one kind of node: its devices (memory, peak and achieved GEMM
// rates, memory bandwidth) and the cost of every collective by group size and placement (see
// proto/cairn/v1/hardware.proto). Agents measure real profiles; until they have, the planner uses
// these defaults:
//
//   h100-sxm      8x H100 SXM 80GB, NVLink 4 + NVSwitch, 8x 400 Gb/s InfiniBand
//   h200-sxm      8x H200 141GB, same network
//   a100-80g-sxm  8x A100 SXM 80GB, NVLink 3 + NVSwitch, 8x 200 Gb/s InfiniBand
//   cpu           the CPU runtime: one "device" per worker process (default 4), Gloo over TCP
//
// Each profile's `notes` and docs/catalog.md say which numbers are datasheet values, which were
// measured (and where), and which are derived. Typical use:
//
//   CAIRN_ASSIGN_OR_RETURN(cairn::v1::Cluster cluster, MakeCluster("h100-sxm", /*num_nodes=*/4));
//   // or a profile an agent wrote, or a user edited:
//   CAIRN_ASSIGN_OR_RETURN(cairn::v1::HardwareProfile hw, LoadHardwareProfileFile(path));
//   CAIRN_ASSIGN_OR_RETURN(cairn::v1::Cluster cluster, MakeCluster(hw, 2));
//
// All functions are thread-safe; the built-in profiles are immutable.
#ifndef CAIRN_PLANNER_CATALOG_CLUSTERS_H_
#define CAIRN_PLANNER_CATALOG_CLUSTERS_H_

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "proto/cairn/v1/hardware.pb.h"

namespace cairn::planner {

// Largest node count MakeCluster accepts.
inline constexpr int kMaxNodes = 65536;

// Names of the built-in hardware profiles, in catalog order.
std::vector<std::string> ClusterNames();

// The built-in profile called `name` (exact). Every returned profile passes ValidateHardwareProfile,
// has source PROFILE_SOURCE_DEFAULT and notes on the provenance of its numbers.
// Errors: NotFound listing every valid name.
absl::StatusOr<cairn::v1::HardwareProfile> LookupHardware(absl::string_view name);

// `num_nodes` nodes of the built-in profile `name`. `devices_per_node` = 0 keeps the profile's
// count; otherwise it must be between 1 and the profile's count for GPU nodes (use fewer GPUs of a
// node) and between 1 and 64 worker processes for "cpu" (its collective tables are rebuilt for that
// many workers; its per-worker compute rates assume 4 workers on 2 cores and are not rescaled).
// Intra-node collective entries larger than the resulting node are dropped.
// Errors: NotFound for an unknown name; InvalidArgument for num_nodes outside [1, kMaxNodes] or a
// devices_per_node outside the allowed range (the message gives the range).
absl::StatusOr<cairn::v1::Cluster> MakeCluster(absl::string_view name, int num_nodes,
                                               int devices_per_node = 0);

// Same for any profile (e.g. from LoadHardwareProfileFile); `devices_per_node` may only shrink the
// profile's node. Errors: InvalidArgument for bad counts or an invalid profile.
absl::StatusOr<cairn::v1::Cluster> MakeCluster(const cairn::v1::HardwareProfile& hardware,
                                               int num_nodes, int devices_per_node = 0);

// Checks a profile before the planner relies on it: name set; devices_per_node >= 1; device memory
// > reserved_bytes >= 0; peak_flops_per_s > 0; at least one GEMM point, each with flops > 0 and
// 0 < achieved <= 1.25 x peak (catches TFLOP/s written as FLOP/s); attention_efficiency in [0, 1];
// memory bandwidth > 0; overlap_slowdown >= 1; every collective with a known op, group_size >= 2
// (exactly 2 for send/recv), intra-node group_size <= devices_per_node, latency_s >= 0, and either
// busbw_bytes_per_s > 0 or at least two points with positive bytes and times; no two entries for
// the same (op, group_size, spans_nodes); every op (all-reduce, all-gather, reduce-scatter,
// all-to-all, send/recv) present at least once — except in a profile of one device per node
// without any table (a device with no links: valid for a one-node cluster only, which the
// problem builder checks).
// Errors: InvalidArgument naming the first offending field, its value and, for collectives, the
// entry ("collectives[3] (all_gather, group 4, intra-node)").
absl::Status ValidateHardwareProfile(const cairn::v1::HardwareProfile& hardware);

// InvalidArgument naming the collectives `hardware` has no table for ("collectives has no entry
// for all_to_all, send_recv"); OK when it has every one.
absl::Status CheckEveryCollectiveOp(const cairn::v1::HardwareProfile& hardware);

// Reads a HardwareProfile from a proto3 JSON file (snake_case or camelCase names) and validates it.
// Errors: NotFound (no such file), FailedPrecondition (directory, unreadable), InvalidArgument (bad
// JSON, unknown field, invalid profile); every message starts with the path.
absl::StatusOr<cairn::v1::HardwareProfile> LoadHardwareProfileFile(const std::string& path);

}  // namespace cairn::planner

#endif  // CAIRN_PLANNER_CATALOG_CLUSTERS_H_
