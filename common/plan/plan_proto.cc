#include "common/plan/plan_proto.h"

#include "absl/strings/str_cat.h"

namespace cairn::plan {

cairn::v1::ParallelMode ToProto(ParallelMode mode) {
  switch (mode) {
    case ParallelMode::kTensor: return cairn::v1::PARALLEL_MODE_TENSOR;
    case ParallelMode::kTensorSequence: return cairn::v1::PARALLEL_MODE_TENSOR_SEQUENCE;
    case ParallelMode::kUlysses: return cairn::v1::PARALLEL_MODE_ULYSSES;
  }
  return cairn::v1::PARALLEL_MODE_TENSOR;
}

cairn::v1::DataParallelMode ToProto(DpMode mode) {
  switch (mode) {
    case DpMode::kDdp: return cairn::v1::DATA_PARALLEL_MODE_DDP;
    case DpMode::kZero1: return cairn::v1::DATA_PARALLEL_MODE_ZERO1;
    case DpMode::kZero2: return cairn::v1::DATA_PARALLEL_MODE_ZERO2;
    case DpMode::kZero3: return cairn::v1::DATA_PARALLEL_MODE_ZERO3;
  }
  return cairn::v1::DATA_PARALLEL_MODE_DDP;
}

cairn::v1::PipelineSchedule ToProto(Schedule schedule) {
  switch (schedule) {
    case Schedule::k1F1B: return cairn::v1::PIPELINE_SCHEDULE_1F1B;
    case Schedule::kGPipe: return cairn::v1::PIPELINE_SCHEDULE_GPIPE;
    case Schedule::kInterleaved1F1B: return cairn::v1::PIPELINE_SCHEDULE_INTERLEAVED_1F1B;
  }
  return cairn::v1::PIPELINE_SCHEDULE_1F1B;
}

cairn::v1::LayerKind ToProto(LayerKind kind) {
  switch (kind) {
    case LayerKind::kEmbedding: return cairn::v1::LAYER_KIND_EMBEDDING;
    case LayerKind::kBlock: return cairn::v1::LAYER_KIND_TRANSFORMER_BLOCK;
    case LayerKind::kHead: return cairn::v1::LAYER_KIND_HEAD;
  }
  return cairn::v1::LAYER_KIND_TRANSFORMER_BLOCK;
}

ParallelMode FromProto(cairn::v1::ParallelMode mode) {
  switch (mode) {
    case cairn::v1::PARALLEL_MODE_TENSOR_SEQUENCE: return ParallelMode::kTensorSequence;
    case cairn::v1::PARALLEL_MODE_ULYSSES: return ParallelMode::kUlysses;
    default: return ParallelMode::kTensor;
  }
}

DpMode FromProto(cairn::v1::DataParallelMode mode) {
  switch (mode) {
    case cairn::v1::DATA_PARALLEL_MODE_ZERO1: return DpMode::kZero1;
    case cairn::v1::DATA_PARALLEL_MODE_ZERO2: return DpMode::kZero2;
    case cairn::v1::DATA_PARALLEL_MODE_ZERO3: return DpMode::kZero3;
    default: return DpMode::kDdp;
  }
}

Schedule FromProto(cairn::v1::PipelineSchedule schedule) {
  switch (schedule) {
    case cairn::v1::PIPELINE_SCHEDULE_GPIPE: return Schedule::kGPipe;
    case cairn::v1::PIPELINE_SCHEDULE_INTERLEAVED_1F1B: return Schedule::kInterleaved1F1B;
    default: return Schedule::k1F1B;
  }
}

LayerKind FromProto(cairn::v1::LayerKind kind) {
  switch (kind) {
    case cairn::v1::LAYER_KIND_EMBEDDING: return LayerKind::kEmbedding;
    case cairn::v1::LAYER_KIND_HEAD: return LayerKind::kHead;
    default: return LayerKind::kBlock;
  }
}

ModelDims ModelDimsFromSpec(const cairn::v1::ModelSpec& spec) {
  ModelDims d;
  d.name = spec.name();
  d.num_layers = spec.num_layers();
  d.hidden = spec.hidden_size();
  d.ffn_hidden = spec.ffn_hidden_size();
  d.num_heads = spec.num_heads();
  d.num_kv_heads = spec.num_kv_heads();
  d.vocab = spec.vocab_size();
  d.max_seq_len = spec.max_seq_len();
  d.rms_norm = spec.norm() == cairn::v1::NORM_KIND_RMSNORM;
  d.swiglu = spec.activation() == cairn::v1::ACTIVATION_KIND_SWIGLU;
  d.rope = spec.position() == cairn::v1::POSITION_KIND_ROPE;
  d.tied_embeddings = spec.tied_embeddings();
  d.bias = spec.bias();
  return d;
}

absl::StatusOr<PlanSpec> PlanSpecFromProto(const cairn::v1::Plan& plan) {
  if (plan.format_version() != kPlanFormatVersion) {
    return absl::FailedPreconditionError(
        absl::StrCat("plan format_version ", plan.format_version(), " is not supported (this cairn ",
                     "reads version ", kPlanFormatVersion, ")"));
  }
  PlanSpec s;
  s.global_batch = plan.global_batch_size();
  s.num_micro_batches = plan.num_micro_batches();
  s.schedule = FromProto(plan.schedule());
  s.virtual_stages = plan.virtual_stages() > 1 ? plan.virtual_stages() : 1;
  s.origin = plan.provenance().origin().empty() ? "file" : plan.provenance().origin();
  int expected_first = 0;
  for (int i = 0; i < plan.stages_size(); ++i) {
    const cairn::v1::Stage& st = plan.stages(i);
    if (st.first_layer() != expected_first) {
      return absl::InvalidArgumentError(absl::StrCat("stage ", i, " starts at layer ",
                                                     st.first_layer(), "; expected ",
                                                     expected_first, " (stages must be contiguous)"));
    }
    s.stage_layers.push_back(st.num_layers());
    expected_first += st.num_layers();
  }
  if (plan.pipeline_degree() != 0 &&
      plan.pipeline_degree() * s.virtual_stages != plan.stages_size()) {
    return absl::InvalidArgumentError(
        absl::StrCat("pipeline_degree ", plan.pipeline_degree(), " x virtual_stages ",
                     s.virtual_stages, " but ", plan.stages_size(), " stages"));
  }
  for (int i = 0; i < plan.layers_size(); ++i) {
    const cairn::v1::LayerStrategy& l = plan.layers(i);
    if (l.index() != i) {
      return absl::InvalidArgumentError(absl::StrCat("layers[", i, "] has index ", l.index()));
    }
    Strategy st;
    st.tp = l.tp_degree() == 0 ? 1 : l.tp_degree();
    st.mode = FromProto(l.mode());
    st.dp = FromProto(l.dp_mode());
    st.recompute = l.recompute();
    st.tp_consecutive = l.tp_consecutive() || st.tp == 1;
    s.layers.push_back(st);
  }
  return s;
}

void FillPlanStrategy(const PlanSpec& spec, int num_layers, cairn::v1::Plan* out) {
  out->set_format_version(kPlanFormatVersion);
  out->set_global_batch_size(spec.global_batch);
  out->set_num_micro_batches(spec.num_micro_batches);
  out->set_pipeline_degree(spec.pipeline_degree());
  out->set_schedule(ToProto(spec.schedule));
  out->set_virtual_stages(spec.virtual_stages > 1 ? spec.virtual_stages : 0);
  out->clear_stages();
  int first = 0;
  for (int n : spec.stage_layers) {
    cairn::v1::Stage* s = out->add_stages();
    s->set_first_layer(first);
    s->set_num_layers(n);
    first += n;
  }
  out->clear_layers();
  for (int i = 0; i < static_cast<int>(spec.layers.size()); ++i) {
    const Strategy& st = spec.layers[i];
    cairn::v1::LayerStrategy* l = out->add_layers();
    l->set_index(i);
    l->set_kind(ToProto(KindOf(i, num_layers)));
    l->set_tp_degree(st.tp);
    l->set_mode(ToProto(st.mode));
    l->set_dp_mode(ToProto(st.dp));
    l->set_recompute(st.recompute);
    l->set_tp_consecutive(st.tp_consecutive);
  }
}

}  // namespace cairn::plan
