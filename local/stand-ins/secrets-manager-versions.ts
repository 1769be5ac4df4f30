import { randomUUID } from 'node:crypto';
import { type AwsJsonFake, AwsServiceError } from './aws-json-fake';

/**
 * Secret versions and staging labels for the Secrets Manager stand-in, as a rotation needs them:
 * `DescribeSecret` (VersionIdsToStages, RotationEnabled), `GetSecretValue` by VersionId and/or
 * VersionStage, `PutSecretValue` with ClientRequestToken and VersionStages, and
 * `UpdateSecretVersionStage`. Added to an AwsJsonFake through its `on()`; the fake's `secrets`
 * map stays the AWSCURRENT value, so code that sets it directly still works.
 *
 * Behaviour from the Secrets Manager API reference (PutSecretValue, UpdateSecretVersionStage,
 * GetSecretValue: "If you don't specify either a VersionStage or VersionId, Secrets Manager
 * returns the AWSCURRENT version") and "How rotation works" (AWSCURRENT moves with AWSPREVIOUS
 * following the version it left; a staging label is on at most one version).
 */
interface Version {
  /** Undefined for the version RotateSecret labels AWSPENDING before createSecret fills it. */
  value: string | undefined;
  stages: Set<string>;
  createdAt: number;
}

interface Versioned {
  versions: Map<string, Version>;
  rotationEnabled: boolean;
}

const PREFIX = 'secretsmanager.';

export class SecretVersions {
  private readonly store = new Map<string, Versioned>();

  constructor(private readonly fake: AwsJsonFake) {}

  /** Adds the operations to the fake (they replace its plain GetSecretValue). */
  install(): this {
    this.fake.on(`${PREFIX}DescribeSecret`, (input) => this.describe(id(input)));
    this.fake.on(`${PREFIX}GetSecretValue`, (input) => this.get(input));
    this.fake.on(`${PREFIX}PutSecretValue`, (input) => this.put(input));
    this.fake.on(`${PREFIX}UpdateSecretVersionStage`, (input) => this.updateStage(input));
    return this;
  }

  /** Marks a secret as having rotation on (what a RotationSchedule does). */
  enableRotation(secretId: string): void {
    this.sync(secretId).rotationEnabled = true;
  }

  /**
   * What RotateSecret does before it invokes the rotation function: a new version, without a
   * value yet, labelled AWSPENDING, whose id is the ClientRequestToken the steps receive.
   */
  startRotation(secretId: string, token: string): void {
    const entry = this.sync(secretId);
    for (const v of entry.versions.values()) v.stages.delete('AWSPENDING');
    entry.versions.set(token, {
      value: undefined,
      stages: new Set(['AWSPENDING']),
      createdAt: Date.now(),
    });
  }

  /** The versions and their labels, for tests. */
  stagesOf(secretId: string): Record<string, string[]> {
    const entry = this.sync(secretId);
    return Object.fromEntries(
      [...entry.versions].map(([versionId, v]) => [versionId, [...v.stages].sort()]),
    );
  }

  /** Makes the record follow a value someone put straight into `fake.secrets`. */
  private sync(secretId: string): Versioned {
    let entry = this.store.get(secretId);
    const plain = this.fake.secrets.get(secretId);
    if (!entry) {
      if (plain === undefined) throw notFound();
      entry = { versions: new Map(), rotationEnabled: false };
      this.store.set(secretId, entry);
    }
    const current = [...entry.versions.values()].find((v) => v.stages.has('AWSCURRENT'));
    if (plain !== undefined && current?.value !== plain) {
      this.addVersion(entry, secretId, randomUUID(), plain, ['AWSCURRENT']);
    }
    return entry;
  }

  private describe(secretId: string) {
    const entry = this.sync(secretId);
    return {
      ARN: arn(secretId),
      Name: secretId,
      RotationEnabled: entry.rotationEnabled,
      VersionIdsToStages: Object.fromEntries(
        [...entry.versions]
          .filter(([, v]) => v.stages.size > 0)
          .map(([versionId, v]) => [versionId, [...v.stages]]),
      ),
    };
  }

  private get(input: Record<string, unknown>) {
    const secretId = id(input);
    const entry = this.sync(secretId);
    const versionId = typeof input.VersionId === 'string' ? input.VersionId : undefined;
    const stage =
      typeof input.VersionStage === 'string'
        ? input.VersionStage
        : versionId
          ? undefined
          : 'AWSCURRENT';
    const match = [...entry.versions].find(
      ([vid, v]) =>
        v.value !== undefined &&
        (!versionId || vid === versionId) &&
        (!stage || v.stages.has(stage)),
    );
    if (!match)
      throw new AwsServiceError(
        'ResourceNotFoundException',
        "Secrets Manager can't find the specified secret value for staging label or version.",
      );
    const [vid, version] = match;
    return {
      ARN: arn(secretId),
      Name: secretId,
      VersionId: vid,
      SecretString: version.value,
      VersionStages: [...version.stages],
      CreatedDate: version.createdAt / 1000,
    };
  }

  private put(input: Record<string, unknown>) {
    const secretId = id(input);
    const entry = this.sync(secretId);
    if (typeof input.SecretString !== 'string')
      throw new AwsServiceError('InvalidParameterException', 'SecretString is required here.');
    const token =
      typeof input.ClientRequestToken === 'string' ? input.ClientRequestToken : randomUUID();
    const stages = Array.isArray(input.VersionStages)
      ? input.VersionStages.map(String)
      : ['AWSCURRENT'];
    const existing = entry.versions.get(token);
    if (existing && existing.value === undefined) {
      // The version RotateSecret made: createSecret gives it its value.
      existing.value = input.SecretString;
      for (const stage of stages) existing.stages.add(stage);
      return {
        ARN: arn(secretId),
        Name: secretId,
        VersionId: token,
        VersionStages: [...existing.stages],
      };
    }
    if (existing) {
      // Idempotent for the same value; a different value under the same token is refused.
      if (existing.value !== input.SecretString)
        throw new AwsServiceError(
          'ResourceExistsException',
          'A resource with the ID you requested already exists.',
        );
      return {
        ARN: arn(secretId),
        Name: secretId,
        VersionId: token,
        VersionStages: [...existing.stages],
      };
    }
    this.addVersion(entry, secretId, token, input.SecretString, stages);
    return { ARN: arn(secretId), Name: secretId, VersionId: token, VersionStages: stages };
  }

  private updateStage(input: Record<string, unknown>) {
    const secretId = id(input);
    const entry = this.sync(secretId);
    const stage = String(input.VersionStage ?? '');
    const move = typeof input.MoveToVersionId === 'string' ? input.MoveToVersionId : undefined;
    const remove =
      typeof input.RemoveFromVersionId === 'string' ? input.RemoveFromVersionId : undefined;
    const holder = [...entry.versions].find(([, v]) => v.stages.has(stage))?.[0];
    if (move && holder && holder !== move && remove !== holder)
      throw new AwsServiceError(
        'InvalidParameterException',
        `The staging label ${stage} is attached to version ${holder}; name it in RemoveFromVersionId.`,
      );
    if (move && !entry.versions.has(move))
      throw new AwsServiceError('ResourceNotFoundException', `No version ${move}.`);
    if (remove) entry.versions.get(remove)?.stages.delete(stage);
    if (move) {
      if (stage === 'AWSCURRENT') this.moveCurrent(entry, move);
      else entry.versions.get(move)?.stages.add(stage);
    }
    const current = [...entry.versions.values()].find((v) => v.stages.has('AWSCURRENT'));
    if (current?.value !== undefined) this.fake.secrets.set(secretId, current.value);
    return { ARN: arn(secretId), Name: secretId };
  }

  private addVersion(
    entry: Versioned,
    secretId: string,
    versionId: string,
    value: string,
    stages: string[],
  ): void {
    entry.versions.set(versionId, { value, stages: new Set(), createdAt: Date.now() });
    for (const stage of stages) {
      if (stage === 'AWSCURRENT') this.moveCurrent(entry, versionId);
      else {
        for (const v of entry.versions.values()) v.stages.delete(stage);
        entry.versions.get(versionId)?.stages.add(stage);
      }
    }
    if (stages.includes('AWSCURRENT')) this.fake.secrets.set(secretId, value);
  }

  /** AWSCURRENT to `versionId`; the version it left becomes AWSPREVIOUS. */
  private moveCurrent(entry: Versioned, versionId: string): void {
    for (const [vid, v] of entry.versions) {
      if (vid === versionId) continue;
      v.stages.delete('AWSPREVIOUS');
      if (v.stages.delete('AWSCURRENT')) v.stages.add('AWSPREVIOUS');
    }
    entry.versions.get(versionId)?.stages.add('AWSCURRENT');
  }
}

/** Once per fake: a second call returns the same versions. */
const installed = new WeakMap<AwsJsonFake, SecretVersions>();
export function secretVersions(fake: AwsJsonFake): SecretVersions {
  let versions = installed.get(fake);
  if (!versions) {
    versions = new SecretVersions(fake).install();
    installed.set(fake, versions);
  }
  return versions;
}

function id(input: Record<string, unknown>): string {
  const raw = String(input.SecretId ?? '');
  // A full or partial ARN names the secret after `secret:` (without the random suffix here).
  const match = /^arn:aws:secretsmanager:[^:]*:[^:]*:secret:(.+)$/.exec(raw);
  return match?.[1] ?? raw;
}

function arn(secretId: string): string {
  return `arn:aws:secretsmanager:us-east-1:000000000000:secret:${secretId}`;
}

function notFound(): AwsServiceError {
  return new AwsServiceError(
    'ResourceNotFoundException',
    "Secrets Manager can't find the specified secret.",
  );
}
