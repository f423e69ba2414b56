package protocol

import (
	"crypto/tls"
	"net"
)

// tlsListener is a listener whose connections speak TLS. Handlers ask
// IsTLS to advertise the right address or URL scheme for it.
type tlsListener struct{ net.Listener }

// NewTLSListener wraps ln so that every accepted connection is a *tls.Conn
// configured by cfg (the handshake runs on the connection's first read or
// write). Handler.Serve accepts it like any other listener.
func NewTLSListener(ln net.Listener, cfg *tls.Config) net.Listener {
	return tlsListener{tls.NewListener(ln, cfg)}
}

// IsTLS reports whether ln was made by NewTLSListener.
func IsTLS(ln net.Listener) bool {
	_, ok := ln.(tlsListener)
	return ok
}
