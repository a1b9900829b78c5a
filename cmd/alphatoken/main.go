// Command alphatoken trains, scores and inspects language models with AlphaToken token valuation.
//
//	alphatoken pretrain   --out DIR [--corpus FILE | --minibench] [--preset mini] ...
//	alphatoken train-sft  --model DIR --data TRAIN.jsonl --out DIR [--method full] ...
//	alphatoken generate   --model DIR (--prompt TEXT | --prompts FILE.jsonl) ...
//	alphatoken inspect    DIR
//
// Every command takes --backend (go, the default, or xla:cuda). alphatoken help CMD (or CMD -h)
// prints a command's flags; alphatoken --version the version, commit and GoMLX version. The exit
// status is 0 on success (and for help), 1 on any error, with a message naming the flag, file or
// tensor at fault.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime"
	"runtime/debug"
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

func usage(w io.Writer) {
	fmt.Fprintln(w, "usage: alphatoken <command> [flags]\n\ncommands:")
	names := make([]string, 0, len(commands))
	for n := range commands {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(w, "  %-12s %s\n", n, commands[n].summary)
	}
	fmt.Fprintln(w, "\nalphatoken help <command> (or alphatoken <command> -h) prints the flags of a command;")
	fmt.Fprintln(w, "alphatoken --version prints the version. Exit status: 0 done (help included), 1 an error.")
}

func main() { os.Exit(run(os.Args[1:])) }

// run executes the command line args and returns the exit status: 0 for success and for help,
// 1 for any error (a message on stderr naming the flag, file or tensor).
func run(args []string) int {
	if len(args) == 0 {
		usage(os.Stderr)
		return 1
	}
	switch args[0] {
	case "-h", "-help", "--help":
		usage(os.Stdout)
		return 0
	case "help":
		if len(args) == 1 {
			usage(os.Stdout)
			return 0
		}
		if _, ok := commands[args[1]]; !ok {
			fmt.Fprintf(os.Stderr, "alphatoken help: unknown command %q (alphatoken help lists them)\n", args[1])
			return 1
		}
		args = []string{args[1], "-h"}
	case "-version", "--version", "version":
		fmt.Fprintln(os.Stdout, versionString())
		return 0
	}
	cmd, ok := commands[args[0]]
	if !ok {
		fmt.Fprintf(os.Stderr, "alphatoken: unknown command %q\n\n", args[0])
		usage(os.Stderr)
		return 1
	}
	err := runCommand(cmd, args[1:])
	if errors.Is(err, flag.ErrHelp) && helpFlags != nil {
		helpFlags.SetOutput(os.Stdout)
		helpFlags.Usage()
		return 0
	}
	if err != nil {
		msg := err.Error()
		if !strings.HasPrefix(msg, "alphatoken") {
			msg = "alphatoken " + args[0] + ": " + msg
		}
		if isParseError(msg) {
			msg += " (alphatoken help " + args[0] + " lists the flags)"
		}
		fmt.Fprintln(os.Stderr, msg)
		return 1
	}
	return 0
}

// runCommand runs a command; a device out-of-memory error, returned or raised as a panic by the
// backend, becomes an error that says what to change (model.ExplainOOM). Other panics propagate.
func runCommand(cmd command, args []string) (err error) {
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

// isParseError reports whether msg is one of the flag package's parse errors.
func isParseError(msg string) bool {
	for _, p := range []string{"flag provided but not defined", "flag needs an argument", "bad flag syntax", "invalid value", "invalid boolean"} {
		if strings.Contains(msg, ": "+p) {
			return true
		}
	}
	return false
}

// helpFlags is the flag set of the command being run: its -h prints it (on stdout).
var helpFlags *flag.FlagSet

// newFlags creates a command's flag set with the flags every command shares. Parse errors are
// returned (and reported once, by run), not printed; -h returns flag.ErrHelp and run prints the
// usage on stdout.
func newFlags(name, usageLine string) (*flag.FlagSet, *string) {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: alphatoken %s %s\n\nflags:\n", name, usageLine)
		fs.PrintDefaults()
	}
	backend := fs.String("backend", "", "compute backend: "+model.BackendChoices+"; default $GOMLX_BACKEND, else go")
	helpFlags = fs
	return fs, backend
}

// versionString is the version: the module version, the VCS commit the binary was built from,
// GoMLX's version and the Go toolchain (debug.ReadBuildInfo).
func versionString() string { return formatVersion(debug.ReadBuildInfo()) }

func formatVersion(bi *debug.BuildInfo, ok bool) string {
	version, commit, gomlx := "(unknown)", "unknown (no build information)", "(unknown)"
	if ok && bi != nil {
		version = bi.Main.Version
		var rev, when, modified string
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				rev = s.Value
			case "vcs.time":
				when = s.Value
			case "vcs.modified":
				if s.Value == "true" {
					modified = ", with uncommitted changes"
				}
			}
		}
		if rev != "" {
			commit = rev + " (" + when + modified + ")"
		} else {
			commit = "unknown (built without VCS information: go test, or GOFLAGS=-buildvcs=false)"
		}
		for _, d := range bi.Deps {
			if d.Path == "github.com/gomlx/gomlx" {
				gomlx = d.Version
				if d.Replace != nil {
					gomlx += " => " + d.Replace.Path + " " + d.Replace.Version
				}
			}
		}
	}
	return fmt.Sprintf("alphatoken %s\ncommit %s\ngomlx %s\n%s %s/%s", version, commit, gomlx, runtime.Version(), runtime.GOOS, runtime.GOARCH)
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
