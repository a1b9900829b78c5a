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
//	Task: triple it, then add five.
//	Code:
//	def f(x):
//	  x*=3
//	  x+=5
//	  return x
//
// drawn from the pre-training pool: the code task keys (operation sequences) that no split of the
// same Config uses, minus those that use an operation of SFTOnlyOps. So
//
//   - train, val, test and the Fisher prompts are byte for byte those of the build with
//     Instruct = 0 (the split does not depend on the corpus): both regimes fine-tune on the same data
//     and are scored on the same test, and only the reference model differs;
//   - no pre-training pair shares a task key with any split, so none shares a prompt;
//   - the pool holds only keys the splits left over (with the default sizes: 3-operation
//     sequences, about 145 keys × 8 phrasings), so pre-training sees fewer, and other, pairs than SFT;
//   - an operation in SFTOnlyOps appears in a program only in the SFT data: a test item that needs
//     it is out of the reference model's reach, and SFT has a new skill to teach besides adapting
//     the one the reference has.

// InstructVersion versions the instruct documents' generator; it enters CorpusFingerprint only
// when Mix.Instruct > 0, so the from-scratch corpus keeps its fingerprint.
const InstructVersion = "minibench-instruct/1"

// AdaptConfig is the adapt regime's build: DefaultConfig's world, probes and target splits, and
// a corpus of the same 12,000 general documents plus 720 instruct documents (Mix.Instruct 0.06
// of 1.06) whose programs never use abs, mod 7 or the clip at zero. The design and its calibration
// are in README.md ("Calibration of the adapt regime").
func AdaptConfig() Config {
	c := DefaultConfig()
	c.Mix.Instruct = 0.06
	c.CorpusDocs = 12720
	c.SFTOnlyOps = "abs,mod7,clip0"
	return c
}

// pretrainPair is one key of the pre-training pool.
type pretrainPair struct {
	fam family
	key []int
}

// pretrainPool returns the code keys that no split of t uses and that use no SFT-only
// operation, in the families' key order (nil when Mix.Instruct is 0).
func pretrainPool(cfg Config, fams []family, t *Target) ([]pretrainPair, error) {
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
	var pool []pretrainPair
	for _, f := range fams {
		for _, k := range f.keys {
			if used[keyString(f.name, k)] || slices.ContainsFunc(k, func(o int) bool { return sftOnly[o] }) {
				continue
			}
			pool = append(pool, pretrainPair{f, k})
		}
	}
	if len(pool) == 0 {
		return nil, fmt.Errorf("minibench: Mix.Instruct > 0, but the code splits leave no task key for pre-training " +
			"(lower TrainSize or the held-out sizes, or shorten SFTOnlyOps)")
	}
	return pool, nil
}

// instructDoc is one or two pairs of the pre-training pool, each with a random phrasing.
func (g *corpusGen) instructDoc() string {
	return assemble(g.r.between(1, 2), "\n", func() string {
		p := pick(g.r, g.pool)
		it := p.fam.build(p.key, g.r.intn(p.fam.phrases))
		return it.prompt + it.response
	})
}

// PretrainKeys lists the task keys of the pre-training pool ("ops3|1|4|0": family, then the
// operations' indexes), empty for a from-scratch build.
func (b *Bench) PretrainKeys() []string {
	out := make([]string, len(b.pretrain))
	for i, p := range b.pretrain {
		out[i] = keyString(p.fam.name, p.key)
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
