package broker

import "github.com/mqtt5go/mqtt5/packet"

// StampConfig adds the publisher's identity to every message a client
// publishes (wills included) as v5 user properties, so that subscribers
// know who sent it. User properties with these names that the client put
// in its PUBLISH are removed first: a client cannot forge them. v5
// subscribers see them; 3.1.1 subscribers receive no properties at all.
// Messages the host program publishes with Broker.Publish are not stamped.
type StampConfig struct {
	// UsernameProperty names the user property carrying the username the
	// Authenticator settled on. It is added only when the client has a
	// username. Empty: off.
	UsernameProperty string
	// ClientIDProperty names the user property carrying the publisher's
	// client identifier. Empty: off.
	ClientIDProperty string
}

func (s *StampConfig) enabled() bool { return s.UsernameProperty != "" || s.ClientIDProperty != "" }

// EchoSuppressionConfig keeps messages away from the session they name:
// a message carrying a user property called Property is not delivered to
// the session whose client identifier equals that property's value (any
// of its values, when it occurs more than once). With StampConfig's
// ClientIDProperty set to the same name, no client receives its own
// messages; a bridge or gateway that republishes on behalf of a client can
// set it to keep the message from echoing back.
type EchoSuppressionConfig struct {
	// Property is the user property naming the session to skip.
	// Empty: off.
	Property string
}

// stamp replaces the identity user properties of m (a message not yet
// routed) with those of info.
func (b *Broker) stamp(m *Message, info *ClientInfo) {
	cfg := &b.conf().Stamp
	forged := func(k string) bool {
		return (cfg.UsernameProperty != "" && k == cfg.UsernameProperty) ||
			(cfg.ClientIDProperty != "" && k == cfg.ClientIDProperty)
	}
	user := make([]packet.UserProperty, 0, len(m.Props.User)+2)
	for _, u := range m.Props.User {
		if !forged(u.Key) {
			user = append(user, u)
		}
	}
	if cfg.UsernameProperty != "" && info.Username != "" {
		user = append(user, packet.UserProperty{Key: cfg.UsernameProperty, Value: info.Username})
	}
	if cfg.ClientIDProperty != "" {
		user = append(user, packet.UserProperty{Key: cfg.ClientIDProperty, Value: info.ClientID})
	}
	m.Props.User = user
}

// echoOf reports whether m carries the echo-suppression property, so that
// the per-session check (isEcho) runs only for such messages.
func (b *Broker) echoOf(m *Message) bool {
	name := b.conf().EchoSuppression.Property
	for _, u := range m.Props.User {
		if u.Key == name {
			return true
		}
	}
	return false
}

// isEcho reports whether m names s as the session not to deliver it to.
func (b *Broker) isEcho(m *Message, s *session) bool {
	if s.id == "" {
		return false // in-process subscriber
	}
	name := b.conf().EchoSuppression.Property
	for _, u := range m.Props.User {
		if u.Key == name && u.Value == s.id {
			return true
		}
	}
	return false
}
