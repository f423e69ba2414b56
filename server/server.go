// Package server is kopernik's composition root: it builds the metadata
// store, the managed-ledger factory, the broker, the enabled protocol
// handlers and the HTTP listener, and shuts them down in order. Tests start
// it in-process with port 0 listeners.
package server

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/kopernik-io/kopernik/admin"
	"github.com/kopernik-io/kopernik/auth"
	"github.com/kopernik-io/kopernik/broker"
	"github.com/kopernik-io/kopernik/broker/ownership"
	"github.com/kopernik-io/kopernik/console"
	"github.com/kopernik-io/kopernik/convert"
	"github.com/kopernik-io/kopernik/datadir"
	"github.com/kopernik-io/kopernik/managedledger"
	"github.com/kopernik-io/kopernik/managedledger/compact"
	"github.com/kopernik-io/kopernik/metadata"
	"github.com/kopernik-io/kopernik/objectstore"
	"github.com/kopernik-io/kopernik/protocol"
	"github.com/kopernik-io/kopernik/segment"
)

// Server is a running standalone broker.
type Server struct {
	cfg     *Config
	log     *slog.Logger
	lock    *os.File
	storage *datadir.Storage
	member  *ownership.Member // nil: standalone
	// internalSecret authenticates requests brokers forward to each
	// other (cluster mode).
	internalSecret string
	broker         *broker.Broker
	reg            *prometheus.Registry
	auth           *auth.Authenticator // nil unless auth-enabled
	authz          *auth.Authorizer    // nil unless auth-enabled and authorization-enabled
	// conns counts connections per client host over every listener
	// (max-connections-per-address).
	conns auth.AddressCounter

	// compactor holds the compacted views (closed after the broker).
	compactor *compact.Compactor

	httpLn   net.Listener
	httpSrv  *http.Server
	console  *console.Console
	httpsLn  net.Listener
	httpsSrv *http.Server

	handlers  []runningHandler
	ready     atomic.Bool
	started   bool // Start succeeded; set before Start returns
	closeOnce sync.Once
	closeErr  error
}

type runningHandler struct {
	name  string
	h     protocol.Handler
	ln    net.Listener
	tlsLn net.Listener // nil without <name>-tls-addr
	done  chan error
}

// Start opens the data directory and starts every enabled listener. On
// error everything already started is closed again.
func Start(ctx context.Context, cfg *Config, log *slog.Logger) (_ *Server, err error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("invalid configuration: %w", err)
	}
	if log == nil {
		log = slog.Default()
	}
	s := &Server{cfg: cfg, log: log, reg: prometheus.NewRegistry()}
	defer func() {
		if err != nil {
			s.Close(context.Background())
		}
	}()
	s.reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))

	if err := os.MkdirAll(cfg.DataDir, 0o755); err != nil {
		return nil, startErr("data dir "+cfg.DataDir, "set --data-dir (KOPERNIK_DATA_DIR) to a directory this user may create and write", err)
	}
	if s.lock, err = lockDir(cfg.DataDir); err != nil {
		return nil, startErr("data dir "+cfg.DataDir, "another kopernik uses this directory: stop it, or choose another with --data-dir", err)
	}
	obs := newStorageObserver()
	s.reg.MustRegister(obs.append, obs.sync)
	var offloader objectstore.Store
	if cfg.OffloadDriver != "" {
		if offloader, err = objectstore.NewS3(ctx, objectstore.S3Options{
			Endpoint: cfg.OffloadS3Endpoint, Bucket: cfg.OffloadS3Bucket, Region: cfg.OffloadS3Region,
		}); err != nil {
			return nil, startErr("tiered storage", "check --offload-s3-endpoint, --offload-s3-bucket, --offload-s3-region and the AWS credentials", err)
		}
		log.Info("tiered storage on", "driver", cfg.OffloadDriver, "endpoint", cfg.OffloadS3Endpoint, "bucket", cfg.OffloadS3Bucket)
	}
	if s.storage, err = datadir.OpenWith(cfg.DataDir, log, datadir.Options{
		CacheBytes: cfg.cacheBytes(), StorageRetryInterval: cfg.StorageRetryInterval, FS: cfg.LedgerFS,
		Offload: offloader, OffloadInterval: cfg.OffloadInterval,
		MetadataURL: cfg.MetadataStoreURL, Observer: obs,
		PerLedgerSync: !cfg.Journal, CheckpointInterval: cfg.JournalCheckpointInterval,
		MaxOpenFiles: cfg.MaxOpenFiles,
		ObjectLog:    s.objectLog(offloader),
	}); err != nil {
		fix := "check the data dir (--data-dir) and its files"
		if cfg.MetadataStoreURL != "" {
			fix = "check that the metadata store of --metadata-store-url answers, and the data dir (--data-dir)"
		}
		return nil, startErr("storage", fix, err)
	}
	syncCfg := managedledger.Config{Sync: managedledger.SyncAlways}
	if cfg.Fsync == "interval" {
		syncCfg = managedledger.Config{Sync: managedledger.SyncInterval, SyncInterval: cfg.FsyncInterval}
	}
	// A cluster broker registers its addresses before it serves, so its
	// listeners are bound first.
	prebound := map[string]net.Listener{}
	defer func() {
		for _, ln := range prebound {
			ln.Close() // left over: startup failed before a handler took it
		}
	}()
	if cfg.ClusterName != "" {
		for _, name := range cfg.Protocols {
			ln, err := s.listen(cfg.Addrs[name])
			if err != nil {
				return nil, listenErr(name+" listener", name+"-addr", cfg.Addrs[name], err)
			}
			prebound[name] = ln
		}
		ln, err := s.listen(cfg.HTTPAddr)
		if err != nil {
			return nil, listenErr("http listener", "http-addr", cfg.HTTPAddr, err)
		}
		prebound["http"] = ln
		if s.member, err = s.joinCluster(ctx, prebound); err != nil {
			return nil, startErr("cluster", "check --cluster-name, --metadata-store-url (etcd) and --broker-name", err)
		}
	}
	compactFS := cfg.LedgerFS
	if compactFS == nil {
		compactFS = segment.OSFS{}
	}
	if s.compactor, err = compact.New(compact.Options{
		Dir: filepath.Join(cfg.DataDir, "compacted"), FS: compactFS, Store: s.storage.Store,
		Codec: convert.CompactionCodec{}, Logger: log.With("component", "compaction"),
	}); err != nil {
		return nil, err
	}
	s.broker, err = broker.New(ctx, broker.Options{
		Compactor: s.compactor, CompactionInterval: cfg.CompactionInterval,
		Store: s.storage.Store, Ledgers: s.storage.Ledgers, Defaults: cfg.Policies(), Sync: syncCfg,
		Logger:       log.With("component", "broker"),
		Transactions: broker.TxnOptions{MaxTimeout: cfg.TransactionMaxTimeout, IDExpiration: cfg.TransactionalIDExpiration, CheckInterval: cfg.TransactionCheckInterval},
		Cluster:      s.member,
	})
	if err != nil {
		return nil, err
	}

	s.registerStorageMetrics()

	tlsCfg, err := cfg.tlsConfig()
	if err != nil {
		return nil, startErr("TLS", "check --tls-cert-file, --tls-key-file and --tls-client-ca-file: readable PEM files, the key matching the certificate", err)
	}
	if s.auth, err = cfg.authenticator(s.broker, log); err != nil {
		return nil, startErr("authentication", "check --auth-token-secret-key-file or --auth-token-public-key-file", err)
	}
	s.authz = cfg.authorizer(s.broker)
	for _, name := range cfg.Protocols {
		reg, err := protocol.Lookup(name)
		if err != nil {
			return nil, err
		}
		env := protocol.Env{
			Broker:  s.broker,
			Logger:  log, // handlers tag their own lines with protocol=<name>
			Metrics: prometheus.WrapRegistererWith(prometheus.Labels{"protocol": name}, s.reg),
			Auth:    s.auth,
			Authz:   s.authz,
			DataDir: cfg.DataDir,
		}
		h, err := reg.New(env, cfg.Handlers[name])
		if err != nil {
			return nil, fmt.Errorf("%s handler: %w", name, err)
		}
		ln := prebound[name]
		delete(prebound, name)
		if ln == nil {
			if ln, err = s.listen(cfg.Addrs[name]); err != nil {
				return nil, listenErr(name+" listener", name+"-addr", cfg.Addrs[name], err)
			}
		}
		rh := runningHandler{name: name, h: h, ln: ln, done: make(chan error, 2)}
		if a := cfg.TLSAddrs[name]; a != "" {
			tln, err := s.listen(a)
			if err != nil {
				ln.Close()
				return nil, listenErr(name+" TLS listener", name+"-tls-addr", a, err)
			}
			rh.tlsLn = protocol.NewTLSListener(tln, tlsCfg)
		}
		s.handlers = append(s.handlers, rh)
		go func() { rh.done <- h.Serve(context.WithoutCancel(ctx), ln) }()
		logListening(log, name, h, ln)
		if rh.tlsLn != nil {
			go func() { rh.done <- h.Serve(context.WithoutCancel(ctx), rh.tlsLn) }()
			logListening(log, name, h, rh.tlsLn, "tls", true)
		}
	}

	if s.httpLn = prebound["http"]; s.httpLn != nil {
		delete(prebound, "http")
	} else if s.httpLn, err = s.listen(cfg.HTTPAddr); err != nil {
		return nil, listenErr("http listener", "http-addr", cfg.HTTPAddr, err)
	}
	if cfg.HTTPSAddr != "" {
		ln, err := s.listen(cfg.HTTPSAddr)
		if err != nil {
			return nil, listenErr("https listener", "https-addr", cfg.HTTPSAddr, err)
		}
		s.httpsLn = tls.NewListener(ln, tlsCfg)
	}
	handler, err := s.httpHandler()
	if err != nil {
		return nil, err
	}
	s.httpSrv = &http.Server{Handler: handler, ReadHeaderTimeout: 10 * time.Second}
	if s.httpsLn != nil {
		s.httpsSrv = &http.Server{Handler: s.httpSrv.Handler, ReadHeaderTimeout: 10 * time.Second}
	}
	go s.httpSrv.Serve(s.httpLn)
	log.Info("listening", "protocol", "http", "addr", s.httpLn.Addr().String())
	if s.httpsSrv != nil {
		go s.httpsSrv.Serve(s.httpsLn)
		log.Info("listening", "protocol", "https", "addr", s.httpsLn.Addr().String())
	}
	s.ready.Store(true)
	s.started = true
	log.Info("kopernik started", "data-dir", cfg.DataDir, "cluster-id", s.broker.ClusterID(), "fsync", cfg.Fsync)
	return s, nil
}

// logListening logs a handler's listener once, with the address clients
// are told when the handler advertises one.
func logListening(log *slog.Logger, name string, h protocol.Handler, ln net.Listener, attrs ...any) {
	attrs = append([]any{"protocol", name, "addr", ln.Addr().String()}, attrs...)
	if adv, ok := h.(protocol.Advertiser); ok {
		attrs = append(attrs, "advertised", adv.AdvertisedAddr(ln))
	}
	log.Info("listening", attrs...)
}

// listen opens a TCP listener on addr, bounded by max-connections-per-address.
func (s *Server) listen(addr string) (net.Listener, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	return limitConnections(ln, &s.conns, s.cfg.MaxConnectionsPerAddress, s.log), nil
}

// Addr returns the actual address of the listener for protocol name
// ("kafka", "pulsar", "http"), of its TLS listener ("kafka-tls",
// "pulsar-tls", "https"), or nil.
func (s *Server) Addr(name string) net.Addr {
	switch name {
	case "http":
		if s.httpLn == nil {
			return nil
		}
		return s.httpLn.Addr()
	case "https":
		if s.httpsLn == nil {
			return nil
		}
		return s.httpsLn.Addr()
	}
	for _, h := range s.handlers {
		if h.name == name {
			return h.ln.Addr()
		}
		if h.name+"-tls" == name && h.tlsLn != nil {
			return h.tlsLn.Addr()
		}
	}
	return nil
}

// Broker returns the broker service.
func (s *Server) Broker() *broker.Broker { return s.broker }

// Close shuts down in order: health turns unready; protocol handlers stop
// accepting and finish in-flight requests; the HTTP server stops; the broker
// closes its partitions; the ledger factory flushes, fsyncs and closes its
// files; the metadata store closes; the data-dir lock is released. ctx
// bounds the graceful part.
func (s *Server) Close(ctx context.Context) error {
	s.closeOnce.Do(func() {
		s.ready.Store(false)
		var errs []error
		for _, h := range s.handlers {
			if err := h.h.Close(ctx); err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", h.name, err))
			}
			h.ln.Close()
			if h.tlsLn != nil {
				h.tlsLn.Close()
			}
		}
		for _, srv := range []*http.Server{s.httpSrv, s.httpsSrv} {
			if srv != nil {
				if err := srv.Shutdown(ctx); err != nil {
					srv.Close()
				}
			}
		}
		if s.console != nil {
			s.console.Close()
		}
		if s.broker != nil {
			errs = append(errs, s.broker.Close())
		}
		if s.member != nil {
			// Revoking the lease hands this broker's partitions over at once,
			// instead of after the lease TTL.
			errs = append(errs, s.member.Leave(ctx))
		}
		if s.compactor != nil {
			errs = append(errs, s.compactor.Close())
		}
		if s.storage != nil {
			errs = append(errs, s.storage.Close())
		}
		if s.lock != nil {
			s.lock.Close()
		}
		s.closeErr = errors.Join(errs...)
		if s.started {
			// Not after a failed Start: the caller reports the failure,
			// and "stopped" before it would read as the cause.
			s.log.Info("kopernik stopped")
		}
	})
	return s.closeErr
}

func (s *Server) httpHandler() (http.Handler, error) {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(s.reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("/metrics", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Allow", http.MethodGet)
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
	})
	if s.cfg.DebugPprof {
		mux.HandleFunc("GET /debug/pprof/", pprof.Index)
		mux.HandleFunc("GET /debug/pprof/cmdline", pprof.Cmdline)
		mux.HandleFunc("GET /debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("GET /debug/pprof/symbol", pprof.Symbol)
		mux.HandleFunc("GET /debug/pprof/trace", pprof.Trace)
	}
	opts := admin.Options{HTTPURL: "http://" + s.httpLn.Addr().String(), ClusterName: clusterName, Logger: s.log.With("component", "admin")}
	// HTTP lookups answer what the Pulsar handler's LOOKUP answers.
	for _, rh := range s.handlers {
		if rh.name != "pulsar" {
			continue
		}
		addr := func(ln net.Listener) string { return ln.Addr().String() }
		if adv, ok := rh.h.(protocol.Advertiser); ok {
			addr = adv.AdvertisedAddr
		}
		opts.BrokerURL = "pulsar://" + addr(rh.ln)
		if rh.tlsLn != nil {
			opts.BrokerURLTLS = "pulsar+ssl://" + addr(rh.tlsLn)
		}
	}
	if a := s.Addr("https"); a != nil {
		opts.HTTPURLTLS = "https://" + a.String()
	}
	if s.auth != nil {
		opts.Auth, opts.Authz, opts.SuperUserRoles, opts.SCRAM = s.auth, s.authz, s.cfg.SuperUserRoles, s.auth.SCRAM
	}
	opts.HealthChecks = s.healthChecks()
	mux.Handle("/", admin.New(s.broker, opts))
	if s.member != nil {
		// Cluster mode: requests brokers forward to each other.
		for _, rh := range s.handlers {
			if ih, ok := rh.h.(interface {
				InternalHTTP() (string, http.Handler)
			}); ok {
				pattern, h := ih.InternalHTTP()
				mux.Handle(pattern, s.internalOnly(h))
			}
		}
	}

	// The web console at / and /console/..., with the admin API's
	// authentication: with auth-enabled superusers, and with
	// authorization-enabled tenant admins (limited to their tenants).
	copts := console.Options{Logger: s.log.With("component", "console"), Connections: s.connections}
	if s.auth != nil {
		copts.Auth = s.auth
		copts.IsSuperUser = func(p auth.Principal) bool {
			if s.authz != nil {
				return s.authz.IsSuperUser(p)
			}
			return len(s.cfg.SuperUserRoles) == 0 || slices.Contains(s.cfg.SuperUserRoles, p.Role)
		}
		if s.authz != nil {
			copts.IsTenantAdmin = s.authz.IsTenantAdmin
		}
	}
	var err error
	if s.console, err = console.New(s.broker, copts); err != nil {
		return nil, fmt.Errorf("console: %w", err)
	}
	mux.Handle("GET /{$}", s.console)
	mux.Handle("/console/", s.console)
	return mux, nil
}

// connections reads the handlers' kopernik_connections gauges, by protocol
// (the console's overview): one source of truth with /metrics.
func (s *Server) connections() map[string]int {
	mfs, err := s.reg.Gather()
	if err != nil {
		return nil
	}
	out := map[string]int{}
	for _, mf := range mfs {
		if mf.GetName() != "kopernik_connections" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "protocol" {
					out[l.GetValue()] += int(m.GetGauge().GetValue())
				}
			}
		}
	}
	return out
}

// clusterName is the one cluster a standalone broker reports (Pulsar's
// standalone cluster name): admin API and metrics' cluster label.
const clusterName = "standalone"

// MetadataHealthy reports whether the metadata store answers: nil for the
// embedded stores, a quorum read for etcd (bounded by ctx, 2s without a
// deadline). Health and readiness endpoints call it.
func (s *Server) MetadataHealthy(ctx context.Context) error {
	h, ok := s.storage.Store.(metadata.HealthChecker)
	if !ok {
		return nil
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, 2*time.Second)
		defer cancel()
	}
	return h.Healthy(ctx)
}

// registerStorageMetrics exports the partitions failed by storage errors,
// the failure and recovery counts of all ledgers, the bytes on disk, and
// the broker's topic statistics (metrics.go).
func (s *Server) registerStorageMetrics() {
	s.reg.MustRegister(
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "kopernik_metadata_store_up",
			Help: "1 while the metadata store answers (etcd: a quorum read within 1s; embedded stores: always), else 0.",
		}, func() float64 {
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			defer cancel()
			if s.MetadataHealthy(ctx) != nil {
				return 0
			}
			return 1
		}),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "kopernik_storage_failed_partitions",
			Help: "Loaded partitions whose log refuses appends after a failed write or fsync (e.g. a full disk).",
		}, func() float64 { return float64(len(s.broker.StorageFailures())) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "kopernik_storage_failures_total",
			Help: "Ledger storage failures (a failed write, fsync or ledger creation) since start.",
		}, func() float64 { f, _ := s.storage.Ledgers.StorageCounts(); return float64(f) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "kopernik_storage_recoveries_total",
			Help: "Ledgers recovered by themselves from a storage failure since start.",
		}, func() float64 { _, r := s.storage.Ledgers.StorageCounts(); return float64(r) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "kopernik_storage_open_files",
			Help: "Descriptors open for partitions' and the journal's files (bounded by max-open-files).",
		}, func() float64 { st, _ := s.storage.Ledgers.OpenFiles(); return float64(st.Open) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "kopernik_storage_file_evictions_total",
			Help: "Idle files closed to stay within max-open-files (reopened on their next use).",
		}, func() float64 { st, _ := s.storage.Ledgers.OpenFiles(); return float64(st.Evictions) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "kopernik_storage_file_eviction_syncs_total",
			Help: "Evicted files that held unsynced data and were fdatasynced before closing.",
		}, func() float64 { st, _ := s.storage.Ledgers.OpenFiles(); return float64(st.EvictionSyncs) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "kopernik_storage_disk_bytes",
			Help: "Bytes of the data directory's files (ledgers, indexes, preallocated space, metadata).",
		}, func() float64 { return dirBytes(s.cfg.DataDir) }),
		newBrokerCollector(s.broker, clusterName, s.cfg.ExposeTopicLevelMetrics),
	)
}

// lockDir takes an exclusive advisory lock on dataDir/LOCK so that two
// brokers never share a data directory.
func lockDir(dir string) (*os.File, error) {
	f, err := os.OpenFile(filepath.Join(dir, "LOCK"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, fmt.Errorf("data dir lock: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		return nil, fmt.Errorf("data dir %s is in use by another kopernik process: %w", dir, err)
	}
	return f, nil
}
