#!/usr/bin/env node
// Scriptable Yjs client for interop tests against the cs3collab hub.
//
// It connects the way JupyterLab 4's @jupyter/docprovider does: a y-websocket 1.5.4
// WebsocketProvider on `{wsBase}/{room}?sessionId=..&token=..`, bound to the Y.Doc and
// awareness of an @jupyter/ydoc YNotebook, with the BroadcastChannel disabled.
//
// Input: one JSON object on argv[2], or on stdin when argv[2] is absent:
//   {"wsBase": "ws://127.0.0.1:PORT/api/collaboration/room",
//    "room": "json:notebook:<fileId>", "sessionId": "...", "token": "...",
//    "autosave": true, "user": {"name": "node"}, "reconnect": false,
//    "yWebsocket": "1" | "2" | "3", "bareAwareness": false,
//    "connectTimeoutMs": 10000, "totalTimeoutMs": 60000,
//    "steps": [ {"op": ...}, ... ]}
//
// Output: one JSON line per event on stdout ({"event": "synced"}, ...).
// Exit codes: 0 all steps done; 1 error or step timeout; 2 bad input;
//             3 the server closed the socket (event "closed" carries code and reason).
//
// By default the first close the client did not ask for ends the process (exit 3), so a test
// sees it instead of y-websocket's silent reconnect. With "reconnect": true the client behaves
// like JupyterLab: it keeps its Y.Doc and lets y-websocket reconnect to the same URL (same
// sessionId), except after a 1003 close (the docprovider disposes the model) or a
// 4400/4404/4500 close before the first sync; each close prints {"event":"closed",...,
// "reconnecting":true} and each later sync {"event":"resynced"}.
//
// Steps (every waiting step has a timeout, default 10000 ms):
//   {"op":"insertCell","index":0,"source":"...","cellType":"code","id":"..."}
//   {"op":"deleteCell","index":0}
//   {"op":"appendText","cellIndex":0,"text":"..."}
//   {"op":"insertText","cellIndex":0,"pos":0,"text":"..."}
//   {"op":"setSource","cellIndex":0,"source":"..."}
//   {"op":"waitForText","cellIndex":1,"contains":"...","timeoutMs":10000}
//   {"op":"waitForCells","count":2,"timeoutMs":10000}
//   {"op":"setAwareness","user":{"name":"node"},"fields":{...}}
//   {"op":"waitForAwarenessFrom","name":"py","timeoutMs":10000}
//   {"op":"waitForState","key":"dirty","value":false,"timeoutMs":10000}
//   {"op":"waitForReconnect","closes":1,"timeoutMs":20000}  (needs "reconnect": true)
//   {"op":"dump"}                      -> {"event":"dump","notebook":<ynb.toJSON()>}
//   {"op":"save","id":1,"timeoutMs":10000} -> {"event":"saveReply", ...server JSON}
//   {"op":"close","timeoutMs":10000}   -> {"event":"disconnected",...}, then exit 0

import { EventEmitter } from 'node:events'
import { readFileSync } from 'node:fs'
import WS from 'ws'
import * as encoding from 'lib0/encoding'
import * as decoding from 'lib0/decoding'
import { YNotebook } from '@jupyter/ydoc'

const PROVIDERS = { 1: 'y-websocket', 2: 'y-websocket-2', 3: 'y-websocket-3' }
const RAW_MESSAGE_TYPE = 2 // y-websocket's "auth" message type, reused by Jupyter as RAW
const DEFAULT_TIMEOUT_MS = 10000

const EXIT_OK = 0
const EXIT_ERROR = 1
const EXIT_BAD_INPUT = 2
const EXIT_SERVER_CLOSED = 3

const emit = (event, fields = {}) => {
  // stdout is a pipe or a file in tests: writes are synchronous on Linux, so a
  // process.exit() right after emit() does not lose the line.
  process.stdout.write(JSON.stringify({ event, ...fields }) + '\n')
}

let finished = false
const finish = (code, event, fields) => {
  if (finished) return
  finished = true
  if (event) emit(event, fields)
  if (code !== EXIT_OK && fields && fields.message) {
    process.stderr.write(`yclient: ${fields.message}\n`)
  }
  process.exit(code)
}

const fail = (message, fields = {}) => finish(EXIT_ERROR, 'error', { message, ...fields })

process.on('uncaughtException', (err) => fail(`uncaught exception: ${err && err.stack ? err.stack : err}`))
process.on('unhandledRejection', (err) => fail(`unhandled rejection: ${err && err.stack ? err.stack : err}`))

const readInput = () => {
  let text = process.argv[2]
  if (text === undefined) {
    text = readFileSync(0, 'utf8')
  }
  try {
    const cfg = JSON.parse(text)
    if (typeof cfg !== 'object' || cfg === null) throw new Error('input is not a JSON object')
    for (const key of ['wsBase', 'room']) {
      if (typeof cfg[key] !== 'string' || cfg[key] === '') throw new Error(`missing string field "${key}"`)
    }
    if (cfg.steps !== undefined && !Array.isArray(cfg.steps)) throw new Error('"steps" must be an array')
    return cfg
  } catch (err) {
    finish(EXIT_BAD_INPUT, 'error', { message: `bad input: ${err.message}` })
  }
}

/**
 * Wait until `check()` returns a truthy value, re-checking on every document
 * transaction and awareness change. Rejects after `timeoutMs`.
 */
const waitFor = (what, timeoutMs, check, { ydoc, awareness, bus }) =>
  new Promise((resolve, reject) => {
    const cleanup = () => {
      clearTimeout(timer)
      ydoc.off('afterTransaction', onChange)
      if (awareness) awareness.off('change', onChange)
      if (bus) bus.off('change', onChange)
    }
    const onChange = () => {
      let value
      try {
        value = check()
      } catch (err) {
        cleanup()
        reject(err)
        return
      }
      if (value) {
        cleanup()
        resolve(value)
      }
    }
    const timer = setTimeout(() => {
      cleanup()
      reject(new Error(`timeout after ${timeoutMs} ms waiting for ${what}`))
    }, timeoutMs)
    ydoc.on('afterTransaction', onChange)
    if (awareness) awareness.on('change', onChange)
    if (bus) bus.on('change', onChange)
    onChange()
  })

const main = async () => {
  const cfg = readInput()
  const connectTimeoutMs = cfg.connectTimeoutMs ?? DEFAULT_TIMEOUT_MS
  const totalTimeoutMs = cfg.totalTimeoutMs ?? 60000
  setTimeout(() => fail(`total timeout of ${totalTimeoutMs} ms exceeded`), totalTimeoutMs).unref()

  const ynb = new YNotebook()
  const ydoc = ynb.ydoc
  const awareness = ynb.awareness

  // Which y-websocket: "1" (1.5.4, JupyterLab's), "2" (2.1.0) or "3" (3.0.0).
  const { WebsocketProvider } = await import(PROVIDERS[cfg.yWebsocket ?? '1'])

  // What RtcContentProvider / WebSocketProvider set before connecting; "bareAwareness"
  // connects like a stock Yjs app instead: its first awareness update has clock 0, state {}.
  if (!cfg.bareAwareness) {
    awareness.setLocalStateField('autosave', cfg.autosave ?? true)
    if (cfg.user) awareness.setLocalStateField('user', cfg.user)
  }

  const params = {}
  if (cfg.sessionId !== undefined && cfg.sessionId !== null) params.sessionId = cfg.sessionId
  if (cfg.token) params.token = cfg.token

  let closingByClient = false
  const reconnect = cfg.reconnect ?? false
  const bus = new EventEmitter() // connection lifecycle changes, for waitFor()
  let closeCount = 0
  let syncCount = 0
  let syncedSinceLastClose = false
  const provider = new WebsocketProvider(cfg.wsBase, cfg.room, ydoc, {
    disableBc: true,
    params,
    awareness,
    WebSocketPolyfill: WS
  })
  emit('connecting', { url: provider.url.replace(/([?&]token=)[^&]*/, '$1***') })

  provider.on('connection-error', (event) => {
    emit('connectionError', { message: event && event.message ? String(event.message) : String(event) })
  })

  // y-websocket reconnects on its own after any close; a test must see the close
  // instead, so the process ends on the first close it did not initiate.
  const clientClosed = new Promise((resolve) => {
    provider.on('connection-close', (event) => {
      const fields = { code: event ? event.code : null, reason: event ? String(event.reason ?? '') : '' }
      if (closingByClient) {
        resolve(fields)
        return
      }
      const fatal =
        !reconnect ||
        fields.code === 1003 ||
        ([4400, 4404, 4500].includes(fields.code) && syncCount === 0)
      if (fatal) {
        provider.shouldConnect = false
        finish(EXIT_SERVER_CLOSED, 'closed', { ...fields, synced: syncCount > 0 })
        return
      }
      closeCount++
      syncedSinceLastClose = false
      emit('closed', { ...fields, synced: syncCount > 0, reconnecting: true })
      bus.emit('change')
    })
  })
  provider.on('sync', (isSynced) => {
    if (!isSynced) return
    syncCount++
    syncedSinceLastClose = true
    if (syncCount > 1) emit('resynced', { cells: ynb.cells.length })
    bus.emit('change')
  })

  await new Promise((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new Error(`timeout after ${connectTimeoutMs} ms waiting for sync (SyncStep2)`)),
      connectTimeoutMs
    )
    const onSync = (isSynced) => {
      if (!isSynced) return
      clearTimeout(timer)
      provider.off('sync', onSync)
      resolve()
    }
    provider.on('sync', onSync)
  })
  // @jupyter/docprovider does this right after the first sync.
  ydoc.getMap('state').set('document_id', provider.roomname)
  emit('synced', { clientId: ydoc.clientID, cells: ynb.cells.length })

  let saveCounter = 0
  const ctx = { ydoc, awareness, bus }
  const getCell = (index) => {
    const cell = ynb.cells[index]
    if (!cell) throw new Error(`no cell at index ${index} (notebook has ${ynb.cells.length})`)
    return cell
  }

  const steps = cfg.steps ?? []
  for (let i = 0; i < steps.length; i++) {
    const step = steps[i]
    const timeoutMs = step.timeoutMs ?? DEFAULT_TIMEOUT_MS
    try {
      switch (step.op) {
        case 'insertCell': {
          const cellType = step.cellType ?? 'code'
          const cellJson = { cell_type: cellType, source: step.source ?? '', metadata: step.metadata ?? {} }
          if (step.id) cellJson.id = step.id
          if (cellType === 'code') {
            cellJson.outputs = []
            cellJson.execution_count = null
          }
          const index = step.index ?? ynb.cells.length
          const cell = ynb.insertCell(index, cellJson)
          emit('cellInserted', { index, id: cell.id })
          break
        }
        case 'deleteCell': {
          getCell(step.index)
          ynb.deleteCell(step.index)
          emit('cellDeleted', { index: step.index })
          break
        }
        case 'appendText': {
          const cell = getCell(step.cellIndex)
          const end = cell.ysource.length
          cell.updateSource(end, end, step.text)
          emit('textAppended', { cellIndex: step.cellIndex, source: cell.getSource() })
          break
        }
        case 'insertText': {
          const cell = getCell(step.cellIndex)
          cell.updateSource(step.pos, step.pos, step.text)
          emit('textInserted', { cellIndex: step.cellIndex, source: cell.getSource() })
          break
        }
        case 'setSource': {
          const cell = getCell(step.cellIndex)
          cell.setSource(step.source)
          emit('sourceSet', { cellIndex: step.cellIndex, source: cell.getSource() })
          break
        }
        case 'waitForText': {
          const source = await waitFor(
            `cell ${step.cellIndex} to contain ${JSON.stringify(step.contains)}`,
            timeoutMs,
            () => {
              const cell = ynb.cells[step.cellIndex]
              if (!cell) return null
              const src = cell.getSource()
              return src.includes(step.contains) ? { src } : null
            },
            ctx
          )
          emit('text', { cellIndex: step.cellIndex, source: source.src })
          break
        }
        case 'waitForCells': {
          await waitFor(`${step.count} cells`, timeoutMs, () => ynb.cells.length === step.count, ctx)
          emit('cells', { count: ynb.cells.length })
          break
        }
        case 'setAwareness': {
          if (step.user !== undefined) awareness.setLocalStateField('user', step.user)
          for (const [key, value] of Object.entries(step.fields ?? {})) {
            awareness.setLocalStateField(key, value)
          }
          emit('awarenessSet', { state: awareness.getLocalState() })
          break
        }
        case 'waitForAwarenessFrom': {
          const found = await waitFor(
            `an awareness state with user.name ${JSON.stringify(step.name)}`,
            timeoutMs,
            () => {
              for (const [clientId, state] of awareness.getStates()) {
                if (clientId !== ydoc.clientID && state && state.user && state.user.name === step.name) {
                  return { clientId, state }
                }
              }
              return null
            },
            ctx
          )
          emit('awareness', { name: step.name, clientId: found.clientId, state: found.state })
          break
        }
        case 'waitForState': {
          // e.g. {"op":"waitForState","key":"dirty","value":false}
          const ystate = ydoc.getMap('state')
          await waitFor(
            `state.${step.key} == ${JSON.stringify(step.value)}`,
            timeoutMs,
            () => JSON.stringify(ystate.get(step.key)) === JSON.stringify(step.value),
            ctx
          )
          emit('state', { state: ystate.toJSON() })
          break
        }
        case 'waitForReconnect': {
          if (!reconnect) throw new Error('waitForReconnect needs "reconnect": true')
          const closes = step.closes ?? 1
          await waitFor(
            `a reconnect and resync after ${closes} close(s)`,
            timeoutMs,
            () => closeCount >= closes && syncedSinceLastClose && provider.synced,
            ctx
          )
          emit('reconnected', { closes: closeCount, syncs: syncCount, cells: ynb.cells.length })
          break
        }
        case 'dump': {
          emit('dump', { notebook: ynb.toJSON(), state: ydoc.getMap('state').toJSON() })
          break
        }
        case 'save': {
          const ws = provider.ws
          if (!ws || ws.readyState !== ws.OPEN) throw new Error('save: websocket is not open')
          const saveId = step.id ?? ++saveCounter
          const reply = await new Promise((resolve, reject) => {
            const cleanup = () => {
              clearTimeout(timer)
              ws.removeEventListener('message', onMessage)
            }
            const onMessage = (event) => {
              const data = new Uint8Array(event.data)
              if (data.length === 0) return
              const decoder = decoding.createDecoder(data)
              let payload
              try {
                if (decoding.readVarUint(decoder) !== RAW_MESSAGE_TYPE) return
                const text = decoding.readVarString(decoder)
                payload = JSON.parse(text)
              } catch (err) {
                emit('rawMessage', { note: `unparsable RAW frame: ${err.message}` })
                return
              }
              if (payload && payload.type === 'save' && payload.responseTo === saveId) {
                cleanup()
                resolve(payload)
              } else {
                emit('rawMessage', { payload })
              }
            }
            const timer = setTimeout(() => {
              cleanup()
              reject(new Error(`timeout after ${timeoutMs} ms waiting for the reply to save ${saveId}`))
            }, timeoutMs)
            ws.addEventListener('message', onMessage)
            const encoder = encoding.createEncoder()
            encoding.writeVarUint(encoder, RAW_MESSAGE_TYPE)
            encoding.writeVarString(encoder, 'save')
            encoding.writeVarUint(encoder, saveId)
            ws.send(encoding.toUint8Array(encoder))
          })
          emit('saveReply', reply)
          break
        }
        case 'close': {
          closingByClient = true
          // disconnect() announces the removal of our awareness state and closes the
          // socket; destroy() only afterwards, because it drops all event listeners.
          provider.disconnect()
          let timer
          const closed = await Promise.race([
            clientClosed,
            new Promise((resolve, reject) => {
              timer = setTimeout(() => reject(new Error(`timeout after ${timeoutMs} ms waiting for close`)), timeoutMs)
            })
          ])
          clearTimeout(timer)
          provider.destroy()
          finish(EXIT_OK, 'disconnected', closed)
          return
        }
        default:
          throw new Error(`unknown op ${JSON.stringify(step.op)}`)
      }
    } catch (err) {
      fail(err.message, { step: i, op: step.op })
      return
    }
  }
  closingByClient = true
  provider.destroy()
  finish(EXIT_OK, 'done')
}

main().catch((err) => fail(err && err.message ? err.message : String(err)))
