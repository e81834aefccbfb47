package mqttquic

import (
	"bufio"
	"container/list"
	"errors"
	"io"
	"net"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/quic-go/quic-go"

	"github.com/mqtt5go/mqtt5/packet"
	"github.com/mqtt5go/mqtt5/topic"
)

// srcKind tells where an inbound packet came from.
type srcKind uint8

const (
	srcControl srcKind = iota
	srcData
	srcDatagram
)

// qitem is one queued inbound packet; arr, when set, is its pooled
// buffer.
type qitem struct {
	b   []byte
	arr *pktBuf
}

// flow is one stream of a multistream connection: the control flow or a
// data flow.
type flow struct {
	id     FlowID
	st     *quic.Stream
	local  bool // opened by this side
	flags  FlowFlags
	expire uint64

	// Guarded by mux.mu.
	topic      string        // key in the per-topic LRU
	elem       *list.Element // in the per-topic LRU
	oneShot    bool          // closed once its PUBLISH exchange is done
	filters    []string      // subscriptions the peer made on this flow
	inPending  int           // peer exchanges whose reply is routed here
	outPending int           // QoS 2 PUBLISH sent here awaiting our PUBREL
	readDone   bool
	sendDone   bool // our side finished or reset
	removed    bool
	discarded  bool
	counted    bool // counts against MaxFlows
	refused    bool // read, but refused: nothing is sent on it
	lastUsed   time.Time

	// Guarded by mux.wl.
	hdr []byte    // flow header still to be written
	wdl time.Time // write deadline set on st
}

// inEntry records the flow an inbound exchange arrived on.
type inEntry struct {
	f       *flow
	filters []string // a SUBSCRIBE's filters, matched to SUBACK reason codes
}

// detachedState is the state of a flow whose stream ended but whose
// subscriptions persist for its expire interval.
type detachedState struct {
	filters []string
	expires time.Time
}

// mux is the multistream side of a Conn.
type mux struct {
	c      *Conn
	qc     *quic.Conn
	o      *options
	server bool
	ctrl   *flow
	dgram  bool // datagrams usable both ways

	version atomic.Uint32 // MQTT protocol level from CONNECT

	mu       sync.Mutex
	queue    []qitem
	qhead    int
	qbytes   int
	cur      []byte
	curArr   *pktBuf
	waiters  int
	notFull  *sync.Cond
	readErr  error
	closed   bool
	tolerant bool // err_tolerance of errors not tied to a readable header
	noPush   bool // the client refuses server-initiated flows
	flows    map[FlowID]*flow
	peer     int // open flows the peer initiated (MaxFlows bounds them)
	local    int // open flows this side initiated (kept below MaxFlows)
	detached map[FlowID]*detachedState
	nextSeq  uint64
	subFlows []*flow
	inbound  map[uint16]inEntry
	outbound map[uint16]*flow
	topics   map[string]*flow
	lru      list.List // front = most recently used
	toClose  []*flow

	readable chan struct{}
	closedCh chan struct{}
	ctrlDone chan struct{}
	kick     chan struct{}
	rdl      deadline

	wl      wlock
	wdl     atomic.Int64 // write deadline, UnixNano; 0 none
	partial []byte
	aliases map[uint16]string
	pub     packet.Publish
	scratch []byte
}

func newMux(c *Conn, st *quic.Stream, dgram bool) *mux {
	m := &mux{
		c: c, qc: c.qc, o: &c.opts, server: c.server, dgram: dgram,
		flows: map[FlowID]*flow{}, detached: map[FlowID]*detachedState{},
		inbound: map[uint16]inEntry{}, outbound: map[uint16]*flow{}, topics: map[string]*flow{},
		readable: make(chan struct{}, 1), closedCh: make(chan struct{}), ctrlDone: make(chan struct{}),
		kick: make(chan struct{}, 1), rdl: newDeadline(), wl: newWlock(), aliases: map[uint16]string{},
	}
	m.notFull = sync.NewCond(&m.mu)
	m.ctrl = &flow{st: st, local: !c.server}
	if !c.server && c.opts.controlHeader != nil {
		m.tolerant = c.opts.controlHeader.Tolerant()
	}
	return m
}

func (m *mux) start() {
	m.c.wg.Add(3)
	go m.controlLoop()
	go m.acceptLoop()
	go m.janitor()
	if m.qc.ConnectionState().SupportsDatagrams.Local {
		m.c.wg.Add(1)
		go m.datagramLoop()
	}
}

func (m *mux) v5() bool { return packet.Version(m.version.Load()) != packet.V311 }

func (m *mux) wake(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

// ---- inbound ----

// Read returns bytes of whole queued packets; several packets when b has
// room for them.
func (m *mux) Read(b []byte) (int, error) {
	if len(b) == 0 {
		return 0, nil
	}
	for {
		m.mu.Lock()
		if m.closed {
			m.mu.Unlock()
			return 0, net.ErrClosed
		}
		n := 0
		for n < len(b) {
			if len(m.cur) == 0 {
				if m.qhead == len(m.queue) {
					break
				}
				it := m.queue[m.qhead]
				m.cur, m.curArr = it.b, it.arr
				m.queue[m.qhead] = qitem{}
				m.qhead++
				m.qbytes -= len(m.cur)
				if m.qhead == len(m.queue) {
					m.queue, m.qhead = m.queue[:0], 0
				} else if m.qhead >= 64 && 2*m.qhead >= len(m.queue) {
					k := copy(m.queue, m.queue[m.qhead:])
					clear(m.queue[k:])
					m.queue, m.qhead = m.queue[:k], 0
				}
			}
			k := copy(b[n:], m.cur)
			m.cur = m.cur[k:]
			n += k
			if len(m.cur) == 0 && m.curArr != nil {
				pktPool.Put(m.curArr)
				m.curArr = nil
			}
		}
		if n > 0 {
			if m.waiters > 0 {
				m.notFull.Broadcast()
			}
			m.mu.Unlock()
			return n, nil
		}
		err := m.readErr
		m.mu.Unlock()
		if err != nil {
			return 0, err
		}
		dl := m.rdl.wait()
		if isClosedChan(dl) {
			return 0, os.ErrDeadlineExceeded
		}
		select {
		case <-m.readable:
		case <-dl:
			return 0, os.ErrDeadlineExceeded
		case <-m.closedCh:
		}
	}
}

func (m *mux) fullLocked(n int) bool {
	return len(m.queue)-m.qhead >= m.o.queuePackets || (m.qbytes > 0 && m.qbytes+n > m.o.queueBytes)
}

// enqueue queues pkt for Read, waiting while the queue is full. It
// returns false once the connection is closed.
func (m *mux) enqueue(f *flow, pkt []byte, arr *pktBuf, src srcKind) bool {
	m.mu.Lock()
	for !m.closed && m.fullLocked(len(pkt)) {
		m.waiters++
		m.notFull.Wait()
		m.waiters--
	}
	if m.closed {
		m.mu.Unlock()
		return false
	}
	if f != nil {
		m.inspectLocked(f, pkt)
	}
	switch src { // counted before Read can see the packet
	case srcControl:
		m.c.stats.controlIn.Add(1)
	case srcData:
		m.c.stats.dataIn.Add(1)
	default:
		m.c.stats.datagramsIn.Add(1)
	}
	m.queue = append(m.queue, qitem{b: pkt, arr: arr})
	m.qbytes += len(pkt)
	m.mu.Unlock()
	m.wake(m.readable)
	return true
}

// enqueueRaw queues bytes that are not a well-formed packet, whatever the
// bounds, so that the MQTT layer reading them fails as it would on a
// single stream.
func (m *mux) enqueueRaw(b []byte) {
	m.mu.Lock()
	if !m.closed {
		m.queue = append(m.queue, qitem{b: b})
		m.qbytes += len(b)
	}
	m.mu.Unlock()
	m.wake(m.readable)
}

// inspectLocked records where an inbound packet's reply must go.
func (m *mux) inspectLocked(f *flow, pkt []byte) {
	_, hlen, _ := frameLen(pkt)
	body := pkt[hlen:]
	switch packet.Type(pkt[0] >> 4) {
	case packet.CONNECT:
		if m.server {
			m.version.Store(uint32(connectVersion(body)))
		}
	case packet.PUBLISH:
		if qos := (pkt[0] >> 1) & 3; qos > 0 {
			if _, id, _, ok := publishFields(body, qos, false); ok {
				m.noteInLocked(id, f, nil)
			}
		}
	case packet.PUBREL:
		m.noteInLocked(be16(body), f, nil)
	case packet.SUBSCRIBE:
		var filters []string
		if f != m.ctrl || len(m.subFlows) > 0 {
			filters = decodeFilters(pkt, hlen, packet.Version(m.version.Load()))
		}
		for _, fl := range filters {
			m.unsubscribeLocked(fl)
		}
		if f != m.ctrl && len(filters) > 0 && !f.sendDone {
			f.filters = append(f.filters, filters...)
			m.addSubFlowLocked(f)
		} else {
			filters = nil
		}
		m.noteInLocked(be16(body), f, filters)
	case packet.UNSUBSCRIBE:
		if len(m.subFlows) > 0 {
			for _, fl := range decodeFilters(pkt, hlen, packet.Version(m.version.Load())) {
				m.unsubscribeLocked(fl)
			}
		}
		m.noteInLocked(be16(body), f, nil)
	case packet.PUBREC:
		if m.v5() && len(body) >= 3 && body[2] >= 0x80 {
			m.outDoneLocked(be16(body))
		}
	}
}

func (m *mux) noteInLocked(id uint16, f *flow, filters []string) {
	if old, ok := m.inbound[id]; ok {
		old.f.inPending--
		delete(m.inbound, id)
	}
	if f == m.ctrl {
		return
	}
	m.inbound[id] = inEntry{f: f, filters: filters}
	f.inPending++
}

func (m *mux) addSubFlowLocked(f *flow) {
	for _, s := range m.subFlows {
		if s == f {
			return
		}
	}
	m.subFlows = append(m.subFlows, f)
}

func (m *mux) dropSubFlowLocked(f *flow) {
	for i, s := range m.subFlows {
		if s == f {
			m.subFlows = append(m.subFlows[:i], m.subFlows[i+1:]...)
			return
		}
	}
}

// unsubscribeLocked forgets filter on every flow.
func (m *mux) unsubscribeLocked(filter string) {
	for i := 0; i < len(m.subFlows); i++ {
		f := m.subFlows[i]
		f.filters = removeString(f.filters, filter)
		if len(f.filters) == 0 {
			m.subFlows = append(m.subFlows[:i], m.subFlows[i+1:]...)
			i--
		}
	}
}

func removeString(s []string, v string) []string {
	out := s[:0]
	for _, x := range s {
		if x != v {
			out = append(out, x)
		}
	}
	clear(s[len(out):])
	return out
}

// outDoneLocked ends the outbound QoS 2 exchange id (PUBREC with an error
// reason: no PUBREL follows).
func (m *mux) outDoneLocked(id uint16) {
	f, ok := m.outbound[id]
	if !ok {
		return
	}
	delete(m.outbound, id)
	f.outPending--
	if f.oneShot && f.outPending <= 0 && !f.sendDone {
		m.toClose = append(m.toClose, f)
		m.wake(m.kick)
	}
}

// controlLoop reads the control stream.
func (m *mux) controlLoop() {
	defer m.c.wg.Done()
	br := getReader(m.ctrl.st)
	defer putReader(br)
	if m.server {
		first, err := br.Peek(1)
		if err == nil && isFlowHeaderByte(first[0]) {
			h, _, err := readFlowHeader(br)
			var reason string
			code := StreamStreamType
			switch {
			case err != nil && m.qc.Context().Err() != nil:
				m.controlEnded(err)
				return
			case errors.Is(err, ErrHeaderTooLong):
				code, reason = StreamOptionalHeader, "control flow header longer than 32 bytes"
			case err != nil:
				code, reason = StreamIncompletePacket, "control flow header: "+err.Error()
			case h.Type != FlowControl:
				reason = "the control stream starts with a " + h.Type.String() + " flow header"
			case h.ID != 0:
				code, reason = StreamBadFlowID, "control flow id is not 0"
			}
			if reason != "" {
				m.fatal(&FlowError{Code: code, Flow: h.ID, Reason: reason})
				m.controlEnded(errors.New(reason))
				return
			}
			m.mu.Lock()
			m.tolerant = h.Flags.Tolerant()
			m.mu.Unlock()
		}
	}
	m.controlEnded(m.readLoop(m.ctrl, br))
}

// controlEnded makes Read return err (io.EOF for a normal end) once the
// queue is drained.
func (m *mux) controlEnded(err error) {
	var ae *quic.ApplicationError
	if err == nil || err == io.EOF || errors.As(err, &ae) && ae.Remote && ae.ErrorCode == quic.ApplicationErrorCode(ConnNoError) {
		err = io.EOF
	}
	m.mu.Lock()
	if m.readErr == nil {
		m.readErr = err
	}
	m.mu.Unlock()
	close(m.ctrlDone)
	m.wake(m.readable)
}

// readLoop reads the packets of flow f until its stream ends, and returns
// why it ended (io.EOF for a clean end).
func (m *mux) readLoop(f *flow, br *bufio.Reader) error {
	ctrl := f == m.ctrl
	src := srcData
	if ctrl {
		src = srcControl
	}
	for {
		pkt, arr, err := readPacket(br, m.o.maxPacket)
		if err == nil {
			if m.enqueue(f, pkt, arr, src) {
				continue
			}
			if ctrl {
				// Closing: read on to see the peer finish (Close waits for it).
				if _, err = io.Copy(io.Discard, br); err == nil {
					err = io.EOF
				}
				return err
			}
			err = net.ErrClosed
		}
		switch {
		case err == io.EOF:
		case err == errMalformed:
			m.enqueueRaw(pkt)
			f.st.CancelRead(quic.StreamErrorCode(StreamFlowCancelled))
		case errors.Is(err, io.ErrUnexpectedEOF):
			m.streamFailure(f, StreamIncompletePacket, "stream ended inside a packet")
		case err == errTooLarge:
			m.streamFailure(f, StreamFlowPacketCancelled, "packet exceeds the maximum packet size")
		}
		if code, ok := StreamErrorCodeOf(err); ok && f.local && (code == StreamServerPushNotWelcome || code == StreamFlowRefused) {
			// The peer refused the flow: send no more on it.
			m.mu.Lock()
			m.noPush = m.noPush || code == StreamServerPushNotWelcome && m.server
			m.evictLocked(f)
			m.mu.Unlock()
		}
		if !ctrl {
			m.flowReadEnded(f)
		}
		return err
	}
}

// streamFailure handles a protocol error on flow f.
func (m *mux) streamFailure(f *flow, code StreamErrorCode, reason string) {
	fe := &FlowError{Code: code, Flow: f.id, Reason: reason}
	if f == m.ctrl {
		m.fatal(fe)
		return
	}
	m.flowError(f.st, f, f.flags.Tolerant(), fe)
}

// flowError resets a stream with fe.Code and, unless tolerant, closes the
// connection with ProtocolLevel0.
func (m *mux) flowError(st *quic.Stream, f *flow, tolerant bool, fe *FlowError) {
	st.CancelRead(quic.StreamErrorCode(fe.Code))
	st.CancelWrite(quic.StreamErrorCode(fe.Code))
	m.c.stats.streamsReset.Add(1)
	if f != nil {
		m.mu.Lock()
		f.readDone, f.sendDone = true, true
		m.maybeRemoveLocked(f)
		m.mu.Unlock()
	}
	if !tolerant {
		m.fatal(fe)
	}
}

// fatal closes the connection with ProtocolLevel0.
func (m *mux) fatal(fe *FlowError) {
	m.qc.CloseWithError(quic.ApplicationErrorCode(ConnProtocolLevel0), fe.Error())
}

// flowReadEnded notes that the peer finished (or reset) its side of f.
func (m *mux) flowReadEnded(f *flow) {
	m.mu.Lock()
	f.readDone = true
	if !f.sendDone && (!f.local && f.inPending <= 0 || f.local && f.elem == nil && !f.oneShot) {
		m.toClose = append(m.toClose, f)
		m.wake(m.kick)
	}
	m.maybeRemoveLocked(f)
	m.mu.Unlock()
}

// maybeRemoveLocked forgets f once both of its sides are done, keeping
// its subscriptions for its expire interval when they persist.
func (m *mux) maybeRemoveLocked(f *flow) {
	if f.removed || !f.readDone || !f.sendDone || f == m.ctrl {
		return
	}
	f.removed = true
	if m.flows[f.id] == f {
		delete(m.flows, f.id)
	}
	if f.counted {
		m.peer--
	}
	if f.local {
		m.local--
	}
	m.dropSubFlowLocked(f)
	if f.elem != nil {
		m.lru.Remove(f.elem)
		f.elem = nil
		if m.topics[f.topic] == f {
			delete(m.topics, f.topic)
		}
	}
	if !f.local && !f.discarded && f.flags.PersistentSubscriptions && f.expire > 0 && len(f.filters) > 0 && !m.closed {
		exp := time.Duration(min(f.expire, 1<<31)) * time.Second
		m.detached[f.id] = &detachedState{filters: f.filters, expires: time.Now().Add(exp)}
		m.wake(m.kick)
	}
	f.filters = nil
}

// acceptLoop serves the streams the peer opens.
func (m *mux) acceptLoop() {
	defer m.c.wg.Done()
	ctx := m.qc.Context()
	for {
		st, err := m.qc.AcceptStream(ctx)
		if err != nil {
			return
		}
		m.c.stats.streamsAccepted.Add(1)
		m.c.wg.Add(1)
		go func() {
			defer m.c.wg.Done()
			m.servePeerStream(st)
		}()
	}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// servePeerStream reads the flow header of a stream the peer opened,
// admits the flow and reads its packets.
func (m *mux) servePeerStream(st *quic.Stream) {
	br := getReader(st)
	defer putReader(br)
	st.SetReadDeadline(time.Now().Add(m.o.openTimeout))
	m.mu.Lock()
	tolerant := m.tolerant
	m.mu.Unlock()
	first, err := br.Peek(1)
	if err != nil {
		switch {
		case isTimeout(err):
			m.flowError(st, nil, true, &FlowError{Code: StreamFlowOpenIdle, Reason: "no flow header"})
		case err == io.EOF:
			st.Close()
		}
		return
	}
	if !isFlowHeaderByte(first[0]) {
		m.flowError(st, nil, tolerant, &FlowError{Code: StreamStreamType, Reason: "data stream without a flow header"})
		return
	}
	h, flagsKnown, err := readFlowHeader(br)
	if flagsKnown {
		tolerant = h.Flags.Tolerant()
	}
	switch {
	case err == nil:
	case isTimeout(err):
		m.flowError(st, nil, true, &FlowError{Code: StreamFlowOpenIdle, Flow: h.ID, Reason: "flow header incomplete"})
		return
	case errors.Is(err, ErrHeaderTooLong):
		m.flowError(st, nil, tolerant, &FlowError{Code: StreamOptionalHeader, Flow: h.ID, Reason: "flow header longer than 32 bytes"})
		return
	case errors.Is(err, io.ErrUnexpectedEOF):
		m.flowError(st, nil, tolerant, &FlowError{Code: StreamIncompletePacket, Flow: h.ID, Reason: "stream ended inside the flow header"})
		return
	default:
		return
	}
	st.SetReadDeadline(time.Time{})
	f, fe := m.admit(h, st)
	if fe != nil {
		switch fe.Code {
		case StreamFlowRefused, StreamNoFlowState, StreamServerPushNotWelcome, StreamFlowCancelled:
			tolerant = true // refusals, not errors of the peer
		}
		m.flowError(st, nil, tolerant, fe)
		return
	}
	refuse := StreamFlowRefused
	if !m.server && m.o.refuseServerFlows {
		refuse, f.refused = StreamServerPushNotWelcome, true
	}
	if f.refused {
		// What the peer already wrote is read, so nothing is lost;
		// resetting our side tells it to finish the flow and send no more
		// on it.
		st.CancelWrite(quic.StreamErrorCode(refuse))
		m.c.stats.streamsReset.Add(1)
		m.mu.Lock()
		f.sendDone = true
		m.mu.Unlock()
	}
	m.readLoop(f, br)
}

// admit validates a data flow header from the peer and registers the flow.
func (m *mux) admit(h FlowHeader, st *quic.Stream) (*flow, *FlowError) {
	fail := func(code StreamErrorCode, reason string) (*flow, *FlowError) {
		return nil, &FlowError{Code: code, Flow: h.ID, Reason: reason}
	}
	want, side := FlowClientData, "client"
	if !m.server {
		want, side = FlowServerData, "server"
	}
	switch {
	case h.Type == FlowUserDefined:
		return fail(StreamStreamType, "user-defined flows are not supported")
	case h.Type != want:
		return fail(StreamStreamType, h.Type.String()+" flow header on a stream opened by the "+side)
	case h.ID == 0 || h.ID.ServerInitiated() == m.server:
		return fail(StreamBadFlowID, "flow id not initiated by the "+side)
	case h.Flags.PersistentTopicAlias:
		return fail(StreamPersistentTopic, "persistent topic aliases are not supported")
	}
	discard := h.Flags.Clean && !h.Flags.persistent()
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return fail(StreamFlowCancelled, "connection closing")
	}
	var filters []string
	if old := m.flows[h.ID]; old != nil {
		if !discard {
			return fail(StreamBadFlowID, "flow id in use")
		}
		old.discarded = true
		old.st.CancelRead(quic.StreamErrorCode(StreamDiscardState))
		old.st.CancelWrite(quic.StreamErrorCode(StreamDiscardState))
		old.readDone, old.sendDone = true, true
		m.maybeRemoveLocked(old)
	} else if d := m.detached[h.ID]; d != nil {
		delete(m.detached, h.ID)
		if !h.Flags.Clean {
			filters = d.filters
		}
	} else if !h.Flags.Clean && h.Flags.AbortIfNoState {
		return fail(StreamNoFlowState, "no state for the flow")
	}
	if m.peer+len(m.detached) >= m.o.maxFlows {
		// Refused, but what the peer already sent on it is still read.
		return &flow{id: h.ID, st: st, flags: h.Flags, refused: true}, nil
	}
	f := &flow{id: h.ID, st: st, flags: h.Flags, expire: h.Expire, filters: filters, lastUsed: time.Now(), counted: true}
	m.flows[h.ID] = f
	m.peer++
	if len(filters) > 0 {
		m.subFlows = append(m.subFlows, f)
	}
	return f, nil
}

// datagramLoop queues the PUBLISH packets received as datagrams.
func (m *mux) datagramLoop() {
	defer m.c.wg.Done()
	ctx := m.qc.Context()
	for {
		b, err := m.qc.ReceiveDatagram(ctx)
		if err != nil {
			return
		}
		total, _, st := frameLen(b)
		if st != frameOK || total != len(b) || packet.Type(b[0]>>4) != packet.PUBLISH || b[0]&0x06 != 0 {
			m.c.stats.datagramsDropped.Add(1)
			continue
		}
		if !m.enqueue(nil, b, nil, srcDatagram) {
			return
		}
	}
}

// ---- housekeeping ----

// janitor finishes flows whose exchanges are over, closes idle per-topic
// flows and expires detached flow states.
func (m *mux) janitor() {
	defer m.c.wg.Done()
	t := time.NewTimer(time.Hour)
	t.Stop()
	done := m.qc.Context().Done()
	for {
		if d := m.nextWake(); d > 0 {
			t.Reset(d)
		}
		select {
		case <-m.kick:
		case <-t.C:
		case <-done:
			return
		case <-m.closedCh:
			return
		}
		t.Stop()
		m.housekeep()
	}
}

func (m *mux) nextWake() time.Duration {
	m.mu.Lock()
	defer m.mu.Unlock()
	var next time.Time
	if e := m.lru.Back(); e != nil {
		next = e.Value.(*flow).lastUsed.Add(m.o.topicIdle)
	}
	for _, d := range m.detached {
		if next.IsZero() || d.expires.Before(next) {
			next = d.expires
		}
	}
	if next.IsZero() {
		return 0
	}
	return max(time.Until(next), time.Millisecond)
}

func (m *mux) housekeep() {
	now := time.Now()
	m.mu.Lock()
	closes := m.toClose
	m.toClose = nil
	for e := m.lru.Back(); e != nil; {
		f := e.Value.(*flow)
		if now.Sub(f.lastUsed) < m.o.topicIdle {
			break
		}
		prev := e.Prev()
		m.evictLocked(f)
		closes = append(closes, f)
		e = prev
	}
	for id, d := range m.detached {
		if !now.Before(d.expires) {
			delete(m.detached, id)
		}
	}
	m.mu.Unlock()
	if len(closes) == 0 {
		return
	}
	if !m.wl.lock(m.closedCh) {
		return
	}
	m.finishSends(closes)
	m.wl.unlock()
}

// evictLocked takes f out of the per-topic LRU.
func (m *mux) evictLocked(f *flow) {
	if f.elem == nil {
		return
	}
	m.lru.Remove(f.elem)
	f.elem = nil
	if m.topics[f.topic] == f {
		delete(m.topics, f.topic)
	}
}

// finishSends closes the send side of the flows (with m.wl held).
func (m *mux) finishSends(fs []*flow) {
	for _, f := range fs {
		m.mu.Lock()
		done := f.sendDone
		f.sendDone = true
		m.mu.Unlock()
		if done {
			continue
		}
		f.st.Close()
		m.mu.Lock()
		m.maybeRemoveLocked(f)
		m.mu.Unlock()
	}
}

// markClosed makes Read, Write and blocked enqueues return.
func (m *mux) markClosed() {
	m.mu.Lock()
	m.closed = true
	close(m.closedCh)
	m.notFull.Broadcast()
	m.mu.Unlock()
}

// drain finishes every stream and gives the peer up to linger to finish
// the control stream.
func (m *mux) drain(linger time.Duration) {
	if !m.wl.tryLockFor(linger) {
		return
	}
	m.mu.Lock()
	var fs []*flow
	for _, f := range m.flows {
		if !f.sendDone {
			fs = append(fs, f)
		}
	}
	m.mu.Unlock()
	m.finishSends(fs)
	m.ctrl.st.Close()
	m.wl.unlock()
	if linger > 0 {
		t := time.NewTimer(linger)
		defer t.Stop()
		select {
		case <-m.ctrlDone:
		case <-m.qc.Context().Done():
		case <-t.C:
		}
	}
}

// ---- outbound ----

func (m *mux) setWriteDeadline(t time.Time) {
	if t.IsZero() {
		m.wdl.Store(0)
	} else {
		m.wdl.Store(t.UnixNano())
	}
}

func (m *mux) writeDeadline() time.Time {
	if n := m.wdl.Load(); n != 0 {
		return time.Unix(0, n)
	}
	return time.Time{}
}

// batch gathers consecutive packets bound for the same flow.
type batch struct {
	f   *flow
	buf []byte
	n   int
}

// Write splits b into packets and sends each on the flow its routing
// selects; it returns when every packet has been written to its stream.
func (m *mux) Write(p []byte) (int, error) {
	if !m.wl.lock(m.closedCh) {
		return 0, net.ErrClosed
	}
	defer m.wl.unlock()
	m.mu.Lock()
	closed := m.closed
	m.mu.Unlock()
	if closed {
		return 0, net.ErrClosed
	}
	data := p
	if len(m.partial) > 0 {
		data = append(m.partial, p...)
		m.partial = nil
	}
	var b batch
	for len(data) > 0 {
		total, hlen, st := frameLen(data)
		if st == frameBad {
			// Not MQTT: pass it on as is; the peer's MQTT layer refuses it.
			if err := m.add(&b, m.ctrl, data, false); err != nil {
				return 0, err
			}
			break
		}
		if st == frameShort || total > len(data) {
			m.partial = append([]byte(nil), data...)
			break
		}
		if err := m.writePacket(&b, data[:total], hlen); err != nil {
			return 0, err
		}
		data = data[total:]
	}
	if err := m.flush(&b); err != nil {
		return 0, err
	}
	return len(p), nil
}

// add appends pkt to the batch, flushing it first when pkt goes elsewhere
// or does not follow it in memory. An owned packet (in m.scratch) is
// flushed at once.
func (m *mux) add(b *batch, f *flow, pkt []byte, owned bool) error {
	if b.f == f && !owned && len(b.buf) > 0 && cap(b.buf)-len(b.buf) >= len(pkt) &&
		unsafe.SliceData(b.buf[len(b.buf):len(b.buf)+1]) == unsafe.SliceData(pkt) {
		b.buf = b.buf[:len(b.buf)+len(pkt)]
		b.n++
		return nil
	}
	if err := m.flush(b); err != nil {
		return err
	}
	b.f, b.buf, b.n = f, pkt, 1
	if owned {
		return m.flush(b)
	}
	return nil
}

func (m *mux) flush(b *batch) error {
	if b.f == nil || len(b.buf) == 0 {
		return nil
	}
	f, buf, n := b.f, b.buf, b.n
	b.f, b.buf, b.n = nil, nil, 0
	return m.writeFlow(f, buf, n)
}

// writePacket routes one packet.
func (m *mux) writePacket(b *batch, pkt []byte, hlen int) error {
	body := pkt[hlen:]
	switch packet.Type(pkt[0] >> 4) {
	case packet.PUBLISH:
		return m.writePublish(b, pkt, hlen)
	case packet.PUBACK, packet.PUBREC, packet.PUBCOMP, packet.SUBACK, packet.UNSUBACK:
		return m.add(b, m.ackRoute(pkt, body), pkt, false)
	case packet.PUBREL:
		return m.add(b, m.pubrelRoute(be16(body)), pkt, false)
	case packet.SUBSCRIBE:
		if !m.server && m.o.strategy == StrategyDataPerTopic {
			if key, ok := firstFilter(body, m.v5()); ok {
				f, err := m.topicFlow(b, key)
				if err != nil {
					return err
				}
				return m.add(b, f, pkt, false)
			}
		}
	case packet.CONNECT:
		if !m.server {
			m.version.Store(uint32(connectVersion(body)))
		}
	}
	return m.add(b, m.ctrl, pkt, false)
}

// ackRoute returns the flow a reply to a peer's exchange goes on.
func (m *mux) ackRoute(pkt, body []byte) *flow {
	id := be16(body)
	m.mu.Lock()
	defer m.mu.Unlock()
	e, ok := m.inbound[id]
	if !ok {
		return m.ctrl
	}
	delete(m.inbound, id)
	e.f.inPending--
	if packet.Type(pkt[0]>>4) == packet.SUBACK && len(e.filters) > 0 {
		for i, rc := range ackReasons(body, m.v5()) {
			if rc >= 0x80 && i < len(e.filters) {
				e.f.filters = removeString(e.f.filters, e.filters[i])
			}
		}
		if len(e.f.filters) == 0 {
			m.dropSubFlowLocked(e.f)
		}
	}
	return e.f
}

// pubrelRoute returns the flow our PUBREL goes on: the one that carried
// the PUBLISH.
func (m *mux) pubrelRoute(id uint16) *flow {
	m.mu.Lock()
	defer m.mu.Unlock()
	f, ok := m.outbound[id]
	if !ok {
		return m.ctrl
	}
	delete(m.outbound, id)
	f.outPending--
	return f
}

// writePublish routes a PUBLISH: to the data flow holding a matching
// subscription, as a datagram (QoS 0, when enabled both ways), or by the
// delivery strategy.
func (m *mux) writePublish(b *batch, pkt []byte, hlen int) error {
	flags := pkt[0] & 0x0F
	qos := (flags >> 1) & 3
	body := pkt[hlen:]
	v5 := m.v5()
	tb, id, propOff, ok := publishFields(body, qos, v5)
	if !ok {
		return m.add(b, m.ctrl, pkt, false)
	}
	out, owned := pkt, false
	name := unsafe.String(unsafe.SliceData(tb), len(tb))
	if v5 && body[propOff] != 0 {
		// Topic aliases are resolved here and not sent: flows and
		// datagrams do not keep the order an alias definition needs.
		t, rewritten, ok := m.stripAlias(flags, body)
		if !ok {
			return m.add(b, m.ctrl, pkt, false)
		}
		name = t
		if rewritten != nil {
			out, owned = rewritten, true
		}
	}
	if name == "" {
		return m.add(b, m.ctrl, out, owned)
	}
	m.mu.Lock()
	dest := m.subFlowLocked(name)
	m.mu.Unlock()
	if dest == nil && qos == 0 && m.dgram {
		m.c.stats.datagramsOut.Add(1) // counted before the peer can see it
		if err := m.qc.SendDatagram(out); err == nil {
			return nil
		}
		m.c.stats.datagramsOut.Add(^uint64(0))
	}
	if dest == nil {
		var err error
		if dest, err = m.strategyFlow(b, name); err != nil {
			return err
		}
	}
	if qos == 2 && dest != m.ctrl {
		m.mu.Lock()
		if old, ok := m.outbound[id]; ok {
			old.outPending--
		}
		m.outbound[id] = dest
		dest.outPending++
		m.mu.Unlock()
	}
	return m.add(b, dest, out, owned)
}

// stripAlias decodes a v5 PUBLISH and, when it carries a Topic Alias,
// re-encodes it with the topic name and without the alias.
func (m *mux) stripAlias(flags byte, body []byte) (string, []byte, bool) {
	p := &m.pub
	if err := p.Decode(flags, body, packet.V5); err != nil {
		return "", nil, false
	}
	if !p.Props.Has(packet.PropTopicAlias) {
		return p.Topic, nil, true
	}
	alias := p.Props.TopicAlias
	if p.Topic != "" {
		m.aliases[alias] = strings.Clone(p.Topic)
	} else {
		t, ok := m.aliases[alias]
		if !ok {
			return "", nil, false
		}
		p.Topic = t
	}
	p.Props.Clear(packet.PropTopicAlias)
	out, err := p.AppendTo(m.scratch[:0], packet.V5)
	if err != nil {
		return "", nil, false
	}
	m.scratch = out
	return p.Topic, out, true
}

// subFlowLocked returns a writable data flow with a subscription matching
// name.
func (m *mux) subFlowLocked(name string) *flow {
	for _, f := range m.subFlows {
		if f.sendDone {
			continue
		}
		for _, flt := range f.filters {
			if topic.Matches(flt, name) {
				return f
			}
		}
	}
	return nil
}

// strategyFlow applies the delivery strategy.
func (m *mux) strategyFlow(b *batch, name string) (*flow, error) {
	perTopic, perPublish := false, false
	if m.server {
		perTopic, perPublish = m.o.delivery == DeliveryPerTopic, m.o.delivery == DeliveryPerPublish
	} else {
		perTopic, perPublish = m.o.strategy == StrategyDataPerTopic, m.o.strategy == StrategyDataPerPublish
	}
	m.mu.Lock()
	noPush := m.noPush
	m.mu.Unlock()
	switch {
	case noPush:
	case perTopic:
		return m.topicFlow(b, name)
	case perPublish:
		if err := m.flush(b); err != nil {
			return nil, err
		}
		if f := m.openFlow("", true); f != nil {
			return f, nil
		}
	}
	return m.ctrl, nil
}

// topicFlow returns the per-topic flow of key, opening it when needed.
func (m *mux) topicFlow(b *batch, key string) (*flow, error) {
	m.mu.Lock()
	if f := m.topics[key]; f != nil && !f.sendDone {
		f.lastUsed = time.Now()
		m.lru.MoveToFront(f.elem)
		m.mu.Unlock()
		return f, nil
	}
	m.mu.Unlock()
	if err := m.flush(b); err != nil {
		return nil, err
	}
	if f := m.openFlow(key, false); f != nil {
		return f, nil
	}
	return m.ctrl, nil
}

// openFlow opens a data flow (nil when the peer's stream limit is
// reached: the caller uses the control flow). A per-topic flow enters the
// LRU, evicting the least recently used one beyond TopicStreams.
func (m *mux) openFlow(key string, oneShot bool) *flow {
	m.mu.Lock()
	if m.closed || m.local >= m.o.maxFlows {
		m.mu.Unlock()
		return nil
	}
	m.local++ // a peer with the same MaxFlows never has to refuse it
	m.mu.Unlock()
	st, err := m.qc.OpenStream()
	m.mu.Lock()
	if err != nil || m.closed {
		m.local--
		m.mu.Unlock()
		if err == nil {
			st.CancelWrite(quic.StreamErrorCode(StreamFlowCancelled))
			st.CancelRead(quic.StreamErrorCode(StreamFlowCancelled))
		}
		return nil
	}
	m.c.wg.Add(1) // before closed can be set: Close waits for the reader
	m.c.stats.streamsOpened.Add(1)
	h := FlowHeader{Type: FlowClientData, Expire: m.o.flowExpire, Flags: m.o.flowFlags}
	if m.server {
		h.Type = FlowServerData
	}
	m.nextSeq++
	if m.server {
		h.ID = ServerFlowID(m.nextSeq)
	} else {
		h.ID = ClientFlowID(m.nextSeq)
	}
	hdr, err := h.AppendTo(nil)
	if err != nil {
		// Only the optional headers of FlowFlags could make it too long.
		h.Flags.OptionalHeaders = false
		hdr, _ = h.AppendTo(nil)
	}
	f := &flow{id: h.ID, st: st, local: true, flags: h.Flags, oneShot: oneShot, hdr: hdr, lastUsed: time.Now()}
	m.flows[f.id] = f
	var evicted []*flow
	if key != "" {
		f.topic = strings.Clone(key)
		f.elem = m.lru.PushFront(f)
		m.topics[f.topic] = f
		for m.lru.Len() > m.o.topicStreams {
			old := m.lru.Back().Value.(*flow)
			m.evictLocked(old)
			evicted = append(evicted, old)
		}
		m.wake(m.kick)
	}
	m.mu.Unlock()
	m.finishSends(evicted)
	go func() {
		defer m.c.wg.Done()
		br := getReader(st)
		defer putReader(br)
		m.readLoop(f, br)
	}()
	return f
}

// writeFlow writes whole packets to f; when f's stream fails (the peer
// reset it) they go on the control flow instead.
func (m *mux) writeFlow(f *flow, buf []byte, n int) error {
	if f != m.ctrl {
		m.mu.Lock()
		ok := !f.sendDone
		m.mu.Unlock()
		if ok {
			m.c.stats.dataOut.Add(uint64(n)) // counted before the peer can see them
			err := m.streamWrite(f, buf)
			if err == nil {
				m.afterFlowWrite(f)
				return nil
			}
			m.c.stats.dataOut.Add(-uint64(n))
			if isTimeout(err) || m.qc.Context().Err() != nil {
				return m.writeErr(err)
			}
			f.st.CancelWrite(quic.StreamErrorCode(StreamFlowCancelled))
			m.mu.Lock()
			f.sendDone = true
			m.maybeRemoveLocked(f)
			m.mu.Unlock()
		}
	}
	m.c.stats.controlOut.Add(uint64(n))
	if err := m.streamWrite(m.ctrl, buf); err != nil {
		return m.writeErr(err)
	}
	return nil
}

func (m *mux) streamWrite(f *flow, buf []byte) error {
	if dl := m.writeDeadline(); !dl.Equal(f.wdl) {
		f.st.SetWriteDeadline(dl)
		f.wdl = dl
	}
	if f.hdr != nil {
		if _, err := f.st.Write(f.hdr); err != nil {
			return err
		}
		f.hdr = nil
	}
	_, err := f.st.Write(buf)
	return err
}

// afterFlowWrite finishes f's send side when nothing more is owed on it.
func (m *mux) afterFlowWrite(f *flow) {
	m.mu.Lock()
	done := !f.sendDone && ((f.oneShot && f.outPending <= 0) || (!f.local && f.readDone && f.inPending <= 0))
	m.mu.Unlock()
	if done {
		m.finishSends([]*flow{f})
	}
}

func (m *mux) writeErr(err error) error {
	m.mu.Lock()
	closed := m.closed
	m.mu.Unlock()
	if closed {
		return net.ErrClosed
	}
	return m.c.mapErr(err)
}
