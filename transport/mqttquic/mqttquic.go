// Package mqttquic carries MQTT over QUIC: single-stream MQTT (ALPN
// "mqtt") and multistream MQTT with flow headers (ALPN "MQTT-next").
package mqttquic

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
)

// ALPN protocol identifiers.
const (
	ALPNSingle = "mqtt"      // one bidirectional stream carries MQTT
	ALPNMulti  = "MQTT-next" // control flow plus data flows with flow headers
)

// ServerConfig configures a QUIC listener.
type ServerConfig struct{}

// DialConfig configures a QUIC client connection.
type DialConfig struct{}

// Listen listens for QUIC connections on addr (host:port, UDP).
func Listen(ctx context.Context, addr string, tlsConf *tls.Config, cfg ServerConfig) (net.Listener, error) {
	return nil, errors.New("mqttquic: not implemented")
}

// Dial connects to addr.
func Dial(ctx context.Context, addr string, tlsConf *tls.Config, cfg DialConfig) (net.Conn, error) {
	return nil, errors.New("mqttquic: not implemented")
}
