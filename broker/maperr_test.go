package broker

import (
	"errors"
	"fmt"
	"testing"

	"github.com/kopernik-io/kopernik/managedledger"
	"github.com/kopernik-io/kopernik/objectstore"
)

// TestMapLedgerErrStoreOutage: an object store outage outside a write (a
// cluster broker rebuilding a partition from the object log) maps to the
// retriable ErrTieredUnavailable; a failed write stays ErrStorage, and an
// error that is not an outage is left alone.
func TestMapLedgerErrStoreOutage(t *testing.T) {
	outage := fmt.Errorf("objlog: read wal/x: %w: get wal/x: connection refused", objectstore.ErrUnavailable)
	open := fmt.Errorf("managedledger: l: replay from the object log: %w", outage)
	if err := mapLedgerErr(open); !errors.Is(err, ErrTieredUnavailable) || !errors.Is(err, objectstore.ErrUnavailable) {
		t.Errorf("open during a store outage mapped to %v, want ErrTieredUnavailable wrapping the cause", err)
	}
	write := fmt.Errorf("%w: l: %w", managedledger.ErrStorage, outage)
	if err := mapLedgerErr(write); !errors.Is(err, ErrStorage) || errors.Is(err, ErrTieredUnavailable) {
		t.Errorf("failed write mapped to %v, want ErrStorage only", err)
	}
	other := errors.New("managedledger: l: corrupt frame")
	if err := mapLedgerErr(other); err != other {
		t.Errorf("non-outage error mapped to %v, want it unchanged", err)
	}
}
