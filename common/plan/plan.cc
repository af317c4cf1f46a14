#include "common/plan/plan.h"

#include "absl/strings/str_cat.h"

namespace cairn::plan {

int PlanSpec::FirstLayer(int chunk) const {
  int first = 0;
  for (int i = 0; i < chunk && i < num_chunks(); ++i) first += stage_layers[i];
  return first;
}

int PlanSpec::ChunkOf(int index) const {
  int first = 0;
  for (int i = 0; i < num_chunks(); ++i) {
    if (index >= first && index < first + stage_layers[i]) return i;
    first += stage_layers[i];
  }
  return -1;
}

int PlanSpec::StageOf(int index) const {
  const int chunk = ChunkOf(index);
  return chunk < 0 || pipeline_degree() < 1 ? -1 : ChunkStage(chunk);
}

const char* ToString(ParallelMode mode) {
  switch (mode) {
    case ParallelMode::kTensor: return "tp";
    case ParallelMode::kTensorSequence: return "tp+sp";
    case ParallelMode::kUlysses: return "ulysses";
  }
  return "?";
}

const char* ToString(DpMode mode) {
  switch (mode) {
    case DpMode::kDdp: return "ddp";
    case DpMode::kZero1: return "zero1";
    case DpMode::kZero2: return "zero2";
    case DpMode::kZero3: return "zero3";
  }
  return "?";
}

const char* ToString(Schedule schedule) {
  switch (schedule) {
    case Schedule::k1F1B: return "1f1b";
    case Schedule::kGPipe: return "gpipe";
    case Schedule::kInterleaved1F1B: return "interleaved";
  }
  return "?";
}

const char* ToString(LayerKind kind) {
  switch (kind) {
    case LayerKind::kEmbedding: return "embedding";
    case LayerKind::kBlock: return "block";
    case LayerKind::kHead: return "head";
  }
  return "?";
}

std::string Describe(const Strategy& s) {
  std::string out;
  if (s.tp == 1) {
    out = "tp=1";
  } else {
    out = absl::StrCat(s.mode == ParallelMode::kUlysses ? "ulysses=" : "tp=", s.tp,
                       s.mode == ParallelMode::kTensorSequence ? " sp" : "",
                       s.tp_consecutive ? "" : " strided");
  }
  absl::StrAppend(&out, " ", ToString(s.dp));
  if (s.recompute) absl::StrAppend(&out, " recompute");
  return out;
}

}  // namespace cairn::plan
