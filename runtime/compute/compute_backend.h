// runtime/compute/compute_backend.h — the compute interface the runtime's layer code calls.
//
// Overview
// --------
// Every number the training runtime computes goes through one `ComputeBackend`: the layers
// (embedding, transformer block, head; runtime/engine/layers.h) are written once against this
// interface and run unchanged on the CPU fp32 backend (runtime/compute/cpu/) and the CUDA bf16
// backend (runtime/compute/cuda/). Their memory comes from one DeviceArena per rank (arena.h).
// The interface is llm.c's kernel list made abstract: one forward and one backward per operation,
// hand-written, no autograd. Each operation states its shapes once, in a small shape struct
// (`MatmulShape`, `NormShape`, `RopeShape`, `AttentionShape`, `EmbeddingShape`,
// `CrossEntropyShape`), and takes raw pointers into the runtime's arena.
//
// The operations are exactly those a hybrid-parallel (TP, SP, Ulysses, vocab-parallel) transformer
// needs, with the sharding arguments built in: attention over a range of local heads, RoPE and
// learned positions with a position offset (sequence shards), embedding and cross-entropy over a
// vocabulary range with the cross-entropy split at the points where the caller all-reduces. They
// save exactly the activations docs/cost-model.md ("Memory") charges: norm rstd (not the mean:
// LayerNorm backward recomputes it from the saved input), attention logsumexp per head and token
// (flash-style: the probabilities are recomputed in backward), and the logits gradient computed in
// the forward pass.
//
// Example (one pre-norm Llama MLP, forward and backward, on the CPU backend; N = B x T tokens):
//
//   std::unique_ptr<ComputeBackend> be = std::make_unique<CpuBackend>();
//   NormShape norm{N, C, 1e-5f};
//   CAIRN_RETURN_IF_ERROR(be->RmsNormForward(norm, x, w_norm, xn, rstd));
//   const MatmulShape up = MatmulShape::Linear(N, C, F);      // xn[N, C] x W[F, C]^T -> [N, F]
//   CAIRN_RETURN_IF_ERROR(be->MatmulForward(up, xn, w_gate, nullptr, gate, false));
//   CAIRN_RETURN_IF_ERROR(be->MatmulForward(up, xn, w_up, nullptr, upv, false));
//   CAIRN_RETURN_IF_ERROR(be->SwiGluForward(N * F, gate, upv, prod));
//   CAIRN_RETURN_IF_ERROR(be->MatmulForward(MatmulShape::Linear(N, F, C), prod, w_down, nullptr,
//                                           mlp, false));
//   CAIRN_RETURN_IF_ERROR(be->ResidualForward(N * C, x, mlp, y));     // y = x + mlp(norm(x))
//   ...
//   // backward: dx holds dL/dy, which is also dL/dx through the residual; the norm's backward
//   // adds the branch's share to it in place. Parameter gradients accumulate.
//   CAIRN_RETURN_IF_ERROR(be->MatmulBackward(MatmulShape::Linear(N, F, C), prod, w_down, dx,
//                                            dprod, dw_down, nullptr, false));
//   CAIRN_RETURN_IF_ERROR(be->SwiGluBackward(N * F, gate, upv, dprod, dgate, dup));
//   CAIRN_RETURN_IF_ERROR(be->MatmulBackward(up, xn, w_gate, dgate, dxn, dw_gate, nullptr, false));
//   CAIRN_RETURN_IF_ERROR(be->MatmulBackward(up, xn, w_up, dup, dxn, dw_up, nullptr, true));
//   CAIRN_RETURN_IF_ERROR(be->RmsNormBackward(norm, x, w_norm, rstd, dxn, dx, dw_norm,
//                                             /*accumulate_dinp=*/true));  // now dL/dx
//
// Conventions (every operation)
// -----------------------------
// * Layout: row-major, last index fastest. B = batch, T = sequence length of the tensor at hand,
//   C = channels, F = MLP width, V = vocabulary, H/KV = query/key-value heads, D = head dimension.
//   A "token" is one (b, t) pair; token-major tensors are [B, T, ...].
// * Pointers are device pointers of this backend (memory from `Allocate`; on the CPU backend any
//   host memory). Arguments marked "may alias" may be the same pointer; no other overlap is
//   allowed.
// * Outputs are overwritten. Parameter gradients (dweight, dbias, dwte, dwpe, matmul db/dbias) are
//   always accumulated (+=): the caller zeroes them once per step, and gradient accumulation over
//   micro-batches costs nothing extra. Input gradients are overwritten, unless the op takes an
//   `accumulate*` flag and it is true (then +=; used for residual streams and for inputs feeding
//   several matmuls).
// * Errors: every public method validates its shape struct, sizes and required pointers and returns
//   InvalidArgument on a bad one (before touching memory). Contents are not validated (token ids
//   outside the vocabulary, NaNs): the data loader owns those. Backends may return Internal for
//   device failures. Statuses are [[nodiscard]] (absl::Status is must-use).
// * Streams: the last argument of every method is an optional `Stream*`, the queue to run on
//   (nullptr: the backend's default stream). Operations on one stream run in order. The CPU backend
//   runs each call synchronously on the calling thread and ignores the stream; on an asynchronous
//   backend a result read on the host needs `Synchronize` first.
// * Threads: a backend object holds no per-call state; calls from several threads on different data
//   are safe (the CPU backend may use OpenBLAS threads inside a matmul).
//
// Precision
// ---------
// Every backend has a *working* dtype, `working_dtype()` (runtime/dtype.h): fp32 on the CPU
// backend, bf16 on the CUDA backend. Each argument's contract says "(w)" for working-dtype tensors
// (activations, their gradients, the working copy of weights that forward/backward read, the
// logits gradient), passed as `void*`, or "(f32)" for tensors that stay fp32 on every backend,
// passed as `float*` (master weights and AdamW moments, parameter gradient accumulators, norm
// rstd, attention logsumexp, cross-entropy logits and statistics, losses, the norm-squared sum) —
// the split docs/cost-model.md's memory model assumes (18 B per parameter in bf16). Token ids are
// `int32_t*`. `ToWorking`/`FromWorking` convert between the two (on an fp32 backend: copies).
// Reductions inside a backend (sums over rows, softmax, dot products) accumulate in at least fp32.
#ifndef CAIRN_RUNTIME_COMPUTE_COMPUTE_BACKEND_H_
#define CAIRN_RUNTIME_COMPUTE_COMPUTE_BACKEND_H_

#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "runtime/dtype.h"

namespace cairn::runtime {

// An execution queue of a backend (CUDA: a cudaStream_t). Opaque here: each backend defines it and
// creates its own; the layer code only passes them through. nullptr is always valid (default
// stream).
class Stream;


// -------------------------------------------------------------------------------------------------
// Shapes. Each struct states one operation's dimensions once; `Check*` (below) validates them.
// -------------------------------------------------------------------------------------------------

// C[m, n] = op(A) . op(B) (+ bias[n]), the matmul of every linear layer.
//   op(A) = A, stored [m, k]          (transpose_a = false), or A^T with A stored [k, m] (true);
//   op(B) = B^T, B stored [n, k]      (transpose_b = true: the nn.Linear weight layout [out, in]),
//        or B, stored [k, n]          (transpose_b = false).
struct MatmulShape {
  int64_t m = 0;
  int64_t n = 0;
  int64_t k = 0;
  bool transpose_a = false;
  bool transpose_b = true;
  // The output c (and the bias) in fp32 instead of the working dtype: the LM head writes fp32
  // logits for the cross-entropy. Forward only.
  bool output_f32 = false;

  // A linear layer y[rows, out] = x[rows, in] . W[out, in]^T.
  static MatmulShape Linear(int64_t rows, int64_t in_features, int64_t out_features) {
    return MatmulShape{rows, out_features, in_features, false, true, false};
  }
  // FLOPs of one forward (2 m n k); the backward with both gradients is twice that.
  double Flops() const { return 2.0 * static_cast<double>(m) * static_cast<double>(n) * k; }
};

// LayerNorm / RMSNorm over the last dimension of a [rows, cols] tensor (rows = B x T tokens).
struct NormShape {
  int64_t rows = 0;
  int64_t cols = 0;
  float eps = 1e-5f;  // added to the variance (LayerNorm) or mean square (RMSNorm); >= 0
};

// Rotary position embedding over a [B, T, heads, D] tensor (Q or K) of a sequence shard.
// Convention: the "rotate half" pairing of GPT-NeoX / Hugging Face Llama: element i of a head is
// rotated with element i + D/2 by the angle (position_offset + t) x theta^(-2i/D), i < D/2.
struct RopeShape {
  int64_t batch = 0;
  int64_t seq = 0;           // T: tokens of this shard
  int64_t num_heads = 0;     // heads present in the tensor (local heads under TP)
  int64_t head_dim = 0;      // D, even
  // Elements from token (b, t) to (b, t + 1); 0 = num_heads x head_dim. Larger strides address Q or
  // K inside a fused [B, T, (H + 2 KV) D] buffer.
  int64_t token_stride = 0;
  int64_t position_offset = 0;  // absolute position of token t = 0 (shard start)
  float theta = 10000.0f;       // RoPE base
};

// Causal grouped-query self-attention over the local query heads [head_begin, head_end) of a model
// with num_heads query and num_kv_heads key/value heads (query head h reads kv head
// h / (num_heads / num_kv_heads)). The tensors hold only the local heads:
//   q   [B, T, local_heads, D]     at token stride q_stride   (0 = local_heads x D)
//   k,v [B, T, local_kv_heads, D]  at token stride kv_stride  (0 = local_kv_heads x D)
// where the local kv heads are [kv_begin(), kv_end()): every kv head some local query head reads
// (under TP with fewer kv heads than ranks, a kv head is replicated on several ranks, as Megatron
// does). The sequence is whole (Megatron-SP gathers it, Ulysses all-to-alls it before attention).
// Scale 1 / sqrt(D).
struct AttentionShape {
  int64_t batch = 0;
  int64_t seq = 0;
  int64_t num_heads = 0;
  int64_t num_kv_heads = 0;
  int64_t head_dim = 0;
  int64_t head_begin = 0;
  int64_t head_end = 0;
  int64_t q_stride = 0;
  int64_t kv_stride = 0;

  // All heads of the model, contiguous q/k/v.
  static AttentionShape AllHeads(int64_t batch, int64_t seq, int64_t num_heads,
                                 int64_t num_kv_heads, int64_t head_dim) {
    return AttentionShape{batch, seq, num_heads, num_kv_heads, head_dim, 0, num_heads, 0, 0};
  }
  int64_t group_size() const { return num_heads / num_kv_heads; }
  int64_t local_heads() const { return head_end - head_begin; }
  int64_t kv_begin() const { return head_begin / group_size(); }
  int64_t kv_end() const { return (head_end - 1) / group_size() + 1; }
  int64_t local_kv_heads() const { return kv_end() - kv_begin(); }
  int64_t q_token_stride() const { return q_stride != 0 ? q_stride : local_heads() * head_dim; }
  int64_t kv_token_stride() const {
    return kv_stride != 0 ? kv_stride : local_kv_heads() * head_dim;
  }
};

// Token embedding over the vocabulary rows [vocab_begin, vocab_end) held locally (vocab-parallel:
// each rank holds a range; ids outside it contribute zeros, and the caller all-reduces the partial
// outputs), plus optional learned positions for positions [position_offset, position_offset + T).
struct EmbeddingShape {
  int64_t batch = 0;
  int64_t seq = 0;              // T: tokens of this shard
  int64_t channels = 0;         // C
  int64_t vocab_begin = 0;      // first vocabulary row held by wte
  int64_t vocab_end = 0;        // one past the last; wte is [vocab_end - vocab_begin, C]
  int64_t position_offset = 0;  // absolute position of token t = 0
  int64_t max_positions = 0;    // rows of wpe (only checked when wpe is given)
};

// Cross-entropy over tokens whose logits for vocabulary entries [vocab_begin, vocab_end) are held
// locally: logits [tokens, vocab_end - vocab_begin], targets [tokens] with ids in [0, vocab_size),
// or negative to ignore the token (loss 0, gradient 0).
struct CrossEntropyShape {
  int64_t tokens = 0;      // N = B x T
  int64_t vocab_size = 0;  // V of the model
  int64_t vocab_begin = 0;
  int64_t vocab_end = 0;
  int64_t local_vocab() const { return vocab_end - vocab_begin; }
};

// AdamW hyper-parameters (PyTorch's AdamW, decoupled weight decay).
struct AdamWConfig {
  float learning_rate = 1e-3f;
  float beta1 = 0.9f;
  float beta2 = 0.95f;
  float eps = 1e-8f;
  float weight_decay = 0.1f;  // used only when the update's apply_weight_decay is true
};

// Shape validation shared by all backends (the public methods call these): InvalidArgument naming
// the bad field, OK otherwise.
absl::Status CheckMatmulShape(const MatmulShape& shape);
absl::Status CheckNormShape(const NormShape& shape);
absl::Status CheckRopeShape(const RopeShape& shape);
absl::Status CheckAttentionShape(const AttentionShape& shape);
absl::Status CheckEmbeddingShape(const EmbeddingShape& shape);
absl::Status CheckCrossEntropyShape(const CrossEntropyShape& shape);
absl::Status CheckAdamWConfig(const AdamWConfig& config);

// -------------------------------------------------------------------------------------------------
// The backend.
// -------------------------------------------------------------------------------------------------
//
// Public methods are non-virtual: they validate, then call the private virtual `Do*` method that a
// backend implements (so every backend rejects the same inputs with the same message). A new
// backend derives from ComputeBackend, overrides every `Do*`, and instantiates the parity tests
// (runtime/compute/testing/backend_ops_test_suite.h) for itself.
class ComputeBackend {
 public:
  virtual ~ComputeBackend() = default;

  // Short name for logs and test names ("cpu", "cuda").
  virtual std::string name() const = 0;
  // Element type of the (w) tensors (see "Precision").
  virtual DType working_dtype() const = 0;
  // The stream `nullptr` stands for in every call: pass it to communicators so that their
  // operations are ordered after the compute enqueued so far (communicator.h). nullptr on
  // backends that run synchronously (CPU).
  virtual Stream* default_stream() { return nullptr; }
  // Device memory the backend holds besides what Allocate returned: library workspaces and the
  // high-water mark of its short-lived scratch (CUDA: the cuBLASLt workspaces and the scratch pool's
  // peak reservation). The runtime reports it next to the arena's peak, so that the memory a run
  // claims is all the memory it used. 0 on backends that keep none (CPU).
  virtual int64_t ScratchHighWaterBytes() const { return 0; }

  // ---- Memory ---------------------------------------------------------------------------------
  // Device memory of `bytes` bytes (>= 0), aligned to 256 bytes; contents undefined. The runtime's
  // arena takes one large block per rank from here. ResourceExhausted when it does not fit.
  absl::StatusOr<void*> Allocate(int64_t bytes);
  // Frees memory from Allocate (nullptr: nothing).
  void Free(void* ptr);
  // Copies `bytes` bytes host -> device, device -> host, device -> device; ranges must not overlap.
  // CopyToDevice has read the host source when it returns (the caller may reuse it at once);
  // CopyToHost's destination is complete after Synchronize(stream).
  absl::Status CopyToDevice(void* device_dst, const void* host_src, int64_t bytes,
                            Stream* stream = nullptr);
  absl::Status CopyToHost(void* host_dst, const void* device_src, int64_t bytes,
                          Stream* stream = nullptr);
  absl::Status CopyOnDevice(void* device_dst, const void* device_src, int64_t bytes,
                            Stream* stream = nullptr);
  // Sets `bytes` bytes to zero (fp32 and bf16 zero are all-zero bits).
  absl::Status Zero(void* device_dst, int64_t bytes, Stream* stream = nullptr);
  // Copies `rows` rows of `row_bytes` bytes on the device: row r from src + r x src_pitch to
  // dst + r x dst_pitch (pitches in bytes, >= row_bytes). Any dtype: the engine's relocations,
  // sequence gathers and token slices. Source and destination rows must not overlap.
  absl::Status Copy2D(int64_t rows, int64_t row_bytes, const void* src, int64_t src_pitch,
                      void* dst, int64_t dst_pitch, Stream* stream = nullptr);
  // dst (w) += src (w), row by row: `rows` rows of `row_elements` elements at pitches counted in
  // elements (Ulysses sums key/value-head gradients that several ranks computed).
  absl::Status Add2D(int64_t rows, int64_t row_elements, const void* src, int64_t src_pitch,
                     void* dst, int64_t dst_pitch, Stream* stream = nullptr);
  // Conversions between fp32 and the working dtype over n elements (bf16: round to nearest
  // even). src and dst must not overlap (on an fp32 backend these are copies).
  absl::Status ToWorking(int64_t n, const float* src, void* dst, Stream* stream = nullptr);
  absl::Status FromWorking(int64_t n, const void* src, float* dst, Stream* stream = nullptr);
  // Waits until everything enqueued on `stream` has finished.
  absl::Status Synchronize(Stream* stream = nullptr);

  // ---- Matmul ---------------------------------------------------------------------------------
  // c[m, n] (w) = op(a) . op(b) + bias   (or += when `accumulate`).
  //   a (w): [m, k], or [k, m] when transpose_a.   b (w): [n, k] when transpose_b, else [k, n].
  //   bias (w): [n] or nullptr. Under row-parallel TP pass the bias on one rank only (the partial
  //   outputs are summed). c must not alias a or b. FLOPs: shape.Flops(). With
  //   shape.output_f32, c and bias are fp32 (float*).
  absl::Status MatmulForward(const MatmulShape& shape, const void* a, const void* b,
                             const void* bias, void* c, bool accumulate,
                             Stream* stream = nullptr);
  // Gradients of c = op(a) . op(b) + bias, given dc (w) [m, n]:
  //   da (w) shaped like a: overwritten (or += when accumulate_da); nullptr to skip.
  //   db (f32) shaped like b: always +=; nullptr to skip (e.g. frozen weights).
  //   dbias (f32) [n]: always += (column sums of dc); nullptr to skip.
  // FLOPs: 2 m n k per requested da or db.
  absl::Status MatmulBackward(const MatmulShape& shape, const void* a, const void* b,
                              const void* dc, void* da, float* db, float* dbias,
                              bool accumulate_da, Stream* stream = nullptr);

  // ---- Normalisation --------------------------------------------------------------------------
  // LayerNorm (GPT-2): out = (inp - mean) * rstd * weight + bias per row, rstd = 1/sqrt(var + eps)
  // with the biased variance. inp, out (w) [rows, cols]; weight, bias (w) [cols], bias may be null;
  // rstd (f32) [rows] is saved for backward (the mean is not: backward recomputes it from inp).
  absl::Status LayerNormForward(const NormShape& shape, const void* inp, const void* weight,
                                const void* bias, void* out, float* rstd,
                                Stream* stream = nullptr);
  // Given the forward's inp, weight, rstd and dout (w) [rows, cols]: dinp (w) overwritten (+= when
  // accumulate_dinp: the residual stream's gradient), dweight (f32) += , dbias (f32) += (nullptr
  // when the norm has no bias). dinp may not alias dout.
  absl::Status LayerNormBackward(const NormShape& shape, const void* inp, const void* weight,
                                 const float* rstd, const void* dout, void* dinp, float* dweight,
                                 float* dbias, bool accumulate_dinp, Stream* stream = nullptr);
  // RMSNorm (Llama): out = inp * rstd * weight, rstd = 1/sqrt(mean(inp^2) + eps). Shapes as
  // LayerNorm.
  absl::Status RmsNormForward(const NormShape& shape, const void* inp, const void* weight,
                              void* out, float* rstd, Stream* stream = nullptr);
  absl::Status RmsNormBackward(const NormShape& shape, const void* inp, const void* weight,
                               const float* rstd, const void* dout, void* dinp, float* dweight,
                               bool accumulate_dinp, Stream* stream = nullptr);

  // ---- Activations (element-wise over n >= 0 elements) ----------------------------------------
  // GELU, tanh approximation (GPT-2): out = x/2 (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))).
  // inp, out (w); out may alias inp. Backward: dinp = dout * gelu'(inp), dinp may alias dout.
  absl::Status GeluForward(int64_t n, const void* inp, void* out, Stream* stream = nullptr);
  absl::Status GeluBackward(int64_t n, const void* inp, const void* dout, void* dinp,
                            Stream* stream = nullptr);
  // SwiGLU (Llama MLP): out = silu(gate) * up, silu(x) = x sigmoid(x). All (w), n elements each
  // (gate and up are the outputs of the two column-parallel up projections). No argument may alias
  // another (the cost model keeps gate, up and out). Backward: dgate, dup overwritten.
  absl::Status SwiGluForward(int64_t n, const void* gate, const void* up, void* out,
                             Stream* stream = nullptr);
  absl::Status SwiGluBackward(int64_t n, const void* gate, const void* up, const void* dout,
                              void* dgate, void* dup, Stream* stream = nullptr);

  // ---- Rotary position embedding --------------------------------------------------------------
  // out = rope(inp) over a [B, T, heads, D] tensor at shape.token_stride (see RopeShape); call once
  // for Q and once for K. inp, out (w); out may alias inp (in place). Elements of a token row past
  // heads x D (other parts of a fused buffer) are not touched.
  absl::Status RopeForward(const RopeShape& shape, const void* inp, void* out,
                           Stream* stream = nullptr);
  // dinp = rope^-1(dout) (the rotation by the opposite angle); dinp may alias dout.
  absl::Status RopeBackward(const RopeShape& shape, const void* dout, void* dinp,
                            Stream* stream = nullptr);

  // ---- Causal self-attention (flash-style) ----------------------------------------------------
  // out (w) [B, T, local_heads, D] contiguous = softmax(q k^T / sqrt(D) + causal mask) v per local
  // head; lse (f32) [B, local_heads, T] = the natural-log sum of exp of each score row (saved for
  // backward, which recomputes the probabilities). q, k, v (w) as in AttentionShape.
  absl::Status AttentionForward(const AttentionShape& shape, const void* q, const void* k,
                                const void* v, void* out, float* lse, Stream* stream = nullptr);
  // Given the forward's q, k, v, out, lse and dout (w, shaped like out): dq (w, laid out like q),
  // dk, dv (w, laid out like k, v) overwritten (strided fused buffers: only the addressed
  // elements). FLOPs: 2.5x forward (one extra q k^T to recompute the probabilities).
  absl::Status AttentionBackward(const AttentionShape& shape, const void* q, const void* k,
                                 const void* v, const void* out, const float* lse,
                                 const void* dout, void* dq, void* dk, void* dv,
                                 Stream* stream = nullptr);

  // ---- Embedding ------------------------------------------------------------------------------
  // out[b, t, :] (w) = wte[tokens[b, t] - vocab_begin] if the id is in [vocab_begin, vocab_end)
  // else 0, plus wpe[position_offset + t] when wpe is given. tokens (int32) [B, T]; wte (w)
  // [vocab_end - vocab_begin, C]; wpe (w) [max_positions, C] or nullptr. Under vocab-parallel pass
  // wpe on one rank only (the partial outputs are all-reduced).
  absl::Status EmbeddingForward(const EmbeddingShape& shape, const int32_t* tokens,
                                const void* wte, const void* wpe, void* out,
                                Stream* stream = nullptr);
  // dwte (f32) += scatter of dout (w) [B, T, C] onto the local rows; dwpe (f32) += dout summed over
  // the batch, at rows position_offset + t (nullptr: skip).
  absl::Status EmbeddingBackward(const EmbeddingShape& shape, const int32_t* tokens,
                                 const void* dout, float* dwte, float* dwpe,
                                 Stream* stream = nullptr);

  // ---- Cross-entropy, split for vocab-parallel -------------------------------------------------
  // Three passes over the local logits (f32) [N, local_vocab], with an all-reduce between them when
  // the vocabulary is split (Megatron's vocab-parallel cross-entropy; single rank: no collectives):
  //   1. CrossEntropyMax: max (f32) [N] = the local row maximum.
  //      -> all-reduce MAX
  //   2. CrossEntropySums, given the global max: sum_exp (f32) [N] = sum over the local vocabulary
  //      of exp(logit - max); target_logit (f32) [N] = the target's logit when the target is local,
  //      else 0 (ignored tokens: 0).
  //      -> all-reduce SUM over sum_exp and target_logit (one all-reduce when they are the two
  //         halves of one [2, N] buffer)
  //   3. CrossEntropyLossAndGrad, given the global max, sum_exp and target_logit:
  //      losses (f32) [N] = log(sum_exp) + max - target_logit (0 for ignored tokens), and the
  //      logits gradient of the total loss sum_i loss_scale x losses[i]:
  //      dlogits (w) [N, local_vocab] = loss_scale x (softmax - onehot(target)), zero rows for
  //      ignored tokens. This is the backward of the loss, computed in the forward pass
  //      (docs/cost-model.md: the head saves dlogits, not the logits); dlogits may alias logits.
  // loss_scale is d(total loss)/d(token loss), e.g. 1 / (global tokens per step).
  absl::Status CrossEntropyMax(const CrossEntropyShape& shape, const float* logits, float* max,
                               Stream* stream = nullptr);
  absl::Status CrossEntropySums(const CrossEntropyShape& shape, const float* logits,
                                const int32_t* targets, const float* max, float* sum_exp,
                                float* target_logit, Stream* stream = nullptr);
  absl::Status CrossEntropyLossAndGrad(const CrossEntropyShape& shape, const float* logits,
                                       const int32_t* targets, const float* max,
                                       const float* sum_exp, const float* target_logit,
                                       float loss_scale, float* losses, void* dlogits,
                                       Stream* stream = nullptr);

  // ---- Residual -------------------------------------------------------------------------------
  // out = a + b over n elements (w); out may alias a or b.
  absl::Status ResidualForward(int64_t n, const void* a, const void* b, void* out,
                               Stream* stream = nullptr);
  // The gradient reaches both branches: da = dout and db = dout (+= for each when accumulate);
  // either may be nullptr. Pre-norm blocks usually need no call: the stream's gradient buffer is
  // passed on as is and the norms' backward accumulates into it.
  absl::Status ResidualBackward(int64_t n, const void* dout, void* da, void* db, bool accumulate,
                                Stream* stream = nullptr);

  // ---- Optimizer and gradient utilities -------------------------------------------------------
  // One AdamW step (PyTorch semantics) on n elements: with g = grad_scale x grads (grad_scale: the
  // clipping coefficient, 1 for none), m = b1 m + (1-b1) g, v = b2 v + (1-b2) g^2,
  // params -= lr (m / (1 - b1^step) / (sqrt(v / (1 - b2^step)) + eps) + wd params), the wd term
  // only when apply_weight_decay (norm weights and biases are usually exempt). step >= 1 counts
  // updates including this one. params, grads, m, v (f32); a bf16 backend refreshes the working
  // copy separately.
  absl::Status AdamWUpdate(int64_t n, const AdamWConfig& config, int64_t step,
                           bool apply_weight_decay, float grad_scale, float* params,
                           const float* grads, float* m, float* v, Stream* stream = nullptr);
  // x *= alpha over n elements (f32): gradient averaging, clipping.
  absl::Status Scale(int64_t n, float alpha, float* x, Stream* stream = nullptr);
  // *sum (f32, one element on the device) += sum of x[i]^2 over n elements: the squared gradient
  // norm, accumulated over tensors (zero *sum first), then all-reduced and read for clipping.
  absl::Status NormSquared(int64_t n, const float* x, float* sum, Stream* stream = nullptr);
  // *sum (f32, one element on the device) += sum of x[i] over n elements (f32): loss totals.
  absl::Status Sum(int64_t n, const float* x, float* sum, Stream* stream = nullptr);
  // y += alpha x over n elements (f32; x and y must not overlap): accumulating reduce-scattered
  // gradient shards.
  absl::Status Axpy(int64_t n, float alpha, const float* x, float* y, Stream* stream = nullptr);

 private:
  // What a backend implements: the same arguments, already validated.
  virtual absl::StatusOr<void*> DoAllocate(int64_t bytes) = 0;
  virtual void DoFree(void* ptr) = 0;
  virtual absl::Status DoCopyToDevice(void* device_dst, const void* host_src, int64_t bytes,
                                      Stream* stream) = 0;
  virtual absl::Status DoCopyToHost(void* host_dst, const void* device_src, int64_t bytes,
                                    Stream* stream) = 0;
  virtual absl::Status DoCopyOnDevice(void* device_dst, const void* device_src, int64_t bytes,
                                      Stream* stream) = 0;
  virtual absl::Status DoZero(void* device_dst, int64_t bytes, Stream* stream) = 0;
  virtual absl::Status DoSynchronize(Stream* stream) = 0;
  virtual absl::Status DoMatmulForward(const MatmulShape& shape, const void* a, const void* b,
                                       const void* bias, void* c, bool accumulate,
                                       Stream* stream) = 0;
  virtual absl::Status DoMatmulBackward(const MatmulShape& shape, const void* a, const void* b,
                                        const void* dc, void* da, float* db, float* dbias,
                                        bool accumulate_da, Stream* stream) = 0;
  virtual absl::Status DoLayerNormForward(const NormShape& shape, const void* inp,
                                          const void* weight, const void* bias, void* out,
                                          float* rstd, Stream* stream) = 0;
  virtual absl::Status DoLayerNormBackward(const NormShape& shape, const void* inp,
                                           const void* weight, const float* rstd,
                                           const void* dout, void* dinp, float* dweight,
                                           float* dbias, bool accumulate_dinp, Stream* stream) = 0;
  virtual absl::Status DoRmsNormForward(const NormShape& shape, const void* inp,
                                        const void* weight, void* out, float* rstd,
                                        Stream* stream) = 0;
  virtual absl::Status DoRmsNormBackward(const NormShape& shape, const void* inp,
                                         const void* weight, const float* rstd, const void* dout,
                                         void* dinp, float* dweight, bool accumulate_dinp,
                                         Stream* stream) = 0;
  virtual absl::Status DoGeluForward(int64_t n, const void* inp, void* out, Stream* stream) = 0;
  virtual absl::Status DoGeluBackward(int64_t n, const void* inp, const void* dout, void* dinp,
                                      Stream* stream) = 0;
  virtual absl::Status DoSwiGluForward(int64_t n, const void* gate, const void* up, void* out,
                                       Stream* stream) = 0;
  virtual absl::Status DoSwiGluBackward(int64_t n, const void* gate, const void* up,
                                        const void* dout, void* dgate, void* dup,
                                        Stream* stream) = 0;
  virtual absl::Status DoRopeForward(const RopeShape& shape, const void* inp, void* out,
                                     Stream* stream) = 0;
  virtual absl::Status DoRopeBackward(const RopeShape& shape, const void* dout, void* dinp,
                                      Stream* stream) = 0;
  virtual absl::Status DoAttentionForward(const AttentionShape& shape, const void* q,
                                          const void* k, const void* v, void* out, float* lse,
                                          Stream* stream) = 0;
  virtual absl::Status DoAttentionBackward(const AttentionShape& shape, const void* q,
                                           const void* k, const void* v, const void* out,
                                           const float* lse, const void* dout, void* dq,
                                           void* dk, void* dv, Stream* stream) = 0;
  virtual absl::Status DoEmbeddingForward(const EmbeddingShape& shape, const int32_t* tokens,
                                          const void* wte, const void* wpe, void* out,
                                          Stream* stream) = 0;
  virtual absl::Status DoEmbeddingBackward(const EmbeddingShape& shape, const int32_t* tokens,
                                           const void* dout, float* dwte, float* dwpe,
                                           Stream* stream) = 0;
  virtual absl::Status DoCrossEntropyMax(const CrossEntropyShape& shape, const float* logits,
                                         float* max, Stream* stream) = 0;
  virtual absl::Status DoCrossEntropySums(const CrossEntropyShape& shape, const float* logits,
                                          const int32_t* targets, const float* max, float* sum_exp,
                                          float* target_logit, Stream* stream) = 0;
  virtual absl::Status DoCrossEntropyLossAndGrad(const CrossEntropyShape& shape,
                                                 const float* logits, const int32_t* targets,
                                                 const float* max, const float* sum_exp,
                                                 const float* target_logit, float loss_scale,
                                                 float* losses, void* dlogits, Stream* stream) = 0;
  virtual absl::Status DoResidualForward(int64_t n, const void* a, const void* b, void* out,
                                         Stream* stream) = 0;
  virtual absl::Status DoResidualBackward(int64_t n, const void* dout, void* da, void* db,
                                          bool accumulate, Stream* stream) = 0;
  virtual absl::Status DoAdamWUpdate(int64_t n, const AdamWConfig& config, int64_t step,
                                     bool apply_weight_decay, float grad_scale, float* params,
                                     const float* grads, float* m, float* v, Stream* stream) = 0;
  virtual absl::Status DoScale(int64_t n, float alpha, float* x, Stream* stream) = 0;
  virtual absl::Status DoNormSquared(int64_t n, const float* x, float* sum, Stream* stream) = 0;
  virtual absl::Status DoSum(int64_t n, const float* x, float* sum, Stream* stream) = 0;
  virtual absl::Status DoAxpy(int64_t n, float alpha, const float* x, float* y,
                              Stream* stream) = 0;
  virtual absl::Status DoCopy2D(int64_t rows, int64_t row_bytes, const void* src,
                                int64_t src_pitch, void* dst, int64_t dst_pitch,
                                Stream* stream) = 0;
  virtual absl::Status DoAdd2D(int64_t rows, int64_t row_elements, const void* src,
                               int64_t src_pitch, void* dst, int64_t dst_pitch,
                               Stream* stream) = 0;
  virtual absl::Status DoToWorking(int64_t n, const float* src, void* dst, Stream* stream) = 0;
  virtual absl::Status DoFromWorking(int64_t n, const void* src, float* dst, Stream* stream) = 0;
};

}  // namespace cairn::runtime

#endif  // CAIRN_RUNTIME_COMPUTE_COMPUTE_BACKEND_H_
