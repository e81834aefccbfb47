package packet

// Connect is the CONNECT packet (section 3.1).
type Connect struct {
	// ProtocolName is "MQTT" for 3.1.1 and 5.0; empty encodes as "MQTT".
	ProtocolName string
	Version      Version
	CleanStart   bool // Clean Session in 3.1.1
	KeepAlive    uint16
	Props        Properties
	ClientID     string
	Will         *Will
	Username     string
	// UsernameFlag marks a present but empty user name; a non-empty
	// Username is always sent.
	UsernameFlag bool
	// Password is sent when non-nil (an empty non-nil slice is an empty
	// password).
	Password []byte
}

// Will is the Will Message carried in CONNECT.
type Will struct {
	QoS     byte
	Retain  bool
	Props   Properties // Will Properties (v5)
	Topic   string
	Payload []byte
}

// Type implements Packet.
func (*Connect) Type() Type { return CONNECT }

// Connect flag bits (section 3.1.2.3).
const (
	connectReserved   = 0x01
	connectCleanStart = 0x02
	connectWill       = 0x04
	connectWillQoS    = 0x18
	connectWillRetain = 0x20
	connectPassword   = 0x40
	connectUsername   = 0x80
)

// AppendTo implements Packet. The version written is c.Version (v is used
// when c.Version is zero).
func (c *Connect) AppendTo(dst []byte, v Version) ([]byte, error) {
	if c.Version != 0 {
		v = c.Version
	}
	if !v.Valid() {
		return dst, ErrUnsupportedVersion
	}
	name := c.ProtocolName
	if name == "" {
		name = "MQTT"
	}
	hasUser := c.Username != "" || c.UsernameFlag
	if err := checkString(CONNECT, "protocol name", name); err != nil {
		return dst, err
	}
	if err := checkString(CONNECT, "client identifier", c.ClientID); err != nil {
		return dst, err
	}
	if err := checkString(CONNECT, "user name", c.Username); err != nil {
		return dst, err
	}
	if err := checkBinary(CONNECT, "password", c.Password); err != nil {
		return dst, err
	}
	if v == V311 && c.Password != nil && !hasUser {
		return dst, malformed(CONNECT, "password without user name in MQTT 3.1.1")
	}
	n := 2 + len(name) + 1 + 1 + 2 + 2 + len(c.ClientID)
	var psize, wsize int
	if v == V5 {
		if err := c.Props.validate(CONNECT); err != nil {
			return dst, err
		}
		psize = c.Props.size(CONNECT)
		n += VarintSize(uint32(psize)) + psize
	}
	flags := byte(0)
	if c.CleanStart {
		flags |= connectCleanStart
	}
	if w := c.Will; w != nil {
		if w.QoS > 2 {
			return dst, malformed(CONNECT, "will QoS 3")
		}
		if err := checkString(CONNECT, "will topic", w.Topic); err != nil {
			return dst, err
		}
		if err := checkBinary(CONNECT, "will payload", w.Payload); err != nil {
			return dst, err
		}
		flags |= connectWill | w.QoS<<3
		if w.Retain {
			flags |= connectWillRetain
		}
		if v == V5 {
			if err := w.Props.validate(willContext); err != nil {
				return dst, err
			}
			wsize = w.Props.size(willContext)
			n += VarintSize(uint32(wsize)) + wsize
		}
		n += 4 + len(w.Topic) + len(w.Payload)
	}
	if hasUser {
		flags |= connectUsername
		n += 2 + len(c.Username)
	}
	if c.Password != nil {
		flags |= connectPassword
		n += 2 + len(c.Password)
	}
	dst, err := appendHeader(dst, CONNECT, 0, n)
	if err != nil {
		return dst, err
	}
	dst = appendString(dst, name)
	dst = append(dst, byte(v), flags)
	dst = appendUint16(dst, c.KeepAlive)
	if v == V5 {
		dst = c.Props.appendProps(dst, CONNECT, psize)
	}
	dst = appendString(dst, c.ClientID)
	if w := c.Will; w != nil {
		if v == V5 {
			dst = w.Props.appendProps(dst, willContext, wsize)
		}
		dst = appendString(dst, w.Topic)
		dst = appendBinary(dst, w.Payload)
	}
	if hasUser {
		dst = appendString(dst, c.Username)
	}
	if c.Password != nil {
		dst = appendBinary(dst, c.Password)
	}
	return dst, nil
}

// Decode decodes a CONNECT body. The version comes from the packet itself;
// the argument is ignored. A protocol level other than 4 or 5 yields an
// *Error with Code UnsupportedProtocolVersion, after which c.Version holds
// the level the client asked for (so a server can answer in its dialect).
func (c *Connect) Decode(flags byte, body []byte, _ Version) error {
	if flags != 0 {
		return malformed(CONNECT, "invalid fixed header flags") // [MQTT-2.1.3-1]
	}
	d := decoder{b: body, typ: CONNECT}
	*c = Connect{Props: c.Props}
	c.ProtocolName = d.string("protocol name")
	level := d.byte("protocol level")
	if d.err != nil {
		return d.err
	}
	c.Version = Version(level)
	switch {
	case c.ProtocolName == "MQIsdp" && level == 3:
		return &Error{Code: UnsupportedProtocolVersion, Type: CONNECT, Reason: "MQTT 3.1 is not supported"}
	case c.ProtocolName != "MQTT":
		// [MQTT-3.1.2-1] the protocol name must be "MQTT".
		return &Error{Code: UnsupportedProtocolVersion, Type: CONNECT, Reason: "protocol name is not MQTT"}
	case !c.Version.Valid():
		// [MQTT-3.1.2-2]
		return &Error{Code: UnsupportedProtocolVersion, Type: CONNECT, Reason: "unsupported protocol level " + c.Version.String()}
	}
	f := d.byte("connect flags")
	c.KeepAlive = d.uint16("keep alive")
	if d.err != nil {
		return d.err
	}
	if f&connectReserved != 0 {
		return malformed(CONNECT, "reserved connect flag set") // [MQTT-3.1.2-3]
	}
	c.CleanStart = f&connectCleanStart != 0
	willQoS := (f & connectWillQoS) >> 3
	if f&connectWill == 0 {
		if willQoS != 0 {
			return malformed(CONNECT, "will QoS set without will flag") // [MQTT-3.1.2-11]
		}
		if f&connectWillRetain != 0 {
			return malformed(CONNECT, "will retain set without will flag") // [MQTT-3.1.2-13]
		}
	} else if willQoS > 2 {
		return malformed(CONNECT, "will QoS 3") // [MQTT-3.1.2-12]
	}
	if c.Version == V311 && f&connectPassword != 0 && f&connectUsername == 0 {
		return malformed(CONNECT, "password flag without user name flag")
	}
	if c.Version == V5 {
		c.Props.decode(&d, CONNECT)
	} else {
		c.Props.Reset()
	}
	c.ClientID = d.string("client identifier")
	if f&connectWill != 0 {
		w := &Will{QoS: willQoS, Retain: f&connectWillRetain != 0}
		if c.Version == V5 {
			w.Props.decode(&d, willContext)
		}
		w.Topic = d.string("will topic")
		w.Payload = d.binary("will payload")
		c.Will = w
	}
	if f&connectUsername != 0 { // [MQTT-3.1.2-16] [MQTT-3.1.2-17]
		c.Username = d.string("user name")
		c.UsernameFlag = true
	}
	if f&connectPassword != 0 { // [MQTT-3.1.2-18] [MQTT-3.1.2-19]
		c.Password = d.binary("password")
	}
	if d.err != nil {
		return d.err
	}
	if d.len() != 0 {
		return malformed(CONNECT, "trailing bytes after payload")
	}
	return nil
}
