package client

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/xdg-go/scram"
)

// SCRAMMethod is the Authentication Method of SCRAM-SHA-256.
const SCRAMMethod = "SCRAM-SHA-256"

// ErrServerNotVerified is returned (wrapped) when a server accepts a SCRAM
// authentication without proving that it knows the user's credentials:
// its server-final-message is missing, malformed or has a wrong signature.
var ErrServerNotVerified = errors.New("mqtt client: SCRAM server signature not verified")

// SCRAM returns an AuthHandler for SCRAM-SHA-256 (RFC 5802, RFC 7677):
// the client-first-message goes in CONNECT (or in the AUTH that starts a
// re-authentication), the client-final-message answers the server's
// AUTH, and the server-final-message of CONNACK (or of the final AUTH) must
// carry the server signature; a server that cannot produce it fails the
// connection with ErrServerNotVerified. The user name and password are
// normalised with SASLprep; the salted password is computed once per salt
// and iteration count and reused on reconnection.
func SCRAM(username, password string) AuthHandler {
	h := &scramHandler{}
	h.client, h.err = scram.SHA256.NewClient(username, password, "")
	if h.err != nil {
		h.err = fmt.Errorf("mqtt client: SCRAM: %w", h.err)
	}
	return h
}

type scramHandler struct {
	client *scram.Client
	err    error

	mu    sync.Mutex
	conv  *scram.ClientConversation
	steps int // messages the conversation has produced
}

func (h *scramHandler) Method() string { return SCRAMMethod }

func (h *scramHandler) Start(context.Context) ([]byte, error) {
	if h.err != nil {
		return nil, h.err
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	h.conv = h.client.NewConversation()
	first, err := h.conv.Step("")
	if err != nil {
		h.conv = nil
		return nil, fmt.Errorf("mqtt client: SCRAM: %w", err)
	}
	h.steps = 1
	return []byte(first), nil
}

func (h *scramHandler) Continue(_ context.Context, serverData []byte) ([]byte, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.conv == nil || h.steps != 1 {
		return nil, errors.New("mqtt client: SCRAM: unexpected server challenge")
	}
	final, err := h.conv.Step(string(serverData))
	if err != nil {
		h.conv = nil
		return nil, fmt.Errorf("mqtt client: SCRAM: %w", err)
	}
	h.steps = 2
	return []byte(final), nil
}

func (h *scramHandler) Finish(_ context.Context, serverData []byte) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	conv := h.conv
	h.conv = nil
	if conv == nil || h.steps != 2 {
		return fmt.Errorf("%w: the server accepted before the SCRAM exchange completed", ErrServerNotVerified)
	}
	if _, err := conv.Step(string(serverData)); err != nil || !conv.Valid() {
		if err == nil {
			err = errors.New("invalid server-final-message")
		}
		return fmt.Errorf("%w: %v", ErrServerNotVerified, err)
	}
	return nil
}
