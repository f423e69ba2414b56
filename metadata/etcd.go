package metadata

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"strings"
	"sync"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/namespace"
	"go.uber.org/zap"
	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
)

// EtcdOption tunes OpenEtcd.
type EtcdOption func(*etcdOptions)

type etcdOptions struct {
	prefix      string
	dialTimeout time.Duration
	opTimeout   time.Duration
	logger      *slog.Logger
}

// WithEtcdPrefix keeps every key under prefix in etcd (e.g. "/kopernik"), so
// that several clusters or test cases share one etcd. Paths seen by callers
// do not include it. Default: none, paths are etcd keys as they are.
func WithEtcdPrefix(prefix string) EtcdOption {
	return func(o *etcdOptions) { o.prefix = strings.TrimSuffix(prefix, "/") }
}

// WithEtcdDialTimeout bounds OpenEtcd's first contact with the cluster
// (default 5s).
func WithEtcdDialTimeout(d time.Duration) EtcdOption {
	return func(o *etcdOptions) { o.dialTimeout = d }
}

// WithEtcdOpTimeout bounds a call whose context has no deadline (default
// 30s), so that a caller passing context.Background() gets ErrUnavailable
// instead of blocking forever while etcd is down.
func WithEtcdOpTimeout(d time.Duration) EtcdOption {
	return func(o *etcdOptions) { o.opTimeout = d }
}

// WithEtcdLogger receives the store's own events (watch re-established,
// history compacted). Default: slog.Default().
func WithEtcdLogger(l *slog.Logger) EtcdOption { return func(o *etcdOptions) { o.logger = l } }

// Etcd is a Store over an etcd v3 cluster (any etcd 3.4+), following the
// mapping in the package doc. Durability is etcd's: a write returns after a
// quorum of members has fsynced it to its raft log.
//
// Watches are etcd watches. The client re-establishes a broken watch stream
// (etcd restarted, connection lost) from the last revision it delivered, so
// no event is lost across an outage; when that revision has been compacted
// away the watch delivers one EventReset for its prefix and continues from
// the current revision.
type Etcd struct {
	cli     *clientv3.Client
	kv      clientv3.KV
	watcher clientv3.Watcher
	opts    etcdOptions

	base   context.Context // canceled by Close: ends watches
	cancel context.CancelFunc
	wg     sync.WaitGroup // watch goroutines

	// closeMu is held shared by every operation and exclusively by Close.
	closeMu sync.RWMutex
	closed  bool // guarded by closeMu
}

var _ Store = (*Etcd)(nil)

// OpenEtcd connects to the etcd cluster at endpoints ("http://h1:2379", ...)
// and checks that it answers a linearizable read, so that a broker started
// against an unreachable cluster fails at once with the reason.
func OpenEtcd(endpoints []string, opts ...EtcdOption) (*Etcd, error) {
	o := etcdOptions{dialTimeout: 5 * time.Second, opTimeout: 30 * time.Second, logger: slog.Default()}
	for _, opt := range opts {
		opt(&o)
	}
	if len(endpoints) == 0 {
		return nil, errors.New("metadata: etcd: no endpoints")
	}
	if o.prefix != "" {
		if err := ValidatePath(o.prefix); err != nil {
			return nil, fmt.Errorf("metadata: etcd prefix: %w", err)
		}
	}
	cli, err := clientv3.New(clientv3.Config{
		Endpoints:   endpoints,
		DialTimeout: o.dialTimeout,
		// The client logs every retry of an unreachable endpoint; the
		// store reports what matters (Healthy, watch resets) itself.
		Logger: zap.NewNop(),
		// gRPC's default reconnect backoff grows to 2 minutes: after a
		// long outage the broker would stay unhealthy that long after etcd
		// is back. Retry at least every second instead.
		DialOptions: []grpc.DialOption{grpc.WithConnectParams(grpc.ConnectParams{
			Backoff:           backoff.Config{BaseDelay: 100 * time.Millisecond, Multiplier: 1.6, Jitter: 0.2, MaxDelay: time.Second},
			MinConnectTimeout: time.Second,
		})},
	})
	if err != nil {
		return nil, fmt.Errorf("metadata: etcd %v: %w", endpoints, err)
	}
	s := &Etcd{cli: cli, kv: cli.KV, watcher: cli.Watcher, opts: o}
	if o.prefix != "" {
		s.kv = namespace.NewKV(cli.KV, o.prefix)
		s.watcher = namespace.NewWatcher(cli.Watcher, o.prefix)
	}
	s.base, s.cancel = context.WithCancel(context.Background())
	ctx, cancel := context.WithTimeout(context.Background(), o.dialTimeout)
	defer cancel()
	if _, err := s.kv.Get(ctx, "/", clientv3.WithCountOnly()); err != nil {
		s.cancel()
		cli.Close()
		return nil, fmt.Errorf("%w: etcd %v: %w", ErrUnavailable, endpoints, err)
	}
	return s, nil
}

// begin takes the shared close lock and bounds ctx by the op timeout; the
// caller must call the returned function.
func (s *Etcd) begin(ctx context.Context) (context.Context, func(), error) {
	s.closeMu.RLock()
	if s.closed {
		s.closeMu.RUnlock()
		return nil, nil, ErrClosed
	}
	if _, ok := ctx.Deadline(); ok || s.opts.opTimeout <= 0 {
		return ctx, s.closeMu.RUnlock, nil
	}
	ctx, cancel := context.WithTimeout(ctx, s.opts.opTimeout)
	return ctx, func() { cancel(); s.closeMu.RUnlock() }, nil
}

// fail wraps an etcd call's error: the caller's own cancellation stays as it
// is, anything else (timeout, connection refused, no leader) is ErrUnavailable.
func fail(ctx context.Context, op, path string, err error) error {
	if errors.Is(err, context.Canceled) {
		return err
	}
	return fmt.Errorf("%w: etcd %s %s: %w", ErrUnavailable, op, path, err)
}

func (s *Etcd) Get(ctx context.Context, path string) (Record, error) {
	if err := ValidatePath(path); err != nil {
		return Record{}, err
	}
	ctx, done, err := s.begin(ctx)
	if err != nil {
		return Record{}, err
	}
	defer done()
	resp, err := s.kv.Get(ctx, path)
	if err != nil {
		return Record{}, fail(ctx, "get", path, err)
	}
	if len(resp.Kvs) == 0 {
		return Record{}, fmt.Errorf("%w: %s", ErrNotFound, path)
	}
	kv := resp.Kvs[0]
	return Record{Value: kv.Value, Version: kv.Version}, nil
}

func (s *Etcd) Put(ctx context.Context, path string, value []byte, expectedVersion int64) (int64, error) {
	if err := ValidatePath(path); err != nil {
		return 0, err
	}
	if expectedVersion < AnyVersion {
		return 0, fmt.Errorf("metadata: invalid expected version %d", expectedVersion)
	}
	ctx, done, err := s.begin(ctx)
	if err != nil {
		return 0, err
	}
	defer done()
	val := string(value)
	switch expectedVersion {
	case AnyVersion:
		// The previous record's version tells the new one atomically.
		resp, err := s.kv.Put(ctx, path, val, clientv3.WithPrevKV())
		if err != nil {
			return 0, fail(ctx, "put", path, err)
		}
		if resp.PrevKv == nil {
			return 1, nil
		}
		return resp.PrevKv.Version + 1, nil
	case NotExists:
		resp, err := s.kv.Txn(ctx).
			If(clientv3.Compare(clientv3.CreateRevision(path), "=", 0)).
			Then(clientv3.OpPut(path, val)).
			Commit()
		if err != nil {
			return 0, fail(ctx, "put", path, err)
		}
		if !resp.Succeeded {
			return 0, fmt.Errorf("%w: %s", ErrExists, path)
		}
		return 1, nil
	}
	resp, err := s.kv.Txn(ctx).
		If(clientv3.Compare(clientv3.Version(path), "=", expectedVersion)).
		Then(clientv3.OpPut(path, val)).
		Else(clientv3.OpGet(path, clientv3.WithKeysOnly())).
		Commit()
	if err != nil {
		return 0, fail(ctx, "put", path, err)
	}
	if !resp.Succeeded {
		return 0, versionMismatch(path, resp, expectedVersion)
	}
	return expectedVersion + 1, nil
}

// versionMismatch tells a failed version compare apart with the Get of the
// Else branch: absent or at another version.
func versionMismatch(path string, resp *clientv3.TxnResponse, expected int64) error {
	if len(resp.Responses) == 0 || len(resp.Responses[0].GetResponseRange().Kvs) == 0 {
		return fmt.Errorf("%w: %s", ErrNotFound, path)
	}
	cur := resp.Responses[0].GetResponseRange().Kvs[0].Version
	return fmt.Errorf("%w: %s at version %d, expected %d", ErrBadVersion, path, cur, expected)
}

func (s *Etcd) Delete(ctx context.Context, path string, expectedVersion int64) error {
	if err := ValidatePath(path); err != nil {
		return err
	}
	ctx, done, err := s.begin(ctx)
	if err != nil {
		return err
	}
	defer done()
	if expectedVersion == AnyVersion {
		resp, err := s.kv.Delete(ctx, path)
		if err != nil {
			return fail(ctx, "delete", path, err)
		}
		if resp.Deleted == 0 {
			return fmt.Errorf("%w: %s", ErrNotFound, path)
		}
		return nil
	}
	resp, err := s.kv.Txn(ctx).
		If(clientv3.Compare(clientv3.Version(path), "=", expectedVersion)).
		Then(clientv3.OpDelete(path)).
		Else(clientv3.OpGet(path, clientv3.WithKeysOnly())).
		Commit()
	if err != nil {
		return fail(ctx, "delete", path, err)
	}
	if !resp.Succeeded {
		return versionMismatch(path, resp, expectedVersion)
	}
	return nil
}

// childrenPage is how many keys one range request of Children reads (a
// variable for the paging test).
var childrenPage int64 = 1000

func (s *Etcd) Children(ctx context.Context, path string) ([]string, error) {
	if err := ValidatePath(path); err != nil {
		return nil, err
	}
	ctx, done, err := s.begin(ctx)
	if err != nil {
		return nil, err
	}
	defer done()
	prefix := path + "/"
	if path == "/" {
		prefix = "/"
	}
	end := rangeEnd(prefix)
	// Keys come in byte order, which interleaves a child's subtree with
	// its siblings ("b", "b-c", "b.d", "b/x", "b0"): names are deduplicated.
	// Once a descendant "b/..." is seen, every sibling sorting before it has
	// been seen too, so the rest of b's subtree is skipped by resuming at
	// "b0" ('0' is the byte after '/'). All pages read one revision.
	seen := map[string]struct{}{}
	from := prefix
	var rev int64
	for {
		opts := []clientv3.OpOption{clientv3.WithRange(end), clientv3.WithKeysOnly(), clientv3.WithLimit(childrenPage)}
		if rev != 0 {
			opts = append(opts, clientv3.WithRev(rev))
		}
		resp, err := s.kv.Get(ctx, from, opts...)
		if err != nil {
			return nil, fail(ctx, "children", path, err)
		}
		rev = resp.Header.Revision
		skipped := false
		for _, kv := range resp.Kvs {
			rest := string(kv.Key[len(prefix):])
			i := strings.IndexByte(rest, '/')
			if i < 0 {
				if rest != "" {
					seen[rest] = struct{}{}
				}
				from = string(kv.Key) + "\x00"
				continue
			}
			seen[rest[:i]] = struct{}{}
			from = prefix + rest[:i] + "0"
			skipped = true
			break // the rest of this page may lie in the skipped subtree
		}
		if !skipped && !resp.More {
			break
		}
	}
	out := make([]string, 0, len(seen))
	for name := range seen {
		out = append(out, name)
	}
	sort.Strings(out)
	return out, nil
}

// rangeEnd is the end of the key range holding prefix and everything after
// it that shares its leading bytes but the last: prefix with its last byte
// incremented ("/a/" -> "/a0").
func rangeEnd(prefix string) string {
	b := []byte(prefix)
	b[len(b)-1]++
	return string(b)
}

// Watch is an etcd watch over [prefix, prefix+"0"), filtered to prefix
// and the keys below it. It starts at the revision read when Watch is
// called, so that every write acknowledged after Watch returns is seen.
func (s *Etcd) Watch(ctx context.Context, prefix string) (<-chan Event, error) {
	if err := ValidatePath(prefix); err != nil {
		return nil, err
	}
	rctx, done, err := s.begin(ctx)
	if err != nil {
		return nil, err
	}
	defer done()
	rev, err := s.revision(rctx)
	if err != nil {
		return nil, fail(rctx, "watch", prefix, err)
	}
	w := newWatcher(prefix)
	wctx, cancel := context.WithCancel(ctx)
	stop := context.AfterFunc(s.base, cancel)
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		defer stop()
		defer cancel()
		defer w.close()
		s.watch(wctx, w, rev)
	}()
	return w.out, nil
}

// revision reads the cluster's current revision with a linearizable read.
func (s *Etcd) revision(ctx context.Context) (int64, error) {
	resp, err := s.kv.Get(ctx, "/", clientv3.WithCountOnly())
	if err != nil {
		return 0, err
	}
	return resp.Header.Revision, nil
}

// watch feeds w from etcd, from revision rev+1 on, until ctx is done.
func (s *Etcd) watch(ctx context.Context, w *watcher, rev int64) {
	prefix := w.prefix
	start, end := prefix, rangeEnd(prefix)
	backoff := 100 * time.Millisecond
	for ctx.Err() == nil {
		wch := s.watcher.Watch(ctx, start, clientv3.WithRange(end), clientv3.WithRev(rev+1), clientv3.WithPrevKV())
		compacted := false
		for resp := range wch {
			if resp.CompactRevision != 0 {
				compacted = true
				break
			}
			if resp.Canceled {
				break
			}
			for _, ev := range resp.Events {
				rev = ev.Kv.ModRevision
				p := string(ev.Kv.Key)
				if !under(p, prefix) {
					continue
				}
				switch ev.Type {
				case mvccpb.PUT:
					w.push(Event{Type: EventPut, Path: p, Version: ev.Kv.Version})
				case mvccpb.DELETE:
					var v int64
					if ev.PrevKv != nil {
						v = ev.PrevKv.Version
					}
					w.push(Event{Type: EventDelete, Path: p, Version: v})
				}
			}
			backoff = 100 * time.Millisecond
		}
		if ctx.Err() != nil {
			return
		}
		if compacted {
			// The events since rev are gone: tell the receiver to re-read,
			// then go on from now.
			cur, err := s.revision(ctx)
			if err != nil {
				s.sleep(ctx, &backoff)
				continue
			}
			s.opts.logger.Warn("metadata: etcd watch history compacted; receiver told to re-read", "prefix", prefix, "from", rev+1, "now", cur)
			rev = cur
			w.push(Event{Type: EventReset, Path: prefix})
			continue
		}
		// The stream ended for another reason (the client gave up on a
		// member, leader lost): open it again from the last revision seen.
		s.opts.logger.Info("metadata: etcd watch re-established", "prefix", prefix, "from", rev+1)
		s.sleep(ctx, &backoff)
	}
}

// sleep waits for *backoff (doubling it up to 5s) or until ctx is done.
func (s *Etcd) sleep(ctx context.Context, backoff *time.Duration) {
	t := time.NewTimer(*backoff)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
	*backoff = min(2**backoff, 5*time.Second)
}

// Healthy reports whether the cluster answers a linearizable read (which
// needs a quorum and a leader) within ctx's deadline, or 2s without one.
// The broker's health endpoint and its kopernik_metadata_store_up gauge
// call it.
func (s *Etcd) Healthy(ctx context.Context) error {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, 2*time.Second)
		defer cancel()
	}
	s.closeMu.RLock()
	defer s.closeMu.RUnlock()
	if s.closed {
		return ErrClosed
	}
	if _, err := s.revision(ctx); err != nil {
		return fmt.Errorf("%w: etcd %v: %w", ErrUnavailable, s.cli.Endpoints(), err)
	}
	return nil
}

// Close ends every watch (their channels are closed), waits for them, then
// closes the client. Later calls return ErrClosed.
func (s *Etcd) Close() error {
	s.closeMu.Lock()
	if s.closed {
		s.closeMu.Unlock()
		return nil
	}
	s.closed = true
	s.closeMu.Unlock()
	s.cancel()
	s.wg.Wait()
	return s.cli.Close()
}

var _ HealthChecker = (*Etcd)(nil)
