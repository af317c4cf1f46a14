// planner/picture/picture_render.h — draws a PlanPicture (plan_picture.h) as a self-contained SVG
// or HTML page, and writes the files `cairn plan/evaluate --svg FILE --html FILE` ask for.
//
// The SVG is plain SVG 1.1 (no script, no external reference): three sections, one row per
// pipeline stage in each, and a legend under each section.
//   - Layers: one rectangle per layer at its position in the model, in its stage's row, filled
//     with its strategy's colour; recomputed layers hatched.
//   - Memory: one device per stage at its predicted peak, stacked by kind, with the search's upper
//     bound marked and the budget as a vertical line.
//   - Timeline: one step as the pipeline simulator placed it; the micro-batch number on blocks wide
//     enough to hold it.
// The HTML page embeds the same SVG and adds a table per stage (times and memory).
//
// Every drawn element carries classes and ids that tests and style sheets can rely on:
//   svg#plan-picture                         the root (data-stages, data-micro-batches, ...)
//   g#layers > rect.layer#layer-<index>      data-stage, data-chunk, data-strategy
//   rect.recompute-mark                      the hatching over a recomputed layer
//   g#memory > rect.mem-bar.<kind>#mem-<stage>-<kind>   kind: parameters, gradients, optimizer,
//                                            activations, transient, reserved; data-bytes
//   line.mem-bound, line.mem-budget
//   g#timeline > rect.timeline-block.<fwd|bwd|comm|optimizer|bubble>[.p2p]#tl-<stage>-<k>
//                                            data-stage, data-chunk, data-micro-batch,
//                                            data-start-s, data-duration-s
//   g.legend#layer-legend / #memory-legend / #timeline-legend, each entry a g.legend-entry
//   table#stage-table > tbody > tr.stage-row (HTML only)
// Each element has a <title> child: the browser shows it as a tooltip.
//
//   absl::StatusOr<PlanPicture> pic = BuildPlanPicture(cm, plan, e);
//   std::string svg = RenderPictureSvg(*pic);
//   // or, for the CLI: build, render and write in one call
//   CAIRN_RETURN_IF_ERROR(WritePlanPictures({.svg_path = "plan.svg"}, problem, plan, e, std::cerr));
#ifndef CAIRN_PLANNER_PICTURE_PICTURE_RENDER_H_
#define CAIRN_PLANNER_PICTURE_PICTURE_RENDER_H_

#include <ostream>
#include <string>

#include "absl/status/status.h"
#include "planner/picture/plan_picture.h"
#include "proto/cairn/v1/plan.pb.h"

namespace cairn::planner {

// The picture as an SVG document (UTF-8; text from the plan is escaped).
std::string RenderPictureSvg(const PlanPicture& picture);

// An HTML5 page: a heading, the SVG inline and the per-stage table.
std::string RenderPictureHtml(const PlanPicture& picture);

// The files a command was asked to write (the values of --svg and --html); empty: not asked.
struct PictureFiles {
  std::string svg_path;
  std::string html_path;
  bool empty() const { return svg_path.empty() && html_path.empty(); }
};

// Builds the picture of `plan`, evaluated as `e` with `problem`'s cost model, and writes the files
// in `files`; one line per file written on `log` ("cairn: picture written to FILE"). Does nothing
// when `files` is empty.
// Errors: those of BuildPlanPicture; FailedPrecondition "cannot write FILE: REASON" (missing
// folder, permissions, a directory), DataLoss when a write fails.
absl::Status WritePlanPictures(const PictureFiles& files, const SearchProblem& problem,
                               const PlanSpec& plan, const Evaluation& e, std::ostream& log);

// The same for a cairn.v1.Plan (a stored plan, `cairn plans show`): its strategies are scored
// again with `problem`'s cost model, so the picture matches the plan's own prediction when
// `problem` has the hardware it was planned on. Errors: also InvalidArgument when the plan does
// not fit `problem` (PlanSpecFromProto, Evaluate).
absl::Status WritePlanPictures(const PictureFiles& files, const SearchProblem& problem,
                               const cairn::v1::Plan& plan, std::ostream& log);

}  // namespace cairn::planner

#endif  // CAIRN_PLANNER_PICTURE_PICTURE_RENDER_H_
