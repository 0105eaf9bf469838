package agent_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/podagent/podagent/apiserver"
	"github.com/podagent/podagent/internal/testenv"
)

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

// Issue 4: the pods/log subresource, with the kubelet's options and the apiserver's errors.
func TestPodLogAPI(t *testing.T) {
	ta := startAgent(t, "node")
	srv := httptest.NewServer(newAPI(t, ta))
	defer srv.Close()
	ta.create(t, newPod("two",
		busybox("a", "sh", "-c", "for i in 1 2 3 4 5; do echo $i; done; sleep 3600"),
		busybox("b", "sh", "-c", "i=0; while true; do echo tick $i; i=$((i+1)); usleep 100000; done"),
	))
	ta.waitPod(t, "default", "two", 30*time.Second, running)
	base := srv.URL + "/api/v1/namespaces/default/pods/two/log"
	testenv.Eventually(t, 10*time.Second, func() error {
		if _, body := get(t, base+"?container=a"); body != "1\n2\n3\n4\n5\n" {
			return fmt.Errorf("log of a: %q", body)
		}
		return nil
	})

	status := func(code int, body string) metav1.Status {
		var st metav1.Status
		if err := json.Unmarshal([]byte(body), &st); err != nil || st.Kind != "Status" || int(st.Code) != code {
			t.Errorf("answer %d %q, want a Status with code %d", code, body, st.Code)
		}
		return st
	}
	tests := []struct {
		name, query string
		code        int
		want        string // the body, or the Status message
	}{
		{"tail", "?container=a&tailLines=2", 200, "4\n5\n"},
		{"tail zero", "?container=a&tailLines=0", 200, ""},
		{"limitBytes", "?container=a&limitBytes=3", 200, "1\n2"},
		{"since the future", "?container=a&sinceTime=" + time.Now().Add(time.Hour).UTC().Format(time.RFC3339), 200, ""},
		{"since an hour", "?container=a&sinceSeconds=3600", 200, "1\n2\n3\n4\n5\n"},
		{"no container", "", 400, "a container name must be specified for pod two, choose one of: [a b]"},
		{"unknown container", "?container=zzz", 400, "container zzz is not valid for pod two"},
		{"no previous", "?container=a&previous=true", 400, `previous terminated container "a" in pod "two" not found`},
		{"bad tail", "?container=a&tailLines=x", 400, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			code, body := get(t, base+tc.query)
			if code != tc.code {
				t.Fatalf("code %d (%s), want %d", code, body, tc.code)
			}
			if code != 200 {
				if st := status(code, body); tc.want != "" && st.Message != tc.want {
					t.Errorf("message %q, want %q", st.Message, tc.want)
				}
				return
			}
			if body != tc.want {
				t.Errorf("body %q, want %q", body, tc.want)
			}
		})
	}
	if code, body := get(t, srv.URL+"/api/v1/namespaces/default/pods/nope/log"); code != 404 {
		t.Errorf("log of a missing pod: %d %s, want 404", code, body)
	}
	code, body := get(t, base+"?container=a&timestamps=true")
	stamped := regexp.MustCompile(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z \d$`)
	for _, line := range strings.Split(strings.TrimSuffix(body, "\n"), "\n") {
		if code != 200 || !stamped.MatchString(line) {
			t.Errorf("timestamped line %q (%d)", line, code)
		}
	}

	// Follow: new lines arrive while the container runs.
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, base+"?container=b&follow=true&tailLines=1", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	var first, prev int
	for i := 0; i < 5 && sc.Scan(); i++ {
		var n int
		if _, err := fmt.Sscanf(sc.Text(), "tick %d", &n); err != nil {
			t.Fatalf("followed line %q", sc.Text())
		}
		if i == 0 {
			first = n
		} else if n != prev+1 {
			t.Fatalf("followed tick %d after %d", n, prev)
		}
		prev = n
	}
	if prev != first+4 {
		t.Fatalf("follow delivered ticks %d..%d (%v)", first, prev, sc.Err())
	}
}

// --previous reads the instance before the current one, once the container has restarted.
func TestPodLogPrevious(t *testing.T) {
	ta := startAgent(t, "node")
	srv := httptest.NewServer(newAPI(t, ta))
	defer srv.Close()
	p := newPod("crash", busybox("c", "sh", "-c", "echo started $(cat /proc/sys/kernel/random/uuid); exit 1"))
	p.Spec.RestartPolicy = corev1.RestartPolicyAlways
	ta.create(t, p)
	ta.waitPod(t, "default", "crash", time.Minute, func(p *corev1.Pod) error {
		if cs := containerStatus(p, "c"); cs.RestartCount < 1 {
			return fmt.Errorf("%s", describeContainers(p))
		}
		return nil
	})
	base := srv.URL + "/api/v1/namespaces/default/pods/crash/log"
	var cur, prev string
	testenv.Eventually(t, 10*time.Second, func() error {
		var code int
		code, prev = get(t, base+"?previous=true")
		if code != 200 || !strings.HasPrefix(prev, "started ") {
			return fmt.Errorf("previous: %d %q", code, prev)
		}
		code, cur = get(t, base)
		if code != 200 || !strings.HasPrefix(cur, "started ") {
			return fmt.Errorf("current: %d %q", code, cur)
		}
		return nil
	})
	if cur == prev {
		out, _ := exec.Command("sh", "-c", "cd "+ta.cfg.LogDir+" && find . -type f | xargs -r grep -H . ; ctr -n "+ta.cfg.ContainerdNamespace+" c ls").CombinedOutput()
		t.Errorf("previous and current logs are the same: %q\n%s", cur, out)
	}
}

func newAPI(t *testing.T, ta *testAgent) *apiserver.Server {
	t.Helper()
	return ta.n.ControlPlane.Server()
}
