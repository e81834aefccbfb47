package broker

import (
	"fmt"
	"math/rand/v2"
	"slices"

	"github.com/mqtt5go/mqtt5/packet"
)

// LoadBalancerConfig makes the broker a load balancer: it redirects each v5
// client to one of Backends with CONNACK 0x9C (Use Another Server) and a
// Server Reference instead of serving it (section 4.11 of the standard).
//
// The backend is chosen by rendezvous (highest random weight) hashing of the
// client identifier: every backend gets a score, FNV-1a 64 of the backend,
// a zero byte and the client identifier, passed through the 64-bit
// finaliser of MurmurHash3, and the highest score wins. A client therefore
// always lands on the same backend while the list does not change, and
// adding an (N+1)th backend moves only the clients that now score highest
// there, about 1/(N+1) of them; removing one moves only its own clients.
// FNV-1a is used because it is in the standard library, fully specified
// and stable across releases and languages, so other tools can compute the
// same placement; client identifiers are short, so its speed does not
// matter, and the finaliser gives the avalanche FNV lacks on inputs that
// differ only in their last bytes.
type LoadBalancerConfig struct {
	// Backends are the Server References clients are sent to, as the
	// client should use them: "host:port" or a URL such as
	// "mqtts://host:8883". Empty: the broker serves clients itself.
	Backends []string

	// AfterAuth redirects only clients that the Authenticator accepted;
	// the others get the normal authentication failure and learn nothing
	// about the backends. Default false: every client is redirected before
	// authentication, which is then the backends' business.
	AfterAuth bool

	// V311 says what happens to 3.1.1 clients, which cannot be redirected.
	// Default V311Refuse.
	V311 V311Redirect
}

// V311Redirect is what a load-balancing broker does with 3.1.1 clients.
type V311Redirect int

const (
	// V311Refuse refuses them with return code 3 (Server unavailable).
	// This is the default.
	V311Refuse V311Redirect = iota
	// V311ServeLocally serves them as an ordinary broker would.
	V311ServeLocally
)

// BackendFor returns the backend a client with identifier clientID is
// redirected to, or "" when there are no backends. A client that connects
// with an empty identifier has no identity to place: the broker sends it to
// a backend chosen at random (uniformly), which assigns its identifier. A
// client that later reconnects with that assigned identifier is placed by
// it and may land on another backend, where its session does not exist;
// clients whose sessions must outlive a connection should choose their
// identifiers.
func (lb *LoadBalancerConfig) BackendFor(clientID string) string {
	best, bestScore := "", uint64(0)
	for _, be := range lb.Backends {
		if be == "" {
			continue
		}
		// The zero byte separates ("ab", "c") from ("a", "bc").
		score := fmix64(fnv1a(fnv1a(fnv1a(fnvOffset, be), "\x00"), clientID))
		if best == "" || score > bestScore {
			best, bestScore = be, score
		}
	}
	return best
}

func (lb *LoadBalancerConfig) enabled() bool { return len(lb.Backends) > 0 }

// withDefaults drops empty backends.
func (lb LoadBalancerConfig) withDefaults() LoadBalancerConfig {
	lb.Backends = slices.DeleteFunc(slices.Clone(lb.Backends), func(s string) bool { return s == "" })
	return lb
}

const (
	fnvOffset = 14695981039346656037
	fnvPrime  = 1099511628211
)

// fnv1a continues the FNV-1a 64 hash h over s.
func fnv1a[T string | []byte](h uint64, s T) uint64 {
	for i := 0; i < len(s); i++ {
		h ^= uint64(s[i])
		h *= fnvPrime
	}
	return h
}

// fmix64 is the 64-bit finaliser of MurmurHash3.
func fmix64(h uint64) uint64 {
	h ^= h >> 33
	h *= 0xff51afd7ed558ccd
	h ^= h >> 33
	h *= 0xc4ceb9fe1a85ec53
	h ^= h >> 33
	return h
}

// loadBalance answers a CONNECT on a load-balancing broker. It reports
// whether the connection is done with (redirected or refused, err says
// how); false means the client is served locally.
func (c *conn) loadBalance(clientID string) (bool, error) {
	lb := &c.cfg.LoadBalancer
	if c.version != packet.V5 {
		if lb.V311 == V311ServeLocally {
			return false, nil
		}
		return true, c.refuse(c.version, packet.ServerUnavailable, "3.1.1 clients cannot be redirected")
	}
	var backend string
	if clientID == "" {
		backend = lb.Backends[rand.IntN(len(lb.Backends))]
	} else {
		backend = lb.BackendFor(clientID)
	}
	ack := &packet.Connack{ReasonCode: packet.UseAnotherServer}
	ack.Props.ServerReference = backend
	c.b.stats.redirects.Add(1)
	c.writeRefusal(ack, packet.V5, "use another server")
	return true, fmt.Errorf("redirected to %s: %w", backend, packet.UseAnotherServer)
}
