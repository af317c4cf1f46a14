#include "planner/picture/plan_picture.h"

#include <algorithm>
#include <cmath>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/units.h"

namespace cairn::planner {
namespace {

// Tableau 10: distinct at a glance and legible for the common colour-vision deficiencies.
constexpr const char* kStylePalette[] = {"#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f",
                                         "#edc948", "#b07aa1", "#ff9da7", "#9c755f", "#bab0ac"};
constexpr int kPaletteSize = sizeof(kStylePalette) / sizeof(kStylePalette[0]);

// Colours past the palette: hues a golden angle apart, so neighbours in the legend differ.
std::string StyleFill(int style) {
  if (style < kPaletteSize) return kStylePalette[style];
  const double hue = std::fmod((style - kPaletteSize) * 137.508, 360.0);
  return absl::StrFormat("hsl(%.0f, 55%%, 55%%)", hue);
}

std::string LayerName(int index, int num_blocks) {
  switch (KindOf(index, num_blocks)) {
    case LayerKind::kEmbedding: return "embedding";
    case LayerKind::kHead: return "head";
    case LayerKind::kBlock: break;
  }
  return absl::StrCat("block ", index);
}

void AddLayers(const PlanSpec& plan, PlanPicture* pic) {
  const int num_blocks = static_cast<int>(plan.layers.size()) - 2;
  for (int index = 0; index < static_cast<int>(plan.layers.size()); ++index) {
    const Strategy& s = plan.layers[index];
    int style = 0;
    while (style < static_cast<int>(pic->styles.size()) && pic->styles[style].strategy != s) {
      ++style;
    }
    if (style == static_cast<int>(pic->styles.size())) {
      pic->styles.push_back({s, Describe(s), StyleFill(style), 0});
    }
    ++pic->styles[style].num_layers;
    PictureLayer layer;
    layer.index = index;
    layer.name = LayerName(index, num_blocks);
    layer.chunk = plan.ChunkOf(index);
    layer.stage = plan.ChunkStage(layer.chunk);
    layer.style = style;
    pic->layers.push_back(std::move(layer));
  }
}

void AddMemory(const Evaluation& e, PlanPicture* pic) {
  for (size_t i = 0; i < e.stages.size(); ++i) {
    const StageCost& s = e.stages[i];
    PictureMemory m;
    m.stage = static_cast<int>(i);
    m.parameter_bytes = s.param_bytes;
    m.gradient_bytes = s.grad_bytes;
    m.optimizer_bytes = s.optimizer_bytes;
    m.activation_bytes = s.activation_bytes;
    m.transient_bytes = s.transient_bytes;
    m.reserved_bytes = s.reserved_bytes;
    m.total_bytes = s.total_bytes;
    m.bound_bytes = s.bound_bytes;
    pic->memory.push_back(m);
  }
}

// An operation of the simulation as compute followed by its exposed communication.
void AddOperation(const PipelineEvent& ev, const ChunkCost& chunk, PlanPicture* pic) {
  const bool forward = ev.kind == PipelineEvent::Kind::kForward;
  const double compute_s =
      std::min(ev.duration_s(), forward ? chunk.forward_compute_s : chunk.backward_compute_s);
  PictureBlock b;
  b.kind = forward ? PictureBlockKind::kForward : PictureBlockKind::kBackward;
  b.detail = forward ? "forward" : "backward";
  b.stage = ev.stage;
  b.chunk = ev.chunk;
  b.micro_batch = ev.micro_batch;
  b.start_s = ev.start_s;
  b.end_s = ev.start_s + compute_s;
  pic->timeline.push_back(b);
  if (ev.end_s > b.end_s) {
    b.kind = PictureBlockKind::kComm;
    b.detail = absl::StrCat(forward ? "forward" : "backward",
                            ": exposed TP/SP/Ulysses and ZeRO communication, layout transitions");
    b.start_s = b.end_s;
    b.end_s = ev.end_s;
    pic->timeline.push_back(b);
  }
}

// The stage's sync: its exposed data-parallel communication (step_sync_s less the optimizer),
// then the optimizer step.
void AddSync(const PipelineEvent& ev, const StageCost& stage, PlanPicture* pic) {
  const double optimizer_s = std::min(ev.duration_s(), stage.optimizer_s);
  PictureBlock b;
  b.stage = ev.stage;
  b.start_s = ev.start_s;
  b.end_s = ev.end_s - optimizer_s;
  if (b.end_s > b.start_s) {
    b.kind = PictureBlockKind::kComm;
    b.detail = "after the last backward: gradient sync and parameter gather (exposed)";
    pic->timeline.push_back(b);
  }
  if (optimizer_s > 0) {
    b.kind = PictureBlockKind::kOptimizer;
    b.detail = "optimizer step";
    b.start_s = b.end_s;
    b.end_s = ev.end_s;
    pic->timeline.push_back(b);
  }
}

void AddTimeline(const CostModel& cm, const PlanSpec& plan, const Evaluation& e,
                 PlanPicture* pic) {
  const PipelineResult sim = SimulatePlanPipeline(cm.problem(), plan, e.chunks,
                                                  /*record_events=*/true);
  using Kind = PipelineEvent::Kind;
  for (const PipelineEvent& ev : sim.events) {
    PictureBlock b;
    b.stage = ev.stage;
    b.chunk = ev.chunk;
    b.micro_batch = ev.micro_batch;
    b.start_s = ev.start_s;
    b.end_s = ev.end_s;
    switch (ev.kind) {
      case Kind::kForward:
      case Kind::kBackward:
        AddOperation(ev, e.chunks[ev.chunk], pic);
        continue;
      case Kind::kSync:
        AddSync(ev, e.stages[ev.stage], pic);
        continue;
      case Kind::kSend:
        b.kind = PictureBlockKind::kComm;
        b.p2p = true;
        b.detail = "blocking point-to-point send";
        break;
      case Kind::kReceive:
        b.kind = PictureBlockKind::kBubble;
        b.p2p = true;
        b.detail = "waiting for the input in transit (point-to-point)";
        break;
      case Kind::kWait:
        b.kind = PictureBlockKind::kBubble;
        b.detail = "waiting (pipeline bubble)";
        break;
    }
    pic->timeline.push_back(std::move(b));
  }
}

void AddStageSummaries(const PlanSpec& plan, const Evaluation& e, PlanPicture* pic) {
  const int p = plan.pipeline_degree();
  for (int i = 0; i < p; ++i) {
    const StageCost& s = e.stages[i];
    PictureStageSummary sum;
    sum.stage = i;
    for (int c : s.chunks) {
      const ChunkCost& cc = e.chunks[c];
      absl::StrAppend(&sum.layers, sum.layers.empty() ? "" : ", ", cc.first_layer, "-",
                      cc.first_layer + cc.num_layers - 1);
    }
    sum.forward_s = s.times.forward_s;
    sum.backward_s = s.times.backward_s;
    sum.compute_s = s.compute_s;
    sum.exposed_comm_s = s.tp_comm_s + s.dp_comm_s + s.transition_s;
    sum.hidden_comm_s = s.dp_comm_hidden_s + s.tp_comm_hidden_s;
    sum.p2p_s = s.p2p_s;
    sum.waiting_s = e.pipeline.stage_idle_s[i];
    sum.sync_s = s.times.step_sync_s;
    sum.busy_s = e.pipeline.stage_busy_s[i];
    pic->stages.push_back(std::move(sum));
  }
}

}  // namespace

const char* ToString(PictureBlockKind kind) {
  switch (kind) {
    case PictureBlockKind::kForward: return "fwd";
    case PictureBlockKind::kBackward: return "bwd";
    case PictureBlockKind::kComm: return "comm";
    case PictureBlockKind::kOptimizer: return "optimizer";
    case PictureBlockKind::kBubble: return "bubble";
  }
  return "?";
}

absl::StatusOr<PlanPicture> BuildPlanPicture(const CostModel& cm, const PlanSpec& plan,
                                             const Evaluation& e) {
  const SearchProblem& pb = cm.problem();
  const int p = plan.pipeline_degree();
  if (static_cast<int>(e.stages.size()) != p ||
      static_cast<int>(e.chunks.size()) != plan.num_chunks() ||
      static_cast<int>(e.pipeline.stage_idle_s.size()) != p ||
      static_cast<int>(plan.layers.size()) != pb.model.num_layers + 2) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "the evaluation (%d stages, %d chunks) is not of this plan (%d stages, %d chunks)",
        e.stages.size(), e.chunks.size(), p, plan.num_chunks()));
  }
  if (!e.valid) {
    return absl::FailedPreconditionError(absl::StrCat(
        "no picture of an invalid plan: ", e.violations.empty() ? "" : e.violations.front()));
  }
  PlanPicture pic;
  pic.title = absl::StrFormat("%s on %d x %s (%d devices), global batch %d, seq %d",
                              pb.model.name, pb.hardware.num_nodes, pb.hardware.name,
                              pb.hardware.num_devices(), plan.global_batch, pb.seq_len);
  pic.num_layers = static_cast<int>(plan.layers.size());
  pic.pipeline_degree = p;
  pic.virtual_stages = std::max(1, plan.virtual_stages);
  pic.num_micro_batches = plan.num_micro_batches;
  pic.schedule = plan.schedule;
  pic.step_time_s = e.step_time_s;
  pic.bubble_s = e.bubble_s;
  pic.bottleneck_stage = e.pipeline.bottleneck_stage;
  pic.feasible = e.feasible;
  pic.budget_bytes = e.budget_bytes;
  // "search: 2 stages x 8 devices, 1f1b, 8 micro-batches of 8 samples; step 1.234 s, ..."
  std::string shape = absl::StrFormat("%d stage%s x %d devices, %s", p, p > 1 ? "s" : "",
                                      pb.hardware.num_devices() / p, ToString(plan.schedule));
  if (pic.virtual_stages > 1) absl::StrAppend(&shape, " (", pic.virtual_stages, " chunks/stage)");
  pic.subtitle = absl::StrFormat(
      "%s%s, %d micro-batches of %d samples; step %s, MFU %.1f%%, bubble %s (stage %d)%s",
      plan.origin.empty() ? "" : plan.origin + ": ", shape, plan.num_micro_batches,
      plan.micro_batch(), FormatSeconds(e.step_time_s), 100.0 * e.mfu, FormatSeconds(e.bubble_s),
      e.pipeline.bottleneck_stage, e.feasible ? "" : "; does not fit in memory");
  AddLayers(plan, &pic);
  AddMemory(e, &pic);
  AddTimeline(cm, plan, e, &pic);
  AddStageSummaries(plan, e, &pic);
  return pic;
}

}  // namespace cairn::planner
