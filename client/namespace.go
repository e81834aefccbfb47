package client

import (
	"errors"
	"fmt"
	"strings"

	"github.com/mqtt5go/mqtt5/topic"
)

// ErrNamespace is matched (errors.Is) by every *NamespaceError: a publish,
// subscription or will refused by Options.Namespace before anything was
// sent.
var ErrNamespace = errors.New("mqtt client: topic outside the namespace")

// NamespaceError reports a topic name or filter that Options.Namespace
// refused. errors.Is(err, ErrNamespace) is true for every NamespaceError.
type NamespaceError struct {
	Op     string // "publish", "subscribe" or "will"
	Topic  string // the topic name (publish, will) or filter (subscribe)
	Reason string // why it was refused
	// Err is the error a custom NamespaceValidator returned, when it was
	// not a *NamespaceError itself (nil for the validators of this package).
	Err error
}

func (e *NamespaceError) Error() string {
	op := e.Op
	if op == "" {
		op = "topic"
	}
	return fmt.Sprintf("mqtt client: %s %q refused by the namespace: %s", op, e.Topic, e.Reason)
}

// Is reports whether target is ErrNamespace.
func (e *NamespaceError) Is(target error) bool { return target == ErrNamespace }

// Unwrap returns Err.
func (e *NamespaceError) Unwrap() error { return e.Err }

// NamespaceValidator restricts the topics a client may publish to and the
// filters it may subscribe to, beyond the rules of the protocol: cloud
// brokers refuse (or disconnect for) topics outside their namespace, and
// checking locally gives a clear error instead. Set it in
// Options.Namespace; the client calls it before sending a PUBLISH or a
// SUBSCRIBE (and in New for the will topic). Both methods receive strings
// that are already valid MQTT topic names and filters. They may return any
// error; the client wraps errors that are not a *NamespaceError into one.
type NamespaceValidator interface {
	ValidatePublish(topic string) error
	ValidateSubscribe(filter string) error
}

// checkNamespace applies v to name (a topic name for publish and will, a
// filter for subscribe) and returns a *NamespaceError or nil.
func checkNamespace(v NamespaceValidator, op, name string) error {
	if v == nil {
		return nil
	}
	var err error
	if op == "subscribe" {
		err = v.ValidateSubscribe(name)
	} else {
		err = v.ValidatePublish(name)
	}
	if err == nil {
		return nil
	}
	var ne *NamespaceError
	if errors.As(err, &ne) {
		if ne.Op != op {
			c := *ne
			c.Op = op
			return &c
		}
		return ne
	}
	return &NamespaceError{Op: op, Topic: name, Reason: err.Error(), Err: err}
}

func nsError(op, name, format string, args ...any) error {
	return &NamespaceError{Op: op, Topic: name, Reason: fmt.Sprintf(format, args...)}
}

// ---- generic ----

// GenericNamespace is a NamespaceValidator with a maximum length, a
// maximum number of levels and forbidden prefixes. Zero fields impose
// nothing.
type GenericNamespace struct {
	// MaxLength bounds topic names and filters in bytes of UTF-8 (not in
	// characters: "é" counts 2). For a shared subscription the whole
	// "$share/{group}/{filter}" string counts.
	MaxLength int
	// MaxLevels bounds the number of levels ("a/b/c" has three). For a
	// shared subscription it applies to the inner filter.
	MaxLevels int
	// ForbiddenPrefixes are string prefixes of forbidden topic names
	// ("admin/", "$SYS"). A publish to a topic that starts with one is
	// refused, and so is a subscription whose filter could match such a
	// topic ("+/x" when "admin/" is forbidden; "#" is allowed when only
	// '$' prefixes are forbidden, since it matches no '$' topic).
	ForbiddenPrefixes []string
}

// ValidatePublish implements NamespaceValidator.
func (g GenericNamespace) ValidatePublish(name string) error {
	if g.MaxLength > 0 && len(name) > g.MaxLength {
		return nsError("publish", name, "%d bytes, more than the %d allowed", len(name), g.MaxLength)
	}
	if n := levels(name); g.MaxLevels > 0 && n > g.MaxLevels {
		return nsError("publish", name, "%d levels, more than the %d allowed", n, g.MaxLevels)
	}
	for _, p := range g.ForbiddenPrefixes {
		if strings.HasPrefix(name, p) {
			return nsError("publish", name, "prefix %q is forbidden", p)
		}
	}
	return nil
}

// ValidateSubscribe implements NamespaceValidator.
func (g GenericNamespace) ValidateSubscribe(filter string) error {
	if g.MaxLength > 0 && len(filter) > g.MaxLength {
		return nsError("subscribe", filter, "%d bytes, more than the %d allowed", len(filter), g.MaxLength)
	}
	inner := filter
	if _, in, ok, _ := topic.ParseShared(filter); ok && in != "" {
		inner = in
	}
	if n := levels(inner); g.MaxLevels > 0 && n > g.MaxLevels {
		return nsError("subscribe", filter, "%d levels, more than the %d allowed", n, g.MaxLevels)
	}
	for _, p := range g.ForbiddenPrefixes {
		if filterMayMatchPrefix(inner, p) {
			return nsError("subscribe", filter, "could match topics with the forbidden prefix %q", p)
		}
	}
	return nil
}

func levels(s string) int { return strings.Count(s, "/") + 1 }

// filterMayMatchPrefix reports whether the valid filter f matches at least
// one topic name that starts with the string prefix p.
func filterMayMatchPrefix(f, p string) bool {
	if p == "" {
		return true
	}
	if f == "" {
		return false
	}
	if p[0] == '$' && (f[0] == '+' || f[0] == '#') {
		return false // [MQTT-4.7.2-1] a leading wildcard matches no '$' topic
	}
	pl := strings.Split(p, "/")
	fl := strings.Split(f, "/")
	for i, pp := range pl {
		if i >= len(fl) {
			return false
		}
		fp := fl[i]
		last := i == len(pl)-1
		switch {
		case fp == "#":
			return true
		case fp == "+":
			if last {
				return true
			}
		case last:
			return strings.HasPrefix(fp, pp)
		case fp != pp:
			return false
		}
	}
	return true
}

// ---- AWS IoT Core ----

// AWS IoT Core limits applied by AWSIoTNamespace (AWS IoT Core quotas,
// message broker): a topic name or filter is at most 256 bytes of UTF-8 and
// has at most 7 slashes (8 levels); for Basic Ingest topics
// ($aws/rules/{rule}/...) the "$aws/rules/{rule}/" part is not counted.
const (
	AWSMaxTopicBytes   = 256
	AWSMaxTopicSlashes = 7
)

// ValidThingName reports whether name is a valid AWS IoT thing name: 1 to
// 128 characters from a-z, A-Z, 0-9, ':', '_' and '-'.
func ValidThingName(name string) error {
	if name == "" {
		return errors.New("mqtt client: empty AWS IoT thing name")
	}
	if len(name) > 128 {
		return fmt.Errorf("mqtt client: AWS IoT thing name of %d characters (at most 128)", len(name))
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == ':' || c == '_' || c == '-') {
			return fmt.Errorf("mqtt client: AWS IoT thing name %q: character %q not allowed (a-z A-Z 0-9 : _ -)", name, c)
		}
	}
	return nil
}

// AWSIoTNamespace is the NamespaceValidator of AWS IoT Core:
//
//   - topic names and filters: at most AWSMaxTopicBytes bytes and
//     AWSMaxTopicSlashes slashes;
//   - topics starting with '$' are reserved: only the thing's own shadow and
//     jobs topics ($aws/things/{ThingName}/shadow/..., named shadows
//     included, and $aws/things/{ThingName}/jobs/...) are allowed, plus the
//     filters in AllowReserved;
//   - Basic Ingest, $aws/rules/{rule}/{topic}, may be published to (the
//     limits apply to {topic}), not subscribed to;
//   - a shared subscription $share/{group}/{filter} is checked on {filter},
//     which must not be a reserved topic.
//
// A filter on reserved topics must stay within the allowed ones:
// "$aws/things/{ThingName}/shadow/#" is allowed, "$aws/things/+/shadow/#"
// and "$aws/things/{ThingName}/#" are not.
type AWSIoTNamespace struct {
	// ThingName binds the reserved topics to one thing (see
	// ValidThingName). Empty allows no $aws/things topic.
	ThingName string
	// AllowReserved lists further reserved topic filters the device uses,
	// for example "$aws/certificates/create/#" and
	// "$aws/provisioning-templates/{template}/provision/#" for fleet
	// provisioning.
	AllowReserved []string
}

func (a AWSIoTNamespace) reserved() []string {
	var fs []string
	if ValidThingName(a.ThingName) == nil {
		base := "$aws/things/" + a.ThingName + "/"
		fs = append(fs, base+"shadow/#", base+"jobs/#")
	}
	return append(fs, a.AllowReserved...)
}

// awsLimits checks the length and slash limits of s.
func awsLimits(op, full, s string) error {
	if len(s) > AWSMaxTopicBytes {
		return nsError(op, full, "%d bytes of UTF-8; AWS IoT allows %d", len(s), AWSMaxTopicBytes)
	}
	if n := strings.Count(s, "/"); n > AWSMaxTopicSlashes {
		return nsError(op, full, "%d slashes; AWS IoT allows %d (%d levels)", n, AWSMaxTopicSlashes, AWSMaxTopicSlashes+1)
	}
	return nil
}

// awsReservedPrefix reports whether s starts with "$aws/" (in any case)
// and returns s with that prefix in lower case.
func awsReservedPrefix(s string) (string, bool) {
	if len(s) >= 5 && strings.EqualFold(s[:5], "$aws/") {
		return "$aws/" + s[5:], true
	}
	return s, false
}

// ValidatePublish implements NamespaceValidator.
func (a AWSIoTNamespace) ValidatePublish(name string) error {
	const op = "publish"
	norm, aws := awsReservedPrefix(name)
	if aws && strings.HasPrefix(norm, "$aws/rules/") {
		rule, rest, ok := strings.Cut(norm[len("$aws/rules/"):], "/")
		if !ok || rest == "" {
			return nsError(op, name, "a Basic Ingest topic is $aws/rules/{rule}/{topic}")
		}
		if err := validRuleName(rule); err != nil {
			return nsError(op, name, "%v", err)
		}
		return awsLimits(op, name, rest)
	}
	if err := awsLimits(op, name, name); err != nil {
		return err
	}
	if name[0] != '$' {
		return nil
	}
	if !aws {
		return nsError(op, name, "topics starting with '$' are reserved by AWS IoT")
	}
	for _, f := range a.reserved() {
		if topic.Matches(f, norm) {
			return nil
		}
	}
	return nsError(op, name, "reserved topic outside the thing's own shadow and jobs topics%s", a.thingHint())
}

// ValidateSubscribe implements NamespaceValidator.
func (a AWSIoTNamespace) ValidateSubscribe(filter string) error {
	const op = "subscribe"
	inner := filter
	if _, in, ok, _ := topic.ParseShared(filter); ok && in != "" {
		inner = in
		if strings.HasPrefix(inner, "$") {
			return nsError(op, filter, "shared subscriptions to reserved topics are not supported")
		}
	}
	if err := awsLimits(op, filter, inner); err != nil {
		return err
	}
	if inner[0] != '$' {
		return nil
	}
	norm, aws := awsReservedPrefix(inner)
	if !aws {
		return nsError(op, filter, "topics starting with '$' are reserved by AWS IoT")
	}
	if strings.HasPrefix(norm, "$aws/rules/") {
		return nsError(op, filter, "Basic Ingest topics ($aws/rules/...) can only be published to")
	}
	for _, f := range a.reserved() {
		if topic.Covers(f, norm) {
			return nil
		}
	}
	return nsError(op, filter, "reserved topics outside the thing's own shadow and jobs topics%s", a.thingHint())
}

func (a AWSIoTNamespace) thingHint() string {
	if a.ThingName == "" {
		return " (no thing name configured)"
	}
	if err := ValidThingName(a.ThingName); err != nil {
		return " (invalid thing name " + fmt.Sprintf("%q", a.ThingName) + ")"
	}
	return " of " + a.ThingName
}

// validRuleName checks an AWS IoT rule name: 1 to 128 characters from
// a-z, A-Z, 0-9 and '_'.
func validRuleName(r string) error {
	if r == "" || len(r) > 128 {
		return fmt.Errorf("rule name of %d characters (1 to 128)", len(r))
	}
	for i := 0; i < len(r); i++ {
		c := r[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_') {
			return fmt.Errorf("rule name %q: character %q not allowed (a-z A-Z 0-9 _)", r, c)
		}
	}
	return nil
}

// ---- Azure IoT Hub ----

// ValidAzureDeviceID reports whether id is a valid Azure IoT Hub device
// identity: 1 to 128 ASCII characters, letters, digits and
// - . % _ * ? ! ( ) , : = @ $ '.
func ValidAzureDeviceID(id string) error {
	if id == "" {
		return errors.New("mqtt client: empty Azure IoT Hub device id")
	}
	if len(id) > 128 {
		return fmt.Errorf("mqtt client: Azure IoT Hub device id of %d characters (at most 128)", len(id))
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("-.%_*?!(),:=@$'", c) >= 0) {
			return fmt.Errorf("mqtt client: Azure IoT Hub device id %q: character %q not allowed", id, c)
		}
	}
	return nil
}

// AzureIoTHubNamespace is the NamespaceValidator of an Azure IoT Hub
// device. It allows publishing to
//
//	devices/{DeviceID}/messages/events/...   (telemetry, with a property bag)
//	$iothub/twin/GET/...                     (get the twin: ?$rid=...)
//	$iothub/twin/PATCH/properties/reported/... (report properties)
//	$iothub/methods/res/...                  (direct method responses)
//
// and subscribing to exactly
//
//	devices/{DeviceID}/messages/devicebound/#  (cloud-to-device messages)
//	$iothub/twin/res/#                         (twin responses)
//	$iothub/twin/PATCH/properties/desired/#    (desired property updates)
//	$iothub/methods/POST/#                     (direct method calls)
//
// IoT Hub is not a general-purpose broker: it closes the connection of a
// device that uses any other topic.
type AzureIoTHubNamespace struct {
	// DeviceID is the device identity (see ValidAzureDeviceID), normally
	// the client identifier.
	DeviceID string
}

// ValidatePublish implements NamespaceValidator.
func (z AzureIoTHubNamespace) ValidatePublish(name string) error {
	if err := ValidAzureDeviceID(z.DeviceID); err != nil {
		return nsError("publish", name, "%v", err)
	}
	for _, p := range []string{
		"devices/" + z.DeviceID + "/messages/events/",
		"$iothub/twin/GET/",
		"$iothub/twin/PATCH/properties/reported/",
		"$iothub/methods/res/",
	} {
		if strings.HasPrefix(name, p) {
			return nil
		}
	}
	return nsError("publish", name, "Azure IoT Hub accepts only devices/%s/messages/events/... and the $iothub twin and method topics", z.DeviceID)
}

// ValidateSubscribe implements NamespaceValidator.
func (z AzureIoTHubNamespace) ValidateSubscribe(filter string) error {
	if err := ValidAzureDeviceID(z.DeviceID); err != nil {
		return nsError("subscribe", filter, "%v", err)
	}
	allowed := []string{
		"devices/" + z.DeviceID + "/messages/devicebound/#",
		"$iothub/twin/res/#",
		"$iothub/twin/PATCH/properties/desired/#",
		"$iothub/methods/POST/#",
	}
	for _, f := range allowed {
		if filter == f {
			return nil
		}
	}
	return nsError("subscribe", filter, "Azure IoT Hub accepts only the filters %s", strings.Join(allowed, ", "))
}

var (
	_ NamespaceValidator = GenericNamespace{}
	_ NamespaceValidator = AWSIoTNamespace{}
	_ NamespaceValidator = AzureIoTHubNamespace{}
)
