package methods

import (
	"fmt"
	"io"
	"maps"
	"slices"
	"sort"
	"strings"

	"github.com/pkg/errors"
)

// catalog is one registry of methods, keyed by name: the SFT registry (of Info) and the DPO one
// (of DPOInfo) are two catalogs, so they register, list, look up and describe methods alike.
type catalog[T any] struct {
	kind  string // "" for SFT, "DPO " for DPO: the word before "method" in messages
	items map[string]*T
	info  func(*T) *Info
}

func newCatalog[T any](kind string, info func(*T) *Info) *catalog[T] {
	return &catalog[T]{kind: kind, items: map[string]*T{}, info: info}
}

// add registers x; built says whether its Build function is set. A method without a name, summary
// or Build, or a name registered twice, is a programming error and panics.
func (c *catalog[T]) add(x T, built bool) {
	in := c.info(&x)
	if in.Name == "" || !built || in.Summary == "" {
		panic(fmt.Sprintf("methods: registering %smethod %q: name, summary and Build are required", c.kind, in.Name))
	}
	if _, dup := c.items[in.Name]; dup {
		panic(fmt.Sprintf("methods: %smethod %q registered twice", c.kind, in.Name))
	}
	c.items[in.Name] = &x
}

// names lists the registered methods, sorted.
func (c *catalog[T]) names() []string { return slices.Sorted(maps.Keys(c.items)) }

// lookup returns a registered method; an unknown name is an error that lists the registered ones.
func (c *catalog[T]) lookup(name string) (*T, error) {
	x, ok := c.items[name]
	if !ok {
		return nil, errors.Errorf("methods: unknown %smethod %q (registered: %s)", c.kind, name, strings.Join(c.names(), ", "))
	}
	return x, nil
}

// usage writes one line per method: name, summary, and the flags it needs (flag names a need's
// flags) and its parameters with their defaults (for -h).
func (c *catalog[T]) usage(w io.Writer, flag func(Need) string) {
	for _, n := range c.names() {
		in := c.info(c.items[n])
		var needs []string
		for _, x := range in.Needs {
			needs = append(needs, flag(x))
		}
		for _, p := range in.Params {
			needs = append(needs, fmt.Sprintf("--%s %g", p.Name, p.Default))
		}
		extra := ""
		if len(needs) > 0 {
			extra = " [" + strings.Join(needs, " ") + "]"
		}
		fmt.Fprintf(w, "  %-20s %s%s\n", n, in.Summary, extra)
	}
}

// params lists every parameter any method declares, by name (the first declaration's default and
// usage; methods that share a name share its meaning).
func (c *catalog[T]) params() []Param {
	seen := map[string]bool{}
	var out []Param
	for _, n := range c.names() {
		for _, p := range c.info(c.items[n]).Params {
			if !seen[p.Name] {
				seen[p.Name] = true
				out = append(out, p)
			}
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}
