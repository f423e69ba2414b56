package broker

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"sync"
)

// ProducerAccess is a producer's access mode on a partition (Pulsar's
// ProducerAccessMode; protocol-neutral).
type ProducerAccess int

const (
	// AccessShared: any number of shared producers, none exclusive.
	AccessShared ProducerAccess = iota
	// AccessExclusive: the only producer; refused while any other exists.
	AccessExclusive
	// AccessWaitForExclusive: queue until exclusive access is possible.
	AccessWaitForExclusive
	// AccessExclusiveWithFencing: take exclusive access, fencing (closing)
	// every other producer.
	AccessExclusiveWithFencing
)

// Producer registration errors (besides ErrInUse for a duplicate name).
var (
	// ErrProducerBusy: a shared producer meets an exclusive one, or the name is taken.
	ErrProducerBusy = fmt.Errorf("%w: producer busy", ErrInUse)
)

// producerAccess is the access-mode state of a partition's attached
// producers: unique names, the exclusive producer and the topic epoch.
// It lives in the Partition (guarded by Partition.prodMu) and keeps
// nothing on disk: epochs restart at 0 when the partition is loaded again.
type producerAccess struct {
	names     map[string]*ProducerHandle
	exclusive *ProducerHandle
	epoch     uint64
	// waiters are WaitForExclusive requests in arrival order.
	waiters []chan struct{}
}

// GenerateProducerName returns a unique producer name (prefix-<random>).
func GenerateProducerName(prefix string) string {
	var raw [6]byte
	rand.Read(raw[:])
	return prefix + "-" + hex.EncodeToString(raw[:])
}

// ProducerSpec describes a producer attaching to a partition
// (Partition.AddProducer).
type ProducerSpec struct {
	// Info is what statistics report; Info.Name is the producer's name,
	// unique on the partition.
	Info ProducerInfo
	// Access is the producer's access mode.
	Access ProducerAccess
	// TopicEpoch is the epoch a reconnecting exclusive producer had; 0 is
	// an epoch, pass -1 when the client gave none.
	TopicEpoch int64
	// OnFenced is called once, without locks held, by the AddProducer of
	// an ExclusiveWithFencing producer that takes over; the protocol then
	// closes this producer (its name is free already).
	OnFenced func()
	// Queued, if not nil, is called once when an AccessWaitForExclusive
	// request starts waiting (the protocol tells the client to wait).
	Queued func()
}

// ProducerHandle is a producer attached to a partition: registered under
// its name and access mode, counted as a user of the partition
// (DeleteTopic without force is refused while it is attached) and listed
// in the statistics. Close detaches it.
type ProducerHandle struct {
	p    *Partition
	name string
	// Access is the producer's access mode.
	Access ProducerAccess
	// Epoch is the partition's topic epoch at registration (exclusive modes).
	Epoch    uint64
	onFenced func()
	detach   func()
	unlist   func()
	once     sync.Once
}

// Name is the producer's name.
func (h *ProducerHandle) Name() string { return h.name }

// AddProducer attaches a producer to the partition (as Pulsar's topic owns
// its producers, whichever protocol they speak). Errors: ErrProducerBusy
// (the name is taken, or a shared producer while an exclusive one
// exists), ErrProducerFenced (exclusive access refused, or a reconnecting
// exclusive producer whose topic epoch is stale), ErrClosed (the partition
// closed). AccessWaitForExclusive blocks until access is granted or ctx
// ends.
func (p *Partition) AddProducer(ctx context.Context, spec ProducerSpec) (*ProducerHandle, error) {
	name, access, topicEpoch, queued := spec.Info.Name, spec.Access, spec.TopicEpoch, spec.Queued
	for {
		p.prodMu.Lock()
		select {
		case <-p.done:
			p.prodMu.Unlock()
			return nil, fmt.Errorf("%w: %s", ErrClosed, p.Name())
		default:
		}
		pp := &p.prods
		if pp.names == nil {
			pp.names = make(map[string]*ProducerHandle)
		}
		if _, dup := pp.names[name]; dup {
			p.prodMu.Unlock()
			return nil, fmt.Errorf("%w: producer name %q is already connected on %s", ErrProducerBusy, name, p.Name())
		}
		h := &ProducerHandle{p: p, name: name, Access: access, onFenced: spec.OnFenced}
		var fenced []*ProducerHandle
		switch access {
		case AccessShared:
			if pp.exclusive != nil {
				p.prodMu.Unlock()
				return nil, fmt.Errorf("%w: %s has an exclusive producer", ErrProducerBusy, p.Name())
			}
		case AccessExclusive, AccessWaitForExclusive:
			if topicEpoch >= 0 && uint64(topicEpoch) < pp.epoch {
				p.prodMu.Unlock()
				return nil, fmt.Errorf("%w: topic epoch %d < %d", ErrProducerFenced, topicEpoch, pp.epoch)
			}
			if len(pp.names) > 0 {
				if access == AccessExclusive {
					p.prodMu.Unlock()
					return nil, fmt.Errorf("%w: %s has other producers", ErrProducerFenced, p.Name())
				}
				wait := make(chan struct{})
				pp.waiters = append(pp.waiters, wait)
				p.prodMu.Unlock()
				if queued != nil {
					queued()
					queued = nil
				}
				select {
				case <-wait:
					continue
				case <-ctx.Done():
					p.prodMu.Lock()
					for i, w := range pp.waiters {
						if w == wait {
							pp.waiters = append(pp.waiters[:i], pp.waiters[i+1:]...)
							break
						}
					}
					p.prodMu.Unlock()
					p.wakeNextProducer()
					return nil, ctx.Err()
				}
			}
		case AccessExclusiveWithFencing:
			for _, other := range pp.names {
				fenced = append(fenced, other)
			}
			clear(pp.names)
			pp.exclusive = nil
		}
		if access != AccessShared {
			switch {
			case topicEpoch > int64(pp.epoch):
				pp.epoch = uint64(topicEpoch) // epochs are not persisted: trust a reconnecting producer
			case topicEpoch < 0 || access == AccessExclusiveWithFencing:
				pp.epoch++
			}
			pp.exclusive = h
		}
		h.Epoch = pp.epoch
		// Complete before it is published: a producer fencing it may
		// close it as soon as prodMu is released.
		h.detach = p.Attach()
		h.unlist = p.listProducer(spec.Info)
		pp.names[name] = h
		p.prodMu.Unlock()
		for _, f := range fenced {
			// The fenced producer's name is free already; its handle
			// still holds the partition and its statistics entry until
			// the protocol closes it.
			if f.onFenced != nil {
				f.onFenced()
			}
		}
		return h, nil
	}
}

// Close detaches the producer (idempotent) and lets a waiting exclusive
// producer in.
func (h *ProducerHandle) Close() {
	h.once.Do(func() {
		p := h.p
		p.prodMu.Lock()
		if p.prods.names[h.name] == h {
			delete(p.prods.names, h.name)
		}
		if p.prods.exclusive == h {
			p.prods.exclusive = nil
		}
		p.prodMu.Unlock()
		p.wakeNextProducer()
		h.detach()
		h.unlist()
	})
}

// wakeNextProducer lets the first WaitForExclusive request retry when the
// partition has no producers.
func (p *Partition) wakeNextProducer() {
	p.prodMu.Lock()
	defer p.prodMu.Unlock()
	pp := &p.prods
	if len(pp.names) > 0 || len(pp.waiters) == 0 {
		return
	}
	close(pp.waiters[0])
	pp.waiters = pp.waiters[1:]
}

// ProducerNames lists the names of the producers attached to p.
func (p *Partition) ProducerNames() []string {
	p.prodMu.Lock()
	defer p.prodMu.Unlock()
	var out []string
	for n := range p.prods.names {
		out = append(out, n)
	}
	return out
}
