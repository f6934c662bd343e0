// Batch driver for @ably/vcdiff-decoder, used by codec/vcdiff's tests.
//
// stdin:  records of [u32 BE source length][source][u32 BE delta length][delta]
// stdout: one record per input: [u8 status][u32 BE length][bytes], where
//         status 0 carries the decoded target and status 1 an error message.
'use strict';
const { decode } = require('@ably/vcdiff-decoder');

const chunks = [];
process.stdin.on('data', (c) => chunks.push(c));
process.stdin.on('end', () => {
  const input = Buffer.concat(chunks);
  const out = [];
  let p = 0;
  const take = () => {
    if (p + 4 > input.length) throw new Error('truncated input at ' + p);
    const n = input.readUInt32BE(p);
    p += 4;
    if (p + n > input.length) throw new Error('truncated input at ' + p);
    const b = input.subarray(p, p + n);
    p += n;
    return b;
  };
  while (p < input.length) {
    const source = new Uint8Array(take());
    const delta = new Uint8Array(take());
    let status = 0;
    let body;
    try {
      body = Buffer.from(decode(delta, source));
    } catch (e) {
      status = 1;
      body = Buffer.from(String(e && e.message ? e.message : e));
    }
    const head = Buffer.alloc(5);
    head.writeUInt8(status, 0);
    head.writeUInt32BE(body.length, 1);
    out.push(head, body);
  }
  process.stdout.write(Buffer.concat(out));
});
