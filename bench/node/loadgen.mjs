#!/usr/bin/env node
// Load generator for bench/run.py: real Yjs clients (a Y.Doc each, updates applied) speaking
// either y-websocket framing (cs3collab, jupyter-server-ydoc) or Hocuspocus framing
// (document-name prefix, token auth message), over `ws`.
//
//   node loadgen.mjs CONFIG.json
//
// Config: {"mode": "type"|"idle"|"open", "protocol": "ywebsocket"|"hocuspocus", ...}
// A target is {"url": ws url, "doc": hocuspocus document name, "token": ...}.
//
// mode "type" (P1 fan-out, P5 typing, P6 scale-out): clients connect to `target`, or with
// `targets` (P6: one per hub instance) client k connects to targets[k % targets.length]; client
// k (global index `first + k`) types `rate` single characters per second at the end of cell
// `first + k` for `duration` seconds (each keystroke its own update, late ones caught up at
// once, so rates above 1,000/s per client hold); with `typingTargets` (target indexes) only the
// clients of those targets type, the others only receive. Every client applies every update it receives. Delivery latency is
// measured for every (sender, receiver) pair inside this process: the sender notes the time
// of each of its clocks, the receiver reads the clocks an update carries (Y.parseUpdateMeta).
// mode "idle" (P2): steps of {rooms, clients}: open rooms (1 client each, `connectConcurrency`
// at a time, default 16), then more clients per room, `clientsConcurrency` at a time (0 = all at
// once: a reconnect storm; default: connectConcurrency); every client syncs, sets its awareness
// and renews it every 15 s (like JupyterLab). A phase's seconds run from its start until the
// last client has its SyncStep2 (admitted and synced).
// After each phase it prints {"event":"stage",...} and waits for a line on stdin.
// mode "open" (P3/P4): for each target in turn: connect, SyncStep1, time until SyncStep2 arrives
// (not applied: only the arrival is timed); keep it open; print, wait for a line on stdin.
//
// Output: JSON lines on stdout; the last one is {"event":"result",...}.

import { readFileSync, writeFileSync } from 'node:fs'
import { createInterface } from 'node:readline'
import { monitorEventLoopDelay, performance } from 'node:perf_hooks'
import WebSocket from 'ws'
import * as Y from 'yjs'
import * as encoding from 'lib0/encoding'
import * as decoding from 'lib0/decoding'
import * as awarenessProtocol from 'y-protocols/awareness'

const cfg = JSON.parse(readFileSync(process.argv[2], 'utf8'))
const emit = (event, fields = {}) => process.stdout.write(JSON.stringify({ event, ...fields }) + '\n')
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))
const REMOTE = Symbol('remote')
const MAX_PAYLOAD = 1024 * 1024 * 1024

const stdinLines = []
let stdinWaiter = null
createInterface({ input: process.stdin }).on('line', (line) => {
  if (stdinWaiter) { const w = stdinWaiter; stdinWaiter = null; w(line) } else stdinLines.push(line)
})
const nextLine = () => stdinLines.length ? Promise.resolve(stdinLines.shift()) : new Promise((resolve) => { stdinWaiter = resolve })

// -- framing -------------------------------------------------------------------------------

const HOCUS = cfg.protocol === 'hocuspocus'

const frame = (target, type, write) => {
  const e = encoding.createEncoder()
  if (HOCUS) encoding.writeVarString(e, target.doc)
  encoding.writeVarUint(e, type)
  write(e)
  return encoding.toUint8Array(e)
}

// One Y client: a doc, a socket, the sync handshake. onRemote(update) sees every remote update.
class YClient {
  constructor (target, { keepDoc = true, onRemote = null, apply = true } = {}) {
    this.target = target
    this.apply = apply
    this.doc = keepDoc ? new Y.Doc() : null
    this.onRemote = onRemote
    this.synced = false
    this.closed = false
    this.framesIn = 0
    if (this.doc) {
      this.awareness = new awarenessProtocol.Awareness(this.doc)
      this.awareness.setLocalState(null)
      // Local changes only: an 'update' listener would make Yjs encode every remote update too.
      this.doc.on('afterTransaction', (tr) => {
        if (tr.origin === REMOTE) return
        let changed = false
        for (const [client, clock] of tr.afterState) if ((tr.beforeState.get(client) || 0) !== clock) changed = true
        if (changed || tr.deleteSet.clients.size) this.sendUpdate(Y.encodeStateAsUpdate(this.doc, Y.encodeStateVector(tr.beforeState)))
      })
    }
  }

  connect ({ timeoutMs = 60000, timeOnly = false } = {}) {
    return new Promise((resolve, reject) => {
      const t0 = performance.now()
      let tOpen = null
      const ws = new WebSocket(this.target.url, { maxPayload: MAX_PAYLOAD, perMessageDeflate: false })
      ws.binaryType = 'nodebuffer'
      this.ws = ws
      const timer = setTimeout(() => { reject(new Error(`sync timeout after ${timeoutMs} ms`)); ws.terminate() }, timeoutMs)
      ws.on('open', () => {
        tOpen = performance.now()
        if (HOCUS) {
          this.send(frame(this.target, 2, (e) => { encoding.writeVarUint(e, 0); encoding.writeVarString(e, this.target.token || '') }))
        }
        const sv = this.doc ? Y.encodeStateVector(this.doc) : new Uint8Array([0])
        this.send(frame(this.target, 0, (e) => { encoding.writeVarUint(e, 0); encoding.writeVarUint8Array(e, sv) }))
      })
      ws.on('message', (data) => {
        this.framesIn++
        const d = decoding.createDecoder(data)
        if (HOCUS) decoding.readVarString(d)
        const type = decoding.readVarUint(d)
        if (type === 0 || type === 4) {
          const sub = decoding.readVarUint(d)
          if (sub === 0) { // SyncStep1 from the server: answer with what it lacks
            const sv = decoding.readVarUint8Array(d)
            if (this.doc) {
              const update = Y.encodeStateAsUpdate(this.doc, sv)
              this.send(frame(this.target, 0, (e) => { encoding.writeVarUint(e, 1); encoding.writeVarUint8Array(e, update) }))
            }
          } else if (sub === 1 || sub === 2) {
            if (sub === 1 && timeOnly && !this.synced) {
              this.synced = true
              clearTimeout(timer)
              resolve({ connectMs: performance.now() - t0, openMs: tOpen - t0, step2Ms: performance.now() - tOpen, bytes: data.length })
              return
            }
            const update = decoding.readVarUint8Array(d)
            if (this.onRemote) this.onRemote(update)
            if (this.doc && (this.apply || sub === 1)) Y.applyUpdate(this.doc, update, REMOTE)
            if (sub === 1 && !this.synced) {
              this.synced = true
              clearTimeout(timer)
              resolve({ connectMs: performance.now() - t0, openMs: tOpen - t0, step2Ms: performance.now() - tOpen, bytes: data.length })
            }
          }
        } else if (HOCUS && type === 2) {
          if (decoding.readVarUint(d) === 0) { clearTimeout(timer); reject(new Error('permission denied')) }
        } // awareness (1), raw/save replies (2), sync status (8): counted, not needed
      })
      ws.on('close', (code, reason) => {
        this.closed = true
        this.closeCode = code
        clearTimeout(timer)
        if (!this.synced) reject(new Error(`closed ${code} ${reason}`))
      })
      ws.on('error', (err) => { clearTimeout(timer); if (!this.synced) reject(err) })
    })
  }

  send (data) {
    if (this.ws && this.ws.readyState === WebSocket.OPEN) this.ws.send(data)
  }

  sendUpdate (update) {
    this.send(frame(this.target, 0, (e) => { encoding.writeVarUint(e, 2); encoding.writeVarUint8Array(e, update) }))
  }

  setAwareness (state) {
    this.awareness.setLocalState(state)
    const update = awarenessProtocol.encodeAwarenessUpdate(this.awareness, [this.doc.clientID])
    this.send(frame(this.target, 1, (e) => encoding.writeVarUint8Array(e, update)))
  }

  renewAwareness () {
    const state = this.awareness.getLocalState()
    if (state) this.setAwareness(state)
  }

  close () {
    if (this.ws) this.ws.close()
  }
}

const percentile = (sorted, p) => sorted.length ? sorted[Math.min(sorted.length - 1, Math.floor(p / 100 * sorted.length))] : null

// -- mode type -------------------------------------------------------------------------------

async function typeMode () {
  const n = cfg.clients
  const first = cfg.first || 0
  const rate = cfg.rate || 5
  const duration = cfg.duration || 60
  const period = 1000 / rate
  const sendTimes = new Map() // clientID -> Float64Array of send times by clock
  let typing = false
  let latencies = new Float64Array(1 << 16)
  let sentAts = new Float64Array(1 << 16) // epoch ms of each measured keystroke
  let latCount = 0
  const windowSec = cfg.window || 10
  const windows = [] // per window: array of latencies
  let tStart = 0
  let deliveries = 0
  let framesWithUpdates = 0
  const perSecond = []
  const record = (ms, sentAt) => {
    if (latCount === latencies.length) {
      const bigger = new Float64Array(latencies.length * 2); bigger.set(latencies); latencies = bigger
      const biggerS = new Float64Array(sentAts.length * 2); biggerS.set(sentAts); sentAts = biggerS
    }
    sentAts[latCount] = performance.timeOrigin + sentAt
    latencies[latCount++] = ms
    const w = Math.floor((sentAt - tStart) / 1000 / windowSec)
    if (w >= 0) { (windows[w] ||= []).push(ms) }
  }
  const targets = cfg.targets || [cfg.target]
  const targetOf = (k) => k % targets.length
  const typingTargets = new Set(cfg.typingTargets || targets.map((_, i) => i))
  const senderTarget = new Map() // clientID -> target index of the sender
  // per pair kind (sender and receiver on the same target or not): latencies; per receiving
  // target: clocks received while typing (for the received rate)
  const byKind = { same: [], cross: [] }
  const receivedWhileTyping = targets.map(() => 0)
  const clients = []
  for (let k = 0; k < n; k++) {
    const seen = new Map() // sender clientID -> next clock not yet seen
    const tk = targetOf(k)
    const client = new YClient(targets[tk], {
      apply: cfg.apply !== false,
      onRemote: (update) => {
        if (!typing) return
        const now = performance.now()
        framesWithUpdates++
        const sec = Math.floor((now - tStart) / 1000)
        if (sec >= 0) perSecond[sec] = (perSecond[sec] || 0) + 1
        const meta = Y.parseUpdateMeta(update)
        for (const [cid, from] of meta.from) {
          if (cid === client.doc.clientID) continue
          const to = meta.to.get(cid)
          const start = Math.max(from, seen.get(cid) || 0)
          if (to <= start) continue
          seen.set(cid, to)
          deliveries += to - start
          if (now - tStart <= duration * 1000) receivedWhileTyping[tk] += to - start
          const times = sendTimes.get(cid)
          if (!times) continue
          const kind = targets.length > 1 ? (senderTarget.get(cid) === tk ? byKind.same : byKind.cross) : null
          for (let c = start; c < to; c++) {
            const t = times[c]
            if (t > 0) { record(now - t, t); if (kind) kind.push(now - t) }
          }
        }
      }
    })
    clients.push(client)
  }
  const LOOP_RES = 2
  const loop = monitorEventLoopDelay({ resolution: LOOP_RES })
  // connect a few at a time
  const conc = cfg.connectConcurrency || 25
  for (let i = 0; i < n; i += conc) {
    await Promise.all(clients.slice(i, i + conc).map((c) => c.connect({ timeoutMs: 60000 })))
  }
  for (const [k, c] of clients.entries()) {
    c.setAwareness({ user: { name: `gen-${first + k}`, username: `gen-${first + k}` }, autosave: true })
  }
  if (targets.length > 1) {
    // a peer instance may get the document from the other one only after its client synced
    const deadline = performance.now() + 30000
    const ready = () => clients.every((c, k) => c.doc.getArray('cells').length > first + k)
    while (!ready() && performance.now() < deadline) await sleep(50)
    if (!ready()) throw new Error('documents not replicated to every instance within 30 s')
  }
  clients.forEach((c, k) => senderTarget.set(c.doc.clientID, targetOf(k)))
  emit('connected', { clients: n, pid: process.pid })
  await nextLine() // the orchestrator says go (all generator processes connected)
  await sleep(1000)
  const expectedPerClient = Math.ceil(duration * rate) + 2
  for (const c of clients) {
    // a keystroke = one clock; the client made no doc change before
    sendTimes.set(c.doc.clientID, new Float64Array(Y.getState(c.doc.store, c.doc.clientID) + expectedPerClient + 16))
  }
  const cpu0 = process.cpuUsage()
  loop.enable()
  tStart = performance.now()
  typing = true
  emit('typing', { t0: performance.timeOrigin + tStart })
  let sent = 0
  const timers = []
  const renew = setInterval(() => clients.forEach((c) => c.renewAwareness()), 15000)
  const typists = clients.filter((_, k) => typingTargets.has(targetOf(k)))
  await new Promise((resolve) => {
    let running = typists.length
    if (!running) resolve()
    clients.forEach((c, k) => {
      if (!typingTargets.has(targetOf(k))) return
      const cell = c.doc.getArray('cells').get(first + k)
      const text = cell.get('source')
      const times = sendTimes.get(c.doc.clientID)
      const offset = Math.random() * period
      let i = 0
      const tick = () => {
        let now = performance.now()
        if (now - tStart >= duration * 1000) { running--; if (!running) resolve(); return }
        let next
        do { // one keystroke per due tick: a late timer catches up
          const clock = Y.getState(c.doc.store, c.doc.clientID)
          times[clock] = now
          text.insert(text.length, String.fromCharCode(97 + (i % 26)))
          sent++
          i++
          next = tStart + offset + i * period
          now = performance.now()
        } while (next <= now && i < expectedPerClient - 2)
        timers[k] = setTimeout(tick, Math.max(0, next - performance.now()))
      }
      timers[k] = setTimeout(tick, offset)
    })
  })
  const typedMs = performance.now() - tStart
  const closedWhileTyping = {}
  for (const c of clients) if (c.closed) closedWhileTyping[c.closeCode] = (closedWhileTyping[c.closeCode] || 0) + 1
  emit('typed', { seconds: typedMs / 1000, closed: closedWhileTyping })
  const cpuTyping = process.cpuUsage(cpu0)
  loop.disable()
  // drain: wait until every expected delivery inside this process arrived (or give up)
  const nProcs = cfg.processes || 1
  const totalClients = cfg.totalClients || n
  // pairs inside this process: every keystroke reaches every other client
  const expectedLocal = sent * (n - 1)
  const drainDeadline = performance.now() + (cfg.drainMs || 10000)
  while (latCount < expectedLocal && performance.now() < drainDeadline) await sleep(50)
  typing = false
  clearInterval(renew)
  if (cfg.latencyFile) {
    // (sent epoch ms, latency ms) pairs, float64 little-endian, for exact merged percentiles
    const pairs = new Float64Array(latCount * 2)
    for (let i = 0; i < latCount; i++) { pairs[2 * i] = sentAts[i]; pairs[2 * i + 1] = latencies[i] }
    writeFileSync(cfg.latencyFile, Buffer.from(pairs.buffer))
  }
  const sorted = latencies.slice(0, latCount).sort()
  const windowStats = windows.map((w) => {
    const s = Float64Array.from(w).sort()
    return { n: s.length, p50: percentile(s, 50), p99: percentile(s, 99), max: s[s.length - 1] }
  }).filter((w) => w && w.n > 0)
  const lastCell = clients.length ? clients[0].doc.getArray('cells').get(first).get('source').length : 0
  emit('result', {
    mode: 'type',
    protocol: cfg.protocol,
    clients: n,
    processes: nProcs,
    totalClients,
    sent,
    typedSeconds: typedMs / 1000,
    keystrokesPerSecond: sent / (typedMs / 1000),
    deliveries, // clocks received from other clients (all senders, incl. other processes)
    framesWithUpdates,
    expectedLocalDeliveries: expectedLocal,
    measuredLocalDeliveries: latCount,
    latencyMs: { n: latCount, p50: percentile(sorted, 50), p90: percentile(sorted, 90), p99: percentile(sorted, 99), max: latCount ? sorted[latCount - 1] : null, mean: latCount ? sorted.reduce((a, b) => a + b, 0) / latCount : null },
    windows: windowStats,
    deliveriesPerSecond: perSecond.slice(1, Math.floor(duration)),
    generatorCpuSeconds: (cpuTyping.user + cpuTyping.system) / 1e6,
    generatorCpuUserSystem: [cpuTyping.user / 1e6, cpuTyping.system / 1e6],
    generatorCpuPercent: 100 * (cpuTyping.user + cpuTyping.system) / 1e3 / typedMs,
    eventLoopDelayMs: { p50: loop.percentile(50) / 1e6 - LOOP_RES, p99: loop.percentile(99) / 1e6 - LOOP_RES, max: loop.max / 1e6 - LOOP_RES },
    firstCellLength: lastCell,
    typists: typists.length,
    byTarget: targets.map((_, t) => ({ clients: clients.filter((_, k) => targetOf(k) === t).length, receivedWhileTyping: receivedWhileTyping[t] })),
    latencyMsByKind: Object.fromEntries(Object.entries(byKind).map(([kind, v]) => {
      const s = Float64Array.from(v).sort()
      return [kind, { n: s.length, p50: percentile(s, 50), p99: percentile(s, 99), max: s.length ? s[s.length - 1] : null }]
    })),
    closedByServer: closedWhileTyping // close code -> clients the server closed while typing
  })
  clients.forEach((c) => c.close())
  await sleep(200)
}

// -- mode idle -------------------------------------------------------------------------------

async function idleMode () {
  const rooms = cfg.targets // one target per room, in order
  const steps = cfg.steps // [{rooms, clients}]
  const conc = cfg.connectConcurrency || 16
  const clientsConc = cfg.clientsConcurrency ?? conc
  const byRoom = rooms.map(() => [])
  const all = []
  const renew = setInterval(() => all.forEach((c) => c.renewAwareness()), 15000)
  let failed = null
  const openMany = async (jobs, concurrency) => {
    let next = 0
    const worker = async () => {
      while (next < jobs.length && !failed) {
        const r = jobs[next++]
        const c = new YClient(rooms[r])
        try {
          await c.connect({ timeoutMs: cfg.syncTimeoutMs || 60000 })
          c.setAwareness({ user: { name: `idle-${all.length}` }, autosave: true })
          byRoom[r].push(c)
          all.push(c)
        } catch (err) {
          failed = { room: r, error: String(err && err.message ? err.message : err) }
        }
      }
    }
    await Promise.all(Array.from({ length: concurrency > 0 ? concurrency : jobs.length }, worker))
  }
  for (const step of steps) {
    const t0 = performance.now()
    const jobs = []
    for (let r = 0; r < step.rooms; r++) if (byRoom[r].length === 0) jobs.push(r)
    await openMany(jobs, conc)
    emit('stage', { phase: 'rooms', rooms: step.rooms, connections: all.length, seconds: (performance.now() - t0) / 1000, failed })
    await nextLine()
    if (failed) break
    const t1 = performance.now()
    const more = []
    for (let r = 0; r < step.rooms; r++) for (let k = byRoom[r].length; k < step.clients; k++) more.push(r)
    await openMany(more, clientsConc)
    const closedEarly = all.filter((c) => c.closed).length
    emit('stage', { phase: 'clients', rooms: step.rooms, clients: step.clients, connections: all.length, closed: closedEarly, seconds: (performance.now() - t1) / 1000, failed })
    await nextLine()
    if (failed) break
  }
  clearInterval(renew)
  emit('result', { mode: 'idle', connections: all.length, closed: all.filter((c) => c.closed).length, failed })
  all.forEach((c) => c.close())
  await sleep(500)
}

// -- mode open -------------------------------------------------------------------------------

async function openMode () {
  const kept = []
  for (const target of cfg.targets) {
    const c = new YClient(target, { keepDoc: false })
    let res
    try {
      res = await c.connect({ timeoutMs: cfg.syncTimeoutMs || 120000, timeOnly: true })
    } catch (err) {
      res = { error: String(err && err.message ? err.message : err) }
    }
    kept.push(c)
    emit('opened', { label: target.label, ...res })
    await nextLine()
  }
  emit('result', { mode: 'open', opened: kept.length })
  kept.forEach((c) => c.close())
  await sleep(200)
}

const modes = { type: typeMode, idle: idleMode, open: openMode }
modes[cfg.mode]().then(() => process.exit(0), (err) => {
  emit('error', { message: String(err && err.stack ? err.stack : err) })
  process.exit(1)
})
