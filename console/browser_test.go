package console_test

// The console in a real browser: headless Debian Chromium driven by
// chromedp against a broker started in-process, with real franz-go and
// pulsar-client-go traffic. Without chromium the test skips, unless
// CI=true (then it fails). CONSOLE_SCREENSHOTS=dir keeps the screenshots
// there (docs/console.md uses docs/console/*.png); otherwise they go to a
// temporary directory.

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/apache/pulsar-client-go/pulsar"
	plog "github.com/apache/pulsar-client-go/pulsar/log"
	"github.com/chromedp/chromedp"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kopernik-io/kopernik/server"
)

// chromiumPath finds Debian's chromium, skipping (or failing under CI) without it.
func chromiumPath(t *testing.T) string {
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("chromium not installed (apt-get install -y chromium); required under CI=true")
	}
	t.Skip("chromium not installed (apt-get install -y chromium): browser tests skipped")
	return ""
}

// browser starts headless chromium with a fresh profile; it is stopped at cleanup.
func browser(t *testing.T) context.Context {
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(chromiumPath(t)),
		chromedp.Flag("headless", true), chromedp.NoSandbox, chromedp.DisableGPU,
		chromedp.Flag("disable-background-networking", true), chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true), chromedp.NoFirstRun, chromedp.Flag("disable-quic", true),
		chromedp.UserDataDir(t.TempDir()), chromedp.WindowSize(1280, 800),
	}
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(actx)
	t.Cleanup(func() { cancel(); cancelAlloc() })
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("starting chromium: %v", err)
	}
	return ctx
}

// startBroker starts a broker with both protocols on port 0 and extra settings.
func startBroker(t *testing.T, extra map[string]string) *server.Server {
	o := map[string]string{
		"data-dir": t.TempDir(), "http-addr": "127.0.0.1:0", "protocols": "kafka,pulsar",
		"kafka-addr": "127.0.0.1:0", "pulsar-addr": "127.0.0.1:0",
	}
	for k, v := range extra {
		o[k] = v
	}
	cfg, err := server.Load("", nil, o)
	if err != nil {
		t.Fatal(err)
	}
	s, err := server.Start(context.Background(), cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close(context.Background()) })
	return s
}

func screenshotDir(t *testing.T) string {
	if d := os.Getenv("CONSOLE_SCREENSHOTS"); d != "" {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
		return d
	}
	return t.TempDir()
}

func TestConsoleInBrowser(t *testing.T) {
	bctx := browser(t)
	s := startBroker(t, nil)
	base := "http://" + s.Addr("http").String()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()

	// Kafka traffic: a 2-partition topic, 10 records per partition with a
	// key, a header and a JSON value; a group commits 3 and 7.
	kc, err := kgo.NewClient(kgo.SeedBrokers(s.Addr("kafka").String()), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		t.Fatal(err)
	}
	defer kc.Close()
	adm := kadm.NewClient(kc)
	if _, err := adm.CreateTopic(ctx, 2, 1, nil, "orders"); err != nil {
		t.Fatal(err)
	}
	for p := int32(0); p < 2; p++ {
		for i := range 10 {
			r := &kgo.Record{Topic: "orders", Partition: p, Key: []byte(fmt.Sprintf("customer-%d", i)),
				Value:   []byte(fmt.Sprintf(`{"order":%d,"partition":%d}`, i, p)),
				Headers: []kgo.RecordHeader{{Key: "source", Value: []byte("franz-go")}}}
			if err := kc.ProduceSync(ctx, r).FirstErr(); err != nil {
				t.Fatal(err)
			}
		}
	}
	offs := kadm.Offsets{}
	offs.Add(kadm.Offset{Topic: "orders", Partition: 0, At: 3, LeaderEpoch: -1})
	offs.Add(kadm.Offset{Topic: "orders", Partition: 1, At: 7, LeaderEpoch: -1})
	if _, err := adm.CommitOffsets(ctx, "billing", offs); err != nil {
		t.Fatal(err)
	}
	lags, err := adm.Lag(ctx, "billing")
	if err != nil {
		t.Fatalf("kadm lag: %v", err)
	}
	if gl := lags["billing"]; gl.Error() != nil {
		t.Fatalf("kadm lag: %v", gl.Error())
	}
	kadmLag := map[int32]int64{}
	for _, l := range lags["billing"].Lag["orders"] {
		kadmLag[l.Partition] = l.Lag
	}

	// Pulsar traffic: a Shared subscription that stays attached and a producer.
	pc, err := pulsar.NewClient(pulsar.ClientOptions{URL: "pulsar://" + s.Addr("pulsar").String(), Logger: plog.DefaultNopLogger()})
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	cons, err := pc.Subscribe(pulsar.ConsumerOptions{Topic: "orders", SubscriptionName: "audit",
		Type: pulsar.Shared, SubscriptionInitialPosition: pulsar.SubscriptionPositionEarliest})
	if err != nil {
		t.Fatal(err)
	}
	defer cons.Close()
	prod, err := pc.CreateProducer(pulsar.ProducerOptions{Topic: "orders-audit-log", Name: "auditor"})
	if err != nil {
		t.Fatal(err)
	}
	defer prod.Close()
	if _, err := prod.Send(ctx, &pulsar.ProducerMessage{Key: "k", Payload: []byte("from pulsar"), Properties: map[string]string{"via": "pulsar"}}); err != nil {
		t.Fatal(err)
	}
	for range 5 {
		m, err := cons.Receive(ctx)
		if err != nil {
			t.Fatal(err)
		}
		cons.Ack(m)
	}

	shots := screenshotDir(t)
	shot := func(name string) chromedp.Action[chromedp.Void] {
		return chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
			png, err := chromedp.FullScreenshot(100)(ctx, tg) // quality 100: PNG; lower is JPEG
			if err != nil {
				return err
			}
			return os.WriteFile(filepath.Join(shots, name+".png"), png, 0o644)
		})
	}
	run := func(what string, actions ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		rctx, cancel := context.WithTimeout(bctx, 30*time.Second)
		defer cancel()
		if err := chromedp.Do(rctx, actions...); err != nil {
			sctx, cancel := context.WithTimeout(bctx, 10*time.Second)
			defer cancel()
			html, _ := chromedp.Run(sctx, chromedp.Evaluate[string](`location.href + "\n" + document.body.innerText`))
			t.Fatalf("%s: %v; the page:\n%s", what, err, html)
		}
	}
	eval := func(expr string) string {
		t.Helper()
		rctx, cancel := context.WithTimeout(bctx, 30*time.Second)
		defer cancel()
		v, err := chromedp.Run(rctx, chromedp.Evaluate[string](expr))
		if err != nil {
			t.Fatalf("evaluating %s: %v", expr, err)
		}
		return v
	}
	text := func(sel string) string {
		t.Helper()
		rctx, cancel := context.WithTimeout(bctx, 30*time.Second)
		defer cancel()
		v, err := chromedp.Run(rctx, chromedp.Text(chromedp.CSS(sel)))
		if err != nil {
			t.Fatalf("reading %s: %v", sel, err)
		}
		return v
	}

	// Overview: the root redirects there; two topics counted.
	run("overview", chromedp.Navigate(base+"/"), chromedp.WaitVisible(chromedp.CSS("#topic-count")))
	if got := text("#topic-count"); got != "2" {
		t.Errorf("overview topic count %q, want 2", got)
	}
	// The Kafka client and the Pulsar client hold connections open.
	if got := text("#connections"); !strings.Contains(got, "kafka") || !strings.Contains(got, "pulsar") {
		t.Errorf("overview connections %q", got)
	}

	// Topics: filter finds the topic; its page lists the partitions' offsets and the Pulsar consumer.
	// The filter form is a GET form: its URL is what a submit loads. (Typing
	// and submitting raced the next Navigate: the unfiltered page has a
	// summary too, and the submit's navigation could land after it.)
	run("topics filter", chromedp.Navigate(base+"/console/topics?q=audit"),
		chromedp.WaitVisible(chromedp.CSS("#topic-summary")))
	if got := text("#topic-summary"); !strings.HasPrefix(got, "1 of 2 topics") {
		t.Errorf("filtered summary %q", got)
	}
	run("topics", chromedp.Navigate(base+"/console/topics"), chromedp.WaitVisible(chromedp.CSS("table")), shot("topics"))
	if got := text("table"); !strings.Contains(got, "persistent://public/default/orders") {
		t.Errorf("topics table lacks orders: %q", got)
	}
	run("topic", chromedp.Click(chromedp.CSS(`a[href*="orders"]:not([href*="audit"])`)), chromedp.WaitVisible(chromedp.CSS("#partitions")), shot("topic"))
	if got := text("#partitions"); !strings.Contains(got, "orders-partition-1\t0\t10\t10") {
		t.Errorf("partitions table %q", got)
	}
	if got := text("#consumers"); !strings.Contains(got, "pulsar") || !strings.Contains(got, "audit") || !strings.Contains(got, "Shared") {
		t.Errorf("consumers table %q", got)
	}

	// Subscriptions: the Kafka group's lag per partition equals kadm's.
	run("subscriptions", chromedp.Navigate(base+"/console/subscriptions?q=billing"), chromedp.WaitVisible(chromedp.CSS(".lag-cell")))
	lagTexts := eval(`[...document.querySelectorAll(".lag-cell")].map(e => e.dataset.partition + "=" + e.textContent).join(",")`)
	want := []string{fmt.Sprintf("orders-partition-0=%d", kadmLag[0]), fmt.Sprintf("orders-partition-1=%d", kadmLag[1])}
	if lagTexts != strings.Join(want, ",") || kadmLag[0] != 7 || kadmLag[1] != 3 {
		t.Errorf("console lag %v, kadm %v", lagTexts, want)
	}
	if got := text("h2 .tag"); got != "idle (no consumer)" {
		t.Errorf("billing type %q", got)
	}
	// Lag history: sampled every 10 s; wait for two samples of billing, as JSON and on the chart.
	deadline := time.Now().Add(40 * time.Second)
	for {
		resp, err := http.Get(base + "/console/api/lag?name=billing")
		if err != nil {
			t.Fatal(err)
		}
		var hist map[string][]struct{ Time, Lag int64 }
		err = json.NewDecoder(resp.Body).Decode(&hist)
		resp.Body.Close()
		if err != nil {
			t.Fatal(err)
		}
		if h := hist["billing"]; len(h) >= 2 {
			if h[len(h)-1].Lag != 10 {
				t.Errorf("lag history %v, want last 10", h)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("lag history never got two samples: %v", hist)
		}
		time.Sleep(500 * time.Millisecond)
	}
	run("subscriptions chart", chromedp.Navigate(base+"/console/subscriptions"), chromedp.WaitVisible(chromedp.CSS("svg.chart polyline")), shot("subscriptions"))
	if got := eval(`[...document.querySelectorAll("section.sub h2")].map(h => h.id + ":" + h.querySelector(".tag").textContent).join(",")`); got != "sub-audit:Shared,sub-billing:idle (no consumer)" {
		t.Errorf("subscription types %q", got)
	}

	// Message browser: a Kafka-produced record with its Pulsar view.
	run("messages", chromedp.Navigate(base+"/console/messages"),
		chromedp.SendKeys(chromedp.CSS("#topic"), "orders"), chromedp.SetValue(chromedp.CSS("#partition"), "1"),
		chromedp.SetValue(chromedp.CSS("#offset"), "2"), chromedp.SetValue(chromedp.CSS("#limit"), "3"),
		chromedp.Submit(chromedp.CSS("#topic")), chromedp.WaitVisible(chromedp.CSS("#offset-2")), shot("messages"))
	if got := text("#offset-2 .kafka .key"); got != "customer-2" {
		t.Errorf("key %q", got)
	}
	if got := text("#offset-2 .kafka .value"); !strings.Contains(got, `"order": 2`) || !strings.Contains(got, `"partition": 1`) {
		t.Errorf("JSON value %q", got)
	}
	id := text("#offset-2 .message-id")
	if parts := strings.Split(id, ":"); len(parts) < 2 {
		t.Errorf("message id %q", id)
	}
	if got := text("#offset-2 .properties"); !strings.Contains(got, "source = franz-go") {
		t.Errorf("pulsar properties %q", got)
	}
	if got := text("#offset-2 .event-time"); got == "none" || got == "" {
		t.Errorf("event time %q", got)
	}
	// The Pulsar message id is the one a Pulsar reader gets for the same record.
	rd, err := pc.CreateReader(pulsar.ReaderOptions{Topic: "orders-partition-1", StartMessageID: pulsar.EarliestMessageID()})
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i <= 2; i++ {
		m, err := rd.Next(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if i == 2 {
			mid := m.ID()
			if w := fmt.Sprintf("%d:%d", mid.LedgerID(), mid.EntryID()); !strings.HasPrefix(id, w+":") {
				t.Errorf("console message id %q, pulsar reader %v", id, mid)
			}
			if string(m.Payload()) != `{"order":2,"partition":1}` || m.Key() != "customer-2" {
				t.Errorf("pulsar reader got %q key %q", m.Payload(), m.Key())
			}
		}
	}
	rd.Close()

	// An action through its confirmation: create a topic with the
	// keyboard alone (type, Tab, type, Enter submits; the confirmation's
	// button has the focus, Enter confirms).
	run("create topic", chromedp.Navigate(base+"/console/actions/create-topic"),
		chromedp.Focus(chromedp.CSS("#f-topic")), chromedp.KeyEvent("made-in-console\t3\r"),
		chromedp.WaitVisible(chromedp.CSS("#confirm-text")), shot("confirm"))
	if got := text("#confirm-text"); !strings.Contains(got, "made-in-console with 3 partitions") {
		t.Errorf("confirmation %q", got)
	}
	md, err := s.Broker().ListTopics(ctx, "public/default")
	if err != nil || len(md) != 2 {
		t.Fatalf("a topic was created before confirming: %v %v", md, err)
	}
	if got := eval(`document.activeElement.id`); got != "confirm" {
		t.Errorf("focus on the confirmation page: %q, want the Confirm button", got)
	}
	run("confirm", chromedp.KeyEvent("\r"), chromedp.WaitVisible(chromedp.CSS(".notice")), chromedp.WaitVisible(chromedp.CSS("#partitions")))
	if got := text(".notice"); got != "Created persistent://public/default/made-in-console" {
		t.Errorf("notice %q", got)
	}
	if got := text("#partitions tbody"); strings.Count(got, "made-in-console-partition-") != 3 {
		t.Errorf("new topic's partitions %q", got)
	}
	tops, err := adm.ListTopics(ctx, "made-in-console")
	if err != nil || len(tops["made-in-console"].Partitions) != 3 {
		t.Errorf("kadm sees %v %v", tops, err)
	}

	// Errors are shown in the page.
	run("bad topic", chromedp.Navigate(base+"/console/messages?topic=missing"), chromedp.WaitVisible(chromedp.CSS(".error")))
	if got := text(".error"); !strings.Contains(got, "topic not found") {
		t.Errorf("error %q", got)
	}

	// The overview refreshes itself: a topic created meanwhile is counted
	// without a reload, and the page is the same document (focus kept).
	run("overview shot", chromedp.Navigate(base+"/console/"), chromedp.WaitVisible(chromedp.CSS("svg.chart")), shot("overview"),
		chromedp.Focus(chromedp.CSS(`nav a[href="/console/topics"]`)))
	if got := text("#topic-count"); got != "3" {
		t.Errorf("overview topic count %q, want 3", got)
	}
	eval(`window.sameDocument = "yes"`)
	if _, err := adm.CreateTopic(ctx, 1, 1, nil, "made-meanwhile"); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(15 * time.Second); text("#topic-count") != "4"; time.Sleep(250 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("overview never refreshed: topic count %q", text("#topic-count"))
		}
	}
	if got := eval(`window.sameDocument + " " + document.activeElement.textContent`); got != "yes Topics" {
		t.Errorf("after the live refresh: %q, want the same document with focus on Topics", got)
	}
	run("narrow", chromedp.EmulateViewport(390, 844, chromedp.EmulateScale(2)), chromedp.Navigate(base+"/console/messages?topic=orders&partition=1&offset=2&limit=1"),
		chromedp.WaitVisible(chromedp.CSS("#offset-2")), shot("narrow"))
	if eval(`String(document.documentElement.scrollWidth > window.innerWidth + 1)`) == "true" {
		t.Errorf("page wider than a 390 px screen")
	}
	t.Logf("screenshots in %s", shots)
}
