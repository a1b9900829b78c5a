package train

import (
	"fmt"
	"testing"

	"github.com/alphatoken/alphatoken/alphatoken/data"
	"github.com/alphatoken/alphatoken/model"
	"github.com/alphatoken/alphatoken/model/tokenizer"
)

// TestLearnsConditionalResponse: SFT must learn a response that depends on the prompt (a pipeline
// check: prompt tokens reach the response's predictions, the loss mask is right, generation uses
// the same encoding as training).
func TestLearnsConditionalResponse(t *testing.T) {
	tok := tokenizer.NewByteLevel()
	words := []string{"apple", "river", "stone", "cloud", "tiger", "lemon", "piano", "rocket"}
	var exs []data.Example
	tmpl := data.PlainTemplate{}
	for i := range 400 {
		k := i % len(words)
		p := tmpl.Prompt(tok, []data.Message{{Role: "user", Content: fmt.Sprintf("Item %d. Say %d:", i%50, k)}})
		exs = append(exs, data.Example{IDs: append(p, tmpl.Response(tok, " "+words[k])...), PromptLen: len(p)})
	}
	lm := tinyLM(t, 4)
	cfg := DefaultConfig(150)
	cfg.LR, cfg.BatchSize, cfg.MaxLen, cfg.BucketQuantum, cfg.Quiet = 3e-3, 16, 32, 32, true
	tr, err := New(lm, tok, cfg, Full{})
	if err != nil {
		t.Fatal(err)
	}
	if err := tr.Run(exs); err != nil {
		t.Fatal(err)
	}
	gen, _ := model.NewGenerator(lm)
	var prompts [][]int
	for k := range words {
		prompts = append(prompts, tmpl.Prompt(tok, []data.Message{{Role: "user", Content: fmt.Sprintf("Item %d. Say %d:", 7, k)}}))
	}
	outs, err := gen.Generate(prompts, model.GenerateOptions{MaxNewTokens: 10, Stop: []int{tok.EOS()}})
	if err != nil {
		t.Fatal(err)
	}
	right := 0
	for k, o := range outs {
		got := tok.Decode(o)
		if got == " "+words[k] {
			right++
		}
		t.Logf("%d -> %q", k, got)
	}
	if right < 7 {
		t.Fatalf("learned %d of %d prompt-dependent responses (loss %.3f)", right, len(words), tr.History[len(tr.History)-1].Loss)
	}
}
