#!/usr/bin/python3
"""Self-test of the torch references. Builds tiny random checkpoints
(llama: GQA + tied embeddings + llama3 RoPE scaling, stored F32;
 qwen2: q/k/v biases + linear RoPE scaling, sharded, stored F64;
 qwen3: q/k norm, untied, stored BF16;
 gemma3: sandwich norms, q/k norms, sliding-window layers in the 4.50
 sliding_window_pattern form, query_pre_attn_scalar, stored F32) and checks:

 (a) model_ref.py (run as a CLI) gradients vs float64 central finite
     differences on entries of many parameters; float32 run vs float64;
 (b) causal path: with W = T, each context position's C^v equals
     (∂L/∂z^v_c) x_c^T, and the sum over ALL positions c equals ∂L/∂W_V;
     the windowed sum equals a vectorised band-matrix formula;
 (c) direct path: e_p from per-token backward (retain_grad) equals
     autograd.grad(l_p, z); Φ^dir equals a finite-difference directional
     derivative of l_p along z_p -> z_p + ε G a_p;
 (d) alphatoken_ref.py (run as a CLI, diag / kfac / no Fisher): all four
     components re-derived by an independent route (padded-batch G,
     autograd.grad e_p and ∂L/∂z^v), z-score / raw combination and top-ρ mask;
 (g) gemma3: the attention probabilities vanish exactly outside
     q - sliding_window < kv <= q on sliding layers and outside kv <= q on
     global ones; the transformers-5 config form gives the same logits.

  /usr/bin/python3 selftest.py      (exit status 1 on any failure)
"""
import sys

sys.dont_write_bytecode = True

import json
import math
import os
import subprocess
import tempfile
import time

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import alphatoken_ref as at  # noqa: E402
import hf_decoder  # noqa: E402
import st_io  # noqa: E402
from model_ref import load_model  # noqa: E402

PY = "/usr/bin/python3"
FAILURES = []


def check(name, ok, detail=""):
    print(f"{'PASS' if ok else 'FAIL'} {name}" + (f"  ({detail})" if detail else ""), flush=True)
    if not ok:
        FAILURES.append(name)


def relerr(a, b):
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    return float(np.max(np.abs(a - b)) / max(np.max(np.abs(b)), 1e-300))


# ---------------------------------------------------------------- fixtures

CONFIGS = {
    "llama": dict(model_type="llama", vocab_size=37, hidden_size=24, intermediate_size=40,
                  num_hidden_layers=4, num_attention_heads=4, num_key_value_heads=2, head_dim=8,
                  rms_norm_eps=1e-5, rope_theta=500.0, tie_word_embeddings=True, hidden_act="silu",
                  attention_bias=False, mlp_bias=False,
                  rope_scaling={"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                                "high_freq_factor": 4.0, "original_max_position_embeddings": 64}),
    "qwen2": dict(model_type="qwen2", vocab_size=41, hidden_size=16, intermediate_size=28,
                  num_hidden_layers=3, num_attention_heads=4, num_key_value_heads=1,
                  rms_norm_eps=1e-6, rope_theta=10000.0, tie_word_embeddings=False, hidden_act="silu",
                  use_sliding_window=False, rope_scaling={"type": "linear", "factor": 2.0}),
    "qwen3": dict(model_type="qwen3", vocab_size=43, hidden_size=20, intermediate_size=32,
                  num_hidden_layers=3, num_attention_heads=4, num_key_value_heads=2, head_dim=6,
                  rms_norm_eps=1e-6, rope_theta=1000000.0, tie_word_embeddings=False, hidden_act="silu",
                  attention_bias=False, rope_scaling=None),
    "gemma3": dict(model_type="gemma3_text", vocab_size=39, hidden_size=16, intermediate_size=24,
                   num_hidden_layers=4, num_attention_heads=4, num_key_value_heads=2, head_dim=6,
                   rms_norm_eps=1e-6, rope_theta=1000000.0, rope_local_base_freq=10000.0,
                   rope_scaling={"rope_type": "linear", "factor": 8.0}, query_pre_attn_scalar=5,
                   sliding_window=3, sliding_window_pattern=2, hidden_activation="gelu_pytorch_tanh",
                   tie_word_embeddings=True),
}
STORE = {"llama": "F32", "qwen2": "F64", "qwen3": "BF16", "gemma3": "F32"}


def random_tensors(cfg, rng, scale=1.0):
    out = {}
    for name, shape in cfg.param_shapes().items():
        if name.endswith("norm.weight"):
            a = (0.0 if cfg.gemma else 1.0) + 0.2 * rng.standard_normal(shape)  # Gemma scales by 1 + w
        elif name.endswith(".bias"):
            a = 0.3 * rng.standard_normal(shape)
        elif name == "model.embed_tokens.weight":
            a = rng.standard_normal(shape)
        else:
            a = scale * rng.standard_normal(shape) / math.sqrt(shape[1])
        out[name] = a
    return out


def write_checkpoint(path, config, tensors, store, shards=1):
    os.makedirs(path, exist_ok=True)
    with open(os.path.join(path, "config.json"), "w") as f:
        json.dump(config, f, indent=1)
    if store == "BF16":
        # round to bf16 first so the file holds the exact values we keep
        tensors = {k: _bf16_round(v) for k, v in tensors.items()}
        arrs, dtypes = {k: v.astype(np.float32) for k, v in tensors.items()}, {k: "BF16" for k in tensors}
    else:
        npdt = np.float32 if store == "F32" else np.float64
        arrs, dtypes = {k: v.astype(npdt) for k, v in tensors.items()}, None
    if shards == 1:
        st_io.write_safetensors(os.path.join(path, "model.safetensors"), arrs, {"format": "pt"}, dtypes)
    else:
        names = sorted(arrs)
        wmap = {}
        for s in range(shards):
            fname = f"model-{s + 1:05d}-of-{shards:05d}.safetensors"
            part = {n: arrs[n] for n in names[s::shards]}
            st_io.write_safetensors(os.path.join(path, fname), part, {"format": "pt"}, dtypes)
            wmap.update({n: fname for n in part})
        with open(os.path.join(path, "model.safetensors.index.json"), "w") as f:
            json.dump({"metadata": {}, "weight_map": wmap}, f)
    return {k: np.asarray(v, dtype=np.float64) for k, v in arrs.items()}


def _bf16_round(a):
    u = np.ascontiguousarray(a, dtype=np.float32).view(np.uint32)
    return (u & np.uint32(0xFFFF0000)).view(np.float32).astype(np.float64)


def run_cli(args):
    t = time.time()
    r = subprocess.run([PY, "-B"] + args, capture_output=True, text=True)
    if r.returncode != 0:
        print(r.stdout, r.stderr)
        raise RuntimeError(f"{args[0]} failed")
    return time.time() - t


# ------------------------------------------------------------ (0) format

def test_safetensors(tmp):
    rng = np.random.default_rng(0)
    x64 = rng.standard_normal((3, 5))
    x32 = rng.standard_normal((4,)).astype(np.float32)
    i64 = np.arange(-3, 3, dtype=np.int64).reshape(2, 3)
    bf = _bf16_round(rng.standard_normal((2, 2)))
    p = os.path.join(tmp, "t.safetensors")
    st_io.write_safetensors(p, {"a": x64, "b": x32, "c": i64, "s": np.array(2.5), "bf": bf},
                            {"k": "v"}, {"bf": "BF16"})
    got, meta = st_io.read_safetensors(p)
    ok = (np.array_equal(got["a"], x64) and got["a"].dtype == np.float64 and np.array_equal(got["b"], x32)
          and np.array_equal(got["c"], i64) and got["s"].shape == () and float(got["s"]) == 2.5
          and np.array_equal(got["bf"].astype(np.float64), bf) and meta == {"k": "v"})
    # hand-made I32 + BF16 bytes (1.0 = 0x3F80, -2.0 = 0xC000)
    hdr = json.dumps({"i": {"dtype": "I32", "shape": [2], "data_offsets": [0, 8]},
                      "h": {"dtype": "BF16", "shape": [2], "data_offsets": [8, 12]}}).encode()
    with open(p, "wb") as f:
        f.write(len(hdr).to_bytes(8, "little") + hdr + np.array([7, -9], "<i4").tobytes()
                + np.array([0x3F80, 0xC000], "<u2").tobytes())
    got, _ = st_io.read_safetensors(p)
    ok = ok and list(got["i"]) == [7, -9] and list(got["h"]) == [1.0, -2.0]
    check("safetensors round trip (F64/F32/I64/scalar/BF16 write; I32/BF16 read)", ok)


# ------------------------------------------------------------ (a) model_ref

def loss_of(cfg, params, tokens, mask):
    nll = hf_decoder.next_token_nll(hf_decoder.forward(cfg, params, tokens), tokens)
    return (nll * mask[:, :-1]).sum() / mask.sum()


def test_model_ref(arch, ckpt, tmp, rng):
    cfg, params, _ = load_model(ckpt, torch.float64)
    V, T = cfg.vocab_size, 9
    toks = rng.integers(1, V, size=(3, T))
    toks[1, 6:] = 0  # right padding
    mask = np.zeros((3, T))
    mask[0, 2:8] = 1
    mask[1, 3:5] = 1  # row 1 has 6 real tokens: labels up to p=4
    mask[2, [0, 4, 7]] = 1
    inp = os.path.join(tmp, f"{arch}_in.json")
    with open(inp, "w") as f:
        json.dump({"tokens": toks.tolist(), "loss_mask": mask.tolist()}, f)
    out64, out32 = os.path.join(tmp, f"{arch}_out64.safetensors"), os.path.join(tmp, f"{arch}_out32.safetensors")
    dt = run_cli([os.path.join(HERE, "model_ref.py"), "--model", ckpt, "--input", inp, "--out", out64])
    run_cli([os.path.join(HERE, "model_ref.py"), "--model", ckpt, "--input", inp, "--out", out32, "--dtype", "float32"])
    o64, _ = st_io.read_safetensors(out64)
    o32, _ = st_io.read_safetensors(out32)

    tokens, tmask = torch.tensor(toks), torch.tensor(mask)
    shapes = cfg.param_shapes()
    names_ok = set(k[5:] for k in o64 if k.startswith("grad.")) == set(shapes)
    shapes_ok = all(o64["grad." + n].shape == tuple(s) for n, s in shapes.items())
    check(f"(a) {arch}: output has logits{o64['logits'].shape}, loss{o64['loss'].shape}, "
          f"{len(shapes)} grads of the right shapes ({dt:.1f}s)",
          names_ok and shapes_ok and o64["logits"].shape == (3, T, V) and o64["loss"].shape == ())
    with torch.no_grad():
        L0 = float(loss_of(cfg, params, tokens, tmask))
    check(f"(a) {arch}: loss reproduces", abs(L0 - float(o64["loss"])) < 1e-12 * max(1, abs(L0)))

    # causality/padding: row 1's real positions equal the unpadded sequence's
    with torch.no_grad():
        lg = hf_decoder.forward(cfg, params, tokens[1:2, :6])
    check(f"(a) {arch}: right padding does not change real positions",
          relerr(o64["logits"][1, :6], lg[0].numpy()) < 1e-12)

    # finite differences on a few entries of many parameters
    pick = ["model.embed_tokens.weight", "model.norm.weight", "model.layers.0.input_layernorm.weight",
            "model.layers.0.self_attn.k_proj.weight", "model.layers.1.self_attn.q_proj.weight",
            "model.layers.1.self_attn.v_proj.weight", "model.layers.1.self_attn.o_proj.weight",
            "model.layers.0.mlp.gate_proj.weight", "model.layers.1.mlp.up_proj.weight",
            f"model.layers.{cfg.num_layers - 1}.mlp.down_proj.weight",
            f"model.layers.{cfg.num_layers - 1}.post_attention_layernorm.weight"]
    pick += [n for n in shapes if n.endswith(".bias") or "q_norm" in n or "k_norm" in n or n == "lm_head.weight"][:6]
    worst_abs, worst_rel, eps, n_checked = 0.0, 0.0, 1e-5, 0
    for name in pick:
        p = params[name]
        g = o64["grad." + name]
        flat_idx = list(rng.choice(p.numel(), size=3, replace=False)) + [int(np.argmax(np.abs(g)))]
        for fi in flat_idx:
            idx = np.unravel_index(fi, tuple(p.shape))
            with torch.no_grad():
                old = p[idx].item()
                p[idx] = old + eps
                lp = float(loss_of(cfg, params, tokens, tmask))
                p[idx] = old - eps
                lm = float(loss_of(cfg, params, tokens, tmask))
                p[idx] = old
            fd = (lp - lm) / (2 * eps)
            d = abs(fd - float(g[idx]))
            worst_abs = max(worst_abs, d)
            if abs(g[idx]) > 1e-4:
                worst_rel = max(worst_rel, d / abs(g[idx]))
            n_checked += 1
    check(f"(a) {arch}: gradients vs finite differences ({n_checked} entries of {len(pick)} tensors)",
          worst_abs < 1e-8 and worst_rel < 1e-6, f"worst abs err {worst_abs:.1e}, rel err {worst_rel:.1e}")

    e32 = max(relerr(o32[k], o64[k]) for k in o64)
    check(f"(a) {arch}: float32 run agrees with float64", e32 < 1e-3, f"max rel err {e32:.2e}")


# ------------------------------------------------------------ (g) gemma3

def test_gemma_masks(ckpt, tmp, rng):
    cfg, params, _ = load_model(ckpt, torch.float64)
    W, T = cfg.sliding_window, 8
    check("(g) gemma3: layer kinds from sliding_window_pattern=2",
          cfg.layer_types == ["sliding_attention", "full_attention"] * 2, str(cfg.layer_types))
    tokens = torch.tensor(rng.integers(0, cfg.vocab_size, size=(2, T)))
    cap = {}
    with torch.no_grad():
        logits = hf_decoder.forward(cfg, params, tokens, range(cfg.num_layers), cap)
    r, c = torch.arange(T).view(T, 1), torch.arange(T).view(1, T)
    ok = True
    for i, kind in enumerate(cfg.layer_types):
        A = cap[(i, "attn")]["A"]  # [B, H, T, T]
        visible = (c <= r) & ((c > r - W) if kind == "sliding_attention" else True)
        ok = ok and bool((A[..., ~visible] == 0).all()) and bool((A[..., visible] > 0).all())
    check(f"(g) gemma3: probabilities are zero exactly outside q-{W} < kv <= q (sliding) / kv <= q (full)", ok)
    # transformers-5 form of the same config: rope_parameters per attention kind, layer_types
    conf5 = dict(CONFIGS["gemma3"])
    for k in ("rope_theta", "rope_local_base_freq", "rope_scaling", "sliding_window_pattern"):
        del conf5[k]
    conf5["layer_types"] = cfg.layer_types
    conf5["rope_parameters"] = {"full_attention": {"rope_type": "linear", "factor": 8.0, "rope_theta": 1000000.0},
                                "sliding_attention": {"rope_type": "default", "rope_theta": 10000.0}}
    cfg5 = hf_decoder.DecoderConfig(conf5)
    with torch.no_grad():
        logits5 = hf_decoder.forward(cfg5, params, tokens)
    check("(g) gemma3: transformers-5 config gives the same logits", torch.equal(logits, logits5))


# ------------------------------------------------------------ (b) causal

def test_causal(arch, ckpt, rng):
    cfg, params, _ = load_model(ckpt, torch.float64)
    K = 2
    scored = at.scored_linears(cfg, K)
    prompt = [int(t) for t in rng.integers(0, cfg.vocab_size, 4)]
    resp = [int(t) for t in rng.integers(0, cfg.vocab_size, 7)]
    tokens, R = at.example_tokens(prompt, resp)
    T = tokens.shape[1]

    # independent: ∂L/∂W_V and ∂L/∂z^v by plain autograd
    cap = {}
    layers = sorted({i for i, _, _ in scored})
    logits = hf_decoder.forward(cfg, params, tokens, layers, cap)
    L = hf_decoder.next_token_nll(logits, tokens)[0][R].sum()
    vnames = [(i, n) for i, s, n in scored if s == "v_proj"]
    gW = torch.autograd.grad(L, [params[n] for _, n in vnames] + [cap[(i, "v_proj")]["z"] for i, _ in vnames],
                             retain_graph=True)
    dW, dz = gW[:len(vnames)], gW[len(vnames):]

    sums = {n: torch.zeros_like(params[n]) for _, n in vnames}
    per_pos = 0.0
    for c, grads in at.causal_token_grads(cfg, params, tokens, R, scored, window=T, positions=range(T)):
        for j, (i, n) in enumerate(vnames):
            dv, x = grads[n]
            C = torch.outer(dv, x)
            sums[n] += C
            per_pos = max(per_pos, relerr(C, torch.outer(dz[j][0, c], x)))
    err = max(relerr(sums[n], dW[j]) for j, (_, n) in enumerate(vnames))
    check(f"(b) {arch}: W=T, Σ_c C^v_c == ∂L/∂W_V for {len(vnames)} value projections", err < 1e-10,
          f"rel err {err:.1e}")
    check(f"(b) {arch}: W=T, C^v_c == (∂L/∂z^v_c) x_c^T at every c", per_pos < 1e-10, f"rel err {per_pos:.1e}")

    # windowed (W=3) loop formula vs vectorised band-matrix formula
    W = 3
    band = torch.zeros(T, T, dtype=torch.float64)  # band[r, c] = 1 if c <= r <= c+W-1
    for c in range(T):
        band[c:min(c + W, T), c] = 1
    worst = 0.0
    us = {i: cap[(i, "attn")]["u"] for i in layers}
    gu = dict(zip(layers, torch.autograd.grad(L, [us[i] for i in layers])))
    for p, grads in at.causal_token_grads(cfg, params, tokens, R, scored, window=W):
        c = p + 1
        for i, n in vnames:
            A = cap[(i, "attn")]["A"][0].detach()  # [H, T, T]
            vec = torch.einsum("hr,rhd->hd", A[:, :, c] * band[:, c], gu[i][0])  # [H, hd]
            ref = vec.view(cfg.num_kv_heads, cfg.n_rep, cfg.head_dim).sum(1).reshape(-1)
            dv, x = grads[n]
            worst = max(worst, relerr(torch.outer(dv, x), torch.outer(ref, cap[(i, "v_proj")]["a"][0, c].detach())))
    check(f"(b) {arch}: windowed (W={W}) causal gradient == band-matrix formula", worst < 1e-12,
          f"rel err {worst:.1e}")


# ------------------------------------------------------------ (c) direct

def test_direct(arch, ckpt, rng):
    cfg, params, _ = load_model(ckpt, torch.float64)
    scored = at.scored_linears(cfg, 2)
    layers = sorted({i for i, _, _ in scored})
    prompt = [int(t) for t in rng.integers(0, cfg.vocab_size, 3)]
    resp = [int(t) for t in rng.integers(0, cfg.vocab_size, 6)]
    tokens, R = at.example_tokens(prompt, resp)
    M = {n: torch.tensor(rng.standard_normal(tuple(params[n].shape))) for _, _, n in scored}

    cap = {}
    nll = hf_decoder.next_token_nll(hf_decoder.forward(cfg, params, tokens, layers, cap), tokens)[0]
    zs = [cap[(i, s)]["z"] for i, s, _ in scored]
    e_err, fd_err, eps = 0.0, 0.0, 1e-6
    for p, grads in at.direct_token_grads(cfg, params, tokens, R, scored):
        # route 2: autograd.grad of l_p w.r.t. the layer outputs
        e2 = torch.autograd.grad(nll[p], zs, retain_graph=True)
        phi = 0.0
        for (i, s, n), g2 in zip(scored, e2):
            e, a = grads[n]
            e_err = max(e_err, relerr(e, g2[0, p]))
            phi += float((torch.outer(e, a) * M[n]).sum())
        # route 3: finite-difference directional derivative of l_p along
        # z^l_p -> z^l_p + ε M^l a^l_p (all scored layers at once)
        pert = {}
        for i, s, n in scored:
            d = torch.zeros_like(cap[(i, s)]["z"]).detach()
            d[0, p] = M[n] @ grads[n][1]
            pert[(i, s)] = d
        with torch.no_grad():
            lp = hf_decoder.next_token_nll(hf_decoder.forward(
                cfg, params, tokens, perturb={k: eps * v for k, v in pert.items()}), tokens)[0, p]
            lm = hf_decoder.next_token_nll(hf_decoder.forward(
                cfg, params, tokens, perturb={k: -eps * v for k, v in pert.items()}), tokens)[0, p]
        fd = float(lp - lm) / (2 * eps)
        fd_err = max(fd_err, abs(fd - phi) / max(abs(phi), 1e-8))
    check(f"(c) {arch}: e_p per-token backward == autograd.grad(l_p, z)", e_err < 1e-12, f"rel err {e_err:.1e}")
    check(f"(c) {arch}: Φ^dir == finite-difference directional derivative of l_p", fd_err < 1e-6,
          f"rel err {fd_err:.1e}")


# ------------------------------------------------------------ (d) end to end

def test_alphatoken_cli(arch, ckpt, tmp, rng):
    cfg, params, _ = load_model(ckpt, torch.float64)
    # reference checkpoint: a perturbed copy of the model
    tens = st_io.load_checkpoint_dir(ckpt)[1]
    ref = {k: np.asarray(v, np.float64) + 0.05 * rng.standard_normal(v.shape) for k, v in tens.items()}
    ref_dir = os.path.join(tmp, f"{arch}_ref")
    write_checkpoint(ref_dir, CONFIGS[arch], ref, "F64")
    K, window = 2, 32
    scored = at.scored_linears(cfg, K)
    diag, kfac = {}, {}
    for _, _, n in scored:
        o, i = params[n].shape
        diag[n] = rng.random((o, i)) + 0.1
        a, s = rng.standard_normal((i, i)), rng.standard_normal((o, o))
        kfac[n + ".A"], kfac[n + ".S"] = a @ a.T / i, s @ s.T / o
    st_io.write_safetensors(os.path.join(tmp, "diag.safetensors"), diag)
    st_io.write_safetensors(os.path.join(tmp, "kfac.safetensors"), kfac)

    def ex(np_, nr):
        return {"prompt_ids": [int(t) for t in rng.integers(0, cfg.vocab_size, np_)],
                "response_ids": [int(t) for t in rng.integers(0, cfg.vocab_size, nr)]}
    train = [ex(3, 5), ex(1, 4), ex(5, 6)]
    val = [ex(2, 5), ex(4, 3)]
    for fn, rows in (("train.jsonl", train), ("val.jsonl", val)):
        with open(os.path.join(tmp, fn), "w") as f:
            f.writelines(json.dumps(r) + "\n" for r in rows)

    outs = {}
    for kind in ("diag", "kfac", "none"):
        out = os.path.join(tmp, f"at_{kind}.jsonl")
        args = [os.path.join(HERE, "alphatoken_ref.py"), "--model", ckpt, "--ref", ref_dir,
                "--train", os.path.join(tmp, "train.jsonl"), "--val", os.path.join(tmp, "val.jsonl"),
                "--k", str(K), "--window", str(window), "--lambda", "1.5", "--rho", "0.5",
                "--normalize", "zscore", "--out", out]
        if kind != "none":
            args += ["--fisher", os.path.join(tmp, f"{kind}.safetensors"), "--fisher-kind", kind]
        dt = run_cli(args)
        with open(out) as f:
            outs[kind] = [json.loads(line) for line in f]
        print(f"     alphatoken_ref.py --fisher-kind {kind}: {dt:.1f}s")

    # ---- independent recomputation ----
    # G from ONE padded batch of the validation set (different from per-example)
    vt = [v["prompt_ids"] + v["response_ids"] for v in val]
    Tm = max(map(len, vt))
    vtok = torch.tensor([s + [0] * (Tm - len(s)) for s in vt])
    vmask = torch.zeros(len(val), Tm)
    for b, v in enumerate(val):
        vmask[b, len(v["prompt_ids"]) - 1:len(vt[b]) - 1] = 1
    J = loss_of(cfg, params, vtok, vmask)
    names = [n for _, _, n in scored]
    G = dict(zip(names, torch.autograd.grad(J, [params[n] for n in names])))
    _, ref_params, _ = load_model(ref_dir, torch.float64)
    P = {"diag": {n: torch.tensor(diag[n]) * (params[n] - ref_params[n]).detach() for n in names},
         "kfac": {n: torch.tensor(kfac[n + ".S"]) @ (params[n] - ref_params[n]).detach() @ torch.tensor(kfac[n + ".A"])
                  for n in names}}
    layers = sorted({i for i, _, _ in scored})
    expect = []
    for b, r in enumerate(train):
        tokens = torch.tensor([r["prompt_ids"] + r["response_ids"]])
        T = tokens.shape[1]
        cap = {}
        nll = hf_decoder.next_token_nll(hf_decoder.forward(cfg, params, tokens, layers, cap), tokens)[0]
        R = list(range(len(r["prompt_ids"]) - 1, T - 1))
        zs = [cap[(i, s)]["z"] for i, s, _ in scored]
        vz = [cap[(i, "v_proj")]["z"] for i in layers]
        # window (32) >= T: value propagation to v_c is the full ∂L/∂z^v_c
        gv = torch.autograd.grad(nll[R].sum(), vz, retain_graph=True)
        for p in R:
            e = torch.autograd.grad(nll[p], zs, retain_graph=True)
            row = {"example": b, "pos": p, "token_id": int(tokens[0, p + 1])}
            for tag, Mset in (("tgt", G), ("prx_diag", P["diag"]), ("prx_kfac", P["kfac"])):
                row["dir_" + tag] = sum(float(e[j][0, p] @ Mset[n] @ cap[(i, s)]["a"][0, p])
                                        for j, (i, s, n) in enumerate(scored))
                row["cau_" + tag] = sum(float(gv[j][0, p + 1] @ Mset[f"model.layers.{i}.self_attn.v_proj.weight"]
                                              @ cap[(i, "v_proj")]["a"][0, p + 1]) for j, i in enumerate(layers))
            expect.append(row)

    N = len(expect)
    check(f"(d) {arch}: one line per training response token ({N}), in order",
          all(len(o) == N for o in outs.values()) and
          all([(r["example"], r["pos"], r["token_id"]) for r in o] == [(r["example"], r["pos"], r["token_id"]) for r in expect]
              for o in outs.values()))

    def cmp(kind, field, efield):
        got = np.array([r[field] for r in outs[kind]])
        ref_ = np.array([r[efield] for r in expect])
        return relerr(got, ref_)
    errs = {
        "dir_tgt": max(cmp(k, "dir_tgt", "dir_tgt") for k in outs),
        "cau_tgt": max(cmp(k, "cau_tgt", "cau_tgt") for k in outs),
        "dir_prx(diag)": cmp("diag", "dir_prx", "dir_prx_diag"),
        "cau_prx(diag)": cmp("diag", "cau_prx", "cau_prx_diag"),
        "dir_prx(kfac)": cmp("kfac", "dir_prx", "dir_prx_kfac"),
        "cau_prx(kfac)": cmp("kfac", "cau_prx", "cau_prx_kfac"),
    }
    for k, v in errs.items():
        check(f"(d) {arch}: {k} == independent recomputation", v < 1e-9, f"rel err {v:.1e}")
    check(f"(d) {arch}: without --fisher the prx components are 0",
          all(r["dir_prx"] == 0.0 and r["cau_prx"] == 0.0 for r in outs["none"]))

    # combination and mask
    comb_ok = True
    k_expected = max(1, int(math.floor(0.5 * N + 0.5)))
    for kind, rows in outs.items():
        def z(x):
            x = np.array(x)
            s = x.std()
            return np.zeros_like(x) if s == 0 or s < 1e-12 * np.abs(x).mean() else (x - x.mean()) / s
        v = z([r["dir_tgt"] + r["cau_tgt"] for r in rows]) + 1.5 * z([r["dir_prx"] + r["cau_prx"] for r in rows])
        comb_ok &= relerr([r["value"] for r in rows], v) < 1e-12
        order = sorted(range(N), key=lambda j: (-rows[j]["value"], j))
        kept = sorted(j for j in range(N) if rows[j]["kept"])
        comb_ok &= kept == sorted(order[:k_expected])
    check(f"(d) {arch}: value = N(tgt) + 1.5 N(prx) and top-ρ mask keeps {k_expected} of {N}", comb_ok)
    raw = at.combine([dict(r) for r in outs["kfac"]], 1.5, 0.5, "none")
    check(f"(d) {arch}: --normalize none gives the raw sum tgt + λ prx",
          relerr([r["value"] for r in raw],
                 [r["dir_tgt"] + r["cau_tgt"] + 1.5 * (r["dir_prx"] + r["cau_prx"]) for r in raw]) < 1e-15)
    check("(d) top_mask ties: earlier wins, k = floor(ρN+0.5) >= 1",
          at.top_mask([1.0, 2.0, 2.0, 2.0, 0.0], 0.5) == [False, True, True, True, False] and
          at.top_mask([1.0, 1.0, 1.0, 1.0], 0.5) == [True, True, False, False] and
          at.top_mask([3.0, 1.0, 2.0], 0.01) == [True, False, False] and
          at.normalise([2.0, 2.0, 2.0], "zscore") == [0.0, 0.0, 0.0])


def main():
    t0 = time.time()
    torch.manual_seed(0)
    rng = np.random.default_rng(1234)
    with tempfile.TemporaryDirectory(prefix="torchref_selftest_") as tmp:
        test_safetensors(tmp)
        ckpts = {}
        for arch, conf in CONFIGS.items():
            cfg = hf_decoder.DecoderConfig(conf)
            ckpts[arch] = os.path.join(tmp, arch)
            # gemma3 (added last) draws its weights from a stream of its own, so the other models'
            # weights and test draws are the ones they always had
            draw = np.random.default_rng(77) if arch == "gemma3" else rng
            write_checkpoint(ckpts[arch], conf, random_tensors(cfg, draw, scale=1.5), STORE[arch],
                             shards=2 if arch == "qwen2" else 1)
        # RoPE sanity: llama3 scaling must hit all three frequency bands here
        inv = hf_decoder.rope_inv_freq(hf_decoder.DecoderConfig(CONFIGS["llama"]))
        base = 1.0 / (500.0 ** (torch.arange(0, 8, 2, dtype=torch.float64) / 8))
        ratio = (base / inv).tolist()
        check("rope llama3: high band unscaled, medium interpolated, low divided by factor",
              abs(ratio[0] - 1) < 1e-15 and 1 < ratio[1] < 8 and abs(ratio[2] - 8) < 1e-12 and abs(ratio[3] - 8) < 1e-12,
              "base/scaled = " + ", ".join(f"{r:.4f}" for r in ratio))
        # transformers v5 spelling: rope_parameters = {rope_type, rope_theta, ...}
        v5 = dict(CONFIGS["qwen2"])
        del v5["rope_scaling"], v5["rope_theta"]
        v5["rope_parameters"] = {"rope_type": "linear", "factor": 2.0, "rope_theta": 10000.0}
        check("rope: v5 rope_parameters == v4 rope_theta + rope_scaling{type: linear}",
              torch.equal(hf_decoder.rope_inv_freq(hf_decoder.DecoderConfig(v5)),
                          hf_decoder.rope_inv_freq(hf_decoder.DecoderConfig(CONFIGS["qwen2"]))))
        for arch in CONFIGS:
            test_model_ref(arch, ckpts[arch], tmp, rng)
        for arch in CONFIGS:
            test_causal(arch, ckpts[arch], rng)
        for arch in CONFIGS:
            test_direct(arch, ckpts[arch], rng)
        for arch in CONFIGS:
            test_alphatoken_cli(arch, ckpts[arch], tmp, rng)
        test_gemma_masks(ckpts["gemma3"], tmp, rng)
    print(f"{'FAIL' if FAILURES else 'PASS'}: {len(FAILURES)} failure(s); {time.time() - t0:.1f}s")
    sys.exit(1 if FAILURES else 0)


if __name__ == "__main__":
    main()
