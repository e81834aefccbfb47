package netfault

import (
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"net/netip"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// Impairment is what a link does to every packet, in each direction.
type Impairment struct {
	// Delay is added to every packet.
	Delay time.Duration
	// Loss is the probability, in [0, 1], that a packet is dropped.
	Loss float64
}

func (i Impairment) String() string {
	return fmt.Sprintf("delay %v, loss %.0f%% each way", i.Delay, i.Loss*100)
}

// End is one side of a point-to-point link.
type End struct {
	NS   *Netns
	Dev  string     // interface name inside NS, at most 15 bytes
	Addr netip.Addr // IPv4 address given to Dev as a /32
}

// Impairer is a link whose impairment can be changed while it runs.
type Impairer interface {
	// Set replaces the impairment of both directions.
	Set(Impairment) error
	// Mechanism names how the impairment is applied.
	Mechanism() string
}

// configure brings e.Dev up with e.Addr and a route to peer.
func (e End) configure(peer netip.Addr) error {
	if err := e.NS.IP("link", "set", "dev", e.Dev, "up"); err != nil {
		return err
	}
	if err := e.NS.IP("addr", "add", e.Addr.String()+"/32", "dev", e.Dev); err != nil {
		return err
	}
	return e.NS.IP("route", "add", peer.String()+"/32", "dev", e.Dev)
}

// LinkStats counts what a TUN link did with the packets it read, both
// directions together.
type LinkStats struct {
	Forwarded    uint64 // delivered to the other side
	Lost         uint64 // dropped by random loss
	CutDropped   uint64 // dropped while the link was cut (also from the delay queue)
	QueueDropped uint64 // dropped because the delay queue was full
}

func (s LinkStats) String() string {
	return fmt.Sprintf("%d packets forwarded, %d lost at random (%.1f%%), %d dropped by the cut, %d by a full queue",
		s.Forwarded, s.Lost, 100*float64(s.Lost)/float64(max(1, s.Forwarded+s.Lost)), s.CutDropped, s.QueueDropped)
}

// TUNLink joins two namespaces through a TUN device in each and a
// forwarder in the test process that copies IP packets between them,
// applying its Impairment and cut state.
type TUNLink struct {
	ends  [2]End
	seed  uint64
	imp   atomic.Pointer[Impairment]
	cut   atomic.Bool
	dirs  [2]*direction
	files [2]*os.File
	done  chan struct{}
	wg    sync.WaitGroup

	mu    sync.Mutex
	seenT map[netip.AddrPort]uint64 // IPv4 packets forwarded, by destination (port 0 unless TCP or UDP)
	err   error                     // first unexpected read or write error
}

type direction struct {
	from, to *os.File
	q        chan queued
	rng      *rand.Rand // the reader goroutine's only

	forwarded, lost, cutDropped, queueDropped atomic.Uint64
}

type queued struct {
	at time.Time
	b  []byte
}

// LinkConfig configures NewTUNLink.
type LinkConfig struct {
	Impairment Impairment
	// Seed seeds the random loss; 0 picks one (the test log shows it).
	Seed uint64
	// QueueLimit bounds the packets waiting for their delay in each
	// direction, like netem's limit (default 10,000).
	QueueLimit int
}

// NewTUNLink makes a TUN device in each end's namespace, gives it the
// end's address and a route to the other end, and starts forwarding. The
// link is closed (devices removed) when the test ends.
func NewTUNLink(t testing.TB, a, b End, cfg LinkConfig) *TUNLink {
	t.Helper()
	if cfg.Seed == 0 {
		cfg.Seed = rand.Uint64()
	}
	if cfg.QueueLimit <= 0 {
		cfg.QueueLimit = 10000
	}
	l := &TUNLink{ends: [2]End{a, b}, seed: cfg.Seed, done: make(chan struct{}), seenT: map[netip.AddrPort]uint64{}}
	imp := cfg.Impairment
	l.imp.Store(&imp)
	for i, e := range l.ends {
		f, err := openTUN(e.NS, e.Dev)
		if err != nil {
			for _, f := range l.files[:i] {
				f.Close()
			}
			t.Fatal(err)
		}
		l.files[i] = f
	}
	t.Cleanup(l.close)
	if err := a.configure(b.Addr); err != nil {
		t.Fatal(err)
	}
	if err := b.configure(a.Addr); err != nil {
		t.Fatal(err)
	}
	for i := range 2 {
		d := &direction{
			from: l.files[i], to: l.files[1-i],
			q:   make(chan queued, cfg.QueueLimit),
			rng: rand.New(rand.NewPCG(cfg.Seed, uint64(i))),
		}
		l.dirs[i] = d
		l.wg.Add(2)
		go l.read(d)
		go l.write(d)
	}
	t.Logf("netfault: TUN link %s/%s %v <-> %s/%s %v: %v, loss seed %d", a.NS.Name, a.Dev, a.Addr, b.NS.Name, b.Dev, b.Addr, imp, cfg.Seed)
	return l
}

// openTUN makes the TUN device name inside ns and returns its file (in
// non-blocking mode, so that Close interrupts a pending Read).
func openTUN(ns *Netns, name string) (*os.File, error) {
	var f *os.File
	err := ns.Do(func() error {
		// The device is made in the namespace of the thread that opens
		// /dev/net/tun.
		fd, err := unix.Open("/dev/net/tun", unix.O_RDWR|unix.O_CLOEXEC|unix.O_NONBLOCK, 0)
		if err != nil {
			return fmt.Errorf("netfault: open /dev/net/tun: %w", err)
		}
		ifr, err := unix.NewIfreq(name)
		if err != nil {
			unix.Close(fd)
			return fmt.Errorf("netfault: TUN name %q: %w", name, err)
		}
		ifr.SetUint16(unix.IFF_TUN | unix.IFF_NO_PI)
		if err := unix.IoctlIfreq(fd, unix.TUNSETIFF, ifr); err != nil {
			unix.Close(fd)
			return fmt.Errorf("netfault: TUNSETIFF %s: %w", name, err)
		}
		f = os.NewFile(uintptr(fd), "tun:"+name)
		return nil
	})
	return f, err
}

// Mechanism implements Impairer.
func (l *TUNLink) Mechanism() string { return "TUN forwarder (userspace)" }

// Set implements Impairer; it takes effect for the next packet read.
func (l *TUNLink) Set(imp Impairment) error {
	l.imp.Store(&imp)
	return nil
}

// Cut drops every packet, in both directions, until Restore; packets
// waiting for their delay are dropped too.
func (l *TUNLink) Cut() { l.cut.Store(true) }

// Restore ends a Cut.
func (l *TUNLink) Restore() { l.cut.Store(false) }

// Seed returns the seed of the random loss.
func (l *TUNLink) Seed() uint64 { return l.seed }

// Stats returns the counters of both directions.
func (l *TUNLink) Stats() LinkStats {
	var s LinkStats
	for _, d := range l.dirs {
		s.Forwarded += d.forwarded.Load()
		s.Lost += d.lost.Load()
		s.CutDropped += d.cutDropped.Load()
		s.QueueDropped += d.queueDropped.Load()
	}
	return s
}

// DeliveredTo returns the number of IPv4 packets the link delivered to
// addr, any port.
func (l *TUNLink) DeliveredTo(addr netip.Addr) uint64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	var n uint64
	for ap, c := range l.seenT {
		if ap.Addr() == addr {
			n += c
		}
	}
	return n
}

// Delivered returns the number of IPv4 packets the link delivered, by
// destination address and TCP or UDP port (0 for other protocols).
func (l *TUNLink) Delivered() map[netip.AddrPort]uint64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return maps.Clone(l.seenT)
}

// destination returns the IPv4 destination of an IP packet, with the
// port of TCP and UDP.
func destination(p []byte) (netip.AddrPort, bool) {
	if len(p) < 20 || p[0]>>4 != 4 {
		return netip.AddrPort{}, false
	}
	dst := netip.AddrFrom4([4]byte(p[16:20]))
	ihl := int(p[0]&0x0f) * 4
	var port uint16
	if proto := p[9]; (proto == unix.IPPROTO_TCP || proto == unix.IPPROTO_UDP) && len(p) >= ihl+4 {
		port = uint16(p[ihl+2])<<8 | uint16(p[ihl+3])
	}
	return netip.AddrPortFrom(dst, port), true
}

// Err returns the first unexpected read or write error of the forwarder.
func (l *TUNLink) Err() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.err
}

func (l *TUNLink) setErr(err error) {
	l.mu.Lock()
	if l.err == nil {
		l.err = err
	}
	l.mu.Unlock()
}

func (l *TUNLink) read(d *direction) {
	defer l.wg.Done()
	buf := make([]byte, 65536)
	for {
		n, err := d.from.Read(buf)
		if err != nil {
			if !errors.Is(err, os.ErrClosed) {
				l.setErr(fmt.Errorf("netfault: read %s: %w", d.from.Name(), err))
			}
			return
		}
		if l.cut.Load() {
			d.cutDropped.Add(1)
			continue
		}
		imp := l.imp.Load()
		if imp.Loss > 0 && d.rng.Float64() < imp.Loss {
			d.lost.Add(1)
			continue
		}
		select {
		case d.q <- queued{at: time.Now().Add(imp.Delay), b: slices.Clone(buf[:n])}:
		default:
			d.queueDropped.Add(1)
		}
	}
}

func (l *TUNLink) write(d *direction) {
	defer l.wg.Done()
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	for {
		var p queued
		select {
		case p = <-d.q:
		case <-l.done:
			return
		}
		// The delay is the same for every packet of a direction (or
		// shorter for later packets after Set): waiting for each one in
		// turn keeps the order.
		if wait := time.Until(p.at); wait > 0 {
			timer.Reset(wait)
			select {
			case <-timer.C:
			case <-l.done:
				return
			}
		}
		if l.cut.Load() {
			d.cutDropped.Add(1)
			continue
		}
		if _, err := d.to.Write(p.b); err != nil {
			if errors.Is(err, os.ErrClosed) {
				return
			}
			// A packet the kernel refuses (device going away) is lost.
			l.setErr(fmt.Errorf("netfault: write %s: %w", d.to.Name(), err))
			continue
		}
		d.forwarded.Add(1)
		if dst, ok := destination(p.b); ok {
			l.mu.Lock()
			l.seenT[dst]++
			l.mu.Unlock()
		}
	}
}

// close stops the forwarder and removes both devices (a TUN device that is
// not persistent goes away with its last file descriptor).
func (l *TUNLink) close() {
	close(l.done)
	for _, f := range l.files {
		f.Close()
	}
	l.wg.Wait()
}

// VethLink joins two namespaces with a veth pair; the kernel's netem
// queueing discipline impairs it (see NetemAvailable).
type VethLink struct {
	ends [2]End
}

// NewVethLink makes a veth pair between a and b with their addresses and
// routes. It is removed with the namespaces.
func NewVethLink(t testing.TB, a, b End) *VethLink {
	t.Helper()
	if err := a.NS.IP("link", "add", a.Dev, "type", "veth", "peer", "name", b.Dev, "netns", b.NS.Name); err != nil {
		t.Fatal(err)
	}
	if err := a.configure(b.Addr); err != nil {
		t.Fatal(err)
	}
	if err := b.configure(a.Addr); err != nil {
		t.Fatal(err)
	}
	t.Logf("netfault: veth link %s/%s %v <-> %s/%s %v", a.NS.Name, a.Dev, a.Addr, b.NS.Name, b.Dev, b.Addr)
	return &VethLink{ends: [2]End{a, b}}
}

// Mechanism implements Impairer.
func (v *VethLink) Mechanism() string { return "veth + tc netem (kernel)" }

// Set implements Impairer: a netem qdisc on both ends.
func (v *VethLink) Set(imp Impairment) error {
	for _, e := range v.ends {
		if err := netem(e.NS, e.Dev, imp); err != nil {
			return err
		}
	}
	return nil
}

func netem(ns *Netns, dev string, imp Impairment) error {
	args := []string{"-n", ns.Name, "qdisc", "replace", "dev", dev, "root", "netem",
		"delay", strconv.FormatInt(imp.Delay.Microseconds(), 10) + "us",
		"loss", strconv.FormatFloat(imp.Loss*100, 'f', 3, 64) + "%",
		"limit", "10000"}
	return run("tc", args...)
}

var (
	netemOnce sync.Once
	netemErr  error
)

// NetemAvailable reports why tc netem cannot be used here, or nil when it
// can: it tries to add a netem qdisc to a veth device in a scratch
// namespace (once per process).
func NetemAvailable() error {
	netemOnce.Do(func() { netemErr = probeNetem() })
	return netemErr
}

func probeNetem() error {
	if err := Check(); err != nil {
		return err
	}
	if _, err := exec.LookPath("tc"); err != nil {
		return fmt.Errorf("the tc command (Debian package iproute2) is not installed: %w", err)
	}
	name := fmt.Sprintf("%s%d-netem", namePrefix, os.Getpid())
	if err := run("ip", "netns", "add", name); err != nil {
		return err
	}
	defer exec.Command("ip", "netns", "del", name).Run()
	ns := &Netns{Name: name}
	if err := ns.IP("link", "add", "p0", "type", "veth", "peer", "name", "p1"); err != nil {
		return fmt.Errorf("veth pairs unavailable: %w", err)
	}
	if err := netem(ns, "p0", Impairment{Delay: time.Millisecond}); err != nil {
		return fmt.Errorf("kernel without netem (CONFIG_NET_SCH_NETEM): %w", err)
	}
	return nil
}
