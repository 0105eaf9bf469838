package main

import (
	"bufio"
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"os"
	"slices"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/api/resource"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/json"
	"sigs.k8s.io/yaml"

	"github.com/podagent/podagent/agent"
	"github.com/podagent/podagent/runtime"
)

// settings is everything `podagent serve` is told: the agent's Config, and how podagent logs.
type settings struct {
	Agent     agent.Config
	LogLevel  slog.Level
	LogFormat logFormat
}

// defaultSettings returns the defaults: the agent's, each set with where it comes from in
// agent.DefaultConfig, and the two logging ones here, which the agent does not know about.
func defaultSettings() settings {
	return settings{
		Agent: agent.DefaultConfig(),
		// slog's own default level.
		LogLevel: slog.LevelInfo,
		// key=value lines, for people reading a terminal or journalctl; json is for log shippers.
		LogFormat: logFormatText,
	}
}

// logFormat is how podagent writes its logs: text or json.
type logFormat string

const (
	logFormatText logFormat = "text"
	logFormatJSON logFormat = "json"
)

func parseLogFormat(s string) (logFormat, error) {
	switch f := logFormat(s); f {
	case logFormatText, logFormatJSON:
		return f, nil
	}
	return "", fmt.Errorf("%q is neither text nor json", s)
}

func (f *logFormat) UnmarshalText(b []byte) error {
	v, err := parseLogFormat(string(b))
	if err != nil {
		return err
	}
	*f = v
	return nil
}

func (f logFormat) MarshalText() ([]byte, error) { return []byte(f), nil }

func parseLogLevel(s string) (slog.Level, error) {
	var l slog.Level
	err := l.UnmarshalText([]byte(s))
	return l, err
}

// parseQuantity parses a size written as a Kubernetes quantity (10Mi, 1G, 1048576) into bytes.
func parseQuantity(s string) (int64, error) {
	q, err := resource.ParseQuantity(s)
	if err != nil {
		return 0, fmt.Errorf("%q: %w", s, err)
	}
	return q.Value(), nil
}

func parseLabels(s string) (map[string]string, error) {
	labels := map[string]string{}
	for _, kv := range strings.Split(s, ",") {
		if kv == "" {
			continue
		}
		k, v, ok := strings.Cut(kv, "=")
		if !ok {
			return nil, fmt.Errorf("label %q is not key=value", kv)
		}
		labels[k] = v
	}
	return labels, nil
}

// serveFlags defines the flags of `podagent serve` over s, whose values are the flags' defaults;
// --config is stored in configPath. Each flag has a field of configFile, named in its flag tag,
// and a line in README.md's Settings (TestEveryFlagHasAFieldAndADoc).
func serveFlags(s *settings, configPath *string) *flag.FlagSet {
	c := &s.Agent
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.StringVar(configPath, "config", "", "configuration file (YAML, kind "+configKind+"); flags given on the command line override its fields")
	fs.StringVar(&c.RootDir, "root-dir", c.RootDir, "directory for the agent's persistent state")
	fs.StringVar(&c.RunDir, "run-dir", c.RunDir, "directory for per-boot state (network namespaces, /dev/shm)")
	fs.StringVar(&c.LogDir, "log-dir", c.LogDir, "directory for container logs")
	fs.StringVar(&c.ContainerdAddress, "containerd-address", c.ContainerdAddress, "containerd socket")
	fs.StringVar(&c.ContainerdNamespace, "containerd-namespace", c.ContainerdNamespace, "containerd namespace for this agent's containers and images")
	fs.StringVar(&c.Snapshotter, "snapshotter", c.Snapshotter, "containerd snapshotter")
	fs.StringVar(&c.PodCIDR, "pod-cidr", c.PodCIDR, "pod network CIDR")
	fs.StringVar(&c.BridgeName, "bridge-name", c.BridgeName, "Linux bridge of the pod network (also the CNI network name)")
	fs.Func("cni-plugin-dir", "directory searched for CNI plugins (repeatable; default "+listOrNone(c.CNIPluginDirs)+")",
		repeatable(func() { c.CNIPluginDirs = nil }, func(v string) error {
			c.CNIPluginDirs = append(c.CNIPluginDirs, v)
			return nil
		}))
	fs.StringVar(&c.NodeName, "node-name", c.NodeName, "name of this node")
	fs.Func("node-labels", "node labels, k=v[,k=v...]", func(v string) error {
		labels, err := parseLabels(v)
		if err != nil {
			return err
		}
		c.NodeLabels = labels
		return nil
	})
	fs.Func("container-log-max-size", fmt.Sprintf("size at which a container's log is rotated (default %s)",
		resource.NewQuantity(c.ContainerLogMaxSize, resource.BinarySI)), func(v string) error {
		n, err := parseQuantity(v)
		if err != nil {
			return err
		}
		c.ContainerLogMaxSize = n
		return nil
	})
	fs.IntVar(&c.ContainerLogMaxFiles, "container-log-max-files", c.ContainerLogMaxFiles, "log files kept per container, the current one included")
	fs.StringVar(&c.ManifestDir, "manifest-dir", c.ManifestDir, "directory of static pod manifests")
	fs.StringVar(&c.ManifestURL, "manifest-url", c.ManifestURL, "URL of static pod manifests, polled with ETag")
	fs.DurationVar(&c.HTTPCheckPeriod, "http-check-period", c.HTTPCheckPeriod, "how often the manifest URL is fetched")
	fs.Func("registry-mirror", "registry mirror HOST=URL, e.g. docker.io=http://127.0.0.1:5000 (repeatable; tried in order, then the registry itself)",
		repeatable(func() { c.RegistryMirrors = nil }, func(v string) error {
			host, endpoint, err := runtime.ParseRegistryMirror(v)
			if err != nil {
				return err
			}
			if c.RegistryMirrors == nil {
				c.RegistryMirrors = map[string][]string{}
			}
			c.RegistryMirrors[host] = append(c.RegistryMirrors[host], endpoint)
			return nil
		}))
	fs.StringVar(&c.Listen, "listen", c.Listen, "address of the Kubernetes API (HTTPS, client certificates; empty: no API)")
	fs.StringVar(&c.PauseImage, "pause-image", c.PauseImage, "sandbox (pause) image")
	fs.Func("image-archive", "OCI image archive to import at start (repeatable; default "+listOrNone(c.ImageArchives)+")",
		repeatable(func() { c.ImageArchives = nil }, func(v string) error {
			c.ImageArchives = append(c.ImageArchives, v)
			return nil
		}))
	fs.StringVar(&c.ResolvConf, "resolv-conf", c.ResolvConf, "resolv.conf given to pods")
	fs.DurationVar(&c.SyncPeriod, "sync-period", c.SyncPeriod, "how often the manifest directory is re-read besides watching it")
	fs.TextVar(&s.LogLevel, "log-level", s.LogLevel, "debug, info, warn or error")
	fs.TextVar(&s.LogFormat, "log-format", s.LogFormat, "text or json")
	return fs
}

func listOrNone(l []string) string {
	if len(l) == 0 {
		return "none"
	}
	return strings.Join(l, ", ")
}

// repeatable makes the body of a repeatable list flag: its first use replaces the list that came
// from the defaults or the config file (reset), and every use adds to it (add). Adding to the
// default instead would leave no way to drop a default entry from the command line.
func repeatable(reset func(), add func(string) error) func(string) error {
	used := false
	return func(s string) error {
		if !used {
			reset()
			used = true
		}
		return add(s)
	}
}

// parseServeArgs turns the command line of `podagent serve`, and the config file it names, into
// settings: the defaults, over them the file's fields, over those the flags given on the command
// line. help reports that -h was asked for (and answered).
func parseServeArgs(args []string) (s settings, help bool, err error) {
	s = defaultSettings()
	var path string
	if help, err := parseFlags(serveFlags(&s, &path), args); help || err != nil {
		return s, help, err
	}
	if path == "" {
		return s, false, nil
	}
	f, err := readConfigFile(path)
	if err != nil {
		return s, false, err
	}
	s = defaultSettings()
	if err := f.applyTo(&s); err != nil {
		return s, false, fmt.Errorf("config file %s: %w", path, err)
	}
	// The command line is parsed again, over the file's settings, rather than the flags it set
	// (flag.FlagSet.Visit) copied over one by one: each flag is then defined once, in serveFlags,
	// and no copying table can miss one. Parsing has no side effects, and its errors were
	// reported by the first parse.
	fs := serveFlags(&s, &path)
	fs.SetOutput(io.Discard)
	if err := fs.Parse(args); err != nil {
		return s, false, err
	}
	return s, false, nil
}

const (
	configAPIVersion = "podagent.io/v1alpha1"
	configKind       = "AgentConfiguration"
)

// configFile is the configuration file of `podagent serve`: YAML, apiVersion podagent.io/v1alpha1,
// kind AgentConfiguration. Each field stands for the flag named in its flag tag and takes the
// same values. A field left out (or null) keeps its default; one given, even empty
// (`listen: ""`), is honoured: hence the pointers. Durations and sizes are read as strings and
// parsed by applyTo, where an error can name the field; keys are matched case-sensitively and an
// unknown one is an error, so that a misspelt setting is not silently ignored.
type configFile struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`

	RootDir              *string              `json:"rootDir" flag:"root-dir"`
	RunDir               *string              `json:"runDir" flag:"run-dir"`
	LogDir               *string              `json:"logDir" flag:"log-dir"`
	ContainerdAddress    *string              `json:"containerdAddress" flag:"containerd-address"`
	ContainerdNamespace  *string              `json:"containerdNamespace" flag:"containerd-namespace"`
	Snapshotter          *string              `json:"snapshotter" flag:"snapshotter"`
	PodCIDR              *string              `json:"podCIDR" flag:"pod-cidr"`
	BridgeName           *string              `json:"bridgeName" flag:"bridge-name"`
	CNIPluginDirs        *[]string            `json:"cniPluginDirs" flag:"cni-plugin-dir"`
	NodeName             *string              `json:"nodeName" flag:"node-name"`
	NodeLabels           *map[string]string   `json:"nodeLabels" flag:"node-labels"`
	ManifestDir          *string              `json:"manifestDir" flag:"manifest-dir"`
	ManifestURL          *string              `json:"manifestURL" flag:"manifest-url"`
	HTTPCheckPeriod      *string              `json:"httpCheckPeriod" flag:"http-check-period"`
	RegistryMirrors      *map[string][]string `json:"registryMirrors" flag:"registry-mirror"`
	ContainerLogMaxSize  *string              `json:"containerLogMaxSize" flag:"container-log-max-size"`
	ContainerLogMaxFiles *int                 `json:"containerLogMaxFiles" flag:"container-log-max-files"`
	Listen               *string              `json:"listen" flag:"listen"`
	PauseImage           *string              `json:"pauseImage" flag:"pause-image"`
	ImageArchives        *[]string            `json:"imageArchives" flag:"image-archive"`
	ResolvConf           *string              `json:"resolvConf" flag:"resolv-conf"`
	SyncPeriod           *string              `json:"syncPeriod" flag:"sync-period"`
	LogLevel             *string              `json:"logLevel" flag:"log-level"`
	LogFormat            *string              `json:"logFormat" flag:"log-format"`
}

func readConfigFile(path string) (*configFile, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("config file: %w", err)
	}
	f, err := decodeConfigFile(data)
	if err != nil {
		return nil, fmt.Errorf("config file %s: %w", path, err)
	}
	return f, nil
}

// decodeConfigFile decodes a configuration file, checking its apiVersion and kind first so that
// another kind of file is reported as such rather than as a list of unknown fields.
func decodeConfigFile(data []byte) (*configFile, error) {
	js, err := oneDocument(data)
	if err != nil {
		return nil, err
	}
	var tm struct {
		APIVersion string `json:"apiVersion"`
		Kind       string `json:"kind"`
	}
	if err := json.UnmarshalCaseSensitivePreserveInts(js, &tm); err != nil {
		return nil, err
	}
	if tm.APIVersion != configAPIVersion {
		return nil, fmt.Errorf("apiVersion: got %q, want %q", tm.APIVersion, configAPIVersion)
	}
	if tm.Kind != configKind {
		return nil, fmt.Errorf("kind: got %q, want %q", tm.Kind, configKind)
	}
	var f configFile
	strictErrs, err := json.UnmarshalStrict(js, &f)
	if err != nil {
		return nil, err
	}
	if err := errors.Join(strictErrs...); err != nil {
		return nil, err
	}
	return &f, nil
}

// oneDocument returns the file's YAML document as JSON. A second document is an error rather than
// ignored, as YAML decoders do, so that no setting in it is silently dropped; documents with
// nothing but comments do not count.
func oneDocument(data []byte) ([]byte, error) {
	js := []byte("null")
	r := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(data)))
	for i, n := 0, 0; ; i++ {
		doc, err := r.Read()
		if errors.Is(err, io.EOF) {
			return js, nil
		}
		if err != nil {
			return nil, err
		}
		// Strict: a key given twice is an error, as the YAML specification says.
		j, err := yaml.YAMLToJSONStrict(doc)
		if err != nil {
			return nil, err
		}
		if string(j) == "null" {
			continue
		}
		if n++; n > 1 {
			return nil, fmt.Errorf("document %d: a configuration file holds one YAML document", i)
		}
		js = j
	}
}

// applyTo sets the fields the file gives over s, naming the field of each value that does not
// parse. The agent's own checks (agent.Config.Validate) come later and name flags.
func (f *configFile) applyTo(s *settings) error {
	c := &s.Agent
	set(&c.RootDir, f.RootDir)
	set(&c.RunDir, f.RunDir)
	set(&c.LogDir, f.LogDir)
	set(&c.ContainerdAddress, f.ContainerdAddress)
	set(&c.ContainerdNamespace, f.ContainerdNamespace)
	set(&c.Snapshotter, f.Snapshotter)
	set(&c.PodCIDR, f.PodCIDR)
	set(&c.BridgeName, f.BridgeName)
	if f.CNIPluginDirs != nil {
		c.CNIPluginDirs = slices.Clone(*f.CNIPluginDirs)
	}
	set(&c.NodeName, f.NodeName)
	if f.NodeLabels != nil {
		c.NodeLabels = maps.Clone(*f.NodeLabels)
	}
	set(&c.ManifestDir, f.ManifestDir)
	set(&c.ManifestURL, f.ManifestURL)
	set(&c.ContainerLogMaxFiles, f.ContainerLogMaxFiles)
	set(&c.Listen, f.Listen)
	set(&c.PauseImage, f.PauseImage)
	if f.ImageArchives != nil {
		c.ImageArchives = slices.Clone(*f.ImageArchives)
	}
	set(&c.ResolvConf, f.ResolvConf)

	var errs []error
	parse(&errs, "httpCheckPeriod", &c.HTTPCheckPeriod, f.HTTPCheckPeriod, time.ParseDuration)
	parse(&errs, "containerLogMaxSize", &c.ContainerLogMaxSize, f.ContainerLogMaxSize, parseQuantity)
	parse(&errs, "syncPeriod", &c.SyncPeriod, f.SyncPeriod, time.ParseDuration)
	parse(&errs, "logLevel", &s.LogLevel, f.LogLevel, parseLogLevel)
	parse(&errs, "logFormat", &s.LogFormat, f.LogFormat, parseLogFormat)
	if f.RegistryMirrors != nil {
		mirrors, err := parseRegistryMirrors(*f.RegistryMirrors)
		errs = append(errs, err)
		c.RegistryMirrors = mirrors
	}
	return errors.Join(errs...)
}

// set sets *dst to *v if the file gives the field.
func set[T any](dst *T, v *T) {
	if v != nil {
		*dst = *v
	}
}

// parse sets *dst to the value v parses into if the file gives the field, or adds the error,
// naming the field, to errs.
func parse[T any](errs *[]error, field string, dst *T, v *string, fn func(string) (T, error)) {
	if v == nil {
		return
	}
	x, err := fn(*v)
	if err != nil {
		*errs = append(*errs, fmt.Errorf("%s: %w", field, err))
		return
	}
	*dst = x
}

// parseRegistryMirrors checks each mirror of the file's registryMirrors as the --registry-mirror
// flag does, and normalizes it the same way.
func parseRegistryMirrors(in map[string][]string) (map[string][]string, error) {
	out := make(map[string][]string, len(in))
	var errs []error
	for _, host := range slices.Sorted(maps.Keys(in)) {
		for i, m := range in[host] {
			_, endpoint, err := runtime.ParseRegistryMirror(host + "=" + m)
			if err != nil {
				errs = append(errs, fmt.Errorf("registryMirrors[%q][%d]: %w", host, i, err))
				continue
			}
			out[host] = append(out[host], endpoint)
		}
	}
	return out, errors.Join(errs...)
}
