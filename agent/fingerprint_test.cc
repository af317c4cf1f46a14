#include "agent/fingerprint.h"

#include <map>

#include "gtest/gtest.h"

namespace cairn::agent {
namespace {

HostFiles Fake(const std::map<std::string, std::string>& files,
               const std::map<std::string, std::string>& commands) {
  HostFiles h;
  h.read_file = [files](const std::string& p) -> std::optional<std::string> {
    auto it = files.find(p);
    if (it == files.end()) return std::nullopt;
    return it->second;
  };
  h.list_dir = [](const std::string& d) -> std::vector<std::string> {
    if (d == "/sys/class/net") return {"lo", "eth0", "ib0"};
    return {};
  };
  h.run = [commands](const std::string& c) -> std::optional<std::string> {
    for (const auto& [prefix, out] : commands) {
      if (c.rfind(prefix, 0) == 0) return out;
    }
    return std::nullopt;
  };
  h.usable_cpus = 8;
  return h;
}

const std::map<std::string, std::string> kFiles = {
    {"/proc/cpuinfo", "processor: 0\nmodel name\t: AMD EPYC 9R14 96-Core Processor\n"},
    {"/proc/meminfo", "MemTotal:       32768000 kB\nMemFree: 1 kB\n"},
    {"/sys/class/net/eth0/operstate", "up\n"},
    {"/sys/class/net/eth0/speed", "25000\n"},
    {"/sys/class/net/ib0/operstate", "down\n"},
    {"/sys/class/net/ib0/speed", "-1\n"},
    {"/usr/local/cuda/version.json", R"({"cuda" : {"name" : "CUDA SDK", "version" : "13.0.1"}})"},
};

TEST(FingerprintTest, CpuNodeKeysOnModelSlotsAndCores) {
  AgentOptions o;
  o.cpu_slots = 2;
  o.node_name = "node-a";
  NodeFacts f = DetectNode(Fake(kFiles, {}), o);
  EXPECT_EQ(f.hostname, "node-a");
  EXPECT_EQ(f.fingerprint.device_model(), "cpu: AMD EPYC 9R14 96-Core Processor");
  EXPECT_EQ(f.node.cpu_cores(), 8);
  EXPECT_EQ(f.node.device_count(), 2);
  EXPECT_EQ(f.node.host_memory_bytes(), int64_t{32768000} * 1024);
  EXPECT_EQ(f.fingerprint.device_memory_bytes(),
            static_cast<int64_t>(int64_t{32768000} * 1024 * 0.8 / 2));
  EXPECT_NE(f.fingerprint.topology().find("2 CPU worker slots on 8 cores"), std::string::npos);
  ASSERT_EQ(f.node.nics_size(), 2);  // loopback left out
  EXPECT_EQ(f.node.nics(0), "eth0 25000 Mb/s up");
  EXPECT_EQ(f.node.nics(1), "ib0 down");
  EXPECT_EQ(f.peak_flops_per_s, 0);
  // Another slot count is another machine as far as per-worker rates go.
  o.cpu_slots = 4;
  EXPECT_NE(DetectNode(Fake(kFiles, {}), o).fingerprint.topology(), f.fingerprint.topology());
}

TEST(FingerprintTest, GpuNodeFromNvidiaSmiCudaAndNccl) {
  AgentOptions o;
  o.device_kind = "cuda";
  o.gpus = {0, 1};
  NodeFacts f = DetectNode(
      Fake(kFiles,
           {{"nvidia-smi", "NVIDIA H100 80GB HBM3, 81559, 580.95.05\n"
                           "NVIDIA H100 80GB HBM3, 81559, 580.95.05\n"
                           "NVIDIA H100 80GB HBM3, 81559, 580.95.05\n"},
            {"ldconfig", "\tlibnccl.so.2.28.3 (libc6,x86-64) => /usr/lib/libnccl.so.2.28.3\n"
                         "\tlibnccl.so.2 (libc6,x86-64) => /usr/lib/libnccl.so.2\n"
                         "\tlibcudnn.so.9.14.0 (libc6,x86-64) => /usr/lib/libcudnn.so.9.14.0\n"}}),
      o);
  EXPECT_EQ(f.node.device_count(), 2);
  EXPECT_EQ(f.fingerprint.device_model(), "NVIDIA H100 80GB HBM3");
  EXPECT_EQ(f.fingerprint.device_memory_bytes(), int64_t{81559} * 1024 * 1024);
  EXPECT_EQ(f.fingerprint.driver_version(), "580.95.05");
  EXPECT_EQ(f.fingerprint.cuda_version(), "13.0.1");
  EXPECT_EQ(f.fingerprint.nccl_version(), "2.28.3");
  EXPECT_EQ(f.node.cudnn_version(), "9.14.0");
  EXPECT_EQ(f.peak_flops_per_s, 989e12);
  EXPECT_NE(f.fingerprint.topology().find("2x NVIDIA H100"), std::string::npos);
}

TEST(FingerprintTest, CpuListsAndDatasheet) {
  EXPECT_EQ(*ParseCpuList("0-3,8"), (std::vector<int>{0, 1, 2, 3, 8}));
  EXPECT_EQ(*ParseCpuList("1"), (std::vector<int>{1}));
  EXPECT_FALSE(ParseCpuList("3-1").has_value());
  EXPECT_FALSE(ParseCpuList("x").has_value());
  EXPECT_FALSE(ParseCpuList("").has_value());
  EXPECT_EQ(DatasheetPeakFlops("NVIDIA H200"), 989e12);
  EXPECT_EQ(DatasheetPeakFlops("NVIDIA H100 PCIe"), 756e12);
  EXPECT_EQ(DatasheetPeakFlops("NVIDIA A100-SXM4-80GB"), 312e12);
  EXPECT_EQ(DatasheetPeakFlops("cpu: AMD EPYC"), 0);
}

}  // namespace
}  // namespace cairn::agent
