package kafka

// Incremental fetch sessions (KIP-227), Fetch v7+.
//
//	id 0, epoch -1   no session: a full fetch of the request's partitions
//	id 0, epoch 0    new session holding the request's partitions; full answer
//	id N, epoch -1   close session N; a full, sessionless fetch
//	id N, epoch 0    close session N and open a new one
//	id N, epoch E>0  incremental: E must be the session's next epoch; the
//	                 request adds/updates partitions, forgotten topics
//	                 remove them, and the answer holds only partitions with
//	                 records, an error, or a changed high watermark or log
//	                 start offset.
//
// A session is used by one request at a time: begin returns it locked.

import (
	"math/rand/v2"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// maxFetchSessions bounds the cache; the least recently used session is
// evicted (its client gets FETCH_SESSION_ID_NOT_FOUND and starts over).
const maxFetchSessions = 1000

type tp struct {
	topic     string
	partition int32
}

// sessionPart is one partition's fetch state, in or out of a session.
type sessionPart struct {
	topic     string
	partition int32
	offset    int64
	maxBytes  int32

	// What the client last saw, for incremental answers.
	seen          bool
	hw, logStart  int64
	lastErrorCode int16
}

// changed reports whether rp, with records bytes of record batches, must be
// in an incremental answer.
func (sp *sessionPart) changed(rp kmsg.FetchResponseTopicPartition, records int) bool {
	return !sp.seen || records > 0 || len(rp.RecordBatches) > 0 || rp.ErrorCode != 0 || rp.ErrorCode != sp.lastErrorCode ||
		rp.HighWatermark != sp.hw || rp.LogStartOffset != sp.logStart
}

// sent records what the client was told.
func (sp *sessionPart) sent(rp kmsg.FetchResponseTopicPartition) {
	sp.seen = true
	sp.hw, sp.logStart, sp.lastErrorCode = rp.HighWatermark, rp.LogStartOffset, rp.ErrorCode
}

type fetchSession struct {
	id int32
	mu sync.Mutex // held by the request using the session

	// Guarded by mu.
	epoch int32 // next expected request epoch
	parts []*sessionPart
	index map[tp]*sessionPart
	used  time.Time
}

type fetchSessions struct {
	mu       sync.Mutex
	sessions map[int32]*fetchSession
}

func newFetchSessions() *fetchSessions {
	return &fetchSessions{sessions: make(map[int32]*fetchSession)}
}

// begin applies req's session fields and returns the partitions to fetch,
// the session (locked; nil if none) and whether the answer is incremental.
func (fs *fetchSessions) begin(req *kmsg.FetchRequest) (parts []*sessionPart, sess *fetchSession, incremental bool, err error) {
	full := func() []*sessionPart {
		var out []*sessionPart
		for _, t := range req.Topics {
			for _, p := range t.Partitions {
				out = append(out, &sessionPart{topic: t.Topic, partition: p.Partition, offset: p.FetchOffset, maxBytes: p.PartitionMaxBytes})
			}
		}
		return out
	}
	if req.Version < 7 {
		return full(), nil, false, nil
	}
	id, epoch := req.SessionID, req.SessionEpoch
	switch {
	case id == 0 && epoch == -1:
		return full(), nil, false, nil
	case id == 0 && epoch == 0:
		sess = fs.create()
	case id == 0:
		return nil, nil, false, errFetchSessionEpoch
	case epoch == -1:
		fs.remove(id)
		return full(), nil, false, nil
	case epoch == 0:
		fs.remove(id)
		sess = fs.create()
	default:
		if sess = fs.get(id); sess == nil {
			return nil, nil, false, errFetchSessionID
		}
		sess.mu.Lock()
		if sess.epoch != epoch {
			sess.mu.Unlock()
			return nil, nil, false, errFetchSessionEpoch
		}
		incremental = true
	}
	if !incremental {
		sess.mu.Lock()
		sess.parts = full()
		sess.index = make(map[tp]*sessionPart, len(sess.parts))
		for _, sp := range sess.parts {
			sess.index[tp{sp.topic, sp.partition}] = sp
		}
	} else {
		for _, ft := range req.ForgottenTopics {
			for _, p := range ft.Partitions {
				delete(sess.index, tp{ft.Topic, p})
			}
		}
		for _, t := range req.Topics {
			for _, p := range t.Partitions {
				k := tp{t.Topic, p.Partition}
				sp := sess.index[k]
				if sp == nil {
					sp = &sessionPart{topic: t.Topic, partition: p.Partition}
					sess.index[k] = sp
				}
				sp.offset, sp.maxBytes = p.FetchOffset, p.PartitionMaxBytes
			}
		}
		// Rebuild the ordered list: kept partitions in place, new ones at
		// the end.
		kept := sess.parts[:0]
		inList := make(map[*sessionPart]bool, len(sess.parts))
		for _, sp := range sess.parts {
			if sess.index[tp{sp.topic, sp.partition}] == sp {
				kept = append(kept, sp)
				inList[sp] = true
			}
		}
		for _, t := range req.Topics {
			for _, p := range t.Partitions {
				if sp := sess.index[tp{t.Topic, p.Partition}]; !inList[sp] {
					kept = append(kept, sp)
					inList[sp] = true
				}
			}
		}
		sess.parts = kept
	}
	sess.epoch = nextEpoch(epoch)
	sess.used = time.Now()
	return sess.parts, sess, incremental, nil
}

// nextEpoch follows Kafka: epochs wrap from MaxInt32 to 1 (0 means "new").
func nextEpoch(e int32) int32 {
	if e == 1<<31-1 {
		return 1
	}
	return e + 1
}

func (fs *fetchSessions) create() *fetchSession {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	if len(fs.sessions) >= maxFetchSessions {
		var oldest *fetchSession
		for _, s := range fs.sessions {
			// A session in use is skipped rather than waited for.
			if s.mu.TryLock() {
				if oldest == nil || s.used.Before(oldest.used) {
					oldest = s
				}
				s.mu.Unlock()
			}
		}
		if oldest != nil {
			delete(fs.sessions, oldest.id)
		}
	}
	for {
		id := rand.Int32()
		if _, dup := fs.sessions[id]; id != 0 && !dup {
			s := &fetchSession{id: id}
			fs.sessions[id] = s
			return s
		}
	}
}

func (fs *fetchSessions) get(id int32) *fetchSession {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	return fs.sessions[id]
}

func (fs *fetchSessions) remove(id int32) {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	delete(fs.sessions, id)
}
