package broker

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/kopernik-io/kopernik/managedledger"
	"github.com/kopernik-io/kopernik/objectstore"
)

// dedupWindow is how many recent batches per producer are remembered, so
// that a retried batch is acknowledged with its original position (Kafka
// keeps five per producer: max.in.flight.requests.per.connection <= 5).
const dedupWindow = 5

// Partition is a loaded topic partition (or non-partitioned topic): the log,
// producers' dedup state and subscriptions. Safe for concurrent use.
//
// Lock order: appendMu, then mu.
type Partition struct {
	b    *Broker
	name TopicName
	ml   *managedledger.ManagedLedger

	// appendMu makes deduplication check + AppendAsync atomic per partition,
	// so sequence checks see appends in log order. It is not held while
	// waiting for durability: group commit keeps working.
	appendMu sync.Mutex
	// txnCheck orders markers against transactional batches checked
	// against the store (cluster mode): batches hold the read side from
	// their check until they have a position, markers the write side
	// until theirs (txncluster.go). Taken before appendMu.
	txnCheck sync.RWMutex

	done chan struct{} // closed by close

	// Statistics counters: accepted, non-duplicate appends (in) and what
	// consumers of either protocol were sent (out: dispatchers and Kafka
	// fetches). The admin stats and /metrics both read these.
	msgIn, bytesIn   atomic.Int64
	inRate           rateMeter
	msgOut, bytesOut atomic.Int64
	outRate          rateMeter

	// compactOnly mirrors policies.CleanupPolicy == CleanupCompact for
	// readers that may not take mu (released, called under the ledger's
	// lock: compaction.go).
	compactOnly atomic.Bool

	mu struct {
		sync.Mutex
		closed    bool
		policies  EffectivePolicies
		producers map[string]*producerState
		subs      map[string]*Subscription
		attached  int
		txns      partitionTxns // see txnlog.go
	}
	attachedProducers registry[ProducerInfo] // attached producers, for statistics
	// prodMu guards prods, the attached producers' names and access modes
	// (producers.go). Lock order: prodMu before mu (Attach) and the
	// statistics registry's lock; nothing else is taken under it.
	prodMu     sync.Mutex
	prods      producerAccess
	compaction compaction // compaction.go
}

// producerState is one producer's dedup state. Written with both appendMu
// and mu held; read with either.
type producerState struct {
	epoch   int64
	lastSeq int64
	recent  []recentBatch // newest last, at most dedupWindow
	// failures is the ledger's failure count when the state was last
	// settled (see settle): a different count means batches in recent may
	// have been lost by a storage failure.
	failures int64
	// resendFrom > 0 after a storage failure lost batches of the
	// producer: it must resend from that sequence on, and a batch after it
	// is refused until it does, so that a batch appended behind the lost
	// ones neither hides their resend as a duplicate nor reorders them.
	resendFrom int64
	blocked    bool
	// inflight are the producer's batches whose outcome is not known yet,
	// in append order, however many (recent keeps only the last few):
	// settle must find the first failed one even when many batches were
	// in flight. Batches known durable are dropped from its front.
	inflight []recentBatch
}

// settle accounts for a storage failure (the ledger's failure count moved
// from st.failures to failures): every batch in flight at the failure
// failed, and the first failed one is where the producer must resend
// from. Durable batches stay remembered, so resending them is a
// duplicate. It may wait for in-flight batches to report their outcome
// (a failure completes them promptly). Called under Partition.appendMu.
func (st *producerState) settle(failures int64) {
	st.failures = failures
	inflight := st.inflight
	st.inflight = nil
	for _, rb := range inflight {
		if _, err := rb.pending.Wait(context.Background()); err != nil {
			// Everything appended after a failed batch failed too.
			st.recent = slices.DeleteFunc(st.recent, func(r recentBatch) bool { return r.seqFirst >= rb.seqFirst })
			st.lostFrom(rb.seqFirst)
			return
		}
	}
}

// track adds a batch just appended to inflight, dropping the batches at
// its front that are known durable.
func (st *producerState) track(rb recentBatch) {
	for len(st.inflight) > 0 && st.inflight[0].pending.Durable() {
		st.inflight[0] = recentBatch{}
		st.inflight = st.inflight[1:]
	}
	st.inflight = append(st.inflight, rb)
}

// lostFrom records that the producer's batch from sequence seq on did not
// make it into the log: it must resend from there (see resendFrom).
func (st *producerState) lostFrom(seq int64) {
	st.lastSeq = min(st.lastSeq, seq-1)
	if !st.blocked || seq < st.resendFrom {
		st.resendFrom = seq
	}
	st.blocked = true
}

// recentBatch is one remembered batch: in flight (pending) or, when rebuilt
// from the log, already durable (entry).
type recentBatch struct {
	seqFirst, seqLast int64
	pending           *managedledger.Pending
	entry             Entry
	// covering, for an old duplicate, are the in-flight batches holding
	// its sequences: once they are durable, the answer is dupErr.
	covering []*managedledger.Pending
	dupErr   error
}

// wait returns the batch's entry once durable.
func (rb recentBatch) wait(ctx context.Context) (Entry, error) {
	if rb.dupErr != nil {
		for _, p := range rb.covering {
			if _, err := p.Wait(ctx); err != nil {
				// The original did not make it: the producer must resend
				// (its next append or registration settles the state).
				return Entry{}, err
			}
		}
		return Entry{}, rb.dupErr
	}
	if rb.pending == nil {
		return rb.entry, nil
	}
	return rb.pending.Wait(ctx)
}

func newPartition(b *Broker, name TopicName, ml *managedledger.ManagedLedger, eff EffectivePolicies) *Partition {
	p := &Partition{b: b, name: name, ml: ml, done: make(chan struct{})}
	p.mu.policies = eff
	p.compactOnly.Store(eff.CleanupPolicy == CleanupCompact)
	p.mu.producers = make(map[string]*producerState)
	p.mu.subs = make(map[string]*Subscription)
	return p
}

// Name is the partition's full name.
func (p *Partition) Name() TopicName { return p.name }

// Policies returns the partition's effective policies.
func (p *Partition) Policies() EffectivePolicies {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.mu.policies
}

func (p *Partition) setPolicies(e EffectivePolicies) {
	p.mu.Lock()
	p.mu.policies = e
	p.compactOnly.Store(e.CleanupPolicy == CleanupCompact)
	p.mu.Unlock()
	p.ml.SetConfig(p.b.ledgerConfig(e))
}

// Attach registers a live producer or consumer (DeleteTopic without force
// refuses while any is attached). Call the returned func once to detach.
func (p *Partition) Attach() (detach func()) {
	p.mu.Lock()
	p.mu.attached++
	p.mu.Unlock()
	var once sync.Once
	return func() {
		once.Do(func() {
			p.mu.Lock()
			p.mu.attached--
			p.mu.Unlock()
		})
	}
}

func (p *Partition) inUse() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.mu.attached > 0
}

func (p *Partition) close() {
	p.mu.Lock()
	wasClosed := p.mu.closed
	p.mu.closed = true
	p.mu.Unlock()
	if !wasClosed {
		close(p.done)
		// The next load then scans only what follows (txnlog.go).
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		if err := p.checkpointTxns(ctx); err != nil {
			p.b.log.Warn("transaction checkpoint on close failed", "topic", p.name.String(), "err", err)
		}
		cancel()
	}
	p.ml.Close()
}

// Done is closed when the partition is closed: unloaded, deleted, or the
// broker shut down. Handlers then close their producers and consumers on it
// (Pulsar clients reconnect and find the partition loaded again).
func (p *Partition) Done() <-chan struct{} { return p.done }

// AppendRequest is one batch to append.
type AppendRequest struct {
	Format       Format
	MsgCount     int32
	MaxEventTime int64 // unix ms; 0 unknown
	Data         []byte
	// Overhead is how many bytes of Data are protocol headers that do not
	// count against MaxMessageBytes (Pulsar limits the payload, not its
	// MessageMetadata; Kafka counts the whole batch: 0).
	Overhead int
	// Producer identifies the producer for deduplication ("" = none).
	// Epoch fences older incarnations of the same producer (a lower epoch
	// gets ErrProducerFenced; a higher one resets the sequence state).
	Producer string
	Epoch    int64
	SeqFirst int64
	SeqLast  int64
	// StrictSequence requires SeqFirst == previous SeqLast+1 (Kafka
	// idempotence); otherwise gaps are allowed (Pulsar dedup).
	StrictSequence bool
	// Transactional marks the batch as part of ProducerID's open
	// transaction on the partition (opened by its first such batch; see
	// txnlog.go). The batch's bytes must say so too (a Kafka batch with
	// the transactional attribute and ProducerID, or a Pulsar payload
	// whose MessageMetadata carries txnid_least_bits = ProducerID; see
	// pulsarTxnProducer), since recovery reads them.
	Transactional bool
	ProducerID    int64
}

// AppendResult reports where a batch landed.
type AppendResult struct {
	Entry Entry // metadata (Data nil): Position, FirstIndex, PublishTime
	// Duplicate: the batch was a retry of one already appended; Entry is the original's.
	Duplicate bool
}

// Append appends one batch and returns once it is durable. Errors:
// ErrMessageTooLarge, ErrDuplicate (a sequence at or below the last one that
// is not among the recent batches), ErrOutOfOrderSequence, ErrProducerFenced.
//
// Deduplication survives a reload of the partition (a broker restart): the
// state of producers is rebuilt from the last entries of the log, which
// record the producer, its epoch and the sequence numbers (see
// encodeProducer).
func (p *Partition) Append(ctx context.Context, req AppendRequest) (AppendResult, error) {
	h, err := p.AppendAsync(req)
	if err != nil {
		return AppendResult{}, err
	}
	return h.Wait(ctx)
}

// PendingAppend is an append whose position is fixed but which may not be
// durable yet.
type PendingAppend struct {
	p   *Partition
	req AppendRequest
	rb  recentBatch
	dup bool
}

// AppendAsync checks and orders one batch like Append but returns before it
// is durable: batches of successive AppendAsync calls land in call order,
// and each Wait returns once its batch is durable. A producer can so keep
// many batches in flight and still answer them in order (Pulsar receipts).
func (p *Partition) AppendAsync(req AppendRequest) (*PendingAppend, error) {
	if limit, n := p.Policies().MaxMessageBytes, len(req.Data)-max(req.Overhead, 0); int64(n) > int64(limit) {
		return nil, fmt.Errorf("%w: %d bytes > %d", ErrMessageTooLarge, n, limit)
	}
	select {
	case <-p.done:
		return nil, fmt.Errorf("%w: partition %s", ErrClosed, p.name)
	default:
	}
	if req.Transactional {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		err := p.ensureTxnRecord(ctx)
		cancel()
		if err != nil {
			return nil, err
		}
	}
	p.appendMu.Lock()
	rb, dup, err := p.appendLocked(req)
	p.appendMu.Unlock()
	if err != nil {
		return nil, err
	}
	return &PendingAppend{p: p, req: req, rb: rb, dup: dup}, nil
}

// Wait blocks until the batch is durable (or failed) and reports where it landed.
func (a *PendingAppend) Wait(ctx context.Context) (AppendResult, error) {
	p, req := a.p, a.req
	e, err := a.rb.wait(ctx)
	if errors.Is(err, ErrDuplicate) {
		// An old duplicate (beyond the remembered batches): answer with
		// the original's position if the log's tail holds it. A bare
		// DUPLICATE_SEQUENCE_NUMBER is taken as success by franz-go with
		// the response's base offset, so a client would believe its
		// records at offset 0 (TestVerifyCompactedUnderKills saw it).
		if orig, ok := p.findBatch(ctx, req); ok {
			return AppendResult{Entry: orig, Duplicate: true}, nil
		}
	}
	if err != nil {
		// A failed write: the producer's next append settles its state
		// (producerState.settle), under the append lock.
		return AppendResult{}, mapLedgerErr(err)
	}
	e.Data = nil
	if !a.dup {
		p.msgIn.Add(int64(req.MsgCount))
		p.bytesIn.Add(int64(len(req.Data)))
	}
	return AppendResult{Entry: e, Duplicate: a.dup}, nil
}

// findBatch looks for the stored batch req duplicates (same producer,
// epoch and sequence range) in the log's last DedupRecoveryEntries
// entries, the span recoverDedup reads; it returns the entry without data.
func (p *Partition) findBatch(ctx context.Context, req AppendRequest) (Entry, bool) {
	st := p.ml.Stats()
	if st.Entries == 0 {
		return Entry{}, false
	}
	perEntry := max(st.Messages/st.Entries, 1)
	want := encodeProducer(req.Producer, req.Epoch)
	var found Entry
	ok := false
	for idx := max(st.NextIndex-perEntry*int64(DedupRecoveryEntries), st.FirstIndex); idx < st.NextIndex; {
		es, err := p.ml.ReadFromIndex(ctx, idx, 256, 4<<20)
		if err != nil || len(es) == 0 {
			break
		}
		for i := range es {
			e := &es[i]
			idx = e.LastIndex() + 1
			if e.Producer == want && e.SeqFirst == req.SeqFirst && e.SeqLast == req.SeqLast {
				found, ok = *e, true
				found.Data = nil
			}
		}
	}
	return found, ok
}

func (p *Partition) appendLocked(req AppendRequest) (recentBatch, bool, error) {
	entry := managedledger.Entry{
		Format: req.Format, MsgCount: req.MsgCount, MaxEventTime: req.MaxEventTime, Data: req.Data,
		Producer: encodeProducer(req.Producer, req.Epoch), SeqFirst: req.SeqFirst, SeqLast: req.SeqLast,
	}
	if req.Producer == "" {
		pending, err := p.ml.AppendAsync(entry)
		if err == nil && req.Transactional {
			p.noteTxnAppend(req.ProducerID, pending.Assigned().FirstIndex)
		}
		return recentBatch{pending: pending}, false, mapLedgerErr(err)
	}
	p.mu.Lock()
	st := p.mu.producers[req.Producer]
	p.mu.Unlock()
	failures := p.ml.Failures()
	if st != nil {
		switch {
		case req.Epoch < st.epoch:
			return recentBatch{}, false, fmt.Errorf("%w: epoch %d < %d", ErrProducerFenced, req.Epoch, st.epoch)
		case req.Epoch > st.epoch:
			st = nil
		}
	}
	if st != nil && st.failures != failures {
		p.mu.Lock() // LastSequence reads producer state under mu
		st.settle(failures)
		p.mu.Unlock()
	}
	if st != nil && st.blocked {
		if req.SeqFirst > st.resendFrom {
			return recentBatch{}, false, fmt.Errorf("%w: %s: batches from sequence %d were lost by a storage failure; resend from there (got %d)",
				ErrStorage, p.name, st.resendFrom, req.SeqFirst)
		}
		st.blocked = false // the resend has begun
	}
	if st != nil {
		for _, rb := range st.recent {
			if rb.seqFirst == req.SeqFirst && rb.seqLast == req.SeqLast {
				return rb, true, nil
			}
		}
		if req.SeqFirst <= st.lastSeq {
			// An old duplicate, beyond the recent batches: its answer
			// waits for the batches holding its sequences that are still
			// in flight. Said at once, a resend reaching us while its
			// original is not yet durable (the client reconnected for
			// another producer's sake) would be acknowledged, and a
			// storage failure would then lose it.
			dup := fmt.Errorf("%w: sequence %d <= last %d", ErrDuplicate, req.SeqFirst, st.lastSeq)
			var covering []*managedledger.Pending
			for _, rb := range st.inflight {
				if rb.seqFirst <= req.SeqLast && !rb.pending.Durable() {
					covering = append(covering, rb.pending)
				}
			}
			if len(covering) == 0 {
				return recentBatch{}, false, dup
			}
			return recentBatch{covering: covering, dupErr: dup}, true, nil
		}
		if req.StrictSequence && req.SeqFirst != st.lastSeq+1 {
			return recentBatch{}, false, fmt.Errorf("%w: sequence %d, expected %d", ErrOutOfOrderSequence, req.SeqFirst, st.lastSeq+1)
		}
	}
	pending, err := p.ml.AppendAsyncAfter(entry, failures)
	if errors.Is(err, managedledger.ErrFailedSince) {
		// A failure and recovery just now: settle and decide again.
		return p.appendLocked(req)
	}
	if errors.Is(err, ErrStorage) {
		// Refused by a failed ledger: like a lost batch, the producer
		// must resend from here before anything after it is taken (it
		// may have later batches in flight that would land once the
		// ledger recovers, ahead of this one).
		p.mu.Lock()
		if st == nil {
			st = &producerState{epoch: req.Epoch, failures: failures, lastSeq: req.SeqFirst - 1}
			p.mu.producers[req.Producer] = st
		}
		st.lostFrom(req.SeqFirst)
		p.mu.Unlock()
	}
	if err != nil {
		return recentBatch{}, false, mapLedgerErr(err)
	}
	if st == nil {
		st = &producerState{epoch: req.Epoch, failures: failures}
	}
	if req.Transactional {
		p.noteTxnAppend(req.ProducerID, pending.Assigned().FirstIndex)
	}
	rb := recentBatch{seqFirst: req.SeqFirst, seqLast: req.SeqLast, pending: pending}
	p.mu.Lock() // LastSequence reads producer state under mu
	st.remember(rb)
	st.track(rb)
	p.mu.producers[req.Producer] = st
	p.mu.Unlock()
	return rb, false, nil
}

func (st *producerState) remember(rb recentBatch) {
	st.lastSeq = rb.seqLast
	st.recent = append(st.recent, rb)
	if len(st.recent) > dedupWindow {
		st.recent = st.recent[1:]
	}
}

// epochMark separates a producer's name from its epoch in Entry.Producer:
// entries store "name" for epoch 0 and "name;epoch=N" otherwise (also for
// epoch 0 when the name itself contains the mark), so that a rebuilt dedup
// state also knows which incarnation wrote the batch.
const epochMark = ";epoch="

func encodeProducer(name string, epoch int64) string {
	if name == "" || epoch == 0 && !strings.Contains(name, epochMark) {
		return name
	}
	return name + epochMark + strconv.FormatInt(epoch, 10)
}

func decodeProducer(stored string) (name string, epoch int64) {
	i := strings.LastIndex(stored, epochMark)
	if i < 0 {
		return stored, 0
	}
	e, err := strconv.ParseInt(stored[i+len(epochMark):], 10, 64)
	if err != nil {
		return stored, 0
	}
	return stored[:i], e
}

// DedupRecoveryEntries is about how many entries at the tail of the log a
// loading partition reads to rebuild producers' deduplication state, and
// DedupRecoveryBytes about how many bytes (reads return whole entries, so
// large batches shorten the scan). Producers silent for longer than that
// are forgotten: their next append starts a fresh sequence, as for a new
// producer.
var (
	DedupRecoveryEntries       = 4096
	DedupRecoveryBytes   int64 = 64 << 20
)

// recoverDedup rebuilds producer state from the log's tail. The start is an
// estimate (message index of about DedupRecoveryEntries entries back, from
// the average entry size in messages); it runs before the partition is
// published, so no append races with it.
func (p *Partition) recoverDedup(ctx context.Context) error {
	st := p.ml.Stats()
	if st.Entries == 0 || st.Messages == 0 {
		return nil
	}
	entries := int64(DedupRecoveryEntries)
	if bytesPerEntry := st.Bytes / st.Entries; bytesPerEntry > 0 {
		entries = min(entries, max(DedupRecoveryBytes/bytesPerEntry, 1))
	}
	perEntry := max(st.Messages/st.Entries, 1)
	start := max(st.NextIndex-perEntry*entries, st.FirstIndex)
	producers := map[string]*producerState{}
	for idx := start; idx < st.NextIndex; {
		es, err := p.ml.ReadFromIndex(ctx, idx, 256, 4<<20)
		if errors.Is(err, managedledger.ErrTieredUnavailable) && p.b.member == nil {
			// The tail reaches into offloaded ledgers and the object store
			// is down: recover from the local ledgers only rather than keep
			// the partition (and its producers) waiting for the store. A
			// producer whose last batches are only offloaded starts a fresh
			// sequence, as after the recovery window. Not in cluster mode:
			// there a sealed ledger is offloaded at once, so the batches a
			// failed-over producer resends are often only offloaded, and
			// skipping them would store them twice; the open fails
			// (retriably) until the store is back instead.
			if next := firstLocalIndex(st, idx); next > idx {
				p.b.log.Warn("dedup recovery skips offloaded ledgers: tiered storage unavailable", "topic", p.name.String(), "from", idx, "to", next, "err", err)
				idx = next
				continue
			}
		}
		if err != nil {
			return mapLedgerErr(err)
		}
		if len(es) == 0 {
			break
		}
		for i := range es {
			e := &es[i]
			idx = e.LastIndex() + 1
			if e.Producer == "" {
				continue
			}
			name, epoch := decodeProducer(e.Producer)
			ps := producers[name]
			if ps == nil || epoch > ps.epoch {
				ps = &producerState{epoch: epoch}
				producers[name] = ps
			}
			if epoch < ps.epoch {
				continue // a fenced incarnation's batch cannot matter any more
			}
			meta := *e
			meta.Data = nil
			ps.remember(recentBatch{seqFirst: e.SeqFirst, seqLast: e.SeqLast, entry: meta})
		}
	}
	p.mu.Lock()
	for name, ps := range producers {
		p.mu.producers[name] = ps
	}
	p.mu.Unlock()
	return nil
}

// firstLocalIndex is the first index at or after idx in a ledger whose
// local files exist; idx if none after it.
func firstLocalIndex(st managedledger.Stats, idx int64) int64 {
	for _, l := range st.Ledgers {
		if !l.LocalDeleted && l.FirstIndex > idx {
			return l.FirstIndex
		}
	}
	return idx
}

// LastSequence returns the last sequence appended by producer, or -1.
func (p *Partition) LastSequence(producer string) int64 {
	return p.lastSequence(producer, false)
}

// ResumeProducer is LastSequence for a producer (re)registering (Pulsar's
// PRODUCER command): it also lifts the hold after a storage failure (see
// producerState.resendFrom), since a registered producer sends what it
// still has from its last sequence on, and one that gave up on the lost
// messages would otherwise be refused forever.
func (p *Partition) ResumeProducer(producer string) int64 {
	return p.lastSequence(producer, true)
}

func (p *Partition) lastSequence(producer string, resume bool) int64 {
	if !resume {
		// Kafka asks on every produce: without a storage failure to
		// settle, the state under mu is the answer.
		p.mu.Lock()
		st := p.mu.producers[producer]
		settled := st == nil || st.failures == p.ml.Failures()
		last := int64(-1)
		if st != nil {
			last = st.lastSeq
		}
		p.mu.Unlock()
		if settled {
			return last
		}
	}
	p.appendMu.Lock() // settle runs under it
	defer p.appendMu.Unlock()
	p.mu.Lock()
	defer p.mu.Unlock()
	st := p.mu.producers[producer]
	if st == nil {
		return -1
	}
	if failures := p.ml.Failures(); st.failures != failures {
		st.settle(failures) // not what a storage failure lost
	}
	if resume {
		st.blocked = false
	}
	return st.lastSeq
}

// ProducerState is one deduplicating producer's state on a partition
// (Kafka DescribeProducers).
type ProducerState struct {
	// Producer is the name appends carry (AppendRequest.Producer).
	Producer string
	Epoch    int64
	// LastSequence is the last sequence appended (-1: none yet).
	LastSequence int64
	// LastTimestamp is the publish time (unix ms) of its last appended
	// batch still remembered, or -1.
	LastTimestamp int64
}

// ProducerStates lists the partition's deduplicating producers sorted by
// name: those seen since the partition was loaded and those recovered from
// the log.
func (p *Partition) ProducerStates() []ProducerState {
	p.mu.Lock()
	out := make([]ProducerState, 0, len(p.mu.producers))
	for name, st := range p.mu.producers {
		ps := ProducerState{Producer: name, Epoch: st.epoch, LastSequence: st.lastSeq, LastTimestamp: -1}
		if n := len(st.recent); n > 0 {
			if last := st.recent[n-1]; last.pending != nil {
				ps.LastTimestamp = last.pending.Assigned().PublishTime
			} else if last.entry.PublishTime > 0 {
				ps.LastTimestamp = last.entry.PublishTime
			}
		}
		out = append(out, ps)
	}
	p.mu.Unlock()
	slices.SortFunc(out, func(a, b ProducerState) int { return strings.Compare(a.Producer, b.Producer) })
	return out
}

// LedgerErr maps an error of the partition's managed ledger (or of one of
// its cursors, which handlers use directly) to the broker's errors: a
// fenced ledger or cursor (cluster mode: ownership moved) is ErrNotOwner,
// which protocols answer with a retriable "go to the owner".
func LedgerErr(err error) error { return mapLedgerErr(err) }

func mapLedgerErr(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, managedledger.ErrIndexOutOfRange):
		return fmt.Errorf("%w: %w", ErrOffsetOutOfRange, err)
	case errors.Is(err, managedledger.ErrFenced):
		// Cluster mode: the partition's ownership moved while this broker
		// wrote (its commits are fenced). Not a storage failure: the
		// client goes to the new owner (%v drops ErrStorage from the chain).
		return fmt.Errorf("%w: %v", ErrNotOwner, err)
	case errors.Is(err, managedledger.ErrClosed):
		return fmt.Errorf("%w: %w", ErrClosed, err)
	case exhausted(err):
		return fmt.Errorf("%w: %w", ErrResourceExhausted, err)
	case objectstore.Retriable(err) && !errors.Is(err, ErrStorage) && !errors.Is(err, ErrTieredUnavailable):
		// The object store is down or slow outside a write (a cluster
		// broker rebuilding a partition it took over from the object log,
		// a cursor or index read): the same request succeeds once the
		// store is back, so clients must be told to retry (Kafka
		// KAFKA_STORAGE_ERROR, Pulsar ServiceNotReady), not that the
		// server failed (UNKNOWN_SERVER_ERROR, which producers give up on).
		return fmt.Errorf("%w: %w", ErrTieredUnavailable, err)
	}
	return err
}

// exhausted reports whether err comes from running out of file descriptors
// or memory: a condition of the machine, not of the request or the data.
func exhausted(err error) bool {
	return errors.Is(err, syscall.EMFILE) || errors.Is(err, syscall.ENFILE) || errors.Is(err, syscall.ENOMEM)
}

// StorageFailure reports the storage failure that currently stops appends
// to the partition (nil: none; see ErrStorage) and since when.
func (p *Partition) StorageFailure() (since time.Time, err error) { return p.ml.StorageFailure() }

// ---- reads: thin, documented in managedledger ----

// ReadFromIndex returns entries starting with the one holding message index
// (see managedledger.ReadFromIndex); ErrOffsetOutOfRange outside [FirstIndex, NextIndex].
func (p *Partition) ReadFromIndex(ctx context.Context, index int64, maxEntries, maxBytes int) ([]Entry, error) {
	es, err := p.ml.ReadFromIndex(ctx, index, maxEntries, maxBytes)
	return es, mapLedgerErr(err)
}

// ReadFromIndexWithin is ReadFromIndex without the exception for the first
// entry (see managedledger.ReadFromIndexWithin).
func (p *Partition) ReadFromIndexWithin(ctx context.Context, index int64, maxEntries, maxBytes int) ([]Entry, error) {
	es, err := p.ml.ReadFromIndexWithin(ctx, index, maxEntries, maxBytes)
	return es, mapLedgerErr(err)
}

// ReadEntries returns entries at or after from.
func (p *Partition) ReadEntries(ctx context.Context, from Position, maxEntries, maxBytes int) ([]Entry, error) {
	es, err := p.ml.ReadEntries(ctx, from, maxEntries, maxBytes)
	return es, mapLedgerErr(err)
}

// FirstIndex is the lowest retained message index (Kafka log start offset).
func (p *Partition) FirstIndex() int64 { return p.ml.FirstIndex() }

// NextIndex is the index of the next message (Kafka high watermark / log end offset).
func (p *Partition) NextIndex() int64 { return p.ml.NextIndex() }

// LastConfirmed is the last durable entry's position.
func (p *Partition) LastConfirmed() Position { return p.ml.LastConfirmed() }

// Changed is closed when new entries become visible.
func (p *Partition) Changed() <-chan struct{} { return p.ml.Changed() }

// PositionOf returns the position of the entry holding message index.
func (p *Partition) PositionOf(index int64) (Position, error) {
	pos, err := p.ml.PositionOf(index)
	return pos, mapLedgerErr(err)
}

// FindByTime returns the first entry whose (running max) timestamp is >= t.
func (p *Partition) FindByTime(ctx context.Context, t int64) (Entry, bool, error) {
	e, ok, err := p.ml.FindByTime(ctx, t)
	return e, ok, mapLedgerErr(err)
}

// MaxTimestamp is the largest entry timestamp stored (0 when empty).
func (p *Partition) MaxTimestamp() int64 { return p.ml.MaxTimestamp() }

// TruncateBefore makes index the first retained message (Kafka DeleteRecords).
func (p *Partition) TruncateBefore(ctx context.Context, index int64) error {
	return mapLedgerErr(p.ml.TruncateBefore(ctx, index))
}

// Stats returns storage statistics.
func (p *Partition) Stats() managedledger.Stats { return p.ml.Stats() }

// NewReader returns a non-durable cursor positioned after markDelete.
func (p *Partition) NewReader(markDelete Position) *Cursor { return p.ml.NewReader(markDelete) }

// ---- subscriptions ----

// Subscription is a named durable cursor on a partition: a Pulsar
// subscription and, with the same name, a Kafka consumer group's commits.
type Subscription struct {
	p      *Partition
	name   string
	cursor *managedledger.Cursor

	// Statistics counters reported by dispatchers (AddDelivered).
	msgOut, bytesOut atomic.Int64
	outRate          rateMeter

	mu struct {
		sync.Mutex
		holders int           // live consumers (either protocol)
		reset   chan struct{} // closed by ResetTo; see Reset
	}
	attachedConsumers registry[ConsumerInfo] // attached consumers, for statistics

	// dispMu guards disp, the subscription's dispatcher while it has
	// consumers (Attach, Detach). Lock order: dispMu before Dispatcher.mu.
	dispMu sync.Mutex
	disp   *Dispatcher
}

// ResetTo moves the subscription so that pos is the next entry delivered
// (admin reset-cursor, Kafka offset reset through the admin API): see
// Cursor.ResetTo. Dispatchers learn of it through Reset.
func (s *Subscription) ResetTo(ctx context.Context, pos Position) error {
	if err := s.cursor.ResetTo(ctx, pos); err != nil {
		return mapLedgerErr(err)
	}
	s.mu.Lock()
	if s.mu.reset != nil {
		close(s.mu.reset)
		s.mu.reset = nil
	}
	s.mu.Unlock()
	return nil
}

// Reset returns a channel closed at the next ResetTo, so that a dispatcher
// can drop what it read ahead (Pulsar disconnects the consumers). Take a new
// channel after each wake-up.
func (s *Subscription) Reset() <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.mu.reset == nil {
		s.mu.reset = make(chan struct{})
	}
	return s.mu.reset
}

// Name is the subscription's name.
func (s *Subscription) Name() string { return s.name }

// Partition is the partition the subscription belongs to.
func (s *Subscription) Partition() *Partition { return s.p }

// Cursor is the subscription's durable cursor.
func (s *Subscription) Cursor() *Cursor { return s.cursor }

// Hold marks a live consumer on the subscription (DeleteSubscription without
// force refuses while held). Call the returned func once to release.
func (s *Subscription) Hold() (release func()) {
	s.mu.Lock()
	s.mu.holders++
	s.mu.Unlock()
	var once sync.Once
	return func() {
		once.Do(func() {
			s.mu.Lock()
			s.mu.holders--
			s.mu.Unlock()
		})
	}
}

// Held reports whether a live consumer holds the subscription.
func (s *Subscription) Held() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.mu.holders > 0
}

// Subscription returns the subscription called name. If it does not exist
// and create is set, it is created starting at start; otherwise
// ErrSubscriptionNotFound.
func (p *Partition) Subscription(ctx context.Context, name string, create bool, start InitialPosition) (*Subscription, error) {
	if name == "" {
		return nil, fmt.Errorf("%w: empty subscription name", ErrInvalidName)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.mu.closed {
		return nil, ErrClosed
	}
	if s, ok := p.mu.subs[name]; ok {
		return s, nil
	}
	c, ok := p.ml.Cursor(name)
	if !ok {
		if !create {
			return nil, fmt.Errorf("%w: %s on %s", ErrSubscriptionNotFound, name, p.name)
		}
		var err error
		if c, err = p.ml.OpenCursor(ctx, name, start); err != nil {
			return nil, mapLedgerErr(err)
		}
	}
	s := &Subscription{p: p, name: name, cursor: c}
	p.mu.subs[name] = s
	return s, nil
}

// Subscriptions returns the partition's subscriptions sorted by name.
func (p *Partition) Subscriptions(ctx context.Context) []*Subscription {
	var out []*Subscription
	for _, c := range p.ml.Cursors() {
		if s, err := p.Subscription(ctx, c.Name(), false, InitialLatest); err == nil {
			out = append(out, s)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].name < out[j].name })
	return out
}

// DeleteSubscription removes a subscription and its cursor. Without force it
// fails with ErrInUse while a consumer holds it.
func (p *Partition) DeleteSubscription(ctx context.Context, name string, force bool) error {
	s, err := p.Subscription(ctx, name, false, InitialLatest)
	if err != nil {
		return err
	}
	if !force && s.Held() {
		return fmt.Errorf("%w: subscription %s has live consumers", ErrInUse, name)
	}
	p.mu.Lock()
	delete(p.mu.subs, name)
	p.mu.Unlock()
	return mapLedgerErr(p.ml.DeleteCursor(ctx, name))
}

// ---- tiered storage ----

// StartOffload starts copying the partition's sealed ledgers before pos
// (every one whose entries all precede it) to tiered storage, in the
// background (Pulsar's `topics offload`); OffloadStatus follows it. It
// fails at once with ErrNoOffloader when tiered storage is not configured
// and with ErrInUse while a run is in progress.
func (p *Partition) StartOffload(before Position) error {
	if !p.b.ledgers.Offloading() {
		return ErrNoOffloader
	}
	if p.ml.OffloadStatus().State == managedledger.OffloadRunning {
		return fmt.Errorf("%w: an offload of %s is running", ErrInUse, p.name)
	}
	ctx, cancel := context.WithCancel(context.Background())
	p.b.bg.Go(func() {
		defer cancel()
		go func() {
			select {
			case <-p.done:
			case <-p.b.stop:
			case <-ctx.Done():
			}
			cancel()
		}()
		if err := p.ml.Offload(ctx, before); err != nil && !errors.Is(err, managedledger.ErrClosed) {
			p.b.log.Warn("offload failed", "topic", p.name.String(), "err", err)
		}
	})
	return nil
}

// OffloadStatus reports the last offload run (NOT_RUN before any).
func (p *Partition) OffloadStatus() OffloadStatus { return p.ml.OffloadStatus() }
