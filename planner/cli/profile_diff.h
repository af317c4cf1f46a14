// planner/cli/profile_diff.h — `cairn profiles diff`: a measured hardware profile against the
// catalog default it replaces (or another profile), number by number, as the cost model reads
// them: the GEMM rate at a decade ladder of FLOP counts, the forward + backward time of every GEMM
// shape and attention kernel either profile measured (an agent's probe records its models' layer
// shapes), attention efficiency, kernel launch cost, memory bandwidth, the time of each collective
// at 1 MiB and 64 MiB per group size and span, overlap.
//
//   RenderProfileDiff(measured, "agent profile 703a...@2", catalog_cpu, "cpu (built-in)", out);
//
//   quantity                                  measured      cpu (built-in)   ratio
//   GEMM rate at 1.0e+07 FLOP                 41.2 GFLOP/s  45.0 GFLOP/s     0.92
//   ...
// Ratios are measured / other (rates: above 1 is faster; times: above 1 is slower). A quantity
// only one side has shows "-" for the other.
#ifndef CAIRN_PLANNER_CLI_PROFILE_DIFF_H_
#define CAIRN_PLANNER_CLI_PROFILE_DIFF_H_

#include <ostream>
#include <string>

#include "proto/cairn/v1/hardware.pb.h"

namespace cairn::cli {

void RenderProfileDiff(const cairn::v1::HardwareProfile& a, const std::string& a_label,
                       const cairn::v1::HardwareProfile& b, const std::string& b_label,
                       std::ostream& out);

// The catalog cluster a profile's device most likely replaces: "cpu" for CPU devices, h200-sxm,
// h100-sxm or a100-80g-sxm by GPU name; "" when none fits.
std::string DefaultClusterFor(const cairn::v1::HardwareProfile& profile);

}  // namespace cairn::cli

#endif  // CAIRN_PLANNER_CLI_PROFILE_DIFF_H_
