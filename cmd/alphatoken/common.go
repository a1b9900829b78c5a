package main

import (
	"fmt"
	"os"

	"github.com/gomlx/compute/dtypes"

	"github.com/alphatoken/alphatoken/internal/hfcache"
	"github.com/alphatoken/alphatoken/model"
	"github.com/alphatoken/alphatoken/model/tokenizer"
)

// openModel loads a checkpoint, given as a directory or as a Hub model id (Org/Name[@rev]) already
// in the local Hugging Face cache, and its tokenizer.
func openModel(backendSpec, dir, dtype string) (*model.LM, tokenizer.Tokenizer, error) {
	dir, err := hfcache.Resolve(dir)
	if err != nil {
		return nil, nil, err
	}
	backend, err := model.NewBackend(backendSpec)
	if err != nil {
		return nil, nil, err
	}
	dt, err := parseDType(dtype)
	if err != nil {
		return nil, nil, err
	}
	lm, err := model.Load(backend, dir, dt)
	if err != nil {
		return nil, nil, err
	}
	tok, err := tokenizer.Load(dir)
	if err != nil {
		return nil, nil, err
	}
	if tok.VocabSize() > lm.Config.VocabSize {
		return nil, nil, fmt.Errorf("checkpoint %s: the tokenizer has %d ids but vocab_size is %d", dir, tok.VocabSize(), lm.Config.VocabSize)
	}
	return lm, tok, nil
}

func parseDType(s string) (dtypes.DType, error) {
	switch s {
	case "", "float32":
		return dtypes.Float32, nil
	case "float64":
		return dtypes.Float64, nil
	case "bfloat16":
		return dtypes.BFloat16, nil
	}
	return dtypes.InvalidDType, fmt.Errorf("unknown --dtype %q (float32, bfloat16, float64)", s)
}

// saveFinal writes the trained model and tokenizer at the top of dir.
func saveFinal(lm *model.LM, tok tokenizer.Tokenizer, dir string) error {
	if err := lm.Save(dir, model.SaveOptions{}); err != nil {
		return err
	}
	return tok.Save(dir)
}

func logf(format string, args ...any) { fmt.Fprintf(os.Stderr, format+"\n", args...) }
