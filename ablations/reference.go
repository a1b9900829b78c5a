package ablations

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/gomlx/compute"
	"github.com/gomlx/compute/dtypes"
	"github.com/pkg/errors"

	"github.com/alphatoken/alphatoken/ablations/minibench"
	"github.com/alphatoken/alphatoken/alphatoken/data"
	"github.com/alphatoken/alphatoken/alphatoken/train"
	"github.com/alphatoken/alphatoken/internal/atomicfile"
	"github.com/alphatoken/alphatoken/model"
	"github.com/alphatoken/alphatoken/model/tokenizer"
)

// codeVersion is part of every cache key: bump it when a change alters what a cached artifact
// would contain.
const codeVersion = "ablations/1"

// hashJSON is a short stable hash of v's JSON encoding.
func hashJSON(v any) string {
	b, _ := json.Marshal(v)
	h := sha256.Sum256(append([]byte(codeVersion+"\n"), b...))
	return hex.EncodeToString(h[:6])
}

// referenceKey identifies a pre-trained reference model: what it was trained on and how.
type referenceKey struct {
	Corpus   string           `json:"corpus"` // minibench corpus fingerprint
	Model    model.Config     `json:"model"`
	Pretrain PretrainSettings `json:"pretrain"`
	Seed     uint64           `json:"seed"`
	// The instruction stage (adapt regime), absent for a pre-trained model: the pre-trained
	// model's directory name (its content key) and the stage's settings.
	Stage1   string         `json:"stage1,omitempty"`
	Instruct *InstructStage `json:"instruct,omitempty"`
}

// InstructStage is the adapt reference model's second training stage, after pre-training: Full
// FT on pairs of the pre-training pool (minibench Bench.InstructPairs: no key of any split, no
// SFT-only operation) mixed with replayed windows of the pre-training corpus, as LLM pre-training
// ends with an annealing phase on instruction-like data. Loss on the pairs' responses and on every
// token of the windows.
type InstructStage struct {
	Pairs  int     `json:"pairs"`  // instruct pairs
	Replay float64 `json:"replay"` // corpus windows per pair in the data
	Steps  int     `json:"steps"`
	Batch  int     `json:"batch"`
	LR     float64 `json:"lr"`
}

// ReferenceInfo is reference.json, written last: its presence marks a complete reference model.
type ReferenceInfo struct {
	Key          referenceKey `json:"key"`
	Seconds      float64      `json:"seconds"`
	FinalLoss    float64      `json:"final_loss"`
	HeldOutLoss  float64      `json:"held_out_loss"`
	TrainTokens  int          `json:"train_tokens"`
	CreatedAt    string       `json:"created_at"`
	Scores       *Scores      `json:"scores,omitempty"` // MiniBench scores of the reference (filled by the runner)
	ScoresTarget string       `json:"scores_target,omitempty"`
	ScoresBench  string       `json:"scores_bench,omitempty"` // benchmark fingerprint the scores were computed on
	ScoresEval   EvalOptions  `json:"scores_eval"`            // and the evaluation options
}

// Reference loads the preset's reference model from cacheDir, or pre-trains it (resuming an
// interrupted pre-training) and stores it there; with an instruction stage (p.Instruct), the
// pre-trained model is cached on its own and the stage's model next to it. The cache key covers
// the corpus, the model configuration and the pre-training settings (and the stage's).
func Reference(backend compute.Backend, p Preset, bench *minibench.Bench, cacheDir string, log io.Writer) (*model.LM, string, *ReferenceInfo, error) {
	return reference(backend, p, bench, cacheDir, log, false)
}

// reference is Reference; cacheOnly makes a reference model missing from the cache an error.
func reference(backend compute.Backend, p Preset, bench *minibench.Bench, cacheDir string, log io.Writer, cacheOnly bool) (*model.LM, string, *ReferenceInfo, error) {
	lm, dir, info, err := pretrained(backend, p, bench, cacheDir, log, cacheOnly)
	if err != nil || p.Instruct == nil {
		return lm, dir, info, err
	}
	return instructed(backend, p, bench, lm, dir, info, cacheDir, log, cacheOnly)
}

// notCached is the error of a cache-only runner (`alphatoken report`) that would have to train.
func notCached(what, dir string) error {
	return errors.Errorf("ablations: %s is not in the cache (%s): this command only reads cached runs; train it with `alphatoken ablate` (same flags), or pass `report --train`", what, dir)
}

// pretrained loads or pre-trains the preset's pre-trained model.
func pretrained(backend compute.Backend, p Preset, bench *minibench.Bench, cacheDir string, log io.Writer, cacheOnly bool) (*model.LM, string, *ReferenceInfo, error) {
	tok := tokenizer.NewByteLevel()
	cfg, err := model.Preset(p.Model, tok.VocabSize(), tok.BOS(), tok.EOS(), tok.PAD())
	if err != nil {
		return nil, "", nil, err
	}
	key := referenceKey{Corpus: bench.Config.CorpusFingerprint(), Model: *cfg, Pretrain: p.Pretrain, Seed: max(p.RefSeed, 1)}
	dir := filepath.Join(cacheDir, "reference", fmt.Sprintf("%s-%s", p.Name, hashJSON(key)))
	if lm, info, err := loadReference(backend, dir, key, log); lm != nil || err != nil {
		return lm, dir, info, err
	}
	if cacheOnly {
		return nil, "", nil, notCached("the reference model of preset "+p.Name, dir)
	}
	fmt.Fprintf(log, "reference model: pre-training %s (%s preset) into %s\n", p.Model, p.Name, dir)
	start := time.Now()
	lm, err := model.New(backend, cfg, dtypes.Float32, key.Seed)
	if err != nil {
		return nil, "", nil, err
	}
	trainSet, heldOut, err := train.PretrainData(data.CorpusStream(bench.Corpus, tok), p.Pretrain.Seq)
	if err != nil {
		return nil, "", nil, err
	}
	tc := train.Config{Steps: p.Pretrain.Steps, BatchSize: p.Pretrain.Batch, MaxLen: p.Pretrain.Seq, BucketQuantum: p.Pretrain.Seq,
		LR: p.Pretrain.LR, Seed: key.Seed}
	info := &ReferenceInfo{Key: key, TrainTokens: p.Pretrain.Steps * p.Pretrain.Batch * p.Pretrain.Seq}
	if err := trainReference(lm, tok, tc, trainSet, limit(heldOut, 64), 200, "pre-training", dir, start, info, log); err != nil {
		return nil, "", nil, err
	}
	return lm, dir, info, nil
}

// instructed loads or trains the instruction stage of the adapt reference from the pre-trained
// model lm (stored in dir, described by info).
func instructed(backend compute.Backend, p Preset, bench *minibench.Bench, lm *model.LM, stage1Dir string, stage1 *ReferenceInfo,
	cacheDir string, log io.Writer, cacheOnly bool) (*model.LM, string, *ReferenceInfo, error) {
	st := *p.Instruct
	if st.Pairs < 1 || st.Steps < 1 || st.Batch < 1 || st.LR <= 0 || st.Replay < 0 {
		return nil, "", nil, errors.Errorf("ablations: preset %s: instruction stage needs pairs, steps, batch and lr > 0 and replay >= 0, got %+v", p.Name, st)
	}
	key := stage1.Key
	key.Stage1, key.Instruct = filepath.Base(stage1Dir), &st
	dir := filepath.Join(cacheDir, "reference", fmt.Sprintf("%s-%s", p.Name, hashJSON(key)))
	if lm, info, err := loadReference(backend, dir, key, log); lm != nil || err != nil {
		return lm, dir, info, err
	}
	if cacheOnly {
		return nil, "", nil, notCached("the instruction stage of preset "+p.Name+"'s reference", dir)
	}
	pairs, err := bench.InstructPairs(st.Pairs)
	if err != nil {
		return nil, "", nil, err
	}
	tok := tokenizer.NewByteLevel()
	tmpl := data.PlainTemplate{}
	var examples []data.Example
	maxLen := p.Pretrain.Seq
	for i, e := range pairs {
		prompt := tmpl.Prompt(tok, []data.Message{{Role: "user", Content: e.Prompt}})
		ids := append(prompt, tmpl.Response(tok, e.Response)...)
		maxLen = max(maxLen, len(ids))
		examples = append(examples, data.Example{IDs: ids, PromptLen: len(prompt), Source: fmt.Sprintf("minibench/instruct[%d]", i)})
	}
	windows, heldOut, err := train.PretrainData(data.CorpusStream(bench.Corpus, tok), p.Pretrain.Seq)
	if err != nil {
		return nil, "", nil, err
	}
	// Replayed windows are spread evenly over the corpus.
	if n := int(st.Replay*float64(st.Pairs) + 0.5); n > 0 {
		if n > len(windows) {
			return nil, "", nil, errors.Errorf("ablations: preset %s: instruction stage replays %d windows, the corpus has %d", p.Name, n, len(windows))
		}
		for i := range n {
			examples = append(examples, windows[i*len(windows)/n])
		}
	}
	fmt.Fprintf(log, "reference model: instruction stage of %s (%d pairs, %d corpus windows, %d steps) into %s\n",
		filepath.Base(stage1Dir), st.Pairs, len(examples)-st.Pairs, st.Steps, dir)
	start := time.Now()
	tc := train.Config{Steps: st.Steps, BatchSize: st.Batch, MaxLen: (maxLen + 15) / 16 * 16, BucketQuantum: 16, LR: st.LR, Seed: key.Seed}
	info := &ReferenceInfo{Key: key, Seconds: stage1.Seconds, TrainTokens: stage1.TrainTokens}
	if err := trainReference(lm, tok, tc, examples, limit(heldOut, 64), 100, "the instruction stage", dir, start, info, log); err != nil {
		return nil, "", nil, err
	}
	return lm, dir, info, nil
}

// loadReference returns the reference model cached in dir, or nil (and no error) when dir holds
// none; a cached model trained under another key is an error.
func loadReference(backend compute.Backend, dir string, key referenceKey, log io.Writer) (*model.LM, *ReferenceInfo, error) {
	infoPath := filepath.Join(dir, "reference.json")
	raw, err := os.ReadFile(infoPath)
	if err != nil {
		return nil, nil, nil
	}
	var info ReferenceInfo
	if err := json.Unmarshal(raw, &info); err != nil {
		return nil, nil, errors.Wrapf(err, "ablations: reading %s", infoPath)
	}
	if hashJSON(info.Key) != hashJSON(key) {
		return nil, nil, errors.Errorf("ablations: cached reference %s was trained with a different configuration than requested "+
			"(delete the directory to retrain)", dir)
	}
	lm, err := model.Load(backend, dir, dtypes.Float32)
	if err != nil {
		return nil, nil, err
	}
	fmt.Fprintf(log, "reference model: reusing %s\n", dir)
	return lm, &info, nil
}

// trainReference trains lm with Full FT on examples (tc plus the cache's checkpointing and
// logging; held-out loss every evalEvery steps), resuming from the last checkpoint in dir, then
// saves the model and tokenizer in dir and writes reference.json: info with the time since start
// added to its Seconds and the last logged losses.
func trainReference(lm *model.LM, tok *tokenizer.ByteLevel, tc train.Config, examples, heldOut []data.Example, evalEvery int,
	stage, dir string, start time.Time, info *ReferenceInfo, log io.Writer) error {
	tc.CheckpointEvery, tc.KeepCheckpoints, tc.OutDir, tc.LogEvery = 100, 1, dir, 25
	tr, err := train.New(lm, tok, tc, train.Full{})
	if err != nil {
		return err
	}
	tr.Log = log
	tr.Hooks = append(tr.Hooks, train.EvalHook(lm, heldOut, evalEvery, 32))
	if resumed, err := tr.ResumeLatest(dir); err != nil {
		return err
	} else if resumed {
		fmt.Fprintf(log, "reference model: resuming %s at step %d\n", stage, tr.Step())
	}
	if err := tr.Run(examples); err != nil {
		return err
	}
	if err := lm.Save(dir, model.SaveOptions{}); err != nil {
		return err
	}
	if err := tok.Save(dir); err != nil {
		return err
	}
	info.Seconds += time.Since(start).Seconds()
	info.CreatedAt = time.Now().UTC().Format(time.RFC3339)
	if h := tr.History; len(h) > 0 {
		info.FinalLoss = h[len(h)-1].Loss
		info.HeldOutLoss = h[len(h)-1].Metrics["eval_loss"]
	}
	return writeJSON(filepath.Join(dir, "reference.json"), info)
}

func writeJSON(path string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	return atomicfile.WriteBytes(path, append(b, '\n'))
}
