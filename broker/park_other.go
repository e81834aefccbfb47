//go:build !linux

package broker

import (
	"net"
	"time"
)

// parker parks idle connections on Linux only (park_linux.go); elsewhere
// every connection keeps its read goroutine.
type parker struct{}

const parkSupported = false

func (p *parker) add(c *conn, tc *net.TCPConn, ka time.Duration) bool { return false }

func (p *parker) claim(c *conn) bool { return false }
