package transport

import (
	"context"
	"errors"
	"net"
	"net/url"
)

func listenWebSocket(ctx context.Context, u *url.URL, cfg ListenConfig) (net.Listener, error) {
	return nil, errors.New("transport: websocket: not implemented")
}

func dialWebSocket(ctx context.Context, u *url.URL, cfg DialConfig) (net.Conn, error) {
	return nil, errors.New("transport: websocket: not implemented")
}
