#include "runtime/train/progress.h"

#include <unistd.h>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/units.h"

namespace cairn::runtime {

std::string FormatStepLine(const StepProgress& p) {
  std::string line = absl::StrFormat("step %5d/%d | loss %.4f", p.step, p.steps, p.loss);
  if (p.val_loss.has_value()) absl::StrAppendFormat(&line, " | val %.4f", *p.val_loss);
  absl::StrAppend(&line, " | ", FormatSeconds(p.step_time_s));
  if (p.split_known) {
    absl::StrAppend(&line, " (compute ", FormatSeconds(p.compute_s), ", comm ",
                    FormatSeconds(p.comm_s), ")");
  }
  absl::StrAppend(&line, " | ", FormatCount(p.tokens_per_s), " tokens/s");
  if (p.mfu > 0) absl::StrAppendFormat(&line, " | MFU %.1f%%", 100 * p.mfu);
  absl::StrAppendFormat(&line, " | peak %s | lr %.2e | norm %.3f | elapsed %s | ETA %s",
                        FormatBytes(static_cast<double>(p.peak_bytes)), p.learning_rate,
                        p.grad_norm, FormatSeconds(p.elapsed_s), FormatSeconds(p.eta_s));
  return line;
}

double EtaSeconds(int64_t steps_left, double mean_step_s, int64_t evaluations_left,
                  double mean_evaluation_s) {
  return static_cast<double>(steps_left) * mean_step_s +
         static_cast<double>(evaluations_left) * mean_evaluation_s;
}

int64_t EvaluationsLeft(int64_t done, int64_t last, int every) {
  if (every <= 0 || done >= last) return 0;
  const int64_t multiples = last / every - done / every;
  return multiples + (last % every != 0 ? 1 : 0);
}

bool ProgressPrinter::IsTerminal(std::FILE* out) { return isatty(fileno(out)) == 1; }

void ProgressPrinter::Update(const std::string& line, bool keep) {
  if (terminal_) {
    // "\033[K" clears what a longer previous line left to the right.
    std::fprintf(out_, "\r%s\033[K", line.c_str());
    open_ = true;
    if (keep) EndLine();
  } else {
    std::fprintf(out_, "%s\n", line.c_str());
  }
  std::fflush(out_);
}

void ProgressPrinter::Message(const std::string& line) {
  EndLine();
  std::fprintf(out_, "%s\n", line.c_str());
  std::fflush(out_);
}

void ProgressPrinter::EndLine() {
  if (!open_) return;
  std::fputc('\n', out_);
  std::fflush(out_);
  open_ = false;
}

}  // namespace cairn::runtime
