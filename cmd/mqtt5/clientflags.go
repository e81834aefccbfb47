package main

// The command line shared by pub, sub and rr. It follows mosquitto_pub,
// mosquitto_sub and mosquitto_rr: short flags (-h host, -p port, -t topic,
// -q qos ...) with their long forms (--host, --port ...), -D command
// property value [value] for MQTT 5 properties, and -L URLs. Go's flag
// package cannot take -D's several values nor -h as a host, so this file
// has a small parser of its own:
//
//   - "-x value", "--long value", "--long=value" and "-x=value";
//   - boolean flags take no value ("--retain=false" is accepted too);
//   - a single dash works for long names as well ("-url", Go style);
//   - "--" ends the flags; "--help" and "-help" print the usage;
//   - short flags are not combined ("-rq 1" is refused, as in mosquitto).

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/mqtt5go/mqtt5/client"
	"github.com/mqtt5go/mqtt5/packet"
)

// ---- the parser ----

type optKind int

const (
	optBool     optKind = iota // no value
	optValue                   // one value
	optProperty                // -D command identifier value [value]
)

// option is one flag of a command.
type option struct {
	short string // without the dash: "h"
	long  string // without the dashes: "host"
	alias []string
	arg   string // metavariable in the help ("" for booleans)
	help  string
	kind  optKind
	set   func(v string) error // optValue
	flag  func(b bool)         // optBool
}

// cli is the flag set of one command.
type cli struct {
	name, synopsis string
	opts           []*option
	footer         string // printed after the flags by --help
}

func newCLI(name, synopsis, footer string) *cli {
	return &cli{name: name, synopsis: synopsis, footer: footer}
}

func (c *cli) boolVar(p *bool, short, long, help string, alias ...string) {
	c.opts = append(c.opts, &option{short: short, long: long, alias: alias, help: help, kind: optBool,
		flag: func(b bool) { *p = b }})
}

func (c *cli) value(short, long, arg, help string, set func(string) error, alias ...string) {
	c.opts = append(c.opts, &option{short: short, long: long, alias: alias, arg: arg, help: help, kind: optValue, set: set})
}

func (c *cli) stringVar(p *string, short, long, arg, help string, alias ...string) {
	c.value(short, long, arg, help, func(v string) error { *p = v; return nil }, alias...)
}

// intVar parses an integer in [lo, hi].
func (c *cli) intVar(p *int, short, long, arg, help string, lo, hi int) {
	c.value(short, long, arg, help, func(v string) error {
		n, err := strconv.Atoi(v)
		if err != nil || n < lo || n > hi {
			return fmt.Errorf("%q is not an integer from %d to %d", v, lo, hi)
		}
		*p = n
		return nil
	})
}

func (c *cli) listVar(p *[]string, short, long, arg, help string, alias ...string) {
	c.value(short, long, arg, help, func(v string) error { *p = append(*p, v); return nil }, alias...)
}

func (c *cli) lookup(name string) *option {
	switch {
	case strings.HasPrefix(name, "--"):
		name = name[2:]
	case strings.HasPrefix(name, "-"):
		name = name[1:]
		for _, o := range c.opts {
			if o.short != "" && o.short == name {
				return o
			}
		}
	default:
		return nil
	}
	for _, o := range c.opts {
		if o.long == name {
			return o
		}
		for _, a := range o.alias {
			if a == name {
				return o
			}
		}
	}
	return nil
}

// parse parses args. It returns flag.ErrHelp (after printing the usage to
// w) for --help, and errors wrapping errUsage for bad input.
func (c *cli) parse(args []string, w io.Writer) (positional []string, err error) {
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			return append(positional, args[i+1:]...), nil
		}
		if a == "--help" || a == "-help" {
			c.usage(w)
			return nil, flag.ErrHelp
		}
		if len(a) < 2 || a[0] != '-' {
			positional = append(positional, a)
			continue
		}
		name, val, hasVal := a, "", false
		if k := strings.IndexByte(a, '='); k > 1 {
			name, val, hasVal = a[:k], a[k+1:], true
		}
		o := c.lookup(name)
		if o == nil {
			if !strings.HasPrefix(a, "--") && len(name) > 2 && c.lookup(name[:2]) != nil {
				return nil, fmt.Errorf("%w: unknown flag %s (short flags cannot be combined: write each separately, e.g. %s %s)",
					errUsage, name, name[:2], "-"+name[2:3])
			}
			return nil, fmt.Errorf("%w: unknown flag %s (run \"mqtt5 help %s\")", errUsage, name, c.name)
		}
		switch o.kind {
		case optBool:
			b := true
			if hasVal {
				if b, err = strconv.ParseBool(val); err != nil {
					return nil, fmt.Errorf("%w: %s: %q is not a boolean", errUsage, name, val)
				}
			}
			o.flag(b)
		case optValue:
			if !hasVal {
				if i+1 >= len(args) {
					return nil, fmt.Errorf("%w: flag %s needs a value (%s)", errUsage, name, o.arg)
				}
				i++
				val = args[i]
			}
			if err := o.set(val); err != nil {
				return nil, fmt.Errorf("%w: %s: %v", errUsage, name, err)
			}
		case optProperty:
			if hasVal {
				return nil, fmt.Errorf("%w: %s takes three or four separate values: -D command property value", errUsage, name)
			}
			rest := args[i+1:]
			if len(rest) < 3 {
				return nil, fmt.Errorf("%w: %s needs a command, a property name and a value, e.g. -D publish content-type text/plain", errUsage, name)
			}
			n := 3
			if strings.EqualFold(rest[1], "user-property") {
				if len(rest) < 4 {
					return nil, fmt.Errorf("%w: %s %s user-property needs a name and a value", errUsage, name, rest[0])
				}
				n = 4
			}
			if err := o.set(strings.Join(rest[:n], "\x00")); err != nil {
				return nil, fmt.Errorf("%w: %s %s: %v", errUsage, name, strings.Join(rest[:n], " "), err)
			}
			i += n
		}
	}
	return positional, nil
}

func (c *cli) usage(w io.Writer) {
	fmt.Fprintf(w, "Usage: mqtt5 %s\n\nFlags:\n", c.synopsis)
	for _, o := range c.opts {
		var names []string
		if o.short != "" {
			names = append(names, "-"+o.short)
		}
		if o.long != "" {
			names = append(names, "--"+o.long)
		}
		for _, a := range o.alias {
			names = append(names, "--"+a)
		}
		s := strings.Join(names, ", ")
		if o.arg != "" {
			s += " " + o.arg
		}
		if len(s) <= 26 {
			fmt.Fprintf(w, "  %-26s %s\n", s, o.help)
		} else {
			fmt.Fprintf(w, "  %s\n  %-26s %s\n", s, "", o.help)
		}
	}
	if c.footer != "" {
		fmt.Fprintln(w)
		fmt.Fprint(w, c.footer)
	}
}

// ---- connection flags, common to pub, sub and rr ----

// connFlags holds what every client command needs to connect.
type connFlags struct {
	cmd               string
	host              string
	port              int
	url               string
	urlTopic          string
	id, idPrefix      string
	user, pass        string
	userSet, passSet  bool
	version           packet.Version
	keepalive         int
	persistent        bool // -c
	noCleanStart      bool
	sessionExpiry     uint32
	sessionExpirySet  bool
	willTopic         string
	willPayload       string
	willQoS           int
	willRetain        bool
	cafile, cert, key string
	insecure          bool
	alpn              []string
	debug             bool
	props             propFlags
	allowedProps      []string // -D commands this command uses
}

func (cf *connFlags) register(c *cli, allowedProps ...string) {
	cf.cmd = c.name
	cf.keepalive = 60
	cf.allowedProps = allowedProps
	c.stringVar(&cf.host, "h", "host", "HOST", "broker host (default localhost)")
	c.value("p", "port", "PORT", "broker port (default 1883, 8883 with TLS)", func(v string) error {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 65535 {
			return fmt.Errorf("%q is not a port number", v)
		}
		cf.port = n
		return nil
	})
	c.value("L", "url", "URL", "broker and topic as a URL: mqtt(s)://[user[:password]@]host[:port]/topic "+
		"(schemes mqtt, tcp, mqtts, ssl, tls, ws, wss (path /mqtt), quic)", func(v string) error {
		cf.url = v
		return nil
	})
	c.stringVar(&cf.id, "i", "id", "ID", "client identifier (default: assigned by the server in MQTT 5, random in 3.1.1)")
	c.stringVar(&cf.idPrefix, "I", "id-prefix", "PREFIX", "client identifier: PREFIX followed by the process id")
	c.value("u", "username", "USER", "user name", func(v string) error { cf.user, cf.userSet = v, true; return nil })
	c.value("P", "pw", "PASSWORD", "password", func(v string) error { cf.pass, cf.passSet = v, true; return nil }, "password")
	c.value("V", "protocol-version", "VERSION", "MQTT version: 5 (default), 311, mqttv5 or mqttv311", func(v string) error {
		ver, err := parseVersion(v)
		cf.version = ver
		return err
	})
	c.intVar(&cf.keepalive, "k", "keepalive", "SECONDS", "keep alive interval, 0 to disable (default 60)", 0, 65535)
	c.boolVar(&cf.persistent, "c", "disable-clean-session", "persistent session: do not clean it on connect, never expire it "+
		"(unless -x says otherwise); needs -i")
	c.boolVar(&cf.noCleanStart, "", "no-clean-start", "resume the session the server holds for this client id (Clean Start 0); needs -i")
	c.value("x", "session-expiry", "SECONDS", "Session Expiry Interval (MQTT 5); -1, inf or 4294967295: never expires", func(v string) error {
		n, err := parseExpiry(v)
		cf.sessionExpiry, cf.sessionExpirySet = n, true
		return err
	})
	c.opts = append(c.opts, &option{short: "D", long: "property", arg: "COMMAND PROPERTY VALUE",
		help: "MQTT 5 property, repeatable: -D " + strings.Join(allowedProps, "|") +
			" PROPERTY VALUE (user-property KEY VALUE); see below",
		kind: optProperty, set: func(v string) error {
			parts := strings.Split(v, "\x00")
			return cf.props.set(parts[0], parts[1], parts[2:], allowedProps)
		}})
	c.stringVar(&cf.willTopic, "", "will-topic", "TOPIC", "topic of the Will Message")
	c.stringVar(&cf.willPayload, "", "will-payload", "PAYLOAD", "payload of the Will Message (default empty)")
	c.intVar(&cf.willQoS, "", "will-qos", "QOS", "QoS of the Will Message", 0, 2)
	c.boolVar(&cf.willRetain, "", "will-retain", "retain the Will Message")
	c.stringVar(&cf.cafile, "", "cafile", "FILE", "PEM file of trusted CA certificates (enables TLS)")
	c.stringVar(&cf.cert, "", "cert", "FILE", "PEM client certificate (with --key; enables TLS)")
	c.stringVar(&cf.key, "", "key", "FILE", "PEM private key of --cert")
	c.boolVar(&cf.insecure, "", "insecure", "do not check the server's host name against its certificate (enables TLS; testing only)")
	c.listVar(&cf.alpn, "", "alpn", "PROTOCOL", "TLS ALPN protocol to offer, repeatable (enables TLS)", "tls-alpn")
	c.boolVar(&cf.debug, "d", "debug", "print connection events and client diagnostics on stderr")
}

func parseVersion(v string) (packet.Version, error) {
	switch strings.ToLower(v) {
	case "5", "5.0", "v5", "mqttv5", "mqttv50":
		return packet.V5, nil
	case "311", "3.1.1", "v311", "mqttv311", "4":
		return packet.V311, nil
	case "31", "3.1", "mqttv31", "3":
		return 0, errors.New("MQTT 3.1 is not supported (use 311 or 5)")
	}
	return 0, fmt.Errorf("unknown protocol version %q (use 5, 311, mqttv5 or mqttv311)", v)
}

func parseExpiry(v string) (uint32, error) {
	switch strings.ToLower(v) {
	case "-1", "inf", "∞", "infinity", "never":
		return math.MaxUint32, nil
	}
	n, err := strconv.ParseUint(v, 10, 32)
	if err != nil {
		return 0, fmt.Errorf("%q is not a number of seconds from 0 to 4294967295 (or -1 for never)", v)
	}
	return uint32(n), nil
}

// serverURL is a parsed -L value.
type serverURL struct {
	scheme, host, port string
	user, pass         string
	userSet, passSet   bool
	topic              string
}

var knownSchemes = map[string]bool{"mqtt": true, "tcp": true, "mqtts": true, "ssl": true, "tls": true, "ws": true, "wss": true, "quic": true}

func tlsScheme(s string) bool { return s == "mqtts" || s == "ssl" || s == "tls" || s == "wss" }

// parseURL parses mqtt(s)://[user[:password]@]host[:port]/topic. The topic
// is taken as is (no percent decoding: '#' and '+' are topic characters
// here, not URL syntax).
func parseURL(s string) (*serverURL, error) {
	scheme, rest, ok := strings.Cut(s, "://")
	if !ok {
		return nil, fmt.Errorf("%q is not a URL (mqtt://host[:port]/topic)", s)
	}
	u := &serverURL{scheme: strings.ToLower(scheme)}
	if !knownSchemes[u.scheme] {
		return nil, fmt.Errorf("unknown scheme %q (use mqtt, tcp, mqtts, ssl, tls, ws, wss or quic)", scheme)
	}
	authority, topic, _ := strings.Cut(rest, "/")
	u.topic = topic
	if at := strings.LastIndexByte(authority, '@'); at >= 0 {
		userinfo := authority[:at]
		authority = authority[at+1:]
		user, pass, hasPass := strings.Cut(userinfo, ":")
		var err error
		if u.user, err = urlUnescape(user); err != nil {
			return nil, err
		}
		u.userSet = true
		if hasPass {
			if u.pass, err = urlUnescape(pass); err != nil {
				return nil, err
			}
			u.passSet = true
		}
	}
	if authority == "" {
		return nil, fmt.Errorf("%q has no host", s)
	}
	if h, p, err := net.SplitHostPort(authority); err == nil {
		u.host, u.port = h, p
		if n, err := strconv.Atoi(p); err != nil || n < 1 || n > 65535 {
			return nil, fmt.Errorf("%q: bad port %q", s, p)
		}
	} else {
		u.host = strings.TrimSuffix(strings.TrimPrefix(authority, "["), "]")
	}
	if u.host == "" {
		return nil, fmt.Errorf("%q has no host", s)
	}
	return u, nil
}

func urlUnescape(s string) (string, error) {
	if !strings.Contains(s, "%") {
		return s, nil
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '%' {
			b.WriteByte(s[i])
			continue
		}
		if i+2 >= len(s) {
			return "", fmt.Errorf("bad escape in %q", s)
		}
		n, err := strconv.ParseUint(s[i+1:i+3], 16, 8)
		if err != nil {
			return "", fmt.Errorf("bad escape in %q", s)
		}
		b.WriteByte(byte(n))
		i += 2
	}
	return b.String(), nil
}

// options builds the client options. out receives debug output (-d).
func (cf *connFlags) options(errw io.Writer) (client.Options, error) {
	var o client.Options
	if cf.version == 0 {
		cf.version = packet.V5
	}
	o.Version = cf.version
	if cf.version == packet.V311 && cf.props.any() {
		return o, fmt.Errorf("%w: -D properties need MQTT 5 (drop -V %v)", errUsage, cf.version)
	}

	// Where to connect.
	tlsFlags := cf.cafile != "" || cf.cert != "" || cf.key != "" || cf.insecure || len(cf.alpn) > 0
	scheme, host, port := "mqtt", "localhost", ""
	if tlsFlags {
		scheme = "mqtts"
	}
	if cf.url != "" {
		if cf.host != "" || cf.port != 0 {
			return o, fmt.Errorf("%w: give the broker with -L or with -h/-p, not both", errUsage)
		}
		u, err := parseURL(cf.url)
		if err != nil {
			return o, fmt.Errorf("%w: -L: %v", errUsage, err)
		}
		if tlsFlags && !tlsScheme(u.scheme) && u.scheme != "quic" {
			return o, fmt.Errorf("%w: TLS flags with a %s:// URL (use mqtts://, wss:// or quic://)", errUsage, u.scheme)
		}
		scheme, host, port = u.scheme, u.host, u.port
		if u.userSet && !cf.userSet {
			cf.user, cf.userSet = u.user, true
		}
		if u.passSet && !cf.passSet {
			cf.pass, cf.passSet = u.pass, true
		}
		cf.urlTopic = u.topic
	}
	if cf.host != "" {
		host = cf.host
	}
	if cf.port != 0 {
		port = strconv.Itoa(cf.port)
	}
	if port == "" {
		port = "1883"
		switch scheme {
		case "mqtts", "ssl", "tls":
			port = "8883"
		case "ws":
			port = "80"
		case "wss":
			port = "443"
		case "quic":
			port = "14567"
		}
	}
	o.Server = scheme + "://" + net.JoinHostPort(host, port)
	if tlsScheme(scheme) || scheme == "quic" {
		cfg, err := cf.tlsConfig()
		if err != nil {
			return o, err
		}
		o.TLSConfig = cfg
	}

	// Identity.
	if cf.id != "" && cf.idPrefix != "" {
		return o, fmt.Errorf("%w: -i and -I cannot be used together", errUsage)
	}
	o.ClientID = cf.id
	if cf.idPrefix != "" {
		o.ClientID = cf.idPrefix + strconv.Itoa(os.Getpid())
	}
	if o.ClientID == "" && cf.version == packet.V311 {
		o.ClientID = "mqtt5-" + randomID(12)
	}
	if cf.userSet {
		o.Username = cf.user
	}
	if cf.passSet {
		if !cf.userSet && cf.version == packet.V311 {
			return o, fmt.Errorf("%w: MQTT 3.1.1 needs a user name (-u) with a password", errUsage)
		}
		o.Password = []byte(cf.pass)
	}

	// Session.
	if (cf.persistent || cf.noCleanStart) && cf.id == "" && cf.idPrefix == "" {
		return o, fmt.Errorf("%w: a persistent session (-c, --no-clean-start) needs a client id (-i)", errUsage)
	}
	p := &cf.props
	if p.connect.sessionExpirySet {
		cf.sessionExpiry, cf.sessionExpirySet = p.connect.sessionExpiry, true
	}
	switch {
	case cf.sessionExpirySet:
		o.SessionExpiry = cf.sessionExpiry
	case cf.persistent:
		o.SessionExpiry = math.MaxUint32
	case cf.noCleanStart && cf.version == packet.V311:
		o.SessionExpiry = math.MaxUint32 // 3.1.1: a persistent session is Clean Session 0
	}
	if cf.persistent || cf.noCleanStart {
		o.CleanStart = client.CleanStartNever
	} else {
		o.CleanStart = client.CleanStartFirst
	}
	if cf.version == packet.V311 && cf.sessionExpirySet && o.SessionExpiry > 0 && !cf.persistent && !cf.noCleanStart {
		// 3.1.1 has no expiry: a non-zero -x only makes sense with -c.
		return o, fmt.Errorf("%w: -x needs MQTT 5 (use -c for a persistent 3.1.1 session)", errUsage)
	}

	// One handler per command: the client's own subscription identifiers
	// would only show up in the output.
	o.NoAutoSubscriptionIDs = true

	// Keep alive.
	if cf.keepalive == 0 {
		o.Keepalive.Interval = -1
	} else {
		o.Keepalive.Interval = time.Duration(cf.keepalive) * time.Second
	}

	// CONNECT properties.
	o.ReceiveMaximum = p.connect.receiveMaximum
	o.MaximumPacketSize = p.connect.maximumPacketSize
	o.TopicAliasMaximum = p.connect.topicAliasMaximum
	o.RequestResponseInfo = p.connect.requestResponseInfo
	o.NoProblemInfo = p.connect.noProblemInfo
	o.User = p.connect.user

	// Will.
	if cf.willTopic == "" && (cf.willPayload != "" || cf.willQoS != 0 || cf.willRetain || p.will.used) {
		return o, fmt.Errorf("%w: will options without --will-topic", errUsage)
	}
	if cf.willTopic != "" {
		w := &client.Will{Topic: cf.willTopic, Payload: []byte(cf.willPayload), QoS: byte(cf.willQoS), Retain: cf.willRetain}
		m := &p.will.msg
		w.Delay = p.will.delay
		w.PayloadFormat = m.payloadFormat
		w.MessageExpiry = m.messageExpiry
		w.ContentType = m.contentType
		w.ResponseTopic = m.responseTopic
		w.CorrelationData = m.correlationData
		w.User = m.user
		o.Will = w
	}

	if cf.debug {
		o.Logger = slog.New(slog.NewTextHandler(errw, &slog.HandlerOptions{Level: slog.LevelDebug}))
		o.OnConnect = func(i *client.ConnectInfo) {
			fmt.Fprintf(errw, "connected to %s: MQTT %v, client id %q, session present %v\n",
				i.Server, i.Version, i.ClientID, i.SessionPresent)
		}
		o.OnDisconnect = func(d client.DisconnectInfo) {
			if d.Err != nil {
				fmt.Fprintf(errw, "connection lost: %v (reconnecting: %v)\n", d.Err, d.Reconnecting)
			}
		}
	}
	return o, nil
}

func (cf *connFlags) tlsConfig() (*tls.Config, error) {
	cfg := &tls.Config{NextProtos: cf.alpn}
	if cf.cafile != "" {
		pem, err := os.ReadFile(cf.cafile)
		if err != nil {
			return nil, fmt.Errorf("--cafile: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("--cafile %s: no PEM certificate found", cf.cafile)
		}
		cfg.RootCAs = pool
	}
	if (cf.cert == "") != (cf.key == "") {
		return nil, fmt.Errorf("%w: --cert and --key go together", errUsage)
	}
	if cf.cert != "" {
		crt, err := tls.LoadX509KeyPair(cf.cert, cf.key)
		if err != nil {
			return nil, fmt.Errorf("--cert/--key: %w", err)
		}
		cfg.Certificates = []tls.Certificate{crt}
	}
	if cf.insecure {
		// As mosquitto's --insecure: the chain is still verified, against
		// --cafile or the system roots; the host name is not.
		roots := cfg.RootCAs
		cfg.InsecureSkipVerify = true
		cfg.VerifyConnection = func(cs tls.ConnectionState) error {
			if len(cs.PeerCertificates) == 0 {
				return errors.New("tls: server sent no certificate")
			}
			inter := x509.NewCertPool()
			for _, c := range cs.PeerCertificates[1:] {
				inter.AddCert(c)
			}
			_, err := cs.PeerCertificates[0].Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter})
			return err
		}
	}
	return cfg, nil
}

// connect creates the client and connects it; connection refusals become
// messages naming the reason code.
func connectClient(ctx context.Context, o client.Options) (*client.Client, *client.ConnectInfo, error) {
	c, err := client.New(o)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: %v", errUsage, err)
	}
	info, err := c.Connect(ctx)
	if err != nil {
		return nil, nil, describe("connection", err)
	}
	return c, info, nil
}

// disconnect ends c with a normal DISCONNECT (and the -D disconnect
// session-expiry-interval, if any), within a few seconds whatever ctx says.
func disconnect(c *client.Client, p *propFlags) error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	exp := client.KeepSessionExpiry
	if p.disconnect.sessionExpirySet {
		exp = int64(p.disconnect.sessionExpiry)
	}
	if err := c.Disconnect(ctx, packet.NormalDisconnection, exp); err != nil {
		return describe("disconnect", err)
	}
	return nil
}

// refusal is an error naming the reason code the server (or the client, for
// limits the server announced) gave.
type refusal struct {
	msg string
	err error
}

func (r *refusal) Error() string { return r.msg }
func (r *refusal) Unwrap() error { return r.err }

// describe turns err into a message for the user: "publish refused: not
// authorized (0x87)" for reason codes, the error itself otherwise.
func describe(op string, err error) error {
	var re *client.ReasonError
	if errors.As(err, &re) {
		what := op
		if re.Filter != "" {
			what += " " + re.Filter
		}
		msg := fmt.Sprintf("%s refused: %s (0x%02x)", what, re.Code.String(), byte(re.Code))
		if re.Local {
			msg = fmt.Sprintf("%s refused by the client: %s (0x%02x)", what, re.Code.String(), byte(re.Code))
		}
		if re.ReasonString != "" {
			msg += ": " + re.ReasonString
		}
		return &refusal{msg: msg, err: err}
	}
	if errors.Is(err, client.ErrTransportUnavailable) {
		return &refusal{msg: op + " failed: " + err.Error() + " (only mqtt://, tcp://, mqtts://, ssl:// and tls:// are built into mqtt5 for now)", err: err}
	}
	return &refusal{msg: op + " failed: " + err.Error(), err: err}
}

// ---- MQTT 5 properties (-D) ----

// msgProps are the properties of a PUBLISH or a will.
type msgProps struct {
	payloadFormat   byte
	messageExpiry   uint32
	contentType     string
	responseTopic   string
	correlationData []byte
	topicAlias      uint16
	user            []packet.UserProperty
}

type propFlags struct {
	count   int
	connect struct {
		sessionExpiry       uint32
		sessionExpirySet    bool
		receiveMaximum      uint16
		maximumPacketSize   uint32
		topicAliasMaximum   uint16
		requestResponseInfo bool
		noProblemInfo       bool
		user                []packet.UserProperty
	}
	publish msgProps
	will    struct {
		used  bool
		msg   msgProps
		delay uint32
	}
	subscribe struct {
		subscriptionID uint32
		user           []packet.UserProperty
	}
	disconnect struct {
		sessionExpiry    uint32
		sessionExpirySet bool
	}
}

func (p *propFlags) any() bool { return p.count > 0 }

// propNames lists, per command, the property names -D accepts.
var propNames = map[string][]string{
	"connect": {"session-expiry-interval", "receive-maximum", "maximum-packet-size", "topic-alias-maximum",
		"request-response-information", "request-problem-information", "user-property"},
	"publish": {"payload-format-indicator", "message-expiry-interval", "content-type", "response-topic",
		"correlation-data", "topic-alias", "user-property"},
	"will": {"will-delay-interval", "payload-format-indicator", "message-expiry-interval", "content-type",
		"response-topic", "correlation-data", "user-property"},
	"subscribe":  {"subscription-identifier", "user-property"},
	"disconnect": {"session-expiry-interval"},
}

func uintValue(v string, max uint64) (uint64, error) {
	n, err := strconv.ParseUint(v, 10, 64)
	if err != nil || n > max {
		return 0, fmt.Errorf("%q is not an integer from 0 to %d", v, max)
	}
	return n, nil
}

// set records -D cmd name vals.
func (p *propFlags) set(cmd, name string, vals []string, allowed []string) error {
	cmd, name = strings.ToLower(cmd), strings.ToLower(name)
	names, known := propNames[cmd]
	if !known {
		return fmt.Errorf("unknown command %q (this command takes %s)", cmd, strings.Join(allowed, ", "))
	}
	ok := false
	for _, a := range allowed {
		ok = ok || a == cmd
	}
	if !ok {
		return fmt.Errorf("%q properties are not used by this command (it takes %s)", cmd, strings.Join(allowed, ", "))
	}
	found := false
	for _, n := range names {
		found = found || n == name
	}
	if !found {
		return fmt.Errorf("unknown %s property %q (known: %s)", cmd, name, strings.Join(names, ", "))
	}
	p.count++
	v := vals[0]
	var user *[]packet.UserProperty
	var mp *msgProps
	switch cmd {
	case "connect":
		c := &p.connect
		switch name {
		case "session-expiry-interval":
			n, err := parseExpiry(v)
			c.sessionExpiry, c.sessionExpirySet = n, true
			return err
		case "receive-maximum":
			n, err := uintValue(v, 65535)
			if err == nil && n == 0 {
				err = errors.New("receive-maximum cannot be 0")
			}
			c.receiveMaximum = uint16(n)
			return err
		case "maximum-packet-size":
			n, err := uintValue(v, math.MaxUint32)
			if err == nil && n == 0 {
				err = errors.New("maximum-packet-size cannot be 0")
			}
			c.maximumPacketSize = uint32(n)
			return err
		case "topic-alias-maximum":
			n, err := uintValue(v, 65535)
			c.topicAliasMaximum = uint16(n)
			return err
		case "request-response-information":
			n, err := uintValue(v, 1)
			c.requestResponseInfo = n == 1
			return err
		case "request-problem-information":
			n, err := uintValue(v, 1)
			c.noProblemInfo = n == 0
			return err
		case "user-property":
			user = &c.user
		}
	case "publish":
		mp = &p.publish
	case "will":
		p.will.used = true
		if name == "will-delay-interval" {
			n, err := uintValue(v, math.MaxUint32)
			p.will.delay = uint32(n)
			return err
		}
		mp = &p.will.msg
	case "subscribe":
		switch name {
		case "subscription-identifier":
			n, err := uintValue(v, 268_435_455)
			if err == nil && n == 0 {
				err = errors.New("subscription-identifier must be from 1 to 268435455")
			}
			p.subscribe.subscriptionID = uint32(n)
			return err
		case "user-property":
			user = &p.subscribe.user
		}
	case "disconnect":
		n, err := parseExpiry(v)
		p.disconnect.sessionExpiry, p.disconnect.sessionExpirySet = n, true
		return err
	}
	if mp != nil {
		switch name {
		case "payload-format-indicator":
			n, err := uintValue(v, 1)
			mp.payloadFormat = byte(n)
			return err
		case "message-expiry-interval":
			n, err := uintValue(v, math.MaxUint32)
			mp.messageExpiry = uint32(n)
			return err
		case "content-type":
			mp.contentType = v
		case "response-topic":
			mp.responseTopic = v
		case "correlation-data":
			mp.correlationData = []byte(v)
		case "topic-alias":
			n, err := uintValue(v, 65535)
			if err == nil && n == 0 {
				err = errors.New("topic-alias must be from 1 to 65535")
			}
			mp.topicAlias = uint16(n)
			return err
		case "user-property":
			user = &mp.user
		}
	}
	if user != nil {
		*user = append(*user, packet.UserProperty{Key: vals[0], Value: vals[1]})
	}
	return nil
}

// apply copies the publish properties to m.
func (mp *msgProps) apply(m *client.Message) {
	m.PayloadFormat = mp.payloadFormat
	m.MessageExpiry = mp.messageExpiry
	m.ContentType = mp.contentType
	m.ResponseTopic = mp.responseTopic
	m.CorrelationData = mp.correlationData
	m.TopicAlias = mp.topicAlias
	m.User = mp.user
}

const propHelp = `MQTT 5 properties (-D COMMAND PROPERTY VALUE, repeatable; names as in mosquitto):
  connect     session-expiry-interval, receive-maximum, maximum-packet-size,
              topic-alias-maximum, request-response-information,
              request-problem-information, user-property NAME VALUE
  publish     payload-format-indicator, message-expiry-interval, content-type,
              response-topic, correlation-data, topic-alias, user-property NAME VALUE
  will        will-delay-interval, payload-format-indicator, message-expiry-interval,
              content-type, response-topic, correlation-data, user-property NAME VALUE
  subscribe   subscription-identifier, user-property NAME VALUE
  disconnect  session-expiry-interval
`

// ---- payload codecs (pub --compress, sub --decompress) ----

// codecFlags holds the payload compression flags.
type codecFlags struct {
	compress      string
	level         int
	levelSet      bool
	minSize       int
	minSet        bool
	decompress    bool
	maxSize       int64
	maxSet        bool
	compressFlags bool // registered: pub
}

func (f *codecFlags) registerCompress(c *cli) {
	f.compressFlags = true
	c.value("", "compress", "gzip|deflate", "compress the payload; sets Content Type application/gzip or "+
		"application/x-deflate (MQTT 5; not when -D publish content-type is given)", func(v string) error {
		switch strings.ToLower(v) {
		case "gzip", "deflate":
			f.compress = strings.ToLower(v)
			return nil
		}
		return fmt.Errorf("%q is not gzip or deflate", v)
	})
	c.value("", "compress-level", "N", "compression level, 1 (fastest) to 9 (smallest); default 6", func(v string) error {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 9 {
			return fmt.Errorf("%q is not an integer from 1 to 9", v)
		}
		f.level, f.levelSet = n, true
		return nil
	})
	c.value("", "compress-min", "BYTES", "send payloads shorter than BYTES uncompressed, without Content Type (default 0)", func(v string) error {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			return fmt.Errorf("%q is not a number of bytes", v)
		}
		f.minSize, f.minSet = n, true
		return nil
	})
}

func (f *codecFlags) registerDecompress(c *cli) {
	c.boolVar(&f.decompress, "", "decompress", "decompress payloads whose Content Type is application/gzip or "+
		"application/x-deflate (MQTT 5); those that fail are reported on stderr and skipped")
	c.value("", "max-decompressed", "BYTES", fmt.Sprintf("largest decompressed payload (default %d); implies --decompress",
		client.DefaultMaxDecompressed), func(v string) error {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 1 {
			return fmt.Errorf("%q is not a positive number of bytes", v)
		}
		f.maxSize, f.maxSet = n, true
		return nil
	})
}

// codec returns the client codec the flags ask for, nil for none.
func (f *codecFlags) codec(v packet.Version) (*client.Codec, error) {
	if f.compressFlags && f.compress == "" && (f.levelSet || f.minSet) {
		return nil, fmt.Errorf("%w: --compress-level and --compress-min need --compress", errUsage)
	}
	if f.compress == "" && !f.decompress && !f.maxSet {
		return nil, nil
	}
	if v == packet.V311 {
		return nil, fmt.Errorf("%w: payload compression needs MQTT 5 (it is named by the Content Type property): drop -V %v", errUsage, v)
	}
	return &client.Codec{
		Compression:     client.Compression(f.compress),
		Level:           f.level,
		MinSize:         f.minSize,
		MaxDecompressed: f.maxSize,
	}, nil
}

// ---- message source (pub and rr) ----

// msgSource holds -m, -f, -s, -l and -n.
type msgSource struct {
	message    string
	messageSet bool
	file       string
	stdin      bool // -s
	lines      bool // -l
	null       bool // -n
}

func (s *msgSource) register(c *cli, lines bool) {
	c.value("m", "message", "MESSAGE", "the message payload", func(v string) error { s.message, s.messageSet = v, true; return nil })
	c.stringVar(&s.file, "f", "file", "FILE", "send the contents of FILE as the message")
	c.boolVar(&s.stdin, "s", "stdin-file", "read the message from stdin (the whole input is one message)")
	if lines {
		c.boolVar(&s.lines, "l", "stdin-line", "read messages from stdin, one per line (empty lines are not sent)")
	}
	c.boolVar(&s.null, "n", "null-message", "send a zero-length message")
}

func (s *msgSource) check() error {
	n := 0
	for _, b := range []bool{s.messageSet, s.file != "", s.stdin, s.lines, s.null} {
		if b {
			n++
		}
	}
	switch {
	case n == 0:
		return fmt.Errorf("%w: no message: give one of -m, -f, -s, -l or -n", errUsage)
	case n > 1:
		return fmt.Errorf("%w: only one of -m, -f, -s, -l and -n can be given", errUsage)
	}
	return nil
}

// payload returns the single message of -m, -f, -s or -n.
func (s *msgSource) payload(ctx context.Context) ([]byte, error) {
	switch {
	case s.messageSet:
		return []byte(s.message), nil
	case s.file != "":
		b, err := os.ReadFile(s.file)
		if err != nil {
			return nil, fmt.Errorf("-f: %w", err)
		}
		return b, nil
	case s.stdin:
		b, err := io.ReadAll(stdinFrom(ctx))
		if err != nil {
			return nil, fmt.Errorf("reading stdin: %w", err)
		}
		return b, nil
	}
	return []byte{}, nil
}

// stdinKey carries the standard input in the context (tests replace it).
type stdinKey struct{}

func stdinFrom(ctx context.Context) io.Reader {
	if r, ok := ctx.Value(stdinKey{}).(io.Reader); ok {
		return r
	}
	return os.Stdin
}

// ---- helpers ----

// lockedWriter serialises writes from the client's goroutines and drops
// those that come after close (callbacks may outlive the command).
type lockedWriter struct {
	mu     sync.Mutex
	w      io.Writer
	closed bool
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return len(p), nil
	}
	return l.w.Write(p)
}

func (l *lockedWriter) close() {
	l.mu.Lock()
	l.closed = true
	l.mu.Unlock()
}

func randomID(n int) string {
	const alphabet = "abcdefghijklmnopqrstuvwxyz0123456789"
	b := make([]byte, n)
	rand.Read(b)
	for i := range b {
		b[i] = alphabet[int(b[i])%len(alphabet)]
	}
	return string(b)
}

const exitHelp = `Exit status:
  0  success%s
  1  failure: the connection was refused or lost, the server refused with a
     reason code (printed, e.g. "publish refused: not authorized (0x87)"),
     a timeout, a file that cannot be read
  2  bad command line (unknown flag, missing value, flags that do not go together)
`
