package packet_test

// Capture test: real MQTT clients (mosquitto_pub and mosquitto_sub from
// mosquitto-clients) talk to a tiny listener that speaks just enough MQTT,
// built on this codec. Every packet the clients send is recorded exactly as
// it arrived; the test checks that each one decodes to the expected values
// and that our encoder re-creates it byte for byte. The clients also decode
// what the listener sends (CONNACK, SUBACK, PUBLISH with properties, ...),
// which checks our encoder against an independent decoder.

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"reflect"
	"strconv"
	"testing"
	"time"

	"github.com/mqtt5go/mqtt5/packet"
)

// capNeed returns the path of a mosquitto client, or skips the test (fails
// it under CI=true) when it is not installed.
func capNeed(t *testing.T, name string) string {
	t.Helper()
	path, err := exec.LookPath(name)
	if err != nil {
		msg := fmt.Sprintf("%s not found (%v): install mosquitto-clients to run the capture test", name, err)
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	return path
}

// capServer accepts one MQTT connection and records what the client sends.
type capServer struct {
	ln net.Listener

	// Configuration, set before the client connects.
	connackProps packet.Properties // v5 CONNACK properties
	afterSuback  []packet.Packet   // sent after SUBACK
	afterPing    []packet.Packet   // sent after PINGRESP
	// afterUnsuback is sent with the UNSUBACK that answers the
	// unsubacks-th UNSUBSCRIBE.
	afterUnsuback []packet.Packet
	unsubacks     int

	done chan struct{}
	// Written by the serving goroutine, read after done is closed.
	version packet.Version
	raw     [][]byte // every packet received, as received
	stream  []byte   // every byte received
	endErr  error    // how the connection ended (io.EOF when the client closed it)
	failure error    // a codec or I/O failure on the server side
}

func capListen(t *testing.T) *capServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	s := &capServer{ln: ln, done: make(chan struct{})}
	t.Cleanup(func() { ln.Close() })
	return s
}

func (s *capServer) port() string { return strconv.Itoa(s.ln.Addr().(*net.TCPAddr).Port) }

func (s *capServer) start() {
	go func() {
		defer close(s.done)
		conn, err := s.ln.Accept()
		s.ln.Close()
		if err != nil {
			s.failure = err
			return
		}
		defer conn.Close()
		conn.SetDeadline(time.Now().Add(20 * time.Second))
		s.serve(conn)
	}()
}

// wait waits for the connection to end.
func (s *capServer) wait(t *testing.T) {
	t.Helper()
	select {
	case <-s.done:
	case <-time.After(20 * time.Second):
		s.ln.Close()
		t.Fatal("capture listener did not finish")
	}
}

func (s *capServer) serve(conn net.Conn) {
	var rec bytes.Buffer
	r := packet.NewReader(io.TeeReader(conn, &rec), 0)
	defer func() { s.stream = rec.Bytes() }()
	v := packet.V5 // until CONNECT says otherwise; its header is the same in both
	send := func(ps ...packet.Packet) bool {
		var out []byte
		for _, p := range ps {
			var err error
			if out, err = p.AppendTo(out, v); err != nil {
				s.failure = fmt.Errorf("encoding %T: %w", p, err)
				return false
			}
		}
		if _, err := conn.Write(out); err != nil {
			s.failure = err
			return false
		}
		return true
	}
	for {
		h, body, err := r.ReadRaw(v)
		if err != nil {
			s.endErr = err
			return
		}
		raw := append([]byte{byte(h.Type)<<4 | h.Flags}, packet.AppendVarint(nil, uint32(len(body)))...)
		raw = append(raw, body...)
		s.raw = append(s.raw, raw)
		p, err := packet.Decode(h, raw[len(raw)-len(body):], v)
		if err != nil {
			s.failure = fmt.Errorf("decoding %v % x: %w", h.Type, raw, err)
			return
		}
		ok := true
		switch p := p.(type) {
		case *packet.Connect:
			v = p.Version
			s.version = v
			ok = send(&packet.Connack{Props: s.connackProps})
		case *packet.Subscribe:
			sa := &packet.Suback{PacketID: p.PacketID}
			for _, sub := range p.Subscriptions {
				sa.ReasonCodes = append(sa.ReasonCodes, packet.ReasonCode(sub.QoS))
			}
			ok = send(append([]packet.Packet{sa}, s.afterSuback...)...)
		case *packet.Unsubscribe:
			ua := &packet.Unsuback{PacketID: p.PacketID}
			for range p.Filters {
				ua.ReasonCodes = append(ua.ReasonCodes, packet.Success)
			}
			out := []packet.Packet{ua}
			if s.unsubacks--; s.unsubacks == 0 {
				out = append(out, s.afterUnsuback...)
			}
			ok = send(out...)
		case *packet.Publish:
			switch p.QoS {
			case 1:
				ok = send(&packet.Puback{PacketID: p.PacketID})
			case 2:
				ok = send(&packet.Pubrec{PacketID: p.PacketID})
			}
		case *packet.Pubrel:
			ok = send(&packet.Pubcomp{PacketID: p.PacketID})
		case *packet.Pubrec: // for a QoS 2 PUBLISH we sent
			ok = send(&packet.Pubrel{PacketID: p.PacketID})
		case *packet.Pingreq:
			ok = send(append([]packet.Packet{&packet.Pingresp{}}, s.afterPing...)...)
		case *packet.Disconnect:
			// The client closes the connection next.
		}
		if !ok {
			return
		}
	}
}

// capRun runs a client with a timeout and returns its standard output. If
// the client fails, the listener stops waiting for it.
func capRun(t *testing.T, s *capServer, bin string, args ...string) string {
	t.Helper()
	defer func() {
		if t.Failed() {
			s.ln.Close()
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.WaitDelay = 2 * time.Second
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if ctx.Err() != nil {
		t.Errorf("%s timed out; stderr: %s", bin, stderr.String())
	} else if err != nil {
		t.Errorf("%s %q: %v; stderr: %s", bin, args, err, stderr.String())
	}
	return stdout.String()
}

// capVerify checks the capture: the records add up to the byte stream, and
// every packet decodes and re-encodes to identical bytes (unless identical
// is false, see the property-order case). It returns the decoded packets.
func capVerify(t *testing.T, s *capServer, identical bool) []packet.Packet {
	t.Helper()
	if s.failure != nil {
		t.Fatalf("listener failed: %v", s.failure)
	}
	if s.endErr != io.EOF {
		t.Errorf("connection ended with %v, want the client to close it (io.EOF)", s.endErr)
	}
	if !bytes.Equal(bytes.Join(s.raw, nil), s.stream) {
		t.Fatalf("recorded packets do not add up to the %d bytes received", len(s.stream))
	}
	var pkts []packet.Packet
	for i, raw := range s.raw {
		h, body := rtSplit(t, raw)
		p, err := packet.Decode(h, body, s.version)
		if err != nil {
			t.Fatalf("packet #%d (%v) does not decode: %v\n% x", i, h.Type, err, raw)
		}
		enc, err := packet.Encode(p, s.version)
		if err != nil {
			t.Fatalf("packet #%d (%v) does not re-encode: %v", i, h.Type, err)
		}
		if identical && !bytes.Equal(enc, raw) {
			t.Errorf("packet #%d (%v) re-encodes differently\nclient: % x\nours:   % x", i, h.Type, raw, enc)
		}
		if !identical {
			h2, body2 := rtSplit(t, enc)
			q, err := packet.Decode(h2, body2, s.version)
			if err != nil || len(enc) != len(raw) || !rtEqual(p, q, s.version) {
				t.Errorf("packet #%d (%v) re-encoding is not equivalent (%v)\nclient: % x\nours:   % x", i, h.Type, err, raw, enc)
			}
		}
		if testing.Verbose() {
			t.Logf("%-11v % x", h.Type, raw)
		}
		pkts = append(pkts, p)
	}
	return pkts
}

func capTypes(pkts []packet.Packet) []packet.Type {
	var ts []packet.Type
	for _, p := range pkts {
		ts = append(ts, p.Type())
	}
	return ts
}

func capExpectTypes(t *testing.T, pkts []packet.Packet, want ...packet.Type) {
	t.Helper()
	if got := capTypes(pkts); !reflect.DeepEqual(got, want) {
		t.Fatalf("client sent %v, want %v", got, want)
	}
}

func capEq[T any](t *testing.T, what string, got, want T) {
	t.Helper()
	if !reflect.DeepEqual(got, want) {
		t.Errorf("%s = %#v, want %#v", what, got, want)
	}
}

func capUsers(kv ...string) []packet.UserProperty {
	var u []packet.UserProperty
	for i := 0; i+1 < len(kv); i += 2 {
		u = append(u, packet.UserProperty{Key: kv[i], Value: kv[i+1]})
	}
	return u
}

func TestCaptureMosquitto(t *testing.T) {
	if testing.Short() {
		t.Skip("capture test runs external clients; skipped with -short")
	}
	pub := capNeed(t, "mosquitto_pub")
	sub := capNeed(t, "mosquitto_sub")
	host := func(s *capServer) []string { return []string{"-h", "127.0.0.1", "-p", s.port()} }

	t.Run("pub-v5-qos0-properties", func(t *testing.T) {
		t.Parallel()
		s := capListen(t)
		s.start()
		capRun(t, s, pub, append(host(s), "-V", "mqttv5", "-i", "pub5-a", "-t", "test/topic", "-m", "hello", "-q", "0",
			"-D", "connect", "session-expiry-interval", "60",
			"-D", "publish", "payload-format-indicator", "1",
			"-D", "publish", "message-expiry-interval", "30",
			"-D", "publish", "content-type", "text/plain",
			"-D", "publish", "response-topic", "r",
			"-D", "publish", "correlation-data", "c",
			"-D", "publish", "user-property", "k", "v",
			"-D", "publish", "user-property", "k", "v2")...)
		s.wait(t)
		pkts := capVerify(t, s, true)
		capExpectTypes(t, pkts, packet.CONNECT, packet.PUBLISH, packet.DISCONNECT)
		c := pkts[0].(*packet.Connect)
		capEq(t, "CONNECT version", c.Version, packet.V5)
		capEq(t, "client id", c.ClientID, "pub5-a")
		capEq(t, "session expiry", c.Props.SessionExpiry, uint32(60))
		p := pkts[1].(*packet.Publish)
		capEq(t, "topic", p.Topic, "test/topic")
		capEq(t, "payload", string(p.Payload), "hello")
		capEq(t, "QoS", p.QoS, byte(0))
		capEq(t, "payload format", p.Props.PayloadFormat, byte(1))
		capEq(t, "message expiry", p.Props.MessageExpiry, uint32(30))
		capEq(t, "content type", p.Props.ContentType, "text/plain")
		capEq(t, "response topic", p.Props.ResponseTopic, "r")
		capEq(t, "correlation data", string(p.Props.CorrelationData), "c")
		capEq(t, "PUBLISH user properties", p.Props.User, capUsers("k", "v", "k", "v2"))
	})

	t.Run("pub-v5-qos1-will-credentials", func(t *testing.T) {
		t.Parallel()
		s := capListen(t)
		s.start()
		capRun(t, s, pub, append(host(s), "-V", "mqttv5", "-i", "pub5-b", "-t", "a/b", "-m", "payload-1", "-q", "1", "-r",
			"-k", "30", "-u", "user", "-P", "secret",
			"--will-topic", "will/t", "--will-payload", "gone", "--will-qos", "1", "--will-retain",
			"-D", "connect", "request-problem-information", "0",
			"-D", "connect", "request-response-information", "1",
			"-D", "connect", "receive-maximum", "20",
			"-D", "connect", "topic-alias-maximum", "5",
			"-D", "connect", "maximum-packet-size", "65536",
			"-D", "will", "payload-format-indicator", "1",
			"-D", "will", "message-expiry-interval", "120",
			"-D", "will", "content-type", "text/plain",
			"-D", "will", "response-topic", "will/r",
			"-D", "will", "correlation-data", "wc",
			"-D", "will", "will-delay-interval", "10",
			"-D", "will", "user-property", "w", "x")...)
		s.wait(t)
		pkts := capVerify(t, s, true)
		capExpectTypes(t, pkts, packet.CONNECT, packet.PUBLISH, packet.DISCONNECT)
		c := pkts[0].(*packet.Connect)
		capEq(t, "keep alive", c.KeepAlive, uint16(30))
		capEq(t, "username", c.Username, "user")
		capEq(t, "password", string(c.Password), "secret")
		capEq(t, "request problem info present", c.Props.Has(packet.PropRequestProblemInfo), true)
		capEq(t, "request problem info", c.Props.RequestProblemInfo, byte(0))
		capEq(t, "request response info", c.Props.RequestResponseInfo, byte(1))
		capEq(t, "receive maximum", c.Props.ReceiveMaximum, uint16(20))
		capEq(t, "topic alias maximum", c.Props.TopicAliasMaximum, uint16(5))
		capEq(t, "maximum packet size", c.Props.MaximumPacketSize, uint32(65536))
		if c.Will == nil {
			t.Fatal("CONNECT has no will")
		}
		capEq(t, "will topic", c.Will.Topic, "will/t")
		capEq(t, "will payload", string(c.Will.Payload), "gone")
		capEq(t, "will QoS", c.Will.QoS, byte(1))
		capEq(t, "will retain", c.Will.Retain, true)
		capEq(t, "will payload format", c.Will.Props.PayloadFormat, byte(1))
		capEq(t, "will message expiry", c.Will.Props.MessageExpiry, uint32(120))
		capEq(t, "will content type", c.Will.Props.ContentType, "text/plain")
		capEq(t, "will response topic", c.Will.Props.ResponseTopic, "will/r")
		capEq(t, "will correlation data", string(c.Will.Props.CorrelationData), "wc")
		capEq(t, "will delay", c.Will.Props.WillDelay, uint32(10))
		capEq(t, "will user properties", c.Will.Props.User, capUsers("w", "x"))
		p := pkts[1].(*packet.Publish)
		capEq(t, "QoS", p.QoS, byte(1))
		capEq(t, "retain", p.Retain, true)
		capEq(t, "payload", string(p.Payload), "payload-1")
		if p.PacketID == 0 {
			t.Error("QoS 1 PUBLISH without packet identifier")
		}
	})

	t.Run("pub-v5-qos2-disconnect-properties", func(t *testing.T) {
		t.Parallel()
		s := capListen(t)
		s.connackProps.TopicAliasMaximum = 10
		s.start()
		capRun(t, s, pub, append(host(s), "-V", "mqttv5", "-i", "pub5-c", "-t", "x/y", "-m", "two", "-q", "2",
			"-D", "connect", "session-expiry-interval", "60",
			"-D", "publish", "topic-alias", "1",
			"-D", "disconnect", "session-expiry-interval", "30",
			"-D", "disconnect", "user-property", "d", "e")...)
		s.wait(t)
		pkts := capVerify(t, s, true)
		capExpectTypes(t, pkts, packet.CONNECT, packet.PUBLISH, packet.PUBREL, packet.DISCONNECT)
		p := pkts[1].(*packet.Publish)
		capEq(t, "QoS", p.QoS, byte(2))
		capEq(t, "topic alias", p.Props.TopicAlias, uint16(1))
		capEq(t, "PUBREL packet id", pkts[2].(*packet.Pubrel).PacketID, p.PacketID)
		d := pkts[3].(*packet.Disconnect)
		capEq(t, "DISCONNECT session expiry", d.Props.SessionExpiry, uint32(30))
		capEq(t, "DISCONNECT user properties", d.Props.User, capUsers("d", "e"))
	})

	// Extended authentication properties in CONNECT (the listener's
	// CONNACK echoes the method, which ends the exchange).
	t.Run("pub-v5-auth-properties", func(t *testing.T) {
		t.Parallel()
		s := capListen(t)
		s.connackProps.AuthMethod = "PLAIN"
		s.start()
		capRun(t, s, pub, append(host(s), "-V", "mqttv5", "-i", "pub5-auth", "-t", "au", "-n",
			"-D", "connect", "authentication-method", "PLAIN",
			"-D", "connect", "authentication-data", "user:pw")...)
		s.wait(t)
		pkts := capVerify(t, s, true)
		capExpectTypes(t, pkts, packet.CONNECT, packet.PUBLISH, packet.DISCONNECT)
		c := pkts[0].(*packet.Connect)
		capEq(t, "authentication method", c.Props.AuthMethod, "PLAIN")
		capEq(t, "authentication data", string(c.Props.AuthData), "user:pw")
		p := pkts[1].(*packet.Publish)
		capEq(t, "empty payload", len(p.Payload), 0)
	})

	// Properties in an order other than ascending identifier: legal, and
	// decoded to the same values, but our encoder writes them in ascending
	// order, so the re-encoding is equivalent (same values, same length)
	// rather than identical. libmosquitto writes properties in the order
	// they were given and appends Receive Maximum to every v5 CONNECT, so a
	// CONNECT with user properties (0x26) always lands here.
	t.Run("pub-v5-property-order", func(t *testing.T) {
		t.Parallel()
		s := capListen(t)
		s.start()
		capRun(t, s, pub, append(host(s), "-V", "mqttv5", "-i", "pub5-d", "-t", "o", "-m", "m",
			"-D", "connect", "user-property", "a", "b",
			"-D", "connect", "session-expiry-interval", "60",
			"-D", "publish", "user-property", "k", "v",
			"-D", "publish", "content-type", "text/plain",
			"-D", "publish", "message-expiry-interval", "30")...)
		s.wait(t)
		pkts := capVerify(t, s, false)
		capExpectTypes(t, pkts, packet.CONNECT, packet.PUBLISH, packet.DISCONNECT)
		c := pkts[0].(*packet.Connect)
		capEq(t, "session expiry", c.Props.SessionExpiry, uint32(60))
		capEq(t, "CONNECT user properties", c.Props.User, capUsers("a", "b"))
		p := pkts[1].(*packet.Publish)
		capEq(t, "content type", p.Props.ContentType, "text/plain")
		capEq(t, "message expiry", p.Props.MessageExpiry, uint32(30))
		capEq(t, "user properties", p.Props.User, capUsers("k", "v"))
	})

	for _, qos := range []string{"0", "1", "2"} {
		t.Run("pub-v311-qos"+qos, func(t *testing.T) {
			t.Parallel()
			s := capListen(t)
			s.start()
			args := append(host(s), "-V", "mqttv311", "-i", "pub3-"+qos, "-t", "a/b", "-m", "hello 3.1.1", "-q", qos)
			if qos == "1" {
				args = append(args, "-r", "-k", "30", "-u", "user", "-P", "secret",
					"--will-topic", "will/t", "--will-payload", "gone", "--will-qos", "2", "--will-retain")
			}
			capRun(t, s, pub, args...)
			s.wait(t)
			pkts := capVerify(t, s, true)
			want := []packet.Type{packet.CONNECT, packet.PUBLISH, packet.DISCONNECT}
			if qos == "2" {
				want = []packet.Type{packet.CONNECT, packet.PUBLISH, packet.PUBREL, packet.DISCONNECT}
			}
			capExpectTypes(t, pkts, want...)
			c := pkts[0].(*packet.Connect)
			capEq(t, "CONNECT version", c.Version, packet.V311)
			capEq(t, "client id", c.ClientID, "pub3-"+qos)
			capEq(t, "clean session", c.CleanStart, true)
			p := pkts[1].(*packet.Publish)
			capEq(t, "QoS", strconv.Itoa(int(p.QoS)), qos)
			capEq(t, "payload", string(p.Payload), "hello 3.1.1")
			if qos == "1" {
				capEq(t, "username", c.Username, "user")
				capEq(t, "password", string(c.Password), "secret")
				if c.Will == nil {
					t.Fatal("CONNECT has no will")
				}
				capEq(t, "will", *c.Will, packet.Will{QoS: 2, Retain: true, Topic: "will/t", Payload: []byte("gone")})
				capEq(t, "retain", p.Retain, true)
			}
		})
	}

	// A subscriber: SUBSCRIBE with two filters and a user property, then
	// three messages from the listener at QoS 0, 1 and 2 carrying
	// properties, which the client acknowledges (PUBACK, PUBREC, PUBCOMP)
	// and prints.
	subPublishes := func(v packet.Version) []packet.Packet {
		props := packet.Properties{ContentType: "text/plain", User: capUsers("from", "capture")}
		return []packet.Packet{
			&packet.Publish{Topic: "a/b", Payload: []byte("m0"), Props: props},
			&packet.Publish{Topic: "c/d", QoS: 1, PacketID: 1, Payload: []byte("m1"), Props: props},
			&packet.Publish{Topic: "c/e", QoS: 2, PacketID: 2, Payload: []byte("m2"), Props: props},
		}
	}
	t.Run("sub-v5", func(t *testing.T) {
		t.Parallel()
		s := capListen(t)
		s.afterSuback = subPublishes(packet.V5)
		s.start()
		out := capRun(t, s, sub, append(host(s), "-V", "mqttv5", "-i", "sub5", "-t", "a/b", "-t", "c/#", "-q", "2", "-C", "3",
			"-F", "%t|%p|%q|%C|%P",
			"-D", "subscribe", "user-property", "x", "y")...)
		s.wait(t)
		pkts := capVerify(t, s, true)
		capExpectTypes(t, pkts, packet.CONNECT, packet.SUBSCRIBE, packet.PUBACK, packet.PUBREC, packet.PUBCOMP, packet.DISCONNECT)
		sb := pkts[1].(*packet.Subscribe)
		capEq(t, "subscriptions", sb.Subscriptions, []packet.Subscription{{Filter: "a/b", QoS: 2}, {Filter: "c/#", QoS: 2}})
		capEq(t, "SUBSCRIBE user properties", sb.Props.User, capUsers("x", "y"))
		capEq(t, "PUBACK id", pkts[2].(*packet.Puback).PacketID, uint16(1))
		capEq(t, "PUBREC id", pkts[3].(*packet.Pubrec).PacketID, uint16(2))
		capEq(t, "PUBCOMP id", pkts[4].(*packet.Pubcomp).PacketID, uint16(2))
		want := "a/b|m0|0|text/plain|from:capture\nc/d|m1|1|text/plain|from:capture\nc/e|m2|2|text/plain|from:capture\n"
		capEq(t, "mosquitto_sub output", out, want)
	})

	t.Run("sub-v311", func(t *testing.T) {
		t.Parallel()
		s := capListen(t)
		s.afterSuback = subPublishes(packet.V311)
		s.start()
		out := capRun(t, s, sub, append(host(s), "-V", "mqttv311", "-i", "sub3", "-t", "a/b", "-t", "c/#", "-q", "1", "-C", "3", "-v")...)
		s.wait(t)
		pkts := capVerify(t, s, true)
		capExpectTypes(t, pkts, packet.CONNECT, packet.SUBSCRIBE, packet.PUBACK, packet.PUBREC, packet.PUBCOMP, packet.DISCONNECT)
		sb := pkts[1].(*packet.Subscribe)
		capEq(t, "subscriptions", sb.Subscriptions, []packet.Subscription{{Filter: "a/b", QoS: 1}, {Filter: "c/#", QoS: 1}})
		capEq(t, "mosquitto_sub output", out, "a/b m0\nc/d m1\nc/e m2\n")
	})

	// UNSUBSCRIBE in 3.1.1 (mosquitto_sub sends one per -U topic); the
	// message the client waits for follows the last UNSUBACK.
	t.Run("sub-v311-unsubscribe", func(t *testing.T) {
		t.Parallel()
		s := capListen(t)
		s.unsubacks = 2
		s.afterUnsuback = []packet.Packet{&packet.Publish{Topic: "p/q", Payload: []byte("done")}}
		s.start()
		out := capRun(t, s, sub, append(host(s), "-V", "mqttv311", "-i", "sub3-unsub", "-t", "p/#", "-q", "2",
			"-U", "old/#", "-U", "older", "-C", "1")...)
		s.wait(t)
		pkts := capVerify(t, s, true)
		capExpectTypes(t, pkts, packet.CONNECT, packet.SUBSCRIBE, packet.UNSUBSCRIBE, packet.UNSUBSCRIBE, packet.DISCONNECT)
		capEq(t, "subscriptions", pkts[1].(*packet.Subscribe).Subscriptions, []packet.Subscription{{Filter: "p/#", QoS: 2}})
		capEq(t, "UNSUBSCRIBE filters", pkts[2].(*packet.Unsubscribe).Filters, []string{"old/#"})
		capEq(t, "UNSUBSCRIBE filters", pkts[3].(*packet.Unsubscribe).Filters, []string{"older"})
		capEq(t, "mosquitto_sub output", out, "done\n")
	})

	// Keep alive and UNSUBSCRIBE: the v5 CONNACK carries Server Keep Alive
	// 1, which the client must adopt, so it sends PINGREQ within a second or
	// so; the listener answers and then publishes the message the client
	// waits for.
	t.Run("sub-v5-ping-unsubscribe", func(t *testing.T) {
		t.Parallel()
		s := capListen(t)
		s.connackProps.ServerKeepAlive = 1
		s.afterPing = []packet.Packet{&packet.Publish{Topic: "p", Payload: []byte("pong")}}
		s.start()
		out := capRun(t, s, sub, append(host(s), "-V", "mqttv5", "-i", "sub5-ping", "-t", "p", "-U", "old/#", "-C", "1",
			"-D", "unsubscribe", "user-property", "u", "v")...)
		s.wait(t)
		pkts := capVerify(t, s, true)
		ts := capTypes(pkts)
		var sawPing, sawUnsub bool
		for i, p := range pkts {
			switch p := p.(type) {
			case *packet.Pingreq:
				sawPing = true
			case *packet.Unsubscribe:
				sawUnsub = true
				capEq(t, "UNSUBSCRIBE filters", p.Filters, []string{"old/#"})
				capEq(t, "UNSUBSCRIBE user properties", p.Props.User, capUsers("u", "v"))
			case *packet.Connect:
				capEq(t, "CONNECT position", i, 0)
			}
		}
		if !sawPing || !sawUnsub || ts[len(ts)-1] != packet.DISCONNECT {
			t.Errorf("client sent %v, want PINGREQ, UNSUBSCRIBE and a final DISCONNECT among them", ts)
		}
		capEq(t, "mosquitto_sub output", out, "pong\n")
	})
}
