package broker

import (
	"strconv"
	"time"
)

// sysLoop publishes the $SYS topics every SysInterval until shutdown.
func (b *Broker) sysLoop() {
	defer b.wg.Done()
	t := time.NewTicker(b.cfg.SysInterval)
	defer t.Stop()
	b.publishSys()
	for {
		select {
		case <-t.C:
			b.publishSys()
		case <-b.quit:
			return
		}
	}
}

// publishSys publishes the broker's counters as retained messages under
// $SYS/broker/.
func (b *Broker) publishSys() {
	st := b.Stats()
	uptime := int64(b.now().Sub(b.started) / time.Second)
	vals := []struct {
		topic string
		val   string
	}{
		{"$SYS/broker/version", b.cfg.Version},
		{"$SYS/broker/uptime", strconv.FormatInt(uptime, 10) + " seconds"},
		{"$SYS/broker/clients/connected", strconv.FormatInt(st.Connections, 10)},
		{"$SYS/broker/clients/total", strconv.FormatInt(st.Sessions, 10)},
		{"$SYS/broker/clients/maximum", strconv.FormatInt(st.MaxConnections, 10)},
		{"$SYS/broker/messages/received", strconv.FormatInt(st.MessagesReceived, 10)},
		{"$SYS/broker/messages/sent", strconv.FormatInt(st.MessagesSent, 10)},
		{"$SYS/broker/publish/messages/received", strconv.FormatInt(st.PublishReceived, 10)},
		{"$SYS/broker/publish/messages/sent", strconv.FormatInt(st.PublishSent, 10)},
		{"$SYS/broker/bytes/received", strconv.FormatInt(st.BytesReceived, 10)},
		{"$SYS/broker/bytes/sent", strconv.FormatInt(st.BytesSent, 10)},
		{"$SYS/broker/subscriptions/count", strconv.FormatInt(st.Subscriptions, 10)},
		{"$SYS/broker/retained messages/count", strconv.FormatInt(st.Retained, 10)},
	}
	sc := scratchPool.Get().(*routeScratch)
	defer scratchPool.Put(sc)
	now := b.now()
	for _, v := range vals {
		m := &Message{Topic: v.topic, Payload: []byte(v.val), Retain: true, Created: now}
		b.publish(m, nil, sc) // $SYS is regenerated, never stored: sc.ops is dropped
	}
}
