// Package cli is kopernik's operator command line: every subcommand of the
// kopernik binary except the broker itself (cmd/kopernik registers
// `standalone` and `verify`). It is a client of a running broker, like
// pulsar-admin, rpk or kafka-topics.sh: it talks to the broker's admin REST
// API (package admin, Pulsar's /admin/v2 paths), to its Kafka listener
// (franz-go and kadm) and to its Pulsar listener (pulsar-client-go), never
// to storage or metadata.
//
// Contract for scripts: exit status 0 on success, 1 when the command ran
// and failed (the broker refused, a topic does not exist, no broker is
// reachable), 2 on bad usage (unknown command or flag, missing argument).
// Results go to stdout, as a table or (-o json) as JSON; errors and
// progress go to stderr.
//
// Main is the entry point; tests call it in-process with their own
// writers.
package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"slices"
	"sort"
	"strings"
	"syscall"

	suggestpkg "github.com/kopernik-io/kopernik/internal/suggest"
)

// External is a command implemented outside this package (the broker's
// `standalone`, `verify`): Main lists it in help and hands it its
// arguments unparsed. Run returns the exit status.
type External struct {
	Name    string
	Summary string
	Run     func(args []string, stdout, stderr io.Writer) int
}

// command is one node of the command tree: a group (subs) or a leaf (run).
type command struct {
	name    string
	summary string
	// args is the positional-argument synopsis shown in usage ("TOPIC").
	args string
	// long is extra usage text (examples, what the command does).
	long string
	// flags registers the command's own flags; globals are added for it.
	flags func(fs *flag.FlagSet)
	// run executes the leaf with its positional arguments.
	run  func(e *env, args []string) error
	subs []*command
}

// usageError marks bad usage: exit status 2, and the usage is printed.
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

func usagef(format string, a ...any) error { return usageError{fmt.Sprintf(format, a...)} }

// Main runs the kopernik command line with args (os.Args[1:]) and returns
// the exit status.
func Main(args []string, stdout, stderr io.Writer, external ...External) int {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	return Run(ctx, args, os.Stdin, stdout, stderr, external...)
}

// Run is Main with a context: cancelling it stops a running command (a
// consume, a perf run) as Ctrl-C does.
func Run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer, external ...External) int {
	root := commands()
	e := &env{ctx: ctx, stdin: stdin, stdout: stdout, stderr: stderr}
	fs := newFlagSet("kopernik")
	e.globals.register(fs)
	showVersion := fs.Bool("version", false, "print the version and exit")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			printRootUsage(stdout, root, external)
			return 0
		}
		fmt.Fprintf(stderr, "kopernik: %v\n", err)
		printRootUsage(stderr, root, external)
		return 2
	}
	if *showVersion {
		fmt.Fprintln(stdout, Version())
		return 0
	}
	rest := fs.Args()
	if len(rest) == 0 {
		printRootUsage(stderr, root, external)
		return 2
	}
	name := rest[0]
	for _, x := range external {
		if x.Name == name {
			return x.Run(rest[1:], stdout, stderr)
		}
	}
	switch name {
	case "help":
		return help(e, root, external, rest[1:])
	case "version":
		fmt.Fprintln(stdout, Version())
		return 0
	}
	cmd := root.sub(name)
	if cmd == nil {
		fmt.Fprintf(stderr, "kopernik: unknown command %q%s\n", name, suggest(name, root.names(external)))
		printRootUsage(stderr, root, external)
		return 2
	}
	return dispatch(e, []string{"kopernik", name}, cmd, rest[1:])
}

// dispatch walks down groups to a leaf, parses its flags and runs it.
func dispatch(e *env, path []string, cmd *command, args []string) int {
	if cmd.subs != nil {
		if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
			w := e.stderr
			code := 2
			if len(args) > 0 {
				w, code = e.stdout, 0
			}
			printGroupUsage(w, path, cmd)
			return code
		}
		sub := cmd.sub(args[0])
		if sub == nil {
			fmt.Fprintf(e.stderr, "%s: unknown command %q%s\n", strings.Join(path, " "), args[0], suggest(args[0], cmd.names(nil)))
			printGroupUsage(e.stderr, path, cmd)
			return 2
		}
		return dispatch(e, append(path, sub.name), sub, args[1:])
	}
	fs := newFlagSet(strings.Join(path, " "))
	e.globals.register(fs)
	if cmd.flags != nil {
		cmd.flags(fs)
	}
	pos, err := parseInterleaved(fs, args)
	if errors.Is(err, flag.ErrHelp) {
		printLeafUsage(e.stdout, path, cmd, fs)
		return 0
	}
	if err == nil {
		err = e.globals.validate()
	}
	if err == nil {
		// Every leaf takes exactly the positional arguments its synopsis names.
		err = need(pos, strings.Fields(cmd.args)...)
	}
	if err == nil {
		err = cmd.run(e, pos)
		e.close() // the clients the command made
	}
	var ue usageError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &ue) || isFlagError(err):
		fmt.Fprintf(e.stderr, "%s: %v\n", strings.Join(path, " "), err)
		printLeafUsage(e.stderr, path, cmd, fs)
		return 2
	default:
		fmt.Fprintf(e.stderr, "%s: %v\n", strings.Join(path, " "), err)
		return 1
	}
}

// flagError wraps what package flag reports (unknown flag, bad value).
type flagError struct{ err error }

func (e flagError) Error() string { return e.err.Error() }

func isFlagError(err error) bool {
	var fe flagError
	return errors.As(err, &fe)
}

func newFlagSet(name string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard) // usage is printed by us, to the right writer
	fs.Usage = func() {}
	return fs
}

// parseInterleaved parses flags anywhere among the positional arguments
// (`topics create t1 -p 3` as well as `topics create -p 3 t1`); "--" ends
// the flags.
func parseInterleaved(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, err
			}
			return nil, flagError{err}
		}
		rest := fs.Args()
		if len(rest) == 0 {
			return pos, nil
		}
		// fs.Parse stops at the first non-flag, or after "--".
		consumed := len(args) - len(rest)
		if consumed > 0 && args[consumed-1] == "--" {
			return append(pos, rest...), nil
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
}

func (c *command) sub(name string) *command {
	for _, s := range c.subs {
		if s.name == name {
			return s
		}
	}
	return nil
}

func (c *command) names(external []External) []string {
	var out []string
	for _, s := range c.subs {
		out = append(out, s.name)
	}
	for _, x := range external {
		out = append(out, x.Name)
	}
	return out
}

// suggest names the closest known command: the one the name is a prefix
// of, else the nearest within two edits.
func suggest(name string, known []string) string {
	if best := suggestpkg.Closest(name, known, 2); best != "" {
		return fmt.Sprintf(" (did you mean %q?)", best)
	}
	return ""
}

func help(e *env, root *command, external []External, args []string) int {
	if len(args) == 0 {
		printRootUsage(e.stdout, root, external)
		return 0
	}
	for _, x := range external {
		if x.Name == args[0] {
			return x.Run([]string{"-h"}, e.stdout, e.stdout)
		}
	}
	path := []string{"kopernik"}
	cmd := root
	for _, a := range args {
		sub := cmd.sub(a)
		if sub == nil {
			fmt.Fprintf(e.stderr, "kopernik help: unknown command %q\n", strings.Join(append(path[1:], a), " "))
			return 2
		}
		cmd, path = sub, append(path, a)
	}
	if cmd.subs != nil {
		printGroupUsage(e.stdout, path, cmd)
		return 0
	}
	fs := newFlagSet(strings.Join(path, " "))
	e.globals.register(fs)
	if cmd.flags != nil {
		cmd.flags(fs)
	}
	printLeafUsage(e.stdout, path, cmd, fs)
	return 0
}

func printRootUsage(w io.Writer, root *command, external []External) {
	fmt.Fprint(w, `kopernik: Kafka-on-Pulsar broker and its operator tools.

Usage:
  kopernik [global flags] COMMAND [SUBCOMMAND] [flags] [args]

Commands:
`)
	type entry struct{ name, summary string }
	var all []entry
	for _, x := range external {
		all = append(all, entry{x.Name, x.Summary})
	}
	for _, s := range root.subs {
		all = append(all, entry{s.name, s.summary})
	}
	all = append(all, entry{"help", "show help for a command: kopernik help topics create"},
		entry{"version", "print the version (also --version)"})
	for _, en := range all {
		fmt.Fprintf(w, "  %-14s %s\n", en.name, en.summary)
	}
	fmt.Fprint(w, "\nGlobal flags (accepted before the command or among its flags):\n")
	fs := newFlagSet("kopernik")
	var g globals
	g.register(fs)
	printFlags(w, fs)
	fmt.Fprint(w, `
Exit status: 0 success, 1 the command failed, 2 bad usage.
Run "kopernik COMMAND -h" for a command's flags; docs/cli.md has examples.
`)
}

func printGroupUsage(w io.Writer, path []string, cmd *command) {
	fmt.Fprintf(w, "%s: %s\n\nUsage:\n  %s COMMAND [flags] [args]\n\nCommands:\n", strings.Join(path, " "), cmd.summary, strings.Join(path, " "))
	for _, s := range cmd.subs {
		fmt.Fprintf(w, "  %-18s %s\n", s.name, s.summary)
	}
	if cmd.long != "" {
		fmt.Fprintf(w, "\n%s\n", strings.TrimSpace(cmd.long))
	}
	fmt.Fprintf(w, "\nRun \"%s COMMAND -h\" for a command's flags.\n", strings.Join(path, " "))
}

func printLeafUsage(w io.Writer, path []string, cmd *command, fs *flag.FlagSet) {
	synopsis := strings.Join(path, " ") + " [flags]"
	if cmd.args != "" {
		synopsis += " " + cmd.args
	}
	fmt.Fprintf(w, "%s: %s\n\nUsage:\n  %s\n", strings.Join(path, " "), cmd.summary, synopsis)
	if cmd.long != "" {
		fmt.Fprintf(w, "\n%s\n", strings.TrimSpace(cmd.long))
	}
	own := newFlagSet("")
	fs.VisitAll(func(f *flag.Flag) {
		if !isGlobal(f.Name) {
			own.Var(f.Value, f.Name, f.Usage)
		}
	})
	hasOwn := false
	own.VisitAll(func(*flag.Flag) { hasOwn = true })
	if hasOwn {
		fmt.Fprint(w, "\nFlags:\n")
		printFlags(w, own)
	}
	fmt.Fprint(w, "\nGlobal flags: --url, --kafka, --pulsar, --token, --tls-ca, --tls-cert, --tls-key, --tls-insecure, --kafka-tls, --timeout, -o (see kopernik -h).\n")
}

// printFlags prints flags as "  --name VALUE   usage (default x)", sorted.
func printFlags(w io.Writer, fs *flag.FlagSet) {
	var lines [][2]string
	fs.VisitAll(func(f *flag.Flag) {
		dash := "--"
		if len(f.Name) == 1 {
			dash = "-"
		}
		name, usage := flag.UnquoteUsage(f)
		left := dash + f.Name
		if name != "" {
			left += " " + name
		}
		if f.DefValue != "" && f.DefValue != "false" && f.DefValue != "0" && f.DefValue != "[]" {
			usage += fmt.Sprintf(" (default %s)", f.DefValue)
		}
		lines = append(lines, [2]string{left, usage})
	})
	sort.Slice(lines, func(i, j int) bool {
		return strings.TrimLeft(lines[i][0], "-") < strings.TrimLeft(lines[j][0], "-")
	})
	width := 0
	for _, l := range lines {
		width = max(width, len(l[0]))
	}
	for _, l := range lines {
		fmt.Fprintf(w, "  %-*s  %s\n", width, l[0], l[1])
	}
}

// listFlag is a repeatable string flag (-H k=v -H k2=v2).
type listFlag []string

func (l *listFlag) String() string { return strings.Join(*l, ",") }

func (l *listFlag) Set(v string) error {
	*l = append(*l, v)
	return nil
}

// keyValues parses "k=v" items; what is k=v without = is an error.
func keyValues(items []string, what string) (map[string]string, error) {
	out := map[string]string{}
	for _, it := range items {
		k, v, ok := strings.Cut(it, "=")
		if !ok || k == "" {
			return nil, usagef("%s %q: want KEY=VALUE", what, it)
		}
		out[k] = v
	}
	return out, nil
}

// need checks the count of positional arguments.
func need(args []string, names ...string) error {
	if len(args) < len(names) {
		return usagef("missing %s", strings.Join(names[len(args):], " and "))
	}
	if len(args) > len(names) {
		return usagef("unexpected arguments %v", args[len(names):])
	}
	return nil
}

// oneOf checks an enumerated flag value.
func oneOf(flagName, v string, allowed ...string) error {
	if !slices.Contains(allowed, v) {
		return usagef("--%s %q: want one of %s", flagName, v, strings.Join(allowed, ", "))
	}
	return nil
}
