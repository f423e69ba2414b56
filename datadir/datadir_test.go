package datadir

import (
	"reflect"
	"strings"
	"testing"
)

func TestParseMetadataURL(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want MetadataURL
	}{
		{"", MetadataURL{Kind: "bolt"}},
		{"bolt:", MetadataURL{Kind: "bolt"}},
		{"bolt:/var/lib/k/meta.db", MetadataURL{Kind: "bolt", Path: "/var/lib/k/meta.db"}},
		{"memory:", MetadataURL{Kind: "memory"}},
		{"etcd:http://127.0.0.1:2379", MetadataURL{Kind: "etcd", Endpoints: []string{"http://127.0.0.1:2379"}}},
		{"etcd:http://h1:2379, http://h2:2379/", MetadataURL{Kind: "etcd", Endpoints: []string{"http://h1:2379", "http://h2:2379"}}},
		{"etcd:h1:2379,h2:2380", MetadataURL{Kind: "etcd", Endpoints: []string{"http://h1:2379", "http://h2:2380"}}},
	} {
		got, err := ParseMetadataURL(tc.in)
		if err != nil || !reflect.DeepEqual(got, tc.want) {
			t.Errorf("ParseMetadataURL(%q) = %+v, %v; want %+v", tc.in, got, err, tc.want)
		}
	}
	for in, want := range map[string]string{
		"/just/a/path":              "no scheme",
		"zookeeper:zk:2181":         "unknown store",
		"etcd:":                     "at least one endpoint",
		"etcd:https://h:2379":       "only http",
		"etcd:http://h":             "host:port",
		"etcd:http://h:2379/chroot": "host:port",
		"memory:x":                  "nothing after",
	} {
		_, err := ParseMetadataURL(in)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("ParseMetadataURL(%q): error %v, want one saying %q", in, err, want)
		}
	}
}
