// The DynamoDB checker against a fake upstream: what it refuses (with
// DynamoDB's messages), what it forwards unchanged, and its counts.
//
//     node --test tests/ddb-check/proxy.test.js
'use strict'

const test = require('node:test')
const assert = require('node:assert/strict')
const http = require('node:http')
const { createProxy, stats } = require('./proxy.js')

const TABLE = 'checker-table'
// Tables whose DescribeTable (the same-item rule's lookup) fails: with a
// server error, and as a table that does not exist.
const BROKEN = 'broken-table'
const MISSING = 'missing-table'

// The upstream: answers DescribeTable with a key schema (pk HASH, sk
// RANGE) and everything else with `{}`; records what reached it.
const reached = []
const upstream = http.createServer((req, res) => {
  const chunks = []
  req.on('data', (c) => chunks.push(c))
  req.on('end', () => {
    const target = req.headers['x-amz-target'] || ''
    // The checker's own DescribeTable lookups are not the client's requests.
    if (!target.endsWith('.DescribeTable')) reached.push({ target, body: Buffer.concat(chunks).toString() })
    const table = target.endsWith('.DescribeTable') ? JSON.parse(Buffer.concat(chunks).toString()).TableName : null
    if (table === BROKEN) {
      res.writeHead(500, { 'content-type': 'application/x-amz-json-1.0' })
      return res.end('{"__type":"com.amazonaws.dynamodb.v20120810#InternalServerError"}')
    }
    if (table === MISSING) {
      res.writeHead(400, { 'content-type': 'application/x-amz-json-1.0' })
      return res.end('{"__type":"com.amazonaws.dynamodb.v20120810#ResourceNotFoundException"}')
    }
    const body = table !== null
      ? JSON.stringify({ Table: { KeySchema: [ { AttributeName: 'pk', KeyType: 'HASH' }, { AttributeName: 'sk', KeyType: 'RANGE' } ] } })
      : '{}'
    res.writeHead(200, { 'content-type': 'application/x-amz-json-1.0' })
    res.end(body)
  })
})

let proxyPort, proxy
test.before(async () => {
  await new Promise((resolve) => upstream.listen(0, '127.0.0.1', resolve))
  proxy = createProxy(new URL('http://127.0.0.1:' + upstream.address().port))
  await new Promise((resolve) => proxy.listen(0, '127.0.0.1', resolve))
  proxyPort = proxy.address().port
})
test.after(() => {
  for (const server of [ proxy, upstream ]) {
    server.close()
    server.closeAllConnections()
  }
})

function send (target, body) {
  const text = typeof body === 'string' ? body : JSON.stringify(body)
  return new Promise((resolve, reject) => {
    const req = http.request({
      port: proxyPort,
      host: '127.0.0.1',
      method: 'POST',
      path: '/',
      headers: {
        'content-type': 'application/x-amz-json-1.0',
        'x-amz-target': target,
        authorization: 'AWS4-HMAC-SHA256 Credential=testing/20260101/us-east-1/dynamodb/aws4_request',
      },
    }, (res) => {
      const chunks = []
      res.on('data', (c) => chunks.push(c))
      res.on('end', () => resolve({ status: res.statusCode, body: Buffer.concat(chunks).toString() }))
    })
    req.on('error', reject)
    req.end(text)
  })
}

const ddb = (op) => 'DynamoDB_20120810.' + op
const item = (pk, sk) => ({ pk: { S: pk }, sk: { S: sk }, 'branch-key-id': { S: pk } })

async function refused (op, body, message) {
  const before = reached.length
  const res = await send(ddb(op), body)
  assert.equal(res.status, 400, res.body)
  const err = JSON.parse(res.body)
  assert.equal(err.__type, 'com.amazon.coral.validate#ValidationException', res.body)
  if (message instanceof RegExp) assert.match(err.message, message)
  else assert.equal(err.message, message)
  assert.equal(reached.length, before, 'a refused request is not forwarded')
}

async function forwarded (op, body) {
  const before = reached.length
  const res = await send(ddb(op), body)
  assert.equal(res.status, 200, res.body)
  assert.equal(reached.length, before + 1)
  assert.equal(reached[reached.length - 1].body, JSON.stringify(body), 'forwarded unchanged')
}

test('an inline hyphenated name is refused with DynamoDB\'s syntax error', async () => {
  const want = 'Invalid ConditionExpression: Syntax error; token: "-", near: "branch-key"'
  await refused('PutItem', { TableName: TABLE, Item: item('a', 'b'), ConditionExpression: 'attribute_not_exists(branch-key-id)' }, want)
  await refused('TransactWriteItems', {
    TransactItems: [ { Put: { TableName: TABLE, Item: item('a', 'b'), ConditionExpression: 'attribute_not_exists(branch-key-id)' } } ],
  }, want)
  await refused('UpdateItem', {
    TableName: TABLE, Key: { pk: { S: 'a' }, sk: { S: 'b' } }, UpdateExpression: 'SET x = :v', ConditionExpression: 'size(a) >',
    ExpressionAttributeValues: { ':v': { S: 'v' } },
  }, 'Invalid ConditionExpression: Syntax error; token: "<EOF>", near: ">"')
})

test('placeholders pass and are forwarded unchanged', async () => {
  await forwarded('TransactWriteItems', {
    TransactItems: [
      { Put: { TableName: TABLE, Item: item('a', 'v1'), ConditionExpression: 'attribute_not_exists(#B)', ExpressionAttributeNames: { '#B': 'branch-key-id' } } },
      {
        Put: {
          TableName: TABLE,
          Item: item('a', 'ACTIVE'),
          ConditionExpression: 'attribute_exists(#B) AND #E = :old',
          ExpressionAttributeNames: { '#B': 'branch-key-id', '#E': 'enc' },
          ExpressionAttributeValues: { ':old': { B: 'AAEC' } },
        },
      },
    ],
  })
  await forwarded('GetItem', { TableName: TABLE, Key: { pk: { S: 'a' }, sk: { S: 'v1' } } })
})

test('unused or missing placeholders are refused', async () => {
  await refused('PutItem', {
    TableName: TABLE, Item: item('a', 'b'), ConditionExpression: 'attribute_not_exists(#B)',
    ExpressionAttributeNames: { '#B': 'branch-key-id', '#C': 'enc' },
  }, 'Value provided in ExpressionAttributeNames unused in expressions: keys: {#C}')
  await refused('PutItem', {
    TableName: TABLE, Item: item('a', 'b'), ConditionExpression: 'enc = :old',
  }, 'Invalid ConditionExpression: An expression attribute value used in expression is not defined; attribute value: :old')
})

test('TransactWriteItems: 1 to 100 actions, one action each, one action per item', async () => {
  await refused('TransactWriteItems', { TransactItems: [] },
    /^1 validation error detected: Value '.*' at 'transactItems' failed to satisfy constraint: Member must have length greater than or equal to 1$/)
  const many = Array.from({ length: 101 }, (_, i) => ({ Put: { TableName: TABLE, Item: item('a', 's' + i) } }))
  await refused('TransactWriteItems', { TransactItems: many }, /Member must have length less than or equal to 100/)
  await refused('TransactWriteItems', {
    TransactItems: [ { Put: { TableName: TABLE, Item: item('a', 'b') }, Delete: { TableName: TABLE, Key: { pk: { S: 'a' }, sk: { S: 'c' } } } } ],
  }, 'TransactItems can only contain one of Check, Put, Update or Delete')
  await refused('TransactWriteItems', { TransactItems: [ {} ] },
    'Invalid Request: TransactWriteRequest should contain Delete or Put or Update request')
  await refused('TransactWriteItems', {
    TransactItems: [
      { Put: { TableName: TABLE, Item: item('a', 'b') } },
      { ConditionCheck: { TableName: TABLE, Key: { pk: { S: 'a' }, sk: { S: 'b' } }, ConditionExpression: 'attribute_exists(pk)' } },
    ],
  }, 'Transaction request cannot include multiple operations on one item')
  await refused('TransactWriteItems', {
    TransactItems: [ { Put: { Item: item('a', 'b') } } ],
  }, /Value null at 'transactItems.1.member.put.tableName' failed to satisfy constraint: Member must not be null/)
  await refused('TransactWriteItems', {
    TransactItems: [ { ConditionCheck: { TableName: TABLE, Key: { pk: { S: 'a' }, sk: { S: 'b' } } } } ],
  }, /transactItems.1.member.conditionCheck.conditionExpression' failed to satisfy constraint: Member must not be null/)
  await forwarded('TransactWriteItems', {
    TransactItems: many.slice(0, 100),
  })
})

test('an operation without a validator is refused, not passed through', async () => {
  const before = reached.length
  const res = await send(ddb('TransactGetItems'), { TransactItems: [] })
  assert.equal(res.status, 400)
  assert.equal(JSON.parse(res.body).__type, 'envseal.ddbcheck#UncheckedOperation')
  assert.equal(reached.length, before)
})

test('other services pass through unchanged, and the counts add up', async () => {
  const before = reached.length
  const res = await send('TrentService.Decrypt', '{"CiphertextBlob":"AAAA"}')
  assert.equal(res.status, 200)
  assert.equal(reached.length, before + 1)
  assert.equal(reached[reached.length - 1].body, '{"CiphertextBlob":"AAAA"}')
  const s = stats.tables[TABLE]
  assert.ok(s.TransactWriteItems.checked >= 7, JSON.stringify(s))
  assert.equal(s.TransactWriteItems.checked, s.TransactWriteItems.passed + s.TransactWriteItems.refused)
  assert.equal(s.PutItem.refused, 3)
  assert.equal(stats.operations.TransactGetItems.refused, 1)
  assert.equal(stats.operations.Decrypt, undefined, 'KMS is not counted')
})

test('a failed key schema lookup refuses the write; a missing table is the upstream\'s to refuse', async () => {
  const write = (table) => ({ TransactItems: [ { Put: { TableName: table, Item: item('a', 'b') } } ] })
  const before = reached.length
  const res = await send(ddb('TransactWriteItems'), write(BROKEN))
  assert.equal(res.status, 400, res.body)
  assert.equal(JSON.parse(res.body).__type, 'envseal.ddbcheck#CheckerError', res.body)
  assert.equal(reached.length, before, 'never forwarded with the same-item rule unchecked')
  await forwarded('TransactWriteItems', write(MISSING))
})
