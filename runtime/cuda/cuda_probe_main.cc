// cuda-probe: prints this machine's CUDA devices and their device-to-device copy rate as JSON.
//
//   $ cuda-probe --copy-bytes=268435456
//   {"devices": [{"index": 0, "name": "NVIDIA H200", "total_memory_bytes": 150...,
//                 "sm_count": 132, "compute_capability": "9.0", "d2d_copy_gbps": 2...}]}
//
// --copy-bytes=0 skips the bandwidth measurement. Exit status: 0 on success; 1 with the error on
// stderr otherwise (e.g. "FAILED_PRECONDITION: no CUDA device: ..." on a machine without a GPU).
#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

#include "CLI/CLI.hpp"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/cli_app.h"
#include "runtime/cuda/device_probe.h"

namespace {
// The command line (--help lists every flag with its default).
struct CommandLineFlags {
  int64_t copy_bytes = int64_t{256} << 20;
};
CommandLineFlags g_flags;

void AddFlags(CLI::App& app) {
  app.add_option(
      "--copy-bytes", g_flags.copy_bytes,
      "bytes per device-to-device copy when measuring bandwidth; 0 skips the measurement");
}
}  // namespace

namespace cairn::runtime::cuda {
namespace {

// Quotes `text` as a JSON string (device names are ASCII, but stay correct for anything).
std::string JsonString(const std::string& text) {
  std::string out = "\"";
  for (const unsigned char c : text) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\t': out += "\\t"; break;
      default:
        if (c < 0x20) {
          out += absl::StrFormat("\\u%04x", c);
        } else {
          out += static_cast<char>(c);
        }
    }
  }
  return out + "\"";
}

absl::StatusOr<std::string> ProbeAsJson(int64_t copy_bytes) {
  absl::StatusOr<std::vector<DeviceInfo>> devices = ProbeDevices();
  if (!devices.ok()) return devices.status();
  std::string json = "{\"devices\": [";
  for (size_t i = 0; i < devices->size(); ++i) {
    const DeviceInfo& d = (*devices)[i];
    absl::StrAppend(&json, i == 0 ? "" : ", ", "{\"index\": ", d.index,
                    ", \"name\": ", JsonString(d.name),
                    ", \"total_memory_bytes\": ", d.total_memory_bytes,
                    ", \"sm_count\": ", d.sm_count,
                    ", \"compute_capability\": \"", d.compute_capability_major, ".",
                    d.compute_capability_minor, "\"");
    if (copy_bytes > 0) {
      absl::StatusOr<double> gbps = MeasureCopyBandwidth(d.index, copy_bytes);
      if (!gbps.ok()) return gbps.status();
      absl::StrAppend(&json, ", \"d2d_copy_bytes\": ", copy_bytes,
                      absl::StrFormat(", \"d2d_copy_gbps\": %.1f", *gbps));
    }
    absl::StrAppend(&json, "}");
  }
  return json + "]}";
}

}  // namespace
}  // namespace cairn::runtime::cuda

int main(int argc, char** argv) {
  std::unique_ptr<CLI::App> app = cairn::MakeApp(
      "cuda-probe",
      "prints this machine's CUDA devices and their device-to-device copy rate as JSON");
  AddFlags(*app);
  if (std::optional<int> exit = cairn::ParseCommandLine(*app, argc, argv)) return *exit;
  const int64_t copy_bytes = g_flags.copy_bytes;
  if (copy_bytes < 0) {
    std::fprintf(stderr, "cuda-probe: --copy-bytes must be >= 0, got %lld\n",
                 static_cast<long long>(copy_bytes));
    return 1;
  }
  absl::StatusOr<std::string> json = cairn::runtime::cuda::ProbeAsJson(copy_bytes);
  if (!json.ok()) {
    std::fprintf(stderr, "cuda-probe: %s\n", json.status().ToString().c_str());
    return 1;
  }
  std::printf("%s\n", json->c_str());
  return 0;
}
