import { type Duration, Token } from 'aws-cdk-lib';

/** A construct's props do not hold together: the message names the construct, its id and each prop. */
export class PropsError extends Error {
  override readonly name = 'PropsError';
}

/** Bounds of a duration check; at least one is set. */
export interface DurationBounds {
  /** The shortest duration allowed. @default no lower bound */
  readonly min?: Duration;
  /** The longest duration allowed. @default no upper bound */
  readonly max?: Duration;
  /** Why the bound exists, appended to the message. @default none */
  readonly why?: string;
}

/**
 * Collects what is wrong with one construct's props, then throws once with every problem, each
 * naming its prop. A value that is an unresolved token is let through: it is only known at deploy.
 * An undefined value is let through too: the construct's default applies.
 */
export class PropsCheck {
  private readonly problems: string[] = [];

  /**
   * @param construct the construct's class name, e.g. `CategoryFanout`
   * @param id the construct's id in its scope
   */
  constructor(
    private readonly construct: string,
    private readonly id: string,
  ) {}

  /** Records `problem` about `prop` unless `ok`. `problem` reads after the prop's name. */
  that(ok: boolean, prop: string, problem: string): this {
    if (!ok) this.problems.push(`${prop} ${problem}`);
    return this;
  }

  /** An integer from `min` to `max` (both included). */
  integer(prop: string, value: number | undefined, min: number, max?: number, why?: string): this {
    if (value === undefined || Token.isUnresolved(value)) return this;
    const range = max === undefined ? `of at least ${min}` : `from ${min} to ${max}`;
    return this.that(
      Number.isInteger(value) && value >= min && (max === undefined || value <= max),
      prop,
      `must be an integer ${range}${why ? ` (${why})` : ''}; got ${value}.`,
    );
  }

  /** A duration within the bounds (both included). */
  duration(prop: string, value: Duration | undefined, bounds: DurationBounds): this {
    if (value === undefined || value.isUnresolved()) return this;
    const ms = value.toMilliseconds({ integral: false });
    const { min, max, why } = bounds;
    const tooShort = min !== undefined && ms < min.toMilliseconds({ integral: false });
    const tooLong = max !== undefined && ms > max.toMilliseconds({ integral: false });
    const range =
      min !== undefined && max !== undefined
        ? `between ${min.toHumanString()} and ${max.toHumanString()}`
        : min !== undefined
          ? `at least ${min.toHumanString()}`
          : `at most ${max?.toHumanString()}`;
    return this.that(
      !tooShort && !tooLong,
      prop,
      `must be ${range}${why ? ` (${why})` : ''}; got ${value.toHumanString()}.`,
    );
  }

  /** One of the allowed values. */
  oneOf<T>(prop: string, value: T | undefined, allowed: readonly T[]): this {
    if (value === undefined || Token.isUnresolved(value)) return this;
    return this.that(
      allowed.includes(value),
      prop,
      `must be one of ${allowed.map((a) => JSON.stringify(a)).join(', ')}; got ${JSON.stringify(value)}.`,
    );
  }

  /** An `https://` URL. */
  httpsUrl(prop: string, value: string | undefined): this {
    if (value === undefined || Token.isUnresolved(value)) return this;
    return this.that(
      /^https:\/\/[^\s/]+/.test(value),
      prop,
      `must be an https:// URL; got "${value}".`,
    );
  }

  /** A list of problems found elsewhere (a shared validator), each already naming its field. */
  problemsOf(prop: string, problems: readonly string[]): this {
    for (const problem of problems) this.problems.push(`${prop}: ${problem}`);
    return this;
  }

  /** Throws a PropsError listing every problem recorded, if any. */
  assert(): void {
    if (this.problems.length === 0) return;
    throw new PropsError(
      `${this.construct} '${this.id}' has invalid props:\n- ${this.problems.join('\n- ')}`,
    );
  }
}

/** Lambda memory sizes, in MiB. */
export const LAMBDA_MEMORY = { min: 128, max: 10_240 } as const;
