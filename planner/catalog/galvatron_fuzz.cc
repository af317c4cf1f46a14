// libFuzzer target: Galvatron JSON imports (`cairn plan --galvatron-hardware DIR`,
// `--galvatron-model-profile FILE`, and strategy files).
//
// The first byte picks the file the rest of the input becomes:
//   0: a strategy JSON -> ImportGalvatronStrategy for llama2-7b on 8 devices (and, when it
//      imports, ExportGalvatronStrategy of the result);
//   1: a computation profile -> ImportGalvatronModelProfile (file in a temporary directory);
//   2: a memory profile beside a valid computation profile;
//   3: allreduce_bandwidth_1nodes_8gpus_per_node.json (the file that must be there) ->
//      ImportGalvatronHardware onto h100-sxm;
//   4..: the optional sp_time, p2p and overlap files beside a valid all-reduce file.
// Crashes and sanitizer reports are findings; Status errors are the expected outcome.
//
//   tools/fuzz.sh galvatron_fuzz           # seeds: planner/catalog/testdata/galvatron_fuzz/
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <fstream>
#include <string>

#include "planner/catalog/clusters.h"
#include "planner/catalog/galvatron.h"
#include "planner/catalog/models.h"
#include "planner/problem/problem_builder.h"

namespace {

// A directory of its own for this process (removed with its files at exit by the OS tmp cleaner;
// each run overwrites the same few names).
const std::string& Dir() {
  static const std::string* dir = [] {
    const char* tmp = std::getenv("TMPDIR");
    std::string tmpl = std::string(tmp != nullptr ? tmp : "/tmp") + "/cairn-galvatron-fuzz-XXXXXX";
    if (mkdtemp(tmpl.data()) == nullptr) std::abort();
    return new std::string(tmpl);
  }();
  return *dir;
}

void Write(const std::string& name, const std::string& text) {
  std::ofstream(Dir() + "/" + name, std::ios::trunc | std::ios::binary) << text;
}

void Remove(const std::string& name) { unlink((Dir() + "/" + name).c_str()); }

constexpr char kAllReduce[] = "allreduce_bandwidth_1nodes_8gpus_per_node.json";
constexpr char kValidAllReduce[] =
    "{\"allreduce_size_8_consec_1\": 150.0, \"allreduce_size_4_consec_1\": 160.0, "
    "\"allreduce_size_4_consec_0\": 155.0, \"allreduce_size_2_consec_1\": 170.0, "
    "\"allreduce_size_2_consec_0\": 165.0}";
constexpr char kValidComputation[] =
    "{\"layertype_0_bsz1_seq4096\": 12.5, \"layertype_other_bsz1_seq4096\": 3.0}";

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace cairn::planner;  // NOLINT
  if (size < 1) return 0;
  const std::string text(reinterpret_cast<const char*>(data + 1), size - 1);
  static const cairn::v1::ModelSpec* model = new cairn::v1::ModelSpec(LookupModel("llama2-7b").value());
  static const cairn::v1::HardwareProfile* base =
      new cairn::v1::HardwareProfile(LookupHardware("h100-sxm").value());
  switch (data[0] % 7) {
    case 0: {
      absl::StatusOr<PlanSpec> plan = ImportGalvatronStrategy(text, ToModelDims(*model), 8);
      if (plan.ok()) (void)ExportGalvatronStrategy(*plan, ToModelDims(*model), 8);
      break;
    }
    case 1:
      Write("computation.json", text);
      (void)ImportGalvatronModelProfile(Dir() + "/computation.json", "", *model, 4096);
      break;
    case 2:
      Write("computation.json", kValidComputation);
      Write("memory.json", text);
      (void)ImportGalvatronModelProfile(Dir() + "/computation.json", Dir() + "/memory.json",
                                        *model, 4096);
      break;
    default: {
      static const char* kOptional[] = {"sp_time_1nodes_8gpus_per_node.json",
                                         "p2p_bandwidth_1nodes_8gpus_per_node.json",
                                         "overlap_coefficient.json"};
      for (const char* f : kOptional) Remove(f);
      if (data[0] % 7 == 3) {
        Write(kAllReduce, text);
      } else {
        Write(kAllReduce, kValidAllReduce);
        Write(kOptional[data[0] % 7 - 4], text);
      }
      absl::StatusOr<cairn::v1::HardwareProfile> hw = ImportGalvatronHardware(Dir(), 1, 8, *base);
      if (hw.ok()) (void)ValidateHardwareProfile(*hw);
      break;
    }
  }
  return 0;
}
