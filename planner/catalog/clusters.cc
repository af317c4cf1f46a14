#include "planner/catalog/clusters.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <set>
#include <tuple>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/collective_proto.h"
#include "common/status_macros.h"
#include "common/units.h"
#include "planner/catalog/json_io.h"

namespace cairn::planner {
namespace {

using cairn::v1::CollectiveCost;
using cairn::v1::CollectiveOp;
using cairn::v1::HardwareProfile;

constexpr CollectiveOp kAllReduce = cairn::v1::COLLECTIVE_OP_ALL_REDUCE;
constexpr CollectiveOp kAllGather = cairn::v1::COLLECTIVE_OP_ALL_GATHER;
constexpr CollectiveOp kReduceScatter = cairn::v1::COLLECTIVE_OP_REDUCE_SCATTER;
constexpr CollectiveOp kAllToAll = cairn::v1::COLLECTIVE_OP_ALL_TO_ALL;
constexpr CollectiveOp kSendRecv = cairn::v1::COLLECTIVE_OP_SEND_RECV;
constexpr CollectiveOp kGroupOps[] = {kAllReduce, kAllGather, kReduceScatter, kAllToAll};

constexpr int kCpuMaxWorkersPerNode = 64;
// Largest group size of the derived inter-node tables (the planner extrapolates beyond).
constexpr int kMaxInterNodeGroup = 16384;

// ---------------------------------------------------------------------------------------------
// Measured data (shared/reference/README.md and planner/catalog/scripts/measure_gemm.py).

// 4x H200 (NVSwitch), NCCL 2.28, bf16, 2026-11-28: times at 1 MiB, 16 MiB, 256 MiB (full buffer as
// nccl-tests counts it) and the bus bandwidth at 1 GiB.
struct NcclRow {
  CollectiveOp op;
  int group;
  double time_us[3];
  double busbw_1gib_gbps;
};
constexpr double kRowBytes[3] = {1 * kMiB, 16 * kMiB, 256 * kMiB};
constexpr double kLargeBytes = kGiB;
constexpr NcclRow kH200Nccl[] = {
    {kAllReduce, 2, {19.5, 77.6, 895}, 330},      {kAllGather, 2, {19.7, 53.9, 552}, 272},
    {kReduceScatter, 2, {20.3, 50.8, 588}, 264},  {kAllToAll, 2, {21.3, 51.1, 479}, 330},
    {kAllReduce, 4, {44.5, 99.6, 1208}, 354},     {kAllGather, 4, {32.9, 65.6, 666}, 326},
    {kReduceScatter, 4, {32.4, 58.5, 677}, 324},  {kAllToAll, 4, {44.3, 64.3, 636}, 333},
};

// bf16 GEMM n x n x n on one H200, sustained (median of 7 x 50 ms, mean of two runs), PyTorch
// 2.11 / cuBLAS, 2026-11-28. Short bursts reach 740-780 TFLOP/s at n >= 4096, but the 700 W power
// limit brings runs of a second or more down to ~650, which is what training sees.
struct GemmRow {
  int n;
  double tflops;
};
constexpr GemmRow kH200Gemm[] = {
    {256, 2.0},    {512, 17.9},   {768, 64.8},   {1024, 150.6}, {1536, 476.5}, {2048, 665.9},
    {3072, 644.6}, {4096, 634.7}, {6144, 667.2}, {8192, 641.6}, {12288, 675.3}, {16384, 663.5},
};
// Large-GEMM plateau assumed for the A100 (bf16, 85% of the 312 TFLOP/s peak).
constexpr double kA100GemmPlateauTflops = 265;

// OpenBLAS sgemm on one core of the 2-core AMD EPYC (Zen 4) CI machine measured ~100-114 GFLOP/s
// for n = 32..2048 (2026-11-28); a CPU worker gets half a core with the default 4 workers on 2 cores.
struct CpuGemmRow {
  int n;
  double gflops;
};
constexpr CpuGemmRow kCpuGemm[] = {{32, 35}, {64, 45}, {128, 48}, {256, 50}, {512, 50}, {2048, 50}};

// ---------------------------------------------------------------------------------------------

CollectiveCost AlphaBeta(CollectiveOp op, int g, bool spans_nodes, double latency_s,
                         double busbw) {
  CollectiveCost c;
  c.set_op(op);
  c.set_group_size(g);
  c.set_spans_nodes(spans_nodes);
  c.set_latency_s(latency_s);
  c.set_busbw_bytes_per_s(busbw);
  return c;
}

// An entry from (bytes, seconds) points: busbw from the largest point, latency from the smallest
// after removing its bandwidth term.
CollectiveCost FromPoints(CollectiveOp op, int g, bool spans_nodes,
                          const std::vector<std::pair<double, double>>& points) {
  const double factor = BusFactor(op, g);
  const double busbw = points.back().first * factor / points.back().second;
  const double latency =
      std::max(0.0, points.front().second - points.front().first * factor / busbw);
  CollectiveCost c = AlphaBeta(op, g, spans_nodes, latency, busbw);
  for (const auto& [bytes, time_s] : points) {
    cairn::v1::CommPoint* p = c.add_points();
    p->set_bytes(bytes);
    p->set_time_s(time_s);
  }
  return c;
}

// Intra-node NVSwitch tables for groups of 2, 4 and 8 from the 4x H200 measurements.
//  - g = 2, 4: measured points; the all-reduce 1 GiB bus bandwidth is `ar_busbw_gbps[g]` (the
//    node's own measurement where there is one).
//  - g = 8: derived from g = 4: t8(S) = t4(S) x (f8 / f4) x (busbw4 / busbw8), i.e. the same bus
//    bandwidth curve scaled to the measured 8-GPU all-reduce bus bandwidth (f = nccl-tests bus
//    factor, f8 / f4 = 7/6 for every op).
//  - `time_scale` multiplies every time (1.5 for NVLink 3 at 600 GB/s against NVLink 4's 900).
std::vector<CollectiveCost> NvSwitchTables(double ar2_gbps, double ar4_gbps, double ar8_gbps,
                                           double time_scale) {
  std::vector<CollectiveCost> out;
  for (const NcclRow& row : kH200Nccl) {
    double busbw_gbps = row.busbw_1gib_gbps;
    if (row.op == kAllReduce) busbw_gbps = row.group == 2 ? ar2_gbps : ar4_gbps;
    std::vector<std::pair<double, double>> points;
    for (int i = 0; i < 3; ++i) points.emplace_back(kRowBytes[i], row.time_us[i] * 1e-6);
    points.emplace_back(kLargeBytes, kLargeBytes * BusFactor(row.op, row.group) / GBps(busbw_gbps));
    for (auto& p : points) p.second *= time_scale;
    out.push_back(FromPoints(row.op, row.group, false, points));
    if (row.group == 4) {
      const double scale = (BusFactor(row.op, 8) / BusFactor(row.op, 4)) * (ar4_gbps / ar8_gbps);
      for (auto& p : points) p.second *= scale;
      out.push_back(FromPoints(row.op, 8, false, points));
    }
  }
  return out;
}

// Inter-node tables derived from the NIC: every group spanning nodes is limited by one NIC per
// GPU at `nic_busbw` (a strided group with one GPU per node; consecutive groups spanning nodes can
// do better); latency 20 us + 5 us x log2(g) (tree/ring depth).
std::vector<CollectiveCost> NicTables(double nic_busbw) {
  std::vector<CollectiveCost> out;
  for (int g = 2; g <= kMaxInterNodeGroup; g *= 2) {
    const double latency_s = Micros(20 + 5 * std::log2(g));
    for (CollectiveOp op : kGroupOps) out.push_back(AlphaBeta(op, g, true, latency_s, nic_busbw));
  }
  return out;
}

HardwareProfile BaseGpu(const std::string& name, const std::string& device_model,
                        const std::string& device_name, int64_t memory_bytes,
                        double peak_flops, double memory_bandwidth, const std::string& topology) {
  HardwareProfile hw;
  hw.set_name(name);
  hw.mutable_fingerprint()->set_device_model(device_model);
  hw.mutable_fingerprint()->set_device_memory_bytes(memory_bytes);
  hw.mutable_fingerprint()->set_topology(topology);
  cairn::v1::DeviceSpec* d = hw.mutable_device();
  d->set_name(device_name);
  d->set_memory_bytes(memory_bytes);
  d->set_reserved_bytes(GiB(1.5));
  d->set_peak_flops_per_s(peak_flops);
  d->set_attention_efficiency(0.65);
  d->set_memory_bandwidth_bytes_per_s(memory_bandwidth);
  hw.set_devices_per_node(8);
  hw.set_overlap_slowdown(1.126);
  hw.set_source(cairn::v1::PROFILE_SOURCE_DEFAULT);
  return hw;
}

constexpr double kUncapped = std::numeric_limits<double>::infinity();

// The H200 GEMM table, each rate capped at `cap_flops_per_s`.
void AddGemm(HardwareProfile* hw, double cap_flops_per_s) {
  for (const GemmRow& row : kH200Gemm) {
    cairn::v1::GemmPoint* p = hw->mutable_device()->add_gemm();
    p->set_flops(2.0 * row.n * row.n * row.n);
    p->set_achieved_flops_per_s(std::min(TFlops(row.tflops), cap_flops_per_s));
  }
}

void AddCollectives(HardwareProfile* hw, const std::vector<CollectiveCost>& costs) {
  for (const CollectiveCost& c : costs) *hw->add_collectives() = c;
}

constexpr char kGpuCommonNotes[] =
    " Measured (2026-11-28, this workplace's H200 machines): bf16 GEMM table (sustained, "
    "planner/catalog/scripts/measure_gemm.py); NCCL 2.28 all-reduce/all-gather/reduce-scatter/"
    "all-to-all at 1 MiB, 16 MiB, 256 MiB, 1 GiB for groups of 2 and 4 on 4x H200 NVSwitch. "
    "Derived: groups of 8 scaled from groups of 4 to the 8x H100 all-reduce bus bandwidth "
    "(361 GB/s); inter-node tables from the NIC at 88% efficiency, latency 20 us + 5 us x log2(g), "
    "assuming one NIC per GPU and a strided group (one GPU per node); send/recv intra-node "
    "250 GB/s + 10 us, inter-node 45 GB/s + 15 us (estimates); reserved 1.5 GiB (CUDA context, "
    "cuBLAS workspace, NCCL buffers); memory bandwidth 85% of datasheet (elementwise kernels reach "
    "a little less than a device copy); attention efficiency 0.65 (flash attention vs GEMM, "
    "estimate). Overlap slowdown 1.126: Galvatron's measured coefficient "
    "(shared/reference/galvatron/overlap_coefficient.json).";

HardwareProfile H100() {
  HardwareProfile hw = BaseGpu("h100-sxm", "NVIDIA H100 80GB HBM3", "H100 SXM 80GB",
                               MiB(81559), TFlops(989), 0.85 * 3.35e12,
                               "8x H100 SXM, NVLink4 NVSwitch, 8x 400G InfiniBand");
  AddGemm(&hw, kUncapped);
  AddCollectives(&hw, NvSwitchTables(329, 355, 361, 1.0));
  AddCollectives(&hw, NicTables(0.88 * GBps(50)));
  AddCollectives(&hw, {AlphaBeta(kSendRecv, 2, false, Micros(10), GBps(250)),
                       AlphaBeta(kSendRecv, 2, true, Micros(15), GBps(45))});
  hw.set_notes(absl::StrCat(
      "Datasheet: 989 TFLOP/s dense bf16 peak, HBM3 3.35 TB/s, 81559 MiB as nvidia-smi reports "
      "80 GB, NVLink4 900 GB/s per GPU, InfiniBand NDR 400 Gb/s (50 GB/s) per GPU. Measured on "
      "H100: NCCL all-reduce 1 GiB bus bandwidth 329 (2 GPUs), 355 (4), 361 (8) GB/s. GEMM and "
      "the other collectives are the H200 measurements (same GH100 chip, clocks and 700 W limit, "
      "same NVSwitch).",
      kGpuCommonNotes));
  return hw;
}

HardwareProfile H200() {
  HardwareProfile hw = BaseGpu("h200-sxm", "NVIDIA H200", "H200 SXM 141GB", MiB(143771),
                               TFlops(989), 0.85 * 4.8e12,
                               "8x H200 SXM, NVLink4 NVSwitch, 8x 400G InfiniBand");
  AddGemm(&hw, kUncapped);
  AddCollectives(&hw, NvSwitchTables(330, 354, 361, 1.0));
  AddCollectives(&hw, NicTables(0.88 * GBps(50)));
  AddCollectives(&hw, {AlphaBeta(kSendRecv, 2, false, Micros(10), GBps(250)),
                       AlphaBeta(kSendRecv, 2, true, Micros(15), GBps(45))});
  hw.set_notes(absl::StrCat(
      "Datasheet: 989 TFLOP/s dense bf16 peak, HBM3e 4.8 TB/s, NVLink4 900 GB/s per GPU, "
      "InfiniBand NDR 400 Gb/s (50 GB/s) per GPU. Measured: 143771 MiB (nvidia-smi, 141 GB), "
      "NCCL all-reduce 1 GiB bus bandwidth 330 (2 GPUs), 354 (4) GB/s.",
      kGpuCommonNotes));
  return hw;
}

HardwareProfile A100() {
  HardwareProfile hw = BaseGpu("a100-80g-sxm", "NVIDIA A100-SXM4-80GB", "A100 SXM 80GB",
                               MiB(81920), TFlops(312), 0.85 * 2.0e12,
                               "8x A100 SXM, NVLink3 NVSwitch, 8x 200G InfiniBand");
  AddGemm(&hw, TFlops(kA100GemmPlateauTflops));
  AddCollectives(&hw, NvSwitchTables(330, 354, 361, 1.5));
  AddCollectives(&hw, NicTables(0.88 * GBps(25)));
  AddCollectives(&hw, {AlphaBeta(kSendRecv, 2, false, Micros(10), GBps(150)),
                       AlphaBeta(kSendRecv, 2, true, Micros(15), GBps(22.5))});
  hw.set_notes(
      "Datasheet: 312 TFLOP/s dense bf16 peak, HBM2e 2.0 TB/s, 81920 MiB as nvidia-smi reports "
      "80 GB, NVLink3 600 GB/s per GPU, InfiniBand HDR 200 Gb/s (25 GB/s) per GPU. Measured: "
      "nothing on A100 here. Derived: GEMM = the sustained H200 table capped at 265 TFLOP/s (85% "
      "of peak; small GEMMs are launch-bound on both); NVSwitch collectives = the H200 tables "
      "(groups of 2 and 4 measured on 4x H200, groups of 8 scaled to 361 GB/s) with every time "
      "x 1.5 (NVLink 600 vs 900 GB/s; 8-GPU all-reduce ~241 GB/s); inter-node from the NIC at 88% "
      "(22 GB/s), latency 20 us + 5 us x log2(g); send/recv 150 GB/s + 10 us intra-node "
      "(Galvatron's A100-class p2p files show 110-164 GB/s), 22.5 GB/s + 15 us inter-node; "
      "reserved 1.5 GiB; memory bandwidth 85% of datasheet; attention efficiency 0.65 "
      "(estimate); overlap slowdown 1.126 (Galvatron's measured coefficient).");
  return hw;
}

// The CPU runtime with `workers` worker processes per node (one device each). Gloo over loopback
// TCP: a ring step costs ~25 us, so all-reduce latency is 2(g-1) x 25 us and the others
// (g-1) x 25 us; bus bandwidth ~1.5 GB/s. Multi-node CPU clusters in CI are network namespaces on
// one machine, so the inter-node entries repeat the same numbers. Intra-node groups are powers of
// two up to `workers` (plus `workers` itself).
HardwareProfile Cpu(int workers) {
  HardwareProfile hw;
  hw.set_name("cpu");
  hw.mutable_fingerprint()->set_device_model("cpu");
  hw.mutable_fingerprint()->set_device_memory_bytes(GiB(4));
  hw.mutable_fingerprint()->set_topology("worker processes on one host, Gloo over TCP loopback");
  cairn::v1::DeviceSpec* d = hw.mutable_device();
  d->set_name("cpu worker (fp32)");
  d->set_memory_bytes(GiB(4));
  d->set_reserved_bytes(MiB(128));
  // Half of one Zen 4 core: 3.7 GHz x 32 fp32 FLOP/cycle (2 x 256-bit FMA pipes) / 2.
  d->set_peak_flops_per_s(59.2e9);
  for (const CpuGemmRow& row : kCpuGemm) {
    cairn::v1::GemmPoint* p = d->add_gemm();
    p->set_flops(2.0 * row.n * row.n * row.n);
    p->set_achieved_flops_per_s(row.gflops * 1e9);
  }
  d->set_attention_efficiency(0.5);
  d->set_memory_bandwidth_bytes_per_s(10e9);
  hw.set_devices_per_node(workers);
  const double busbw = 1.5e9;
  for (bool spans : {false, true}) {
    std::vector<int> groups;
    for (int g = 2; g <= (spans ? 1024 : workers); g *= 2) groups.push_back(g);
    if (!spans && workers >= 2 && groups.back() != workers) groups.push_back(workers);
    for (int g : groups) {
      for (CollectiveOp op : kGroupOps) {
        const double steps = op == kAllReduce ? 2.0 * (g - 1) : g - 1.0;
        hw.add_collectives()->CopyFrom(AlphaBeta(op, g, spans, steps * Micros(25), busbw));
      }
    }
    if (!spans && workers < 2) continue;
    hw.add_collectives()->CopyFrom(AlphaBeta(kSendRecv, 2, spans, Micros(50), 2e9));
  }
  hw.set_overlap_slowdown(1.2);
  hw.set_source(cairn::v1::PROFILE_SOURCE_DEFAULT);
  hw.set_notes(
      "CPU runtime defaults for the 2-core AMD EPYC (Zen 4) CI machine with 4 worker processes "
      "(MakeCluster can ask for 1 to 64; the per-worker rates below are not rescaled for them). "
      "Measured (2026-11-28): OpenBLAS sgemm on one core ~100-114 GFLOP/s for n = 32..2048; each "
      "worker is given half of that (4 workers on 2 cores), small sizes discounted for call "
      "overhead. Derived: peak 59.2 GFLOP/s = half a core at 3.7 GHz x 32 fp32 FLOP/cycle. "
      "Estimates (to be replaced by an agent's measurement): 4 GiB and 128 MiB reserved per "
      "worker, 10 GB/s memory bandwidth per worker, attention efficiency 0.5, Gloo over TCP "
      "loopback 25 us per ring step (all-reduce latency 2(g-1) x 25 us, others (g-1) x 25 us) at "
      "1.5 GB/s bus bandwidth, send/recv 50 us + 2 GB/s, overlap slowdown 1.2 (Gloo's threads "
      "compete with compute for the cores). Inter-node entries (network namespaces on one host) "
      "repeat the loopback numbers.");
  return hw;
}

HardwareProfile DefaultCpu() { return Cpu(4); }

struct CatalogEntry {
  const char* name;
  HardwareProfile (*make)();
  // Builds the profile for another devices_per_node (nullptr: only shrinking, by pruning).
  HardwareProfile (*make_with_devices)(int);
  int max_devices_per_node;  // 0: the profile's devices_per_node
};

constexpr CatalogEntry kCatalog[] = {
    {"h100-sxm", &H100, nullptr, 0},
    {"h200-sxm", &H200, nullptr, 0},
    {"a100-80g-sxm", &A100, nullptr, 0},
    {"cpu", &DefaultCpu, &Cpu, kCpuMaxWorkersPerNode},
};

std::string Describe(const CollectiveCost& c, int index) {
  return absl::StrCat("collectives[", index, "] (", cairn::ToString(c.op()), ", group ", c.group_size(),
                      c.spans_nodes() ? ", inter-node)" : ", intra-node)");
}

absl::StatusOr<cairn::v1::Cluster> BuildCluster(const HardwareProfile& hardware, int num_nodes,
                                                int devices_per_node, int max_devices_per_node) {
  if (num_nodes < 1 || num_nodes > kMaxNodes) {
    return absl::InvalidArgumentError(absl::StrCat("num_nodes must be between 1 and ", kMaxNodes,
                                                   ", got ", num_nodes));
  }
  if (devices_per_node != 0 &&
      (devices_per_node < 1 || devices_per_node > max_devices_per_node)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "devices_per_node must be between 1 and ", max_devices_per_node, " for \"",
        hardware.name(), "\" (0 = its default ", hardware.devices_per_node(), "), got ",
        devices_per_node));
  }
  cairn::v1::Cluster cluster;
  cluster.set_num_nodes(num_nodes);
  HardwareProfile* hw = cluster.mutable_hardware();
  *hw = hardware;
  if (devices_per_node != 0) {
    hw->set_devices_per_node(devices_per_node);
    hw->clear_collectives();
    for (const CollectiveCost& c : hardware.collectives()) {
      if (!c.spans_nodes() && c.group_size() > devices_per_node) continue;
      *hw->add_collectives() = c;
    }
  }
  return cluster;
}

}  // namespace

std::vector<std::string> ClusterNames() {
  std::vector<std::string> names;
  for (const CatalogEntry& e : kCatalog) names.emplace_back(e.name);
  return names;
}

absl::StatusOr<HardwareProfile> LookupHardware(absl::string_view name) {
  for (const CatalogEntry& e : kCatalog) {
    if (name == e.name) return e.make();
  }
  return absl::NotFoundError(absl::StrCat("unknown hardware \"", name, "\"; built-in profiles: ",
                                          absl::StrJoin(ClusterNames(), ", ")));
}

absl::StatusOr<cairn::v1::Cluster> MakeCluster(absl::string_view name, int num_nodes,
                                               int devices_per_node) {
  for (const CatalogEntry& e : kCatalog) {
    if (name != e.name) continue;
    HardwareProfile hw = e.make();
    const int max = e.max_devices_per_node > 0 ? e.max_devices_per_node : hw.devices_per_node();
    if (devices_per_node >= 1 && devices_per_node <= max && e.make_with_devices != nullptr) {
      hw = e.make_with_devices(devices_per_node);
    }
    return BuildCluster(hw, num_nodes, devices_per_node, max);
  }
  return LookupHardware(name).status();
}

absl::StatusOr<cairn::v1::Cluster> MakeCluster(const HardwareProfile& hardware, int num_nodes,
                                               int devices_per_node) {
  const absl::Status valid = ValidateHardwareProfile(hardware);
  if (!valid.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("hardware \"", hardware.name(), "\": ", valid.message()));
  }
  return BuildCluster(hardware, num_nodes, devices_per_node, hardware.devices_per_node());
}

absl::Status ValidateHardwareProfile(const HardwareProfile& hw) {
  if (hw.name().empty()) return absl::InvalidArgumentError("name is empty");
  if (hw.devices_per_node() < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("devices_per_node must be >= 1, got ", hw.devices_per_node()));
  }
  const cairn::v1::DeviceSpec& d = hw.device();
  if (d.memory_bytes() <= 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("device.memory_bytes must be positive, got ", d.memory_bytes()));
  }
  if (d.reserved_bytes() < 0 || d.reserved_bytes() >= d.memory_bytes()) {
    return absl::InvalidArgumentError(
        absl::StrCat("device.reserved_bytes must be in [0, memory_bytes = ", d.memory_bytes(),
                     "), got ", d.reserved_bytes()));
  }
  if (!(d.peak_flops_per_s() > 0)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "device.peak_flops_per_s must be positive (FLOP/s), got ", d.peak_flops_per_s()));
  }
  if (d.gemm_size() == 0) {
    return absl::InvalidArgumentError(
        "device.gemm is empty: give at least one {flops, achieved_flops_per_s} point");
  }
  for (int i = 0; i < d.gemm_size(); ++i) {
    const cairn::v1::GemmPoint& p = d.gemm(i);
    if (!(p.flops() > 0)) {
      return absl::InvalidArgumentError(
          absl::StrCat("device.gemm[", i, "].flops must be positive, got ", p.flops()));
    }
    if (!(p.achieved_flops_per_s() > 0) ||
        p.achieved_flops_per_s() > 1.25 * d.peak_flops_per_s()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "device.gemm[", i, "].achieved_flops_per_s must be in (0, 1.25 x peak_flops_per_s = ",
          1.25 * d.peak_flops_per_s(), "] (both in FLOP/s), got ", p.achieved_flops_per_s()));
    }
  }
  if (!(d.attention_efficiency() >= 0 && d.attention_efficiency() <= 1)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "device.attention_efficiency must be in [0, 1] (0 = 1.0), got ", d.attention_efficiency()));
  }
  if (!(d.memory_bandwidth_bytes_per_s() > 0)) {
    return absl::InvalidArgumentError(
        absl::StrCat("device.memory_bandwidth_bytes_per_s must be positive, got ",
                     d.memory_bandwidth_bytes_per_s()));
  }
  if (!(hw.overlap_slowdown() >= 1)) {
    return absl::InvalidArgumentError(
        absl::StrCat("overlap_slowdown must be >= 1 (1 = overlap costs nothing; Galvatron "
                     "measures ~1.13), got ", hw.overlap_slowdown()));
  }
  std::set<std::tuple<int, int, bool>> seen;
  for (int i = 0; i < hw.collectives_size(); ++i) {
    const CollectiveCost& c = hw.collectives(i);
    if (c.op() == cairn::v1::COLLECTIVE_OP_UNSPECIFIED || !cairn::v1::CollectiveOp_IsValid(c.op())) {
      return absl::InvalidArgumentError(
          absl::StrCat("collectives[", i, "].op is unset or unknown (", c.op(), ")"));
    }
    const std::string where = Describe(c, i);
    if (c.group_size() < 2) {
      return absl::InvalidArgumentError(
          absl::StrCat(where, ": group_size must be >= 2, got ", c.group_size()));
    }
    if (c.op() == kSendRecv && c.group_size() != 2) {
      return absl::InvalidArgumentError(
          absl::StrCat(where, ": send/recv entries have group_size 2, got ", c.group_size()));
    }
    if (!c.spans_nodes() && c.group_size() > hw.devices_per_node()) {
      return absl::InvalidArgumentError(absl::StrCat(
          where, ": an intra-node group cannot exceed devices_per_node = ", hw.devices_per_node(),
          " (set spans_nodes for groups across nodes)"));
    }
    if (!(c.latency_s() >= 0)) {
      return absl::InvalidArgumentError(
          absl::StrCat(where, ": latency_s must be >= 0, got ", c.latency_s()));
    }
    for (int j = 0; j < c.points_size(); ++j) {
      if (!(c.points(j).bytes() > 0) || !(c.points(j).time_s() > 0)) {
        return absl::InvalidArgumentError(
            absl::StrCat(where, ": points[", j, "] needs bytes > 0 and time_s > 0, got (",
                         c.points(j).bytes(), ", ", c.points(j).time_s(), ")"));
      }
    }
    if (!(c.busbw_bytes_per_s() > 0) && c.points_size() < 2) {
      return absl::InvalidArgumentError(absl::StrCat(
          where, ": needs busbw_bytes_per_s > 0 or at least two points, got busbw ",
          c.busbw_bytes_per_s(), " and ", c.points_size(), " point(s)"));
    }
    if (!(c.busbw_bytes_per_s() >= 0)) {
      return absl::InvalidArgumentError(
          absl::StrCat(where, ": busbw_bytes_per_s must be >= 0, got ", c.busbw_bytes_per_s()));
    }
    if (!seen.insert({c.op(), c.group_size(), c.spans_nodes()}).second) {
      return absl::InvalidArgumentError(absl::StrCat(where, ": duplicate entry"));
    }
  }
  // One device per node and no tables: a device without links (a one-device cluster, or a
  // profile cut down to one device per node), which the problem builder accepts only for one node.
  if (hw.devices_per_node() == 1 && hw.collectives_size() == 0) return absl::OkStatus();
  return CheckEveryCollectiveOp(hw);
}

absl::Status CheckEveryCollectiveOp(const HardwareProfile& hw) {
  std::set<int> ops_present;
  for (const CollectiveCost& c : hw.collectives()) ops_present.insert(c.op());
  std::vector<std::string> missing;
  for (CollectiveOp op : {kAllReduce, kAllGather, kReduceScatter, kAllToAll, kSendRecv}) {
    if (ops_present.count(op) == 0) missing.push_back(cairn::ToString(op));
  }
  if (!missing.empty()) {
    return absl::InvalidArgumentError(absl::StrCat("collectives has no entry for ",
                                                   absl::StrJoin(missing, ", ")));
  }
  return absl::OkStatus();
}

absl::StatusOr<HardwareProfile> LoadHardwareProfileFile(const std::string& path) {
  CAIRN_ASSIGN_OR_RETURN(std::string text, ReadTextFile(path));
  HardwareProfile hw;
  CAIRN_RETURN_IF_ERROR(ParseProtoJson(text, path, &hw));
  const absl::Status valid = ValidateHardwareProfile(hw);
  if (!valid.ok()) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": ", valid.message()));
  }
  return hw;
}

}  // namespace cairn::planner
