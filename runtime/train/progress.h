// runtime/train/progress.h — rank 0's per-step progress: what one step's line says, and how lines
// reach the user (one line rewritten in place on a terminal, plain lines otherwise).
//
// Overview
// --------
// The trainer fills a StepProgress after every step and hands FormatStepLine's text to a
// ProgressPrinter. On a terminal the printer rewrites a single line ("\r", the text, clear to the
// end of the line) and keeps a line for good only where it matters: steps that evaluated the
// validation loss, and the last step. Anywhere else (a pipe, a log file, an agent's worker) every
// step is a plain line of its own, so logs stay greppable. Messages (checkpoints, the summary) go
// through Message, which first ends a line being rewritten.
//
//   ProgressPrinter out(stdout, ProgressPrinter::IsTerminal(stdout));
//   StepProgress p;
//   p.step = 10; p.steps = 100; p.loss = 2.31; p.step_time_s = 0.2; ...
//   out.Update(FormatStepLine(p), /*keep=*/p.val_loss.has_value());
//   out.Message("checkpoint: step 10 saved to ckpt/step_00000010");
//
// A step line (fields after the loss appear only when known):
//   step    10/100 | loss 2.3100 | val 2.4000 | 200.00 ms (compute 150.00 ms, comm 50.00 ms) |
//   40.0 k tokens/s | MFU 31.0% | peak 1.50 GiB | lr 3.00e-04 | norm 0.812 | elapsed 2.000 s |
//   ETA 18.000 s
// Not thread-safe: one thread (rank 0's) prints.
#ifndef CAIRN_RUNTIME_TRAIN_PROGRESS_H_
#define CAIRN_RUNTIME_TRAIN_PROGRESS_H_

#include <cstdint>
#include <cstdio>
#include <optional>
#include <string>

namespace cairn::runtime {

// What one step's progress line reports.
struct StepProgress {
  int64_t step = 0;           // steps done, 1-based
  int64_t steps = 0;          // of the whole run
  double loss = 0;            // mean token loss of the step's batch
  std::optional<double> val_loss;  // set on steps that evaluated the validation data
  double step_time_s = 0;
  // Host time in compute and in communication; printed only when `split_known` (synchronous
  // backends: on asynchronous ones it is the time to enqueue).
  bool split_known = false;
  double compute_s = 0, comm_s = 0;
  double tokens_per_s = 0;
  double mfu = 0;             // 0: unknown (not printed)
  int64_t peak_bytes = 0;     // largest rank's live tensors at the step's peak
  double learning_rate = 0;
  double grad_norm = 0;
  double elapsed_s = 0;       // wall time of this run's steps and evaluations so far
  double eta_s = 0;           // of the steps and evaluations left
};

// The step's line, without a newline.
std::string FormatStepLine(const StepProgress& p);

// The time the rest of the run takes at the mean times so far: `steps_left` steps of
// `mean_step_s` and `evaluations_left` evaluations of `mean_evaluation_s`.
double EtaSeconds(int64_t steps_left, double mean_step_s, int64_t evaluations_left,
                  double mean_evaluation_s);

// Evaluations left after step `done` (1-based) of `last`: one at every multiple of `every`
// after `done`, and one at `last` when that is not a multiple. 0 when every <= 0.
int64_t EvaluationsLeft(int64_t done, int64_t last, int every);

class ProgressPrinter {
 public:
  // Prints to `out` (not owned); `terminal`: rewrite one line in place.
  ProgressPrinter(std::FILE* out, bool terminal) : out_(out), terminal_(terminal) {}
  ~ProgressPrinter() { EndLine(); }

  // Whether `out` is a terminal (isatty of its descriptor).
  static bool IsTerminal(std::FILE* out);

  // One step's line. On a terminal it replaces the line being rewritten; with `keep` it stays
  // (the next Update starts a new line). Elsewhere: a line of its own.
  void Update(const std::string& line, bool keep = false);
  // A line of its own (after ending a line being rewritten).
  void Message(const std::string& line);
  // Ends a line being rewritten (a newline); nothing otherwise.
  void EndLine();

 private:
  std::FILE* out_;
  bool terminal_;
  bool open_ = false;  // a rewritten line without its newline yet
};

}  // namespace cairn::runtime

#endif  // CAIRN_RUNTIME_TRAIN_PROGRESS_H_
