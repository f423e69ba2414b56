// Package datadir defines a broker's data directory, once: the metadata
// store in <dir>/metadata.db (bbolt) and ledger files under <dir>/ledgers.
// The server opens it at start; tests reopen the same directory to prove
// what survives a restart.
//
// The metadata store can live elsewhere (Pulsar's metadataStoreUrl, here
// setting metadata-store-url, see ParseMetadataURL): in etcd, shared by
// brokers. Ledgers stay in the data directory either way.
package datadir

import (
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"path/filepath"
	"strings"
	"time"

	"github.com/kopernik-io/kopernik/managedledger"
	"github.com/kopernik-io/kopernik/metadata"
	"github.com/kopernik-io/kopernik/objectstore"
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
	// Offload, if set, is tiered storage: the object store sealed ledgers
	// are offloaded to (managedledger.FactoryOptions.Offload).
	Offload objectstore.Store
	// OffloadInterval is the period of the background offload pass
	// (managedledger.FactoryOptions.OffloadInterval): 0 the default.
	OffloadInterval time.Duration
	// Observer, if set, receives storage latencies (metrics; see
	// managedledger.Observer).
	Observer managedledger.Observer
	// PerLedgerSync turns the shared journal off (each ledger fsyncs its
	// own files; managedledger.FactoryOptions.PerLedgerSync).
	PerLedgerSync bool
	// CheckpointInterval is the journal's checkpoint period
	// (managedledger.FactoryOptions.CheckpointInterval): 0 the default.
	CheckpointInterval time.Duration
	// MaxOpenFiles bounds ledger files' descriptors
	// (managedledger.FactoryOptions.MaxOpenFiles): 0 the default.
	MaxOpenFiles int
	// MetadataURL selects the metadata store (see ParseMetadataURL);
	// empty: bbolt in the data directory, memory without one.
	MetadataURL string
	// ObjectLog, if set, is called with the opened metadata store and
	// makes the ledgers cluster ledgers (managedledger.FactoryOptions.ObjectLog).
	ObjectLog func(metadata.Store) (*managedledger.ObjectLogOptions, error)
}

// MetadataURL is a parsed metadata-store-url.
type MetadataURL struct {
	// Kind is "bolt", "etcd" or "memory".
	Kind string
	// Path is the bbolt file ("" for the data directory's metadata.db).
	Path string
	// Endpoints are etcd's client URLs.
	Endpoints []string
}

// ParseMetadataURL parses Pulsar's metadata-store-url forms:
//
//	""                                     bbolt in <data-dir>/metadata.db (the default)
//	bolt:  or  bolt:/path/to/metadata.db   bbolt in that file
//	etcd:http://h1:2379,http://h2:2379     an etcd v3 cluster (a bare h1:2379 means http://h1:2379)
//	memory:                                in memory, lost on exit (tests, demos)
//
// Errors name the problem; the caller adds the setting's name.
func ParseMetadataURL(s string) (MetadataURL, error) {
	if s == "" {
		return MetadataURL{Kind: "bolt"}, nil
	}
	kind, rest, ok := strings.Cut(s, ":")
	if !ok {
		return MetadataURL{}, fmt.Errorf("%q has no scheme: want bolt:<path>, etcd:http://host:port[,...] or memory:", s)
	}
	switch kind {
	case "bolt":
		return MetadataURL{Kind: "bolt", Path: rest}, nil
	case "memory":
		if rest != "" {
			return MetadataURL{}, fmt.Errorf("%q: memory: takes nothing after the colon", s)
		}
		return MetadataURL{Kind: "memory"}, nil
	case "etcd":
		var eps []string
		for _, ep := range strings.Split(rest, ",") {
			ep = strings.TrimSpace(ep)
			if ep == "" {
				continue
			}
			if !strings.Contains(ep, "://") {
				ep = "http://" + ep
			}
			u, err := url.Parse(ep)
			if err != nil {
				return MetadataURL{}, fmt.Errorf("etcd endpoint %q: %w", ep, err)
			}
			if u.Scheme != "http" {
				return MetadataURL{}, fmt.Errorf("etcd endpoint %q: only http:// is supported (no TLS settings for etcd yet)", ep)
			}
			if u.Host == "" || u.Port() == "" || (u.Path != "" && u.Path != "/") || u.RawQuery != "" {
				return MetadataURL{}, fmt.Errorf("etcd endpoint %q: want http://host:port", ep)
			}
			eps = append(eps, u.Scheme+"://"+u.Host)
		}
		if len(eps) == 0 {
			return MetadataURL{}, fmt.Errorf("%q: etcd: needs at least one endpoint (etcd:http://host:2379)", s)
		}
		return MetadataURL{Kind: "etcd", Endpoints: eps}, nil
	}
	return MetadataURL{}, fmt.Errorf("%q: unknown store %q: want bolt, etcd or memory", s, kind)
}

// openStore opens the metadata store that opts select for dir.
func openStore(dir string, opts Options, log *slog.Logger) (metadata.Store, error) {
	u, err := ParseMetadataURL(opts.MetadataURL)
	if err != nil {
		return nil, fmt.Errorf("metadata-store-url: %w", err)
	}
	switch {
	case u.Kind == "etcd":
		return metadata.OpenEtcd(u.Endpoints, metadata.WithEtcdLogger(log.With("component", "metadata")))
	case u.Kind == "memory", u.Kind == "bolt" && u.Path == "" && dir == "":
		return metadata.NewMemory(), nil
	case u.Path != "":
		return metadata.OpenBolt(u.Path)
	}
	return metadata.OpenBolt(filepath.Join(dir, "metadata.db"))
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
	if dir != "" {
		ledgerDir = filepath.Join(dir, "ledgers")
	}
	if store, err = openStore(dir, opts, log); err != nil {
		return nil, err
	}
	var olog *managedledger.ObjectLogOptions
	if opts.ObjectLog != nil {
		if olog, err = opts.ObjectLog(store); err != nil {
			store.Close()
			return nil, err
		}
	}
	f, err := managedledger.NewFactory(managedledger.FactoryOptions{
		ObjectLog: olog, Dir: ledgerDir, Store: store, Logger: log.With("component", "managedledger"), CacheBytes: opts.CacheBytes,
		StorageRetryInterval: opts.StorageRetryInterval, FS: opts.FS, Observer: opts.Observer,
		Offload: opts.Offload, OffloadInterval: opts.OffloadInterval,
		PerLedgerSync: opts.PerLedgerSync, CheckpointInterval: opts.CheckpointInterval,
		MaxOpenFiles: opts.MaxOpenFiles,
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
