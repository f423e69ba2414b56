package cli

import (
	"flag"
	"fmt"
	"maps"
	"net/url"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"
)

// tenants and namespaces over the admin REST API, as pulsar-admin tenants
// and pulsar-admin namespaces do.

type tenantInfo struct {
	AdminRoles      []string `json:"adminRoles"`
	AllowedClusters []string `json:"allowedClusters"`
}

func splitList(s string) []string {
	out := []string{}
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

func tenantsCommand() *command {
	var roles, clusters string
	tenantFlags := func(fs *flag.FlagSet) {
		fs.StringVar(&roles, "admin-roles", "", "comma-separated `ROLES` that administer the tenant")
		fs.StringVar(&clusters, "allowed-clusters", "standalone", "comma-separated `CLUSTERS` the tenant may use")
	}
	change := func(method, verb string) func(e *env, args []string) error {
		return func(e *env, args []string) error {
			var body any
			if method != "DELETE" {
				body = tenantInfo{AdminRoles: splitList(roles), AllowedClusters: splitList(clusters)}
			}
			if err := e.admin(method, "/admin/v2/tenants/"+url.PathEscape(args[0]), body, nil); err != nil {
				return err
			}
			return e.done(verb+" tenant "+args[0], map[string]any{"tenant": args[0]})
		}
	}
	return &command{name: "tenants", summary: "list, create, update, describe and delete tenants", subs: []*command{
		{
			name: "list", summary: "list tenants",
			run: func(e *env, args []string) error {
				var ts []string
				if err := e.admin("GET", "/admin/v2/tenants", nil, &ts); err != nil {
					return err
				}
				sort.Strings(ts)
				return e.emit(ts, []string{"TENANT"}, column(ts))
			},
		},
		{
			name: "describe", summary: "show a tenant's admin roles and allowed clusters", args: "TENANT",
			run: func(e *env, args []string) error {
				var ti tenantInfo
				if err := e.admin("GET", "/admin/v2/tenants/"+url.PathEscape(args[0]), nil, &ti); err != nil {
					return err
				}
				return e.emit(ti, nil, [][]string{{"ADMIN ROLES", orDash(strings.Join(ti.AdminRoles, ","))},
					{"ALLOWED CLUSTERS", orDash(strings.Join(ti.AllowedClusters, ","))}})
			},
		},
		{name: "create", summary: "create a tenant", args: "TENANT", flags: tenantFlags, run: change("PUT", "created")},
		{name: "update", summary: "replace a tenant's admin roles and allowed clusters", args: "TENANT", flags: tenantFlags, run: change("POST", "updated")},
		{name: "delete", summary: "delete a tenant (it must have no namespaces)", args: "TENANT", run: change("DELETE", "deleted")},
	}}
}

func column(items []string) [][]string {
	rows := make([][]string, len(items))
	for i, it := range items {
		rows[i] = []string{it}
	}
	return rows
}

type retention struct {
	RetentionTimeInMinutes int64 `json:"retentionTimeInMinutes"`
	RetentionSizeInMB      int64 `json:"retentionSizeInMB"`
}

func namespacesCommand() *command {
	var (
		force   bool
		role    string
		actions string
		retTime string
		retSize string
		// needNS checks the one TENANT/NAMESPACE argument (dispatch
		// checked there is one).
		needNS = func(args []string) (string, error) { return namespaceArg(args[0]) }
	)
	simple := func(method, suffix, verb string, body func() (any, error)) func(e *env, args []string) error {
		return func(e *env, args []string) error {
			ns, err := needNS(args)
			if err != nil {
				return err
			}
			var b any
			if body != nil {
				if b, err = body(); err != nil {
					return err
				}
			}
			q := ""
			if method == "DELETE" && suffix == "" && force {
				q = "?force=true"
			}
			if err := e.admin(method, "/admin/v2/namespaces/"+ns+suffix+q, b, nil); err != nil {
				return err
			}
			return e.done(verb+" "+args[0], map[string]any{"namespace": args[0]})
		}
	}
	roleFlag := func(fs *flag.FlagSet) { fs.StringVar(&role, "role", "", "`ROLE` (the token's subject; required)") }
	withRole := func(method, verb string, body func() (any, error)) func(e *env, args []string) error {
		return func(e *env, args []string) error {
			if role == "" {
				return usagef("--role is required")
			}
			return simple(method, "/permissions/"+url.PathEscape(role), verb+" role "+role+" on", body)(e, args)
		}
	}
	return &command{name: "namespaces", summary: "list, create, describe, delete namespaces; permissions and retention", subs: []*command{
		{
			name: "list", summary: "list a tenant's namespaces", args: "TENANT",
			run: func(e *env, args []string) error {
				nss, err := e.namespacesOf(args[0])
				if err != nil {
					return err
				}
				sort.Strings(nss)
				return e.emit(nss, []string{"NAMESPACE"}, column(nss))
			},
		},
		{name: "create", summary: "create a namespace", args: "TENANT/NAMESPACE", run: simple("PUT", "", "created namespace", nil)},
		{
			name: "delete", summary: "delete a namespace (it must be empty unless --force)", args: "TENANT/NAMESPACE",
			flags: func(fs *flag.FlagSet) { fs.BoolVar(&force, "force", false, "delete its topics first") },
			run:   simple("DELETE", "", "deleted namespace", nil),
		},
		{
			name: "describe", summary: "show a namespace's policies (Pulsar's Policies JSON)", args: "TENANT/NAMESPACE",
			run: func(e *env, args []string) error {
				ns, err := needNS(args)
				if err != nil {
					return err
				}
				var p map[string]any
				if err := e.admin("GET", "/admin/v2/namespaces/"+ns, nil, &p); err != nil {
					return err
				}
				if e.json() {
					return writeJSON(e.stdout, p)
				}
				rows := [][]string{}
				for _, k := range slices.Sorted(maps.Keys(p)) {
					rows = append(rows, []string{k, compactJSON(p[k])})
				}
				return writeTable(e.stdout, []string{"POLICY", "VALUE"}, rows)
			},
		},
		{
			name: "permissions", summary: "show the roles granted on a namespace and their actions", args: "TENANT/NAMESPACE",
			run: func(e *env, args []string) error {
				ns, err := needNS(args)
				if err != nil {
					return err
				}
				perms := map[string][]string{}
				if err := e.admin("GET", "/admin/v2/namespaces/"+ns+"/permissions", nil, &perms); err != nil {
					return err
				}
				rows := [][]string{}
				for _, r := range slices.Sorted(maps.Keys(perms)) {
					rows = append(rows, []string{r, strings.Join(perms[r], ",")})
				}
				return e.emit(perms, []string{"ROLE", "ACTIONS"}, rows)
			},
		},
		{
			name: "grant-permission", summary: "grant a role actions on a namespace (replaces its actions)", args: "TENANT/NAMESPACE",
			long: `Example:
  kopernik namespaces grant-permission public/default --role alice --actions produce,consume`,
			flags: func(fs *flag.FlagSet) {
				roleFlag(fs)
				fs.StringVar(&actions, "actions", "produce,consume", "comma-separated `ACTIONS`: produce, consume")
			},
			run: withRole("POST", "granted", func() (any, error) { return splitList(actions), nil }),
		},
		{
			name: "revoke-permission", summary: "revoke a role's actions on a namespace", args: "TENANT/NAMESPACE",
			flags: roleFlag, run: withRole("DELETE", "revoked", nil),
		},
		{
			name: "get-retention", summary: "show a namespace's retention", args: "TENANT/NAMESPACE",
			run: func(e *env, args []string) error {
				ns, err := needNS(args)
				if err != nil {
					return err
				}
				var r retention
				if err := e.admin("GET", "/admin/v2/namespaces/"+ns+"/retention", nil, &r); err != nil {
					return err
				}
				return e.emit(r, nil, [][]string{{"RETENTION TIME", retentionText(r.RetentionTimeInMinutes, "m")},
					{"RETENTION SIZE", retentionText(r.RetentionSizeInMB, "MB")}})
			},
		},
		{
			name: "set-retention", summary: "keep acknowledged messages for a time and/or size", args: "TENANT/NAMESPACE",
			long: `Time: a Go duration or days (90m, 12h, 7d); size: bytes with K, M, G, T (500M, 10G); -1 is unlimited, 0 none.

Example:
  kopernik namespaces set-retention public/default --time 7d --size 10G`,
			flags: func(fs *flag.FlagSet) {
				fs.StringVar(&retTime, "time", "", "retention `TIME` (required)")
				fs.StringVar(&retSize, "size", "", "retention `SIZE` (required)")
			},
			run: simple("POST", "/retention", "set retention of", func() (any, error) {
				if retTime == "" || retSize == "" {
					return nil, usagef("--time and --size are required (-1: unlimited)")
				}
				minutes, err := parseRetentionTime(retTime)
				if err != nil {
					return nil, err
				}
				mb, err := parseRetentionSize(retSize)
				if err != nil {
					return nil, err
				}
				return retention{RetentionTimeInMinutes: minutes, RetentionSizeInMB: mb}, nil
			}),
		},
		{name: "remove-retention", summary: "return a namespace to the broker's default retention", args: "TENANT/NAMESPACE",
			run: simple("DELETE", "/retention", "removed retention of", nil)},
	}}
}

func retentionText(v int64, unit string) string {
	switch {
	case v < 0:
		return "unlimited"
	case v == 0:
		return "none"
	}
	return strconv.FormatInt(v, 10) + unit
}

// parseRetentionTime answers minutes: -1, a Go duration, or Nd days.
func parseRetentionTime(s string) (int64, error) {
	if s == "-1" {
		return -1, nil
	}
	if d, ok := strings.CutSuffix(s, "d"); ok {
		if n, err := strconv.ParseInt(d, 10, 64); err == nil && n >= 0 {
			return n * 24 * 60, nil
		}
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < 0 {
		return 0, usagef("--time %q: want -1, a duration (90m, 12h) or days (7d)", s)
	}
	return int64(d / time.Minute), nil
}

// parseRetentionSize answers megabytes: -1, or bytes with K/M/G/T.
func parseRetentionSize(s string) (int64, error) {
	if s == "-1" {
		return -1, nil
	}
	mult := int64(1)
	num := strings.TrimSuffix(strings.ToUpper(s), "B")
	for suffix, m := range map[string]int64{"K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40} {
		if n, ok := strings.CutSuffix(num, suffix); ok {
			num, mult = n, m
			break
		}
	}
	n, err := strconv.ParseInt(num, 10, 64)
	if err != nil || n < 0 {
		return 0, usagef("--size %q: want -1 or a size (500M, 10G)", s)
	}
	return n * mult >> 20, nil
}

func compactJSON(v any) string {
	var b strings.Builder
	if err := writeJSONCompact(&b, v); err != nil {
		return fmt.Sprint(v)
	}
	return strings.TrimSpace(b.String())
}
