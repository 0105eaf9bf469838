package runtime_test

import (
	"slices"
	"testing"

	"github.com/podagent/podagent/internal/testenv"
	"github.com/podagent/podagent/netns"
)

// A network namespace and an IP reservation with no sandbox container (what a CNI plugin that
// outlived a killed agent leaves) are released; a live pod's network is left alone.
func TestCollectNetworks(t *testing.T) {
	rt := testenv.NewRuntime(t)
	rp, err := rt.RunPod(rt.Ctx, newPod("kept", busybox("c", "sleep", "3600")))
	if err != nil {
		t.Fatal(err)
	}
	net := rt.Runtime.Network()
	orphan := "0123456789abcdef-orphan"
	att, err := net.Setup(rt.Ctx, orphan, netns.Pod{Namespace: "default", Name: "gone", UID: "gone-uid"})
	if err != nil {
		t.Fatal(err)
	}
	res, err := net.Reservations()
	if err != nil {
		t.Fatal(err)
	}
	if res[att.IPs[0].String()] != orphan {
		t.Fatalf("orphan's IP %s not reserved before the collection: %v", att.IPs[0], res)
	}

	if err := rt.CollectNetworks(rt.Ctx); err != nil {
		t.Fatal(err)
	}
	ids, err := net.Sandboxes()
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(ids, []string{rp.Sandbox.ID}) {
		t.Errorf("network namespaces after the collection: %v, want only the live sandbox %s", ids, rp.Sandbox.ID)
	}
	res, err = net.Reservations()
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{rp.Sandbox.IPs[0]: rp.Sandbox.ID}
	if len(res) != 1 || res[rp.Sandbox.IPs[0]] != rp.Sandbox.ID {
		t.Errorf("IP reservations after the collection: %v, want %v", res, want)
	}
	sbs, err := rt.PodSandboxes(rt.Ctx, rp.Sandbox.Pod.UID)
	if err != nil {
		t.Fatal(err)
	}
	if len(sbs) != 1 || !sbs[0].Ready() {
		t.Errorf("the live pod's sandbox after the collection: %+v", sbs)
	}
}
