import { LocalPipeline } from '../local/pipeline';

/** Runs an in-memory local pipeline in its own process for the load benchmark. */
const pipeline = await LocalPipeline.start({
  logLevel: 'warn',
  // As in AWS, where the ingress is a Lambda of its own: consumer bursts do not share its loop.
  ingress: process.env.BENCH_INGRESS === 'in-process' ? 'in-process' : 'process',
  pollerConcurrency: Number(process.env.BENCH_POLLERS ?? 4),
});
process.stdout.write(
  `${JSON.stringify({ url: pipeline.url, secret: pipeline.webhookSecret, tableName: pipeline.tableName, dynamoEndpoint: pipeline.dynamoEndpoint })}\n`,
);
const stop = async () => {
  await pipeline.stop();
  process.exit(0);
};
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
