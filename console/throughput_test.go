package console_test

// A topic's page charts that topic's own throughput (Kafka in and out
// here), not the broker's.

import (
	"context"
	"net/http/httptest"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kopernik-io/kopernik/broker"
	"github.com/kopernik-io/kopernik/console"
)

// polylineRE captures one chart series' points ("x,y x,y ...").
var polylineRE = regexp.MustCompile(`<polyline class="line s\d" points="([^"]*)"`)

// seriesPeaks returns, per series of every chart in page, how far its
// highest point is above the plot's floor (the lowest y drawn): 0 for a
// series that is zero throughout.
func seriesPeaks(t *testing.T, page string) []float64 {
	t.Helper()
	var peaks []float64
	for _, m := range polylineRE.FindAllStringSubmatch(page, -1) {
		lo, hi := -1.0, -1.0 // SVG y grows downwards: the floor is the largest y
		for _, pt := range strings.Fields(m[1]) {
			_, ys, ok := strings.Cut(pt, ",")
			y, err := strconv.ParseFloat(ys, 64)
			if !ok || err != nil {
				t.Fatalf("bad point %q in %q", pt, m[0])
			}
			if lo < 0 || y > lo {
				lo = y
			}
			if hi < 0 || y < hi {
				hi = y
			}
		}
		peaks = append(peaks, lo-hi)
	}
	return peaks
}

func TestTopicThroughputChart(t *testing.T) {
	s := startBroker(t, nil)
	for _, name := range []string{"busy", "quiet"} {
		if err := s.Broker().CreateTopic(t.Context(), mustName(t, name), 2, broker.Policies{}); err != nil {
			t.Fatal(err)
		}
	}
	// A console of its own over the same broker, sampling fast.
	con, err := console.New(s.Broker(), console.Options{SampleInterval: 50 * time.Millisecond, SampleCount: 400})
	if err != nil {
		t.Fatal(err)
	}
	defer con.Close()
	hs := httptest.NewServer(con)
	defer hs.Close()
	c := client(t)
	page := func(topic string) string {
		code, body, _ := get(t, c, hs.URL+"/console/topic?name="+topic)
		if code != 200 || !strings.Contains(body, `id="topic-msg-chart"`) || !strings.Contains(body, `id="topic-byte-chart"`) ||
			!strings.Contains(body, `aria-label="Messages per second, in and out, this topic"`) {
			t.Fatalf("topic %s page: %d %q", topic, code, body)
		}
		return body
	}
	// Opening the pages loads the partitions: sampled from then on. A
	// topic's rates count from its first sample, so wait for two (the
	// chart draws its lines) before the traffic.
	for _, topic := range []string{"busy", "quiet"} {
		for len(seriesPeaks(t, page(topic))) != 4 {
			if t.Context().Err() != nil {
				t.Fatalf("%s never sampled", topic)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}

	kc, err := kgo.NewClient(kgo.SeedBrokers(s.Addr("kafka").String()), kgo.ConsumeTopics("busy"),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer kc.Close()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	const n = 200
	for i := range n {
		kc.Produce(ctx, &kgo.Record{Topic: "busy", Value: []byte("message " + strconv.Itoa(i))}, nil)
	}
	if err := kc.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	for got := 0; got < n; {
		fs := kc.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			t.Fatalf("consumed %d of %d: %v", got, n, err)
		}
		got += fs.NumRecords()
	}
	// busy: msg/s in, out, then bytes/s in, out: all above zero once a
	// sample after the traffic is taken.
	for {
		peaks := seriesPeaks(t, page("busy"))
		if len(peaks) == 4 && peaks[0] > 0 && peaks[1] > 0 && peaks[2] > 0 && peaks[3] > 0 {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("busy topic's series peaks %v, want 4 above zero", peaks)
		}
		time.Sleep(20 * time.Millisecond)
	}
	// quiet saw none of it.
	if peaks := seriesPeaks(t, page("quiet")); len(peaks) != 4 || peaks[0] != 0 || peaks[1] != 0 || peaks[2] != 0 || peaks[3] != 0 {
		t.Errorf("quiet topic's series peaks %v, want 4 flat", peaks)
	}
}
