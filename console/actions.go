package console

// Actions: every change is a form (GET /console/actions/{action}) whose
// POST without confirm=yes answers a confirmation page repeating what will
// happen, with the same fields hidden; only the confirmed POST acts, then
// redirects to the affected page with a notice (Post/Redirect/Get: a
// reload does not repeat it).

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/kopernik-io/kopernik/broker"
	"github.com/kopernik-io/kopernik/convert"
)

// actionSpec describes one action: its form fields, what the confirmation
// says, and what it does.
type actionSpec struct {
	Title  string
	Fields []field
	// describe says what confirming will do.
	describe func(v url.Values) string
	// run acts and returns where to go and what to tell.
	run    func(c *Console, ctx context.Context, v url.Values) (redirect, notice string, err error)
	danger bool
}

type field struct {
	Name, Label, Kind, Help string // Kind: text, number, select, textarea
	Options                 []string
}

var actions = map[string]actionSpec{
	"create-topic": {
		Title: "Create topic",
		Fields: []field{
			{Name: "topic", Label: "Topic", Kind: "text", Help: "short names go to public/default"},
			{Name: "partitions", Label: "Partitions", Kind: "number", Help: "0: a non-partitioned topic"},
		},
		describe: func(v url.Values) string {
			return fmt.Sprintf("Create topic %s with %s partitions.", v.Get("topic"), v.Get("partitions"))
		},
		run: func(c *Console, ctx context.Context, v url.Values) (string, string, error) {
			name, err := c.parseName(ctx, v.Get("topic"))
			if err != nil {
				return "", "", err
			}
			n, err := strconv.Atoi(strings.TrimSpace(orZero(v.Get("partitions"))))
			if err != nil || n < 0 {
				return "", "", fmt.Errorf("partitions %q: want a number >= 0", v.Get("partitions"))
			}
			if err := c.svc.CreateTopic(ctx, name, n, broker.Policies{}); err != nil {
				return "", "", err
			}
			return topicURL(name), "Created " + name.String(), nil
		},
	},
	"delete-topic": {
		Title:  "Delete topic",
		danger: true,
		Fields: []field{
			{Name: "topic", Label: "Topic", Kind: "text"},
			{Name: "force", Label: "Force", Kind: "select", Options: []string{"no", "yes"}, Help: "yes: delete even with producers or consumers attached"},
		},
		describe: func(v url.Values) string {
			return fmt.Sprintf("Delete topic %s and all its messages. This cannot be undone.", v.Get("topic"))
		},
		run: func(c *Console, ctx context.Context, v url.Values) (string, string, error) {
			name, err := c.parseName(ctx, v.Get("topic"))
			if err == nil {
				err = c.svc.DeleteTopic(ctx, name, v.Get("force") == "yes")
			}
			if err != nil {
				return "", "", err
			}
			return "/console/topics", "Deleted " + name.String(), nil
		},
	},
	"add-partitions": {
		Title: "Add partitions",
		Fields: []field{
			{Name: "topic", Label: "Partitioned topic", Kind: "text"},
			{Name: "partitions", Label: "New partition count", Kind: "number", Help: "partitions are only ever added"},
		},
		describe: func(v url.Values) string {
			return fmt.Sprintf("Grow topic %s to %s partitions. Keys may map to other partitions afterwards.", v.Get("topic"), v.Get("partitions"))
		},
		run: func(c *Console, ctx context.Context, v url.Values) (string, string, error) {
			name, err := c.parseName(ctx, v.Get("topic"))
			if err != nil {
				return "", "", err
			}
			n, err := strconv.Atoi(strings.TrimSpace(v.Get("partitions")))
			if err != nil || n < 1 {
				return "", "", fmt.Errorf("partitions %q: want a number >= 1", v.Get("partitions"))
			}
			if err := c.svc.SetPartitions(ctx, name, n); err != nil {
				return "", "", err
			}
			return topicURL(name), fmt.Sprintf("%s has %d partitions", name, n), nil
		},
	},
	"reset-subscription": {
		Title:  "Reset subscription",
		danger: true,
		Fields: append(subscriptionFields(),
			field{Name: "to", Label: "To", Kind: "select", Options: []string{"earliest", "latest", "time"}},
			field{Name: "time", Label: "Time (with To: time)", Kind: "text", Help: "RFC 3339 or unix ms: the first message at or after it is delivered next"},
		),
		describe: func(v url.Values) string {
			to := "the " + v.Get("to") + " message"
			if v.Get("to") == "time" {
				to = "the first message at or after " + v.Get("time")
			}
			return fmt.Sprintf("Move subscription %s on %s to %s. Consumers attached now are moved too.", v.Get("subscription"), v.Get("topic"), to)
		},
		run: func(c *Console, ctx context.Context, v url.Values) (string, string, error) {
			name, md, err := c.lookupTopic(ctx, v.Get("topic"))
			if err != nil {
				return "", "", err
			}
			at := int64(-1) // unix ms with to=time
			switch v.Get("to") {
			case "earliest", "latest":
			case "time":
				if at, err = parseTime(strings.TrimSpace(v.Get("time"))); err != nil {
					return "", "", err
				}
			default:
				return "", "", fmt.Errorf("to %q: want earliest, latest or time", v.Get("to"))
			}
			subName := strings.TrimSpace(v.Get("subscription"))
			reset, err := c.eachCursor(ctx, name, md, subName, func(p *broker.Partition, sub *broker.Subscription) error {
				return resetTo(ctx, p, sub, v.Get("to"), at)
			})
			if err != nil {
				return "", "", err
			}
			return "/console/subscriptions?" + url.Values{"q": {subName}}.Encode(),
				fmt.Sprintf("Reset %s on %d partitions of %s to %s", subName, reset, name, v.Get("to")), nil
		},
	},
	"skip": {
		Title:  "Skip messages",
		danger: true,
		Fields: append(subscriptionFields(),
			field{Name: "count", Label: "Messages to skip per partition", Kind: "text", Help: "a number, or all: acknowledge everything published so far"},
		),
		describe: func(v url.Values) string {
			n := "the next " + v.Get("count") + " unacknowledged messages"
			if strings.TrimSpace(v.Get("count")) == "all" {
				n = "every message published so far"
			}
			return fmt.Sprintf("Acknowledge %s of subscription %s on every partition of %s. Skipped messages are not delivered to it.", n, v.Get("subscription"), v.Get("topic"))
		},
		run: func(c *Console, ctx context.Context, v url.Values) (string, string, error) {
			name, md, err := c.lookupTopic(ctx, v.Get("topic"))
			if err != nil {
				return "", "", err
			}
			count := strings.TrimSpace(v.Get("count"))
			n := int64(-1) // all
			if count != "all" {
				if n, err = strconv.ParseInt(count, 10, 64); err != nil || n < 0 {
					return "", "", fmt.Errorf("count %q: want a number >= 0 or all", v.Get("count"))
				}
			}
			subName := strings.TrimSpace(v.Get("subscription"))
			parts, err := c.eachCursor(ctx, name, md, subName, func(p *broker.Partition, sub *broker.Subscription) error {
				if n < 0 {
					return sub.ResetTo(ctx, broker.Latest)
				}
				// As the admin API's skip: at most up to the end of the log.
				return sub.Cursor().SetNextIndex(ctx, min(sub.Cursor().NextIndex()+n, p.NextIndex()))
			})
			if err != nil {
				return "", "", err
			}
			return "/console/subscriptions?" + url.Values{"q": {subName}}.Encode(),
				fmt.Sprintf("Skipped %s messages of %s on %d partitions of %s", count, subName, parts, name), nil
		},
	},
	"produce": {
		Title: "Produce a test message",
		Fields: []field{
			{Name: "topic", Label: "Topic", Kind: "text"},
			{Name: "partition", Label: "Partition", Kind: "number", Help: "of a partitioned topic; else 0"},
			{Name: "key", Label: "Key", Kind: "text", Help: "empty: no key"},
			{Name: "value", Label: "Value", Kind: "textarea"},
		},
		describe: func(v url.Values) string {
			return fmt.Sprintf("Append one message (%d bytes) to %s partition %s, as a Kafka producer would.", len(v.Get("value")), v.Get("topic"), orZero(v.Get("partition")))
		},
		run: func(c *Console, ctx context.Context, v url.Values) (string, string, error) {
			_, md, err := c.lookupTopic(ctx, v.Get("topic"))
			if err != nil {
				return "", "", err
			}
			i, err := strconv.Atoi(strings.TrimSpace(orZero(v.Get("partition"))))
			if err != nil || i < 0 || i >= max(md.Partitions, 1) {
				return "", "", fmt.Errorf("partition %q: the topic has %d", v.Get("partition"), max(md.Partitions, 1))
			}
			p, err := c.svc.OpenPartition(ctx, partitionsOf(md)[i], false)
			if err != nil {
				return "", "", err
			}
			m := convert.Message{Value: []byte(v.Get("value")), Timestamp: time.Now().UnixMilli()}
			if k := v.Get("key"); k != "" {
				m.Key = []byte(k)
			}
			res, err := p.Append(ctx, broker.AppendRequest{Format: broker.FormatKafka, MsgCount: 1,
				MaxEventTime: m.Timestamp, Data: convert.KafkaBatch([]convert.Message{m})})
			if err != nil {
				return "", "", err
			}
			off := res.Entry.FirstIndex
			return "/console/messages?" + url.Values{"topic": {md.Name.String()}, "partition": {strconv.Itoa(i)}, "offset": {strconv.FormatInt(off, 10)}}.Encode(),
				fmt.Sprintf("Produced at offset %d", off), nil
		},
	},
}

// subscriptionFields are the fields naming a subscription on a topic
// (a new slice each call: actions append their own).
func subscriptionFields() []field {
	return []field{
		{Name: "subscription", Label: "Subscription / group", Kind: "text"},
		{Name: "topic", Label: "Topic", Kind: "text", Help: "every partition of it the subscription has a position on"},
	}
}

// eachCursor calls fn on every partition of the topic the subscription has
// a cursor on (a Kafka group may have committed on some partitions only)
// and returns how many; none is ErrSubscriptionNotFound.
func (c *Console) eachCursor(ctx context.Context, name broker.TopicName, md broker.TopicMetadata, subName string,
	fn func(p *broker.Partition, sub *broker.Subscription) error) (int, error) {
	done := 0
	for _, pn := range partitionsOf(md) {
		p, err := c.svc.OpenPartition(ctx, pn, false)
		if err != nil {
			return done, err
		}
		sub, err := p.Subscription(ctx, subName, false, broker.InitialLatest)
		if errors.Is(err, broker.ErrSubscriptionNotFound) {
			continue
		}
		if err == nil {
			err = fn(p, sub)
		}
		if err != nil {
			return done, fmt.Errorf("%s on %s: %w", subName, pn, err)
		}
		done++
	}
	if done == 0 {
		return 0, fmt.Errorf("%w: %s on %s", broker.ErrSubscriptionNotFound, subName, name)
	}
	return done, nil
}

// resetTo moves sub to the earliest or latest message, or to the first at
// or after at (unix ms); past the end it is latest.
func resetTo(ctx context.Context, p *broker.Partition, sub *broker.Subscription, to string, at int64) error {
	switch to {
	case "earliest":
		return sub.ResetTo(ctx, broker.Earliest)
	case "latest":
		return sub.ResetTo(ctx, broker.Latest)
	}
	e, ok, err := p.FindByTime(ctx, at)
	if err != nil {
		return err
	}
	if !ok {
		return sub.ResetTo(ctx, broker.Latest)
	}
	defer e.Release()
	return sub.ResetTo(ctx, e.Position)
}

func orZero(s string) string {
	if strings.TrimSpace(s) == "" {
		return "0"
	}
	return s
}

// parseName resolves a typed topic name (short names in the Kafka
// tenant/namespace); a tenant admin may name only its tenants' topics.
func (c *Console) parseName(ctx context.Context, s string) (broker.TopicName, error) {
	name, err := broker.ParseTopicName(strings.TrimSpace(s), c.opts.KafkaTenant, c.opts.KafkaNamespace)
	if err == nil && !visible(ctx, name.Tenant) {
		err = fmt.Errorf("%w %s", errNotAllowed, name.Tenant)
	}
	return name, err
}

func topicURL(n broker.TopicName) string {
	return "/console/topic?" + url.Values{"name": {n.String()}}.Encode()
}

// actionData is what the action template gets.
type actionData struct {
	Name    string
	Spec    actionSpec
	Values  url.Values
	Confirm string // non-empty: the confirmation step, saying what will happen
	Danger  bool
}

// Value returns a field's current value (for the template).
func (a actionData) Value(name string) string { return a.Values.Get(name) }

func (c *Console) actionForm(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("action")
	spec, ok := actions[name]
	if !ok {
		c.render(w, r, http.StatusNotFound, "error", pageData{Title: "Not found", Error: "No action " + name})
		return
	}
	c.render(w, r, http.StatusOK, "action", pageData{Title: spec.Title, Nav: "actions",
		Data: actionData{Name: name, Spec: spec, Values: r.URL.Query(), Danger: spec.danger}})
}

func (c *Console) action(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("action")
	spec, ok := actions[name]
	if !ok {
		c.render(w, r, http.StatusNotFound, "error", pageData{Title: "Not found", Error: "No action " + name})
		return
	}
	v := url.Values{}
	for _, f := range spec.Fields {
		v.Set(f.Name, r.PostFormValue(f.Name))
	}
	d := actionData{Name: name, Spec: spec, Values: v, Danger: spec.danger}
	if r.PostFormValue("confirm") != "yes" {
		d.Confirm = spec.describe(v)
		c.render(w, r, http.StatusOK, "action", pageData{Title: "Confirm: " + spec.Title, Nav: "actions", Data: d})
		return
	}
	to, notice, err := spec.run(c, r.Context(), v)
	if err != nil {
		c.render(w, r, http.StatusUnprocessableEntity, "action", pageData{Title: spec.Title, Nav: "actions",
			Error: spec.Title + " failed: " + broker.Reason(err), Data: d})
		return
	}
	c.log.Info("console action", "action", name, "notice", notice)
	sep := "?"
	if strings.Contains(to, "?") {
		sep = "&"
	}
	http.Redirect(w, r, to+sep+url.Values{"done": {notice}}.Encode(), http.StatusSeeOther)
}
