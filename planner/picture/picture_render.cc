#include "planner/picture/picture_render.h"

#include <algorithm>
#include <cmath>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "common/status_macros.h"
#include "common/units.h"
#include "planner/catalog/json_io.h"
#include "planner/plan/plan_convert.h"

namespace cairn::planner {
namespace {

// ---- Markup: elements are closed by the writer itself, so every document is balanced.

using Attrs = std::vector<std::pair<std::string, std::string>>;

std::string Escape(const std::string& text) {
  std::string out;
  out.reserve(text.size());
  for (char c : text) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      case '\'': out += "&#39;"; break;
      default: out += c;
    }
  }
  return out;
}

// Coordinates and times in attributes: fixed precision keeps the output stable across runs.
std::string Px(double px) { return absl::StrFormat("%.2f", px); }
std::string Sec(double s) { return absl::StrFormat("%.9g", s); }

class Markup {
 public:
  // <tag attrs> ... Close().
  void Open(const std::string& tag, const Attrs& attrs = {}) {
    StartTag(tag, attrs);
    out_ += ">";
    open_.push_back(tag);
  }
  void Close() {
    absl::StrAppend(&out_, "</", open_.back(), ">\n");
    open_.pop_back();
  }
  // <tag attrs/> (SVG), or <tag attrs><title>tooltip</title></tag> with a tooltip.
  void Leaf(const std::string& tag, const Attrs& attrs, const std::string& tooltip = "") {
    if (tooltip.empty()) {
      StartTag(tag, attrs);
      out_ += "/>\n";
      return;
    }
    Open(tag, attrs);
    Text("title", {}, tooltip);
    Close();
  }
  // <tag attrs>text</tag>.
  void Text(const std::string& tag, const Attrs& attrs, const std::string& text) {
    StartTag(tag, attrs);
    absl::StrAppend(&out_, ">", Escape(text), "</", tag, ">");
    if (tag != "title") out_ += "\n";
  }
  // Trusted markup (a doctype, an HTML void element, a style sheet).
  void Raw(const std::string& text) { out_ += text; }
  std::string Finish() {
    while (!open_.empty()) Close();
    return std::move(out_);
  }

 private:
  void StartTag(const std::string& tag, const Attrs& attrs) {
    absl::StrAppend(&out_, "<", tag);
    for (const auto& [name, value] : attrs) absl::StrAppend(&out_, " ", name, "=\"", Escape(value), "\"");
  }
  std::string out_;
  std::vector<std::string> open_;
};

// ---- Layout (pixels). Rows are one per pipeline stage in every section.

constexpr double kWidthPx = 1200;
constexpr double kLeftPx = 130;    // stage labels
constexpr double kRightPx = 190;   // memory totals
constexpr double kPlotPx = kWidthPx - kLeftPx - kRightPx;
constexpr double kLayerRowPx = 20;
constexpr double kMemoryRowPx = 22;
constexpr double kTimelineRowPx = 26;
constexpr double kBarFraction = 0.8;  // of a row's height
constexpr double kLegendRowPx = 18;
constexpr double kCharPx = 6.2;       // average width of an 11 px sans-serif character

constexpr const char* kStyle = R"(
text { font-family: sans-serif; font-size: 11px; fill: #222; }
text.title { font-size: 16px; font-weight: bold; }
text.heading { font-size: 13px; font-weight: bold; }
text.axis, text.mb-label { font-size: 9px; }
text.mb-label { fill: #fff; pointer-events: none; }
line.axis { stroke: #999; stroke-width: 1; }
.layer { stroke: #fff; stroke-width: 0.5; }
.recompute-mark { fill: url(#recompute-hatch); pointer-events: none; }
.mem-bar.parameters { fill: #4e79a7; } .mem-bar.gradients { fill: #f28e2b; }
.mem-bar.optimizer { fill: #59a14f; } .mem-bar.activations { fill: #edc948; }
.mem-bar.transient { fill: #76b7b2; } .mem-bar.reserved { fill: #bab0ac; }
line.mem-budget { stroke: #c00; stroke-width: 2; stroke-dasharray: 6 3; }
line.mem-bound { stroke: #000; stroke-width: 2; }
.timeline-block.fwd { fill: #6baed6; } .timeline-block.bwd { fill: #2171b5; }
.timeline-block.comm { fill: #e15759; } .timeline-block.comm.p2p { fill: #ff9da7; }
.timeline-block.optimizer { fill: #b07aa1; }
.timeline-block.bubble { fill: #e8e8e8; } .timeline-block.bubble.p2p { fill: #f6c6c6; }
.timeline-block.odd-chunk { fill-opacity: 0.6; }
)";

// The class names of the memory kinds, in stacking order, and their legend labels.
struct MemoryPart {
  const char* kind;
  const char* label;
  int64_t PictureMemory::*bytes;
};
constexpr MemoryPart kMemoryParts[] = {
    {"parameters", "parameters", &PictureMemory::parameter_bytes},
    {"gradients", "gradients", &PictureMemory::gradient_bytes},
    {"optimizer", "optimizer states", &PictureMemory::optimizer_bytes},
    {"activations", "activations (micro-batches in flight)", &PictureMemory::activation_bytes},
    {"transient", "working set + pipeline buffers", &PictureMemory::transient_bytes},
    {"reserved", "reserved (runtime)", &PictureMemory::reserved_bytes},
};

struct LegendEntry {
  std::string swatch_class;   // e.g. "timeline-block fwd"; or empty with a fill
  std::string fill;
  bool hatched = false;
  std::string label;
};

// Entries left to right, wrapping at the right edge; returns the y below the legend.
double DrawLegend(Markup& m, const std::string& id, const std::vector<LegendEntry>& entries,
                  double y) {
  m.Open("g", {{"class", "legend"}, {"id", id}});
  double x = kLeftPx;
  for (const LegendEntry& e : entries) {
    const double w = 18 + kCharPx * e.label.size() + 16;
    if (x + w > kWidthPx - 10 && x > kLeftPx) {
      x = kLeftPx;
      y += kLegendRowPx;
    }
    m.Open("g", {{"class", "legend-entry"}});
    Attrs swatch = {{"x", Px(x)}, {"y", Px(y - 10)}, {"width", "12"}, {"height", "12"}};
    swatch.push_back({"class", absl::StrCat("legend-swatch", e.swatch_class.empty() ? "" : " ",
                                            e.swatch_class)});
    if (!e.fill.empty()) swatch.push_back({"fill", e.fill});
    m.Leaf("rect", swatch);
    if (e.hatched) {
      m.Leaf("rect", {{"class", "recompute-mark"}, {"x", Px(x)}, {"y", Px(y - 10)},
                      {"width", "12"}, {"height", "12"}});
    }
    m.Text("text", {{"x", Px(x + 18)}, {"y", Px(y)}}, e.label);
    m.Close();
    x += w;
  }
  m.Close();
  return y + kLegendRowPx;
}

void StageLabel(Markup& m, const PlanPicture& pic, int stage, double row_y, double row_px) {
  const std::string label = stage == pic.bottleneck_stage && pic.pipeline_degree > 1
                                ? absl::StrCat("stage ", stage, " (bottleneck)")
                                : absl::StrCat("stage ", stage);
  m.Text("text", {{"class", "stage-label"}, {"x", Px(kLeftPx - 8)},
                  {"y", Px(row_y + row_px * 0.5 + 4)}, {"text-anchor", "end"}},
         label);
}

// A step of 1, 2 or 5 times a power of ten giving at most `max_ticks` ticks over [0, span].
double TickStep(double span, int max_ticks) {
  if (span <= 0) return 1;
  const double raw = span / max_ticks;
  const double magnitude = std::pow(10.0, std::floor(std::log10(raw)));
  for (double f : {1.0, 2.0, 5.0, 10.0}) {
    if (f * magnitude >= raw) return f * magnitude;
  }
  return 10 * magnitude;
}

// The unit an axis is labelled in: value / scale, then the suffix.
struct AxisUnit {
  double scale = 1;
  const char* suffix = "";
};

AxisUnit SecondsUnit(double span_s) {
  if (span_s >= 1) return {1, " s"};
  if (span_s >= 1e-3) return {1e-3, " ms"};
  return {1e-6, " us"};
}

AxisUnit BytesUnit(double span_bytes) {
  if (span_bytes >= kGiB) return {kGiB, " GiB"};
  if (span_bytes >= kMiB) return {kMiB, " MiB"};
  return {kKiB, " KiB"};
}

// Ticks and labels under a section: 0 to `span` (in the section's unit, e.g. bytes) over the plot
// width, at round numbers of `unit`.
void DrawAxis(Markup& m, double y, double span, int max_ticks, AxisUnit unit) {
  m.Open("g", {{"class", "axis"}});
  m.Leaf("line", {{"class", "axis"}, {"x1", Px(kLeftPx)}, {"y1", Px(y)},
                  {"x2", Px(kLeftPx + kPlotPx)}, {"y2", Px(y)}});
  const double step = TickStep(span / unit.scale, max_ticks) * unit.scale;
  for (int k = 0; span > 0 && k * step <= span * (1 + 1e-9); ++k) {
    const double x = kLeftPx + kPlotPx * (k * step) / span;
    m.Leaf("line", {{"class", "axis"}, {"x1", Px(x)}, {"y1", Px(y)}, {"x2", Px(x)},
                    {"y2", Px(y + 4)}});
    m.Text("text", {{"class", "axis"}, {"x", Px(x)}, {"y", Px(y + 14)}, {"text-anchor", "middle"}},
           k == 0 ? "0" : absl::StrFormat("%g%s", k * step / unit.scale, unit.suffix));
  }
  m.Close();
}

double DrawLayers(Markup& m, const PlanPicture& pic, double y) {
  m.Text("text", {{"class", "heading"}, {"x", "10"}, {"y", Px(y)}},
         absl::StrCat("Layers by pipeline stage", pic.virtual_stages > 1 ? " (model chunks)" : "",
                      ": colour = strategy, hatched = recomputation"));
  y += 10;
  const double layer_px = kPlotPx / std::max(1, pic.num_layers);
  const double bar_px = kLayerRowPx * kBarFraction;
  const double gap_px = layer_px > 4 ? 1 : 0;
  m.Open("g", {{"id", "layers"}});
  for (int i = 0; i < pic.pipeline_degree; ++i) StageLabel(m, pic, i, y + i * kLayerRowPx, bar_px);
  for (const PictureLayer& l : pic.layers) {
    const PictureStyle& style = pic.styles[l.style];
    const double x = kLeftPx + l.index * layer_px;
    const double top = y + l.stage * kLayerRowPx;
    const std::string tooltip = absl::StrFormat("%s: %s (stage %d, model chunk %d)", l.name,
                                                style.label, l.stage, l.chunk);
    m.Leaf("rect",
           {{"class", "layer"}, {"id", absl::StrCat("layer-", l.index)},
            {"x", Px(x)}, {"y", Px(top)}, {"width", Px(std::max(0.5, layer_px - gap_px))},
            {"height", Px(bar_px)}, {"fill", style.fill},
            {"data-stage", absl::StrCat(l.stage)}, {"data-chunk", absl::StrCat(l.chunk)},
            {"data-strategy", style.label}},
           tooltip);
    if (style.strategy.recompute) {
      m.Leaf("rect", {{"class", "recompute-mark"}, {"x", Px(x)}, {"y", Px(top)},
                      {"width", Px(std::max(0.5, layer_px - gap_px))}, {"height", Px(bar_px)}});
    }
  }
  m.Close();
  y += pic.pipeline_degree * kLayerRowPx;
  // Layer indices: 0 is the embedding, num_layers - 1 the head.
  DrawAxis(m, y, pic.num_layers, 16, AxisUnit{});
  y += 34;
  std::vector<LegendEntry> legend;
  for (const PictureStyle& s : pic.styles) {
    legend.push_back({"", s.fill, s.strategy.recompute,
                      absl::StrCat(s.label, " (", s.num_layers, " layer",
                                   s.num_layers == 1 ? "" : "s", ")")});
  }
  return DrawLegend(m, "layer-legend", legend, y);
}

double DrawMemory(Markup& m, const PlanPicture& pic, double y) {
  m.Text("text", {{"class", "heading"}, {"x", "10"}, {"y", Px(y)}},
         absl::StrCat("Memory of one device per stage at the predicted peak (budget ",
                      FormatBytes(pic.budget_bytes), ")"));
  y += 10;
  int64_t scale_bytes = std::max<int64_t>(pic.budget_bytes, 1);
  for (const PictureMemory& mem : pic.memory) {
    scale_bytes = std::max({scale_bytes, mem.total_bytes, mem.bound_bytes});
  }
  const double px_per_byte = kPlotPx / static_cast<double>(scale_bytes);
  const double bar_px = kMemoryRowPx * kBarFraction;
  m.Open("g", {{"id", "memory"}});
  for (const PictureMemory& mem : pic.memory) {
    const double top = y + mem.stage * kMemoryRowPx;
    StageLabel(m, pic, mem.stage, top, bar_px);
    double x = kLeftPx;
    for (const MemoryPart& part : kMemoryParts) {
      const int64_t bytes = mem.*part.bytes;
      m.Leaf("rect",
             {{"class", absl::StrCat("mem-bar ", part.kind)},
              {"id", absl::StrCat("mem-", mem.stage, "-", part.kind)}, {"x", Px(x)},
              {"y", Px(top)}, {"width", Px(bytes * px_per_byte)}, {"height", Px(bar_px)},
              {"data-stage", absl::StrCat(mem.stage)}, {"data-bytes", absl::StrCat(bytes)}},
             absl::StrFormat("stage %d %s: %s", mem.stage, part.label, FormatBytes(bytes)));
      x += bytes * px_per_byte;
    }
    const double bound_x = kLeftPx + mem.bound_bytes * px_per_byte;
    m.Leaf("line",
           {{"class", "mem-bound"}, {"x1", Px(bound_x)}, {"y1", Px(top - 2)}, {"x2", Px(bound_x)},
            {"y2", Px(top + bar_px + 2)}, {"data-bytes", absl::StrCat(mem.bound_bytes)}},
           absl::StrFormat("stage %d: the search's upper bound %s (feasible when within the "
                           "budget)", mem.stage, FormatBytes(mem.bound_bytes)));
    m.Text("text", {{"class", "mem-total"}, {"x", Px(kLeftPx + kPlotPx + 8)},
                    {"y", Px(top + bar_px * 0.5 + 4)}},
           absl::StrCat(FormatBytes(mem.total_bytes), " (bound ", FormatBytes(mem.bound_bytes),
                        ")"));
  }
  const double budget_x = kLeftPx + pic.budget_bytes * px_per_byte;
  const double bottom = y + pic.pipeline_degree * kMemoryRowPx;
  m.Leaf("line",
         {{"class", "mem-budget"}, {"id", "mem-budget"}, {"x1", Px(budget_x)}, {"y1", Px(y - 4)},
          {"x2", Px(budget_x)}, {"y2", Px(bottom)}, {"data-bytes", absl::StrCat(pic.budget_bytes)}},
         absl::StrCat("budget ", FormatBytes(pic.budget_bytes), " per device"));
  m.Close();
  DrawAxis(m, bottom, static_cast<double>(scale_bytes), 8, BytesUnit(scale_bytes));
  y = bottom + 34;
  std::vector<LegendEntry> legend;
  for (const MemoryPart& part : kMemoryParts) {
    legend.push_back({absl::StrCat("mem-bar ", part.kind), "", false, part.label});
  }
  legend.push_back({"", "#000", false, "search's upper bound"});
  legend.push_back({"", "#c00", false, "budget"});
  return DrawLegend(m, "memory-legend", legend, y);
}

std::string BlockClass(const PictureBlock& b, int pipeline_degree) {
  std::string c = absl::StrCat("timeline-block ", ToString(b.kind));
  if (b.p2p) c += " p2p";
  // Interleaving: every other model chunk of a stage lighter, so the chunks can be told apart.
  if (b.chunk >= 0 && (b.chunk / pipeline_degree) % 2 == 1) c += " odd-chunk";
  return c;
}

double DrawTimeline(Markup& m, const PlanPicture& pic, double y) {
  m.Text("text", {{"class", "heading"}, {"x", "10"}, {"y", Px(y)}},
         absl::StrFormat("One training step (%s, %d micro-batches): %s", ToString(pic.schedule),
                         pic.num_micro_batches, FormatSeconds(pic.step_time_s)));
  y += 10;
  const double px_per_s = pic.step_time_s > 0 ? kPlotPx / pic.step_time_s : 0;
  const double bar_px = kTimelineRowPx * kBarFraction;
  m.Open("g", {{"id", "timeline"}});
  for (int i = 0; i < pic.pipeline_degree; ++i) {
    StageLabel(m, pic, i, y + i * kTimelineRowPx, bar_px);
  }
  int k = 0, stage = -1;
  for (const PictureBlock& b : pic.timeline) {
    k = b.stage == stage ? k + 1 : 0;
    stage = b.stage;
    const double x = kLeftPx + b.start_s * px_per_s;
    const double w = b.duration_s() * px_per_s;
    const double top = y + b.stage * kTimelineRowPx;
    std::string tooltip = absl::StrCat("stage ", b.stage);
    if (b.micro_batch >= 0) absl::StrAppend(&tooltip, ", micro-batch ", b.micro_batch);
    if (b.chunk >= 0 && pic.virtual_stages > 1) absl::StrAppend(&tooltip, ", chunk ", b.chunk);
    absl::StrAppend(&tooltip, ": ", b.detail, ", ", FormatSeconds(b.duration_s()), " from ",
                    FormatSeconds(b.start_s));
    m.Leaf("rect",
           {{"class", BlockClass(b, pic.pipeline_degree)},
            {"id", absl::StrCat("tl-", b.stage, "-", k)}, {"x", Px(x)}, {"y", Px(top)},
            {"width", Px(w)}, {"height", Px(bar_px)}, {"data-stage", absl::StrCat(b.stage)},
            {"data-chunk", absl::StrCat(b.chunk)}, {"data-micro-batch", absl::StrCat(b.micro_batch)},
            {"data-start-s", Sec(b.start_s)}, {"data-duration-s", Sec(b.duration_s())}},
           tooltip);
    const bool op = b.kind == PictureBlockKind::kForward || b.kind == PictureBlockKind::kBackward;
    const std::string number = absl::StrCat(b.micro_batch);
    if (op && w >= kCharPx * number.size() + 4) {
      m.Text("text", {{"class", "mb-label"}, {"x", Px(x + w * 0.5)},
                      {"y", Px(top + bar_px * 0.5 + 3)}, {"text-anchor", "middle"}},
             number);
    }
  }
  m.Close();
  const double bottom = y + pic.pipeline_degree * kTimelineRowPx;
  DrawAxis(m, bottom, pic.step_time_s, 10, SecondsUnit(pic.step_time_s));
  y = bottom + 34;
  const std::vector<LegendEntry> legend = {
      {"timeline-block fwd", "", false, "forward (micro-batch number)"},
      {"timeline-block bwd", "", false, "backward (with recomputation)"},
      {"timeline-block comm", "", false, "exposed communication"},
      {"timeline-block comm p2p", "", false, "blocking send"},
      {"timeline-block optimizer", "", false, "optimizer step"},
      {"timeline-block bubble p2p", "", false, "waiting for a message in transit"},
      {"timeline-block bubble", "", false, "bubble (waiting)"},
  };
  y = DrawLegend(m, "timeline-legend", legend, y);
  if (pic.virtual_stages > 1) {
    m.Text("text", {{"class", "note"}, {"x", Px(kLeftPx)}, {"y", Px(y)}},
           "Lighter blocks: the stage's odd-numbered model chunks.");
    y += kLegendRowPx;
  }
  return y;
}

// The SVG element itself (no XML declaration: the same text is valid inside HTML).
std::string SvgElement(const PlanPicture& pic) {
  Markup body;
  double y = 24;
  body.Text("text", {{"class", "title"}, {"x", "10"}, {"y", Px(y)}}, pic.title);
  y += 20;
  body.Text("text", {{"class", "subtitle"}, {"x", "10"}, {"y", Px(y)}}, pic.subtitle);
  y += 34;
  y = DrawLayers(body, pic, y) + 20;
  y = DrawMemory(body, pic, y) + 20;
  y = DrawTimeline(body, pic, y) + 10;
  Markup m;
  m.Open("svg", {{"xmlns", "http://www.w3.org/2000/svg"},
                 {"id", "plan-picture"},
                 {"width", Px(kWidthPx)},
                 {"height", Px(y)},
                 {"viewBox", absl::StrCat("0 0 ", Px(kWidthPx), " ", Px(y))},
                 {"data-stages", absl::StrCat(pic.pipeline_degree)},
                 {"data-virtual-stages", absl::StrCat(pic.virtual_stages)},
                 {"data-micro-batches", absl::StrCat(pic.num_micro_batches)},
                 {"data-step-time-s", Sec(pic.step_time_s)},
                 {"data-bubble-s", Sec(pic.bubble_s)}});
  m.Text("title", {}, pic.title);
  m.Raw("\n");
  m.Raw(absl::StrCat("<style>", kStyle, "</style>\n"));  // CSS: not escaped
  m.Raw(
      "<defs><pattern id=\"recompute-hatch\" width=\"6\" height=\"6\" "
      "patternUnits=\"userSpaceOnUse\" patternTransform=\"rotate(45)\"><rect width=\"2\" "
      "height=\"6\" fill=\"#000\" fill-opacity=\"0.35\"/></pattern></defs>\n");
  m.Leaf("rect", {{"class", "background"}, {"width", "100%"}, {"height", "100%"},
                  {"fill", "#fff"}});
  m.Raw(body.Finish());
  return m.Finish();
}

void StageTable(Markup& m, const PlanPicture& pic) {
  m.Open("table", {{"id", "stage-table"}, {"class", "stage-table"}});
  m.Open("thead");
  m.Open("tr");
  for (const char* h : {"stage", "layers", "fwd / micro-batch", "bwd / micro-batch", "compute",
                        "exposed comm", "hidden comm", "p2p", "waiting (bubble)", "sync + opt",
                        "busy", "memory peak", "upper bound", "budget"}) {
    m.Text("th", {}, h);
  }
  m.Close();
  m.Close();
  m.Open("tbody");
  for (size_t i = 0; i < pic.stages.size(); ++i) {
    const PictureStageSummary& s = pic.stages[i];
    const PictureMemory& mem = pic.memory[i];
    m.Open("tr", {{"class", "stage-row"}, {"data-stage", absl::StrCat(s.stage)}});
    m.Text("td", {}, s.stage == pic.bottleneck_stage ? absl::StrCat(s.stage, " (bottleneck)")
                                                     : absl::StrCat(s.stage));
    for (const std::string& cell :
         {s.layers, FormatSeconds(s.forward_s), FormatSeconds(s.backward_s),
          FormatSeconds(s.compute_s), FormatSeconds(s.exposed_comm_s),
          FormatSeconds(s.hidden_comm_s), FormatSeconds(s.p2p_s), FormatSeconds(s.waiting_s),
          FormatSeconds(s.sync_s), FormatSeconds(s.busy_s), FormatBytes(mem.total_bytes),
          FormatBytes(mem.bound_bytes), FormatBytes(pic.budget_bytes)}) {
      m.Text("td", {}, cell);
    }
    m.Close();
  }
  m.Close();
  m.Close();
}

}  // namespace

std::string RenderPictureSvg(const PlanPicture& picture) { return SvgElement(picture); }

std::string RenderPictureHtml(const PlanPicture& picture) {
  Markup m;
  m.Raw("<!DOCTYPE html>\n");
  m.Open("html", {{"lang", "en"}});
  m.Open("head");
  m.Raw("<meta charset=\"utf-8\">\n");
  m.Text("title", {}, absl::StrCat("Cairn plan: ", picture.title));
  m.Raw(
         "<style>body { font-family: sans-serif; margin: 16px; } h2 { font-size: 15px; } "
         "table.stage-table { border-collapse: collapse; margin-top: 12px; font-size: 13px; } "
         "table.stage-table th, table.stage-table td { border: 1px solid #ccc; padding: 2px 6px; "
         "text-align: right; } table.stage-table th { background: #f4f4f4; }</style>\n");
  m.Close();
  m.Open("body");
  m.Raw(SvgElement(picture));  // its first lines are the title and subtitle
  m.Text("h2", {}, "Per stage: one step, and the memory of one device");
  StageTable(m, picture);
  m.Text("p", {{"class", "note"}},
         "Exposed comm: TP/SP/Ulysses collectives, data-parallel communication and layout "
         "transitions on the stage's critical path; hidden comm: overlapped with compute; p2p: "
         "point-to-point hops the stage receives (part of its waiting). The upper bound is what "
         "the search judges feasibility on.");
  return m.Finish();
}

absl::Status WritePlanPictures(const PictureFiles& files, const SearchProblem& problem,
                               const PlanSpec& plan, const Evaluation& e, std::ostream& log) {
  if (files.empty()) return absl::OkStatus();
  const CostModel cm(problem);
  CAIRN_ASSIGN_OR_RETURN(const PlanPicture picture, BuildPlanPicture(cm, plan, e));
  if (!files.svg_path.empty()) {
    CAIRN_RETURN_IF_ERROR(WriteTextFile(files.svg_path, RenderPictureSvg(picture)));
    log << "cairn: picture written to " << files.svg_path << "\n";
  }
  if (!files.html_path.empty()) {
    CAIRN_RETURN_IF_ERROR(WriteTextFile(files.html_path, RenderPictureHtml(picture)));
    log << "cairn: picture written to " << files.html_path << "\n";
  }
  return absl::OkStatus();
}

absl::Status WritePlanPictures(const PictureFiles& files, const SearchProblem& problem,
                               const cairn::v1::Plan& plan, std::ostream& log) {
  if (files.empty()) return absl::OkStatus();
  CAIRN_ASSIGN_OR_RETURN(const PlanSpec spec, PlanSpecFromProto(problem, plan));
  const CostModel cm(problem);
  CAIRN_ASSIGN_OR_RETURN(const Evaluation e, Evaluate(cm, spec));
  return WritePlanPictures(files, problem, spec, e, log);
}

}  // namespace cairn::planner
