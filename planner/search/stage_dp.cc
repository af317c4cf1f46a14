#include "planner/search/stage_dp.h"

#include <algorithm>
#include <cstdint>
#include <limits>
#include <memory>
#include <vector>

namespace cairn::planner {
namespace {

constexpr float kInf = std::numeric_limits<float>::infinity();

// DP table of one step: objective f and busy time x per (memory units v, column), row-major in v.
// f(v, c) = best objective of the layers so far, the last one using option column c, with at most
// v units of memory. Monotone non-increasing in v because the initial table is 0 for every v.
// f, x and pred are left uninitialised where nothing reads them (x and pred where f is infinite),
// so a new table costs no fill of its (U + 1) x width cells.
struct Table {
  int width = 0;
  std::unique_ptr<float[]> f, x;
  std::vector<int> layout;       // per column
  std::vector<int> option;       // per column: option index (-1 = virtual start)
  std::vector<int> units;        // per column: memory units of the option
  std::unique_ptr<uint16_t[]> pred;  // per cell: column of the previous table
  int first_row = 0;             // rows below hold no finite value
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
  // The same as the DP adds it, rounded to float once: m x relocation (objective) and the
  // relocation itself (busy time), [from][to] with row kNone zero.
  std::vector<float> trans_obj(static_cast<size_t>(K + 1) * K, 0.0f);
  std::vector<float> trans_busy(static_cast<size_t>(K + 1) * K, 0.0f);
  for (int a = 0; a < K; ++a) {
    for (int b = 0; b < K; ++b) {
      trans_obj[static_cast<size_t>(a) * K + b] = static_cast<float>(m * T(a, b));
      trans_busy[static_cast<size_t>(a) * K + b] = static_cast<float>(T(a, b));
    }
  }
  const int64_t base_quantum = std::max<int64_t>(1, in.quantum_bytes);
  auto stopped = [&] {
    if (in.cancelled == nullptr || !in.cancelled->load(std::memory_order_relaxed)) return false;
    out.cancelled = true;
    return true;
  };

  // Exact memory of an assignment: persistent bytes add up, transient buffers take the maximum.
  auto fits = [&](const std::vector<const DpOption*>& opts) {
    int64_t persistent = 0, transient = 0;
    for (const DpOption* o : opts) {
      persistent += o->persistent_bytes;
      transient = std::max(transient, o->transient_bytes);
    }
    return persistent + transient <= in.budget_bytes;
  };
  // Passes: first the memory-free optimum (kept for every n where it happens to fit: no
  // memory-limited pass can beat it); then, per transient cap from the largest down, a memory-free
  // probe restricted to the cap (a lower bound: the pass is skipped when it cannot beat what is
  // already known for any n) and the memory-limited pass itself.
  enum class Mode { kFree, kProbe, kReal };
  // Options the DP can never prefer: another option of the same layout is no worse in this DP's
  // objective, persistent and transient memory (the busy time is only reported, not optimised).
  auto undominated = [&](const std::vector<DpOption>& list) {
    std::vector<bool> keep(list.size(), true);
    auto objective = [&](const DpOption& o) { return m * o.busy_s + in.sync_weight * o.sync_s; };
    for (size_t i = 0; i < list.size(); ++i) {
      for (size_t j = 0; j < list.size() && keep[i]; ++j) {
        if (i == j || !keep[j]) continue;
        const DpOption& a = list[j];
        const DpOption& b = list[i];
        const bool no_worse = a.layout == b.layout && objective(a) <= objective(b) &&
                              a.persistent_bytes <= b.persistent_bytes &&
                              a.transient_bytes <= b.transient_bytes;
        const bool strictly = objective(a) < objective(b) ||
                              a.persistent_bytes < b.persistent_bytes ||
                              a.transient_bytes < b.transient_bytes || j < i;
        if (no_worse && strictly) keep[i] = false;
      }
    }
    return keep;
  };
  const std::vector<bool> keep_emb = undominated(in.embedding);
  const std::vector<bool> keep_blk = undominated(in.block);
  const std::vector<bool> keep_head = undominated(in.head);
  std::vector<bool> solved(in.max_blocks + 1, false);
  std::vector<double> probe(in.max_blocks + 1);
  std::vector<std::pair<Mode, int64_t>> passes = {{Mode::kFree, -1}};
  std::vector<int64_t> caps = TransientCaps(in);
  for (auto it = caps.rbegin(); it != caps.rend(); ++it) {
    passes.push_back({Mode::kProbe, *it});
    passes.push_back({Mode::kReal, *it});
  }
  for (size_t pi = 0; pi < passes.size(); ++pi) {
    if (stopped()) return out;
    const Mode mode = passes[pi].first;
    const int64_t cap = passes[pi].second;
    const bool memory_free = mode != Mode::kReal;
    if (mode == Mode::kProbe) {
      std::fill(probe.begin(), probe.end(), std::numeric_limits<double>::infinity());
    }
    if (mode == Mode::kReal) {
      bool useful = false;
      for (int n = in.min_blocks; n <= in.max_blocks; ++n) {
        const StageDpSolution& known = out.by_blocks[n];
        if (solved[n]) continue;
        if (probe[n] < std::numeric_limits<double>::infinity() &&
            (!known.feasible || probe[n] < known.objective)) {
          useful = true;
        }
      }
      if (!useful) continue;
    }
    const int64_t room = memory_free ? 0 : in.budget_bytes - cap;
    if (room < 0) continue;
    // Memory units of this pass: at most 2^22, and few enough that the backtracking tables of
    // every layer of the stage fit max_table_bytes (see the header).
    const int64_t tables_count = 2 + static_cast<int64_t>(in.max_blocks);
    const int64_t width = std::max<size_t>({size_t{1}, in.embedding.size(), in.block.size(),
                                            in.head.size()});
    const int64_t max_units = std::max<int64_t>(
        1, std::min<int64_t>(int64_t{1} << 22,
                             in.max_table_bytes /
                                     (tables_count * width * int64_t{sizeof(uint16_t)}) -
                                 1));
    int64_t q = base_quantum;
    if (!memory_free && room / q > max_units) q = room / max_units + 1;
    out.largest_quantum_bytes = std::max(out.largest_quantum_bytes, q);
    const int U = memory_free ? 0 : static_cast<int>(std::min<int64_t>(room / q, max_units));
    // Rounded up; anything above the pass's U counts as U + 1 (does not fit).
    auto units_of = [&](int64_t bytes) {
      return memory_free ? 0
                         : static_cast<int>(std::min<int64_t>((bytes + q - 1) / q, int64_t{U} + 1));
    };
    auto filter = [&](const std::vector<DpOption>& list, const std::vector<bool>& keep) {
      std::vector<int> idx;
      for (int i = 0; i < static_cast<int>(list.size()); ++i) {
        if (!keep[i]) continue;
        if (mode == Mode::kFree ||
            (list[i].transient_bytes <= cap && units_of(list[i].persistent_bytes) <= U &&
             list[i].persistent_bytes + list[i].transient_bytes <= in.budget_bytes)) {
          idx.push_back(i);
        }
      }
      return idx;
    };
    const std::vector<int> emb = filter(in.embedding, keep_emb);
    const std::vector<int> blk = filter(in.block, keep_blk);
    const std::vector<int> head = filter(in.head, keep_head);
    if ((in.has_embedding && emb.empty()) || (in.has_head && head.empty())) continue;

    std::vector<Table> tables;
    {
      Table start;
      start.width = 1;
      start.f.reset(new float[U + 1]);
      start.x.reset(new float[U + 1]);
      std::fill(start.f.get(), start.f.get() + U + 1, 0.0f);
      std::fill(start.x.get(), start.x.get() + U + 1, 0.0f);
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
      Table& prev = tables.back();
      // Best previous column per layout, then the cheapest layout to come from: O(width + K^2).
      std::vector<float> bl(K + 1), blx(K + 1);
      std::vector<uint16_t> blarg(K + 1);
      for (int v = 0; v < prev.first_row; ++v) {
        std::fill(&into[static_cast<size_t>(v) * K], &into[static_cast<size_t>(v + 1) * K], kInf);
      }
      std::vector<int> live;  // layouts with a finite best, in order
      live.reserve(K + 1);
      for (int v = prev.first_row; v <= U; ++v) {
        if (stopped()) return;
        const float* fp = &prev.f[static_cast<size_t>(v) * prev.width];
        const float* xp = &prev.x[static_cast<size_t>(v) * prev.width];
        // More memory often changes nothing (the table is flat in v over long runs): a row equal
        // to the one below gives the same relocations, so copy them instead of recomputing.
        bool same = v > prev.first_row;
        for (int j = 0; same && j < prev.width; ++j) {
          same = fp[j] == fp[j - prev.width] && (fp[j] == kInf || xp[j] == xp[j - prev.width]);
        }
        if (same) {
          const size_t row = static_cast<size_t>(v) * K;
          std::copy(&into[row - K], &into[row], &into[row]);
          std::copy(&into_x[row - K], &into_x[row], &into_x[row]);
          std::copy(&into_arg[row - K], &into_arg[row], &into_arg[row]);
          continue;
        }
        std::fill(bl.begin(), bl.end(), kInf);
        for (int j = 0; j < prev.width; ++j) {
          const int gp = prev.layout[j];
          if (fp[j] < bl[gp]) {
            bl[gp] = fp[j];
            blx[gp] = xp[j];
            blarg[gp] = static_cast<uint16_t>(j);
          }
        }
        live.clear();
        for (int gp = 0; gp <= K; ++gp) {
          if (bl[gp] != kInf) live.push_back(gp);
        }
        const float* t_obj = trans_obj.data();
        const float* t_busy = trans_busy.data();
        float* row_f = &into[static_cast<size_t>(v) * K];
        float* row_x = &into_x[static_cast<size_t>(v) * K];
        uint16_t* row_a = &into_arg[static_cast<size_t>(v) * K];
        for (int g = 0; g < K; ++g) {
          float best = kInf, bx = kInf;
          uint16_t arg = 0;
          for (int gp : live) {
            const size_t at = static_cast<size_t>(gp) * K + g;
            const float val = bl[gp] + t_obj[at];
            if (val < best) {
              best = val;
              bx = blx[gp] + t_busy[at];
              arg = blarg[gp];
            }
          }
          row_f[g] = best;
          row_x[g] = bx;
          row_a[g] = arg;
        }
      }
      Table cur;
      cur.width = static_cast<int>(idx.size());
      cur.option = idx;
      std::vector<float> obj(cur.width), busy(cur.width);
      for (int c = 0; c < cur.width; ++c) {
        const DpOption& o = list[idx[c]];
        cur.layout.push_back(o.layout);
        cur.units.push_back(units_of(o.persistent_bytes));
        obj[c] = static_cast<float>(m * o.busy_s + in.sync_weight * o.sync_s);
        busy[c] = static_cast<float>(o.busy_s);
      }
      const size_t cells = static_cast<size_t>(U + 1) * cur.width;
      cur.f.reset(new float[cells]);
      cur.x.reset(new float[cells]);
      cur.pred.reset(new uint16_t[cells]);
      const int* units = cur.units.data();
      const int* layout = cur.layout.data();
      cur.first_row = U + 1;
      for (int c = 0; c < cur.width; ++c) {
        cur.first_row = std::min(cur.first_row, prev.first_row + units[c]);
      }
      std::fill(cur.f.get(), cur.f.get() + static_cast<size_t>(cur.first_row) * cur.width, kInf);
      // Raw pointers: the stores below cannot alias the vectors' internals, so the compiler need
      // not reload them per cell.
      const float* into_f = into.data();
      const float* into_b = into_x.data();
      const uint16_t* into_a = into_arg.data();
      const float* obj_p = obj.data();
      const float* busy_p = busy.data();
      const int width = cur.width;
      const size_t k_layouts = static_cast<size_t>(K);
      for (int v = cur.first_row; v <= U; ++v) {
        if (stopped()) return;
        float* f = &cur.f[static_cast<size_t>(v) * width];
        float* x = &cur.x[static_cast<size_t>(v) * width];
        uint16_t* pr = &cur.pred[static_cast<size_t>(v) * width];
        for (int c = 0; c < width; ++c) {
          const int from = v - units[c];
          if (from < 0) {
            f[c] = kInf;
            continue;
          }
          // Where into[src] is infinite, so is f (obj is finite): x and pred are then never read.
          const size_t src = static_cast<size_t>(from) * k_layouts + layout[c];
          f[c] = into_f[src] + obj_p[c];
          x[c] = into_b[src] + busy_p[c];
          pr[c] = into_a[src];
        }
      }
      out.cells += static_cast<int64_t>(cells);
      // Only the newest table's values are read again; earlier tables keep what backtracking needs.
      tables.back().f.reset();
      tables.back().x.reset();
      tables.push_back(std::move(cur));
    };

    // Walks back from (table t, column c, units v) to the strategies of the stage.
    std::vector<const DpOption*> picked;
    auto reconstruct = [&](int t, int c, int v, const std::vector<const std::vector<DpOption>*>& lists) {
      std::vector<Strategy> layers(t);
      picked.assign(t, nullptr);
      for (int k = t; k >= 1; --k) {
        const Table& tb = tables[k];
        layers[k - 1] = (*lists[k])[tb.option[c]].strategy;
        picked[k - 1] = &(*lists[k])[tb.option[c]];
        const int pc = tb.pred[static_cast<size_t>(v) * tb.width + c];
        v -= tb.units[c];
        c = pc;
      }
      return layers;
    };
    std::vector<const std::vector<DpOption>*> lists = {nullptr};

    // Offers the best assignment ending at the last table (after `n` blocks) as a solution for n.
    auto read_out = [&](int n) {
      if (solved[n]) return;
      const Table& last = tables.back();
      const int t = static_cast<int>(tables.size()) - 1;
      double best = std::numeric_limits<double>::infinity(), best_busy = 0;
      int best_j = -1, best_v = 0;
      const DpOption* best_head = nullptr;
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
            if (val < best) {
              best = val;
              best_busy = last.x[at] + tr + h.busy_s;
              best_j = j;
              best_v = v;
              best_head = &h;
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
          if (val < best) {
            best = val;
            best_busy = last.x[at] + tr;
            best_j = j;
            best_v = U;
          }
        }
      }
      if (best_j < 0) return;
      if (mode == Mode::kProbe) {
        probe[n] = best;
        return;
      }
      StageDpSolution& known = out.by_blocks[n];
      if (mode == Mode::kReal && known.feasible && known.objective <= best) return;
      StageDpSolution sol;
      sol.feasible = true;
      sol.objective = best;
      sol.busy_s = best_busy;
      sol.layers = reconstruct(t, best_j, best_v, lists);
      if (best_head) {
        sol.layers.push_back(best_head->strategy);
        picked.push_back(best_head);
      }
      if (mode == Mode::kFree) {
        if (!fits(picked)) return;
        solved[n] = true;
      }
      known = std::move(sol);
    };

    if (in.has_embedding) {
      advance(in.embedding, emb);
      if (out.cancelled) return out;
      lists.push_back(&in.embedding);
    }
    if (in.min_blocks == 0) read_out(0);
    for (int n = 1; n <= in.max_blocks; ++n) {
      if (blk.empty()) break;
      advance(in.block, blk);
      if (out.cancelled) return out;
      lists.push_back(&in.block);
      if (n >= in.min_blocks) read_out(n);
    }
  }
  return out;
}

}  // namespace cairn::planner
