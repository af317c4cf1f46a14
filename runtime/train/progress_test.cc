// The progress line's text, the ETA, and how lines reach a terminal ("\r", rewritten in place)
// and anything else (plain lines: what logs, pipes and cairn-agent read).
#include "runtime/train/progress.h"

#include <cstdio>
#include <string>

#include "gtest/gtest.h"

namespace cairn::runtime {
namespace {

StepProgress Example() {
  StepProgress p;
  p.step = 10;
  p.steps = 100;
  p.loss = 2.31;
  p.step_time_s = 0.2;
  p.split_known = true;
  p.compute_s = 0.15;
  p.comm_s = 0.05;
  p.tokens_per_s = 40000;
  p.mfu = 0.31;
  p.peak_bytes = 3LL << 29;  // 1.5 GiB
  p.learning_rate = 3e-4;
  p.grad_norm = 0.8123;
  p.elapsed_s = 2;
  p.eta_s = 18;
  return p;
}

TEST(ProgressTest, StepLineCarriesEveryField) {
  StepProgress p = Example();
  p.val_loss = 2.4;
  EXPECT_EQ(FormatStepLine(p),
            "step    10/100 | loss 2.3100 | val 2.4000 | 200.00 ms (compute 150.00 ms, comm "
            "50.00 ms) | 40.0 k tokens/s | MFU 31.0% | peak 1.50 GiB | lr 3.00e-04 | norm 0.812 | "
            "elapsed 2.000 s | ETA 18.000 s");
}

TEST(ProgressTest, UnknownFieldsAreLeftOut) {
  StepProgress p = Example();
  p.split_known = false;  // an asynchronous backend
  p.mfu = 0;              // no peak FLOP/s known
  const std::string line = FormatStepLine(p);
  EXPECT_EQ(line,
            "step    10/100 | loss 2.3100 | 200.00 ms | 40.0 k tokens/s | peak 1.50 GiB | "
            "lr 3.00e-04 | norm 0.812 | elapsed 2.000 s | ETA 18.000 s");
}

TEST(ProgressTest, EvaluationsLeftCountsMultiplesAndTheEnd) {
  EXPECT_EQ(EvaluationsLeft(0, 100, 50), 2);   // at 50 and 100
  EXPECT_EQ(EvaluationsLeft(0, 120, 50), 3);   // 50, 100 and the end
  EXPECT_EQ(EvaluationsLeft(50, 120, 50), 2);  // 100 and the end
  EXPECT_EQ(EvaluationsLeft(100, 120, 50), 1);
  EXPECT_EQ(EvaluationsLeft(120, 120, 50), 0);
  EXPECT_EQ(EvaluationsLeft(0, 100, 0), 0);    // validation off
  // 90 steps of 0.2 s and 2 evaluations of 1.5 s.
  EXPECT_DOUBLE_EQ(EtaSeconds(90, 0.2, 2, 1.5), 21.0);
}

// What the printer wrote to a temporary file.
std::string Printed(bool terminal, void (*body)(ProgressPrinter&)) {
  std::FILE* f = std::tmpfile();
  EXPECT_NE(f, nullptr);
  {
    ProgressPrinter out(f, terminal);
    body(out);
  }  // the destructor ends a rewritten line
  std::rewind(f);
  std::string text;
  char buf[256];
  while (size_t n = std::fread(buf, 1, sizeof(buf), f)) text.append(buf, n);
  std::fclose(f);
  return text;
}

void ThreeSteps(ProgressPrinter& out) {
  out.Update("step 1");
  out.Update("step 2", /*keep=*/true);
  out.Message("checkpoint");
  out.Update("step 3");
}

TEST(ProgressTest, NotATerminalGetsPlainLines) {
  std::FILE* file = std::tmpfile();
  EXPECT_FALSE(ProgressPrinter::IsTerminal(file));
  std::fclose(file);
  EXPECT_EQ(Printed(false, ThreeSteps), "step 1\nstep 2\ncheckpoint\nstep 3\n");
}

TEST(ProgressTest, ATerminalGetsOneLineRewrittenInPlace) {
  // Step 1 is overwritten by step 2, which stays (keep); the message starts on a fresh line; step
  // 3 is rewritten in place and ended by the printer's destructor.
  EXPECT_EQ(Printed(true, ThreeSteps),
            "\rstep 1\033[K\rstep 2\033[K\ncheckpoint\n\rstep 3\033[K\n");
}

}  // namespace
}  // namespace cairn::runtime
