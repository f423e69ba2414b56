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
	"strconv"
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
			Run: func(args []string, _, stderr io.Writer) int { return standalone(args, stderr) }},
		cli.External{Name: "verify", Summary: "check a live broker for lost, duplicated or skipped records", Run: verifyCmd})
}

func standalone(args []string, stderr io.Writer) int {
	fs := flag.NewFlagSet("standalone", flag.ContinueOnError)
	fs.SetOutput(stderr)
	configFile := fs.String("config", "", "YAML configuration file (same keys as the flags, and more)")
	defaults := server.DefaultConfig()
	flagKeys := map[string]string{
		"data-dir":           defaults.DataDir,
		"metadata-store-url": defaults.MetadataStoreURL,
		"http-addr":          defaults.HTTPAddr,
		"protocols":          strings.Join(defaults.Protocols, ","),
		"fsync":              defaults.Fsync,
		"log-level":          defaults.LogLevel,
	}
	for name, addr := range defaults.Addrs {
		flagKeys[name+"-addr"] = addr
		flagKeys[name+"-tls-addr"] = "" // off
	}
	// TLS and authentication (docs/security.md); all off by default.
	for _, key := range []string{"https-addr", "tls-cert-file", "tls-key-file", "tls-client-ca-file",
		"auth-token-secret-key-file", "auth-token-public-key-file", "anonymous-role", "superuser-roles"} {
		flagKeys[key] = ""
	}
	flagKeys["auth-enabled"] = "false"
	// Tiered storage (docs/storage.md); off without offload-driver.
	for _, key := range []string{"offload-driver", "offload-s3-endpoint", "offload-s3-bucket", "offload-s3-region"} {
		flagKeys[key] = ""
	}
	flagKeys["offload-threshold-bytes"] = strconv.FormatInt(defaults.OffloadThresholdBytes, 10)
	flagKeys["offload-threshold-seconds"] = strconv.FormatInt(defaults.OffloadThresholdSeconds, 10)
	flagKeys["offload-deletion-lag"] = defaults.OffloadDeletionLag.String()
	flagKeys["offload-read-priority"] = defaults.OffloadReadPriority
	values := map[string]*string{}
	for key, def := range flagKeys {
		values[key] = fs.String(key, def, "setting "+key+" (env "+server.EnvPrefix+strings.ToUpper(strings.ReplaceAll(key, "-", "_"))+")")
	}
	if code, ok := parseArgs(fs, args, stderr); !ok {
		return code
	}
	overrides := map[string]string{}
	fs.Visit(func(f *flag.Flag) {
		if v, ok := values[f.Name]; ok {
			overrides[f.Name] = *v
		}
	})
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
		log.Error("start failed", "err", err)
		return 1
	}
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
