// Package interop holds end-to-end tests of one topic served over both
// protocols: a broker started in-process with the Kafka and Pulsar
// handlers, franz-go and pulsar-client-go as the clients. The conversion
// itself is package convert; docs/interop.md describes the mapping.
package interop
