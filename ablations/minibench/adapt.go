package minibench

import (
	"fmt"
	"slices"
	"strings"
)

// The adapt regime (issue 12). In the default ("from scratch") build the corpus never shows the
// code target's format, so the reference model scores 0% and SFT must teach the skill from
// nothing. A pre-trained LLM that SFT adapts to code has seen code, and some instruction → program
// text, before. Mix.Instruct > 0 gives the corpus "instruct" documents: one or two code-target
// pairs each, in the target's own format
//
//	Task: triple it, then add five, then flip its sign.
//	Code:
//	def f(x):
//	  x*=3
//	  x+=5
//	  x=-x
//	  return x
//
// drawn from the pre-training pool: programs of 1 to 4 operations over the target's operations but
// those of SFTOnlyOps, and four operations that only pre-training uses (add two, add seven,
// subtract five, multiply by four: pretrainOnlyOps), minus every key that a split uses. A pair
// picks its length with probability 0.1, 0.35, 0.35, 0.2 (1 to 4 operations), then a key and a
// phrasing uniformly. So
//
//   - train, val, test and the Fisher prompts are byte for byte those of the build with
//     Instruct = 0 (the split does not depend on the corpus): both regimes fine-tune on the same data
//     and are scored on the same test, and only the reference model differs;
//   - no pre-training pair shares a task key with any split, so none shares a prompt; every
//     2-operation program of the target's operations is in a split, so the pool's 2-operation
//     programs all use a pre-training-only operation, and its 3-operation programs of the target's
//     operations are the about 145 keys the splits leave;
//   - pre-training never shows an SFT-only operation: a test item that needs one is out of the
//     reference model's reach, and SFT has a new skill to teach besides adapting the one the
//     reference has (the pre-training-only operations are knowledge it has that SFT never asks for).

// InstructVersion versions the instruct documents' generator; it enters CorpusFingerprint only
// when Mix.Instruct > 0, so the from-scratch corpus keeps its fingerprint.
const InstructVersion = "minibench-instruct/3"

// AdaptConfig is the adapt regime's build: DefaultConfig's world, probes and target splits, and
// a corpus of the same 12,000 general documents plus 3,000 instruct documents (Mix.Instruct 0.25
// of 1.25: 20% of the documents) whose programs never use abs, mod 7 or the clip at zero. The
// design and its calibration are in README.md ("Calibration of the adapt regime").
func AdaptConfig() Config {
	c := DefaultConfig()
	c.Mix.Instruct = 0.25
	c.CorpusDocs = 15000
	c.SFTOnlyOps = "abs,mod7,clip0"
	return c
}

// pretrainOnlyOps are the operations that only the pre-training pool uses (indexes after codeOps'
// in the pool's operation list).
var pretrainOnlyOps = []codeOp{
	{"add2", [2]string{"add two", "increase it by two"}, "x+=2"},
	{"add7", [2]string{"add seven", "increase it by seven"}, "x+=7"},
	{"sub5", [2]string{"subtract five", "take away five"}, "x-=5"},
	{"quad", [2]string{"multiply it by four", "quadruple it"}, "x*=4"},
}

// poolOps is the pre-training pool's operation list: codeOps (same indexes), then pretrainOnlyOps.
func poolOps() []codeOp { return append(slices.Clone(codeOps), pretrainOnlyOps...) }

// pretrainPair is one key of the pre-training pool.
type pretrainPair struct {
	fam family
	key []int
}

// pretrainFamily is one family of the pre-training pool: its keys and the probability that a
// pair comes from it.
type pretrainFamily struct {
	weight float64
	keys   []pretrainPair
}

// pretrainPool returns the pre-training pool (nil when Mix.Instruct is 0): programs of 1 to 4
// operations of poolOps without SFT-only operations and not in a split of t, each family in its
// key order. Family names and keys match the target's ("ops3|1|4|0"), so a split's key is
// recognised whatever family it came from.
func pretrainPool(cfg Config, t *Target) ([]pretrainFamily, error) {
	if cfg.Mix.Instruct == 0 {
		return nil, nil
	}
	used := map[string]bool{}
	for _, ks := range t.keys {
		for _, k := range ks {
			used[k] = true
		}
	}
	sftOnly := map[int]bool{}
	for _, name := range cfg.sftOnlyOps() {
		sftOnly[slices.IndexFunc(codeOps, func(o codeOp) bool { return o.name == name })] = true
	}
	ops := poolOps()
	var pool []pretrainFamily
	for _, src := range []struct {
		fam    family
		weight float64
	}{{opsFamilyOver(1, ops), 0.1}, {opsFamilyOver(2, ops), 0.35}, {opsFamilyOver(3, ops), 0.35}, {opsFamilyOver(4, ops), 0.2}} {
		pf := pretrainFamily{weight: src.weight}
		for _, k := range src.fam.keys {
			if used[keyString(src.fam.name, k)] || slices.ContainsFunc(k, func(o int) bool { return sftOnly[o] }) || !opsInRange(ops, k) {
				continue
			}
			pf.keys = append(pf.keys, pretrainPair{src.fam, k})
		}
		if len(pf.keys) == 0 {
			return nil, fmt.Errorf("minibench: Mix.Instruct > 0, but no %s key is left for pre-training "+
				"(lower TrainSize or the held-out sizes, or shorten SFTOnlyOps)", src.fam.name)
		}
		pool = append(pool, pf)
	}
	return pool, nil
}

// opsInRange reports whether every intermediate value of the sequence on the hidden inputs stays
// within MiniPy's ±2^40 (four operations can overflow, e.g. "triple it, then square it" twice).
// ops indexes k.
func opsInRange(ops []codeOp, k []int) bool {
	for _, x := range opsTestInputs {
		for i := range k {
			x = opsApplyOver(ops, k[i:i+1], []int64{x})[0]
			if x > 1<<40 || x < -(1<<40) {
				return false
			}
		}
	}
	return true
}

// drawPair picks a family of the pool by its weight, then a key and a phrasing uniformly.
func drawPair(r *rng, pool []pretrainFamily) taskItem {
	u, i := r.float(), 0
	for ; i < len(pool)-1 && u >= pool[i].weight; i++ {
		u -= pool[i].weight
	}
	p := pick(r, pool[i].keys)
	return p.fam.build(p.key, r.intn(p.fam.phrases))
}

// instructDoc is one or two pairs of the pre-training pool.
func (g *corpusGen) instructDoc() string {
	return assemble(g.r.between(1, 2), "\n", func() string {
		it := drawPair(g.r, g.pool)
		return it.prompt + it.response
	})
}

// InstructPairs draws n pairs of the pre-training pool (with the instruct documents' family
// weights, from their own random stream): the data of the adapt reference model's instruction
// stage (ablations.InstructStage). They share no task key with any split and never use an
// SFT-only operation, like the instruct documents. A from-scratch build has no pool: an error.
func (b *Bench) InstructPairs(n int) ([]Example, error) {
	if len(b.pretrain) == 0 {
		return nil, fmt.Errorf("minibench: InstructPairs: the build has no pre-training pool (Mix.Instruct is 0)")
	}
	r := newRNG(b.Config.Seed, "instruct-pairs")
	out := make([]Example, n)
	for i := range out {
		it := drawPair(r, b.pretrain)
		out[i] = Example{Prompt: it.prompt, Response: it.response}
	}
	return out, nil
}

// PretrainKeys lists the task keys of the pre-training pool ("ops3|1|4|0": family, then the
// operations' indexes), empty for a from-scratch build.
func (b *Bench) PretrainKeys() []string {
	var out []string
	for _, f := range b.pretrain {
		for _, p := range f.keys {
			out = append(out, keyString(p.fam.name, p.key))
		}
	}
	return out
}

// OpNames lists the code operations of the "ops" style (the values SFTOnlyOps may name).
func OpNames() []string {
	out := make([]string, len(codeOps))
	for i, o := range codeOps {
		out[i] = o.name
	}
	return out
}

// sftOnlyOps splits SFTOnlyOps at commas.
func (c Config) sftOnlyOps() []string {
	if c.SFTOnlyOps == "" {
		return nil
	}
	return strings.Split(c.SFTOnlyOps, ",")
}

// validateAdapt checks the adapt fields.
func (c Config) validateAdapt() error {
	if c.Mix.Instruct > 0 && c.CodeStyle == CodeStyleExpressions {
		return fmt.Errorf("minibench: instruct documents (Mix.Instruct > 0) need CodeStyle %q, got %q", CodeStyleOps, c.CodeStyle)
	}
	if c.SFTOnlyOps == "" {
		return nil
	}
	if c.CodeStyle == CodeStyleExpressions {
		return fmt.Errorf("minibench: SFTOnlyOps needs CodeStyle %q, got %q", CodeStyleOps, c.CodeStyle)
	}
	seen := map[string]bool{}
	for _, name := range c.sftOnlyOps() {
		if !slices.Contains(OpNames(), name) {
			return fmt.Errorf("minibench: SFTOnlyOps: unknown operation %q (%s)", name, strings.Join(OpNames(), ", "))
		}
		if seen[name] {
			return fmt.Errorf("minibench: SFTOnlyOps names %q twice", name)
		}
		seen[name] = true
	}
	if len(seen) >= len(codeOps) {
		return fmt.Errorf("minibench: SFTOnlyOps names every operation: the pre-training pool would be empty")
	}
	return nil
}
