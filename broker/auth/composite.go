package auth

import (
	"context"

	"github.com/mqtt5go/mqtt5/broker"
	"github.com/mqtt5go/mqtt5/packet"
)

// Provider is an authenticator that says which requests are its own, so
// that Chain can pick it.
type Provider interface {
	broker.Authenticator
	// Handles reports whether the provider answers req, the first step of
	// an exchange (CONNECT, or the AUTH that starts a re-authentication):
	// typically by req.Method, or by the absence of a method.
	Handles(req *broker.AuthRequest) bool
}

// ByMethod makes a Provider of a that handles the Authentication Method
// method (for example "SCRAM-SHA-256").
func ByMethod(method string, a broker.Authenticator) Provider {
	return methodProvider{a, method}
}

type methodProvider struct {
	broker.Authenticator
	method string
}

func (m methodProvider) Handles(req *broker.AuthRequest) bool { return req.Method == m.method }

// WithoutMethod makes a Provider of a that handles CONNECT requests
// without an Authentication Method (user name and password, certificate).
func WithoutMethod(a broker.Authenticator) Provider { return noMethodProvider{a} }

type noMethodProvider struct{ broker.Authenticator }

func (noMethodProvider) Handles(req *broker.AuthRequest) bool { return req.Method == "" }

// Chain returns an authenticator that passes each exchange to the first of
// providers that handles it. The provider is chosen at the first step of
// an exchange; later steps (AUTH packets of a multi-step method) go to the
// same provider, whose own state is kept in the exchange state. A
// re-authentication chooses again and hands the provider the state of its
// previous success when it is the same provider.
//
// When no provider handles a request, the answer is Bad Authentication
// Method (0x8C) for a request with an Authentication Method and Not
// Authorized (0x87) for one without (anonymous or unrecognised
// credentials).
func Chain(providers ...Provider) broker.Authenticator {
	return &chain{providers: providers}
}

type chain struct {
	providers []Provider
}

// chainState is the exchange state of a chain: which provider runs and
// its own state.
type chainState struct {
	index int
	inner any
}

// Handles reports whether one of the providers handles req, so that a
// chain can be nested in another.
func (c *chain) Handles(req *broker.AuthRequest) bool {
	for _, p := range c.providers {
		if p.Handles(req) {
			return true
		}
	}
	return false
}

// Authenticate implements broker.Authenticator.
func (c *chain) Authenticate(ctx context.Context, req *broker.AuthRequest) broker.AuthResult {
	prev, _ := req.State.(chainState)
	index := -1
	if req.Step > 0 {
		if st, ok := req.State.(chainState); ok && st.index >= 0 && st.index < len(c.providers) {
			index = st.index
		}
		if index < 0 {
			return broker.AuthResult{Code: packet.ProtocolError, Reason: "authentication exchange state lost"}
		}
	} else {
		for i, p := range c.providers {
			if p.Handles(req) {
				index = i
				break
			}
		}
		if index < 0 {
			if req.Method != "" {
				return broker.AuthResult{Code: packet.BadAuthenticationMethod, Reason: "authentication method " + req.Method + " not supported"}
			}
			return broker.AuthResult{Code: packet.NotAuthorized, Reason: "no accepted credentials"}
		}
	}
	sub := *req
	sub.State = nil
	if _, ok := req.State.(chainState); ok && prev.index == index {
		sub.State = prev.inner
	}
	res := c.providers[index].Authenticate(ctx, &sub)
	res.State = chainState{index: index, inner: res.State}
	return res
}

// Receiver is implemented by authorizers that can check each delivery: may
// the client receive a message published to topicName? ACL implements it.
type Receiver interface {
	CanReceive(ctx context.Context, c *broker.ClientInfo, topicName string) bool
}

// AuthorizeAll returns an authorizer that allows what every one of as
// allows (logical and). It implements Receiver: an authorizer of as that
// does not is asked whether the client may subscribe to the topic name
// itself.
//
// The third combination, primary only, is the primary authorizer used
// alone.
func AuthorizeAll(as ...broker.Authorizer) broker.Authorizer { return allOf(as) }

// AuthorizeAny returns an authorizer that allows what at least one of as
// allows (logical or). It implements Receiver like AuthorizeAll.
func AuthorizeAny(as ...broker.Authorizer) broker.Authorizer { return anyOf(as) }

// canReceive asks z's CanReceive, or its CanSubscribe for the topic name.
func canReceive(ctx context.Context, z broker.Authorizer, c *broker.ClientInfo, t string) bool {
	if r, ok := z.(Receiver); ok {
		return r.CanReceive(ctx, c, t)
	}
	return z.CanSubscribe(ctx, c, t)
}

type allOf []broker.Authorizer

func (a allOf) CanPublish(ctx context.Context, c *broker.ClientInfo, t string) bool {
	for _, z := range a {
		if !z.CanPublish(ctx, c, t) {
			return false
		}
	}
	return true
}

func (a allOf) CanSubscribe(ctx context.Context, c *broker.ClientInfo, f string) bool {
	for _, z := range a {
		if !z.CanSubscribe(ctx, c, f) {
			return false
		}
	}
	return true
}

func (a allOf) CanReceive(ctx context.Context, c *broker.ClientInfo, t string) bool {
	for _, z := range a {
		if !canReceive(ctx, z, c, t) {
			return false
		}
	}
	return true
}

type anyOf []broker.Authorizer

func (a anyOf) CanPublish(ctx context.Context, c *broker.ClientInfo, t string) bool {
	for _, z := range a {
		if z.CanPublish(ctx, c, t) {
			return true
		}
	}
	return false
}

func (a anyOf) CanSubscribe(ctx context.Context, c *broker.ClientInfo, f string) bool {
	for _, z := range a {
		if z.CanSubscribe(ctx, c, f) {
			return true
		}
	}
	return false
}

func (a anyOf) CanReceive(ctx context.Context, c *broker.ClientInfo, t string) bool {
	for _, z := range a {
		if canReceive(ctx, z, c, t) {
			return true
		}
	}
	return false
}
