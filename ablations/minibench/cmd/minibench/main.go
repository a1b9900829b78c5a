// Command minibench builds MiniBench and writes its files.
//
//	go run ./ablations/minibench/cmd/minibench -out /tmp/minibench -seed 1 [-clean 600] [-prefs]
//
// It prints the fingerprints and sizes, and with -samples a few items of
// every kind.
package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"

	"github.com/alphatoken/alphatoken/ablations/minibench"
	"github.com/alphatoken/alphatoken/internal/atomicfile"
)

func main() {
	cfg := minibench.DefaultConfig()
	out := flag.String("out", "", "directory to write the files to (nothing is written if empty)")
	samples := flag.Int("samples", 0, "print this many samples of each kind")
	clean := flag.Int("clean", 0, "also write <target>_clean.jsonl: this many examples of the clean slice (a helper model's data, disjoint from train/val/test/fisher)")
	prefs := flag.Bool("prefs", false, "also write the preference MiniBench (code target pairs, minibench.DefaultPrefConfig): prefs_{train,val,test,oracle}.jsonl in TRL's format and prefs_manifest.json")
	flag.Int64Var(&cfg.Seed, "seed", cfg.Seed, "seed")
	flag.IntVar(&cfg.CorpusDocs, "corpus_docs", cfg.CorpusDocs, "corpus documents")
	flag.IntVar(&cfg.ProbeItems, "probe_items", cfg.ProbeItems, "items per probe")
	flag.IntVar(&cfg.TrainSize, "train", cfg.TrainSize, "training examples per target")
	flag.IntVar(&cfg.TestSize, "test", cfg.TestSize, "test items per target")
	flag.Parse()

	b, err := minibench.Build(cfg)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	st, _ := json.MarshalIndent(b.Stats(), "", "  ")
	fmt.Printf("fingerprint %s  corpus_fingerprint %s\n%s\n", b.Fingerprint(), cfg.CorpusFingerprint(), st)
	if *samples > 0 {
		printSamples(b, *samples)
	}
	if *out != "" {
		if err := b.WriteFiles(*out); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		fmt.Println("wrote", *out)
		if *prefs {
			p, err := minibench.BuildPrefs(b, minibench.DefaultPrefConfig())
			if err == nil {
				err = p.WriteFiles(*out)
			}
			if err != nil {
				fmt.Fprintln(os.Stderr, err)
				os.Exit(1)
			}
			fmt.Printf("wrote the preference pairs (%s): %d train, %d val, %d test, %d oracle\n", p.Fingerprint(), len(p.Train), len(p.Val), len(p.Test), len(p.Oracle))
		}
		if *clean > 0 {
			if err := writeClean(b, *out, *clean); err != nil {
				fmt.Fprintln(os.Stderr, err)
				os.Exit(1)
			}
		}
	}
}

// writeClean writes each target's clean slice (Target.Extra) as <target>_clean.jsonl.
func writeClean(b *minibench.Bench, dir string, n int) error {
	for _, t := range []*minibench.Target{b.Code, b.Math} {
		exs, err := t.Extra(n)
		if err != nil {
			return err
		}
		var buf bytes.Buffer
		enc := json.NewEncoder(&buf)
		for _, e := range exs {
			if err := enc.Encode(e); err != nil {
				return err
			}
		}
		path := filepath.Join(dir, t.Name+"_clean.jsonl")
		if err := atomicfile.WriteBytes(path, buf.Bytes()); err != nil {
			return err
		}
		fmt.Println("wrote", path)
	}
	return nil
}

func printSamples(b *minibench.Bench, n int) {
	q := func(v any) string { s, _ := json.Marshal(v); return string(s) }
	fmt.Println("== corpus")
	for i := 0; i < n && i < len(b.Corpus); i++ {
		fmt.Println(q(b.Corpus[i]))
	}
	for _, p := range []struct {
		name  string
		items []minibench.MCItem
	}{{"arc", b.ARC}, {"hellaswag", b.HellaSwag}, {"mmlu", b.MMLU}} {
		fmt.Println("==", p.name)
		for i := 0; i < n && i < len(p.items); i++ {
			fmt.Println(q(p.items[i]))
		}
	}
	fmt.Println("== gsm")
	for i := 0; i < n && i < len(b.GSM); i++ {
		fmt.Println(q(b.GSM[i]))
	}
	for _, t := range []*minibench.Target{b.Code, b.Math} {
		fmt.Println("==", t.Name, "train")
		for i := 0; i < n && i < len(t.Train); i++ {
			fmt.Println(q(t.Train[i]))
		}
		fmt.Println("==", t.Name, "test")
		for i := 0; i < n && i < len(t.Test); i++ {
			fmt.Println(q(t.Test[i]))
		}
	}
}
