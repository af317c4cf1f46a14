#!/usr/bin/env bash
# tools/fuzz_seeds.sh — (re)writes the seed corpora of the fuzz targets (docs/reliability.md).
#
#   tools/fuzz_seeds.sh
#
# Each target's seeds live in a testdata/<target>/ folder beside it and are committed; this script
# is only needed when a format changes. Seeds are small valid inputs (one per RPC, per file kind),
# so the fuzzer starts from inside the formats instead of guessing their magic bytes. For the
# smaller targets the folders also hold the corpus of the recorded long run, minimized
# (`<target> -merge=1 testdata/<target> <corpus>`, files named by their SHA-1); this script adds
# its files beside those and removes nothing. Needs /usr/bin/protoc (text -> wire format) and
# python3 (byte layouts and SHA-256); no Bazel.
set -euo pipefail
cd "$(dirname "$0")/.."

PROTOC=${PROTOC:-/usr/bin/protoc}

# --- planner/server/testdata/validation_fuzz: selector byte (method index) + request bytes.
out=planner/server/testdata/validation_fuzz
mkdir -p "$out"
# Methods in descriptor order (Planner, Profiles, Agents, Jobs, Rendezvous), with a request each.
i=0
seed() {  # seed TYPE 'TEXT'
  local type=$1 text=$2
  printf "\\x$(printf %02x "$i")" > "$out/$(printf %02d "$i")_${type}"
  printf '%s' "$text" | "$PROTOC" --encode="cairn.v1.$type" -I. proto/cairn/v1/service.proto \
    2>/dev/null >> "$out/$(printf %02d "$i")_${type}"
  i=$((i + 1))
}
plan='model_name: "llama-tiny" cluster_name: "cpu" num_nodes: 1 devices_per_node: 4 search { global_batch_size: 16 seq_len: 256 }'
seed PlanRequest "$plan"                                                  # Planner.Plan
seed PlanRequest 'model_name: "llama2-7b" cluster_name: "h100-sxm" num_nodes: 2 search { batch_range { min: 64 max: 256 step: 64 } seq_len: 4096 space { pipeline_degrees: 2 micro_batch_counts: 8 } }'  # PlanStream
seed GetPlanRequest 'plan_id: "plan-0000000000000000000000000000000a"'
seed ListPlansRequest 'page_size: 10 page_token: "plan-1" model_name: "llama-tiny"'
seed PutHardwareProfileRequest 'profile { name: "lab" fingerprint { device_model: "X1" device_memory_bytes: 85899345920 } device { memory_bytes: 85899345920 reserved_bytes: 1073741824 peak_flops_per_s: 9.89e14 gemm { flops: 1e12 achieved_flops_per_s: 6e14 } memory_bandwidth_bytes_per_s: 3.35e12 } devices_per_node: 8 overlap_slowdown: 1.1 collectives { op: COLLECTIVE_OP_ALL_REDUCE group_size: 8 latency_s: 1e-5 busbw_bytes_per_s: 3e11 } collectives { op: COLLECTIVE_OP_SEND_RECV group_size: 2 spans_nodes: true latency_s: 2e-5 busbw_bytes_per_s: 4e10 points { bytes: 1e6 time_s: 1e-4 } } }'
seed ProfileKey 'id: "0123456789abcdef" version: 2'
seed ListProfilesRequest 'page_size: 5'
seed DeleteProfileRequest 'id: "0123456789abcdef"'
seed PutModelProfileRequest 'profile { model_name: "llama2-7b" device_model: "NVIDIA H100 80GB HBM3" activation_dtype_bytes: 2 timings { kind: LAYER_KIND_TRANSFORMER_BLOCK tp_degree: 1 micro_batch_size: 1 seq_len: 4096 forward_s: 0.012 backward_s: 0.024 } }'
seed ProfileKey 'id: "fedcba9876543210"'
seed ListProfilesRequest 'page_token: "0123"'
seed DeleteProfileRequest 'id: "fedcba9876543210"'
seed RegisterAgentRequest 'hostname: "node7" address: "node7:7071" num_devices: 8'
seed HeartbeatRequest 'agent_id: "agent-1"'
seed ListAgentsRequest ''
seed WatchAssignmentsRequest 'agent_id: "agent-1"'
seed ProbeAgentsRequest 'agent_ids: "agent-1" agent_ids: "node7" suites: "compute" suites: "comm" models: "llama-tiny" quick: true cross_node: true'
seed SubmitJobRequest "search { $plan } data_path: \"/data/tiny\" steps: 10 name: \"tiny\""
seed GetJobRequest 'job_id: "job-1"'
seed ListJobsRequest 'page_size: 3 state: JOB_STATE_RUNNING'
seed CancelJobRequest 'job_id: "job-1"'
seed WatchJobRequest 'job_id: "job-1"'
seed ReportJobStatusRequest 'job_id: "job-1" agent_id: "agent-1" state: JOB_STATE_RUNNING step { step: 3 loss: 2.5 step_time_s: 0.5 tokens_per_s: 1000 }'
seed AppendJobLogsRequest 'job_id: "job-1" agent_id: "agent-1" rank: 2 attempt: 1 data: "step 3 loss 2.5\n"'
seed GetJobLogsRequest 'job_id: "job-1" ranks: 0 ranks: 2 tail_bytes: 4096'
seed RendezvousSetRequest 'job_id: "job-1" key: "nccl_unique_id" value: "\001\002\003"'
seed RendezvousGetRequest 'job_id: "job-1" key: "nccl_unique_id"'
seed RendezvousWaitRequest 'job_id: "job-1" keys: "a" keys: "b" timeout_s: 5'

# --- The JSON and binary formats.
python3 - <<'PY'
import hashlib, json, os, struct, shutil

def write(path, data):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data if isinstance(data, bytes) else data.encode())

# planner/catalog/testdata/spec_json_fuzz: selector (even: ModelSpec, odd: HardwareProfile) + JSON.
d = "planner/catalog/testdata/spec_json_fuzz"
model = {"name": "llama2-7b", "numLayers": 32, "hiddenSize": 4096, "ffnHiddenSize": 11008,
         "numHeads": 32, "numKvHeads": 32, "vocabSize": 32000, "maxSeqLen": 4096,
         "norm": "NORM_KIND_RMSNORM", "activation": "ACTIVATION_KIND_SWIGLU",
         "position": "POSITION_KIND_ROPE"}
write(f"{d}/model_llama2_7b", b"\x00" + json.dumps(model).encode())
gpt = dict(model, name="gpt2-124m", numLayers=12, hiddenSize=768, ffnHiddenSize=3072, numHeads=12,
           numKvHeads=12, vocabSize=50257, maxSeqLen=1024, norm="NORM_KIND_LAYERNORM",
           activation="ACTIVATION_KIND_GELU", position="POSITION_KIND_LEARNED",
           tiedEmbeddings=True, bias=True)
write(f"{d}/model_gpt2", b"\x02" + json.dumps(gpt).encode())
def coll(op, g, spans, lat, bw):
    return {"op": op, "groupSize": g, "spansNodes": spans, "latencyS": lat, "busbwBytesPerS": bw}
ops = ["COLLECTIVE_OP_ALL_REDUCE", "COLLECTIVE_OP_ALL_GATHER", "COLLECTIVE_OP_REDUCE_SCATTER",
       "COLLECTIVE_OP_ALL_TO_ALL"]
hw = {"name": "lab-h100", "fingerprint": {"deviceModel": "NVIDIA H100 80GB HBM3",
                                          "deviceMemoryBytes": "85899345920"},
      "device": {"name": "H100", "memoryBytes": "85520809984", "reservedBytes": "2147483648",
                 "peakFlopsPerS": 9.89e14,
                 "gemm": [{"flops": 1e9, "achievedFlopsPerS": 2e14},
                          {"flops": 1e12, "achievedFlopsPerS": 7e14}],
                 "attentionEfficiency": 0.6, "memoryBandwidthBytesPerS": 3.35e12},
      "devicesPerNode": 8, "overlapSlowdown": 1.13,
      "collectives": [coll(o, g, s, 1e-5 if not s else 2e-5, 3e11 if not s else 4e10)
                      for o in ops for g in (2, 4, 8, 16) for s in (False, True) if s or g <= 8]
                     + [dict(coll("COLLECTIVE_OP_SEND_RECV", 2, True, 2e-5, 4e10),
                             points=[{"bytes": 1e6, "timeS": 1e-4}, {"bytes": 1e8, "timeS": 3e-3}])]}
write(f"{d}/hardware_h100", b"\x01" + json.dumps(hw).encode())

# planner/catalog/testdata/galvatron_fuzz: selector (0 strategy, 1 computation, 2 memory,
# 3 all-reduce, 4 sp_time, 5 p2p, 6 overlap) + a file of Galvatron's.
d = "planner/catalog/testdata/galvatron_fuzz"
ref = "../shared/reference/galvatron"
files = {0: "planner/catalog/testdata/galvatron_config_llama2-7b_1nodes_8gpus_per_node_36GB_bf16.json",
         1: f"{ref}/computation_profiling_bf16_llama2-7b_all.json",
         2: f"{ref}/memory_profiling_bf16_llama2-7b_all.json",
         3: f"{ref}/allreduce_bandwidth_1nodes_8gpus_per_node.json",
         4: f"{ref}/sp_time_1nodes_8gpus_per_node.json",
         5: f"{ref}/p2p_bandwidth_1nodes_8gpus_per_node.json",
         6: f"{ref}/overlap_coefficient.json"}
for sel, path in files.items():
    if os.path.exists(path):
        with open(path, "rb") as f:
            write(f"{d}/{sel}_{os.path.basename(path)}", bytes([sel]) + f.read())

# planner/plan/testdata/plan_json_fuzz: plan JSON files (llama-tiny on 4 CPU workers).
d = "planner/plan/testdata/plan_json_fuzz"
def layer(i, tp=1, mode="PARALLEL_MODE_TENSOR", dp="DATA_PARALLEL_MODE_DDP", rc=False):
    l = {"index": i, "tpDegree": tp, "mode": mode, "dpMode": dp}
    if rc: l["recompute"] = True
    return l
plan = {"formatVersion": 1, "modelName": "llama-tiny", "numNodes": 1, "devicesPerNode": 4,
        "globalBatchSize": 16, "seqLen": 256, "numMicroBatches": 2, "pipelineDegree": 2,
        "schedule": "PIPELINE_SCHEDULE_1F1B",
        "stages": [{"firstLayer": 0, "numLayers": 3}, {"firstLayer": 3, "numLayers": 3}],
        "layers": [layer(0, 2, "PARALLEL_MODE_TENSOR_SEQUENCE", "DATA_PARALLEL_MODE_ZERO1")] +
                  [layer(i, 1, "PARALLEL_MODE_TENSOR", "DATA_PARALLEL_MODE_ZERO3", i % 2 == 0)
                   for i in range(1, 5)] + [layer(5, 2)]}
write(f"{d}/pp2_tiny.json", json.dumps(plan, indent=2))
flat = dict(plan, numMicroBatches=4, pipelineDegree=1, stages=[{"firstLayer": 0, "numLayers": 6}],
            layers=[layer(i, 4, "PARALLEL_MODE_ULYSSES") for i in range(6)],
            schedule="PIPELINE_SCHEDULE_GPIPE")
write(f"{d}/pp1_ulysses.json", json.dumps(flat))

# runtime/data/testdata/token_shard_fuzz: shards (header + tokens).
d = "runtime/data/testdata/token_shard_fuzz"
def shard(width, tokens, count=None):
    h = b"CAIRNTOK" + struct.pack("<IIQQ", 1, width, len(tokens) if count is None else count, 0)
    return h + b"".join(struct.pack("<H" if width == 2 else "<I", t) for t in tokens)
text = b"the quick brown fox jumps over the lazy dog"
write(f"{d}/bytes_u16", shard(2, list(text)))
write(f"{d}/wide_u32", shard(4, [0, 70000, 128255, 5, 9]))
write(f"{d}/count_wraps", shard(2, [], count=1 << 63))

# runtime/checkpoint/testdata/checkpoint_fuzz: even selector + a rank file; odd + a MANIFEST.
d = "runtime/checkpoint/testdata/checkpoint_fuzz"
def record(name, kind, items):
    n = name.encode()
    return (struct.pack("<I", len(n)) + n + struct.pack("<BQ", kind, len(items)) +
            b"".join(struct.pack("<q", i) for i, _ in items) +
            b"".join(struct.pack("<f", v) for _, v in items))
rank = (b"CAIRNCKP" + struct.pack("<I", 2) + record("1.w", 0, [(0, 0.5), (2, -1.25)]) +
        record("1.w", 1, [(0, 0.01)]) + record("0.wte", 2, [(7, 3.0)]))
write(f"{d}/0_rank_file", b"\x00" + rank)
body = ("cairn-checkpoint 2\nstep 9\nmodel llama-tiny\nworld_size 1\nplan pp=1 m=2 batch=16\n"
        f"file rank_00000.bin {len(rank)} {hashlib.sha256(rank).hexdigest()}\n")
write(f"{d}/1_manifest", b"\x01" + (body + f"sha256 {hashlib.sha256(body.encode()).hexdigest()}\n").encode())
PY
echo "fuzz_seeds: wrote $(find planner runtime -path '*testdata/*_fuzz/*' -type f | wc -l) seed files"
