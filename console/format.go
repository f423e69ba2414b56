package console

import (
	"fmt"
	"html/template"
	"net/url"
	"time"
)

// formatBytes prints a byte count in binary units.
func formatBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit && exp < 5; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

// formatRate prints a per-second figure with at most one decimal.
func formatRate(v float64) string {
	switch {
	case v >= 1e6:
		return fmt.Sprintf("%.1fM", v/1e6)
	case v >= 1e4:
		return fmt.Sprintf("%.1fk", v/1e3)
	case v == float64(int64(v)):
		return fmt.Sprintf("%d", int64(v))
	}
	return fmt.Sprintf("%.1f", v)
}

func formatTime(t time.Time) string {
	if t.IsZero() {
		return "—"
	}
	return t.UTC().Format("2006-01-02 15:04:05.000Z")
}

func durationOrForever(d time.Duration) string {
	if d < 0 {
		return "forever"
	}
	return d.String()
}

func bytesOrUnlimited(n int64) string {
	if n < 0 {
		return "unlimited"
	}
	return formatBytes(n)
}

func orDash(s string) string {
	if s == "" {
		return "—"
	}
	return s
}

// queryString builds "k1=v1&k2=v2" from pairs, escaped, for links in
// templates: a template.URL, so that html/template does not escape the
// separators again.
func queryString(kv ...string) template.URL {
	q := url.Values{}
	for i := 0; i+1 < len(kv); i += 2 {
		q.Set(kv[i], kv[i+1])
	}
	return template.URL(q.Encode())
}
