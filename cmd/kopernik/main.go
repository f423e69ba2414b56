// Command kopernik runs the kopernik broker and its operator tools.
//
//	kopernik standalone [flags]   run a single-node broker (see -h)
//	kopernik verify [flags]       check a live broker with a Jepsen-style workload (see -h)
//	kopernik help                 every other command: topics, groups, produce, perf, ... (package cli)
//	kopernik version              print the version and commit (also --version)
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/kopernik-io/kopernik/cli"
	"github.com/kopernik-io/kopernik/server"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// run is the whole command line: the broker's own commands here, the
// operator tools in package cli.
func run(args []string, stdout, stderr io.Writer) int {
	return cli.Main(args, stdout, stderr,
		cli.External{Name: "standalone", Summary: "run a single-node broker (Kafka :9092, Pulsar :6650, HTTP :8080)",
			Run: standalone},
		cli.External{Name: "verify", Summary: "check a live broker for lost, duplicated or skipped records", Run: verifyCmd})
}

func standalone(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("standalone", flag.ContinueOnError)
	fs.SetOutput(stderr)
	configFile := fs.String("config", "", "YAML configuration file")
	overrides := map[string]string{}
	server.RegisterFlags(fs, overrides)
	fs.Usage = func() {} // -h is printed below; a bad flag gets a short hint
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			standaloneUsage(stdout)
			return 0
		}
		// The flag package has printed the error.
		if name, ok := strings.CutPrefix(err.Error(), "flag provided but not defined: -"); ok {
			if best := server.SuggestFlag(name); best != "" {
				fmt.Fprintf(stderr, "did you mean --%s?\n", best)
			}
		}
		fmt.Fprintln(stderr, "kopernik standalone -h lists every setting")
		return 2
	}
	if fs.NArg() > 0 {
		hint := "settings are flags: --key value"
		if v := fs.Arg(0); v == "true" || v == "false" {
			hint = "a bool flag takes its value after =, e.g. --auth-enabled=" + v
		}
		fmt.Fprintf(stderr, "kopernik standalone: unexpected arguments %v (%s)\n", fs.Args(), hint)
		return 2
	}
	cfg, err := server.Load(*configFile, os.Environ(), overrides)
	if err != nil {
		fmt.Fprintf(stderr, "kopernik: %v\n", err)
		return 2
	}
	log := newLogger(cfg, stderr)

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	srv, err := server.Start(ctx, cfg, log)
	if err != nil {
		var se *server.StartError
		if errors.As(err, &se) {
			log.Error("start failed", "step", se.Step, "err", se.Err.Error(), "fix", se.Fix)
		} else {
			log.Error("start failed", "err", err.Error())
		}
		return 1
	}
	// Where to connect, once, on stdout: the logs (stderr) keep their format.
	fmt.Fprintf(stdout, "kopernik is ready. Connect to:\n%s", srv.Endpoints())
	<-ctx.Done()
	log.Info("shutting down", "timeout", cfg.ShutdownTimeout)
	shutdownCtx, cancel := context.WithTimeout(context.Background(), cfg.ShutdownTimeout)
	defer cancel()
	if err := srv.Close(shutdownCtx); err != nil {
		log.Error("shutdown", "err", err)
		return 1
	}
	return 0
}

// standaloneUsage is `kopernik standalone -h`: every setting by section,
// as nats-server prints its options.
func standaloneUsage(w io.Writer) {
	fmt.Fprint(w, `Usage: kopernik standalone [flags]

Runs a single-node broker: Kafka and Pulsar clients on the same topics, the
admin REST API, metrics and the console on the HTTP listener.

Every flag is also a key of the --config YAML file (a protocol's settings in
its section: kafka: {advertised-addr: ...}) and an environment variable
(--data-dir is KOPERNIK_DATA_DIR). Precedence: flags, then environment, then
file, then defaults. Sizes take units (64MiB, 1GB), durations 500ms, 30s, 4h.
Reference: docs/configuration.md.

  --config <file>  YAML configuration file (example: kopernik.yaml)
`)
	server.WriteUsage(w)
}

func newLogger(cfg *server.Config, w io.Writer) *slog.Logger {
	var level slog.Level
	level.UnmarshalText([]byte(cfg.LogLevel))
	opts := &slog.HandlerOptions{Level: level}
	if cfg.LogFormat == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// parseArgs parses a subcommand's flags, which take no positional
// arguments. ok false: stop with exit code code (0 after -h).
func parseArgs(fs *flag.FlagSet, args []string, stderr io.Writer) (code int, ok bool) {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0, false
		}
		return 2, false
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "kopernik %s: unexpected arguments %v\n", fs.Name(), fs.Args())
		return 2, false
	}
	return 0, true
}
