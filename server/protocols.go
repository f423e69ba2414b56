package server

// The compiled-in protocol handlers; each registers itself at init.
import (
	_ "github.com/kopernik-io/kopernik/protocol/kafka"
	_ "github.com/kopernik-io/kopernik/protocol/pulsar"
)
