#include "planner/cost/pipeline.h"

#include <algorithm>
#include <vector>

namespace cairn::planner {
PipelineResult SimulatePipeline(Schedule schedule, int m, const std::vector<StageTimes>& st) {
  const int p = static_cast<int>(st.size());
  PipelineResult r;
  std::vector<std::vector<PipelineOp>> order(p);
  for (int i = 0; i < p; ++i) order[i] = StageSchedule(schedule, p, i, m);
  constexpr double kNotYet = -1.0;
  // End times of forward / backward of (stage, micro-batch).
  std::vector<std::vector<double>> fend(p, std::vector<double>(m, kNotYet));
  std::vector<std::vector<double>> bend(p, std::vector<double>(m, kNotYet));
  std::vector<size_t> next(p, 0);
  std::vector<double> free_at(p, 0.0);
  size_t remaining = static_cast<size_t>(2) * p * m;
  // Dependencies only point to neighbouring stages, so repeated sweeps make progress every pass.
  while (remaining > 0) {
    bool progressed = false;
    for (int i = 0; i < p; ++i) {
      while (next[i] < order[i].size()) {
        const PipelineOp op = order[i][next[i]];
        double ready;
        if (op.forward) {
          if (i == 0) {
            ready = 0;
          } else if (fend[i - 1][op.micro_batch] < 0) {
            break;
          } else {
            ready = fend[i - 1][op.micro_batch] + st[i - 1].hop_s;
          }
        } else {
          if (i == p - 1) {
            ready = fend[i][op.micro_batch];
          } else if (bend[i + 1][op.micro_batch] < 0) {
            break;
          } else {
            ready = bend[i + 1][op.micro_batch] + st[i].hop_s;
          }
        }
        const double start = std::max(free_at[i], ready);
        const double end = start + (op.forward ? st[i].forward_s : st[i].backward_s);
        (op.forward ? fend : bend)[i][op.micro_batch] = end;
        free_at[i] = end;
        ++next[i];
        --remaining;
        progressed = true;
      }
    }
    if (!progressed) break;  // cannot happen for the schedules above; guards against a bad order
  }
  r.stage_end_s.resize(p);
  double busiest = -1;
  for (int i = 0; i < p; ++i) {
    r.stage_end_s[i] = free_at[i] + st[i].step_sync_s;
    r.step_time_s = std::max(r.step_time_s, r.stage_end_s[i]);
    const double busy = m * (st[i].forward_s + st[i].backward_s);
    if (busy > busiest) {
      busiest = busy;
      r.bottleneck_stage = i;
    }
  }
  r.bubble_s = std::max(0.0, r.step_time_s - busiest - st[r.bottleneck_stage].step_sync_s);
  return r;
}

}  // namespace cairn::planner
