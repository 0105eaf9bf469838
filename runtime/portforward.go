package runtime

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	goruntime "runtime"
	"strconv"

	"github.com/vishvananda/netns"
)

// PortForward connects stream to port on the loopback of the pod network namespace at netnsPath,
// and copies both ways: it returns once the pod's side has sent everything (after the client
// half-closed, the pod may still answer), the copy fails, or ctx ends. It closes its connection
// and stream before returning; the caller owns any further teardown of stream, which may leave a
// copy from stream blocked on Read until then.
func PortForward(ctx context.Context, netnsPath string, port int32, stream io.ReadWriteCloser) error {
	if port <= 0 || port > 65535 {
		return fmt.Errorf("port-forward to %s: invalid port %d", netnsPath, port)
	}
	conn, err := dialInNetNS(netnsPath, port)
	if err != nil {
		return err
	}
	defer conn.Close()
	defer stream.Close()

	toPod := make(chan error, 1)
	fromPod := make(chan error, 1)
	go func() {
		_, err := io.Copy(conn, stream)
		if err == nil {
			// The client has sent everything: pass its half-close on and keep the way back open.
			err = conn.CloseWrite()
		}
		toPod <- err
	}()
	go func() {
		_, err := io.Copy(stream, conn)
		fromPod <- err
	}()
	for {
		select {
		case err := <-toPod:
			if err != nil {
				return fmt.Errorf("port-forward to port %d in %s: copy to the pod: %w", port, netnsPath, err)
			}
			toPod = nil // half-closed: wait for the pod's answer
		case err := <-fromPod:
			if err != nil {
				return fmt.Errorf("port-forward to port %d in %s: copy from the pod: %w", port, netnsPath, err)
			}
			return nil
		case <-ctx.Done():
			return fmt.Errorf("port-forward to port %d in %s: %w", port, netnsPath, ctx.Err())
		}
	}
}

// dialInNetNS connects to port on 127.0.0.1, else [::1], inside the network namespace at path.
//
// A socket belongs to the namespace of the thread that created it, so the dial runs on a locked
// OS thread switched into the pod's namespace; the connection is then usable from any goroutine.
// As containerd's CRI does, tcp4 and tcp6 are dialled one after the other with literal
// addresses: a "tcp" dial to a name resolving to both would race them from other goroutines
// (Happy Eyeballs), whose threads are in the agent's namespace. The thread is never unlocked, so
// Go discards it when the goroutine ends and nothing else ever runs in the pod's namespace.
func dialInNetNS(path string, port int32) (*net.TCPConn, error) {
	type result struct {
		conn *net.TCPConn
		err  error
	}
	resc := make(chan result, 1)
	go func() {
		goruntime.LockOSThread()
		// Deliberately no UnlockOSThread: see the doc comment.
		h, err := netns.GetFromPath(path)
		if err != nil {
			resc <- result{err: fmt.Errorf("open network namespace %s: %w", path, err)}
			return
		}
		defer h.Close()
		if err := netns.Set(h); err != nil {
			resc <- result{err: fmt.Errorf("enter network namespace %s: %w", path, err)}
			return
		}
		p := strconv.Itoa(int(port))
		c, err4 := net.Dial("tcp4", net.JoinHostPort("127.0.0.1", p))
		if err4 == nil {
			resc <- result{conn: c.(*net.TCPConn)}
			return
		}
		c, err6 := net.Dial("tcp6", net.JoinHostPort("::1", p))
		if err6 == nil {
			resc <- result{conn: c.(*net.TCPConn)}
			return
		}
		resc <- result{err: fmt.Errorf("connect to port %d in network namespace %s: %w", port, path, errors.Join(err4, err6))}
	}()
	res := <-resc
	return res.conn, res.err
}
