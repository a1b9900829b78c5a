"""Functional PyTorch re-implementation of the Hugging Face decoder-only
models LlamaForCausalLM, Qwen2ForCausalLM, Qwen3ForCausalLM and
Gemma3ForCausalLM (eager attention), written from the published model
definitions (transformers' modeling_llama.py, modeling_qwen2.py,
modeling_qwen3.py, modeling_gemma3.py and masking_utils.py).

Gemma 3 (model_type gemma3_text) differs from Llama in: embeddings times
sqrt(hidden_size); Gemma RMSNorm x*rsqrt(mean x^2+eps)*(1+w) everywhere; four
norms per block (input, post_attention, pre_feedforward, post_feedforward:
h = h + post_attn_norm(attn(input_norm(h))), h = h + post_ff_norm(mlp(
pre_ff_norm(h)))); q_norm/k_norm; scores scaled by query_pre_attn_scalar^-0.5;
sliding_attention layers see keys kv with q - sliding_window < kv <= q and use
the local RoPE base (rope_local_base_freq, no scaling), full_attention layers
the global base with rope_scaling; GELU (tanh approximation) in the MLP; tied
head by default.

Parameters are a dict {HF tensor name: torch tensor}; `forward` can record
every linear layer's input/output and every attention's probabilities and
per-head output, and can add perturbations to linear outputs (for finite
differences). Everything is computed in the parameters' dtype (float64 by
default), including RMSNorm and softmax. Differences from transformers'
eager code, all numerically minor and deliberate for a float64 yardstick:
  * RoPE tables are computed in float64 and cast to the working dtype
    (transformers computes inv_freq/cos/sin in float32);
  * RMSNorm and softmax are not upcast/downcast to float32;
  * only the causal mask is applied (no padding mask): with right padding,
    real positions are identical; logits at padded positions are whatever
    the causal model gives there.
"""
import math
from collections import OrderedDict

import torch
import torch.nn.functional as F

ATTN_LINEARS = ("q_proj", "k_proj", "v_proj", "o_proj")
MLP_LINEARS = ("gate_proj", "up_proj", "down_proj")
# (module path inside a decoder layer, short name) of the 7 linear maps.
LAYER_LINEARS = tuple(("self_attn." + n, n) for n in ATTN_LINEARS) + tuple(("mlp." + n, n) for n in MLP_LINEARS)
SUPPORTED = ("llama", "qwen2", "qwen3", "gemma3_text")


class DecoderConfig:
    """The subset of a HF config.json that these architectures use."""

    def __init__(self, d):
        mt = d.get("model_type")
        if mt not in SUPPORTED:
            raise ValueError(f"model_type {mt!r} not supported (want one of {SUPPORTED})")
        self.model_type = mt
        self.gemma = mt == "gemma3_text"
        g = self.gemma
        # Defaults: LlamaConfig/Qwen*Config, or Gemma3TextConfig's own where config.json omits a key.
        self.vocab_size = int(d["vocab_size"] if not g else d.get("vocab_size", 262208))
        self.hidden_size = int(d["hidden_size"])
        self.intermediate_size = int(d["intermediate_size"])
        self.num_layers = int(d["num_hidden_layers"])
        self.num_heads = int(d["num_attention_heads"])
        kv = d.get("num_key_value_heads")
        self.num_kv_heads = int(kv) if kv is not None else self.num_heads
        if self.num_heads % self.num_kv_heads:
            raise ValueError("num_attention_heads must be a multiple of num_key_value_heads")
        hd = d.get("head_dim")
        self.head_dim = int(hd) if hd is not None else (256 if g else self.hidden_size // self.num_heads)
        if self.head_dim % 2:
            raise ValueError("head_dim must be even for RoPE")
        self.rms_norm_eps = float(d.get("rms_norm_eps", 1e-6))
        self.rope_theta = float(d.get("rope_theta", 1e6 if g else 10000.0))
        self.rope_scaling = d.get("rope_scaling")
        self.rope_local_theta = float(d.get("rope_local_base_freq", 10000.0))
        self.rope_local_scaling = None
        rp = d.get("rope_parameters")  # transformers v5 spelling: theta + scaling in one dict
        if isinstance(rp, dict) and ("full_attention" in rp or "sliding_attention" in rp):
            # Gemma 3 in transformers v5: one such dict per attention kind
            full, local = rp.get("full_attention") or {}, rp.get("sliding_attention") or {}
            self.rope_theta = float(full.get("rope_theta", self.rope_theta))
            self.rope_scaling = full
            self.rope_local_theta = float(local.get("rope_theta", self.rope_local_theta))
            self.rope_local_scaling = local
        elif isinstance(rp, dict):
            self.rope_theta = float(rp.get("rope_theta", self.rope_theta))
            self.rope_scaling = rp
        self.tie_word_embeddings = bool(d.get("tie_word_embeddings", g))
        if g:
            act = d.get("hidden_activation", d.get("hidden_act", "gelu_pytorch_tanh"))
            if act != "gelu_pytorch_tanh":
                raise ValueError(f"hidden_activation {act!r} not supported (gelu_pytorch_tanh only)")
        else:
            act = d.get("hidden_act", "silu")
            if act != "silu":
                raise ValueError(f"hidden_act {act!r} not supported (SwiGLU with silu only)")
        if float(d.get("partial_rotary_factor", 1.0)) != 1.0:
            raise ValueError("partial_rotary_factor != 1 not supported")
        self.layer_types = ["full_attention"] * self.num_layers
        self.sliding_window = None
        if g:
            for key in ("attn_logit_softcapping", "final_logit_softcapping"):
                if d.get(key) is not None:
                    raise ValueError(f"{key} not supported (Gemma 3 has none)")
            if d.get("use_bidirectional_attention", False):
                raise ValueError("use_bidirectional_attention not supported")
            self.query_pre_attn_scalar = float(d.get("query_pre_attn_scalar", 256))
            self.sliding_window = int(d.get("sliding_window", 4096))
            lt = d.get("layer_types")
            if lt is None:  # transformers 4.50-4.52: every sliding_window_pattern-th layer is global
                pattern = int(d.get("sliding_window_pattern", 6))
                lt = ["full_attention" if (i + 1) % pattern == 0 else "sliding_attention" for i in range(self.num_layers)]
            if len(lt) != self.num_layers or any(t not in ("full_attention", "sliding_attention") for t in lt):
                raise ValueError(f"layer_types {lt!r} does not fit num_hidden_layers={self.num_layers}")
            self.layer_types = list(lt)
        elif d.get("use_sliding_window", False) or "sliding_attention" in (d.get("layer_types") or []):
            raise ValueError("sliding-window attention not supported")
        # Biases, as the transformers modules construct their nn.Linear layers.
        if mt == "qwen2":
            self.qkv_bias, self.o_bias, self.mlp_bias = True, False, False
        else:
            ab = bool(d.get("attention_bias", False))
            self.qkv_bias, self.o_bias = ab, ab
            self.mlp_bias = bool(d.get("mlp_bias", False)) if mt == "llama" else False
        self.qk_norm = mt in ("qwen3", "gemma3_text")

    @property
    def n_rep(self):
        return self.num_heads // self.num_kv_heads

    def linear_shape(self, short):
        d, hd = self.hidden_size, self.head_dim
        return {
            "q_proj": (self.num_heads * hd, d),
            "k_proj": (self.num_kv_heads * hd, d),
            "v_proj": (self.num_kv_heads * hd, d),
            "o_proj": (d, self.num_heads * hd),
            "gate_proj": (self.intermediate_size, d),
            "up_proj": (self.intermediate_size, d),
            "down_proj": (d, self.intermediate_size),
        }[short]

    def has_bias(self, short):
        if short in ("q_proj", "k_proj", "v_proj"):
            return self.qkv_bias
        if short == "o_proj":
            return self.o_bias
        return self.mlp_bias

    def param_shapes(self):
        """OrderedDict of every parameter name -> shape this config implies."""
        d = self.hidden_size
        s = OrderedDict()
        s["model.embed_tokens.weight"] = (self.vocab_size, d)
        for i in range(self.num_layers):
            pre = f"model.layers.{i}."
            s[pre + "input_layernorm.weight"] = (d,)
            for path, short in LAYER_LINEARS:
                s[pre + path + ".weight"] = self.linear_shape(short)
                if self.has_bias(short):
                    s[pre + path + ".bias"] = (self.linear_shape(short)[0],)
                if short == "v_proj" and self.qk_norm:
                    s[pre + "self_attn.q_norm.weight"] = (self.head_dim,)
                    s[pre + "self_attn.k_norm.weight"] = (self.head_dim,)
            s[pre + "post_attention_layernorm.weight"] = (d,)
            if self.gemma:
                s[pre + "pre_feedforward_layernorm.weight"] = (d,)
                s[pre + "post_feedforward_layernorm.weight"] = (d,)
        s["model.norm.weight"] = (d,)
        if not self.tie_word_embeddings:
            s["lm_head.weight"] = (self.vocab_size, d)
        return s


def is_ignorable_buffer(name):
    """Non-parameter tensors some older checkpoints carry."""
    return name.endswith("rotary_emb.inv_freq")


def build_params(cfg, tensors, dtype=torch.float64, requires_grad=True):
    """Checks the checkpoint against the config and returns an OrderedDict of
    leaf tensors in `dtype`. Returns (params, aliases) where aliases maps an
    extra checkpoint name to the parameter it shares (tied lm_head.weight)."""
    shapes = cfg.param_shapes()
    params = OrderedDict()
    for name, shape in shapes.items():
        if name not in tensors:
            raise ValueError(f"checkpoint lacks {name}")
        arr = tensors[name]
        if tuple(arr.shape) != tuple(shape):
            raise ValueError(f"{name}: shape {tuple(arr.shape)}, config implies {tuple(shape)}")
        params[name] = torch.tensor(arr, dtype=dtype).requires_grad_(requires_grad)
    aliases = {}
    for name in tensors:
        if name in shapes or is_ignorable_buffer(name):
            continue
        if name == "lm_head.weight" and cfg.tie_word_embeddings:
            aliases[name] = "model.embed_tokens.weight"  # tied: HF uses embed_tokens
            continue
        raise ValueError(f"checkpoint tensor {name} is not used by a {cfg.model_type} model with this config")
    return params, aliases


def rope_inv_freq(cfg, local=False):
    """inv_freq (float64) including rope_scaling, as transformers'
    ROPE_INIT_FUNCTIONS for default / linear / llama3. local: Gemma 3's
    sliding-layer frequencies (rope_local_base_freq, and the v5
    rope_parameters.sliding_attention scaling if any)."""
    hd = cfg.head_dim
    theta, rs = (cfg.rope_local_theta, cfg.rope_local_scaling) if local else (cfg.rope_theta, cfg.rope_scaling)
    inv_freq = 1.0 / (theta ** (torch.arange(0, hd, 2, dtype=torch.float64) / hd))
    if not rs:
        return inv_freq
    rtype = rs.get("rope_type", rs.get("type"))
    if float(rs.get("partial_rotary_factor", 1.0)) != 1.0:
        raise ValueError("partial_rotary_factor != 1 not supported")
    if rtype in (None, "default"):
        return inv_freq
    if rtype == "linear":
        return inv_freq / float(rs["factor"])  # == positions / factor
    if rtype == "llama3":
        factor = float(rs["factor"])
        low_ff = float(rs["low_freq_factor"])
        high_ff = float(rs["high_freq_factor"])
        old_ctx = float(rs["original_max_position_embeddings"])
        low_freq_wavelen = old_ctx / low_ff
        high_freq_wavelen = old_ctx / high_ff
        wavelen = 2 * math.pi / inv_freq
        # long wavelengths (low frequencies): divide by factor
        inv_l = torch.where(wavelen > low_freq_wavelen, inv_freq / factor, inv_freq)
        # medium band: interpolate between scaled and unscaled
        smooth = (old_ctx / wavelen - low_ff) / (high_ff - low_ff)
        smoothed = (1 - smooth) * inv_l / factor + smooth * inv_l
        is_medium = (~(wavelen < high_freq_wavelen)) & (~(wavelen > low_freq_wavelen))
        return torch.where(is_medium, smoothed, inv_l)
    raise ValueError(f"rope_scaling type {rtype!r} not supported")


def rope_tables(cfg, T, dtype, local=False):
    """cos, sin [T, head_dim] for positions 0..T-1 (HF: emb = cat(freqs, freqs))."""
    pos = torch.arange(T, dtype=torch.float64)
    freqs = torch.outer(pos, rope_inv_freq(cfg, local))
    emb = torch.cat([freqs, freqs], dim=-1)
    return emb.cos().to(dtype), emb.sin().to(dtype)


def rotate_half(x):
    h = x.shape[-1] // 2
    return torch.cat([-x[..., h:], x[..., :h]], dim=-1)


def rms_norm(x, w, eps):
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * w


def gemma_rms_norm(x, w, eps):
    """Gemma3RMSNorm: the scale is (1 + weight), the weights start at zero."""
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * (1.0 + w)


def forward(cfg, params, tokens, capture_layers=(), capture=None, perturb=None):
    """tokens: LongTensor [B, T]. Returns logits [B, T, V].

    capture_layers / capture: for each layer i in capture_layers, capture gets
      capture[(i, short)] = {"a": input [B,T,d_in], "z": output [B,T,d_out]}
        for short in q_proj..down_proj (z is the tensor used downstream, so
        z.retain_grad() / autograd.grad w.r.t. it work);
      capture[(i, "attn")] = {"A": probabilities [B,H,T,T] (query, key),
        "u": per-head output [B,T,H,head_dim] before o_proj (used downstream)}.
    perturb: optional {(i, short): tensor broadcastable to [B,T,d_out]} added
      to that linear's output (finite-difference checks).
    """
    B, T = tokens.shape
    H, KV, hd = cfg.num_heads, cfg.num_kv_heads, cfg.head_dim
    emb = params["model.embed_tokens.weight"]
    dtype = emb.dtype
    rope = {"full_attention": rope_tables(cfg, T, dtype)}
    q_idx = torch.arange(T).view(T, 1)
    kv_idx = torch.arange(T).view(1, T)
    masks = {"full_attention": kv_idx <= q_idx}  # masking_utils.causal_mask_function
    if cfg.gemma:
        rope["sliding_attention"] = rope_tables(cfg, T, dtype, local=True)
        # masking_utils.sliding_window_overlay AND causal: q - W < kv <= q
        masks["sliding_attention"] = (kv_idx <= q_idx) & (kv_idx > q_idx - cfg.sliding_window)
        scale = cfg.query_pre_attn_scalar ** -0.5
        norm = gemma_rms_norm
    else:
        scale = 1.0 / math.sqrt(hd)
        norm = rms_norm
    eps = cfg.rms_norm_eps
    cap_set = set(capture_layers)

    h = F.embedding(tokens, emb)
    if cfg.gemma:  # Gemma3TextScaledWordEmbedding
        h = h * torch.tensor(cfg.hidden_size ** 0.5, dtype=dtype)
    for i in range(cfg.num_layers):
        pre = f"model.layers.{i}."
        rec = capture is not None and i in cap_set

        def lin(path, short, a):
            z = F.linear(a, params[pre + path + ".weight"], params.get(pre + path + ".bias"))
            if perturb is not None and (i, short) in perturb:
                z = z + perturb[(i, short)]
            if rec:
                capture[(i, short)] = {"a": a, "z": z}
            return z

        kind = cfg.layer_types[i]
        cos, sin = rope[kind]
        # --- self attention ---
        x = norm(h, params[pre + "input_layernorm.weight"], eps)
        q = lin("self_attn.q_proj", "q_proj", x).view(B, T, H, hd)
        k = lin("self_attn.k_proj", "k_proj", x).view(B, T, KV, hd)
        v = lin("self_attn.v_proj", "v_proj", x).view(B, T, KV, hd)
        if cfg.qk_norm:  # Qwen3, Gemma 3: RMSNorm over head_dim, per head, before RoPE
            q = norm(q, params[pre + "self_attn.q_norm.weight"], eps)
            k = norm(k, params[pre + "self_attn.k_norm.weight"], eps)
        q, k, v = q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)  # [B, heads, T, hd]
        q = q * cos + rotate_half(q) * sin
        k = k * cos + rotate_half(k) * sin
        # grouped-query attention: query head h uses KV head h // n_rep
        k = k.repeat_interleave(cfg.n_rep, dim=1)
        v = v.repeat_interleave(cfg.n_rep, dim=1)
        scores = torch.matmul(q, k.transpose(-1, -2)) * scale
        scores = scores.masked_fill(~masks[kind], float("-inf"))
        A = torch.softmax(scores, dim=-1)
        u = torch.matmul(A, v).transpose(1, 2)  # [B, T, H, hd]
        if rec:
            capture[(i, "attn")] = {"A": A, "u": u}
        o = lin("self_attn.o_proj", "o_proj", u.reshape(B, T, H * hd))
        if cfg.gemma:
            h = h + norm(o, params[pre + "post_attention_layernorm.weight"], eps)
            x = norm(h, params[pre + "pre_feedforward_layernorm.weight"], eps)
        else:
            h = h + o
            x = norm(h, params[pre + "post_attention_layernorm.weight"], eps)

        # --- gated MLP: SwiGLU, or GELU-tanh (Gemma's gelu_pytorch_tanh) ---
        g = lin("mlp.gate_proj", "gate_proj", x)
        up = lin("mlp.up_proj", "up_proj", x)
        act = F.gelu(g, approximate="tanh") if cfg.gemma else F.silu(g)
        m = lin("mlp.down_proj", "down_proj", act * up)
        if cfg.gemma:
            m = norm(m, params[pre + "post_feedforward_layernorm.weight"], eps)
        h = h + m

    h = norm(h, params["model.norm.weight"], eps)
    head = emb if cfg.tie_word_embeddings else params["lm_head.weight"]
    return F.linear(h, head)


def next_token_nll(logits, tokens):
    """[B, T-1]: -log softmax(logits[:, p])[tokens[:, p+1]] for p = 0..T-2."""
    logp = torch.log_softmax(logits[:, :-1], dim=-1)
    return -logp.gather(-1, tokens[:, 1:].unsqueeze(-1)).squeeze(-1)
