// agent/fingerprint.h — what this node is: the profile Fingerprint (what measured numbers are keyed
// by) and the NodeInfo the agent registers with (service.proto).
//
//   NodeFacts facts = DetectNode(HostFiles{}, options);          // reads /proc, /sys, nvidia-smi
//   request.mutable_fingerprint()->CopyFrom(facts.fingerprint);
//
// Fingerprint: two nodes share one when their measurements can stand for each other.
//   device_model         GPU name (nvidia-smi), or "cpu: <CPU model>" for CPU slots
//   device_memory_bytes  GPU memory, or the memory of one CPU slot
//   driver/cuda/nccl     versions (GPU nodes; empty on CPU nodes)
//   topology             "<n>x <device> ..., <cores> cores, <slots> slots" and the NICs' speeds:
//                        the same hardware run with another slot count or core set is another
//                        machine as far as per-worker rates go.
// Sources, read through HostFiles so tests give a fake root: /proc/cpuinfo (model name),
// /proc/meminfo (MemTotal), /sys/class/net/*/{operstate,speed}, the process affinity (cores), and
// for GPUs `nvidia-smi --query-gpu=...` output, /usr/local/cuda/version.json, the libnccl and
// libcudnn sonames. A missing source leaves its field empty: detection never fails.
#ifndef CAIRN_AGENT_FINGERPRINT_H_
#define CAIRN_AGENT_FINGERPRINT_H_

#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "agent/agent_options.h"
#include "proto/cairn/v1/hardware.pb.h"
#include "proto/cairn/v1/service.pb.h"

namespace cairn::agent {

// Reads the host: a file's contents, a directory's entries, a command's stdout. Tests replace it.
struct HostFiles {
  std::function<std::optional<std::string>(const std::string& path)> read_file;
  std::function<std::vector<std::string>(const std::string& dir)> list_dir;
  std::function<std::optional<std::string>(const std::string& command)> run;
  int usable_cpus = 0;  // 0 = sched_getaffinity of this process

  static HostFiles Real();
};

struct NodeFacts {
  cairn::v1::Fingerprint fingerprint;
  cairn::v1::NodeInfo node;
  std::string hostname;
  double peak_flops_per_s = 0;  // datasheet peak per device when known (GPU table), else 0
};

NodeFacts DetectNode(const HostFiles& host, const AgentOptions& options);

// Parses "0-3,8,10-11" into CPU indices. nullopt for a malformed list.
std::optional<std::vector<int>> ParseCpuList(const std::string& text);

// bf16 dense peak of known GPUs by the name nvidia-smi reports (H100 SXM/PCIe, H200, A100), 0 when
// unknown.
double DatasheetPeakFlops(const std::string& device_model);

}  // namespace cairn::agent

#endif  // CAIRN_AGENT_FINGERPRINT_H_
