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

	"github.com/twmb/franz-go/pkg/kadm"

	"github.com/kopernik-io/kopernik/broker"
)

// topics: listing, creation and deletion over the admin REST API (what
// pulsar-admin topics does); offsets and configs over Kafka (kadm), as
// kafka-topics.sh and kafka-configs.sh do.

func topicsCommand() *command {
	var (
		namespace  string
		all        bool
		partitions int
		configs    listFlag
		force      bool
		set        listFlag
		del        listFlag
	)
	return &command{name: "topics", summary: "list, create, describe, delete topics; add partitions; alter configs", subs: []*command{
		{
			name: "list", summary: "list the topics of a namespace (or of every namespace)",
			flags: func(fs *flag.FlagSet) {
				fs.StringVar(&namespace, "namespace", "public/default", "`TENANT/NAMESPACE` to list")
				fs.BoolVar(&all, "all", false, "list the topics of every namespace of every tenant")
			},
			run: func(e *env, args []string) error {
				return topicsList(e, namespace, all)
			},
		},
		{
			name: "create", summary: "create a topic (Kafka CreateTopics; -p 0: a non-partitioned Pulsar topic)", args: "TOPIC",
			long: `TOPIC is a Kafka name (in public/default), TENANT/NAMESPACE/NAME or persistent://TENANT/NAMESPACE/NAME.

Example:
  kopernik topics create orders -p 3 -c retention.ms=86400000`,
			flags: func(fs *flag.FlagSet) {
				fs.IntVar(&partitions, "p", 1, "number of partitions (0: one non-partitioned topic, Pulsar's kind)")
				fs.Var(&configs, "c", "topic config `KEY=VALUE` (repeatable): retention.ms, retention.bytes, max.message.bytes, segment.bytes, segment.ms")
			},
			run: func(e *env, args []string) error {
				return topicsCreate(e, args[0], partitions, configs)
			},
		},
		{
			name: "describe", summary: "show a topic's partitions, offsets, storage, subscriptions and configs", args: "TOPIC",
			run: func(e *env, args []string) error {
				return topicsDescribe(e, args[0])
			},
		},
		{
			name: "delete", summary: "delete a topic (all its partitions)", args: "TOPIC",
			flags: func(fs *flag.FlagSet) {
				fs.BoolVar(&force, "force", false, "delete even with connected producers or consumers")
			},
			run: func(e *env, args []string) error {
				return topicsDelete(e, args[0], force)
			},
		},
		{
			name: "set-partitions", summary: "grow a partitioned topic to -p partitions (kafka-topics.sh --alter --partitions)", args: "TOPIC",
			flags: func(fs *flag.FlagSet) {
				fs.IntVar(&partitions, "p", 0, "the new number of partitions (more than now)")
			},
			run: func(e *env, args []string) error {
				if partitions < 1 {
					return usagef("-p N: give the new number of partitions")
				}
				n, count, err := e.resolve(args[0])
				if err != nil {
					return err
				}
				if count == 0 {
					return fmt.Errorf("topic %s is not partitioned (or does not exist)", n)
				}
				if err := e.admin("POST", restPath(n)+"/partitions", partitions, nil); err != nil {
					return err
				}
				return e.done(fmt.Sprintf("%s now has %d partitions (had %d)", n, partitions, count),
					map[string]any{"topic": n.String(), "partitions": partitions})
			},
		},
		{
			name: "alter-config", summary: "set or delete topic configs (Kafka IncrementalAlterConfigs)", args: "TOPIC",
			long: `Example:
  kopernik topics alter-config orders --set retention.ms=3600000 --delete retention.bytes`,
			flags: func(fs *flag.FlagSet) {
				fs.Var(&set, "set", "`KEY=VALUE` to set (repeatable)")
				fs.Var(&del, "delete", "`KEY` to return to its default (repeatable)")
			},
			run: func(e *env, args []string) error {
				return topicsAlterConfig(e, args[0], set, del)
			},
		},
	}}
}

// kafkaName is the name Kafka clients use for n: the short name in the
// Kafka namespace (public/default), tenant/ns/name elsewhere.
func kafkaName(n broker.TopicName) string {
	base := n
	if n.Tenant == "public" && n.Namespace == "default" {
		return base.Local
	}
	return base.Tenant + "/" + base.Namespace + "/" + base.Local
}

type topicListEntry struct {
	Topic      string `json:"topic"`
	Partitions int    `json:"partitions"`
}

func (e *env) namespacesOf(tenant string) ([]string, error) {
	var out []string
	err := e.admin("GET", "/admin/v2/namespaces/"+url.PathEscape(tenant), nil, &out)
	return out, err
}

func (e *env) allNamespaces() ([]string, error) {
	var tenants []string
	if err := e.admin("GET", "/admin/v2/tenants", nil, &tenants); err != nil {
		return nil, err
	}
	var all []string
	for _, t := range tenants {
		nss, err := e.namespacesOf(t)
		if err != nil {
			return nil, err
		}
		all = append(all, nss...)
	}
	return all, nil
}

// resolve parses a topic argument and answers its partition count.
func (e *env) resolve(topic string) (broker.TopicName, int, error) {
	n, err := topicName(topic)
	if err != nil {
		return n, 0, err
	}
	count, err := e.partitionsOf(n)
	return n, count, err
}

// partitionsOf answers a topic's partition count (0: not partitioned, or
// no such topic: Pulsar answers 0 for both).
func (e *env) partitionsOf(n broker.TopicName) (int, error) {
	var md struct {
		Partitions int `json:"partitions"`
	}
	err := e.admin("GET", restPath(n)+"/partitions", nil, &md)
	return md.Partitions, err
}

func topicsList(e *env, namespace string, all bool) error {
	nss := []string{namespace}
	if all {
		var err error
		if nss, err = e.allNamespaces(); err != nil {
			return err
		}
	} else if _, err := namespaceArg(namespace); err != nil {
		return err
	}
	list := []topicListEntry{}
	for _, ns := range nss {
		p, _ := namespaceArg(ns)
		var partitioned, plain []string
		if err := e.admin("GET", "/admin/v2/persistent/"+p+"/partitioned", nil, &partitioned); err != nil {
			return err
		}
		if err := e.admin("GET", "/admin/v2/persistent/"+p, nil, &plain); err != nil {
			return err
		}
		isPartition := map[string]bool{}
		for _, name := range partitioned {
			n, err := topicName(name)
			if err != nil {
				return err
			}
			count, err := e.partitionsOf(n)
			if err != nil {
				return err
			}
			for i := range count {
				isPartition[n.Partition(i).String()] = true
			}
			list = append(list, topicListEntry{Topic: name, Partitions: count})
		}
		for _, name := range plain {
			if !isPartition[name] {
				list = append(list, topicListEntry{Topic: name, Partitions: 0})
			}
		}
	}
	sort.Slice(list, func(i, j int) bool { return list[i].Topic < list[j].Topic })
	rows := make([][]string, len(list))
	for i, t := range list {
		rows[i] = []string{t.Topic, strconv.Itoa(t.Partitions)}
	}
	return e.emit(list, []string{"TOPIC", "PARTITIONS"}, rows)
}

func topicsCreate(e *env, topic string, partitions int, configs []string) error {
	n, err := topicName(topic)
	if err != nil {
		return err
	}
	cfg, err := keyValues(configs, "-c")
	if err != nil {
		return err
	}
	if partitions < 0 {
		return usagef("-p %d: want 0 or more", partitions)
	}
	if partitions == 0 {
		if len(cfg) > 0 {
			return usagef("-c needs a Kafka topic (-p 1 or more); set a non-partitioned topic's configs with alter-config")
		}
		if err := e.admin("PUT", restPath(n), nil, nil); err != nil {
			return err
		}
	} else {
		adm, err := e.kadm()
		if err != nil {
			return err
		}
		kcfg := map[string]*string{}
		for k, v := range cfg {
			kcfg[k] = &v
		}
		resp, err := adm.CreateTopic(e.ctx, int32(partitions), -1, kcfg, kafkaName(n))
		if err == nil {
			err = resp.Err
			if err != nil && resp.ErrMessage != "" {
				err = fmt.Errorf("%w: %s", err, resp.ErrMessage)
			}
		}
		if err != nil {
			return fmt.Errorf("creating %s: %w", n, err)
		}
	}
	what := fmt.Sprintf("%d partitions", partitions)
	if partitions == 0 {
		what = "no partitions (one non-partitioned topic)"
	}
	return e.done(fmt.Sprintf("created %s with %s", n, what),
		map[string]any{"topic": n.String(), "partitions": partitions})
}

func topicsDelete(e *env, topic string, force bool) error {
	n, count, err := e.resolve(topic)
	if err != nil {
		return err
	}
	path := restPath(n)
	if count > 0 {
		path += "/partitions"
	}
	if force {
		path += "?force=true"
	}
	if err := e.admin("DELETE", path, nil, nil); err != nil {
		if isNotFound(err) {
			return fmt.Errorf("topic %s not found", n)
		}
		return err
	}
	return e.done("deleted "+n.String(), map[string]any{"topic": n.String()})
}

// stats is the part of Pulsar's TopicStats the CLI shows.
type stats struct {
	MsgInCounter  int64 `json:"msgInCounter"`
	StorageSize   int64 `json:"storageSize"`
	Subscriptions map[string]struct {
		Type       string `json:"type"`
		MsgBacklog int64  `json:"msgBacklog"`
		Consumers  []struct {
			ConsumerName string `json:"consumerName"`
		} `json:"consumers"`
	} `json:"subscriptions"`
	Publishers []struct {
		ProducerName string `json:"producerName"`
	} `json:"publishers"`
	Partitions map[string]stats `json:"partitions"`
}

type partitionDetail struct {
	Partition    int   `json:"partition"`
	StartOffset  int64 `json:"startOffset"`
	EndOffset    int64 `json:"endOffset"`
	StorageBytes int64 `json:"storageBytes"`
}

type subscriptionSummary struct {
	Name      string `json:"name"`
	Type      string `json:"type"`
	Backlog   int64  `json:"backlog"`
	Consumers int    `json:"consumers"`
}

type configEntry struct {
	Name   string `json:"name"`
	Value  string `json:"value"`
	Source string `json:"source"`
}

type topicDescription struct {
	Topic         string                `json:"topic"`
	KafkaName     string                `json:"kafkaName"`
	Partitions    int                   `json:"partitions"`
	Producers     int                   `json:"producers"`
	StorageBytes  int64                 `json:"storageBytes"`
	PartitionList []partitionDetail     `json:"partitionDetails"`
	Subscriptions []subscriptionSummary `json:"subscriptions"`
	Configs       []configEntry         `json:"configs"`
}

func (e *env) topicStats(n broker.TopicName, partitioned bool) (stats, error) {
	var st stats
	path := restPath(n) + "/stats"
	if partitioned {
		path = restPath(n) + "/partitioned-stats?perPartition=true"
	}
	err := e.admin("GET", path, nil, &st)
	if isNotFound(err) {
		err = fmt.Errorf("topic %s not found", n)
	}
	return st, err
}

func topicsDescribe(e *env, topic string) error {
	n, count, err := e.resolve(topic)
	if err != nil {
		return err
	}
	st, err := e.topicStats(n, count > 0)
	if err != nil {
		return err
	}
	d := topicDescription{Topic: n.String(), KafkaName: kafkaName(n), Partitions: count,
		Producers: len(st.Publishers), StorageBytes: st.StorageSize, Subscriptions: []subscriptionSummary{}, Configs: []configEntry{}}
	for name, s := range st.Subscriptions {
		d.Subscriptions = append(d.Subscriptions, subscriptionSummary{Name: name, Type: s.Type, Backlog: s.MsgBacklog, Consumers: len(s.Consumers)})
	}
	sort.Slice(d.Subscriptions, func(i, j int) bool { return d.Subscriptions[i].Name < d.Subscriptions[j].Name })

	kname := kafkaName(n)
	starts, ends, err := e.offsets(e.ctx, kname)
	if err != nil {
		return err
	}
	adm, err := e.kadm()
	if err != nil {
		return err
	}
	parts := max(count, 1)
	for i := range parts {
		pd := partitionDetail{Partition: i, StartOffset: -1, EndOffset: -1}
		if o, ok := starts.Lookup(kname, int32(i)); ok && o.Err == nil {
			pd.StartOffset = o.Offset
		}
		if o, ok := ends.Lookup(kname, int32(i)); ok && o.Err == nil {
			pd.EndOffset = o.Offset
		}
		if count > 0 {
			pd.StorageBytes = st.Partitions[n.Partition(i).String()].StorageSize
		} else {
			pd.StorageBytes = st.StorageSize
		}
		d.PartitionList = append(d.PartitionList, pd)
	}
	rcs, err := adm.DescribeTopicConfigs(e.ctx, kname)
	if err == nil {
		for _, rc := range rcs {
			if rc.Err != nil {
				continue
			}
			for _, c := range rc.Configs {
				d.Configs = append(d.Configs, configEntry{Name: c.Key, Value: c.MaybeValue(), Source: strings.ToLower(strings.TrimSuffix(c.Source.String(), "_CONFIG"))})
			}
		}
	}
	sort.Slice(d.Configs, func(i, j int) bool { return d.Configs[i].Name < d.Configs[j].Name })
	if e.json() {
		return writeJSON(e.stdout, d)
	}
	w := e.stdout
	writeTable(w, nil, [][]string{{"TOPIC", d.Topic}, {"KAFKA NAME", d.KafkaName}, {"PARTITIONS", strconv.Itoa(d.Partitions)},
		{"PRODUCERS", strconv.Itoa(d.Producers)}, {"STORAGE BYTES", strconv.FormatInt(d.StorageBytes, 10)}})
	fmt.Fprintln(w)
	rows := [][]string{}
	for _, p := range d.PartitionList {
		rows = append(rows, []string{strconv.Itoa(p.Partition), strconv.FormatInt(p.StartOffset, 10), strconv.FormatInt(p.EndOffset, 10), strconv.FormatInt(p.StorageBytes, 10)})
	}
	writeTable(w, []string{"PARTITION", "START-OFFSET", "END-OFFSET", "STORAGE-BYTES"}, rows)
	if len(d.Subscriptions) > 0 {
		fmt.Fprintln(w)
		rows = rows[:0]
		for _, s := range d.Subscriptions {
			rows = append(rows, []string{s.Name, s.Type, strconv.FormatInt(s.Backlog, 10), strconv.Itoa(s.Consumers)})
		}
		writeTable(w, []string{"SUBSCRIPTION", "TYPE", "BACKLOG", "CONSUMERS"}, rows)
	}
	if len(d.Configs) > 0 {
		fmt.Fprintln(w)
		rows = rows[:0]
		for _, c := range d.Configs {
			rows = append(rows, []string{c.Name, c.Value, c.Source})
		}
		writeTable(w, []string{"CONFIG", "VALUE", "SOURCE"}, rows)
	}
	return nil
}

func topicsAlterConfig(e *env, topic string, set, del []string) error {
	n, err := topicName(topic)
	if err != nil {
		return err
	}
	kv, err := keyValues(set, "--set")
	if err != nil {
		return err
	}
	if len(kv) == 0 && len(del) == 0 {
		return usagef("nothing to alter: give --set KEY=VALUE or --delete KEY")
	}
	var alter []kadm.AlterConfig
	keys := slices.Sorted(maps.Keys(kv))
	for _, k := range keys {
		v := kv[k]
		alter = append(alter, kadm.AlterConfig{Op: kadm.SetConfig, Name: k, Value: &v})
	}
	for _, k := range del {
		alter = append(alter, kadm.AlterConfig{Op: kadm.DeleteConfig, Name: k})
	}
	adm, err := e.kadm()
	if err != nil {
		return err
	}
	resps, err := adm.AlterTopicConfigs(e.ctx, alter, kafkaName(n))
	if err != nil {
		return err
	}
	for _, r := range resps {
		if r.Err != nil {
			if r.ErrMessage != "" {
				return fmt.Errorf("%s: %w: %s", n, r.Err, r.ErrMessage)
			}
			return fmt.Errorf("%s: %w", n, r.Err)
		}
	}
	return e.done(fmt.Sprintf("altered %s: set %s, deleted %s", n, orNone(keys), orNone(del)),
		map[string]any{"topic": n.String(), "set": kv, "deleted": append([]string{}, del...)})
}

func orNone(s []string) string {
	if len(s) == 0 {
		return "none"
	}
	return strings.Join(s, ",")
}
