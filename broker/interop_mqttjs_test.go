package broker_test

// Interoperability tests with MQTT.js (the npm package "mqtt", 5.x) in
// MQTT 5 and 3.1.1. The scripts live in test/node (see package.json there;
// scripts/install-peers.sh runs npm install). A missing node or
// node_modules fails the test when CI=true and skips it otherwise.

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mqtt5go/mqtt5/broker"
	"github.com/mqtt5go/mqtt5/packet"
)

// ixNodeDir is test/node relative to the broker package directory, where
// go test runs.
const ixNodeDir = "../test/node"

// ixNode returns the node binary, checking that MQTT.js is installed.
func ixNode(t *testing.T) string {
	t.Helper()
	node := ixLookPath(t, "node")
	if _, err := os.Stat(filepath.Join(ixNodeDir, "node_modules", "mqtt", "package.json")); err != nil {
		ixMissing(t, "MQTT.js is not installed in test/node (npm install there)")
	}
	return node
}

// ixJSMessage is a message as the scripts report it.
type ixJSMessage struct {
	Topic      string         `json:"topic"`
	Payload    string         `json:"payload"`
	QoS        byte           `json:"qos"`
	Retain     bool           `json:"retain"`
	Properties map[string]any `json:"properties"`
}

// ixJSResult is the JSON line a script prints.
type ixJSResult struct {
	Script   string        `json:"script"`
	Version  int           `json:"version"`
	OK       bool          `json:"ok"`
	Errors   []string      `json:"errors"`
	Granted  []int         `json:"granted"`
	Received []ixJSMessage `json:"received"`
}

// ixNodeScript runs node script URL v in test/node and decodes its result
// line; a script that reports failure fails the test.
func ixNodeScript(t *testing.T, node string, b *ixBroker, script string, v int) ixJSResult {
	t.Helper()
	cmd := exec.Command(node, script, b.URL(), fmt.Sprint(v))
	cmd.Dir = ixNodeDir
	var stderr strings.Builder
	cmd.Stderr = &stderr
	done := make(chan struct{})
	var out []byte
	var err error
	go func() {
		out, err = cmd.Output()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(2 * ixTimeout):
		cmd.Process.Kill()
		<-done
		t.Fatalf("node %s did not exit", script)
	}
	lines := ixLines(string(out))
	if len(lines) == 0 {
		t.Fatalf("node %s %s %d: no output (%v); stderr: %s", script, b.URL(), v, err, stderr.String())
	}
	var res ixJSResult
	if jerr := json.Unmarshal([]byte(lines[len(lines)-1]), &res); jerr != nil {
		t.Fatalf("node %s: result line %q: %v; stderr: %s", script, lines[len(lines)-1], jerr, stderr.String())
	}
	if err != nil || !res.OK || len(res.Errors) > 0 {
		t.Fatalf("node %s %d: exit %v, ok %v, errors:\n  %s\nreceived: %+v\nstderr: %s",
			script, v, err, res.OK, strings.Join(res.Errors, "\n  "), res.Received, stderr.String())
	}
	return res
}

// TestInteropMQTTJSRoundTrip runs test/node/roundtrip.mjs: retained message,
// QoS 0/1/2 round trips and, in v5, message properties and a Subscription
// Identifier. An in-process subscriber checks what MQTT.js put on the wire.
// [MQTT-3.3.1-9] [MQTT-4.3.1-1] [MQTT-4.3.2-2] [MQTT-4.3.3-2]
// [MQTT-3.3.2-17] [MQTT-3.3.2-18] [MQTT-3.3.4-3]
func TestInteropMQTTJSRoundTrip(t *testing.T) {
	t.Parallel()
	node := ixNode(t)
	for _, v := range []int{5, 4} {
		t.Run(fmt.Sprintf("v%d", v), func(t *testing.T) {
			t.Parallel()
			b := ixStartBroker(t, broker.Config{})
			inproc := &ixRecorder[*broker.Message]{}
			unsub, err := b.Subscribe("js/#", 2, func(m *broker.Message) { inproc.add(m) })
			if err != nil {
				t.Fatal(err)
			}
			defer unsub()
			res := ixNodeScript(t, node, b, "roundtrip.mjs", v)

			base := fmt.Sprintf("js/v%d", v)
			want := []ixMsg{
				{base + "/retained", "kept", 1, true},
				{base + "/q0", "payload-qos0", 0, false},
				{base + "/q1", "payload-qos1", 1, false},
				{base + "/q2", "payload-qos2", 2, false},
			}
			var got []ixMsg
			for _, m := range res.Received {
				got = append(got, ixMsg{m.Topic, m.Payload, m.QoS, m.Retain})
			}
			if !ixEqualMsgs(got, want) {
				t.Fatalf("MQTT.js received %v, want %v", got, want)
			}
			if !slices.Equal(res.Granted, []int{2}) {
				t.Errorf("SUBACK granted %v, want [2]", res.Granted)
			}
			for i, m := range res.Received {
				ids, _ := m.Properties["subscriptionIdentifier"].([]any)
				if v == 5 && (len(ids) != 1 || ids[0] != float64(7)) {
					t.Errorf("message %d: subscription identifiers %v, want [7]", i, m.Properties["subscriptionIdentifier"])
				}
				if v == 4 && m.Properties != nil {
					t.Errorf("3.1.1 message %d has properties %v", i, m.Properties)
				}
			}
			if v == 5 {
				p := res.Received[2].Properties
				if p["contentType"] != "text/plain" || p["responseTopic"] != base+"/reply" || p["correlationData"] != "cafe01" {
					t.Errorf("QoS 1 message properties %v", p)
				}
			}

			// What MQTT.js sent, as the broker routed it: user properties
			// {k1: [v1, v3], k2: v2} are encoded in that order.
			msgs := inproc.waitMatch(t, "QoS 2 message in-process", func(m *broker.Message) bool { return m.Topic == base+"/q2" })
			for _, m := range msgs {
				if !strings.HasPrefix(m.Topic, base+"/q") {
					continue
				}
				wantUser := []packet.UserProperty{{Key: "k1", Value: "v1"}, {Key: "k1", Value: "v3"}, {Key: "k2", Value: "v2"}}
				if v == 4 {
					wantUser = nil
				}
				if !slices.Equal(m.Props.User, wantUser) {
					t.Errorf("%s: user properties %v, want %v", m.Topic, m.Props.User, wantUser)
				}
			}
			// The script cleared its retained message.
			if n := b.Stats().Retained; n != 0 {
				t.Errorf("Stats().Retained = %d after the script cleared it, want 0", n)
			}
		})
	}
}

// TestInteropMQTTJSWill runs test/node/will.mjs: DISCONNECT discards the
// will, a destroyed socket publishes it (with its v5 properties).
// [MQTT-3.1.2-8] [MQTT-3.1.2-10] [MQTT-3.14.4-3]
func TestInteropMQTTJSWill(t *testing.T) {
	t.Parallel()
	node := ixNode(t)
	for _, v := range []int{5, 4} {
		t.Run(fmt.Sprintf("v%d", v), func(t *testing.T) {
			t.Parallel()
			b := ixStartBroker(t, broker.Config{})
			res := ixNodeScript(t, node, b, "will.mjs", v)
			base := fmt.Sprintf("jswill/v%d", v)
			var got []ixMsg
			for _, m := range res.Received {
				got = append(got, ixMsg{m.Topic, m.Payload, m.QoS, m.Retain})
			}
			want := []ixMsg{{base + "/dying", "dying-will", 1, false}, {base + "/marker", "marker", 1, false}}
			if !ixEqualMsgs(got, want) {
				t.Fatalf("MQTT.js watcher received %v, want %v", got, want)
			}
			if v == 5 {
				p := res.Received[0].Properties
				user, _ := json.Marshal(p["userProperties"])
				if p["contentType"] != "text/plain" || p["correlationData"] != "7763" || string(user) != `{"n":["1","2"],"who":"dying"}` {
					t.Errorf("will properties %v", p)
				}
			}
		})
	}
}
