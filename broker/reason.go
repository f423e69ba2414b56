package broker

import "strings"

// errorPrefixes are the package prefixes sentinel errors carry
// ("broker: already exists"): right for logs and errors.Is, noise for a
// client reading a reason.
var errorPrefixes = map[string]bool{
	"broker": true, "managedledger": true, "metadata": true, "segment": true,
	"auth": true, "convert": true, "kafka": true, "pulsar": true, "admin": true,
}

// Reason is err's message as clients see it (an admin API reason, a Kafka
// error message, a Pulsar ERROR message): the same text without the
// package prefixes of the errors it wraps, so "broker: already exists:
// topic t" reads "already exists: topic t".
func Reason(err error) string {
	if err == nil {
		return ""
	}
	parts := strings.Split(err.Error(), ": ")
	kept := parts[:0]
	for _, p := range parts {
		if !errorPrefixes[p] {
			kept = append(kept, p)
		}
	}
	if len(kept) == 0 {
		return err.Error()
	}
	return strings.Join(kept, ": ")
}
