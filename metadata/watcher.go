package metadata

import "sync"

// watcher buffers events without bound so that writers never block on a slow
// receiver; a goroutine moves them to the receiver's channel in order.
type watcher struct {
	prefix string
	out    chan Event

	done chan struct{} // closed by close; unblocks a pump stuck on a gone receiver

	mu      sync.Mutex
	cond    *sync.Cond
	pending []Event
	closed  bool
}

func newWatcher(prefix string) *watcher {
	w := &watcher{prefix: prefix, out: make(chan Event, 16), done: make(chan struct{})}
	w.cond = sync.NewCond(&w.mu)
	go w.pump()
	return w
}

// push queues ev; safe to call with store locks held.
func (w *watcher) push(ev Event) {
	w.mu.Lock()
	if !w.closed {
		w.pending = append(w.pending, ev)
		w.cond.Signal()
	}
	w.mu.Unlock()
}

func (w *watcher) close() {
	w.mu.Lock()
	if !w.closed {
		w.closed = true
		close(w.done)
	}
	w.cond.Signal()
	w.mu.Unlock()
}

func (w *watcher) pump() {
	defer close(w.out)
	for {
		w.mu.Lock()
		for len(w.pending) == 0 && !w.closed {
			w.cond.Wait()
		}
		if w.closed {
			w.mu.Unlock()
			return
		}
		batch := w.pending
		w.pending = nil
		w.mu.Unlock()
		for _, ev := range batch {
			select {
			case w.out <- ev:
			case <-w.done:
				return
			}
		}
	}
}
