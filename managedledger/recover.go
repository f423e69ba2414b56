package managedledger

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"github.com/kopernik-io/kopernik/segment"
)

// Recovery from a storage failure, in place.
//
// A failed write, fsync, seal or ledger creation fails the managed ledger
// (failLocked): appends are refused with ErrStorage, reads of visible
// entries keep working. The ledger's syncer goroutine then retries
// recoverStorage every FactoryOptions.StorageRetryInterval (backing off to
// five times that) until it succeeds or the ledger closes. Running it on the
// syncer means that no group fsync is in flight during recovery and that
// Close (which waits for the syncer) never races with it: the active
// ledger's file is only ever open for writing through one handle.
//
// recoverStorage re-runs recovery on the active ledger: it abandons the
// failed segment handle (which stops its writes and preallocation), cuts
// the log file back to the visible entries (everything acknowledged, as
// appends are acknowledged only once visible, and nothing that was not),
// reopens it with segment.Open (which re-reads the file, verifies every
// record after the last index point, truncates a torn tail and fsyncs: the
// page cache of a failed fsync is not trusted), rewrites the ledger list
// and only then lets appends continue, with the next entry id and message
// index after the last visible entry. Readers keep reading visible entries
// throughout; a read planned on the abandoned handle gets segment.ErrClosed
// and is planned again on the new one.

// storageError wraps an I/O failure of ledger name as ErrStorage, and as
// ErrDiskFull too when the disk is full.
func storageError(name string, err error) error {
	if errors.Is(err, ErrStorage) {
		return err
	}
	if errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT) {
		return fmt.Errorf("%w: %w: %s: %w", ErrStorage, ErrDiskFull, name, err)
	}
	return fmt.Errorf("%w: %s: %w", ErrStorage, name, err)
}

// errRetryLater marks a recovery attempt that should be retried.
var errRetryLater = errors.New("managedledger: recovery failed, retrying")

// recoverStorage tries once to recover a failed ledger (see above). It
// runs on the syncer goroutine only. nil: recovered or nothing to do;
// errRetryLater: try again later; any other error: give up (fenced).
func (ml *ManagedLedger) recoverStorage() error {
	if ml.journal != nil {
		// Journal mode: appends are acknowledged through the journal, so
		// it must be healthy first; and every completion of this ledger
		// in flight there must have run before the waiters are judged.
		if err := ml.journal.err(); err != nil {
			ml.logRetry(-1, err)
			return errRetryLater
		}
		ml.journal.barrier()
	}
	ml.mu.Lock()
	if ml.objlogBusyLocked() {
		// Cluster mode: outcomes of appends still in flight in the object
		// log decide what is committed; judge nothing before they are in.
		ml.mu.Unlock()
		return errRetryLater
	}
	if ml.mu.closed || ml.mu.failed == nil {
		ml.mu.Unlock()
		return nil
	}
	// Waiters not yet completed belong to the failed incarnation: judge
	// them now, before anything is reopened (this is the syncer, so no
	// fsync is in flight).
	for _, w := range ml.mu.waiters {
		ml.finishLocked(w, ml.mu.failed)
	}
	ml.mu.waiters = nil
	if errors.Is(ml.mu.failed, ErrFenced) {
		ml.mu.Unlock()
		return ErrFenced // another owner: only a reopen may continue
	}
	l := ml.activeLocked()
	old := l.seg
	ml.mu.Unlock()

	// No write through old from here on; no fsync is in flight (this is the
	// syncer, and appends, rollovers and syncs all stop at the failure).
	old.Abandon()

	ml.mu.Lock()
	// INVARIANT: an acknowledged entry is visible (Append returns only
	// then), so l.entries/l.bytes cover everything acknowledged in l.
	wantEntries, size := l.entries, max(l.bytes, segment.HeaderSize)
	unsynced, firstIndex, created := l.metaUnsynced, l.firstIndex, l.created
	cause := ml.mu.failed
	since := ml.mu.failedAt
	ml.mu.Unlock()

	seg, err := ml.reopenActive(l.id, size)
	if err != nil && unsynced && ml.journal != nil &&
		(errors.Is(err, fs.ErrNotExist) || errors.Is(err, segment.ErrNoHeader)) {
		// Never synced, so never created (segment.CreateUnsynced defers
		// the file to its first sync, which is what failed) or torn: the
		// journal holds every entry of it, and recoverFromJournal appends
		// them to a new file from entry 0.
		seg, err = segment.CreateUnsynced(ml.segOpts, l.id, firstIndex, created)
	}
	if err == nil && ml.journal != nil {
		err = ml.recoverFromJournal(seg, wantEntries)
		if err != nil {
			seg.Close()
		}
	}
	if err == nil {
		if d := seg.Durable(); d.Entries != wantEntries {
			seg.Close()
			// Fewer: acknowledged entries are gone (SyncInterval and a
			// failed fsync dropped their pages). Reopening would reuse
			// their indexes; keep refusing appends instead.
			err = fmt.Errorf("%w: ledger %d holds %d entries after recovery, %d were visible", ErrCorrupt, l.id, d.Entries, wantEntries)
		}
	}
	if err != nil {
		ml.logRetry(l.id, err)
		return errRetryLater
	}

	ml.mu.Lock()
	if ml.mu.closed {
		ml.mu.Unlock()
		seg.Close()
		return nil
	}
	d := seg.Durable()
	l.seg = seg
	// A rollover that failed after sealing l but before creating its
	// successor leaves l sealed in memory; the list still says active and
	// the reopened file accepts appends again.
	l.sealed, l.closed = false, time.Time{}
	l.entries, l.bytes, l.maxTs = d.Entries, d.Size, d.MaxTimestamp
	ml.mu.next = d.NextIndex
	ml.mu.nextEntry = d.Entries
	ml.cacheClearLocked()
	// The list may be behind (a rollover failed while recording it).
	if err := ml.persistLocked(context.Background()); err != nil {
		l.seg = old // keep the abandoned handle for reads; try again later
		ml.mu.Unlock()
		seg.Close()
		ml.logRetry(l.id, err)
		if errors.Is(err, ErrFenced) {
			return err
		}
		return errRetryLater
	}
	ml.mu.failed = nil
	ml.mu.failedAt = time.Time{}
	ml.mu.Unlock()
	ml.recoverAttempts = 0
	old.Close() // after reads in progress on it finish
	ml.factory.storageRecoveries.Add(1)
	ml.log.Info("managedledger: recovered from storage failure; appends resumed",
		"ledger", l.id, "entries", d.Entries, "next_index", d.NextIndex, "failed_for", time.Since(since).Round(time.Millisecond), "cause", cause)
	return nil
}

// recoverFromJournal (journal mode) gives seg, the reopened active
// segment, back the acknowledged entries its file lost (a failed fsync
// drops dirty pages) from the journal, then durably cuts the journal's
// records of this ledger from entry want on: appends that failed may sit
// in the journal, and a later replay must never bring them back, as the
// entry ids are reused from want on.
func (ml *ManagedLedger) recoverFromJournal(seg *segment.Segment, want int64) error {
	d := seg.Durable()
	if d.Entries < want {
		recs, err := ml.journal.scan(ml.name)
		if err != nil {
			return err
		}
		tail, err := journalTail(recs, d.LedgerID, d.Entries)
		if err != nil {
			return err
		}
		n := 0
		for i := range tail {
			if tail[i].EntryID >= want {
				break
			}
			if _, err := seg.Append(&tail[i]); err != nil {
				return err
			}
			n++
		}
		if _, err := seg.Sync(); err != nil {
			return err
		}
		ml.log.Info("managedledger: restored acknowledged entries from the journal", "ledger", d.LedgerID, "from_entry", d.Entries, "entries", n)
	}
	return ml.journal.cut(ml.name, d.LedgerID, want)
}

// logRetry logs a failed recovery attempt: the first of an episode and
// then every 12th (about a minute apart at the default interval) at Warn,
// the others at Debug, so that a disk that stays full does not flood the log.
func (ml *ManagedLedger) logRetry(id int64, err error) {
	ml.recoverAttempts++
	lvl := slog.LevelDebug
	if ml.recoverAttempts%12 == 1 {
		lvl = slog.LevelWarn
	}
	ml.log.Log(context.Background(), lvl, "managedledger: storage recovery failed; appends still refused",
		"ledger", id, "attempt", ml.recoverAttempts, "err", err)
}

// reopenActive cuts ledger id's log back to size bytes and reopens it for
// appends (segment recovery re-reads and verifies what the file holds).
func (ml *ManagedLedger) reopenActive(id, size int64) (*segment.Segment, error) {
	path := filepath.Join(ml.segOpts.Dir, segment.LogName(id))
	f, err := ml.factory.fs.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return nil, err
	}
	cur, err := f.Size()
	if err == nil && cur > size {
		if err = f.Truncate(size); err == nil {
			err = f.Sync()
		}
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, err
	}
	seg, err := segment.Open(ml.segOpts, id, false)
	if err != nil {
		return nil, err
	}
	// The file may have been created without an fsync and never synced
	// (segment.CreateUnsynced): its directory entry becomes durable here,
	// as the first sync of the failed handle would have made it.
	if err := ml.factory.fs.SyncDir(ml.segOpts.Dir); err != nil {
		seg.Close()
		return nil, err
	}
	// Recovery itself mostly truncates, which works on a full disk too:
	// only accept appends again once writes fit.
	if err := seg.Reserve(recoveryReserve); err != nil {
		seg.Close()
		return nil, fmt.Errorf("reserving %d bytes: %w", recoveryReserve, err)
	}
	return seg, nil
}

// recoveryReserve is how much a recovering ledger preallocates (zeros,
// fsynced) before it accepts appends again.
const recoveryReserve = 64 << 10

// StorageFailure reports the storage failure that currently stops appends
// (nil: none) and since when.
func (ml *ManagedLedger) StorageFailure() (since time.Time, err error) {
	ml.mu.Lock()
	defer ml.mu.Unlock()
	return ml.mu.failedAt, ml.mu.failed
}

// retryState is the syncer's recovery timer with exponential backoff.
type retryState struct {
	timer    *time.Timer
	interval time.Duration
	base     time.Duration
}

// c is the timer's channel, nil (never ready) while no retry is armed.
func (r *retryState) c() <-chan time.Time {
	if r.timer == nil {
		return nil
	}
	return r.timer.C
}

// failed arms the first retry after base (< 0: never).
func (r *retryState) failed(base time.Duration) {
	if r.timer != nil || base < 0 {
		return
	}
	r.base, r.interval = base, base
	r.timer = time.NewTimer(base)
}

// done takes the result of an attempt: re-arm with backoff or stop.
func (r *retryState) done(err error) {
	if !errors.Is(err, errRetryLater) {
		r.stop()
		return
	}
	r.interval = min(2*r.interval, 5*r.base)
	r.timer.Reset(r.interval)
}

func (r *retryState) stop() {
	if r.timer != nil {
		r.timer.Stop()
		r.timer = nil
	}
}
