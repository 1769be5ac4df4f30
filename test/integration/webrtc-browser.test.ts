import { existsSync } from 'node:fs';
import { type Browser, chromium } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { localCallsConfig } from '../../local/calls';
import type { LocalPipeline } from '../../local/pipeline';
import { type LocalSessionEndpoint, startSessionEndpoint } from '../../local/session-endpoint';
import { waitForStatus } from '../support/calls';
import { startPipeline } from '../support/webhooks';

/**
 * The demo page (examples/webrtc/) in a real headless Chromium (Debian's `chromium`, driven by
 * playwright-core) with fake media devices, against local mode: microphone, offer, POST to the
 * session endpoint, the answer applied to the peer connection, and the sideband attached. The
 * simulator's answer is valid SDP but nobody answers its ICE checks, so media never flows: the
 * test stops at the applied answer and the attached sideband, as the issue asks.
 */
const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';

describe('the demo page in a headless browser', () => {
  let p: LocalPipeline;
  let endpoint: LocalSessionEndpoint;
  let browser: Browser;
  beforeAll(async () => {
    if (!existsSync(CHROMIUM))
      throw new Error(
        `No Chromium at ${CHROMIUM}: apt-get install chromium, or set CHROMIUM_PATH.`,
      );
    p = await startPipeline({
      calls: localCallsConfig(),
      workers: 1,
      workerEnv: { LOG_LEVEL: 'warn', SIGNAL_WAIT_SECONDS: '1' },
    });
    endpoint = await startSessionEndpoint(p);
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      headless: true,
      args: [
        '--no-sandbox',
        '--use-fake-ui-for-media-stream',
        '--use-fake-device-for-media-stream',
      ],
    });
  });
  afterAll(async () => {
    await browser?.close();
    await p?.stop();
  });

  it('gets the microphone, posts the offer, applies the answer, and the sideband attaches', async () => {
    const page = await browser.newPage();
    const errors: string[] = [];
    page.on('pageerror', (error) => errors.push(String(error)));
    await page.goto(`${endpoint.url}/`);
    await page.click('#start');
    await page.waitForFunction(
      () =>
        ['answer-applied', 'attached', 'error'].includes(
          (globalThis as never as { demo: { state: string } }).demo.state,
        ),
      undefined,
      { timeout: 20_000 },
    );
    const applied = await page.evaluate(() => {
      const w = globalThis as never as { demo: { state: string; callId: string; error?: string } };
      return { ...w.demo };
    });
    expect(applied.error).toBeUndefined();
    expect(applied.callId).toMatch(/^rtc_/);
    // The browser really made the offer: an audio section and the events data channel.
    const offer =
      p.simulator?.requests.filter((r) => r.path === '/v1/realtime/calls').at(-1)?.rawBody ?? '';
    expect(offer).toMatch(/m=audio /);
    expect(offer).toMatch(/m=application .*webrtc-datachannel/);
    await page.waitForFunction(
      () => (globalThis as never as { demo: { state: string } }).demo.state === 'attached',
      undefined,
      { timeout: 20_000 },
    );
    const record = await waitForStatus(p, applied.callId, ['active']);
    expect(record).toMatchObject({ channel: 'webrtc', profile: 'default' });
    // The greeting reached the call record, and the page shows it.
    await page.waitForSelector('#transcript p.assistant', { timeout: 10_000 });
    expect(await page.textContent('#transcript')).toContain('Thanks for calling Example Co.');
    expect(errors).toEqual([]);
  });
});
