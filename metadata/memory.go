package metadata

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"sync"
)

// Memory is an in-process Store. It keeps nothing across restarts; tests and
// ephemeral brokers use it. It honours the full contract otherwise.
type Memory struct {
	done chan struct{} // closed by Close: ends watch goroutines

	mu struct {
		sync.Mutex
		closed   bool
		records  map[string]Record
		watchers map[*watcher]struct{}
	}
}

// NewMemory returns an empty in-memory store.
func NewMemory() *Memory {
	m := &Memory{done: make(chan struct{})}
	m.mu.records = make(map[string]Record)
	m.mu.watchers = make(map[*watcher]struct{})
	return m
}

func (m *Memory) Get(ctx context.Context, path string) (Record, error) {
	if err := ValidatePath(path); err != nil {
		return Record{}, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.mu.closed {
		return Record{}, ErrClosed
	}
	r, ok := m.mu.records[path]
	if !ok {
		return Record{}, fmt.Errorf("%w: %s", ErrNotFound, path)
	}
	r.Value = append([]byte(nil), r.Value...)
	return r, nil
}

func (m *Memory) Put(ctx context.Context, path string, value []byte, expectedVersion int64) (int64, error) {
	if err := ValidatePath(path); err != nil {
		return 0, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.mu.closed {
		return 0, ErrClosed
	}
	cur, ok := m.mu.records[path]
	if err := checkVersion(path, ok, cur.Version, expectedVersion); err != nil {
		return 0, err
	}
	next := Record{Value: append([]byte(nil), value...), Version: cur.Version + 1}
	m.mu.records[path] = next
	m.notifyLocked(Event{Type: EventPut, Path: path, Version: next.Version})
	return next.Version, nil
}

func (m *Memory) Delete(ctx context.Context, path string, expectedVersion int64) error {
	if err := ValidatePath(path); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.mu.closed {
		return ErrClosed
	}
	cur, ok := m.mu.records[path]
	if !ok {
		return fmt.Errorf("%w: %s", ErrNotFound, path)
	}
	if expectedVersion != AnyVersion && expectedVersion != cur.Version {
		return fmt.Errorf("%w: %s at version %d, expected %d", ErrBadVersion, path, cur.Version, expectedVersion)
	}
	delete(m.mu.records, path)
	m.notifyLocked(Event{Type: EventDelete, Path: path, Version: cur.Version})
	return nil
}

func (m *Memory) Children(ctx context.Context, path string) ([]string, error) {
	if err := ValidatePath(path); err != nil {
		return nil, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.mu.closed {
		return nil, ErrClosed
	}
	prefix := path + "/"
	if path == "/" {
		prefix = "/"
	}
	seen := map[string]struct{}{}
	for p := range m.mu.records {
		if !strings.HasPrefix(p, prefix) {
			continue
		}
		rest := p[len(prefix):]
		if i := strings.IndexByte(rest, '/'); i >= 0 {
			rest = rest[:i]
		}
		seen[rest] = struct{}{}
	}
	out := make([]string, 0, len(seen))
	for k := range seen {
		out = append(out, k)
	}
	sort.Strings(out)
	return out, nil
}

func (m *Memory) Watch(ctx context.Context, prefix string) (<-chan Event, error) {
	if err := ValidatePath(prefix); err != nil {
		return nil, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.mu.closed {
		return nil, ErrClosed
	}
	w := newWatcher(prefix)
	m.mu.watchers[w] = struct{}{}
	go func() {
		select {
		case <-ctx.Done():
		case <-m.done:
		}
		m.mu.Lock()
		delete(m.mu.watchers, w)
		m.mu.Unlock()
		w.close()
	}()
	return w.out, nil
}

func (m *Memory) Close() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.mu.closed {
		return nil
	}
	m.mu.closed = true
	close(m.done)
	for w := range m.mu.watchers {
		w.close()
	}
	m.mu.watchers = nil
	return nil
}

func (m *Memory) notifyLocked(ev Event) {
	for w := range m.mu.watchers {
		if under(ev.Path, w.prefix) {
			w.push(ev)
		}
	}
}

// checkVersion applies Put's version rules.
func checkVersion(path string, exists bool, current, expected int64) error {
	switch {
	case expected == AnyVersion:
		return nil
	case expected == NotExists:
		if exists {
			return fmt.Errorf("%w: %s", ErrExists, path)
		}
		return nil
	case !exists:
		return fmt.Errorf("%w: %s", ErrNotFound, path)
	case current != expected:
		return fmt.Errorf("%w: %s at version %d, expected %d", ErrBadVersion, path, current, expected)
	}
	return nil
}
