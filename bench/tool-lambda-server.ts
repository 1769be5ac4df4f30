import { createServer } from 'node:http';
import { lookupOrder } from '../local/calls';

/**
 * The demo tool Lambda behind the Lambda Invoke wire protocol, in a process of its own: in the
 * density benchmark the tool is a separate service, as in AWS, not a guest of the busy simulator.
 */
const server = createServer((req, res) => {
  const chunks: Buffer[] = [];
  req.on('data', (chunk: Buffer) => chunks.push(chunk));
  req.on('end', async () => {
    const result = await lookupOrder(JSON.parse(Buffer.concat(chunks).toString('utf8') || 'null'));
    res.writeHead(200, { 'content-type': 'application/json', 'x-amz-executed-version': '$LATEST' });
    res.end(JSON.stringify(result));
  });
});
server.listen(0, '127.0.0.1', () => {
  const address = server.address();
  process.stdout.write(
    `${JSON.stringify({ port: typeof address === 'object' && address ? address.port : 0 })}\n`,
  );
});
process.on('SIGTERM', () => server.close(() => process.exit(0)));
