package main

import (
	"flag"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"
)

const header = "apiVersion: podagent.io/v1alpha1\nkind: AgentConfiguration\n"

// fullFile sets every field to something other than its default; fullArgs are the same settings
// as flags, and setFull applies them to the defaults.
const fullFile = header + `
rootDir: /srv/podagent
runDir: /run/pa
logDir: /srv/logs
containerdAddress: /run/c.sock
containerdNamespace: ns1
snapshotter: native
podCIDR: 10.88.0.0/16
bridgeName: br1
cniPluginDirs: [/cni/a, /cni/b]
nodeName: node1
nodeLabels: {disktype: ssd, zone: a}
manifestDir: /etc/manifests
manifestURL: https://example.com/pods.yaml
httpCheckPeriod: 1m
registryMirrors:
  docker.io: [http://127.0.0.1:5000, https://mirror.example.com/]
  quay.io: [http://127.0.0.1:5001]
containerLogMaxSize: 1Gi
containerLogMaxFiles: 3
listen: 0.0.0.0:7443
pauseImage: example.com/pause:3
imageArchives: [/a.tar, /b.tar]
resolvConf: /etc/other-resolv.conf
syncPeriod: 5s
logLevel: debug
logFormat: json
`

var fullArgs = []string{
	"--root-dir", "/srv/podagent", "--run-dir", "/run/pa", "--log-dir", "/srv/logs",
	"--containerd-address", "/run/c.sock", "--containerd-namespace", "ns1", "--snapshotter", "native",
	"--pod-cidr", "10.88.0.0/16", "--bridge-name", "br1", "--cni-plugin-dir", "/cni/a", "--cni-plugin-dir", "/cni/b",
	"--node-name", "node1", "--node-labels", "disktype=ssd,zone=a",
	"--manifest-dir", "/etc/manifests", "--manifest-url", "https://example.com/pods.yaml", "--http-check-period", "1m",
	"--registry-mirror", "docker.io=http://127.0.0.1:5000", "--registry-mirror", "docker.io=https://mirror.example.com/",
	"--registry-mirror", "quay.io=http://127.0.0.1:5001",
	"--container-log-max-size", "1Gi", "--container-log-max-files", "3", "--listen", "0.0.0.0:7443",
	"--pause-image", "example.com/pause:3", "--image-archive", "/a.tar", "--image-archive", "/b.tar",
	"--resolv-conf", "/etc/other-resolv.conf", "--sync-period", "5s", "--log-level", "debug", "--log-format", "json",
}

func setFull(s *settings) {
	c := &s.Agent
	c.RootDir, c.RunDir, c.LogDir = "/srv/podagent", "/run/pa", "/srv/logs"
	c.ContainerdAddress, c.ContainerdNamespace, c.Snapshotter = "/run/c.sock", "ns1", "native"
	c.PodCIDR, c.BridgeName, c.CNIPluginDirs = "10.88.0.0/16", "br1", []string{"/cni/a", "/cni/b"}
	c.NodeName, c.NodeLabels = "node1", map[string]string{"disktype": "ssd", "zone": "a"}
	c.ManifestDir, c.ManifestURL, c.HTTPCheckPeriod = "/etc/manifests", "https://example.com/pods.yaml", time.Minute
	c.RegistryMirrors = map[string][]string{
		"docker.io": {"http://127.0.0.1:5000", "https://mirror.example.com"},
		"quay.io":   {"http://127.0.0.1:5001"},
	}
	c.ContainerLogMaxSize, c.ContainerLogMaxFiles = 1<<30, 3
	c.Listen, c.PauseImage, c.ImageArchives = "0.0.0.0:7443", "example.com/pause:3", []string{"/a.tar", "/b.tar"}
	c.ResolvConf, c.SyncPeriod = "/etc/other-resolv.conf", 5*time.Second
	s.LogLevel, s.LogFormat = slog.LevelDebug, logFormatJSON
}

func TestParseServeArgs(t *testing.T) {
	tests := []struct {
		name    string
		file    string // config file content; "" means no --config
		args    []string
		want    func(*settings) // applied to the defaults
		wantErr []string        // substrings of the error; none means success
	}{
		{name: "defaults", want: func(*settings) {}},
		{name: "full file", file: fullFile, want: setFull},
		{name: "the same as flags", args: fullArgs, want: setFull},
		{name: "the same as flags, over a file that says otherwise", file: header + `
rootDir: /elsewhere
imageArchives: [/c.tar]
registryMirrors: {gcr.io: [http://127.0.0.1:6000]}
logFormat: text
`, args: fullArgs, want: setFull},
		{
			name: "flags override the file; repeated flags replace its list",
			file: fullFile,
			args: []string{"--root-dir", "/flag", "--image-archive", "/c.tar", "--registry-mirror", "gcr.io=http://127.0.0.1:6000", "--log-format", "text"},
			want: func(s *settings) {
				setFull(s)
				s.Agent.RootDir = "/flag"
				s.Agent.ImageArchives = []string{"/c.tar"}
				s.Agent.RegistryMirrors = map[string][]string{"gcr.io": {"http://127.0.0.1:6000"}}
				s.LogFormat = logFormatText
			},
		},
		{
			name: "a repeated flag replaces the default list",
			args: []string{"--cni-plugin-dir", "/cni"},
			want: func(s *settings) { s.Agent.CNIPluginDirs = []string{"/cni"} },
		},
		{
			name: "absent fields keep their defaults",
			file: header + "runDir: /run/other\n",
			want: func(s *settings) { s.Agent.RunDir = "/run/other" },
		},
		{
			name: "null keeps the default",
			file: header + "listen:\nimageArchives: null\n",
			want: func(*settings) {},
		},
		{
			name: "empty values are honoured",
			file: header + "listen: \"\"\ncniPluginDirs: []\n",
			want: func(s *settings) { s.Agent.Listen = ""; s.Agent.CNIPluginDirs = []string{} },
		},
		{
			name: "a size may be a bare number of bytes",
			file: header + "containerLogMaxSize: \"1048576\"\n",
			want: func(s *settings) { s.Agent.ContainerLogMaxSize = 1 << 20 },
		},
		{name: "unknown field", file: header + "rootdir: /x\n", wantErr: []string{"config file ", `unknown field "rootdir"`}},
		{name: "unknown fields", file: header + "rootDir: /x\nfoo: 1\nbar: 2\n", wantErr: []string{`unknown field "foo"`, `unknown field "bar"`}},
		{name: "duplicate field", file: header + "rootDir: /x\nrootDir: /y\n", wantErr: []string{`"rootDir" already set`}},
		{name: "bad duration", file: header + "syncPeriod: soon\n", wantErr: []string{"syncPeriod: ", `invalid duration "soon"`}},
		{name: "duration without unit", file: header + "httpCheckPeriod: 20\n", wantErr: []string{"httpCheckPeriod"}},
		{name: "bad quantity", file: header + "containerLogMaxSize: lots\n", wantErr: []string{`containerLogMaxSize: "lots"`}},
		{name: "wrong type", file: header + "containerLogMaxFiles: five\n", wantErr: []string{"containerLogMaxFiles"}},
		{name: "wrong list type", file: header + "imageArchives: /a.tar\n", wantErr: []string{"imageArchives"}},
		{name: "bad log level", file: header + "logLevel: loud\n", wantErr: []string{"logLevel: "}},
		{name: "bad log format", file: header + "logFormat: xml\n", wantErr: []string{`logFormat: "xml" is neither text nor json`}},
		{
			name:    "bad mirrors, each named",
			file:    header + "registryMirrors:\n  docker.io: [http://ok, 127.0.0.1:5000]\n  myregistry: [http://x]\n",
			wantErr: []string{`registryMirrors["docker.io"][1]: `, `registryMirrors["myregistry"][0]: `},
		},
		{name: "wrong apiVersion", file: "apiVersion: v1\nkind: AgentConfiguration\n", wantErr: []string{`apiVersion: got "v1", want "podagent.io/v1alpha1"`}},
		{name: "missing apiVersion", file: "kind: AgentConfiguration\n", wantErr: []string{`apiVersion: got ""`}},
		{name: "wrong kind", file: "apiVersion: podagent.io/v1alpha1\nkind: KubeletConfiguration\nfoo: 1\n", wantErr: []string{`kind: got "KubeletConfiguration", want "AgentConfiguration"`}},
		{name: "empty file", file: "\n", wantErr: []string{"apiVersion"}},
		{name: "a second document", file: header + "rootDir: /x\n---\nfoo: 1\n", wantErr: []string{"document 1: a configuration file holds one YAML document"}},
		{
			name: "documents of nothing but comments do not count",
			file: "# podagent\n---\n" + header + "rootDir: /x\n---\n# the end\n",
			want: func(s *settings) { s.Agent.RootDir = "/x" },
		},
		{name: "not YAML", file: "rootDir: [\n", wantErr: []string{"config file "}},
		{name: "bad flag over a good file", file: header, args: []string{"--log-format", "xml"}, wantErr: []string{"log-format"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			args := tt.args
			if tt.file != "" {
				path := filepath.Join(t.TempDir(), "config.yaml")
				if err := os.WriteFile(path, []byte(tt.file), 0o644); err != nil {
					t.Fatal(err)
				}
				args = append([]string{"--config", path}, args...)
			}
			got, help, err := parseServeArgs(args)
			if help {
				t.Fatal("help: true")
			}
			if len(tt.wantErr) > 0 {
				if err == nil {
					t.Fatalf("no error; want one containing %q", tt.wantErr)
				}
				for _, w := range tt.wantErr {
					if !strings.Contains(err.Error(), w) {
						t.Errorf("error %q does not contain %q", err, w)
					}
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			want := defaultSettings()
			tt.want(&want)
			if !reflect.DeepEqual(got, want) {
				t.Errorf("got  %+v\nwant %+v", got, want)
			}
		})
	}
}

func TestMissingConfigFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "none.yaml")
	_, _, err := parseServeArgs([]string{"--config", path})
	if err == nil || !strings.Contains(err.Error(), path) {
		t.Fatalf("got %v, want an error naming %s", err, path)
	}
}

// fieldsByFlag maps each flag to its configFile field's name, from the struct tags.
func fieldsByFlag() map[string]string {
	m := map[string]string{}
	typ := reflect.TypeFor[configFile]()
	for i := range typ.NumField() {
		if fl, ok := typ.Field(i).Tag.Lookup("flag"); ok {
			m[fl] = strings.Split(typ.Field(i).Tag.Get("json"), ",")[0]
		}
	}
	return m
}

// TestEveryFlagHasAFieldAndADoc fails when a flag of serve is added without its config file
// field or its line in README.md, or a field names a flag that does not exist.
func TestEveryFlagHasAFieldAndADoc(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	example, err := os.ReadFile("../../examples/podagent.yaml")
	if err != nil {
		t.Fatal(err)
	}
	fields := fieldsByFlag()
	s := defaultSettings()
	var path string
	fs := serveFlags(&s, &path)
	fs.VisitAll(func(f *flag.Flag) {
		if !regexp.MustCompile("`--" + regexp.QuoteMeta(f.Name) + "[` ]").Match(readme) {
			t.Errorf("flag --%s is not in README.md as `--%s`", f.Name, f.Name)
		}
		if f.Name == "config" {
			return
		}
		field, ok := fields[f.Name]
		if !ok {
			t.Errorf("flag --%s has no field in configFile (a field tagged flag:%q)", f.Name, f.Name)
			return
		}
		if !regexp.MustCompile("`" + field + "`").Match(readme) {
			t.Errorf("field %s of --%s is not in README.md", field, f.Name)
		}
		// Given, or commented out as the host-dependent ones are.
		if !regexp.MustCompile(`(?m)^(# )?` + field + `:`).Match(example) {
			t.Errorf("field %s of --%s is not in examples/podagent.yaml", field, f.Name)
		}
	})
	for fl, field := range fields {
		if fs.Lookup(fl) == nil {
			t.Errorf("field %s is tagged with flag %q, which serve does not have", field, fl)
		}
	}
}

// TestExampleIsTheDefaults loads examples/podagent.yaml, which gives every field at its default
// except the host-dependent ones, left commented out.
func TestExampleIsTheDefaults(t *testing.T) {
	got, _, err := parseServeArgs([]string{"--config", "../../examples/podagent.yaml"})
	if err != nil {
		t.Fatal(err)
	}
	if want := defaultSettings(); !reflect.DeepEqual(got, want) {
		t.Errorf("got  %+v\nwant %+v", got, want)
	}
}
