// Command alphatoken trains, scores and inspects language models with AlphaToken token valuation.
//
//	alphatoken pretrain   --out DIR [--corpus FILE | --minibench] [--preset mini] ...
//	alphatoken train-sft  --model DIR --data TRAIN.jsonl --out DIR [--method full] ...
//	alphatoken generate   --model DIR (--prompt TEXT | --prompts FILE.jsonl) ...
//	alphatoken inspect    DIR
//
// Every command takes --backend (go, the default, or xla:cuda). Run a command with -h for its flags.
package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"sort"
	"strings"

	"github.com/alphatoken/alphatoken/model"
)

type command struct {
	summary string
	run     func(args []string) error
}

var commands = map[string]command{}

func register(name, summary string, run func(args []string) error) {
	commands[name] = command{summary, run}
}

func usage() {
	fmt.Fprintln(os.Stderr, "usage: alphatoken <command> [flags]\n\ncommands:")
	names := make([]string, 0, len(commands))
	for n := range commands {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(os.Stderr, "  %-12s %s\n", n, commands[n].summary)
	}
	fmt.Fprintln(os.Stderr, "\nRun 'alphatoken <command> -h' for the flags of a command.")
}

func main() {
	if len(os.Args) < 2 || os.Args[1] == "-h" || os.Args[1] == "--help" || os.Args[1] == "help" {
		usage()
		os.Exit(2)
	}
	cmd, ok := commands[os.Args[1]]
	if !ok {
		fmt.Fprintf(os.Stderr, "alphatoken: unknown command %q\n\n", os.Args[1])
		usage()
		os.Exit(2)
	}
	if err := run(cmd, os.Args[2:]); err != nil {
		if err == flag.ErrHelp {
			os.Exit(2)
		}
		msg := err.Error()
		if !strings.HasPrefix(msg, "alphatoken") {
			msg = "alphatoken " + os.Args[1] + ": " + msg
		}
		fmt.Fprintln(os.Stderr, msg)
		os.Exit(1)
	}
}

// run runs a command; a device out-of-memory error, returned or raised as a panic by the backend,
// becomes an error that says what to change (model.ExplainOOM). Other panics propagate.
func run(cmd command, args []string) (err error) {
	defer func() {
		if r := recover(); r != nil {
			perr, ok := r.(error)
			if !ok {
				perr = fmt.Errorf("%v", r)
			}
			var oom *model.OOMError
			if !errors.As(model.ExplainOOM(perr), &oom) {
				panic(r)
			}
			err = oom
		}
	}()
	return model.ExplainOOM(cmd.run(args))
}

// newFlags creates a command's flag set with the flags every command shares.
func newFlags(name, usageLine string) (*flag.FlagSet, *string) {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: alphatoken %s %s\n\nflags:\n", name, usageLine)
		fs.PrintDefaults()
	}
	backend := fs.String("backend", "", "compute backend: go (CPU, default; or $GOMLX_BACKEND) or xla:cuda")
	return fs, backend
}

// need returns an error naming the first empty required flag.
func need(fs *flag.FlagSet, names ...string) error {
	for _, n := range names {
		if f := fs.Lookup(n); f != nil && f.Value.String() == "" {
			return fmt.Errorf("--%s is required (see -h)", n)
		}
	}
	return nil
}
