// MQTT.js over WebSocket: one client connects to a ws:// or wss:// URL,
// subscribes to its own topic, publishes a QoS 1 message and waits for it.
// Run by transport/ws_interop_test.go.
//
// usage: node ws.mjs ws://127.0.0.1:PORT/mqtt 5|4 [ca.crt]
// The optional CA file is the only certificate authority trusted for wss.
import { readFileSync } from 'node:fs'
import { parseArgs, finish, watchdog, connect, collector } from './lib.mjs'

const { url, version } = parseArgs()
const caFile = process.argv[4]
const result = { script: 'ws', version, errors: [], granted: [], received: [] }
watchdog(result)

const topic = `ws/js/v${version}`
const payload = `hello over ${url.split(':')[0]} v${version}`

try {
  const extra = {}
  if (caFile) {
    extra.ca = readFileSync(caFile)
    extra.rejectUnauthorized = true
  }
  const c = await connect(url, version, `ws-js-${version}`, extra)
  const col = collector(c)
  const grants = await c.subscribeAsync({ [topic]: { qos: 1 } })
  result.granted = grants.map(g => g.qos)
  await c.publishAsync(topic, payload, { qos: 1 })
  await col.until(m => m.length >= 1)
  result.received = col.msgs.slice()
  const m = col.msgs[0]
  if (m.topic !== topic || m.payload !== payload || m.qos !== 1) {
    result.errors.push(`received ${JSON.stringify(m)}, want ${topic} ${JSON.stringify(payload)} QoS 1`)
  }
  if (JSON.stringify(result.granted) !== '[1]') {
    result.errors.push(`granted QoS ${JSON.stringify(result.granted)}, want [1]`)
  }
  await c.endAsync()
} catch (err) {
  result.errors.push(String(err && err.stack ? err.stack : err))
}
finish(result)
