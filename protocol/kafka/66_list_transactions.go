package kafka

// ListTransactions (key 66), versions 0-2 (KIP-664; v1: KIP-994 duration
// filter; v2: KIP-1152 transactional id pattern).
//
// Every transactional id of the connection's namespace, filtered by state
// (unknown state names are echoed back in UnknownStateFilters, as Kafka
// does), producer id, (v1) duration and (v2) id pattern. The duration
// filter, as Kafka's: with DurationFilter >= 0 only ids whose last
// transaction began more than that many milliseconds ago, whatever its
// state now (an id that never began one is left out). The pattern is a
// regular expression (Go's RE2 syntax, which covers the Java patterns
// tools send short of backreferences and lookaround) that must match the
// whole id, as Java's Matcher.matches does; an empty or null pattern
// matches all; one that does not compile is INVALID_REGULAR_EXPRESSION.

import (
	"context"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kopernik-io/kopernik/broker"
)

func init() { register(0, 2, handleListTransactions) }

var txnStates = []string{string(broker.TxnEmpty), string(broker.TxnOngoing), string(broker.TxnPrepareCommit),
	string(broker.TxnPrepareAbort), string(broker.TxnCompleteCommit), string(broker.TxnCompleteAbort)}

func handleListTransactions(ctx context.Context, c *conn, req *kmsg.ListTransactionsRequest) (kmsg.Response, error) {
	resp := req.ResponseKind().(*kmsg.ListTransactionsResponse)
	co, err := c.h.txns(ctx)
	if err != nil {
		resp.ErrorCode = errCode(err)
		return resp, nil
	}
	var pattern *regexp.Regexp
	if req.Version >= 2 && req.TransactionalIDPattern != nil && *req.TransactionalIDPattern != "" {
		// Anchored: Java's Matcher.matches is a whole-string match.
		pattern, err = regexp.Compile(`^(?:` + *req.TransactionalIDPattern + `)$`)
		if err != nil {
			resp.ErrorCode = kerr.InvalidRegularExpression.Code
			return resp, nil
		}
	}
	var states []string
	for _, s := range req.StateFilters {
		if slices.Contains(txnStates, s) {
			states = append(states, s)
		} else {
			resp.UnknownStateFilters = append(resp.UnknownStateFilters, s)
		}
	}
	if len(req.StateFilters) > 0 && len(states) == 0 {
		return resp, nil // only unknown states: nothing matches
	}
	now := time.Now().UnixMilli()
	prefix := c.h.txnKey(ctx, "")
	for _, m := range co.List() {
		id, ok := strings.CutPrefix(m.TransactionalID, prefix)
		if !ok {
			continue // another namespace's
		}
		if len(states) > 0 && !slices.Contains(states, string(m.State)) {
			continue
		}
		if len(req.ProducerIDFilters) > 0 && !slices.Contains(req.ProducerIDFilters, m.ProducerID) {
			continue
		}
		if req.Version >= 1 && req.DurationFilterMillis >= 0 && (m.StartMs == 0 || now-m.StartMs <= req.DurationFilterMillis) {
			continue
		}
		if pattern != nil && !pattern.MatchString(id) {
			continue
		}
		st := kmsg.NewListTransactionsResponseTransactionState()
		st.TransactionalID, st.ProducerID, st.TransactionState = id, m.ProducerID, string(m.State)
		resp.TransactionStates = append(resp.TransactionStates, st)
	}
	return resp, nil
}
