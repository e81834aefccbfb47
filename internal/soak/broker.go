package soak

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"time"
)

// Broker is an mqtt5 broker child process started by StartBroker.
type Broker struct {
	// URLs are the listener URLs by scheme (mqtt, mqtts, ws, wss, quic)
	// with the ports the broker bound.
	URLs map[string]string
	// PprofURL is the base URL of the profiles (http://127.0.0.1:port).
	PprofURL string
	PID      int
	Certs    Certs
	// Args are the broker's command-line arguments; LogFile its output.
	Args    []string
	LogFile string

	cmd  *exec.Cmd
	done chan error
}

// Schemes are the transports of the workload, one listener each.
var Schemes = []string{"mqtt", "mqtts", "ws", "wss", "quic"}

var (
	listeningRE = regexp.MustCompile(`msg=listening url=(\S+)`)
	pprofRE     = regexp.MustCompile(`msg="pprof listening" url=(\S+)/debug/pprof/`)
)

// StartBroker starts bin ("mqtt5") as "mqtt5 broker" with a listener of
// every transport on loopback (port 0), persistence in dir/data, the
// profiling endpoint on loopback, a throw-away certificate in dir, and
// extra arguments after those. Its output goes to dir/broker.log. It
// returns once every listener and the profiling endpoint are up.
func StartBroker(ctx context.Context, bin, dir string, extra ...string) (*Broker, error) {
	certs, err := WriteCerts(dir)
	if err != nil {
		return nil, err
	}
	args := []string{"broker",
		"--listen", "mqtt://127.0.0.1:0",
		"--listen", "mqtts://127.0.0.1:0",
		"--listen", "ws://127.0.0.1:0/mqtt",
		"--listen", "wss://127.0.0.1:0/mqtt",
		"--listen", "quic://127.0.0.1:0",
		"--tls-cert", certs.CertFile, "--tls-key", certs.KeyFile,
		"--data-dir", filepath.Join(dir, "data"),
		"--pprof-listen", "127.0.0.1:0",
		// The workload keeps every session's backlog far below this; a
		// bound that drops messages would be reported as loss.
		"--max-queued-messages", "100000",
	}
	args = append(args, extra...)
	logFile := filepath.Join(dir, "broker.log")
	lf, err := os.Create(logFile)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = lf, lf
	cmd.Env = brokerEnv()
	if err := cmd.Start(); err != nil {
		lf.Close()
		return nil, fmt.Errorf("start %s: %w", bin, err)
	}
	b := &Broker{URLs: map[string]string{}, PID: cmd.Process.Pid, Certs: certs, Args: args, LogFile: logFile, cmd: cmd, done: make(chan error, 1)}
	go func() {
		b.done <- cmd.Wait()
		lf.Close()
	}()
	wait := time.NewTicker(50 * time.Millisecond)
	defer wait.Stop()
	deadline := time.After(60 * time.Second)
	for {
		log, _ := os.ReadFile(logFile)
		for _, m := range listeningRE.FindAllStringSubmatch(string(log), -1) {
			scheme, _, _ := strings.Cut(m[1], "://")
			b.URLs[scheme] = m[1]
		}
		if m := pprofRE.FindStringSubmatch(string(log)); m != nil {
			b.PprofURL = m[1]
		}
		if len(b.URLs) == len(Schemes) && b.PprofURL != "" {
			return b, nil
		}
		select {
		case err := <-b.done:
			b.done <- err
			return nil, fmt.Errorf("broker exited (%v):\n%s", err, log)
		case <-deadline:
			b.Stop()
			return nil, fmt.Errorf("broker did not report its listeners within 60 s:\n%s", log)
		case <-ctx.Done():
			b.Stop()
			return nil, ctx.Err()
		case <-wait.C:
		}
	}
}

// brokerEnv is the environment without MQTT5_* variables, so that the
// command line alone configures the broker.
func brokerEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "MQTT5_") {
			env = append(env, kv)
		}
	}
	return env
}

// Stop ends the broker gracefully (SIGTERM), or with SIGKILL after 30 s,
// and returns its exit error.
func (b *Broker) Stop() error {
	b.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-b.done:
		b.done <- err
		return err
	case <-time.After(30 * time.Second):
		b.cmd.Process.Kill()
		err := <-b.done
		b.done <- err
		return errors.Join(errors.New("broker did not stop within 30 s of SIGTERM"), err)
	}
}
