// Package dpo is preference optimisation for the generic trainer: the DPO losses (TRL's sigmoid,
// ipo and hinge), the masked DPO loss of AlphaToken's branch-aware masks (SPEC §6), DPO's target
// objective J_tgt for the valuation (SPEC §3), and the scoring of preference pairs.
//
// # Layout
//
// A batch of n pairs has 2n rows: the chosen responses in rows [0, n), the rejected ones in rows
// [n, 2n), row i and row n+i being one pair (TRL's concatenated layout; train.Config.GroupSize = 2
// makes the trainer build such batches from examples stored as chosen, rejected, chosen, …).
//
// # Losses (TRL's dpo_trainer.py, loss_type)
//
// With h_t = log π(y_t) − log π_ref(y_t) at each response token and a_t its aggregation weight
// (1, or 1/|y| for ipo: TRL averages the log-ratio per token for IPO), the pair's logit is
//
//	δ = Σ_t a_t h^w_t − Σ_t a_t h^l_t
//
// and its loss ℓ(δ), averaged over the batch's pairs:
//
//	sigmoid  ℓ = −log σ(βδ)          w = σ(−βδ)
//	hinge    ℓ = max(0, 1 − βδ)       w = [βδ < 1]
//	ipo      ℓ = (δ − 1/(2β))²        w = (1/β − 2δ)/β
//
// w = −ℓ'(δ)/β is the pair weight: ∇ℓ = β·w·(Σ_t a_t ∇(−log π(y^w_t)) − Σ_t a_t ∇(−log π(y^l_t))), so
// for sigmoid w is SPEC §6's σ(−Δ), Δ = βδ. Rewards are TRL's: β·Σ_t h_t per response (summed, for
// every loss type); reward accuracy is the share of pairs whose chosen reward is the larger.
//
// # Masked loss (SPEC §6)
//
// Token keep masks m (per branch) turn the loss into
//
//	L_m = β · (1/n) Σ_pairs w · (Σ_t m^w_t a_t l^w_t − Σ_t m^l_t a_t l^l_t),    l_t = −log π(y_t), w detached,
//
// i.e. for sigmoid −w·β·(Σ m^w log π(y_w,t) − Σ m^l log π(y_l,t)). Its gradient is the gradient of
// ℓ(δ) restricted to the kept tokens (δ recomputed with the unkept tokens' h held constant), for
// every loss type: this is how ipo and hinge are masked. The coefficient w comes from the unmasked
// δ (default) or, with Coefficient masked, the loss is ℓ(δ_m) with δ_m the logit of the masked
// sequences (the unkept tokens' h set to 0). MaskedLoss reports the unmasked mean ℓ(δ) as its value,
// so a masked run's "loss" is the DPO loss of its batch.
//
// # Token values (SPEC §6)
//
// A branch's tokens are valued with the branch's per-token loss, ω_t·l_t with ω = +w·a_t (chosen)
// and −w·a_t (rejected): chosen −log π(y_w,t), rejected +log π(y_l,t), each scaled by the pair's
// detached w (from the unmasked δ). The β of L_m is a common positive factor and is left out.
// J_tgt is the mean ℓ(δ) over B_val validation pairs (Objective).
package dpo

import (
	"github.com/gomlx/compute/dtypes"
	. "github.com/gomlx/gomlx/core/graph"
	. "github.com/gomlx/gomlx/support/exceptions"
	"github.com/pkg/errors"
)

// LossType is the pair loss ℓ(δ) (TRL's loss_type).
type LossType string

const (
	LossSigmoid LossType = "sigmoid" // DPO: −log σ(βδ)
	LossIPO     LossType = "ipo"     // (δ − 1/(2β))², δ from per-token averaged log-ratios
	LossHinge   LossType = "hinge"   // max(0, 1 − βδ)
)

// LossTypes lists the valid loss types, default first.
var LossTypes = []LossType{LossSigmoid, LossIPO, LossHinge}

// Threshold is how a mask's keep count is taken over a batch's two branches (SPEC §6).
type Threshold string

const (
	Separate Threshold = "separate" // top ρ of the chosen tokens and top ρ of the rejected tokens (default)
	Shared   Threshold = "shared"   // top ρ of all response tokens of the batch (ablation)
)

// Coefficient is where the pair weight of a masked loss comes from (SPEC §6).
type Coefficient string

const (
	Unmasked Coefficient = "unmasked" // w from the unmasked sequences (default)
	Masked   Coefficient = "masked"   // the loss of the masked sequences: ℓ(δ_m) (ablation)
)

// DefaultBeta is β's default (TRL's and the paper's).
const DefaultBeta = 0.1

// Config is a DPO run's loss settings.
type Config struct {
	Beta        float64     `json:"beta"`
	Loss        LossType    `json:"loss_type"`
	Threshold   Threshold   `json:"threshold"`
	Coefficient Coefficient `json:"coefficient"`
}

// DefaultConfig is sigmoid DPO with β = 0.1, separate thresholds, the unmasked coefficient.
func DefaultConfig() Config {
	return Config{Beta: DefaultBeta, Loss: LossSigmoid, Threshold: Separate, Coefficient: Unmasked}
}

// Validate checks the settings; errors name the command-line flag.
func (c Config) Validate() error {
	if !(c.Beta > 0) {
		return errors.Errorf("dpo: --beta must be > 0, got %g", c.Beta)
	}
	switch c.Loss {
	case LossSigmoid, LossIPO, LossHinge:
	default:
		return errors.Errorf("dpo: unknown --loss %q (sigmoid, ipo, hinge)", c.Loss)
	}
	switch c.Threshold {
	case Separate, Shared:
	default:
		return errors.Errorf("dpo: unknown --dpo-threshold %q (separate, shared)", c.Threshold)
	}
	switch c.Coefficient {
	case Unmasked, Masked:
	default:
		return errors.Errorf("dpo: unknown --dpo-coefficient %q (unmasked, masked)", c.Coefficient)
	}
	return nil
}

// Halves splits a [2n, …] node into its chosen rows [0, n) and rejected rows [n, 2n).
func Halves(x *Node) (chosen, rejected *Node) {
	rows := x.Shape().Dimensions[0]
	if rows%2 != 0 {
		Panicf("dpo: a pair batch has an even number of rows, got %s", x.Shape())
	}
	return SliceAxis(x, 0, AxisRange(0, rows/2)), SliceAxis(x, 0, AxisRange(rows/2, rows))
}

// Join stacks chosen and rejected halves back into [2n, …].
func Join(chosen, rejected *Node) *Node { return Concatenate([]*Node{chosen, rejected}, 0) }

// LogRatios is h = log π − log π_ref at every position, from the policy's per-position loss l
// and the reference's refNLL (both −log p of the next token), in l's dtype.
func LogRatios(nll, refNLL *Node) *Node { return Sub(ConvertDType(refNLL, nll.DType()), nll) }

// Agg is the aggregation weight a [2n, t] of every position: the response weights (1 at response
// label positions), divided by the row's response length for ipo.
func (c Config) Agg(weights *Node, dtype dtypes.DType) *Node {
	w := ConvertDType(weights, dtype)
	if c.Loss != LossIPO {
		return w
	}
	n := ReduceAndKeep(w, ReduceSum, 1)
	return Div(w, MaxScalar(n, 1))
}

// Logit is δ [n] = Σ_t a h (chosen row) − Σ_t a h (rejected row).
func Logit(h, a *Node) *Node {
	c, r := Halves(ReduceSum(Mul(h, a), 1))
	return Sub(c, r)
}

// PairLoss is ℓ(δ) [n].
func (c Config) PairLoss(delta *Node) *Node {
	switch c.Loss {
	case LossSigmoid:
		return Softplus(Neg(MulScalar(delta, c.Beta)))
	case LossHinge:
		return Max(OneMinus(MulScalar(delta, c.Beta)), ZerosLike(delta))
	case LossIPO:
		return Square(AddScalar(delta, -1/(2*c.Beta)))
	}
	Panicf("dpo: unknown loss type %q", c.Loss)
	return nil
}

// PairWeight is w = −ℓ'(δ)/β [n] (the hinge's subgradient at the kink is 0, as torch.relu's).
func (c Config) PairWeight(delta *Node) *Node {
	switch c.Loss {
	case LossSigmoid:
		return Logistic(Neg(MulScalar(delta, c.Beta)))
	case LossHinge:
		return ConvertDType(LessThan(MulScalar(delta, c.Beta), OnesLike(delta)), delta.DType())
	case LossIPO:
		return DivScalar(OneMinus(MulScalar(delta, 2*c.Beta)), c.Beta*c.Beta)
	}
	Panicf("dpo: unknown loss type %q", c.Loss)
	return nil
}

// Omega is the per-position loss weight ω [2n, t] of the token values: +w·a on the chosen rows,
// −w·a on the rejected rows.
func Omega(w, a *Node) *Node {
	ac, ar := Halves(a)
	wc := InsertAxes(ConvertDType(w, a.DType()), 1)
	return Join(Mul(ac, wc), Neg(Mul(ar, wc)))
}

// RealPairs is [n] bool: the pairs whose two rows both have response tokens (padding pairs have
// none).
func RealPairs(weights *Node) *Node {
	n := ReduceSum(ConvertDType(weights, dtypes.Float32), 1)
	c, r := Halves(n)
	zero := ZerosLike(c)
	return And(GreaterThan(c, zero), GreaterThan(r, zero))
}

// MeanOver is Σ_{real} x / max(#real, 1).
func MeanOver(x, real *Node) *Node {
	m := ConvertDType(real, x.DType())
	return Div(ReduceAllSum(Mul(x, m)), MaxScalar(ReduceAllSum(m), 1))
}

// Plain is plain DPO: the mean ℓ(δ) over the real pairs, differentiated through every token.
func (c Config) Plain(nll, refNLL, weights *Node) *Node {
	h := LogRatios(nll, refNLL)
	delta := Logit(h, c.Agg(weights, h.DType()))
	return MeanOver(c.PairLoss(delta), RealPairs(weights))
}

// MaskedLoss is the loss of a batch under keep masks keep [2n, t] (bool or 0/1; pairs with real
// false are dropped), following c.Coefficient (see the package doc). It returns the loss and the
// pair weights w [n] (0 for dropped pairs) that scale it. With the unmasked coefficient its value
// is the unmasked mean ℓ(δ) over the real pairs and its gradient is that of L_m.
func (c Config) MaskedLoss(nll, refNLL, weights, keep, real *Node) (loss, w *Node) {
	h := LogRatios(nll, refNLL)
	a := c.Agg(weights, h.DType())
	m := StopGradient(ConvertDType(keep, h.DType()))
	realF := ConvertDType(real, h.DType())
	if c.Coefficient == Masked {
		deltaM := Logit(Mul(h, m), a)
		return MeanOver(c.PairLoss(deltaM), real), Mul(StopGradient(c.PairWeight(deltaM)), realF)
	}
	delta := Logit(StopGradient(h), a)
	w = Mul(StopGradient(c.PairWeight(delta)), realF)
	omega := Omega(w, a)
	s := Div(MulScalar(ReduceAllSum(Mul(Mul(omega, m), nll)), c.Beta), MaxScalar(ReduceAllSum(realF), 1))
	value := MeanOver(c.PairLoss(delta), real)
	return Add(value, Sub(s, StopGradient(s))), w
}

// Metrics are a batch's DPO statistics (TRL's): means over the real pairs of the chosen and
// rejected rewards β·Σ_t h_t, their margin, and the reward accuracy (chosen reward larger).
type Metrics struct {
	ChosenReward, RejectedReward, Margin, Accuracy *Node
}

// BatchMetrics computes Metrics from the per-position losses of the policy and the reference.
func (c Config) BatchMetrics(nll, refNLL, weights *Node) Metrics {
	h := StopGradient(LogRatios(nll, refNLL))
	r := MulScalar(ReduceSum(Mul(h, ConvertDType(weights, h.DType())), 1), c.Beta)
	rc, rr := Halves(r)
	real := RealPairs(weights)
	return Metrics{
		ChosenReward:   MeanOver(rc, real),
		RejectedReward: MeanOver(rr, real),
		Margin:         MeanOver(Sub(rc, rr), real),
		Accuracy:       MeanOver(ConvertDType(GreaterThan(rc, rr), h.DType()), real),
	}
}

// TokenWeights is the per-position weight ω [2n, t] of the token values and the pair weights
// w [n], both from the unmasked δ and detached (0 for padding pairs).
func (c Config) TokenWeights(nll, refNLL, weights *Node) (omega, w *Node) {
	h := StopGradient(LogRatios(nll, refNLL))
	a := c.Agg(weights, h.DType())
	w = Mul(c.PairWeight(Logit(h, a)), ConvertDType(RealPairs(weights), h.DType()))
	return Omega(w, a), w
}
