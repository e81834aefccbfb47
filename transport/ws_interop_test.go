package transport_test

// Interoperability of the WebSocket transport with real peers: MQTT.js
// under Node (test/node/ws.mjs), MQTT.js in a page of headless Chromium
// (test/node/browser), and Mosquitto's websockets listener. A missing peer
// program skips the test, or fails it when CI=true; scripts/install-peers.sh
// installs them.

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/mqtt5go/mqtt5/broker"
	"github.com/mqtt5go/mqtt5/client"
	"github.com/mqtt5go/mqtt5/packet"
	"github.com/mqtt5go/mqtt5/transport"
)

// wsNodeDir is test/node relative to this package's directory, where go
// test runs.
const wsNodeDir = "../test/node"

// wsMissing fails under CI and skips otherwise: a peer program is absent.
func wsMissing(t testing.TB, format string, args ...any) {
	t.Helper()
	msg := fmt.Sprintf(format, args...)
	if os.Getenv("CI") == "true" {
		t.Fatalf("%s (CI=true: interop peers are required; run scripts/install-peers.sh)", msg)
	}
	t.Skipf("%s; skipping (run scripts/install-peers.sh to install the interop peers)", msg)
}

// wsNode returns the node binary, checking that MQTT.js is installed.
func wsNode(t testing.TB) string {
	t.Helper()
	node, err := exec.LookPath("node")
	if err != nil {
		wsMissing(t, "node is not installed")
	}
	if _, err := os.Stat(filepath.Join(wsNodeDir, "node_modules", "mqtt", "package.json")); err != nil {
		wsMissing(t, "MQTT.js is not installed in test/node (npm install there)")
	}
	return node
}

// wsJSResult is the JSON line a script or the browser page reports.
type wsJSResult struct {
	Script   string   `json:"script"`
	OK       bool     `json:"ok"`
	Errors   []string `json:"errors"`
	Granted  []int    `json:"granted"`
	Received []struct {
		Topic   string `json:"topic"`
		Payload string `json:"payload"`
		QoS     int    `json:"qos"`
	} `json:"received"`
	UserAgent string `json:"userAgent"`
}

// TestWebSocketInteropMQTTJS runs MQTT.js under Node against our broker
// over ws:// and wss:// (trusting only the test CA), in MQTT 5 and 3.1.1:
// subscribe, publish QoS 1, receive. MQTT.js offers the "mqtt" subprotocol
// and sends binary frames; the broker sees TLS state only over wss.
// [MQTT-6.0.0-1] [MQTT-6.0.0-3] [MQTT-6.0.0-4]
func TestWebSocketInteropMQTTJS(t *testing.T) {
	t.Parallel()
	node := wsNode(t)
	pki := newWSPKI(t)
	caFile := pki.ca.WriteFile(t, t.TempDir(), "ca")
	for _, scheme := range []string{"ws", "wss"} {
		for _, v := range []int{5, 4} {
			t.Run(fmt.Sprintf("%s/v%d", scheme, v), func(t *testing.T) {
				t.Parallel()
				lc := transport.ListenConfig{URL: scheme + "://127.0.0.1:0/mqtt"}
				args := []string{"ws.mjs", "", fmt.Sprint(v)}
				if scheme == "wss" {
					lc.TLS = pki.serverTLS(false)
					// The server certificate names 127.0.0.1; MQTT.js
					// verifies it against this CA only.
					args = append(args, caFile)
				}
				l := wsListen(t, lc)
				auth := &wsAuthLog{}
				wsServe(t, l, broker.Config{Authenticator: auth.authenticator()})
				args[1] = wsServerURL(l, scheme, "/mqtt")

				res := wsRunNode(t, node, args...)
				if len(res.Received) != 1 || res.Received[0].Topic != fmt.Sprintf("ws/js/v%d", v) || res.Received[0].QoS != 1 {
					t.Errorf("MQTT.js received %+v", res.Received)
				}
				info := auth.byID(t, fmt.Sprintf("ws-js-%d", v))
				if info.Version != packet.Version(v) {
					t.Errorf("broker saw protocol version %d, want %d", info.Version, v)
				}
				if (info.TLS != nil) != (scheme == "wss") {
					t.Errorf("TLS state present = %v over %s", info.TLS != nil, scheme)
				}
			})
		}
	}
}

// wsRunNode runs node with args in test/node and decodes its result line;
// a script that reports failure fails the test.
func wsRunNode(t *testing.T, node string, args ...string) wsJSResult {
	t.Helper()
	cmd := exec.Command(node, args...)
	cmd.Dir = wsNodeDir
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatalf("start node: %v", err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	var err error
	select {
	case err = <-done:
	case <-time.After(2 * wsTimeout):
		cmd.Process.Kill()
		<-done
		t.Fatalf("node %s did not exit; stderr: %s", strings.Join(args, " "), stderr.String())
	}
	lines := strings.Split(strings.TrimSpace(stdout.String()), "\n")
	var res wsJSResult
	if jerr := json.Unmarshal([]byte(lines[len(lines)-1]), &res); jerr != nil {
		t.Fatalf("node %s: exit %v, output %q: %v; stderr: %s", strings.Join(args, " "), err, stdout.String(), jerr, stderr.String())
	}
	if err != nil || !res.OK || len(res.Errors) > 0 {
		t.Fatalf("node %s: exit %v, ok %v, errors:\n  %s\nstderr: %s", strings.Join(args, " "), err, res.OK, strings.Join(res.Errors, "\n  "), stderr.String())
	}
	return res
}

// chromiumPath is where Debian's chromium package puts the browser.
const chromiumPath = "/usr/bin/chromium"

// TestWebSocketInteropBrowser loads a page in headless Chromium that runs
// MQTT.js's browser bundle against our broker over ws:// and wss://: the
// page subscribes, publishes QoS 1, receives its own message and reports
// back with a POST. The broker's listener admits only the page's origin.
// For wss:// Chromium runs with --ignore-certificate-errors, because its
// certificate store cannot be pointed at the test CA from the command line;
// the TLS handshake, the upgrade and MQTT are still real.
// [MQTT-6.0.0-1] [MQTT-6.0.0-3] [MQTT-6.0.0-4]
func TestWebSocketInteropBrowser(t *testing.T) {
	t.Parallel()
	if _, err := os.Stat(chromiumPath); err != nil {
		wsMissing(t, "chromium is not installed (%v)", err)
	}
	bundle := filepath.Join(wsNodeDir, "node_modules", "mqtt", "dist", "mqtt.min.js")
	if _, err := os.Stat(bundle); err != nil {
		wsMissing(t, "MQTT.js's browser bundle is not installed (%v)", err)
	}
	pki := newWSPKI(t)
	// One browser at a time: each is a tree of heavy processes.
	for _, scheme := range []string{"ws", "wss"} {
		t.Run(scheme, func(t *testing.T) {
			reports := make(chan wsJSResult, 1)
			page := httptest.NewServer(wsPageHandler(t, bundle, reports))
			defer page.Close()
			pageURL, _ := url.Parse(page.URL)

			lc := transport.ListenConfig{
				URL:       scheme + "://127.0.0.1:0/mqtt",
				WebSocket: transport.WebSocketConfig{AllowedOrigins: []string{pageURL.Host}},
			}
			if scheme == "wss" {
				lc.TLS = pki.serverTLS(false)
			}
			l := wsListen(t, lc)
			auth := &wsAuthLog{}
			b := wsServe(t, l, broker.Config{Authenticator: auth.authenticator()})

			q := url.Values{"broker": {wsServerURL(l, scheme, "/mqtt")}, "topic": {"browser/" + scheme}}
			target := page.URL + "/ws.html?" + q.Encode()
			var extra []string
			if scheme == "wss" {
				extra = append(extra, "--ignore-certificate-errors")
			}
			start := time.Now()
			stop := wsStartChromium(t, target, extra...)
			defer stop()
			select {
			case res := <-reports:
				t.Logf("chromium: page reported after %v (%s)", time.Since(start).Round(time.Millisecond), res.UserAgent)
				if !res.OK || len(res.Errors) > 0 {
					t.Fatalf("page reported failure: %s", strings.Join(res.Errors, "; "))
				}
				if len(res.Received) != 1 || res.Received[0].Topic != "browser/"+scheme || res.Received[0].QoS != 1 {
					t.Errorf("page received %+v", res.Received)
				}
			case <-time.After(60 * time.Second):
				t.Fatalf("no report from the page within 60 s (chromium output: %s)", stop())
			}
			auth.mu.Lock()
			n := len(auth.infos)
			var sawTLS bool
			if n > 0 {
				sawTLS = auth.infos[0].TLS != nil
			}
			auth.mu.Unlock()
			if n != 1 || sawTLS != (scheme == "wss") {
				t.Errorf("broker authenticated %d clients (TLS %v), want 1 over %s", n, sawTLS, scheme)
			}
			wsWaitFor(t, "the page's connection to end", func() bool { return b.Stats().Connections == 0 })
		})
	}
}

// wsPageHandler serves the test page, its script, the MQTT.js bundle, and
// the report endpoint.
func wsPageHandler(t *testing.T, bundle string, reports chan<- wsJSResult) http.Handler {
	mux := http.NewServeMux()
	dir := filepath.Join(wsNodeDir, "browser")
	mux.HandleFunc("GET /ws.html", func(w http.ResponseWriter, r *http.Request) { http.ServeFile(w, r, filepath.Join(dir, "ws.html")) })
	mux.HandleFunc("GET /ws.js", func(w http.ResponseWriter, r *http.Request) { http.ServeFile(w, r, filepath.Join(dir, "ws.js")) })
	mux.HandleFunc("GET /mqtt.min.js", func(w http.ResponseWriter, r *http.Request) { http.ServeFile(w, r, bundle) })
	var once sync.Once
	mux.HandleFunc("POST /report", func(w http.ResponseWriter, r *http.Request) {
		var res wsJSResult
		if err := json.NewDecoder(io.LimitReader(r.Body, 1<<20)).Decode(&res); err != nil {
			res.Errors = append(res.Errors, "undecodable report: "+err.Error())
		}
		once.Do(func() { reports <- res })
		w.WriteHeader(http.StatusNoContent)
	})
	mux.HandleFunc("GET /favicon.ico", http.NotFound)
	return mux
}

// wsStartChromium starts headless Chromium on target in its own process
// group, with a fresh profile. The returned stop ends the browser, kills
// what remains of its process group, waits until no live process of the
// group remains, and returns what the browser wrote to stdout and stderr.
func wsStartChromium(t *testing.T, target string, extra ...string) (stop func() string) {
	t.Helper()
	args := append([]string{
		"--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
		"--disable-background-networking", "--disable-component-update", "--disable-sync",
		"--no-proxy-server", "--user-data-dir=" + t.TempDir(),
	}, extra...)
	cmd := exec.Command(chromiumPath, append(args, target)...)
	var out wsSyncBuffer
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	waited := make(chan struct{})
	go func() {
		cmd.Wait()
		close(waited)
	}()
	var once sync.Once
	stop = func() string {
		once.Do(func() {
			// SIGTERM lets the browser shut its helpers down and reap
			// them; SIGKILL to the group then removes whatever is left.
			cmd.Process.Signal(syscall.SIGTERM)
			select {
			case <-waited:
			case <-time.After(wsTimeout):
			}
			syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-waited
			wsWaitFor(t, "chromium's processes to exit", func() bool {
				left := wsGroupProcs(cmd.Process.Pid)
				for _, pid := range left {
					syscall.Kill(pid, syscall.SIGKILL)
				}
				return len(left) == 0
			})
		})
		return out.String()
	}
	t.Cleanup(func() { stop() })
	return stop
}

// wsGroupProcs lists the live (not zombie) processes of process group
// pgid.
func wsGroupProcs(pgid int) []int {
	ents, _ := os.ReadDir("/proc")
	var pids []int
	for _, e := range ents {
		var pid int
		if _, err := fmt.Sscanf(e.Name(), "%d", &pid); err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		// pid (comm) state ppid pgrp ...; comm may contain spaces.
		f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:]))
		if len(f) < 3 || f[0] == "Z" {
			continue
		}
		if g, err := strconv.Atoi(f[2]); err == nil && g == pgid {
			pids = append(pids, pid)
		}
	}
	return pids
}

// wsSyncBuffer is a strings.Builder safe for concurrent writers.
type wsSyncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (w *wsSyncBuffer) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}

func (w *wsSyncBuffer) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.String()
}

// mosquittoPath is where Debian's mosquitto package puts the broker.
const mosquittoPath = "/usr/sbin/mosquitto"

// TestWebSocketInteropMosquitto runs our client's ws:// dialer against
// Mosquitto's websockets listener, in MQTT 5 and 3.1.1: QoS 0, 1 and 2
// round trips. Mosquitto (libwebsockets) selects the "mqtt" subprotocol
// our dialer offers and requires. [MQTT-6.0.0-3] [MQTT-6.0.0-4]
func TestWebSocketInteropMosquitto(t *testing.T) {
	t.Parallel()
	wsURL := wsStartMosquitto(t)
	for _, v := range []packet.Version{packet.V5, packet.V311} {
		t.Run(fmt.Sprintf("v%d", v), func(t *testing.T) {
			got := make(chan *client.Message, 4)
			base := fmt.Sprintf("mqtt5go-ws/v%d", v)
			c := wsClient(t, wsURL, fmt.Sprintf("mqtt5go-ws-%d", v), client.Options{Version: v})
			if _, err := c.Subscribe(wsCtx(t), []client.Subscription{{Filter: base + "/#", QoS: 2}}, func(m *client.Message) { got <- m }); err != nil {
				t.Fatalf("subscribe: %v", err)
			}
			for qos := byte(0); qos <= 2; qos++ {
				topic := fmt.Sprintf("%s/q%d", base, qos)
				if err := c.Publish(wsCtx(t), &client.Message{Topic: topic, QoS: qos, Payload: []byte(topic)}); err != nil {
					t.Fatalf("publish QoS %d: %v", qos, err)
				}
				select {
				case m := <-got:
					if m.Topic != topic || m.QoS != qos || string(m.Payload) != topic {
						t.Fatalf("received %s QoS %d %q, want %s QoS %d", m.Topic, m.QoS, m.Payload, topic, qos)
					}
				case <-time.After(wsTimeout):
					t.Fatalf("QoS %d message not received", qos)
				}
			}
		})
	}
}

// wsStartMosquitto starts Mosquitto with a websockets listener and returns
// its ws:// URL. Mosquitto 2.0 needs a plain MQTT listener beside a
// websockets one to start, and its websockets listener ignores the bind
// address (it listens on every interface); anonymous access is allowed.
func wsStartMosquitto(t *testing.T) string {
	t.Helper()
	if _, err := os.Stat(mosquittoPath); err != nil {
		wsMissing(t, "mosquitto is not installed (%v)", err)
	}
	dir := t.TempDir()
	mqttPort, wsPort := wsFreePort(t), wsFreePort(t)
	conf := filepath.Join(dir, "mosquitto.conf")
	err := os.WriteFile(conf, []byte(fmt.Sprintf(
		"listener %d 127.0.0.1\nlistener %d\nprotocol websockets\nallow_anonymous true\npersistence false\n",
		mqttPort, wsPort)), 0o600)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(mosquittoPath, "-c", conf, "-v")
	pr, pw := io.Pipe()
	cmd.Stdout, cmd.Stderr = pw, pw
	if err := cmd.Start(); err != nil {
		t.Fatalf("start mosquitto: %v", err)
	}
	exited := make(chan struct{})
	go func() {
		cmd.Wait()
		pw.Close()
		close(exited)
	}()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-exited
	})
	var mu sync.Mutex
	var log strings.Builder
	running := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(pr)
		var once sync.Once
		for sc.Scan() {
			mu.Lock()
			log.WriteString(sc.Text() + "\n")
			mu.Unlock()
			if strings.Contains(sc.Text(), " running") {
				once.Do(func() { close(running) })
			}
		}
		io.Copy(io.Discard, pr)
	}()
	logText := func() string {
		mu.Lock()
		defer mu.Unlock()
		return log.String()
	}
	select {
	case <-running:
	case <-exited:
		if out := logText(); strings.Contains(strings.ToLower(out), "websockets support not available") {
			// This build of Mosquitto cannot serve WebSocket at all: the
			// peer cannot exist here, under CI too.
			t.Skipf("mosquitto was built without websockets support:\n%s", out)
		}
		t.Fatalf("mosquitto exited:\n%s", logText())
	case <-time.After(wsTimeout):
		t.Fatalf("mosquitto did not start:\n%s", logText())
	}
	addr := fmt.Sprintf("127.0.0.1:%d", wsPort)
	wsWaitFor(t, "mosquitto's websockets listener", func() bool {
		c, err := net.Dial("tcp", addr)
		if err == nil {
			c.Close()
		}
		return err == nil
	})
	return "ws://" + addr + "/mqtt"
}

// wsFreePort returns a loopback TCP port that was free a moment ago.
func wsFreePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}
