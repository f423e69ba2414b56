package server

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/kopernik-io/kopernik/admin"
	"github.com/kopernik-io/kopernik/metadata"
)

// healthProbeKey is read by the metadata check; it never exists, so the
// check costs one lookup and proves the store answers.
const healthProbeKey = "/kopernik-health-probe"

// healthChecks are the checks behind /admin/v2/brokers/health and /readyz,
// aggregated by admin.CheckAll. A component with a health of its own (a
// remote metadata store, a protocol handler) appends its check here.
func (s *Server) healthChecks() []admin.Check {
	return []admin.Check{
		{Name: admin.StartedCheck, Run: func(context.Context) error {
			if !s.ready.Load() {
				return errors.New("starting or shutting down")
			}
			return nil
		}},
		{Name: "storage", Run: func(context.Context) error { return storageHealth(s) }},
		{Name: "metadata", Run: func(ctx context.Context) error {
			if _, ok := s.storage.Store.(metadata.HealthChecker); ok {
				// etcd: a quorum read, bounded well within the check's
				// timeout so that the answer names the cause.
				ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
				defer cancel()
				return s.MetadataHealthy(ctx)
			}
			return metadataHealth(ctx, s.storage.Store)
		}},
	}
}

// storageHealth fails while any partition refuses appends: a load balancer
// or operator sees which, and why (a full disk).
func storageHealth(s *Server) error {
	failed := s.broker.StorageFailures()
	if len(failed) == 0 {
		return nil
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%d partition(s) refuse writes", len(failed))
	for _, f := range failed {
		fmt.Fprintf(&b, "\n%s: %v (since %s)", f.Partition, f.Err, f.Since.UTC().Format(time.RFC3339))
	}
	return errors.New(b.String())
}

// metadataHealth fails when the metadata store does not answer a read.
func metadataHealth(ctx context.Context, store metadata.Store) error {
	if _, err := store.Get(ctx, healthProbeKey); err != nil && !errors.Is(err, metadata.ErrNotFound) {
		return fmt.Errorf("metadata store unreachable: %w", err)
	}
	return nil
}
