package controlplane

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"time"
)

// process is one control-plane component run in a process group of its own, its output in a
// log file.
type process struct {
	name    string
	cmd     *exec.Cmd
	logFile string
	exited  chan struct{} // closed once Wait returns
	waitErr error
}

func startProcess(name, logDir, bin string, args ...string) (*process, error) {
	logFile := filepath.Join(logDir, name+".log")
	f, err := os.OpenFile(logFile, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = f, f
	cmd.SysProcAttr = &syscall.SysProcAttr{
		// A group of its own, so Stop can signal everything the component started.
		Setpgid: true,
		// A safety net for a test binary killed before its cleanups run (go test's timeout
		// panics and exits): the kernel then kills the component too.
		Pdeathsig: syscall.SIGKILL,
	}
	// Pdeathsig fires when the OS thread that started the process exits, not the test process:
	// Go ends threads that a goroutine locked (as the agent's network namespace work does), so a
	// thread of the pool would kill the component at a random moment. The process is started
	// from a thread of its own, locked until the process has exited.
	p := &process{name: name, cmd: cmd, logFile: logFile, exited: make(chan struct{})}
	started := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread ends with this goroutine
		if err := cmd.Start(); err != nil {
			started <- err
			return
		}
		started <- nil
		p.waitErr = cmd.Wait()
		f.Close()
		close(p.exited)
	}()
	if err := <-started; err != nil {
		f.Close()
		return nil, fmt.Errorf("start %s (%s): %w", name, bin, err)
	}
	return p, nil
}

// running reports an error if the process has exited.
func (p *process) running() error {
	select {
	case <-p.exited:
		return fmt.Errorf("%s exited: %v; its log:\n%s", p.name, p.waitErr, tail(p.logFile, 40))
	default:
		return nil
	}
}

// stop sends SIGTERM to the process group, then SIGKILL after grace, and waits for the leader
// to be reaped. It reports an error if any member of the group survives.
func (p *process) stop(grace time.Duration) error {
	pgid := p.cmd.Process.Pid // Setpgid: the group id is the leader's pid
	_ = syscall.Kill(-pgid, syscall.SIGTERM)
	select {
	case <-p.exited:
	case <-time.After(grace):
		_ = syscall.Kill(-pgid, syscall.SIGKILL)
		<-p.exited
	}
	// The leader is gone; kill whatever else it left in its group.
	if err := syscall.Kill(-pgid, syscall.SIGKILL); err == nil {
		deadline := time.Now().Add(5 * time.Second)
		for syscall.Kill(-pgid, 0) == nil {
			if time.Now().After(deadline) {
				return fmt.Errorf("%s: processes of group %d survive SIGKILL", p.name, pgid)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	return nil
}

// tail returns the last n lines of a file, or a note that it cannot be read.
func tail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Sprintf("(%v)", err)
	}
	lines := bytes.Split(bytes.TrimRight(b, "\n"), []byte("\n"))
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return string(bytes.Join(lines, []byte("\n")))
}

// Leftovers lists the processes (pid and command line) whose command line names a path under
// dir: every component of a cluster names files in its own temporary directory in its flags, so
// after Stop this is empty unless something escaped.
func Leftovers(dir string) ([]string, error) {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil, err
	}
	self := fmt.Sprint(os.Getpid())
	var found []string
	for _, e := range entries {
		if e.Name() == self || e.Name()[0] < '0' || e.Name()[0] > '9' {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil {
			if errors.Is(err, os.ErrNotExist) || errors.Is(err, syscall.ESRCH) {
				continue // exited meanwhile
			}
			return nil, err
		}
		cmdline := strings.TrimSpace(string(bytes.ReplaceAll(b, []byte{0}, []byte{' '})))
		if strings.Contains(cmdline, dir+"/") { // not a sibling such as .../0010 of .../001
			found = append(found, e.Name()+": "+cmdline)
		}
	}
	return found, nil
}
