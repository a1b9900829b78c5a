package methods

import (
	"time"

	"github.com/gomlx/compute/dtypes"
	. "github.com/gomlx/gomlx/core/graph"
	gm "github.com/gomlx/gomlx/ml/model"
	"github.com/pkg/errors"

	"github.com/alphatoken/alphatoken/alphatoken"
	"github.com/alphatoken/alphatoken/alphatoken/data"
	"github.com/alphatoken/alphatoken/alphatoken/train"
	"github.com/alphatoken/alphatoken/model"
)

// token-cleaning-self, self-evolving cleaning (Token Cleaning's self_evolving_cleaning.sh): the data stream is cut into C chunks (default 5) of consecutive
// training steps. Chunk 0 trains on every token (warm-up). At the start of chunk i ≥ 1 every
// response token of the chunk's examples is scored by the last round's update,
//
//	s_p = ℓ_{θ_{i−1}}(p) − ℓ_{θ_i}(p),
//
// θ_i the current model and θ_{i−1} the model at the start of the previous chunk (θ_0 = π_0), and
// the chunk trains on the global top 60% of its tokens by s. Here a chunk is a range of steps of
// the trainer's data order (one epoch or more: an example seen twice in a chunk is scored once),
// which is what "split the data into 5 chunks" is for a single pass. Budget-matched: the top ρ of
// each batch by s. Cost: two forwards of the chunk's examples per chunk; the two snapshots θ_{i−1}
// and θ_i are kept in the trainer state (2 model copies), so a resumed run recomputes the chunk's
// scores exactly.

func init() {
	Register(Info{Name: "token-cleaning-self", Selects: true, Native: 0.6,
		Summary: "Token Cleaning (self-evolving): chunk 0 full, chunk i keeps its global top-60% by ℓ_θ(i−1) − ℓ_θ(i)",
		Params:  []Param{{Name: "chunks", Default: 5, Usage: "number of consecutive data chunks of token-cleaning-self"}},
		Build:   newTCSelf})
}

const tcSelfScope = "/methods/token-cleaning-self"

type tcSelf struct {
	env      *Env
	m        *selective
	lm       *model.LM
	chunks   int
	steps    int
	examples []data.Example
	batchAt  func(int) []int
	table    *lazyTable
	total    int
	loaded   int // chunk whose table is loaded (−1: none)
}

func newTCSelf(env *Env) (train.Method, error) {
	c := env.Param("chunks")
	if c < 2 || c != float64(int(c)) {
		return nil, errors.Errorf("methods: token-cleaning-self: --chunks must be an integer ≥ 2, got %g", c)
	}
	if env.Steps < int(c) {
		return nil, errors.Errorf("methods: token-cleaning-self: %d training steps cannot make %g chunks", env.Steps, c)
	}
	s := &tcSelf{env: env, lm: env.LM, chunks: int(c), steps: env.Steps, table: &lazyTable{}, loaded: -1}
	if err := s.setMarker(-1); err != nil {
		return nil, err
	}
	sc := global
	if env.Options.BudgetMatched {
		sc = perBatch
	}
	s.m = &selective{name: "token-cleaning-self", scope: sc, sel: alphatoken.SelectTop, sched: env.schedule(),
		inputs: []input{s.table}, total: func(int) int { return s.total }, metrics: []string{"chunk"},
		keepAll: func(step int) bool { return s.chunkOf(step) == 0 },
		before:  s.before, resumed: func(int) { s.loaded = -1 },
		plan: func(examples []data.Example, batchAt func(int) []int, steps int) error {
			if steps != s.steps {
				return errors.Errorf("methods: token-cleaning-self was built for %d steps, the run has %d", s.steps, steps)
			}
			s.examples, s.batchAt = examples, batchAt
			return nil
		},
		score: func(lm *model.LM, b train.BatchNodes, ins []*Node) (*Node, *Node, *Node, []*Node) {
			_, nll, valid := forwardNLL(lm, b, model.ForwardOptions{})
			return nll, valid, ConvertDType(ins[0], nll.DType()), []*Node{ConvertDType(ins[1], nll.DType())}
		},
		stepInputs: func(step int) []any { return []any{float32(s.chunkOf(step))} }}
	return s.m, nil
}

// chunkOf is the chunk of a step: chunk c covers steps [⌈c·S/C⌉, ⌈(c+1)·S/C⌉).
func (s *tcSelf) chunkOf(step int) int { return min(step*s.chunks/s.steps, s.chunks-1) }

func (s *tcSelf) chunkStart(c int) int { return (c*s.steps + s.chunks - 1) / s.chunks }

func snapPath(which, hfName string) string { return tcSelfScope + "/" + which + model.VarPath(hfName) }

// marker is the chunk whose start the "start" snapshot holds (−1: none yet); it is trainer state,
// saved with checkpoints together with the snapshots.
func (s *tcSelf) marker() int {
	v := s.lm.Store.GetVariable(tcSelfScope + "/chunk")
	t, err := v.Value()
	if err != nil {
		return -1
	}
	return int(t.Value().(float32))
}

func (s *tcSelf) setMarker(c int) error {
	t, err := model.TensorFromFloat64([]float64{float64(c)}, dtypes.Float32)
	if err != nil {
		return err
	}
	return model.SetFrozen(s.lm.Store, tcSelfScope+"/chunk", t)
}

// snapshot copies the live weights (from = "") or another snapshot into snapshot `to`.
func (s *tcSelf) snapshot(to, from string) error {
	for _, spec := range s.lm.Config.ParamSpecs() {
		src := s.lm.Param(spec.Name)
		if from != "" {
			src = s.lm.Store.GetVariable(snapPath(from, spec.Name))
		}
		t, err := src.Value()
		if err != nil {
			return err
		}
		vals, err := model.TensorFloat64(t) // a copy: the optimizer may reuse the live buffers
		if err != nil {
			return err
		}
		c, err := model.TensorFromFloat64(vals, t.DType(), t.Shape().Dimensions...)
		if err != nil {
			return err
		}
		if err := model.SetFrozen(s.lm.Store, snapPath(to, spec.Name), c); err != nil {
			return err
		}
	}
	return nil
}

// before advances the snapshots at a chunk boundary and loads the chunk's scores.
func (s *tcSelf) before(step int) error {
	c := s.chunkOf(step)
	if have := s.marker(); have != c {
		if have != c-1 || step != s.chunkStart(c) {
			return errors.Errorf("methods: token-cleaning-self: step %d is in chunk %d but the trainer state holds chunk %d", step, c, have)
		}
		if c > 0 {
			if err := s.snapshot("prev", "start"); err != nil {
				return err
			}
		}
		if err := s.snapshot("start", ""); err != nil {
			return err
		}
		if err := s.setMarker(c); err != nil {
			return err
		}
		s.loaded = -1
	}
	if s.loaded == c {
		return nil
	}
	if c == 0 {
		s.table.tt, s.total, s.loaded = newTable("chunk 0", s.examples), 1, 0
		return nil
	}
	start := time.Now()
	in := map[int]bool{}
	for st := s.chunkStart(c); st < s.steps && s.chunkOf(st) == c; st++ {
		for _, i := range s.batchAt(st) {
			in[i] = true
		}
	}
	idx := make([]int, 0, len(in))
	for i := range s.examples {
		if in[i] {
			idx = append(idx, i)
		}
	}
	sub := make([]data.Example, len(idx))
	for j, i := range idx {
		sub[j] = s.examples[i]
	}
	prev, err := s.snapshotNLL("prev", sub)
	if err != nil {
		return err
	}
	cur, err := s.snapshotNLL("start", sub)
	if err != nil {
		return err
	}
	scores := newTable("ℓ_θ(i−1) − ℓ_θ(i)", s.examples)
	for j, i := range idx {
		for _, p := range sub[j].LabelPositions() {
			scores.Values[i][p] = prev.Values[j][p] - cur.Values[j][p]
		}
	}
	if s.m.scope == global {
		rt, n, err := rankTable("chunk rank", scores, s.examples, func(i int) bool { return in[i] })
		if err != nil {
			return err
		}
		s.table.tt, s.total = rt, n
	} else {
		s.table.tt = scores
	}
	s.loaded = c
	s.m.offline += time.Since(start)
	s.env.logf("token-cleaning-self: chunk %d (steps %d–%d): %d examples scored in %s", c, s.chunkStart(c),
		s.chunkStart(c+1)-1, len(sub), time.Since(start).Round(time.Millisecond))
	return nil
}

// snapshotNLL is frozenNLL with the weights of a snapshot.
func (s *tcSelf) snapshotNLL(which string, examples []data.Example) (*TokenTable, error) {
	lm := s.lm
	tt := newTable(which, examples)
	err := passOutputs(s.env, "token-cleaning-self: ℓ_"+which, lm, examples, func(_ *gm.Scope, g *Graph, in []*Node) []*Node {
		w := model.WeightsFrom(lm.Config, func(name string) *Node { return lm.Store.GetVariable(snapPath(which, name)).NodeValue(g) })
		return []*Node{model.TokenNLL(model.Forward(lm.Config, w, in[0], model.ForwardOptions{}).Logits, in[1])}
	}, nil, func(b *data.Batch, outs [][]float64) {
		t := b.T()
		for r, i := range b.Index {
			if i < 0 {
				continue
			}
			for _, p := range examples[i].LabelPositions() {
				tt.Values[i][p] = float32(outs[0][r*t+p])
			}
		}
	})
	return tt, err
}
