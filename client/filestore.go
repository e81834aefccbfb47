package client

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sync"

	"github.com/mqtt5go/mqtt5/packet"
)

// FileStore is a SessionStore on disk: a Client given a FileStore, a fixed
// ClientID and CleanStartNever resumes its QoS 1 and 2 flows after the
// process restarts (or crashes), as long as the server kept the session
// (SessionExpiry > 0).
//
// # Format
//
// The directory holds one append-only log, session.log. Every change is one
// record:
//
//	magic   4 bytes  "M5SR"
//	length  uint32   big endian, length of the body
//	crc     uint32   big endian, CRC-32C (Castagnoli) of the body
//	body    op (1 byte), packet identifier (uint16), then for a stored
//	        outbound message: seq (uint64), pubrel (1 byte) and the PUBLISH
//	        encoded as an MQTT 5 packet, so every property is kept
//
// The ops are put-outbound, delete-outbound, put-inbound, delete-inbound
// and reset. The store keeps the live state in memory as well, so Load does
// not read the disk.
//
// Each record is written and fsync'd before the call returns. The Client
// calls the store before it hands the packet to the network (PUBLISH,
// PUBREL), before a handler gets a received QoS 2 message (that record
// also covers its PUBREC) and before it answers PUBREL with PUBCOMP, so a crash after a
// packet was sent never loses the state that packet implies. The price is
// one fsync per QoS 1/2 state change.
//
// # Compaction
//
// When the log holds more than CompactAfter records and more than four
// times as many as there are live entries (and at every Reset), the live
// state is written to session.log.tmp, fsync'd and renamed over the log
// (then the directory is fsync'd): a crash at any point leaves either the
// old log or the new one.
//
// # Damage
//
// A record whose checksum does not match (a torn write at the end of the
// log, a damaged sector) is skipped with a warning on the Logger, never a
// panic: the store looks for the next intact record and carries on, then
// rewrites the log without the damage. A skipped record loses what it
// recorded (a message that will not be re-sent, or a deletion that is
// undone, so that a completed message is sent again).
//
// One directory holds the session of one ClientID and is used by one
// FileStore at a time (nothing locks it against a second process).
// FileStore is safe for concurrent use.
type FileStore struct {
	mu     sync.Mutex
	dir    string
	path   string
	f      *os.File
	log    *slog.Logger
	after  int
	out    map[uint16]fileRecord
	in     map[uint16]struct{}
	nrec   int // records in the log
	closed bool
	buf    []byte
}

// FileStoreOptions configures OpenFileStore.
type FileStoreOptions struct {
	// Logger receives warnings about damaged records. Default
	// slog.Default().
	Logger *slog.Logger
	// CompactAfter is the number of records above which the log may be
	// compacted. Default 1000.
	CompactAfter int
}

// fileRecord is a stored outbound message: its stage and encoded PUBLISH.
type fileRecord struct {
	seq    uint64
	pubrel bool
	pkt    []byte
}

const (
	fsMagic      = "M5SR"
	fsHeader     = 12 // magic, length, crc
	fsLogName    = "session.log"
	fsMaxRecord  = packet.MaxRemainingLength + 64
	opPutOut     = 1
	opDelOut     = 2
	opPutIn      = 3
	opDelIn      = 4
	opReset      = 5
	fsOutFixed   = 1 + 2 + 8 + 1 // op, id, seq, pubrel
	fsShortFixed = 1 + 2         // op, id
)

var crcTable = crc32.MakeTable(crc32.Castagnoli)

// ErrStoreClosed is returned by a FileStore after Close.
var ErrStoreClosed = errors.New("mqtt client: session store closed")

// NewFileStore opens (creating it if needed) the session store in dir with
// default options. See OpenFileStore.
func NewFileStore(dir string) (*FileStore, error) {
	return OpenFileStore(dir, FileStoreOptions{})
}

// OpenFileStore opens (creating it if needed) the session store in dir and
// reads the state it holds; damaged records are skipped with a warning.
func OpenFileStore(dir string, o FileStoreOptions) (*FileStore, error) {
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.CompactAfter <= 0 {
		o.CompactAfter = 1000
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("mqtt client: file store: %w", err)
	}
	s := &FileStore{
		dir:   dir,
		path:  filepath.Join(dir, fsLogName),
		log:   o.Logger,
		after: o.CompactAfter,
		out:   make(map[uint16]fileRecord),
		in:    make(map[uint16]struct{}),
	}
	data, err := os.ReadFile(s.path)
	switch {
	case errors.Is(err, os.ErrNotExist):
	case err != nil:
		return nil, fmt.Errorf("mqtt client: file store: %w", err)
	}
	damaged := s.replay(data)
	if damaged || data == nil {
		// Start from a clean log: the live state without the damage (or
		// an empty log, made durable with its directory entry).
		if err := s.rewrite(); err != nil {
			return nil, fmt.Errorf("mqtt client: file store: %w", err)
		}
	}
	if s.f == nil {
		f, err := os.OpenFile(s.path, os.O_WRONLY|os.O_APPEND, 0o600)
		if err != nil {
			return nil, fmt.Errorf("mqtt client: file store: %w", err)
		}
		s.f = f
	}
	return s, nil
}

// replay applies the records of data, skipping damaged ones. It reports
// whether it found damage.
func (s *FileStore) replay(data []byte) (damaged bool) {
	off := 0
	for off < len(data) {
		body, n, why := readRecord(data[off:])
		if why == "" {
			why = s.apply(body)
		}
		if why == "" {
			s.nrec++
			off += n
			continue
		}
		damaged = true
		// Look for the next intact record.
		next := -1
		for i := off + 1; i < len(data); i++ {
			j := bytes.Index(data[i:], []byte(fsMagic))
			if j < 0 {
				break
			}
			i += j
			if b, _, w := readRecord(data[i:]); w == "" && validBody(b) {
				next = i
				break
			}
		}
		if next < 0 {
			s.log.Warn("mqtt client: file store: damaged record skipped (torn or corrupt tail)",
				"file", s.path, "offset", off, "bytes", len(data)-off, "reason", why)
			break
		}
		s.log.Warn("mqtt client: file store: damaged record skipped",
			"file", s.path, "offset", off, "bytes", next-off, "reason", why)
		off = next
	}
	return damaged
}

// readRecord checks the record at the start of b. It returns its body and
// total size, or why it is not intact.
func readRecord(b []byte) (body []byte, n int, why string) {
	if len(b) < fsHeader {
		return nil, 0, "truncated header"
	}
	if string(b[:4]) != fsMagic {
		return nil, 0, "bad magic"
	}
	l := binary.BigEndian.Uint32(b[4:8])
	if l > fsMaxRecord {
		return nil, 0, "bad length"
	}
	if uint64(len(b)-fsHeader) < uint64(l) {
		return nil, 0, "truncated body"
	}
	body = b[fsHeader : fsHeader+int(l)]
	if crc32.Checksum(body, crcTable) != binary.BigEndian.Uint32(b[8:12]) {
		return nil, 0, "checksum mismatch"
	}
	return body, fsHeader + int(l), ""
}

// validBody reports whether body is a well-formed record body.
func validBody(body []byte) bool {
	var scratch FileStore
	scratch.out = make(map[uint16]fileRecord)
	scratch.in = make(map[uint16]struct{})
	return scratch.apply(body) == ""
}

// apply applies one record body to the state, or says why it cannot.
func (s *FileStore) apply(body []byte) string {
	if len(body) < fsShortFixed {
		return "short body"
	}
	op := body[0]
	id := binary.BigEndian.Uint16(body[1:3])
	switch op {
	case opPutOut:
		if len(body) < fsOutFixed || id == 0 {
			return "short outbound record"
		}
		rec := fileRecord{
			seq:    binary.BigEndian.Uint64(body[3:11]),
			pubrel: body[11] != 0,
			pkt:    bytes.Clone(body[fsOutFixed:]),
		}
		if _, err := decodeStoredPublish(rec.pkt); err != nil {
			return "bad PUBLISH: " + err.Error()
		}
		s.out[id] = rec
	case opDelOut:
		delete(s.out, id)
	case opPutIn:
		s.in[id] = struct{}{}
	case opDelIn:
		delete(s.in, id)
	case opReset:
		clear(s.out)
		clear(s.in)
	default:
		return fmt.Sprintf("unknown op %d", op)
	}
	return ""
}

// decodeStoredPublish decodes an encoded PUBLISH (fixed header included).
func decodeStoredPublish(pkt []byte) (*packet.Publish, error) {
	if len(pkt) < 2 || packet.Type(pkt[0]>>4) != packet.PUBLISH {
		return nil, errors.New("not a PUBLISH")
	}
	rem, n, err := packet.DecodeVarint(pkt[1:])
	if err != nil {
		return nil, err
	}
	body := pkt[1+n:]
	if int(rem) != len(body) {
		return nil, errors.New("length mismatch")
	}
	p, err := packet.Decode(packet.FixedHeader{Type: packet.PUBLISH, Flags: pkt[0] & 0x0F, Remaining: int(rem)}, body, packet.V5)
	if err != nil {
		return nil, err
	}
	pub := p.(*packet.Publish)
	if pub.QoS == 0 {
		return nil, errors.New("QoS 0 message")
	}
	return pub, nil
}

// appendRecord appends the framed record of body to dst.
func appendRecord(dst, body []byte) []byte {
	dst = append(dst, fsMagic...)
	dst = binary.BigEndian.AppendUint32(dst, uint32(len(body)))
	dst = binary.BigEndian.AppendUint32(dst, crc32.Checksum(body, crcTable))
	return append(dst, body...)
}

func appendOutBody(dst []byte, id uint16, r fileRecord) []byte {
	dst = append(dst, opPutOut)
	dst = binary.BigEndian.AppendUint16(dst, id)
	dst = binary.BigEndian.AppendUint64(dst, r.seq)
	pr := byte(0)
	if r.pubrel {
		pr = 1
	}
	dst = append(dst, pr)
	return append(dst, r.pkt...)
}

// write appends one record and syncs it.
func (s *FileStore) write(body []byte) error {
	if s.closed {
		return ErrStoreClosed
	}
	s.buf = appendRecord(s.buf[:0], body)
	if _, err := s.f.Write(s.buf); err != nil {
		return fmt.Errorf("mqtt client: file store: %w", err)
	}
	if err := s.f.Sync(); err != nil {
		return fmt.Errorf("mqtt client: file store: %w", err)
	}
	if cap(s.buf) > 64<<10 {
		s.buf = nil
	}
	s.nrec++
	return nil
}

// maybeCompact rewrites the log when it has grown well beyond the live
// state. It runs after the change of the last record was applied in memory.
func (s *FileStore) maybeCompact() {
	if live := len(s.out) + len(s.in); s.nrec > s.after && s.nrec > 4*live {
		if err := s.rewrite(); err != nil {
			// The records are safe in the old log; compaction is retried later.
			s.log.Warn("mqtt client: file store: compaction failed", "file", s.path, "error", err)
		}
	}
}

// rewrite replaces the log with one holding only the live state.
func (s *FileStore) rewrite() error {
	var data []byte
	ids := make([]uint16, 0, len(s.out))
	for id := range s.out {
		ids = append(ids, id)
	}
	slices.SortFunc(ids, func(a, b uint16) int { return cmpSeq(s.out[a].seq, s.out[b].seq) })
	var body []byte
	for _, id := range ids {
		body = appendOutBody(body[:0], id, s.out[id])
		data = appendRecord(data, body)
	}
	for id := range s.in {
		body = append(body[:0], opPutIn)
		body = binary.BigEndian.AppendUint16(body, id)
		data = appendRecord(data, body)
	}
	tmp := s.path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp, s.path); err != nil {
		return err
	}
	if err := syncDir(s.dir); err != nil {
		return err
	}
	nf, err := os.OpenFile(s.path, os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	if s.f != nil {
		s.f.Close()
	}
	s.f = nf
	s.nrec = len(s.out) + len(s.in)
	return nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Sync(); err != nil && !errors.Is(err, os.ErrInvalid) {
		return err
	}
	return nil
}

func cmpSeq(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// PutOutbound implements SessionStore. The packet is encoded at once; p is
// not kept.
func (s *FileStore) PutOutbound(id uint16, seq uint64, p *packet.Publish, pubrel bool) error {
	if p == nil || p.QoS == 0 || id == 0 {
		return errors.New("mqtt client: file store: outbound message needs QoS 1 or 2 and a packet identifier")
	}
	wire := *p
	wire.Dup = false
	wire.PacketID = id
	pkt, err := wire.AppendTo(nil, packet.V5)
	if err != nil {
		return fmt.Errorf("mqtt client: file store: %w", err)
	}
	rec := fileRecord{seq: seq, pubrel: pubrel, pkt: pkt}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.write(appendOutBody(nil, id, rec)); err != nil {
		return err
	}
	s.out[id] = rec
	s.maybeCompact()
	return nil
}

func (s *FileStore) short(op byte, id uint16) error {
	var b [fsShortFixed]byte
	b[0] = op
	binary.BigEndian.PutUint16(b[1:], id)
	return s.write(b[:])
}

// DeleteOutbound implements SessionStore.
func (s *FileStore) DeleteOutbound(id uint16) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.out[id]; !ok {
		return nil
	}
	if err := s.short(opDelOut, id); err != nil {
		return err
	}
	delete(s.out, id)
	s.maybeCompact()
	return nil
}

// PutInbound implements SessionStore.
func (s *FileStore) PutInbound(id uint16) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.in[id]; ok {
		return nil
	}
	if err := s.short(opPutIn, id); err != nil {
		return err
	}
	s.in[id] = struct{}{}
	s.maybeCompact()
	return nil
}

// DeleteInbound implements SessionStore.
func (s *FileStore) DeleteInbound(id uint16) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.in[id]; !ok {
		return nil
	}
	if err := s.short(opDelIn, id); err != nil {
		return err
	}
	delete(s.in, id)
	s.maybeCompact()
	return nil
}

// Load implements SessionStore. Each call returns fresh copies.
func (s *FileStore) Load() ([]StoredMessage, []uint16, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, nil, ErrStoreClosed
	}
	out := make([]StoredMessage, 0, len(s.out))
	for id, r := range s.out {
		p, err := decodeStoredPublish(bytes.Clone(r.pkt))
		if err != nil { // checked when stored or read: not reached
			return nil, nil, fmt.Errorf("mqtt client: file store: message %d: %w", id, err)
		}
		out = append(out, StoredMessage{ID: id, Seq: r.seq, Publish: p, Pubrel: r.pubrel})
	}
	slices.SortFunc(out, func(a, b StoredMessage) int { return cmpSeq(a.Seq, b.Seq) })
	in := make([]uint16, 0, len(s.in))
	for id := range s.in {
		in = append(in, id)
	}
	slices.Sort(in)
	return out, in, nil
}

// Reset implements SessionStore: the log is replaced by an empty one.
func (s *FileStore) Reset() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return ErrStoreClosed
	}
	if len(s.out) == 0 && len(s.in) == 0 && s.nrec == 0 {
		return nil
	}
	clear(s.out)
	clear(s.in)
	if err := s.rewrite(); err != nil {
		// Fall back to a reset record in the current log.
		if werr := s.write([]byte{opReset, 0, 0}); werr != nil {
			return werr
		}
	}
	return nil
}

// Dir returns the directory of the store.
func (s *FileStore) Dir() string { return s.dir }

// Close closes the log. The state stays on disk; calls after Close fail
// with ErrStoreClosed.
func (s *FileStore) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	return s.f.Close()
}

var _ SessionStore = (*FileStore)(nil)
