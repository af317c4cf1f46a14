#!/usr/bin/env python3
"""PyTorch baseline for Cairn's GPU benchmarks: the same architectures Cairn trains, in plain PyTorch.

Runs on a GPU machine (PyTorch 2.x with CUDA). One model per invocation; prints one JSON line with
tokens/s, step time, peak memory and MFU, so docs/benchmarks.md can put it beside cairn-train's
numbers from the same device call.

    python3 tools/gpu/pytorch_baseline.py --model gpt2-124m --batch 16 --seq 1024 --steps 30
    python3 tools/gpu/pytorch_baseline.py --model llama3-8b --layers 8 --batch 1 --seq 4096 --compile

Architectures match Cairn's runtime (runtime/engine/layers.cc):
  GPT-2: LayerNorm (eps 1e-5), GELU (tanh), learned positions, biases, tied embeddings.
  Llama: RMSNorm (eps 1e-5), SwiGLU, rotate-half RoPE (theta 10000 as Cairn's RopeShape default),
         grouped-query attention, no biases, untied LM head.
Training: bf16 autocast over fp32 parameters, fused AdamW (lr 3e-4, betas 0.9/0.95, wd 0.1),
scaled_dot_product_attention (causal), global-norm clipping at 1.0, random tokens.

MFU counts 6 x (matrix parameters, embeddings excluded, LM head included) + 12 x L x h x s FLOPs
per token (the PaLM/Megatron convention Cairn's cost model uses) against --peak-tflops (989, the
H100/H200 SXM dense bf16 datasheet number).
"""
import argparse
import json
import math
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

MODELS = {
    # name: layers, hidden, ffn, heads, kv_heads, vocab, style
    "gpt2-124m": (12, 768, 3072, 12, 12, 50257, "gpt2"),
    "llama3-8b": (32, 4096, 14336, 32, 8, 128256, "llama"),
    "llama2-7b": (32, 4096, 11008, 32, 32, 32000, "llama"),
}


class RMSNorm(nn.Module):
    def __init__(self, dim, eps=1e-5):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x):
        xf = x.float()
        return (xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + self.eps)).type_as(x) * self.weight


def rope(x, cos, sin):
    # x: [B, H, T, D], rotate-half pairing (element i with i + D/2).
    d = x.shape[-1] // 2
    x1, x2 = x[..., :d], x[..., d:]
    return torch.cat([x1 * cos - x2 * sin, x2 * cos + x1 * sin], dim=-1)


class Block(nn.Module):
    def __init__(self, h, ffn, heads, kv, style):
        super().__init__()
        self.h, self.heads, self.kv, self.d, self.style = h, heads, kv, h // heads, style
        bias = style == "gpt2"
        norm = (lambda: nn.LayerNorm(h, eps=1e-5)) if style == "gpt2" else (lambda: RMSNorm(h))
        self.norm1, self.norm2 = norm(), norm()
        self.qkv = nn.Linear(h, (heads + 2 * kv) * self.d, bias=bias)
        self.proj = nn.Linear(h, h, bias=bias)
        if style == "gpt2":
            self.up = nn.Linear(h, ffn, bias=True)
        else:
            self.gate_up = nn.Linear(h, 2 * ffn, bias=False)
        self.down = nn.Linear(ffn, h, bias=bias)

    def forward(self, x, cos, sin):
        B, T, _ = x.shape
        q, k, v = self.qkv(self.norm1(x)).split(
            [self.heads * self.d, self.kv * self.d, self.kv * self.d], dim=-1)
        q = q.view(B, T, self.heads, self.d).transpose(1, 2)
        k = k.view(B, T, self.kv, self.d).transpose(1, 2)
        v = v.view(B, T, self.kv, self.d).transpose(1, 2)
        if self.style == "llama":
            q, k = rope(q, cos, sin), rope(k, cos, sin)
        a = F.scaled_dot_product_attention(q, k, v, is_causal=True,
                                           enable_gqa=self.kv != self.heads)
        x = x + self.proj(a.transpose(1, 2).reshape(B, T, self.h))
        y = self.norm2(x)
        if self.style == "gpt2":
            y = F.gelu(self.up(y), approximate="tanh")
        else:
            g, u = self.gate_up(y).chunk(2, dim=-1)
            y = F.silu(g) * u
        return x + self.down(y)


class Model(nn.Module):
    def __init__(self, layers, h, ffn, heads, kv, vocab, style, seq):
        super().__init__()
        self.style = style
        self.wte = nn.Embedding(vocab, h)
        if style == "gpt2":
            self.wpe = nn.Embedding(seq, h)
        self.blocks = nn.ModuleList(Block(h, ffn, heads, kv, style) for _ in range(layers))
        self.norm = nn.LayerNorm(h, eps=1e-5) if style == "gpt2" else RMSNorm(h)
        self.head = nn.Linear(h, vocab, bias=False)
        if style == "gpt2":
            self.head.weight = self.wte.weight  # tied
        d = h // heads
        inv = 1.0 / (10000.0 ** (torch.arange(0, d // 2, dtype=torch.float32) * 2 / d))
        ang = torch.outer(torch.arange(seq, dtype=torch.float32), inv)
        self.register_buffer("cos", ang.cos(), persistent=False)
        self.register_buffer("sin", ang.sin(), persistent=False)
        for m in self.modules():
            if isinstance(m, (nn.Linear, nn.Embedding)):
                nn.init.normal_(m.weight, std=0.02)

    def forward(self, idx, targets):
        T = idx.shape[1]
        x = self.wte(idx)
        if self.style == "gpt2":
            x = x + self.wpe(torch.arange(T, device=idx.device))
        cos = self.cos[:T].to(x.dtype) if self.style == "llama" else None
        sin = self.sin[:T].to(x.dtype) if self.style == "llama" else None
        for b in self.blocks:
            x = b(x, cos, sin)
        logits = self.head(self.norm(x))
        return F.cross_entropy(logits.float().view(-1, logits.shape[-1]), targets.view(-1))


def mfu_flops_per_token(layers, h, ffn, heads, kv, vocab, style, seq):
    d = h // heads
    per_block = h * (heads + 2 * kv) * d + h * h + (2 if style == "gpt2" else 3) * h * ffn
    matmul_params = layers * per_block + h * vocab
    return 6 * matmul_params + 12 * layers * h * seq


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", choices=sorted(MODELS), required=True)
    ap.add_argument("--layers", type=int, default=0, help="blocks (0: the model's)")
    ap.add_argument("--batch", type=int, required=True)
    ap.add_argument("--seq", type=int, required=True)
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--compile", action="store_true")
    ap.add_argument("--peak-tflops", type=float, default=989.0)
    a = ap.parse_args()
    layers, h, ffn, heads, kv, vocab, style = MODELS[a.model]
    if a.layers:
        layers = a.layers
    torch.manual_seed(0)
    dev = torch.device("cuda")
    model = Model(layers, h, ffn, heads, kv, vocab, style, a.seq).to(dev)
    params = sum(p.numel() for p in model.parameters())
    opt = torch.optim.AdamW(model.parameters(), lr=3e-4, betas=(0.9, 0.95), weight_decay=0.1,
                            fused=True)
    step_fn = model
    if a.compile:
        step_fn = torch.compile(model)
    torch.cuda.reset_peak_memory_stats()
    times = []
    loss = None
    for it in range(a.warmup + a.steps):
        idx = torch.randint(0, vocab, (a.batch, a.seq), device=dev)
        tgt = torch.randint(0, vocab, (a.batch, a.seq), device=dev)
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        with torch.autocast("cuda", dtype=torch.bfloat16):
            loss = step_fn(idx, tgt)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        torch.cuda.synchronize()
        if it >= a.warmup:
            times.append(time.perf_counter() - t0)
    times.sort()
    step = times[len(times) // 2]
    tokens = a.batch * a.seq
    fpt = mfu_flops_per_token(layers, h, ffn, heads, kv, vocab, style, a.seq)
    print(json.dumps({
        "runtime": "pytorch" + (" compiled" if a.compile else " eager"),
        "torch": torch.__version__, "gpu": torch.cuda.get_device_name(),
        "model": a.model, "layers": layers, "params": params, "batch": a.batch, "seq": a.seq,
        "step_time_s": step, "tokens_per_s": tokens / step,
        "mfu": fpt * tokens / step / (a.peak_tflops * 1e12),
        "peak_memory_bytes": torch.cuda.max_memory_allocated(),
        "loss": float(loss.item()) if loss is not None and math.isfinite(loss.item()) else None,
    }))


if __name__ == "__main__":
    main()
