#include "common/plan/layout.h"

#include <algorithm>
#include <cmath>
#include <numeric>

namespace cairn::plan {

ActLayout LayoutOf(const Strategy& s, int stage_devices) {
  ActLayout l;
  l.tp = std::max(1, s.tp);
  l.dp = std::max(1, stage_devices / l.tp);
  l.seq_sharded = s.seq_sharded();
  return l;
}

ActLayout BoundaryLayout(int stage_devices, int micro_batch, int seq_len) {
  ActLayout l;
  l.dp = std::gcd(std::max(1, stage_devices), std::max(1, micro_batch));
  l.tp = std::max(1, stage_devices) / l.dp;
  l.seq_sharded = l.tp > 1 && seq_len % l.tp == 0;
  return l;
}

bool Slice::Contains(const Slice& o) const {
  return o.row_begin >= row_begin && o.row_begin + o.rows <= row_begin + rows &&
         o.pos_begin >= pos_begin && o.pos_begin + o.positions <= pos_begin + positions;
}

Slice SliceOf(const ActLayout& l, int local, int64_t micro_batch, int64_t seq_len) {
  Slice s;
  s.rows = micro_batch / l.dp;
  s.row_begin = (local / l.tp) * s.rows;
  s.positions = l.seq_sharded ? seq_len / l.tp : seq_len;
  s.pos_begin = l.seq_sharded ? (local % l.tp) * s.positions : 0;
  return s;
}

Slice Intersect(const Slice& a, const Slice& b) {
  Slice r;
  r.row_begin = std::max(a.row_begin, b.row_begin);
  r.pos_begin = std::max(a.pos_begin, b.pos_begin);
  r.rows = std::max<int64_t>(0, std::min(a.row_begin + a.rows, b.row_begin + b.rows) - r.row_begin);
  r.positions = std::max<int64_t>(
      0, std::min(a.pos_begin + a.positions, b.pos_begin + b.positions) - r.pos_begin);
  return r;
}

int RelocationGroupSize(const ActLayout& from, const ActLayout& to) {
  // Splits are nested (tp-innermost ranks, power-of-two-free but dividing degrees), so comparing
  // rank 0's share in both layouts is enough: it needs `need` and holds `have` of the micro-batch.
  const double a_batch = 1.0 / from.dp, b_batch = 1.0 / to.dp;
  const double a_seq = from.seq_sharded ? 1.0 / from.tp : 1.0;
  const double b_seq = to.seq_sharded ? 1.0 / to.tp : 1.0;
  const double need = b_batch * b_seq;
  const double have = std::min(a_batch, b_batch) * std::min(a_seq, b_seq);
  const double ratio = need / have;
  if (ratio < 1.0 + 1e-9) return 1;
  return static_cast<int>(std::lround(ratio));
}

Range SplitRange(int64_t total, int parts, int part) {
  parts = std::max(1, parts);
  const int64_t base = total / parts, extra = total % parts;
  Range r;
  r.begin = part * base + std::min<int64_t>(part, extra);
  r.end = r.begin + base + (part < extra ? 1 : 0);
  return r;
}

}  // namespace cairn::plan
