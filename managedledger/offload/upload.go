package offload

import (
	"context"
	"crypto/md5"
	"encoding/hex"
	"fmt"

	"github.com/kopernik-io/kopernik/objectstore"
)

// Upload writes the data object, then the index object, and verifies both
// with Head: the sizes must match and, where the store reports an MD5
// ETag (a 32-hex-digit one: S3 and the stores mirroring it, for
// single-part PUTs), so must the digests. Only a nil return lets the
// caller mark the offload complete.
func Upload(ctx context.Context, store objectstore.Store, dataKey, indexKey string, data, index []byte) error {
	if err := store.Put(ctx, dataKey, data); err != nil {
		return fmt.Errorf("offload: upload: %w", err)
	}
	if err := store.Put(ctx, indexKey, index); err != nil {
		return fmt.Errorf("offload: upload: %w", err)
	}
	for _, o := range []struct {
		key string
		b   []byte
	}{{dataKey, data}, {indexKey, index}} {
		h, err := store.Head(ctx, o.key)
		if err != nil {
			return fmt.Errorf("offload: verify: %w", err)
		}
		if h.Size != int64(len(o.b)) {
			return fmt.Errorf("offload: verify %s: %d bytes stored, %d written", o.key, h.Size, len(o.b))
		}
		if isMD5(h.ETag) {
			sum := md5.Sum(o.b)
			if h.ETag != hex.EncodeToString(sum[:]) {
				return fmt.Errorf("offload: verify %s: stored MD5 %s differs from the written one %x", o.key, h.ETag, sum)
			}
		}
	}
	return nil
}

func isMD5(etag string) bool {
	if len(etag) != 32 {
		return false
	}
	for _, c := range etag {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}
