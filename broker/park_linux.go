//go:build linux

package broker

import (
	"errors"
	"net"
	"sync"
	"syscall"
	"time"
)

// parker holds idle plain-TCP connections without a goroutine or a read
// buffer: their sockets wait in an epoll set of the broker's, and the first
// readable event (data, end of stream, error) starts a goroutine that reads
// on. One goroutine per broker waits on the set; it starts with the first
// parked connection and ends at Shutdown.
//
// A socket is in two epoll sets then: the Go runtime's (edge-triggered,
// where nobody waits on it while it is parked) and this one (level-
// triggered and one-shot, so data that arrived before the socket was added
// is reported at once and a socket is reported once per parking).
type parker struct {
	b  *Broker
	mu sync.Mutex
	// conns maps a parking's identifier (the epoll event's data) to the
	// connection; an identifier is never reused, so an event of an earlier
	// parking cannot wake a later one.
	conns   map[uint64]*conn
	next    uint64
	epfd    int
	wake    [2]int // pipe whose readable end stops the loop (identifier 0)
	started bool
	stopped bool
}

const parkSupported = true

// add registers c, whose read side is idle, and returns false when it
// cannot be parked (the broker is stopping or the socket is closed); the
// caller then goes on reading. On true the caller must not touch c again:
// an event may already have resumed it on another goroutine. ka, when
// positive, is how long until the keep-alive expires.
func (p *parker) add(c *conn, tc *net.TCPConn, ka time.Duration) bool {
	op := syscall.EPOLL_CTL_MOD
	if !c.inEpoll {
		op = syscall.EPOLL_CTL_ADD
	}
	c.inEpoll = true // from now on registered, armed or not, until closed
	p.mu.Lock()
	if p.b == nil {
		p.b = c.b // before the goroutines that read it start
	}
	if p.stopped || !p.startLocked() {
		p.mu.Unlock()
		return false
	}
	p.next++
	id := p.next
	if p.conns == nil {
		p.conns = make(map[uint64]*conn)
	}
	p.conns[id] = c
	c.parkID = id
	c.pstate.Store(parkParked)
	if ka > 0 {
		if c.kaTimer == nil {
			c.kaTimer = time.AfterFunc(ka, c.keepAliveWake)
		} else {
			c.kaTimer.Reset(ka)
		}
	}
	epfd := p.epfd
	p.mu.Unlock()

	var cerr error
	rc, err := tc.SyscallConn()
	if err == nil {
		// Inside Control the descriptor cannot be closed and reused.
		err = rc.Control(func(fd uintptr) {
			ev := syscall.EpollEvent{Events: syscall.EPOLLIN | syscall.EPOLLRDHUP | epollOneShot, Fd: int32(id), Pad: int32(id >> 32)}
			cerr = syscall.EpollCtl(epfd, op, int(fd), &ev)
			switch {
			case errors.Is(cerr, syscall.ENOENT):
				cerr = syscall.EpollCtl(epfd, syscall.EPOLL_CTL_ADD, int(fd), &ev)
			case errors.Is(cerr, syscall.EEXIST):
				cerr = syscall.EpollCtl(epfd, syscall.EPOLL_CTL_MOD, int(fd), &ev)
			}
		})
	}
	if err == nil && cerr == nil {
		return true
	}
	// Not registered: take the connection back unless someone (a close, the
	// keep-alive timer) already did; its goroutine then reads on.
	return !p.claim(c)
}

// claim takes c out of the parked state for the caller, which then owns
// its read side; false if someone else did first.
func (p *parker) claim(c *conn) bool {
	if !c.pstate.CompareAndSwap(parkParked, parkRunning) {
		return false
	}
	p.mu.Lock()
	delete(p.conns, c.parkID)
	if c.kaTimer != nil {
		c.kaTimer.Stop()
	}
	p.mu.Unlock()
	return true
}

// epollOneShot is EPOLLONESHOT (1<<30), absent from package syscall.
const epollOneShot = 1 << 30

// startLocked starts the event loop on first use.
func (p *parker) startLocked() bool {
	if p.started {
		return true
	}
	epfd, err := syscall.EpollCreate1(syscall.EPOLL_CLOEXEC)
	if err != nil {
		return false
	}
	if err := syscall.Pipe2(p.wake[:], syscall.O_CLOEXEC|syscall.O_NONBLOCK); err != nil {
		syscall.Close(epfd)
		return false
	}
	ev := syscall.EpollEvent{Events: syscall.EPOLLIN}
	if err := syscall.EpollCtl(epfd, syscall.EPOLL_CTL_ADD, p.wake[0], &ev); err != nil {
		syscall.Close(epfd)
		syscall.Close(p.wake[0])
		syscall.Close(p.wake[1])
		return false
	}
	p.epfd = epfd
	p.started = true
	p.b.wg.Add(2)
	go p.loop()
	go func() {
		defer p.b.wg.Done()
		<-p.b.quit
		p.mu.Lock()
		p.stopped = true
		p.mu.Unlock()
		syscall.Write(p.wake[1], []byte{0})
	}()
	return true
}

// loop waits for parked sockets to become readable and resumes their
// connections, until the broker shuts down.
func (p *parker) loop() {
	defer p.b.wg.Done()
	var evs [128]syscall.EpollEvent
	for {
		n, err := syscall.EpollWait(p.epfd, evs[:], -1)
		if err != nil {
			if errors.Is(err, syscall.EINTR) {
				continue
			}
			p.b.log.Error("idle connections: epoll_wait", "err", err)
			break
		}
		stop := false
		for i := range evs[:n] {
			id := uint64(uint32(evs[i].Fd)) | uint64(uint32(evs[i].Pad))<<32
			if id == 0 {
				stop = true
				continue
			}
			p.mu.Lock()
			c := p.conns[id]
			p.mu.Unlock()
			if c != nil && p.claim(c) {
				go c.resume()
			}
		}
		if stop {
			break
		}
	}
	// Connections still parked are woken by the closing of their sockets
	// (Shutdown closes every connection).
	syscall.Close(p.epfd)
	syscall.Close(p.wake[0])
	syscall.Close(p.wake[1])
}
