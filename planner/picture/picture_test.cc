// Tests of planner/picture: the picture's numbers against the evaluation they come from, and the
// SVG/HTML structure (balanced tags, one element per layer, stage and block, escaping, files).
// tests/plan_picture_browser_test.sh loads the CLI's files in a real browser.
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "common/testing/status_matchers.h"
#include "gtest/gtest.h"
#include "planner/cost/evaluate.h"
#include "planner/cost/test_problems.h"
#include "planner/picture/picture_render.h"
#include "planner/picture/plan_picture.h"

namespace cairn::planner {
namespace {

// 8 blocks on 2 nodes of 4 devices, batch 16, seq 512, budget 80 GiB (test_problems.h).
SearchProblem Problem() {
  return testing::SmallProblem(/*num_layers=*/8, /*devices_per_node=*/4, /*num_nodes=*/2,
                               /*global_batch=*/16, /*seq_len=*/512, int64_t{80} << 30);
}

// Two stages of 4 devices, 4 micro-batches; blocks 1-4 and the embedding and head TP 2 with SP
// and ZeRO-1, blocks 5-8 the same with recomputation: two strategies.
PlanSpec TwoStagePlan(Schedule schedule = Schedule::k1F1B) {
  PlanSpec plan;
  plan.global_batch = 16;
  plan.num_micro_batches = 4;
  plan.schedule = schedule;
  plan.stage_layers = {5, 5};
  const Strategy s{.tp = 2, .mode = ParallelMode::kTensorSequence, .dp = DpMode::kZero1};
  plan.layers.assign(10, s);
  for (int i = 5; i <= 8; ++i) plan.layers[i].recompute = true;
  plan.origin = "test";
  return plan;
}

// Interleaved: 2 stages x 2 chunks, chunk c on stage c mod 2.
PlanSpec InterleavedPlan() {
  PlanSpec plan = TwoStagePlan(Schedule::kInterleaved1F1B);
  plan.virtual_stages = 2;
  plan.stage_layers = {3, 2, 2, 3};
  return plan;
}

struct Built {
  Evaluation e;
  PlanPicture pic;
};

Built Build(const SearchProblem& pb, const PlanSpec& plan) {
  const CostModel cm(pb);
  absl::StatusOr<Evaluation> e = Evaluate(cm, plan);
  EXPECT_TRUE(e.ok()) << e.status();
  EXPECT_TRUE(e->valid);
  absl::StatusOr<PlanPicture> pic = BuildPlanPicture(cm, plan, *e);
  EXPECT_TRUE(pic.ok()) << pic.status();
  return {*e, *pic};
}

int Count(const std::string& text, const std::string& needle) {
  int n = 0;
  for (size_t at = text.find(needle); at != std::string::npos; at = text.find(needle, at + 1)) ++n;
  return n;
}

// Empty when every element is closed in order; else what is wrong. Skips <!...> and <?...?>;
// HTML void elements (meta) need no closing tag.
std::string CheckBalanced(const std::string& doc) {
  std::vector<std::string> open;
  size_t i = 0;
  while ((i = doc.find('<', i)) != std::string::npos) {
    const size_t end = doc.find('>', i);
    if (end == std::string::npos) return "unterminated tag at " + std::to_string(i);
    const std::string tag = doc.substr(i + 1, end - i - 1);
    i = end + 1;
    if (tag.empty() || tag[0] == '!' || tag[0] == '?') continue;
    if (tag[0] == '/') {
      if (open.empty() || open.back() != tag.substr(1)) {
        return "</" + tag.substr(1) + "> closes " + (open.empty() ? "nothing" : open.back());
      }
      open.pop_back();
      continue;
    }
    if (tag.back() == '/') continue;
    const std::string name = tag.substr(0, tag.find_first_of(" \n"));
    if (name == "meta") continue;
    open.push_back(name);
  }
  return open.empty() ? "" : "unclosed <" + open.back() + ">";
}

TEST(PlanPictureTest, LayersAndStrategies) {
  const SearchProblem pb = Problem();
  const PlanSpec plan = TwoStagePlan();
  const Built b = Build(pb, plan);
  ASSERT_EQ(b.pic.layers.size(), 10u);
  ASSERT_EQ(b.pic.styles.size(), 2u);
  EXPECT_EQ(b.pic.styles[0].label, Describe(plan.layers[0]));
  EXPECT_EQ(b.pic.styles[0].num_layers, 6);  // embedding, blocks 1-4, head
  EXPECT_EQ(b.pic.styles[1].num_layers, 4);  // blocks 5-8, recomputed
  EXPECT_TRUE(b.pic.styles[1].strategy.recompute);
  EXPECT_NE(b.pic.styles[0].fill, b.pic.styles[1].fill);
  for (const PictureLayer& l : b.pic.layers) {
    EXPECT_EQ(l.stage, plan.StageOf(l.index)) << l.name;
    EXPECT_EQ(l.style, plan.layers[l.index].recompute ? 1 : 0) << l.name;
  }
  EXPECT_EQ(b.pic.layers[0].name, "embedding");
  EXPECT_EQ(b.pic.layers[9].name, "head");
}

TEST(PlanPictureTest, InterleavedLayersKeepTheirChunks) {
  const PlanSpec plan = InterleavedPlan();
  const Built b = Build(Problem(), plan);
  // Chunks {0-2}, {3-4}, {5-6}, {7-9} on stages 0, 1, 0, 1.
  const std::vector<int> chunk = {0, 0, 0, 1, 1, 2, 2, 3, 3, 3};
  for (const PictureLayer& l : b.pic.layers) {
    EXPECT_EQ(l.chunk, chunk[l.index]) << l.name;
    EXPECT_EQ(l.stage, chunk[l.index] % 2) << l.name;
  }
  EXPECT_EQ(b.pic.stages[0].layers, "0-2, 5-6");
  EXPECT_EQ(b.pic.stages[1].layers, "3-4, 7-9");
}

TEST(PlanPictureTest, MemoryIsTheEvaluationsBreakdown) {
  const Built b = Build(Problem(), TwoStagePlan());
  ASSERT_EQ(b.pic.memory.size(), 2u);
  for (size_t i = 0; i < 2; ++i) {
    const PictureMemory& m = b.pic.memory[i];
    const StageCost& s = b.e.stages[i];
    EXPECT_EQ(m.parameter_bytes, s.param_bytes);
    EXPECT_EQ(m.activation_bytes, s.activation_bytes);
    EXPECT_EQ(m.total_bytes, s.total_bytes);
    EXPECT_EQ(m.bound_bytes, s.bound_bytes);
    EXPECT_EQ(m.parameter_bytes + m.gradient_bytes + m.optimizer_bytes + m.activation_bytes +
                  m.transient_bytes + m.reserved_bytes,
              m.total_bytes);
  }
  EXPECT_EQ(b.pic.budget_bytes, int64_t{80} << 30);
}

// The timeline, for each schedule: every stage's blocks tile the step; one forward and one
// backward block per micro-batch and chunk; compute, waiting and sync add up to the evaluation's.
TEST(PlanPictureTest, TimelineAddsUpToTheEvaluation) {
  const SearchProblem pb = Problem();
  for (const PlanSpec& plan :
       {TwoStagePlan(), TwoStagePlan(Schedule::kGPipe), InterleavedPlan()}) {
    SCOPED_TRACE(ToString(plan.schedule));
    const Built b = Build(pb, plan);
    const int p = 2, v = plan.virtual_stages, m = plan.num_micro_batches;
    std::vector<double> at(p, 0), compute(p, 0), waiting(p, 0), sync(p, 0);
    std::vector<int> fwd(p, 0), bwd(p, 0);
    for (const PictureBlock& blk : b.pic.timeline) {
      const int i = blk.stage;
      EXPECT_NEAR(blk.start_s, at[i], 1e-12);
      EXPECT_GE(blk.end_s, blk.start_s);
      at[i] = blk.end_s;
      switch (blk.kind) {
        case PictureBlockKind::kForward: ++fwd[i]; compute[i] += blk.duration_s(); break;
        case PictureBlockKind::kBackward: ++bwd[i]; compute[i] += blk.duration_s(); break;
        case PictureBlockKind::kBubble: waiting[i] += blk.duration_s(); break;
        case PictureBlockKind::kOptimizer: sync[i] += blk.duration_s(); break;
        case PictureBlockKind::kComm:
          if (blk.micro_batch < 0) sync[i] += blk.duration_s();  // after the last operation
          break;
      }
    }
    const double tol = 1e-9 * b.e.step_time_s;
    for (int i = 0; i < p; ++i) {
      SCOPED_TRACE(i);
      EXPECT_NEAR(at[i], b.e.step_time_s, tol);
      EXPECT_EQ(fwd[i], m * v);
      EXPECT_EQ(bwd[i], m * v);
      EXPECT_NEAR(compute[i], b.e.stages[i].compute_s, tol);
      EXPECT_NEAR(waiting[i], b.e.pipeline.stage_idle_s[i], tol);
      EXPECT_NEAR(sync[i], b.e.stages[i].times.step_sync_s, tol);
    }
    EXPECT_NEAR(waiting[b.pic.bottleneck_stage], b.e.bubble_s, tol);
    EXPECT_DOUBLE_EQ(b.pic.bubble_s, b.e.bubble_s);
    EXPECT_GT(b.e.bubble_s, 0);  // two stages: the pipeline fills and drains
  }
}

TEST(PlanPictureTest, RefusesAnotherPlansEvaluationAndInvalidPlans) {
  const SearchProblem pb = Problem();
  const CostModel cm(pb);
  const PlanSpec two = TwoStagePlan();
  absl::StatusOr<Evaluation> e = Evaluate(cm, two);
  ASSERT_TRUE(e.ok());
  PlanSpec one = two;
  one.stage_layers = {10};
  EXPECT_EQ(BuildPlanPicture(cm, one, *e).status().code(), absl::StatusCode::kInvalidArgument);
  PlanSpec bad = two;
  bad.layers[3].tp = 3;  // does not divide the stage's 4 devices
  absl::StatusOr<Evaluation> eb = Evaluate(cm, bad);
  ASSERT_TRUE(eb.ok());
  ASSERT_FALSE(eb->valid);
  EXPECT_EQ(BuildPlanPicture(cm, bad, *eb).status().code(),
            absl::StatusCode::kFailedPrecondition);
}

TEST(PictureRenderTest, SvgHasOneElementPerLayerStageAndBlock) {
  const Built b = Build(Problem(), InterleavedPlan());
  const std::string svg = RenderPictureSvg(b.pic);
  EXPECT_EQ(CheckBalanced(svg), "");
  EXPECT_EQ(svg.rfind("<svg xmlns=\"http://www.w3.org/2000/svg\" id=\"plan-picture\"", 0), 0u);
  EXPECT_EQ(Count(svg, "<svg"), 1);
  EXPECT_EQ(Count(svg, "class=\"layer\""), 10);
  EXPECT_EQ(Count(svg, "class=\"recompute-mark\""), 4 + 1);  // blocks 5-8 and the legend swatch
  EXPECT_EQ(Count(svg, "class=\"mem-bar "), 2 * 6);
  EXPECT_EQ(Count(svg, "class=\"mem-bound\""), 2);
  EXPECT_EQ(Count(svg, "id=\"mem-budget\""), 1);
  EXPECT_EQ(Count(svg, "class=\"timeline-block "), static_cast<int>(b.pic.timeline.size()));
  // 2 stages x 2 chunks x 4 micro-batches of each direction.
  EXPECT_EQ(Count(svg, "class=\"timeline-block fwd"), 16);
  EXPECT_EQ(Count(svg, "class=\"timeline-block bwd"), 16);
  int bubbles = 0;
  for (const PictureBlock& blk : b.pic.timeline) bubbles += blk.kind == PictureBlockKind::kBubble;
  EXPECT_EQ(Count(svg, "class=\"timeline-block bubble"), bubbles);
  for (const char* id : {"id=\"layers\"", "id=\"memory\"", "id=\"timeline\"",
                         "id=\"layer-legend\"", "id=\"memory-legend\"", "id=\"timeline-legend\"",
                         "id=\"layer-0\"", "id=\"layer-9\"", "id=\"tl-1-0\"",
                         "id=\"mem-1-activations\"", "data-stages=\"2\""}) {
    EXPECT_EQ(Count(svg, id), 1) << id;
  }
  // Two strategies in the legend, seven timeline kinds, six memory kinds and two markers.
  EXPECT_EQ(Count(svg, "class=\"legend-entry\""), 2 + 7 + 8);
  // Each stage row labelled once per section.
  EXPECT_EQ(Count(svg, "class=\"stage-label\""), 3 * 2);
  // Deterministic: the same plan draws the same bytes.
  EXPECT_EQ(svg, RenderPictureSvg(b.pic));
}

TEST(PictureRenderTest, TextFromThePlanIsEscaped) {
  SearchProblem pb = Problem();
  pb.model.name = "tiny<&>\"model'";
  const Built b = Build(pb, TwoStagePlan());
  const std::string svg = RenderPictureSvg(b.pic);
  EXPECT_EQ(CheckBalanced(svg), "");
  EXPECT_EQ(Count(svg, "tiny<"), 0);
  EXPECT_GE(Count(svg, "tiny&lt;&amp;&gt;&quot;model&#39;"), 1);
}

TEST(PictureRenderTest, HtmlEmbedsTheSvgAndATableRowPerStage) {
  const Built b = Build(Problem(), TwoStagePlan());
  const std::string html = RenderPictureHtml(b.pic);
  EXPECT_EQ(html.rfind("<!DOCTYPE html>", 0), 0u);
  EXPECT_EQ(CheckBalanced(html), "");
  EXPECT_EQ(Count(html, "<svg"), 1);
  EXPECT_EQ(Count(html, RenderPictureSvg(b.pic)), 1);
  EXPECT_EQ(Count(html, "id=\"stage-table\""), 1);
  EXPECT_EQ(Count(html, "class=\"stage-row\""), 2);
  EXPECT_EQ(Count(html, "<script"), 0);
}

TEST(PictureRenderTest, WritesTheFilesAskedFor) {
  const SearchProblem pb = Problem();
  const PlanSpec plan = TwoStagePlan();
  const Built b = Build(pb, plan);
  const char* tmp = std::getenv("TEST_TMPDIR");
  const std::string dir = tmp ? tmp : "/tmp";
  const PictureFiles files{dir + "/plan.svg", dir + "/plan.html"};
  std::ostringstream log;
  ASSERT_OK(WritePlanPictures(files, pb, plan, b.e, log));
  auto read = [](const std::string& path) {
    std::ifstream f(path);
    std::stringstream s;
    s << f.rdbuf();
    return s.str();
  };
  EXPECT_EQ(read(files.svg_path), RenderPictureSvg(b.pic));
  EXPECT_EQ(read(files.html_path), RenderPictureHtml(b.pic));
  EXPECT_EQ(log.str(), "cairn: picture written to " + files.svg_path +
                           "\ncairn: picture written to " + files.html_path + "\n");
  // Nothing asked, nothing written.
  std::ostringstream quiet;
  EXPECT_OK(WritePlanPictures({}, pb, plan, b.e, quiet));
  EXPECT_EQ(quiet.str(), "");
  // A folder that does not exist, and a directory.
  for (const std::string& bad : {dir + "/no-such-folder/plan.svg", dir}) {
    const absl::Status s = WritePlanPictures({.svg_path = bad}, pb, plan, b.e, log);
    EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition) << bad;
    EXPECT_NE(s.message().find("cannot write " + bad), std::string::npos) << s.message();
  }
}

}  // namespace
}  // namespace cairn::planner
