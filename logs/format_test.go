package logs

import (
	"strings"
	"testing"
	"time"
)

func TestRecordRoundTrip(t *testing.T) {
	ts := time.Date(2016, 10, 6, 0, 17, 9, 669794202, time.UTC)
	tests := []struct {
		name    string
		time    time.Time
		stream  string
		partial bool
		content string
		want    string
	}{
		{"full stdout", ts, Stdout, false, "log content 1", "2016-10-06T00:17:09.669794202Z stdout F log content 1\n"},
		{"partial stderr", ts, Stderr, true, "log content 2", "2016-10-06T00:17:09.669794202Z stderr P log content 2\n"},
		{"empty line", ts, Stdout, false, "", "2016-10-06T00:17:09.669794202Z stdout F \n"},
		{"fraction trailing zeros dropped", ts.Truncate(time.Millisecond), Stdout, false, "x", "2016-10-06T00:17:09.669Z stdout F x\n"},
		{"whole second", ts.Truncate(time.Second), Stdout, false, "x", "2016-10-06T00:17:09Z stdout F x\n"},
		{"content with spaces and tags", ts, Stdout, false, "stderr P  two  spaces ", "2016-10-06T00:17:09.669794202Z stdout F stderr P  two  spaces \n"},
		{"zone kept", ts.In(time.FixedZone("", 2*3600)), Stdout, false, "x", "2016-10-06T02:17:09.669794202+02:00 stdout F x\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := string(appendRecord(nil, tt.time, tt.stream, tt.partial, []byte(tt.content)))
			if got != tt.want {
				t.Fatalf("appendRecord = %q, want %q", got, tt.want)
			}
			r, err := parseRecord([]byte(strings.TrimSuffix(got, "\n")))
			if err != nil {
				t.Fatal(err)
			}
			if !r.time.Equal(tt.time) || r.stream != tt.stream || r.partial != tt.partial || string(r.content) != tt.content {
				t.Fatalf("parseRecord = %v %s partial=%v %q, want %v %s partial=%v %q",
					r.time, r.stream, r.partial, r.content, tt.time, tt.stream, tt.partial, tt.content)
			}
		})
	}
}

func TestParseRecord(t *testing.T) {
	tests := []struct {
		line        string
		wantErr     string
		wantPartial bool
		wantContent string
	}{
		{line: "2016-10-06T00:17:09.669794202Z stdout F:x y", wantContent: "y"},
		{line: "2016-10-06T00:17:09.669794202Z stdout P:x y", wantPartial: true, wantContent: "y"},
		{line: "2016-10-06T00:17:09.669794202Z stdout X y", wantContent: "y"},
		{line: "2016-10-06T00:17:09.669794202Z stdout F ", wantContent: ""},
		{line: "2016-10-06T00:17:09.669794202Z", wantErr: "timestamp not found"},
		{line: "yesterday stdout F x", wantErr: "timestamp"},
		{line: "2016-10-06T00:17:09Z stdin F x", wantErr: "unexpected stream"},
		{line: "2016-10-06T00:17:09Z stdout", wantErr: "stream not found"},
		{line: "2016-10-06T00:17:09Z stdout F", wantErr: "tag not found"},
		{line: `{"log":"x\n","stream":"stdout","time":"2016-10-20T18:39:20.57606443Z"}`, wantErr: "timestamp"},
	}
	for _, tt := range tests {
		t.Run(tt.line, func(t *testing.T) {
			r, err := parseRecord([]byte(tt.line))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error = %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if r.partial != tt.wantPartial || string(r.content) != tt.wantContent {
				t.Fatalf("partial=%v content=%q, want partial=%v content=%q", r.partial, r.content, tt.wantPartial, tt.wantContent)
			}
		})
	}
}

func TestRecordEndsLine(t *testing.T) {
	tests := []struct {
		name string
		r    record
		want bool
	}{
		{"F", record{content: []byte("x")}, true},
		{"full-size P continues", record{partial: true, content: []byte(full('x'))}, false},
		{"short P ends a stream without newline", record{partial: true, content: []byte("x")}, true},
		{"truncated full-size P", record{partial: true, content: []byte(full('x')), truncated: true}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.r.endsLine(); got != tt.want {
				t.Fatalf("endsLine = %v, want %v", got, tt.want)
			}
		})
	}
}
