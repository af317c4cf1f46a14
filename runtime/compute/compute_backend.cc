// The public entry points of ComputeBackend: validate, then dispatch to the backend's Do* method.
// Validation lives here, once, so that every backend rejects the same inputs with the same message.
#include "runtime/compute/compute_backend.h"

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"

namespace cairn::runtime {
namespace {

absl::Status Positive(const char* what, const char* field, int64_t value) {
  if (value > 0) return absl::OkStatus();
  return absl::InvalidArgumentError(absl::StrCat(what, ": ", field, " must be > 0, got ", value));
}

absl::Status NonNegative(const char* what, const char* field, int64_t value) {
  if (value >= 0) return absl::OkStatus();
  return absl::InvalidArgumentError(absl::StrCat(what, ": ", field, " must be >= 0, got ", value));
}

// Required pointers must be non-null (only checked when the operation touches memory at all).
absl::Status Required(const char* what, const char* field, const void* ptr) {
  if (ptr != nullptr) return absl::OkStatus();
  return absl::InvalidArgumentError(absl::StrCat(what, ": ", field, " is null"));
}

absl::Status RequiredIf(bool needed, const char* what, const char* field, const void* ptr) {
  return needed ? Required(what, field, ptr) : absl::OkStatus();
}

}  // namespace

absl::Status CheckMatmulShape(const MatmulShape& s) {
  CAIRN_RETURN_IF_ERROR(Positive("matmul", "m", s.m));
  CAIRN_RETURN_IF_ERROR(Positive("matmul", "n", s.n));
  return Positive("matmul", "k", s.k);
}

absl::Status CheckNormShape(const NormShape& s) {
  CAIRN_RETURN_IF_ERROR(Positive("norm", "rows", s.rows));
  CAIRN_RETURN_IF_ERROR(Positive("norm", "cols", s.cols));
  if (!(s.eps >= 0.0f)) {
    return absl::InvalidArgumentError(absl::StrCat("norm: eps must be >= 0, got ", s.eps));
  }
  return absl::OkStatus();
}

absl::Status CheckRopeShape(const RopeShape& s) {
  CAIRN_RETURN_IF_ERROR(Positive("rope", "batch", s.batch));
  CAIRN_RETURN_IF_ERROR(Positive("rope", "seq", s.seq));
  CAIRN_RETURN_IF_ERROR(Positive("rope", "num_heads", s.num_heads));
  CAIRN_RETURN_IF_ERROR(Positive("rope", "head_dim", s.head_dim));
  if (s.head_dim % 2 != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("rope: head_dim must be even, got ", s.head_dim));
  }
  if (s.token_stride != 0 && s.token_stride < s.num_heads * s.head_dim) {
    return absl::InvalidArgumentError(
        absl::StrCat("rope: token_stride ", s.token_stride,
                     " is less than num_heads x head_dim = ", s.num_heads * s.head_dim));
  }
  CAIRN_RETURN_IF_ERROR(NonNegative("rope", "position_offset", s.position_offset));
  if (!(s.theta > 0.0f)) {
    return absl::InvalidArgumentError(absl::StrCat("rope: theta must be > 0, got ", s.theta));
  }
  return absl::OkStatus();
}

absl::Status CheckAttentionShape(const AttentionShape& s) {
  CAIRN_RETURN_IF_ERROR(Positive("attention", "batch", s.batch));
  CAIRN_RETURN_IF_ERROR(Positive("attention", "seq", s.seq));
  CAIRN_RETURN_IF_ERROR(Positive("attention", "num_heads", s.num_heads));
  CAIRN_RETURN_IF_ERROR(Positive("attention", "num_kv_heads", s.num_kv_heads));
  CAIRN_RETURN_IF_ERROR(Positive("attention", "head_dim", s.head_dim));
  if (s.num_heads % s.num_kv_heads != 0) {
    return absl::InvalidArgumentError(absl::StrCat("attention: num_heads ", s.num_heads,
                                                   " is not a multiple of num_kv_heads ",
                                                   s.num_kv_heads));
  }
  if (s.head_begin < 0 || s.head_begin >= s.head_end || s.head_end > s.num_heads) {
    return absl::InvalidArgumentError(absl::StrCat("attention: head range [", s.head_begin, ", ",
                                                   s.head_end, ") is empty or outside [0, ",
                                                   s.num_heads, ")"));
  }
  if (s.q_stride != 0 && s.q_stride < s.local_heads() * s.head_dim) {
    return absl::InvalidArgumentError(
        absl::StrCat("attention: q_stride ", s.q_stride,
                     " is less than local_heads x head_dim = ", s.local_heads() * s.head_dim));
  }
  if (s.kv_stride != 0 && s.kv_stride < s.local_kv_heads() * s.head_dim) {
    return absl::InvalidArgumentError(absl::StrCat(
        "attention: kv_stride ", s.kv_stride,
        " is less than local_kv_heads x head_dim = ", s.local_kv_heads() * s.head_dim));
  }
  return absl::OkStatus();
}

absl::Status CheckEmbeddingShape(const EmbeddingShape& s) {
  CAIRN_RETURN_IF_ERROR(Positive("embedding", "batch", s.batch));
  CAIRN_RETURN_IF_ERROR(Positive("embedding", "seq", s.seq));
  CAIRN_RETURN_IF_ERROR(Positive("embedding", "channels", s.channels));
  if (s.vocab_begin < 0 || s.vocab_begin >= s.vocab_end) {
    return absl::InvalidArgumentError(absl::StrCat("embedding: vocabulary range [", s.vocab_begin,
                                                   ", ", s.vocab_end, ") is empty or negative"));
  }
  return NonNegative("embedding", "position_offset", s.position_offset);
}

absl::Status CheckCrossEntropyShape(const CrossEntropyShape& s) {
  CAIRN_RETURN_IF_ERROR(Positive("cross-entropy", "tokens", s.tokens));
  CAIRN_RETURN_IF_ERROR(Positive("cross-entropy", "vocab_size", s.vocab_size));
  if (s.vocab_begin < 0 || s.vocab_begin >= s.vocab_end || s.vocab_end > s.vocab_size) {
    return absl::InvalidArgumentError(
        absl::StrCat("cross-entropy: vocabulary range [", s.vocab_begin, ", ", s.vocab_end,
                     ") is empty or outside [0, ", s.vocab_size, ")"));
  }
  return absl::OkStatus();
}

absl::Status CheckAdamWConfig(const AdamWConfig& c) {
  if (!(c.learning_rate >= 0.0f)) {
    return absl::InvalidArgumentError(
        absl::StrCat("adamw: learning_rate must be >= 0, got ", c.learning_rate));
  }
  if (!(c.beta1 >= 0.0f && c.beta1 < 1.0f) || !(c.beta2 >= 0.0f && c.beta2 < 1.0f)) {
    return absl::InvalidArgumentError(
        absl::StrCat("adamw: betas must be in [0, 1), got ", c.beta1, " and ", c.beta2));
  }
  if (!(c.eps > 0.0f)) {
    return absl::InvalidArgumentError(absl::StrCat("adamw: eps must be > 0, got ", c.eps));
  }
  if (!(c.weight_decay >= 0.0f)) {
    return absl::InvalidArgumentError(
        absl::StrCat("adamw: weight_decay must be >= 0, got ", c.weight_decay));
  }
  return absl::OkStatus();
}

// ---- Memory -----------------------------------------------------------------------------------

absl::StatusOr<void*> ComputeBackend::Allocate(int64_t bytes) {
  CAIRN_RETURN_IF_ERROR(NonNegative("allocate", "bytes", bytes));
  return DoAllocate(bytes);
}

void ComputeBackend::Free(void* ptr) {
  if (ptr != nullptr) DoFree(ptr);
}

absl::Status ComputeBackend::CopyToDevice(void* device_dst, const void* host_src, int64_t bytes,
                                          Stream* stream) {
  CAIRN_RETURN_IF_ERROR(NonNegative("copy", "bytes", bytes));
  if (bytes == 0) return absl::OkStatus();
  CAIRN_RETURN_IF_ERROR(Required("copy", "device_dst", device_dst));
  CAIRN_RETURN_IF_ERROR(Required("copy", "host_src", host_src));
  return DoCopyToDevice(device_dst, host_src, bytes, stream);
}

absl::Status ComputeBackend::CopyToHost(void* host_dst, const void* device_src, int64_t bytes,
                                        Stream* stream) {
  CAIRN_RETURN_IF_ERROR(NonNegative("copy", "bytes", bytes));
  if (bytes == 0) return absl::OkStatus();
  CAIRN_RETURN_IF_ERROR(Required("copy", "host_dst", host_dst));
  CAIRN_RETURN_IF_ERROR(Required("copy", "device_src", device_src));
  return DoCopyToHost(host_dst, device_src, bytes, stream);
}

absl::Status ComputeBackend::CopyOnDevice(void* device_dst, const void* device_src, int64_t bytes,
                                          Stream* stream) {
  CAIRN_RETURN_IF_ERROR(NonNegative("copy", "bytes", bytes));
  if (bytes == 0) return absl::OkStatus();
  CAIRN_RETURN_IF_ERROR(Required("copy", "device_dst", device_dst));
  CAIRN_RETURN_IF_ERROR(Required("copy", "device_src", device_src));
  return DoCopyOnDevice(device_dst, device_src, bytes, stream);
}

absl::Status ComputeBackend::Zero(void* device_dst, int64_t bytes, Stream* stream) {
  CAIRN_RETURN_IF_ERROR(NonNegative("zero", "bytes", bytes));
  if (bytes == 0) return absl::OkStatus();
  CAIRN_RETURN_IF_ERROR(Required("zero", "device_dst", device_dst));
  return DoZero(device_dst, bytes, stream);
}

absl::Status ComputeBackend::Synchronize(Stream* stream) { return DoSynchronize(stream); }

absl::Status ComputeBackend::Copy2D(int64_t rows, int64_t row_bytes, const void* src,
                                    int64_t src_pitch, void* dst, int64_t dst_pitch,
                                    Stream* stream) {
  CAIRN_RETURN_IF_ERROR(NonNegative("copy2d", "rows", rows));
  CAIRN_RETURN_IF_ERROR(NonNegative("copy2d", "row_bytes", row_bytes));
  if (src_pitch < row_bytes || dst_pitch < row_bytes) {
    return absl::InvalidArgumentError(absl::StrCat("copy2d: pitches ", src_pitch, " and ",
                                                   dst_pitch, " must be >= row_bytes ", row_bytes));
  }
  if (rows == 0 || row_bytes == 0) return absl::OkStatus();
  CAIRN_RETURN_IF_ERROR(Required("copy2d", "src", src));
  CAIRN_RETURN_IF_ERROR(Required("copy2d", "dst", dst));
  return DoCopy2D(rows, row_bytes, src, src_pitch, dst, dst_pitch, stream);
}

absl::Status ComputeBackend::Add2D(int64_t rows, int64_t row_elements, const void* src,
                                   int64_t src_pitch, void* dst, int64_t dst_pitch,
                                   Stream* stream) {
  CAIRN_RETURN_IF_ERROR(NonNegative("add2d", "rows", rows));
  CAIRN_RETURN_IF_ERROR(NonNegative("add2d", "row_elements", row_elements));
  if (src_pitch < row_elements || dst_pitch < row_elements) {
    return absl::InvalidArgumentError(absl::StrCat("add2d: pitches ", src_pitch, " and ",
                                                   dst_pitch, " must be >= row_elements ",
                                                   row_elements));
  }
  if (rows == 0 || row_elements == 0) return absl::OkStatus();
  CAIRN_RETURN_IF_ERROR(Required("add2d", "src", src));
  CAIRN_RETURN_IF_ERROR(Required("add2d", "dst", dst));
  return DoAdd2D(rows, row_elements, src, src_pitch, dst, dst_pitch, stream);
}

absl::Status ComputeBackend::ToWorking(int64_t n, const float* src, void* dst, Stream* stream) {
  CAIRN_RETURN_IF_ERROR(NonNegative("to_working", "n", n));
  if (n == 0) return absl::OkStatus();
  CAIRN_RETURN_IF_ERROR(Required("to_working", "src", src));
  CAIRN_RETURN_IF_ERROR(Required("to_working", "dst", dst));
  return DoToWorking(n, src, dst, stream);
}

absl::Status ComputeBackend::FromWorking(int64_t n, const void* src, float* dst, Stream* stream) {
  CAIRN_RETURN_IF_ERROR(NonNegative("from_working", "n", n));
  if (n == 0) return absl::OkStatus();
  CAIRN_RETURN_IF_ERROR(Required("from_working", "src", src));
  CAIRN_RETURN_IF_ERROR(Required("from_working", "dst", dst));
  return DoFromWorking(n, src, dst, stream);
}

// ---- Matmul -----------------------------------------------------------------------------------

absl::Status ComputeBackend::MatmulForward(const MatmulShape& shape, const void* a, const void* b,
                                           const void* bias, void* c, bool accumulate,
                                           Stream* stream) {
  CAIRN_RETURN_IF_ERROR(CheckMatmulShape(shape));
  CAIRN_RETURN_IF_ERROR(Required("matmul", "a", a));
  CAIRN_RETURN_IF_ERROR(Required("matmul", "b", b));
  CAIRN_RETURN_IF_ERROR(Required("matmul", "c", c));
  return DoMatmulForward(shape, a, b, bias, c, accumulate, stream);
}

absl::Status ComputeBackend::MatmulBackward(const MatmulShape& shape, const void* a,
                                            const void* b, const void* dc, void* da, float* db,
                                            float* dbias, bool accumulate_da, Stream* stream) {
  CAIRN_RETURN_IF_ERROR(CheckMatmulShape(shape));
  CAIRN_RETURN_IF_ERROR(Required("matmul backward", "dc", dc));
  CAIRN_RETURN_IF_ERROR(RequiredIf(da != nullptr, "matmul backward", "b (needed for da)", b));
  CAIRN_RETURN_IF_ERROR(RequiredIf(db != nullptr, "matmul backward", "a (needed for db)", a));
  return DoMatmulBackward(shape, a, b, dc, da, db, dbias, accumulate_da, stream);
}

// ---- Normalisation ----------------------------------------------------------------------------

absl::Status ComputeBackend::LayerNormForward(const NormShape& shape, const void* inp,
                                              const void* weight, const void* bias, void* out,
                                              float* rstd, Stream* stream) {
  CAIRN_RETURN_IF_ERROR(CheckNormShape(shape));
  CAIRN_RETURN_IF_ERROR(Required("layernorm", "inp", inp));
  CAIRN_RETURN_IF_ERROR(Required("layernorm", "weight", weight));
  CAIRN_RETURN_IF_ERROR(Required("layernorm", "out", out));
  CAIRN_RETURN_IF_ERROR(Required("layernorm", "rstd", rstd));
  return DoLayerNormForward(shape, inp, weight, bias, out, rstd, stream);
}

absl::Status ComputeBackend::LayerNormBackward(const NormShape& shape, const void* inp,
                                               const void* weight, const float* rstd,
                                               const void* dout, void* dinp, float* dweight,
                                               float* dbias, bool accumulate_dinp, Stream* stream) {
  CAIRN_RETURN_IF_ERROR(CheckNormShape(shape));
  CAIRN_RETURN_IF_ERROR(Required("layernorm backward", "inp", inp));
  CAIRN_RETURN_IF_ERROR(Required("layernorm backward", "weight", weight));
  CAIRN_RETURN_IF_ERROR(Required("layernorm backward", "rstd", rstd));
  CAIRN_RETURN_IF_ERROR(Required("layernorm backward", "dout", dout));
  CAIRN_RETURN_IF_ERROR(Required("layernorm backward", "dinp", dinp));
  CAIRN_RETURN_IF_ERROR(Required("layernorm backward", "dweight", dweight));
  return DoLayerNormBackward(shape, inp, weight, rstd, dout, dinp, dweight, dbias, accumulate_dinp,
                             stream);
}

absl::Status ComputeBackend::RmsNormForward(const NormShape& shape, const void* inp,
                                            const void* weight, void* out, float* rstd,
                                            Stream* stream) {
  CAIRN_RETURN_IF_ERROR(CheckNormShape(shape));
  CAIRN_RETURN_IF_ERROR(Required("rmsnorm", "inp", inp));
  CAIRN_RETURN_IF_ERROR(Required("rmsnorm", "weight", weight));
  CAIRN_RETURN_IF_ERROR(Required("rmsnorm", "out", out));
  CAIRN_RETURN_IF_ERROR(Required("rmsnorm", "rstd", rstd));
  return DoRmsNormForward(shape, inp, weight, out, rstd, stream);
}

absl::Status ComputeBackend::RmsNormBackward(const NormShape& shape, const void* inp,
                                             const void* weight, const float* rstd,
                                             const void* dout, void* dinp, float* dweight,
                                             bool accumulate_dinp, Stream* stream) {
  CAIRN_RETURN_IF_ERROR(CheckNormShape(shape));
  CAIRN_RETURN_IF_ERROR(Required("rmsnorm backward", "inp", inp));
  CAIRN_RETURN_IF_ERROR(Required("rmsnorm backward", "weight", weight));
  CAIRN_RETURN_IF_ERROR(Required("rmsnorm backward", "rstd", rstd));
  CAIRN_RETURN_IF_ERROR(Required("rmsnorm backward", "dout", dout));
  CAIRN_RETURN_IF_ERROR(Required("rmsnorm backward", "dinp", dinp));
  CAIRN_RETURN_IF_ERROR(Required("rmsnorm backward", "dweight", dweight));
  return DoRmsNormBackward(shape, inp, weight, rstd, dout, dinp, dweight, accumulate_dinp, stream);
}

// ---- Activations ------------------------------------------------------------------------------

absl::Status ComputeBackend::GeluForward(int64_t n, const void* inp, void* out, Stream* stream) {
  CAIRN_RETURN_IF_ERROR(NonNegative("gelu", "n", n));
  if (n == 0) return absl::OkStatus();
  CAIRN_RETURN_IF_ERROR(Required("gelu", "inp", inp));
  CAIRN_RETURN_IF_ERROR(Required("gelu", "out", out));
  return DoGeluForward(n, inp, out, stream);
}

absl::Status ComputeBackend::GeluBackward(int64_t n, const void* inp, const void* dout,
                                          void* dinp, Stream* stream) {
  CAIRN_RETURN_IF_ERROR(NonNegative("gelu backward", "n", n));
  if (n == 0) return absl::OkStatus();
  CAIRN_RETURN_IF_ERROR(Required("gelu backward", "inp", inp));
  CAIRN_RETURN_IF_ERROR(Required("gelu backward", "dout", dout));
  CAIRN_RETURN_IF_ERROR(Required("gelu backward", "dinp", dinp));
  return DoGeluBackward(n, inp, dout, dinp, stream);
}

absl::Status ComputeBackend::SwiGluForward(int64_t n, const void* gate, const void* up,
                                           void* out, Stream* stream) {
  CAIRN_RETURN_IF_ERROR(NonNegative("swiglu", "n", n));
  if (n == 0) return absl::OkStatus();
  CAIRN_RETURN_IF_ERROR(Required("swiglu", "gate", gate));
  CAIRN_RETURN_IF_ERROR(Required("swiglu", "up", up));
  CAIRN_RETURN_IF_ERROR(Required("swiglu", "out", out));
  return DoSwiGluForward(n, gate, up, out, stream);
}

absl::Status ComputeBackend::SwiGluBackward(int64_t n, const void* gate, const void* up,
                                            const void* dout, void* dgate, void* dup,
                                            Stream* stream) {
  CAIRN_RETURN_IF_ERROR(NonNegative("swiglu backward", "n", n));
  if (n == 0) return absl::OkStatus();
  CAIRN_RETURN_IF_ERROR(Required("swiglu backward", "gate", gate));
  CAIRN_RETURN_IF_ERROR(Required("swiglu backward", "up", up));
  CAIRN_RETURN_IF_ERROR(Required("swiglu backward", "dout", dout));
  CAIRN_RETURN_IF_ERROR(Required("swiglu backward", "dgate", dgate));
  CAIRN_RETURN_IF_ERROR(Required("swiglu backward", "dup", dup));
  return DoSwiGluBackward(n, gate, up, dout, dgate, dup, stream);
}

// ---- RoPE -------------------------------------------------------------------------------------

absl::Status ComputeBackend::RopeForward(const RopeShape& shape, const void* inp, void* out,
                                         Stream* stream) {
  CAIRN_RETURN_IF_ERROR(CheckRopeShape(shape));
  CAIRN_RETURN_IF_ERROR(Required("rope", "inp", inp));
  CAIRN_RETURN_IF_ERROR(Required("rope", "out", out));
  return DoRopeForward(shape, inp, out, stream);
}

absl::Status ComputeBackend::RopeBackward(const RopeShape& shape, const void* dout, void* dinp,
                                          Stream* stream) {
  CAIRN_RETURN_IF_ERROR(CheckRopeShape(shape));
  CAIRN_RETURN_IF_ERROR(Required("rope backward", "dout", dout));
  CAIRN_RETURN_IF_ERROR(Required("rope backward", "dinp", dinp));
  return DoRopeBackward(shape, dout, dinp, stream);
}

// ---- Attention --------------------------------------------------------------------------------

absl::Status ComputeBackend::AttentionForward(const AttentionShape& shape, const void* q,
                                              const void* k, const void* v, void* out,
                                              float* lse, Stream* stream) {
  CAIRN_RETURN_IF_ERROR(CheckAttentionShape(shape));
  CAIRN_RETURN_IF_ERROR(Required("attention", "q", q));
  CAIRN_RETURN_IF_ERROR(Required("attention", "k", k));
  CAIRN_RETURN_IF_ERROR(Required("attention", "v", v));
  CAIRN_RETURN_IF_ERROR(Required("attention", "out", out));
  CAIRN_RETURN_IF_ERROR(Required("attention", "lse", lse));
  return DoAttentionForward(shape, q, k, v, out, lse, stream);
}

absl::Status ComputeBackend::AttentionBackward(const AttentionShape& shape, const void* q,
                                               const void* k, const void* v, const void* out,
                                               const float* lse, const void* dout, void* dq,
                                               void* dk, void* dv, Stream* stream) {
  CAIRN_RETURN_IF_ERROR(CheckAttentionShape(shape));
  const char* what = "attention backward";
  CAIRN_RETURN_IF_ERROR(Required(what, "q", q));
  CAIRN_RETURN_IF_ERROR(Required(what, "k", k));
  CAIRN_RETURN_IF_ERROR(Required(what, "v", v));
  CAIRN_RETURN_IF_ERROR(Required(what, "out", out));
  CAIRN_RETURN_IF_ERROR(Required(what, "lse", lse));
  CAIRN_RETURN_IF_ERROR(Required(what, "dout", dout));
  CAIRN_RETURN_IF_ERROR(Required(what, "dq", dq));
  CAIRN_RETURN_IF_ERROR(Required(what, "dk", dk));
  CAIRN_RETURN_IF_ERROR(Required(what, "dv", dv));
  return DoAttentionBackward(shape, q, k, v, out, lse, dout, dq, dk, dv, stream);
}

// ---- Embedding --------------------------------------------------------------------------------

namespace {
absl::Status CheckPositions(const char* what, const EmbeddingShape& s, const void* wpe) {
  if (wpe == nullptr) return absl::OkStatus();
  if (s.position_offset + s.seq > s.max_positions) {
    return absl::InvalidArgumentError(absl::StrCat(what, ": positions [", s.position_offset, ", ",
                                                   s.position_offset + s.seq,
                                                   ") exceed max_positions ", s.max_positions));
  }
  return absl::OkStatus();
}
}  // namespace

absl::Status ComputeBackend::EmbeddingForward(const EmbeddingShape& shape, const int32_t* tokens,
                                              const void* wte, const void* wpe, void* out,
                                              Stream* stream) {
  CAIRN_RETURN_IF_ERROR(CheckEmbeddingShape(shape));
  CAIRN_RETURN_IF_ERROR(CheckPositions("embedding", shape, wpe));
  CAIRN_RETURN_IF_ERROR(Required("embedding", "tokens", tokens));
  CAIRN_RETURN_IF_ERROR(Required("embedding", "wte", wte));
  CAIRN_RETURN_IF_ERROR(Required("embedding", "out", out));
  return DoEmbeddingForward(shape, tokens, wte, wpe, out, stream);
}

absl::Status ComputeBackend::EmbeddingBackward(const EmbeddingShape& shape, const int32_t* tokens,
                                               const void* dout, float* dwte, float* dwpe,
                                               Stream* stream) {
  CAIRN_RETURN_IF_ERROR(CheckEmbeddingShape(shape));
  CAIRN_RETURN_IF_ERROR(CheckPositions("embedding backward", shape, dwpe));
  CAIRN_RETURN_IF_ERROR(Required("embedding backward", "tokens", tokens));
  CAIRN_RETURN_IF_ERROR(Required("embedding backward", "dout", dout));
  CAIRN_RETURN_IF_ERROR(Required("embedding backward", "dwte", dwte));
  return DoEmbeddingBackward(shape, tokens, dout, dwte, dwpe, stream);
}

// ---- Cross-entropy ----------------------------------------------------------------------------

absl::Status ComputeBackend::CrossEntropyMax(const CrossEntropyShape& shape, const float* logits,
                                             float* max, Stream* stream) {
  CAIRN_RETURN_IF_ERROR(CheckCrossEntropyShape(shape));
  CAIRN_RETURN_IF_ERROR(Required("cross-entropy max", "logits", logits));
  CAIRN_RETURN_IF_ERROR(Required("cross-entropy max", "max", max));
  return DoCrossEntropyMax(shape, logits, max, stream);
}

absl::Status ComputeBackend::CrossEntropySums(const CrossEntropyShape& shape, const float* logits,
                                              const int32_t* targets, const float* max,
                                              float* sum_exp, float* target_logit, Stream* stream) {
  CAIRN_RETURN_IF_ERROR(CheckCrossEntropyShape(shape));
  const char* what = "cross-entropy sums";
  CAIRN_RETURN_IF_ERROR(Required(what, "logits", logits));
  CAIRN_RETURN_IF_ERROR(Required(what, "targets", targets));
  CAIRN_RETURN_IF_ERROR(Required(what, "max", max));
  CAIRN_RETURN_IF_ERROR(Required(what, "sum_exp", sum_exp));
  CAIRN_RETURN_IF_ERROR(Required(what, "target_logit", target_logit));
  return DoCrossEntropySums(shape, logits, targets, max, sum_exp, target_logit, stream);
}

absl::Status ComputeBackend::CrossEntropyLossAndGrad(const CrossEntropyShape& shape,
                                                     const float* logits, const int32_t* targets,
                                                     const float* max, const float* sum_exp,
                                                     const float* target_logit, float loss_scale,
                                                     float* losses, void* dlogits,
                                                     Stream* stream) {
  CAIRN_RETURN_IF_ERROR(CheckCrossEntropyShape(shape));
  const char* what = "cross-entropy loss";
  CAIRN_RETURN_IF_ERROR(Required(what, "logits", logits));
  CAIRN_RETURN_IF_ERROR(Required(what, "targets", targets));
  CAIRN_RETURN_IF_ERROR(Required(what, "max", max));
  CAIRN_RETURN_IF_ERROR(Required(what, "sum_exp", sum_exp));
  CAIRN_RETURN_IF_ERROR(Required(what, "target_logit", target_logit));
  CAIRN_RETURN_IF_ERROR(Required(what, "losses", losses));
  CAIRN_RETURN_IF_ERROR(Required(what, "dlogits", dlogits));
  return DoCrossEntropyLossAndGrad(shape, logits, targets, max, sum_exp, target_logit, loss_scale,
                                   losses, dlogits, stream);
}

// ---- Residual, optimizer, utilities -------------------------------------------------------------

absl::Status ComputeBackend::ResidualForward(int64_t n, const void* a, const void* b, void* out,
                                             Stream* stream) {
  CAIRN_RETURN_IF_ERROR(NonNegative("residual", "n", n));
  if (n == 0) return absl::OkStatus();
  CAIRN_RETURN_IF_ERROR(Required("residual", "a", a));
  CAIRN_RETURN_IF_ERROR(Required("residual", "b", b));
  CAIRN_RETURN_IF_ERROR(Required("residual", "out", out));
  return DoResidualForward(n, a, b, out, stream);
}

absl::Status ComputeBackend::ResidualBackward(int64_t n, const void* dout, void* da, void* db,
                                              bool accumulate, Stream* stream) {
  CAIRN_RETURN_IF_ERROR(NonNegative("residual backward", "n", n));
  if (n == 0) return absl::OkStatus();
  CAIRN_RETURN_IF_ERROR(Required("residual backward", "dout", dout));
  return DoResidualBackward(n, dout, da, db, accumulate, stream);
}

absl::Status ComputeBackend::AdamWUpdate(int64_t n, const AdamWConfig& config, int64_t step,
                                         bool apply_weight_decay, float grad_scale, float* params,
                                         const float* grads, float* m, float* v, Stream* stream) {
  CAIRN_RETURN_IF_ERROR(NonNegative("adamw", "n", n));
  CAIRN_RETURN_IF_ERROR(CheckAdamWConfig(config));
  CAIRN_RETURN_IF_ERROR(Positive("adamw", "step", step));
  if (n == 0) return absl::OkStatus();
  CAIRN_RETURN_IF_ERROR(Required("adamw", "params", params));
  CAIRN_RETURN_IF_ERROR(Required("adamw", "grads", grads));
  CAIRN_RETURN_IF_ERROR(Required("adamw", "m", m));
  CAIRN_RETURN_IF_ERROR(Required("adamw", "v", v));
  return DoAdamWUpdate(n, config, step, apply_weight_decay, grad_scale, params, grads, m, v,
                       stream);
}

absl::Status ComputeBackend::Scale(int64_t n, float alpha, float* x, Stream* stream) {
  CAIRN_RETURN_IF_ERROR(NonNegative("scale", "n", n));
  if (n == 0) return absl::OkStatus();
  CAIRN_RETURN_IF_ERROR(Required("scale", "x", x));
  return DoScale(n, alpha, x, stream);
}

absl::Status ComputeBackend::NormSquared(int64_t n, const float* x, float* sum, Stream* stream) {
  CAIRN_RETURN_IF_ERROR(NonNegative("norm squared", "n", n));
  CAIRN_RETURN_IF_ERROR(Required("norm squared", "sum", sum));
  if (n == 0) return absl::OkStatus();
  CAIRN_RETURN_IF_ERROR(Required("norm squared", "x", x));
  return DoNormSquared(n, x, sum, stream);
}

absl::Status ComputeBackend::Sum(int64_t n, const float* x, float* sum, Stream* stream) {
  CAIRN_RETURN_IF_ERROR(NonNegative("sum", "n", n));
  CAIRN_RETURN_IF_ERROR(Required("sum", "sum", sum));
  if (n == 0) return absl::OkStatus();
  CAIRN_RETURN_IF_ERROR(Required("sum", "x", x));
  return DoSum(n, x, sum, stream);
}

absl::Status ComputeBackend::Axpy(int64_t n, float alpha, const float* x, float* y,
                                  Stream* stream) {
  CAIRN_RETURN_IF_ERROR(NonNegative("axpy", "n", n));
  if (n == 0) return absl::OkStatus();
  CAIRN_RETURN_IF_ERROR(Required("axpy", "x", x));
  CAIRN_RETURN_IF_ERROR(Required("axpy", "y", y));
  return DoAxpy(n, alpha, x, y, stream);
}

}  // namespace cairn::runtime
