// Package pb holds kopernik's generated Pulsar wire types (see pulsarwire.proto).
package pb

//go:generate protoc --go_out=. --go_opt=paths=source_relative pulsarwire.proto
