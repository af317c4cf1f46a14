#include "planner/catalog/clusters.h"

#include <cmath>
#include <cstdlib>
#include <fstream>
#include <set>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/testing/status_matchers.h"
#include "common/units.h"
#include "gmock/gmock.h"
#include "google/protobuf/util/message_differencer.h"
#include "gtest/gtest.h"
#include "planner/catalog/json_io.h"
#include "planner/catalog/testdata_util.h"

namespace cairn::planner {
namespace {

using cairn::testing::StatusIs;
using cairn::v1::CollectiveCost;
using cairn::v1::HardwareProfile;
using ::testing::HasSubstr;

constexpr auto kAllReduce = cairn::v1::COLLECTIVE_OP_ALL_REDUCE;
constexpr auto kAllGather = cairn::v1::COLLECTIVE_OP_ALL_GATHER;
constexpr auto kReduceScatter = cairn::v1::COLLECTIVE_OP_REDUCE_SCATTER;
constexpr auto kAllToAll = cairn::v1::COLLECTIVE_OP_ALL_TO_ALL;
constexpr auto kSendRecv = cairn::v1::COLLECTIVE_OP_SEND_RECV;

HardwareProfile Get(const std::string& name) { return LookupHardware(name).value(); }

// The entry for (op, g, spans), or nullptr.
const CollectiveCost* Find(const HardwareProfile& hw, cairn::v1::CollectiveOp op, int g,
                           bool spans) {
  for (const CollectiveCost& c : hw.collectives()) {
    if (c.op() == op && c.group_size() == g && c.spans_nodes() == spans) return &c;
  }
  return nullptr;
}

std::string WriteTemp(const std::string& name, const std::string& text) {
  const char* dir = std::getenv("TEST_TMPDIR");
  const std::string path = absl::StrCat(dir ? dir : "/tmp", "/", name);
  std::ofstream(path) << text;
  return path;
}

TEST(ClustersTest, NamesAndEveryProfileValidates) {
  EXPECT_THAT(ClusterNames(), ::testing::ElementsAre("h100-sxm", "h200-sxm", "a100-80g-sxm", "cpu"));
  for (const std::string& name : ClusterNames()) {
    ASSERT_OK_AND_ASSIGN(HardwareProfile hw, LookupHardware(name));
    EXPECT_EQ(hw.name(), name);
    EXPECT_OK(ValidateHardwareProfile(hw)) << name;
    EXPECT_EQ(hw.source(), cairn::v1::PROFILE_SOURCE_DEFAULT) << name;
    EXPECT_THAT(hw.notes(), HasSubstr("Measured")) << name;
    EXPECT_THAT(hw.notes(), HasSubstr("Derived")) << name;
  }
  for (const char* name : {"h100-sxm", "h200-sxm", "a100-80g-sxm"}) {
    EXPECT_THAT(Get(name).notes(), HasSubstr("Datasheet")) << name;
  }
}

TEST(ClustersTest, UnknownNameListsTheCatalog) {
  EXPECT_THAT(LookupHardware("b200"),
              StatusIs(absl::StatusCode::kNotFound,
                       ::testing::AllOf(HasSubstr("b200"), HasSubstr("h100-sxm"),
                                        HasSubstr("cpu"))));
}

TEST(ClustersTest, DatasheetNumbers) {
  const HardwareProfile h100 = Get("h100-sxm");
  EXPECT_EQ(h100.devices_per_node(), 8);
  EXPECT_DOUBLE_EQ(h100.device().peak_flops_per_s(), 989e12);
  EXPECT_EQ(h100.device().memory_bytes(), 81559LL << 20);
  EXPECT_DOUBLE_EQ(h100.device().memory_bandwidth_bytes_per_s(), 0.85 * 3.35e12);
  EXPECT_EQ(h100.device().reserved_bytes(), GiB(1.5));
  EXPECT_DOUBLE_EQ(h100.overlap_slowdown(), 1.126);

  const HardwareProfile h200 = Get("h200-sxm");
  EXPECT_EQ(h200.device().memory_bytes(), 143771LL << 20);
  EXPECT_DOUBLE_EQ(h200.device().memory_bandwidth_bytes_per_s(), 0.85 * 4.8e12);

  const HardwareProfile a100 = Get("a100-80g-sxm");
  EXPECT_DOUBLE_EQ(a100.device().peak_flops_per_s(), 312e12);
  EXPECT_EQ(a100.device().memory_bytes(), 80LL << 30);
}

TEST(ClustersTest, GemmTablesAreSortedBelowPeakAndSmallGemmsAreSlow) {
  for (const std::string& name : ClusterNames()) {
    const HardwareProfile hw = Get(name);
    const auto& gemm = hw.device().gemm();
    ASSERT_GE(gemm.size(), 5) << name;
    for (int i = 1; i < gemm.size(); ++i) EXPECT_LT(gemm[i - 1].flops(), gemm[i].flops()) << name;
    for (const auto& p : gemm) {
      EXPECT_LE(p.achieved_flops_per_s(), hw.device().peak_flops_per_s()) << name;
    }
    // The smallest GEMM is well below the largest (launch/overhead bound).
    EXPECT_LT(gemm[0].achieved_flops_per_s(), 0.8 * gemm[gemm.size() - 1].achieved_flops_per_s())
        << name;
  }
  // Measured H200 points quoted in docs/catalog.md: 8192^3 641.6 and 1024^3 150.6 TFLOP/s.
  const HardwareProfile h200 = Get("h200-sxm");
  bool saw_8192 = false;
  for (const auto& p : h200.device().gemm()) {
    if (p.flops() == 2.0 * 8192 * 8192 * 8192) {
      saw_8192 = true;
      EXPECT_DOUBLE_EQ(p.achieved_flops_per_s(), 641.6e12);
    }
  }
  EXPECT_TRUE(saw_8192);
  const HardwareProfile a100 = Get("a100-80g-sxm");
  for (const auto& p : a100.device().gemm()) {
    EXPECT_LE(p.achieved_flops_per_s(), 265e12);
  }
}

TEST(ClustersTest, MeasuredNvSwitchPointsForTwoAndFourGpus) {
  const HardwareProfile h200 = Get("h200-sxm");
  const CollectiveCost* ar2 = Find(h200, kAllReduce, 2, false);
  ASSERT_NE(ar2, nullptr);
  ASSERT_EQ(ar2->points_size(), 4);
  EXPECT_DOUBLE_EQ(ar2->points(0).bytes(), 1 << 20);
  EXPECT_DOUBLE_EQ(ar2->points(0).time_s(), 19.5e-6);
  EXPECT_DOUBLE_EQ(ar2->points(2).time_s(), 895e-6);
  // 1 GiB at a bus bandwidth of 330 GB/s; all-reduce bus factor 2(g-1)/g = 1 for g = 2.
  EXPECT_DOUBLE_EQ(ar2->points(3).bytes(), 1 << 30);
  EXPECT_NEAR(ar2->points(3).time_s(), (1 << 30) / 330e9, 1e-12);
  EXPECT_NEAR(ar2->busbw_bytes_per_s(), 330e9, 1e3);
  // Latency: 19.5 us minus the bandwidth term of 1 MiB at 330 GB/s (3.18 us).
  EXPECT_NEAR(ar2->latency_s(), 19.5e-6 - (1 << 20) / 330e9, 1e-12);

  const CollectiveCost* ag4 = Find(h200, kAllGather, 4, false);
  ASSERT_NE(ag4, nullptr);
  EXPECT_DOUBLE_EQ(ag4->points(1).time_s(), 65.6e-6);
  // All-gather bus factor (g-1)/g = 3/4 at 326 GB/s.
  EXPECT_NEAR(ag4->points(3).time_s(), 0.75 * (1 << 30) / 326e9, 1e-12);

  // H100 keeps its own all-reduce 1 GiB measurements (329, 355 GB/s) and the H200 small sizes.
  const HardwareProfile h100 = Get("h100-sxm");
  EXPECT_NEAR(Find(h100, kAllReduce, 2, false)->busbw_bytes_per_s(), 329e9, 1e3);
  EXPECT_NEAR(Find(h100, kAllReduce, 4, false)->busbw_bytes_per_s(), 355e9, 1e3);
  EXPECT_DOUBLE_EQ(Find(h100, kAllReduce, 4, false)->points(0).time_s(), 44.5e-6);
}

TEST(ClustersTest, EightGpuTablesAreScaledToTheMeasured361GBps) {
  for (const std::string name : {"h100-sxm", "h200-sxm"}) {
    const HardwareProfile hw = Get(name);
    const CollectiveCost* ar8 = Find(hw, kAllReduce, 8, false);
    ASSERT_NE(ar8, nullptr) << name;
    EXPECT_NEAR(ar8->busbw_bytes_per_s(), 361e9, 1e3) << name;
    for (auto op : {kAllGather, kReduceScatter, kAllToAll}) {
      const CollectiveCost* c8 = Find(hw, op, 8, false);
      const CollectiveCost* c4 = Find(hw, op, 4, false);
      ASSERT_NE(c8, nullptr);
      ASSERT_NE(c4, nullptr);
      ASSERT_EQ(c8->points_size(), c4->points_size());
      const double ar4 = name == std::string("h100-sxm") ? 355 : 354;
      for (int i = 0; i < c8->points_size(); ++i) {
        // t8 = t4 x (7/8) / (3/4) x busbw4 / busbw8.
        EXPECT_NEAR(c8->points(i).time_s(), c4->points(i).time_s() * (7.0 / 6.0) * ar4 / 361,
                    1e-12);
      }
    }
  }
}

TEST(ClustersTest, A100IntraNodeTimesAreH200TimesOnSlowerNvlink) {
  const HardwareProfile a100 = Get("a100-80g-sxm");
  const HardwareProfile h200 = Get("h200-sxm");
  for (int g : {2, 4, 8}) {
    for (auto op : {kAllReduce, kAllGather, kReduceScatter, kAllToAll}) {
      const CollectiveCost* a = Find(a100, op, g, false);
      const CollectiveCost* h = Find(h200, op, g, false);
      ASSERT_NE(a, nullptr);
      ASSERT_NE(h, nullptr);
      for (int i = 0; i < a->points_size(); ++i) {
        EXPECT_NEAR(a->points(i).time_s(), 1.5 * h->points(i).time_s(), 1e-12);
      }
    }
  }
  EXPECT_NEAR(Find(a100, kAllReduce, 8, false)->busbw_bytes_per_s(), 361e9 / 1.5, 1e3);
}

TEST(ClustersTest, InterNodeTablesFromTheNic) {
  for (const auto& [name, nic] : {std::pair<std::string, double>{"h100-sxm", 44e9},
                                  {"h200-sxm", 44e9}, {"a100-80g-sxm", 22e9}}) {
    const HardwareProfile hw = Get(name);
    for (int g = 2; g <= 16384; g *= 2) {
      for (auto op : {kAllReduce, kAllGather, kReduceScatter, kAllToAll}) {
        const CollectiveCost* c = Find(hw, op, g, true);
        ASSERT_NE(c, nullptr) << name << " g=" << g;
        EXPECT_NEAR(c->busbw_bytes_per_s(), nic, 1) << name;
        EXPECT_NEAR(c->latency_s(), 20e-6 + 5e-6 * std::log2(g), 1e-12);
        EXPECT_EQ(c->points_size(), 0);
      }
    }
    ASSERT_NE(Find(hw, kSendRecv, 2, false), nullptr);
    ASSERT_NE(Find(hw, kSendRecv, 2, true), nullptr);
    EXPECT_GT(Find(hw, kSendRecv, 2, false)->busbw_bytes_per_s(),
              Find(hw, kSendRecv, 2, true)->busbw_bytes_per_s());
  }
  EXPECT_NEAR(Find(Get("h100-sxm"), kAllReduce, 1024, true)->latency_s(), 70e-6, 1e-12);
}

TEST(ClustersTest, CpuProfileDescribesWorkerProcesses) {
  const HardwareProfile cpu = Get("cpu");
  EXPECT_EQ(cpu.devices_per_node(), 4);
  EXPECT_EQ(cpu.device().memory_bytes(), GiB(4));
  const auto& gemm = cpu.device().gemm();
  EXPECT_NEAR(gemm[gemm.size() - 1].achieved_flops_per_s(), 50e9, 1);
  EXPECT_DOUBLE_EQ(cpu.device().memory_bandwidth_bytes_per_s(), 10e9);
  // Gloo ring: all-reduce 2(g-1) steps of 25 us, all-gather g-1.
  EXPECT_NEAR(Find(cpu, kAllReduce, 2, false)->latency_s(), 50e-6, 1e-12);
  EXPECT_NEAR(Find(cpu, kAllReduce, 4, false)->latency_s(), 150e-6, 1e-12);
  EXPECT_NEAR(Find(cpu, kAllGather, 4, false)->latency_s(), 75e-6, 1e-12);
  EXPECT_NEAR(Find(cpu, kAllReduce, 4, true)->busbw_bytes_per_s(), 1.5e9, 1);
  ASSERT_NE(Find(cpu, kAllToAll, 4, false), nullptr);
  EXPECT_EQ(Find(cpu, kAllToAll, 8, false), nullptr);  // larger than the node
  ASSERT_NE(Find(cpu, kAllToAll, 1024, true), nullptr);
}

TEST(ClustersTest, CpuClustersAreRebuiltForTheirWorkerCount) {
  ASSERT_OK_AND_ASSIGN(cairn::v1::Cluster six, MakeCluster("cpu", 1, 6));
  const HardwareProfile& hw = six.hardware();
  EXPECT_EQ(hw.devices_per_node(), 6);
  EXPECT_NE(Find(hw, kAllReduce, 4, false), nullptr);
  ASSERT_NE(Find(hw, kAllReduce, 6, false), nullptr);
  EXPECT_NEAR(Find(hw, kAllReduce, 6, false)->latency_s(), 10 * 25e-6, 1e-12);
  EXPECT_EQ(Find(hw, kAllReduce, 8, false), nullptr);
  EXPECT_OK(ValidateHardwareProfile(hw));

  ASSERT_OK_AND_ASSIGN(cairn::v1::Cluster one, MakeCluster("cpu", 3, 1));
  EXPECT_EQ(Find(one.hardware(), kAllReduce, 2, false), nullptr);
  EXPECT_NE(Find(one.hardware(), kSendRecv, 2, true), nullptr);
  EXPECT_OK(ValidateHardwareProfile(one.hardware()));
}

TEST(ClustersTest, MakeClusterUsesDefaultsAndShrinksNodes) {
  ASSERT_OK_AND_ASSIGN(cairn::v1::Cluster cluster, MakeCluster("h100-sxm", 4));
  EXPECT_EQ(cluster.num_nodes(), 4);
  EXPECT_EQ(cluster.hardware().devices_per_node(), 8);
  EXPECT_TRUE(google::protobuf::util::MessageDifferencer::Equals(cluster.hardware(),
                                                                 Get("h100-sxm")));

  ASSERT_OK_AND_ASSIGN(cairn::v1::Cluster four, MakeCluster("h200-sxm", 1, 4));
  EXPECT_EQ(four.hardware().devices_per_node(), 4);
  EXPECT_EQ(Find(four.hardware(), kAllReduce, 8, false), nullptr);  // no longer fits a node
  EXPECT_NE(Find(four.hardware(), kAllReduce, 4, false), nullptr);
  EXPECT_NE(Find(four.hardware(), kAllReduce, 8, true), nullptr);
  EXPECT_OK(ValidateHardwareProfile(four.hardware()));

  ASSERT_OK_AND_ASSIGN(cairn::v1::Cluster cpu, MakeCluster("cpu", 2, 16));
  EXPECT_EQ(cpu.hardware().devices_per_node(), 16);
  EXPECT_NE(Find(cpu.hardware(), kAllReduce, 16, false), nullptr);
  EXPECT_OK(ValidateHardwareProfile(cpu.hardware()));
}

TEST(ClustersTest, MakeClusterRejectsBadCounts) {
  EXPECT_THAT(MakeCluster("h100-sxm", 0),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("num_nodes")));
  EXPECT_THAT(MakeCluster("h100-sxm", kMaxNodes + 1),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("num_nodes")));
  EXPECT_THAT(MakeCluster("h100-sxm", 1, 9),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("between 1 and 8")));
  EXPECT_THAT(MakeCluster("h100-sxm", 1, -1),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("devices_per_node")));
  EXPECT_THAT(MakeCluster("cpu", 1, 65),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("between 1 and 64")));
  EXPECT_THAT(MakeCluster("tpu", 1), StatusIs(absl::StatusCode::kNotFound, HasSubstr("tpu")));
  HardwareProfile broken = Get("cpu");
  broken.set_overlap_slowdown(0.5);
  EXPECT_THAT(MakeCluster(broken, 1),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("overlap_slowdown")));
  EXPECT_THAT(MakeCluster(Get("cpu"), 1, 5),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("between 1 and 4")));
}

struct BadProfileCase {
  const char* what;
  void (*mutate)(HardwareProfile*);
  const char* message;
};

TEST(ClustersTest, ValidateRejectsEachBadFieldByName) {
  const BadProfileCase kCases[] = {
      {"name", [](HardwareProfile* h) { h->clear_name(); }, "name is empty"},
      {"devices", [](HardwareProfile* h) { h->set_devices_per_node(0); }, "devices_per_node"},
      {"memory", [](HardwareProfile* h) { h->mutable_device()->set_memory_bytes(0); },
       "device.memory_bytes"},
      {"reserved", [](HardwareProfile* h) { h->mutable_device()->set_reserved_bytes(GiB(200)); },
       "device.reserved_bytes"},
      {"peak", [](HardwareProfile* h) { h->mutable_device()->set_peak_flops_per_s(0); },
       "device.peak_flops_per_s"},
      {"no gemm", [](HardwareProfile* h) { h->mutable_device()->clear_gemm(); },
       "device.gemm is empty"},
      {"gemm units", [](HardwareProfile* h) { h->mutable_device()->set_peak_flops_per_s(989); },
       "device.gemm[0].achieved_flops_per_s"},
      {"gemm flops", [](HardwareProfile* h) { h->mutable_device()->mutable_gemm(2)->set_flops(-1); },
       "device.gemm[2].flops"},
      {"attention", [](HardwareProfile* h) { h->mutable_device()->set_attention_efficiency(1.5); },
       "attention_efficiency"},
      {"bandwidth",
       [](HardwareProfile* h) { h->mutable_device()->set_memory_bandwidth_bytes_per_s(0); },
       "memory_bandwidth_bytes_per_s"},
      {"overlap", [](HardwareProfile* h) { h->set_overlap_slowdown(0); }, "overlap_slowdown"},
      {"op", [](HardwareProfile* h) { h->mutable_collectives(0)->clear_op(); },
       "collectives[0].op is unset"},
      {"group", [](HardwareProfile* h) { h->mutable_collectives(0)->set_group_size(1); },
       "collectives[0] (all_reduce, group 1, intra-node): group_size must be >= 2"},
      {"intra too big",
       [](HardwareProfile* h) { h->mutable_collectives(0)->set_group_size(16); },
       "cannot exceed devices_per_node = 8"},
      {"latency", [](HardwareProfile* h) { h->mutable_collectives(0)->set_latency_s(-1); },
       "latency_s"},
      {"no rate",
       [](HardwareProfile* h) {
         h->mutable_collectives(0)->clear_points();
         h->mutable_collectives(0)->set_busbw_bytes_per_s(0);
       },
       "needs busbw_bytes_per_s > 0 or at least two points"},
      {"point", [](HardwareProfile* h) { h->mutable_collectives(0)->mutable_points(1)->set_time_s(0); },
       "points[1]"},
      {"duplicate",
       [](HardwareProfile* h) { *h->add_collectives() = h->collectives(0); }, "duplicate entry"},
      {"send/recv group",
       [](HardwareProfile* h) {
         for (auto& c : *h->mutable_collectives()) {
           if (c.op() == cairn::v1::COLLECTIVE_OP_SEND_RECV) c.set_group_size(4);
         }
       },
       "send/recv entries have group_size 2"},
      {"missing op",
       [](HardwareProfile* h) {
         auto* list = h->mutable_collectives();
         for (int i = list->size() - 1; i >= 0; --i) {
           if (list->Get(i).op() == cairn::v1::COLLECTIVE_OP_ALL_TO_ALL) list->DeleteSubrange(i, 1);
         }
       },
       "no entry for all_to_all"},
  };
  for (const BadProfileCase& c : kCases) {
    HardwareProfile hw = Get("h200-sxm");
    c.mutate(&hw);
    EXPECT_THAT(ValidateHardwareProfile(hw),
                StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr(c.message)))
        << c.what;
  }
}

TEST(ClustersTest, ProfilesRoundTripThroughJsonFiles) {
  for (const std::string& name : ClusterNames()) {
    const HardwareProfile hw = Get(name);
    ASSERT_OK_AND_ASSIGN(std::string text, ProtoToJson(hw));
    ASSERT_OK_AND_ASSIGN(HardwareProfile back,
                         LoadHardwareProfileFile(WriteTemp(name + ".json", text)));
    EXPECT_TRUE(google::protobuf::util::MessageDifferencer::Equals(hw, back)) << name;
  }
}

TEST(ClustersTest, LoadErrorsNameTheFile) {
  EXPECT_THAT(LoadHardwareProfileFile("/nonexistent/hw.json"),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("/nonexistent/hw.json")));
  const std::string camel = WriteTemp("camel.json", R"({"name": "x", "devicesPerNode": 2})");
  EXPECT_THAT(LoadHardwareProfileFile(camel),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       ::testing::AllOf(HasSubstr(camel), HasSubstr("device.memory_bytes"))));
  const std::string bad = WriteTemp("bad_hw.json", R"({"name": "x", "devices": 2})");
  EXPECT_THAT(LoadHardwareProfileFile(bad),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("devices")));
}

// docs/catalog.md must carry each profile's headline numbers; the row is generated here (paste the
// printed row into the document when the profile changes).
std::string Rate(double flops_per_s) {
  return flops_per_s >= 1e12 ? absl::StrFormat("%.1f TFLOP/s", flops_per_s / 1e12)
                             : absl::StrFormat("%.1f GFLOP/s", flops_per_s / 1e9);
}

std::string ClusterRow(const HardwareProfile& hw) {
  const auto& d = hw.device();
  const int g = hw.devices_per_node();
  const CollectiveCost* intra = Find(hw, kAllReduce, g, false);
  const CollectiveCost* inter = Find(hw, kAllReduce, 2, true);
  double best_gemm = 0;
  for (const auto& p : d.gemm()) best_gemm = std::max(best_gemm, p.achieved_flops_per_s());
  return absl::StrFormat(
      "| %s | %d | %d MiB | %d MiB | %s | %s | %.0f GB/s | %.4g GB/s (g=%d) | %.4g GB/s | %.4g |",
      hw.name(), g, d.memory_bytes() >> 20, d.reserved_bytes() >> 20, Rate(d.peak_flops_per_s()),
      Rate(best_gemm), d.memory_bandwidth_bytes_per_s() / 1e9,
      intra ? intra->busbw_bytes_per_s() / 1e9 : 0.0, g,
      inter ? inter->busbw_bytes_per_s() / 1e9 : 0.0, hw.overlap_slowdown());
}

TEST(ClustersTest, DocsCatalogListsEveryProfileWithItsNumbers) {
  std::ifstream in(testing::RunfilePath("docs/catalog.md"));
  ASSERT_TRUE(in.good()) << "docs/catalog.md not found in runfiles";
  std::set<std::string> lines;
  for (std::string line; std::getline(in, line);) lines.insert(line);
  for (const std::string& name : ClusterNames()) {
    const std::string row = ClusterRow(Get(name));
    EXPECT_TRUE(lines.count(row)) << "docs/catalog.md lacks the row:\n" << row;
  }
}

}  // namespace
}  // namespace cairn::planner
