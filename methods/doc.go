// Package methods is the registry of token-selection methods for SFT and, in a sibling registry,
// for DPO: AlphaToken and its ablations (SPEC §4, §6), the paper's baselines (each file cites its source)
// and what the paper left as future work. Each method is one file that registers itself (Register,
// from init) with its name, a one-line summary, the inputs it needs (Need: validation set, Fisher,
// θ_ref, helper model) and its numeric parameters (Param) declared as data, so the CLI
// (`train-sft --method`, `score --method`, `-h`), the ablation runner and the suites all construct
// methods through Build and check them the same way. A method is a train.Method: package train is a generic trainer and imports none.
//
// # Selection
//
// A hard-mask method scores every response token and keeps
//
//	per batch      k = floor(ρN + 0.5) of the batch's N tokens, one threshold (SPEC §6; AlphaToken, Rho-1, low-ppl)
//	per sequence   k_b = ⌈ρ·T_b⌉ of each sequence's T_b tokens (ssToken)
//	global         rank < floor(ρN + 0.5) over the whole training set's tokens, offline (Token Cleaning)
//	threshold      a fixed test, data-dependent keep ratio (STM, XTF)
//
// and trains on the masked mean loss Σ m_p l_p / Σ m_p. Ties go to the earlier position. k is
// computed on the host each step from ρ(step), so a schedule (Options.Schedule: constant, linear,
// cosine from ρ_start to the method's ratio) moves it without recompiling the step graph; the
// metrics log tokens, kept (the realised count) and rho every step. Options.Rho is ρ, and lives
// nowhere else; a baseline's native ratio (Info.Native, e.g. Token Cleaning's 60%) applies unless
// the run is budget matched (Options.BudgetMatched: ρ with AlphaToken's per-batch scope).
//
// # Scores in the step graph or offline
//
// Per-step scores (AlphaToken's valuation, Rho-1's ℓ_θ, ssToken's attention) are built inside the
// step graph. Offline scores — per-token NLLs of a frozen model (π_0, the helper), XTF's
// attributes — are computed by a pass over the training examples before step 0 (train.Planner),
// optionally cached (Env.Cache, keyed by a hash of the model's weights and the examples), and fed
// to the step graph row by row as extra inputs (TokenTable). π_0 is the model as it was when the
// method was built, so a resumed run scores against the same π_0.
//
// # Files
//
//	registry.go           Need, Param, Info, Register, Lookup, Build, Usage
//	catalog.go            the registry's code, shared by the SFT and the DPO registry
//	options.go            Options (ρ, schedule, budget matching, parameters), Env, the checks
//	selective.go          the generic hard-mask method: score → keep rule → masked mean loss
//	select.go             masked losses, per-sequence selection, per-sequence min-max
//	offline.go            TokenTable, the offline NLL pass and its cache, global ranks
//	full.go random.go     full fine-tuning; Random-ρ
//	alphatoken.go         alphatoken, adaptation-only, stability-only, direct-only, causal-only, bottom
//	soft.go               alphatoken-soft: weights N·softmax(z(Φ)/τ), no mask
//	tokencleaning.go      token-cleaning (fixed model, global top-60% by ℓ_π0 − ℓ_helper)
//	tokencleaning_self.go token-cleaning-self (chunks of the data stream, ℓ_θ(i−1) − ℓ_θ(i))
//	stm.go lowppl.go      STM (perplexity threshold 2.5 under π_0); low-perplexity selection
//	xtf.go                XTF (attention IQR outlier, p > 0.95, Multi-Otsu embedding class)
//	sstoken.go            ssToken (retrospective excess loss + attention to the prompt)
//	rho1.go               Rho-1 (excess loss over the helper model)
//
// # DPO methods (`train-dpo --method`)
//
// A sibling registry (RegisterDPO, LookupDPO, BuildDPO, DPOUsage; the same catalog code) with the same Info, built from a
// DPOEnv (the reference model, package dpo's loss settings, validation pairs, SePO's oracle pair).
// A DPO method trains on pair batches (chosen rows, then rejected rows; the trainer's GroupSize 2)
// and logs the branch token counts, kept counts and TRL's reward metrics every step.
//
//	dpo_registry.go       DPOInfo, DPOEnv, RegisterDPO, LookupDPO, BuildDPO, DPOUsage, the checks
//	dpo_method.go         the generic DPO method: reference log-probs (precomputed or online), keep counts, metrics
//	dpo_ref.go            per-position log-probabilities of a frozen model (float64, cached)
//	dpo_eval.go           held-out pair loss, reward accuracy and margin (a trainer hook)
//	dpo_plain.go          dpo (every token; sigmoid, ipo, hinge), random
//	dpo_alphatoken.go     alphatoken, adaptation-only, stability-only, direct-only, causal-only, bottom
//	dpo_confpo.go         ConfPO (low-confidence tokens per response; DPO or SimPO form)
//	dpo_sepo.go           SePO (oracle token rewards; top 30% chosen, bottom 30% rejected; reference free)
//	dpo_tidpo.go          TI-DPO (gradient importance + Gaussian prior, triplet term) and ti-dpo-budget
//
// Adding a method is one new file that calls Register, plus its test.
package methods
