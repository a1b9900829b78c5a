// Package alphatoken values response tokens for post-training and masks the low-value ones
// (AlphaToken; docs/spec.md is the definition implemented here, and "SPEC §N" is its section N).
//
// # What a token's value is (SPEC §4)
//
// The value of a response token is the first-order decrease of an objective J when one SGD step
// is taken on that token alone: Φ = <g_token, ∇J>. Two objectives, both losses:
//
//	J_tgt  mean response-token loss on B_val validation examples of the target task   G = ∂J_tgt/∂W
//	J_prx  ½ (θ−θ_ref)ᵀ F (θ−θ_ref), a Fisher-weighted drift from the reference        P = ∂J_prx/∂W
//
// and two paths by which a token's gradient reaches the weights:
//
//	direct  D_p = e_p a_pᵀ with e_p = ∂l_p/∂z_p through position p's own computation
//	causal  C_p = Σ_h [Σ_{r=c}^{c+W−1} A^h_{r,c} g^h_r] ⊗ x_c on the value projections, c = p+1
//
// giving four components Φ_tgt^dir = <D,G>, Φ_tgt^cau = <C,G>, Φ_prx^dir = <D,P>, Φ_prx^cau = <C,P>,
// summed over the scored layers S (every linear map of the last K blocks, SPEC §2), and the value
//
//	Φ = N(Φ_tgt^dir + Φ_tgt^cau) + λ · N(Φ_prx^dir + Φ_prx^cau)
//
// where N is the identity by default (NormNone: the paper's raw sum), or a z-score (NormZScore) or
// the centred rank (NormRank) over the batch's response tokens.
//
// # How it is computed without per-token gradients (SPEC §4–5)
//
// All e_p come from one backward pass through a copy of the last K blocks whose attention passes
// gradient only along its diagonal (model.ForwardOptions.Diagonal). All g_r come from one backward
// pass of the unmasked loss to the attention head outputs. Contractions never form a model-sized
// per-token gradient: against a matrix M (G, or P for a diagonal Fisher),
//
//	<e aᵀ, M> = eᵀ M a = rowsum((E M) ⊙ A)                  (activation–parameter contraction)
//
// and against G without materialising it (validation tokens s, M_val of them),
//
//	<e_p a_pᵀ, Σ_s e'_s a'_sᵀ> = Σ_s (e_p·e'_s)(a_p·a'_s)    (ghost dot-product)
//
// The cheaper form is chosen per layer: N·d_out·d_in against N·M_val·(d_in+d_out).
//
// # Masks (SPEC §6)
//
// Per batch, the top ρ fraction of response tokens by Φ keep their loss: k = floor(ρN+0.5)
// (at least 1), one threshold over the batch, ties broken by position (earlier wins). Bottom-ρ and
// random-ρ keep the same count. The loss is Σ m_p l_p / Σ m_p. ρ is the selection's, not the
// valuation's: the methods package holds it (and its schedule) for training, ScoreOptions.Rho for
// scoring a file.
//
// # Files
//
//	config.go      Config: λ, W, K, B_val, ValRefresh, Fisher kind, normalisation, components
//	layers.go      the scored layers (SPEC §2)
//	contract.go    contraction and ghost forms (SPEC §5)
//	valuer.go      the valuation graph: direct and causal errors, four components (SPEC §4)
//	objectives.go  the validation gradient G and the Fisher-drift gradient P (SPEC §3)
//	fisher.go      Monte-Carlo Fisher estimation, safetensors I/O (SPEC §3)
//	mask.go        normalisation, combination and top/bottom/random-ρ masks (SPEC §4, §6)
//	score.go       scoring a dataset as one batch (the `alphatoken score` command)
//
// # Where this departs from SPEC
//
//   - The DPO branch (SPEC §6): Build takes the per-token loss weight ω (BuildWith computes it from
//     the forward pass: ±w per branch) and NewValuerFor a target objective J_tgt other than SFT's
//     (Objective: the mean DPO loss of validation pairs); package dpo holds the DPO side.
//   - K-FAC factors (SPEC §3): A = mean over real positions of a aᵀ, S = (1/#sequences) Σ_n Σ_t e eᵀ,
//     so that S ⊗ A has the scale of the per-sequence Fisher (SPEC leaves the normalisation open).
package alphatoken
