#include "common/plan/schedule.h"

#include <algorithm>

namespace cairn::plan {

std::vector<PipelineOp> StageSchedule(Schedule schedule, int p, int stage, int m) {
  std::vector<PipelineOp> ops;
  ops.reserve(2 * static_cast<size_t>(std::max(0, m)));
  if (schedule == Schedule::kGPipe) {
    for (int j = 0; j < m; ++j) ops.push_back({true, j});
    for (int j = 0; j < m; ++j) ops.push_back({false, j});
    return ops;
  }
  const int warmup = std::min(p - stage - 1, m);
  int f = 0, b = 0;
  for (; f < warmup; ++f) ops.push_back({true, f});
  while (f < m) {
    ops.push_back({true, f++});
    ops.push_back({false, b++});
  }
  while (b < m) ops.push_back({false, b++});
  return ops;
}

int InFlightMicroBatches(Schedule schedule, int pipeline_degree, int stage, int num_micro_batches) {
  if (schedule == Schedule::kGPipe) return num_micro_batches;
  return std::min(pipeline_degree - stage, num_micro_batches);
}

}  // namespace cairn::plan
