// A browser page's MQTT.js client: connect to the broker named by the
// "broker" query parameter, subscribe to "topic", publish a QoS 1 message
// to it, wait for the message, and POST the outcome to /report.
(function () {
  'use strict'
  const params = new URLSearchParams(window.location.search)
  const broker = params.get('broker')
  const topic = params.get('topic') || 'browser/ws'
  const payload = 'hello from the browser'
  const result = { script: 'browser', ok: false, errors: [], granted: [], received: [], userAgent: navigator.userAgent }
  const logEl = document.getElementById('log')
  const log = (s) => { logEl.textContent += s + '\n' }

  let reported = false
  function report () {
    if (reported) return
    reported = true
    result.ok = result.errors.length === 0 && result.received.length === 1
    log('report: ' + JSON.stringify(result))
    fetch('/report', {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify(result)
    })
  }
  function fail (msg) {
    result.errors.push(msg)
    report()
  }
  window.addEventListener('error', (e) => fail('page error: ' + e.message))
  setTimeout(() => fail('timeout in the page'), 30000)

  const lib = window.mqtt && (typeof window.mqtt.connect === 'function' ? window.mqtt : window.mqtt.default)
  if (!lib || !broker) {
    fail(!lib ? 'the MQTT.js bundle did not load' : 'no broker parameter')
    return
  }
  log('connecting to ' + broker)
  const client = lib.connect(broker, {
    protocolVersion: 5,
    clientId: 'browser-' + Math.random().toString(16).slice(2, 10),
    clean: true,
    reconnectPeriod: 0,
    connectTimeout: 10000
  })
  client.on('error', (err) => {
    client.end(true)
    fail('client error: ' + (err && err.message ? err.message : String(err)))
  })
  client.on('close', () => {
    if (result.received.length === 0) fail('connection closed before the message arrived')
  })
  client.on('connect', () => {
    log('connected')
    client.subscribe(topic, { qos: 1 }, (err, granted) => {
      if (err) return fail('subscribe: ' + err.message)
      result.granted = granted.map((g) => g.qos)
      client.publish(topic, payload, { qos: 1 }, (err) => {
        if (err) fail('publish: ' + err.message)
      })
    })
  })
  client.on('message', (t, p, packet) => {
    const text = new TextDecoder().decode(p)
    log('message on ' + t + ': ' + text)
    result.received.push({ topic: t, payload: text, qos: packet.qos })
    if (t !== topic || text !== payload || packet.qos !== 1) {
      result.errors.push('unexpected message ' + JSON.stringify(result.received[0]))
    }
    client.end(false, {}, report)
  })
})()
