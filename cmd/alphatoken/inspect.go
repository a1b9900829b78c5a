package main

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"

	"github.com/gomlx/compute/dtypes"

	"github.com/alphatoken/alphatoken/internal/hfcache"
	"github.com/alphatoken/alphatoken/model"
	"github.com/alphatoken/alphatoken/model/tokenizer"
)

func init() {
	register("inspect", "print a checkpoint's config, parameter count and tensor list", runInspect)
}

func runInspect(args []string) error {
	fs, backendSpec := newFlags("inspect", "DIR | Org/Name (a model in the local Hugging Face cache)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		fs.Usage()
		return fmt.Errorf("inspect needs exactly one checkpoint directory")
	}
	dir, err := hfcache.Resolve(fs.Arg(0))
	if err != nil {
		return err
	}
	backend, err := model.NewBackend(*backendSpec)
	if err != nil {
		return err
	}
	lm, err := model.Load(backend, dir, dtypes.Float32)
	if err != nil {
		return err
	}
	c := lm.Config
	w := os.Stdout
	fmt.Fprintf(w, "checkpoint   %s\n", dir)
	fmt.Fprintf(w, "architecture %s (torch_dtype %s)\n", c.Arch, c.DType)
	fmt.Fprintf(w, "layers %d, hidden %d, heads %d (kv %d, head_dim %d), intermediate %d, vocab %d\n",
		c.Layers, c.Hidden, c.Heads, c.KVHeads, c.HeadDim, c.Intermediate, c.VocabSize)
	fmt.Fprintf(w, "rope theta %g, scaling %+v; rms eps %g; tied embeddings %v; qkv bias %v; qk norm %v; max positions %d\n",
		c.RoPETheta, c.RoPEScaling, c.RMSNormEps, c.TieEmbeddings, c.QKVBias(), c.QKNorm(), c.MaxPositions)
	if c.HasSlidingLayers() || c.QueryPreAttnScalar > 0 {
		sliding := 0
		for _, lt := range c.LayerTypes {
			if lt == model.SlidingAttention {
				sliding++
			}
		}
		fmt.Fprintf(w, "attention    %d of %d layers sliding (window %d, local rope theta %g, scaling %+v); scores × %g (query_pre_attn_scalar %g)\n",
			sliding, c.Layers, c.SlidingWindow, c.RoPELocalTheta, c.RoPELocalScaling, c.AttnScale(), c.QueryPreAttnScalar)
	}
	if of := c.TextStackOf(); of != "" {
		fmt.Fprintf(w, "text stack   of a %s checkpoint (its other parts are not loaded)\n", of)
	}
	fmt.Fprintf(w, "parameters   %d (%.2fM)\n", c.NumParams(), float64(c.NumParams())/1e6)
	if tok, err := tokenizer.Load(dir); err == nil {
		fmt.Fprintf(w, "tokenizer    %T, %d ids, bos %d eos %d pad %d, template family %q\n", tok, tok.VocabSize(), tok.BOS(), tok.EOS(), tok.PAD(), tok.Family())
	} else {
		fmt.Fprintf(w, "tokenizer    none (%v)\n", err)
	}
	fmt.Fprintln(w, "tensors:")
	for _, s := range c.ParamSpecs() {
		fmt.Fprintf(w, "  %-52s %v\n", s.Name, s.Shape)
	}
	if entries, err := os.ReadDir(dir); err == nil {
		var extra []string
		for _, e := range entries {
			if e.IsDir() && slices.Contains([]string{".tmp"}, filepath.Ext(e.Name())) {
				continue
			}
			extra = append(extra, e.Name())
		}
		fmt.Fprintf(w, "files: %v\n", extra)
	}
	return nil
}
