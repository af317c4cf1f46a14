#include "agent/fingerprint.h"

#include <dirent.h>
#include <sched.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <sstream>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "common/units.h"

namespace cairn::agent {
namespace {

std::string Trim(absl::string_view s) { return std::string(absl::StripAsciiWhitespace(s)); }

std::string CpuModel(const HostFiles& h) {
  std::optional<std::string> info = h.read_file("/proc/cpuinfo");
  if (!info) return "";
  for (absl::string_view line : absl::StrSplit(*info, '\n')) {
    if (absl::StartsWith(line, "model name")) {
      const size_t colon = line.find(':');
      if (colon != absl::string_view::npos) return Trim(line.substr(colon + 1));
    }
  }
  return "";
}

int64_t HostMemory(const HostFiles& h) {
  std::optional<std::string> info = h.read_file("/proc/meminfo");
  if (!info) return 0;
  for (absl::string_view line : absl::StrSplit(*info, '\n')) {
    if (!absl::StartsWith(line, "MemTotal:")) continue;
    std::vector<std::string> parts = absl::StrSplit(line, ' ', absl::SkipEmpty());
    int64_t kib = 0;
    if (parts.size() >= 2 && absl::SimpleAtoi(parts[1], &kib)) return kib * 1024;
  }
  return 0;
}

std::vector<std::string> Nics(const HostFiles& h) {
  std::vector<std::string> out;
  std::vector<std::string> names = h.list_dir("/sys/class/net");
  std::sort(names.begin(), names.end());
  for (const std::string& n : names) {
    if (n == "lo" || n == "." || n == "..") continue;
    const std::string state = Trim(h.read_file("/sys/class/net/" + n + "/operstate").value_or(""));
    const std::string speed = Trim(h.read_file("/sys/class/net/" + n + "/speed").value_or(""));
    int mbps = 0;
    const bool has_speed = absl::SimpleAtoi(speed, &mbps) && mbps > 0;
    out.push_back(absl::StrCat(n, has_speed ? absl::StrCat(" ", mbps, " Mb/s") : "",
                               state.empty() ? "" : " " + state));
  }
  return out;
}

// First line of `nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader,
// nounits`: "NVIDIA H100 80GB HBM3, 81559, 580.95.05".
struct Gpu {
  std::string name;
  int64_t memory_bytes = 0;
  std::string driver;
  int count = 0;
};

Gpu Gpus(const HostFiles& h, const std::vector<int>& wanted) {
  Gpu g;
  std::optional<std::string> out = h.run(
      "nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader,nounits "
      "2>/dev/null");
  if (!out) return g;
  int index = 0;
  for (absl::string_view line : absl::StrSplit(*out, '\n', absl::SkipWhitespace())) {
    const int i = index++;
    if (!wanted.empty() && std::find(wanted.begin(), wanted.end(), i) == wanted.end()) continue;
    std::vector<std::string> f = absl::StrSplit(line, ',');
    if (f.size() < 3) continue;
    ++g.count;
    if (!g.name.empty()) continue;
    g.name = Trim(f[0]);
    int64_t mib = 0;
    if (absl::SimpleAtoi(Trim(f[1]), &mib)) g.memory_bytes = mib * 1024 * 1024;
    g.driver = Trim(f[2]);
  }
  return g;
}

std::string CudaVersion(const HostFiles& h) {
  // {"cuda" : {"name" : "CUDA SDK", "version" : "13.0.1"}, ...}
  std::optional<std::string> v = h.read_file("/usr/local/cuda/version.json");
  if (!v) return "";
  const size_t cuda = v->find("\"cuda\"");
  if (cuda == std::string::npos) return "";
  const size_t key = v->find("\"version\"", cuda);
  if (key == std::string::npos) return "";
  const size_t q1 = v->find('"', v->find(':', key));
  const size_t q2 = v->find('"', q1 + 1);
  return q1 == std::string::npos || q2 == std::string::npos ? "" : v->substr(q1 + 1, q2 - q1 - 1);
}

// "libnccl.so.2.28.3 (libc6,x86-64) => /usr/lib/..." -> "2.28.3".
std::string SonameVersion(const HostFiles& h, const std::string& lib) {
  std::optional<std::string> out = h.run("ldconfig -p 2>/dev/null");
  if (!out) return "";
  std::string best;
  const std::string prefix = lib + ".so.";
  for (absl::string_view line : absl::StrSplit(*out, '\n')) {
    const std::string t = Trim(line);
    if (!absl::StartsWith(t, prefix)) continue;
    const std::string v = t.substr(prefix.size(), t.find(' ') - prefix.size());
    if (v.size() > best.size()) best = v;
  }
  return best;
}

}  // namespace

HostFiles HostFiles::Real() {
  HostFiles h;
  h.read_file = [](const std::string& path) -> std::optional<std::string> {
    std::ifstream in(path);
    if (!in) return std::nullopt;
    std::stringstream s;
    s << in.rdbuf();
    return s.str();
  };
  h.list_dir = [](const std::string& dir) {
    std::vector<std::string> out;
    if (DIR* d = opendir(dir.c_str())) {
      while (dirent* e = readdir(d)) out.push_back(e->d_name);
      closedir(d);
    }
    return out;
  };
  h.run = [](const std::string& command) -> std::optional<std::string> {
    FILE* p = popen(command.c_str(), "r");
    if (p == nullptr) return std::nullopt;
    std::string out;
    char buf[4096];
    size_t n;
    while ((n = fread(buf, 1, sizeof(buf), p)) > 0) out.append(buf, n);
    const int rc = pclose(p);
    if (rc != 0 || out.empty()) return std::nullopt;
    return out;
  };
  return h;
}

std::optional<std::vector<int>> ParseCpuList(const std::string& text) {
  std::vector<int> out;
  for (absl::string_view part : absl::StrSplit(text, ',', absl::SkipWhitespace())) {
    std::vector<std::string> range = absl::StrSplit(part, '-');
    int lo = 0, hi = 0;
    if (range.size() == 1 && absl::SimpleAtoi(range[0], &lo)) {
      hi = lo;
    } else if (range.size() != 2 || !absl::SimpleAtoi(range[0], &lo) ||
               !absl::SimpleAtoi(range[1], &hi)) {
      return std::nullopt;
    }
    if (lo < 0 || hi < lo || hi > 4095) return std::nullopt;
    for (int c = lo; c <= hi; ++c) out.push_back(c);
  }
  if (out.empty()) return std::nullopt;
  std::sort(out.begin(), out.end());
  out.erase(std::unique(out.begin(), out.end()), out.end());
  return out;
}

double DatasheetPeakFlops(const std::string& model) {
  const std::string m = absl::AsciiStrToLower(model);
  if (absl::StrContains(m, "h200")) return 989e12;
  if (absl::StrContains(m, "h100") && absl::StrContains(m, "pcie")) return 756e12;
  if (absl::StrContains(m, "h100")) return 989e12;
  if (absl::StrContains(m, "a100")) return 312e12;
  return 0;
}

NodeFacts DetectNode(const HostFiles& h, const AgentOptions& o) {
  NodeFacts f;
  char host[256] = {0};
  gethostname(host, sizeof(host) - 1);
  f.hostname = o.node_name.empty() ? std::string(host) : o.node_name;
  cairn::v1::NodeInfo& n = f.node;
  n.set_device_kind(o.device_kind);
  n.set_cpu_model(CpuModel(h));
  int cores = h.usable_cpus;
  if (cores <= 0) {
    cpu_set_t set;
    CPU_ZERO(&set);
    cores = sched_getaffinity(0, sizeof(set), &set) == 0 ? CPU_COUNT(&set) : 1;
  }
  n.set_cpu_cores(cores);
  n.set_host_memory_bytes(HostMemory(h));
  for (const std::string& nic : Nics(h)) n.add_nics(nic);
  n.set_agent_version("cairn-agent 0.1.0");
  cairn::v1::Fingerprint& fp = f.fingerprint;
  std::string nics = absl::StrJoin(n.nics(), ", ");
  if (o.device_kind == "cuda") {
    const Gpu g = Gpus(h, o.gpus);
    n.set_device_count(o.gpus.empty() ? g.count : static_cast<int>(o.gpus.size()));
    n.set_device_model(g.name.empty() ? "unknown GPU" : g.name);
    n.set_device_memory_bytes(g.memory_bytes);
    n.set_driver_version(g.driver);
    n.set_cuda_version(CudaVersion(h));
    n.set_nccl_version(SonameVersion(h, "libnccl"));
    n.set_cudnn_version(SonameVersion(h, "libcudnn"));
    fp.set_device_model(n.device_model());
    fp.set_device_memory_bytes(g.memory_bytes);
    fp.set_driver_version(n.driver_version());
    fp.set_cuda_version(n.cuda_version());
    fp.set_nccl_version(n.nccl_version());
    fp.set_topology(absl::StrCat(n.device_count(), "x ", n.device_model(), "; ", cores,
                                 " cores; nics: ", nics.empty() ? "none" : nics));
    f.peak_flops_per_s = DatasheetPeakFlops(g.name);
  } else {
    const int slots = std::max(1, o.cpu_slots);
    n.set_device_count(slots);
    n.set_device_model(absl::StrCat("cpu: ", n.cpu_model().empty() ? "unknown" : n.cpu_model()));
    const int64_t per_slot = o.cpu_slot_memory_bytes > 0
                                 ? o.cpu_slot_memory_bytes
                                 : static_cast<int64_t>(n.host_memory_bytes() * 0.8 / slots);
    n.set_device_memory_bytes(per_slot);
    fp.set_device_model(n.device_model());
    fp.set_device_memory_bytes(per_slot);
    // Rates per worker depend on how many workers share how many cores: both are in the key.
    fp.set_topology(absl::StrCat(slots, " CPU worker slots on ", cores, " cores; ",
                                 FormatBytes(static_cast<double>(n.host_memory_bytes())),
                                 " host memory; Gloo over TCP"));
  }
  return f;
}

}  // namespace cairn::agent
