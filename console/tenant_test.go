package console_test

// With authorization on, a tenant admin logs in and sees and acts on only
// its tenants; a role admin of none is refused.

import (
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/kopernik-io/kopernik/broker"
)

func TestConsoleTenantAdmin(t *testing.T) {
	s, secret := startAuthBroker(t, "true")
	base := "http://" + s.Addr("http").String()
	b, ctx := s.Broker(), t.Context()
	for tenant, role := range map[string]string{"acme": "alice", "other": "bob"} {
		if err := b.CreateTenant(ctx, tenant, broker.TenantInfo{AdminRoles: []string{role}}); err != nil {
			t.Fatal(err)
		}
		if err := b.CreateNamespace(ctx, tenant+"/ns", broker.Policies{}); err != nil {
			t.Fatal(err)
		}
		name := mustName(t, "persistent://"+tenant+"/ns/"+tenant+"-topic")
		if err := b.CreateTopic(ctx, name, 0, broker.Policies{}); err != nil {
			t.Fatal(err)
		}
		p, err := b.OpenPartition(ctx, name, false)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := p.Subscription(ctx, tenant+"-sub", true, broker.InitialEarliest); err != nil {
			t.Fatal(err)
		}
	}
	login := func(role string) *http.Client {
		c := client(t)
		if code, _, _ := post(t, c, base+"/console/login", url.Values{"token": {token(t, secret, role)}}, base); code != http.StatusSeeOther {
			t.Fatalf("login as %s: %d", role, code)
		}
		return c
	}

	// Admin of no tenant: refused.
	if code, body, _ := get(t, login("reader"), base+"/console/topics"); code != http.StatusForbidden || !strings.Contains(body, "Role reader may not use the console") {
		t.Errorf("reader: %d %q", code, body)
	}

	alice := login("alice")
	for _, tc := range []struct {
		path, want, notWant string
	}{
		{"/console/", `id="topic-count">1<`, "other/ns"},
		{"/console/topics", "persistent://acme/ns/acme-topic", "other-topic"},
		{"/console/subscriptions", "acme-sub", "other-sub"},
		{"/console/api/lag", "{", "other-sub"},
		{"/console/topic?name=persistent://acme/ns/acme-topic", "acme-sub", "other-sub"},
	} {
		code, body, _ := get(t, alice, base+tc.path)
		if code != http.StatusOK || !strings.Contains(body, tc.want) || strings.Contains(body, tc.notWant) {
			t.Errorf("alice %s: %d, want %q and not %q in %q", tc.path, code, tc.want, tc.notWant, body)
		}
	}
	for _, path := range []string{"/console/topic?name=persistent://other/ns/other-topic", "/console/messages?topic=persistent://other/ns/other-topic"} {
		if code, body, _ := get(t, alice, base+path); !strings.Contains(body, "not allowed") || strings.Contains(body, "other-sub") {
			t.Errorf("alice %s: %d %q", path, code, body)
		}
	}
	if code, _, _ := get(t, alice, base+"/console/topic?name=persistent://other/ns/other-topic"); code != http.StatusForbidden {
		t.Errorf("alice on another tenant's topic: %d, want 403", code)
	}

	// Actions: on her tenant they act, on another they are refused.
	_, page, _ := get(t, alice, base+"/console/actions/create-topic")
	token := csrfOf(t, page)
	act := func(action string, form url.Values) (int, string) {
		form.Set("csrf", token)
		form.Set("confirm", "yes")
		code, body, _ := post(t, alice, base+"/console/actions/"+action, form, base)
		return code, body
	}
	if code, body := act("create-topic", url.Values{"topic": {"persistent://acme/ns/new"}, "partitions": {"0"}}); code != http.StatusSeeOther {
		t.Errorf("alice creates in acme: %d %q", code, body)
	}
	if _, err := b.GetTopic(ctx, mustName(t, "persistent://acme/ns/new")); err != nil {
		t.Errorf("created topic: %v", err)
	}
	for _, tc := range []struct {
		action string
		form   url.Values
	}{
		{"create-topic", url.Values{"topic": {"persistent://other/ns/new"}, "partitions": {"0"}}},
		{"create-topic", url.Values{"topic": {"short-name-in-public"}, "partitions": {"0"}}},
		{"delete-topic", url.Values{"topic": {"persistent://other/ns/other-topic"}, "force": {"yes"}}},
		{"skip", url.Values{"subscription": {"other-sub"}, "topic": {"persistent://other/ns/other-topic"}, "count": {"all"}}},
		{"produce", url.Values{"topic": {"persistent://other/ns/other-topic"}, "value": {"x"}}},
	} {
		if code, body := act(tc.action, tc.form); code != http.StatusUnprocessableEntity || !strings.Contains(body, "not allowed") {
			t.Errorf("alice %s %v: %d %q", tc.action, tc.form, code, body)
		}
	}
	if _, err := b.GetTopic(ctx, mustName(t, "persistent://other/ns/other-topic")); err != nil {
		t.Errorf("other's topic after alice's refused delete: %v", err)
	}
	for _, n := range []string{"persistent://other/ns/new", "short-name-in-public"} {
		if _, err := b.GetTopic(ctx, mustName(t, n)); err == nil {
			t.Errorf("%s was created by alice", n)
		}
	}

	// The superuser still sees both tenants.
	if code, body, _ := get(t, login("admin"), base+"/console/topics"); code != http.StatusOK || !strings.Contains(body, "acme-topic") || !strings.Contains(body, "other-topic") {
		t.Errorf("admin topics: %d %q", code, body)
	}
}
