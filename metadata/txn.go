package metadata

import (
	"bytes"
	"context"
	"errors"
	"fmt"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// Cond is one condition of a multi-record transaction.
type Cond struct {
	Path string
	// Absent requires the record not to exist (the other fields are then
	// ignored). Otherwise the record must exist and, when Version > 0, be at
	// that version.
	Absent  bool
	Version int64
	// Value, when not nil, requires the record to exist with exactly these
	// bytes. Comparing values (not versions) is what fences on records that
	// can be deleted and re-created: a re-created record starts again at
	// version 1 but carries a new value (owner records hold a timestamp).
	Value []byte
}

// Op is one write of a multi-record transaction.
type Op struct {
	Path   string
	Value  []byte
	Delete bool
}

// TxnFailedError says which conditions of a transaction did not hold; it
// wraps ErrBadVersion.
type TxnFailedError struct {
	Failed []int // indexes into the conds passed to Txn
}

func (e *TxnFailedError) Error() string {
	return fmt.Sprintf("metadata: transaction conditions %v failed", e.Failed)
}

func (e *TxnFailedError) Unwrap() error { return ErrBadVersion }

// Transactor is implemented by stores that can apply several writes under
// several conditions atomically (Etcd): all ops happen if every cond holds,
// none otherwise.
type Transactor interface {
	// Txn applies ops if every cond holds; otherwise it returns a
	// *TxnFailedError naming the conds that failed. ErrUnavailable means
	// the outcome is unknown: the caller must find out by reading.
	Txn(ctx context.Context, conds []Cond, ops []Op) error
}

// Txn is one etcd transaction; etcd bounds its size (--max-txn-ops,
// default 128 compares and 128 ops).
func (s *Etcd) Txn(ctx context.Context, conds []Cond, ops []Op) error {
	for _, c := range conds {
		if err := ValidatePath(c.Path); err != nil {
			return err
		}
	}
	for _, o := range ops {
		if err := ValidatePath(o.Path); err != nil {
			return err
		}
	}
	ctx, done, err := s.begin(ctx)
	if err != nil {
		return err
	}
	defer done()
	var cmps []clientv3.Cmp
	var elses []clientv3.Op
	for _, c := range conds {
		switch {
		case c.Absent:
			cmps = append(cmps, clientv3.Compare(clientv3.CreateRevision(c.Path), "=", 0))
			elses = append(elses, clientv3.OpGet(c.Path))
			continue
		case c.Version > 0:
			cmps = append(cmps, clientv3.Compare(clientv3.Version(c.Path), "=", c.Version))
		case c.Value == nil || len(c.Value) == 0:
			cmps = append(cmps, clientv3.Compare(clientv3.CreateRevision(c.Path), ">", 0))
		}
		// etcd compares an absent key as an empty value, so a non-empty
		// value compare also requires existence, in one compare (etcd
		// bounds compares per transaction).
		if c.Value != nil {
			cmps = append(cmps, clientv3.Compare(clientv3.Value(c.Path), "=", string(c.Value)))
		}
		elses = append(elses, clientv3.OpGet(c.Path))
	}
	var thens []clientv3.Op
	for _, o := range ops {
		if o.Delete {
			thens = append(thens, clientv3.OpDelete(o.Path))
		} else {
			thens = append(thens, clientv3.OpPut(o.Path, string(o.Value)))
		}
	}
	resp, err := s.kv.Txn(ctx).If(cmps...).Then(thens...).Else(elses...).Commit()
	if err != nil {
		return fail(ctx, "txn", firstPath(conds, ops), err)
	}
	if resp.Succeeded {
		return nil
	}
	fe := &TxnFailedError{}
	for i, c := range conds {
		kvs := resp.Responses[i].GetResponseRange().Kvs
		held := false
		switch {
		case c.Absent:
			held = len(kvs) == 0
		case len(kvs) == 0:
		case c.Version > 0 && kvs[0].Version != c.Version:
		case c.Value != nil && !bytes.Equal(kvs[0].Value, c.Value):
		default:
			held = true
		}
		if !held {
			fe.Failed = append(fe.Failed, i)
		}
	}
	if len(fe.Failed) == 0 {
		return errors.New("metadata: transaction failed, but every condition holds on re-read")
	}
	return fe
}

func firstPath(conds []Cond, ops []Op) string {
	if len(ops) > 0 {
		return ops[0].Path
	}
	if len(conds) > 0 {
		return conds[0].Path
	}
	return ""
}

var _ Transactor = (*Etcd)(nil)
