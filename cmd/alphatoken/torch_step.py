"""PyTorch reference timing of one SFT step, for side-by-side ratios on the GPU machine.

Origin: a timing script of the project's GPU notes (outside this repository; measured 2026-11-30 on one H200 with
torch 2.11 and transformers 5.17: 18.2k / 54.0k / 85.8k / 171.7k tokens/s for f32 / TF32 / bf16
eager / bf16 torch.compile at the defaults). Copied into the alphatoken binary (go:embed) for
`alphatoken bench-gpu`, with these changes: the model shape comes from flags (defaults: the 344M
Qwen3-style config), --runs picks the variants, --json prints one JSON line per run, a run that
fails prints its error and the others go on, and a machine without CUDA, torch or transformers
prints why it was skipped.

Usage:
    python3 torch_step.py [--layers 12] [--batch 8] [--seq 512] [--prompt 64] [--runs bf16-eager,bf16-compile] [--json]

Builds a random-init Qwen3-style model of the given shape and prints tokens/s of one training step
(AdamW fused, labels -100 on the prompt) for each run: f32 (no TF32), tf32, bf16-eager,
bf16-compile.
"""
import argparse
import json
import sys
import time

ap = argparse.ArgumentParser()
ap.add_argument("--vocab", type=int, default=151936)
ap.add_argument("--hidden", type=int, default=1024)
ap.add_argument("--intermediate", type=int, default=3072)
ap.add_argument("--layers", type=int, default=12)
ap.add_argument("--heads", type=int, default=16)
ap.add_argument("--kv-heads", type=int, default=8)
ap.add_argument("--head-dim", type=int, default=128)
ap.add_argument("--theta", type=float, default=1e6)
ap.add_argument("--max-positions", type=int, default=4096)
ap.add_argument("--untied", action="store_true")
ap.add_argument("--batch", type=int, default=8)
ap.add_argument("--seq", type=int, default=512)
ap.add_argument("--prompt", type=int, default=64)
ap.add_argument("--steps", type=int, default=10)
ap.add_argument("--runs", default="f32,tf32,bf16-eager,bf16-compile")
ap.add_argument("--json", action="store_true")
a = ap.parse_args()


def emit(**kw):
    if a.json:
        print(json.dumps(kw), flush=True)
    elif "skipped" in kw:
        print("skipped: " + kw["skipped"], flush=True)
    elif "error" in kw:
        print(f"{kw['run']}: error: {kw['error']}", flush=True)
    else:
        print(f"{kw['run']}: {kw['step_s']:.4f} s/step, {kw['tokens_per_s']:.0f} tokens/s, "
              f"{kw['tflops']:.1f} TFLOP/s (6N), params {kw['params']}, warm-up {kw['warmup_s']:.1f} s", flush=True)


try:
    import torch
    from transformers import Qwen3Config, Qwen3ForCausalLM
except Exception as e:  # noqa: BLE001 - any import failure means: no PyTorch reference here
    emit(skipped=f"{sys.executable} cannot import torch and transformers ({type(e).__name__}: {e})")
    sys.exit(0)
if not torch.cuda.is_available():
    emit(skipped=f"torch {torch.__version__} sees no CUDA device")
    sys.exit(0)

cfg = Qwen3Config(vocab_size=a.vocab, hidden_size=a.hidden, intermediate_size=a.intermediate,
                  num_hidden_layers=a.layers, num_attention_heads=a.heads, num_key_value_heads=a.kv_heads,
                  head_dim=a.head_dim, max_position_embeddings=a.max_positions, rope_theta=a.theta,
                  tie_word_embeddings=not a.untied, rms_norm_eps=1e-6)

RUNS = {
    "f32": (torch.float32, False, False),
    "tf32": (torch.float32, True, False),
    "bf16-eager": (torch.bfloat16, False, False),
    "bf16-compile": (torch.bfloat16, False, True),
}


def run(name, dtype, tf32=False, compile=False):
    torch.backends.cuda.matmul.allow_tf32 = tf32
    torch.backends.cudnn.allow_tf32 = tf32
    torch.manual_seed(0)
    m = Qwen3ForCausalLM(cfg).to("cuda", dtype=dtype)
    m.train()
    n = sum(p.numel() for p in m.parameters())
    opt = torch.optim.AdamW(m.parameters(), lr=1e-5, fused=True)
    x = torch.randint(0, a.vocab, (a.batch, a.seq), device="cuda")
    labels = x.clone()
    labels[:, :a.prompt] = -100
    f = torch.compile(m) if compile else m

    def step():
        loss = f(input_ids=x, labels=labels).loss
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    t0 = time.time()
    for _ in range(3):
        step()
    torch.cuda.synchronize()
    warm = time.time() - t0
    t0 = time.time()
    for _ in range(a.steps):
        step()
    torch.cuda.synchronize()
    dt = (time.time() - t0) / a.steps
    tok = a.batch * a.seq
    emit(run=name, step_s=dt, tokens_per_s=tok / dt, tflops=6 * n * tok / dt / 1e12, params=n, warmup_s=warm,
         peak_mib=torch.cuda.max_memory_allocated() / 2**20)
    del m, opt, f
    torch.cuda.empty_cache()
    torch.cuda.reset_peak_memory_stats()


for name in a.runs.split(","):
    if name not in RUNS:
        emit(run=name, error=f"unknown run (known: {', '.join(RUNS)})")
        continue
    try:
        run(name, *RUNS[name])
    except Exception as e:  # noqa: BLE001 - report and go on with the next run
        emit(run=name, error=f"{type(e).__name__}: {e}")
        torch.cuda.empty_cache()
