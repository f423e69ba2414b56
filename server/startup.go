package server

import (
	"errors"
	"fmt"
	"net"
	"strings"
	"syscall"

	"github.com/kopernik-io/kopernik/protocol"
)

// StartError is why Start failed, for an operator: the step that failed
// first, the underlying error, and what to change.
type StartError struct {
	// Step is what was being started: "kafka listener on localhost:9092".
	Step string
	Err  error
	// Fix says how to get past it, naming the setting's flag.
	Fix string
}

func (e *StartError) Error() string { return e.Step + ": " + e.Err.Error() }
func (e *StartError) Unwrap() error { return e.Err }

// startErr wraps err (if not nil and not already a StartError) as the
// failure of step, to be fixed as fix says.
func startErr(step, fix string, err error) error {
	var se *StartError
	if err == nil || errors.As(err, &se) {
		return err
	}
	return &StartError{Step: step, Err: err, Fix: fix}
}

// listenErr explains a listener that could not be opened on addr, set by
// setting key.
func listenErr(what, key, addr string, err error) error {
	s := settingByKey(key)
	flagName := "--" + key
	if s != nil {
		flagName += " or " + s.Env()
	}
	var fix string
	switch {
	case errors.Is(err, syscall.EADDRINUSE):
		fix = fmt.Sprintf("another process listens on %s: stop it, or choose a free port with %s (port 0 picks one)", addr, flagName)
	case errors.Is(err, syscall.EACCES):
		fix = fmt.Sprintf("ports below 1024 need privileges: choose a port of 1024 or more with %s", flagName)
	case errors.Is(err, syscall.EADDRNOTAVAIL):
		fix = fmt.Sprintf("no network interface of this machine has that address: set %s to a local host or IP (localhost, 0.0.0.0)", flagName)
	default:
		var dns *net.DNSError
		if errors.As(err, &dns) {
			fix = fmt.Sprintf("the host name does not resolve: set %s to a local host or IP", flagName)
		} else {
			fix = "check " + flagName
		}
	}
	return &StartError{Step: fmt.Sprintf("%s on %s", what, addr), Err: err, Fix: fix}
}

// Endpoints is where clients connect to a running server, as it tells
// them (advertised addresses; a wildcard host shown as localhost).
// Empty fields are not served.
type Endpoints struct {
	// KafkaBootstrap is host:port for bootstrap.servers; KafkaTLS the same
	// on the TLS listener.
	KafkaBootstrap, KafkaTLS string
	// PulsarURL is the service URL (pulsar://host:port); PulsarTLSURL
	// pulsar+ssl://.
	PulsarURL, PulsarTLSURL string
	// AdminURL is the admin REST API (http://host:port/admin/v2);
	// AdminTLSURL over https.
	AdminURL, AdminTLSURL string
	// ConsoleURL is the web console at the HTTP listener's root.
	ConsoleURL string
	// MetricsURL is the Prometheus endpoint.
	MetricsURL string
}

// Endpoints reports where clients connect.
func (s *Server) Endpoints() Endpoints {
	var e Endpoints
	for _, rh := range s.handlers {
		addr := func(ln net.Listener) string {
			if adv, ok := rh.h.(protocol.Advertiser); ok {
				return adv.AdvertisedAddr(ln)
			}
			return protocol.DialAddr(ln.Addr())
		}
		switch rh.name {
		case "kafka":
			e.KafkaBootstrap = addr(rh.ln)
			if rh.tlsLn != nil {
				e.KafkaTLS = addr(rh.tlsLn)
			}
		case "pulsar":
			e.PulsarURL = "pulsar://" + addr(rh.ln)
			if rh.tlsLn != nil {
				e.PulsarTLSURL = "pulsar+ssl://" + addr(rh.tlsLn)
			}
		}
	}
	if s.httpLn != nil {
		base := "http://" + protocol.DialAddr(s.httpLn.Addr())
		e.AdminURL, e.ConsoleURL, e.MetricsURL = base+"/admin/v2", base+"/", base+"/metrics"
	}
	if s.httpsLn != nil {
		e.AdminTLSURL = "https://" + protocol.DialAddr(s.httpsLn.Addr()) + "/admin/v2"
	}
	return e
}

// String is the "where to connect" block printed at start-up.
func (e Endpoints) String() string {
	var b strings.Builder
	line := func(name, v string) {
		if v != "" {
			fmt.Fprintf(&b, "  %-20s %s\n", name, v)
		}
	}
	line("Kafka bootstrap:", e.KafkaBootstrap)
	line("Kafka TLS:", e.KafkaTLS)
	line("Pulsar service URL:", e.PulsarURL)
	line("Pulsar TLS URL:", e.PulsarTLSURL)
	line("Admin URL:", e.AdminURL)
	line("Admin TLS URL:", e.AdminTLSURL)
	line("Console:", e.ConsoleURL)
	line("Metrics:", e.MetricsURL)
	return b.String()
}
