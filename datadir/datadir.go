// Package datadir defines a broker's data directory, once: the metadata
// store in <dir>/metadata.db (bbolt) and ledger files under <dir>/ledgers.
// The server opens it at start; tests reopen the same directory to prove
// what survives a restart.
package datadir

import (
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"time"

	"github.com/kopernik-io/kopernik/managedledger"
	"github.com/kopernik-io/kopernik/metadata"
	"github.com/kopernik-io/kopernik/segment"
)

// Storage is an opened data directory.
type Storage struct {
	Store   metadata.Store
	Ledgers *managedledger.Factory
}

// Open opens (creating if needed) the data directory dir. An empty dir
// keeps everything in memory, for tests and ephemeral brokers.
func Open(dir string, log *slog.Logger) (*Storage, error) {
	return OpenWith(dir, log, Options{})
}

// Options tune the storage; the zero value is the defaults.
type Options struct {
	// CacheBytes is the ledgers' shared entry cache (see
	// managedledger.FactoryOptions.CacheBytes): 0 the default, < 0 none.
	CacheBytes int64
	// StorageRetryInterval is how soon a ledger failed by a write or fsync
	// error (a full disk) retries recovery (see
	// managedledger.FactoryOptions.StorageRetryInterval): 0 the default.
	StorageRetryInterval time.Duration
	// FS, if set, replaces the operating system's file system for ledger
	// files (tests inject failures with segment.FaultFS); the metadata
	// store still uses the OS.
	FS segment.FS
	// Observer, if set, receives storage latencies (metrics; see
	// managedledger.Observer).
	Observer managedledger.Observer
}

// OpenWith is Open with options.
func OpenWith(dir string, log *slog.Logger, opts Options) (*Storage, error) {
	if log == nil {
		log = slog.Default()
	}
	var (
		store metadata.Store
		err   error
	)
	ledgerDir := ""
	if dir == "" {
		store = metadata.NewMemory()
	} else {
		if store, err = metadata.OpenBolt(filepath.Join(dir, "metadata.db")); err != nil {
			return nil, err
		}
		ledgerDir = filepath.Join(dir, "ledgers")
	}
	f, err := managedledger.NewFactory(managedledger.FactoryOptions{
		Dir: ledgerDir, Store: store, Logger: log.With("component", "managedledger"), CacheBytes: opts.CacheBytes,
		StorageRetryInterval: opts.StorageRetryInterval, FS: opts.FS, Observer: opts.Observer,
	})
	if err != nil {
		store.Close()
		return nil, fmt.Errorf("ledgers: %w", err)
	}
	return &Storage{Store: store, Ledgers: f}, nil
}

// Close closes the ledgers (flush, fsync, close files), then the store.
func (s *Storage) Close() error {
	return errors.Join(s.Ledgers.Close(), s.Store.Close())
}
