package managedledger

import (
	"context"
	"crypto/md5"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"

	"github.com/kopernik-io/kopernik/objectstore"
	"github.com/kopernik-io/kopernik/segment"
)

// dirStore is an objectstore.Store over a local directory, one file per
// object. It exists ONLY for TestModel's speed: most model variants run
// hundreds of rounds of hundreds of operations, and a round against a real
// S3 server costs HTTP round trips for every block. The osfs-s3 variant
// (and every other tiered-storage test) runs against a real S3 server;
// this stand-in is never used outside the model test.
type dirStore struct {
	root string
	mu   sync.Mutex // one writer at a time: Put is write + rename
}

func (d *dirStore) path(key string) string { return filepath.Join(d.root, filepath.FromSlash(key)) }

func (d *dirStore) Put(_ context.Context, key string, data []byte) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	p := d.path(key)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return err
	}
	tmp := p + ".tmp"
	if err := os.WriteFile(tmp, data, 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, p)
}

func (d *dirStore) Get(_ context.Context, key string, off, n int64) ([]byte, error) {
	b, err := os.ReadFile(d.path(key))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%w: %s", objectstore.ErrNotFound, key)
	}
	if err != nil {
		return nil, err
	}
	if off > int64(len(b)) {
		return nil, fmt.Errorf("dirstore: offset %d beyond %d", off, len(b))
	}
	end := int64(len(b))
	if n >= 0 {
		end = min(end, off+n)
	}
	return b[off:end], nil
}

func (d *dirStore) Head(_ context.Context, key string) (objectstore.Info, error) {
	b, err := os.ReadFile(d.path(key))
	if errors.Is(err, fs.ErrNotExist) {
		return objectstore.Info{}, fmt.Errorf("%w: %s", objectstore.ErrNotFound, key)
	}
	if err != nil {
		return objectstore.Info{}, err
	}
	sum := md5.Sum(b)
	return objectstore.Info{Key: key, Size: int64(len(b)), ETag: hex.EncodeToString(sum[:])}, nil
}

func (d *dirStore) Delete(_ context.Context, key string) error {
	if err := os.Remove(d.path(key)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return nil
}

func (d *dirStore) List(_ context.Context, prefix string) ([]objectstore.Info, error) {
	var out []objectstore.Info
	err := filepath.WalkDir(d.root, func(p string, e fs.DirEntry, err error) error {
		if err != nil || e.IsDir() || strings.HasSuffix(p, ".tmp") {
			return err
		}
		rel, _ := filepath.Rel(d.root, p)
		key := filepath.ToSlash(rel)
		if strings.HasPrefix(key, prefix) {
			info, _ := e.Info()
			out = append(out, objectstore.Info{Key: key, Size: info.Size()})
		}
		return nil
	})
	sort.Slice(out, func(i, j int) bool { return out[i].Key < out[j].Key })
	return out, err
}

// opOffload offloads sealed ledgers (all, or those before a random one)
// and, half of the time, deletes their local copies at once. The model
// does not change: every read must return the same entries whichever copy
// serves them (the invariants are checked by the read operations and
// the state checks that follow).
func (r *modelRig) opOffload() {
	st := r.ml.Stats()
	before := Latest
	if n := len(st.Ledgers); n > 1 && r.rng.IntN(2) == 0 {
		before = Position{LedgerID: st.Ledgers[r.rng.IntN(n)].LedgerID}
	}
	err := r.ml.Offload(r.ctx, before)
	delLocal := r.rng.IntN(2) == 0
	r.log("offload before %v (delete local %v) -> %v", before, delLocal, err)
	if err != nil && strings.Contains(err.Error(), "ExistingObjectIsDirectory") {
		// versitygw's posix backend answers a PUT 409 "Existing Object is
		// a directory" now and then when it races its own removal of an
		// emptied directory (objects of deleted ledgers went just before):
		// a failed upload, as from any store error. The ledgers stay
		// local, the next offload retries, and reads keep being checked.
		return
	}
	if err != nil {
		r.fail("Offload: %v", err)
	}
	if s := r.ml.OffloadStatus(); s.State != OffloadSuccess {
		r.fail("offload status %+v", s)
	}
	for _, l := range r.ml.Stats().Ledgers {
		if l.Sealed && l.LedgerID < before.LedgerID && !l.Offloaded {
			r.fail("ledger %d not offloaded by an offload before %v", l.LedgerID, before)
		}
	}
	if !delLocal {
		return
	}
	if err := r.ml.DeleteOffloadedLocal(r.ctx); err != nil {
		r.fail("DeleteOffloadedLocal: %v", err)
	}
	local := map[int64]bool{}
	names, _ := r.factoryFS().List(filepath.Join(r.dir, filepath.FromSlash(modelName)))
	for _, n := range names {
		if id, ok := segment.ParseName(n); ok && strings.HasSuffix(n, ".log") {
			local[id] = true
		}
	}
	for _, l := range r.ml.Stats().Ledgers {
		if l.Offloaded && (!l.LocalDeleted || local[l.LedgerID]) {
			r.fail("ledger %d offloaded, local copy still there (recorded deleted %v, file %v)", l.LedgerID, l.LocalDeleted, local[l.LedgerID])
		}
	}
}

func (r *modelRig) factoryFS() segment.FS {
	if r.fs != nil {
		return r.fs
	}
	return segment.OSFS{}
}
