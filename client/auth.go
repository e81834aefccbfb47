package client

import "context"

// AuthHandler performs MQTT 5 enhanced authentication (section 4.12): a
// challenge/response exchange of AUTH packets under an authentication
// method such as SCRAM-SHA-256. The client calls it during every
// connection handshake and on Client.Reauthenticate; calls for one exchange
// are sequential, from the goroutine that runs the handshake (Connect, a
// reconnection goroutine, or Reauthenticate's caller).
type AuthHandler interface {
	// Method returns the Authentication Method, sent in CONNECT and in
	// every AUTH packet [MQTT-4.12.1-1].
	Method() string
	// Start returns the initial Authentication Data (may be nil), sent in
	// CONNECT or in the AUTH packet that starts a re-authentication.
	Start(ctx context.Context) ([]byte, error)
	// Continue answers an AUTH packet with reason Continue Authentication
	// carrying the server's data; the result is sent back in AUTH.
	Continue(ctx context.Context, serverData []byte) ([]byte, error)
	// Finish receives the server's data of a successful CONNACK or AUTH
	// (for example a SCRAM server signature). An error fails the
	// connection (or the re-authentication).
	Finish(ctx context.Context, serverData []byte) error
}
