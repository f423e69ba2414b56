package kafka

import (
	"context"
	"fmt"
	"sort"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// handlerFunc serves one decoded request. A non-nil error closes the
// connection (framing-level trouble); per-topic and per-partition failures go
// into the response. A nil response sends nothing (Produce with acks=0).
type handlerFunc func(ctx context.Context, c *conn, req kmsg.Request) (kmsg.Response, error)

// api is one served API key.
type api struct {
	key      int16
	min, max int16
	handle   handlerFunc
	// authOnly APIs (SASL) are served and advertised only when
	// authentication is enabled.
	authOnly bool
}

// apis is the registry: every API served, filled by the init functions of
// the NN_name.go files. It is the single source of the ApiVersions answer.
var apis = map[int16]api{}

// register adds the handler for Req's API key with its served version range.
// Called from init only; a duplicate is a programming error.
func register[Req kmsg.Request](min, max int16, fn func(ctx context.Context, c *conn, req Req) (kmsg.Response, error)) {
	var zero Req
	key := zero.Key() // kmsg's Key methods do not dereference
	if _, dup := apis[key]; dup {
		panic(fmt.Sprintf("kafka: api %d registered twice", key))
	}
	if max > zero.MaxVersion() || min < 0 || min > max {
		panic(fmt.Sprintf("kafka: api %d: bad version range %d..%d", key, min, max))
	}
	apis[key] = api{key: key, min: min, max: max, handle: func(ctx context.Context, c *conn, req kmsg.Request) (kmsg.Response, error) {
		r, ok := req.(Req)
		if !ok {
			return nil, fmt.Errorf("kafka: api %d: request type %T", key, req)
		}
		return fn(ctx, c, r)
	}}
}

// registerAuthOnly is register for APIs served only with authentication on.
func registerAuthOnly[Req kmsg.Request](min, max int16, fn func(ctx context.Context, c *conn, req Req) (kmsg.Response, error)) {
	register(min, max, fn)
	var zero Req
	a := apis[zero.Key()]
	a.authOnly = true
	apis[zero.Key()] = a
}

// apiVersionsKeys lists the served ranges, sorted by key; authOnly APIs
// only when withAuth.
func apiVersionsKeys(withAuth bool) []kmsg.ApiVersionsResponseApiKey {
	out := make([]kmsg.ApiVersionsResponseApiKey, 0, len(apis))
	for _, a := range apis {
		if a.authOnly && !withAuth {
			continue
		}
		k := kmsg.NewApiVersionsResponseApiKey()
		k.ApiKey, k.MinVersion, k.MaxVersion = a.key, a.min, a.max
		out = append(out, k)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ApiKey < out[j].ApiKey })
	return out
}
