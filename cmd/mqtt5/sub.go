package main

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/mqtt5go/mqtt5/client"
	"github.com/mqtt5go/mqtt5/packet"
	"github.com/mqtt5go/mqtt5/topic"
)

const subSynopsis = "sub {-t filter ... | -L URL} [flags]"

const subFooter = `Output formats (-F):
  raw      the payload, then a newline (unless -N); the default
  verbose  the topic with QoS, retain and dup flags, then every property on a
           line of its own, then the payload (base64 if it is not UTF-8)
  json     one JSON object per line: {"topic", "payload" (a string if it is
           UTF-8, else base64 with "payload_base64": true), "qos", "retain",
           "properties": {"payload_format_indicator", "message_expiry_interval",
           "content_type", "response_topic", "correlation_data" (+
           "correlation_data_base64"), "user_properties": [{"key", "value"}],
           "subscription_identifiers", "topic_alias"}}
  -v is mosquitto's verbose mode: the topic, a space, the payload.

Examples:
  mqtt5 sub -t 'sensors/#' -v
  mqtt5 sub -t 'sensors/#' -T sensors/debug/# -F json -q 1
  mqtt5 sub -t status -C 1 -W 5 -R      # the next fresh message, or exit 1 after 5 s
  mqtt5 sub -c -i archiver -q 2 -t 'logs/#' -x 3600   # persistent, kept 1 h offline
  mqtt5 sub -t 'logs/#' --decompress --max-decompressed 1048576

` + propHelp + `
` + "MQTT 5 is the default (mosquitto_sub defaults to 3.1.1): pass -V 311 for 3.1.1.\n" +
	"Messages hidden by -T or -R do not count towards -C. -W ends the command after\n" +
	"that many seconds from the connection: with exit status 1 when -C was given and\n" +
	"not reached, 0 otherwise.\n\n"

// outFormat selects how received messages are printed.
type outFormat int

const (
	fmtRaw     outFormat = iota // payload
	fmtTopic                    // -v: topic payload
	fmtVerbose                  // -F verbose
	fmtJSON                     // -F json
)

// outputFlags are the printing flags of sub and rr.
type outputFlags struct {
	verbose   bool
	format    string
	noNewline bool
}

func (f *outputFlags) register(c *cli) {
	c.boolVar(&f.verbose, "v", "verbose", "print the topic, a space, then the payload")
	c.stringVar(&f.format, "F", "format", "FORMAT", "output format: raw, verbose or json (overrides -v; see below)")
	c.boolVar(&f.noNewline, "N", "no-newline", "do not print a newline after the payload (raw and -v only)")
}

func (f *outputFlags) get() (outFormat, error) {
	switch f.format {
	case "":
		if f.verbose {
			return fmtTopic, nil
		}
		return fmtRaw, nil
	case "raw":
		return fmtRaw, nil
	case "verbose":
		return fmtVerbose, nil
	case "json":
		return fmtJSON, nil
	}
	return 0, fmt.Errorf("%w: -F %q: the formats are raw, verbose and json", errUsage, f.format)
}

// appendMessage appends m, formatted, to dst.
func appendMessage(dst []byte, m *client.Message, f outFormat, newline bool) []byte {
	switch f {
	case fmtTopic:
		dst = append(dst, m.Topic...)
		dst = append(dst, ' ')
		fallthrough
	case fmtRaw:
		dst = append(dst, m.Payload...)
		if newline {
			dst = append(dst, '\n')
		}
	case fmtVerbose:
		dst = fmt.Appendf(dst, "%s qos=%d retain=%v dup=%v\n", m.Topic, m.QoS, m.Retain, m.Dup)
		if m.PayloadFormat != 0 {
			dst = fmt.Appendf(dst, "  payload-format-indicator: %d\n", m.PayloadFormat)
		}
		if m.MessageExpiry != 0 {
			dst = fmt.Appendf(dst, "  message-expiry-interval: %d\n", m.MessageExpiry)
		}
		if m.ContentType != "" {
			dst = fmt.Appendf(dst, "  content-type: %s\n", m.ContentType)
		}
		if m.ResponseTopic != "" {
			dst = fmt.Appendf(dst, "  response-topic: %s\n", m.ResponseTopic)
		}
		if m.CorrelationData != nil {
			if utf8.Valid(m.CorrelationData) {
				dst = fmt.Appendf(dst, "  correlation-data: %s\n", m.CorrelationData)
			} else {
				dst = fmt.Appendf(dst, "  correlation-data (base64): %s\n", base64.StdEncoding.EncodeToString(m.CorrelationData))
			}
		}
		if m.TopicAlias != 0 {
			dst = fmt.Appendf(dst, "  topic-alias: %d\n", m.TopicAlias)
		}
		for _, id := range m.SubscriptionIDs {
			dst = fmt.Appendf(dst, "  subscription-identifier: %d\n", id)
		}
		for _, u := range m.User {
			dst = fmt.Appendf(dst, "  user-property: %s=%s\n", u.Key, u.Value)
		}
		if utf8.Valid(m.Payload) {
			dst = fmt.Appendf(dst, "  payload (%d bytes): %s\n", len(m.Payload), m.Payload)
		} else {
			dst = fmt.Appendf(dst, "  payload (%d bytes, base64): %s\n", len(m.Payload), base64.StdEncoding.EncodeToString(m.Payload))
		}
	case fmtJSON:
		b, _ := json.Marshal(jsonMessageOf(m))
		dst = append(dst, b...)
		dst = append(dst, '\n')
	}
	return dst
}

type jsonMessage struct {
	Topic         string          `json:"topic"`
	Payload       string          `json:"payload"`
	PayloadBase64 bool            `json:"payload_base64,omitempty"`
	QoS           byte            `json:"qos"`
	Retain        bool            `json:"retain"`
	Dup           bool            `json:"dup,omitempty"`
	Properties    *jsonProperties `json:"properties,omitempty"`
}

type jsonProperties struct {
	PayloadFormat         *byte      `json:"payload_format_indicator,omitempty"`
	MessageExpiry         *uint32    `json:"message_expiry_interval,omitempty"`
	ContentType           string     `json:"content_type,omitempty"`
	ResponseTopic         string     `json:"response_topic,omitempty"`
	CorrelationData       *string    `json:"correlation_data,omitempty"`
	CorrelationDataBase64 bool       `json:"correlation_data_base64,omitempty"`
	UserProperties        []jsonUser `json:"user_properties,omitempty"`
	SubscriptionIDs       []uint32   `json:"subscription_identifiers,omitempty"`
	TopicAlias            uint16     `json:"topic_alias,omitempty"`
}

type jsonUser struct {
	Key   string `json:"key"`
	Value string `json:"value"`
}

// textOrBase64 returns b as a string if it is UTF-8, else in base64.
func textOrBase64(b []byte) (string, bool) {
	if utf8.Valid(b) {
		return string(b), false
	}
	return base64.StdEncoding.EncodeToString(b), true
}

func jsonMessageOf(m *client.Message) *jsonMessage {
	j := &jsonMessage{Topic: m.Topic, QoS: m.QoS, Retain: m.Retain, Dup: m.Dup}
	j.Payload, j.PayloadBase64 = textOrBase64(m.Payload)
	var p jsonProperties
	has := false
	if m.PayloadFormat != 0 {
		v := m.PayloadFormat
		p.PayloadFormat, has = &v, true
	}
	if m.MessageExpiry != 0 {
		v := m.MessageExpiry
		p.MessageExpiry, has = &v, true
	}
	if m.ContentType != "" {
		p.ContentType, has = m.ContentType, true
	}
	if m.ResponseTopic != "" {
		p.ResponseTopic, has = m.ResponseTopic, true
	}
	if m.CorrelationData != nil {
		s, b64 := textOrBase64(m.CorrelationData)
		p.CorrelationData, p.CorrelationDataBase64, has = &s, b64, true
	}
	for _, u := range m.User {
		p.UserProperties, has = append(p.UserProperties, jsonUser{u.Key, u.Value}), true
	}
	if len(m.SubscriptionIDs) > 0 {
		p.SubscriptionIDs, has = m.SubscriptionIDs, true
	}
	if m.TopicAlias != 0 {
		p.TopicAlias, has = m.TopicAlias, true
	}
	if has {
		j.Properties = &p
	}
	return j
}

// runSub subscribes and prints what arrives until -C messages were
// printed, -W seconds passed, or the command is interrupted.
func runSub(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	c := newCLI("sub", subSynopsis, subFooter+fmt.Sprintf(exitHelp,
		": -C messages received, -E subscribed, -W elapsed without -C, or interrupted (Ctrl-C)"))
	var (
		cf            connFlags
		out           outputFlags
		topics        []string
		filterOut     []string
		qos           int
		count         int
		timeout       int
		noStale       bool
		retainedOnly  bool
		removeRetain  bool
		exitSubscribe bool
		noLocal       bool
		rap           bool
		rh            int
	)
	c.listVar(&topics, "t", "topic", "FILTER", "topic filter to subscribe to (repeatable)")
	c.listVar(&filterOut, "T", "filter-out", "FILTER", "do not print messages whose topic matches FILTER (repeatable)")
	c.intVar(&qos, "q", "qos", "QOS", "maximum QoS of the subscriptions: 0, 1 or 2 (default 0)", 0, 2)
	out.register(c)
	c.intVar(&count, "C", "count", "N", "exit after printing N messages", 1, 1<<31-1)
	c.intVar(&timeout, "W", "timeout", "SECONDS", "exit after SECONDS from the connection", 1, 1<<31-1)
	c.boolVar(&noStale, "R", "no-retained", "do not print stale (retained) messages")
	c.boolVar(&retainedOnly, "", "retained-only", "print only retained messages; exit at the first fresh one")
	c.boolVar(&removeRetain, "", "remove-retained", "clear every retained message received (publish an empty retained message to its topic)")
	c.boolVar(&exitSubscribe, "E", "exit-after-subscribe", "exit once subscribed (with -c: create a persistent session)")
	c.boolVar(&noLocal, "", "nl", "No Local: do not receive our own publications (MQTT 5)", "no-local")
	c.boolVar(&rap, "", "rap", "Retain As Published: keep the retain flag of forwarded messages (MQTT 5)", "retain-as-published")
	c.value("", "rh", "0|1|2", "Retain Handling (MQTT 5): 0 send retained messages (default), 1 only for a new subscription, 2 never",
		func(v string) error {
			n, err := strconv.Atoi(v)
			if err != nil || n < 0 || n > 2 {
				return fmt.Errorf("%q is not 0, 1 or 2", v)
			}
			rh = n
			return nil
		}, "retain-handling")
	var codec codecFlags
	codec.registerDecompress(c)
	cf.register(c, "connect", "subscribe", "will", "disconnect")
	pos, err := c.parse(args, stderr)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return fmt.Errorf("%w: unexpected argument %q", errUsage, pos[0])
	}
	format, err := out.get()
	if err != nil {
		return err
	}
	errw := &lockedWriter{w: stderr}
	defer errw.close()
	outw := &lockedWriter{w: stdout}
	defer outw.close()
	o, err := cf.options(errw)
	if err != nil {
		return err
	}
	if o.Codec, err = codec.codec(cf.version); err != nil {
		return err
	}
	if o.Codec != nil {
		o.OnError = func(err error) {
			var ce *client.CodecError
			if errors.As(err, &ce) {
				fmt.Fprintf(errw, "mqtt5 sub: skipped a message on %s: %v\n", ce.Topic, ce.Err)
			}
		}
	}
	if cf.urlTopic != "" {
		topics = append(topics, cf.urlTopic)
	}
	if len(topics) == 0 {
		return fmt.Errorf("%w: no topic: give -t FILTER (repeatable) or a -L URL with a topic", errUsage)
	}
	if cf.version != packet.V5 && (noLocal || rap || rh != 0) {
		return fmt.Errorf("%w: --nl, --rap and --rh need MQTT 5", errUsage)
	}
	if noStale && retainedOnly {
		return fmt.Errorf("%w: -R and --retained-only contradict each other", errUsage)
	}
	subs := make([]client.Subscription, len(topics))
	for i, t := range topics {
		if err := topic.ValidateFilter(t); err != nil {
			return fmt.Errorf("%w: -t %q: %v", errUsage, t, err)
		}
		subs[i] = client.Subscription{Filter: t, QoS: byte(qos), NoLocal: noLocal, RetainAsPublished: rap, RetainHandling: byte(rh)}
	}
	for _, t := range filterOut {
		if err := topic.ValidateFilter(t); err != nil {
			return fmt.Errorf("%w: -T %q: %v", errUsage, t, err)
		}
	}

	// The handler prints and acknowledges; with a count, messages after
	// the last one are left unacknowledged, so a persistent session keeps
	// them for the next run.
	var (
		mu       sync.Mutex
		printed  int
		finished bool
		doneCh   = make(chan struct{})
		cl       *client.Client
		buf      []byte
		removals []*client.Token // --remove-retained publishes
	)
	finish := func() {
		if !finished {
			finished = true
			close(doneCh)
		}
	}
	handler := func(m *client.Message) {
		mu.Lock()
		if finished {
			mu.Unlock()
			return
		}
		hidden := false
		for _, f := range filterOut {
			if topic.Matches(f, m.Topic) {
				hidden = true
			}
		}
		if !hidden && removeRetain && m.Retain && len(m.Payload) > 0 {
			removals = append(removals, cl.PublishAsync(ctx, &client.Message{Topic: m.Topic, Retain: true, Payload: []byte{}}))
		}
		last := false
		switch {
		case hidden, noStale && m.Retain:
		case retainedOnly && !m.Retain:
			// The first fresh message ends the command; it is left
			// unacknowledged (a persistent session keeps it).
			finish()
			mu.Unlock()
			return
		default:
			buf = appendMessage(buf[:0], m, format, !out.noNewline)
			outw.Write(buf)
			printed++
			last = count > 0 && printed >= count
		}
		mu.Unlock()
		// Acknowledged before the command may end: the client sends
		// acknowledgements made before Disconnect.
		m.Ack()
		if last {
			mu.Lock()
			finish()
			mu.Unlock()
		}
	}
	o.ManualAck = true
	o.DefaultHandler = handler // messages of a resumed session before we subscribe again

	cl, err = client.New(o)
	if err != nil {
		return fmt.Errorf("%w: %v", errUsage, err)
	}
	if _, err := cl.Connect(ctx); err != nil {
		return describe("connection", err)
	}
	var timer <-chan time.Time
	if timeout > 0 {
		t := time.NewTimer(time.Duration(timeout) * time.Second)
		defer t.Stop()
		timer = t.C
	}
	err = subscribe(ctx, cl, subs, handler, &cf.props, errw, cf.debug)
	if err == nil && !exitSubscribe {
		select {
		case <-doneCh:
		case <-ctx.Done(): // interrupted: a normal end
		case <-timer:
			mu.Lock()
			if count > 0 && printed < count {
				err = fmt.Errorf("timed out after %ds: %d of %d messages received", timeout, printed, count)
			}
			mu.Unlock()
		case <-cl.Done():
			err = fmt.Errorf("connection ended: %w", cl.Err())
		}
	}
	mu.Lock()
	finish()
	pending := removals
	mu.Unlock()
	wctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	for _, t := range pending {
		if werr := t.Wait(wctx); werr != nil && err == nil {
			err = describe("removing a retained message", werr)
		}
	}
	cancel()
	if derr := disconnect(cl, &cf.props); err == nil && cl.Err() == nil {
		err = derr
	}
	return err
}

// subscribe sends the SUBSCRIBE and reports refusals: each refused filter
// is named on stderr; when all are refused the command fails.
func subscribe(ctx context.Context, cl *client.Client, subs []client.Subscription, h client.Handler, p *propFlags, errw io.Writer, debug bool) error {
	ack, err := cl.Subscribe(ctx, subs, h, subscribeOptions(p)...)
	return subackResult(ack, err, subs, errw, debug)
}

// subscribeOptions returns the options of -D subscribe properties.
func subscribeOptions(p *propFlags) []client.SubscribeOption {
	var opts []client.SubscribeOption
	if id := p.subscribe.subscriptionID; id != 0 {
		opts = append(opts, client.WithSubscriptionID(id))
	}
	if len(p.subscribe.user) > 0 {
		opts = append(opts, client.WithUserProperties(p.subscribe.user...))
	}
	return opts
}

// subackResult reports the outcome of a SUBSCRIBE of subs as subscribe
// does.
func subackResult(ack *client.Suback, err error, subs []client.Subscription, errw io.Writer, debug bool) error {
	if ack == nil {
		return describe("subscribe", err)
	}
	granted := 0
	for i, code := range ack.Codes {
		f := subs[i].Filter
		switch {
		case code.IsError():
			msg := fmt.Sprintf("subscribe %s refused: %s (0x%02x)", f, code.String(), byte(code))
			if ack.ReasonString != "" {
				msg += ": " + ack.ReasonString
			}
			if len(ack.Codes) > 1 {
				fmt.Fprintln(errw, "mqtt5 sub: "+msg)
			} else {
				return &refusal{msg: msg, err: err}
			}
		default:
			granted++
			if debug {
				fmt.Fprintf(errw, "subscribed to %s: granted QoS %d\n", f, byte(code))
			}
		}
	}
	if granted == 0 {
		return &refusal{msg: "every subscription was refused", err: err}
	}
	return nil
}
