#!/usr/bin/env node
// Hocuspocus peer for the cs3collab benchmarks (bench/run.py).
//
//   node hocuspocus-server.mjs --port P --root DIR [--db FILE|:memory:] [--token T]
//                              [--redis redis://HOST:PORT --name NAME [--no-seed]]
//
// A stock @hocuspocus/server with its default configuration (debounce 2 s, maxDebounce 10 s,
// unloadImmediately, flushDelay 0) and the SQLite extension as its store. Hocuspocus knows
// nothing about notebooks, so one small extension seeds a document that the store does not
// have from the .ipynb of the same name under --root, the way JupyterLab's backend builds a Y
// doc from a file (JSON -> @jupyter/ydoc YNotebook -> state update). Documents are addressed by
// that file name. Every onStoreDocument is counted and printed on stdout as a JSON line so
// the benchmark can count storage writes and bytes:  {"event":"store","doc":...,"bytes":...}.
// With --token, onAuthenticate accepts only that token.
// With --redis (P6), @hocuspocus/extension-redis with its defaults (pub/sub between instances,
// identifier --name) shares documents with every other instance on that Redis. Each instance
// keeps its own SQLite store and seeds from the same .ipynb with one fixed Yjs clientID, so
// every instance builds the very same structs and merging two seeds changes nothing (as if they
// loaded one shared store; with random clientIDs every cell would appear twice). --no-seed
// leaves seeding to the other instances: the document then comes over Redis only, which
// extension-redis does not do reliably when two instances load it at the same moment.

import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { Server } from '@hocuspocus/server'
import { SQLite } from '@hocuspocus/extension-sqlite'
import { Redis } from '@hocuspocus/extension-redis'
import { YNotebook } from '@jupyter/ydoc'
import * as Y from 'yjs'

const args = process.argv.slice(2)
const opt = (name, dflt) => {
  const i = args.indexOf(`--${name}`)
  return i >= 0 ? args[i + 1] : dflt
}
const port = Number(opt('port', '1234'))
const root = opt('root', '.')
const db = opt('db', ':memory:')
const token = opt('token', '')
const redisUrl = opt('redis', '')
const name = opt('name', '')
const seed = !args.includes('--no-seed')
const SEED_CLIENT_ID = 0x5eed // the same on every instance: identical seeds merge into one

const emit = (event, fields = {}) => process.stdout.write(JSON.stringify({ event, ...fields }) + '\n')

const sqlite = new SQLite({ database: db })
const originalStore = sqlite.configuration.store
sqlite.configuration.store = async (data) => {
  const started = performance.now()
  await originalStore(data)
  emit('store', { doc: data.documentName, bytes: data.state.length, ms: performance.now() - started })
}

const seedFromIpynb = {
  priority: 50, // after the SQLite extension (100) has applied what it stored
  async onLoadDocument ({ document, documentName }) {
    if (!seed) return
    if (document.share.size > 0 && (document.getArray('cells').length > 0 || document.getMap('meta').size > 0)) {
      return
    }
    let text
    try {
      text = await readFile(join(root, documentName), 'utf8')
    } catch {
      return // a new, empty document
    }
    const ynb = YNotebook.create()
    if (redisUrl) ynb.ydoc.clientID = SEED_CLIENT_ID
    ynb.fromJSON(JSON.parse(text))
    Y.applyUpdate(document, Y.encodeStateAsUpdate(ynb.ydoc))
    ynb.dispose()
  }
}

const extensions = [sqlite, seedFromIpynb]
if (redisUrl) {
  const url = new URL(redisUrl)
  extensions.push(new Redis({ host: url.hostname, port: Number(url.port || 6379), ...(name ? { identifier: name } : {}) }))
}

const server = new Server({
  port,
  address: '127.0.0.1',
  quiet: true,
  extensions,
  websocketOptions: { maxPayload: 1024 * 1024 * 1024 },
  async onAuthenticate ({ token: given }) {
    if (token && given !== token) throw new Error('bad token')
  }
})

await server.listen()
emit('listening', { port, pid: process.pid, node: process.version })
