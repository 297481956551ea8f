#!/usr/bin/env node
// DynamoDB's request validation in front of moto.
//
//     node proxy.js --upstream http://127.0.0.1:MOTO_PORT [--port N]
//
// A loopback HTTP proxy. Every request whose X-Amz-Target is
// `DynamoDB_20120810.<Operation>` is first validated as DynamoDB validates
// it, with the validators of the npm package dynalite 4.0.0 (its
// `validations` module: the operation's `types` through `checkTypes` and
// `checkValidations` with the operation's `custom` rules, which parse every
// expression and give DynamoDB's ValidationException text). A request that
// fails is answered here, HTTP 400 with DynamoDB's JSON error body, and is
// not forwarded; one that passes, and every other request (KMS, moto's own
// API), is forwarded to the upstream unchanged. moto itself does not
// validate expressions, so without this a request that real DynamoDB
// refuses passes every test.
//
// dynalite does not implement TransactWriteItems: each action of one is
// validated with the single-item validator of its kind (Put as PutItem,
// Update as UpdateItem, Delete as DeleteItem, ConditionCheck as DeleteItem
// with a required ConditionExpression), restricted to the members the
// action has, plus the rules of the DynamoDB API reference for
// TransactWriteItems: 1 to 100 actions, exactly one action per element, no
// two actions on the same item. An operation with no validator is refused
// (HTTP 400, `__type` `envseal.ddbcheck#UncheckedOperation`): a new call is
// never forwarded unchecked.
//
// Syntax errors: dynalite's PEG parser reports `Expected ... but "-"
// found.`; DynamoDB reports `Syntax error; token: "-", near: "branch-key"`
// (the offending token, and the source from the token before it to the
// token after it). The proxy rewrites the former into the latter.
//
// `GET /__ddb-check/stats` (answered here) returns what was checked:
// {"operations": {Op: {"checked", "passed", "refused"}}, "tables": {Table:
// {Op: {...}}}}, so a test can assert its own requests were checked (per
// table: tests running at once use tables of their own).
//
// The first line on stdout is `listening PORT`. The proxy exits when its
// stdin closes (the test process that started it ended).
'use strict'

const http = require('http')
const validations = require('dynalite/validations')

const TARGET_PREFIX = 'DynamoDB_20120810.'
const MAX_ITEM_SIZE = 409600
const STORE = { options: { maxItemSize: MAX_ITEM_SIZE } }
const PARSERS = {
  ConditionExpression: 'conditionParser',
  KeyConditionExpression: 'conditionParser',
  FilterExpression: 'conditionParser',
  UpdateExpression: 'updateParser',
  ProjectionExpression: 'projectionParser',
}

function args () {
  const out = { port: 0, upstream: null }
  const argv = process.argv.slice(2)
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === '--port') out.port = Number(argv[++i])
    else if (argv[i] === '--upstream') out.upstream = new URL(argv[++i])
    else throw new Error('unknown argument ' + argv[i])
  }
  if (!out.upstream) throw new Error('--upstream URL is required')
  return out
}

// ---- counters ----------------------------------------------------------

const stats = { operations: {}, tables: {} }

function count (op, tables, refused) {
  const bump = (m) => {
    const c = m[op] || (m[op] = { checked: 0, passed: 0, refused: 0 })
    c.checked++
    if (refused) c.refused++
    else c.passed++
  }
  bump(stats.operations)
  for (const t of new Set(tables)) bump(stats.tables[t] || (stats.tables[t] = {}))
}

// ---- validation ----------------------------------------------------------

class Refusal extends Error {
  constructor (body) {
    super(body.message || body.Message || body.__type)
    this.body = body
  }
}

function validationError (message) {
  return new Refusal({ __type: 'com.amazon.coral.validate#ValidationException', message })
}

function validator (op) {
  try {
    return require('dynalite/validations/' + validations.toLowerFirst(op))
  }
  catch (e) {
    if (e.code === 'MODULE_NOT_FOUND') return null
    throw e
  }
}

// DynamoDB's tokens, for the `near:` of a syntax error.
const TOKEN = /\s*([A-Za-z0-9_#:]+|<>|<=|>=|\S)/y

function tokens (str) {
  const out = []
  TOKEN.lastIndex = 0
  let m
  while ((m = TOKEN.exec(str)) !== null) {
    const end = TOKEN.lastIndex
    out.push({ start: end - m[1].length, end })
  }
  return out
}

// DynamoDB's form of a syntax error in `expr` (the `field` of `data`), or
// null when the parser does not fail on syntax.
function syntaxError (field, expr, data) {
  const parser = require('dynalite/db/' + PARSERS[field])
  const context = {
    attrNames: data.ExpressionAttributeNames,
    attrVals: data.ExpressionAttributeValues,
    unusedAttrNames: {},
    unusedAttrVals: {},
    isReserved: () => false,
    compare: () => 0,
    isKeyCondition: field === 'KeyConditionExpression',
  }
  try {
    parser.parse(expr, { context })
    return null
  }
  catch (e) {
    if (e.name !== 'SyntaxError' || !e.location) return null
    const at = e.location.start.offset
    const toks = tokens(expr)
    const i = toks.findIndex((t) => t.start >= at)
    if (i < 0) {
      const last = toks[toks.length - 1]
      const near = last ? expr.slice(last.start) : ''
      return 'Invalid ' + field + ': Syntax error; token: "<EOF>", near: "' + near + '"'
    }
    const from = toks[Math.max(0, i - 1)].start
    const to = toks[Math.min(toks.length - 1, i + 1)].end
    const token = expr.slice(toks[i].start, toks[i].end)
    return 'Invalid ' + field + ': Syntax error; token: "' + token + '", near: "' + expr.slice(from, to) + '"'
  }
}

// Validates `data` with dynalite's `types` and `custom` rules; throws a
// Refusal with DynamoDB's error body.
function validateWith (types, custom, data) {
  const original = data
  try {
    const checked = validations.checkTypes(JSON.parse(JSON.stringify(data)), types)
    validations.checkValidations(checked, types, custom, STORE)
  }
  catch (e) {
    if (!e.statusCode) throw e
    const body = e.body
    const m = /^Invalid (\w+): Syntax error; /.exec(body.message || '')
    if (m && PARSERS[m[1]] && typeof original[m[1]] === 'string') {
      const msg = syntaxError(m[1], original[m[1]], original)
      if (msg) body.message = msg
    }
    throw new Refusal(body)
  }
}

const RVOCCF = { type: 'String', enum: [ 'ALL_OLD', 'NONE' ] }

// The members of each TransactWriteItems action and the single-item
// validator whose rules apply (DynamoDB API reference: TransactWriteItem,
// Put, Update, Delete, ConditionCheck).
const ACTIONS = {
  Put: { op: 'PutItem', members: [ 'Item', 'TableName', 'ConditionExpression', 'ExpressionAttributeNames', 'ExpressionAttributeValues' ] },
  Update: { op: 'UpdateItem', members: [ 'Key', 'TableName', 'UpdateExpression', 'ConditionExpression', 'ExpressionAttributeNames', 'ExpressionAttributeValues' ], required: [ 'UpdateExpression' ] },
  Delete: { op: 'DeleteItem', members: [ 'Key', 'TableName', 'ConditionExpression', 'ExpressionAttributeNames', 'ExpressionAttributeValues' ] },
  ConditionCheck: { op: 'DeleteItem', members: [ 'Key', 'TableName', 'ConditionExpression', 'ExpressionAttributeNames', 'ExpressionAttributeValues' ], required: [ 'ConditionExpression' ] },
}

function actionTypes (kind) {
  const spec = ACTIONS[kind]
  const base = validator(spec.op).types
  const types = {}
  for (const m of spec.members) {
    types[m] = Object.assign({}, base[m])
    if ((spec.required || []).includes(m)) types[m].notNull = true
  }
  types.ReturnValuesOnConditionCheckFailure = RVOCCF
  return types
}

const TRANSACT_TYPES = {
  ClientRequestToken: { type: 'String', lengthGreaterThanOrEqual: 1, lengthLessThanOrEqual: 36 },
  ReturnConsumedCapacity: { type: 'String', enum: [ 'INDEXES', 'TOTAL', 'NONE' ] },
  ReturnItemCollectionMetrics: { type: 'String', enum: [ 'SIZE', 'NONE' ] },
  TransactItems: {
    type: 'List',
    notNull: true,
    lengthGreaterThanOrEqual: 1,
    lengthLessThanOrEqual: 100,
    children: {
      type: 'ValueStruct<TransactWriteItem>',
      children: Object.fromEntries(Object.keys(ACTIONS).map((k) => [ k, { type: 'FieldStruct<' + k + '>', children: actionTypes(k) } ])),
    },
  },
}

// The key schema of each table (per region: the credential scope's), read
// from the upstream (DescribeTable) for the same-item rule.
const keySchemas = new Map()

function keySchema (upstream, headers, table) {
  const scope = /Credential=[^/]*\/[^/]*\/([^/]*)\//.exec(headers.authorization || '')
  const cacheKey = (scope ? scope[1] : '') + '/' + table
  if (keySchemas.has(cacheKey)) return Promise.resolve(keySchemas.get(cacheKey))
  const body = JSON.stringify({ TableName: table })
  return new Promise((resolve, reject) => {
    const req = http.request(upstream, {
      method: 'POST',
      headers: {
        'content-type': 'application/x-amz-json-1.0',
        'x-amz-target': TARGET_PREFIX + 'DescribeTable',
        authorization: headers.authorization || '',
        'x-amz-date': headers['x-amz-date'] || '',
        'content-length': Buffer.byteLength(body),
      },
    }, (res) => {
      const chunks = []
      res.on('data', (c) => chunks.push(c))
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString()
        if (res.statusCode !== 200) {
          // No such table: the upstream answers the write (and refuses it).
          // Any other failure (5xx, throttling) refuses the request loudly
          // (CheckerError): the same-item rule is never skipped.
          if (res.statusCode === 400 && /ResourceNotFoundException/.test(text)) return resolve(null)
          return reject(new Error('DescribeTable ' + table + ' for the same-item rule: HTTP ' + res.statusCode + ' ' + text))
        }
        try {
          const names = JSON.parse(text).Table.KeySchema.map((k) => k.AttributeName)
          keySchemas.set(cacheKey, names)
          resolve(names)
        }
        catch (e) {
          reject(e) // refused loudly (CheckerError), never passed unchecked
        }
      })
    })
    req.setTimeout(10000, () => req.destroy(new Error('DescribeTable ' + table + ': no answer in 10 s')))
    req.on('error', reject)
    req.end(body)
  })
}

async function validateTransactWrite (data, upstream, headers) {
  validateWith(TRANSACT_TYPES, null, data)
  const items = data.TransactItems
  for (const element of items) {
    const kinds = Object.keys(ACTIONS).filter((k) => element[k] != null)
    if (kinds.length > 1) {
      throw validationError('TransactItems can only contain one of Check, Put, Update or Delete')
    }
    if (kinds.length === 0) {
      throw validationError('Invalid Request: TransactWriteRequest should contain Delete or Put or Update request')
    }
  }
  for (const element of items) {
    const kind = Object.keys(ACTIONS).find((k) => element[k] != null)
    validateWith(actionTypes(kind), validator(ACTIONS[kind].op).custom, element[kind])
  }
  const seen = new Set()
  for (const element of items) {
    const kind = Object.keys(ACTIONS).find((k) => element[k] != null)
    const action = element[kind]
    const names = await keySchema(upstream, headers, action.TableName)
    if (!names) continue
    const attrs = kind === 'Put' ? action.Item : action.Key
    const id = JSON.stringify([ action.TableName, names.map((n) => attrs[n]) ])
    if (seen.has(id)) throw validationError('Transaction request cannot include multiple operations on one item')
    seen.add(id)
  }
}

function tablesOf (op, data) {
  if (data == null || typeof data !== 'object') return []
  if (op === 'TransactWriteItems' && Array.isArray(data.TransactItems)) {
    return data.TransactItems.flatMap((e) => Object.keys(ACTIONS)
      .filter((k) => e && e[k] && typeof e[k].TableName === 'string')
      .map((k) => e[k].TableName))
  }
  return typeof data.TableName === 'string' ? [ data.TableName ] : []
}

// Validates one DynamoDB request; throws a Refusal.
async function validate (op, body, upstream, headers) {
  let data
  try {
    data = JSON.parse(body.toString() || 'null')
  }
  catch {
    throw new Refusal({ __type: 'com.amazon.coral.service#SerializationException' })
  }
  if (data == null || typeof data !== 'object' || Array.isArray(data)) {
    throw new Refusal({ __type: 'com.amazon.coral.service#SerializationException' })
  }
  if (op === 'TransactWriteItems') return validateTransactWrite(data, upstream, headers)
  const v = validator(op)
  if (!v) {
    throw new Refusal({
      __type: 'envseal.ddbcheck#UncheckedOperation',
      message: 'ddb-check has no validator for DynamoDB operation ' + op + ': add one to tests/ddb-check/proxy.js before the tests call it',
    })
  }
  validateWith(v.types, v.custom, data)
}

// ---- the proxy -------------------------------------------------------------

function forward (upstream, req, body, res) {
  const up = http.request(upstream, { method: req.method, path: req.url, headers: req.headers }, (r) => {
    r.on('error', () => res.destroy())
    res.writeHead(r.statusCode, r.headers)
    r.pipe(res)
  })
  up.on('error', (e) => {
    if (res.headersSent) return res.destroy()
    res.writeHead(502, { 'content-type': 'text/plain' })
    res.end('ddb-check: upstream error: ' + e.message)
  })
  // A client that goes away (the fault tests cut connections) ends its
  // upstream request too; it never takes the proxy down.
  res.on('close', () => {
    if (!res.writableFinished) up.destroy()
  })
  up.end(body)
}

function refuse (res, body) {
  const text = JSON.stringify(body)
  res.writeHead(400, {
    'content-type': 'application/x-amz-json-1.0',
    'content-length': Buffer.byteLength(text),
    'x-amzn-requestid': 'ddb-check',
  })
  res.end(text)
}

// The proxy server in front of `upstream` (a URL), not yet listening.
function createProxy (upstream) {
  return http.createServer((req, res) => {
    const chunks = []
    req.on('error', () => res.destroy())
    res.on('error', () => {})
    req.on('data', (c) => chunks.push(c))
    req.on('end', () => {
      const body = Buffer.concat(chunks)
      if (req.method === 'GET' && req.url === '/__ddb-check/stats') {
        const text = JSON.stringify(stats)
        res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) })
        return res.end(text)
      }
      const target = req.headers['x-amz-target'] || ''
      if (!target.startsWith(TARGET_PREFIX)) return forward(upstream, req, body, res)
      const op = target.slice(TARGET_PREFIX.length)
      let tables = []
      try {
        tables = tablesOf(op, JSON.parse(body.toString() || 'null'))
      }
      catch { /* refused below */ }
      validate(op, body, upstream, req.headers).then(() => {
        count(op, tables, false)
        forward(upstream, req, body, res)
      }, (e) => {
        count(op, tables, true)
        if (!(e instanceof Refusal)) {
          e = new Refusal({ __type: 'envseal.ddbcheck#CheckerError', message: 'ddb-check failed: ' + e.stack })
        }
        process.stderr.write('ddb-check: refused ' + op + ': ' + JSON.stringify(e.body) + '\n')
        refuse(res, e.body)
      })
    })
  })
}

function main () {
  const { port, upstream } = args()
  const server = createProxy(upstream)
  server.keepAliveTimeout = 60000
  server.listen(port, '127.0.0.1', () => {
    process.stdout.write('listening ' + server.address().port + '\n')
  })
  process.stdin.on('end', () => process.exit(0))
  process.stdin.on('error', () => process.exit(0))
  process.stdin.resume()
}

exports.createProxy = createProxy
exports.stats = stats

if (require.main === module) main()
