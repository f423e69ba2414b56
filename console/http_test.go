package console_test

// The console's HTTP contract without a browser: authentication, CSRF,
// the confirmation step, and bad input answered with a page, not a crash.

import (
	"errors"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/kopernik-io/kopernik/broker"
	"github.com/kopernik-io/kopernik/server"
)

// client is a browser-like HTTP client: a cookie jar, redirects not followed.
func client(t *testing.T) *http.Client {
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	return &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

func get(t *testing.T, c *http.Client, u string) (int, string, http.Header) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, u, nil)
	if err != nil {
		t.Fatal(err)
	}
	return do(t, c, req)
}

func post(t *testing.T, c *http.Client, u string, form url.Values, origin string) (int, string, http.Header) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, u, strings.NewReader(form.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if origin != "" {
		req.Header.Set("Origin", origin)
	}
	return do(t, c, req)
}

// do sends req and returns the status, the body and the headers.
func do(t *testing.T, c *http.Client, req *http.Request) (int, string, http.Header) {
	t.Helper()
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), resp.Header
}

var csrfRE = regexp.MustCompile(`name="csrf" value="([0-9a-f]+)"`)

// csrfOf reads the CSRF token from a page's form.
func csrfOf(t *testing.T, page string) string {
	t.Helper()
	m := csrfRE.FindStringSubmatch(page)
	if m == nil {
		t.Fatalf("no CSRF token in %q", page)
	}
	return m[1]
}

func TestConsoleCSRFAndConfirmation(t *testing.T) {
	s := startBroker(t, nil)
	base := "http://" + s.Addr("http").String()
	c := client(t)
	_, page, _ := get(t, c, base+"/console/actions/create-topic")
	token := csrfOf(t, page)
	form := url.Values{"topic": {"t1"}, "partitions": {"2"}, "confirm": {"yes"}}

	// Without the token, or from another origin: refused, nothing created.
	if code, body, _ := post(t, c, base+"/console/actions/create-topic", form, ""); code != http.StatusForbidden || !strings.Contains(body, "Cross-site request refused") {
		t.Errorf("POST without token: %d %q", code, body)
	}
	form.Set("csrf", token)
	if code, _, _ := post(t, c, base+"/console/actions/create-topic", form, "http://evil.example"); code != http.StatusForbidden {
		t.Errorf("POST from another origin: %d", code)
	}
	// Without confirm=yes: a confirmation page, nothing created.
	unconfirmed := url.Values{"topic": {"t1"}, "partitions": {"2"}, "csrf": {token}}
	if code, body, _ := post(t, c, base+"/console/actions/create-topic", unconfirmed, base); code != http.StatusOK || !strings.Contains(body, "Create topic t1 with 2 partitions.") {
		t.Errorf("unconfirmed POST: %d %q", code, body)
	}
	if ts, err := s.Broker().ListTopics(t.Context(), "public/default"); err != nil || len(ts) != 0 {
		t.Fatalf("topics before confirming: %v %v", ts, err)
	}
	code, _, h := post(t, c, base+"/console/actions/create-topic", form, base)
	if code != http.StatusSeeOther || !strings.Contains(h.Get("Location"), "done=Created") {
		t.Fatalf("confirmed POST: %d %v", code, h)
	}
	if ts, err := s.Broker().ListTopics(t.Context(), "public/default"); err != nil || len(ts) != 1 || ts[0].Partitions != 2 {
		t.Fatalf("topics after confirming: %v %v", ts, err)
	}
	// The same again: the broker's reason, in the page.
	if code, body, _ := post(t, c, base+"/console/actions/create-topic", form, base); code != http.StatusUnprocessableEntity || !strings.Contains(body, "already exists") {
		t.Errorf("second create: %d %q", code, body)
	}

	// Produce through the console, then see it in the browser page.
	pform := url.Values{"topic": {"t1"}, "partition": {"1"}, "key": {"k"}, "value": {"hello console"}, "confirm": {"yes"}, "csrf": {token}}
	code, _, h = post(t, c, base+"/console/actions/produce", pform, base)
	if code != http.StatusSeeOther || !strings.Contains(h.Get("Location"), "offset=0") {
		t.Fatalf("produce: %d %v", code, h)
	}
	if code, body, _ := get(t, c, base+h.Get("Location")); code != http.StatusOK || !strings.Contains(body, "hello console") || !strings.Contains(body, "Produced at offset 0") {
		t.Errorf("produced message page: %d %q", code, body)
	}
	// From a time: before it, the message; after it, none.
	if code, body, _ := get(t, c, base+"/console/messages?topic=t1&partition=1&time=2000-01-01T00:00:00Z"); code != http.StatusOK || !strings.Contains(body, `id="offset-0"`) {
		t.Errorf("messages from 2000: %d %q", code, body)
	}
	later := strconv.FormatInt(time.Now().Add(time.Hour).UnixMilli(), 10)
	if code, body, _ := get(t, c, base+"/console/messages?topic=t1&partition=1&time="+later); code != http.StatusOK || strings.Contains(body, `id="offset-0"`) || !strings.Contains(body, "No message at these offsets") {
		t.Errorf("messages from an hour ahead: %d %q", code, body)
	}

	// Reset a subscription to earliest, grow the topic, delete it.
	part, err := s.Broker().OpenPartition(t.Context(), mustName(t, "t1-partition-1"), false)
	if err != nil {
		t.Fatal(err)
	}
	sub, err := part.Subscription(t.Context(), "grp", true, broker.InitialLatest)
	if err != nil || sub.Cursor().NextIndex() != 1 {
		t.Fatalf("subscription at latest: %v", err)
	}
	noSub := url.Values{"subscription": {"nobody"}, "topic": {"t1"}, "to": {"earliest"}, "csrf": {token}, "confirm": {"yes"}}
	if code, body, _ := post(t, c, base+"/console/actions/reset-subscription", noSub, base); code != http.StatusUnprocessableEntity || !strings.Contains(body, "subscription not found") {
		t.Errorf("reset of a missing subscription: %d %q", code, body)
	}
	for _, tc := range []struct {
		action string
		form   url.Values
	}{
		{"reset-subscription", url.Values{"subscription": {"grp"}, "topic": {"t1"}, "to": {"earliest"}}},
		{"add-partitions", url.Values{"topic": {"t1"}, "partitions": {"3"}}},
	} {
		tc.form.Set("csrf", token)
		tc.form.Set("confirm", "yes")
		if code, body, h := post(t, c, base+"/console/actions/"+tc.action, tc.form, base); code != http.StatusSeeOther {
			t.Fatalf("%s: %d %v %q", tc.action, code, h, body)
		}
	}
	if next := sub.Cursor().NextIndex(); next != 0 {
		t.Errorf("after reset to earliest: next %d", next)
	}
	toTime := url.Values{"subscription": {"grp"}, "topic": {"t1"}, "to": {"time"}, "time": {later}, "csrf": {token}, "confirm": {"yes"}}
	if code, _, _ := post(t, c, base+"/console/actions/reset-subscription", toTime, base); code != http.StatusSeeOther {
		t.Errorf("reset to a time: %d", code)
	}
	if next := sub.Cursor().NextIndex(); next != 1 {
		t.Errorf("after reset to an hour ahead: next %d, want the end 1", next)
	}
	toTime.Set("time", "2000-01-01T00:00:00Z")
	if code, _, _ := post(t, c, base+"/console/actions/reset-subscription", toTime, base); code != http.StatusSeeOther {
		t.Errorf("reset to 2000: %d", code)
	}
	if next := sub.Cursor().NextIndex(); next != 0 {
		t.Errorf("after reset to 2000: next %d, want 0", next)
	}
	if md, err := s.Broker().GetTopic(t.Context(), mustName(t, "t1")); err != nil || md.Partitions != 3 {
		t.Errorf("after add-partitions: %+v %v", md, err)
	}
	del := url.Values{"topic": {"t1"}, "force": {"no"}, "csrf": {token}, "confirm": {"yes"}}
	if code, _, _ := post(t, c, base+"/console/actions/delete-topic", del, base); code != http.StatusSeeOther {
		t.Errorf("delete: %d", code)
	}
	if _, err := s.Broker().GetTopic(t.Context(), mustName(t, "t1")); !errors.Is(err, broker.ErrTopicNotFound) {
		t.Errorf("after delete: %v", err)
	}
}

func mustName(t *testing.T, s string) broker.TopicName {
	t.Helper()
	n, err := broker.ParseTopicName(s, "public", "default")
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func TestConsoleBadInput(t *testing.T) {
	s := startBroker(t, nil)
	base := "http://" + s.Addr("http").String()
	c := client(t)
	for _, tc := range []struct {
		path string
		code int
		want string
	}{
		{"/console/topic?name=nope", http.StatusNotFound, "topic not found"},
		{"/console/topic?name=a/b/c/d", http.StatusBadRequest, "invalid name"},
		{"/console/messages?topic=nope&limit=abc", http.StatusOK, "limit &#34;abc&#34;: want a whole number"},
		{"/console/messages?topic=nope&limit=1000", http.StatusOK, "limit 1000: want 1 to 100"},
		{"/console/messages?topic=nope", http.StatusOK, "topic not found"},
		{"/console/actions/nope", http.StatusNotFound, "No action nope"},
		{"/console/messages?topic=t&time=yesterday", http.StatusOK, "want RFC 3339"},
		{"/console/nope", http.StatusNotFound, "No page at /console/nope"},
	} {
		code, body, _ := get(t, c, base+tc.path)
		if code != tc.code || !strings.Contains(body, tc.want) || !strings.Contains(body, `class="error"`) {
			t.Errorf("%s: %d, want %d with %q in an error; body %q", tc.path, code, tc.code, tc.want, body)
		}
	}
}

// startAuthBroker starts a broker with auth-enabled, superuser role
// "admin" and the given authorization-enabled; it returns the token secret.
func startAuthBroker(t *testing.T, authorization string) (*server.Server, []byte) {
	secret := []byte("kopernik-test-secret-0123456789ab")
	f := filepath.Join(t.TempDir(), "secret.key")
	if err := os.WriteFile(f, secret, 0o600); err != nil {
		t.Fatal(err)
	}
	return startBroker(t, map[string]string{"auth-enabled": "true", "auth-token-secret-key-file": f,
		"authorization-enabled": authorization, "superuser-roles": "admin", "auth-failure-delay": "10ms"}), secret
}

// token signs a token for role.
func token(t *testing.T, secret []byte, role string) string {
	t.Helper()
	v, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{"sub": role}).SignedString(secret)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func TestConsoleAuth(t *testing.T) {
	s, secret := startAuthBroker(t, "false")
	base := "http://" + s.Addr("http").String()
	tok := func(role string) string { return token(t, secret, role) }
	c := client(t)
	if code, _, h := get(t, c, base+"/console/topics"); code != http.StatusSeeOther || !strings.HasPrefix(h.Get("Location"), "/console/login") {
		t.Fatalf("without a token: %d %v", code, h)
	}
	_, page, _ := get(t, c, base+"/console/login?next=/console/topics")
	if !strings.Contains(page, `name="token"`) {
		t.Fatalf("login page %q", page)
	}
	if code, body, _ := post(t, c, base+"/console/login", url.Values{"token": {"garbage"}}, base); code != http.StatusUnauthorized || !strings.Contains(body, "not accepted") {
		t.Errorf("bad token: %d %q", code, body)
	}
	// A valid token of a non-superuser: logged in, but refused.
	if code, _, _ := post(t, c, base+"/console/login", url.Values{"token": {tok("reader")}, "next": {"/console/topics"}}, base); code != http.StatusSeeOther {
		t.Fatalf("login as reader: %d", code)
	}
	if code, body, _ := get(t, c, base+"/console/topics"); code != http.StatusForbidden || !strings.Contains(body, "Role reader may not use the console") {
		t.Errorf("reader: %d %q", code, body)
	}
	// A superuser: in, redirected where it wanted to go.
	code, _, h := post(t, c, base+"/console/login", url.Values{"token": {tok("admin")}, "next": {"/console/topics"}}, base)
	if code != http.StatusSeeOther || h.Get("Location") != "/console/topics" {
		t.Fatalf("login as admin: %d %v", code, h)
	}
	if ck := h.Get("Set-Cookie"); !strings.Contains(ck, "HttpOnly") || !strings.Contains(ck, "SameSite=Strict") {
		t.Errorf("cookie %q", ck)
	}
	if code, body, _ := get(t, c, base+"/console/topics"); code != http.StatusOK || !strings.Contains(body, "Log out") {
		t.Errorf("admin: %d %q", code, body)
	}
	// The CSRF token of this session works; another session's does not.
	_, page, _ = get(t, c, base+"/console/actions/create-topic")
	mine := csrfOf(t, page)
	other := client(t)
	otherTok, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{"sub": "admin", "session": 2}).SignedString(secret)
	if err != nil {
		t.Fatal(err)
	}
	post(t, other, base+"/console/login", url.Values{"token": {otherTok}}, base)
	_, page, _ = get(t, other, base+"/console/actions/create-topic")
	theirs := csrfOf(t, page)
	if theirs == mine {
		t.Fatal("two sessions got the same CSRF token")
	}
	form := url.Values{"topic": {"secured"}, "confirm": {"yes"}, "csrf": {theirs}}
	if code, _, _ := post(t, c, base+"/console/actions/create-topic", form, base); code != http.StatusForbidden {
		t.Errorf("create with another session's token: %d", code)
	}
	form.Set("csrf", mine)
	if code, _, _ := post(t, c, base+"/console/actions/create-topic", form, base); code != http.StatusSeeOther {
		t.Errorf("create with own token: %d", code)
	}
	// A foreign redirect target after login is not followed.
	if _, _, h := post(t, c, base+"/console/login", url.Values{"token": {tok("admin")}, "next": {"//evil.example/"}}, base); h.Get("Location") != "/console/" {
		t.Errorf("next=//evil.example/ redirected to %q", h.Get("Location"))
	}
	// Logging out drops the cookie.
	post(t, c, base+"/console/logout", nil, base)
	if code, _, _ := get(t, c, base+"/console/topics"); code != http.StatusSeeOther {
		t.Errorf("after logout: %d", code)
	}
}

func TestConsoleSkip(t *testing.T) {
	s := startBroker(t, nil)
	base := "http://" + s.Addr("http").String()
	c := client(t)
	if err := s.Broker().CreateTopic(t.Context(), mustName(t, "sk"), 0, broker.Policies{}); err != nil {
		t.Fatal(err)
	}
	_, page, _ := get(t, c, base+"/console/actions/skip")
	token := csrfOf(t, page)
	for i := range 5 {
		form := url.Values{"topic": {"sk"}, "value": {"m" + strconv.Itoa(i)}, "confirm": {"yes"}, "csrf": {token}}
		if code, _, _ := post(t, c, base+"/console/actions/produce", form, base); code != http.StatusSeeOther {
			t.Fatalf("produce %d: %d", i, code)
		}
	}
	part, err := s.Broker().OpenPartition(t.Context(), mustName(t, "sk"), false)
	if err != nil {
		t.Fatal(err)
	}
	sub, err := part.Subscription(t.Context(), "grp", true, broker.InitialEarliest)
	if err != nil {
		t.Fatal(err)
	}
	backlog := func() int64 { return part.NextIndex() - sub.Cursor().NextIndex() }
	if b := backlog(); b != 5 {
		t.Fatalf("backlog before skipping: %d", b)
	}
	form := url.Values{"subscription": {"grp"}, "topic": {"sk"}, "count": {"2"}, "csrf": {token}}
	// Unconfirmed: the confirmation says what will happen; nothing moves.
	if code, body, _ := post(t, c, base+"/console/actions/skip", form, base); code != http.StatusOK || !strings.Contains(body, "Acknowledge the next 2 unacknowledged messages of subscription grp") {
		t.Errorf("unconfirmed skip: %d %q", code, body)
	}
	if b := backlog(); b != 5 {
		t.Errorf("backlog after an unconfirmed skip: %d", b)
	}
	form.Set("confirm", "yes")
	if code, _, h := post(t, c, base+"/console/actions/skip", form, base); code != http.StatusSeeOther || !strings.Contains(h.Get("Location"), "done=Skipped") {
		t.Fatalf("skip 2: %d %v", code, h)
	}
	if b := backlog(); b != 3 {
		t.Errorf("backlog after skipping 2: %d, want 3", b)
	}
	// More than the backlog stops at the end of the log.
	form.Set("count", "10")
	if code, _, _ := post(t, c, base+"/console/actions/skip", form, base); code != http.StatusSeeOther {
		t.Fatalf("skip 10: %d", code)
	}
	if b := backlog(); b != 0 || sub.Cursor().NextIndex() != 5 {
		t.Errorf("after skipping 10 of 3: backlog %d, next %d", b, sub.Cursor().NextIndex())
	}
	// Skip all after resetting to earliest.
	if err := sub.ResetTo(t.Context(), broker.Earliest); err != nil {
		t.Fatal(err)
	}
	form.Set("count", "all")
	if code, _, _ := post(t, c, base+"/console/actions/skip", form, base); code != http.StatusSeeOther {
		t.Fatalf("skip all: %d", code)
	}
	if b := backlog(); b != 0 {
		t.Errorf("backlog after skip all: %d", b)
	}
	for _, tc := range []struct{ sub, count, want string }{
		{"grp", "-1", "want a number &gt;= 0 or all"},
		{"grp", "many", "want a number &gt;= 0 or all"},
		{"nobody", "1", "subscription not found"},
	} {
		bad := url.Values{"subscription": {tc.sub}, "topic": {"sk"}, "count": {tc.count}, "csrf": {token}, "confirm": {"yes"}}
		if code, body, _ := post(t, c, base+"/console/actions/skip", bad, base); code != http.StatusUnprocessableEntity || !strings.Contains(body, tc.want) {
			t.Errorf("skip %s of %s: %d %q", tc.count, tc.sub, code, body)
		}
	}
	// Without the CSRF token: refused.
	form.Del("csrf")
	if code, _, _ := post(t, c, base+"/console/actions/skip", form, base); code != http.StatusForbidden {
		t.Errorf("skip without token: %d", code)
	}
}
