package netns_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netlink"

	"github.com/podagent/podagent/internal/testenv"
	"github.com/podagent/podagent/netns"
)

func TestSetupTeardownLeavesNothing(t *testing.T) {
	testenv.RequireNetwork(t)
	ctx := context.Background()
	opts := testenv.NetworkOptions(t.TempDir())
	n, err := netns.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := n.Destroy(); err != nil {
			t.Error(err)
		}
		testenv.AssertNoNATRules(t, opts.Name)
	})
	pod := netns.Pod{Namespace: "default", Name: "p", UID: "uid-1"}

	a, err := n.Setup(ctx, "sandbox-a", pod)
	if err != nil {
		t.Fatal(err)
	}
	b, err := n.Setup(ctx, "sandbox-b", pod)
	if err != nil {
		t.Fatal(err)
	}
	_, subnet, _ := net.ParseCIDR(opts.Subnet)
	if !subnet.Contains(a.IPs[0]) || a.IPs[0].Equal(b.IPs[0]) {
		t.Fatalf("IPs %v and %v: want two different addresses in %s", a.IPs, b.IPs, opts.Subnet)
	}
	if !netns.IsMounted(a.Path) {
		t.Fatalf("%s is not a mounted network namespace", a.Path)
	}
	// a reaches b across the bridge: listen inside b, dial from inside a.
	var ln net.Listener
	if err := testenv.InNetNS(b.Path, func() (err error) {
		ln, err = net.Listen("tcp4", net.JoinHostPort(b.IPs[0].String(), "0"))
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		if c, err := ln.Accept(); err == nil {
			_, _ = c.Write([]byte("hello"))
			c.Close()
		}
	}()
	if err := testenv.InNetNS(a.Path, func() error {
		c, err := net.DialTimeout("tcp4", ln.Addr().String(), 5*time.Second)
		if err != nil {
			return err
		}
		defer c.Close()
		got, err := io.ReadAll(c)
		if string(got) != "hello" {
			return fmt.Errorf("read %q, %v: want hello", got, err)
		}
		return nil
	}); err != nil {
		t.Fatalf("sandbox-a to sandbox-b over the bridge: %v", err)
	}
	res, err := n.Reservations()
	if err != nil {
		t.Fatal(err)
	}
	if res[a.IPs[0].String()] != "sandbox-a" || res[b.IPs[0].String()] != "sandbox-b" {
		t.Fatalf("reservations %v: want both sandboxes", res)
	}

	for _, id := range []string{"sandbox-a", "sandbox-b"} {
		if err := n.Teardown(ctx, id, pod); err != nil {
			t.Fatal(err)
		}
	}
	// Teardown is idempotent: a retry after a crash must not fail.
	if err := n.Teardown(ctx, "sandbox-a", pod); err != nil {
		t.Fatalf("second teardown: %v", err)
	}
	assertNothingLeft(t, n, a.Path, b.Path)
}

func TestTeardownAfterNamespaceVanished(t *testing.T) {
	testenv.RequireNetwork(t)
	ctx := context.Background()
	opts := testenv.NetworkOptions(t.TempDir())
	n, err := netns.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := n.Destroy(); err != nil {
			t.Error(err)
		}
		testenv.AssertNoNATRules(t, opts.Name)
	})
	pod := netns.Pod{Namespace: "default", Name: "p", UID: "uid-2"}
	a, err := n.Setup(ctx, "sandbox-gone", pod)
	if err != nil {
		t.Fatal(err)
	}
	// Someone (a reboot, an operator) removed the namespace: DEL must still free the IP.
	if err := netns.Remove(a.Path); err != nil {
		t.Fatal(err)
	}
	if err := n.Teardown(ctx, "sandbox-gone", pod); err != nil {
		t.Fatal(err)
	}
	assertNothingLeft(t, n, a.Path)
}

func assertNothingLeft(t *testing.T, n *netns.Network, paths ...string) {
	t.Helper()
	res, err := n.Reservations()
	if err != nil {
		t.Fatal(err)
	}
	if len(res) != 0 {
		t.Errorf("IP reservations left: %v", res)
	}
	for _, p := range paths {
		if _, err := os.Stat(p); !os.IsNotExist(err) {
			t.Errorf("network namespace file %s left behind (stat: %v)", p, err)
		}
	}
	mounts, _ := os.ReadFile("/proc/self/mountinfo")
	for _, p := range paths {
		if strings.Contains(string(mounts), p) {
			t.Errorf("mount %s left behind", p)
		}
	}
	// When the namespace went before CNI DEL, the kernel removes the veth as it destroys the
	// namespace, which it does in the background: poll.
	testenv.Eventually(t, 10*time.Second, func() error {
		links, _ := netlink.LinkList()
		for _, l := range links {
			if l.Type() == "veth" {
				if br, err := netlink.LinkByIndex(l.Attrs().MasterIndex); err == nil && br.Attrs().Name == n.Config().Bridge {
					return fmt.Errorf("veth %s left on bridge %s", l.Attrs().Name, br.Attrs().Name)
				}
			}
		}
		return nil
	})
}
