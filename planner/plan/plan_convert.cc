#include "planner/plan/plan_convert.h"

#include <algorithm>
#include <chrono>
#include <ctime>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "google/protobuf/util/json_util.h"
#include "common/plan/plan_proto.h"
#include "planner/cost/runtime_traits.h"
#include "planner/problem/proto_enums.h"

namespace cairn::planner {

cairn::v1::Plan ToPlanProto(const SearchProblem& problem, const PlanSpec& plan,
                            const Evaluation& e, const ProvenanceInfo& prov) {
  cairn::v1::Plan out;
  const int L = problem.model.num_layers;
  plan::FillPlanStrategy(plan, L, &out);
  out.set_model_name(problem.model.name);
  out.set_num_nodes(problem.hardware.num_nodes);
  out.set_devices_per_node(problem.hardware.devices_per_node);
  out.set_seq_len(problem.seq_len);
  // Megatron's --micro-batch-size: a micro-batch's samples over the first block's data-parallel
  // degree (informational; 0 when they do not divide).
  const int p = std::max(1, plan.pipeline_degree());
  const int devices = problem.hardware.num_nodes * problem.hardware.devices_per_node;
  if (plan.layers.size() > 1 && plan.num_micro_batches > 0) {
    const int dp = devices / p / std::max(1, plan.layers[1].tp);
    const int samples = plan.global_batch / plan.num_micro_batches;
    if (dp > 0 && samples % dp == 0) out.set_micro_batch_size(samples / dp);
  }
  cairn::v1::Prediction* pr = out.mutable_prediction();
  pr->set_step_time_s(e.step_time_s);
  pr->set_tokens_per_s(e.tokens_per_s);
  pr->set_samples_per_s(e.samples_per_s);
  pr->set_mfu(e.mfu);
  pr->set_lower_bound_s(e.lower_bound_s);
  pr->set_optimality_gap(e.optimality_gap);
  for (int i = 0; i < static_cast<int>(e.stages.size()); ++i) {
    const StageCost& sc = e.stages[i];
    cairn::v1::StageMemory* m = pr->add_stage_memory();
    m->set_stage(i);
    m->set_parameter_bytes(sc.param_bytes);
    m->set_gradient_bytes(sc.grad_bytes);
    m->set_optimizer_bytes(sc.optimizer_bytes);
    m->set_activation_bytes(sc.activation_bytes);
    m->set_transient_bytes(sc.transient_bytes);
    m->set_reserved_bytes(sc.reserved_bytes);
    m->set_total_bytes(sc.total_bytes);
    m->set_budget_bytes(e.budget_bytes);
    pr->add_stage_forward_s(sc.times.forward_s);
    pr->add_stage_backward_s(sc.times.backward_s);
  }
  cairn::v1::CostBreakdown* b = pr->mutable_breakdown();
  b->set_compute_s(e.compute_s);
  b->set_tensor_parallel_comm_s(e.tp_comm_s);
  b->set_data_parallel_comm_s(e.dp_comm_s);
  b->set_pipeline_comm_s(e.pipeline_comm_s);
  b->set_transition_s(e.transition_s);
  b->set_bubble_s(e.bubble_s);
  b->set_optimizer_s(e.optimizer_s);
  cairn::v1::Provenance* pv = out.mutable_provenance();
  pv->set_cairn_version(kCairnVersion);
  pv->set_hardware_profile(prov.hardware_profile);
  pv->set_model_profile(prov.model_profile);
  pv->set_search_time_s(prov.search_time_s);
  pv->set_candidates_evaluated(prov.candidates_evaluated);
  pv->set_origin(plan.origin);
  const std::time_t now = std::chrono::system_clock::to_time_t(std::chrono::system_clock::now());
  char buf[32];
  std::strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%SZ", std::gmtime(&now));
  pv->set_created_at(buf);
  return out;
}

cairn::v1::SearchResponse ToSearchResponse(const SearchProblem& problem, const SearchResult& result,
                                           const ProvenanceInfo& provenance) {
  cairn::v1::SearchResponse out;
  ProvenanceInfo prov = provenance;
  prov.search_time_s = result.search_time_s;
  prov.candidates_evaluated = result.stats.plans_evaluated;
  for (size_t i = 0; i < result.plans.size(); ++i) {
    *out.add_plans() = ToPlanProto(problem, result.plans[i], result.evaluations[i], prov);
  }
  for (const BaselineResult& b : result.baselines) {
    cairn::v1::Baseline* pb = out.add_baselines();
    pb->set_family(b.family);
    pb->set_description(b.description);
    pb->set_feasible(b.feasible);
    pb->set_reason(b.reason);
    if (b.feasible) *pb->mutable_plan() = ToPlanProto(problem, b.plan, b.evaluation, prov);
  }
  out.set_gain_over_best_baseline(result.gain_over_best_baseline);
  out.set_search_time_s(result.search_time_s);
  out.set_candidates_evaluated(result.stats.plans_evaluated);
  out.set_infeasible_reason(result.infeasible_reason);
  if (!result.plans.empty()) {
    const CostModel cm(problem);
    const BaselineResult* best = nullptr;
    for (const BaselineResult& b : result.baselines) {
      if (b.feasible && (!best || b.evaluation.step_time_s / b.plan.global_batch <
                                      best->evaluation.step_time_s / best->plan.global_batch)) {
        best = &b;
      }
    }
    std::string text;
    if (best) {
      absl::StrAppend(&text, "Why the best uniform plan (", best->family, ") is slower:\n",
                      Explain(cm, result.plans[0], result.evaluations[0], best->plan,
                              best->evaluation));
    }
    if (result.plans.size() > 1) {
      absl::StrAppend(&text, "Why alternative 2 is slower:\n",
                      Explain(cm, result.plans[0], result.evaluations[0], result.plans[1],
                              result.evaluations[1]));
    }
    out.set_explanation(text);
  }
  return out;
}

absl::StatusOr<PlanSpec> PlanSpecFromProto(const SearchProblem& problem,
                                           const cairn::v1::Plan& plan) {
  if (!plan.model_name().empty() && plan.model_name() != problem.model.name) {
    return absl::InvalidArgumentError(absl::StrCat("the plan is for model '", plan.model_name(),
                                                   "', not '", problem.model.name, "'"));
  }
  absl::StatusOr<PlanSpec> s = plan::PlanSpecFromProto(plan);
  if (!s.ok()) return s.status();
  if (absl::Status st = ValidatePlanShape(problem, *s); !st.ok()) return st;
  return s;
}

absl::StatusOr<std::string> PlanToJson(const cairn::v1::Plan& plan) {
  std::string out;
  google::protobuf::util::JsonPrintOptions opt;
  opt.add_whitespace = true;
  opt.preserve_proto_field_names = true;
  opt.always_print_primitive_fields = true;
  const auto st = google::protobuf::util::MessageToJsonString(plan, &out, opt);
  if (!st.ok()) return absl::InternalError(absl::StrCat("plan to JSON: ", st.ToString()));
  return out;
}

absl::StatusOr<cairn::v1::Plan> PlanFromJson(const std::string& json) {
  cairn::v1::Plan plan;
  google::protobuf::util::JsonParseOptions opt;
  opt.ignore_unknown_fields = false;
  const auto st = google::protobuf::util::JsonStringToMessage(json, &plan, opt);
  if (!st.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("not a Cairn plan: ", st.ToString()));
  }
  if (plan.format_version() != kPlanFormatVersion) {
    return absl::FailedPreconditionError(absl::StrCat(
        "plan format_version ", plan.format_version(), " is not supported (expected ",
        kPlanFormatVersion, ")"));
  }
  return plan;
}

absl::StatusOr<std::string> MegatronFlags(const SearchProblem& problem, const PlanSpec& plan) {
  const int L = problem.model.num_layers;
  // What Megatron-LM runs at all is the megatron-core runtime traits' one check (one strategy for
  // every block, no Ulysses, no ZeRO-2/3, no GPipe, kv heads split but never replicated, the
  // stage split); the flags below only spell a plan it accepts.
  if (std::string why = CheckRuntimeSupports(MegatronCoreRuntimeTraits(), plan, problem.model);
      !why.empty()) {
    return absl::UnimplementedError(why);
  }
  const Strategy& b = plan.layers[1];
  for (int i : {0, L + 1}) {
    if (plan.layers[i].tp != b.tp || plan.layers[i].dp != b.dp) {
      return absl::UnimplementedError(
          "Megatron-LM gives the embedding and head the blocks' tensor-parallel degree and "
          "optimizer sharding");
    }
  }
  const int p = plan.pipeline_degree();
  const int N = problem.hardware.num_devices();
  std::string out = absl::StrFormat(
      "--tensor-model-parallel-size %d --pipeline-model-parallel-size %d", b.tp, p);
  if (b.tp > 1 && b.mode == ParallelMode::kTensorSequence) absl::StrAppend(&out, " --sequence-parallel");
  if (b.dp == DpMode::kZero1) absl::StrAppend(&out, " --use-distributed-optimizer");
  if (b.recompute) {
    absl::StrAppend(&out,
                    " --recompute-granularity full --recompute-method uniform --recompute-num-layers 1");
  }
  // The stage split, as the megatron-core runtime traits accept it (one check:
  // planner/cost/runtime_traits.h MegatronSplitOf).
  absl::StatusOr<MegatronSplit> split = MegatronSplitOf(plan, L);
  if (!split.ok()) return absl::UnimplementedError(split.status().message());
  if (split->account_for_embedding_and_loss) {
    absl::StrAppend(&out,
                    " --account-for-embedding-in-pipeline-split"
                    " --account-for-loss-in-pipeline-split");
  }
  if (split->layers_per_virtual_stage > 0) {
    absl::StrAppendFormat(&out, " --num-layers-per-virtual-pipeline-stage %d",
                          split->layers_per_virtual_stage);
  }
  if (split->first_stage_blocks > 0) {
    absl::StrAppendFormat(&out, " --decoder-first-pipeline-num-layers %d",
                          split->first_stage_blocks);
    absl::StrAppendFormat(&out, " --decoder-last-pipeline-num-layers %d",
                          split->last_stage_blocks);
  }
  const int dp = N / p / b.tp;
  absl::StrAppendFormat(&out, " --micro-batch-size %d --global-batch-size %d --seq-length %d",
                        plan.global_batch / plan.num_micro_batches / dp, plan.global_batch,
                        problem.seq_len);
  // The model itself, so the line launches Megatron-LM as is (its defaults: LayerNorm, GELU,
  // learned absolute positions, tied embeddings, biases).
  const ModelDims& md = problem.model;
  absl::StrAppendFormat(&out,
                        " --num-layers %d --hidden-size %d --ffn-hidden-size %d"
                        " --num-attention-heads %d",
                        md.num_layers, md.hidden, md.ffn_hidden, md.num_heads);
  if (md.num_kv_heads > 0 && md.num_kv_heads != md.num_heads) {
    absl::StrAppendFormat(&out, " --group-query-attention --num-query-groups %d", md.num_kv_heads);
  }
  absl::StrAppendFormat(&out, " --max-position-embeddings %d",
                        std::max(md.max_seq_len, problem.seq_len));
  // Megatron takes the vocabulary from the tokenizer; --vocab-size sets it for NullTokenizer and
  // documents the size the plan was costed with.
  absl::StrAppendFormat(&out, " --vocab-size %d", md.vocab);
  if (md.rms_norm) absl::StrAppend(&out, " --normalization RMSNorm");
  if (md.swiglu) absl::StrAppend(&out, " --swiglu");
  if (md.rope) absl::StrAppend(&out, " --position-embedding-type rope");
  if (!md.tied_embeddings) absl::StrAppend(&out, " --untie-embeddings-and-output-weights");
  if (!md.bias) absl::StrAppend(&out, " --disable-bias-linear");
  // What the cost model assumed overlaps, from the runtime traits the plan was scored under
  // (planner/cost/runtime_traits.h): the gradient reduction under the backward is Megatron's
  // --overlap-grad-reduce; the ZeRO-1 parameter all-gather under the next forward its
  // --overlap-param-gather (hidden under megatron-core's traits, charged exposed under cairn's,
  // and then not printed); gradients reduced in bf16 its --grad-reduce-in-bf16.
  if (dp > 1 && problem.runtime.overlap_grad_reduce) absl::StrAppend(&out, " --overlap-grad-reduce");
  if (dp > 1 && b.dp == DpMode::kZero1 && problem.runtime.overlap_param_gather) {
    absl::StrAppend(&out, " --overlap-param-gather");
  }
  if (problem.precision.param_bytes == 2) absl::StrAppend(&out, " --bf16");
  if (problem.precision.param_bytes == 2 && problem.precision.grad_bytes == 2) {
    absl::StrAppend(&out, " --grad-reduce-in-bf16");
  }
  return out;
}

absl::StatusOr<PlanSpec> MegatronStageSplit(const SearchProblem& problem, const PlanSpec& plan,
                                            Evaluation* evaluation) {
  const int L = problem.model.num_layers;
  const int p = plan.pipeline_degree();
  if (p < 2) return absl::NotFoundError("one stage: nothing to re-split");
  // Megatron runs 1F1B (GPipe is not expressible at all); an interleaved plan's stage_layers are
  // model chunks, which this split does not know how to keep equal.
  if (plan.schedule != Schedule::k1F1B) {
    return absl::NotFoundError("only 1F1B plans are re-split for Megatron-LM");
  }
  for (int i = 2; i <= L; ++i) {
    if (plan.layers[i] != plan.layers[1]) {
      return absl::NotFoundError("the plan mixes strategies over its blocks");
    }
  }
  const CostModel cm(problem);
  absl::StatusOr<PlanSpec> best = absl::NotFoundError(absl::StrCat(
      "no split of ", L, " blocks into ", p, " stages with equal middle stages fits"));
  double best_s = 0;
  // k blocks on each middle stage; first + last take the rest, at least one block each. Splits
  // far from even are slower (the slowest stage sets the pace), so k stays near L / p.
  const int middle = p - 2;
  for (int k = std::max(1, L / p - 2); k <= L / p + 2; ++k) {
    const int rest = L - middle * k;
    if (rest < 2) break;
    for (int first = 1; first < rest; ++first) {
      PlanSpec q = plan;
      for (int i = 0; i < p; ++i) {
        const int blocks = i == 0 ? first : i == p - 1 ? rest - first : k;
        q.stage_layers[i] = blocks + (i == 0) + (i == p - 1);
      }
      absl::StatusOr<Evaluation> e = Evaluate(cm, q);
      if (!e.ok() || !e->feasible) continue;
      if (!best.ok() || e->step_time_s < best_s) {
        best_s = e->step_time_s;
        best = q;
        *evaluation = *std::move(e);
      }
    }
    if (middle == 0) break;  // two stages: k does not matter
  }
  return best;
}

}  // namespace cairn::planner
