package client

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// mosquittoPath finds the broker binary.
func mosquittoPath() string {
	if p, err := exec.LookPath("mosquitto"); err == nil {
		return p
	}
	if _, err := os.Stat("/usr/sbin/mosquitto"); err == nil {
		return "/usr/sbin/mosquitto"
	}
	return ""
}

// requireMosquitto skips the test when mosquitto is missing, or fails it
// when CI=true.
func requireMosquitto(tb testing.TB) string {
	tb.Helper()
	p := mosquittoPath()
	if p == "" {
		if os.Getenv("CI") == "true" {
			tb.Fatal("mosquitto not found (install the Debian package mosquitto; scripts/install-peers.sh does)")
		}
		tb.Skip("mosquitto not found: install it (apt-get install mosquitto) to run the broker tests")
	}
	return p
}

// broker is a mosquitto process listening on 127.0.0.1 on a port of its own.
type broker struct {
	tb    testing.TB
	bin   string
	dir   string
	conf  string
	port  int
	mu    sync.Mutex
	cmd   *exec.Cmd
	exitc chan struct{}
}

// startBroker starts mosquitto with the base configuration plus extra
// configuration lines. It is stopped when the test ends.
func startBroker(tb testing.TB, extra ...string) *broker {
	tb.Helper()
	bin := requireMosquitto(tb)
	b := &broker{tb: tb, bin: bin, dir: tb.TempDir(), port: freePort(tb)}
	lines := []string{
		fmt.Sprintf("listener %d 127.0.0.1", b.port),
		"allow_anonymous true",
		"user root",
		"log_dest stderr",
		"log_type error",
		"log_type warning",
	}
	persistence := false
	for _, l := range extra {
		if strings.HasPrefix(l, "persistence true") {
			persistence = true
		}
	}
	if !persistence {
		lines = append(lines, "persistence false")
	} else {
		lines = append(lines, "persistence_location "+b.dir+"/")
	}
	lines = append(lines, extra...)
	b.conf = filepath.Join(b.dir, "mosquitto.conf")
	if err := os.WriteFile(b.conf, []byte(strings.Join(lines, "\n")+"\n"), 0o600); err != nil {
		tb.Fatal(err)
	}
	b.start()
	tb.Cleanup(b.kill)
	return b
}

func freePort(tb testing.TB) int {
	tb.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func (b *broker) addr() string { return fmt.Sprintf("127.0.0.1:%d", b.port) }
func (b *broker) url() string  { return "mqtt://" + b.addr() }

// start launches the process and waits until the port accepts.
func (b *broker) start() {
	b.tb.Helper()
	logf, err := os.OpenFile(filepath.Join(b.dir, "mosquitto.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		b.tb.Fatal(err)
	}
	cmd := exec.Command(b.bin, "-c", b.conf)
	cmd.Stdout, cmd.Stderr = logf, logf // files: no copying goroutines
	if err := cmd.Start(); err != nil {
		logf.Close()
		b.tb.Fatal(err)
	}
	logf.Close()
	exitc := make(chan struct{})
	go func() { cmd.Wait(); close(exitc) }()
	b.mu.Lock()
	b.cmd, b.exitc = cmd, exitc
	b.mu.Unlock()
	if err := waitPort(b.addr(), exitc); err != nil {
		log, _ := os.ReadFile(filepath.Join(b.dir, "mosquitto.log"))
		b.tb.Fatalf("mosquitto did not start: %v\n%s", err, log)
	}
}

// waitPort polls until addr accepts a TCP connection.
func waitPort(addr string, exited <-chan struct{}) error {
	deadline := time.Now().Add(15 * time.Second)
	for delay := time.Millisecond; ; delay = min(2*delay, 50*time.Millisecond) {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			return nil
		}
		select {
		case <-exited:
			return errors.New("process exited")
		case <-time.After(delay):
		}
		if time.Now().After(deadline) {
			return err
		}
	}
}

// signal stops the process with sig and waits for it to exit.
func (b *broker) signal(sig os.Signal) {
	b.mu.Lock()
	cmd, exitc := b.cmd, b.exitc
	b.cmd = nil
	b.mu.Unlock()
	if cmd == nil {
		return
	}
	cmd.Process.Signal(sig)
	<-exitc
}

func (b *broker) kill()      { b.signal(syscall.SIGKILL) }
func (b *broker) terminate() { b.signal(syscall.SIGTERM) }

// waitFor polls cond until it holds, failing the test after timeout.
func waitFor(tb testing.TB, timeout time.Duration, what string, cond func() bool, state ...func() string) {
	tb.Helper()
	deadline := time.Now().Add(timeout)
	for delay := time.Millisecond; !cond(); delay = min(2*delay, 20*time.Millisecond) {
		if time.Now().After(deadline) {
			var s string
			for _, f := range state {
				s += " " + f()
			}
			tb.Fatalf("timed out after %v waiting for %s%s", timeout, what, s)
		}
		time.Sleep(delay)
	}
}

// recv waits for a value on ch.
func recv[T any](tb testing.TB, ch <-chan T, what string) T {
	tb.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(10 * time.Second):
		tb.Fatalf("timed out waiting for %s", what)
	}
	var zero T
	return zero
}

func testCtx(tb testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	tb.Cleanup(cancel)
	return ctx
}

// connect creates and connects a client, disconnecting it at cleanup.
func connect(tb testing.TB, o Options) (*Client, *ConnectInfo) {
	tb.Helper()
	c, err := New(o)
	if err != nil {
		tb.Fatal(err)
	}
	info, err := c.Connect(testCtx(tb))
	if err != nil {
		tb.Fatalf("connect %s: %v", o.Server, err)
	}
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		c.Disconnect(ctx, 0, KeepSessionExpiry)
	})
	return c, info
}

// proxy is a TCP proxy that a test can freeze (stop forwarding in both
// directions without closing anything, like a dead network) or cut.
type proxy struct {
	l       net.Listener
	address string
	target  string
	mu      sync.Mutex
	frozen  bool
	thaw    chan struct{}
	conns   []net.Conn
	wg      sync.WaitGroup
}

func startProxy(tb testing.TB, target string) *proxy {
	tb.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	p := &proxy{l: l, address: l.Addr().String(), target: target, thaw: make(chan struct{})}
	p.wg.Add(1)
	go p.accept(l)
	tb.Cleanup(p.close)
	return p
}

func (p *proxy) addr() string { return p.address }
func (p *proxy) url() string  { return "mqtt://" + p.address }

func (p *proxy) accept(l net.Listener) {
	defer p.wg.Done()
	for {
		c, err := l.Accept()
		if err != nil {
			return
		}
		s, err := net.Dial("tcp", p.target)
		if err != nil {
			c.Close()
			continue
		}
		p.mu.Lock()
		p.conns = append(p.conns, c, s)
		p.mu.Unlock()
		p.wg.Add(2)
		go p.pipe(c, s)
		go p.pipe(s, c)
	}
}

func (p *proxy) pipe(dst, src net.Conn) {
	defer p.wg.Done()
	defer dst.Close()
	defer src.Close()
	buf := make([]byte, 32<<10)
	for {
		p.mu.Lock()
		frozen, thaw := p.frozen, p.thaw
		p.mu.Unlock()
		if frozen {
			<-thaw
			continue
		}
		n, err := src.Read(buf)
		if n > 0 {
			p.mu.Lock()
			frozen, thaw = p.frozen, p.thaw
			p.mu.Unlock()
			if frozen {
				<-thaw // data read while freezing is held until thawed
			}
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// freeze stops forwarding; bytes stay in socket buffers.
func (p *proxy) freeze() {
	p.mu.Lock()
	p.frozen = true
	p.mu.Unlock()
}

// cut closes every proxied connection (the listener stays).
func (p *proxy) cut() {
	p.mu.Lock()
	conns := p.conns
	p.conns = nil
	if p.frozen {
		p.frozen = false
		close(p.thaw)
		p.thaw = make(chan struct{})
	}
	p.mu.Unlock()
	for _, c := range conns {
		c.Close()
	}
}

// down closes the listener and every connection: connecting fails.
func (p *proxy) down() {
	p.mu.Lock()
	l := p.l
	p.mu.Unlock()
	l.Close()
	p.cut()
}

// up listens again on the same address.
func (p *proxy) up(tb testing.TB) {
	tb.Helper()
	var l net.Listener
	var err error
	waitFor(tb, 5*time.Second, "proxy port", func() bool {
		l, err = net.Listen("tcp", p.address)
		return err == nil
	})
	p.mu.Lock()
	p.l = l
	p.mu.Unlock()
	p.wg.Add(1)
	go p.accept(l)
}

func (p *proxy) close() {
	p.down()
	p.wg.Wait()
}

// fakeServer accepts one connection at a time and runs script on it.
type fakeServer struct {
	l     net.Listener
	wg    sync.WaitGroup
	mu    sync.Mutex
	conns []net.Conn
}

func startFakeServer(tb testing.TB, script func(c net.Conn)) *fakeServer {
	tb.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	f := &fakeServer{l: l}
	f.wg.Add(1)
	go func() {
		defer f.wg.Done()
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			f.mu.Lock()
			f.conns = append(f.conns, c)
			f.mu.Unlock()
			f.wg.Add(1)
			go func() {
				defer f.wg.Done()
				defer c.Close()
				script(c)
			}()
		}
	}()
	tb.Cleanup(func() {
		l.Close()
		f.mu.Lock()
		for _, c := range f.conns {
			c.Close()
		}
		f.mu.Unlock()
		f.wg.Wait()
	})
	return f
}

func (f *fakeServer) addr() string { return f.l.Addr().String() }
