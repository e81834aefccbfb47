// Shared helpers for the MQTT.js interoperability scripts run by
// broker/interop_mqttjs_test.go. Each script takes the broker URL and the
// protocol version (5 or 4), prints exactly one JSON line on stdout and
// exits 0 when its own checks passed, 1 otherwise.
import mqtt from 'mqtt'

export function parseArgs () {
  const [url, v] = process.argv.slice(2)
  const version = Number(v)
  if (!url || (version !== 5 && version !== 4)) {
    console.error('usage: node <script>.mjs mqtt://host:port <5|4>')
    process.exit(2)
  }
  return { url, version }
}

// finish prints the result line and exits; it runs once.
let finished = false
export function finish (result) {
  if (finished) return
  finished = true
  result.ok = result.errors.length === 0
  process.stdout.write(JSON.stringify(result) + '\n', () => process.exit(result.ok ? 0 : 1))
}

// watchdog fails the script if it has not finished after ms.
export function watchdog (result, ms = 15000) {
  const t = setTimeout(() => {
    result.errors.push(`timeout after ${ms} ms`)
    finish(result)
  }, ms)
  t.unref()
}

export async function connect (url, version, clientId, extra = {}) {
  return mqtt.connectAsync(url, {
    protocolVersion: version,
    clientId,
    clean: true,
    reconnectPeriod: 0,
    connectTimeout: 10000,
    keepalive: 60,
    ...extra
  })
}

// collector records messages and resolves waiters when a predicate holds.
export function collector (client) {
  const msgs = []
  const waiters = []
  client.on('message', (topic, payload, packet) => {
    const m = {
      topic,
      payload: payload.toString('utf8'),
      qos: packet.qos,
      retain: packet.retain
    }
    const p = packet.properties
    if (p) {
      const props = {}
      if (p.contentType !== undefined) props.contentType = p.contentType
      if (p.responseTopic !== undefined) props.responseTopic = p.responseTopic
      if (p.correlationData !== undefined) props.correlationData = Buffer.from(p.correlationData).toString('hex')
      if (p.payloadFormatIndicator !== undefined) props.payloadFormatIndicator = p.payloadFormatIndicator
      if (p.messageExpiryInterval !== undefined) props.messageExpiryInterval = p.messageExpiryInterval
      if (p.subscriptionIdentifier !== undefined) props.subscriptionIdentifier = [].concat(p.subscriptionIdentifier)
      if (p.userProperties !== undefined) props.userProperties = p.userProperties
      if (Object.keys(props).length > 0) m.properties = props
    }
    msgs.push(m)
    for (const w of [...waiters]) {
      if (w.pred(msgs)) {
        waiters.splice(waiters.indexOf(w), 1)
        w.resolve()
      }
    }
  })
  return {
    msgs,
    until (pred) {
      if (pred(msgs)) return Promise.resolve()
      return new Promise(resolve => waiters.push({ pred, resolve }))
    }
  }
}
