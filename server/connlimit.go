package server

import (
	"log/slog"
	"net"
	"sync/atomic"
	"time"

	"github.com/kopernik-io/kopernik/auth"
)

// limitConnections wraps ln so that one client host holds at most max
// connections across every listener sharing counter (Kafka
// max.connections.per.ip, Pulsar maxConnectionsPerIp). A connection beyond
// it is closed as soon as it is accepted, before any byte is read.
//
// With max <= 0 ln is returned as it is: the wrapper hides the
// *net.TCPConn that vectored writes (net.Buffers) need, so it costs
// nothing unless the limit is set.
func limitConnections(ln net.Listener, counter *auth.AddressCounter, max int, log *slog.Logger) net.Listener {
	if max <= 0 {
		return ln
	}
	return &limitListener{Listener: ln, counter: counter, max: max, log: log}
}

type limitListener struct {
	net.Listener
	counter *auth.AddressCounter
	max     int
	log     *slog.Logger
	lastLog atomic.Int64 // unix nanoseconds of the last refusal logged
}

func (l *limitListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		release, ok := l.counter.Admit(c.RemoteAddr().String(), l.max)
		if ok {
			return &countedConn{Conn: c, release: release}, nil
		}
		c.Close()
		// One line per second at most: a flood must not flood the log.
		now := time.Now().UnixNano()
		if last := l.lastLog.Load(); now-last > int64(time.Second) && l.lastLog.CompareAndSwap(last, now) {
			l.log.Warn("closing connection: too many from its address", "remote", c.RemoteAddr().String(),
				"listener", l.Addr().String(), "max-connections-per-address", l.max)
		}
	}
}

// countedConn gives its count back when closed.
type countedConn struct {
	net.Conn
	release func() // idempotent
}

func (c *countedConn) Close() error {
	c.release()
	return c.Conn.Close()
}
