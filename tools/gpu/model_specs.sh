# tools/gpu/model_specs.sh — sourced by the GPU scripts: ModelSpec JSON files for Llama-shaped models
# cut to fewer layers (one GPU holds their training state), written to /tmp/NAME.json.
#   source tools/gpu/model_specs.sh
#   llama_spec llama3-8b-l4 4 4096 14336 32 8 128256 4096   # NAME LAYERS HIDDEN FFN HEADS KV VOCAB SEQ
#   llama_shapes 4                                           # llama3-8b-l4 and llama2-7b-l4
llama_spec() {
  cat > "/tmp/$1.json" <<JSON
{"name": "$1", "num_layers": $2, "hidden_size": $3, "ffn_hidden_size": $4, "num_heads": $5,
 "num_kv_heads": $6, "vocab_size": $7, "max_seq_len": $8, "norm": "NORM_KIND_RMSNORM",
 "activation": "ACTIVATION_KIND_SWIGLU", "position": "POSITION_KIND_ROPE"}
JSON
}
# The published Llama-3-8B and Llama-2-7B shapes with LAYERS blocks.
llama_shapes() {
  llama_spec "llama3-8b-l$1" "$1" 4096 14336 32 8 128256 8192
  llama_spec "llama2-7b-l$1" "$1" 4096 11008 32 32 32000 4096
}
