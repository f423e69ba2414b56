// Package console is kopernik's built-in web console: server-rendered
// pages (html/template, embedded assets, SVG charts drawn here) on the HTTP
// listener at / and /console/..., over broker.Service only, as the admin
// API is. Its JavaScript (static/console.js) only refreshes live panels.
//
// Pages: overview (throughput, storage, clients, a chart of the last
// minutes), topics (filter, paging, per-topic partitions, clients,
// policies), subscriptions (Kafka groups and Pulsar subscriptions in one
// list, lag per partition and over time), and a message browser that shows
// each record as a Kafka fetch and as a Pulsar consumer receives it.
//
// Changes (create/delete topic, add partitions, reset a subscription,
// produce a test message) are POST forms that first answer a confirmation
// page; only a POST with confirm=yes acts. Every POST must carry the
// console's CSRF token (a per-process secret MAC'd with the session) and,
// when the browser sends one, a same-origin Origin header.
//
// With Options.Auth set, every page needs a token (a login form stores it
// in an HttpOnly, SameSite=Strict cookie) whose role IsSuperUser accepts:
// the console acts on every tenant, so it asks what the admin API asks for
// cluster-wide operations.
package console

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"errors"
	"html/template"
	"io/fs"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/kopernik-io/kopernik/auth"
	"github.com/kopernik-io/kopernik/broker"
)

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static
var staticFS embed.FS

// Options configures the console.
type Options struct {
	// Auth, when set, requires a token on every page (auth-enabled).
	Auth *auth.Authenticator
	// IsSuperUser decides whether an authenticated role may use the
	// console; nil: any authenticated role may.
	IsSuperUser func(auth.Principal) bool
	// IsTenantAdmin, when set, lets a role that is not a superuser in
	// as a tenant admin: it sees and acts on only the tenants it is admin
	// of (as the admin API's tenant-admin resources decide); a role admin
	// of none is refused.
	IsTenantAdmin func(ctx context.Context, p auth.Principal, tenant string) (bool, error)
	// Connections, when set, reports open client connections by protocol
	// (the overview shows them).
	Connections func() map[string]int
	// KafkaTenant and KafkaNamespace resolve short topic names typed into
	// forms (defaults public/default, the Kafka handler's).
	KafkaTenant, KafkaNamespace string
	// SampleInterval is the overview chart's resolution (default 5s);
	// SampleCount how many samples it keeps (default 60: five minutes).
	SampleInterval time.Duration
	SampleCount    int
	// LagInterval is how often subscription lag is sampled (default 10s);
	// LagCount how many samples each keeps (default 360: one hour).
	LagInterval time.Duration
	LagCount    int
	// MaxTracked bounds how many subscriptions' lag history, and how many
	// topics' throughput history, is kept (default 1000 each); more are
	// shown without history.
	MaxTracked int
	// Logger defaults to slog.Default().
	Logger *slog.Logger
}

// Console serves the web console. Close stops its samplers.
type Console struct {
	svc    broker.Service
	opts   Options
	log    *slog.Logger
	tmpl   map[string]*template.Template
	secret []byte // CSRF MAC key, per process
	mux    *http.ServeMux

	rates *rateSampler
	lag   *lagSampler

	stop     chan struct{}
	wg       sync.WaitGroup
	stopOnce sync.Once
}

// New builds the console and starts its samplers; call Close to stop them.
func New(svc broker.Service, opts Options) (*Console, error) {
	if opts.KafkaTenant == "" {
		opts.KafkaTenant = "public"
	}
	if opts.KafkaNamespace == "" {
		opts.KafkaNamespace = "default"
	}
	if opts.SampleInterval <= 0 {
		opts.SampleInterval = 5 * time.Second
	}
	if opts.SampleCount <= 0 {
		opts.SampleCount = 60
	}
	if opts.LagInterval <= 0 {
		opts.LagInterval = 10 * time.Second
	}
	if opts.LagCount <= 0 {
		opts.LagCount = 360
	}
	if opts.MaxTracked <= 0 {
		opts.MaxTracked = 1000
	}
	c := &Console{svc: svc, opts: opts, log: opts.Logger, stop: make(chan struct{})}
	if c.log == nil {
		c.log = slog.Default()
	}
	c.secret = make([]byte, 32)
	if _, err := rand.Read(c.secret); err != nil {
		return nil, err
	}
	if err := c.parseTemplates(); err != nil {
		return nil, err
	}
	c.rates = newRateSampler(opts.SampleCount, opts.MaxTracked)
	c.lag = newLagSampler(opts.LagCount, opts.MaxTracked)
	c.routes()
	c.every(opts.SampleInterval, func() { c.rates.sample(time.Now(), svc.Partitions()) })
	c.every(opts.LagInterval, func() {
		ctx, cancel := context.WithTimeout(context.Background(), opts.LagInterval)
		defer cancel()
		c.lag.sample(time.Now(), c.subscriptions(ctx))
	})
	return c, nil
}

// every runs fn now and then every d until Close.
func (c *Console) every(d time.Duration, fn func()) {
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		t := time.NewTicker(d)
		defer t.Stop()
		for {
			fn()
			select {
			case <-c.stop:
				return
			case <-t.C:
			}
		}
	}()
}

// Close stops the samplers and waits for them. Serving after Close still
// works, with frozen charts.
func (c *Console) Close() {
	c.stopOnce.Do(func() { close(c.stop) })
	c.wg.Wait()
}

func (c *Console) parseTemplates() error {
	funcs := template.FuncMap{
		"bytes": formatBytes, "rate": formatRate, "brate": func(v float64) string { return formatBytes(int64(v)) + "/s" }, "time": formatTime, "qs": queryString,
	}
	base, err := template.New("layout.html").Funcs(funcs).ParseFS(templateFS, "templates/layout.html")
	if err != nil {
		return err
	}
	pages, err := fs.Glob(templateFS, "templates/*.html")
	if err != nil {
		return err
	}
	c.tmpl = map[string]*template.Template{}
	for _, p := range pages {
		name := strings.TrimSuffix(strings.TrimPrefix(p, "templates/"), ".html")
		if name == "layout" {
			continue
		}
		t, err := template.Must(base.Clone()).ParseFS(templateFS, p)
		if err != nil {
			return err
		}
		c.tmpl[name] = t
	}
	return nil
}

// ServeHTTP serves / (a redirect to the overview) and /console/....
func (c *Console) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("X-Frame-Options", "DENY")
	w.Header().Set("Content-Security-Policy", "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; frame-ancestors 'none'")
	w.Header().Set("Referrer-Policy", "same-origin")
	c.mux.ServeHTTP(w, r)
}

func (c *Console) routes() {
	m := http.NewServeMux()
	static, _ := fs.Sub(staticFS, "static")
	m.Handle("GET /console/static/", http.StripPrefix("/console/static/", http.FileServerFS(static)))
	m.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "/console/", http.StatusFound)
	})
	m.HandleFunc("GET /console/login", c.loginPage)
	m.HandleFunc("POST /console/login", c.login)
	m.HandleFunc("POST /console/logout", c.logout)
	page := func(pattern string, h func(http.ResponseWriter, *http.Request)) {
		m.Handle(pattern, c.authenticated(http.HandlerFunc(h)))
	}
	page("GET /console/{$}", c.overview)
	page("GET /console/topics", c.topics)
	page("GET /console/topic", c.topic)
	page("GET /console/subscriptions", c.subscriptionsPage)
	page("GET /console/api/lag", c.lagJSON)
	page("GET /console/messages", c.messages)
	page("GET /console/actions/{action}", c.actionForm)
	page("POST /console/actions/{action}", c.action)
	m.HandleFunc("/console/", func(w http.ResponseWriter, r *http.Request) {
		c.render(w, r, http.StatusNotFound, "error", pageData{Title: "Not found", Error: "No page at " + r.URL.Path})
	})
	c.mux = m
}

// cookieName holds the console's token with auth-enabled.
const cookieName = "kopernik_console_token"

// authenticated checks the token cookie (with Options.Auth) and, for
// POSTs, the CSRF token and origin.
func (c *Console) authenticated(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if c.opts.Auth != nil {
			ck, err := r.Cookie(cookieName)
			if err != nil || ck.Value == "" {
				http.Redirect(w, r, "/console/login?next="+url.QueryEscape(r.URL.RequestURI()), http.StatusSeeOther)
				return
			}
			p, err := c.opts.Auth.AuthenticateToken(ck.Value)
			if err != nil {
				c.opts.Auth.Failed(r.Context(), "http", r.RemoteAddr, "token", err)
				http.Redirect(w, r, "/console/login?next="+url.QueryEscape(r.URL.RequestURI()), http.StatusSeeOther)
				return
			}
			if c.opts.IsSuperUser != nil && !c.opts.IsSuperUser(p) {
				tenants, err := c.adminTenants(r.Context(), p)
				if err != nil {
					c.renderError(w, r, "Not allowed", err)
					return
				}
				if len(tenants) == 0 {
					c.render(w, r, http.StatusForbidden, "error", pageData{Title: "Not allowed",
						Error: "Role " + p.Role + " may not use the console: it needs a superuser role (superuser-roles) or to be admin of a tenant."})
					return
				}
				r = r.WithContext(context.WithValue(r.Context(), scopeKey{}, tenants))
			}
		}
		if r.Method == http.MethodPost && !c.sameOrigin(r) {
			c.render(w, r, http.StatusForbidden, "error", pageData{Title: "Refused", Error: "Cross-site request refused: reload the page and submit the form again."})
			return
		}
		next.ServeHTTP(w, r)
	})
}

// scopeKey carries, in a tenant admin's request, the set of tenants it
// may see (map[string]bool); absent: every tenant.
type scopeKey struct{}

// errNotAllowed answers a tenant admin naming another tenant's resource.
var errNotAllowed = errors.New("not allowed: this role is not admin of the tenant")

// adminTenants lists the tenants p is admin of (none without
// Options.IsTenantAdmin).
func (c *Console) adminTenants(ctx context.Context, p auth.Principal) (map[string]bool, error) {
	out := map[string]bool{}
	if c.opts.IsTenantAdmin == nil {
		return out, nil
	}
	tenants, err := c.svc.ListTenants(ctx)
	if err != nil {
		return nil, err
	}
	for _, t := range tenants {
		ok, err := c.opts.IsTenantAdmin(ctx, p, t)
		if err != nil {
			return nil, err
		}
		if ok {
			out[t] = true
		}
	}
	return out, nil
}

// visible tells whether the request's role may see tenant's resources.
func visible(ctx context.Context, tenant string) bool {
	tenants, scoped := ctx.Value(scopeKey{}).(map[string]bool)
	return !scoped || tenants[tenant]
}

// scoped tells whether the request is a tenant admin's (not every tenant).
func scoped(ctx context.Context) bool {
	_, ok := ctx.Value(scopeKey{}).(map[string]bool)
	return ok
}

// sameOrigin checks a POST's CSRF token and, if present, its Origin.
func (c *Console) sameOrigin(r *http.Request) bool {
	if o := r.Header.Get("Origin"); o != "" {
		u, err := url.Parse(o)
		if err != nil || u.Host != r.Host {
			return false
		}
	}
	return hmac.Equal([]byte(r.PostFormValue("csrf")), []byte(c.csrfToken(r)))
}

// csrfToken is the token forms carry: a MAC of the session's cookie (or
// of nothing with auth off), so that a token leaks nothing and another
// session's token does not fit.
func (c *Console) csrfToken(r *http.Request) string {
	m := hmac.New(sha256.New, c.secret)
	if ck, err := r.Cookie(cookieName); err == nil {
		m.Write([]byte(ck.Value))
	}
	return hex.EncodeToString(m.Sum(nil))
}

func (c *Console) loginPage(w http.ResponseWriter, r *http.Request) {
	c.render(w, r, http.StatusOK, "login", pageData{Title: "Log in", Data: safeNext(r.URL.Query().Get("next"))})
}

func (c *Console) login(w http.ResponseWriter, r *http.Request) {
	next := safeNext(r.PostFormValue("next"))
	if c.opts.Auth == nil {
		http.Redirect(w, r, next, http.StatusSeeOther)
		return
	}
	if o := r.Header.Get("Origin"); o != "" {
		if u, err := url.Parse(o); err != nil || u.Host != r.Host {
			c.render(w, r, http.StatusForbidden, "login", pageData{Title: "Log in", Error: "Cross-site login refused.", Data: next})
			return
		}
	}
	token := strings.TrimSpace(r.PostFormValue("token"))
	if _, err := c.opts.Auth.AuthenticateToken(token); err != nil {
		c.opts.Auth.Failed(r.Context(), "http", r.RemoteAddr, "token", err)
		c.render(w, r, http.StatusUnauthorized, "login", pageData{Title: "Log in", Error: "That token was not accepted.", Data: next})
		return
	}
	http.SetCookie(w, &http.Cookie{Name: cookieName, Value: token, Path: "/", HttpOnly: true,
		SameSite: http.SameSiteStrictMode, Secure: r.TLS != nil})
	http.Redirect(w, r, next, http.StatusSeeOther)
}

func (c *Console) logout(w http.ResponseWriter, r *http.Request) {
	http.SetCookie(w, &http.Cookie{Name: cookieName, Value: "", Path: "/", MaxAge: -1, HttpOnly: true, SameSite: http.SameSiteStrictMode})
	http.Redirect(w, r, "/console/login", http.StatusSeeOther)
}

// safeNext keeps a post-login redirect inside the console.
func safeNext(s string) string {
	if !strings.HasPrefix(s, "/console/") || strings.HasPrefix(s, "//") {
		return "/console/"
	}
	return s
}

// pageData is what every template gets.
type pageData struct {
	Title  string
	Nav    string // which nav entry is current
	Error  string // shown in the page, above the content
	Notice string // result of an action
	CSRF   string
	Auth   bool
	Data   any
}

// render executes page with the layout; a template failure becomes a
// plain 500 (the page is not half written: it renders to a buffer first).
func (c *Console) render(w http.ResponseWriter, r *http.Request, status int, page string, d pageData) {
	t := c.tmpl[page]
	d.CSRF = c.csrfToken(r)
	d.Auth = c.opts.Auth != nil
	if d.Notice == "" {
		d.Notice = r.URL.Query().Get("done")
	}
	var b strings.Builder
	if err := t.ExecuteTemplate(&b, "layout.html", d); err != nil {
		c.log.Error("console: rendering", "page", page, "err", err)
		http.Error(w, "rendering "+page+": "+err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, _ = w.Write([]byte(b.String()))
}
