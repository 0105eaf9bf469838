package agent_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/podagent/podagent/internal/testenv"
)

// Issue 6, acceptance 4: /metrics exposes the named metrics in the Prometheus exposition format.
func TestMetrics(t *testing.T) {
	ta := startAgent(t, "node")
	srv := httptest.NewServer(newAPI(t, ta))
	defer srv.Close()
	ta.create(t, newPod("m", busybox("c", "sleep", "3600")))
	ta.waitPod(t, "default", "m", time.Minute, running)

	value := func(f *dto.MetricFamily) float64 {
		m := f.GetMetric()
		var sum float64
		for _, x := range m {
			switch {
			case x.GetGauge() != nil:
				sum += x.GetGauge().GetValue()
			case x.GetCounter() != nil:
				sum += x.GetCounter().GetValue()
			case x.GetHistogram() != nil:
				sum += float64(x.GetHistogram().GetSampleCount())
			}
		}
		return sum
	}
	testenv.Eventually(t, 30*time.Second, func() error {
		resp, err := http.Get(srv.URL + "/metrics")
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		parser := expfmt.NewTextParser(model.UTF8Validation)
		families, err := parser.TextToMetricFamilies(resp.Body)
		if err != nil {
			return fmt.Errorf("parse the exposition format: %v", err)
		}
		for name, atLeast := range map[string]float64{
			"podagent_pod_start_duration_seconds":  1, // a histogram: its sample count
			"podagent_pod_sync_duration_seconds":   1,
			"podagent_running_pods":                1,
			"podagent_running_containers":          1,
			"podagent_container_restarts_total":    0,
			"podagent_image_pulls_total":           1,
			"podagent_image_pull_duration_seconds": 1,
			"podagent_container_log_bytes":         0,
			"go_goroutines":                        1,
		} {
			f, ok := families[name]
			if !ok {
				return fmt.Errorf("metric %s is missing", name)
			}
			if v := value(f); v < atLeast {
				return fmt.Errorf("metric %s = %v, want at least %v", name, v, atLeast)
			}
		}
		return nil
	})
}
