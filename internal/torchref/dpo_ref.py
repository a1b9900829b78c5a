#!/usr/bin/python3
"""Reference DPO loss and gradients (plain and token-masked) of a HF-format checkpoint.

  /usr/bin/python3 dpo_ref.py --model DIR --ref REF_DIR --input IN.json --out OUT.safetensors \
      [--dtype float64|float32]

Written from TRL's trainer/dpo_trainer.py (loss_type sigmoid, hinge, ipo) and docs/spec.md §6,
not from the Go code.

IN.json:
  {"tokens":    [[int]*T]*2n   rows 0..n-1 chosen, rows n..2n-1 rejected (pair i = rows i, n+i),
   "loss_mask": [[0/1]*T]*2n   1 at p when logits[p] predict a response token tokens[p+1],
   "beta": float, "loss_type": "sigmoid"|"hinge"|"ipo",
   "keep":      [[0/1]*T]*2n   optional: a token keep mask (masked DPO),
   "coefficient": "unmasked"|"masked"}   with keep: where the pair weight comes from
  or {"tokens", "loss_mask", "cases": [{"beta", "loss_type", "keep", "coefficient"}, ...]}: several
  settings on one batch, written as "<i>/loss" and "<i>/grad.<name>".

Plain DPO (no keep), TRL's formulas: per row, logps = sum over the completion of
log pi(y_t); for ipo the per-token average. logits = (pi_c - pi_r) - (ref_c - ref_r);
  sigmoid  -logsigmoid(beta*logits)
  hinge    relu(1 - beta*logits)
  ipo      (logits - 1/(2*beta))**2
loss = mean over pairs.

Masked DPO with the unmasked coefficient (SPEC §6): c_i = -dl/dlogits at the unmasked
logits, computed by autograd on a detached leaf; the surrogate
  (1/n) sum_i c_i * (sum_t keep*a*log pi(y_w,t) ... )   -- see masked_surrogate()
is differentiated; the reported loss is the unmasked DPO loss. With the masked coefficient the
loss is the DPO loss of the masked sequences (log-ratios of unkept tokens set to 0).

OUT.safetensors (working dtype): "loss" [] and "grad.<HF name>" for every parameter.
"""
import sys

sys.dont_write_bytecode = True

import argparse
import json
import os

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import hf_decoder  # noqa: E402
import st_io  # noqa: E402
from model_ref import DTYPES, load_model  # noqa: E402


def token_logps(cfg, params, tokens):
    """[2n, T-1]: log pi(tokens[:, p+1] | tokens[:, :p+1])."""
    return -hf_decoder.next_token_nll(hf_decoder.forward(cfg, params, tokens), tokens)


def pair_loss(loss_type, beta, logits):
    if loss_type == "sigmoid":
        return -F.logsigmoid(beta * logits)
    if loss_type == "hinge":
        return torch.relu(1 - beta * logits)
    if loss_type == "ipo":
        return (logits - 1 / (2 * beta)) ** 2
    raise ValueError(f"unknown loss_type {loss_type}")


def aggregation(loss_type, mask):
    """Per-token weight of a row's log-ratio sum: 1, or 1/|completion| for ipo (TRL)."""
    if loss_type == "ipo":
        return mask / mask.sum(dim=1, keepdim=True).clamp(min=1.0)
    return mask


def dpo_logits(logps, ref_logps, agg):
    n = logps.shape[0] // 2
    scores = ((logps - ref_logps) * agg).sum(dim=1)  # chosen_logratios, rejected_logratios
    return scores[:n] - scores[n:]


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True)
    ap.add_argument("--ref", required=True)
    ap.add_argument("--input", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--dtype", default="float64", choices=sorted(DTYPES))
    args = ap.parse_args(argv)
    dtype = DTYPES[args.dtype]

    with open(args.input) as f:
        d = json.load(f)
    tokens = torch.tensor(d["tokens"], dtype=torch.long)
    if tokens.shape[0] % 2:
        raise ValueError("tokens must hold 2n rows: n chosen, then n rejected")
    mask = torch.tensor(d["loss_mask"], dtype=dtype)[:, :-1]
    cfg, params, aliases = load_model(args.model, dtype)
    rcfg, rparams, _ = load_model(args.ref, dtype)
    with torch.no_grad():
        ref_logps = token_logps(rcfg, rparams, tokens)

    npdt = np.float64 if dtype == torch.float64 else np.float32
    out = {}
    cases = d.get("cases", [d])  # several loss settings on the same batch: outputs "<i>/loss", …
    for i, case in enumerate(cases):
        for p in params.values():
            p.grad = None
        value = case_loss_backward(case, cfg, params, tokens, mask, ref_logps, dtype)
        prefix = f"{i}/" if "cases" in d else ""
        out[prefix + "loss"] = np.array(value, dtype=npdt)
        for name, p in params.items():
            g = p.grad if p.grad is not None else torch.zeros_like(p)
            out[prefix + "grad." + name] = g.numpy().astype(npdt)
        for alias, target in aliases.items():
            out[prefix + "grad." + alias] = out[prefix + "grad." + target]
        print(f"case {i}: {case.get('loss_type')} keep={'keep' in case} {case.get('coefficient', '')} loss {value:.17g}")
    st_io.write_safetensors(args.out, out, metadata={"dtype": args.dtype})


def case_loss_backward(case, cfg, params, tokens, mask, ref_logps, dtype):
    """Runs backward() of one case's loss into params' .grad and returns the reported loss."""
    beta, loss_type = float(case["beta"]), case["loss_type"]
    logps = token_logps(cfg, params, tokens)
    agg = aggregation(loss_type, mask)
    n = tokens.shape[0] // 2
    if "keep" not in case:
        loss = pair_loss(loss_type, beta, dpo_logits(logps, ref_logps, agg)).mean()
        loss.backward()
        return loss.item()
    keep = torch.tensor(case["keep"], dtype=dtype)[:, :-1] * mask
    if case.get("coefficient", "unmasked") == "masked":
        loss = pair_loss(loss_type, beta, dpo_logits(logps * keep, ref_logps * keep, agg)).mean()
        loss.backward()
        return loss.item()
    # The coefficient c = -dl/dlogits at the unmasked logits, detached.
    leaf = dpo_logits(logps.detach(), ref_logps, agg).requires_grad_(True)
    unmasked = pair_loss(loss_type, beta, leaf)
    (dl,) = torch.autograd.grad(unmasked.sum(), leaf)
    coef = (-dl).detach()
    # -c * (sum kept a log pi(y_w) - sum kept a log pi(y_l)), averaged over pairs.
    rows = (logps * keep * agg).sum(dim=1)
    surrogate = (-coef * (rows[:n] - rows[n:])).sum() / n
    surrogate.backward()
    return unmasked.mean().item()


if __name__ == "__main__":
    main()
