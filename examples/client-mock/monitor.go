// Package monitor shows how to unit-test code that uses the MQTT client
// with client/mock: Monitor depends on client.Interface, so its tests run
// against a mock.Client without a broker (see monitor_test.go).
package monitor

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	"github.com/mqtt5go/mqtt5/client"
	"github.com/mqtt5go/mqtt5/packet"
)

// Monitor watches temperature readings on "sensors/{id}/temp" and publishes
// an alarm on "alarms/{id}" when a reading exceeds the limit.
type Monitor struct {
	c     client.Interface
	limit float64
}

// New returns a Monitor publishing through c.
func New(c client.Interface, limit float64) *Monitor { return &Monitor{c: c, limit: limit} }

// Start subscribes to the readings.
func (m *Monitor) Start(ctx context.Context) error {
	_, err := m.c.Subscribe(ctx, []client.Subscription{{Filter: "sensors/+/temp", QoS: 1}}, m.onReading)
	if err != nil {
		return fmt.Errorf("monitor: subscribe: %w", err)
	}
	return nil
}

func (m *Monitor) onReading(msg *client.Message) {
	parts := strings.Split(msg.Topic, "/")
	v, err := strconv.ParseFloat(string(msg.Payload), 64)
	if err != nil {
		// Not a number: refuse it (v5 tells the server with a reason code).
		msg.Reject(packet.PayloadFormatInvalid)
		return
	}
	if v > m.limit {
		// Don't wait in a handler: PublishAsync returns at once.
		m.c.PublishAsync(context.Background(), &client.Message{
			Topic:   "alarms/" + parts[1],
			QoS:     1,
			Payload: []byte(fmt.Sprintf("%.1f above %.1f", v, m.limit)),
		})
	}
	msg.Ack()
}
