package methods

import "github.com/alphatoken/alphatoken/alphatoken/train"

func init() {
	Register(Info{
		Name:    "full",
		Summary: "full fine-tuning: every response token keeps its loss",
		Build:   func(*Env) (train.Method, error) { return train.Full{}, nil },
	})
}
