package server

import (
	"context"
	"io/fs"
	"path/filepath"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// hasJournal reports whether a journal directory holding files exists
// under dir.
func hasJournal(t *testing.T, dir string) bool {
	found := false
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() && filepath.Ext(p) == ".jnl" {
			found = true
		}
		return nil
	})
	return found
}

// TestJournalSetting: by default acknowledged produces go through the
// shared journal; journal=false makes each partition fsync its own files,
// with no journal at all. Both acknowledge and keep the records.
func TestJournalSetting(t *testing.T) {
	for _, on := range []bool{true, false} {
		dir := t.TempDir()
		settings := []string{}
		if !on {
			settings = append(settings, "journal", "false")
		}
		s := startStorageServer(t, dir, nil, settings...)
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		cl, err := kgo.NewClient(kgo.SeedBrokers(s.Addr("kafka").String()), kgo.DefaultProduceTopic("journalled"), kgo.AllowAutoTopicCreation())
		if err != nil {
			t.Fatal(err)
		}
		for i := range 10 {
			if err := cl.ProduceSync(ctx, &kgo.Record{Value: []byte{byte(i)}}).FirstErr(); err != nil {
				t.Fatalf("journal=%v: %v", on, err)
			}
		}
		if got := hasJournal(t, dir); got != on {
			t.Fatalf("journal=%v: journal files present = %v", on, got)
		}
		cl.Close()
		cancel()
		s.Close(context.Background())
	}
}
