package broker

// The transaction coordinator (KIP-98, "transactions v1", and KIP-890
// part 2, "transactions v2"), protocol-neutral.
//
// A transactional id names one transactional producer across its
// incarnations. Its record (TxnMetadata, JSON at
// /admin/transactions/<escaped id>) holds the producer id and epoch, the
// state, the partitions and groups in the open transaction, the pending
// offset commits and the timeout; every change is a compare-and-swap of the
// record (updateJSON), so that the record, not this process, is the truth.
//
// States and transitions (Kafka's TransactionState):
//
//	Empty --add partitions/offsets--> Ongoing --end--> PrepareCommit|PrepareAbort
//	PrepareX --markers written, offsets applied--> CompleteCommit|CompleteAbort
//	Complete* --add--> Ongoing; any but Prepare* --InitProducerID--> Empty (epoch+1)
//
// Ending a transaction writes the Prepare state first, then a marker to
// every partition in it, applies the pending offsets (commit only: moves of
// the groups' subscription cursors), then writes the Complete state. A
// coordinator that finds a Prepare state (after a crash, or when a marker
// write failed) finishes it: on start and in its background loop, which
// also aborts transactions that outlive their timeout (bumping the epoch,
// which fences the producer, as Kafka does).
//
// Fencing: InitProducerID bumps the epoch (a new producer id when the epoch
// would overflow). Calls with an older epoch get ErrTxnFenced. A produce to
// a transaction is checked under the transaction's read lock (txnEntry.rw):
// its partition must be in the Ongoing transaction and its epoch current;
// ending the transaction first flips the cached state under the write lock,
// so no transactional batch lands after a marker of its own transaction.
//
// Transactions v2 (Kafka 4's transaction.version 2) changes three calls:
// a produce adds its partitions itself (JoinPartitions), a transactional
// offset commit its group (JoinGroup), and every end bumps the epoch
// (EndTxnV2), the markers carrying the bumped one; a producer whose epoch
// runs out moves to a new producer id when that end completes. Records of
// both versions are the same; a producer may use either per call.
//
// Lock order: txnEntry.op (one operation per transactional id at a time),
// then txnEntry.rw, then TxnCoordinator.mu; partition locks are taken
// inside (WriteTxnMarker, appends), never the other way round.
//
// Cluster mode (txncluster.go): each id is coordinated by the broker
// owning its unit (Route); a broker adopting a unit re-reads its records.
// Records of ids with no transaction
// open expire (ExpireIdle, TxnOptions.IDExpiration, as Kafka's
// transactional.id.expiration.ms; ended Pulsar transactions sooner).

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/kopernik-io/kopernik/metadata"
)

// TxnState is a transaction's state.
type TxnState string

const (
	TxnEmpty          TxnState = "Empty"
	TxnOngoing        TxnState = "Ongoing"
	TxnPrepareCommit  TxnState = "PrepareCommit"
	TxnPrepareAbort   TxnState = "PrepareAbort"
	TxnCompleteCommit TxnState = "CompleteCommit"
	TxnCompleteAbort  TxnState = "CompleteAbort"
)

// Transaction errors (besides ErrProducerFenced for a produce with an old
// epoch). Handlers map them to wire codes.
var (
	// ErrTxnFenced: a coordinator call with an epoch older than the
	// transactional id's (a zombie). Matches ErrProducerFenced.
	ErrTxnFenced = fmt.Errorf("%w: transactional producer fenced by a newer epoch", ErrProducerFenced)
	// ErrInvalidTxnTimeout: the transaction timeout is <= 0 or above the maximum.
	ErrInvalidTxnTimeout = errors.New("broker: invalid transaction timeout")
	// ErrInvalidProducerIDMapping: the producer id is not the transactional id's.
	ErrInvalidProducerIDMapping = errors.New("broker: producer id not assigned to the transactional id")
	// ErrInvalidTxnState: the call does not fit the transaction's state.
	ErrInvalidTxnState = errors.New("broker: invalid transaction state")
	// ErrConcurrentTransactions: the previous transaction is still being
	// completed; retriable.
	ErrConcurrentTransactions = errors.New("broker: the previous transaction is still completing")
	// ErrTxnNotFound: no such transactional id.
	ErrTxnNotFound = errors.New("broker: transactional id not found")
)

// TxnMetadata is a transactional id's persisted record.
type TxnMetadata struct {
	Version         int    `json:"version"`
	TransactionalID string `json:"transactionalId"`
	ProducerID      int64  `json:"producerId"`
	Epoch           int16  `json:"epoch"`
	// LastEpoch is the epoch before the coordinator bumped it on its own
	// (aborting a timed-out transaction), -1 otherwise: the producer may
	// still recover with it (KIP-360 InitProducerId with its id and epoch).
	LastEpoch int16    `json:"lastEpoch"`
	State     TxnState `json:"state"`
	TimeoutMs int32    `json:"timeoutMs"`
	// Partitions are the full names of the partitions in the transaction.
	Partitions []string `json:"partitions,omitempty"`
	// Groups are the groups (subscription names) whose offsets it commits.
	Groups []string `json:"groups,omitempty"`
	// ClientNames (Pulsar transactions) maps a full partition name to the
	// topic string the client used for it, which Pulsar's transaction
	// metadata echoes.
	ClientNames    map[string]string `json:"clientNames,omitempty"`
	PendingOffsets []TxnOffset       `json:"pendingOffsets,omitempty"`
	// EndedBy (transactions v2) is the producer id and epoch that ended
	// the last transaction, before EndTxnV2 bumped them: a retry of that
	// EndTxn (its answer was lost) is recognised by it and answered with
	// the current id and epoch. Cleared when a transaction begins.
	EndedBy *ProducerIDAndEpoch `json:"endedBy,omitempty"`
	// NextProducerID (transactions v2) is the producer id the record
	// moves to once the Prepare state in progress completes: the epoch
	// bumped by the end reached its maximum, so the producer continues
	// under a new id at epoch 0 (Kafka's nextProducerId). 0: none.
	NextProducerID int64 `json:"nextProducerId,omitempty"`
	// StartMs is when the transaction became Ongoing, LastUpdateMs the
	// last change (unix ms).
	StartMs      int64 `json:"startMs"`
	LastUpdateMs int64 `json:"lastUpdateMs"`
}

// TxnOffset is a transactional offset commit: on commit, the
// subscription Group on Partition moves so that NextIndex is the next
// message, and the cursor properties are merged (an empty value deletes
// the key).
type TxnOffset struct {
	Group      string            `json:"group"`
	Partition  string            `json:"partition"`
	NextIndex  int64             `json:"nextIndex"`
	Properties map[string]string `json:"properties,omitempty"`
	// Acks and AckUpTo are a Pulsar transaction's acknowledgements
	// (individual entries, and cumulative up to and including AckUpTo);
	// NextIndex is then -1 and ignored (-1 without acks: a subscription
	// registered in the transaction that acked nothing).
	Acks    []Position `json:"acks,omitempty"`
	AckUpTo *Position  `json:"ackUpTo,omitempty"`
}

const txnMetadataVersion = 1

const pathTransactions = "admin/transactions"

// pathProducerIDs holds the next unallocated producer id of the
// coordinator's blocks.
const pathProducerIDs = "admin/txn-producer-ids"

// producerIDBlock is how many producer ids one CAS reserves.
const producerIDBlock = 1000

// TxnOptions configures the coordinator.
type TxnOptions struct {
	// MaxTimeout bounds a producer's transaction timeout (Kafka
	// transaction.max.timeout.ms, default 15 minutes).
	MaxTimeout time.Duration
	// CheckInterval is how often timed-out transactions are aborted and
	// unfinished ones completed (Kafka
	// transaction.abort.timed.out.transaction.cleanup.interval.ms,
	// default 10 s; negative disables the loop).
	CheckInterval time.Duration
	// IDExpiration is how long the record of a transactional id with no
	// transaction open (Empty or Complete*) outlives its last change
	// (Kafka transactional.id.expiration.ms, default 7 days; negative:
	// never). The id's next InitProducerID then starts afresh with a new
	// producer id; a producer still using the old one gets
	// ErrInvalidProducerIDMapping, as from Kafka.
	IDExpiration time.Duration
	// PulsarEndedRetention is how long an ended Pulsar transaction's
	// record stays for DescribeTransactions and the admin API (default
	// 10 minutes): a Pulsar transaction is one-shot, nothing else reads it.
	PulsarEndedRetention time.Duration
}

// TxnCoordinator is the broker's transaction coordinator; see the file
// comment. Obtain it with Broker.Transactions.
type TxnCoordinator struct {
	b    *Broker
	opts TxnOptions
	log  *slog.Logger

	startMu sync.Mutex
	started bool

	// fwd writes markers and offsets to partitions owned elsewhere
	// (cluster mode, txncluster.go).
	fwd atomic.Pointer[TxnForwarder]
	// adopted is, per coordinator unit, the ownership (its since) under
	// which the unit's records were last read into the cache.
	adoptMu sync.Mutex
	adopted map[string]time.Time
	// adoptedView is adopted for readers that must not wait for an
	// adoption in progress (the produce path): unit -> time.Time.
	adoptedView sync.Map

	mu struct {
		sync.Mutex
		txns   map[string]*txnEntry
		byPID  map[int64]*txnEntry
		nextID int64 // next producer id of the reserved block
		maxID  int64 // end (exclusive) of the reserved block
	}
}

// txnEntry is one transactional id's cached record and locks.
type txnEntry struct {
	id string
	op sync.Mutex
	rw sync.RWMutex
	m  TxnMetadata // guarded by rw; ok false until loaded
	ok bool
	// gone marks an entry whose record expired (set under op and
	// TxnCoordinator.mu): it is out of the maps, and whoever locks its op
	// after that takes a fresh entry instead (lockEntry).
	gone atomic.Bool
}

func newTxnCoordinator(b *Broker, opts TxnOptions) *TxnCoordinator {
	if opts.MaxTimeout <= 0 {
		opts.MaxTimeout = 15 * time.Minute
	}
	if opts.CheckInterval == 0 {
		opts.CheckInterval = 10 * time.Second
	}
	if opts.IDExpiration == 0 {
		opts.IDExpiration = 7 * 24 * time.Hour
	}
	if opts.PulsarEndedRetention <= 0 {
		opts.PulsarEndedRetention = 10 * time.Minute
	}
	c := &TxnCoordinator{b: b, opts: opts, log: b.log, adopted: map[string]time.Time{}}
	c.mu.txns = map[string]*txnEntry{}
	c.mu.byPID = map[int64]*txnEntry{}
	return c
}

// Transactions returns the broker's transaction coordinator, loading the
// transactional ids' records and finishing any transaction left in a
// Prepare state on first use (and at broker start).
func (b *Broker) Transactions(ctx context.Context) (*TxnCoordinator, error) {
	c := b.txns
	c.startMu.Lock()
	defer c.startMu.Unlock()
	if !c.started {
		// A failed load is tried again by the next call (a store hiccup).
		if err := c.load(ctx); err != nil {
			return nil, err
		}
		c.started = true
	}
	return c, nil
}

func txnPath(id string) string { return metadata.Join(pathTransactions, escapeStateSegment(id)) }

// load reads every record and finishes the Prepare* ones.
func (c *TxnCoordinator) load(ctx context.Context) error {
	names, err := c.b.store.Children(ctx, metadata.Join(pathTransactions))
	if err != nil && !errors.Is(err, metadata.ErrNotFound) {
		return err
	}
	var unfinished []*txnEntry
	for _, n := range names {
		id, ok := unescapeStateSegment(n)
		if !ok {
			continue
		}
		if c.b.Cluster() != nil && !isPulsarTxn(id) {
			continue // read when this broker adopts the id's unit (txncluster.go)
		}
		r, err := c.b.store.Get(ctx, txnPath(id))
		if errors.Is(err, metadata.ErrNotFound) {
			continue
		}
		if err != nil {
			return err
		}
		var m TxnMetadata
		if err := json.Unmarshal(r.Value, &m); err != nil {
			return fmt.Errorf("broker: decoding %s: %w", txnPath(id), err)
		}
		if m.Version > txnMetadataVersion {
			return fmt.Errorf("broker: %s has version %d, newer than %d", txnPath(id), m.Version, txnMetadataVersion)
		}
		e := c.entry(id)
		c.cache(e, m)
		if m.State == TxnPrepareCommit || m.State == TxnPrepareAbort {
			unfinished = append(unfinished, e)
		}
	}
	for _, e := range unfinished {
		e.op.Lock()
		err := c.finish(ctx, e)
		e.op.Unlock()
		if err != nil {
			c.log.Warn("transaction left unfinished at start; retried in the background", "transactional_id", e.id, "err", err)
		}
	}
	if c.opts.CheckInterval > 0 {
		c.b.mu.Lock() // Close sets closed under it before waiting for bg
		if !c.b.mu.closed {
			c.b.bg.Go(c.loop)
		}
		c.b.mu.Unlock()
	}
	return nil
}

// entry returns the cache entry of id, creating it (not loaded).
func (c *TxnCoordinator) entry(id string) *txnEntry {
	c.mu.Lock()
	defer c.mu.Unlock()
	e := c.mu.txns[id]
	if e == nil {
		e = &txnEntry{id: id}
		c.mu.txns[id] = e
	}
	return e
}

// lockEntry returns id's entry with its op lock held, never one that
// expired meanwhile.
func (c *TxnCoordinator) lockEntry(id string) *txnEntry {
	for {
		e := c.entry(id)
		e.op.Lock()
		if !e.gone.Load() {
			return e
		}
		e.op.Unlock()
	}
}

// cache sets e's cached record and the producer id index.
func (c *TxnCoordinator) cache(e *txnEntry, m TxnMetadata) {
	e.rw.Lock()
	old := e.m
	e.m, e.ok = m, true
	e.rw.Unlock()
	c.mu.Lock()
	if e.gone.Load() {
		c.mu.Unlock() // a reader's late fill of an expired entry
		return
	}
	if old.ProducerID != m.ProducerID && c.mu.byPID[old.ProducerID] == e {
		delete(c.mu.byPID, old.ProducerID)
	}
	c.mu.byPID[m.ProducerID] = e
	c.mu.Unlock()
}

// get returns the current record of e (reading the store if not cached).
func (c *TxnCoordinator) get(ctx context.Context, e *txnEntry) (TxnMetadata, bool, error) {
	e.rw.RLock()
	m, ok := e.m, e.ok
	e.rw.RUnlock()
	if ok {
		return m, true, nil
	}
	r, err := c.b.store.Get(ctx, txnPath(e.id))
	if errors.Is(err, metadata.ErrNotFound) {
		return TxnMetadata{}, false, nil
	}
	if err != nil {
		return TxnMetadata{}, false, err
	}
	if err := json.Unmarshal(r.Value, &m); err != nil {
		return TxnMetadata{}, false, err
	}
	c.cache(e, m)
	return m, true, nil
}

// update applies change to e's record with compare-and-swap and caches
// the result. change must depend only on the record it gets.
func (c *TxnCoordinator) update(ctx context.Context, e *txnEntry, change func(*TxnMetadata) error) (TxnMetadata, error) {
	m, err := updateJSON(ctx, c.b.store, txnPath(e.id), fmt.Errorf("%w: %s", ErrTxnNotFound, e.id), func(m *TxnMetadata) error {
		if err := change(m); err != nil {
			return err
		}
		m.LastUpdateMs = time.Now().UnixMilli()
		return nil
	})
	if err != nil {
		return TxnMetadata{}, err
	}
	c.cache(e, m)
	return m, nil
}

// newProducerID reserves a producer id (blocks of producerIDBlock, kept
// in the metadata store so that ids never repeat across restarts).
func (c *TxnCoordinator) newProducerID(ctx context.Context) (int64, error) {
	c.mu.Lock()
	if c.mu.nextID < c.mu.maxID {
		id := c.mu.nextID
		c.mu.nextID++
		c.mu.Unlock()
		return id, nil
	}
	c.mu.Unlock()
	type block struct {
		Next int64 `json:"next"`
	}
	_, err := c.b.store.Put(ctx, metadata.Join(pathProducerIDs), []byte(`{"next":1}`), metadata.NotExists)
	if err != nil && !errors.Is(err, metadata.ErrExists) {
		return 0, err
	}
	b, err := updateJSON(ctx, c.b.store, metadata.Join(pathProducerIDs), ErrConflict, func(b *block) error {
		b.Next += producerIDBlock
		return nil
	})
	if err != nil {
		return 0, err
	}
	start := b.Next - producerIDBlock
	c.mu.Lock()
	defer c.mu.Unlock()
	c.mu.nextID, c.mu.maxID = start+1, start+producerIDBlock
	return start, nil
}

// ProducerIDAndEpoch is what InitProducerID answers.
type ProducerIDAndEpoch struct {
	ProducerID int64 `json:"producerId"`
	Epoch      int16 `json:"epoch"`
}

// InitProducerID registers a transactional producer incarnation: a new
// producer id (epoch 0) for a new transactional id, else the epoch bumped,
// which fences older incarnations; an Ongoing transaction of the previous
// epoch is aborted first. timeout must be within (0, MaxTimeout]. current
// (KIP-360; ProducerID -1: not given) must match the record when given.
func (c *TxnCoordinator) InitProducerID(ctx context.Context, txnID string, timeout time.Duration, current ProducerIDAndEpoch) (ProducerIDAndEpoch, error) {
	if txnID == "" {
		return ProducerIDAndEpoch{}, fmt.Errorf("%w: empty transactional id", ErrInvalidName)
	}
	if timeout <= 0 || timeout > c.opts.MaxTimeout {
		return ProducerIDAndEpoch{}, fmt.Errorf("%w: %v (max %v)", ErrInvalidTxnTimeout, timeout, c.opts.MaxTimeout)
	}
	e := c.lockEntry(txnID)
	defer e.op.Unlock()
	m, ok, err := c.get(ctx, e)
	if err != nil {
		return ProducerIDAndEpoch{}, err
	}
	if !ok {
		pid, err := c.newProducerID(ctx)
		if err != nil {
			return ProducerIDAndEpoch{}, err
		}
		now := time.Now().UnixMilli()
		m = TxnMetadata{Version: txnMetadataVersion, TransactionalID: txnID, ProducerID: pid, LastEpoch: -1, State: TxnEmpty,
			TimeoutMs: int32(timeout.Milliseconds()), LastUpdateMs: now}
		raw, _ := json.Marshal(m)
		if _, err := c.b.store.Put(ctx, txnPath(txnID), raw, metadata.NotExists); err != nil {
			if errors.Is(err, metadata.ErrExists) {
				return ProducerIDAndEpoch{}, fmt.Errorf("%w: %s was created concurrently", ErrConcurrentTransactions, txnID)
			}
			return ProducerIDAndEpoch{}, err
		}
		c.cache(e, m)
		return ProducerIDAndEpoch{ProducerID: m.ProducerID, Epoch: m.Epoch}, nil
	}
	if current.ProducerID >= 0 && (current.ProducerID != m.ProducerID || current.Epoch != m.Epoch && (m.LastEpoch < 0 || current.Epoch != m.LastEpoch)) {
		return ProducerIDAndEpoch{}, fmt.Errorf("%w: %d/%d is not the current %d/%d", ErrTxnFenced, current.ProducerID, current.Epoch, m.ProducerID, m.Epoch)
	}
	switch m.State {
	case TxnPrepareCommit, TxnPrepareAbort:
		// Finish it now; the client retries CONCURRENT_TRANSACTIONS.
		if err := c.finish(ctx, e); err != nil {
			return ProducerIDAndEpoch{}, fmt.Errorf("%w: %w", ErrConcurrentTransactions, err)
		}
	case TxnOngoing:
		// The previous incarnation's transaction: abort it with a bumped
		// epoch (fencing its producer on the coordinator at once).
		if err := c.end(ctx, e, false, fenceProducer); err != nil {
			return ProducerIDAndEpoch{}, fmt.Errorf("%w: aborting the previous transaction: %w", ErrConcurrentTransactions, err)
		}
	}
	var newPID int64 = -1
	if m, _, _ = c.get(ctx, e); m.Epoch >= math.MaxInt16-1 {
		if newPID, err = c.newProducerID(ctx); err != nil {
			return ProducerIDAndEpoch{}, err
		}
	}
	m, err = c.update(ctx, e, func(m *TxnMetadata) error {
		switch m.State {
		case TxnPrepareCommit, TxnPrepareAbort, TxnOngoing:
			return ErrConcurrentTransactions
		}
		if newPID >= 0 {
			m.ProducerID, m.Epoch = newPID, 0
		} else {
			m.Epoch++
		}
		m.LastEpoch = -1
		m.State = TxnEmpty
		m.TimeoutMs = int32(timeout.Milliseconds())
		m.Partitions, m.Groups, m.PendingOffsets = nil, nil, nil
		m.EndedBy = nil
		return nil
	})
	if err != nil {
		return ProducerIDAndEpoch{}, err
	}
	return ProducerIDAndEpoch{ProducerID: m.ProducerID, Epoch: m.Epoch}, nil
}

// check validates a call of producer pid/epoch on e's record m.
func checkProducer(m TxnMetadata, pid int64, epoch int16) error {
	switch {
	case m.ProducerID != pid:
		return fmt.Errorf("%w: %d (the id's producer is %d)", ErrInvalidProducerIDMapping, pid, m.ProducerID)
	case epoch < m.Epoch:
		return fmt.Errorf("%w: epoch %d < %d", ErrTxnFenced, epoch, m.Epoch)
	case epoch > m.Epoch:
		return fmt.Errorf("%w: epoch %d > %d", ErrTxnFenced, epoch, m.Epoch)
	}
	return nil
}

// opEntry returns the locked, loaded entry of an existing transactional id.
// opProducer is opEntry for a call of producer (pid, epoch): the entry
// comes back locked only when the producer is the transaction's current
// one (checkProducer); otherwise it is unlocked and the error returned.
func (c *TxnCoordinator) opProducer(ctx context.Context, txnID string, pid int64, epoch int16) (*txnEntry, TxnMetadata, error) {
	e, m, err := c.opEntry(ctx, txnID)
	if err != nil {
		return nil, TxnMetadata{}, err
	}
	if err := checkProducer(m, pid, epoch); err != nil {
		e.op.Unlock()
		return nil, TxnMetadata{}, err
	}
	return e, m, nil
}

func (c *TxnCoordinator) opEntry(ctx context.Context, txnID string) (*txnEntry, TxnMetadata, error) {
	e := c.lockEntry(txnID)
	m, ok, err := c.get(ctx, e)
	if err == nil && !ok {
		err = fmt.Errorf("%w: unknown transactional id %q", ErrInvalidProducerIDMapping, txnID)
	}
	if err != nil {
		e.op.Unlock()
		return nil, TxnMetadata{}, err
	}
	return e, m, nil
}

// AddPartitions adds partitions to the producer's transaction (making it
// Ongoing). Errors: ErrInvalidProducerIDMapping, ErrTxnFenced,
// ErrConcurrentTransactions (the previous one still completing).
func (c *TxnCoordinator) AddPartitions(ctx context.Context, txnID string, pid int64, epoch int16, partitions []TopicName) error {
	return c.add(ctx, txnID, pid, epoch, func(m *TxnMetadata) {
		for _, p := range partitions {
			if s := p.String(); !slices.Contains(m.Partitions, s) {
				m.Partitions = append(m.Partitions, s)
			}
		}
	})
}

// VerifyPartitions reports, for each partition, whether it is in the
// producer's Ongoing transaction, changing nothing (Kafka's
// AddPartitionsToTxn v4+ VerifyOnly, which a broker sends before
// appending a transactional produce, KIP-890 part 1). Errors, for the
// whole call as Kafka answers them: ErrInvalidProducerIDMapping (unknown
// id, or another producer id), ErrTxnFenced (another epoch),
// ErrConcurrentTransactions (the last transaction is still completing).
func (c *TxnCoordinator) VerifyPartitions(ctx context.Context, txnID string, pid int64, epoch int16, partitions []TopicName) ([]bool, error) {
	e, m, err := c.opProducer(ctx, txnID, pid, epoch)
	if err != nil {
		return nil, err
	}
	e.op.Unlock()
	if m.State == TxnPrepareCommit || m.State == TxnPrepareAbort {
		return nil, ErrConcurrentTransactions
	}
	in := make([]bool, len(partitions))
	for i, p := range partitions {
		// A Complete or Empty record may still list the last
		// transaction's partitions (DescribeTransactions shows them);
		// they are in no transaction now.
		in[i] = m.State == TxnOngoing && slices.Contains(m.Partitions, p.String())
	}
	return in, nil
}

// JoinPartitions is AddPartitions as a transactions v2 produce implies it
// (Produce v12 adds its partitions to the transaction, beginning one if
// none is open): when the producer's transaction is already Ongoing with
// every partition in it, nothing is written, so that only a partition's
// first produce of a transaction costs a record update.
func (c *TxnCoordinator) JoinPartitions(ctx context.Context, txnID string, pid int64, epoch int16, partitions []TopicName) error {
	if c.joined(txnID, pid, epoch, func(m *TxnMetadata) bool {
		return !slices.ContainsFunc(partitions, func(p TopicName) bool { return !slices.Contains(m.Partitions, p.String()) })
	}) {
		return nil
	}
	return c.AddPartitions(ctx, txnID, pid, epoch, partitions)
}

// JoinGroup is AddGroup as a transactions v2 TxnOffsetCommit (v5) implies
// it, with JoinPartitions' shortcut.
func (c *TxnCoordinator) JoinGroup(ctx context.Context, txnID string, pid int64, epoch int16, group string) error {
	if c.joined(txnID, pid, epoch, func(m *TxnMetadata) bool { return slices.Contains(m.Groups, group) }) {
		return nil
	}
	return c.AddGroup(ctx, txnID, pid, epoch, group)
}

// joined reports whether the cached record of txnID is the producer's
// Ongoing transaction and has what in it.
func (c *TxnCoordinator) joined(txnID string, pid int64, epoch int16, has func(*TxnMetadata) bool) bool {
	e := c.entry(txnID)
	e.rw.RLock()
	defer e.rw.RUnlock()
	return e.ok && e.m.State == TxnOngoing && checkProducer(e.m, pid, epoch) == nil && has(&e.m)
}

// AddGroup adds a group's offsets to the transaction (Kafka
// AddOffsetsToTxn): its TxnOffsetCommit calls are then accepted.
func (c *TxnCoordinator) AddGroup(ctx context.Context, txnID string, pid int64, epoch int16, group string) error {
	return c.add(ctx, txnID, pid, epoch, func(m *TxnMetadata) {
		if !slices.Contains(m.Groups, group) {
			m.Groups = append(m.Groups, group)
		}
	})
}

func (c *TxnCoordinator) add(ctx context.Context, txnID string, pid int64, epoch int16, add func(*TxnMetadata)) error {
	e, m, err := c.opProducer(ctx, txnID, pid, epoch)
	if err != nil {
		return err
	}
	defer e.op.Unlock()
	if m.State == TxnPrepareCommit || m.State == TxnPrepareAbort {
		// The previous transaction is still completing (a marker write
		// failed): finish it now, or let the client retry.
		if err := c.finish(ctx, e); err != nil {
			return fmt.Errorf("%w: %w", ErrConcurrentTransactions, err)
		}
	}
	_, err = c.update(ctx, e, func(m *TxnMetadata) error {
		if err := checkProducer(*m, pid, epoch); err != nil {
			return err
		}
		switch m.State {
		case TxnPrepareCommit, TxnPrepareAbort:
			return ErrConcurrentTransactions
		case TxnCompleteCommit, TxnCompleteAbort:
			if isPulsarTxn(m.TransactionalID) {
				// A Pulsar transaction is one-shot: once ended it is gone.
				return fmt.Errorf("%w: Pulsar transaction %q has ended", ErrTxnNotFound, m.TransactionalID)
			}
			fallthrough
		case TxnEmpty:
			m.State = TxnOngoing
			m.StartMs = time.Now().UnixMilli()
			m.Partitions, m.Groups, m.PendingOffsets = nil, nil, nil
			m.EndedBy = nil
		}
		add(m)
		return nil
	})
	return err
}

// CommitOffsets records transactional offset commits of group, applied
// when the transaction commits and dropped when it aborts. The group must
// have been added (AddGroup): ErrInvalidTxnState otherwise.
//
// In a cluster the call comes to the group's coordinator, which need not
// coordinate txnID: it then changes the store's record only (compare and
// swap, every check made on the store's copy), and the id's coordinator
// reads the offsets back with the Prepare write that ends the transaction.
func (c *TxnCoordinator) CommitOffsets(ctx context.Context, txnID string, pid int64, epoch int16, group string, offsets []TxnOffset) error {
	change := func(m *TxnMetadata) error {
		if err := checkProducer(*m, pid, epoch); err != nil {
			return err
		}
		if m.State != TxnOngoing || !slices.Contains(m.Groups, group) {
			return fmt.Errorf("%w: group %q is not in an ongoing transaction of %q (state %s)", ErrInvalidTxnState, group, txnID, m.State)
		}
		for _, o := range offsets {
			o.Group = group
			i := slices.IndexFunc(m.PendingOffsets, func(p TxnOffset) bool { return p.Group == o.Group && p.Partition == o.Partition })
			if i >= 0 {
				m.PendingOffsets[i] = o
			} else {
				m.PendingOffsets = append(m.PendingOffsets, o)
			}
		}
		return nil
	}
	if !c.cached(txnID) {
		_, err := updateJSON(ctx, c.b.store, txnPath(txnID), fmt.Errorf("%w: unknown transactional id %q", ErrInvalidProducerIDMapping, txnID), func(m *TxnMetadata) error {
			if err := change(m); err != nil {
				return err
			}
			m.LastUpdateMs = time.Now().UnixMilli()
			return nil
		})
		return err
	}
	e, _, err := c.opProducer(ctx, txnID, pid, epoch)
	if err != nil {
		return err
	}
	defer e.op.Unlock()
	_, err = c.update(ctx, e, change)
	return err
}

// EndTxn commits or aborts the producer's transaction and returns once it
// is complete: markers durable on every partition, offsets applied. A
// retry of a completed end with the same outcome succeeds; the other
// outcome, or an end without a transaction, is ErrInvalidTxnState.
func (c *TxnCoordinator) EndTxn(ctx context.Context, txnID string, pid int64, epoch int16, commit bool) error {
	e, m, err := c.opProducer(ctx, txnID, pid, epoch)
	if err != nil {
		return err
	}
	defer e.op.Unlock()
	if ended, err := c.endOrFinish(ctx, e, m, commit); ended {
		return err
	}
	if m.State == TxnCompleteCommit && commit || m.State == TxnCompleteAbort && !commit {
		return nil // a retry of the EndTxn that completed it
	}
	return fmt.Errorf("%w: %s of %q in state %s", ErrInvalidTxnState, map[bool]string{true: "commit", false: "abort"}[commit], txnID, m.State)
}

// endOrFinish is what ending a transaction in state m does when it can
// act: an Ongoing one is ended (commit or abort), a Prepare state of the
// same outcome is finished (a retry after a failed marker write). ended is
// false in every other state; the caller answers for those (Kafka and
// Pulsar differ on a completed one).
func (c *TxnCoordinator) endOrFinish(ctx context.Context, e *txnEntry, m TxnMetadata, commit bool) (ended bool, err error) {
	switch {
	case m.State == TxnOngoing:
		return true, c.end(ctx, e, commit, nil)
	case m.State == TxnPrepareCommit && commit, m.State == TxnPrepareAbort && !commit:
		return true, c.finish(ctx, e)
	}
	return false, nil
}

// end moves an Ongoing transaction to Prepare (applying bump to the
// record in the same change: fenceProducer when the coordinator aborts on
// its own, bumpForV2 when a v2 producer ends it; nil: no bump) and
// finishes it. e.op is held.
func (c *TxnCoordinator) end(ctx context.Context, e *txnEntry, commit bool, bump func(*TxnMetadata)) error {
	target := TxnPrepareAbort
	if commit {
		target = TxnPrepareCommit
	}
	// Close the transaction to produces first (checked under rw.RLock),
	// so no batch of it lands after its markers.
	e.rw.Lock()
	prev := e.m
	e.m.State = target
	e.rw.Unlock()
	_, err := c.update(ctx, e, func(m *TxnMetadata) error {
		if m.State != TxnOngoing {
			return fmt.Errorf("%w: %s", ErrInvalidTxnState, m.State)
		}
		m.State = target
		if bump != nil {
			bump(m)
		}
		return nil
	})
	if err != nil {
		e.rw.Lock()
		if e.m.State == target && e.m.LastUpdateMs == prev.LastUpdateMs {
			e.m = prev
		}
		e.rw.Unlock()
		return err
	}
	return c.finish(ctx, e)
}

// fenceProducer is the bump of a coordinator-side abort: the epoch moves
// on, fencing the producer, which may still recover with its old epoch
// (LastEpoch, KIP-360).
func fenceProducer(m *TxnMetadata) {
	m.LastEpoch = m.Epoch
	m.Epoch++
}

// bumpForV2 is the bump of a transactions v2 end: the epoch that ended
// the transaction is remembered (EndedBy, for a retry) and the next one
// begins at epoch+1; where that is the last epoch, the producer moves to
// nextPID (> 0) once the end completes, and the markers carry the last
// epoch.
func bumpForV2(nextPID int64) func(*TxnMetadata) {
	return func(m *TxnMetadata) {
		m.EndedBy = &ProducerIDAndEpoch{ProducerID: m.ProducerID, Epoch: m.Epoch}
		m.Epoch++
		m.NextProducerID = nextPID
	}
}

// EndTxnV2 is EndTxn for transactions v2 (KIP-890 part 2; Kafka's EndTxn
// v5 under transaction.version 2): every end also bumps the producer's
// epoch, so that no two transactions of a producer share an epoch (a late
// produce of the previous one is fenced, never taken into the next), and
// the producer id and epoch to continue with are returned. An abort with
// no transaction open succeeds and only bumps the epoch (a client whose
// produces may have registered partitions before failing aborts to be
// sure); a commit without one is ErrInvalidTxnState. A retry of an end
// whose answer was lost (from the id and epoch recorded in EndedBy) gets
// the same answer; a Prepare state it left (a failed marker write) is
// finished first.
func (c *TxnCoordinator) EndTxnV2(ctx context.Context, txnID string, pid int64, epoch int16, commit bool) (ProducerIDAndEpoch, error) {
	e, m, err := c.opEntry(ctx, txnID)
	if err != nil {
		return ProducerIDAndEpoch{}, err
	}
	defer e.op.Unlock()
	outcome := TxnCompleteAbort
	if commit {
		outcome = TxnCompleteCommit
	}
	answer := func() (ProducerIDAndEpoch, error) {
		m, _, err := c.get(ctx, e)
		return ProducerIDAndEpoch{ProducerID: m.ProducerID, Epoch: m.Epoch}, err
	}
	if m.EndedBy != nil && *m.EndedBy == (ProducerIDAndEpoch{ProducerID: pid, Epoch: epoch}) {
		switch {
		case m.State == outcome:
			return answer()
		case m.State == TxnPrepareCommit && commit, m.State == TxnPrepareAbort && !commit:
			if err := c.finish(ctx, e); err != nil {
				return ProducerIDAndEpoch{}, err
			}
			return answer()
		}
		return ProducerIDAndEpoch{}, fmt.Errorf("%w: retried end (commit %v) of %q in state %s", ErrInvalidTxnState, commit, txnID, m.State)
	}
	if err := checkProducer(m, pid, epoch); err != nil {
		return ProducerIDAndEpoch{}, err
	}
	var nextPID int64
	if m.Epoch >= math.MaxInt16-1 {
		if nextPID, err = c.newProducerID(ctx); err != nil {
			return ProducerIDAndEpoch{}, err
		}
	}
	switch m.State {
	case TxnOngoing:
		if err := c.end(ctx, e, commit, bumpForV2(nextPID)); err != nil {
			return ProducerIDAndEpoch{}, err
		}
		return answer()
	case TxnPrepareCommit, TxnPrepareAbort:
		// Left by a v1 end or a coordinator abort: complete it; the
		// client retries.
		if err := c.finish(ctx, e); err != nil {
			return ProducerIDAndEpoch{}, fmt.Errorf("%w: %w", ErrConcurrentTransactions, err)
		}
		return ProducerIDAndEpoch{}, ErrConcurrentTransactions
	}
	if commit {
		return ProducerIDAndEpoch{}, fmt.Errorf("%w: commit of %q without a transaction (state %s)", ErrInvalidTxnState, txnID, m.State)
	}
	_, err = c.update(ctx, e, func(m *TxnMetadata) error {
		if err := checkProducer(*m, pid, epoch); err != nil {
			return err
		}
		if m.State != TxnEmpty && m.State != TxnCompleteCommit && m.State != TxnCompleteAbort {
			return fmt.Errorf("%w: %s", ErrConcurrentTransactions, m.State)
		}
		bumpForV2(0)(m)
		if nextPID > 0 {
			m.ProducerID, m.Epoch = nextPID, 0
		}
		m.State = TxnCompleteAbort
		return nil
	})
	if err != nil {
		return ProducerIDAndEpoch{}, err
	}
	return answer()
}

// finish completes a Prepare transaction: markers, offsets, Complete state.
// Idempotent; e.op is held.
func (c *TxnCoordinator) finish(ctx context.Context, e *txnEntry) error {
	m, _, err := c.get(ctx, e)
	if err != nil {
		return err
	}
	if m.State != TxnPrepareCommit && m.State != TxnPrepareAbort {
		return nil
	}
	commit := m.State == TxnPrepareCommit
	errs := make([]error, len(m.Partitions))
	var wg sync.WaitGroup
	for i, name := range m.Partitions {
		wg.Go(func() {
			n, err := ParseTopicName(name, "", "")
			if err != nil {
				return // not a name we wrote: nothing to mark
			}
			marker := TxnMarker{ProducerID: m.ProducerID, Epoch: m.Epoch, Commit: commit}
			p, err := c.b.OpenPartition(ctx, n, false)
			if errors.Is(err, ErrTopicNotFound) {
				return // deleted meanwhile: nothing left to mark
			}
			var no *NotOwnerError
			switch {
			case errors.As(err, &no):
				// Cluster mode: the partition's owner writes it.
				err = c.forward(func(f TxnForwarder) error { return f.ForwardTxnMarker(ctx, no.Owner, n, marker) })
			case err == nil:
				_, err = p.WriteTxnMarker(ctx, marker)
			}
			errs[i] = err
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("broker: writing %s markers of %q: %w", m.State, e.id, err)
	}
	if commit {
		for _, o := range m.PendingOffsets {
			err := c.b.applyTxnOffset(ctx, o)
			var no *NotOwnerError
			if errors.As(err, &no) {
				err = c.forward(func(f TxnForwarder) error { return f.ForwardTxnOffset(ctx, no.Owner, o) })
			}
			if err != nil {
				return fmt.Errorf("broker: committing offsets of %q: %w", e.id, err)
			}
		}
	}
	_, err = c.update(ctx, e, func(cur *TxnMetadata) error {
		if cur.State != m.State || cur.ProducerID != m.ProducerID || cur.Epoch != m.Epoch {
			return ErrUnchanged // someone else finished it
		}
		cur.State = TxnCompleteAbort
		if commit {
			cur.State = TxnCompleteCommit
		}
		cur.Partitions, cur.Groups, cur.PendingOffsets = nil, nil, nil
		if cur.NextProducerID > 0 {
			cur.ProducerID, cur.Epoch, cur.NextProducerID = cur.NextProducerID, 0, 0
		}
		return nil
	})
	return err
}

// forward runs call on the forwarder, or fails without one.
func (c *TxnCoordinator) forward(call func(TxnForwarder) error) error {
	// A failure leaves the transaction in its Prepare state, finished by
	// a retry or the loop: the client's error is CONCURRENT_TRANSACTIONS
	// (retriable), not the owner's own error.
	f := c.forwarder()
	if f == nil {
		return fmt.Errorf("%w: no path to the partition's owner", ErrConcurrentTransactions)
	}
	if err := call(f); err != nil {
		return fmt.Errorf("%w: %v", ErrConcurrentTransactions, err)
	}
	return nil
}

// applyTxnOffset moves a group's subscription cursor for a committed
// transactional offset (see the Kafka handler's commitOffset: the same
// clamping into the retained range).
func (b *Broker) applyTxnOffset(ctx context.Context, o TxnOffset) error {
	n, err := ParseTopicName(o.Partition, "", "")
	if err != nil {
		return nil
	}
	p, err := b.OpenPartition(ctx, n, false)
	if errors.Is(err, ErrTopicNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	sub, err := p.Subscription(ctx, o.Group, true, InitialEarliest)
	if err != nil {
		return err
	}
	cur := sub.Cursor()
	if len(o.Acks) > 0 || o.AckUpTo != nil || o.NextIndex < 0 {
		if err := applyTxnAcks(ctx, cur, o); err != nil {
			return mapLedgerErr(err)
		}
		return mapLedgerErr(cur.Flush(ctx))
	}
	for attempt := 0; ; attempt++ {
		err = cur.SetNextIndex(ctx, min(max(o.NextIndex, p.FirstIndex()), p.NextIndex()))
		if err == nil || attempt == 2 {
			break
		}
	}
	if err != nil {
		return mapLedgerErr(err)
	}
	if len(o.Properties) > 0 {
		props := map[string]string{}
		for k, v := range cur.Properties() {
			props[k] = v
		}
		for k, v := range o.Properties {
			if v == "" {
				delete(props, k)
			} else {
				props[k] = v
			}
		}
		cur.SetProperties(props)
	}
	return mapLedgerErr(cur.Flush(ctx))
}

// Append appends a transactional batch (req.Transactional and ProducerID
// set) for producer epoch: it must belong to an Ongoing transaction that
// contains the partition (ErrInvalidTxnState otherwise; ErrProducerFenced
// for an old epoch, ErrInvalidProducerIDMapping for an unknown producer).
func (c *TxnCoordinator) Append(ctx context.Context, p *Partition, epoch int16, req AppendRequest) (AppendResult, error) {
	h, err := c.AppendAsync(p, epoch, req)
	if err != nil {
		return AppendResult{}, err
	}
	return h.Wait(ctx)
}

// PendingOffset reports whether an open (Ongoing or Prepare) transaction
// holds an offset commit of group on partition that is not applied yet:
// a committed offset read now may be stale (Kafka's UNSTABLE_OFFSET_COMMIT
// for require_stable fetches, KIP-447).
func (c *TxnCoordinator) PendingOffset(group string, partition TopicName) bool {
	c.mu.Lock()
	entries := make([]*txnEntry, 0, len(c.mu.txns))
	for _, e := range c.mu.txns {
		entries = append(entries, e)
	}
	c.mu.Unlock()
	name := partition.String()
	for _, e := range entries {
		e.rw.RLock()
		m := e.m
		e.rw.RUnlock()
		if m.State != TxnOngoing && m.State != TxnPrepareCommit {
			continue
		}
		for _, o := range m.PendingOffsets {
			if o.Group == group && o.Partition == name {
				return true
			}
		}
	}
	return false
}

// List returns the records of every transactional id this coordinator
// knows (all of them after its load; in a cluster, those of the units it
// owns), sorted by id.
func (c *TxnCoordinator) List() []TxnMetadata {
	c.mu.Lock()
	entries := make([]*txnEntry, 0, len(c.mu.txns))
	for _, e := range c.mu.txns {
		entries = append(entries, e)
	}
	c.mu.Unlock()
	out := make([]TxnMetadata, 0, len(entries))
	for _, e := range entries {
		if !c.cached(e.id) {
			continue // cluster mode: listed by its coordinator
		}
		e.rw.RLock()
		if e.ok {
			out = append(out, e.m)
		}
		e.rw.RUnlock()
	}
	slices.SortFunc(out, func(a, b TxnMetadata) int {
		switch {
		case a.TransactionalID < b.TransactionalID:
			return -1
		case a.TransactionalID > b.TransactionalID:
			return 1
		}
		return 0
	})
	return out
}

// Describe returns a transactional id's record (ErrTxnNotFound). An
// unknown id leaves nothing behind in the cache.
func (c *TxnCoordinator) Describe(ctx context.Context, txnID string) (TxnMetadata, error) {
	c.mu.Lock()
	e := c.mu.txns[txnID]
	c.mu.Unlock()
	if e != nil {
		if m, ok, err := c.get(ctx, e); err != nil || ok {
			return m, err
		}
		return TxnMetadata{}, fmt.Errorf("%w: %s", ErrTxnNotFound, txnID)
	}
	r, err := c.b.store.Get(ctx, txnPath(txnID))
	if errors.Is(err, metadata.ErrNotFound) {
		return TxnMetadata{}, fmt.Errorf("%w: %s", ErrTxnNotFound, txnID)
	}
	if err != nil {
		return TxnMetadata{}, err
	}
	var m TxnMetadata
	if err := json.Unmarshal(r.Value, &m); err != nil {
		return TxnMetadata{}, fmt.Errorf("broker: decoding %s: %w", txnPath(txnID), err)
	}
	return m, nil
}

// loop aborts timed-out transactions and finishes unfinished ones.
func (c *TxnCoordinator) loop() {
	t := time.NewTicker(c.opts.CheckInterval)
	defer t.Stop()
	for {
		select {
		case <-c.b.stop:
			return
		case <-t.C:
		}
		ctx := c.stopContext()
		if c.b.Cluster() != nil {
			c.adoptPending(ctx)
		}
		c.CheckTimeouts(ctx)
		c.ExpireIdle(ctx, time.Now())
	}
}

// expirable reports whether record m, as of now, has outlived its
// retention (TxnOptions.IDExpiration, PulsarEndedRetention).
func (c *TxnCoordinator) expirable(m TxnMetadata, now time.Time) bool {
	idle := now.UnixMilli() - m.LastUpdateMs
	switch {
	case m.State != TxnEmpty && m.State != TxnCompleteCommit && m.State != TxnCompleteAbort:
		return false
	case isPulsarTxn(m.TransactionalID):
		// An Empty one may still be used within its timeout.
		keep := c.opts.PulsarEndedRetention.Milliseconds()
		if m.State == TxnEmpty {
			keep = max(keep, int64(m.TimeoutMs))
		}
		return idle > keep
	}
	return c.opts.IDExpiration > 0 && idle > c.opts.IDExpiration.Milliseconds()
}

// ExpireIdle deletes the records that, as of now, outlived their
// retention (see expirable; the store's copy decides, compared and
// deleted by version) and forgets them; it returns how many. An entry
// with an operation running is left for the next round.
func (c *TxnCoordinator) ExpireIdle(ctx context.Context, now time.Time) int {
	c.mu.Lock()
	entries := make([]*txnEntry, 0, len(c.mu.txns))
	for _, e := range c.mu.txns {
		entries = append(entries, e)
	}
	c.mu.Unlock()
	n := 0
	for _, e := range entries {
		if ctx.Err() != nil {
			break
		}
		e.rw.RLock()
		m, ok := e.m, e.ok
		e.rw.RUnlock()
		if !ok || !c.expirable(m, now) || !e.op.TryLock() {
			continue
		}
		expired, err := c.expire(ctx, e, now)
		e.op.Unlock()
		if err != nil && ctx.Err() == nil {
			c.log.Warn("expiring a transactional id failed; retried next round", "transactional_id", e.id, "err", err)
		}
		if expired {
			n++
		}
	}
	return n
}

// expire deletes e's record if the store's copy is expirable; e.op is held.
func (c *TxnCoordinator) expire(ctx context.Context, e *txnEntry, now time.Time) (bool, error) {
	if e.gone.Load() {
		return false, nil
	}
	r, err := c.b.store.Get(ctx, txnPath(e.id))
	if err != nil {
		return false, err
	}
	var m TxnMetadata
	if err := json.Unmarshal(r.Value, &m); err != nil {
		return false, err
	}
	if !c.expirable(m, now) {
		c.cache(e, m) // changed elsewhere: take the newer copy
		return false, nil
	}
	if err := c.b.store.Delete(ctx, txnPath(e.id), r.Version); err != nil {
		if errors.Is(err, metadata.ErrBadVersion) || errors.Is(err, metadata.ErrNotFound) {
			return false, nil // changed or gone meanwhile: next round decides
		}
		return false, err
	}
	e.rw.Lock()
	e.m, e.ok = TxnMetadata{}, false
	e.rw.Unlock()
	c.mu.Lock()
	e.gone.Store(true)
	if c.mu.txns[e.id] == e {
		delete(c.mu.txns, e.id)
	}
	if c.mu.byPID[m.ProducerID] == e {
		delete(c.mu.byPID, m.ProducerID)
	}
	c.mu.Unlock()
	c.log.Debug("transactional id expired", "transactional_id", e.id, "producer_id", m.ProducerID, "state", m.State)
	return true, nil
}

// stopContext is a context canceled when the broker closes.
func (c *TxnCoordinator) stopContext() context.Context {
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		<-c.b.stop
		cancel()
	}()
	return ctx
}

// CheckTimeouts aborts every Ongoing transaction older than its timeout
// (with a bumped epoch) and finishes every Prepare one now; the
// background loop calls it every CheckInterval.
func (c *TxnCoordinator) CheckTimeouts(ctx context.Context) {
	c.mu.Lock()
	entries := make([]*txnEntry, 0, len(c.mu.txns))
	for _, e := range c.mu.txns {
		entries = append(entries, e)
	}
	c.mu.Unlock()
	now := time.Now().UnixMilli()
	for _, e := range entries {
		if ctx.Err() != nil {
			return
		}
		e.rw.RLock()
		m, ok := e.m, e.ok
		e.rw.RUnlock()
		if !ok || !c.cached(e.id) {
			continue // another broker coordinates it now (cluster mode)
		}
		switch {
		case m.State == TxnPrepareCommit || m.State == TxnPrepareAbort:
		case m.State == TxnOngoing && now-m.StartMs > int64(m.TimeoutMs):
		default:
			continue
		}
		if !e.op.TryLock() {
			continue // an operation is running on it; next round
		}
		if e.gone.Load() {
			e.op.Unlock()
			continue
		}
		m, _, err := c.get(ctx, e)
		switch {
		case err != nil:
		case m.State == TxnOngoing && now-m.StartMs > int64(m.TimeoutMs):
			c.log.Info("aborting timed-out transaction", "transactional_id", e.id, "producer_id", m.ProducerID, "timeout_ms", m.TimeoutMs)
			err = c.end(ctx, e, false, fenceProducer)
		case m.State == TxnPrepareCommit || m.State == TxnPrepareAbort:
			err = c.finish(ctx, e)
		}
		e.op.Unlock()
		if err != nil && ctx.Err() == nil {
			c.log.Warn("transaction cleanup failed; retried next round", "transactional_id", e.id, "err", err)
		}
	}
}
