package broker

import (
	"encoding/binary"
	"math/bits"
)

// Key_Shared routing, as Pulsar's HashRangeAutoSplitStickyKeyConsumerSelector
// does it: a key's hash is Murmur3_32(key) & MaxInt32, its slot that hash
// modulo keyHashRange. The slot space is divided into ranges, each owned by
// one consumer and named by its inclusive upper bound. The first consumer owns
// everything; each new consumer takes the lower half of the biggest range
// (the lowest such range on ties). A leaving consumer's range goes to the
// owner of the next range up, or, for the topmost range, the next one down.

// keyHashRange is Pulsar's default subscriptionKeySharedHashRangeSize (2<<15).
const keyHashRange = 65536

// keySlot returns the hash slot of a Key_Shared routing key.
func keySlot(key []byte) int {
	return int(murmur3x86_32(key, 0)&0x7fffffff) % keyHashRange
}

// keyRange is one consumer's slots: (previous range's hi, hi].
type keyRange struct {
	hi int
	c  *DispatchConsumer
}

// addKeyRange gives c a range; rs is sorted by hi.
func addKeyRange(rs []keyRange, c *DispatchConsumer) []keyRange {
	if len(rs) == 0 {
		return []keyRange{{hi: keyHashRange, c: c}}
	}
	best, bestSize, lo := 0, -1, 0
	for i, r := range rs {
		if size := r.hi - lo; size > bestSize {
			best, bestSize = i, size
		}
		lo = r.hi
	}
	if bestSize < 2 {
		// Nothing left to split: the consumer gets no keys.
		return rs
	}
	split := rs[best].hi - bestSize>>1
	rs = append(rs, keyRange{})
	copy(rs[best+1:], rs[best:])
	rs[best] = keyRange{hi: split, c: c}
	return rs
}

// removeKeyRange hands c's range to a neighbour.
func removeKeyRange(rs []keyRange, c *DispatchConsumer) []keyRange {
	for i := 0; i < len(rs); i++ {
		if rs[i].c != c {
			continue
		}
		if i == len(rs)-1 && i > 0 {
			// The topmost range keeps its bound; its lower neighbour takes it.
			rs[i].c = rs[i-1].c
			rs = append(rs[:i-1], rs[i:]...)
		} else {
			rs = append(rs[:i], rs[i+1:]...)
		}
		i--
	}
	return rs
}

// keyOwner returns the consumer owning slot, or nil.
func keyOwner(rs []keyRange, slot int) *DispatchConsumer {
	for _, r := range rs {
		if slot <= r.hi {
			return r.c
		}
	}
	return nil
}

// murmur3x86_32 is MurmurHash3's x86 32-bit variant (Pulsar's Murmur3_32Hash).
func murmur3x86_32(data []byte, seed uint32) uint32 {
	const c1, c2 = 0xcc9e2d51, 0x1b873593
	h := seed
	n := len(data)
	for len(data) >= 4 {
		k := binary.LittleEndian.Uint32(data)
		k *= c1
		k = bits.RotateLeft32(k, 15)
		k *= c2
		h ^= k
		h = bits.RotateLeft32(h, 13)
		h = h*5 + 0xe6546b64
		data = data[4:]
	}
	var k uint32
	switch len(data) {
	case 3:
		k ^= uint32(data[2]) << 16
		fallthrough
	case 2:
		k ^= uint32(data[1]) << 8
		fallthrough
	case 1:
		k ^= uint32(data[0])
		k *= c1
		k = bits.RotateLeft32(k, 15)
		k *= c2
		h ^= k
	}
	h ^= uint32(n)
	h ^= h >> 16
	h *= 0x85ebca6b
	h ^= h >> 13
	h *= 0xc2b2ae35
	h ^= h >> 16
	return h
}
