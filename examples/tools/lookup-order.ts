import type { ToolError, ToolHandler } from 'openai-webhooks-cdk';

/**
 * An order lookup, as a phone-call tool. The app config loads it with
 * `CallTool.fromEntry('examples/tools/lookup-order.ts', { description, parameters, timeout })`:
 * deployed it is a Lambda function of its own, locally (`npm start`) the same file runs behind a
 * local Lambda Invoke endpoint.
 *
 * Replace the table below with your order system. Keep it quick: the caller is waiting, and the
 * call gives up after the tool's `timeout`.
 */

interface Args {
  /** The order number the caller said, as the model heard it. */
  readonly order_number?: unknown;
}

const ORDERS: Readonly<Record<string, { status: string; eta: string }>> = {
  '1234': { status: 'shipped', eta: 'tomorrow' },
  '5678': { status: 'processing', eta: 'in 3 days' },
};

export const handler: ToolHandler<Args> = async ({ arguments: args, call }) => {
  // The arguments come from the model: check them like any outside input.
  const orderNumber =
    typeof args.order_number === 'string' ? args.order_number.replace(/\D/g, '') : '';
  if (!orderNumber) {
    return {
      error: { code: 'invalid_arguments', message: 'Ask the caller for their order number.' },
    } satisfies ToolError;
  }
  // Own-property lookup only: the number is outside text.
  const order = Object.hasOwn(ORDERS, orderNumber) ? ORDERS[orderNumber] : undefined;
  if (!order) {
    return {
      error: { code: 'not_found', message: `There is no order ${orderNumber}.` },
    } satisfies ToolError;
  }
  // `call.from` is what the caller's phone claims (`call.callerVerified` is false unless a trusted
  // trunk asserted it): fine to personalise with, never to authorise with.
  return {
    order_number: orderNumber,
    ...order,
    caller_verified: call.callerVerified,
  };
};
