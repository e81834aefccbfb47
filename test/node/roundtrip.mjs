// MQTT.js round trip: retained message, QoS 0/1/2 publish → subscribe and,
// in v5, message properties (user properties with a repeated key, content
// type, response topic, correlation data, message expiry) and a
// subscription identifier.
//
// usage: node roundtrip.mjs mqtt://127.0.0.1:PORT 5|4
import { parseArgs, finish, watchdog, connect, collector } from './lib.mjs'

const { url, version } = parseArgs()
const result = { script: 'roundtrip', version, errors: [], granted: [], received: [] }
watchdog(result)

const base = `js/v${version}`
const v5 = version === 5
const userProperties = { k1: ['v1', 'v3'], k2: 'v2' }

try {
  const pub = await connect(url, version, `ix-js-pub-${version}`)
  await pub.publishAsync(`${base}/retained`, 'kept', { qos: 1, retain: true })

  const sub = await connect(url, version, `ix-js-sub-${version}`)
  const c = collector(sub)
  const grants = await sub.subscribeAsync({ [`${base}/#`]: { qos: 2 } },
    v5 ? { properties: { subscriptionIdentifier: 7 } } : {})
  result.granted = grants.map(g => g.qos)

  // The retained message arrives first, with the RETAIN flag.
  await c.until(m => m.length >= 1)

  for (const qos of [0, 1, 2]) {
    const opts = { qos }
    if (v5) {
      opts.properties = {
        userProperties,
        contentType: 'text/plain',
        responseTopic: `${base}/reply`,
        correlationData: Buffer.from([0xca, 0xfe, qos]),
        messageExpiryInterval: 600
      }
    }
    await pub.publishAsync(`${base}/q${qos}`, `payload-qos${qos}`, opts)
  }
  await c.until(m => m.length >= 4)
  result.received = c.msgs.slice()

  const want = [
    { topic: `${base}/retained`, payload: 'kept', qos: 1, retain: true },
    ...[0, 1, 2].map(q => ({ topic: `${base}/q${q}`, payload: `payload-qos${q}`, qos: q, retain: false }))
  ]
  for (let i = 0; i < want.length; i++) {
    const g = c.msgs[i]
    const w = want[i]
    if (g.topic !== w.topic || g.payload !== w.payload || g.qos !== w.qos || g.retain !== w.retain) {
      result.errors.push(`message ${i}: got ${JSON.stringify(g)}, want ${JSON.stringify(w)}`)
    }
    if (v5 && i > 0) {
      const p = g.properties || {}
      if (JSON.stringify(p.userProperties) !== JSON.stringify(userProperties)) {
        result.errors.push(`message ${i}: user properties ${JSON.stringify(p.userProperties)}`)
      }
      if (p.contentType !== 'text/plain' || p.responseTopic !== `${base}/reply` ||
          p.correlationData !== Buffer.from([0xca, 0xfe, i - 1]).toString('hex')) {
        result.errors.push(`message ${i}: properties ${JSON.stringify(p)}`)
      }
      if (!(p.messageExpiryInterval >= 1 && p.messageExpiryInterval <= 600)) {
        result.errors.push(`message ${i}: message expiry ${p.messageExpiryInterval}`)
      }
    }
    if (v5 && JSON.stringify((g.properties || {}).subscriptionIdentifier) !== '[7]') {
      result.errors.push(`message ${i}: subscription identifier ${JSON.stringify((g.properties || {}).subscriptionIdentifier)}`)
    }
  }
  if (JSON.stringify(result.granted) !== '[2]') {
    result.errors.push(`granted QoS ${JSON.stringify(result.granted)}, want [2]`)
  }
  await pub.publishAsync(`${base}/retained`, '', { qos: 1, retain: true })
  await Promise.all([pub.endAsync(), sub.endAsync()])
} catch (err) {
  result.errors.push(String(err && err.stack ? err.stack : err))
}
finish(result)
