// Package netfault is test-support code for network-fault tests: it makes
// Linux network namespaces, links them with impaired point-to-point links
// and opens sockets inside them from the test process.
//
// Two link kinds exist. A TUN link (NewTUNLink) works on every kernel with
// TUN support: each namespace gets a TUN device and a forwarder in the test
// process copies IP packets between the two file descriptors, applying a
// fixed delay (bounded queue, order kept), seeded random loss and a cut
// (drop everything), all switchable at run time. A veth link
// (NewVethLink) uses the kernel's netem queueing discipline, where the
// kernel has it (NetemAvailable).
//
// Everything made here is removed when the test ends (t.Cleanup, which
// also runs when the test panics). Namespace names carry the process id,
// so parallel test processes never collide, and namespaces left by a
// process that no longer exists (a killed earlier run) are removed the
// first time a namespace is made.
//
// The package needs root, the ip command (Debian iproute2) and
// /dev/net/tun. Require skips a test with the precise reason when one of
// them is missing.
package netfault

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"golang.org/x/sys/unix"
)

// namePrefix starts the name of every namespace this package makes.
const namePrefix = "mq5nf-"

// netnsDir is where ip netns keeps its namespace mounts.
const netnsDir = "/var/run/netns"

var (
	checkOnce sync.Once
	checkErr  error
	seq       atomic.Uint64
	staleOnce sync.Once
)

// Check reports why namespaces and TUN links cannot be used here, or nil
// when they can. The answer is computed once per process.
func Check() error {
	checkOnce.Do(func() { checkErr = check() })
	return checkErr
}

func check() error {
	if runtime.GOOS != "linux" {
		return fmt.Errorf("network namespaces need Linux (this is %s)", runtime.GOOS)
	}
	if os.Geteuid() != 0 {
		return fmt.Errorf("network namespaces need root (effective uid %d)", os.Geteuid())
	}
	if _, err := exec.LookPath("ip"); err != nil {
		return fmt.Errorf("the ip command (Debian package iproute2) is not installed: %w", err)
	}
	fd, err := unix.Open("/dev/net/tun", unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("cannot open /dev/net/tun (kernel without CONFIG_TUN, or no device node): %w", err)
	}
	unix.Close(fd)
	removeStale()
	name := fmt.Sprintf("%s%d-probe", namePrefix, os.Getpid())
	if out, err := exec.Command("ip", "netns", "add", name).CombinedOutput(); err != nil {
		return fmt.Errorf("ip netns add failed (no namespace support, or a sandbox forbids it): %v: %s", err, trim(out))
	}
	exec.Command("ip", "netns", "del", name).Run()
	return nil
}

// Require skips t, saying why, when namespaces and TUN links cannot be used.
func Require(t testing.TB) {
	t.Helper()
	if err := Check(); err != nil {
		t.Skipf("network-fault test skipped: %v", err)
	}
}

func trim(b []byte) string { return strings.TrimSpace(string(b)) }

// run runs a command and returns its combined output in the error.
func run(name string, args ...string) error {
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, trim(out))
	}
	return nil
}

// removeStale deletes the namespaces of this package whose process is gone.
func removeStale() {
	staleOnce.Do(func() {
		ents, err := os.ReadDir(netnsDir)
		if err != nil {
			return
		}
		for _, e := range ents {
			name := e.Name()
			if !strings.HasPrefix(name, namePrefix) {
				continue
			}
			pidStr, _, _ := strings.Cut(strings.TrimPrefix(name, namePrefix), "-")
			pid, err := strconv.Atoi(pidStr)
			if err != nil || pid == os.Getpid() || alive(pid) {
				continue
			}
			exec.Command("ip", "netns", "del", name).Run()
		}
	})
}

func alive(pid int) bool {
	err := unix.Kill(pid, 0)
	return err == nil || errors.Is(err, unix.EPERM)
}

// Netns is a network namespace made for one test.
type Netns struct {
	Name string
}

// NewNetns makes a namespace with its loopback up; it is deleted when the
// test ends. tag is part of the name (letters and digits, short).
func NewNetns(t testing.TB, tag string) *Netns {
	t.Helper()
	Require(t)
	name := fmt.Sprintf("%s%d-%d-%s", namePrefix, os.Getpid(), seq.Add(1), tag)
	if err := run("ip", "netns", "add", name); err != nil {
		t.Fatal(err)
	}
	n := &Netns{Name: name}
	t.Cleanup(func() {
		if err := run("ip", "netns", "del", name); err != nil {
			t.Errorf("netfault: %v", err)
		}
	})
	if err := n.IP("link", "set", "lo", "up"); err != nil {
		t.Fatal(err)
	}
	return n
}

// IP runs "ip -n NAME args...".
func (n *Netns) IP(args ...string) error {
	return run("ip", append([]string{"-n", n.Name}, args...)...)
}

// Exec returns a command that runs name inside the namespace
// (ip netns exec).
func (n *Netns) Exec(ctx context.Context, name string, args ...string) *exec.Cmd {
	return exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", n.Name, name}, args...)...)
}

// Do runs fn on an operating-system thread that has entered the namespace.
// Sockets fn opens belong to the namespace for their whole life, whichever
// goroutine uses them later. The thread is never reused: it ends with fn.
// fn must not start goroutines that open sockets (they would run on other
// threads, in the test process's own namespace).
func (n *Netns) Do(fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		// No UnlockOSThread: when this goroutine returns while locked the
		// runtime ends the thread, so it never goes back to the pool in
		// the wrong namespace.
		runtime.LockOSThread()
		fd, err := unix.Open(filepath.Join(netnsDir, n.Name), unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			errc <- fmt.Errorf("netfault: open namespace %s: %w", n.Name, err)
			return
		}
		err = unix.Setns(fd, unix.CLONE_NEWNET)
		unix.Close(fd)
		if err != nil {
			errc <- fmt.Errorf("netfault: enter namespace %s: %w", n.Name, err)
			return
		}
		errc <- fn()
	}()
	return <-errc
}

// Listen opens a listener inside the namespace.
func (n *Netns) Listen(network, addr string) (net.Listener, error) {
	var l net.Listener
	err := n.Do(func() (err error) {
		l, err = net.Listen(network, addr)
		return err
	})
	return l, err
}

// DialContext opens a connection from inside the namespace. addr must be
// an IP literal with a port (no name resolution inside Do).
func (n *Netns) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	var c net.Conn
	err := n.Do(func() (err error) {
		var d net.Dialer
		c, err = d.DialContext(ctx, network, addr)
		return err
	})
	return c, err
}

// ReadFile reads a file as seen from inside the namespace; use
// /proc/thread-self/net/... for the namespace's network statistics.
func (n *Netns) ReadFile(path string) ([]byte, error) {
	var b []byte
	err := n.Do(func() (err error) {
		b, err = os.ReadFile(path)
		return err
	})
	return b, err
}

// TCPStats are counters of the namespace's TCP stack (/proc/net/snmp).
type TCPStats struct {
	OutSegs, RetransSegs uint64
}

// TCPStats reads the namespace's TCP segment counters.
func (n *Netns) TCPStats() (TCPStats, error) {
	b, err := n.ReadFile("/proc/thread-self/net/snmp")
	if err != nil {
		return TCPStats{}, err
	}
	var names, values []string
	for line := range strings.Lines(string(b)) {
		f := strings.Fields(line)
		if len(f) == 0 || f[0] != "Tcp:" {
			continue
		}
		if names == nil {
			names = f
		} else {
			values = f
		}
	}
	var s TCPStats
	for i := 1; i < len(names) && i < len(values); i++ {
		v, _ := strconv.ParseUint(values[i], 10, 64)
		switch names[i] {
		case "OutSegs":
			s.OutSegs = v
		case "RetransSegs":
			s.RetransSegs = v
		}
	}
	return s, nil
}
