package broker

import (
	"errors"
	"fmt"
	"testing"
)

func TestReason(t *testing.T) {
	for _, c := range []struct {
		err  error
		want string
	}{
		{fmt.Errorf("%w: topic persistent://public/default/t", ErrAlreadyExists), "already exists: topic persistent://public/default/t"},
		{fmt.Errorf("kafka: invalid request: %w", ErrInvalidConfig), "invalid request: invalid configuration"},
		{errors.New("plain message"), "plain message"},
		{errors.New("broker"), "broker"},
		{nil, ""},
	} {
		if got := Reason(c.err); got != c.want {
			t.Errorf("Reason(%v) = %q, want %q", c.err, got, c.want)
		}
	}
}
