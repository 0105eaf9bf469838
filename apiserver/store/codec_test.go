package store

import (
	"testing"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
)

func TestSpecChanged(t *testing.T) {
	for _, tc := range []struct {
		name, old, new string
		want           bool
	}{
		{"same", `{"metadata":{"name":"a"},"spec":{"x":1}}`, `{"metadata":{"name":"b"},"spec":{"x":1}}`, false},
		{"status only", `{"spec":{"x":1},"status":{"p":"A"}}`, `{"spec":{"x":1},"status":{"p":"B"}}`, false},
		{"spec differs", `{"spec":{"x":1}}`, `{"spec":{"x":2}}`, true},
		{"spec added", `{}`, `{"spec":{}}`, true},
	} {
		got, err := specChanged([]byte(tc.old), []byte(tc.new))
		if err != nil || got != tc.want {
			t.Errorf("%s: got %v, %v; want %v", tc.name, got, err, tc.want)
		}
	}
	if _, err := specChanged([]byte("{"), []byte("{}")); err == nil {
		t.Error("bad JSON: want error")
	}
}

func TestParseRV(t *testing.T) {
	for in, want := range map[string]uint64{"0": 0, "1": 1, "18446744073709551615": 1<<64 - 1} {
		if got, err := parseRV(in); err != nil || got != want || formatRV(got) != in {
			t.Errorf("parseRV(%q) = %d, %v", in, got, err)
		}
	}
	for _, in := range []string{"", "-1", "1.5", "x"} {
		if _, err := parseRV(in); !apierrors.IsBadRequest(err) {
			t.Errorf("parseRV(%q): want BadRequest, got %v", in, err)
		}
	}
}
