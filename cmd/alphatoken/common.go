package main

import (
	"flag"
	"fmt"
	"os"

	"github.com/gomlx/compute"

	"github.com/alphatoken/alphatoken/alphatoken/data"
	"github.com/alphatoken/alphatoken/internal/hfcache"
	"github.com/alphatoken/alphatoken/model"
	"github.com/alphatoken/alphatoken/model/tokenizer"
)

// openModel loads a checkpoint, given as a directory or as a Hub model id (Org/Name[@rev]) already
// in the local Hugging Face cache, and its tokenizer, in the precision named by a --dtype value.
func openModel(backendSpec, dir, dtype string) (*model.LM, tokenizer.Tokenizer, error) {
	backend, p, err := openBackend(backendSpec, dtype)
	if err != nil {
		return nil, nil, err
	}
	dir, err = hfcache.Resolve(dir)
	if err != nil {
		return nil, nil, err
	}
	lm, err := model.Load(backend, dir, p.Storage)
	if err != nil {
		return nil, nil, err
	}
	if err := lm.SetPrecision(p); err != nil {
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

// openModelTemplate is openModel plus the chat template named by --template, for the model's tokenizer.
func openModelTemplate(backendSpec, dir, dtype, template string) (*model.LM, tokenizer.Tokenizer, data.Template, error) {
	lm, tok, err := openModel(backendSpec, dir, dtype)
	if err != nil {
		return nil, nil, nil, err
	}
	tmpl, err := data.TemplateByName(template, tok)
	if err != nil {
		return nil, nil, nil, err
	}
	return lm, tok, tmpl, nil
}

// openBackend creates the backend of --backend and checks that it supports the precision of --dtype.
func openBackend(backendSpec, dtype string) (compute.Backend, model.Precision, error) {
	p, err := model.ParsePrecision(dtype)
	if err != nil {
		return nil, p, err
	}
	backend, err := model.NewBackend(backendSpec)
	if err != nil {
		return nil, p, err
	}
	if err := p.Check(backend); err != nil {
		return nil, p, err
	}
	return backend, p, nil
}

// dtypeFlag adds --dtype (a model.Precision name) to fs.
func dtypeFlag(fs *flag.FlagSet) *string {
	return fs.String("dtype", "float32", model.PrecisionHelp())
}

// saveFinal writes the trained model and tokenizer at the top of dir.
func saveFinal(lm *model.LM, tok tokenizer.Tokenizer, dir string) error {
	if err := lm.Save(dir, model.SaveOptions{}); err != nil {
		return err
	}
	return tok.Save(dir)
}

func logf(format string, args ...any) { fmt.Fprintf(os.Stderr, format+"\n", args...) }
