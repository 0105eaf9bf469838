package runtime

import (
	"os"
	"path/filepath"

	"github.com/containerd/containerd/v2/pkg/cio"

	"github.com/podagent/podagent/logs/driver"
)

// LoggerName is the lean log driver's binary (cmd/podagent-logger).
const LoggerName = "podagent-logger"

// logDriverIO is the containerd IO of a container whose output the driver at binary writes.
func logDriverIO(binary string, s driver.Settings) cio.Creator {
	return cio.BinaryIO(binary, s.Args())
}

// resolveLogDriver is the binary the shims run for container logs: podagent-logger when it is
// installed beside the configured driver (the agent's own binary by default), else the configured
// driver itself, which serves as one too. One driver runs per container: the lean one costs about
// 2 MiB where the agent's binary costs over 20.
func resolveLogDriver(configured string) string {
	if configured == "" || filepath.Base(configured) == LoggerName {
		return configured
	}
	lean := filepath.Join(filepath.Dir(configured), LoggerName)
	if fi, err := os.Stat(lean); err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0 {
		return lean
	}
	return configured
}
