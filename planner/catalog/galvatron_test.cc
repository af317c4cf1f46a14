#include "planner/catalog/galvatron.h"
#include "planner/problem/problem.h"

#include <cmath>
#include <cstdlib>
#include <fstream>
#include <string>
#include <sys/stat.h>

#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/testing/status_matchers.h"
#include "common/units.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "planner/catalog/clusters.h"
#include "planner/catalog/json_io.h"
#include "planner/catalog/models.h"
#include "planner/catalog/testdata_util.h"

namespace cairn::planner {
namespace {

using cairn::testing::StatusIs;
using cairn::v1::CollectiveCost;
using cairn::v1::HardwareProfile;
using cairn::v1::LayerTiming;
using cairn::v1::ModelProfile;
using ::testing::HasSubstr;

constexpr auto kAllReduce = cairn::v1::COLLECTIVE_OP_ALL_REDUCE;
constexpr auto kAllGather = cairn::v1::COLLECTIVE_OP_ALL_GATHER;
constexpr auto kReduceScatter = cairn::v1::COLLECTIVE_OP_REDUCE_SCATTER;
constexpr auto kAllToAll = cairn::v1::COLLECTIVE_OP_ALL_TO_ALL;
constexpr auto kSendRecv = cairn::v1::COLLECTIVE_OP_SEND_RECV;
constexpr double kMBPerMs = 1048576.0 * 1000.0;  // Galvatron MB/ms in bytes/s
constexpr char kStrategyFixture[] =
    "galvatron_config_llama2-7b_1nodes_8gpus_per_node_36GB_bf16.json";

std::string GalvatronDir() {
  const std::string ref = testing::ReferenceDir();
  return ref.empty() ? "" : ref + "/galvatron";
}

// The reference data is part of every checkout's surroundings (CI has it too): a test that needs
// it fails, saying where it looked, rather than skipping quietly.
#define REQUIRE_REFERENCE()                                                                  \
  if (GalvatronDir().empty()) {                                                              \
    FAIL() << "shared/reference/galvatron not found beside the checkout (looked at "         \
              "$CAIRN_REFERENCE_DIR, <ancestor>/shared/reference and "                        \
              "/work/shared/reference); set CAIRN_REFERENCE_DIR to the folder holding galvatron/"; \
  }

std::string TempDir(const std::string& name) {
  const char* tmp = std::getenv("TEST_TMPDIR");
  const std::string dir = absl::StrCat(tmp ? tmp : "/tmp", "/", name);
  mkdir(dir.c_str(), 0755);
  return dir;
}

void Write(const std::string& path, const std::string& text) { std::ofstream(path) << text; }

const CollectiveCost* Find(const HardwareProfile& hw, cairn::v1::CollectiveOp op, int g,
                           bool spans) {
  for (const CollectiveCost& c : hw.collectives()) {
    if (c.op() == op && c.group_size() == g && c.spans_nodes() == spans) return &c;
  }
  return nullptr;
}

ModelDims Dims(const cairn::v1::ModelSpec& s) {
  ModelDims d;
  d.name = s.name();
  d.num_layers = s.num_layers();
  d.hidden = s.hidden_size();
  d.ffn_hidden = s.ffn_hidden_size();
  d.num_heads = s.num_heads();
  d.num_kv_heads = s.num_kv_heads();
  d.vocab = s.vocab_size();
  d.max_seq_len = s.max_seq_len();
  return d;
}

ModelDims Llama7b() { return Dims(LookupModel("llama2-7b").value()); }

// ------------------------------------------------------------------------------------------------
// Hardware

TEST(GalvatronHardwareTest, OneNodeEightGpusUsesSpTimeCurvesAndOverlap) {
  REQUIRE_REFERENCE();
  const HardwareProfile base = LookupHardware("a100-80g-sxm").value();
  ASSERT_OK_AND_ASSIGN(HardwareProfile hw, ImportGalvatronHardware(GalvatronDir(), 1, 8, base));
  EXPECT_EQ(hw.name(), "a100-80g-sxm+galvatron");
  EXPECT_EQ(hw.source(), cairn::v1::PROFILE_SOURCE_IMPORTED);
  EXPECT_EQ(hw.devices_per_node(), 8);
  EXPECT_DOUBLE_EQ(hw.overlap_slowdown(), 1.125552573612729);
  for (const char* file :
       {"allreduce_bandwidth_1nodes_8gpus_per_node.json", "p2p_bandwidth_1nodes_8gpus_per_node.json",
        "sp_time_1nodes_8gpus_per_node.json", "overlap_coefficient.json"}) {
    EXPECT_THAT(hw.notes(), HasSubstr(file));
  }
  EXPECT_OK(ValidateHardwareProfile(hw));

  // sp_time: all-reduce of an 8-GPU consecutive group, 1 MB .. 1024 MB, ms -> s.
  const CollectiveCost* ar8 = Find(hw, kAllReduce, 8, false);
  ASSERT_NE(ar8, nullptr);
  ASSERT_EQ(ar8->points_size(), 11);
  EXPECT_DOUBLE_EQ(ar8->points(0).bytes(), 1 << 20);
  EXPECT_DOUBLE_EQ(ar8->points(0).time_s(), 0.07895e-3);
  EXPECT_DOUBLE_EQ(ar8->points(10).bytes(), 1024.0 * (1 << 20));
  EXPECT_DOUBLE_EQ(ar8->points(10).time_s(), 8.1409e-3);
  // Least-squares line over the points: the notes' fit of all-reduce/2 for g = 8 is
  // a = 0.00401 ms/MB, b = 0.087 ms, so for the full all-reduce a = 0.00802 ms/MB and
  // busbw = 2(7/8) / a = 1.75 MB / 0.00802 ms ~ 218 MB/ms; latency ~ 0.174 ms.
  EXPECT_NEAR(ar8->busbw_bytes_per_s() / kMBPerMs, 1.75 / 0.00802, 3);
  EXPECT_NEAR(ar8->latency_s(), 2 * 0.087e-3, 0.01e-3);

  // All-gather and reduce-scatter: half the all-reduce time at each size.
  for (auto op : {kAllGather, kReduceScatter}) {
    const CollectiveCost* c = Find(hw, op, 8, false);
    ASSERT_NE(c, nullptr);
    ASSERT_EQ(c->points_size(), 11);
    for (int i = 0; i < 11; ++i) {
      EXPECT_DOUBLE_EQ(c->points(i).time_s(), ar8->points(i).time_s() / 2);
    }
  }
  const CollectiveCost* a2a = Find(hw, kAllToAll, 2, false);
  ASSERT_NE(a2a, nullptr);
  EXPECT_DOUBLE_EQ(a2a->points(10).time_s(), 3.4954e-3);

  // p2p: the lowest of pp_size_{2,4,8} (109.45 MB/ms at pp 8), intra-node on one node.
  const CollectiveCost* p2p = Find(hw, kSendRecv, 2, false);
  ASSERT_NE(p2p, nullptr);
  EXPECT_DOUBLE_EQ(p2p->busbw_bytes_per_s(), 109.45 * kMBPerMs);
  EXPECT_EQ(p2p->latency_s(), 0);

  // Inter-node entries nothing measured are kept from the base profile.
  const CollectiveCost* inter = Find(hw, kAllReduce, 16, true);
  ASSERT_NE(inter, nullptr);
  EXPECT_DOUBLE_EQ(inter->busbw_bytes_per_s(), Find(base, kAllReduce, 16, true)->busbw_bytes_per_s());
}

TEST(GalvatronHardwareTest, TwoNodesMapStridedAndLargeGroupsAcrossNodes) {
  REQUIRE_REFERENCE();
  const HardwareProfile base = LookupHardware("h100-sxm").value();
  ASSERT_OK_AND_ASSIGN(HardwareProfile hw, ImportGalvatronHardware(GalvatronDir(), 2, 8, base));
  // Consecutive groups within a node stay intra-node.
  EXPECT_DOUBLE_EQ(Find(hw, kAllReduce, 8, false)->busbw_bytes_per_s(), 155.658 * kMBPerMs);
  EXPECT_DOUBLE_EQ(Find(hw, kAllReduce, 4, false)->busbw_bytes_per_s(), 157.984 * kMBPerMs);
  EXPECT_DOUBLE_EQ(Find(hw, kAllReduce, 2, false)->busbw_bytes_per_s(), 149.666 * kMBPerMs);
  // Strided groups (ranks i, i + 16/g, ...) and the 16-GPU group span the two nodes.
  EXPECT_DOUBLE_EQ(Find(hw, kAllReduce, 2, true)->busbw_bytes_per_s(), 8.13007 * kMBPerMs);
  EXPECT_DOUBLE_EQ(Find(hw, kAllReduce, 4, true)->busbw_bytes_per_s(), 16.22 * kMBPerMs);
  EXPECT_DOUBLE_EQ(Find(hw, kAllReduce, 8, true)->busbw_bytes_per_s(), 20.7724 * kMBPerMs);
  EXPECT_DOUBLE_EQ(Find(hw, kAllReduce, 16, true)->busbw_bytes_per_s(), 44.682 * kMBPerMs);
  // Galvatron has no latency term; all-gather/reduce-scatter carry the same bus bandwidth.
  EXPECT_EQ(Find(hw, kAllReduce, 16, true)->latency_s(), 0);
  EXPECT_DOUBLE_EQ(Find(hw, kAllGather, 2, true)->busbw_bytes_per_s(), 8.13007 * kMBPerMs);
  EXPECT_DOUBLE_EQ(Find(hw, kReduceScatter, 16, true)->busbw_bytes_per_s(), 44.682 * kMBPerMs);
  // p2p across nodes: the lowest of the four pp sizes.
  EXPECT_DOUBLE_EQ(Find(hw, kSendRecv, 2, true)->busbw_bytes_per_s(), 7.65998 * kMBPerMs);
  // No sp_time file for 2 nodes: all-to-all and intra-node send/recv stay from the base.
  EXPECT_DOUBLE_EQ(Find(hw, kSendRecv, 2, false)->busbw_bytes_per_s(),
                   Find(base, kSendRecv, 2, false)->busbw_bytes_per_s());
  EXPECT_EQ(Find(hw, kAllToAll, 8, false)->points_size(),
            Find(base, kAllToAll, 8, false)->points_size());
  EXPECT_THAT(hw.notes(), ::testing::Not(HasSubstr("sp_time")));
  EXPECT_OK(ValidateHardwareProfile(hw));
}

TEST(GalvatronHardwareTest, FourGpuNodeKeepsTheLowerOfDuplicateMeasurements) {
  REQUIRE_REFERENCE();
  ASSERT_OK_AND_ASSIGN(HardwareProfile hw,
                       ImportGalvatronHardware(GalvatronDir(), 1, 4,
                                               LookupHardware("h200-sxm").value()));
  EXPECT_EQ(hw.devices_per_node(), 4);
  EXPECT_EQ(Find(hw, kAllReduce, 8, false), nullptr);  // pruned: larger than the node
  EXPECT_DOUBLE_EQ(Find(hw, kAllReduce, 4, false)->busbw_bytes_per_s(), 158.018 * kMBPerMs);
  // consec_1 149.158 and consec_0 149.317 are both intra-node groups of 2: the lower is kept.
  EXPECT_DOUBLE_EQ(Find(hw, kAllReduce, 2, false)->busbw_bytes_per_s(), 149.158 * kMBPerMs);
  EXPECT_DOUBLE_EQ(Find(hw, kSendRecv, 2, false)->busbw_bytes_per_s(), 140.185 * kMBPerMs);
  EXPECT_OK(ValidateHardwareProfile(hw));
}

TEST(GalvatronHardwareTest, MissingAllReduceFileIsNotFound) {
  REQUIRE_REFERENCE();
  EXPECT_THAT(ImportGalvatronHardware(GalvatronDir(), 4, 8, LookupHardware("h100-sxm").value()),
              StatusIs(absl::StatusCode::kNotFound,
                       HasSubstr("allreduce_bandwidth_4nodes_8gpus_per_node.json")));
  EXPECT_THAT(ImportGalvatronHardware(GalvatronDir(), 0, 8, LookupHardware("h100-sxm").value()),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("num_nodes")));
}

struct BadHardwareCase {
  const char* file;
  const char* text;
  const char* message;
};

TEST(GalvatronHardwareTest, MalformedFilesAreRejectedNamingFileAndKey) {
  const std::string kGood = R"({"allreduce_size_2_consec_1": 100})";
  const BadHardwareCase kCases[] = {
      {"allreduce_bandwidth_1nodes_2gpus_per_node.json", "{ not json",
       "allreduce_bandwidth_1nodes_2gpus_per_node.json: not valid JSON"},
      {"allreduce_bandwidth_1nodes_2gpus_per_node.json", R"({"allreduce_2": 100})",
       "unknown key \"allreduce_2\""},
      {"allreduce_bandwidth_1nodes_2gpus_per_node.json", R"({"allreduce_size_2_consec_1": -1})",
       "\"allreduce_size_2_consec_1\" must be positive"},
      {"allreduce_bandwidth_1nodes_2gpus_per_node.json", R"({"allreduce_size_4_consec_1": 100})",
       "group size 4 does not divide the 1 x 2 = 2 GPUs"},
      {"allreduce_bandwidth_1nodes_2gpus_per_node.json", R"({"allreduce_size_2_consec_1": "fast"})",
       "must be a number"},
      {"allreduce_bandwidth_1nodes_2gpus_per_node.json", "[1, 2]", "expected a JSON object"},
      {"p2p_bandwidth_1nodes_2gpus_per_node.json", R"({"pp_size_3": 10})",
       "pp degree 3 does not divide"},
      {"overlap_coefficient.json", R"({"overlap_coe": 0.9})", "overlap_coe must be >= 1"},
      {"overlap_coefficient.json", R"({"overlap": 1.1})", "unknown key \"overlap\""},
      {"sp_time_1nodes_2gpus_per_node.json", R"({"allreduce_size_2_1MB": 0.1})",
       "unknown key \"allreduce_size_2_1MB\""},
      {"sp_time_1nodes_2gpus_per_node.json", R"({"all2all_size_2_1MB_time": 0})",
       "must be positive"},
  };
  int n = 0;
  for (const BadHardwareCase& c : kCases) {
    const std::string dir = TempDir(absl::StrCat("bad_hw_", n++));
    Write(dir + "/allreduce_bandwidth_1nodes_2gpus_per_node.json", kGood);
    Write(dir + "/" + c.file, c.text);
    EXPECT_THAT(ImportGalvatronHardware(dir, 1, 2, LookupHardware("cpu").value()),
                StatusIs(absl::StatusCode::kInvalidArgument,
                         ::testing::AllOf(HasSubstr(c.file), HasSubstr(c.message))))
        << c.file << " " << c.text;
  }
}

TEST(GalvatronHardwareTest, MinimalDirectoryImportsOntoACpuBase) {
  const std::string dir = TempDir("minimal_hw");
  Write(dir + "/allreduce_bandwidth_1nodes_2gpus_per_node.json",
        R"({"allreduce_size_2_consec_1": 2.0})");
  ASSERT_OK_AND_ASSIGN(HardwareProfile hw,
                       ImportGalvatronHardware(dir, 1, 2, LookupHardware("cpu").value()));
  EXPECT_DOUBLE_EQ(Find(hw, kAllReduce, 2, false)->busbw_bytes_per_s(), 2.0 * kMBPerMs);
  EXPECT_DOUBLE_EQ(hw.overlap_slowdown(), 1.2);  // no overlap file: the base's
  EXPECT_EQ(Find(hw, kAllReduce, 4, false), nullptr);
}

// ------------------------------------------------------------------------------------------------
// Model profile

const LayerTiming* FindTiming(const ModelProfile& p, cairn::v1::LayerKind kind, int tp, int mbs) {
  for (const LayerTiming& t : p.timings()) {
    if (t.kind() == kind && t.tp_degree() == tp && t.micro_batch_size() == mbs) return &t;
  }
  return nullptr;
}

TEST(GalvatronModelProfileTest, ImportsLlama2ComputationAndMemory) {
  REQUIRE_REFERENCE();
  const cairn::v1::ModelSpec spec = LookupModel("llama2-7b").value();
  ASSERT_OK_AND_ASSIGN(
      ModelProfile p,
      ImportGalvatronModelProfile(GalvatronDir() + "/computation_profiling_bf16_llama2-7b_all.json",
                                  GalvatronDir() + "/memory_profiling_bf16_llama2-7b_all.json",
                                  spec));
  EXPECT_EQ(p.model_name(), "llama2-7b");
  EXPECT_EQ(p.activation_dtype_bytes(), 2);
  EXPECT_THAT(p.source(), HasSubstr("computation_profiling_bf16_llama2-7b_all.json"));
  EXPECT_THAT(p.source(), HasSubstr("memory_profiling_bf16_llama2-7b_all.json"));
  // 12 micro-batch sizes x (block, embedding, head) + activation-only entries for tp 2, 4, 8.
  EXPECT_EQ(p.timings_size(), 12 * 3 + 3);

  const LayerTiming* block8 = FindTiming(p, cairn::v1::LAYER_KIND_TRANSFORMER_BLOCK, 1, 8);
  ASSERT_NE(block8, nullptr);
  EXPECT_EQ(block8->seq_len(), 2048);
  // layertype_0_bsz8_seq2048 = 3.937 ms per sample -> 8 samples.
  EXPECT_DOUBLE_EQ(block8->forward_s(), 8 * 3.9369729995727534e-3);
  EXPECT_EQ(block8->backward_s(), 0);
  // layertype_other_bsz8_seq2048 = 2.9586 ms per sample, split between embedding and head.
  const LayerTiming* emb8 = FindTiming(p, cairn::v1::LAYER_KIND_EMBEDDING, 1, 8);
  const LayerTiming* head8 = FindTiming(p, cairn::v1::LAYER_KIND_HEAD, 1, 8);
  ASSERT_NE(emb8, nullptr);
  ASSERT_NE(head8, nullptr);
  EXPECT_DOUBLE_EQ(emb8->forward_s(), 8 * 2.958646392822267e-3 / 2);
  EXPECT_DOUBLE_EQ(head8->forward_s(), emb8->forward_s());

  // Activation MB per sample per layer -> bytes at micro-batch 1.
  const LayerTiming* block1 = FindTiming(p, cairn::v1::LAYER_KIND_TRANSFORMER_BLOCK, 1, 1);
  ASSERT_NE(block1, nullptr);
  EXPECT_DOUBLE_EQ(block1->forward_s(), 4.396252679824831e-3);
  EXPECT_EQ(block1->activation_bytes(), std::llround(514.5634765625 * 1048576));
  const LayerTiming* tp4 = FindTiming(p, cairn::v1::LAYER_KIND_TRANSFORMER_BLOCK, 4, 1);
  ASSERT_NE(tp4, nullptr);
  EXPECT_EQ(tp4->forward_s(), 0);  // no time measured at tp 4
  EXPECT_EQ(tp4->activation_bytes(), std::llround(136.885498046875 * 1048576));

  // Sorted by (kind, tp, seq, micro-batch).
  for (int i = 1; i < p.timings_size(); ++i) {
    const LayerTiming& a = p.timings(i - 1);
    const LayerTiming& b = p.timings(i);
    EXPECT_LE(std::make_tuple(a.kind(), a.tp_degree(), a.seq_len(), a.micro_batch_size()),
              std::make_tuple(b.kind(), b.tp_degree(), b.seq_len(), b.micro_batch_size()));
  }
}

TEST(GalvatronModelProfileTest, ComputationOnlyAndWrongModels) {
  REQUIRE_REFERENCE();
  const std::string comp = GalvatronDir() + "/computation_profiling_bf16_llama2-7b_all.json";
  const std::string mem = GalvatronDir() + "/memory_profiling_bf16_llama2-7b_all.json";
  ASSERT_OK_AND_ASSIGN(ModelProfile p,
                       ImportGalvatronModelProfile(comp, "", LookupModel("llama2-7b").value()));
  EXPECT_EQ(p.timings_size(), 12 * 3);
  // The memory file's 778 MB per layer is not a Llama-2-13B block (1210 MB).
  EXPECT_THAT(ImportGalvatronModelProfile(comp, mem, LookupModel("llama2-13b").value()),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("another model")));
  // GPT-2 cannot run sequences of 2048.
  EXPECT_THAT(ImportGalvatronModelProfile(comp, "", LookupModel("gpt2-124m").value()),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("max_seq_len = 1024")));
  EXPECT_THAT(ImportGalvatronModelProfile(GalvatronDir() + "/absent.json", "",
                                          LookupModel("llama2-7b").value()),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("absent.json")));
}

TEST(GalvatronModelProfileTest, Galvatron2KeysWithoutSequenceUseTheGivenSeqLen) {
  const std::string dir = TempDir("model2x");
  const std::string path = dir + "/computation_profiling_fp32_tiny.json";
  Write(path, R"({"layertype_0_bsz2": 1.5, "layertype_other_bsz2": 0.0, "layertype_0": 2.0})");
  const cairn::v1::ModelSpec tiny = LookupModel("llama-tiny").value();
  ASSERT_OK_AND_ASSIGN(ModelProfile p, ImportGalvatronModelProfile(path, "", tiny, 128));
  EXPECT_EQ(p.activation_dtype_bytes(), 4);  // "fp32" in the file name
  ASSERT_EQ(p.timings_size(), 2);           // "other" = 0 is skipped
  EXPECT_EQ(p.timings(0).micro_batch_size(), 1);  // bare layertype_0: static mode, per sample
  EXPECT_DOUBLE_EQ(p.timings(0).forward_s(), 2.0e-3);
  EXPECT_EQ(p.timings(1).seq_len(), 128);
  EXPECT_DOUBLE_EQ(p.timings(1).forward_s(), 2 * 1.5e-3);
  ASSERT_OK_AND_ASSIGN(ModelProfile q, ImportGalvatronModelProfile(path, "", tiny));
  EXPECT_EQ(q.timings(0).seq_len(), 256);  // the model's max_seq_len
}

struct BadModelCase {
  const char* text;
  absl::StatusCode code;
  const char* message;
};

TEST(GalvatronModelProfileTest, MalformedComputationFiles) {
  const BadModelCase kCases[] = {
      {R"({"layertype_0_bsz1": 1, "layertype_0_bsz1_seq256": 2})",
       absl::StatusCode::kInvalidArgument, "both give micro-batch 1 at sequence length 256"},
      {R"({"layertype_1_bsz1_seq256": 1})", absl::StatusCode::kUnimplemented, "layer type 1"},
      {R"({"layertype_0_bsz1_seq256": 1, "flops": 3})", absl::StatusCode::kInvalidArgument,
       "unknown key \"flops\""},
      {R"({"layertype_0_bsz1_seq256": -1})", absl::StatusCode::kInvalidArgument,
       "must be positive"},
      {R"({"layertype_0_bsz0_seq256": 1})", absl::StatusCode::kInvalidArgument,
       "micro-batch size must be >= 1"},
      {R"({"layertype_other_bsz1_seq256": 1})", absl::StatusCode::kInvalidArgument,
       "no layertype_0 timings"},
      {R"({"layertype_0_bsz1_seq256": "1"})", absl::StatusCode::kInvalidArgument,
       "must be a number"},
      {"{", absl::StatusCode::kInvalidArgument, "not valid JSON"},
  };
  const std::string dir = TempDir("bad_model");
  const cairn::v1::ModelSpec tiny = LookupModel("llama-tiny").value();
  int n = 0;
  for (const BadModelCase& c : kCases) {
    const std::string path = absl::StrCat(dir, "/comp_", n++, ".json");
    Write(path, c.text);
    EXPECT_THAT(ImportGalvatronModelProfile(path, "", tiny),
                StatusIs(c.code, ::testing::AllOf(HasSubstr(path), HasSubstr(c.message))))
        << c.text;
  }
}

TEST(GalvatronModelProfileTest, MalformedMemoryFiles) {
  const std::string dir = TempDir("bad_memory");
  const std::string comp = dir + "/comp.json";
  Write(comp, R"({"layertype_0_bsz1_seq256": 1})");
  const cairn::v1::ModelSpec tiny = LookupModel("llama-tiny").value();
  const std::pair<const char*, const char*> kCases[] = {
      {R"({"other": 1})", "has neither \"layertype_0\" nor \"layertype_0_sp\""},
      {R"({"layertype_0": {"256": {"parameter_size": 0.7}}})", "no tp_activation_per_bsz_dict"},
      {R"({"layertype_0": {"abc": {}}})", "is not a sequence length"},
      {R"({"layertype_0": {"256": {"tp_activation_per_bsz_dict": {"x": 1}}}})",
       "is not a tp degree"},
      {R"({"layertype_0": {"256": {"tp_activation_per_bsz_dict": {"2": -4}}}})",
       "must be positive"},
  };
  int n = 0;
  for (const auto& [text, message] : kCases) {
    const std::string mem = absl::StrCat(dir, "/mem_", n++, ".json");
    Write(mem, text);
    EXPECT_THAT(ImportGalvatronModelProfile(comp, mem, tiny),
                StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr(message)))
        << text;
  }
  // A 2.x static block without a sequence key applies to the default sequence length.
  const std::string mem = dir + "/mem_static.json";
  Write(mem, R"({"layertype_0": {"tp_activation_per_bsz_dict": {"1": 2.0, "checkpoint": 0.5}}})");
  ASSERT_OK_AND_ASSIGN(ModelProfile p, ImportGalvatronModelProfile(comp, mem, tiny));
  ASSERT_EQ(p.timings_size(), 1);
  EXPECT_EQ(p.timings(0).activation_bytes(), 2 << 20);
  EXPECT_DOUBLE_EQ(p.timings(0).forward_s(), 1e-3);
}

// ------------------------------------------------------------------------------------------------
// Strategy

std::string Fixture() {
  return ReadTextFile(testing::TestDataPath(kStrategyFixture)).value();
}

TEST(GalvatronStrategyTest, ImportsTheBundledLlama2Example) {
  ASSERT_OK_AND_ASSIGN(PlanSpec plan, ImportGalvatronStrategy(Fixture(), Llama7b(), 8));
  EXPECT_EQ(plan.global_batch, 16);
  EXPECT_EQ(plan.num_micro_batches, 1);
  EXPECT_EQ(plan.schedule, Schedule::k1F1B);
  EXPECT_EQ(plan.stage_layers, std::vector<int>({34}));  // 32 blocks + embedding + head
  EXPECT_EQ(plan.origin, "galvatron import");
  ASSERT_EQ(plan.layers.size(), 34u);
  // Embedding and head: vtp 2, vsp 1 (Ulysses), embed_sdp 1 (ZeRO-3).
  for (const Strategy& s : {plan.layers.front(), plan.layers.back()}) {
    EXPECT_EQ(s.tp, 2);
    EXPECT_EQ(s.mode, ParallelMode::kUlysses);
    EXPECT_EQ(s.dp, DpMode::kZero3);
    EXPECT_FALSE(s.recompute);
    EXPECT_TRUE(s.tp_consecutive);
  }
  for (int i = 1; i <= 32; ++i) {
    const Strategy& s = plan.layers[i];
    EXPECT_EQ(s.tp, 1);
    EXPECT_EQ(s.mode, ParallelMode::kTensor);
    EXPECT_EQ(s.dp, DpMode::kZero3);
    EXPECT_EQ(s.recompute, i <= 20) << i;  // the first 20 blocks recompute
  }
  ASSERT_OK(ImportGalvatronStrategyFile(testing::TestDataPath(kStrategyFixture), Llama7b(), 8)
                .status());
  EXPECT_THAT(ImportGalvatronStrategyFile("/nonexistent/s.json", Llama7b(), 8),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("/nonexistent/s.json")));
}

TEST(GalvatronStrategyTest, ExportOfTheImportedExampleReproducesEveryField) {
  ASSERT_OK_AND_ASSIGN(PlanSpec plan, ImportGalvatronStrategy(Fixture(), Llama7b(), 8));
  ASSERT_OK_AND_ASSIGN(std::string text, ExportGalvatronStrategy(plan, Llama7b(), 8));
  const nlohmann::json original = nlohmann::json::parse(Fixture());
  const nlohmann::json exported = nlohmann::json::parse(text);
  for (const auto& [key, value] : original.items()) {
    EXPECT_EQ(exported.at(key), value) << key;
  }
  EXPECT_EQ(exported.at("vocab_sdp"), 1);
  EXPECT_EQ(exported.at("world_size"), 8);
  // Galvatron's key order.
  EXPECT_LT(text.find("\"pp_deg\""), text.find("\"tp_sizes_enc\""));
  EXPECT_LT(text.find("\"tp_sizes_enc\""), text.find("\"embed_sdp\""));
}

void ExpectSamePlan(const PlanSpec& a, const PlanSpec& b) {
  EXPECT_EQ(a.global_batch, b.global_batch);
  EXPECT_EQ(a.num_micro_batches, b.num_micro_batches);
  EXPECT_EQ(a.schedule, b.schedule);
  EXPECT_EQ(a.stage_layers, b.stage_layers);
  ASSERT_EQ(a.layers.size(), b.layers.size());
  for (size_t i = 0; i < a.layers.size(); ++i) {
    EXPECT_EQ(a.layers[i], b.layers[i]) << "layer " << i << ": " << Describe(a.layers[i])
                                        << " vs " << Describe(b.layers[i]);
  }
}

// A 4-block model on 16 devices with mixed strategies.
ModelDims SmallModel() {
  ModelDims d = Dims(LookupModel("llama-tiny").value());
  d.num_heads = 16;  // allow tp up to 16
  return d;
}

PlanSpec MixedPlan() {
  PlanSpec p;
  p.global_batch = 64;
  p.num_micro_batches = 8;
  p.schedule = Schedule::kGPipe;
  p.stage_layers = {2, 4};  // embedding + 1 block | 3 blocks + head
  Strategy vocab{4, ParallelMode::kTensor, DpMode::kDdp, false, true};
  p.layers = {vocab,
              {2, ParallelMode::kTensor, DpMode::kDdp, true, true},
              {8, ParallelMode::kUlysses, DpMode::kZero3, false, false},
              {1, ParallelMode::kTensor, DpMode::kDdp, false, true},
              {4, ParallelMode::kTensor, DpMode::kZero3, true, false},
              vocab};
  return p;
}

TEST(GalvatronStrategyTest, ExportThenImportRoundTrips) {
  std::vector<PlanSpec> plans;
  plans.push_back(MixedPlan());
  PlanSpec zero2 = MixedPlan();  // default_dp_type zero2, embedding ZeRO-3, 1F1B
  zero2.schedule = Schedule::k1F1B;
  for (Strategy& s : zero2.layers) {
    if (s.dp == DpMode::kDdp) s.dp = DpMode::kZero2;
  }
  zero2.layers.front().dp = zero2.layers.back().dp = DpMode::kZero3;
  zero2.layers.front().mode = zero2.layers.back().mode = ParallelMode::kUlysses;
  plans.push_back(zero2);
  PlanSpec all_zero3 = MixedPlan();
  for (Strategy& s : all_zero3.layers) s.dp = DpMode::kZero3;
  plans.push_back(all_zero3);
  PlanSpec single_stage = MixedPlan();
  single_stage.stage_layers = {6};
  single_stage.num_micro_batches = 1;
  plans.push_back(single_stage);

  for (const PlanSpec& plan : plans) {
    ASSERT_OK_AND_ASSIGN(std::string text, ExportGalvatronStrategy(plan, SmallModel(), 16));
    ASSERT_OK_AND_ASSIGN(PlanSpec back, ImportGalvatronStrategy(text, SmallModel(), 16));
    ExpectSamePlan(plan, back);
  }
  const std::string text = ExportGalvatronStrategy(MixedPlan(), SmallModel(), 16).value();
  EXPECT_THAT(text, HasSubstr("\"pp_division\": \"1,3\""));
  EXPECT_THAT(text, HasSubstr("\"tp_sizes_enc\": \"2,8,1,4\""));
  EXPECT_THAT(text, HasSubstr("\"tp_consecutive_flags\": \"1,0,1,0\""));
  EXPECT_THAT(text, HasSubstr("\"pipeline_type\": \"gpipe\""));
  EXPECT_THAT(text, HasSubstr("\"default_dp_type\": \"ddp\""));
}

struct ExportCase {
  const char* what;
  void (*mutate)(PlanSpec*);
  absl::StatusCode code;
  const char* message;
};

TEST(GalvatronStrategyTest, ExportRefusesWhatGalvatronCannotExpress) {
  const ExportCase kCases[] = {
      {"megatron sp", [](PlanSpec* p) { p->layers[1].mode = ParallelMode::kTensorSequence; },
       absl::StatusCode::kUnimplemented, "sequence parallelism"},
      {"zero1", [](PlanSpec* p) { p->layers[3].dp = DpMode::kZero1; },
       absl::StatusCode::kUnimplemented, "ZeRO-1"},
      {"two defaults", [](PlanSpec* p) { p->layers[3].dp = DpMode::kZero2; },
       absl::StatusCode::kUnimplemented, "one default_dp_type"},
      {"embedding != head", [](PlanSpec* p) { p->layers.back().tp = 2; },
       absl::StatusCode::kUnimplemented, "embedding and the head one strategy"},
      {"embedding recompute",
       [](PlanSpec* p) { p->layers.front().recompute = p->layers.back().recompute = true; },
       absl::StatusCode::kUnimplemented, "recompute the embedding"},
      {"empty stage", [](PlanSpec* p) { p->stage_layers = {1, 5}; },
       absl::StatusCode::kUnimplemented, "stage 0 holds no transformer block"},
      {"layer count", [](PlanSpec* p) { p->layers.pop_back(); },
       absl::StatusCode::kInvalidArgument, "num_layers + 2 = 6"},
      {"stage sum", [](PlanSpec* p) { p->stage_layers = {2, 3}; },
       absl::StatusCode::kInvalidArgument, "stage_layers sum to 5"},
      {"pp divides", [](PlanSpec* p) { p->stage_layers = {2, 2, 2}; },
       absl::StatusCode::kInvalidArgument, "pipeline degree 3 does not divide the 16 devices"},
      {"tp divides", [](PlanSpec* p) { p->layers[2].tp = 16; },
       absl::StatusCode::kInvalidArgument, "does not divide the 8 devices of a pipeline stage"},
      {"batch", [](PlanSpec* p) { p->global_batch = 12; },
       absl::StatusCode::kInvalidArgument, "not divisible by the data-parallel degree 8"},
  };
  for (const ExportCase& c : kCases) {
    PlanSpec plan = MixedPlan();
    c.mutate(&plan);
    EXPECT_THAT(ExportGalvatronStrategy(plan, SmallModel(), 16),
                StatusIs(c.code, HasSubstr(c.message)))
        << c.what;
  }
}

struct ImportCase {
  const char* what;
  const char* key;     // key to set ("" = replace the whole text)
  const char* value;   // JSON value, or the whole text
  absl::StatusCode code;
  const char* message;
};

TEST(GalvatronStrategyTest, ImportRejectsMalformedFilesNamingTheKey) {
  const std::string kOnes32 = "\"" + absl::StrJoin(std::vector<int>(32, 1), ",") + "\"";
  const ImportCase kCases[] = {
      {"not json", "", "{ \"pp_deg\": ", absl::StatusCode::kInvalidArgument, "not valid JSON"},
      {"not object", "", "[1]", absl::StatusCode::kInvalidArgument, "expected a JSON object"},
      {"short list", "tp_sizes_enc", "\"1,1\"", absl::StatusCode::kInvalidArgument,
       "tp_sizes_enc: has 2 entries, the model has 32 layers"},
      {"bad flag", "checkpoint", "\"2,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1\"",
       absl::StatusCode::kInvalidArgument, "checkpoint: entry 0 is 2, expected 0 or 1"},
      {"bad number", "use_sp", "\"0,x\"", absl::StatusCode::kInvalidArgument,
       "use_sp: \"x\" is not an integer"},
      {"tp 3", "tp_sizes_enc", "\"3,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1\"",
       absl::StatusCode::kInvalidArgument, "tp_sizes_enc: layer 0 is 3"},
      {"tp 16", "tp_sizes_enc", "\"1,16,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1\"",
       absl::StatusCode::kInvalidArgument, "does not divide the 8 devices of a pipeline stage"},
      {"vtp", "vtp", "3", absl::StatusCode::kInvalidArgument, "vtp is 3"},
      {"pp 3", "pp_deg", "3", absl::StatusCode::kInvalidArgument, "pp_deg: 3"},
      {"pp_division sum", "pp_division", "\"31\"", absl::StatusCode::kInvalidArgument,
       "pp_division: stages hold 31 layers in all, the model has 32"},
      {"pp_division length", "pp_division", "\"16,16\"", absl::StatusCode::kInvalidArgument,
       "pp_division: has 2 entries, pp_deg is 1"},
      {"pipeline", "pipeline_type", "\"interleaved\"", absl::StatusCode::kInvalidArgument,
       "pipeline_type: \"interleaved\""},
      {"dp type", "default_dp_type", "\"fsdp\"", absl::StatusCode::kInvalidArgument,
       "default_dp_type: \"fsdp\""},
      {"batch", "global_bsz", "12", absl::StatusCode::kInvalidArgument,
       "global_bsz: 12 is not divisible by the data-parallel degree 8 of layer 0"},
      {"chunks", "chunks", "0", absl::StatusCode::kInvalidArgument, "chunks: must be between 1"},
      {"unknown", "max_tp_deg", "8", absl::StatusCode::kInvalidArgument,
       "unknown key \"max_tp_deg\""},
      {"world size", "world_size", "16", absl::StatusCode::kInvalidArgument,
       "world_size: the strategy is for 16 devices, not 8"},
      {"cp", "cp_sizes_enc", "\"2,1\"", absl::StatusCode::kUnimplemented, "context parallelism"},
      {"vocab_sdp", "vocab_sdp", "0", absl::StatusCode::kInvalidArgument,
       "vocab_sdp: 0 disagrees with embed_sdp 1"},
      {"vsp", "vsp", "2", absl::StatusCode::kInvalidArgument, "vsp: expected 0 or 1"},
      {"scalar type", "global_bsz", "[16]", absl::StatusCode::kInvalidArgument,
       "global_bsz: expected an integer"},
  };
  for (const ImportCase& c : kCases) {
    std::string text;
    if (std::string(c.key).empty()) {
      text = c.value;
    } else {
      nlohmann::json j = nlohmann::json::parse(Fixture());
      j[c.key] = nlohmann::json::parse(c.value);
      text = j.dump();
    }
    EXPECT_THAT(ImportGalvatronStrategy(text, Llama7b(), 8),
                StatusIs(c.code, HasSubstr(c.message)))
        << c.what;
  }
  // Missing required keys.
  for (const char* key : {"pp_deg", "tp_sizes_enc", "global_bsz", "pipeline_type",
                          "default_dp_type"}) {
    nlohmann::json j = nlohmann::json::parse(Fixture());
    j.erase(key);
    EXPECT_THAT(ImportGalvatronStrategy(j.dump(), Llama7b(), 8),
                StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr(absl::StrCat(key, ": missing"))))
        << key;
  }
  nlohmann::json pp2 = nlohmann::json::parse(Fixture());
  pp2["pp_deg"] = 2;
  pp2.erase("pp_division");
  EXPECT_THAT(ImportGalvatronStrategy(pp2.dump(), Llama7b(), 8),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("pp_division: missing (required when pp_deg > 1)")));
}

TEST(GalvatronStrategyTest, ImportAcceptsListsDigitStringsAndDefaults) {
  nlohmann::json j;
  j["pp_deg"] = "2";
  j["tp_sizes_enc"] = {1, 2, 2, 4};
  j["pp_division"] = {1, 3};
  j["global_bsz"] = 32;
  j["pipeline_type"] = "gpipe";
  j["default_dp_type"] = "zero3";
  ASSERT_OK_AND_ASSIGN(PlanSpec plan, ImportGalvatronStrategy(j.dump(), SmallModel(), 16));
  EXPECT_EQ(plan.stage_layers, std::vector<int>({2, 4}));
  EXPECT_EQ(plan.num_micro_batches, 1);
  EXPECT_EQ(plan.schedule, Schedule::kGPipe);
  EXPECT_EQ(plan.layers[0], (Strategy{1, ParallelMode::kTensor, DpMode::kZero3, false, true}));
  EXPECT_EQ(plan.layers[4], (Strategy{4, ParallelMode::kTensor, DpMode::kZero3, false, true}));
}

}  // namespace
}  // namespace cairn::planner
