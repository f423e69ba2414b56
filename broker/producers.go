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

// ProducerRegistration is one live producer on a partition.
type ProducerRegistration struct {
	Name   string
	Access ProducerAccess
	// Epoch is the partition's topic epoch at registration (exclusive modes).
	Epoch uint64
	// OnFenced is called (once, without locks held) when an
	// ExclusiveWithFencing producer takes over; the protocol closes the producer.
	OnFenced func()

	part *partitionProducers
}

type partitionProducers struct {
	names     map[string]*ProducerRegistration
	exclusive *ProducerRegistration
	epoch     uint64
	// waiters are WaitForExclusive requests in arrival order.
	waiters []chan struct{}
}

// ProducerRegistry tracks live producers per partition: unique names,
// access modes and the topic epoch of exclusive producers. One registry
// serves one broker; it keeps no state on disk (epochs restart at 0).
type ProducerRegistry struct {
	mu struct {
		sync.Mutex
		parts map[*Partition]*partitionProducers
	}
}

// NewProducerRegistry returns an empty registry.
func NewProducerRegistry() *ProducerRegistry {
	r := &ProducerRegistry{}
	r.mu.parts = make(map[*Partition]*partitionProducers)
	return r
}

// GenerateProducerName returns a unique producer name (prefix-<random>).
func GenerateProducerName(prefix string) string {
	var raw [6]byte
	rand.Read(raw[:])
	return prefix + "-" + hex.EncodeToString(raw[:])
}

// Add registers a producer called name on p. Errors: ErrProducerBusy (name
// taken, or a shared producer while an exclusive one exists),
// ErrProducerFenced (exclusive access refused, or a reconnecting exclusive
// producer whose topicEpoch is stale). AccessWaitForExclusive blocks until
// access is granted or ctx ends; ready, if not nil, is called once the
// request is queued (so that the protocol can tell the client to wait).
// topicEpoch < 0 means "not given".
func (r *ProducerRegistry) Add(ctx context.Context, p *Partition, name string, access ProducerAccess, topicEpoch int64, onFenced func(), queued func()) (*ProducerRegistration, error) {
	for {
		r.mu.Lock()
		pp := r.mu.parts[p]
		if pp == nil {
			pp = &partitionProducers{names: make(map[string]*ProducerRegistration)}
			r.mu.parts[p] = pp
		}
		if _, dup := pp.names[name]; dup {
			r.mu.Unlock()
			return nil, fmt.Errorf("%w: producer name %q is already connected on %s", ErrProducerBusy, name, p.Name())
		}
		reg := &ProducerRegistration{Name: name, Access: access, OnFenced: onFenced, part: pp}
		var fenced []*ProducerRegistration
		switch access {
		case AccessShared:
			if pp.exclusive != nil {
				r.mu.Unlock()
				return nil, fmt.Errorf("%w: %s has an exclusive producer", ErrProducerBusy, p.Name())
			}
		case AccessExclusive, AccessWaitForExclusive:
			if topicEpoch >= 0 && uint64(topicEpoch) < pp.epoch {
				r.mu.Unlock()
				return nil, fmt.Errorf("%w: topic epoch %d < %d", ErrProducerFenced, topicEpoch, pp.epoch)
			}
			if len(pp.names) > 0 {
				if access == AccessExclusive {
					r.mu.Unlock()
					return nil, fmt.Errorf("%w: %s has other producers", ErrProducerFenced, p.Name())
				}
				wait := make(chan struct{})
				pp.waiters = append(pp.waiters, wait)
				r.mu.Unlock()
				if queued != nil {
					queued()
					queued = nil
				}
				select {
				case <-wait:
					continue
				case <-ctx.Done():
					r.mu.Lock()
					for i, w := range pp.waiters {
						if w == wait {
							pp.waiters = append(pp.waiters[:i], pp.waiters[i+1:]...)
							break
						}
					}
					r.mu.Unlock()
					r.wakeNext(p)
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
			pp.exclusive = reg
		}
		reg.Epoch = pp.epoch
		pp.names[name] = reg
		r.mu.Unlock()
		for _, f := range fenced {
			if f.OnFenced != nil {
				f.OnFenced()
			}
		}
		return reg, nil
	}
}

// Remove unregisters reg (idempotent) and lets a waiting exclusive producer in.
func (r *ProducerRegistry) Remove(p *Partition, reg *ProducerRegistration) {
	r.mu.Lock()
	pp := r.mu.parts[p]
	if pp == nil || pp.names[reg.Name] != reg {
		r.mu.Unlock()
		return
	}
	delete(pp.names, reg.Name)
	if pp.exclusive == reg {
		pp.exclusive = nil
	}
	r.mu.Unlock()
	r.wakeNext(p)
}

// wakeNext lets the first WaitForExclusive request retry when the partition has no producers.
func (r *ProducerRegistry) wakeNext(p *Partition) {
	r.mu.Lock()
	defer r.mu.Unlock()
	pp := r.mu.parts[p]
	if pp == nil || len(pp.names) > 0 || len(pp.waiters) == 0 {
		return
	}
	close(pp.waiters[0])
	pp.waiters = pp.waiters[1:]
}

// Producers lists the names of live producers on p.
func (r *ProducerRegistry) Producers(p *Partition) []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	if pp := r.mu.parts[p]; pp != nil {
		for n := range pp.names {
			out = append(out, n)
		}
	}
	return out
}
