package broker

// Pulsar transactions on the same coordinator as Kafka's.
//
// A Pulsar transaction is a one-shot transactional id: NEW_TXN creates the
// record "pulsar/system/txn/<n>" with a fresh producer id (InitProducerID)
// and makes it Ongoing at once (Pulsar's timeout runs from NEW_TXN, and an
// empty transaction may be committed). The wire transaction id is
// (most = coordinator id 0, least = producer id), so every later command
// finds the record through the producer id index without another lookup.
// The epoch of a Pulsar transaction is 0 until the coordinator aborts it on
// timeout (epoch 1): a late send or commit of it is then refused.
//
// Its messages are appended as Kafka transactional batches of its producer
// id, so that markers, the last stable offset, the aborted index, recovery
// and both protocols' read paths are exactly Kafka's. Its acknowledgements
// are pending TxnOffsets with Acks (individual positions) or a cumulative
// position, applied to the subscription's cursor on commit and dropped on
// abort.

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync/atomic"
	"time"
)

// pulsarTxnPrefix starts the transactional ids of Pulsar transactions;
// Kafka ids are "tenant/ns/id" of a real namespace, and "pulsar/system" is
// Pulsar's own system namespace, which Kafka clients never get as theirs.
const pulsarTxnPrefix = "pulsar/system/txn/"

var pulsarTxnSeq atomic.Int64

func isPulsarTxn(id string) bool { return strings.HasPrefix(id, pulsarTxnPrefix) }

// NewPulsarTxn starts a Pulsar transaction with the given timeout (within
// (0, MaxTimeout], else ErrInvalidTxnTimeout) and returns its producer id,
// the least significant half of the Pulsar transaction id.
func (c *TxnCoordinator) NewPulsarTxn(ctx context.Context, timeout time.Duration) (int64, error) {
	// Unique across restarts without a store round trip: the clock in
	// nanoseconds plus a process counter.
	id := fmt.Sprintf("%s%d-%d", pulsarTxnPrefix, time.Now().UnixNano(), pulsarTxnSeq.Add(1))
	pe, err := c.InitProducerID(ctx, id, timeout, ProducerIDAndEpoch{ProducerID: -1})
	if err != nil {
		return 0, err
	}
	if err := c.AddPartitions(ctx, id, pe.ProducerID, pe.Epoch, nil); err != nil {
		return 0, err
	}
	return pe.ProducerID, nil
}

// PulsarTxn is a Pulsar transaction's handle: its record's id and the
// producer id and epoch to call the coordinator with.
type PulsarTxn struct {
	ID         string
	ProducerID int64
	Epoch      int16
}

// LookupPulsarTxn returns the Pulsar transaction of producer id pid, or
// ErrTxnNotFound.
func (c *TxnCoordinator) LookupPulsarTxn(pid int64) (PulsarTxn, error) {
	c.mu.Lock()
	e := c.mu.byPID[pid]
	c.mu.Unlock()
	if e == nil || !isPulsarTxn(e.id) {
		return PulsarTxn{}, fmt.Errorf("%w: Pulsar transaction (0,%d)", ErrTxnNotFound, pid)
	}
	e.rw.RLock()
	m := e.m
	e.rw.RUnlock()
	if m.State == TxnCompleteCommit || m.State == TxnCompleteAbort {
		// Pulsar forgets an ended transaction (commands on it get
		// TransactionNotFound); the record stays for DescribeTransactions.
		return PulsarTxn{}, fmt.Errorf("%w: Pulsar transaction (0,%d) has ended (%s)", ErrTxnNotFound, pid, m.State)
	}
	return PulsarTxn{ID: e.id, ProducerID: m.ProducerID, Epoch: m.Epoch}, nil
}

// EndPulsarTxn commits or aborts a Pulsar transaction and returns once it
// is complete (markers durable, acks applied). Unlike Kafka's EndTxn, a
// transaction that has already ended (a retry, or aborted on timeout) is
// ErrTxnNotFound, as Pulsar answers.
func (c *TxnCoordinator) EndPulsarTxn(ctx context.Context, tx PulsarTxn, commit bool) error {
	e, m, err := c.opProducer(ctx, tx.ID, tx.ProducerID, tx.Epoch)
	if err != nil {
		return err
	}
	defer e.op.Unlock()
	if ended, err := c.endOrFinish(ctx, e, m, commit); ended {
		return err
	}
	if m.State == TxnCompleteCommit || m.State == TxnCompleteAbort {
		return fmt.Errorf("%w: Pulsar transaction (0,%d) has ended (%s)", ErrTxnNotFound, tx.ProducerID, m.State)
	}
	return fmt.Errorf("%w: transaction (0,%d) is %s", ErrInvalidTxnState, tx.ProducerID, m.State)
}

// AddPulsarPartitions adds partitions to a Pulsar transaction; sent[i]
// is the topic string the client named names[i] with (admin metadata
// echoes it).
func (c *TxnCoordinator) AddPulsarPartitions(ctx context.Context, tx PulsarTxn, names []TopicName, sent []string) error {
	return c.add(ctx, tx.ID, tx.ProducerID, tx.Epoch, func(m *TxnMetadata) {
		for i, p := range names {
			s := p.String()
			if !slices.Contains(m.Partitions, s) {
				m.Partitions = append(m.Partitions, s)
			}
			noteClientName(m, s, sent[i])
		}
	})
}

func noteClientName(m *TxnMetadata, full, sent string) {
	if sent == "" || sent == full {
		return
	}
	if m.ClientNames == nil {
		m.ClientNames = map[string]string{}
	}
	m.ClientNames[full] = sent
}

// CommitAcks records acknowledgements of subscription sub on partition made
// in the transaction: individual entry positions, and (cumulative non-nil)
// a cumulative ack up to and including *cumulative. They are applied to the
// cursor on commit and dropped on abort. The subscription is added to the
// transaction if it is not in it yet.
func (c *TxnCoordinator) CommitAcks(ctx context.Context, txnID string, pid int64, epoch int16, sub string, partition TopicName, sent string, positions []Position, cumulative *Position) error {
	e, _, err := c.opProducer(ctx, txnID, pid, epoch)
	if err != nil {
		return err
	}
	defer e.op.Unlock()
	name := partition.String()
	_, err = c.update(ctx, e, func(m *TxnMetadata) error {
		if err := checkProducer(*m, pid, epoch); err != nil {
			return err
		}
		if m.State != TxnOngoing {
			return fmt.Errorf("%w: transaction %q is %s", ErrInvalidTxnState, txnID, m.State)
		}
		if !slices.Contains(m.Groups, sub) {
			m.Groups = append(m.Groups, sub)
		}
		noteClientName(m, name, sent)
		i := slices.IndexFunc(m.PendingOffsets, func(o TxnOffset) bool { return o.Group == sub && o.Partition == name })
		if i < 0 {
			m.PendingOffsets = append(m.PendingOffsets, TxnOffset{Group: sub, Partition: name, NextIndex: -1})
			i = len(m.PendingOffsets) - 1
		}
		o := &m.PendingOffsets[i]
		for _, p := range positions {
			if !slices.Contains(o.Acks, p) {
				o.Acks = append(o.Acks, p)
			}
		}
		if cumulative != nil && (o.AckUpTo == nil || o.AckUpTo.Less(*cumulative)) {
			cp := *cumulative
			o.AckUpTo = &cp
		}
		return nil
	})
	return err
}

// AppendAsync is Append without waiting for durability: the batch has its
// place in the log (after every earlier AppendAsync of the partition) when
// it returns, and the checks were made under the transaction's read lock.
func (c *TxnCoordinator) AppendAsync(p *Partition, epoch int16, req AppendRequest) (*PendingAppend, error) {
	c.mu.Lock()
	e := c.mu.byPID[req.ProducerID]
	c.mu.Unlock()
	if e == nil {
		return nil, fmt.Errorf("%w: producer %d has no transactional id", ErrInvalidProducerIDMapping, req.ProducerID)
	}
	e.rw.RLock()
	defer e.rw.RUnlock()
	if err := checkTxnAppend(e.m, p, req.ProducerID, epoch); err != nil {
		return nil, err
	}
	return p.AppendAsync(req)
}

// checkTxnAppend checks a transactional batch of producer pid/epoch to p
// against the transaction's record m.
func checkTxnAppend(m TxnMetadata, p *Partition, pid int64, epoch int16) error {
	err := checkProducer(m, pid, epoch)
	if err == nil && (m.State != TxnOngoing || !slices.Contains(m.Partitions, p.Name().String())) {
		err = fmt.Errorf("%w: %s is not in an ongoing transaction of %q (state %s)", ErrInvalidTxnState, p.Name(), m.TransactionalID, m.State)
	}
	if errors.Is(err, ErrTxnFenced) {
		err = fmt.Errorf("%w: epoch %d, current %d", ErrProducerFenced, epoch, m.Epoch)
	}
	return err
}

// applyTxnAcks applies a committed transaction's Pulsar acknowledgements
// to cursor cur.
func applyTxnAcks(ctx context.Context, cur *Cursor, o TxnOffset) error {
	if o.AckUpTo != nil {
		if err := cur.MarkDelete(ctx, *o.AckUpTo); err != nil {
			return err
		}
	}
	if len(o.Acks) > 0 {
		if err := cur.Delete(ctx, o.Acks...); err != nil {
			return err
		}
	}
	return nil
}
