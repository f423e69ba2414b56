package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/kopernik-io/kopernik/verify"
)

// verifyCmd runs a Jepsen-style workload against a live broker and checks
// what producers were told against what consumers saw (package verify).
// Exit status: 0 valid, 1 anomalies found, 2 bad usage or no broker.
func verifyCmd(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("verify", flag.ContinueOnError)
	fs.SetOutput(stderr)
	kafkaAddr := fs.String("kafka", "localhost:9092", "Kafka listener of the broker")
	pulsarAddr := fs.String("pulsar", "localhost:6650", "Pulsar listener of the broker")
	httpAddr := fs.String("http", "localhost:8080", "HTTP admin listener (used by --compacted only)")
	topic := fs.String("topic", fmt.Sprintf("verify-%d", time.Now().Unix()), "topic to create and use (use a fresh one)")
	partitions := fs.Int("partitions", 3, "partitions of the topic")
	duration := fs.Duration("duration", 30*time.Second, "how long producers run")
	rate := fs.Int("rate", 1000, "records per second over all producers (0: unlimited)")
	producers := fs.Int("producers", 1, "producers per protocol (Kafka idempotent acks=all; Pulsar deduplicated)")
	consumers := fs.Int("consumers", 1, "consumers per kind (Kafka group member, Kafka assign reader, Pulsar subscription)")
	valueBytes := fs.Int("value-bytes", 512, "values carry up to this many random filler bytes after their id")
	compacted := fs.Bool("compacted", false, "compacted topic: keyed records, compaction through the admin API (--http) before the final read, compacted checks (no key's latest value lost, kept offsets unchanged)")
	keys := fs.Int("keys", 64, "keys of a --compacted workload")
	examples := fs.Int("examples", 10, "examples printed per anomaly class")
	asJSON := fs.Bool("json", false, "print the report as JSON")
	verbose := fs.Bool("v", false, "log progress to stderr")
	if code, ok := parseArgs(fs, args, stderr); !ok {
		return code
	}
	level := slog.LevelWarn
	if *verbose {
		level = slog.LevelInfo
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	start := time.Now()
	h, err := verify.Run(ctx, verify.Config{KafkaAddr: *kafkaAddr, PulsarAddr: *pulsarAddr, Topic: *topic,
		Partitions: *partitions, Duration: *duration, Rate: *rate, ValueBytes: *valueBytes,
		KafkaProducers: *producers, PulsarProducers: *producers, Consumers: *consumers,
		Compacted: *compacted, Keys: *keys, HTTPAddr: *httpAddr,
		Log: slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))})
	if h == nil {
		fmt.Fprintf(stderr, "kopernik verify: %v\n", err)
		return 2
	}
	if err != nil {
		fmt.Fprintf(stderr, "kopernik verify: %v (checking what was recorded)\n", err)
	}
	r := verify.Check(h, verify.Options{Examples: *examples, Compacted: *compacted})
	r.Extra = map[string]string{"duration": time.Since(start).Round(time.Millisecond).String(),
		"command": "kopernik verify " + strings.Join(args, " "), "broker": fmt.Sprintf("kafka %s, pulsar %s, http %s", *kafkaAddr, *pulsarAddr, *httpAddr)}
	if *asJSON {
		r.WriteJSON(stdout)
	} else {
		r.WriteText(stdout)
	}
	if !r.Valid {
		return 1
	}
	return 0
}
