package verify

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"time"
)

// compactedConfigs are the topic configs of a compacted workload: compact,
// small ledgers so that sealed ones exist, compaction as soon as anything
// is dirty.
func compactedConfigs() map[string]*string {
	v := func(s string) *string { return &s }
	return map[string]*string{
		"cleanup.policy":            v("compact"),
		"segment.bytes":             v("65536"),
		"min.cleanable.dirty.ratio": v("0.01"),
	}
}

// compactAll compacts every partition of the topic through the admin API
// (PUT .../compaction) and waits until each reports SUCCESS.
func compactAll(ctx context.Context, cfg Config) error {
	if cfg.HTTPAddr == "" {
		return fmt.Errorf("verify: a compacted workload needs the broker's HTTP admin address")
	}
	cl := &http.Client{Timeout: 30 * time.Second}
	for p := range cfg.Partitions {
		u := fmt.Sprintf("http://%s/admin/v2/persistent/public/default/%s/compaction", cfg.HTTPAddr, url.PathEscape(fmt.Sprintf("%s-partition-%d", cfg.Topic, p)))
		err := retry(ctx, func(ctx context.Context) error {
			req, err := http.NewRequestWithContext(ctx, http.MethodPut, u, nil)
			if err != nil {
				return err
			}
			resp, err := cl.Do(req)
			if err != nil {
				return err
			}
			resp.Body.Close()
			// 409: a compaction (the broker's own pass) runs; ours must
			// still start after it, or the final readers see a tail.
			if resp.StatusCode/100 != 2 {
				return fmt.Errorf("PUT %s: %s", u, resp.Status)
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("verify: compact partition %d: %w", p, err)
		}
		err = retry(ctx, func(ctx context.Context) error {
			req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
			if err != nil {
				return err
			}
			resp, err := cl.Do(req)
			if err != nil {
				return err
			}
			defer resp.Body.Close()
			var st struct {
				Status    string `json:"status"`
				LastError string `json:"lastError"`
			}
			if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
				return err
			}
			if st.Status != "SUCCESS" {
				return fmt.Errorf("compaction of partition %d: %s %s", p, st.Status, st.LastError)
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("verify: compact partition %d: %w", p, err)
		}
	}
	return nil
}
