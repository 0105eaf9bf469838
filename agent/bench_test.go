package agent_test

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// BenchmarkStaticPodStart measures the time from a manifest landing in the manifest directory to
// its pod being Running with its container started: the "runs within 1 s". Each iteration
// is a new pod (busybox, pulled through the local mirror under pull policy Always).
func BenchmarkStaticPodStart(b *testing.B) {
	ta := startAgent(b, "node")
	var total time.Duration
	for i := range b.N {
		name := fmt.Sprintf("bench%d", i)
		manifest := fmt.Sprintf(`apiVersion: v1
kind: Pod
metadata:
  name: %s
spec:
  terminationGracePeriodSeconds: 0
  containers:
  - name: main
    image: busybox
    command: ["sleep", "3600"]
`, name)
		fromRV := ta.store().ResourceVersion()
		start := time.Now()
		ta.writeManifest(b, name+".yaml", manifest)
		ta.waitPodSince(b, "default", name+"-node", fromRV, time.Minute, running)
		total += time.Since(start)
		b.StopTimer()
		if err := os.Remove(filepath.Join(ta.cfg.ManifestDir, name+".yaml")); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
	}
	b.ReportMetric(float64(total.Milliseconds())/float64(b.N), "ms/pod")
}
