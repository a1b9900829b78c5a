#!/usr/bin/python3
"""Brute-force reference for AlphaToken token values (docs/spec.md, SPEC §1–§4, §6, §7).

  /usr/bin/python3 alphatoken_ref.py --model DIR --ref REF_DIR \
      --train TRAIN.jsonl --val VAL.jsonl [--fisher FISHER.safetensors] \
      [--fisher-kind diag|kfac] --k 3 --window 32 --lambda 1.5 --rho 0.5 \
      --normalize zscore|none|rank --out OUT.jsonl [--dtype float64|float32]

Everything is deliberately done the slow, explicit way: one backward pass per
training response token, and every per-token gradient D^l_p = e_p a_p^T and
C^{v,l}_p is materialised as a [d_out, d_in] matrix before its Frobenius
product with G^l and P^l. There is no diagonal-attention pass, no ghost
product and no activation-parameter contraction here; those are what the Go
code is tested against this with.

Output: one JSON line per training response token, ordered by (example, pos):
  {"example", "pos" (label position p), "token_id" (x_{p+1}),
   "dir_tgt", "cau_tgt", "dir_prx", "cau_prx", "value", "kept"}
"""
import sys

sys.dont_write_bytecode = True

import argparse
import json
import math
import os

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import hf_decoder  # noqa: E402
import st_io  # noqa: E402
from model_ref import DTYPES, load_model  # noqa: E402


# ---------------------------------------------------------------- inputs

def read_jsonl(path):
    out = []
    with open(path) as f:
        for line in f:
            line = line.strip()
            if line:
                d = json.loads(line)
                out.append((list(d["prompt_ids"]), list(d["response_ids"])))
    return out


def example_tokens(prompt, response):
    """-> (tokens LongTensor [1, T], label positions R). SPEC §1: p is a label
    position when x_{p+1} is a response token."""
    seq = prompt + response
    if not prompt:
        raise ValueError("empty prompt: the first response token would have no label position")
    R = list(range(len(prompt) - 1, len(seq) - 1))
    return torch.tensor([seq], dtype=torch.long), R


def scored_linears(cfg, K):
    """SPEC §2: the 7 weight matrices of each of the last K decoder layers,
    as (layer index, short name, HF weight name)."""
    if not 1 <= K <= cfg.num_layers:
        raise ValueError(f"--k {K} outside [1, {cfg.num_layers}]")
    out = []
    for i in range(cfg.num_layers - K, cfg.num_layers):
        for path, short in hf_decoder.LAYER_LINEARS:
            out.append((i, short, f"model.layers.{i}.{path}.weight"))
    return out


# ------------------------------------------------------- objective gradients

def target_gradient(cfg, params, val, scored):
    """G^l = dJ_tgt/dW^l, J_tgt = (sum of all VAL response-token losses) /
    (number of VAL response tokens)."""
    weights = [params[name] for _, _, name in scored]
    M = sum(len(r) for _, r in val)
    if M == 0:
        raise ValueError("validation set has no response tokens")
    G = [torch.zeros_like(w) for w in weights]
    for prompt, response in val:
        if not response:
            continue
        tokens, R = example_tokens(prompt, response)
        nll = hf_decoder.next_token_nll(hf_decoder.forward(cfg, params, tokens), tokens)[0]
        J_part = nll[R].sum() / M
        grads = torch.autograd.grad(J_part, weights)
        for acc, g in zip(G, grads):
            acc += g
    return {name: g.detach() for (_, _, name), g in zip(scored, G)}


def proxy_gradient(params, ref_params, fisher, kind, scored):
    """P^l (SPEC §3): diag F ⊙ ΔW, kfac S ΔW A, or 0 without a Fisher file."""
    P = {}
    for _, _, name in scored:
        W = params[name].detach()
        if fisher is None:
            P[name] = torch.zeros_like(W)
            continue
        dW = W - ref_params[name].detach()
        if kind == "diag":
            Fm = fisher[name]
            if Fm.shape != W.shape:
                raise ValueError(f"fisher {name}: shape {tuple(Fm.shape)} != {tuple(W.shape)}")
            P[name] = Fm * dW
        elif kind == "kfac":
            A, S = fisher[name + ".A"], fisher[name + ".S"]
            if A.shape != (W.shape[1], W.shape[1]) or S.shape != (W.shape[0], W.shape[0]):
                raise ValueError(f"fisher {name}: K-FAC factor shapes A{tuple(A.shape)} S{tuple(S.shape)} do not fit W{tuple(W.shape)}")
            P[name] = S @ dW @ A
        else:
            raise ValueError(f"unknown fisher kind {kind!r}")
    return P


# ------------------------------------------------------------ direct path

def direct_token_grads(cfg, params, tokens, R, scored):
    """Yields (p, {name: (e_p, a_p)}) for each label position p, where
    e_p = ∂l_p/∂z_p is read from z.grad after a SEPARATE backward of l_p alone
    through the unmodified model (retain_grad on each scored layer output z),
    and a_p is that layer's input at p."""
    layers = sorted({i for i, _, _ in scored})
    cap = {}
    logits = hf_decoder.forward(cfg, params, tokens, capture_layers=layers, capture=cap)
    nll = hf_decoder.next_token_nll(logits, tokens)[0]
    zs = [cap[(i, short)]["z"] for i, short, _ in scored]
    for z in zs:
        z.retain_grad()
    for p in R:
        for z in zs:
            z.grad = None
        nll[p].backward(retain_graph=True, inputs=zs)
        out = {}
        for (i, short, name), z in zip(scored, zs):
            e = z.grad[0, p].detach().clone() if z.grad is not None else torch.zeros_like(z[0, p])
            a = cap[(i, short)]["a"][0, p].detach()
            out[name] = (e, a)
        yield p, out


# ------------------------------------------------------------ causal path

def causal_token_grads(cfg, params, tokens, R, scored, window, positions=None):
    """Value-propagation gradient of the token predicted at p, for p in R
    (or, if `positions` is given, for context positions c in `positions`,
    keyed by c). Yields (key, {v_proj weight name: (dv, x_c)}) with
      dv[rows of KV head j] = Σ_{h: h//n_rep = j} Σ_{r=c}^{min(c+W-1,T-1)} A^h_{r,c} g^h_r,
    g^h_r = ∂L/∂u^h_r from ONE backward of L = Σ_{p∈R} l_p, and x_c the v_proj
    input at c; C^{v,l} = dv x_c^T. dv is None when c > T-1 (zero gradient)."""
    T = tokens.shape[1]
    H, KV, hd, n_rep = cfg.num_heads, cfg.num_kv_heads, cfg.head_dim, cfg.n_rep
    layers = sorted({i for i, _, _ in scored})
    vnames = {i: name for i, short, name in scored if short == "v_proj"}
    cap = {}
    logits = hf_decoder.forward(cfg, params, tokens, capture_layers=layers, capture=cap)
    nll = hf_decoder.next_token_nll(logits, tokens)[0]
    L = nll[R].sum()
    us = [cap[(i, "attn")]["u"] for i in layers]
    for u in us:
        u.retain_grad()
    L.backward(inputs=us)
    keys = [(p, p + 1) for p in R] if positions is None else [(c, c) for c in positions]
    for key, c in keys:
        out = {}
        for i, u in zip(layers, us):
            if c > T - 1:
                out[vnames[i]] = (None, None)
                continue
            A = cap[(i, "attn")]["A"][0].detach()  # [H, T(query), T(key)]
            g = u.grad[0].detach()  # [T, H, hd]
            r_hi = min(c + window - 1, T - 1)
            dv = torch.zeros(KV, hd, dtype=g.dtype)
            for h in range(H):
                vec = torch.zeros(hd, dtype=g.dtype)
                for r in range(c, r_hi + 1):
                    vec += A[h, r, c] * g[r, h]
                dv[h // n_rep] += vec
            x_c = cap[(i, "v_proj")]["a"][0, c].detach()
            out[vnames[i]] = (dv.reshape(KV * hd), x_c)
        yield key, out


# --------------------------------------------------------- combination/mask

def normalise(xs, mode):
    """SPEC §4 N(): none (identity), population z-score (a degenerate component
    contributes 0), or centred rank (r - (N+1)/2)/N with tied values sharing
    their average 1-based rank r."""
    if mode == "none":
        return list(xs)
    if mode == "rank":
        n = len(xs)
        ranks = [0.0] * n
        for i, x in enumerate(xs):
            below = sum(1 for y in xs if y < x)
            ties = sum(1 for y in xs if y == x)
            ranks[i] = below + (ties + 1) / 2.0
        return [(r - (n + 1) / 2.0) / n for r in ranks]
    n = len(xs)
    mean = sum(xs) / n
    std = math.sqrt(sum((x - mean) ** 2 for x in xs) / n)
    mag = sum(abs(x) for x in xs) / n
    if std == 0.0 or std < 1e-12 * mag:
        return [0.0] * n
    return [(x - mean) / std for x in xs]


def top_mask(values, rho):
    """SPEC §6: keep the top k = max(1, floor(rho N + 0.5)) by value; ties by
    order (earlier wins)."""
    n = len(values)
    k = max(1, int(math.floor(rho * n + 0.5)))
    k = min(k, n)
    order = sorted(range(n), key=lambda j: (-values[j], j))
    keep = [False] * n
    for j in order[:k]:
        keep[j] = True
    return keep


def frob(M1, M2):
    return float((M1 * M2).sum())


def score_tokens(cfg, params, train, scored, G, P, window):
    """Brute-force components for every training response token.
    Returns list of dicts (example, pos, token_id, dir_tgt, cau_tgt, dir_prx, cau_prx)."""
    rows = []
    for ex, (prompt, response) in enumerate(train):
        if not response:
            continue
        tokens, R = example_tokens(prompt, response)
        res = {p: {"example": ex, "pos": p, "token_id": int(tokens[0, p + 1]),
                   "dir_tgt": 0.0, "cau_tgt": 0.0, "dir_prx": 0.0, "cau_prx": 0.0} for p in R}
        for p, grads in direct_token_grads(cfg, params, tokens, R, scored):
            for name, (e, a) in grads.items():
                D = torch.outer(e, a)  # materialised per-token gradient
                res[p]["dir_tgt"] += frob(D, G[name])
                res[p]["dir_prx"] += frob(D, P[name])
        for p, grads in causal_token_grads(cfg, params, tokens, R, scored, window):
            for name, (dv, x) in grads.items():
                if dv is None:
                    continue
                C = torch.outer(dv, x)  # materialised causal gradient on v_proj
                res[p]["cau_tgt"] += frob(C, G[name])
                res[p]["cau_prx"] += frob(C, P[name])
        rows.extend(res[p] for p in R)
    return rows


def combine(rows, lam, rho, normalize):
    tgt = normalise([r["dir_tgt"] + r["cau_tgt"] for r in rows], normalize)
    prx = normalise([r["dir_prx"] + r["cau_prx"] for r in rows], normalize)
    values = [t + lam * q for t, q in zip(tgt, prx)]
    keep = top_mask(values, rho)
    for r, v, k in zip(rows, values, keep):
        r["value"] = v
        r["kept"] = k
    return rows


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True)
    ap.add_argument("--ref", help="reference checkpoint θ_ref (needed with --fisher)")
    ap.add_argument("--train", required=True)
    ap.add_argument("--val", required=True)
    ap.add_argument("--fisher")
    ap.add_argument("--fisher-kind", default="diag", choices=["diag", "kfac"])
    ap.add_argument("--k", type=int, default=3)
    ap.add_argument("--window", type=int, default=32)
    ap.add_argument("--lambda", dest="lam", type=float, default=1.5)
    ap.add_argument("--rho", type=float, default=0.5)
    ap.add_argument("--normalize", default="none", choices=["none", "zscore", "rank"])
    ap.add_argument("--out", required=True)
    ap.add_argument("--dtype", default="float64", choices=sorted(DTYPES))
    args = ap.parse_args(argv)
    dtype = DTYPES[args.dtype]
    if args.window < 1:
        raise ValueError("--window must be >= 1")

    cfg, params, _ = load_model(args.model, dtype)
    scored = scored_linears(cfg, args.k)
    fisher = ref_params = None
    if args.fisher:
        if not args.ref:
            raise ValueError("--fisher needs --ref")
        ref_cfg, ref_params, _ = load_model(args.ref, dtype)
        if ref_cfg.param_shapes() != cfg.param_shapes():
            raise ValueError("--ref checkpoint does not match --model's architecture")
        raw, _ = st_io.read_safetensors(args.fisher)
        fisher = {k: torch.tensor(v, dtype=dtype) for k, v in raw.items()}
    train, val = read_jsonl(args.train), read_jsonl(args.val)

    G = target_gradient(cfg, params, val, scored)
    P = proxy_gradient(params, ref_params, fisher, args.fisher_kind, scored)
    rows = score_tokens(cfg, params, train, scored, G, P, args.window)
    if not rows:
        raise ValueError("training set has no response tokens")
    combine(rows, args.lam, args.rho, args.normalize)
    keys = ("example", "pos", "token_id", "dir_tgt", "cau_tgt", "dir_prx", "cau_prx", "value", "kept")
    with open(args.out, "w") as f:
        for r in rows:
            f.write(json.dumps({k: r[k] for k in keys}) + "\n")
    print(f"scored {len(rows)} tokens, kept {sum(r['kept'] for r in rows)}; wrote {args.out}")


if __name__ == "__main__":
    main()
