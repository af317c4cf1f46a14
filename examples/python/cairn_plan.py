#!/usr/bin/env python3
"""Ask a Cairn planner daemon for a training plan and print it with its Megatron-LM flags.

For PyTorch users who launch Megatron-LM with torchrun or Slurm: run `cairn-planner` somewhere, then

    python3 examples/python/cairn_plan.py --planner 127.0.0.1:7070 --model llama2-7b \
        --cluster h100-sxm --nodes 4 --global-batch 512 --seq-len 4096

prints the best plan (devices, pipeline, per-stage strategies, predicted step time, tokens/s, MFU,
memory) and one line of Megatron-LM flags to append to `pretrain_gpt.py`. Like `cairn plan --format
megatron`, it searches under megatron-core's runtime traits (--runtime), so the plan is one
Megatron-LM runs well. The flags come from the
daemon (PlanResponse.megatron_flags: the same code as `cairn plan --format megatron`), so this
script renders nothing itself.

It calls the `cairn.v1.Planner/Plan` RPC with the message classes protoc generates from the
repository's proto/ (python3-protobuf) and grpcio's generic unary call (python3-grpcio; no grpc_tools
plugin needed). Stubs: `--stubs DIR` holding proto/cairn/v1/*_pb2.py (what
`protoc -I. --python_out=DIR proto/cairn/v1/*.proto` writes from the repository root, as the Bazel
target //examples/python:cairn_pb2 does); without it they are generated into a temporary folder with
`protoc` from the proto/ folder next to this script's repository.

Exit status: 0 plan printed (with flags, or a note on why Megatron-LM cannot run any fitting plan);
1 the daemon answered with an error or could not be reached; 2 bad arguments or missing Python
packages (Debian: apt-get install python3-grpcio python3-protobuf protobuf-compiler).
"""

import argparse
import importlib
import os
import shutil
import subprocess
import sys
import tempfile

REPO_ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
PROTO_FILES = ["hardware", "model", "plan", "search", "service"]


def fail(status, message):
    print("cairn_plan: " + message, file=sys.stderr)
    sys.exit(status)


def generate_stubs(out_dir):
    """protoc --python_out over the repository's proto/cairn/v1 files into out_dir."""
    protoc = shutil.which("protoc")
    if protoc is None:
        fail(2, "no protoc to generate the message classes: install protobuf-compiler, or pass "
                "--stubs DIR with proto/cairn/v1/*_pb2.py in it")
    sources = [os.path.join("proto", "cairn", "v1", name + ".proto") for name in PROTO_FILES]
    if not all(os.path.exists(os.path.join(REPO_ROOT, s)) for s in sources):
        fail(2, "no proto/cairn/v1 under %s: pass --stubs DIR" % REPO_ROOT)
    run = subprocess.run([protoc, "-I.", "--python_out=" + out_dir] + sources, cwd=REPO_ROOT,
                         capture_output=True, text=True)
    if run.returncode != 0:
        fail(2, "protoc failed: " + run.stderr.strip())


def load_modules(stubs_dir):
    """Imports grpc and the generated cairn.v1 modules (service_pb2 imports the others)."""
    try:
        grpc = importlib.import_module("grpc")
    except ImportError:
        fail(2, "the grpc module is missing: apt-get install python3-grpcio")
    sys.path.insert(0, stubs_dir)
    try:
        service_pb2 = importlib.import_module("proto.cairn.v1.service_pb2")
        plan_pb2 = importlib.import_module("proto.cairn.v1.plan_pb2")
    except ImportError as e:
        fail(2, "cannot import the generated cairn.v1 modules from %s (%s): "
                "apt-get install python3-protobuf, or regenerate the stubs" % (stubs_dir, e))
    return grpc, service_pb2, plan_pb2


def method_path(service_pb2, service, method):
    """The gRPC path of a method, from the generated descriptor ("/cairn.v1.Planner/Plan")."""
    m = service_pb2.DESCRIPTOR.services_by_name[service].methods_by_name[method]
    return "/%s/%s" % (m.containing_service.full_name, m.name)


def format_seconds(s):
    if s >= 1:
        return "%.3f s" % s
    if s >= 1e-3:
        return "%.2f ms" % (s * 1e3)
    return "%.1f us" % (s * 1e6)


def format_gib(n):
    return "%.1f GiB" % (n / 2**30)


def enum_name(enum_type, value, prefix):
    return enum_type.Name(value)[len(prefix):].lower()


def strategy_text(plan_pb2, layer):
    """One layer's strategy: "tp2 sp zero1 recompute" style."""
    mode = {plan_pb2.PARALLEL_MODE_TENSOR_SEQUENCE: " sp",
            plan_pb2.PARALLEL_MODE_ULYSSES: " ulysses"}.get(layer.mode, "")
    text = "tp%d%s %s" % (layer.tp_degree, mode if layer.tp_degree > 1 else "",
                          enum_name(plan_pb2.DataParallelMode, layer.dp_mode,
                                    "DATA_PARALLEL_MODE_"))
    return text + (" recompute" if layer.recompute else "")


def print_plan(plan_pb2, response, out):
    plan = response.result.plans[0]
    pred = plan.prediction
    devices = plan.num_nodes * plan.devices_per_node
    out.write("Plan %s%s for %s on %d x %d devices: global batch %d, sequence %d\n" % (
        response.plan_id, " (cached)" if response.cached else "", plan.model_name,
        plan.num_nodes, plan.devices_per_node, plan.global_batch_size, plan.seq_len))
    out.write("  predicted: %s per step, %.0f tokens/s, MFU %.1f%%\n" % (
        format_seconds(pred.step_time_s), pred.tokens_per_s, 100 * pred.mfu))
    schedule = enum_name(plan_pb2.PipelineSchedule, plan.schedule, "PIPELINE_SCHEDULE_")
    out.write("  pipeline: %d stage(s), %s, %d micro-batches (micro-batch size %d)%s\n" % (
        plan.pipeline_degree, schedule, plan.num_micro_batches, plan.micro_batch_size,
        ", %d chunks per stage" % plan.virtual_stages if plan.virtual_stages > 1 else ""))
    memory = {m.stage: m for m in pred.stage_memory}
    for i, stage in enumerate(plan.stages):
        layers = plan.layers[stage.first_layer:stage.first_layer + stage.num_layers]
        strategies = []
        for layer in layers:
            text = strategy_text(plan_pb2, layer)
            if not strategies or strategies[-1][0] != text:
                strategies.append([text, 0])
            strategies[-1][1] += 1
        mem = memory.get(i)
        out.write("  stage %d: layers %d-%d: %s%s\n" % (
            i, stage.first_layer, stage.first_layer + stage.num_layers - 1,
            ", ".join("%d x %s" % (n, t) for t, n in strategies),
            " | memory %s of %s" % (format_gib(mem.total_bytes), format_gib(mem.budget_bytes))
            if mem is not None else ""))


def main(argv):
    ap = argparse.ArgumentParser(
        description="Ask cairn-planner for a plan and print it with its Megatron-LM flags.")
    ap.add_argument("--planner", default="127.0.0.1:7070", help="daemon HOST:PORT (127.0.0.1:7070)")
    ap.add_argument("--model", required=True, help="catalog model name (cairn models), e.g. llama2-7b")
    ap.add_argument("--cluster", default="h100-sxm", help="catalog cluster name (h100-sxm)")
    ap.add_argument("--nodes", type=int, default=1, help="nodes (1)")
    ap.add_argument("--global-batch", type=int, required=True, help="samples per optimizer step")
    ap.add_argument("--seq-len", type=int, required=True, help="tokens per sample")
    ap.add_argument("--runtime", default="megatron-core", choices=["megatron-core", "cairn"],
                    help="the runtime the plan will run on, for what the cost model assumes "
                         "overlaps (megatron-core, as `cairn plan --format megatron`)")
    ap.add_argument("--token-file", help="file whose first line is the bearer token (none)")
    ap.add_argument("--tls-ca", help="CA certificate (PEM) for a TLS daemon (plaintext without)")
    ap.add_argument("--timeout", type=float, default=600, help="seconds to wait for the plan (600)")
    ap.add_argument("--stubs", help="folder with proto/cairn/v1/*_pb2.py (generated when absent)")
    args = ap.parse_args(argv)  # exits 2 on bad arguments
    for name in ("nodes", "global_batch", "seq_len"):
        if getattr(args, name) < 1:
            fail(2, "--%s must be at least 1" % name.replace("_", "-"))

    with tempfile.TemporaryDirectory(prefix="cairn-stubs-") as tmp:
        stubs = args.stubs
        if stubs is None:
            generate_stubs(tmp)
            stubs = tmp
        grpc, service_pb2, plan_pb2 = load_modules(stubs)

        request = service_pb2.PlanRequest(model_name=args.model, cluster_name=args.cluster,
                                          num_nodes=args.nodes)
        request.search.global_batch_size = args.global_batch
        request.search.seq_len = args.seq_len
        request.search.runtime = args.runtime
        metadata = []
        if args.token_file:
            with open(args.token_file) as f:
                metadata.append(("authorization", "Bearer " + f.readline().strip()))
        if args.tls_ca:
            with open(args.tls_ca, "rb") as f:
                channel = grpc.secure_channel(args.planner,
                                              grpc.ssl_channel_credentials(root_certificates=f.read()))
        else:
            channel = grpc.insecure_channel(args.planner)
        with channel:
            call = channel.unary_unary(
                method_path(service_pb2, "Planner", "Plan"),
                request_serializer=service_pb2.PlanRequest.SerializeToString,
                response_deserializer=service_pb2.PlanResponse.FromString)
            try:
                response = call(request, timeout=args.timeout, metadata=metadata)
            except grpc.RpcError as e:
                fail(1, "%s: %s: %s" % (args.planner, e.code().name, e.details()))

    if not response.result.plans:
        fail(1, "no plan fits: " + response.result.infeasible_reason)
    print_plan(plan_pb2, response, sys.stdout)
    if response.megatron_note:
        print("Megatron-LM: " + response.megatron_note)
    if response.megatron_flags:
        print("Megatron-LM flags:")
        print(response.megatron_flags)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
