#include "runtime/engine/params.h"

#include <algorithm>
#include <cmath>
#include <thread>
#include <vector>

#include "common/hash.h"
#include "common/plan/layout.h"
#include "runtime/compute/rng.h"

namespace cairn::runtime {

using plan::LayerKind;
using plan::ParallelMode;

uint64_t TensorId(int layer_index, const std::string& name) {
  return Fnv1a64(name) ^ (static_cast<uint64_t>(layer_index) * 0x9e3779b97f4a7c15ULL);
}

int LayerParams::Add(ParamTensor t) {
  t.offset = size_;
  size_ += t.count();
  tensors_.push_back(std::move(t));
  return static_cast<int>(tensors_.size()) - 1;
}

LayerParams LayerParams::Build(const plan::ModelDims& m, const LayerPlace& place,
                               bool owns_lm_head) {
  LayerParams p;
  ParamSlots& slot = p.slots_;
  const bool ulysses = place.strategy.mode == ParallelMode::kUlysses;
  const int t = ulysses ? 1 : place.tp;      // weight split
  const int r = ulysses ? 0 : place.tp_rank;
  const bool sp = place.tp > 1 && place.strategy.mode == ParallelMode::kTensorSequence;
  const int64_t C = m.hidden, F = m.ffn_hidden, H = m.num_heads, KV = m.num_kv_heads;
  const int64_t D = C / H;
  const float std = 0.02f;
  const float resid_std = 0.02f / std::sqrt(2.0f * m.num_layers);
  auto whole = [&](const std::string& name, int64_t rows, int64_t cols, float init_std,
                   float value, bool decay, bool partial) {
    ParamTensor x;
    x.name = name;
    x.rows = x.global_rows = rows;
    x.cols = x.global_cols = cols;
    x.tensor_id = TensorId(place.index, name);
    x.init_std = init_std;
    x.init_value = value;
    x.decay = decay;
    x.tp_replicated = !ulysses && place.tp > 1;
    x.tp_partial = x.tp_replicated && partial;
    return p.Add(x);
  };
  auto rows_of = [&](const std::string& name, int64_t grows, int64_t cols, int64_t begin,
                     int64_t count, float init_std, bool decay, uint64_t id, int kv_share = 1) {
    ParamTensor x;
    x.name = name;
    x.global_rows = grows;
    x.global_cols = cols;
    x.rows = count;
    x.cols = cols;
    x.row_begin = begin;
    x.tensor_id = id;
    x.init_std = init_std;
    x.decay = decay;
    x.kv_share = kv_share;
    return p.Add(x);
  };
  auto cols_of = [&](const std::string& name, int64_t rows, int64_t gcols, int64_t begin,
                     int64_t count, float init_std) {
    ParamTensor x;
    x.name = name;
    x.global_rows = rows;
    x.global_cols = gcols;
    x.rows = rows;
    x.cols = count;
    x.col_begin = begin;
    x.tensor_id = TensorId(place.index, name);
    x.init_std = init_std;
    x.decay = true;
    return p.Add(x);
  };
  auto norm = [&](const std::string& prefix, int* w, int* b) {
    *w = whole(prefix + "_w", 1, C, 0, 1.0f, false, sp);
    if (!m.rms_norm) *b = whole(prefix + "_b", 1, C, 0, 0.0f, false, sp);
  };
  // Vocabulary rows of this rank (vocab-parallel; any vocabulary size: plan::SplitRange).
  const plan::Range vocab = plan::SplitRange(m.vocab, t, r);
  switch (place.kind) {
    case LayerKind::kEmbedding: {
      slot.wte = rows_of("wte", m.vocab, C, vocab.begin, vocab.size(), std, true,
                         TensorId(0, "wte"));
      // Positions are added by TP rank 0 only under vocab-parallel: partial on the others.
      if (!m.rope) slot.wpe = whole("wpe", m.max_seq_len, C, std, 0, true, true);
      break;
    }
    case LayerKind::kBlock: {
      const int64_t h_loc = H / t, h_begin = r * h_loc;
      const int64_t group = H / KV;
      const int64_t kv_begin = h_begin / group, kv_end = (h_begin + h_loc - 1) / group + 1;
      const int kv_share = (!ulysses && place.tp > KV) ? static_cast<int>(place.tp / KV) : 1;
      const int64_t kv_rows = (kv_end - kv_begin) * D;
      norm("norm1", &slot.norm1_w, &slot.norm1_b);
      slot.wq = rows_of("wq", H * D, C, h_begin * D, h_loc * D, std, true,
                        TensorId(place.index, "wq"));
      slot.wk = rows_of("wk", KV * D, C, kv_begin * D, kv_rows, std, true,
                        TensorId(place.index, "wk"), kv_share);
      slot.wv = rows_of("wv", KV * D, C, kv_begin * D, kv_rows, std, true,
                        TensorId(place.index, "wv"), kv_share);
      if (m.bias) {
        slot.bq = rows_of("bq", H * D, 1, h_begin * D, h_loc * D, 0, false,
                          TensorId(place.index, "bq"));
        slot.bk = rows_of("bk", KV * D, 1, kv_begin * D, kv_rows, 0, false,
                          TensorId(place.index, "bk"), kv_share);
        slot.bv = rows_of("bv", KV * D, 1, kv_begin * D, kv_rows, 0, false,
                          TensorId(place.index, "bv"), kv_share);
      }
      slot.wo = cols_of("wo", C, H * D, h_begin * D, h_loc * D, resid_std);
      // Row-parallel biases are added by TP rank 0 only (before the reduction): partial elsewhere.
      if (m.bias) slot.bo = whole("bo", 1, C, 0, 0, false, true);
      norm("norm2", &slot.norm2_w, &slot.norm2_b);
      const int64_t f_loc = F / t;
      if (m.swiglu) {
        slot.w_gate = rows_of("w_gate", F, C, r * f_loc, f_loc, std, true,
                              TensorId(place.index, "w_gate"));
      }
      slot.w_up = rows_of("w_up", F, C, r * f_loc, f_loc, std, true, TensorId(place.index, "w_up"));
      if (m.bias) {
        slot.b_up = rows_of("b_up", F, 1, r * f_loc, f_loc, 0, false,
                            TensorId(place.index, "b_up"));
      }
      slot.w_down = cols_of("w_down", C, F, r * f_loc, f_loc, resid_std);
      if (m.bias) slot.b_down = whole("b_down", 1, C, 0, 0, false, true);
      break;
    }
    case LayerKind::kHead: {
      norm("norm_f", &slot.norm_f_w, &slot.norm_f_b);
      if (owns_lm_head) {
        // A tied head's copy starts from the embedding's values.
        const uint64_t id =
            m.tied_embeddings ? TensorId(0, "wte") : TensorId(place.index, "lm_head");
        slot.lm_head = rows_of("lm_head", m.vocab, C, vocab.begin, vocab.size(), std, true, id);
      }
      break;
    }
  }
  return p;
}

void LayerParams::Initialize(uint64_t seed, float* flat) const {
  // Every element is a pure function of (seed, tensor, index), so the elements split over threads
  // freely and the result does not depend on the split. One thread computes ~20 M values per second
  // (Philox + Box-Muller in double): a 128K-vocabulary embedding of 4096 columns takes ~25 s alone,
  // so large layers use every core.
  constexpr int64_t kPerThread = int64_t{1} << 20;
  const int64_t total = size_;
  const int threads = static_cast<int>(std::clamp<int64_t>(
      std::min<int64_t>(total / kPerThread, std::thread::hardware_concurrency()), 1, 64));
  auto fill = [&](int64_t begin, int64_t end) {  // elements [begin, end) of the flat buffer
    for (const ParamTensor& t : tensors_) {
      const int64_t lo = std::max(begin, t.offset), hi = std::min(end, t.offset + t.count());
      float* out = flat + t.offset;
      for (int64_t i = lo - t.offset; i < hi - t.offset; ++i) {
        out[i] = t.init_std > 0 ? InitValue(seed, t.tensor_id, t.GlobalIndex(i), t.init_std)
                                : t.init_value;
      }
    }
  };
  if (threads == 1) {
    fill(0, total);
    return;
  }
  std::vector<std::thread> pool;
  const int64_t chunk = (total + threads - 1) / threads;
  for (int k = 0; k < threads; ++k) {
    const int64_t begin = k * chunk, end = std::min(total, begin + chunk);
    if (begin < end) pool.emplace_back(fill, begin, end);
  }
  for (std::thread& th : pool) th.join();
}

}  // namespace cairn::runtime
