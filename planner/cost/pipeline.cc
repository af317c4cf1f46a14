#include "planner/cost/pipeline.h"

#include <algorithm>
#include <vector>

namespace cairn::planner {

PipelineResult SimulatePipeline(Schedule schedule, int m, const std::vector<StageTimes>& st,
                                const PipelineOptions& opt) {
  const int v = std::max(1, opt.virtual_stages);
  const int chunks = static_cast<int>(st.size());
  const int p = chunks / v;
  PipelineResult r;
  std::vector<std::vector<PipelineOp>> order(p);
  for (int i = 0; i < p; ++i) order[i] = StageSchedule(schedule, p, i, m, v);
  constexpr double kNotYet = -1.0;
  // End times of forward / backward of (model chunk, micro-batch).
  std::vector<std::vector<double>> fend(chunks, std::vector<double>(m, kNotYet));
  std::vector<std::vector<double>> bend(chunks, std::vector<double>(m, kNotYet));
  std::vector<size_t> next(p, 0);
  std::vector<double> free_at(p, 0.0), busy(p, 0.0);
  // Per stage, in time order (only with record_events).
  std::vector<std::vector<PipelineEvent>> events(opt.record_events ? p : 0);
  using Kind = PipelineEvent::Kind;
  auto record = [&](int stage, Kind kind, int chunk, int micro_batch, double start, double end) {
    events[stage].push_back({kind, stage, chunk, micro_batch, start, end});
  };
  size_t remaining = 0;
  for (const auto& o : order) remaining += o.size();
  // Dependencies only point to neighbouring chunks, so repeated sweeps make progress every pass.
  while (remaining > 0) {
    bool progressed = false;
    for (int i = 0; i < p; ++i) {
      while (next[i] < order[i].size()) {
        const PipelineOp op = order[i][next[i]];
        const int g = op.chunk * p + i;
        const int j = op.micro_batch;
        double ready;
        double hop = 0;  // transit of the input, ending at `ready`
        if (op.forward) {
          if (g == 0) {
            ready = 0;
          } else if (fend[g - 1][j] < 0) {
            break;
          } else {
            hop = st[g - 1].hop_s;
            ready = fend[g - 1][j] + hop;
          }
        } else {
          if (g == chunks - 1) {
            ready = fend[g][j];
          } else if (bend[g + 1][j] < 0) {
            break;
          } else {
            hop = st[g].hop_s;
            ready = bend[g + 1][j] + hop;
          }
        }
        const double start = std::max(free_at[i], ready);
        const double end =
            start + opt.op_overhead_s + (op.forward ? st[g].forward_s : st[g].backward_s);
        (op.forward ? fend : bend)[g][j] = end;
        // A blocking send keeps the stage busy for the transfer of its output.
        double sending = 0;
        if (opt.blocking_sends) {
          if (op.forward && g < chunks - 1) sending = st[g].hop_s;
          if (!op.forward && g > 0) sending = st[g - 1].hop_s;
        }
        if (opt.record_events) {
          // The stage idles from free_at to start: the last `hop` seconds of it (at most) the
          // input was in transit, before that it waited for the sender.
          const double transit_from = std::max(free_at[i], start - hop);
          if (transit_from > free_at[i]) record(i, Kind::kWait, -1, -1, free_at[i], transit_from);
          if (start > transit_from) record(i, Kind::kReceive, g, j, transit_from, start);
          record(i, op.forward ? Kind::kForward : Kind::kBackward, g, j, start, end);
          if (sending > 0) record(i, Kind::kSend, g, j, end, end + sending);
        }
        free_at[i] = end + sending;
        busy[i] += end + sending - start;
        ++next[i];
        --remaining;
        progressed = true;
      }
    }
    if (!progressed) break;  // cannot happen for the schedules above; guards against a bad order
  }
  r.stage_end_s.resize(p);
  r.stage_busy_s = busy;
  r.stage_idle_s.resize(p);
  std::vector<double> sync(p, 0.0);
  for (int g = 0; g < chunks; ++g) sync[g % p] += st[g].step_sync_s;
  double busiest = -1;
  for (int i = 0; i < p; ++i) {
    r.stage_end_s[i] = free_at[i] + sync[i];
    r.step_time_s = std::max(r.step_time_s, r.stage_end_s[i]);
    if (busy[i] > busiest) {
      busiest = busy[i];
      r.bottleneck_stage = i;
    }
  }
  for (int i = 0; i < p; ++i) r.stage_idle_s[i] = std::max(0.0, r.step_time_s - busy[i] - sync[i]);
  r.bubble_s = r.stage_idle_s[r.bottleneck_stage];
  if (opt.record_events) {
    for (int i = 0; i < p; ++i) {
      if (sync[i] > 0) record(i, Kind::kSync, -1, -1, free_at[i], r.stage_end_s[i]);
      if (r.step_time_s > r.stage_end_s[i]) {
        record(i, Kind::kWait, -1, -1, r.stage_end_s[i], r.step_time_s);
      }
      r.events.insert(r.events.end(), events[i].begin(), events[i].end());
    }
  }
  return r;
}

}  // namespace cairn::planner
