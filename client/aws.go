package client

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/mqtt5go/mqtt5/packet"
	"github.com/mqtt5go/mqtt5/transport"
)

// AWSIoTALPN is the ALPN protocol that AWS IoT Core requires for MQTT with
// X.509 client certificates on port 443.
const AWSIoTALPN = "x-amzn-mqtt-ca"

// Keep alive bounds of AWS IoT Core: a keep alive under 30 s is treated as
// 30 s and one above 1200 s (or 0) as 1200 s. AWSIoT clamps to them and
// uses AWSDefaultKeepAlive unless told otherwise.
const (
	AWSMinKeepAlive     = 30 * time.Second
	AWSMaxKeepAlive     = 1200 * time.Second
	AWSDefaultKeepAlive = 300 * time.Second
)

// IsAWSIoTEndpoint reports whether host (a host name, host:port or a URL)
// is an AWS IoT Core device data endpoint: {prefix}.iot.{region}.amazonaws.com
// (ATS endpoints have a prefix ending in "-ats"), or the same under
// amazonaws.com.cn. Custom domains configured in AWS IoT are not
// recognised: pass them to AWSIoT all the same.
func IsAWSIoTEndpoint(host string) bool {
	_, ok := AWSIoTRegion(host)
	return ok
}

// AWSIoTRegion returns the region of an AWS IoT Core endpoint (see
// IsAWSIoTEndpoint).
func AWSIoTRegion(host string) (string, bool) {
	h := awsHost(host)
	labels := strings.Split(strings.ToLower(h), ".")
	switch {
	case len(labels) == 5 && labels[3] == "amazonaws" && labels[4] == "com":
	case len(labels) == 6 && labels[3] == "amazonaws" && labels[4] == "com" && labels[5] == "cn":
	default:
		return "", false
	}
	if labels[0] == "" || labels[1] != "iot" || !awsRegion(labels[2]) {
		return "", false
	}
	for _, c := range labels[0] {
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
			return "", false
		}
	}
	return labels[2], true
}

// awsHost extracts the host of a host, host:port or URL.
func awsHost(s string) string {
	if _, rest, ok := strings.Cut(s, "://"); ok {
		s = rest
	}
	if i := strings.IndexAny(s, "/?#"); i >= 0 {
		s = s[:i]
	}
	if h, _, err := net.SplitHostPort(s); err == nil {
		return h
	}
	return s
}

// awsRegion reports whether r looks like an AWS region: us-east-1,
// us-gov-west-1, cn-north-1, ap-southeast-2 ...
func awsRegion(r string) bool {
	parts := strings.Split(r, "-")
	if len(parts) < 3 {
		return false
	}
	for _, p := range parts[:len(parts)-1] {
		if p == "" {
			return false
		}
		for _, c := range p {
			if c < 'a' || c > 'z' {
				return false
			}
		}
	}
	n, err := strconv.Atoi(parts[len(parts)-1])
	return err == nil && n > 0
}

// AWSOption configures AWSIoT.
type AWSOption func(*awsConfig)

type awsConfig struct {
	thing             string
	port443           bool
	caPEM             []byte
	caFile            string
	certFile, keyFile string
	keepalive         time.Duration
	allowReserved     []string
}

// AWSThingName sets the thing name: the client identifier (AWS policies
// commonly require client id = thing name) and the thing whose reserved
// shadow and jobs topics the namespace allows.
func AWSThingName(name string) AWSOption { return func(c *awsConfig) { c.thing = name } }

// AWSPort443 connects with TLS on port 443 (unless the endpoint names a
// port) offering ALPN x-amzn-mqtt-ca, for networks that only let HTTPS
// out. Without it the connection is mqtts on port 8883. An endpoint with
// port 443 implies it.
func AWSPort443() AWSOption { return func(c *awsConfig) { c.port443 = true } }

// AWSRootCA trusts the given certificates (PEM or DER), for example Amazon
// Root CA 1, instead of the system roots.
func AWSRootCA(pemOrDER []byte) AWSOption { return func(c *awsConfig) { c.caPEM = pemOrDER } }

// AWSRootCAFile trusts the certificates of a PEM file instead of the
// system roots.
func AWSRootCAFile(path string) AWSOption { return func(c *awsConfig) { c.caFile = path } }

// AWSCertFiles reads the client certificate and key from files (PEM or
// DER) instead of the bytes given to AWSIoT (pass nil there).
func AWSCertFiles(certFile, keyFile string) AWSOption {
	return func(c *awsConfig) { c.certFile, c.keyFile = certFile, keyFile }
}

// AWSKeepAlive sets the keep alive interval, clamped to [AWSMinKeepAlive,
// AWSMaxKeepAlive]. Default AWSDefaultKeepAlive.
func AWSKeepAlive(d time.Duration) AWSOption { return func(c *awsConfig) { c.keepalive = d } }

// AWSAllowReserved allows further reserved topic filters in the namespace
// (AWSIoTNamespace.AllowReserved), e.g. "$aws/certificates/create/#".
func AWSAllowReserved(filters ...string) AWSOption {
	return func(c *awsConfig) { c.allowReserved = append(c.allowReserved, filters...) }
}

// AWSIoT returns Options for AWS IoT Core with X.509 client certificate
// authentication:
//
//   - Server: mqtts://{endpoint}:8883, or port 443 with ALPN x-amzn-mqtt-ca
//     (AWSPort443); endpoint is a host, host:port or an mqtts://, ssl:// or
//     tls:// URL;
//   - TLSConfig: the client certificate and key, PEM or DER (cert and key,
//     or AWSCertFiles), the system roots unless AWSRootCA/AWSRootCAFile;
//   - Namespace: AWSIoTNamespace for the thing (topic limits and reserved
//     topics are checked before anything is sent);
//   - ClientID: the thing name (AWSThingName), when given;
//   - Keepalive: AWSDefaultKeepAlive, or AWSKeepAlive within AWS's bounds;
//   - Version: MQTT 5.
//
// The returned Options may be changed further (ClientID, SessionExpiry,
// callbacks ...) before New. AWS IoT Core announces its other limits (QoS 1
// at most, Receive Maximum 100, 128 KB payloads ...) in CONNACK and the
// client enforces them.
func AWSIoT(endpoint string, certPEMorDER, keyPEMorDER []byte, opts ...AWSOption) (Options, error) {
	var cfg awsConfig
	for _, f := range opts {
		f(&cfg)
	}
	var o Options
	if cfg.thing != "" {
		if err := ValidThingName(cfg.thing); err != nil {
			return o, err
		}
	}
	hostport := endpoint
	if scheme, rest, ok := strings.Cut(endpoint, "://"); ok {
		switch strings.ToLower(scheme) {
		case "mqtts", "ssl", "tls":
		default:
			return o, fmt.Errorf("mqtt client: AWS IoT endpoint %q: use a host name or an mqtts:// URL (X.509 certificates need TLS)", endpoint)
		}
		hostport = strings.TrimSuffix(rest, "/")
	}
	if hostport == "" || strings.ContainsAny(hostport, "/?#@") {
		return o, fmt.Errorf("mqtt client: AWS IoT endpoint %q: not a host name", endpoint)
	}
	host, port, err := net.SplitHostPort(hostport)
	if err != nil {
		host, port = strings.TrimSuffix(strings.TrimPrefix(hostport, "["), "]"), ""
	}
	if port == "" {
		port = "8883"
		if cfg.port443 {
			port = "443"
		}
	}
	alpn := cfg.port443 || port == "443"
	ct := transport.ClientTLS{
		CAPEM:    cfg.caPEM,
		CAFile:   cfg.caFile,
		CertPEM:  certPEMorDER,
		KeyPEM:   keyPEMorDER,
		CertFile: cfg.certFile,
		KeyFile:  cfg.keyFile,
	}
	if alpn {
		ct.ALPN = []string{AWSIoTALPN}
	}
	if len(ct.CertPEM) == 0 && ct.CertFile == "" {
		return o, errors.New("mqtt client: AWS IoT needs a client certificate and key (PEM or DER bytes, or AWSCertFiles)")
	}
	tc, err := ct.Config()
	if err != nil {
		return o, err
	}
	o.Server = "mqtts://" + net.JoinHostPort(host, port)
	o.TLSConfig = tc
	o.Version = packet.V5
	o.ClientID = cfg.thing
	o.Namespace = AWSIoTNamespace{ThingName: cfg.thing, AllowReserved: cfg.allowReserved}
	ka := cfg.keepalive
	switch {
	case ka == 0:
		ka = AWSDefaultKeepAlive
	case ka < AWSMinKeepAlive:
		ka = AWSMinKeepAlive
	case ka > AWSMaxKeepAlive:
		ka = AWSMaxKeepAlive
	}
	o.Keepalive.Interval = ka
	return o, nil
}

// SubscribeQoS subscribes to one filter at the given maximum QoS and
// returns the packet identifier of the SUBSCRIBE and the QoS the server
// granted, as the AWS and Azure device SDKs do. When the server refuses the
// filter, granted is the failure reason code (0x80 or above) and err a
// *ReasonError. See Subscribe for the rest.
func (c *Client) SubscribeQoS(ctx context.Context, filter string, qos byte, h Handler, opts ...SubscribeOption) (packetID uint16, granted byte, err error) {
	sa, err := c.Subscribe(ctx, []Subscription{{Filter: filter, QoS: qos}}, h, opts...)
	if sa == nil {
		return 0, 0, err
	}
	code := packet.UnspecifiedError
	if len(sa.Codes) > 0 {
		code = sa.Codes[0]
	}
	return sa.PacketID, byte(code), err
}
