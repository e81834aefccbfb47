// MQTT.js against a broker that requires a user name and password: the
// right credentials connect and round-trip a message, a wrong password is
// refused with Bad User Name or Password (v5 reason code 0x86, 3.1.1
// return code 4), and in v5 with "plain" the credentials are also sent
// as enhanced authentication with method PLAIN (SASL, RFC 4616).
//
// usage: node auth.mjs mqtt://127.0.0.1:PORT 5|4 USER PASSWORD [plain]
import { parseArgs, finish, watchdog, connect, collector } from './lib.mjs'

const { url, version } = parseArgs()
const [user, password, plain] = process.argv.slice(4)
const result = { script: 'auth', version, errors: [], received: [], codes: {} }
watchdog(result)

const base = `jsauth/v${version}`

async function refusedCode (clientId, extra) {
  try {
    const c = await connect(url, version, clientId, extra)
    await c.endAsync()
    return 'connected'
  } catch (err) {
    return err.code
  }
}

try {
  const c = await connect(url, version, `js-auth-${version}`, { username: user, password })
  const col = collector(c)
  await c.subscribeAsync(`${base}/#`, { qos: 1 })
  await c.publishAsync(`${base}/hello`, 'hi', { qos: 1 })
  await col.until(m => m.length >= 1)
  result.received = col.msgs.slice()
  await c.endAsync()

  result.codes.wrong = await refusedCode(`js-auth-wrong-${version}`, { username: user, password: password + 'x' })
  result.codes.unknown = await refusedCode(`js-auth-unknown-${version}`, { username: 'nobody-' + user, password })

  if (version === 5 && plain === 'plain') {
    const data = (pw) => Buffer.concat([Buffer.from([0]), Buffer.from(user), Buffer.from([0]), Buffer.from(pw)])
    const p = await connect(url, version, `js-auth-plain-${version}`, {
      properties: { authenticationMethod: 'PLAIN', authenticationData: data(password) }
    })
    await p.publishAsync(`${base}/plain`, 'via PLAIN', { qos: 1 })
    await p.endAsync()
    result.codes.plainWrong = await refusedCode(`js-auth-plainwrong-${version}`, {
      properties: { authenticationMethod: 'PLAIN', authenticationData: data(password + 'x') }
    })
  }
} catch (err) {
  result.errors.push(String(err && err.stack ? err.stack : err))
}
finish(result)
