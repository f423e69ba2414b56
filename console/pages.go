package console

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/kopernik-io/kopernik/broker"
	"github.com/kopernik-io/kopernik/convert"
)

// overviewData is the overview page's content.
type overviewData struct {
	Tenants, Namespaces, Topics int
	NamespaceNames              []string
	Partitions                  int
	Storage                     int64
	Last                        ratePoint
	Producers, Consumers        map[string]int // attached, by protocol
	Connections                 map[string]int // open, by protocol; nil: unknown
	MsgChart, ByteChart         any
	Scoped                      bool // a tenant admin's: no broker-wide rates
}

func (c *Console) overview(w http.ResponseWriter, r *http.Request) {
	d := overviewData{Producers: map[string]int{}, Consumers: map[string]int{}}
	var errs []string
	nss, err := c.namespaces(r.Context())
	if err != nil {
		errs = append(errs, err.Error())
	}
	tenants := map[string]bool{}
	for _, ns := range nss {
		tenants[strings.SplitN(ns, "/", 2)[0]] = true
		ts, err := c.svc.ListTopics(r.Context(), ns)
		if err != nil {
			errs = append(errs, err.Error())
		}
		d.Topics += len(ts)
	}
	d.Tenants, d.Namespaces, d.NamespaceNames = len(tenants), len(nss), nss
	if c.opts.Connections != nil {
		d.Connections = c.opts.Connections()
	}
	for _, p := range c.svc.Partitions() {
		if !visible(r.Context(), p.Name().Tenant) {
			continue
		}
		d.Partitions++
		d.Storage += p.Stats().Bytes
		for _, pi := range p.Producers() {
			d.Producers[orDash(pi.Protocol)]++
		}
		for _, sub := range p.Subscriptions(r.Context()) {
			for _, ci := range sub.Consumers() {
				d.Consumers[orDash(ci.Protocol)]++
			}
		}
	}
	// The broker's throughput is every tenant's: a tenant admin gets
	// its topics' pages' charts instead.
	if d.Scoped = scoped(r.Context()); !d.Scoped {
		pts := c.rates.points()
		if len(pts) > 0 {
			d.Last = pts[len(pts)-1]
		}
		d.MsgChart, d.ByteChart = rateCharts("both protocols", pts)
	}
	c.render(w, r, http.StatusOK, "overview", pageData{Title: "Overview", Nav: "overview", Error: strings.Join(errs, "; "), Data: d})
}

// rateCharts draws messages and bytes per second, in and out, of pts;
// what names whose rates they are.
func rateCharts(what string, pts []ratePoint) (msgs, bytes template.HTML) {
	times := make([]time.Time, len(pts))
	in, out, inB, outB := make([]float64, len(pts)), make([]float64, len(pts)), make([]float64, len(pts)), make([]float64, len(pts))
	for i, p := range pts {
		times[i], in[i], out[i], inB[i], outB[i] = p.T, p.InMsgs, p.OutMsgs, p.InBytes, p.OutBytes
	}
	msgs = lineChart("Messages per second, in and out, "+what, times,
		[]series{{"in msg/s", in}, {"out msg/s", out}}, func(v float64) string { return formatRate(v) })
	bytes = lineChart("Bytes per second, in and out, "+what, times,
		[]series{{"in B/s", inB}, {"out B/s", outB}}, func(v float64) string { return formatBytes(int64(v)) + "/s" })
	return msgs, bytes
}

// namespaces lists every visible tenant's namespaces, sorted.
func (c *Console) namespaces(ctx context.Context) ([]string, error) {
	tenants, err := c.svc.ListTenants(ctx)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, t := range tenants {
		if !visible(ctx, t) {
			continue
		}
		nss, err := c.svc.ListNamespaces(ctx, t)
		if err != nil {
			return out, err
		}
		out = append(out, nss...)
	}
	sort.Strings(out)
	return out, nil
}

const pageSize = 50

type topicRow struct {
	Name       string
	Partitions int
	Created    time.Time
}

type topicsData struct {
	Filter           string
	Rows             []topicRow
	Total, Matched   int
	Page, Pages      int
	PrevURL, NextURL string
}

func (c *Console) topics(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	d := topicsData{Filter: strings.TrimSpace(q.Get("q")), Page: 1}
	if n, err := strconv.Atoi(q.Get("page")); err == nil && n > 0 {
		d.Page = n
	}
	var errs []string
	nss, err := c.namespaces(r.Context())
	if err != nil {
		errs = append(errs, err.Error())
	}
	var all []topicRow
	for _, ns := range nss {
		for _, list := range []func(context.Context, string) ([]broker.TopicMetadata, error){c.svc.ListTopics, c.svc.ListNonPersistentTopics} {
			ts, err := list(r.Context(), ns)
			if err != nil {
				errs = append(errs, err.Error())
			}
			for _, t := range ts {
				d.Total++
				name := t.Name.String()
				if d.Filter == "" || strings.Contains(strings.ToLower(name), strings.ToLower(d.Filter)) {
					all = append(all, topicRow{Name: name, Partitions: t.Partitions, Created: t.Created})
				}
			}
		}
	}
	sort.Slice(all, func(i, j int) bool { return all[i].Name < all[j].Name })
	d.Matched = len(all)
	d.Pages = max(1, (len(all)+pageSize-1)/pageSize)
	d.Page = min(d.Page, d.Pages)
	d.Rows = all[(d.Page-1)*pageSize : min(len(all), d.Page*pageSize)]
	link := func(p int) string {
		return "/console/topics?" + url.Values{"q": {d.Filter}, "page": {strconv.Itoa(p)}}.Encode()
	}
	if d.Page > 1 {
		d.PrevURL = link(d.Page - 1)
	}
	if d.Page < d.Pages {
		d.NextURL = link(d.Page + 1)
	}
	c.render(w, r, http.StatusOK, "topics", pageData{Title: "Topics", Nav: "topics", Error: strings.Join(errs, "; "), Data: d})
}

type clientRow struct {
	Protocol, Name, Address, Client, Subscription, Type string
	Since                                               time.Time
}

type partitionRow struct {
	Name, Short      string
	Index            int
	Start, End, Size int64
	Messages         int64
}

type topicData struct {
	Name        string
	Partitioned bool
	Partitions  []partitionRow
	Producers   []clientRow
	Consumers   []clientRow
	Policies    [][2]string
	Subs        []string
	// Last is the latest throughput sample; the charts its history.
	Last                ratePoint
	MsgChart, ByteChart any
}

func (c *Console) topic(w http.ResponseWriter, r *http.Request) {
	name, md, err := c.lookupTopic(r.Context(), r.URL.Query().Get("name"))
	if err != nil {
		c.renderError(w, r, "Topic", err)
		return
	}
	d := topicData{Name: name.String(), Partitioned: md.Partitions > 0}
	var errs []string
	subs := map[string]bool{}
	for i, pn := range partitionsOf(md) {
		p, err := c.svc.OpenPartition(r.Context(), pn, false)
		if err != nil {
			errs = append(errs, fmt.Sprintf("%s: %s", pn, broker.Reason(err)))
			continue
		}
		st := p.Stats()
		d.Partitions = append(d.Partitions, partitionRow{Name: pn.String(), Short: pn.Local, Index: i,
			Start: p.FirstIndex(), End: p.NextIndex(), Size: st.Bytes, Messages: p.NextIndex() - p.FirstIndex()})
		for _, pi := range p.Producers() {
			d.Producers = append(d.Producers, clientRow{Protocol: pi.Protocol, Name: pi.Name, Address: pi.Address,
				Client: pi.ClientVersion, Since: pi.ConnectedSince, Type: pi.AccessMode})
		}
		for _, sub := range p.Subscriptions(r.Context()) {
			subs[sub.Name()] = true
			for _, ci := range sub.Consumers() {
				d.Consumers = append(d.Consumers, clientRow{Protocol: ci.Protocol, Name: ci.Name, Address: ci.Address,
					Client: ci.ClientVersion, Since: ci.ConnectedSince, Subscription: sub.Name(), Type: subType(sub, ci.Type)})
			}
		}
	}
	for s := range subs {
		d.Subs = append(d.Subs, s)
	}
	sort.Strings(d.Subs)
	pts := c.rates.topicPoints(name.String())
	if len(pts) > 0 {
		d.Last = pts[len(pts)-1]
	}
	d.MsgChart, d.ByteChart = rateCharts("this topic", pts)
	e := md.Effective
	d.Policies = [][2]string{
		{"retention time", durationOrForever(e.RetentionTime)},
		{"retention size", bytesOrUnlimited(e.RetentionBytes)},
		{"max message size", formatBytes(int64(e.MaxMessageBytes))},
		{"segment size", formatBytes(e.SegmentBytes)},
		{"segment age", e.SegmentAge.String()},
		{"auto topic creation", strconv.FormatBool(e.AutoTopicCreation)},
		{"auto subscription creation", strconv.FormatBool(e.AutoSubscriptionCreation)},
		{"offload threshold", bytesOrUnlimited(e.OffloadThresholdBytes)},
		{"terminated", strconv.FormatBool(e.Terminated)},
	}
	if q := e.BacklogQuota; q != nil {
		d.Policies = append(d.Policies, [2]string{"backlog quota", formatBytes(q.LimitBytes) + " " + q.Policy})
	}
	c.render(w, r, http.StatusOK, "topic", pageData{Title: d.Name, Nav: "topics", Error: strings.Join(errs, "; "), Data: d})
}

// lookupTopic resolves a typed topic name (as parseName) to an existing
// topic.
func (c *Console) lookupTopic(ctx context.Context, s string) (broker.TopicName, broker.TopicMetadata, error) {
	name, err := c.parseName(ctx, s)
	if err != nil {
		return name, broker.TopicMetadata{}, err
	}
	md, err := c.svc.GetTopic(ctx, name)
	return name, md, err
}

// partitionsOf lists the partition names of a topic (itself if not partitioned).
func partitionsOf(md broker.TopicMetadata) []broker.TopicName {
	if md.Partitions == 0 {
		return []broker.TopicName{md.Name}
	}
	out := make([]broker.TopicName, md.Partitions)
	for i := range out {
		out[i] = md.Name.Partition(i)
	}
	return out
}

// subType names a subscription's type: the Pulsar consumer's, "Kafka
// group" for Kafka members and cursors that Kafka commits wrote properties
// to, else idleType.
func subType(sub *broker.Subscription, consumerType string) string {
	if consumerType != "" {
		return consumerType
	}
	for _, ci := range sub.Consumers() {
		if ci.Protocol == "kafka" {
			return "Kafka group"
		}
		if ci.Type != "" {
			return ci.Type
		}
	}
	for k := range sub.Cursor().Properties() {
		if strings.HasPrefix(k, "kafka.") {
			return "Kafka group"
		}
	}
	return idleType
}

// idleType names a subscription without consumers whose cursor says
// nothing of its protocol (a Kafka group committing without metadata, a
// Pulsar subscription whose consumers left).
const idleType = "idle (no consumer)"

// subscriptionView is one subscription (= Kafka group) over every loaded
// partition it has a cursor on.
type subscriptionView struct {
	Name       string
	Types      []string
	Members    []clientRow
	Partitions []subPartition
	Lag        int64
	Chart      any
}

type subPartition struct {
	Topic, Partition        string
	Committed, End, Lag     int64
	Backlog                 int64
	MarkDelete, ReadPointer string
}

// subscriptions gathers every subscription of the loaded partitions. Lag
// is the Kafka one, end offset - committed offset (what kadm computes);
// backlog is Pulsar's unacknowledged message count.
func (c *Console) subscriptions(ctx context.Context) []subscriptionView {
	byName := map[string]*subscriptionView{}
	types := map[string]map[string]bool{}
	for _, p := range c.svc.Partitions() {
		if !visible(ctx, p.Name().Tenant) {
			continue
		}
		for _, sub := range p.Subscriptions(ctx) {
			v := byName[sub.Name()]
			if v == nil {
				v = &subscriptionView{Name: sub.Name()}
				byName[sub.Name()] = v
				types[sub.Name()] = map[string]bool{}
			}
			types[sub.Name()][subType(sub, "")] = true
			cur := sub.Cursor()
			committed, end := cur.NextIndex(), p.NextIndex()
			md := cur.MarkDeletePosition()
			sp := subPartition{Topic: p.Name().Base().String(), Partition: p.Name().Local,
				Committed: committed, End: end, Lag: max(0, end-committed), Backlog: cur.Backlog(),
				MarkDelete: fmt.Sprintf("%d:%d", md.LedgerID, md.EntryID)}
			v.Lag += sp.Lag
			v.Partitions = append(v.Partitions, sp)
			for _, ci := range sub.Consumers() {
				v.Members = append(v.Members, clientRow{Protocol: ci.Protocol, Name: ci.Name, Address: ci.Address,
					Client: ci.ClientVersion, Since: ci.ConnectedSince, Subscription: sp.Partition})
			}
		}
	}
	out := make([]subscriptionView, 0, len(byName))
	for name, v := range byName {
		for t := range types[name] {
			if t != idleType || len(types[name]) == 1 {
				v.Types = append(v.Types, t)
			}
		}
		sort.Strings(v.Types)
		out = append(out, *v)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

type subscriptionsData struct {
	Filter string
	Subs   []subscriptionView
}

func (c *Console) subscriptionsPage(w http.ResponseWriter, r *http.Request) {
	d := subscriptionsData{Filter: strings.TrimSpace(r.URL.Query().Get("q"))}
	for _, v := range c.subscriptions(r.Context()) {
		if d.Filter != "" && !strings.Contains(strings.ToLower(v.Name), strings.ToLower(d.Filter)) {
			continue
		}
		hist := c.lag.history(v.Name)
		times, lags := make([]time.Time, len(hist)), make([]float64, len(hist))
		for i, p := range hist {
			times[i], lags[i] = time.UnixMilli(p.Time), float64(p.Lag)
		}
		v.Chart = lineChart("Lag of "+v.Name+" over time", times, []series{{"lag (messages)", lags}},
			func(x float64) string { return strconv.FormatFloat(x, 'f', -1, 64) })
		d.Subs = append(d.Subs, v)
	}
	c.render(w, r, http.StatusOK, "subscriptions", pageData{Title: "Subscriptions", Nav: "subscriptions", Data: d})
}

// lagJSON serves the lag history: {"name": [{"time": ms, "lag": n}, ...]}
// for ?name= one subscription, or every tracked one.
func (c *Console) lagJSON(w http.ResponseWriter, r *http.Request) {
	var v map[string][]LagPoint
	if name := r.URL.Query().Get("name"); name != "" {
		v = map[string][]LagPoint{name: c.lag.history(name)}
	} else {
		v = c.lag.all()
	}
	if scoped(r.Context()) {
		// Only the subscriptions the tenant admin's topics have.
		mine := map[string]bool{}
		for _, sv := range c.subscriptions(r.Context()) {
			mine[sv.Name] = true
		}
		for name := range v {
			if !mine[name] {
				delete(v, name)
			}
		}
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(v)
}

// messageRow is one record in both views, formatted.
type messageRow struct {
	Offset                   int64
	Key, Value, ValueFormat  string
	NullKey, NullValue       bool
	Timestamp                time.Time
	LogAppend                bool
	Headers                  [][2]string
	MessageID                string
	PulsarKey                string
	OrderingKey              string
	Properties               [][2]string
	EventTime, PublishTime   time.Time
	Producer                 string
	SequenceID               uint64
	HasEventTime, HasPulsarK bool
}

type messagesData struct {
	Topic, View      string
	Time             string // the time asked for, as typed
	Partition        int
	Offset, Limit    int64
	Start, End       int64
	Rows             []messageRow
	NextURL, PrevURL string
	Searched         bool
}

const maxMessages = 100

func (c *Console) messages(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	d := messagesData{Topic: strings.TrimSpace(q.Get("topic")), View: q.Get("view"), Limit: 20}
	if d.View == "" {
		d.View = "auto"
	}
	if d.Topic == "" {
		c.render(w, r, http.StatusOK, "messages", pageData{Title: "Messages", Nav: "messages", Data: d})
		return
	}
	d.Searched = true
	var err error
	if d.Partition, err = intParam(q, "partition", 0); err == nil {
		if d.Offset, err = int64Param(q, "offset", -1); err == nil {
			d.Limit, err = int64Param(q, "limit", 20)
		}
	}
	var fromTime int64 = -1
	if d.Time = strings.TrimSpace(q.Get("time")); d.Time != "" && err == nil {
		fromTime, err = parseTime(d.Time)
	}
	if err == nil && (d.Limit < 1 || d.Limit > maxMessages) {
		err = fmt.Errorf("limit %d: want 1 to %d", d.Limit, maxMessages)
	}
	var md broker.TopicMetadata
	if err == nil {
		_, md, err = c.lookupTopic(r.Context(), d.Topic)
	}
	if err == nil && (d.Partition < 0 || d.Partition >= max(md.Partitions, 1)) {
		err = fmt.Errorf("partition %d: the topic has %d", d.Partition, max(md.Partitions, 1))
	}
	var p *broker.Partition
	if err == nil {
		d.Topic = md.Name.String()
		p, err = c.svc.OpenPartition(r.Context(), partitionsOf(md)[d.Partition], false)
	}
	if err != nil {
		c.render(w, r, http.StatusOK, "messages", pageData{Title: "Messages", Nav: "messages", Error: broker.Reason(err), Data: d})
		return
	}
	d.Start, d.End = p.FirstIndex(), p.NextIndex()
	if fromTime >= 0 {
		// From a time: the first entry at or after it (Kafka ListOffsets by timestamp).
		if d.Offset, err = offsetAt(r.Context(), p, fromTime); err != nil {
			c.render(w, r, http.StatusOK, "messages", pageData{Title: "Messages", Nav: "messages", Error: broker.Reason(err), Data: d})
			return
		}
	}
	if d.Offset < 0 { // default: the last page
		d.Offset = max(d.Start, d.End-d.Limit)
	}
	d.Offset = max(d.Offset, d.Start)
	rows, err := c.readMessages(r.Context(), p, d.Offset, int(d.Limit), d.View)
	d.Rows = rows
	link := func(off int64) string {
		return "/console/messages?" + url.Values{"topic": {d.Topic}, "partition": {strconv.Itoa(d.Partition)},
			"offset": {strconv.FormatInt(off, 10)}, "limit": {strconv.FormatInt(d.Limit, 10)}, "view": {d.View}}.Encode()
	}
	if d.Offset > d.Start {
		d.PrevURL = link(max(d.Start, d.Offset-d.Limit))
	}
	if d.Offset+d.Limit < d.End {
		d.NextURL = link(d.Offset + d.Limit)
	}
	msg := ""
	if err != nil {
		msg = broker.Reason(err)
	}
	c.render(w, r, http.StatusOK, "messages", pageData{Title: "Messages", Nav: "messages", Error: msg, Data: d})
}

// parseTime reads RFC 3339 or unix milliseconds (>= 0).
func parseTime(ts string) (int64, error) {
	if t, err := time.Parse(time.RFC3339, ts); err == nil && t.UnixMilli() >= 0 {
		return t.UnixMilli(), nil
	}
	if n, err := strconv.ParseInt(ts, 10, 64); err == nil && n >= 0 {
		return n, nil
	}
	return 0, fmt.Errorf("time %q: want RFC 3339 (2026-01-02T15:04:05Z) or unix milliseconds", ts)
}

// offsetAt is the offset of the first entry at or after ms (unix
// milliseconds); the end offset when none is.
func offsetAt(ctx context.Context, p *broker.Partition, ms int64) (int64, error) {
	e, ok, err := p.FindByTime(ctx, ms)
	if err != nil {
		return 0, err
	}
	if !ok {
		return p.NextIndex(), nil
	}
	defer e.Release()
	return e.FirstIndex, nil
}

// readMessages reads up to limit messages from offset, both views.
func (c *Console) readMessages(ctx context.Context, p *broker.Partition, offset int64, limit int, view string) ([]messageRow, error) {
	var rows []messageRow
	for next := offset; len(rows) < limit && next < p.NextIndex(); {
		before := next
		es, err := p.ReadFromIndex(ctx, next, 16, 4<<20)
		if err != nil {
			return rows, err
		}
		if len(es) == 0 {
			break
		}
		for i := range es {
			e := &es[i]
			ms, err := convert.Inspect(e, int(p.Policies().MaxMessageBytes))
			if err != nil {
				rows = append(rows, messageRow{Offset: e.FirstIndex, Value: "entry not shown: " + err.Error(), ValueFormat: "error"})
				next = e.FirstIndex + int64(max(e.MsgCount, 1))
				continue
			}
			for _, m := range ms {
				if m.Offset >= next && len(rows) < limit {
					rows = append(rows, messageRowOf(e, m, view))
				}
			}
			next = max(next, e.FirstIndex+int64(len(ms)))
		}
		for i := range es {
			es[i].Release()
		}
		if next == before {
			break // nothing past next: do not ask again
		}
	}
	return rows, nil
}

func messageRowOf(e *broker.Entry, m convert.Inspected, view string) messageRow {
	row := messageRow{Offset: m.Offset, NullKey: m.Kafka.Key == nil, NullValue: m.Kafka.Value == nil,
		Timestamp: time.UnixMilli(m.Kafka.Timestamp), LogAppend: m.Kafka.LogAppend}
	row.Key, _ = formatValue(m.Kafka.Key, "auto")
	row.Value, row.ValueFormat = formatValue(m.Kafka.Value, view)
	for _, h := range m.Kafka.Headers {
		v, _ := formatValue(h.Value, "auto")
		row.Headers = append(row.Headers, [2]string{h.Key, v})
	}
	pm := m.Pulsar
	row.MessageID = fmt.Sprintf("%d:%d:%d", pm.LedgerID, pm.EntryID, pm.BatchIndex)
	if pm.BatchIndex < 0 {
		row.MessageID = fmt.Sprintf("%d:%d", pm.LedgerID, pm.EntryID)
	}
	row.PulsarKey, row.HasPulsarK = pm.Key, pm.HasKey
	if pm.KeyB64 {
		row.PulsarKey += " (base64)"
	}
	if pm.OrderingKey != nil {
		row.OrderingKey, _ = formatValue(pm.OrderingKey, "auto")
	}
	for _, h := range pm.Properties {
		row.Properties = append(row.Properties, [2]string{h.Key, string(h.Value)})
	}
	row.HasEventTime = pm.EventTime > 0
	row.EventTime, row.PublishTime = time.UnixMilli(pm.EventTime), time.UnixMilli(pm.PublishTime)
	row.Producer, row.SequenceID = pm.ProducerName, pm.SequenceID
	return row
}

// formatValue shows b as view asks: "text", "json" (pretty-printed), "hex",
// or "auto" (JSON if it parses, text if UTF-8, else hex). It returns the
// format used.
func formatValue(b []byte, view string) (string, string) {
	if b == nil {
		return "null", "null"
	}
	if view == "auto" {
		switch {
		case json.Valid(b) && len(b) > 0 && (b[0] == '{' || b[0] == '['):
			view = "json"
		case utf8.Valid(b):
			view = "text"
		default:
			view = "hex"
		}
	}
	switch view {
	case "json":
		var v any
		if err := json.Unmarshal(b, &v); err == nil {
			out, _ := json.MarshalIndent(v, "", "  ")
			return string(out), "json"
		}
		return string(b) + "\n(not JSON)", "text"
	case "hex":
		return hex.Dump(b), "hex"
	}
	return strings.ToValidUTF8(string(b), "\uFFFD"), "text"
}

func intParam(q url.Values, k string, def int) (int, error) {
	v, err := int64Param(q, k, int64(def))
	return int(v), err
}

func int64Param(q url.Values, k string, def int64) (int64, error) {
	s := strings.TrimSpace(q.Get(k))
	if s == "" {
		return def, nil
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%s %q: want a whole number", k, s)
	}
	return n, nil
}

func (c *Console) renderError(w http.ResponseWriter, r *http.Request, title string, err error) {
	status := http.StatusBadRequest
	switch {
	case errors.Is(err, broker.ErrTopicNotFound) || errors.Is(err, broker.ErrSubscriptionNotFound):
		status = http.StatusNotFound
	case errors.Is(err, errNotAllowed):
		status = http.StatusForbidden
	}
	c.render(w, r, status, "error", pageData{Title: title, Error: broker.Reason(err)})
}
