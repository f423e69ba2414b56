package server

import (
	"io"
	"net"
	"testing"
	"time"
)

// closedByPeer reports whether the broker closed nc (read ends at once)
// rather than keeping it open.
func closedByPeer(t *testing.T, nc net.Conn) bool {
	t.Helper()
	nc.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
	_, err := nc.Read(make([]byte, 1))
	if ne, ok := err.(net.Error); ok && ne.Timeout() {
		return false
	}
	return err == io.EOF || err != nil
}

// TestMaxConnectionsPerAddress: one client host holds at most the set
// number of connections over all listeners; closing one makes room.
func TestMaxConnectionsPerAddress(t *testing.T) {
	s := startServer(t, map[string]string{"max-connections-per-address": "2"})
	dial := func(proto string) net.Conn {
		nc, err := net.Dial("tcp", s.Addr(proto).String())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { nc.Close() })
		return nc
	}
	first := dial("kafka")
	second := dial("pulsar")
	if closedByPeer(t, first) || closedByPeer(t, second) {
		t.Fatal("connections within the limit were closed")
	}
	if !closedByPeer(t, dial("kafka")) {
		t.Error("third Kafka connection kept")
	}
	if !closedByPeer(t, dial("http")) {
		t.Error("third (HTTP) connection kept")
	}
	first.Close()
	deadline := time.Now().Add(5 * time.Second)
	for {
		nc := dial("kafka")
		if !closedByPeer(t, nc) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no room after closing a connection")
		}
	}
}
