// common/plan/layout.h — where a layer's activations live on the devices of its stage.
//
// Ranks of a stage are numbered tp-innermost: local rank l has tp_rank = l % t and dp_rank = l / t
// for a layer of model-parallel degree t (strided placement is not executed by the runtime; see
// validate.h). A layer consumes and produces its activations in one layout: the micro-batch split
// over its dp = n / t data-parallel ranks, and, with sequence parallelism or Ulysses, the sequence
// split over its t ranks (otherwise replicated over them). Between two layers of different layouts
// the runtime relocates the activation (forward) and its gradient (backward); the cost model charges
// exactly that movement. Across a pipeline boundary activations travel in the BoundaryLayout, 1/n
// of the micro-batch per device.
//
//   ActLayout a = LayoutOf(strategy, stage_devices);
//   Slice s = SliceOf(a, local_rank, micro_batch, seq_len);   // rows and positions this rank holds
//   Range v = SplitRange(model.vocab, t, tp_rank);               // its vocabulary rows
#ifndef CAIRN_COMMON_PLAN_LAYOUT_H_
#define CAIRN_COMMON_PLAN_LAYOUT_H_

#include <cstdint>

#include "common/plan/plan.h"

namespace cairn::plan {

// Batch split over `dp` ranks; sequence split over `tp` ranks when seq_sharded, else replicated.
struct ActLayout {
  int dp = 1;
  int tp = 1;
  bool seq_sharded = false;
  bool operator==(const ActLayout& o) const {
    return dp == o.dp && tp == o.tp && seq_sharded == o.seq_sharded;
  }
  bool operator!=(const ActLayout& o) const { return !(*this == o); }
};

// The layout a layer under `s` consumes and produces on a stage of `stage_devices` devices.
ActLayout LayoutOf(const Strategy& s, int stage_devices);

// The layout activations cross a pipeline boundary in: the micro-batch split over as many devices
// as divide it (gcd), then over the sequence when it divides. `seq_sharded` is false while tp > 1
// when neither splits far enough: such a stage boundary cannot exist (ValidatePlan refuses it).
ActLayout BoundaryLayout(int stage_devices, int micro_batch, int seq_len);

// The samples [row_begin, row_begin + rows) and positions [pos_begin, pos_begin + positions) of a
// micro-batch of `micro_batch` samples x `seq_len` positions that local rank `local_rank` holds.
struct Slice {
  int64_t row_begin = 0, rows = 0, pos_begin = 0, positions = 0;
  bool Contains(const Slice& o) const;
  int64_t elements() const { return rows * positions; }
};
Slice SliceOf(const ActLayout& layout, int local_rank, int64_t micro_batch, int64_t seq_len);
Slice Intersect(const Slice& a, const Slice& b);

// How many ranks' pieces a rank gathers when activations move from layout `from` to `to`: 1 when
// what it needs is a slice of what it holds (no communication), else the all-gather group size.
int RelocationGroupSize(const ActLayout& from, const ActLayout& to);

// [begin, end) of part `part` when `total` items are split as evenly as possible into `parts`
// contiguous parts (the first total % parts parts get one more). Vocabulary rows under
// vocab-parallel embeddings and heads are split this way, so any vocabulary size works at any
// degree <= the vocabulary; the largest part, ceil(total / parts), is what the cost model charges.
struct Range {
  int64_t begin = 0, end = 0;
  int64_t size() const { return end - begin; }
};
Range SplitRange(int64_t total, int parts, int part);

// The vocabulary-parallel degree of an embedding or head under `s`: t for Megatron TP (with or
// without SP), 1 otherwise (Ulysses keeps the whole table).
inline int VocabDegree(const Strategy& s) { return s.splits_weights() ? s.tp : 1; }

}  // namespace cairn::plan

#endif  // CAIRN_COMMON_PLAN_LAYOUT_H_
