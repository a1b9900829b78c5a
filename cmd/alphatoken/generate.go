package main

import (
	"fmt"
	"os"

	"github.com/alphatoken/alphatoken/alphatoken/data"
	"github.com/alphatoken/alphatoken/internal/progress"
	"github.com/alphatoken/alphatoken/model"
)

func init() {
	register("generate", "sample continuations (greedy, temperature, top-p) from a checkpoint", runGenerate)
}

func runGenerate(args []string) error {
	fs, backendSpec := newFlags("generate", "--model DIR (--prompt TEXT | --prompts FILE.jsonl) [flags]")
	modelDir := fs.String("model", "", "checkpoint directory")
	prompt := fs.String("prompt", "", "one prompt (text)")
	promptsPath := fs.String("prompts", "", "JSONL of prompts ({prompt}, {messages} or {prompt_ids})")
	maxNew := fs.Int("max-new-tokens", 64, "tokens to generate at most, ≥ 1")
	temp := fs.Float64("temperature", 0, "sampling temperature, ≥ 0 (0: greedy)")
	topP := fs.Float64("top-p", 1, "nucleus sampling mass, in (0, 1] (1: off)")
	seed := fs.Uint64("seed", 1, "sampling seed")
	template := fs.String("template", "auto", "chat template: auto (the checkpoint's own, else by tokenizer family), jinja, plain, chatml, llama3, gemma")
	raw := fs.Bool("raw", false, "encode --prompt as is (with BOS), without the chat template")
	dtype := dtypeFlag(fs)
	batch := fs.Int("batch", 16, "prompts decoded together (speed only: with --seed, prompt n's sample depends on n alone)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if err := need(fs, "model"); err != nil {
		return err
	}
	if (*prompt == "") == (*promptsPath == "") {
		return fmt.Errorf("give exactly one of --prompt and --prompts")
	}
	if err := checkFlags(atLeast("max-new-tokens", *maxNew, 1), nonNegativeFloat("temperature", *temp), inUnit("top-p", *topP),
		atLeast("batch", *batch, 1), precisionFlag(*dtype)); err != nil {
		return err
	}
	lm, tok, tmpl, err := openModelTemplate(*backendSpec, *modelDir, *dtype, *template)
	if err != nil {
		return err
	}
	var prompts [][]int
	if *prompt != "" {
		if *raw {
			p := tok.Encode(*prompt)
			if tok.BOS() >= 0 {
				p = append([]int{tok.BOS()}, p...)
			}
			prompts = [][]int{p}
		} else {
			p, err := data.RenderPrompt(tmpl, tok, []data.Message{{Role: "user", Content: *prompt}})
			if err != nil {
				return err
			}
			prompts = [][]int{p}
		}
	} else {
		prompts, err = data.ReadPrompts(*promptsPath, tok, data.Options{Template: tmpl, MaxLen: lm.Config.MaxPositions})
		if err != nil {
			return err
		}
	}
	gen, err := model.NewGenerator(lm)
	if err != nil {
		return err
	}
	outs, err := gen.Generate(prompts, model.GenerateOptions{MaxNewTokens: *maxNew, Temperature: *temp, TopP: *topP,
		Stop: tmpl.Stop(tok), Seed: *seed, BatchSize: *batch, Progress: progress.New(os.Stderr, "generate", "prompts").Func()})
	if err != nil {
		return err
	}
	for i, o := range outs {
		if len(outs) > 1 {
			fmt.Fprintf(os.Stdout, "--- %d\n", i+1)
		}
		fmt.Fprintln(os.Stdout, tok.Decode(o))
	}
	return nil
}
