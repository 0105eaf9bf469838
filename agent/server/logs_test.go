package server

import (
	"net/url"
	"strings"
	"testing"
	"time"
)

func TestParseLogQuery(t *testing.T) {
	tests := []struct {
		query string
		code  int
		msg   string
	}{
		{query: "", code: 0},
		{query: "follow=true&previous=1&timestamps=true&tailLines=10&limitBytes=100&sinceSeconds=5", code: 0},
		{query: "tail=7", code: 0},
		{query: "tail=all", code: 0},
		{query: "follow=yes", code: 0}, // any value but false or 0 is true, as the kubelet's codec
		{query: "tailLines=x", code: 400, msg: `{"message": "Unable to decode query."}`},
		{query: "limitBytes=1.5", code: 400, msg: `{"message": "Unable to decode query."}`},
		{query: "sinceTime=yesterday", code: 400, msg: `{"message": "Unable to decode query."}`},
		{query: "tailLines=-1", code: 422, msg: `{"message": "Invalid request."}`},
		{query: "limitBytes=0", code: 422, msg: `{"message": "Invalid request."}`},
		{query: "sinceSeconds=0", code: 422, msg: `{"message": "Invalid request."}`},
		{query: "sinceSeconds=5&sinceTime=2024-01-01T00:00:00Z", code: 422, msg: `{"message": "Invalid request."}`},
		{query: "stream=Bogus", code: 422, msg: `{"message": "Invalid request."}`},
		{query: "stream=Stdout&tailLines=3", code: 422, msg: `{"message": "Invalid request."}`},
		{query: "stream=Stdout", code: 400, msg: `unable to return the given log stream: "Stdout". Please enable PodLogsQuerySplitStreams feature gate in kubelet`},
		{query: "stream=All&tailLines=3", code: 0},
	}
	for _, tt := range tests {
		q, err := url.ParseQuery(tt.query)
		if err != nil {
			t.Fatal(err)
		}
		o, code, msg := parseLogQuery(q)
		if code != tt.code || msg != tt.msg {
			t.Errorf("%q: %d %q, want %d %q", tt.query, code, msg, tt.code, tt.msg)
		}
		if code == 0 && o == nil {
			t.Errorf("%q: no options", tt.query)
		}
	}
}

func TestParseLogQueryValues(t *testing.T) {
	q, _ := url.ParseQuery("follow=true&previous=1&timestamps=false&tail=7&limitBytes=100&sinceTime=2024-05-06T07:08:09Z")
	o, code, _ := parseLogQuery(q)
	if code != 0 {
		t.Fatal(code)
	}
	if !o.Follow || !o.Previous || o.Timestamps || *o.TailLines != 7 || *o.LimitBytes != 100 ||
		!o.SinceTime.Time.Equal(time.Date(2024, 5, 6, 7, 8, 9, 0, time.UTC)) {
		t.Errorf("options = %+v", o)
	}
	if q.Get("tailLines") != "" {
		t.Error("parseLogQuery changed its input")
	}
}

// TestContainerLogsPassesOptions checks that the host gets the decoded options and the errors
// of the query come before the pod lookup, as the kubelet's.
func TestContainerLogsPassesOptions(t *testing.T) {
	e := newTestEnv(t, nil)
	code, body, hdr := e.do(t, "GET", "/containerLogs/ns/web/app?tailLines=1&timestamps=true&follow=true", "admin-token")
	if code != 200 || body != "line 1\nline 2\n" || !strings.HasPrefix(hdr.Get("Content-Type"), "text/plain") {
		t.Fatalf("logs = %d %q %q", code, body, hdr.Get("Content-Type"))
	}
	if o := e.host.logOpts; o == nil || *o.TailLines != 1 || !o.Timestamps || !o.Follow {
		t.Errorf("host got %+v", o)
	}
	if code, _, _ := e.do(t, "GET", "/containerLogs/ns/nope/app?tailLines=-1", "admin-token"); code != 422 {
		t.Errorf("invalid query on a missing pod = %d, want 422", code)
	}
}
