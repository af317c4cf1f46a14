#include "common/plan/schedule.h"

#include <algorithm>
#include <map>

namespace cairn::plan {
namespace {

std::vector<PipelineOp> Interleaved(int p, int stage, int m, int v) {
  std::vector<PipelineOp> ops;
  const int total = m * v;
  ops.reserve(2 * static_cast<size_t>(std::max(0, total)));
  const int group = p * v;
  auto micro = [&](int k) { return (k / group) * p + k % p; };
  auto forward = [&](int k) { return PipelineOp{true, micro(k), (k % group) / p}; };
  auto backward = [&](int k) { return PipelineOp{false, micro(k), v - 1 - (k % group) / p}; };
  int warmup = total;
  if (m != p) warmup = std::min(total, 2 * (p - stage - 1) + (v - 1) * p);
  int f = 0, b = 0;
  for (; f < warmup; ++f) ops.push_back(forward(f));
  while (f < total) {
    ops.push_back(forward(f++));
    ops.push_back(backward(b++));
  }
  while (b < total) ops.push_back(backward(b++));
  return ops;
}

}  // namespace

std::vector<PipelineOp> StageSchedule(Schedule schedule, int p, int stage, int m, int v) {
  if (schedule == Schedule::kInterleaved1F1B) return Interleaved(p, stage, m, std::max(1, v));
  std::vector<PipelineOp> ops;
  ops.reserve(2 * static_cast<size_t>(std::max(0, m)));
  if (schedule == Schedule::kGPipe) {
    for (int j = 0; j < m; ++j) ops.push_back({true, j, 0});
    for (int j = 0; j < m; ++j) ops.push_back({false, j, 0});
    return ops;
  }
  const int warmup = std::min(p - stage - 1, m);
  int f = 0, b = 0;
  for (; f < warmup; ++f) ops.push_back({true, f, 0});
  while (f < m) {
    ops.push_back({true, f++, 0});
    ops.push_back({false, b++, 0});
  }
  while (b < m) ops.push_back({false, b++, 0});
  return ops;
}

std::vector<int> InFlightPerChunk(Schedule schedule, int p, int stage, int m, int v) {
  v = std::max(1, v);
  std::vector<int> live(v, 0), peak(v, 0);
  for (const PipelineOp& op : StageSchedule(schedule, p, stage, m, v)) {
    if (op.forward) {
      peak[op.chunk] = std::max(peak[op.chunk], ++live[op.chunk]);
    } else {
      --live[op.chunk];
    }
  }
  return peak;
}

int InFlightMicroBatches(Schedule schedule, int p, int stage, int m, int v) {
  v = std::max(1, v);
  // Per micro-batch: chunks whose activations are alive.
  std::vector<int> chunks_alive(std::max(0, m), 0);
  int alive = 0, peak = 0;
  for (const PipelineOp& op : StageSchedule(schedule, p, stage, m, v)) {
    int& c = chunks_alive[op.micro_batch];
    if (op.forward) {
      if (c++ == 0) peak = std::max(peak, ++alive);
    } else if (--c == 0) {
      --alive;
    }
  }
  return peak;
}

std::vector<std::vector<std::vector<SentMessage>>> AllSendReleases(Schedule schedule, int p,
                                                                   int m, int v) {
  v = std::max(1, v);
  const int chunks = p * v;
  std::vector<std::vector<PipelineOp>> order(p);
  for (int s = 0; s < p; ++s) order[s] = StageSchedule(schedule, p, s, m, v);
  // Messages are numbered (direction, sending model chunk, micro-batch) -> index; for each, the
  // (stage, operation) that produces and the one that consumes it.
  const size_t count = 2 * static_cast<size_t>(chunks) * m;
  auto index = [&](bool forward, int g, int j) {
    return (static_cast<size_t>(forward ? 0 : 1) * chunks + g) * m + j;
  };
  struct At {
    int stage = -1, op = -1;
  };
  std::vector<At> produced(count), consumed(count);
  for (int s = 0; s < p; ++s) {
    for (int k = 0; k < static_cast<int>(order[s].size()); ++k) {
      const PipelineOp& op = order[s][k];
      const int g = op.chunk * p + s;  // model chunk
      const int j = op.micro_batch;
      if (op.forward) {
        if (g > 0) consumed[index(true, g - 1, j)] = {s, k};
        if (g < chunks - 1) produced[index(true, g, j)] = {s, k};
      } else {
        if (g < chunks - 1) consumed[index(false, g + 1, j)] = {s, k};
        if (g > 0) produced[index(false, g, j)] = {s, k};
      }
    }
  }
  // Per stage and peer: this stage's inputs from that peer as (producing operation on the peer,
  // receiving operation here), sorted by the former, with suffix minima of the latter: the first
  // of our operations whose input the peer produced at or after a given operation of its own.
  struct Inputs {
    std::vector<int> theirs, first_ours;
  };
  std::vector<std::map<int, Inputs>> inputs(p);
  {
    std::vector<std::map<int, std::vector<std::pair<int, int>>>> raw(p);
    for (size_t i = 0; i < count; ++i) {
      if (consumed[i].stage < 0 || produced[i].stage < 0) continue;
      raw[consumed[i].stage][produced[i].stage].push_back({produced[i].op, consumed[i].op});
    }
    for (int s = 0; s < p; ++s) {
      for (auto& [peer, list] : raw[s]) {
        std::sort(list.begin(), list.end());
        Inputs& in = inputs[s][peer];
        in.theirs.resize(list.size());
        in.first_ours.resize(list.size());
        int best = -1;
        for (size_t i = list.size(); i-- > 0;) {
          best = best < 0 ? list[i].second : std::min(best, list[i].second);
          in.theirs[i] = list[i].first;
          in.first_ours[i] = best;
        }
      }
    }
  }
  std::vector<std::vector<std::vector<SentMessage>>> out(p);
  for (int s = 0; s < p; ++s) out[s].resize(order[s].size());
  for (size_t i = 0; i < count; ++i) {
    const At from = produced[i], to = consumed[i];
    if (from.stage < 0 || to.stage < 0) continue;
    const auto it = inputs[from.stage].find(to.stage);
    if (it == inputs[from.stage].end()) continue;
    const Inputs& in = it->second;
    const size_t pos = std::lower_bound(in.theirs.begin(), in.theirs.end(), to.op) -
                       in.theirs.begin();
    if (pos == in.theirs.size()) continue;  // known only at the end of the step
    const bool forward = i < static_cast<size_t>(chunks) * m;
    const int g = static_cast<int>((i / m) % chunks);
    out[from.stage][in.first_ours[pos]].push_back(
        {forward, g / p, static_cast<int>(i % m)});
  }
  return out;
}

std::vector<std::vector<SentMessage>> SendReleases(Schedule schedule, int p, int stage, int m,
                                                   int v) {
  return AllSendReleases(schedule, p, m, v)[stage];
}

std::vector<int> PeakPendingSendsPerStage(Schedule schedule, int p, int m, int v) {
  v = std::max(1, v);
  const std::vector<std::vector<std::vector<SentMessage>>> releases =
      AllSendReleases(schedule, p, m, v);
  const int chunks = p * v;
  std::vector<int> out(p, 0);
  for (int stage = 0; stage < p; ++stage) {
    const std::vector<PipelineOp> ops = StageSchedule(schedule, p, stage, m, v);
    int pending = 0, peak = 0;
    for (size_t k = 0; k < ops.size(); ++k) {
      pending -= static_cast<int>(releases[stage][k].size());
      peak = std::max(peak, pending);
      const int g = ops[k].chunk * p + stage;
      if (ops[k].forward ? g < chunks - 1 : g > 0) ++pending;  // this operation's output
    }
    out[stage] = peak;
  }
  return out;
}

int PeakPendingSends(Schedule schedule, int p, int stage, int m, int v) {
  return PeakPendingSendsPerStage(schedule, p, m, v)[stage];
}

}  // namespace cairn::plan
