package model

import (
	"github.com/gomlx/compute"
	. "github.com/gomlx/gomlx/core/graph"
	gm "github.com/gomlx/gomlx/ml/model"
)

// GraphFn is a graph function that reads (and may update) variables of a store: inputs come as a
// slice, in the order of the call's arguments.
type GraphFn func(scope *gm.Scope, g *Graph, in []*Node) []*Node

// NewStoreExec compiles fn lazily, once per set of input shapes, like gm.NewExec, with one difference
// every graph of this project needs: the store's variables are always fed as parameters at each
// call. The go backend (compute ≥ v0.1.14) otherwise asks GoMLX to fold the variables of a graph
// that is not marked as training into constants at compile time, so a cached graph would keep
// computing with the weights it was first compiled with (every later SetValue, and every
// optimizer update fed back through the store, silently ignored).
func NewStoreExec(backend compute.Backend, store *gm.Store, name string, fn GraphFn) (*gm.Exec, error) {
	e, err := gm.NewExec(backend, store, func(scope *gm.Scope, g *Graph, in []*Node) []*Node {
		// GoMLX decides parameter vs constant per graph, on a variable's first use, from this flag.
		store.SetTraining(g, true)
		return fn(scope, g, in)
	})
	if err != nil {
		return nil, err
	}
	return e.WithName(name), nil
}
