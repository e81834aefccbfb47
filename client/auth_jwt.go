package client

import (
	"context"
	"errors"
	"fmt"
)

// JWTMethod is the Authentication Method that carries a JSON Web Token.
const JWTMethod = "JWT"

// JWT returns an AuthHandler that sends a JSON Web Token (compact
// serialisation) as the Authentication Data of CONNECT, and of the AUTH
// that starts a re-authentication, under the Authentication Method "JWT".
// token is called for every connection and every re-authentication, so
// it can return a fresh token. The exchange has a single step: a server
// challenge (AUTH Continue authentication) is an error.
//
// Clients without enhanced authentication (MQTT 3.1.1) send the token as
// the CONNECT password instead (Options.Password).
func JWT(token func(ctx context.Context) (string, error)) AuthHandler {
	return jwtHandler{token: token}
}

type jwtHandler struct {
	token func(ctx context.Context) (string, error)
}

func (jwtHandler) Method() string { return JWTMethod }

func (h jwtHandler) Start(ctx context.Context) ([]byte, error) {
	if h.token == nil {
		return nil, errors.New("mqtt client: JWT: no token function")
	}
	t, err := h.token(ctx)
	if err != nil {
		return nil, fmt.Errorf("mqtt client: JWT: fetching the token: %w", err)
	}
	if t == "" {
		return nil, errors.New("mqtt client: JWT: empty token")
	}
	return []byte(t), nil
}

func (jwtHandler) Continue(context.Context, []byte) ([]byte, error) {
	return nil, errors.New("mqtt client: JWT: unexpected server challenge")
}

func (jwtHandler) Finish(context.Context, []byte) error { return nil }
