// Package logs owns container logs: the kubelet's file layout, the CRI log format, rotation, and
// reading for kubectl logs.
package logs

import (
	"fmt"
	"path/filepath"
)

// PodDir is a pod's log directory, <dir>/<namespace>_<name>_<uid>, the kubelet's layout that log
// shippers (fluent-bit, promtail, vector) expect.
func PodDir(dir, namespace, name, uid string) string {
	return filepath.Join(dir, namespace+"_"+name+"_"+uid)
}

// Path is the log file of one instance of a container: <pod dir>/<container>/<restartCount>.log.
func Path(dir, namespace, name, uid, container string, restartCount int) string {
	return filepath.Join(PodDir(dir, namespace, name, uid), container, fmt.Sprintf("%d.log", restartCount))
}
