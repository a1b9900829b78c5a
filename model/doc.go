// Package model holds decoder-only language models (Llama, Qwen2, Qwen3, Gemma 3) as GoMLX graphs
// over the variables of a store named after the Hugging Face checkpoint, and what runs them:
// loading and saving checkpoints, training's forward pass, scoring and generation.
//
// Each family is a row of the registry in family.go — its embedding, block and norm — around one
// shared attention core (attention.go). The Llama and Qwen block (transformer.go):
//
//	x ← x + o_proj(attn(rmsnorm(x)))        attn: RoPE(q), RoPE(k) (after q/k-norm), GQA softmax(s·q·kᵀ + mask) v
//	x ← x + down(silu(gate(a)) ⊙ up(a)),    a = rmsnorm(x)
//
// with s = 1/√e; Gemma 3's (gemma3.go) normalises before and after both halves with (1+w)·x/rms(x),
// uses GELU-tanh, scales the embeddings by √d and s by query_pre_attn_scalar, and alternates
// sliding-window and global layers.
//
// The attention core takes a context — the RoPE table at the queries' positions and a visibility
// mask, one of each per attention kind (full, sliding window) — and an optional key/value cache. Training (Forward) uses positions 0..t−1 and the causal
// mask; it can record every linear layer's input and output, the attention probabilities, values
// and head outputs of the last K blocks, and run their diagonal-gradient copy (SPEC §4, direct
// path), from which the valuation reads each token's own gradient. Generation (Generator,
// decode.go, sample.go) runs the same blocks over left-padded prompts with per-row positions, keeps
// the cache on the device, written with DynamicUpdateSlice, and samples in the graph, so a token
// costs one compiled step and only the sampled ids reach the host.
package model
