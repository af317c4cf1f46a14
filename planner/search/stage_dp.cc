#include "planner/search/stage_dp.h"

#include <algorithm>
#include <cstdint>
#include <limits>
#include <vector>

namespace cairn::planner {
namespace {

constexpr float kInf = std::numeric_limits<float>::infinity();

// DP table of one step: objective f and busy time x per (memory units v, column), row-major in v.
// f(v, c) = best objective of the layers so far, the last one using option column c, with at most
// v units of memory. Monotone non-increasing in v because the initial table is 0 for every v.
struct Table {
  int width = 0;
  std::vector<float> f, x;
  std::vector<int> layout;       // per column
  std::vector<int> option;       // per column: option index (-1 = virtual start)
  std::vector<int> units;        // per column: memory units of the option
  std::vector<uint16_t> pred;    // per cell: column of the previous table
};

// Picks at most in.max_transient_caps transient caps, evenly over the distinct sizes (always
// including the largest, so every option is reachable under some cap).
std::vector<int64_t> TransientCaps(const StageDpInput& in) {
  std::vector<int64_t> caps;
  for (const auto* list : {&in.embedding, &in.block, &in.head}) {
    for (const DpOption& o : *list) caps.push_back(o.transient_bytes);
  }
  std::sort(caps.begin(), caps.end());
  caps.erase(std::unique(caps.begin(), caps.end()), caps.end());
  const size_t k = static_cast<size_t>(std::max(1, in.max_transient_caps));
  if (caps.size() > k) {
    std::vector<int64_t> pick;
    for (size_t i = 1; i <= k; ++i) pick.push_back(caps[i * caps.size() / k - 1]);
    pick.erase(std::unique(pick.begin(), pick.end()), pick.end());
    caps = pick;
  }
  return caps;
}

}  // namespace

StageDpOutput SolveStage(const CostModel& cm, const StageDpInput& in) {
  StageDpOutput out;
  out.by_blocks.resize(in.max_blocks + 1);
  const int m = in.ctx.num_micro_batches;
  const int K = static_cast<int>(in.layouts.size());
  const int kNone = K;  // layout of the virtual start before an embedding: no transition
  // Relocation time (forward + backward, one micro-batch), [from][to]; row kNone is zero.
  std::vector<double> trans(static_cast<size_t>(K + 1) * K, 0.0);
  for (int a = 0; a < K; ++a) {
    for (int b = 0; b < K; ++b) {
      trans[a * K + b] = cm.Transition(in.layouts[a], in.layouts[b], in.ctx).total();
    }
  }
  auto T = [&](int a, int b) { return trans[static_cast<size_t>(a) * K + b]; };
  const int64_t q = std::max<int64_t>(1, in.quantum_bytes);
  auto units_of = [&](int64_t bytes) { return static_cast<int>((bytes + q - 1) / q); };

  for (int64_t cap : TransientCaps(in)) {
    const int64_t room = in.budget_bytes - cap;
    if (room < 0) continue;
    const int U = static_cast<int>(std::min<int64_t>(room / q, 1 << 22));
    auto filter = [&](const std::vector<DpOption>& list) {
      std::vector<int> idx;
      for (int i = 0; i < static_cast<int>(list.size()); ++i) {
        if (list[i].transient_bytes <= cap && units_of(list[i].persistent_bytes) <= U) {
          idx.push_back(i);
        }
      }
      return idx;
    };
    const std::vector<int> emb = filter(in.embedding);
    const std::vector<int> blk = filter(in.block);
    const std::vector<int> head = filter(in.head);
    if ((in.has_embedding && emb.empty()) || (in.has_head && head.empty())) continue;

    std::vector<Table> tables;
    {
      Table start;
      start.width = 1;
      start.f.assign(U + 1, 0.0f);
      start.x.assign(U + 1, 0.0f);
      start.layout = {in.has_embedding ? kNone : in.boundary_layout};
      start.option = {-1};
      start.units = {0};
      tables.push_back(std::move(start));
    }
    // into[v * K + g]: best f of the previous table at v, plus the relocation into layout g.
    std::vector<float> into(static_cast<size_t>(U + 1) * K);
    std::vector<float> into_x(static_cast<size_t>(U + 1) * K);
    std::vector<uint16_t> into_arg(static_cast<size_t>(U + 1) * K);
    auto advance = [&](const std::vector<DpOption>& list, const std::vector<int>& idx) {
      const Table& prev = tables.back();
      // Best previous column per layout, then the cheapest layout to come from: O(width + K^2).
      std::vector<float> bl(K + 1), blx(K + 1);
      std::vector<uint16_t> blarg(K + 1);
      for (int v = 0; v <= U; ++v) {
        const float* fp = &prev.f[static_cast<size_t>(v) * prev.width];
        const float* xp = &prev.x[static_cast<size_t>(v) * prev.width];
        std::fill(bl.begin(), bl.end(), kInf);
        for (int j = 0; j < prev.width; ++j) {
          const int gp = prev.layout[j];
          if (fp[j] < bl[gp]) {
            bl[gp] = fp[j];
            blx[gp] = xp[j];
            blarg[gp] = static_cast<uint16_t>(j);
          }
        }
        for (int g = 0; g < K; ++g) {
          float best = kInf, bx = kInf;
          uint16_t arg = 0;
          for (int gp = 0; gp <= K; ++gp) {
            if (bl[gp] == kInf) continue;
            const double t = gp == kNone ? 0.0 : T(gp, g);
            const float val = bl[gp] + static_cast<float>(m * t);
            if (val < best) {
              best = val;
              bx = blx[gp] + static_cast<float>(t);
              arg = blarg[gp];
            }
          }
          into[static_cast<size_t>(v) * K + g] = best;
          into_x[static_cast<size_t>(v) * K + g] = bx;
          into_arg[static_cast<size_t>(v) * K + g] = arg;
        }
      }
      Table cur;
      cur.width = static_cast<int>(idx.size());
      cur.option = idx;
      for (int c : idx) {
        cur.layout.push_back(list[c].layout);
        cur.units.push_back(units_of(list[c].persistent_bytes));
      }
      const size_t cells = static_cast<size_t>(U + 1) * cur.width;
      cur.f.assign(cells, kInf);
      cur.x.assign(cells, kInf);
      cur.pred.assign(cells, 0);
      for (int v = 0; v <= U; ++v) {
        for (int c = 0; c < cur.width; ++c) {
          const int from = v - cur.units[c];
          if (from < 0) continue;
          const size_t src = static_cast<size_t>(from) * K + cur.layout[c];
          if (into[src] == kInf) continue;
          const DpOption& o = list[idx[c]];
          const size_t at = static_cast<size_t>(v) * cur.width + c;
          cur.f[at] = into[src] + static_cast<float>(m * o.busy_s + in.sync_weight * o.sync_s);
          cur.x[at] = into_x[src] + static_cast<float>(o.busy_s);
          cur.pred[at] = into_arg[src];
        }
      }
      out.cells += static_cast<int64_t>(cells);
      tables.push_back(std::move(cur));
    };

    // Walks back from (table t, column c, units v) to the strategies of the stage.
    auto reconstruct = [&](int t, int c, int v, const std::vector<const std::vector<DpOption>*>& lists) {
      std::vector<Strategy> layers(t);
      for (int k = t; k >= 1; --k) {
        const Table& tb = tables[k];
        layers[k - 1] = (*lists[k])[tb.option[c]].strategy;
        const int pc = tb.pred[static_cast<size_t>(v) * tb.width + c];
        v -= tb.units[c];
        c = pc;
      }
      return layers;
    };
    std::vector<const std::vector<DpOption>*> lists = {nullptr};

    // Offers the assignment ending at the last table (after `n` blocks) as a solution for n.
    auto read_out = [&](int n) {
      const Table& last = tables.back();
      const int t = static_cast<int>(tables.size()) - 1;
      StageDpSolution& sol = out.by_blocks[n];
      if (in.has_head) {
        for (int hc : head) {
          const DpOption& h = in.head[hc];
          const int v = U - units_of(h.persistent_bytes);
          if (v < 0) continue;
          for (int j = 0; j < last.width; ++j) {
            const size_t at = static_cast<size_t>(v) * last.width + j;
            if (last.f[at] == kInf) continue;
            const int gp = last.layout[j];
            const double tr = gp == kNone ? 0.0 : T(gp, h.layout);
            const double val = last.f[at] + m * tr + m * h.busy_s + in.sync_weight * h.sync_s;
            if (!sol.feasible || val < sol.objective) {
              sol.feasible = true;
              sol.objective = val;
              sol.busy_s = last.x[at] + tr + h.busy_s;
              sol.layers = reconstruct(t, j, v, lists);
              if (t == 0) sol.layers.clear();
              sol.layers.push_back(h.strategy);
            }
          }
        }
      } else {
        if (t == 0) return;  // a stage needs at least one layer
        for (int j = 0; j < last.width; ++j) {
          const size_t at = static_cast<size_t>(U) * last.width + j;
          if (last.f[at] == kInf) continue;
          const double tr = T(last.layout[j], in.boundary_layout);
          const double val = last.f[at] + m * tr;
          if (!sol.feasible || val < sol.objective) {
            sol.feasible = true;
            sol.objective = val;
            sol.busy_s = last.x[at] + tr;
            sol.layers = reconstruct(t, j, U, lists);
          }
        }
      }
    };

    if (in.has_embedding) {
      advance(in.embedding, emb);
      lists.push_back(&in.embedding);
    }
    if (in.min_blocks == 0) read_out(0);
    for (int n = 1; n <= in.max_blocks; ++n) {
      if (blk.empty()) break;
      advance(in.block, blk);
      lists.push_back(&in.block);
      if (n >= in.min_blocks) read_out(n);
    }
  }
  return out;
}

}  // namespace cairn::planner
