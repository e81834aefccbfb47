package client

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/mqtt5go/mqtt5/topic"
)

type nsCase struct {
	name  string
	topic string
	ok    bool
}

// runNS checks each case against validate, and that refusals are
// *NamespaceError values matching ErrNamespace that name the topic.
func runNS(t *testing.T, op string, validate func(string) error, cases []nsCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(op+"/"+tc.name, func(t *testing.T) {
			valid := topic.ValidateName(tc.topic)
			if op == "subscribe" {
				valid = topic.ValidateFilter(tc.topic)
			}
			if valid != nil {
				t.Fatalf("test case %q is not a valid MQTT %s: %v", tc.topic, op, valid)
			}
			err := validate(tc.topic)
			if tc.ok {
				if err != nil {
					t.Fatalf("%q refused: %v", tc.topic, err)
				}
				return
			}
			if err == nil {
				t.Fatalf("%q accepted", tc.topic)
			}
			var ne *NamespaceError
			if !errors.Is(err, ErrNamespace) || !errors.As(err, &ne) || ne.Topic != tc.topic || ne.Op != op || ne.Reason == "" {
				t.Fatalf("%q: error %#v (%v)", tc.topic, err, err)
			}
		})
	}
}

func TestAWSIoTNamespacePublish(t *testing.T) {
	ns := AWSIoTNamespace{ThingName: "dev-1"}
	cases := []nsCase{
		{"plain", "sensors/dev-1/temp", true},
		{"256 ascii bytes", strings.Repeat("a", 256), true},
		{"257 ascii bytes", strings.Repeat("a", 257), false},
		// The limit is in bytes of UTF-8, not characters.
		{"128 two-byte runes = 256 bytes", strings.Repeat("é", 128), true},
		{"129 two-byte runes = 258 bytes", strings.Repeat("é", 129), false},
		{"86 three-byte runes = 258 bytes", strings.Repeat("€", 86), false},
		{"64 four-byte runes = 256 bytes", strings.Repeat("😀", 64), true},
		{"65 four-byte runes = 260 bytes", strings.Repeat("😀", 65), false},
		{"7 slashes", "a/b/c/d/e/f/g/h", true},
		{"8 slashes", "a/b/c/d/e/f/g/h/i", false},
		{"empty levels count", "///////", true},
		{"8 empty levels", "////////", false},
		{"own classic shadow", "$aws/things/dev-1/shadow/update", true},
		{"own named shadow (7 slashes)", "$aws/things/dev-1/shadow/name/cfg/update", true},
		{"own shadow, upper-case $AWS", "$AWS/things/dev-1/shadow/get", true},
		{"own jobs", "$aws/things/dev-1/jobs/start-next", true},
		{"other thing's shadow", "$aws/things/dev-2/shadow/update", false},
		{"thing name prefix", "$aws/things/dev-10/shadow/update", false},
		{"own tunnels", "$aws/things/dev-1/tunnels/notify", false},
		{"own thing root", "$aws/things/dev-1", false},
		{"events", "$aws/events/presence/connected/dev-1", false},
		{"other $ topic", "$SYS/broker/uptime", false},
		{"basic ingest", "$aws/rules/my_rule/a/b", true},
		{"basic ingest: 7 slashes after the prefix", "$aws/rules/r/a/b/c/d/e/f/g/h", true},
		{"basic ingest: 8 slashes after the prefix", "$aws/rules/r/a/b/c/d/e/f/g/h/i", false},
		{"basic ingest: 256 bytes after the prefix", "$aws/rules/r/" + strings.Repeat("x", 256), true},
		{"basic ingest: 257 bytes after the prefix", "$aws/rules/r/" + strings.Repeat("x", 257), false},
		{"basic ingest: bad rule name", "$aws/rules/my-rule/a", false},
		{"basic ingest: no topic", "$aws/rules/r", false},
		{"basic ingest: empty topic", "$aws/rules/r/", false},
	}
	runNS(t, "publish", ns.ValidatePublish, cases)

	// Without a (valid) thing name no thing topic is allowed.
	for _, bad := range []AWSIoTNamespace{{}, {ThingName: "bad name"}} {
		if err := bad.ValidatePublish("$aws/things/bad name/shadow/update"); !errors.Is(err, ErrNamespace) {
			t.Errorf("thing %q: %v", bad.ThingName, err)
		}
		if err := bad.ValidatePublish("a/b"); err != nil {
			t.Errorf("thing %q, plain topic: %v", bad.ThingName, err)
		}
	}
}

func TestAWSIoTNamespaceSubscribe(t *testing.T) {
	ns := AWSIoTNamespace{ThingName: "dev-1", AllowReserved: []string{"$aws/certificates/create/#"}}
	cases := []nsCase{
		{"all", "#", true},
		{"single level", "+/temp", true},
		{"256 bytes", strings.Repeat("a", 254) + "/#", true},
		{"257 bytes", strings.Repeat("a", 255) + "/#", false},
		{"7 slashes", "+/+/+/+/+/+/+/#", true},
		{"8 slashes", "+/+/+/+/+/+/+/+/#", false},
		{"own shadow", "$aws/things/dev-1/shadow/#", true},
		{"own shadow with +", "$aws/things/dev-1/shadow/+/accepted", true},
		{"own named shadows", "$aws/things/dev-1/shadow/name/+/update/delta", true},
		{"own jobs", "$aws/things/dev-1/jobs/notify-next", true},
		{"any thing", "$aws/things/+/shadow/#", false},
		{"whole own thing", "$aws/things/dev-1/#", false},
		{"all reserved", "$aws/#", false},
		{"other thing", "$aws/things/dev-2/shadow/#", false},
		{"basic ingest", "$aws/rules/r/#", false},
		{"allowed extra", "$aws/certificates/create/json/accepted", true},
		{"allowed extra, wildcard", "$aws/certificates/create/+/rejected", true},
		{"beyond the extra", "$aws/certificates/#", false},
		{"other $ filter", "$SYS/#", false},
		{"shared", "$share/g/sensors/#", true},
		{"shared, 7 slashes in the filter", "$share/g/+/+/+/+/+/+/+/#", true},
		{"shared, 8 slashes in the filter", "$share/g/+/+/+/+/+/+/+/+/#", false},
		{"shared reserved", "$share/g/$aws/things/dev-1/shadow/#", false},
	}
	runNS(t, "subscribe", ns.ValidateSubscribe, cases)
}

func TestValidThingName(t *testing.T) {
	for _, tc := range []struct {
		name string
		ok   bool
	}{
		{"a", true},
		{"Thermostat_01:kitchen-2", true},
		{strings.Repeat("x", 128), true},
		{strings.Repeat("x", 129), false},
		{"", false},
		{"my thing", false},
		{"a/b", false},
		{"a+b", false},
		{"a#", false},
		{"a.b", false},
		{"é", false},
	} {
		if err := ValidThingName(tc.name); (err == nil) != tc.ok {
			t.Errorf("ValidThingName(%q) = %v, want ok=%v", tc.name, err, tc.ok)
		}
	}
}

func TestAzureIoTHubNamespace(t *testing.T) {
	ns := AzureIoTHubNamespace{DeviceID: "dev-1"}
	runNS(t, "publish", ns.ValidatePublish, []nsCase{
		{"telemetry", "devices/dev-1/messages/events/", true},
		{"telemetry with property bag", "devices/dev-1/messages/events/a=1&$.ct=application%2Fjson&$.ce=utf-8", true},
		{"telemetry without the slash", "devices/dev-1/messages/events", false},
		{"other device", "devices/dev-2/messages/events/", false},
		{"device id prefix", "devices/dev-10/messages/events/", false},
		{"twin get", "$iothub/twin/GET/?$rid=1", true},
		{"twin reported", "$iothub/twin/PATCH/properties/reported/?$rid=2", true},
		{"twin desired (hub only)", "$iothub/twin/PATCH/properties/desired/?$rid=2", false},
		{"method response", "$iothub/methods/res/200/?$rid=3", true},
		{"method call (hub only)", "$iothub/methods/POST/reboot/?$rid=3", false},
		{"cloud-to-device (hub only)", "devices/dev-1/messages/devicebound/x", false},
		{"arbitrary", "sensors/temp", false},
	})
	runNS(t, "subscribe", ns.ValidateSubscribe, []nsCase{
		{"cloud-to-device", "devices/dev-1/messages/devicebound/#", true},
		{"twin responses", "$iothub/twin/res/#", true},
		{"desired properties", "$iothub/twin/PATCH/properties/desired/#", true},
		{"direct methods", "$iothub/methods/POST/#", true},
		{"cloud-to-device, narrower", "devices/dev-1/messages/devicebound/x", false},
		{"other device", "devices/dev-2/messages/devicebound/#", false},
		{"any device", "devices/+/messages/devicebound/#", false},
		{"all", "#", false},
		{"twin, narrower", "$iothub/twin/res/200/#", false},
	})
	bad := AzureIoTHubNamespace{DeviceID: "a/b"}
	if err := bad.ValidatePublish("devices/a/b/messages/events/"); !errors.Is(err, ErrNamespace) {
		t.Errorf("invalid device id accepted: %v", err)
	}
	if err := (AzureIoTHubNamespace{}).ValidateSubscribe("$iothub/twin/res/#"); !errors.Is(err, ErrNamespace) {
		t.Errorf("empty device id accepted: %v", err)
	}
}

func TestValidAzureDeviceID(t *testing.T) {
	for _, tc := range []struct {
		id string
		ok bool
	}{
		{"dev-1", true},
		{"a.b%c_d*e?f!g(h)i,j:k=l@m$n'o", true},
		{strings.Repeat("d", 128), true},
		{strings.Repeat("d", 129), false},
		{"", false},
		{"a b", false},
		{"a/b", false},
		{"a+b", false},
		{"a#b", false},
		{"ü", false},
	} {
		if err := ValidAzureDeviceID(tc.id); (err == nil) != tc.ok {
			t.Errorf("ValidAzureDeviceID(%q) = %v, want ok=%v", tc.id, err, tc.ok)
		}
	}
}

func TestGenericNamespace(t *testing.T) {
	limits := GenericNamespace{MaxLength: 10, MaxLevels: 3}
	runNS(t, "publish", limits.ValidatePublish, []nsCase{
		{"10 bytes", "0123456789", true},
		{"11 bytes", "01234567890", false},
		{"5 two-byte runes = 10 bytes", "ééééé", true},
		{"6 two-byte runes = 12 bytes", "éééééé", false},
		{"3 levels", "a/b/c", true},
		{"3 levels, leading slash", "/a/b", true},
		{"4 levels", "a/b/c/d", false},
		{"4 empty levels", "///", false},
	})
	runNS(t, "subscribe", limits.ValidateSubscribe, []nsCase{
		{"3 levels", "a/+/#", true},
		{"4 levels", "a/+/+/#", false},
		{"11 bytes", "0123456789/", false},
	})
	// Shared subscriptions: the length counts the whole filter, the levels
	// only the inner one (as topic.Limits does).
	shared := GenericNamespace{MaxLength: 20, MaxLevels: 3}
	runNS(t, "subscribe", shared.ValidateSubscribe, []nsCase{
		{"shared, 3 inner levels", "$share/g/a/b/c", true},
		{"shared, 4 inner levels", "$share/g/a/b/c/d", false},
		{"shared, 21 bytes", "$share/group/abcdefgh", false},
	})

	sys := GenericNamespace{ForbiddenPrefixes: []string{"$SYS"}}
	runNS(t, "publish", sys.ValidatePublish, []nsCase{
		{"plain", "a/b", true},
		{"forbidden", "$SYS/broker", false},
		{"prefix without level boundary", "$SYSTEM", false},
	})
	runNS(t, "subscribe", sys.ValidateSubscribe, []nsCase{
		{"# matches no $ topic", "#", true},
		{"+ matches no $ topic", "+/x", true},
		{"forbidden tree", "$SYS/#", false},
		{"forbidden exact", "$SYS", false},
		{"other $ tree", "$other/#", true},
	})

	admin := GenericNamespace{ForbiddenPrefixes: []string{"admin/"}}
	runNS(t, "publish", admin.ValidatePublish, []nsCase{
		{"forbidden", "admin/users", false},
		{"the parent is not under the prefix", "admin", true},
		{"longer first level", "administrator/x", true},
	})
	runNS(t, "subscribe", admin.ValidateSubscribe, []nsCase{
		{"# reaches admin/", "#", false},
		{"+/secret reaches admin/secret", "+/secret", false},
		{"single level cannot reach admin/", "+", true},
		{"parent only", "admin", true},
		{"forbidden tree", "admin/#", false},
		{"other tree", "a/#", true},
		{"different first level", "adm/x", true},
		{"shared inner filter", "$share/g/admin/x", false},
		{"shared elsewhere", "$share/g/users/#", true},
	})

	partial := GenericNamespace{ForbiddenPrefixes: []string{"adm"}}
	runNS(t, "subscribe", partial.ValidateSubscribe, []nsCase{
		{"+ matches adm", "+", false},
		{"longer literal", "admin/x", false},
		{"shorter literal", "ad/x", true},
		{"+ at a deeper level", "x/+", true},
	})
}

func TestFilterMayMatchPrefix(t *testing.T) {
	for _, tc := range []struct {
		filter, prefix string
		want           bool
	}{
		{"#", "", true},
		{"a/b", "a/b", true},
		{"a/b", "a/bc", false},
		{"a/bc", "a/b", true},
		{"a/+/c", "a/x/", true},
		{"a/+/c", "a/x/d", false},
		{"a/+", "a/x/", false},
		{"a/+/#", "a/x/", true},
		{"+/+", "a/b/", false},
		{"$x/#", "$x/", true},
		{"#", "$x", false},
		{"+/#", "$x/", false},
		{"/#", "/a", true},
	} {
		if got := filterMayMatchPrefix(tc.filter, tc.prefix); got != tc.want {
			t.Errorf("filterMayMatchPrefix(%q, %q) = %v, want %v", tc.filter, tc.prefix, got, tc.want)
		}
	}
}

// plainValidator returns errors that are not *NamespaceError.
type plainValidator struct{}

var errPlain = errors.New("not here")

func (plainValidator) ValidatePublish(string) error   { return errPlain }
func (plainValidator) ValidateSubscribe(string) error { return errPlain }

func TestNamespaceOptions(t *testing.T) {
	ctx := context.Background()
	// The checks come before anything else: no connection is needed.
	c, err := New(Options{Server: "mqtt://127.0.0.1:1", Namespace: AWSIoTNamespace{ThingName: "dev-1"}})
	if err != nil {
		t.Fatal(err)
	}
	err = c.Publish(ctx, &Message{Topic: "$aws/things/dev-2/shadow/update"})
	var ne *NamespaceError
	if !errors.As(err, &ne) || ne.Op != "publish" || !errors.Is(err, ErrNamespace) {
		t.Fatalf("publish: %v", err)
	}
	if _, err := c.Subscribe(ctx, []Subscription{{Filter: "ok/#"}, {Filter: "$aws/#"}}, nil); !errors.As(err, &ne) || ne.Op != "subscribe" || ne.Topic != "$aws/#" {
		t.Fatalf("subscribe: %v", err)
	}
	if _, _, err := c.SubscribeQoS(ctx, "$aws/things/+/jobs/#", 1, nil); !errors.Is(err, ErrNamespace) {
		t.Fatalf("SubscribeQoS: %v", err)
	}
	// Valid topics get past the namespace (and then find no connection).
	if err := c.Publish(ctx, &Message{Topic: "$aws/things/dev-1/shadow/update"}); !errors.Is(err, ErrNotConnected) {
		t.Fatalf("allowed publish: %v", err)
	}

	// The will topic is checked by New.
	_, err = New(Options{Server: "mqtt://127.0.0.1:1", Namespace: AzureIoTHubNamespace{DeviceID: "d"},
		Will: &Will{Topic: "status/d"}})
	if !errors.As(err, &ne) || ne.Op != "will" {
		t.Fatalf("will: %v", err)
	}

	// Errors of custom validators are wrapped.
	c, err = New(Options{Server: "mqtt://127.0.0.1:1", Namespace: plainValidator{}})
	if err != nil {
		t.Fatal(err)
	}
	err = c.Publish(ctx, &Message{Topic: "x"})
	if !errors.Is(err, ErrNamespace) || !errors.Is(err, errPlain) || !errors.As(err, &ne) || ne.Topic != "x" {
		t.Fatalf("custom validator: %v", err)
	}
}
