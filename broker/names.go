package broker

import (
	"fmt"
	"strconv"
	"strings"
)

// PartitionSuffix separates a partitioned topic's name from the partition number.
const PartitionSuffix = "-partition-"

// TopicName is a parsed `persistent://tenant/namespace/local` name. Local
// includes the "-partition-N" suffix for a partition of a partitioned topic.
type TopicName struct {
	// Domain is "persistent" or "non-persistent". Non-persistent topics are
	// kept apart (their own metadata and ledgers) but stored like persistent
	// ones: kopernik does not drop their messages.
	Domain    string
	Tenant    string
	Namespace string // namespace's own name, without the tenant
	Local     string
}

// ParseTopicName accepts "persistent://t/ns/x" (or non-persistent://), "t/ns/x" and, with the given
// defaults, a short "x". Names are validated: tenant, namespace and local
// name use [A-Za-z0-9._=-] (the local name also ':'), length 1..249.
func ParseTopicName(s, defaultTenant, defaultNamespace string) (TopicName, error) {
	rest := s
	domain := "persistent"
	if i := strings.Index(s, "://"); i >= 0 {
		domain, rest = s[:i], s[i+3:]
		if domain != "persistent" && domain != "non-persistent" {
			return TopicName{}, fmt.Errorf("%w: %q: want persistent:// or non-persistent://", ErrInvalidName, s)
		}
	}
	parts := strings.Split(rest, "/")
	var n TopicName
	switch len(parts) {
	case 1:
		if strings.Contains(s, "://") {
			return TopicName{}, fmt.Errorf("%w: %q: want persistent://tenant/namespace/topic", ErrInvalidName, s)
		}
		n = TopicName{Domain: domain, Tenant: defaultTenant, Namespace: defaultNamespace, Local: parts[0]}
	case 3:
		n = TopicName{Domain: domain, Tenant: parts[0], Namespace: parts[1], Local: parts[2]}
	default:
		return TopicName{}, fmt.Errorf("%w: %q: want tenant/namespace/topic", ErrInvalidName, s)
	}
	if err := n.Validate(); err != nil {
		return TopicName{}, fmt.Errorf("%w (in %q)", err, s)
	}
	return n, nil
}

// Validate checks every part of the name.
func (n TopicName) Validate() error {
	if err := ValidateSegment("tenant", n.Tenant); err != nil {
		return err
	}
	if err := ValidateSegment("namespace", n.Namespace); err != nil {
		return err
	}
	return ValidateSegment("topic", n.Local)
}

// ValidateSegment checks one name part (tenant, namespace, topic, subscription-free).
func ValidateSegment(kind, s string) error {
	if s == "" || len(s) > 249 || s == "." || s == ".." {
		return fmt.Errorf("%w: %s name %q must be 1..249 characters and not . or ..", ErrInvalidName, kind, s)
	}
	for _, r := range s {
		ok := r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' ||
			r == '.' || r == '_' || r == '-' || r == '='
		if !ok {
			return fmt.Errorf("%w: %s name %q has invalid character %q", ErrInvalidName, kind, s, r)
		}
	}
	return nil
}

// String is the full name: persistent://tenant/ns/local.
func (n TopicName) String() string {
	return n.Domain + "://" + n.Tenant + "/" + n.Namespace + "/" + n.Local
}

// NamespaceName is "tenant/namespace".
func (n TopicName) NamespaceName() string { return n.Tenant + "/" + n.Namespace }

// PartitionIndex returns N for a "...-partition-N" name, else -1.
func (n TopicName) PartitionIndex() int {
	i := strings.LastIndex(n.Local, PartitionSuffix)
	if i <= 0 {
		return -1
	}
	k, err := strconv.Atoi(n.Local[i+len(PartitionSuffix):])
	if err != nil || k < 0 || strconv.Itoa(k) != n.Local[i+len(PartitionSuffix):] {
		return -1
	}
	return k
}

// Base returns the partitioned topic a partition belongs to (n itself if not a partition).
func (n TopicName) Base() TopicName {
	if n.PartitionIndex() < 0 {
		return n
	}
	b := n
	b.Local = n.Local[:strings.LastIndex(n.Local, PartitionSuffix)]
	return b
}

// Partition returns the name of partition i of n.
func (n TopicName) Partition(i int) TopicName {
	p := n
	p.Local = n.Local + PartitionSuffix + strconv.Itoa(i)
	return p
}

// TopicOfLedger is the topic (partition) a managed-ledger name stores: the
// inverse of LedgerName.
func TopicOfLedger(ledger string) (TopicName, error) {
	parts := strings.SplitN(ledger, "/", 4)
	if len(parts) != 4 || parts[0] == "" || parts[1] == "" || parts[2] == "" || parts[3] == "" {
		return TopicName{}, fmt.Errorf("broker: %q is not a topic's ledger name", ledger)
	}
	return TopicName{Tenant: parts[0], Namespace: parts[1], Domain: parts[2], Local: parts[3]}, nil
}

// LedgerName is the managed-ledger name that stores this topic (partition).
func (n TopicName) LedgerName() string {
	return n.Tenant + "/" + n.Namespace + "/" + n.Domain + "/" + n.Local
}
