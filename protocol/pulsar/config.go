package pulsar

import (
	"errors"
	"fmt"
	"net"
	"strings"
	"time"

	"github.com/kopernik-io/kopernik/broker"
	"github.com/kopernik-io/kopernik/protocol"
)

// Config is the Pulsar handler's section of the configuration file.
type Config struct {
	// AdvertisedAddr is the host:port LOOKUP answers with
	// (pulsar://<advertised-addr>). Default: the listener's actual address.
	// Mirrors broker.conf advertisedAddress + brokerServicePort.
	AdvertisedAddr string `yaml:"advertised-addr"`
	// AdvertisedTLSAddr is the host:port LOOKUP answers with for TLS
	// clients (pulsar+ssl://<advertised-tls-addr>). Default: the TLS
	// listener's actual address (server setting pulsar-tls-addr). Mirrors
	// broker.conf brokerServicePortTls.
	AdvertisedTLSAddr string `yaml:"advertised-tls-addr"`
	// MaxMessageSize is the largest message (frame payload) accepted and
	// announced in CONNECTED (default 0: the broker's max-message-bytes, so
	// the client chunks or refuses what a topic would refuse; broker.conf
	// maxMessageSize).
	// Frames up to MaxMessageSize+10 KiB are read; larger ones close the
	// connection before any allocation. The topic's maxMessageBytes policy
	// applies on top (SEND_ERROR).
	MaxMessageSize int `yaml:"max-message-size"`
	// Tenant and Namespace qualify short topic names (default public/default,
	// as Pulsar's "my-topic" = persistent://public/default/my-topic; Pulsar
	// hard-codes them, there is no broker.conf setting).
	Tenant    string `yaml:"tenant"`
	Namespace string `yaml:"namespace"`
	// AutoCreateSubscriptions lets SUBSCRIBE create missing durable
	// subscriptions (default true; broker.conf allowAutoSubscriptionCreation).
	// The namespace policy AutoSubscriptionCreation must allow it too.
	AutoCreateSubscriptions bool `yaml:"auto-create-subscriptions"`
	// Keepalive pings a silent connection after this long and drops it
	// after twice this long (default 30s; broker.conf keepAliveIntervalSeconds).
	Keepalive time.Duration `yaml:"keepalive"`
	// ConnectionBufferBytes bounds the bytes of outgoing frames a
	// connection queues; beyond it dispatch and replies block until the
	// client reads (backpressure on slow clients; default 8 MiB). A single
	// larger frame is let through when the queue is empty. No broker.conf
	// equivalent (Netty's write-buffer high-water mark plays this role).
	ConnectionBufferBytes int `yaml:"connection-buffer-bytes"`
	// BacklogQuotaCheckInterval is how long a producer goes on with the
	// last verdict of its topic's backlog quota before looking again, so
	// that a producer may overshoot the quota until the next check, as in
	// Pulsar (default 5s; broker.conf backlogQuotaCheckIntervalInSeconds,
	// whose own default is 60). Zero checks on every SEND.
	BacklogQuotaCheckInterval time.Duration `yaml:"backlog-quota-check-interval"`
	// AuthTimeout closes a connection that has not been through CONNECT
	// this long after it opened, when authentication is on (default 30s;
	// Pulsar has no such setting, the client's connection timeout is 10s).
	AuthTimeout time.Duration `yaml:"auth-timeout"`
}

// DefaultConfig returns the defaults documented on Config.
func DefaultConfig() *Config {
	return &Config{
		MaxMessageSize:            0,
		Tenant:                    "public",
		Namespace:                 "default",
		AutoCreateSubscriptions:   true,
		Keepalive:                 30 * time.Second,
		ConnectionBufferBytes:     8 << 20,
		BacklogQuotaCheckInterval: 5 * time.Second,
		AuthTimeout:               30 * time.Second,
	}
}

// Validate lists every problem at once.
func (c *Config) Validate() error {
	var errs []error
	if c.AdvertisedAddr != "" {
		if _, _, err := net.SplitHostPort(c.AdvertisedAddr); err != nil {
			errs = append(errs, fmt.Errorf("advertised-addr %q: want host:port: %v", c.AdvertisedAddr, err))
		}
	}
	if c.AdvertisedTLSAddr != "" {
		if _, _, err := net.SplitHostPort(c.AdvertisedTLSAddr); err != nil {
			errs = append(errs, fmt.Errorf("advertised-tls-addr %q: want host:port: %v", c.AdvertisedTLSAddr, err))
		}
	}
	if c.MaxMessageSize != 0 && (c.MaxMessageSize < 1<<10 || c.MaxMessageSize > 1<<30) {
		errs = append(errs, fmt.Errorf("max-message-size %d: want 0 (broker default) or 1 KiB .. 1 GiB", c.MaxMessageSize))
	}
	if err := broker.ValidateSegment("tenant", c.Tenant); err != nil {
		errs = append(errs, fmt.Errorf("tenant: %w", err))
	}
	if err := broker.ValidateSegment("namespace", c.Namespace); err != nil {
		errs = append(errs, fmt.Errorf("namespace: %w", err))
	}
	if c.Keepalive < 100*time.Millisecond {
		errs = append(errs, fmt.Errorf("keepalive %s: want >= 100ms", c.Keepalive))
	}
	if c.AuthTimeout <= 0 {
		errs = append(errs, fmt.Errorf("auth-timeout %s: want > 0", c.AuthTimeout))
	}
	if c.ConnectionBufferBytes < 64<<10 {
		errs = append(errs, fmt.Errorf("connection-buffer-bytes %d: want >= 64 KiB", c.ConnectionBufferBytes))
	}
	if len(errs) > 0 {
		msgs := make([]string, len(errs))
		for i, e := range errs {
			msgs[i] = e.Error()
		}
		return fmt.Errorf("pulsar: invalid configuration: %s", strings.Join(msgs, "; "))
	}
	return nil
}

func init() {
	protocol.Register(protocol.Registration{
		Name:        "pulsar",
		DefaultAddr: "localhost:6650",
		NewConfig:   func() any { return DefaultConfig() },
		New: func(env protocol.Env, cfg any) (protocol.Handler, error) {
			c, ok := cfg.(*Config)
			if !ok {
				return nil, errors.New("pulsar: config is not *pulsar.Config")
			}
			return New(env, c)
		},
	})
}
