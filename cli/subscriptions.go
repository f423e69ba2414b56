package cli

import (
	"flag"
	"fmt"
	"math"
	"net/url"
	"sort"
	"strconv"
)

// subscriptions: Pulsar subscriptions (durable cursors) over the admin
// REST API, as pulsar-admin topics subscriptions|create-subscription|
// unsubscribe|reset-cursor|skip do. Kafka groups appear here too: a
// group's commits are its subscription's cursor.

func subscriptionsCommand() *command {
	var (
		position string
		force    bool
		earliest bool
		latest   bool
		toTime   string
		skip     int64
		skipAll  bool
	)
	return &command{name: "subscriptions", summary: "list, create, delete, reset and skip Pulsar subscriptions (Kafka groups included)", subs: []*command{
		{
			name: "list", summary: "list a topic's subscriptions with type, backlog and consumers", args: "TOPIC",
			run: func(e *env, args []string) error {
				return subscriptionsList(e, args[0])
			},
		},
		{
			name: "create", summary: "create a durable subscription", args: "TOPIC SUBSCRIPTION",
			flags: func(fs *flag.FlagSet) {
				fs.StringVar(&position, "position", "latest", "where it starts: earliest or latest")
			},
			run: func(e *env, args []string) error {
				if err := oneOf("position", position, "earliest", "latest"); err != nil {
					return err
				}
				return subscriptionsChange(e, "PUT", args[0], args[1], "", positionID(position == "earliest"), "created subscription")
			},
		},
		{
			name: "delete", summary: "delete a subscription (its cursor)", args: "TOPIC SUBSCRIPTION",
			flags: func(fs *flag.FlagSet) {
				fs.BoolVar(&force, "force", false, "disconnect its consumers first")
			},
			run: func(e *env, args []string) error {
				q := ""
				if force {
					q = "?force=true"
				}
				return subscriptionsChange(e, "DELETE", args[0], args[1], q, nil, "deleted subscription")
			},
		},
		{
			name: "reset", summary: "move a subscription's cursor to earliest, latest or a time", args: "TOPIC SUBSCRIPTION",
			long: `Example:
  kopernik subscriptions reset orders billing --to-time 2026-12-01T00:00:00Z`,
			flags: func(fs *flag.FlagSet) {
				fs.BoolVar(&earliest, "to-earliest", false, "to the first retained message")
				fs.BoolVar(&latest, "to-latest", false, "past the last message")
				fs.StringVar(&toTime, "to-time", "", "to the first message published at or after `TIME` (RFC 3339 or unix ms)")
			},
			run: func(e *env, args []string) error {
				switch {
				case earliest && !latest && toTime == "":
					return subscriptionsChange(e, "POST", args[0], args[1], "/resetcursor", positionID(true), "reset subscription")
				case latest && !earliest && toTime == "":
					return subscriptionsChange(e, "POST", args[0], args[1], "/resetcursor", positionID(false), "reset subscription")
				case toTime != "" && !earliest && !latest:
					ms, err := parseTime(toTime)
					if err != nil {
						return usagef("--to-time %q: want RFC 3339 or unix milliseconds", toTime)
					}
					return subscriptionsChange(e, "POST", args[0], args[1], "/resetcursor/"+strconv.FormatInt(ms, 10), nil, "reset subscription")
				}
				return usagef("give exactly one of --to-earliest, --to-latest, --to-time")
			},
		},
		{
			name: "skip", summary: "acknowledge a subscription's next N messages (or all) without reading them", args: "TOPIC SUBSCRIPTION",
			flags: func(fs *flag.FlagSet) {
				fs.Int64Var(&skip, "n", 0, "messages to skip on each partition")
				fs.BoolVar(&skipAll, "all", false, "skip the whole backlog")
			},
			run: func(e *env, args []string) error {
				switch {
				case skipAll && skip == 0:
					return subscriptionsChange(e, "POST", args[0], args[1], "/skip_all", nil, "skipped the backlog of")
				case !skipAll && skip > 0:
					return subscriptionsChange(e, "POST", args[0], args[1], "/skip/"+strconv.FormatInt(skip, 10), nil, fmt.Sprintf("skipped %d messages of", skip))
				}
				return usagef("give -n N (N > 0) or --all")
			},
		},
	}}
}

// positionID is Pulsar's MessageId JSON for earliest (-1:-1) or latest.
func positionID(earliest bool) map[string]int64 {
	if earliest {
		return map[string]int64{"ledgerId": -1, "entryId": -1, "partitionIndex": -1}
	}
	return map[string]int64{"ledgerId": math.MaxInt64, "entryId": math.MaxInt64, "partitionIndex": -1}
}

func subscriptionsList(e *env, topic string) error {
	n, err := topicName(topic)
	if err != nil {
		return err
	}
	st, err := e.topicStats(n, false)
	if err != nil {
		return err
	}
	list := []subscriptionSummary{}
	for name, s := range st.Subscriptions {
		list = append(list, subscriptionSummary{Name: name, Type: s.Type, Backlog: s.MsgBacklog, Consumers: len(s.Consumers)})
	}
	sort.Slice(list, func(i, j int) bool { return list[i].Name < list[j].Name })
	rows := [][]string{}
	for _, s := range list {
		rows = append(rows, []string{s.Name, s.Type, strconv.FormatInt(s.Backlog, 10), strconv.Itoa(s.Consumers)})
	}
	return e.emit(list, []string{"SUBSCRIPTION", "TYPE", "BACKLOG", "CONSUMERS"}, rows)
}

// subscriptionsChange sends one change to .../subscription/SUB+suffix.
func subscriptionsChange(e *env, method, topic, sub, suffix string, body any, verb string) error {
	n, err := topicName(topic)
	if err != nil {
		return err
	}
	if sub == "" {
		return usagef("empty subscription name")
	}
	path := restPath(n) + "/subscription/" + url.PathEscape(sub) + suffix
	if err := e.admin(method, path, body, nil); err != nil {
		return err
	}
	return e.done(fmt.Sprintf("%s %s on %s", verb, sub, n), map[string]any{"topic": n.String(), "subscription": sub})
}
