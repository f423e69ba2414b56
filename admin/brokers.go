package admin

// The broker resource (Pulsar's BrokersBase and BrokerStatsBase) and
// health:
//
//	GET /admin/v2/brokers/health   Pulsar's health check: "ok", or 503 with
//	                               the failed checks, one per line
//	GET /admin/v2/brokers/ready    Pulsar's readiness: "ok" once started
//	GET /healthz                   liveness: "ok" while the process serves
//	GET /readyz                    readiness: every check, "[+]name ok" or
//	                               "[-]name failed: reason"; 503 if one failed
//	GET /admin/v2/brokers/version  the broker's version, as text
//	GET /admin/v2/brokers[/{cluster}]  the active brokers ("host:port" of the
//	                               web service): this one
//	GET /admin/v2/broker-stats/topics  every loaded topic's stats by
//	                               namespace, bundle and domain, as Pulsar
//	                               nests them
//
// Health is one aggregation (CheckAll) over pluggable named checks
// (Options.HealthChecks): the server adds its own (started, storage,
// metadata store), and a store or handler adds its check to the list.

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"runtime/debug"
	"strings"
	"sync"
	"time"
)

// Check is one named health check: nil means healthy. Run bounds it with
// a timeout; a check must return when its context ends.
type Check struct {
	Name string
	Run  func(ctx context.Context) error
}

// CheckResult is one check's outcome.
type CheckResult struct {
	Name string
	Err  error
}

// checkTimeout bounds every health check (a metadata store that does not
// answer within it is unreachable).
const checkTimeout = 5 * time.Second

// CheckAll runs the checks concurrently, each bounded by checkTimeout, and
// returns their results in the checks' order and whether all passed.
func CheckAll(ctx context.Context, checks []Check) ([]CheckResult, bool) {
	ctx, cancel := context.WithTimeout(ctx, checkTimeout)
	defer cancel()
	out := make([]CheckResult, len(checks))
	var wg sync.WaitGroup
	for i, c := range checks {
		out[i].Name = c.Name
		wg.Go(func() {
			done := make(chan error, 1)
			go func() { done <- c.Run(ctx) }()
			select {
			case err := <-done:
				out[i].Err = err
			case <-ctx.Done():
				out[i].Err = fmt.Errorf("no answer within %s", checkTimeout)
			}
		})
	}
	wg.Wait()
	healthy := true
	for _, r := range out {
		healthy = healthy && r.Err == nil
	}
	return out, healthy
}

func (s *server) brokerRoutes(mux *router) {
	mux.HandleFunc("GET /admin/v2/brokers/health", s.brokerHealth)
	mux.HandleFunc("GET /admin/v2/brokers/ready", s.brokerReady)
	mux.HandleFunc("GET /healthz", s.liveness)
	mux.HandleFunc("GET /readyz", s.readiness)
	mux.HandleFunc("GET /admin/v2/brokers/version", s.brokerVersion)
	mux.HandleFunc("GET /admin/v2/brokers", s.activeBrokers)
	mux.HandleFunc("GET /admin/v2/brokers/{cluster}", s.activeBrokers)
	mux.HandleFunc("GET /admin/v2/broker-stats/topics", s.brokerTopicStats)
}

func writeText(w http.ResponseWriter, status int, text string) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(status)
	w.Write([]byte(text))
}

// brokerHealth answers "ok" as Pulsar does, or 503 naming what failed.
func (s *server) brokerHealth(w http.ResponseWriter, r *http.Request) {
	results, healthy := CheckAll(r.Context(), s.opts.HealthChecks)
	if healthy {
		writeText(w, http.StatusOK, "ok")
		return
	}
	var b strings.Builder
	for _, res := range results {
		if res.Err != nil {
			fmt.Fprintf(&b, "%s failed: %v\n", res.Name, res.Err)
		}
	}
	writeText(w, http.StatusServiceUnavailable, b.String())
}

// readiness lists every check, Kubernetes' /readyz?verbose style.
func (s *server) readiness(w http.ResponseWriter, r *http.Request) {
	results, healthy := CheckAll(r.Context(), s.opts.HealthChecks)
	var b strings.Builder
	for _, res := range results {
		if res.Err != nil {
			fmt.Fprintf(&b, "[-]%s failed: %v\n", res.Name, res.Err)
		} else {
			fmt.Fprintf(&b, "[+]%s ok\n", res.Name)
		}
	}
	status := http.StatusOK
	if healthy {
		b.WriteString("ready\n")
	} else {
		status = http.StatusServiceUnavailable
		b.WriteString("not ready\n")
	}
	writeText(w, status, b.String())
}

// brokerReady is Pulsar's GET /brokers/ready: the broker finished starting
// (the first check, when the server names it "started").
func (s *server) brokerReady(w http.ResponseWriter, r *http.Request) {
	for _, c := range s.opts.HealthChecks {
		if c.Name == StartedCheck {
			if err := c.Run(r.Context()); err != nil {
				writeReason(w, http.StatusServiceUnavailable, "Broker is not ready: "+err.Error())
				return
			}
		}
	}
	writeText(w, http.StatusOK, "ok")
}

// StartedCheck names the check that fails until the broker has started and
// again once it is closing (served alone by /admin/v2/brokers/ready).
const StartedCheck = "started"

// liveness answers while the process serves requests; a failed check does
// not make it fail (restarting would not repair a full disk).
func (s *server) liveness(w http.ResponseWriter, r *http.Request) {
	writeText(w, http.StatusOK, "ok")
}

// brokerVersion answers the broker's version as text (Pulsar answers its
// own, e.g. "3.3.0").
func (s *server) brokerVersion(w http.ResponseWriter, r *http.Request) {
	v := s.opts.Version
	if v == "" {
		v = "(devel)"
		if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" {
			v = bi.Main.Version
		}
	}
	writeText(w, http.StatusOK, v)
}

// activeBrokers answers the one broker, as Pulsar's broker ids
// ("host:port" of the web service).
func (s *server) activeBrokers(w http.ResponseWriter, r *http.Request) {
	if c := r.PathValue("cluster"); c != "" && c != s.opts.ClusterName {
		writeReason(w, http.StatusNotFound, "Cluster does not exist")
		return
	}
	id := s.opts.HTTPURL
	if u, err := url.Parse(s.opts.HTTPURL); err == nil && u.Host != "" {
		id = u.Host
	}
	writeJSON(w, http.StatusOK, []string{id})
}

// fullBundle is the one bundle a kopernik namespace has (Pulsar splits a
// namespace's hash range into bundles; kopernik does not).
const fullBundle = "0x00000000_0xffffffff"

// brokerTopicStats answers {namespace: {bundle: {"persistent": {topic:
// stats}}}} over the loaded partitions, as Pulsar's broker-stats/topics.
func (s *server) brokerTopicStats(w http.ResponseWriter, r *http.Request) {
	out := map[string]map[string]map[string]map[string]topicStats{}
	for _, p := range s.svc.Partitions() {
		ns := p.Name().NamespaceName()
		if out[ns] == nil {
			out[ns] = map[string]map[string]map[string]topicStats{fullBundle: {}}
		}
		domain := p.Name().Domain
		if domain == "" {
			domain = "persistent"
		}
		bundle := out[ns][fullBundle]
		if bundle[domain] == nil {
			bundle[domain] = map[string]topicStats{}
		}
		bundle[domain][p.Name().String()] = s.partitionStats(r, p, time.Time{})
	}
	writeJSON(w, http.StatusOK, out)
}
