package main

import (
	"flag"
	"fmt"
	"strings"

	"github.com/alphatoken/alphatoken/alphatoken/data"
	"github.com/alphatoken/alphatoken/alphatoken/train"
	"github.com/alphatoken/alphatoken/model"
	"github.com/alphatoken/alphatoken/model/tokenizer"
)

// methodFlags are the flags of the token-selection methods.
type methodFlags struct{}

func addMethodFlags(fs *flag.FlagSet) *methodFlags { return &methodFlags{} }

var methodList = []string{"full"}

func methodNames() string { return strings.Join(methodList, ", ") }

// buildMethod constructs a training method by name.
func buildMethod(name string, mf *methodFlags, lm *model.LM, tok tokenizer.Tokenizer, opts data.Options, modelDir string) (train.Method, error) {
	switch name {
	case "full":
		return train.Full{}, nil
	}
	return nil, fmt.Errorf("unknown --method %q (known: %s)", name, methodNames())
}
