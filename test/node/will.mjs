// MQTT.js wills: a client that ends with DISCONNECT loses its will; a
// client whose socket is destroyed has its will published, in v5 with its
// properties.
//
// usage: node will.mjs mqtt://127.0.0.1:PORT 5|4
import { parseArgs, finish, watchdog, connect, collector } from './lib.mjs'

const { url, version } = parseArgs()
const result = { script: 'will', version, errors: [], received: [] }
watchdog(result)

const base = `jswill/v${version}`
const v5 = version === 5

function will (name) {
  const w = { topic: `${base}/${name}`, payload: Buffer.from(`${name}-will`), qos: 1, retain: false }
  if (v5) {
    w.properties = {
      contentType: 'text/plain',
      responseTopic: `${base}/reply`,
      correlationData: Buffer.from('wc'),
      payloadFormatIndicator: true,
      messageExpiryInterval: 300,
      userProperties: { who: name, n: ['1', '2'] }
    }
  }
  return w
}

try {
  const watcher = await connect(url, version, `ix-js-watch-${version}`)
  const c = collector(watcher)
  await watcher.subscribeAsync(`${base}/#`, { qos: 1 })

  const polite = await connect(url, version, `ix-js-polite-${version}`, { will: will('polite') })
  await polite.endAsync() // sends DISCONNECT: no will

  const dying = await connect(url, version, `ix-js-dying-${version}`, { will: will('dying') })
  dying.stream.destroy() // no DISCONNECT: the will is published

  await c.until(m => m.some(x => x.topic === `${base}/dying`))
  // A marker from the watcher itself orders after anything else routed to it.
  await watcher.publishAsync(`${base}/marker`, 'marker', { qos: 1 })
  await c.until(m => m.some(x => x.topic === `${base}/marker`))
  result.received = c.msgs.slice()
  const topics = c.msgs.map(m => m.topic)
  const wantTopics = [`${base}/dying`, `${base}/marker`]
  if (JSON.stringify(topics) !== JSON.stringify(wantTopics)) {
    result.errors.push(`topics ${JSON.stringify(topics)}, want ${JSON.stringify(wantTopics)}`)
  }
  const w = c.msgs.find(m => m.topic === `${base}/dying`)
  if (w.payload !== 'dying-will' || w.qos !== 1 || w.retain !== false) {
    result.errors.push(`will ${JSON.stringify(w)}`)
  }
  if (v5) {
    const p = w.properties || {}
    if (p.contentType !== 'text/plain' || p.responseTopic !== `${base}/reply` ||
        p.correlationData !== Buffer.from('wc').toString('hex') || p.payloadFormatIndicator !== true ||
        !(p.messageExpiryInterval >= 1 && p.messageExpiryInterval <= 300) ||
        JSON.stringify(p.userProperties) !== JSON.stringify({ who: 'dying', n: ['1', '2'] })) {
      result.errors.push(`will properties ${JSON.stringify(p)}`)
    }
  }
  await watcher.endAsync()
} catch (err) {
  result.errors.push(String(err && err.stack ? err.stack : err))
}
finish(result)
